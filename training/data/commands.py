"""`msanii-train render-midi` and `msanii-train make-corpus`: argparse sub-commands for training/cli.py.

Each handler takes the parsed namespace and returns an exit code: 0 success, 1 some files failed (the rest were
done), 2 nothing could be done (the error is printed on stderr, naming the file or folder).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.data.errors import DataError


def _program(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"program must be an integer 0-127, got {text!r}") from None
    if not 0 <= value <= 127:
        raise argparse.ArgumentTypeError(f"program must be a General MIDI program number 0-127, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_data_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register `render-midi`, `make-corpus` and `beat-grid` on the `msanii-train` sub-parsers."""
    render = subparsers.add_parser(
        "render-midi", help="render a folder of MIDI files to 44.1 kHz stereo WAV with FluidSynth",
        description="Render every .mid/.midi file below MIDI_DIR to OUT_DIR (same relative paths, .wav, 44.1 kHz "
                    "stereo 16-bit) with FluidSynth and a General MIDI soundfont. Files that fail are reported and "
                    "the batch goes on; existing WAVs are kept unless --overwrite.")
    render.add_argument("midi_dir", type=Path, metavar="MIDI_DIR")
    render.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    render.add_argument("--soundfont", type=Path, default=None,
                        help="SF2/SF3 file (default: $MSANII_SOUNDFONT or an installed GM soundfont)")
    render.add_argument("--program", type=_program, default=None,
                        help="force this General MIDI program (0-127) on every melodic channel; drums are kept")
    render.add_argument("--jobs", type=_positive_int, default=1, help="files rendered in parallel (default 1)")
    render.add_argument("--overwrite", action="store_true", help="replace WAVs that already exist")
    render.set_defaults(func=run_render_midi)

    corpus = subparsers.add_parser(
        "make-corpus", help="build the reproducible offline training corpus (procedural pop + music21, FluidSynth)",
        description="Generate pop-style MIDI pieces and music21 corpus excerpts from SEED, render them with "
                    "FluidSynth into OUT_DIR/train and OUT_DIR/heldout, and write OUT_DIR/corpus.json. Re-running "
                    "with the same settings resumes an interrupted build.")
    corpus.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    corpus.add_argument("--minutes", type=float, default=60.0, help="total audio to generate (default 60)")
    corpus.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    corpus.add_argument("--soundfont", type=Path, default=None, help="SF2/SF3 file (default: installed GM soundfont)")
    corpus.add_argument("--heldout-fraction", type=float, default=0.1,
                        help="share of works held out for evaluation, chosen by hash of the work id (default 0.1)")
    corpus.add_argument("--music21-fraction", type=float, default=0.3,
                        help="share of the minutes taken from music21's corpus, the rest procedural (default 0.3)")
    corpus.add_argument("--music21-draw", choices=("works", "composers"), default="works",
                        help="works (default): a seeded shuffle of music21's candidate works; composers: the same "
                             "dealt round-robin over the composers' collections, so no one collection fills the "
                             "music21 part by chance")
    corpus.add_argument("--palette", choices=("piano", "band"), default="piano",
                        help="piano (default): POP909-layout pop arrangements and music21 works on piano-family "
                             "programs, as the paper's data; band: pop pieces with bass, leads, pads and a GM drum "
                             "kit, music21 works on GM ensembles")
    corpus.add_argument("--jobs", type=_positive_int, default=1, help="FluidSynth renders in parallel (default 1)")
    corpus.add_argument("--overwrite", action="store_true", help="rebuild over a corpus made with other settings")
    corpus.set_defaults(func=run_make_corpus)

    grid = subparsers.add_parser(
        "beat-grid", help="write the beat sidecars (<name>.beats.json) of a make-corpus folder from its MIDI",
        description="Write OUT_DIR/{train,heldout}/<name>.beats.json (beat and downbeat times from each piece's "
                    "MIDI) for a corpus made before make-corpus wrote them; --beat-conditioning trains on them. "
                    "Existing sidecars are kept unless --overwrite.")
    grid.add_argument("corpus_dir", type=Path, metavar="CORPUS_DIR")
    grid.add_argument("--overwrite", action="store_true", help="rewrite sidecars that already exist")
    grid.set_defaults(func=run_beat_grid)


def run_render_midi(args: argparse.Namespace) -> int:
    from training.data.midi import render_midi_folder

    def progress(path: Path, status: str) -> None:
        print(f"{status}: {path}", file=sys.stderr, flush=True)

    try:
        report = render_midi_folder(args.midi_dir, args.out_dir, soundfont=args.soundfont, program=args.program,
                                    overwrite=args.overwrite, jobs=args.jobs, progress=progress)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for failure in report.failed:
        print(f"error: {failure.error}", file=sys.stderr)
    print(report.summary())
    if report.failed and not report.rendered and not report.skipped_existing:
        return 2
    return 1 if report.failed else 0


def run_beat_grid(args: argparse.Namespace) -> int:
    from training.data.beats import annotate_corpus

    try:
        written = annotate_corpus(args.corpus_dir, overwrite=args.overwrite)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{written} beat sidecars written in {args.corpus_dir}")
    return 0


def run_make_corpus(args: argparse.Namespace) -> int:
    from training.data.corpus import build_corpus

    try:
        manifest = build_corpus(args.out_dir, minutes=args.minutes, seed=args.seed, soundfont=args.soundfont,
                                heldout_fraction=args.heldout_fraction, jobs=args.jobs,
                                music21_fraction=args.music21_fraction, overwrite=args.overwrite,
                                palette=args.palette, music21_draw=args.music21_draw)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    splits = manifest["splits"]
    print(f"{manifest['pieces_count']} pieces, {manifest['hours']:.3f} h "
          f"(train {splits['train']['hours']:.3f} h, held out {splits['heldout']['hours']:.3f} h); "
          f"rendering took {manifest['render_seconds']:.0f} s -> {Path(args.out_dir) / 'corpus.json'}")
    return 1 if manifest["failures"] else 0
