// v2 kernels for up = 1, down = 2, 4 x 4 taps (Plain, GradMask) in float32, float16 and bfloat16:
// Downsample2d in the discriminators, upfirdn2d's backward of up=2, and fused_upsample's backward
// (dy * mask(y), the adjoint gather and the bias gradient in one pass). A thread task is 4 x 1 outputs
// from a 10 x 4 window; with NCHW, neighbouring threads store neighbouring outputs (whole rows per warp).
#include "upfirdn2d_v2_kernel.cuh"

namespace vidgan {
namespace v2 {

void launch_down2_f4(Mode mode, const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream) {
  if (mode == Mode::GradMask) {
    launch_dtype<Mode::GradMask, 1, 2, 4, 4, 4, 1>(p, a, partial, stream);
  } else {
    TORCH_CHECK(mode == Mode::Plain, "vidgan v2: down2_f4 serves Plain and GradMask only.");
    launch_dtype<Mode::Plain, 1, 2, 4, 4, 4, 1>(p, a, partial, stream);
  }
}

}  // namespace v2
}  // namespace vidgan
