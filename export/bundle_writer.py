"""Checkpoints -> bundle directory (ONNX graphs + manifest.json), written atomically.

The bundle is assembled in a hidden temporary folder next to OUT_DIR, validated with the engine's own reader
(`engine.bundle.load_bundle`, checksums included) and only then renamed into place, so a failed or interrupted
export never leaves a half bundle under the requested name.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from engine.bundle import (FORMAT, MANIFEST, PROGRAM_FILES, UNET_FILE, VERSION, VOCODER_FILE, RenderDefaults,
                           file_entry, load_bundle)
from engine.beat_grid import BeatSettings
from engine.dsp.config import SpectrogramConfig
from engine.dsp.scaler import ScalerStats
from engine.prior import DataPrior
from engine.samplers import DEFAULT_SAMPLER
from export.compress import compress_file, round_weights_fp16
from export.onnx_export import (ExportError, beat_features, convert_fp16, export_unet, export_vocoder, unet_parity,
                                vocoder_parity)
from export.program_export import export_unet_program, export_vocoder_program, program_parity
from training.models import UNet, UNetConfig, Vocoder, VocoderConfig

# Parity thresholds: fp32 graphs must match torch to float rounding (a wrong export is off by O(1)).
UNET_PARITY_TOL = 1e-3
VOCODER_PARITY_REL_TOL = 1e-3
FP16_PARITY_REL_TOL = 5e-2
PROGRAM_PARITY_REL_TOL = 1e-4  # torch programs run the model's own float32 kernels
# --compact stores weights as float16 (float32 compute): outputs move by the weights' rounding, not by a bug.
COMPACT_PARITY_TOL = {"unet_abs": 5e-2, "vocoder_rel": 2e-2}
# The engine's default render settings (bench/RESULTS.md): DPM-Solver++ 15 steps (generation runs them as 3M on
# log-SNR-spaced steps: the report's statistics, loudness and phase SC equal DDIM 200's from the same noise,
# bench/sweep_steps.py); fast Griffin-Lim from the peak-locked phase reaches the paper's GL-200 spectral
# convergence on real music in 80 iterations.
DEFAULTS = RenderDefaults(sampler=DEFAULT_SAMPLER, steps=15, gl_iters=80, gl_init="peaks")


@dataclass
class ExportOptions:
    use_ema: bool = True
    fp16: bool = False
    compact: bool = False  # float16-stored weights, float32 compute (export.compress): half the bytes
    torch_programs: bool = False  # also unet.pt2 + vocoder.pt2 (torch.export) for the engine's torch backend
    overwrite: bool = False
    name: str | None = None
    command: str | None = None  # recorded in provenance
    seed: int = 0  # parity inputs
    notes: dict[str, Any] = field(default_factory=dict)  # extra provenance (training commands, corpus...)
    defaults: RenderDefaults = DEFAULTS  # render settings the engine uses when a request names none
    prior: DataPrior | None = None  # an eps U-Net's data prior (engine.prior; export.data_prior measures it)
    default_bpm: float | None = None  # a beat-conditioned U-Net's tempo when a request names none (else the data's)
    beat_guidance: float | None = None  # its beat-guidance scale when a request names none (None: 1, plain)
    beat_guidance_from: float | None = None  # the share of the schedule (noisy end) guided (None: all of it)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """folder/manifest.json, written to a temporary name beside it and renamed (never half a manifest)."""
    target = Path(folder) / MANIFEST
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _model_from(ckpt: dict, use_ema: bool) -> tuple[torch.nn.Module, bool]:
    kind = ckpt["kind"]
    cfg = UNetConfig.from_dict(ckpt["model_config"]) if kind == "unet" else VocoderConfig.from_dict(
        ckpt["model_config"])
    model = UNet(cfg) if kind == "unet" else Vocoder(cfg)
    ema = use_ema and ckpt.get("ema") is not None
    try:
        model.load_state_dict(ckpt["ema"] if ema else ckpt["model"])
    except RuntimeError as exc:
        raise ExportError(f"{kind} checkpoint weights do not fit its model_config: {exc}") from None
    return model.eval(), ema


def _scaler_stats(ckpt: dict) -> ScalerStats:
    try:
        return ScalerStats.from_dict(ckpt["scaler_stats"])
    except (TypeError, ValueError, KeyError) as exc:
        raise ExportError(f"{ckpt['kind']} checkpoint has no usable scaler statistics: {exc}") from None


def _check_pair(unet_ckpt: dict, vocoder_ckpt: dict) -> SpectrogramConfig:
    if unet_ckpt["kind"] != "unet" or vocoder_ckpt["kind"] != "vocoder":
        raise ExportError(f"need a unet and a vocoder checkpoint, got {unet_ckpt['kind']} and {vocoder_ckpt['kind']}")
    spec_u = SpectrogramConfig.from_dict(unet_ckpt["spectrogram"])
    spec_v = SpectrogramConfig.from_dict(vocoder_ckpt["spectrogram"])
    if spec_u != spec_v:
        raise ExportError(f"the U-Net and vocoder were trained on different spectrograms: {spec_u} vs {spec_v}")
    ucfg, vcfg = unet_ckpt["model_config"], vocoder_ckpt["model_config"]
    if ucfg.get("n_mels") != spec_u.n_mels or vcfg.get("n_mels") != spec_u.n_mels:
        raise ExportError(f"model n_mels ({ucfg.get('n_mels')}, {vcfg.get('n_mels')}) differ from the "
                          f"spectrogram's {spec_u.n_mels}")
    if vcfg.get("n_fft") != spec_u.n_fft:
        raise ExportError(f"vocoder n_fft {vcfg.get('n_fft')} differs from the spectrogram's {spec_u.n_fft}")
    if not unet_ckpt.get("diffusion"):
        raise ExportError("U-Net checkpoint has no diffusion settings")
    return spec_u


def _channels(ckpt: dict) -> int:
    for source in (ckpt.get("data") or {}, ckpt.get("train_config") or {}):
        if isinstance(source.get("channels"), int):
            return source["channels"]
    return 2  # the trainer's data is stereo (AudioFolderDataset channels=2)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _provenance(unet_ckpt: dict, vocoder_ckpt: dict, unet_ema: bool, vocoder_ema: bool,
                options: ExportOptions, sources: dict[str, str]) -> dict[str, Any]:
    def one(ckpt: dict, ema: bool, source: str) -> dict[str, Any]:
        data = ckpt.get("data") or {}
        return {"checkpoint": source, "step": int(ckpt["step"]), "preset": ckpt.get("preset"), "ema": ema,
                "data": {k: data.get(k) for k in ("root", "files", "seconds", "description")}}
    return {"unet": one(unet_ckpt, unet_ema, sources.get("unet", "")),
            "vocoder": one(vocoder_ckpt, vocoder_ema, sources.get("vocoder", "")),
            "git_commit": _git_commit(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "export_command": options.command, "torch": torch.__version__, **options.notes}


def _beat_section(unet: torch.nn.Module, ckpt: dict, default_bpm: float | None,
                  guidance: float | None = None, guidance_from: float | None = None) -> dict[str, Any]:
    """The manifest's "beat" object of a beat-conditioned U-Net, checked by the engine's own reader."""
    tempo = (ckpt.get("data") or {}).get("beat_tempo") or {}
    section: dict[str, Any] = {"features": beat_features(unet)}
    bpm = default_bpm if default_bpm is not None else tempo.get("median")
    if bpm is not None:  # else BeatSettings' default
        section["default_bpm"] = round(float(bpm), 3)
    if "min" in tempo and "max" in tempo:
        section["trained_bpm"] = [tempo["min"], tempo["max"]]
    if tempo.get("pieces"):  # what a generation with no tempo draws from (BeatSettings.tempo_prior)
        section["tempo_prior"] = tempo["pieces"]
    if guidance is not None:
        section["guidance"] = guidance
    if guidance_from is not None:
        section["guidance_from"] = guidance_from
    try:
        return BeatSettings.from_dict(section).to_dict()
    except ValueError as exc:
        raise ExportError(f"beat settings: {exc}") from None


def _export_programs(unet: torch.nn.Module, vocoder: torch.nn.Module, folder: Path, channels: int, n_mels: int,
                     lengths: tuple[int, int], generator: torch.Generator) -> dict:
    """Write both torch programs into `folder` and check them against the models (same float32 kernels, so the
    tolerance is float rounding); returns their parity record."""
    export_unet_program(unet, folder / PROGRAM_FILES[UNET_FILE], channels, n_mels, unet.cfg.frame_multiple)
    export_vocoder_program(vocoder, folder / PROGRAM_FILES[VOCODER_FILE], channels, n_mels)
    lengths = tuple(max(n, 2 * unet.cfg.frame_multiple) for n in lengths)  # the U-Net program's shortest input
    unet_inputs = {n: (torch.randn(2, channels, n_mels, n, generator=generator), torch.rand(2, generator=generator)
                       * 999.0) for n in lengths}
    if beat_features(unet):
        unet_inputs = {n: (*inputs, torch.randn(2, beat_features(unet), n, generator=generator))
                       for n, inputs in unet_inputs.items()}
    mel_inputs = {n: (torch.rand(2, channels, n_mels, n, generator=generator) * 2 - 1,) for n in lengths}
    parity = {"unet": program_parity(unet, folder / PROGRAM_FILES[UNET_FILE], unet_inputs),
              "vocoder": program_parity(vocoder, folder / PROGRAM_FILES[VOCODER_FILE], mel_inputs)}
    for name, record in parity.items():
        if record["max_rel_error"] > PROGRAM_PARITY_REL_TOL:
            raise ExportError(f"{name} torch program differs from the model by {record['max_rel_error']:.3g} "
                              "(relative)")
    return parity


def write_bundle(unet_ckpt: dict, vocoder_ckpt: dict, out_dir: str | Path, options: ExportOptions | None = None,
                 sources: dict[str, str] | None = None, log: Callable[[str], None] = lambda _: None) -> Path:
    """Export both models into `out_dir` (must not exist unless options.overwrite). Returns out_dir."""
    options = options or ExportOptions()
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not options.overwrite:
        raise FileExistsError(f"{out_dir} already exists (pass --overwrite to replace it)")
    spec = _check_pair(unet_ckpt, vocoder_ckpt)
    unet, unet_ema = _model_from(unet_ckpt, options.use_ema)
    vocoder, vocoder_ema = _model_from(vocoder_ckpt, options.use_ema)
    channels = _channels(unet_ckpt)
    multiple = unet.cfg.frame_multiple
    lengths = (multiple * max(1, 16 // multiple), multiple * max(3, 48 // multiple))  # two distinct lengths
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        log(f"exporting U-Net ({sum(p.numel() for p in unet.parameters()):,} params, EMA={unet_ema})")
        export_unet(unet, tmp / UNET_FILE, channels, spec.n_mels, lengths[0])
        log(f"exporting vocoder ({sum(p.numel() for p in vocoder.parameters()):,} params, EMA={vocoder_ema})")
        export_vocoder(vocoder, tmp / VOCODER_FILE, channels, spec.n_mels, lengths[0])
        tolerance = {"unet_abs": UNET_PARITY_TOL, "vocoder_rel": VOCODER_PARITY_REL_TOL}
        if options.compact:
            for fname in (UNET_FILE, VOCODER_FILE):
                before, after = compress_file(tmp / fname)
                log(f"{fname}: float16-stored weights, {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
            tolerance = dict(COMPACT_PARITY_TOL)
        generator = torch.Generator().manual_seed(options.seed)
        log(f"parity check torch vs onnxruntime at {lengths[0]} and {lengths[1]} frames")
        parity = {"unet": unet_parity(unet, tmp / UNET_FILE, channels, spec.n_mels, lengths, generator),
                  "vocoder": vocoder_parity(vocoder, tmp / VOCODER_FILE, channels, spec.n_mels, lengths, generator),
                  "tolerance": tolerance, "compact_weights": options.compact}
        if parity["unet"]["max_abs_error"] > tolerance["unet_abs"]:
            raise ExportError(f"U-Net ONNX graph differs from torch by {parity['unet']['max_abs_error']:.3g}")
        if parity["vocoder"]["max_rel_error"] > tolerance["vocoder_rel"]:
            raise ExportError(f"vocoder ONNX graph differs from torch by {parity['vocoder']['max_rel_error']:.3g} "
                              "(relative)")
        if options.fp16:
            log("converting graphs to float16")
            for fname in (UNET_FILE, VOCODER_FILE):
                convert_fp16(tmp / fname, tmp / fname.replace(".onnx", ".fp16.onnx"))
            # Recorded, not enforced to fp32 tolerance: half precision is for GPUs and is ~1e-3 off by nature.
            parity["fp16"] = {
                "unet": unet_parity(unet, tmp / "unet.fp16.onnx", channels, spec.n_mels, lengths, generator),
                "vocoder": vocoder_parity(vocoder, tmp / "vocoder.fp16.onnx", channels, spec.n_mels, lengths,
                                          generator)}
            if parity["fp16"]["vocoder"]["max_rel_error"] > FP16_PARITY_REL_TOL:
                raise ExportError(f"float16 vocoder graph is off by {parity['fp16']['vocoder']['max_rel_error']:.3g} "
                                  "(relative): export without --fp16")
        if options.torch_programs:
            log("exporting torch programs (unet.pt2, vocoder.pt2)")
            models = (unet, vocoder)
            if options.compact:  # the programs compute with the graphs' fp16-rounded weights (stored float32)
                models = (round_weights_fp16(unet), round_weights_fp16(vocoder))
            parity["torch"] = _export_programs(*models, tmp, channels, spec.n_mels, lengths, generator)
        files = {p.name: file_entry(p) for p in sorted([*tmp.glob("*.onnx"), *tmp.glob("*.pt2")])}
        manifest = {
            "format": FORMAT, "version": VERSION,
            "name": options.name or out_dir.name,
            "sample_rate": spec.sample_rate, "channels": channels,
            "spectrogram": spec.to_dict(),
            "scalers": {"unet": _scaler_stats(unet_ckpt).to_dict(), "vocoder": _scaler_stats(vocoder_ckpt).to_dict()},
            "diffusion": {**unet_ckpt["diffusion"], **({"prior": options.prior.to_dict()} if options.prior else {})},
            "unet": {"frame_multiple": multiple, "config": unet.cfg.to_dict(),
                     "parameters": sum(p.numel() for p in unet.parameters())},
            "vocoder": {"config": vocoder.cfg.to_dict(), "parameters": sum(p.numel() for p in vocoder.parameters())},
            "files": files, "parity": parity,
            "provenance": _provenance(unet_ckpt, vocoder_ckpt, unet_ema, vocoder_ema, options, sources or {}),
            "defaults": options.defaults.to_dict(),
        }
        if beat_features(unet):
            manifest["beat"] = _beat_section(unet, unet_ckpt, options.default_bpm, options.beat_guidance,
                                             options.beat_guidance_from)
        elif options.beat_guidance is not None or options.beat_guidance_from is not None:
            raise ExportError("a beat-guidance scale needs a beat-conditioned U-Net (msanii-train unet "
                              "--beat-conditioning); this one has no beat input")
        write_manifest(tmp, manifest)
        load_bundle(tmp)  # the engine's reader must accept what we publish
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if out_dir.exists():  # --overwrite: move the old bundle aside, then swap
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
