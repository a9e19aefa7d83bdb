"""A folder of audio files as random stereo crops at 44.1 kHz (the trainer's data source).

Every supported file below `root` (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF; read with soundfile) is decoded once,
resampled with soxr to `sample_rate`, mapped to `channels` (mono is duplicated, extra channels are dropped) and kept
in memory as int16 (half the RAM of float32; 16 bits is what the FluidSynth corpus and most sources hold anyway).
Files louder than full scale keep a per-file scale so nothing clips.

`sample_crop(rng)` draws a file with probability proportional to its length (so every second of audio is equally
likely, and a 3-minute song is not drawn as often as a 2-second sample; `oversample` multiplies the length of the files
whose names match a glob, e.g. {"m21-*": 2} draws make-corpus's music21 works twice as often per second), then a
uniform crop inside it; crops whose RMS level is below `silence_db` are drawn again. The RNG is passed in, never
global, so the trainer can seed it from (seed, step) and resume bit-exactly.
"""
from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from engine.beat_grid import beat_features, grid_positions
from training.data.beats import read_sidecar
from training.data.errors import DataError, DataWarning

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})
_INT16_SCALE = 32767.0
_LEVEL_BLOCK = 1024  # samples per block of the energy table used to judge crop levels


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


def find_audio_files(root: Path) -> list[Path]:
    """All files below `root` with a supported audio extension, sorted so that file indices are reproducible."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not p.name.startswith("."))


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dBFS over all channels and samples of `audio` (any shape); -inf for digital silence."""
    if audio.size == 0:
        return -math.inf
    mean_square = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10.0 * math.log10(mean_square) if mean_square > 0.0 else -math.inf


def load_audio(path: Path, sample_rate: int = 44_100, channels: int = 2) -> np.ndarray:
    """Decode `path`, resample to `sample_rate` and map to `channels`. Returns float32 [channels, samples].

    Raises DataError naming the file when it cannot be decoded or holds no samples.
    """
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # [samples, file_channels]
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError depending on the damage
        raise DataError(f"{path}: cannot decode audio ({exc})") from exc
    if data.shape[0] == 0:
        raise DataError(f"{path}: file contains no audio samples")
    if not np.all(np.isfinite(data)):
        raise DataError(f"{path}: file contains NaN or infinite samples")
    if file_rate != sample_rate:
        data = soxr.resample(data, file_rate, sample_rate, quality="HQ")
    if data.shape[1] == channels:
        mapped = data
    elif data.shape[1] == 1:
        mapped = np.repeat(data, channels, axis=1)  # mono -> centred stereo
    elif channels == 1:
        mapped = data.mean(axis=1, keepdims=True)
    else:
        mapped = data[:, :channels]  # surround: first channels are front left/right in WAV order
    return np.ascontiguousarray(mapped.T, dtype=np.float32)


class AudioFolderDataset:
    """Random fixed-length crops from every audio file below `root`.

    Args:
        root: folder searched recursively for audio files.
        crop_samples: length of each crop at `sample_rate`. Files shorter than this are zero-padded at the end.
        sample_rate: target rate (soxr resampling from any source rate).
        channels: output channels (2: mono files are duplicated to both sides).
        silence_db: crops whose RMS level is below this are re-drawn (up to `max_draws` times, then the loudest
            candidate is returned; -inf turns the check off). Files with no second of audio above it are skipped
            with a DataWarning.
        max_draws: how many crops to try before giving up on finding a non-silent one.

    Raises:
        DataError: `root` is missing or not a folder, holds no audio files, or no file could be used; the message
            lists what was wrong with each file.
    """

    def __init__(self, root: str | Path, crop_samples: int, sample_rate: int = 44_100, channels: int = 2,
                 silence_db: float = -60.0, max_draws: int = 256, oversample: Mapping[str, float] | None = None
                 ) -> None:
        if crop_samples <= 0:
            raise ValueError(f"crop_samples must be positive, got {crop_samples}")
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.root = Path(root)
        self.crop_samples = int(crop_samples)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.silence_db = float(silence_db)
        self.max_draws = int(max_draws)
        if not self.root.exists():
            raise DataError(f"data folder {self.root} does not exist")
        if not self.root.is_dir():
            raise DataError(f"data path {self.root} is not a folder")
        if (self.root / "corpus.json").is_file() and (self.root / "heldout").is_dir():
            raise DataError(f"{self.root} is a corpus folder (see its corpus.json): train on {self.root / 'train'}; "
                            f"its heldout/ split is kept for evaluation and must not be trained on")
        candidates = find_audio_files(self.root)
        if not candidates:
            raise DataError(f"data folder {self.root} contains no audio files "
                            f"(looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")

        self.files: list[Path] = []
        self.skipped: list[SkippedFile] = []
        self._beats: list[tuple[np.ndarray, np.ndarray] | None] = []  # (beat, downbeat seconds) from sidecars
        self._audio: list[np.ndarray] = []  # int16 [channels, samples]
        self._scale: list[float] = []  # multiply int16 by this to get float audio
        for path in candidates:
            try:
                audio = load_audio(path, self.sample_rate, self.channels)
            except DataError as exc:
                self._skip(path, str(exc))
                continue
            if self._loudest_window_db(audio) < self.silence_db:
                self._skip(path, f"{path}: silent (no second of audio above {self.silence_db:g} dBFS)")
                continue
            peak = float(np.max(np.abs(audio)))
            scale = max(peak, 1.0) / _INT16_SCALE
            self._audio.append(np.round(audio / scale).astype(np.int16))
            self._scale.append(scale)
            self.files.append(path)
            self._beats.append(self._read_beats(path))
        if not self.files:
            reasons = "\n  ".join(s.reason for s in self.skipped)
            raise DataError(f"no usable audio in {self.root}; every file was rejected:\n  {reasons}")

        self._energy_sums = [self._block_energy_sums(a, s) for a, s in zip(self._audio, self._scale)]
        lengths = np.array([a.shape[1] for a in self._audio], dtype=np.float64)
        self.oversample = dict(oversample or {})
        self.draw_factors = self._draw_factors(self.oversample)
        self._weights = lengths * self.draw_factors / (lengths * self.draw_factors).sum()
        self.total_samples = int(lengths.sum())

    def _draw_factors(self, oversample: dict[str, float]) -> np.ndarray:
        """Per file: the factor of the first glob in `oversample` its name matches, else 1 (DataError for a factor
        that is not a positive number or a glob that matches no file: a typo would silently train on the old mix)."""
        factors = np.ones(len(self.files))
        unmatched = []
        for pattern, factor in reversed(list(oversample.items())):  # reversed: the first matching glob wins
            if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
                raise DataError(f"oversample {pattern}={factor!r}: the factor must be a positive number")
            hits = np.array([fnmatch.fnmatch(p.name, pattern) for p in self.files], dtype=bool)
            if not hits.any():
                unmatched.append(pattern)
            factors[hits] = factor
        if unmatched:
            raise DataError(f"oversample: no file in {self.root} matches {', '.join(map(repr, unmatched))}")
        return factors

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append(SkippedFile(path, reason))
        warnings.warn(f"skipping {reason}", DataWarning, stacklevel=3)

    def _read_beats(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            return read_sidecar(path)
        except DataError as exc:  # the audio is still usable, without a beat grid
            warnings.warn(f"ignoring {exc}", DataWarning, stacklevel=3)
            return None

    @property
    def files_with_beats(self) -> int:
        """How many files carry a beat sidecar (training.data.beats)."""
        return sum(b is not None for b in self._beats)

    def tempo_summary(self) -> dict | None:
        """Tempos of the files with beat grids: {"min", "median", "max"} in BPM (each file's median beat interval;
        the median weighted by duration) and "pieces", each file's [BPM, beats per bar, seconds] (the bundle's tempo
        prior, engine.beat_grid.BeatSettings), or None when no file has one."""
        pieces = []
        for grid, audio in zip(self._beats, self._audio):
            if grid is not None:
                beat = float(np.median(np.diff(grid[0])))
                per_bar = round(float(np.median(np.diff(grid[1]))) / beat) if len(grid[1]) >= 2 else 4
                pieces.append([round(60.0 / beat, 2), min(max(per_bar, 1), 64),
                               round(audio.shape[1] / self.sample_rate, 2)])
        if not pieces:
            return None
        tempos = np.array([p[0] for p in pieces])
        order = np.argsort(tempos)
        cumulative = np.cumsum(np.array([p[2] for p in pieces])[order])
        median = float(tempos[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
        return {"min": float(tempos.min()), "median": round(median, 2), "max": float(tempos.max()), "pieces": pieces}

    @staticmethod
    def _block_energy_sums(audio: np.ndarray, scale: float) -> np.ndarray:
        """Prefix sums of the mean square of each _LEVEL_BLOCK-sample block (the last block may be partial)."""
        blocks = -(-audio.shape[1] // _LEVEL_BLOCK)
        padded = np.zeros((audio.shape[0], blocks * _LEVEL_BLOCK), dtype=np.float64)
        padded[:, : audio.shape[1]] = audio * scale
        energy = np.square(padded).reshape(audio.shape[0], blocks, _LEVEL_BLOCK).sum(axis=(0, 2))
        counts = np.full(blocks, audio.shape[0] * _LEVEL_BLOCK, dtype=np.float64)
        counts[-1] = audio.shape[0] * (audio.shape[1] - (blocks - 1) * _LEVEL_BLOCK)
        return np.concatenate([[0.0], np.cumsum(energy / counts)])

    def _loudest_window_db(self, audio: np.ndarray) -> float:
        window = min(self.sample_rate, audio.shape[1])
        usable = audio.shape[1] // window * window
        frames = audio[:, :usable].reshape(audio.shape[0], -1, window)
        mean_square = np.mean(np.square(frames, dtype=np.float64), axis=(0, 2))
        loudest = float(mean_square.max())
        return 10.0 * math.log10(loudest) if loudest > 0.0 else -math.inf

    def __len__(self) -> int:
        return len(self.files)

    @property
    def seconds(self) -> float:
        """Total duration of the usable audio at `sample_rate`."""
        return self.total_samples / self.sample_rate

    @property
    def memory_bytes(self) -> int:
        """RAM held by the decoded audio (int16: 4 bytes per stereo sample frame)."""
        return sum(a.nbytes for a in self._audio)

    def audio(self, index: int) -> torch.Tensor:
        """The whole decoded file `index` as float32 [channels, samples] (e.g. for held-out evaluation)."""
        return torch.from_numpy(self._audio[index].astype(np.float32) * np.float32(self._scale[index]))

    def crop(self, index: int, start: int) -> torch.Tensor:
        """`crop_samples` samples of file `index` from `start`, zero-padded past the end: float32 [channels, crop]."""
        source = self._audio[index]
        piece = source[:, start:start + self.crop_samples].astype(np.float32) * np.float32(self._scale[index])
        if piece.shape[1] < self.crop_samples:
            piece = np.pad(piece, ((0, 0), (0, self.crop_samples - piece.shape[1])))
        return torch.from_numpy(piece)

    def _crop_level_db(self, index: int, start: int) -> float:
        """RMS level of a crop from block energies (O(1); exact up to block rounding at the edges)."""
        sums, length = self._energy_sums[index], self._audio[index].shape[1]
        stop = min(start + self.crop_samples, length)
        first, last = start // _LEVEL_BLOCK, max(start // _LEVEL_BLOCK + 1, -(-stop // _LEVEL_BLOCK))
        mean_square = (sums[last] - sums[first]) / (last - first) * (stop - start) / self.crop_samples
        return 10.0 * math.log10(mean_square) if mean_square > 0.0 else -math.inf

    def _draw_location(self, rng: np.random.Generator) -> tuple[int, int]:
        best, best_db = (0, 0), -math.inf
        for _ in range(self.max_draws):
            index = int(rng.choice(len(self._audio), p=self._weights))
            spare = self._audio[index].shape[1] - self.crop_samples
            start = int(rng.integers(0, spare + 1)) if spare > 0 else 0
            level = self._crop_level_db(index, start)
            if level >= self.silence_db:
                return index, start
            if level > best_db or best_db == -math.inf:
                best, best_db = (index, start), level
        return best

    def sample_crop(self, rng: np.random.Generator) -> torch.Tensor:
        """A random non-silent crop, float32 [channels, crop_samples]; deterministic for a given `rng` state.

        Crops below `silence_db` are re-drawn up to `max_draws` times (cheap: levels come from precomputed block
        energies); if none passes, the loudest candidate is returned.
        """
        return self.crop(*self._draw_location(rng))

    def sample_crop_with_grid(self, rng: np.random.Generator, frames: int, hop_length: int
                              ) -> tuple[torch.Tensor, np.ndarray | None]:
        """`sample_crop` (the same draws) plus the crop's beat features [BEAT_FEATURES, frames] (engine.beat_grid)
        for frames `hop_length` samples apart from the crop's start, or None when its file has no beat sidecar."""
        index, start = self._draw_location(rng)
        grid = self._beats[index]
        features = None
        if grid is not None:
            times = (start + np.arange(frames) * hop_length) / self.sample_rate
            features = beat_features(*grid_positions(times, *grid))
        return self.crop(index, start), features

    def describe(self) -> str:
        """One line for logs and checkpoint metadata."""
        text = (f"{len(self.files)} files, {self.seconds / 3600:.2f} h at {self.sample_rate} Hz, "
                f"{self.channels} ch, {len(self.skipped)} skipped, {self.files_with_beats} with beat grids, from {self.root}")
        if self.oversample:
            shares = ", ".join(f"{pattern}={factor:g} ({self._share(pattern):.0%} of draws)"
                               for pattern, factor in self.oversample.items())
            text += f"; oversampled: {shares}"
        return text

    def _share(self, pattern: str) -> float:
        """The share of crop draws that fall on files matching `pattern`."""
        return float(sum(w for p, w in zip(self.files, self._weights) if fnmatch.fnmatch(p.name, pattern)))
