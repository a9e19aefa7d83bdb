"""The U-Net's scaler modes: Appendix A's batch statistics, and a scaler fitted once and frozen (training.trainer)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.dsp import LearnedScaler, SpectrogramConfig, log_mel, normalise, samples_for_frames
from training.cli import main as train_main
from training.config import train_preset
from training.data.audio_folder import AudioFolderDataset
from training.trainer import Trainer

from train_helpers import SAMPLE_RATE, music_clip


def test_fit_averages_each_batchs_statistics_and_sets_them():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 2, 8, 16, generator=g) * s + m for s, m in ((1.0, -1.0), (2.0, 0.5), (0.5, 0.0))]
    scaler = LearnedScaler()
    stats = scaler.fit(batches)
    means = [float(b.double().mean()) for b in batches]
    vars_ = [float(b.double().var(unbiased=False)) for b in batches]
    lows = [float(((b.double() - m) / (v + 1e-5) ** 0.5).min()) for b, m, v in zip(batches, means, vars_)]
    assert stats.mean == pytest.approx(np.mean(means)) and stats.var == pytest.approx(np.mean(vars_))
    assert stats.min == pytest.approx(np.mean(lows))
    assert bool(scaler.fitted) and scaler.stats() == stats
    with pytest.raises(ValueError, match="at least one batch"):
        LearnedScaler().fit([])


@pytest.fixture(scope="module")
def loud_and_quiet(tmp_path_factory) -> Path:
    """Two pieces 20 dB apart: what a frozen scaler keeps apart and batch statistics make alike."""
    folder = tmp_path_factory.mktemp("levels")
    clip = music_clip(SAMPLE_RATE, seed=1)
    sf.write(folder / "loud.wav", clip, SAMPLE_RATE, subtype="PCM_16")
    sf.write(folder / "quiet.wav", clip * 0.1, SAMPLE_RATE, subtype="PCM_16")
    return folder


def _trainer(folder: Path, mode: str, batch: int = 1) -> Trainer:
    cfg = dataclasses.replace(train_preset("unet", "tiny").with_overrides(steps=4, batch_size=batch), scaler=mode)
    return Trainer(cfg, AudioFolderDataset(folder, samples_for_frames(cfg.crop_frames, SpectrogramConfig())))


@pytest.mark.parametrize("name", ["loud", "quiet"])
def test_frozen_training_scales_each_batch_as_inference_does_and_keeps_its_level(loud_and_quiet, name):
    frozen, batch = _trainer(loud_and_quiet, "frozen"), _trainer(loud_and_quiet, "batch")
    assert train_preset("unet", "small").scaler == "frozen" and train_preset("unet", "paper").scaler == "batch"
    stats = frozen.scaler.stats()
    audio = torch.from_numpy(sf.read(loud_and_quiet / f"{name}.wav", dtype="float32")[0].T[None, :, :8192].copy())
    mel = log_mel(audio, SpectrogramConfig())
    torch.testing.assert_close(frozen.scaler(mel), normalise(mel, stats))  # the model space a bundle decodes in
    for _ in range(3):
        frozen.train_step()
    assert frozen.scaler.stats() == stats  # never updated by training steps
    # Batch statistics move every batch to the same place, whatever its level; frozen ones keep 20 dB apart.
    loud, quiet = (log_mel(audio * g, SpectrogramConfig()) for g in (1.0, 0.1))
    assert abs(float(batch.scaler(loud).mean() - batch.scaler(quiet).mean())) < 0.02
    assert float(frozen.scaler(loud).mean() - frozen.scaler(quiet).mean()) > 0.1


def test_scaler_mode_is_kept_on_resume(tmp_path, loud_and_quiet, capsys):
    out = tmp_path / "run"
    common = ["unet", "--data", str(loud_and_quiet), "--preset", "tiny", "--out", str(out), "--no-progress"]
    assert train_main(common + ["--steps", "2", "--scaler", "batch"]) == 0
    checkpoint = torch.load(out / "unet" / "last.pt", weights_only=False)
    assert checkpoint["train_config"]["scaler"] == "batch"
    assert train_main(common + ["--steps", "3", "--resume", "--scaler", "frozen"]) == 2
    assert "--scaler frozen differs from the run being resumed (batch)" in capsys.readouterr().err
    assert train_main(common + ["--steps", "3", "--resume"]) == 0
