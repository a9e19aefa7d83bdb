"""The Msanii U-Net (paper section 3.1, Table 2). x [B, C, n_mels, T], t [B] -> prediction [B, C, n_mels, T]."""
from __future__ import annotations

import torch
from torch import nn

from training.models.config import UNetConfig
from training.models.layers import Block, Detokenize, ResidualBlock, LinearAttention, TimestepEmbedding, Tokenize
from training.models.layers import downsample, upsample


class MiddleBlock(nn.Module):
    def __init__(self, width: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.first = ResidualBlock(width, width, cfg.mlp_factor, 1, cfg.timestep_dim)
        self.attention = LinearAttention(width, cfg.heads)
        self.second = ResidualBlock(width, width, cfg.mlp_factor, 1, cfg.timestep_dim)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        return self.second(self.attention(self.first(x, t_emb)), t_emb)


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or UNetConfig()
        widths = [cfg.width * m for m in cfg.width_multipliers]
        pairs = list(zip(widths, widths[1:] + widths[-1:]))  # (in, out) width per level
        self.tokenize = Tokenize(cfg.n_mels, cfg.width)
        self.beat = nn.Conv1d(cfg.beat_features, cfg.width, kernel_size=1) if cfg.beat_features else None
        if self.beat is not None:
            nn.init.zeros_(self.beat.weight)
            nn.init.zeros_(self.beat.bias)
        self.detokenize = Detokenize(cfg.width, cfg.n_mels)
        self.timestep_embedding = TimestepEmbedding(cfg.timestep_dim, cfg.mlp_factor)

        def block(d_in: int, d_out: int, level: int) -> Block:
            return Block(d_in, d_out, cfg.mlp_factor, cfg.dilations[level], cfg.timestep_dim, cfg.heads,
                         cfg.attention[level])

        self.encoder = nn.ModuleList()
        for level, (d_in, d_out) in enumerate(pairs):
            for _ in range(cfg.blocks_per_level[level]):
                self.encoder.append(block(d_in, d_out, level))
                d_in = d_out
            if cfg.resampling[level]:
                self.encoder.append(downsample(d_out))
        self.middle = MiddleBlock(widths[-1], cfg)
        self.decoder = nn.ModuleList()
        for level in reversed(range(len(pairs))):
            d_out, d_in = pairs[level]
            if cfg.resampling[level]:
                self.decoder.append(upsample(d_in))
            # Each decoder block consumes one skip (concatenated, hence 2x input width); the last one of a
            # level maps back to the level's input width.
            level_blocks = []
            for _ in range(cfg.blocks_per_level[level]):
                level_blocks.append(block(d_in * 2, d_out, level))
                d_out = d_in
            self.decoder.extend(reversed(level_blocks))

    # tensors a warm start from an unconditioned model may lack (they keep their zero initialisation)
    optional_on_warm_start = ("beat.",)

    def forward(self, x: torch.Tensor, t: torch.Tensor, beat: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, n_mels, T], t [B], beat [B, beat_features, T] (a beat-conditioned model; None or zeros: no
        grid) -> [B, C, n_mels, T]."""
        t_emb = self.timestep_embedding(t)
        h = self.tokenize(x)
        if self.beat is not None and beat is not None:
            h = h + self.beat(beat.to(h.dtype))[:, :, None, :]  # the same grid for both audio channels
        skips = []
        for layer in self.encoder:
            if isinstance(layer, Block):
                h = layer(h, t_emb)
                skips.append(h)
            else:
                h = layer(h)
        h = self.middle(h, t_emb)
        for layer in self.decoder:
            if isinstance(layer, Block):
                h = layer(torch.cat((h, skips.pop()), dim=1), t_emb)
            else:
                h = layer(h)
        return self.detokenize(h)
