"""Spectrogram settings (paper section 4.2.1, Table 1): the contract written into every bundle."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SpectrogramConfig:
    sample_rate: int = 44_100
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 1024
    window: str = "hann"
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None  # None: Nyquist
    mel_norm: str | None = None  # torchaudio.functional.melscale_fbanks "norm"
    mel_scale: str = "htk"
    log_floor: float = 1e-5  # log(mel + floor): keeps silence finite
    center_pad: str = "constant"  # zero padding at the edges works for any length (reflect needs > n_fft/2 samples)

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpectrogramConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown spectrogram field(s): {sorted(unknown)}")
        return cls(**data)
