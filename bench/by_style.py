"""Which of the corpus' two styles falls short: the musicality measures split by style, real against generated.

The piano corpus holds pop arrangements (a bass line: 62.5-125 Hz at about -9 dB of the total) and music21 works
(chorales, madrigals, quartets on keyboards: about -20 dB). A beat-conditioned model ties style to the drawn tempo,
so a set's mean can hide one style going wrong. Real clips are split by their corpus source (the folder's
corpus.json) and, like generated clips, by the bass-level proxy `style_of` (generated clips carry no label).
Beside bench.musicality's measures, `chroma_movement`: how far the pitch-class content moves from one second to the
next (0: one chord held for the whole clip), which tells a clip that stays on one chord from one that uses few
pitch classes in a moving line.

    python -m bench.by_style --real data/piano/heldout data/piano-s1 --training-corpus data/piano/corpus.json \\
        --bundle models/default [--seeds 0 1 ...] [--beat-guidance 3.5 1]
"""
from __future__ import annotations

import engine  # noqa: F401  (first: sets passive OpenMP waiting before torch loads)

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from bench.metrics import chroma_movement
from engine.dsp import SpectrogramConfig

BASS_SPLIT_DB = -15.0  # 62.5-125 Hz against the clip's total: real pop clips' median -9.0, music21 clips' -20.5
MEASURES = ("chroma_entropy", "chroma_movement", "mel_change", "jump_rate", "onset_rate", "beat_clarity", "bass_db")


def style_of(bass_db: float) -> str:
    """'chorale-like' when the lowest octave band (62.5-125 Hz, dB against the total) is under BASS_SPLIT_DB."""
    return "chorale-like" if bass_db < BASS_SPLIT_DB else "pop-like"


def row_of(measures: dict) -> dict:
    """The figures this split reads from bench.musicality.clip_measures of one clip, with its bass band."""
    return {**{key: measures[key] for key in MEASURES if key in measures}, "bass_db": float(measures["bands_db"][0])}


def clip_row(audio: np.ndarray, cfg: SpectrogramConfig) -> dict:
    """row_of one clip's measures, with chroma_movement."""
    from bench.musicality import clip_measures

    return {**row_of(clip_measures(audio, cfg)), "chroma_movement": chroma_movement(audio, cfg)}


def table(sets: dict[str, list[dict]]) -> str:
    """Markdown: for each set, its clips' mean measures in all, and per style (`style` key, else `style_of`); a
    measure the rows do not carry (chroma_movement of rows made from measures alone) is left blank."""
    lines = ["| set | style | clips | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 3) + "|"]
    for name, rows in sets.items():
        styles = sorted({r.get("style") or style_of(r["bass_db"]) for r in rows})
        for style in ["all", *styles]:
            chosen = [r for r in rows if style == "all" or (r.get("style") or style_of(r["bass_db"])) == style]
            cells = [f"{np.mean([r[k] for r in chosen]):.3f}" if all(k in r for r in chosen) else "" for k in MEASURES]
            lines.append(f"| {name} | {style} | {len(chosen)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def source_rows(files: list[Path], seconds: float, cfg: SpectrogramConfig) -> list[dict]:
    """clip_row of one clip from the middle of each file, labelled music21 / pop by the corpus.json beside it."""
    from bench.reference import middle_clip, sources_of

    rows = []
    for path, source in zip(files, sources_of(files)):
        clip = middle_clip(path, seconds, cfg.sample_rate)
        if clip is not None:
            rows.append({**clip_row(clip, cfg), "style": source})
    return rows


def real_rows(reference) -> dict:
    """{'real, by source': the measured reference's clips (bench.reference.Reference) labelled pop / music21,
    'real, by bass': the same rows labelled by `style_of`}."""
    by_source = [{**row_of(m), "style": source} for m, source in zip(reference.per_clip, reference.sources)]
    return {"real, by source": by_source,
            "real, by bass": [{**r, "style": style_of(r["bass_db"])} for r in by_source]}


def report_table(generated: dict[str, list[dict]], reference, seconds: float, cfg: SpectrogramConfig) -> str:
    """REPORT.md's split (bench.quality_report): the measured reference (bench.reference.Reference) by source, the
    training split by source (from the reference's training corpus' train folder, when there is one) and each
    generated set from its clips' measures (name -> the clip_measures of its clips; their chroma_movement is left
    blank)."""
    from bench.reference import audio_files

    sets = {"reference": real_rows(reference)["real, by source"]}
    train = Path(reference.training_corpus).parent / "train" if reference.training_corpus else None
    if train is not None and train.is_dir():
        sets["training split"] = source_rows(audio_files(train), seconds, cfg)
    sets.update({name: [row_of(m) for m in clips] for name, clips in generated.items()})
    return table(sets)


def main(argv: list[str] | None = None) -> int:
    from bench.reference import measure_reference
    from engine.api import Engine
    from engine.tasks.generate import generate

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, nargs="+", required=True, help="folders of real audio never trained on")
    p.add_argument("--training-corpus", type=Path, help="corpus.json whose train pieces --real leaves out")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(24)))
    p.add_argument("--beat-guidance", type=float, nargs="+", default=[], metavar="W",
                   help="also render at the drawn tempos with these beat-guidance scales (beat-conditioned bundles)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    eng = Engine.load(args.bundle, device="cpu", threads=args.threads)
    if args.beat_guidance and eng.bundle.beat is None:
        p.error(f"{args.bundle}: --beat-guidance needs a beat-conditioned bundle")
    cfg = eng.bundle.spectrogram
    sets = real_rows(measure_reference(args.real, args.training_corpus, cfg, args.seconds))
    for w in [None, *args.beat_guidance]:
        rows = []
        for seed in args.seeds:
            tempo = eng.default_tempo(seed)
            if w is not None:
                tempo = dataclasses.replace(tempo, guidance=w)
            rows.append(clip_row(generate(eng, args.seconds, seed=seed, tempo=tempo).audio, cfg))
        sets["generated" if w is None else f"generated, beat guidance {w:g}"] = rows
    print(table(sets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
