"""The held-out denoising loss of every checkpoint of a U-Net run: the curve that says when training stops helping.

Each checkpoint (RUN/unet/step-*.pt and last.pt) is scored on the same fixed set: `--crops` crops of held-out audio,
each noised at `--timesteps` evenly spaced timesteps with fixed noise, normalised by that checkpoint's own scaler (as
an export would), for the raw and the EMA weights. Prints and writes a CSV (step, raw, ema, ema_grid). The loss is the
eps MSE for every model: a v-prediction model's output is turned into the eps it implies, so runs of either kind
compare. Every model is scored without a beat grid (as an unconditioned one runs); a beat-conditioned one's EMA is
scored again with each crop's own grid from the held-out beat sidecars (`ema_grid`, what generation at a tempo
feeds it; NaN for other models or held-out audio without sidecars).

    python -m bench.heldout_loss --run runs/piano --heldout data/piano/heldout [--csv runs/piano/heldout.csv]
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.dsp import LearnedScaler, SpectrogramConfig, log_mel, samples_for_frames
from engine.sampling import eps_from_prediction
from training.checkpoint import load_checkpoint
from training.data.audio_folder import AudioFolderDataset
from training.diffusion import train_scheduler
from training.config import DiffusionConfig
from training.models import UNet, UNetConfig


def fixed_set(heldout: Path, frames: int, crops: int, timesteps: int, spectrogram: SpectrogramConfig, seed: int = 0):
    """(log-mel [crops * timesteps, C, n_mels, frames], noise like it, t [crops * timesteps], beat grids
    [crops * timesteps, BEAT_FEATURES, frames] or None when a crop's file has no sidecar)."""
    dataset = AudioFolderDataset(heldout, samples_for_frames(frames, spectrogram), sample_rate=spectrogram.sample_rate)
    rng = np.random.default_rng(seed)
    drawn = [dataset.sample_crop_with_grid(rng, frames, spectrogram.hop_length) for _ in range(crops)]
    audio = torch.stack([crop for crop, _ in drawn]).float()
    mel = log_mel(audio, spectrogram).repeat_interleave(timesteps, 0)
    t = torch.linspace(20, 980, timesteps).round().long().repeat(crops)
    noise = torch.randn(mel.shape, generator=torch.Generator().manual_seed(seed))
    grids = None
    if all(g is not None for _, g in drawn):
        grids = torch.from_numpy(np.stack([g for _, g in drawn])).float()[..., :mel.shape[-1]]
        grids = grids.repeat_interleave(timesteps, 0)
    return mel, noise, t, grids


@torch.no_grad()
def score(weights: dict, model_cfg: UNetConfig, scaler_state: dict, sets, diffusion: DiffusionConfig,
          batch: int = 4, with_grid: bool = False) -> float:
    """Mean eps MSE over the fixed set; `with_grid`: a beat-conditioned model sees each crop's beat grid."""
    mel, noise, t, grids = sets
    model = UNet(model_cfg).eval()
    model.load_state_dict(weights)
    scaler = LearnedScaler()
    scaler.load_state_dict(scaler_state)
    scaler.eval()
    scheduler = train_scheduler(diffusion)
    losses = []
    for lo in range(0, mel.shape[0], batch):
        x0 = scaler(mel[lo:lo + batch])
        x_t = scheduler.add_noise(x0, noise[lo:lo + batch], t[lo:lo + batch])
        beat = grids[lo:lo + batch] if with_grid else None
        predicted = model(x_t, t[lo:lo + batch].float()) if beat is None else model(x_t, t[lo:lo + batch].float(), beat)
        abar = scheduler.alphas_cumprod[t[lo:lo + batch]].reshape(-1, 1, 1, 1)
        predicted = eps_from_prediction(predicted, x_t, abar, diffusion.prediction_type)  # all models scored as eps
        losses.append(((predicted - noise[lo:lo + batch]) ** 2).mean(dim=(1, 2, 3)))
    return float(torch.cat(losses).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder (holds unet/)")
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--crops", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=6)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--every", type=int, default=1, help="score every N-th periodic checkpoint")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args(argv)
    every_checkpoint = sorted((args.run / "unet").glob("step-*.pt"))
    paths = every_checkpoint[::args.every]
    if every_checkpoint and every_checkpoint[-1] not in paths:  # the newest is the one a bundle is made from
        paths.append(every_checkpoint[-1])
    rows = []
    sets = None
    for path in paths:
        started = time.perf_counter()
        data = load_checkpoint(path, kind="unet")
        spectrogram = SpectrogramConfig.from_dict(data["spectrogram"])
        if sets is None:
            sets = fixed_set(args.heldout, args.frames, args.crops, args.timesteps, spectrogram)
        cfg = UNetConfig.from_dict(data["model_config"])
        diffusion = DiffusionConfig(**data["diffusion"])
        raw = score(data["model"], cfg, data["scaler"], sets, diffusion)
        ema = score(data["ema"], cfg, data["scaler"], sets, diffusion) if data.get("ema") else float("nan")
        gridded = float("nan")
        if data.get("ema") and getattr(cfg, "beat_features", 0) and sets[3] is not None:
            gridded = score(data["ema"], cfg, data["scaler"], sets, diffusion, with_grid=True)
        rows.append((int(data["step"]), raw, ema, gridded))
        print(f"step {data['step']:>7}: held-out MSE raw {raw:.4f}  ema {ema:.4f}  ema with grid {gridded:.4f}  "
              f"({time.perf_counter() - started:.1f} s)", flush=True)
    if args.csv:
        write_curve(args.csv, rows, {"heldout": str(args.heldout), "crops": args.crops, "timesteps": args.timesteps,
                                     "frames": args.frames})
    return 0


def write_curve(path: Path, rows: list[tuple], settings: dict) -> None:
    """The curve as CSV at `path` and what it was scored on (`settings`) beside it as JSON (path + ".json"), each
    written to a temporary name first, so a report never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("step", "heldout_mse_raw", "heldout_mse_ema", "heldout_mse_ema_grid"))
        writer.writerows(rows)
    tmp.replace(path)
    tmp.write_text(json.dumps(settings, indent=1) + "\n")
    tmp.replace(path.with_name(path.name + ".json"))


if __name__ == "__main__":
    raise SystemExit(main())
