// v2 kernels for up = 2, down = 1, 4 x 4 taps (Plain, BiasAct) in float32, float16 and bfloat16:
// fused_upsample's default (the generator's upsampling and toRGB skips), upfirdn2d(up=2) (the adjoint of
// Downsample2d), and the linear fused_upsample of the second-order pass. A thread task is 4 x 2 outputs
// from a 4 x 3 window; with NCHW, neighbouring threads take neighbouring tasks along x (conflict-free
// shared-memory reads, 2-wide stores that line up into whole rows).
#include "upfirdn2d_v2_kernel.cuh"

namespace vidgan {
namespace v2 {

void launch_up2_f4(Mode mode, const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream) {
  if (mode == Mode::BiasAct) {
    launch_dtype<Mode::BiasAct, 2, 1, 4, 4, 4, 2>(p, a, partial, stream);
  } else {
    TORCH_CHECK(mode == Mode::Plain, "vidgan v2: up2_f4 serves Plain and BiasAct only.");
    launch_dtype<Mode::Plain, 2, 1, 4, 4, 4, 2>(p, a, partial, stream);
  }
}

}  // namespace v2
}  // namespace vidgan
