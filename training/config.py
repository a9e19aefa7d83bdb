"""Training configuration: dataclasses with the paper's defaults (Tables 1/2) and the `small`/`tiny` presets.

Crop lengths are stored in mel frames; the audio crop is `samples_for_frames(frames) = (frames - 1) * hop`
samples, whose centred STFT has exactly `frames` frames (paper: 8,387,584 samples -> 8192 frames for the U-Net,
523,264 samples -> 512 frames for the vocoder).

Presets:
- `paper`: U-Net 8192 frames x batch 4, 110k steps, EMA from step 2000; vocoder 512 frames x batch 8, 40k steps.
- `small` (trains on 2 CPU cores): U-Net 256 frames (~6 s) x batch 4, EMA from step 500 (a CPU run is only a few
  thousand steps long, so the paper's 2000-step EMA delay would leave most of it a plain copy); vocoder 64 frames
  (~1.5 s) x batch 8. Optimiser, warm-up and clipping as the paper.
- `tiny`: tests only; the tiny models, 16-frame crops, batch 2.
The small and tiny U-Nets train with a frozen scaler (`TrainConfig.scaler`); the paper preset keeps Appendix A's
batch statistics.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

KINDS = ("unet", "vocoder")
PRESETS = ("paper", "small", "tiny")
SCALER_MODES = ("batch", "frozen")


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    warmup_steps: int = 500
    warmup_start_factor: float = 1 / 3
    grad_clip: float = 1.0


@dataclass
class EMAConfig:
    """EMA of the U-Net weights: a plain copy up to `start_step`, then every `every` steps
    ema <- decay * ema + (1 - decay) * weights."""
    start_step: int = 2000
    decay: float = 0.995
    every: int = 10


@dataclass
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainConfig:
    kind: str  # "unet" | "vocoder"
    preset: str  # model preset name (training.models.config)
    steps: int
    batch_size: int
    crop_frames: int
    seed: int = 0
    checkpoint_every: int = 1000
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig | None = None  # U-Net only
    diffusion: DiffusionConfig | None = None  # U-Net only
    precision: str = "auto"  # auto: bf16 (or fp16 + GradScaler) autocast on CUDA, fp32 on CPU; or fp32|bf16|fp16
    sc_weight: float = 1.0  # vocoder only: loss = sc_weight * spectral convergence + log-magnitude (paper: 1)
    # How each batch's log-mel is scaled to [-1, 1]: "batch" (Appendix A: the batch's own statistics, running ones
    # kept for inference) or "frozen" (statistics fitted on SCALER_FIT_BATCHES batches at the start, then fixed, so
    # training sees the model space inference uses; training.trainer says why small batches need it).
    scaler: str = "batch"
    # U-Net only: also learn to follow a beat grid (engine.beat_grid) from the data's beat sidecars
    # (training.data.beats); with probability beat_dropout a crop is shown without one, so the model also
    # generates when no tempo is given.
    beat_conditioning: bool = False
    beat_dropout: float = 0.2
    # File-name glob -> factor on how often its files' seconds are drawn (training.data.audio_folder); {}: by length.
    oversample: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.beat_dropout <= 1.0:
            raise ValueError(f"beat-dropout must be within [0, 1], got {self.beat_dropout}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}: use unet or vocoder")
        for name in ("steps", "batch_size", "crop_frames", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.sc_weight > 0:
            raise ValueError(f"sc-weight must be > 0, got {self.sc_weight}")
        if self.scaler not in SCALER_MODES:
            raise ValueError(f"unknown scaler mode {self.scaler!r}: use {' or '.join(SCALER_MODES)}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"unknown precision {self.precision!r}: use auto, fp32, bf16 or fp16")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["optim"]["betas"] = list(self.optim.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        optim = dict(values.get("optim") or {})
        if "betas" in optim:
            optim["betas"] = tuple(optim["betas"])
        values["optim"] = OptimConfig(**optim)
        values["ema"] = EMAConfig(**values["ema"]) if values.get("ema") else None
        values["diffusion"] = DiffusionConfig(**values["diffusion"]) if values.get("diffusion") else None
        return cls(**values)

    def with_overrides(self, **changes: Any) -> "TrainConfig":
        """Copy with the non-None keyword values replaced (CLI flags the user gave)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def train_preset(kind: str, name: str) -> TrainConfig:
    """The training defaults of preset `name` ("paper" | "small" | "tiny") for model `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}: use unet or vocoder")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: use paper, small or tiny")
    if kind == "unet":
        ema = {"paper": EMAConfig(), "small": EMAConfig(start_step=500), "tiny": EMAConfig(start_step=10, every=2)}
        frames, batch, steps = {"paper": (8192, 4, 110_000), "small": (256, 4, 20_000), "tiny": (16, 2, 200)}[name]
        return TrainConfig("unet", name, steps, batch, frames, ema=ema[name], diffusion=DiffusionConfig(),
                           checkpoint_every=500 if name == "small" else 1000,
                           scaler="batch" if name == "paper" else "frozen")
    frames, batch, steps = {"paper": (512, 8, 40_000), "small": (64, 8, 5_000), "tiny": (16, 2, 200)}[name]
    return TrainConfig("vocoder", name, steps, batch, frames, checkpoint_every=500 if name == "small" else 1000)
