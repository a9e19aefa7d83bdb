"""A reproducible offline training corpus: procedural pop pieces + music21 works, rendered with FluidSynth.

Layout of OUT_DIR:
    train/<id>.wav, heldout/<id>.wav      44.1 kHz stereo 16-bit renders (point the trainer at train/ only)
    midi/train/<id>.mid, midi/heldout/<id>.mid   the MIDI that was rendered
    corpus.json                            pieces, seconds, hours, seed, settings, render time, failures

The held-out split is chosen by a hash of the work id (a music21 work's windows, or one procedural piece), so it does
not depend on the order or size of the corpus, and two windows of the same work never end up on both sides.
The same seed gives byte-identical MIDI (music21 output additionally depends on the music21 version, recorded in the
manifest). Re-running on a folder built with the same settings resumes: pieces whose MIDI and WAV exist are kept.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import soundfile as sf

from training.data.beats import annotate_pieces
from training.data.errors import DataError
from training.data.midi import find_fluidsynth, find_soundfont, fluidsynth_version, render_midi
from training.data.piano_pop import generate_piano_pop_piece
from training.data.procedural import generate_pop_piece, midi_to_bytes

CORPUS_FORMAT = "msanii-daw-corpus"
CORPUS_VERSION = 1
SPLITS = ("train", "heldout")
# "piano" (default): the paper's kind of music, POP909-layout piano arrangements + music21 works on a keyboard.
# "band": procedural pop with bass, pads, leads and a GM drum kit + music21 works on GM ensembles (the v1 corpus).
PALETTES = ("piano", "band")


@dataclass
class PlannedPiece:
    id: str
    work: str  # held-out split is drawn per work
    source: str  # "procedural" or "music21:<corpus path>"
    midi_bytes: bytes
    nominal_seconds: float
    info: dict[str, Any]
    split: str = "train"


@dataclass
class CorpusPlan:
    pieces: list[PlannedPiece] = field(default_factory=list)
    skipped_works: list[dict[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(p.nominal_seconds for p in self.pieces)


def derive_seed(seed: int, *labels: object) -> int:
    """A 63-bit seed for one item, stable across runs and platforms (no Python `hash`)."""
    text = "/".join([str(seed), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def heldout_score(work: str) -> float:
    """A uniform number in [0, 1) from the work id; works below the held-out fraction are held out."""
    return int.from_bytes(hashlib.sha256(f"split/{work}".encode()).digest()[:8], "big") / 2.0 ** 64


def assign_splits(pieces: list[PlannedPiece], heldout_fraction: float) -> None:
    """Split by work hash; if that leaves a side empty (tiny corpora), move the single best-scoring work over."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise DataError(f"held-out fraction must be in [0, 1), got {heldout_fraction}")
    works = sorted({p.work for p in pieces}, key=heldout_score)
    heldout = {w for w in works if heldout_score(w) < heldout_fraction}
    if heldout_fraction > 0 and not heldout and len(works) >= 2:
        heldout = {works[0]}
    if len(heldout) == len(works) and len(works) >= 2:
        heldout.discard(works[-1])
    for piece in pieces:
        piece.split = "heldout" if piece.work in heldout else "train"


# How music21 works are drawn: "works", a seeded shuffle of all candidate works (the default corpus' draw), or
# "composers", the same shuffle dealt round-robin over the collections, so that no collection fills the music21 part
# by the luck of the draw (seed 0's "works" draw put 7 Monteverdi madrigals among 18 training works: bench/RESULTS.md,
# "Where the chroma shortfall lies").
MUSIC21_DRAWS = ("works", "composers")


def composer_order(works: list[str], rng: random.Random) -> list[str]:
    """`works` (corpus paths, "<collection>/...") dealt round-robin over their collections in an order `rng`
    shuffles, each collection keeping its works' order: the first N come from N collections while any are left."""
    groups: dict[str, list[str]] = {}
    for work in works:
        groups.setdefault(work.split("/", 1)[0], []).append(work)
    names = sorted(groups)
    rng.shuffle(names)
    rounds = max((len(g) for g in groups.values()), default=0)
    return [groups[name][i] for i in range(rounds) for name in names if i < len(groups[name])]


def plan_corpus(minutes: float, seed: int = 0, heldout_fraction: float = 0.1, music21_fraction: float = 0.3,
                min_seconds: float = 20.0, max_seconds: float = 55.0, palette: str = "piano",
                log: Callable[[str], None] = lambda _: None, music21_draw: str = "works") -> CorpusPlan:
    """Generate the MIDI of every piece (no rendering): music21 windows up to `music21_fraction` of the target
    (works drawn as `music21_draw` says), then procedural pop pieces (POP909-layout piano arrangements, or band
    pieces with drums on the "band" palette) until `minutes` of nominal length are reached."""
    _check_palette(palette)
    if music21_draw not in MUSIC21_DRAWS:
        raise DataError(f"unknown music21 draw {music21_draw!r}: use {' or '.join(MUSIC21_DRAWS)}")
    _check_sizes(minutes, heldout_fraction)
    if not 0.0 <= music21_fraction <= 1.0:
        raise DataError(f"music21 fraction must be in [0, 1], got {music21_fraction}")
    target = minutes * 60.0
    plan = CorpusPlan()
    m21_budget = target * music21_fraction
    if m21_budget >= min_seconds:
        try:
            from training.data.music21_source import candidate_works, score_too_large, work_pieces
            import music21  # noqa: F401
        except ImportError as exc:
            raise DataError("the music21 package is needed for the music21 part of the corpus "
                            "(pip install music21, or pass --music21-fraction 0)") from exc

        works = candidate_works()
        random.Random(derive_seed(seed, "music21-order")).shuffle(works)
        if music21_draw == "composers":
            works = composer_order(works, random.Random(derive_seed(seed, "music21-composers")))
        for work in works:
            if plan.seconds >= m21_budget:
                break
            if score_too_large(work):
                plan.skipped_works.append({"work": work, "error": "score too large to parse quickly"})
                continue
            try:
                pieces = work_pieces(work, derive_seed(seed, "music21", work), min_seconds, max_seconds,
                                     palette=palette)
            except Exception as exc:  # music21 raises many types on scores it cannot expand or translate
                plan.skipped_works.append({"work": work, "error": f"{type(exc).__name__}: {exc}"[:300]})
                log(f"  skipped music21 work {work}: {type(exc).__name__}")
                continue
            if not pieces:
                plan.skipped_works.append({"work": work, "error": f"shorter than {min_seconds:g} s"})
            work_id = "m21-" + work.rsplit(".", 1)[0].replace("/", "-").replace(".", "_")
            for midi, info in pieces:
                if plan.seconds >= m21_budget:
                    break
                piece_id = f"{work_id}-w{info['window']}"
                plan.pieces.append(PlannedPiece(piece_id, work_id, f"music21:{work}", midi_to_bytes(midi),
                                                midi.length, info))
                log(f"  planned {piece_id} ({midi.length:.1f} s, {info['ensemble']})")
    index = 0
    while plan.seconds < target - min_seconds / 2:
        piece_seed = derive_seed(seed, "pop", index)
        length = random.Random(piece_seed ^ 0x5EED).uniform(min_seconds + 5.0, max_seconds)
        length = min(length, max(min_seconds, target - plan.seconds))
        pop = (generate_piano_pop_piece if palette == "piano" else generate_pop_piece)(piece_seed, length)
        piece_id = f"pop-{index:05d}"
        plan.pieces.append(PlannedPiece(piece_id, piece_id, "procedural", pop.to_bytes(), pop.seconds, pop.info))
        index += 1
    assign_splits(plan.pieces, heldout_fraction)
    return plan


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _remove_stale_pieces(out_dir: Path, manifest_path: Path, plan: CorpusPlan, log: Callable[[str], None]) -> None:
    """On --overwrite, delete the files of pieces an earlier build listed that the new plan does not have in the
    same split (otherwise a piece that moved to heldout/ would stay in train/ too). Only files named by our own
    corpus.json are touched."""
    try:
        previous = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return
    wanted = {(p.split, p.id) for p in plan.pieces}
    removed = 0
    for entry in previous.get("pieces", []):
        if (entry.get("split"), entry.get("id")) in wanted:
            continue
        for key in ("wav", "midi"):
            relative = entry.get(key)
            if isinstance(relative, str) and not Path(relative).is_absolute() and ".." not in Path(relative).parts:
                target = out_dir / relative
                if target.is_file():
                    target.unlink()
                    removed += 1
    if removed:
        log(f"removed {removed} file(s) of pieces no longer in the corpus")


def build_corpus(out_dir: str | Path, minutes: float = 60.0, seed: int = 0, soundfont: str | Path | None = None,
                 heldout_fraction: float = 0.1, jobs: int = 1, music21_fraction: float = 0.3,
                 overwrite: bool = False, palette: str = "piano",
                 log: Callable[[str], None] | None = None, music21_draw: str = "works") -> dict[str, Any]:
    """Plan, write and render the corpus into `out_dir`; returns (and writes) the corpus.json manifest.

    Pieces that fail to render are listed under "failures" and left out; DataError if nothing could be rendered,
    if FluidSynth or a soundfont is missing, or if `out_dir` holds a corpus built with other settings (unless
    `overwrite`).
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    _check_sizes(minutes, heldout_fraction)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder")
    font = find_soundfont(soundfont)
    find_fluidsynth()
    _check_palette(palette)
    settings = {"minutes": minutes, "seed": seed, "heldout_fraction": heldout_fraction,
                "music21_fraction": music21_fraction, "palette": palette}
    if music21_draw != "works":  # recorded only when set, so corpora made before the option still match
        settings["music21_draw"] = music21_draw
    manifest_path = out_dir / "corpus.json"
    previous = {} if overwrite else _previous_build(manifest_path, settings)

    started = time.perf_counter()
    log(f"planning {minutes:g} min corpus (seed {seed}) ...")
    plan = plan_corpus(minutes, seed, heldout_fraction, music21_fraction, palette=palette, log=log,
                       music21_draw=music21_draw)
    plan_seconds = time.perf_counter() - started
    log(f"planned {len(plan.pieces)} pieces, {plan.seconds / 60:.1f} min nominal, in {plan_seconds:.1f} s")

    if overwrite:
        _remove_stale_pieces(out_dir, manifest_path, plan, log)
    todo, kept = _stage_midi(plan, out_dir, seed, overwrite)
    render_started = time.perf_counter()
    durations, failures = _render_pieces(todo, font, jobs, log)
    durations.update(kept)
    render_seconds = time.perf_counter() - render_started
    if not durations:
        raise DataError(f"no piece of the corpus could be rendered; first error: {failures[0]['error']}")

    entries = [_entry(piece, durations[piece.id]) for piece in plan.pieces if piece.id in durations]
    # beat and downbeat times from each piece's MIDI (training.data.beats): what --beat-conditioning learns from
    annotate_pieces(out_dir, entries, overwrite=True)
    splits = _splits(entries)
    total = sum(e["seconds"] for e in entries)
    manifest = {
        "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "settings": settings, "seed": seed,
        "sample_rate": 44_100, "channels": 2, "subtype": "PCM_16",
        "pieces_count": len(entries), "seconds": round(total, 3), "hours": round(total / 3600, 4), "splits": splits,
        "sources": {"procedural": sum(e["source"] == "procedural" for e in entries),
                    "music21": sum(e["source"].startswith("music21:") for e in entries)},
        "render_seconds": round(render_seconds, 2), "plan_seconds": round(plan_seconds, 2), "jobs": jobs,
        # a resumed build adds to the time the earlier runs spent rendering the pieces it reused
        "render_seconds_total": round(render_seconds + (previous.get("render_seconds_total", 0.0) if kept else 0.0),
                                      2),
        "rendered_now": len(todo) - len(failures), "reused": len(kept),
        "soundfont": {"path": str(font), "bytes": font.stat().st_size},
        "fluidsynth": fluidsynth_version(), "music21_version": _music21_version(),
        "failures": failures, "skipped_music21_works": plan.skipped_works, "beat_sidecars": len(entries),
        "pieces": entries,
    }
    _write_bytes_atomically(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode())
    log(f"corpus: {len(entries)} pieces, {total / 3600:.3f} h ({splits['train']['hours']:.3f} h train, "
        f"{splits['heldout']['hours']:.3f} h held out); rendering took {render_seconds:.1f} s; "
        f"{len(failures)} failed -> {manifest_path}")
    return manifest


def _check_sizes(minutes: float, heldout_fraction: float) -> None:
    if minutes <= 0:
        raise DataError(f"corpus size must be positive, got {minutes} minutes")
    if not 0.0 <= heldout_fraction < 1.0:
        raise DataError(f"held-out fraction must be in [0, 1), got {heldout_fraction}")


def _check_palette(palette: str) -> None:
    if palette not in PALETTES:
        raise DataError(f"unknown palette {palette!r}: use {' or '.join(PALETTES)}")


def _previous_build(manifest_path: Path, settings: dict) -> dict[str, Any]:
    """The manifest of an earlier build into the same folder ({} if none); DataError if it used other settings."""
    if not manifest_path.exists():
        return {}
    try:
        previous = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{manifest_path} is unreadable ({exc}); use another folder or --overwrite") from exc
    if previous.get("settings") != settings:
        raise DataError(f"{manifest_path.parent} already holds a corpus built with {previous.get('settings')}; "
                        f"use another folder or --overwrite")
    return previous


def _stage_midi(plan: CorpusPlan, out_dir: Path, seed: int, overwrite: bool) -> tuple[list, dict[str, float]]:
    """Write each piece's MIDI; returns the pieces still to render and the durations of those an earlier build
    already rendered (kept unless `overwrite`)."""
    todo, kept = [], {}
    for piece in plan.pieces:
        midi_path = out_dir / "midi" / piece.split / f"{piece.id}.mid"
        wav_path = out_dir / piece.split / f"{piece.id}.wav"
        if midi_path.exists() and midi_path.read_bytes() != piece.midi_bytes and not overwrite:
            raise DataError(f"{midi_path} differs from what seed {seed} generates; refusing to overwrite "
                            f"(use another folder or --overwrite)")
        if wav_path.exists() and midi_path.exists() and not overwrite:
            kept[piece.id] = sf.info(str(wav_path)).duration
            continue
        if wav_path.exists() and not overwrite:
            raise DataError(f"{wav_path} exists without its MIDI; refusing to overwrite (use --overwrite)")
        _write_bytes_atomically(midi_path, piece.midi_bytes)
        todo.append((piece, midi_path, wav_path))
    return todo, kept


def _render_pieces(todo: list, font: Path, jobs: int, log: Callable[[str], None]
                   ) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Render the staged pieces with FluidSynth on `jobs` threads: (durations by id, failures)."""
    durations: dict[str, float] = {}
    failures: list[dict[str, str]] = []

    def render(item):
        piece, midi_path, wav_path = item
        try:
            return piece, render_midi(midi_path, wav_path, font, overwrite=True), None
        except DataError as exc:
            return piece, None, str(exc)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for done, (piece, result, error) in enumerate(pool.map(render, todo), start=1):
            if error is not None:
                failures.append({"id": piece.id, "error": error})
                log(f"[{done}/{len(todo)}] FAILED {piece.id}: {error}")
            else:
                durations[piece.id] = result.seconds
                log(f"[{done}/{len(todo)}] {piece.split} {piece.id} {result.seconds:.1f} s "
                    f"(rendered in {result.render_seconds:.1f} s)")
    return durations, failures


def _entry(piece: PlannedPiece, seconds: float) -> dict[str, Any]:
    return {"id": piece.id, "work": piece.work, "source": piece.source, "split": piece.split,
            "wav": f"{piece.split}/{piece.id}.wav", "midi": f"midi/{piece.split}/{piece.id}.mid",
            "midi_sha256": hashlib.sha256(piece.midi_bytes).hexdigest(), "seconds": round(seconds, 3),
            "info": piece.info}


def _splits(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pieces, seconds and hours of each split, for the manifest."""
    splits = {}
    for split in SPLITS:
        chosen = [e for e in entries if e["split"] == split]
        seconds = sum(e["seconds"] for e in chosen)
        splits[split] = {"pieces": len(chosen), "seconds": round(seconds, 3), "hours": round(seconds / 3600, 4),
                         "folder": split}
    return splits


def _music21_version() -> str | None:
    try:
        import music21
    except ImportError:
        return None
    return music21.__version__
