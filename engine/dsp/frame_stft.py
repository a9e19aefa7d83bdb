"""The STFT pair of `engine.dsp.spectrogram` re-expressed for iterative phase reconstruction.

Same definition (hann window, zero centre padding of n_fft/2, window-square normalised overlap-add), but spectra
are kept frame-major [..., frames, n_freqs] so every FFT runs on contiguous rows, the window envelope and the
signal-support mask are computed once, and overlap-add is r = n_fft/hop shifted slice additions instead of
torch.istft's general fold. Griffin-Lim calls this pair hundreds of times on 190 s stereo clips, where torch's
generic stft/istft spend most of their time in layout copies and per-call envelope work.

Shapes: frame-major complex spectrum [..., frames, n_freqs] <-> padded signal [..., length + 2 * (n_fft // 2)].
"""
from __future__ import annotations

import torch

from engine.dsp.config import SpectrogramConfig


class FrameSTFT:
    """STFT/ISTFT for a fixed signal length (`length` samples, `frames` = length // hop + 1)."""

    def __init__(self, cfg: SpectrogramConfig, length: int, device: torch.device | str = "cpu") -> None:
        n, hop = cfg.n_fft, cfg.hop_length
        if hop > n // 2:
            raise ValueError(f"hop {hop} must be at most n_fft/2 ({n // 2}) for overlap-add reconstruction")
        self.n_fft, self.hop, self.length = n, hop, length
        self.pad = n // 2
        self.frames = length // hop + 1
        self.padded = length + 2 * self.pad
        window = torch.hann_window(cfg.win_length, device=device)
        left = (n - cfg.win_length) // 2  # torch.stft centres a shorter window inside n_fft
        self.window = torch.nn.functional.pad(window, (left, n - cfg.win_length - left))
        self.ola_length = (self.frames - 1) * hop + n  # <= padded: trailing samples get no frame
        envelope = self.overlap_add(self.window.square().expand(self.frames, n))
        inv = torch.where(envelope > 1e-11, 1.0 / envelope, torch.zeros_like(envelope))
        support = torch.zeros(self.ola_length, device=device)
        support[self.pad:self.pad + length] = 1.0  # the signal lives here; the padding is zero by definition
        self.synthesis_gain = inv * support

    def overlap_add(self, frames: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
        """[..., frames, n_fft] time-domain frames (times `window` if given) -> [..., ola_length] summed at hop
        spacing. The window is applied inside the additions: one pass over the frames instead of two."""
        lead, k, n, hop = frames.shape[:-2], frames.shape[-2], self.n_fft, self.hop
        if n % hop == 0:
            r = n // hop
            parts = frames.reshape(*lead, k, r, hop)
            out = frames.new_zeros(*lead, k + r - 1, hop)
            for j in range(r):
                if window is None:
                    out[..., j:j + k, :] += parts[..., j, :]
                else:
                    out[..., j:j + k, :].addcmul_(parts[..., j, :], window[j * hop:(j + 1) * hop])
            return out.reshape(*lead, (k + r - 1) * hop)
        if window is not None:
            frames = frames * window
        flat = frames.reshape(-1, k, n).transpose(1, 2)  # general hop: fold
        out = torch.nn.functional.fold(flat, (1, self.ola_length), (1, n), stride=(1, hop))
        return out.reshape(*lead, self.ola_length)

    def synthesise(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Frame-major spectrum -> padded signal [..., padded] (zero outside the signal's support)."""
        signal = self.overlap_add(torch.fft.irfft(spectrum, n=self.n_fft), self.window)
        signal.mul_(self.synthesis_gain)
        if self.ola_length < self.padded:
            signal = torch.nn.functional.pad(signal, (0, self.padded - self.ola_length))
        return signal

    def analyse(self, padded_signal: torch.Tensor) -> torch.Tensor:
        """Padded signal [..., padded] -> frame-major spectrum [..., frames, n_freqs]."""
        return torch.fft.rfft(padded_signal.unfold(-1, self.n_fft, self.hop) * self.window)

    def block_context(self, start: int, stop: int) -> tuple[int, int]:
        """Frames [first, last) whose synthesis reaches the analysis windows of frames [start, stop): frame k
        reads samples [k*hop, k*hop + n_fft), written only by frames k - r + 1 .. k + r - 1 (r = n_fft / hop).
        When hop does not divide n_fft, overlap_add works on the whole signal only: every frame, whatever the block."""
        if self.n_fft % self.hop:
            return 0, self.frames
        r = self.n_fft // self.hop
        return max(0, start - r + 1), min(self.frames, stop + r - 1)

    def project(self, spectrum: torch.Tensor, first: int, start: int, stop: int) -> torch.Tensor:
        """Frames [start, stop) of analyse(synthesise(S)), given S's frames [first, last) = block_context(start,
        stop) as `spectrum` [..., last - first, n_freqs]; returns [..., stop - start, n_freqs].

        Run block by block, a Griffin-Lim projection keeps a cache-sized working set instead of ~8 passes over
        spectrum-sized buffers (65 MB per channel at 190 s), whose cost grew faster than the clip (bench/RESULTS.md,
        "Figures behind code choices")."""
        n, hop = self.n_fft, self.hop
        signal = self.overlap_add(torch.fft.irfft(spectrum, n=n), self.window)
        signal.mul_(self.synthesis_gain[first * hop:first * hop + signal.shape[-1]])
        offset = (start - first) * hop
        frames = signal[..., offset:offset + (stop - start - 1) * hop + n].unfold(-1, n, hop)
        return torch.fft.rfft(frames * self.window)

    def crop(self, padded_signal: torch.Tensor) -> torch.Tensor:
        """[..., padded] -> the signal [..., length]."""
        return padded_signal[..., self.pad:self.pad + self.length]
