"""Read and validate a model bundle. The only place that knows the format (export/bundle_writer.py writes it).

A bundle is a directory with `manifest.json`, `unet.onnx` and `vocoder.onnx` (optionally `*.fp16.onnx`, and
torch exported programs `unet.pt2` + `vocoder.pt2` for the torch backend), or a .zip of one (extracted to a
private temporary folder for the life of the process).
`load_bundle` checks every field the engine relies on, each file's size and sha256, and the major version, and
raises one `BundleError` naming the problem. `validate_manifest` is also what export runs before publishing.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from engine.beat_grid import BeatSettings
from engine.dsp.config import SpectrogramConfig
from engine.dsp.scaler import ScalerStats
from engine.prior import DataPrior
from engine.samplers import DEFAULT_SAMPLER, SAMPLER_NAMES

FORMAT = "msanii-daw-bundle"
VERSION = "1.0"
SUPPORTED_MAJOR = 1
MANIFEST = "manifest.json"
UNET_FILE = "unet.onnx"
VOCODER_FILE = "vocoder.onnx"
REQUIRED_FILES = (UNET_FILE, VOCODER_FILE)
PROGRAM_FILES = {UNET_FILE: "unet.pt2", VOCODER_FILE: "vocoder.pt2"}  # optional torch.export twins of the graphs
GL_INITS = ("peaks", "advance", "random", "zeros")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class BundleError(ValueError):
    """A bundle cannot be used; the message names the file or manifest field at fault."""


@dataclass(frozen=True)
class DiffusionSettings:
    num_train_timesteps: int
    beta_schedule: str
    prediction_type: str
    prior: DataPrior | None = None  # optional: the training data's mean spectrum (engine.prior)

    def to_dict(self) -> dict[str, Any]:
        """The noise schedule's fields (make_scheduler's keyword arguments); the prior is read as `prior`."""
        return {"num_train_timesteps": self.num_train_timesteps, "beta_schedule": self.beta_schedule,
                "prediction_type": self.prediction_type}


@dataclass(frozen=True)
class RenderDefaults:
    sampler: str = DEFAULT_SAMPLER
    steps: int = 15
    gl_iters: int = 80
    gl_init: str = "peaks"

    def to_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "steps": self.steps, "gl_iters": self.gl_iters, "gl_init": self.gl_init}


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    name: str
    sample_rate: int
    channels: int
    spectrogram: SpectrogramConfig
    unet_stats: ScalerStats
    vocoder_stats: ScalerStats
    diffusion: DiffusionSettings
    frame_multiple: int
    defaults: RenderDefaults
    files: dict[str, Path] = field(default_factory=dict)  # every listed file, checked
    beat: BeatSettings | None = None  # a beat-conditioned U-Net's grid settings (engine.beat_grid)

    @property
    def unet_path(self) -> Path:
        return self.files[UNET_FILE]

    @property
    def vocoder_path(self) -> Path:
        return self.files[VOCODER_FILE]

    def fp16_path(self, model_file: str) -> Path | None:
        """`unet.fp16.onnx` for `unet.onnx` if the bundle has it."""
        return self.files.get(model_file.replace(".onnx", ".fp16.onnx"))

    def program_path(self, model_file: str) -> Path | None:
        """`unet.pt2` (a torch exported program of the same model) for `unet.onnx` if the bundle has it."""
        return self.files.get(PROGRAM_FILES[model_file])

    @property
    def has_programs(self) -> bool:
        """Both models are also there as torch exported programs (the torch backend can run this bundle)."""
        return all(self.program_path(name) is not None for name in PROGRAM_FILES)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest's record of one file: {"sha256", "bytes"}."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


# ---------------------------------------------------------------- field checks (each names its field)

def _get(data: dict, key: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise BundleError(f"manifest field '{where}' must be an object")
    if key not in data:
        raise BundleError(f"manifest is missing field '{f'{where}.{key}' if where else key}'")
    return data[key]


def _int(data: dict, key: str, where: str, minimum: int = 1) -> int:
    value = _get(data, key, where)
    name = f"{where}.{key}" if where else key
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BundleError(f"manifest field '{name}' must be an integer >= {minimum}, got {value!r}")
    return value


def _choice(data: dict, key: str, where: str, choices: tuple[str, ...]) -> str:
    value = _get(data, key, where)
    name = f"{where}.{key}" if where else key
    if value not in choices:
        raise BundleError(f"manifest field '{name}' must be one of {list(choices)}, got {value!r}")
    return value


def _object(data: dict, key: str, where: str = "") -> dict:
    value = _get(data, key, where)
    name = f"{where}.{key}" if where else key
    if not isinstance(value, dict):
        raise BundleError(f"manifest field '{name}' must be an object, got {type(value).__name__}")
    return value


def _check_version(manifest: dict) -> None:
    if manifest.get("format") != FORMAT:
        raise BundleError(f"manifest field 'format' must be {FORMAT!r}, got {manifest.get('format')!r} "
                          "(not a msanii-daw bundle)")
    version = _get(manifest, "version", "")
    match = re.fullmatch(r"(\d+)\.(\d+)", str(version)) if isinstance(version, str) else None
    if match is None:
        raise BundleError(f"manifest field 'version' must look like '1.0', got {version!r}")
    if int(match.group(1)) != SUPPORTED_MAJOR:
        raise BundleError(f"bundle version {version} is not supported: this engine reads major version "
                          f"{SUPPORTED_MAJOR} (re-export the bundle or update msanii-daw)")


def _prior(diffusion: dict, n_mels: int) -> DataPrior | None:
    if diffusion.get("prior") is None:
        return None
    try:
        prior = DataPrior.from_dict(diffusion["prior"])
    except ValueError as exc:
        raise BundleError(f"manifest field 'diffusion.prior' is malformed: {exc}") from None
    if len(prior.mean) != n_mels:
        raise BundleError(f"manifest field 'diffusion.prior' has {len(prior.mean)} bins, the spectrogram {n_mels}")
    if diffusion.get("prediction_type") != "epsilon":
        raise BundleError("manifest field 'diffusion.prior' is only for epsilon-prediction models (engine.prior)")
    return prior


def _beat(manifest: dict) -> BeatSettings | None:
    features = (manifest.get("unet") or {}).get("config", {}).get("beat_features", 0) or 0
    if manifest.get("beat") is None:
        if features:
            raise BundleError("manifest has a beat-conditioned U-Net (unet.config.beat_features) but no 'beat' field")
        return None
    try:
        beat = BeatSettings.from_dict(manifest["beat"])
    except ValueError as exc:
        raise BundleError(f"manifest field 'beat' is malformed: {exc}") from None
    if beat.features != features:
        raise BundleError(f"manifest field 'beat.features' ({beat.features}) differs from the U-Net's "
                          f"unet.config.beat_features ({features})")
    return beat


def _scaler(scalers: dict, key: str) -> ScalerStats:
    raw = _object(scalers, key, "scalers")
    try:
        return ScalerStats.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"manifest field 'scalers.{key}' is malformed: {exc}") from None


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check every field the engine uses; return the parsed pieces (raises BundleError)."""
    if not isinstance(manifest, dict):
        raise BundleError("manifest.json must hold a JSON object")
    _check_version(manifest)
    name = _get(manifest, "name", "")
    if not isinstance(name, str) or not name:
        raise BundleError(f"manifest field 'name' must be a non-empty string, got {name!r}")
    sample_rate = _int(manifest, "sample_rate", "")
    channels = _int(manifest, "channels", "")
    try:
        spectrogram = SpectrogramConfig.from_dict(_object(manifest, "spectrogram"))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"manifest field 'spectrogram' is malformed: {exc}") from None
    if spectrogram.sample_rate != sample_rate:
        raise BundleError(f"manifest field 'spectrogram.sample_rate' ({spectrogram.sample_rate}) differs from "
                          f"'sample_rate' ({sample_rate})")
    scalers = _object(manifest, "scalers")
    unet_stats, vocoder_stats = _scaler(scalers, "unet"), _scaler(scalers, "vocoder")
    diffusion_raw = _object(manifest, "diffusion")
    diffusion = DiffusionSettings(_int(diffusion_raw, "num_train_timesteps", "diffusion"),
                                  _choice(diffusion_raw, "beta_schedule", "diffusion", BETA_SCHEDULES),
                                  _choice(diffusion_raw, "prediction_type", "diffusion", PREDICTION_TYPES),
                                  _prior(diffusion_raw, spectrogram.n_mels))
    unet = _object(manifest, "unet")
    frame_multiple = _int(unet, "frame_multiple", "unet")
    _object(unet, "config", "unet")
    _object(_object(manifest, "vocoder"), "config", "vocoder")
    defaults_raw = _object(manifest, "defaults")
    defaults = RenderDefaults(_choice(defaults_raw, "sampler", "defaults", SAMPLER_NAMES),
                              _int(defaults_raw, "steps", "defaults"),
                              _int(defaults_raw, "gl_iters", "defaults", minimum=0),
                              _choice(defaults_raw, "gl_init", "defaults", GL_INITS))
    files = _object(manifest, "files")
    for required in REQUIRED_FILES:
        if required not in files:
            raise BundleError(f"manifest field 'files' does not list {required!r}")
    programs = [name for name in PROGRAM_FILES.values() if name in files]
    if len(programs) == 1:
        raise BundleError(f"manifest field 'files' lists {programs[0]!r} without its twin: torch programs come as "
                          f"a pair ({' and '.join(PROGRAM_FILES.values())})")
    for fname, entry in files.items():
        if not isinstance(fname, str) or "/" in fname or "\\" in fname or fname.startswith("."):
            raise BundleError(f"manifest field 'files' has an unsafe file name {fname!r}")
        digest = _get(entry, "sha256", f"files.{fname}")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BundleError(f"manifest field 'files.{fname}.sha256' must be 64 lowercase hex digits")
        _int(entry, "bytes", f"files.{fname}", minimum=0)
    for optional in ("parity", "provenance"):
        if optional in manifest and not isinstance(manifest[optional], dict):
            raise BundleError(f"manifest field '{optional}' must be an object")
    return {"name": name, "sample_rate": sample_rate, "channels": channels, "spectrogram": spectrogram,
            "unet_stats": unet_stats, "vocoder_stats": vocoder_stats, "diffusion": diffusion,
            "frame_multiple": frame_multiple, "defaults": defaults, "beat": _beat(manifest)}


def _unzip(archive: Path) -> Path:
    """Extract a zipped bundle (files at the top level or in one folder) into a private temporary folder that is
    removed when the process exits; returns the folder holding manifest.json."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            for name in names:
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts or len(parts) > 2:
                    raise BundleError(f"zipped bundle {archive} has an unsafe or nested member {name!r}")
            target = Path(tempfile.mkdtemp(prefix="msanii-bundle-"))
            atexit.register(shutil.rmtree, target, True)
            zf.extractall(target, members=names)
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{archive} is not a readable zip file: {exc}") from None
    manifests = list(target.glob(MANIFEST)) + list(target.glob(f"*/{MANIFEST}"))
    if len(manifests) != 1:
        raise BundleError(f"zipped bundle {archive} must hold exactly one {MANIFEST}, found {len(manifests)}")
    return manifests[0].parent


def load_bundle(path: str | Path, verify_checksums: bool = True) -> Bundle:
    """Read `path`/manifest.json, validate it and check every listed file's size and sha256. `path` may also
    be a .zip of a bundle directory."""
    root = Path(path).expanduser()
    if not root.exists():
        raise BundleError(f"bundle not found: {root}")
    if root.is_file() and root.suffix.lower() == ".zip":
        root = _unzip(root)
    if not root.is_dir():
        raise BundleError(f"bundle must be a directory holding {MANIFEST} (or a .zip of one), got a file: {root}")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"bundle {root} has no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path} is not valid JSON: {exc}") from None
    parsed = validate_manifest(manifest)
    files: dict[str, Path] = {}
    for fname, entry in manifest["files"].items():
        fpath = root / fname
        if not fpath.is_file():
            raise BundleError(f"bundle file missing: {fname} (listed in {MANIFEST}, not found in {root})")
        size = fpath.stat().st_size
        if size != entry["bytes"]:
            raise BundleError(f"bundle file {fname} has {size} bytes, manifest says {entry['bytes']} "
                              "(truncated or replaced)")
        if verify_checksums and sha256_file(fpath) != entry["sha256"]:
            raise BundleError(f"bundle file {fname} fails its sha256 checksum (corrupted or replaced)")
        files[fname] = fpath
    return Bundle(path=root, manifest=manifest, files=files, **parsed)
