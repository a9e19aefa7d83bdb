"""`msanii-export RUN_DIR OUT_DIR [--unet CKPT] [--vocoder CKPT] [--prior-data DIR] [--no-ema] [--fp16] [--compact]
[--overwrite]`.

RUN_DIR is what `msanii-train unet|vocoder --out RUN_DIR` wrote: RUN_DIR/unet/last.pt and RUN_DIR/vocoder/last.pt
pair up by default; --unet/--vocoder pick checkpoint files explicitly (then RUN_DIR may be omitted with '-').
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from engine.bundle import BundleError
from engine.dsp import SpectrogramConfig
from engine.dsp.scaler import ScalerStats
from engine.prior import DEFAULT_PRIOR_ERROR, DataPrior
from engine.samplers import SAMPLER_NAMES
from export.data_prior import measure_prior
from export.reuse import vocoder_checkpoint_from_bundle
from export.bundle_writer import DEFAULTS, ExportOptions, write_bundle
from export.onnx_export import ExportError
from training.checkpoint import LAST, CheckpointError, load_checkpoint
from training.data.errors import DataError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="msanii-export", description="Export trained Msanii checkpoints to an ONNX "
                                "bundle (unet.onnx, vocoder.onnx, manifest.json) for the render engine.")
    p.add_argument("run_dir", help="training run directory holding unet/last.pt and vocoder/last.pt "
                   "('-' when both --unet and --vocoder are given)")
    p.add_argument("out_dir", help="bundle directory to create")
    p.add_argument("--unet", type=Path, help="U-Net checkpoint file (default RUN_DIR/unet/last.pt)")
    p.add_argument("--vocoder", type=Path, help="vocoder checkpoint file (default RUN_DIR/vocoder/last.pt), or a "
                   "bundle folder whose vocoder (graph, scaler, provenance) is carried over unchanged")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    p.add_argument("--fp16", action="store_true", help="also write float16 graphs (*.fp16.onnx) for GPUs")
    p.add_argument("--compact", action="store_true", help="store weights as float16 (computed in float32): "
                   "half the size on disk, outputs within the weights' rounding")
    p.add_argument("--torch", action="store_true", help="also write torch exported programs (unet.pt2, "
                   "vocoder.pt2): the engine's torch backend runs them on CUDA without onnxruntime-gpu")
    p.add_argument("--provenance", type=Path, help="JSON object merged into the manifest's provenance "
                   "(e.g. the training commands and corpus description)")
    p.add_argument("--prior-data", type=Path, metavar="DIR", help="measure the data prior of an epsilon U-Net "
                   "(its training data's mean spectrum, engine.prior) from the audio in DIR and write it into the "
                   "manifest; without it the bundle has none")
    p.add_argument("--prior-error", type=float, default=DEFAULT_PRIOR_ERROR, metavar="E",
                   help=f"eps error variance that weighs the model's x0 against the prior (default {DEFAULT_PRIOR_ERROR})")
    p.add_argument("--default-bpm", type=float, metavar="BPM", help="a beat-conditioned U-Net's tempo when a "
                   "render names none (default: the median tempo of its training data, else 100)")
    p.add_argument("--beat-guidance", type=float, metavar="W", help="a beat-conditioned U-Net's beat-guidance "
                   "scale when a render names none (default 1: plain conditioning; docs/architecture.md)")
    p.add_argument("--beat-guidance-from", type=float, metavar="F", help="guide only the steps at timesteps t >= F * "
                   "T, the noisy share of the schedule where rhythm is laid down (default 0: every step)")
    p.add_argument("--name", help="model name in the manifest (default: OUT_DIR's name)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.add_argument("--steps", type=int, help=f"default sampler steps written into the manifest ({DEFAULTS.steps})")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="default sampler written into the manifest "
                   f"({DEFAULTS.sampler})")
    p.add_argument("--gl-iters", type=int, help="default Griffin-Lim iterations written into the manifest "
                   f"({DEFAULTS.gl_iters}; e.g. the fewest that reach GL-200's SC on this vocoder: "
                   "python -m bench.phase_iters --bundle ...)")
    return p


def _checkpoint_path(explicit: Path | None, run_dir: str, kind: str) -> Path:
    if explicit is not None:
        return explicit
    if run_dir == "-":
        raise CheckpointError(f"no RUN_DIR given: pass --{kind} CKPT")
    return Path(run_dir) / kind / LAST


def _load_source(path: Path, kind: str) -> dict:
    """A checkpoint file, or (the vocoder only) a bundle folder's vocoder in checkpoint form."""
    if kind == "vocoder" and path.is_dir():
        return vocoder_checkpoint_from_bundle(path)
    return load_checkpoint(path, kind=kind)


def _measure_prior(unet_ckpt: dict, audio_dir: Path, error: float) -> DataPrior:
    kind = unet_ckpt["diffusion"]["prediction_type"]
    if kind != "epsilon":
        raise ValueError(f"--prior-data: the U-Net is a {kind} model, which needs no data prior (engine.prior)")
    if not unet_ckpt.get("scaler_stats"):
        raise CheckpointError("--prior-data: the U-Net checkpoint has no fitted scaler")
    return measure_prior(audio_dir, SpectrogramConfig.from_dict(unet_ckpt["spectrogram"]),
                         ScalerStats.from_dict(unet_ckpt["scaler_stats"]), error=error,
                         log=lambda msg: print(f"msanii-export: {msg}", file=sys.stderr))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "msanii-export " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        if args.steps is not None and not 1 <= args.steps <= 1000:
            raise ValueError(f"--steps must be from 1 to 1000, got {args.steps}")
        if args.default_bpm is not None and not 20 <= args.default_bpm <= 400:
            raise ValueError(f"--default-bpm must be from 20 to 400, got {args.default_bpm:g}")
        if args.gl_iters is not None and not 0 <= args.gl_iters <= 10_000:
            raise ValueError(f"--gl-iters must be from 0 to 10000, got {args.gl_iters}")
        defaults = dataclasses.replace(DEFAULTS, **{k: v for k, v in (("steps", args.steps), ("sampler", args.sampler),
                                                                      ("gl_iters", args.gl_iters)) if v is not None})
        if args.run_dir != "-" and not Path(args.run_dir).is_dir() and (args.unet is None or args.vocoder is None):
            raise CheckpointError(f"run directory not found: {args.run_dir}")
        sources = {kind: _checkpoint_path(getattr(args, kind), args.run_dir, kind) for kind in ("unet", "vocoder")}
        ckpts = {kind: _load_source(path, kind) for kind, path in sources.items()}
        notes = {}
        if args.provenance is not None:
            try:
                notes = json.loads(args.provenance.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"--provenance {args.provenance}: {exc}") from None
            if not isinstance(notes, dict):
                raise ValueError(f"--provenance {args.provenance}: expected a JSON object")
        prior = None
        if args.prior_data is not None:
            prior = _measure_prior(ckpts["unet"], args.prior_data, args.prior_error)
        options = ExportOptions(use_ema=not args.no_ema, fp16=args.fp16, compact=args.compact,
                                torch_programs=args.torch, overwrite=args.overwrite, name=args.name,
                                command=command, notes=notes, defaults=defaults, prior=prior,
                                default_bpm=args.default_bpm, beat_guidance=args.beat_guidance,
                                beat_guidance_from=args.beat_guidance_from)
        out = write_bundle(ckpts["unet"], ckpts["vocoder"], args.out_dir, options,
                           sources={k: str(v) for k, v in sources.items()},
                           log=lambda msg: print(f"msanii-export: {msg}", file=sys.stderr))
    except (CheckpointError, ExportError, BundleError, DataError, FileExistsError, ValueError) as exc:
        print(f"msanii-export: error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
