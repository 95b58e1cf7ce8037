// The generic v2 kernel (every mode, float32 / float16 / bfloat16): any up, down, filter size and
// padding; one output per task, taps and factors read at run time, polyphase (only the taps that meet
// input samples). Shares staging, planes per block, 32-bit offsets and the bias-gradient pass with the
// specialised kernels.
#include "upfirdn2d_v2_kernel.cuh"

namespace vidgan {
namespace v2 {

void launch_generic(Mode mode, const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream) {
  switch (mode) {
    case Mode::Plain: launch_dtype<Mode::Plain, 0, 0, 0, 0, 1, 1>(p, a, partial, stream); break;
    case Mode::BiasAct: launch_dtype<Mode::BiasAct, 0, 0, 0, 0, 1, 1>(p, a, partial, stream); break;
    case Mode::GradMask: launch_dtype<Mode::GradMask, 0, 0, 0, 0, 1, 1>(p, a, partial, stream); break;
  }
}

}  // namespace v2
}  // namespace vidgan
