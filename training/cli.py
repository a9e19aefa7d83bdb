"""`msanii-train`: train the U-Net or the vocoder on a folder of audio, and the data subcommands.

    msanii-train unet    --data DIR --preset small --out runs/mine [--steps N] [--resume] ...
    msanii-train vocoder --data DIR --preset small --out runs/mine
    msanii-train render-midi MIDI_DIR OUT_DIR [--soundfont F] [--program N]

Bad input (missing/empty/corrupt data, unknown preset, nothing to resume, an existing run without --resume) ends
with one line on stderr and exit status 2. Ctrl-C finishes the current step, saves RUN_DIR/<kind>/last.pt and
exits 0; `--resume` continues from it.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from engine.bundle import PREDICTION_TYPES
from engine.dsp import SpectrogramConfig, samples_for_frames
from training.checkpoint import LAST, CheckpointError, load_checkpoint
from training.config import KINDS, PRESETS, SCALER_MODES, TrainConfig, train_preset
from training.data.audio_folder import AudioFolderDataset
from training.data.commands import add_data_subcommands
from training.data.errors import DataError, DataWarning
from training import distributed
from training.loop import RunDirError, prepare_run_dir, run_training
from training.trainer import Trainer, select_device
from training.warm_start import WarmStartError, load_initial_weights

PROG = "msanii-train"


class UsageError(ValueError):
    """A bad argument combination; printed as one line, exit status 2."""


def _oversample(text: str) -> tuple[str, float]:
    """'GLOB=FACTOR' -> (GLOB, FACTOR), for --oversample."""
    pattern, sep, factor = text.rpartition("=")
    try:
        value = float(factor)
    except ValueError:
        value = float("nan")
    if not sep or not pattern or not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected GLOB=FACTOR with a positive factor, e.g. 'm21-*=2', got {text!r}")
    return pattern, value


def add_train_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("--data", metavar="DIR", help="folder of audio files (WAV/FLAC/OGG/MP3/AIFF, any rate); "
                        "on --resume defaults to the run's folder")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="paper | small | tiny (default small; on --resume the run's preset)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help=f"run folder; this writes RUN_DIR/{kind}/ (last.pt, step-*.pt, losses.csv)")
    parser.add_argument("--steps", type=int, help="total optimiser steps (default: the preset's); on --resume "
                        "a larger value extends the run")
    parser.add_argument("--batch-size", type=int, metavar="B", help="crops per step (default: the preset's); under "
                        "torchrun the global batch, split evenly over the ranks")
    parser.add_argument("--crop-frames", type=int, metavar="F", help="crop length in mel frames; the audio crop is "
                        "(F - 1) * 1024 samples" + (" and F must be a multiple of the U-Net's frame multiple"
                                                      if kind == "unet" else ""))
    parser.add_argument("--seed", type=int, help="seed for data crops, noise and initial weights (default 0)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 2e-4, the paper's); on --resume a new "
                        "value applies from the next step")
    parser.add_argument("--oversample", action="append", type=_oversample, metavar="GLOB=FACTOR",
                        help="draw the seconds of files whose names match GLOB FACTOR times as often (repeatable; "
                             "the first matching glob counts), e.g. 'm21-*=2' for make-corpus's music21 works; on "
                             "--resume given values replace the run's from the next step")
    if kind == "unet":
        parser.add_argument("--prediction-type", choices=PREDICTION_TYPES, help="what the U-Net regresses: "
                            "epsilon (the paper's noise) or v_prediction (velocity; its x0 is well defined near "
                            "pure noise, training.diffusion says why). Default epsilon; a new run only, and with "
                            "--init-from it re-targets the earlier model (fine-tuning)")
    if kind == "unet":
        parser.add_argument("--beat-conditioning", action="store_true", default=None, help="also learn to follow "
                            "a beat grid from the data's <name>.beats.json sidecars (make-corpus writes them), so a "
                            "render can be given a tempo; a new run only (on --resume the run's setting)")
        parser.add_argument("--beat-dropout", type=float, metavar="P", help="share of crops shown without their "
                            "beat grid, so the model also generates with no tempo (default 0.2)")
        parser.add_argument("--ema-start", type=int, metavar="STEP", help="step up to which the EMA copies the "
                            "weights, averaging after it (default 2000, the paper's); a fine-tune from a trained "
                            "model may average from the start (0); a new run only")
    parser.add_argument("--scaler", choices=SCALER_MODES, help="how batches are scaled to [-1, 1]: batch "
                        "(Appendix A: each batch's own statistics) or frozen (fitted once on the run's data, then "
                        "fixed, as inference uses them; training.trainer says why). Default: frozen for the small "
                        "and tiny U-Nets, batch otherwise; a new run only", default=None)
    if kind == "vocoder":
        parser.add_argument("--sc-weight", type=float, metavar="W", help="loss = W * spectral convergence + "
                            "log-magnitude (default 1, the paper's); may change on --resume (fine-tuning)")
    parser.add_argument("--checkpoint-every", type=int, metavar="N", help="write step-XXXXXXX.pt and last.pt "
                        "every N steps (default: the preset's)")
    parser.add_argument("--keep-checkpoints", type=int, metavar="K", help="keep only the newest K periodic "
                        "step-*.pt files (default: keep all; a paper U-Net checkpoint is ~0.8 GB)")
    parser.add_argument("--resume", action="store_true", help=f"continue RUN_DIR/{kind}/{LAST} bit-exactly")
    parser.add_argument("--init-from", metavar="SOURCE", help="start a new run from an earlier model's weights "
                        f"(fine-tuning): a bundle folder (its {kind}.onnx), a .onnx graph or a .pt checkpoint of the "
                        "same preset; optimiser, warm-up and step start afresh")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")
    parser.add_argument("--precision", default=None, help="auto | fp32 | bf16 | fp16 (auto: bf16/fp16 mixed "
                        "precision on CUDA, fp32 on CPU)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (bit-exact resume on CPU "
                        "needs the same value as the interrupted run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when "
                        "stderr is not a terminal)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Train the Msanii U-Net and vocoder, and prepare data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for kind, text in (("unet", "train the diffusion U-Net on log-mel spectrograms"),
                       ("vocoder", "train the mel -> magnitude-STFT vocoder")):
        add_train_arguments(sub.add_parser(kind, help=text, description=text), kind)
    add_data_subcommands(sub)  # render-midi, make-corpus
    calibrate = sub.add_parser(
        "calibrate-vocoder", help="match a trained vocoder's output level to the data's, per STFT bin",
        description="Measure, on training crops, the gain per STFT bin that gives the vocoder's output the true "
                    "energy, fold it into the output bias, and write RUN_DIR/vocoder/calibrated.pt (export it with "
                    "msanii-export --vocoder). last.pt is left as it is; the copy holds no optimiser state.")
    calibrate.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder holding vocoder/last.pt")
    calibrate.add_argument("--data", metavar="DIR", help="audio folder (default: the run's own)")
    calibrate.add_argument("--batches", type=int, default=64, help="batches of 8 crops measured (default 64)")
    calibrate.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    calibrate.set_defaults(func=calibrate_command)
    average = sub.add_parser(
        "average", help="average the weights of several checkpoints of one run (an export source)",
        description="Write the uniform mean of the EMA (or raw) weights of CKPT files of one run to --out: a "
                    "longer average than the run's own EMA, for msanii-export --unet (training/average.py).")
    average.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoints of one run (at least two)")
    average.add_argument("--out", required=True, metavar="FILE", help="the averaged checkpoint to write")
    average.add_argument("--weights", choices=("ema", "model"), default="ema",
                         help="which weights to average (default ema)")
    average.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    average.set_defaults(func=average_command)
    return parser


def average_command(args: argparse.Namespace) -> int:
    from training.average import write_average

    try:
        averaged = write_average(args.checkpoints, args.out, args.weights, args.overwrite)
    except (FileExistsError, ValueError) as exc:  # CheckpointError is a ValueError
        raise UsageError(str(exc)) from None
    steps = averaged["averaged"]["steps"]
    print(f"{args.out}: the {args.weights} weights of {len(steps)} checkpoints averaged (steps "
          f"{', '.join(map(str, steps))})", file=sys.stderr)
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    from training.vocoder_gain import calibrate_checkpoint

    if args.batches < 1:
        raise UsageError(f"--batches must be >= 1, got {args.batches}")
    if args.threads:
        torch.set_num_threads(args.threads)
    kind_dir = Path(args.out) / "vocoder"
    checkpoint = load_checkpoint(kind_dir / LAST, kind="vocoder")
    out = kind_dir / "calibrated.pt"
    if out.exists():
        # say whether it is stale: a run resumed after its calibration leaves one of an older step behind
        made_at = load_checkpoint(out, kind="vocoder").get("step")
        raise UsageError(f"{out} exists (calibrated at step {made_at}; {LAST} is at step {checkpoint['step']}); "
                         "remove it first (a calibration is never overwritten)")
    spectrogram = SpectrogramConfig.from_dict(checkpoint["spectrogram"])
    root = args.data or checkpoint["data"].get("root")
    if not root:
        raise UsageError("--data DIR is required (the checkpoint records no data folder)")
    crop = samples_for_frames(checkpoint["train_config"]["crop_frames"], spectrogram)
    dataset = AudioFolderDataset(root, crop, sample_rate=spectrogram.sample_rate)
    _, gain_db = calibrate_checkpoint(checkpoint, dataset, batches=args.batches, out=out)
    freqs = [i * spectrogram.sample_rate / spectrogram.n_fft for i in range(len(gain_db))]
    for lo, hi in ((0, 250), (250, 1000), (1000, 4000), (4000, 8000), (8000, 22050)):
        band = [g for f, g in zip(freqs, gain_db) if lo <= f < hi]
        print(f"{lo}-{hi} Hz: mean gain {sum(band) / len(band):+.2f} dB", file=sys.stderr)
    print(f"vocoder calibrated at step {checkpoint['step']} -> {out}", file=sys.stderr)
    return 0


def resolve_config(args: argparse.Namespace, checkpoint: dict | None) -> TrainConfig:
    """The run's TrainConfig: the preset (or the checkpoint's config on resume) with the given flags applied.
    Flags that would change what is being resumed (preset, batch, crop, seed) must match the checkpoint; the learning
    rate and the vocoder's SC weight may change on resume (fine-tuning: e.g. a lower lr for the last steps)."""
    kind = args.command
    if args.preset is not None and args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}: use {', '.join(PRESETS)}")
    if checkpoint is None:
        cfg = train_preset(kind, args.preset or "small").with_overrides(
            steps=args.steps, batch_size=args.batch_size, crop_frames=args.crop_frames, seed=args.seed,
            checkpoint_every=args.checkpoint_every, precision=args.precision,
            sc_weight=getattr(args, "sc_weight", None))
        if args.lr is not None:
            cfg.optim.lr = args.lr
        if getattr(args, "prediction_type", None):
            cfg = replace(cfg, diffusion=replace(cfg.diffusion, prediction_type=args.prediction_type))
        if args.scaler:
            cfg = replace(cfg, scaler=args.scaler)
        if getattr(args, "beat_conditioning", None):
            cfg = replace(cfg, beat_conditioning=True)
        if getattr(args, "beat_dropout", None) is not None:
            cfg = replace(cfg, beat_dropout=args.beat_dropout)
        if args.oversample:
            cfg = replace(cfg, oversample=dict(args.oversample))
        if getattr(args, "ema_start", None) is not None:
            if args.ema_start < 0:
                raise UsageError(f"--ema-start must be >= 0, got {args.ema_start}")
            cfg = replace(cfg, ema=replace(cfg.ema, start_step=args.ema_start))
        return cfg
    cfg = TrainConfig.from_dict(checkpoint["train_config"])
    given_type = getattr(args, "prediction_type", None)
    if given_type and given_type != cfg.diffusion.prediction_type:
        raise UsageError(f"--prediction-type {given_type} differs from the run being resumed "
                         f"({cfg.diffusion.prediction_type}); start a new run with --init-from to re-target a model")
    fixed = {"preset": cfg.preset, "batch_size": cfg.batch_size, "crop_frames": cfg.crop_frames, "seed": cfg.seed,
             "scaler": cfg.scaler, "beat_conditioning": cfg.beat_conditioning, "beat_dropout": cfg.beat_dropout,
             "ema_start": cfg.ema.start_step if cfg.ema is not None else None}
    for name, value in fixed.items():
        given = getattr(args, name, None)
        if given is not None and given != value:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {given} differs from the run being resumed ({value}); resume keeps it")
    if args.lr is not None:
        cfg.optim.lr = args.lr
    if args.oversample:
        cfg = replace(cfg, oversample=dict(args.oversample))
    return cfg.with_overrides(steps=args.steps, checkpoint_every=args.checkpoint_every, precision=args.precision,
                              sc_weight=getattr(args, "sc_weight", None))


def train_command(args: argparse.Namespace) -> int:
    kind = args.command
    if args.keep_checkpoints is not None and args.keep_checkpoints < 1:
        raise UsageError(f"--keep-checkpoints must be >= 1, got {args.keep_checkpoints}")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    checkpoint = None
    kind_dir = Path(args.out) / kind
    if args.resume and args.init_from:
        raise UsageError("--init-from starts a new run; it cannot be combined with --resume")
    if args.resume:
        kind_dir = prepare_run_dir(args.out, kind, resume=True)
        checkpoint = load_checkpoint(kind_dir / LAST, kind=kind)
    try:
        cfg = resolve_config(args, checkpoint)
    except ValueError as exc:  # TrainConfig validation (steps < 1, ...)
        raise UsageError(str(exc)) from exc
    try:
        device = select_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    ctx = None
    if distributed.launched_by_torchrun():  # one rank of a data-parallel run (training/distributed.py)
        world = distributed.world_size_from_environment()
        if cfg.batch_size % world:
            raise UsageError(f"--batch-size {cfg.batch_size} (the global batch) does not split over {world} "
                             "processes; use a multiple of the process count")
        try:
            ctx = distributed.init_from_environment(args.device, args.threads)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        device = ctx.device
    held = [checkpoint]  # handed over, so the (large) payload can be freed once loaded
    del checkpoint
    try:
        return _train(args, cfg, held, kind_dir, device, ctx)
    finally:
        distributed.shutdown(ctx)


def _train(args: argparse.Namespace, cfg: TrainConfig, held: list, kind_dir: Path, device: torch.device,
           ctx: "distributed.DistContext | None") -> int:
    kind = args.command
    checkpoint = held.pop()
    say = ctx is None or ctx.is_writer  # rank 0 alone reports and writes
    spectrogram = SpectrogramConfig.from_dict(checkpoint["spectrogram"]) if checkpoint else SpectrogramConfig()
    data_root = args.data or (checkpoint["data"].get("root") if checkpoint else None)
    if not data_root:
        raise UsageError("--data DIR is required (a folder of audio files)")
    if not args.resume:  # refuse an existing run before the (slow) data loading
        if kind_dir.exists() and any(kind_dir.iterdir()):
            raise RunDirError(f"{kind_dir} already holds a run; pass --resume to continue it or choose another --out")
    if cfg.kind == "unet":
        from training.models import unet_preset
        multiple = unet_preset(cfg.preset).frame_multiple
        if cfg.crop_frames % multiple:
            raise UsageError(f"--crop-frames {cfg.crop_frames} is not a multiple of {multiple} (the {cfg.preset} "
                             f"U-Net halves the time axis {multiple.bit_length() - 1} times)")

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always", DataWarning)
        try:
            dataset = AudioFolderDataset(data_root, samples_for_frames(cfg.crop_frames, spectrogram),
                                         sample_rate=spectrogram.sample_rate, oversample=cfg.oversample)
        except DataError as exc:
            if not cfg.oversample:
                raise
            raise UsageError(f"--{exc}") from exc  # its messages start "oversample ..."
    for warning in skipped if say else ():  # one line per skipped file (corrupt, silent) when the rest is usable
        print(f"{PROG}: warning: {warning.message}", file=sys.stderr)
    if cfg.beat_conditioning and not dataset.files_with_beats:
        raise UsageError(f"--beat-conditioning: no file in {data_root} has a beat sidecar (<name>.beats.json); "
                         f"write them with `{PROG} beat-grid CORPUS_DIR` (a make-corpus folder)")
    data_info = {"root": str(Path(data_root).resolve()), "files": len(dataset), "seconds": float(dataset.seconds),
                 "description": dataset.describe()}
    if cfg.beat_conditioning:
        data_info["beat_tempo"] = dataset.tempo_summary()
    if say:
        print(f"data: {dataset.describe()} (loaded in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    if ctx is not None:
        trainer = distributed.DistributedTrainer(cfg, dataset, ctx, spectrogram, data_info)
    else:
        trainer = Trainer(cfg, dataset, device, spectrogram, data_info)
    if checkpoint is not None:
        try:
            trainer.load_checkpoint_payload(checkpoint)
        except (ValueError, KeyError, RuntimeError) as exc:  # e.g. the preset's architecture changed since
            raise CheckpointError(f"cannot resume from {kind_dir / LAST}: {exc}") from exc
        del checkpoint
    else:
        if args.init_from:
            try:
                loaded = load_initial_weights(trainer.model, args.init_from, kind)
            except WarmStartError as exc:
                raise UsageError(str(exc)) from exc
            if trainer.ema is not None:
                trainer.ema.load_state_dict(trainer.model.state_dict())
            trainer.data_info["init_from"] = loaded
            if say:
                print(f"{kind}: initial weights: {loaded}", file=sys.stderr)
        if say:
            kind_dir = prepare_run_dir(args.out, kind, resume=False)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    crop_seconds = trainer.crop_samples / spectrogram.sample_rate
    where = str(device) if ctx is None else (
        f"{ctx.world_size} {ctx.backend} ranks ({cfg.batch_size // ctx.world_size} crops each, {device.type})")
    if say:
        print(f"{kind}: preset {cfg.preset}, {n_params:,} parameters, {cfg.batch_size} x {cfg.crop_frames} frames "
              f"({crop_seconds:.1f} s) per step, on {where}"
              + (f" with {str(trainer.autocast_dtype).replace('torch.', '')} autocast" if trainer.autocast_dtype
                 else "") + f"; step {trainer.step} -> {cfg.steps}; run folder {kind_dir}", file=sys.stderr)
    result = run_training(trainer, kind_dir, resumed=args.resume, progress=False if args.no_progress else None,
                          keep_checkpoints=args.keep_checkpoints, writer=say,
                          stop=distributed.SyncedStop(ctx) if ctx is not None else None)
    if not say:
        return 0
    state = "interrupted" if result.interrupted else "finished"
    loss = f", last loss {result.last_loss:.4f}" if result.last_loss is not None else ""
    print(f"{kind} {state} at step {result.step}{loss}; checkpoint {result.checkpoint}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in KINDS:
            return train_command(args)
        return int(args.func(args) or 0)
    except (UsageError, RunDirError, CheckpointError, DataError) as exc:
        print(f"{PROG}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # NaN/inf loss: the last checkpoint on disk is intact
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C while finishing a step
        print(f"{PROG}: aborted; checkpoints already on disk are intact, nothing newer was saved", file=sys.stderr)
        return 130


def one_line(message: str, max_parts: int = 4) -> str:
    """Multi-line messages (e.g. one reason per rejected file) joined into one line, long lists shortened."""
    parts = [p.strip() for p in message.splitlines() if p.strip()]
    if len(parts) > max_parts + 1:
        parts = parts[:max_parts + 1] + [f"... ({len(parts) - max_parts - 1} more)"]
    return " ".join(parts)

if __name__ == "__main__":
    sys.exit(main())
