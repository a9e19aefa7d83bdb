"""The real audio a model is judged against, and gates calibrated on it.

The issue's gates hold each generated figure to the held-out set's half-vs-half spread. With the 10-clip held-out
split of the piano corpus that test fails real music most of the time: 12 real clips drawn from a larger pool of
never-trained pieces fail at least one gate against 10 others in 93-95 % of draws (the bands alone in 77-80 %),
so a pass or fail says little about a model (bench/RESULTS.md, 2026-12-07). Two fixes, both measured here:

- A larger reference: every folder given (the corpus's held-out split, and e.g. a corpus rendered with another
  seed, `msanii-train make-corpus data/piano-s1 --seed 1`), one clip from the middle of each file, minus the pieces
  the model trained on (`training_corpus`: the same MIDI, or another window of the same music21 work).
- Calibrated tolerances: for a generated set of `size` clips, how far `size` real clips drawn from the reference
  land from the rest of it, per measure, at one common quantile chosen so that real sets pass every gate at once
  in `joint` (0.9) of the draws. A model passes when its clips sit where a real set of the same size would.

    calibrated_tolerances(per_clip, size) -> {"tolerance", "quantile", "joint_pass"}
    check_set_size(size, reference_clips) -> the sizes that can be calibrated: at most half the reference
    calibrated_gates(reference, tolerances, generated) -> {gate: passed}
    literal_false_failure(per_clip, held=10, size=12) -> how often real sets fail the issue's gates
    corpus_false_failure(corpus_clips, heldout_clips, size) -> how often the model's own training data fails them
    frechet_null(features, size) -> the Fréchet distances of real sets of that size to the rest
    measure_reference(folders, training_corpus, cfg, seconds) -> the clips measured once, for every judgement below
    judge_against_reference(generated, reference) -> all of it for generated sets (bench.quality_report's section)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from bench.metrics import chroma_movement
from bench.musicality import (BAND_NAMES, _aggregate, balanced_splits, clip_measures, frechet_distance, gate_checks,
                              half_spread, summary_of, window_features)

GATED = ("onset_rate", "beat_clarity", "chroma_entropy", "mel_change", "jump_rate")  # and the bands
ISSUE_GATES = (*GATED, "bands", "flatness_gate")  # the issue's gates among gate_checks' "pass" keys
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def trained_pieces(corpus_json: Path) -> tuple[set[str], set[str]]:
    """(MIDI hashes, music21 works) of the train split of a `make-corpus` listing."""
    listing = json.loads(Path(corpus_json).read_text())
    train = [p for p in listing["pieces"] if p.get("split") == "train"]
    return ({p["midi_sha256"] for p in train if p.get("midi_sha256")},
            {p["work"] for p in train if piece_source(p) == "music21"})


def audio_files(folder: Path) -> list[Path]:
    """The audio files (AUDIO_SUFFIXES) anywhere under `folder`, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def corpus_listing(folder: Path) -> dict[str, dict]:
    """File name -> corpus piece, from the corpus.json in `folder` or its parent ({} when there is none: make-corpus
    writes it at the corpus root, its train/ and heldout/ splits are one level down)."""
    for root in (folder, folder.parent):
        path = root / "corpus.json"
        if path.is_file():
            return {Path(p["wav"]).name: p for p in json.loads(path.read_text())["pieces"]}
    return {}


def piece_source(piece: dict) -> str:
    """'music21' or 'pop': a corpus piece's source (make-corpus lists music21 windows as "music21:<work path>")."""
    return "music21" if str(piece.get("source", "")).startswith("music21:") else "pop"


def sources_of(files: list[Path]) -> list[str]:
    """piece_source of each audio file, by the corpus.json beside it (pop when unlisted); each folder's listing is
    read once."""
    listings: dict[Path, dict[str, dict]] = {}
    out = []
    for path in map(Path, files):
        if path.parent not in listings:
            listings[path.parent] = corpus_listing(path.parent)
        out.append(piece_source(listings[path.parent].get(path.name, {})))
    return out


def reference_files(folders: list[Path], training_corpus: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(kept, excluded) audio files of `folders`, sorted per folder; excluded: pieces of `training_corpus`'s train
    split (same MIDI, or a window of the same music21 work). A folder without files is an error; a file in two of
    the folders counts once."""
    hashes, works = trained_pieces(training_corpus) if training_corpus else (set(), set())
    kept, excluded, seen = [], [], set()
    for folder in map(Path, folders):
        files = audio_files(folder)
        if not files:
            raise SystemExit(f"no reference audio in {folder}")
        listing = corpus_listing(folder)
        for path in files:
            if path.resolve() in seen:  # nested or repeated folders
                continue
            seen.add(path.resolve())
            piece = listing.get(path.name, {})
            trained = piece.get("midi_sha256") in hashes or (
                piece_source(piece) == "music21" and piece.get("work") in works)
            (excluded if trained else kept).append(path)
    return kept, excluded


def stereo_at(path: Path, rate: int) -> np.ndarray:
    """An audio file at `rate` as [2, samples] float32 (mono doubled, channels past two dropped)."""
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    if sr != rate:
        audio = soxr.resample(audio, sr, rate)
    return (audio.T if audio.shape[1] > 1 else np.repeat(audio.T, 2, 0))[:2]


def middle_clip(path: Path, seconds: float, rate: int) -> np.ndarray | None:
    """`seconds` from the middle of an audio file at `rate`, [2, samples] float32; None when the file is shorter."""
    audio = stereo_at(path, rate)
    n = int(seconds * rate)
    start = max(0, (audio.shape[1] - n) // 2)
    clip = audio[:, start:start + n]
    return np.ascontiguousarray(clip) if clip.shape[1] == n else None


def middle_clip_measures(paths, cfg, seconds: float) -> list[dict]:
    """clip_measures of one clip of `seconds` from the middle of each file of `paths` (shorter files skipped)."""
    clips = (middle_clip(path, seconds, cfg.sample_rate) for path in paths)
    return [clip_measures(clip, cfg) for clip in clips if clip is not None]


@dataclass(frozen=True)
class Reference:
    """The reference clips measured once (measure_reference), for every judgement made against them: the
    calibrated gates and Fréchet distances (judge_against_reference) and the split by style (bench.by_style).
    Per clip, in the same order: its file's corpus source, clip_measures with chroma_movement, window_features."""
    folders: tuple[Path, ...]
    training_corpus: Path | None
    excluded: int  # files left out as pieces of training_corpus's train split
    sources: tuple[str, ...]
    per_clip: tuple[dict, ...]
    features: tuple[np.ndarray, ...]


def measure_reference(folders: list[Path], training_corpus: Path | None, cfg, seconds: float) -> Reference:
    """One clip of `seconds` from the middle of each reference file (reference_files; files shorter than that are
    skipped), measured; the clips themselves are not kept (103 stereo 10 s clips would hold 360 MB)."""
    files, excluded = reference_files(folders, training_corpus)
    sources, per_clip, features = [], [], []
    for path, source in zip(files, sources_of(files)):
        clip = middle_clip(path, seconds, cfg.sample_rate)
        if clip is None:
            continue
        sources.append(source)
        per_clip.append({**clip_measures(clip, cfg), "chroma_movement": chroma_movement(clip, cfg)})
        features.append(window_features(clip, cfg))
    return Reference(tuple(map(Path, folders)), Path(training_corpus) if training_corpus else None, len(excluded),
                     tuple(sources), tuple(per_clip), tuple(features))


def _figures(per_clip: list[dict]) -> np.ndarray:
    """The gated figures of a set, as one vector: GATED, then the octave bands."""
    values = [_aggregate(key, np.array([m[key] for m in per_clip], dtype=np.float64)) for key in GATED]
    return np.concatenate([values, _aggregate("bands_db", np.array([m["bands_db"] for m in per_clip]))])


def largest_judged_set(reference_clips: int) -> int:
    """The most generated clips the calibrated gates can judge against `reference_clips` real ones: each drawn real
    set of that size is compared with the rest, which must be at least as large (96 of 103 clips against the other
    7 gave tolerances twice the 48-clip ones, and a gate nothing fails)."""
    return reference_clips // 2


def check_set_size(size: int, reference_clips: int) -> None:
    """ValueError unless a set of `size` clips can be calibrated on `reference_clips` (largest_judged_set)."""
    if not 0 < size <= largest_judged_set(reference_clips):
        raise ValueError(f"{size} clips need a reference of at least {2 * size} clips (each drawn real set is "
                         f"judged against the rest), got {reference_clips}; judge the seeds in sets of at most "
                         f"{largest_judged_set(reference_clips)}")


def calibrated_tolerances(per_clip: list[dict], size: int, joint: float = 0.9, draws: int = 2000,
                          seed: int = 0) -> dict:
    """Tolerances for a set of `size` clips against the reference's per-clip measures (clip_measures): the gap
    between `size` random reference clips and the others, per gated figure, at the lowest quantile (of a fine grid)
    at which the drawn real sets pass all gates together in at least `joint` of the draws."""
    check_set_size(size, len(per_clip))
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(draws):
        order = rng.permutation(len(per_clip))
        drawn, rest = [per_clip[i] for i in order[:size]], [per_clip[i] for i in order[size:]]
        gaps.append(np.abs(_figures(drawn) - _figures(rest)))
    gaps = np.array(gaps)
    for quantile in np.arange(0.5, 1.0, 0.0025):
        tolerance = np.quantile(gaps, quantile, axis=0)
        passing = float((gaps <= tolerance).all(axis=1).mean())
        if passing >= joint:
            break
    n = len(GATED)
    return {"tolerance": {**dict(zip(GATED, tolerance[:n].tolist())), "bands_db": tolerance[n:]},
            "quantile": float(quantile), "joint_pass": passing, "size": size, "reference_clips": len(per_clip)}


def calibrated_gates(reference: list[dict], tolerances: dict, generated: list[dict]) -> dict:
    """Each gated figure of `generated` against the reference's (per-clip measures both), with its calibrated
    tolerance: {key: {"value", "real", "tolerance", "passed"}}, "bands": per band, and "passed" (all)."""
    real, other, tol = _figures(reference), _figures(generated), tolerances["tolerance"]
    limits = np.concatenate([[tol[k] for k in GATED], tol["bands_db"]])
    ok = np.abs(other - real) <= limits
    out = {key: {"value": float(other[i]), "real": float(real[i]), "tolerance": float(limits[i]),
                 "passed": bool(ok[i])} for i, key in enumerate(GATED)}
    n = len(GATED)
    out["bands"] = {band: {"gap_db": float(other[n + i] - real[n + i]), "tolerance": float(limits[n + i]),
                           "passed": bool(ok[n + i])} for i, band in enumerate(BAND_NAMES)}
    out["passed"] = bool(ok.all())
    return out


def frechet_null(features: list[np.ndarray], size: int, draws: int = 200, seed: int = 0) -> np.ndarray:
    """Fréchet distances (bench.musicality.frechet_distance) between `size` reference clips and the others, `draws`
    times: what a real set of that size scores against the reference. `features`: each clip's window features."""
    check_set_size(size, len(features))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        order = rng.permutation(len(features))
        out.append(frechet_distance(np.concatenate([features[i] for i in order[:size]]),
                                    np.concatenate([features[i] for i in order[size:]])))
    return np.array(out)


def failed_issue_gates(passes: dict) -> list[str]:
    """The issue's gates a gate_checks verdict ("pass") fails, in ISSUE_GATES order."""
    return [key for key in ISSUE_GATES if not passes[key]]


def issue_gate_failures(judgements) -> dict:
    """Share of (held-out summary, its half-vs-half spread, judged per-clip measures) judgements in which the judged
    set fails each of the issue's gates (bench.musicality.gate_checks), and any."""
    counts: dict[str, int] = {}
    draws = 0
    for heldout, spread, judged_clips in judgements:
        draws += 1
        failed = failed_issue_gates(gate_checks(heldout, spread, summary_of(judged_clips))["pass"])
        for key in failed + (["any"] if failed else []):
            counts[key] = counts.get(key, 0) + 1
    return {key: counts.get(key, 0) / max(draws, 1) for key in (*ISSUE_GATES, "any")}


def literal_false_failure(per_clip: list[dict], held: int = 10, size: int = 12, draws: int = 300,
                          seed: int = 0) -> dict:
    """How often real music fails the issue's gates (bench.musicality.gate_checks with the half-vs-half spread of
    `held` clips): `size` reference clips judged against `held` others, `draws` times. Share failing each gate,
    and any."""
    if held + size > len(per_clip):
        raise ValueError(f"{held} + {size} clips needed, the reference has {len(per_clip)}")
    rng = np.random.default_rng(seed)
    masks = balanced_splits(held)

    def judgements():
        for _ in range(draws):
            order = rng.permutation(len(per_clip))
            heldout = summary_of([per_clip[i] for i in order[:held]])
            yield heldout, half_spread(heldout, masks), [per_clip[i] for i in order[held:held + size]]

    return issue_gate_failures(judgements())


def training_files(corpus_json: Path) -> list[Path]:
    """The audio files of the train split of a `make-corpus` listing (its paths are relative to its folder); a
    listed file that is missing is an error."""
    listing = json.loads(Path(corpus_json).read_text())
    files = [Path(corpus_json).parent / p["wav"] for p in listing["pieces"] if p.get("split") == "train"]
    missing = [f for f in files if not f.is_file()]
    if missing or not files:
        raise SystemExit(f"{corpus_json}: " + (f"{len(missing)} train files missing, e.g. {missing[0]}" if missing
                                                 else "no train pieces listed"))
    return files


def corpus_false_failure(corpus_clips: list[dict], heldout_clips: list[dict], size: int, draws: int = 500,
                         seed: int = 0) -> dict:
    """The issue's gates on the model's own training data: `size` clips drawn from `corpus_clips` (per-clip
    measures of the train split) judged against the fixed held-out clips, `draws` times: what a model that
    reproduced its corpus exactly would fail. Shares as literal_false_failure's, plus "corpus_clips" (how many) and
    "whole": the whole corpus's figures and the gates it fails as one set."""
    if size > len(corpus_clips):
        raise ValueError(f"{size} clips to draw, the training corpus has {len(corpus_clips)}")
    rng = np.random.default_rng(seed)
    heldout = summary_of(heldout_clips)  # fixed: summarised and spread once for every draw
    spread = half_spread(heldout)
    out = issue_gate_failures((heldout, spread, [corpus_clips[i] for i in
                                                 rng.choice(len(corpus_clips), size, replace=False)])
                              for _ in range(draws))
    whole = gate_checks(heldout, spread, summary_of(corpus_clips))
    out["corpus_clips"] = len(corpus_clips)
    out["whole"] = {"figures": {k: whole["measures"][k]["value"] for k in GATED},
                    "heldout": {k: whole["measures"][k]["real"] for k in GATED},
                    "failed": failed_issue_gates(whole["pass"])}
    return out


def judge_against_reference(generated: dict[str, dict], reference: Reference, held: int = 10) -> dict:
    """Generated sets (name -> bench.musicality.set_summary, all of one size) against the measured `reference`:
    the calibrated gates, the Fréchet distance to the whole reference beside real sets' (frechet_null), and how
    often real sets fail the issue's gates with a held-out set of `held` clips."""
    per_clip, features = list(reference.per_clip), list(reference.features)
    size = len(next(iter(generated.values()))["clips"])
    tolerances = calibrated_tolerances(per_clip, size)
    null = frechet_null(features, size)
    everything = np.concatenate(features)
    out = {"folders": [str(f) for f in reference.folders],
           "training_corpus": str(reference.training_corpus) if reference.training_corpus else None,
           "reference_clips": len(per_clip), "excluded": reference.excluded, "tolerances": tolerances, "held": held,
           "gates": {name: calibrated_gates(per_clip, tolerances, g["clips"]) for name, g in generated.items()},
           "frechet": {name: frechet_distance(g["features"], everything) for name, g in generated.items()},
           "frechet_real": {"median": float(np.median(null)), "p90": float(np.quantile(null, 0.9))}}
    if held + size <= len(per_clip):
        out["literal_false_failure"] = literal_false_failure(per_clip, held=held, size=size)
    return out
