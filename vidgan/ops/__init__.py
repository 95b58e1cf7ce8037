"""The fused upsampling op and its general upfirdn2d companion.

    from vidgan.ops import fused_upsample, upfirdn2d, setup_filter

    y = fused_upsample(x, bias=b)             # [N, C, H, W] -> [N, C, 2H, 2W], lrelu * sqrt(2)
    d = upfirdn2d(x, setup_filter(), down=2, padding=1)   # [N, C, H, W] -> [N, C, H/2, W/2]

The compiled kernels (vidgan._C: C++ CPU, CUDA) run when built; otherwise a plain-PyTorch
reference (vidgan.ops.reference, the specification) runs after one warning.
"""
from vidgan.ops import _ext  # noqa: F401  (loads vidgan._C once)
from vidgan.ops.fused import fused_upsample, upfirdn2d  # noqa: F401
from vidgan.ops.info import backend, build_info, cpu_level  # noqa: F401
from vidgan.ops.modules import Downsample, FusedUpsample  # noqa: F401
from vidgan.ops.reference import default_padding, output_size, setup_filter  # noqa: F401

__all__ = ["fused_upsample", "upfirdn2d", "setup_filter", "default_padding", "output_size", "FusedUpsample",
           "Downsample", "backend", "build_info", "cpu_level"]
