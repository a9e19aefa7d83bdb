"""How every task ends: one info dict layout, one result type for edits, one optional write (the seam measure
they report is engine.boundary.seam_report).

Each task fills in what only it knows; `finish_edit` / `task_info` add what all of them report (task, seed, the
sampler settings, wall time, device, bundle), so a new field or a renamed one changes here only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.audio_io import WriteResult, samples_to_float, write_native
from engine.render import RenderResult

if TYPE_CHECKING:
    from engine.api import Engine
    from engine.masked_sampling import MaskedConfig


@dataclass
class EditResult(RenderResult):
    """A render that is an edited copy of a user's file. `samples` [frames, channels] are in the container type
    of `subtype`; `write` stores them untouched, so unedited audio stays bit-identical to the input file."""
    samples: np.ndarray | None = None
    format: str = "WAV"
    subtype: str = "FLOAT"

    def write(self, path: str | Path, overwrite: bool = False) -> WriteResult:
        dest = write_native(path, self.samples, self.sample_rate, self.format, self.subtype, overwrite)
        peak = float(np.abs(self.audio).max(initial=0.0))
        return WriteResult(dest, False, peak, 0.0, self.format, self.subtype, self.sample_rate)


def make_result(samples: np.ndarray, rate: int, fmt: str, subtype: str, info: dict) -> EditResult:
    return EditResult(audio=samples_to_float(samples).T.copy(), sample_rate=rate, info=info, samples=samples,
                      format=fmt, subtype=subtype)


def masked_settings(config: "MaskedConfig", gl_iters: int) -> dict:
    """The sampler settings a masked-sampling task reports."""
    return {"sampler": config.sampler, "steps": config.steps, "jumps": config.jumps, "gl_iters": gl_iters}


def task_info(engine: "Engine", task: str, seed: int, started: float, fields: dict) -> dict:
    """`fields` between what every task reports first (task, seed) and last (wall time, device, bundle)."""
    return {"task": task, "seed": seed, **fields, "total_s": time.perf_counter() - started,
            "device": engine.device, "bundle": engine.name}


def finish_edit(engine: "Engine", task: str, seed: int, started: float, samples: np.ndarray, rate: int, fmt: str,
                subtype: str, fields: dict, output: str | Path | None = None, overwrite: bool = False
                ) -> EditResult:
    """The edit's result with the shared info, written to `output` when given."""
    result = make_result(samples, rate, fmt, subtype, task_info(engine, task, seed, started, fields))
    if output is not None:
        result.write(output, overwrite)
    return result
