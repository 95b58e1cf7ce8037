"""Per-frame synthesis network (StyleGAN2-like): styles w [B, W] and motion codes m [B, M] -> frames [B, C, R, R].

Input: a learned constant [C4, 4, 4] plus a map of [w, m] to [C4, 4, 4] (so motion can move
things around from the first layer on). Then at 4x4 one modulated 3x3 conv; for each resolution
8..R a block of (modulated 3x3 conv at the low resolution -> fused_upsample: 2x up + FIR + bias +
lrelu) and a modulated 3x3 conv; every resolution adds a toRGB output to an FIR-upsampled image skip.
C = cfg.channels: 3 (RGB) or 1 (grey); toRGB layers output C channels and the skip carries C.
No random noise inputs: the output is a deterministic function of (w, m), and each frame of the
batch is computed independently of the others.
"""
import math

import torch
import torch.nn as nn

from vidgan.nn import EqualLinear, StyleConv, ToRGB, Upsample2d


class SynthesisBlock(nn.Module):
    """[B, Cin, r/2, r/2] + image skip [B, C, r/2, r/2] -> [B, Cout, r, r] + image [B, C, r, r] (C = channels)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, clamp, channels: int = 3):
        super().__init__()
        self.conv0 = StyleConv(in_channels, out_channels, w_dim, up=True, clamp=clamp)
        self.conv1 = StyleConv(out_channels, out_channels, w_dim, clamp=clamp)
        self.torgb = ToRGB(out_channels, w_dim, channels=channels, clamp=clamp)
        self.up_rgb = Upsample2d()

    def forward(self, x: torch.Tensor, img: torch.Tensor, w: torch.Tensor):
        x = self.conv1(self.conv0(x, w), w)
        return x, self.up_rgb(img) + self.torgb(x, w)


class SynthesisNetwork(nn.Module):
    """(w [B, W], m [B, M]) -> frames [B, C, R, R], C = cfg.channels; each frame of the batch is computed alone."""

    def __init__(self, cfg):
        super().__init__()
        self.resolution = cfg.resolution
        clamp = cfg.conv_clamp
        c4 = cfg.g_width(4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.input_map = EqualLinear(cfg.w_dim + cfg.motion_code_dim, c4 * 16)
        self.conv4 = StyleConv(c4, c4, cfg.w_dim, clamp=clamp)
        self.torgb4 = ToRGB(c4, cfg.w_dim, channels=cfg.channels, clamp=clamp)
        blocks, cin = [], c4
        for k in range(3, int(math.log2(cfg.resolution)) + 1):
            cout = cfg.g_width(2 ** k)
            blocks.append(SynthesisBlock(cin, cout, cfg.w_dim, clamp, cfg.channels))
            cin = cout
        self.blocks = nn.ModuleList(blocks)

    def forward(self, w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """w [B, W], m [B, M] -> frames [B, C, R, R]."""
        b = w.shape[0]
        x = self.const[None] + self.input_map(torch.cat([w, m], dim=1)).reshape(b, *self.const.shape)
        x = self.conv4(x, w)                                    # [B, C4, 4, 4]
        img = self.torgb4(x, w)                                 # [B, C, 4, 4]
        for block in self.blocks:
            x, img = block(x, img, w)                           # [B, Cr, r, r], [B, C, r, r]
        return img
