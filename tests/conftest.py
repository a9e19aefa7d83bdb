"""Shared fixtures. `tiny_bundle`: a real bundle (tiny U-Net + tiny vocoder, random weights, fitted scalers)
exported through onnx once per session; `tiny_run_dir`: the training-format checkpoints it was made from.

Use `tiny_bundle` read-only (copy it with shutil.copytree before changing anything).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from engine.dsp import LearnedScaler, SpectrogramConfig, log_mel


def _music_like(seconds: float, cfg: SpectrogramConfig, generator: torch.Generator) -> torch.Tensor:
    """Stereo harmonic tones with decaying notes plus a little noise, [2, samples]."""
    n = int(seconds * cfg.sample_rate)
    t = torch.arange(n) / cfg.sample_rate
    audio = torch.zeros(2, n)
    for i, f0 in enumerate((110.0, 164.8, 220.0, 277.2, 329.6)):
        envelope = torch.exp(-3.0 * torch.remainder(t + 0.13 * i, 0.5))
        tone = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 6))
        audio[i % 2] += 0.1 * envelope * tone
        audio[(i + 1) % 2] += 0.05 * envelope * tone
    return audio + 0.01 * torch.randn(2, n, generator=generator)


def make_tiny_checkpoint(kind: str, seed: int = 0, ema: bool = True) -> dict:
    """A checkpoint payload in the trainer's format (team guide: Checkpoint) for the `tiny` preset: random
    weights (EMA copy slightly different, so tests can tell them apart) and a scaler fitted on real log-mels."""
    from training.models import UNet, Vocoder, unet_preset, vocoder_preset

    cfg = SpectrogramConfig()
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # model init draws from the global RNG
    model_cfg = unet_preset("tiny") if kind == "unet" else vocoder_preset("tiny")
    model = UNet(model_cfg) if kind == "unet" else Vocoder(model_cfg)
    scaler = LearnedScaler().train()
    for _ in range(3):
        scaler(log_mel(_music_like(1.0, cfg, generator), cfg))
    ema_state = None
    if ema:
        ema_state = {k: v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v.clone()
                     for k, v in model.state_dict().items()}
    return {
        "kind": kind, "step": 200, "preset": "tiny", "model_config": model_cfg.to_dict(),
        "spectrogram": cfg.to_dict(),
        "diffusion": ({"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                       "prediction_type": "epsilon"} if kind == "unet" else None),
        "model": model.state_dict(), "ema": ema_state, "scaler": scaler.state_dict(),
        "scaler_stats": scaler.stats().to_dict(), "optimizer": {}, "lr_scheduler": {}, "rng": {},
        "train_config": {"kind": kind, "preset": "tiny"},
        "data": {"root": "synthetic", "files": 0, "seconds": 3.0, "description": "synthetic harmonic tones (tests)"},
    }


def make_beat_bundle(out: Path, beat_tempo: dict, torch_programs: bool = False) -> Path:
    """A tiny beat-conditioned bundle (random weights, a non-zero beat projection) exported to `out`, its checkpoint
    recording `beat_tempo` as training does (training.data.audio_folder.AudioFolderDataset.tempo_summary)."""
    import dataclasses

    from engine.beat_grid import BEAT_FEATURES
    from export.bundle_writer import ExportOptions, write_bundle
    from training.models import UNet, unet_preset

    ckpt = make_tiny_checkpoint("unet")
    cfg = dataclasses.replace(unet_preset("tiny"), beat_features=BEAT_FEATURES)
    torch.manual_seed(0)
    model = UNet(cfg)
    torch.nn.init.normal_(model.beat.weight, std=0.5)
    ckpt.update(model_config=cfg.to_dict(), model=model.state_dict(), ema=None)
    ckpt["data"]["beat_tempo"] = beat_tempo
    return write_bundle(ckpt, make_tiny_checkpoint("vocoder", 1), out,
                        ExportOptions(name="beat-test", torch_programs=torch_programs))


def make_tiny_run(run_dir: Path, seed: int = 0) -> Path:
    """RUN_DIR/unet/last.pt and RUN_DIR/vocoder/last.pt, as `msanii-train` writes them."""
    from training.checkpoint import LAST, save_checkpoint

    for i, kind in enumerate(("unet", "vocoder")):
        (run_dir / kind).mkdir(parents=True, exist_ok=True)
        save_checkpoint(make_tiny_checkpoint(kind, seed + i), run_dir / kind / LAST)
    return run_dir


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("tiny_run") / "run")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run_dir, tmp_path_factory) -> Path:
    """Directory of a valid bundle exported from `tiny_run_dir` (fp32 graphs). Treat as read-only."""
    from export.bundle_writer import ExportOptions, write_bundle
    from training.checkpoint import LAST, load_checkpoint

    out = tmp_path_factory.mktemp("tiny_bundle") / "tiny"
    return write_bundle(load_checkpoint(tiny_run_dir / "unet" / LAST, "unet"),
                        load_checkpoint(tiny_run_dir / "vocoder" / LAST, "vocoder"), out,
                        ExportOptions(name="tiny-test", command="tests/conftest.py tiny_bundle"),
                        sources={"unet": str(tiny_run_dir / "unet" / LAST),
                                 "vocoder": str(tiny_run_dir / "vocoder" / LAST)})


@pytest.fixture(scope="session")
def program_bundle(tiny_run_dir, tmp_path_factory) -> Path:
    """`tiny_bundle`'s models exported with --torch: the ONNX graphs plus unet.pt2/vocoder.pt2. Read-only."""
    from export.cli import main as export_main

    out = tmp_path_factory.mktemp("programs") / "tiny-torch"
    assert export_main([str(tiny_run_dir), str(out), "--torch", "--name", "tiny-torch"]) == 0
    return out
