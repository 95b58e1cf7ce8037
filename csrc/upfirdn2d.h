// Shared declarations of the vidgan upfirdn2d / fused_upsample op family.
//
// One kernel family serves three ops, on x: [N, C, H, W]:
//   upfirdn2d            y = downsample(FIR(pad(upsample(x))))              (Mode::Plain)
//   fused_upsample       y = clamp(act(upfirdn2d(x, down=1) + bias) * g)   (Mode::BiasAct)
//   fused_upsample_grad  dx = upfirdn2d(mask(y) * dy, up=1)                 (Mode::GradMask)
//                        db = sum over N, H, W of mask(y) * dy
// where mask(y) is the derivative of the activation + clamp read off the forward output y.
//
// The filter reaches the CUDA kernels as cross-correlation weights w [fh, fw] (already flipped
// unless flip_filter, already scaled by gain) in the accumulation dtype (float, or double
// for double inputs), on the input's device. The CPU kernels read the filter as given (f, 2D,
// or 1D = separable) with Upfirdn2dParams::flip and ::gain, which saves a few tensor ops a call.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace vidgan {

enum class Act : int { Linear = 0, Relu = 1, LRelu = 2 };
enum class Mode : int { Plain = 0, BiasAct = 1, GradMask = 2 };

// Sizes and options of one call; every size and index is 64-bit.
struct Upfirdn2dParams {
  int64_t n = 0, c = 0;            // batch, channels
  int64_t in_h = 0, in_w = 0;      // input (or upstream-gradient) plane
  int64_t out_h = 0, out_w = 0;    // output plane
  int64_t upx = 1, upy = 1, downx = 1, downy = 1;
  int64_t padx0 = 0, padx1 = 0, pady0 = 0, pady1 = 0;
  int64_t fh = 1, fw = 1;          // filter taps (rows, columns)
  Act act = Act::Linear;           // BiasAct: activation; GradMask: activation whose mask is applied
  double alpha = 0.2;              // leaky-relu slope
  double act_gain = 1.0;           // multiplies relu / lrelu (linear ignores it)
  double clamp = -1.0;             // clamp to [-clamp, clamp]; negative = no clamp
  bool has_bias = false;           // BiasAct: add bias[c]; GradMask: produce the bias gradient
  bool flip = false;               // the filter is used as given (else flipped: true convolution)
  double gain = 1.0;               // the filter's scale
};

// Tensors of one kernel call (undefined when unused).
struct KernelArgs {
  at::Tensor x;        // Plain/BiasAct: input; GradMask: upstream gradient dy    [N, C, H, W]
  at::Tensor y;        // GradMask: forward output the mask is read from          [N, C, H, W]
  at::Tensor w;        // CUDA: cross-correlation weights, accumulation dtype      [fh, fw]
  at::Tensor f;        // CPU: the filter as given, any float dtype       [fh, fw] or [fh] (separable)
  at::Tensor bias;     // BiasAct: bias, accumulation dtype                        [C]
  at::Tensor out;      // result                                                   [N, C, OH, OW]
  at::Tensor bias_sum; // GradMask with has_bias: per-plane sums, accumulation dtype [N * C]
                       // (CUDA: zero-initialised; CPU: every entry written by the kernel)
};

// Floor division / modulo that are right for negative numerators (d > 0); host and device.
C10_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t d) { return (a >= 0) ? a / d : -((-a + d - 1) / d); }
C10_HOST_DEVICE inline int64_t floor_mod(int64_t a, int64_t d) { return a - floor_div(a, d) * d; }

// Accumulation dtype: double for double, float for everything else.
inline at::ScalarType acc_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

Act parse_act(const std::string& act);

// Op entry points (device-generic: validate, allocate, then run the CPU or CUDA kernel).
at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                     double gain);
at::Tensor fused_upsample(const at::Tensor& x, const at::Tensor& f, const c10::optional<at::Tensor>& bias,
                          int64_t upx, int64_t upy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1,
                          bool flip, double gain, const std::string& act, double alpha, double act_gain,
                          double clamp);
std::tuple<at::Tensor, at::Tensor> fused_upsample_grad(
    const at::Tensor& dy, const at::Tensor& y, const at::Tensor& f, int64_t downx, int64_t downy, int64_t padx0,
    int64_t padx1, int64_t pady0, int64_t pady1, bool flip, double gain, const std::string& act, double alpha,
    double act_gain, double clamp, bool bias_grad);

// Kernels. Inputs are contiguous (NCHW) or channels_last; `out` has the matching layout.
void upfirdn2d_kernel_cpu(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a);

// The instruction-set level the CPU kernels run at ("avx512", "avx2" or "baseline"), picked once
// when the library loads: the best this CPU supports, or VIDGAN_CPU_LEVEL when it names one of
// those; the levels this CPU supports, best first; why VIDGAN_CPU_LEVEL was not followed ("" if it was).
const char* cpu_level();
std::vector<std::string> cpu_levels();
std::string cpu_level_note();
#ifdef VIDGAN_WITH_CUDA
void upfirdn2d_kernel_cuda(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a);
#endif

}  // namespace vidgan
