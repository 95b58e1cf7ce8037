"""The fused upsampling op and its general upfirdn2d companion.

    from vidgan.ops import fused_upsample, upfirdn2d, setup_filter

(Provisional module: dispatch to the compiled extension lands with issue 2.)
"""
from vidgan.ops.reference import default_padding, output_size, setup_filter  # noqa: F401
from vidgan.ops.reference import fused_upsample, upfirdn2d  # noqa: F401
