"""Render MIDI to 44.1 kHz stereo WAV with the FluidSynth program and a General MIDI soundfont.

This is the paper's POP909 route (section 4.1): MIDI files rendered by FluidSynth. We drive the `fluidsynth` command
line (`-ni -F`: no shell, no MIDI input, fast offline render) so no Python binding is needed; it renders float
samples, which we peak-normalise (no clipping, consistent level across a corpus) and write as 16-bit WAV through a
temporary name and a rename, so a crash never leaves a half-written file and an existing file is never replaced
unless `overwrite=True`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mido
import numpy as np
import soundfile as sf

from training.data.errors import DataError

MIDI_EXTENSIONS = frozenset({".mid", ".midi", ".smf", ".kar"})
DRUM_CHANNEL = 9  # MIDI channel 10, percussion in General MIDI
SOUNDFONT_ENV = "MSANII_SOUNDFONT"
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian/Ubuntu fluid-soundfont-gm
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",  # musescore-general-soundfont
    "/usr/share/sounds/sf2/TimGM6mb.sf2",  # timgm6mb-soundfont
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Fedora, Arch
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
_SILENCE_PEAK = 1e-3  # -60 dBFS: a render quieter than this means the soundfont or the file produced nothing
_TAIL_FLOOR = 1e-4  # trailing samples below -80 dBFS are trimmed (FluidSynth renders long reverb/release tails)


@dataclass(frozen=True)
class RenderedMidi:
    midi: Path
    wav: Path
    seconds: float
    peak_db: float  # before normalisation
    render_seconds: float


@dataclass(frozen=True)
class MidiFailure:
    midi: Path
    error: str


@dataclass
class MidiFolderReport:
    rendered: list[RenderedMidi] = field(default_factory=list)
    failed: list[MidiFailure] = field(default_factory=list)
    skipped_existing: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.rendered)

    def summary(self) -> str:
        return (f"rendered {len(self.rendered)} file(s), {self.seconds / 60:.1f} min of audio; "
                f"{len(self.skipped_existing)} already present; {len(self.failed)} failed")


def find_soundfont(explicit: str | Path | None = None) -> Path:
    """The soundfont to render with: `explicit`, else $MSANII_SOUNDFONT, else the first installed GM soundfont.

    Raises DataError naming every place looked at and how to install one.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise DataError(f"soundfont {path} does not exist")
        return path
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise DataError(f"soundfont {path} (from ${SOUNDFONT_ENV}) does not exist")
        return path
    searched = list(SOUNDFONT_CANDIDATES) + [str(Path.home() / ".local/share/soundfonts/default.sf2")]
    for candidate in searched:
        if Path(candidate).is_file():
            return Path(candidate).resolve()
    raise DataError("no General MIDI soundfont found; install one (Debian/Ubuntu: `sudo apt install "
                    "fluid-soundfont-gm`) or pass --soundfont FILE / set $MSANII_SOUNDFONT. Looked in: "
                    + ", ".join(searched))


def find_fluidsynth() -> str:
    """Path of the `fluidsynth` program; DataError with install advice when it is missing."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DataError("the `fluidsynth` program is not installed (Debian/Ubuntu: `sudo apt install fluidsynth`, "
                        "macOS: `brew install fluid-synth`)")
    return exe


def fluidsynth_version() -> str:
    out = subprocess.run([find_fluidsynth(), "--version"], capture_output=True, text=True, timeout=30)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else "unknown"


def load_midi(path: str | Path) -> mido.MidiFile:
    """Parse a MIDI file; DataError naming the file if it is unreadable or has no notes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MIDI file {path} does not exist")
    try:
        midi = mido.MidiFile(str(path))
    except Exception as exc:  # mido raises OSError, EOFError, ValueError or KeyError on damaged files
        raise DataError(f"{path}: not a valid MIDI file ({type(exc).__name__}: {exc})") from exc
    if not any(msg.type == "note_on" and msg.velocity > 0 for track in midi.tracks for msg in track):
        raise DataError(f"{path}: MIDI file contains no notes")
    return midi


def override_program(midi: mido.MidiFile, program: int) -> mido.MidiFile:
    """A copy of `midi` where every melodic channel plays GM `program` (0-127); drums (channel 10) are kept."""
    if not 0 <= program <= 127:
        raise DataError(f"program must be a General MIDI program number 0-127, got {program}")
    result = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    used: set[int] = set()
    for track in midi.tracks:
        new_track = mido.MidiTrack()
        for msg in track:
            if msg.type == "program_change" and msg.channel != DRUM_CHANNEL:
                msg = msg.copy(program=program)
            elif msg.type in ("note_on", "note_off") and msg.channel != DRUM_CHANNEL:
                used.add(msg.channel)
            new_track.append(msg)
        result.tracks.append(new_track)
    # Files that never send a program change play program 0; set the choice explicitly at time 0.
    if not result.tracks:
        result.tracks.append(mido.MidiTrack())
    head = [mido.Message("program_change", channel=ch, program=program, time=0) for ch in sorted(used)]
    result.tracks[0][0:0] = head
    return result


def _render_float(midi_path: Path, soundfont: Path, sample_rate: int, gain: float, chorus_level: float,
                  timeout_s: float, workdir: Path) -> tuple[np.ndarray, int]:
    """Run FluidSynth on one file; returns float32 [samples, 2] and the rate it wrote."""
    raw = workdir / "render.wav"
    command = [find_fluidsynth(), "-ni", "-q", "-F", str(raw), "-r", str(sample_rate), "-g", f"{gain:g}",
               "-T", "wav", "-O", "float", "-o", "synth.audio-channels=1",
               "-o", f"synth.chorus.level={chorus_level:g}", str(soundfont), str(midi_path)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise DataError(f"{midi_path}: FluidSynth did not finish within {timeout_s:.0f} s") from exc
    log = (proc.stderr + proc.stdout).strip()
    if proc.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
        detail = log[-600:] if log else f"exit code {proc.returncode}"
        raise DataError(f"{midi_path}: FluidSynth produced no audio ({detail})")
    if "failed to load" in log.lower() or "not a soundfont" in log.lower():
        raise DataError(f"{midi_path}: FluidSynth could not load soundfont {soundfont} ({log[-600:]})")
    audio, rate = sf.read(str(raw), dtype="float32", always_2d=True)
    return audio, rate


def _write_wav_atomically(out_wav: Path, audio: np.ndarray, sample_rate: int, overwrite: bool) -> None:
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_wav.stem}.", suffix=".partial.wav", dir=out_wav.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        sf.write(str(tmp), audio, sample_rate, subtype="PCM_16", format="WAV")
        if overwrite:
            os.replace(tmp, out_wav)
        else:
            try:
                os.link(tmp, out_wav)  # atomic and fails if the name exists: never clobbers
            except FileExistsError as exc:
                raise DataError(f"{out_wav} already exists (pass overwrite=True / --overwrite to replace it)") from exc
            except OSError:  # file systems without hard links: check, then rename (a narrow race, still atomic)
                if out_wav.exists():
                    raise DataError(f"{out_wav} already exists (pass overwrite=True / --overwrite to replace it)")
                os.replace(tmp, out_wav)
    finally:
        tmp.unlink(missing_ok=True)


def render_midi(midi: str | Path, out_wav: str | Path, soundfont: str | Path | None = None,
                program: int | None = None, sample_rate: int = 44_100, gain: float = 0.5,
                normalize_db: float | None = -1.0, chorus_level: float = 0.4,
                overwrite: bool = False) -> RenderedMidi:
    """Render one MIDI file to a 16-bit stereo WAV at `sample_rate` with FluidSynth.

    Args:
        midi: the .mid file.
        out_wav: destination; refused if it exists unless `overwrite`.
        soundfont: .sf2/.sf3 file, default `find_soundfont()`.
        program: GM program 0-127 forced on every melodic channel (drums kept), None keeps the file's instruments.
        gain: FluidSynth master gain (its internal mix level; the float render never clips).
        normalize_db: peak level of the written file in dBFS; None keeps FluidSynth's level (scaled down only if it
            would clip).
        chorus_level: FluidSynth chorus return level. Its default (2.0) makes the chorus output so strong and
            anti-phase that a typical GM mix has negative left/right correlation (it vanishes in mono); 0.4 keeps
            the width of a normal mix (L/R correlation ~0.5 measured on our corpus).

    Raises DataError naming the file for unreadable MIDI, a missing soundfont or FluidSynth, a failed or silent render.
    """
    midi, out_wav = Path(midi), Path(out_wav)
    if out_wav.exists() and not overwrite:
        raise DataError(f"{out_wav} already exists (pass overwrite=True / --overwrite to replace it)")
    font = find_soundfont(soundfont)
    parsed = load_midi(midi)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="msanii-midi-") as tmp:
        workdir = Path(tmp)
        source = midi
        if program is not None:
            source = workdir / "program.mid"
            override_program(parsed, program).save(str(source))
        timeout_s = 120.0 + 2.0 * parsed.length
        audio, rate = _render_float(source, font, sample_rate, gain, chorus_level, timeout_s, workdir)
    if rate != sample_rate or audio.shape[1] != 2:
        raise DataError(f"{midi}: FluidSynth wrote {audio.shape[1]} channel(s) at {rate} Hz, "
                        f"expected stereo at {sample_rate} Hz")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak) or peak < _SILENCE_PEAK:
        raise DataError(f"{midi}: FluidSynth rendered silence (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
                        f"check that soundfont {font} has the instruments the file uses")
    loud = np.flatnonzero(np.max(np.abs(audio), axis=1) > _TAIL_FLOOR)
    audio = audio[: min(audio.shape[0], int(loud[-1]) + 1 + sample_rate // 4)]
    if normalize_db is not None:
        audio = audio * np.float32(10.0 ** (normalize_db / 20.0) / peak)
    elif peak > 1.0:
        audio = audio / np.float32(peak)
    _write_wav_atomically(out_wav, audio, sample_rate, overwrite)
    return RenderedMidi(midi=midi, wav=out_wav, seconds=audio.shape[0] / sample_rate,
                        peak_db=20.0 * float(np.log10(peak)), render_seconds=time.perf_counter() - started)


def find_midi_files(midi_dir: Path) -> list[Path]:
    return sorted(p for p in midi_dir.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_EXTENSIONS
                  and not p.name.startswith("."))


def render_midi_folder(midi_dir: str | Path, out_dir: str | Path, soundfont: str | Path | None = None,
                       program: int | None = None, overwrite: bool = False, jobs: int = 1,
                       progress: Callable[[Path, str], None] | None = None, **render_options) -> MidiFolderReport:
    """Render every MIDI file below `midi_dir` to `out_dir` (same relative paths, .wav).

    A file that fails (corrupt MIDI, silent render, FluidSynth error) is recorded in `report.failed` and the batch
    goes on. Outputs that already exist are left alone and listed in `report.skipped_existing` (so an interrupted
    batch can be re-run), unless `overwrite`. `progress(path, status)` is called after each file.

    Raises DataError only for problems that stop every file: missing folder, no MIDI files, no soundfont/FluidSynth.
    """
    midi_dir, out_dir = Path(midi_dir), Path(out_dir)
    if not midi_dir.is_dir():
        raise DataError(f"MIDI folder {midi_dir} does not exist" if not midi_dir.exists()
                        else f"{midi_dir} is not a folder")
    sources = find_midi_files(midi_dir)
    if not sources:
        raise DataError(f"MIDI folder {midi_dir} contains no MIDI files ({', '.join(sorted(MIDI_EXTENSIONS))})")
    font = find_soundfont(soundfont)
    find_fluidsynth()
    if program is not None and not 0 <= program <= 127:
        raise DataError(f"program must be a General MIDI program number 0-127, got {program}")

    report = MidiFolderReport()
    targets: dict[Path, Path] = {}
    todo: list[tuple[Path, Path]] = []
    for src in sources:
        dst = out_dir / src.relative_to(midi_dir).with_suffix(".wav")
        if dst in targets:
            report.failed.append(MidiFailure(src, f"output {dst} would collide with the render of {targets[dst]}"))
            continue
        targets[dst] = src
        if dst.exists() and not overwrite:
            report.skipped_existing.append(dst)
            continue
        todo.append((src, dst))

    def one(item: tuple[Path, Path]) -> RenderedMidi | MidiFailure:
        src, dst = item
        try:
            return render_midi(src, dst, font, program=program, overwrite=overwrite, **render_options)
        except DataError as exc:
            return MidiFailure(src, str(exc))
        except Exception as exc:  # a batch must survive anything one file does; the error is reported per file
            return MidiFailure(src, f"{src}: {type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # FluidSynth runs as a subprocess: threads suffice
        for (src, _), result in zip(todo, pool.map(one, todo)):
            if isinstance(result, MidiFailure):
                report.failed.append(result)
            else:
                report.rendered.append(result)
            if progress is not None:
                progress(src, "failed" if isinstance(result, MidiFailure) else "rendered")
    return report
