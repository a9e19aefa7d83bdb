"""Writing a finished job's file: a fresh server-made name, temp file + atomic rename, never over a file.

Runs in the server process only, also for worker renders: a dying worker cannot leave a partial file and names
cannot race between workers. A render holding NaN or infinite samples is refused here whatever task or writer
made it (engine.finite), so it is never written nor reported done.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bridge.paths import PathPolicy
from bridge.settings import RenderSettings
from engine.finite import check_output
from engine.serving.jobs import Job

EXTENSIONS = {"wav": "wav", "flac": "flac", "ogg": "ogg"}


def write_job_output(paths: PathPolicy, write_audio: Callable[..., Any], job: Job, result: Any,
                     settings: RenderSettings, directory: Path) -> tuple[Path, dict]:
    """Write `result` (a RenderResult, or an edit that writes its own native samples) for `job` into
    `directory`; returns the file's resolved path and the render's info with its `output_seconds`."""
    job.check_cancelled()
    check_output(result.audio)
    native = callable(getattr(result, "write", None))  # an edit of the user's file: keep its samples as they are
    container = (getattr(result, "format", "WAV") if native else (settings.format or "wav")).lower()
    for _ in range(8):
        path = paths.output_path(job.id, EXTENSIONS.get(container, container), directory=directory)
        try:
            if native:
                written = result.write(path, overwrite=False)
            else:
                written = write_audio(path, result.audio, result.sample_rate, format=container,
                                      bit_depth=settings.bit_depth, overwrite=False)
        except FileExistsError:  # another writer took the name between our check and the rename
            continue
        info = {**result.info, "output_seconds": result.audio.shape[-1] / result.sample_rate}
        return Path(written.path).resolve(), info
    raise RuntimeError("could not find a free output name")
