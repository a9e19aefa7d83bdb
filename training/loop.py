"""The training loop around a Trainer: run folder, losses.csv, periodic/last checkpoints, Ctrl-C handling.

Ctrl-C (SIGINT) or SIGTERM lets the current step finish, writes last.pt and returns normally; a second Ctrl-C
aborts at once (last.pt is then the previous, intact checkpoint: writes are atomic).
"""
from __future__ import annotations

import csv
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from training.checkpoint import LAST, periodic_name, save_checkpoint
from training.trainer import Trainer

LOSSES = "losses.csv"
BASE_COLUMNS = ("step", "loss", "lr", "seconds", "grad_norm")


class RunDirError(ValueError):
    """The run folder cannot be used as asked (exists without --resume, nothing to resume, ...)."""


def prepare_run_dir(out: str | Path, kind: str, resume: bool) -> Path:
    """RUN_DIR/<kind>/, created for a new run; never reuses one that holds a run unless resuming."""
    kind_dir = Path(out) / kind
    if resume:
        if not (kind_dir / LAST).is_file():
            raise RunDirError(f"nothing to resume: {kind_dir / LAST} does not exist")
        return kind_dir
    if kind_dir.exists() and any(kind_dir.iterdir()):
        raise RunDirError(f"{kind_dir} already holds a run; pass --resume to continue it or choose another --out")
    kind_dir.mkdir(parents=True, exist_ok=True)
    return kind_dir


class LossLog:
    """Append-only losses.csv. On resume, rows past the checkpoint's step (written after the last save by an
    interrupted run) are dropped so the log matches the state being continued."""

    def __init__(self, path: Path, columns: tuple[str, ...], resume_step: int | None = None) -> None:
        self.path, self.columns = path, columns
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, path)
        new = not path.exists()
        self.file = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")
        if new:
            self.writer.writeheader()

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def loss_columns(kind: str) -> tuple[str, ...]:
    return BASE_COLUMNS + (("sc", "log_mag") if kind == "vocoder" else ())


class StopRequest:
    """Set by SIGINT/SIGTERM (main thread only) or by the caller; the loop stops after the current step."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.event.set()
        print(f"\n{signal.Signals(signum).name}: finishing this step and saving a checkpoint "
              f"(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def is_set(self) -> bool:
        return self.event.is_set()


@dataclass
class RunResult:
    step: int
    last_loss: float | None
    interrupted: bool
    checkpoint: Path


def save_state(trainer: Trainer, kind_dir: Path, periodic: bool) -> Path:
    """Write last.pt; with `periodic`, also step-XXXXXXX.pt (a hard link to the same bytes when possible)."""
    payload = trainer.checkpoint_payload()
    last = kind_dir / LAST
    if not periodic:
        return save_checkpoint(payload, last)
    step_file = save_checkpoint(payload, kind_dir / periodic_name(trainer.step))
    tmp = kind_dir / f".{LAST}.link-{os.getpid()}"
    try:
        os.link(step_file, tmp)
        os.replace(tmp, last)
    except OSError:  # no hard links on this filesystem: write it again
        if tmp.exists():
            tmp.unlink()
        save_checkpoint(payload, last)
    return last


def prune_periodic(kind_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step-XXXXXXX.pt files (last.pt is never touched); returns the deleted."""
    files = sorted(kind_dir.glob("step-[0-9]*.pt"))
    doomed = files[:-keep] if keep > 0 else []
    for path in doomed:
        path.unlink()
    return doomed


def run_training(trainer: Trainer, kind_dir: Path, resumed: bool = False, progress: bool | None = None,
                 stop: StopRequest | None = None, on_step: Callable[[int, dict], None] | None = None,
                 keep_checkpoints: int | None = None, writer: bool = True) -> RunResult:
    """Train until `trainer.cfg.steps` optimiser steps are done or a stop is requested; checkpoint every
    `checkpoint_every` steps, on stop and at the end. progress: tqdm bar (None: only on a terminal).
    keep_checkpoints: keep only the newest N periodic files (None: keep all).
    writer: False on the ranks of a distributed run other than 0 (they train but write nothing)."""
    cfg = trainer.cfg
    log = LossLog(kind_dir / LOSSES, loss_columns(cfg.kind), resume_step=trainer.step if resumed else None) \
        if writer else None
    stop = stop or StopRequest()
    last_loss, smoothed = None, None
    bar = tqdm(total=cfg.steps, initial=trainer.step,
               disable=True if not writer else (progress is False if progress is not None else None),
               dynamic_ncols=True, unit="step", desc=cfg.kind)
    checkpoint = kind_dir / LAST
    try:
        with stop:
            saved_at = trainer.step if resumed else -1
            while trainer.step < cfg.steps and not stop.is_set():
                started = time.perf_counter()
                stats = trainer.train_step()
                trainer.elapsed_seconds += time.perf_counter() - started
                last_loss = stats["loss"]
                smoothed = last_loss if smoothed is None else 0.98 * smoothed + 0.02 * last_loss
                if log is not None:
                    log.write({"step": trainer.step, "seconds": round(trainer.elapsed_seconds, 3), **stats})
                bar.update(1)
                bar.set_postfix(loss=f"{last_loss:.4f}", avg=f"{smoothed:.4f}", refresh=False)
                if on_step is not None:
                    on_step(trainer.step, stats)
                if trainer.step % cfg.checkpoint_every == 0 and writer:
                    checkpoint = save_state(trainer, kind_dir, periodic=True)
                    saved_at = trainer.step
                    if keep_checkpoints is not None:
                        prune_periodic(kind_dir, keep_checkpoints)
                    tqdm.write(f"{cfg.kind} step {trainer.step}/{cfg.steps} loss {last_loss:.4f} "
                               f"(avg {smoothed:.4f}) -> {kind_dir / periodic_name(trainer.step)}", file=sys.stderr)
            if saved_at != trainer.step and writer:
                checkpoint = save_state(trainer, kind_dir, periodic=False)
    finally:
        bar.close()
        if log is not None:
            log.close()
    interrupted = stop.is_set() and trainer.step < cfg.steps
    return RunResult(trainer.step, last_loss, interrupted, checkpoint)
