"""Data-parallel training under torchrun: `msanii-train` detects the launcher's environment and runs as one rank.

    torchrun --standalone --nproc_per_node 4 -m training.cli unet --data DIR --preset paper --out runs/pop

How a run with W ranks stays the run one process would make:
- Global batch. `--batch-size` is the global batch (crops per optimiser step over all ranks), so a run means the
  same thing at any world size; each rank trains on `batch_size / W` of it (W must divide it). Every rank replays
  the random draws of the whole batch from the (seed, step) generators a single process uses, and keeps rows
  [rank * b, (rank + 1) * b): its crops, diffusion noise and timesteps are exactly those rows of the one-process
  batch (the cost: each rank also cuts the other ranks' crops, a memory copy, no model work).
- Gradients: DistributedDataParallel (NCCL on CUDA, gloo on CPU) averages them, which for the U-Net's mean
  squared error over equal shards is the gradient of the global batch's loss.
- Learned scaler: `SyncedScaler` all-reduces its batch statistics (sum, sum of squared deviations, min, max), so
  every rank normalises with, and updates its running statistics from, the statistics of the global batch.
- Vocoder loss: its spectral-convergence term is one norm ratio over the whole batch; ranks all-reduce its
  numerator and denominator, and each rank's loss is a surrogate whose gradient, averaged by DDP, is the global
  ratio's gradient (the reported loss is the global value).
- EMA: weights, optimiser state and steps are identical on every rank, so each rank's EMA is the same; only
  rank 0's is saved. Rank 0 is the only writer of checkpoints and losses.csv (the loss logged is the global one).
- Stop: Ctrl-C/SIGTERM may reach ranks at different steps; the stop flag is all-reduced every step so all ranks
  stop after the same step (and rank 0 saves it).
- Resume: a checkpoint holds no per-rank state, so `--resume` works at any world size that divides the batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from engine.dsp import LearnedScaler, ScalerStats, SpectrogramConfig, log_mel, stft_magnitude
from engine.dsp.scaler import normalise
from training.config import TrainConfig
from training.losses import LOG_EPS, log_magnitude_loss
from training.loop import StopRequest
from training.trainer import CropSource, Trainer, select_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    backend: str

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return world_size_from_environment() > 1


def world_size_from_environment() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_environment(device_name: str = "auto", threads: int | None = None) -> DistContext | None:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); None when not
    launched with more than one rank. CUDA ranks use GPU LOCAL_RANK and NCCL; CPU ranks gloo, with the cores of
    the machine shared out among its ranks unless `threads` is given."""
    if not launched_by_torchrun():
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    device = select_device(device_name)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"rank {rank} needs GPU {local_rank} but only {torch.cuda.device_count()} are visible; "
                             "use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        backend = "gloo"
        if threads is None:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    dist.init_process_group(backend, rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, local_world, device, backend)


def shutdown(ctx: DistContext | None) -> None:
    if ctx is not None and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum each value over all ranks (float64)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


class SyncedScaler(LearnedScaler):
    """`LearnedScaler` whose training-mode batch statistics are those of the global batch (all ranks)."""

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(log_mel)
        x = log_mel.detach().double()
        count, total = all_reduce_sum([float(x.numel()), float(x.sum())], x.device)
        mean = total / count
        (squares,) = all_reduce_sum([float(((x - mean) ** 2).sum())], x.device)
        var = squares / count
        extremes = torch.stack([-x.min(), x.max()])
        dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
        lo_raw, hi_raw = -float(extremes[0]), float(extremes[1])
        scale = (var + self.eps) ** 0.5
        lo, hi = (lo_raw - mean) / scale, (hi_raw - mean) / scale  # min/max of the standardised batch
        self._update(mean, var, lo, hi)
        return normalise(log_mel, ScalerStats(mean, var, lo, max(hi, lo + 1e-6), self.eps))


class DistributedTrainer(Trainer):
    """A `Trainer` for one rank: its rows of each global batch, DDP gradients, synced scaler, global losses."""

    def __init__(self, cfg: TrainConfig, dataset: CropSource, ctx: DistContext,
                 spectrogram: SpectrogramConfig | None = None, data_info: dict[str, Any] | None = None) -> None:
        if cfg.batch_size % ctx.world_size:
            raise ValueError(f"the global batch ({cfg.batch_size} crops) does not split over {ctx.world_size} ranks; "
                             f"use a --batch-size that is a multiple of the number of processes")
        self.dist = ctx
        super().__init__(cfg, dataset, ctx.device, spectrogram, data_info)  # vocoder calibration sees the whole batch
        share = cfg.batch_size // ctx.world_size
        self.batch_rows = (ctx.rank * share, (ctx.rank + 1) * share)
        synced = SyncedScaler().to(self.device)
        synced.load_state_dict(self.scaler.state_dict())
        self.scaler = synced.train(cfg.scaler == "batch")  # a frozen scaler was fitted on whole batches: same on all
        self.net = DistributedDataParallel(self.model, device_ids=[ctx.device.index] if ctx.device.type == "cuda"
                                           else None)

    def compute_loss(self, audio: torch.Tensor, noise_rng: torch.Generator, beat: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, dict[str, float]]:
        if self.cfg.kind == "unet":
            return super().compute_loss(audio, noise_rng, beat)
        return self._vocoder_loss(audio)

    def _vocoder_loss(self, audio: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Spectral convergence over the global batch + log-magnitude L1 (a mean: equal shards average exactly).
        SC = sqrt(N / D) with N = sum over ranks of ||T - P||^2, D = sum of ||T||^2. With N, D all-reduced as
        constants, loss_r = W * n_r / (2 sqrt(N D)) has d(mean over ranks)/dP_r = dSC/dP_r."""
        with torch.no_grad():
            mel = log_mel(audio, self.spectrogram)
            target = stft_magnitude(audio, self.spectrogram).float()
        x = self.scaler(mel)
        with self._autocast():
            predicted = self.net(x)
        predicted = predicted.float()
        n_local = (target - predicted).pow(2).sum()
        total_n, total_d = all_reduce_sum([float(n_local.detach()), float(target.pow(2).sum())], self.device)
        sc_value = (total_n / max(total_d, 1e-16)) ** 0.5
        surrogate = self.dist.world_size * n_local / (2.0 * max((total_n * total_d) ** 0.5, 1e-16))
        log_mag = log_magnitude_loss(predicted, target, LOG_EPS)
        loss = self.cfg.sc_weight * surrogate + log_mag
        log_mag_value = self._global_mean(float(log_mag.detach()))
        # the value reported is the global loss; the surrogate only carries its gradient
        reported = self.cfg.sc_weight * sc_value + log_mag_value  # as Trainer reports it
        return _reporting(loss, reported), {"sc": sc_value, "log_mag": log_mag_value}

    def _global_mean(self, value: float) -> float:
        (total,) = all_reduce_sum([value], self.device)
        return total / self.dist.world_size

    def train_step(self, batch_step: int | None = None) -> dict[str, float]:
        stats = super().train_step(batch_step)
        if self.cfg.kind == "unet":  # each rank's loss is its shard's mean; equal shards average to the global one
            stats["loss"] = self._global_mean(stats["loss"])
        return stats


def _reporting(loss: torch.Tensor, value: float) -> torch.Tensor:
    """A tensor with `loss`'s gradient whose value is `value` (what train_step reports and checks)."""
    return loss - loss.detach() + torch.as_tensor(value, dtype=loss.dtype, device=loss.device)


class SyncedStop(StopRequest):
    """A stop request all ranks agree on: `is_set()` is true everywhere once any rank saw SIGINT/SIGTERM.
    Every rank calls it at the same points of the loop (a collective)."""

    def __init__(self, ctx: DistContext) -> None:
        super().__init__()
        self.ctx = ctx

    def is_set(self) -> bool:
        flag = torch.tensor([1.0 if self.event.is_set() else 0.0], device=self.ctx.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() > 0:
            self.event.set()
        return bool(flag.item() > 0)
