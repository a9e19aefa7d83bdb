"""Building blocks of the Msanii U-Net and vocoder (paper section 3.1).

Feature maps are [B, D, C, T]: D features per token, C audio channels, T frames. Mel frequencies are projected
into D (tokenisation along frequency), so attention and convolutions run over (channel, time).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class Tokenize(nn.Module):
    """[B, C, F, T] spectrogram -> [B, D, C, T] tokens (1x1 projection of the frequency axis)."""

    def __init__(self, n_in: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(n_in, width, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.transpose(1, 2))


class Detokenize(nn.Module):
    """[B, D, C, T] tokens -> [B, C, F, T]."""

    def __init__(self, width: int, n_out: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(width, n_out, kernel_size=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h).transpose(1, 2)


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of (float) diffusion timesteps followed by an MLP. [B] -> [B, dim, 1, 1]."""

    def __init__(self, dim: int, mlp_factor: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_factor), nn.GELU(), nn.Linear(dim * mlp_factor, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000) / (half - 1)))
        angles = t.float().reshape(-1, 1) * freqs[None, :]
        emb = self.mlp(torch.cat((angles.sin(), angles.cos()), dim=-1))
        return emb[:, :, None, None]


class ResidualBlock(nn.Module):
    """InstanceNorm -> 3x3 conv (+ timestep) -> GELU-first ConvNeXt MLP, plus a (projected) residual."""

    def __init__(self, d_in: int, d_out: int, mlp_factor: int, dilation: int = 1,
                 timestep_dim: int | None = None) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(d_in)
        self.conv = nn.Conv2d(d_in, d_out, kernel_size=3, dilation=dilation, padding=dilation)
        self.timestep = nn.Conv2d(timestep_dim, d_out, kernel_size=1) if timestep_dim else None
        self.mlp = nn.Sequential(nn.GELU(), nn.Conv2d(d_out, d_out * mlp_factor, 1), nn.GELU(),
                                 nn.Conv2d(d_out * mlp_factor, d_out, 1))
        self.skip = nn.Conv2d(d_in, d_out, kernel_size=1) if d_in != d_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(self.norm(x))
        if self.timestep is not None:
            h = h + self.timestep(t_emb)
        return self.mlp(h) + self.skip(x)


class LinearAttention(nn.Module):
    """Katharopoulos-style linear attention over time, per audio channel, with a residual. Cost is linear in T."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (width // heads) ** -0.5
        self.norm = nn.InstanceNorm2d(width)
        self.qkv = nn.Conv2d(width, width * 3, kernel_size=1)
        self.out = nn.Conv2d(width, width, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, c, t = x.shape
        qkv = self.qkv(self.norm(x))  # [B, 3D, C, T]
        # -> [B*C, heads, D/heads, T] for each of q, k, v
        qkv = qkv.reshape(b, 3, self.heads, d // self.heads, c, t).permute(1, 0, 4, 2, 3, 5)
        q, k, v = qkv.reshape(3, b * c, self.heads, d // self.heads, t).unbind(0)
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        v = v / t
        context = torch.matmul(k, v.transpose(-1, -2))  # [BC, H, dk, dv]
        out = torch.matmul(context.transpose(-1, -2), q)  # [BC, H, dv, T]
        out = out.reshape(b, c, d, t).transpose(1, 2)
        return self.out(out) + x


class Block(nn.Module):
    """Residual block followed (optionally) by post-attention (paper: attention after the block)."""

    def __init__(self, d_in: int, d_out: int, mlp_factor: int, dilation: int, timestep_dim: int, heads: int,
                 attention: bool) -> None:
        super().__init__()
        self.residual = ResidualBlock(d_in, d_out, mlp_factor, dilation, timestep_dim)
        self.attention = LinearAttention(d_out, heads) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        return self.attention(self.residual(x, t_emb))


def downsample(width: int) -> nn.Conv2d:
    """Halves time: Conv(1x3, stride 1x2, pad 0x1)."""
    return nn.Conv2d(width, width, kernel_size=(1, 3), stride=(1, 2), padding=(0, 1))


def upsample(width: int) -> nn.ConvTranspose2d:
    """Doubles time: ConvTranspose(1x4, stride 1x2, pad 0x1)."""
    return nn.ConvTranspose2d(width, width, kernel_size=(1, 4), stride=(1, 2), padding=(0, 1))
