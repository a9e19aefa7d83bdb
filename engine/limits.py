"""Bounds on one task's work: the longest input file it may open and the most new audio it may render.

Both are checked before any sample is read or rendered, from the file's header (`check_input_file`) and the
request's lengths (`check_render`), so a one-hour file or a 500 s extension is refused at once with a reason that
names the limit and the option that raises it (the same option names in `msanii-osc` and `msanii-render`).
The Python API is unbounded unless given a `Limits`; the command lines and the OSC server use `Limits()`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

DEFAULT_MAX_INPUT_SECONDS = 600.0  # ten minutes: a whole song or stem with room to spare
DEFAULT_MAX_RENDER_SECONDS = 300.0  # five minutes of new audio per job: a song-length audio2audio or extension
INPUT_OPTION = "--max-input-seconds"
RENDER_OPTION = "--max-render-seconds"
MAX_CHANNELS = 2
SAMPLE_RATES = (1_000, 384_000)


class LimitError(ValueError):
    """A request over one of the limits; the message names the limit and its option. (A ValueError like the
    engine's other argument errors; not importing engine.render keeps torch out of the OSC server process.)"""


@dataclass(frozen=True)
class AudioHeader:
    path: Path
    frames: int
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def read_header(path: str | Path) -> AudioHeader:
    """The file's length, rate and channels from its header alone (no samples read)."""
    from engine.audio_io import AudioIOError
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioIOError(f"cannot read {path}: {exc}") from None
    if not SAMPLE_RATES[0] <= info.samplerate <= SAMPLE_RATES[1]:
        raise AudioIOError(f"{path} has a sample rate of {info.samplerate} Hz; supported: "
                             f"{SAMPLE_RATES[0]}..{SAMPLE_RATES[1]} Hz")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioIOError(f"{path} has {info.channels} channels; only mono and stereo are supported")
    return AudioHeader(path, int(info.frames), int(info.samplerate), int(info.channels))


@dataclass(frozen=True)
class Limits:
    """None = unbounded. `max_input_seconds`: the longest file a task opens; `max_render_seconds`: the most new
    audio one task renders (generate/loop length, audio2audio's file or regions, inpaint's regions, outpaint's
    left + right, interpolate's output)."""
    max_input_seconds: float | None = DEFAULT_MAX_INPUT_SECONDS
    max_render_seconds: float | None = DEFAULT_MAX_RENDER_SECONDS

    def __post_init__(self) -> None:
        for name in ("max_input_seconds", "max_render_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 (or None for no limit), got {value}")

    def check_input(self, seconds: float, path: object) -> None:
        if self.max_input_seconds is not None and seconds > self.max_input_seconds:
            raise LimitError(f"{path} is {seconds:.1f} s long; inputs may be at most {self.max_input_seconds:g} s "
                             f"({INPUT_OPTION})")

    def check_input_file(self, path: str | Path) -> AudioHeader:
        header = read_header(path)
        self.check_input(header.seconds, header.path)
        return header

    def check_render(self, seconds: float, what: str) -> None:
        if self.max_render_seconds is not None and seconds > self.max_render_seconds:
            raise LimitError(f"{what} would render {seconds:.1f} s of new audio; one job may render at most "
                             f"{self.max_render_seconds:g} s ({RENDER_OPTION})")


UNBOUNDED = Limits(None, None)
