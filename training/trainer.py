"""One optimisation step at a time for the U-Net or the vocoder, and the state that makes resume bit-exact.

Every random draw of step `s` comes from generators seeded with (seed, s): the data crop from a numpy Generator,
the diffusion noise and timesteps from a CPU torch.Generator. So step `s` of a resumed run sees exactly the data
and noise of an uninterrupted one, and (on CPU) produces the same loss.

U-Net step: mel = LearnedScaler(log_mel(audio)), x_t = add_noise(mel, eps, t),
loss = MSE(U-Net(x_t, t as float), eps or v: training.diffusion.training_target). Vocoder step: input = its own LearnedScaler(log_mel(audio)),
target = |STFT(audio)|, loss = spectral convergence + log-magnitude L1.

The scaler (TrainConfig.scaler): "batch" is Appendix A, each batch scaled by its own mean, variance, min and max
while running statistics are kept for inference. With a few crops per batch that scales every batch to its own
level: measured on the piano corpus at 2 x 512 frames, batch means spread by 0.43 nats (sd) and the model space the
U-Net learned sat 0.08 below the one the bundle decodes with, so every clip came out ~2 dB quiet and a real clip
given to inpainting is louder than anything the model saw (models/README.md). "frozen" fits the statistics once, on
SCALER_FIT_BATCHES batches of the run's own data and batch size (their batch statistics averaged), and scales every
step with them: training and inference share one model space and a piece keeps its level.
Optimiser: Adam (lr 2e-4, betas 0.5/0.999), LinearLR warm-up from 1/3 over 500 steps, gradient clipping 1.0,
autocast (bf16, or fp16 with a GradScaler) only on CUDA.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from engine.beat_grid import BEAT_FEATURES
from engine.dsp import LearnedScaler, SpectrogramConfig, log_mel, samples_for_frames, stft_magnitude
from training.config import TrainConfig
from training.diffusion import noise_batch, train_scheduler, training_target
from training.ema import EMA
from training.losses import diffusion_loss, vocoder_loss
from training.models import UNet, Vocoder, unet_preset, vocoder_preset


class CropSource(Protocol):
    """What the trainer needs from a dataset (training.data.audio_folder.AudioFolderDataset)."""

    def sample_crop(self, rng: np.random.Generator) -> torch.Tensor: ...


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA GPU is available to torch")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use cpu, cuda or auto")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain float32. Mixed precision is used only on CUDA."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """The data RNG and the noise RNG of step `step` (independent streams of one SeedSequence)."""
    data_seq, noise_seq = np.random.SeedSequence([seed, step]).spawn(2)
    noise = torch.Generator(device="cpu")
    noise.manual_seed(int(noise_seq.generate_state(1, dtype=np.uint64)[0]) & (2**63 - 1))
    return np.random.default_rng(data_seq), noise


def build_model(cfg: TrainConfig) -> nn.Module:
    """The preset's model with initial weights drawn from `cfg.seed` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if cfg.kind == "unet":
            model_cfg = unet_preset(cfg.preset)
            if cfg.beat_conditioning:
                model_cfg = dataclasses.replace(model_cfg, beat_features=BEAT_FEATURES)
            return UNet(model_cfg)
        return Vocoder(vocoder_preset(cfg.preset))


CALIBRATION_STEP = 2**32  # RNG stream of the start-up calibration batch, apart from every training step's
SCALER_FIT_STEP = 2**32 + 1  # first RNG stream of the frozen scaler's fitting batches (then +1 per batch)
SCALER_FIT_BATCHES = 32


@torch.no_grad()
def calibrate_vocoder_output(vocoder: Vocoder, target: torch.Tensor, eps: float = 1e-5) -> None:
    """Start the vocoder's output bias at the data's mean log-magnitude per STFT bin (target [B, C, F, T]).

    The output layer predicts log-magnitudes from -11 (silence) to +5; from a zero bias Adam moves each bias by about
    the learning rate per step, so the paper's lr needs tens of thousands of steps just to find the levels. Starting
    at the data's per-bin mean leaves training to learn the deviations (the spectral convergence falls from the
    first steps instead of after the levels are found)."""
    mean_log = torch.log(target + eps).mean(dim=(0, 1, 3))  # [F]
    vocoder.detokenize.proj.bias.copy_(mean_log.to(vocoder.detokenize.proj.bias))


class Trainer:
    def __init__(self, cfg: TrainConfig, dataset: CropSource, device: torch.device | str = "cpu",
                 spectrogram: SpectrogramConfig | None = None, data_info: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.dataset = dataset
        self.device = torch.device(device)
        self.spectrogram = spectrogram or SpectrogramConfig()
        self.data_info = data_info or {}
        self.model = build_model(cfg).to(self.device).train()
        self.net: nn.Module = self.model  # what forward passes call (training.distributed wraps it in DDP)
        self.batch_rows: tuple[int, int] | None = None  # this rank's rows of each batch (training.distributed)
        if cfg.kind == "unet" and cfg.crop_frames % self.model.cfg.frame_multiple:
            raise ValueError(f"crop of {cfg.crop_frames} frames is not a multiple of {self.model.cfg.frame_multiple}"
                             f" (2 ** downsamplings of the {cfg.preset} U-Net)")
        self.crop_samples = samples_for_frames(cfg.crop_frames, self.spectrogram)
        self.scaler = LearnedScaler().to(self.device).train()
        if cfg.scaler == "frozen":  # a resumed run overwrites the fit with its checkpoint's statistics
            self.fit_scaler()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
        self.lr_scheduler = torch.optim.lr_scheduler.LinearLR(
            self.optimizer, start_factor=cfg.optim.warmup_start_factor, end_factor=1.0,
            total_iters=max(cfg.optim.warmup_steps, 1))
        self.autocast_dtype = resolve_precision(cfg.precision, self.device)
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.ema = EMA(self.model, cfg.ema) if cfg.kind == "unet" and cfg.ema is not None else None
        self.noise_scheduler = train_scheduler(cfg.diffusion) if cfg.kind == "unet" else None
        self.step = 0  # optimiser steps done
        if cfg.kind == "vocoder":  # a resumed run overwrites this with its checkpoint's weights
            audio, _ = self.draw_batch(CALIBRATION_STEP)
            calibrate_vocoder_output(self.model, stft_magnitude(audio, self.spectrogram))
        self.elapsed_seconds = 0.0  # training wall time over all sessions (for losses.csv)

    # -- one step ---------------------------------------------------------------------------------------------
    def draw_batch(self, step: int) -> tuple[torch.Tensor, torch.Generator]:
        """Audio [B, 2, crop_samples] of step `step` and that step's noise generator."""
        audio, _, noise_rng = self.draw_conditioned_batch(step)
        return audio, noise_rng

    def draw_conditioned_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Generator]:
        """`draw_batch` plus, for a beat-conditioned U-Net, the crops' beat grids [B, BEAT_FEATURES, crop_frames]
        (zeros for a file without a sidecar and for the crops beat_dropout drops); None otherwise."""
        data_rng, noise_rng = step_generators(self.cfg.seed, step)
        lo, hi = self.batch_rows or (0, self.cfg.batch_size)  # a rank draws the whole batch and keeps its rows
        if not getattr(self.model.cfg, "beat_features", 0):
            crops = [self.dataset.sample_crop(data_rng) for _ in range(self.cfg.batch_size)]
            return torch.stack(crops[lo:hi]).to(self.device, torch.float32), None, noise_rng
        drawn = [self.dataset.sample_crop_with_grid(data_rng, self.cfg.crop_frames, self.spectrogram.hop_length)
                 for _ in range(self.cfg.batch_size)]
        dropped = data_rng.random(self.cfg.batch_size) < self.cfg.beat_dropout
        grids = np.zeros((self.cfg.batch_size, BEAT_FEATURES, self.cfg.crop_frames), dtype=np.float32)
        for row, ((_, features), drop) in enumerate(zip(drawn, dropped)):
            if features is not None and not drop:
                grids[row] = features
        audio = torch.stack([crop for crop, _ in drawn[lo:hi]]).to(self.device, torch.float32)
        return audio, torch.from_numpy(grids[lo:hi]).to(self.device), noise_rng

    def fit_scaler(self, batches: int = SCALER_FIT_BATCHES) -> None:
        """Fit the frozen scaler on `batches` whole batches (every rank draws the same ones) and keep it in eval mode."""
        mels = []
        for i in range(batches):
            data_rng, _ = step_generators(self.cfg.seed, SCALER_FIT_STEP + i)
            audio = torch.stack([self.dataset.sample_crop(data_rng) for _ in range(self.cfg.batch_size)])
            mels.append(log_mel(audio, self.spectrogram))
        self.scaler.fit(mels)
        self.scaler.eval()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def compute_loss(self, audio: torch.Tensor, noise_rng: torch.Generator, beat: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            mel = log_mel(audio, self.spectrogram)  # [B, 2, n_mels, frames]
        x = self.scaler(mel)  # "batch": this batch's statistics, running ones updated; "frozen": the fitted ones
        if self.cfg.kind == "unet":
            x_t, noise, t = noise_batch(x, self.noise_scheduler, noise_rng, self.batch_rows, self.cfg.batch_size)
            with self._autocast():
                predicted = self.net(x_t, t.float()) if beat is None else self.net(x_t, t.float(), beat)
            return diffusion_loss(predicted, training_target(self.noise_scheduler, x, noise, t)), {}
        with torch.no_grad():
            target = stft_magnitude(audio, self.spectrogram)  # [B, 2, n_freqs, frames]
        with self._autocast():
            predicted = self.net(x)
        return vocoder_loss(predicted, target, sc_weight=self.cfg.sc_weight)

    def train_step(self, batch_step: int | None = None) -> dict[str, float]:
        """Run optimiser step number `self.step + 1`; returns loss, lr (the one used) and extras.
        `batch_step` draws the data and noise of that step index instead of the current one (repeating one index
        trains on one fixed batch: the overfitting check)."""
        audio, beat, noise_rng = self.draw_conditioned_batch(self.step if batch_step is None else batch_step)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        loss, extras = self.compute_loss(audio, noise_rng, beat)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {self.step + 1}; lower the learning rate or "
                                     f"check the data")
        self.grad_scaler.scale(loss).backward()
        self.grad_scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()
        self.lr_scheduler.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        return {"loss": float(loss.detach()), "lr": lr, "grad_norm": float(grad_norm), **extras}

    # -- state ------------------------------------------------------------------------------------------------
    def checkpoint_payload(self) -> dict[str, Any]:
        """The checkpoint dict of the guide's contract (format/version are added by save_checkpoint)."""
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "kind": self.cfg.kind, "step": self.step, "preset": self.cfg.preset,
            "model_config": self.model.cfg.to_dict(), "spectrogram": self.spectrogram.to_dict(),
            "diffusion": self.cfg.diffusion.to_dict() if self.cfg.kind == "unet" else None,
            "model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict(),
            "scaler_stats": self.scaler.stats().to_dict() if bool(self.scaler.fitted) else None,
            "optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict(), "rng": rng,
            "train_config": self.cfg.to_dict(), "data": dict(self.data_info),
            "elapsed_seconds": self.elapsed_seconds,
        }

    def load_checkpoint_payload(self, data: dict[str, Any]) -> None:
        """Restore everything a checkpoint holds (model, EMA, scaler, optimiser, warm-up, RNGs, step)."""
        if data["kind"] != self.cfg.kind:
            raise ValueError(f"checkpoint is a {data['kind']} checkpoint, this trainer trains a {self.cfg.kind}")
        if data["model_config"] != self.model.cfg.to_dict():
            raise ValueError("checkpoint model config differs from the preset's; resume with the same --preset")
        self.model.load_state_dict(data["model"])
        if self.ema is not None and data.get("ema") is not None:
            self.ema.load_state_dict(data["ema"])
        self.scaler.load_state_dict(data["scaler"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.lr_scheduler.load_state_dict(data["lr_scheduler"])
        saved_lr = float((data.get("train_config") or {}).get("optim", {}).get("lr", self.cfg.optim.lr))
        if saved_lr != self.cfg.optim.lr:  # resumed with a new --lr: rescale, keeping the warm-up position
            for group in self.optimizer.param_groups:
                group["lr"] *= self.cfg.optim.lr / saved_lr
            self.lr_scheduler.base_lrs = [self.cfg.optim.lr for _ in self.lr_scheduler.base_lrs]
        if data.get("grad_scaler"):
            self.grad_scaler.load_state_dict(data["grad_scaler"])
        rng = data["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.step = int(data["step"])
        self.elapsed_seconds = float(data.get("elapsed_seconds", 0.0))
