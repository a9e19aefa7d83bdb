"""How often the issue's half-vs-half gates fail real music of one recipe, by held-out size: `--size` clips drawn
from the folders, judged against `--held` other clips of the same folders (bench.reference.literal_false_failure),
for each held-out size. Point it at a corpus (train and held-out splits are one recipe) and it says what a model that
reproduced that corpus exactly would fail, against a held-out split as representative as a random one.

    python -m bench.gate_power data/piano-comp/train data/piano-comp/heldout --held 10 13 20 30 48 --size 48

One clip from the middle of each file (bench.reference.middle_clip); shares of `--draws` random draws.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.reference import ISSUE_GATES, audio_files, literal_false_failure, middle_clip_measures
from engine.dsp.config import SpectrogramConfig

DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "models" / "default" / "manifest.json"


def power_table(per_clip: list[dict], held_sizes: list[int], size: int, draws: int, seed: int = 0) -> str:
    """Markdown: per held-out size, the share of draws failing each of the issue's gates, and any."""
    lines = ["| held-out clips | " + " | ".join(ISSUE_GATES) + " | any |", "|---" * (len(ISSUE_GATES) + 2) + "|"]
    for held in held_sizes:
        shares = literal_false_failure(per_clip, held=held, size=size, draws=draws, seed=seed)
        lines.append(f"| {held} | " + " | ".join(f"{shares[k]:.0%}" for k in (*ISSUE_GATES, "any")) + " |")
    return "\n".join(lines)


def add_folder_arguments(parser: argparse.ArgumentParser, folders_help: str) -> None:
    """The arguments a real-audio bench shares: the folders, the clip length, the manifest that measures them."""
    parser.add_argument("folders", type=Path, nargs="+", help=folders_help)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST,
                        help="bundle manifest whose spectrogram settings measure the clips (default: models/default)")


def folder_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SpectrogramConfig:
    """The spectrogram settings of `args.manifest`, after checking that every folder is there (a parser error)."""
    for folder in args.folders:
        if not folder.is_dir():
            parser.error(f"{folder}: no such folder")
    try:
        return SpectrogramConfig(**json.loads(args.manifest.read_text())["spectrogram"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"--manifest {args.manifest}: no bundle manifest with spectrogram settings ({exc})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_folder_arguments(parser, "folders of real audio of one recipe")
    parser.add_argument("--held", type=int, nargs="+", default=[10], help="held-out sizes to try")
    parser.add_argument("--size", type=int, default=48, help="clips in the judged set (a report's seed count)")
    parser.add_argument("--draws", type=int, default=400)
    args = parser.parse_args(argv)
    cfg = folder_settings(parser, args)
    if args.size < 1 or args.draws < 1 or min(args.held) < 2:
        parser.error("--size and --draws must be at least 1, each --held at least 2 (a half-vs-half spread)")
    per_clip = middle_clip_measures([p for folder in args.folders for p in audio_files(folder)], cfg, args.seconds)
    if max(args.held) + args.size > len(per_clip):
        parser.error(f"--held {max(args.held)} + --size {args.size} clips needed, the folders give {len(per_clip)} "
                     f"clips of {args.seconds:g} s")
    print(f"{len(per_clip)} clips of {args.seconds:g} s from {', '.join(map(str, args.folders))}; {args.size} judged "
          f"against each held-out size, {args.draws} draws: the share failing each of the issue's gates")
    print(power_table(per_clip, args.held, args.size, args.draws))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
