"""Run under torchrun by tests/test_train_distributed.py: trains the tiny U-Net (EMA averaging from step 1) and
the tiny vocoder with `DistributedTrainer` on every rank; rank 0 then trains the same runs in one process with
the same global batch and writes the differences to a JSON file.

    torchrun --standalone --nproc_per_node 2 tests/dist_check.py DATA_DIR OUT.json
"""
from __future__ import annotations

import dataclasses
import json
import sys

import torch
import torch.distributed as dist

from engine.dsp import SpectrogramConfig, samples_for_frames
from training.config import EMAConfig, train_preset
from training.data.audio_folder import AudioFolderDataset
from training.distributed import DistributedTrainer, init_from_environment, shutdown
from training.trainer import Trainer

STEPS = 3


def flat(state: dict) -> torch.Tensor:
    return torch.cat([v.detach().double().flatten() for v in state.values() if v.is_floating_point()])


def max_diff(a: dict, b: dict) -> float:
    return float((flat(a) - flat(b)).abs().max())


def rank_spread(state: dict) -> float:
    """max over elements of (max over ranks - min over ranks): 0 when every rank holds the same values."""
    hi, lo = flat(state), flat(state)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return float((hi - lo).max())


def main(data_dir: str, out: str) -> None:
    ctx = init_from_environment("cpu", threads=1)
    torch.set_num_threads(1)
    report = {"world_size": ctx.world_size}
    for kind in ("unet", "vocoder"):
        cfg = train_preset(kind, "tiny").with_overrides(steps=STEPS, batch_size=4, seed=7)
        if kind == "unet":
            cfg = dataclasses.replace(cfg, ema=EMAConfig(start_step=1, decay=0.9, every=1))
        else:  # a weighted SC: the loss reported must still be the global one
            cfg = cfg.with_overrides(sc_weight=2.0)
        dataset = AudioFolderDataset(data_dir, samples_for_frames(cfg.crop_frames, SpectrogramConfig()))
        ranked = DistributedTrainer(cfg, dataset, ctx)
        losses = [ranked.train_step()["loss"] for _ in range(STEPS)]
        spread = {"model": rank_spread(ranked.model.state_dict()), "scaler": rank_spread(ranked.scaler.state_dict())}
        if ranked.ema is not None:
            spread["ema"] = rank_spread(ranked.ema.state_dict())
        if ctx.rank == 0:
            single = Trainer(cfg, dataset)
            single_losses = [single.train_step()["loss"] for _ in range(STEPS)]
            entry = {"losses": losses, "single_losses": single_losses, "rank_spread": spread,
                     "model": max_diff(ranked.model.state_dict(), single.model.state_dict()),
                     "scaler": max_diff(ranked.scaler.state_dict(), single.scaler.state_dict())}
            if single.ema is not None:
                entry["ema"] = max_diff(ranked.ema.state_dict(), single.ema.state_dict())
                entry["ema_moved"] = max_diff(single.ema.state_dict(), single.model.state_dict())
            report[kind] = entry
        dist.barrier()
    if ctx.rank == 0:
        with open(out, "w") as f:
            json.dump(report, f, indent=1)
    shutdown(ctx)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
