"""Public face of the ops: argument checks, then the compiled kernels or the reference.

    y = fused_upsample(x, f, bias, up=2)          # [N, C, H, W] -> [N, C, 2H, 2W]
    y = upfirdn2d(x, f, down=2, padding=1)         # [N, C, H, W] -> [N, C, H/2, W/2]

`impl=None` picks the compiled extension when it is loaded and supports x's device, except
on CUDA, where the composite of standard ops (the reference) runs until a CUDA kernel has been
measured faster for the case (`default_impl`); `impl="ext"` insists on the extension
(RuntimeError when it cannot run here) and `impl="reference"` forces the reference.
"""
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

from vidgan.errors import InputError
from vidgan.ops import _ext, reference
from vidgan.ops.reference import ACTIVATIONS, default_padding, setup_filter  # noqa: F401

IntPair = Union[int, Sequence[int]]
SQRT2 = math.sqrt(2)
IMPLS = (None, "ext", "reference")

# (op, dtype) cases where the CUDA kernel has been measured faster than the best composite of
# standard ops (benchmarks/fused_upsample.py --device cuda); impl=None runs the kernel on CUDA
# only for these. Empty: on an H100 the kernel ran 0.83x forward and 0.41x forward + backward
# (float32; fp16/bf16 no better), see docs/ops.md.
CUDA_KERNEL_FASTER = frozenset()

_DEFAULT_FILTERS = {}  # (device, dtype) -> setup_filter(): built once, never handed out for writing


# ----------------------------------------------------------------------------- checks
def _check_x(x, op: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{op}: x must be a torch.Tensor [N, C, H, W], got {type(x).__name__}.")
    if x.ndim != 4:
        raise InputError(f"{op}: x must be a 4D tensor [N, C, H, W], got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise InputError(f"{op}: x must be a floating-point tensor, got dtype {x.dtype}; convert it with x.float().")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise InputError(f"{op}: x has an empty spatial size {tuple(x.shape)}; H and W must be at least 1.")


def _factor(v: IntPair, name: str, op: str) -> Tuple[int, int]:
    try:
        fx, fy = reference.pair(v, name)
    except (TypeError, ValueError):
        raise InputError(f"{op}: {name} must be an int or a pair of ints, got {v!r}.") from None
    if fx < 1 or fy < 1:
        raise InputError(f"{op}: {name} must be >= 1, got {v!r}.")
    return fx, fy


def _default_filter(device: torch.device) -> torch.Tensor:
    """setup_filter() on `device`, made once per device (not while torch.compile traces)."""
    if torch.compiler.is_compiling():
        return setup_filter(device=device)
    f = _DEFAULT_FILTERS.get(device)
    if f is None:
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor, whatever mode the first call ran in
            f = _DEFAULT_FILTERS[device] = setup_filter(device=device)
    return f


def _filter(f, x: torch.Tensor, op: str) -> torch.Tensor:
    if f is None:
        return _default_filter(x.device)
    if not isinstance(f, torch.Tensor):
        f = torch.as_tensor(f, dtype=torch.float32, device=x.device)
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise InputError(f"{op}: the filter must be a non-empty 1D (separable) or 2D tensor, got shape "
                         f"{tuple(f.shape)}; build it with vidgan.ops.setup_filter.")
    if not f.is_floating_point():
        raise InputError(f"{op}: the filter must be floating point, got dtype {f.dtype}.")
    if f.device != x.device:
        raise InputError(f"{op}: the filter is on {f.device} but x is on {x.device}; move it with f.to(x.device).")
    return f


def _pads(padding, f: torch.Tensor, up: Tuple[int, int], op: str) -> Tuple[int, int, int, int]:
    if padding is None:
        return default_padding(f, up)
    try:
        return reference.pad4(padding)
    except (TypeError, ValueError):
        raise InputError(f"{op}: padding must be an int, a pair (px, py) or (x0, x1, y0, y1), got {padding!r}.") \
            from None


def _check_out(x, f, up, down, pads, op: str) -> None:
    fh, fw = (f.shape[0], f.shape[-1]) if f.ndim == 2 else (f.shape[0], f.shape[0])
    oh = (x.shape[2] * up[1] + pads[2] + pads[3] - fh) // down[1] + 1
    ow = (x.shape[3] * up[0] + pads[0] + pads[1] - fw) // down[0] + 1
    if oh < 1 or ow < 1:
        raise InputError(f"{op}: the output would have size {oh}x{ow} for an input of {x.shape[2]}x{x.shape[3]}, "
                         f"a {fh}x{fw} filter and padding (x0, x1, y0, y1)={pads}; crop less or use a larger input.")


def _check_bias(bias, x: torch.Tensor, op: str) -> None:
    if bias is None:
        return
    if not isinstance(bias, torch.Tensor) or bias.ndim != 1 or bias.shape[0] != x.shape[1]:
        shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise InputError(f"{op}: bias must be a 1D tensor of length C={x.shape[1]}, got {shape}.")
    if not bias.is_floating_point():
        raise InputError(f"{op}: bias must be floating point, got dtype {bias.dtype}.")
    if bias.device != x.device:
        raise InputError(f"{op}: bias is on {bias.device} but x is on {x.device}; move it with bias.to(x.device).")


def default_impl(op: str, device_type: str, dtype: torch.dtype, ext_ok: bool) -> str:
    """What impl=None runs: 'ext' or 'reference'.

    The extension where it is loaded and has kernels for the device (`ext_ok`), except on CUDA,
    where a kernel runs only for the (op, dtype) cases in CUDA_KERNEL_FASTER: impl=None must never
    make a user slower than the composite of standard ops.
    """
    if not ext_ok:
        return "reference"
    if device_type == "cuda" and (op, str(dtype).replace("torch.", "")) not in CUDA_KERNEL_FASTER:
        return "reference"
    return "ext"


def _impl(impl: Optional[str], x: torch.Tensor, op: str) -> str:
    """'ext' or 'reference' for this call."""
    if impl not in IMPLS:
        raise InputError(f"{op}: impl must be None, 'ext' or 'reference', got {impl!r}.")
    if impl == "reference":
        return "reference"
    device = x.device
    if impl is None:
        if device.type == "cpu":  # the common case: no string formatting of the dtype
            return "ext" if _ext._C is not None else "reference"
        return default_impl(op, device.type, x.dtype, _ext.supports(device))
    if _ext.supports(device):
        return "ext"
    if impl == "ext":
        if _ext.ext() is None:
            raise RuntimeError(f"{op}: impl='ext' was requested but the compiled extension is not available "
                               f"({_ext.ERROR}); {_ext.BUILD_HINT}.")
        raise RuntimeError(f"{op}: impl='ext' was requested, but vidgan._C has no kernels for {device.type} "
                           f"tensors (CUDA kernels need a build with VIDGAN_CUDA=1 on a machine with nvcc).")
    return "reference"


def _real(v, name: str, op: str) -> float:
    """float(v) for a finite real number; InputError naming the argument otherwise."""
    if type(v) is float and math.isfinite(v):  # the common case, without the ABC checks below
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise InputError(f"{op}: {name} must be a finite number, got {v!r}.")
    return float(v)


# ----------------------------------------------------------------------------- ops
def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], up: IntPair = 1, down: IntPair = 1, padding: IntPair = 0,
              flip_filter: bool = False, gain: float = 1, impl: Optional[str] = None) -> torch.Tensor:
    """Upsample (zero insertion), pad (negative = crop), FIR filter, downsample.

    x: [N, C, H, W] float -> [N, C, (H*up + py0 + py1 - fh) // down + 1, (likewise W)].
    f: 1D (separable) or 2D filter on x's device, None = setup_filter() ([1, 3, 3, 1]).
    up, down: int or (x, y); padding: int, (px, py) or (x0, x1, y0, y1). The filter is
    used as a true convolution (flipped) unless flip_filter, and scaled by gain.
    """
    op = "upfirdn2d"
    _check_x(x, op)
    upx, upy = _factor(up, "up", op)
    downx, downy = _factor(down, "down", op)
    f = _filter(f, x, op)
    pads = _pads(padding, f, (upx, upy), op)
    _check_out(x, f, (upx, upy), (downx, downy), pads, op)
    gain = _real(gain, "gain", op)
    if _impl(impl, x, op) == "reference":
        return reference.upfirdn2d(x, f, up=(upx, upy), down=(downx, downy), padding=pads,
                                   flip_filter=flip_filter, gain=gain)
    # The kernels take a 1D (separable) filter as it is.
    return torch.ops.vidgan.upfirdn2d.default(x, f, upx, upy, downx, downy, *pads, bool(flip_filter), float(gain))


def fused_upsample(x: torch.Tensor, f: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None,
                   up: IntPair = 2, padding: Optional[IntPair] = None, gain: Optional[float] = None,
                   flip_filter: bool = False, act: str = "lrelu", alpha: float = 0.2,
                   act_gain: Optional[float] = SQRT2, clamp: Optional[float] = None,
                   impl: Optional[str] = None) -> torch.Tensor:
    """Upsample + FIR filter + gain + bias + activation * act_gain + clamp, in one pass.

    x: [N, C, H, W] float -> [N, C, H', W'] (with the default padding and a 4-tap filter,
    [N, C, up*H, up*W]). f: 1D (separable) or 2D, None = [1, 3, 3, 1]. padding None =
    ((fw+up-1)//2, (fw-up)//2) per axis. gain None = up*up. bias: [C] or None.
    act: 'lrelu' (slope alpha), 'relu' or 'linear' (which ignores act_gain).
    clamp: clamp the result to [-clamp, clamp] (None = no clamp).
    """
    op = "fused_upsample"
    _check_x(x, op)
    upx, upy = _factor(up, "up", op)
    f = _filter(f, x, op)
    pads = _pads(padding, f, (upx, upy), op)
    _check_out(x, f, (upx, upy), (1, 1), pads, op)
    _check_bias(bias, x, op)
    if act not in ACTIVATIONS:
        raise InputError(f"{op}: act must be one of {ACTIVATIONS}, got {act!r}.")
    gain = float(upx * upy) if gain is None else _real(gain, "gain", op)
    act_gain = SQRT2 if act_gain is None else _real(act_gain, "act_gain", op)
    alpha = _real(alpha, "alpha", op)
    if clamp is not None and not _real(clamp, "clamp", op) >= 0:
        raise InputError(f"{op}: clamp must be a non-negative number or None (no clamp), got {clamp!r}.")
    if _impl(impl, x, op) == "reference":
        return reference.fused_upsample(x, f, bias, up=(upx, upy), padding=pads, gain=gain, flip_filter=flip_filter,
                                        act=act, alpha=alpha, act_gain=act_gain, clamp=clamp)
    if act != "linear" and (act_gain <= 0 or (act == "lrelu" and alpha < 0)):
        # The fused backward reads the activation's derivative off the output's sign, which
        # a non-positive gain or slope scrambles: filter in the kernel, activate with torch.
        y = torch.ops.vidgan.upfirdn2d.default(x, f, upx, upy, 1, 1, *pads, bool(flip_filter), gain)
        return reference.bias_act(y, bias, act=act, alpha=alpha, act_gain=act_gain, clamp=clamp)
    return torch.ops.vidgan.fused_upsample.default(x, f, bias, upx, upy, *pads, bool(flip_filter), gain, act,
                                           float(alpha), act_gain, -1.0 if clamp is None else float(clamp))
