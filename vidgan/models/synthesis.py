"""Per-frame synthesis network (StyleGAN2-like): styles w [B, W] and motion codes m [B, M] -> frames [B, 3, R, R].

Input: a learned constant [C4, 4, 4] plus a map of [w, m] to [C4, 4, 4] (so motion can move
things around from the first layer on). Then at 4x4 one modulated 3x3 conv; for each resolution
8..R a block of (modulated 3x3 conv at the low resolution -> fused_upsample: 2x up + FIR + bias +
lrelu) and a modulated 3x3 conv; every resolution adds a toRGB output to an FIR-upsampled RGB skip.
No random noise inputs: the output is a deterministic function of (w, m), and each frame of the
batch is computed independently of the others.

With cfg.motion_warp the layers up to cfg.warp_resolution run once per clip, from the content
style w_c alone (the input map sees no motion code), giving a content feature map [C, r, r]. Each
frame then moves that map: MotionWarp turns [w_c, m_t] into warp_groups affine transforms (near
the identity at initialisation; translations only with cfg.warp_transform "translate"), and each
group of C / warp_groups channels is resampled through its own transform (bilinear; outside the
map its edge continues). The layers above warp_resolution render each group apart, as a layer (shared weights, the frame's style w_t):
with one group, the frame; with K > 1, RGB and an opacity logit per layer, and the frame is the
sum of the layers weighted by the softmax of their opacities at each pixel. The RGB skip starts
at warp_resolution. With cfg.motion_to_styles False (w_t = w_c), motion cannot redraw what a group
holds, nor combine groups into new shapes. With "translate" a group's shape then stays the same
over the clip and only its place changes (up to what a move cuts off at the frame's edge, the
map's edge repeated where the map has moved away, and the slight blur of a sub-pixel bilinear
shift), while groups (two digits) move independently; cfg.warp_limit bounds the translations softly,
so that (with "translate") a group's map cannot be moved off the frame to hide it. "affine" can also
turn and scale a group, and a scale that changes over the clip can change what the frame shows (a
map shrunk to a few pixels leaves the upper layers drawing from its border), so only "translate"
keeps a clip's content by construction.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from vidgan.errors import InputError
from vidgan.models.config import WARP_TRANSFORMS
from vidgan.nn import EqualLinear, StyleConv, ToRGB, Upsample2d


class SynthesisBlock(nn.Module):
    """[B, Cin, r/2, r/2] (+ RGB skip [B, c, r/2, r/2]) -> [B, Cout, r, r] (+ RGB [B, c, r, r]), c = rgb
    channels (3, or 4 with an opacity logit). With rgb=0 the block has no toRGB layer and returns features
    only (see `features`)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, clamp, rgb: int = 3):
        super().__init__()
        self.conv0 = StyleConv(in_channels, out_channels, w_dim, up=True, clamp=clamp)
        self.conv1 = StyleConv(out_channels, out_channels, w_dim, clamp=clamp)
        if rgb:
            self.torgb = ToRGB(out_channels, w_dim, channels=rgb, clamp=clamp)
            self.up_rgb = Upsample2d()

    def features(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x, w), w)

    def forward(self, x: torch.Tensor, img: torch.Tensor, w: torch.Tensor):
        x = self.features(x, w)
        return x, self.up_rgb(img) + self.torgb(x, w)


class MotionWarp(nn.Module):
    """[w_c, m_t] [B, W + M] -> `groups` affine transforms [B, groups, 2, 3] (output -> input coordinates
    in grid_sample's [-1, 1] convention, so a positive x translation moves the content left), near the
    identity at initialisation. An MLP gives per group the translation and, with transform "affine", the
    offset of the 2x2 linear part from the identity; with "translate" the linear part stays the identity,
    so a group can only move. limit > 0 bounds each translation t softly to limit * tanh(t / limit)."""

    def __init__(self, in_features: int, hidden: int, groups: int, transform: str = "affine", limit: float = 0.0):
        super().__init__()
        if transform not in WARP_TRANSFORMS:
            raise ValueError(f"MotionWarp transform must be one of {WARP_TRANSFORMS}, got {transform!r}.")
        if not limit >= 0:
            raise ValueError(f"MotionWarp limit must be 0 (no bound) or positive, got {limit!r}.")
        self.groups = groups
        self.limit = float(limit)
        self.affine = transform == "affine"
        self.net = nn.Sequential(EqualLinear(in_features, hidden, act="lrelu"),
                                 EqualLinear(hidden, (6 if self.affine else 2) * groups))
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)          # start near the identity; training scales it up
        self.register_buffer("identity", torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x).reshape(x.shape[0], self.groups, 2, -1)
        offset = out if self.affine else F.pad(out, (2, 0))      # translate: [[0, 0, tx], [0, 0, ty]]
        if self.limit > 0:
            offset = torch.cat([offset[..., :2], self.limit * torch.tanh(offset[..., 2:] / self.limit)], dim=3)
        return self.identity + offset


def warp_features(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """x [B, C, r, r], theta [B, K, 2, 3] -> x with channel group k (C / K channels) resampled at
    theta_k applied to the output pixel centres (bilinear; outside the map its edge pixels continue, so
    a background carries on where the map ends). The sampling grid is computed element by element in
    float64, so a frame's result never depends on its batch, and the sampling runs in float32 even
    under autocast (the result takes x's dtype)."""
    b, c, h, w = x.shape
    k = theta.shape[1]
    ys = (torch.arange(h, device=x.device, dtype=torch.float64) * 2 + 1) / h - 1      # pixel centres in [-1, 1]
    xs = (torch.arange(w, device=x.device, dtype=torch.float64) * 2 + 1) / w - 1
    t = theta.reshape(b * k, 2, 3).double()[:, :, :, None, None]                       # [BK, 2, 3, 1, 1]
    grid = t[:, :, 0] * xs[None, None, None, :] + t[:, :, 1] * ys[None, None, :, None] + t[:, :, 2]   # [BK, 2, h, w]
    grid = grid.permute(0, 2, 3, 1).float()                                             # [BK, h, w, 2] as (x, y)
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = F.grid_sample(x.float().reshape(b * k, c // k, h, w), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)
    return out.reshape(b, c, h, w).to(x.dtype)


class SynthesisNetwork(nn.Module):
    """(w [B, W], m [B, M]) -> frames [B, 3, R, R]; with cfg.motion_warp also the content styles
    w_c [N, W] of the N clips whose frames make up the batch (B = N * T, clip-major)."""

    def __init__(self, cfg):
        super().__init__()
        self.resolution = cfg.resolution
        self.warp_resolution = cfg.warp_resolution if cfg.motion_warp else None
        clamp = cfg.conv_clamp
        c4 = cfg.g_width(4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.input_map = EqualLinear(cfg.w_dim + (0 if cfg.motion_warp else cfg.motion_code_dim), c4 * 16)
        self.conv4 = StyleConv(c4, c4, cfg.w_dim, clamp=clamp)
        if not cfg.motion_warp:
            self.torgb4 = ToRGB(c4, cfg.w_dim, clamp=clamp)
        blocks, cin = [], c4
        for k in range(3, int(math.log2(cfg.resolution)) + 1):
            cout = cfg.g_width(2 ** k)
            if cfg.motion_warp and 2 ** k == cfg.warp_resolution * 2:
                cin //= cfg.warp_groups                         # the layers above render one group at a time
            content = cfg.motion_warp and 2 ** k <= cfg.warp_resolution
            blocks.append(SynthesisBlock(cin, cout, cfg.w_dim, clamp, rgb=0 if content else self.rgb_channels(cfg)))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        if cfg.motion_warp:
            self.groups = cfg.warp_groups
            self.content_blocks = int(math.log2(cfg.warp_resolution)) - 2      # blocks run once per clip
            self.warp = MotionWarp(cfg.w_dim + cfg.motion_code_dim, cfg.w_dim, cfg.warp_groups, cfg.warp_transform,
                                   cfg.warp_limit)
            self.torgb_warp = ToRGB(cfg.g_width(cfg.warp_resolution) // cfg.warp_groups, cfg.w_dim,
                                    channels=self.rgb_channels(cfg), clamp=clamp)

    @staticmethod
    def rgb_channels(cfg) -> int:
        """3, or 4 (RGB + an opacity logit) when several warp groups are rendered as layers."""
        return 4 if cfg.motion_warp and cfg.warp_groups > 1 else 3

    def _content_features(self, wc: torch.Tensor) -> torch.Tensor:
        """motion_warp: content styles w_c [N, W] -> the content feature map [N, C, r, r] (r = warp_resolution)."""
        x = self.const[None] + self.input_map(wc).reshape(wc.shape[0], *self.const.shape)
        x = self.conv4(x, wc)
        for block in self.blocks[:self.content_blocks]:
            x = block.features(x, wc)
        return x

    def content_map(self, wc: torch.Tensor) -> torch.Tensor:
        """motion_warp: content styles w_c [N, W] -> content maps [N, C, r, r]. In eval mode clip by clip,
        since a conv over a batch of one takes another code path than a larger batch (~1e-6 apart): a
        clip then renders the same alone or in a batch."""
        if self.training:
            return self._content_features(wc)
        return torch.cat([self._content_features(wc[i:i + 1]) for i in range(wc.shape[0])])

    def forward(self, w: torch.Tensor, m: torch.Tensor, wc: Optional[torch.Tensor] = None,
                content: Optional[torch.Tensor] = None) -> torch.Tensor:
        """w [B, W], m [B, M] -> frames [B, 3, R, R]. motion_warp: also wc [N, W] (B = N * T, clip-major)
        and optionally content = content_map(wc), computed once for many calls over frames of the same clips
        (other models ignore both)."""
        if self.warp_resolution is not None:
            if wc is None or wc.ndim != 2 or wc.shape[0] < 1 or w.shape[0] % wc.shape[0] or w.shape[0] == 0:
                raise InputError(f"a motion_warp synthesis network needs the content styles wc [N, W] of the N clips "
                                 f"whose frames make up the batch of {w.shape[0]} frames (a multiple of N), got "
                                 f"{None if wc is None else tuple(wc.shape)}.")
            if content is not None and content.shape[0] != wc.shape[0]:
                raise InputError(f"content maps for {content.shape[0]} clips were given with the styles of "
                                 f"{wc.shape[0]}; compute them with content_map for the same clips.")
            return self._warped(w, m, wc, self.content_map(wc) if content is None else content)
        b = w.shape[0]
        x = self.const[None] + self.input_map(torch.cat([w, m], dim=1)).reshape(b, *self.const.shape)
        x = self.conv4(x, w)                                    # [B, C4, 4, 4]
        img = self.torgb4(x, w)                                 # [B, 3, 4, 4]
        for block in self.blocks:
            x, img = block(x, img, w)                           # [B, C, r, r], [B, 3, r, r]
        return img

    def _warped(self, w: torch.Tensor, m: torch.Tensor, wc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layers = self.render_layers(w, m, wc, x)                # [B, K, c, R, R]
        if self.groups == 1:
            return layers[:, 0]
        opacity = torch.softmax(layers[:, :, 3:].float(), dim=1).to(layers.dtype)    # [B, K, 1, R, R]
        return (opacity * layers[:, :, :3]).sum(dim=1)                               # [B, 3, R, R]

    def transforms(self, wc: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """motion_warp: the groups' transforms [B, K, 2, 3] for content styles wc [N, W] of N clips and the
        motion codes m [B, M] of their frames (B = N * T, clip-major)."""
        n = wc.shape[0]
        wc_t = wc[:, None].expand(n, m.shape[0] // n, wc.shape[1]).reshape(m.shape[0], -1)    # [B, W]
        return self.warp(torch.cat([wc_t, m], dim=1))

    def render_layers(self, w: torch.Tensor, m: torch.Tensor, wc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """motion_warp: the frame of each warp group alone, [B, K, c, R, R] (c = 3, or 4 with K > 1: RGB and
        an opacity logit; the frame is the opacity-softmax-weighted sum over the K layers). x: content maps
        [N, C, r, r]. Each group's channels are moved by its own transform and rendered by the same upper
        layers, apart from the other groups, so groups moving apart cannot combine into new shapes."""
        n = wc.shape[0]
        t = w.shape[0] // n
        k = self.groups
        x = x[:, None].expand(n, t, *x.shape[1:]).reshape(n * t, *x.shape[1:])       # [B, C, r, r]
        x = warp_features(x, self.transforms(wc, m))                                 # moved per frame
        x = x.reshape(x.shape[0] * k, x.shape[1] // k, *x.shape[2:])                 # [B*K, C/K, r, r]
        w = w.repeat_interleave(k, dim=0)                                            # [B*K, W]
        img = self.torgb_warp(x, w)                             # [B*K, c, r, r]
        for block in self.blocks[self.content_blocks:]:
            x, img = block(x, img, w)                           # [B*K, C', r', r'], [B*K, c, r', r']
        return img.reshape(-1, k, *img.shape[1:])
