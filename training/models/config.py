"""Model configs: `paper` (Table 1/2 defaults) and `small` (trains on 2 CPU cores).

The small U-Net keeps the paper's width of 256 (Appendix C: width >= 2x the 128 mel bins) and shrinks depth
instead: 4 levels x 1 block, attention at the last two levels and the middle, MLP factor 2.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class UNetConfig:
    n_mels: int = 128
    width: int = 256
    timestep_dim: int = 128
    mlp_factor: int = 4
    heads: int = 8
    width_multipliers: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 1)
    dilations: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 1)
    attention: tuple[bool, ...] = (False, False, False, False, False, True, True)
    resampling: tuple[bool, ...] = (True, True, True, True, True, True, False)
    blocks_per_level: tuple[int, ...] = (2, 2, 2, 2, 2, 2, 2)
    # > 0: the U-Net also takes a beat grid [B, beat_features, T] (engine.beat_grid), added to the tokens through
    # a 1x1 projection that starts at zero (a warm start from an unconditioned model begins as that model).
    beat_features: int = 0

    def __post_init__(self) -> None:
        if self.beat_features < 0:
            raise ValueError(f"beat_features must be >= 0, got {self.beat_features}")
        n = len(self.width_multipliers)
        for name in ("dilations", "attention", "resampling", "blocks_per_level"):
            value = tuple(getattr(self, name))
            if len(value) != n:
                raise ValueError(f"UNetConfig.{name} has {len(value)} entries, expected {n} (one per level)")
            setattr(self, name, value)
        self.width_multipliers = tuple(self.width_multipliers)
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")

    @property
    def frame_multiple(self) -> int:
        """Mel length must be a multiple of this (2 ** number of downsamplings)."""
        return 2 ** sum(self.resampling)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UNetConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


@dataclass
class VocoderConfig:
    n_mels: int = 128
    n_fft: int = 2048
    width: int = 256
    mlp_factor: int = 4

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VocoderConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def unet_preset(name: str) -> UNetConfig:
    if name == "paper":
        return UNetConfig()
    if name == "small":
        return UNetConfig(mlp_factor=2, width_multipliers=(1, 1, 1, 1), dilations=(1, 1, 1, 1),
                          attention=(False, False, True, True), resampling=(True, True, True, False),
                          blocks_per_level=(1, 1, 1, 1))
    if name == "tiny":  # tests only: seconds to build and run
        return UNetConfig(width=32, timestep_dim=16, mlp_factor=2, heads=4, width_multipliers=(1, 1),
                          dilations=(1, 1), attention=(False, True), resampling=(True, False),
                          blocks_per_level=(1, 1))
    raise ValueError(f"unknown U-Net preset {name!r}: use paper, small or tiny")


def vocoder_preset(name: str) -> VocoderConfig:
    if name in ("paper", "small"):  # the paper's vocoder is already small (1.4 M parameters)
        return VocoderConfig()
    if name == "tiny":
        return VocoderConfig(width=32, mlp_factor=2)
    raise ValueError(f"unknown vocoder preset {name!r}: use paper, small or tiny")
