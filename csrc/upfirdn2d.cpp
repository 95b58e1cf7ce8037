// The vidgan op family: argument checks, output allocation, device dispatch, operator
// registration (torch.ops.vidgan.*) and the Python module vidgan._C with build facts.
// The CPU kernels live in upfirdn2d_cpu.cpp, the CUDA kernels in upfirdn2d_cuda.cu.
#include <torch/extension.h>
#include <torch/library.h>
#include <torch/version.h>

#include "upfirdn2d.h"

#ifdef VIDGAN_WITH_CUDA
#include <cuda.h>  // CUDA_VERSION
#endif

#ifndef VIDGAN_VERSION
#define VIDGAN_VERSION "unknown"
#endif

namespace vidgan {

namespace {

// Check messages are assembled here, integers by std::to_string, and handed to TORCH_CHECK as one
// string: TORCH_CHECK's own formatting streams integers through std::ostream, which crashed the
// process (SIGSEGV in ostream::_M_insert<long>) in an extension built by GCC 13 with Ubuntu's
// Python 3.12 link flags against torch 2.11. Strings were streamed without harm there.
std::string piece(const char* s) { return s; }
std::string piece(const std::string& s) { return s; }
template <class T, std::enable_if_t<std::is_integral<T>::value, int> = 0>
std::string piece(T v) { return std::to_string(v); }
std::string piece(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}
std::string piece(c10::ScalarType t) { return c10::toString(t); }
std::string piece(const c10::Device& d) { return d.str(); }

template <class... Args>
std::string message(const Args&... args) {
  std::string s;
  (s += ... += piece(args));
  return s;
}

}  // namespace

// TORCH_CHECK with the message built by message() (evaluated only when the check fails).
#define VIDGAN_CHECK(cond, ...) TORCH_CHECK(cond, ::vidgan::message(__VA_ARGS__))

Act parse_act(const std::string& act) {
  if (act == "linear") return Act::Linear;
  if (act == "relu") return Act::Relu;
  if (act == "lrelu") return Act::LRelu;
  VIDGAN_CHECK(false, "vidgan: act must be one of 'lrelu', 'relu', 'linear', got '", act, "'.");
}

namespace {

constexpr int64_t kMaxFactor = 1 << 16;    // up / down factors beyond this are surely a mistake
constexpr int64_t kMaxPad = int64_t(1) << 31;

void check_tensor(const at::Tensor& x, const char* name, const char* op) {
  VIDGAN_CHECK(x.dim() == 4, op, ": ", name, " must be a 4D tensor [N, C, H, W], got shape ", x.sizes(), ".");
  VIDGAN_CHECK(at::isFloatingType(x.scalar_type()), op, ": ", name, " must be a floating-point tensor, got ",
               x.scalar_type(), ".");
  VIDGAN_CHECK(x.device().is_cpu() || x.device().is_cuda(), op, ": ", name,
               " must be on the CPU or a CUDA device, got ", x.device(), ".");
  VIDGAN_CHECK(x.size(2) > 0 && x.size(3) > 0, op, ": ", name, " has an empty spatial size ", x.sizes(),
               "; H and W must be at least 1.");
}

void check_filter(const at::Tensor& f, const at::Tensor& x, const char* op) {
  VIDGAN_CHECK((f.dim() == 1 || f.dim() == 2) && f.numel() > 0, op,
               ": the filter must be a non-empty 1D (separable) or 2D tensor [fh, fw], got shape ", f.sizes(),
               ".");
  VIDGAN_CHECK(at::isFloatingType(f.scalar_type()), op, ": the filter must be floating point, got ",
               f.scalar_type(), ".");
  VIDGAN_CHECK(f.device() == x.device(), op, ": the filter is on ", f.device(), " but the input is on ",
               x.device(), "; move the filter to the input's device.");
}

// Sizes and options, checked. The output size is floor((H*up + pads - taps) / down) + 1.
Upfirdn2dParams make_params(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                            int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1,
                            const char* op) {
  VIDGAN_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, op,
               ": up and down factors must be >= 1, got up=(", upx, ", ", upy, "), down=(", downx, ", ", downy,
               ").");
  VIDGAN_CHECK(upx <= kMaxFactor && upy <= kMaxFactor && downx <= kMaxFactor && downy <= kMaxFactor, op,
               ": up and down factors must be <= ", kMaxFactor, ".");
  for (int64_t pad : {padx0, padx1, pady0, pady1})
    VIDGAN_CHECK(pad > -kMaxPad && pad < kMaxPad, op, ": padding ", pad, " is out of range.");
  Upfirdn2dParams p;
  p.n = x.size(0);
  p.c = x.size(1);
  p.in_h = x.size(2);
  p.in_w = x.size(3);
  p.upx = upx, p.upy = upy, p.downx = downx, p.downy = downy;
  p.padx0 = padx0, p.padx1 = padx1, p.pady0 = pady0, p.pady1 = pady1;
  p.fh = f.size(0);
  p.fw = f.size(f.dim() - 1);  // a 1D filter is separable: fh = fw taps
  p.out_h = floor_div(p.in_h * upy + pady0 + pady1 - p.fh, downy) + 1;
  p.out_w = floor_div(p.in_w * upx + padx0 + padx1 - p.fw, downx) + 1;
  VIDGAN_CHECK(p.out_h >= 1 && p.out_w >= 1, op, ": the output would have size ", p.out_h, "x", p.out_w,
               " for an input of ", p.in_h, "x", p.in_w, ", a ", p.fh, "x", p.fw, " filter and padding (x0=", padx0,
               ", x1=", padx1, ", y0=", pady0, ", y1=", pady1, "); crop less or use a larger input.");
  return p;
}

void set_act(Upfirdn2dParams& p, const std::string& act, double alpha, double act_gain, double clamp) {
  p.act = parse_act(act);
  p.alpha = alpha;
  p.act_gain = act_gain;
  p.clamp = clamp;
}

// The filter for the kernels. CUDA: cross-correlation weights [fh, fw] in the accumulation dtype,
// flipped unless `flip`, scaled by gain (a 1D filter becomes its outer product first). CPU: the
// filter as given, with flip and gain in the params (its kernel reads it without tensor ops).
void set_filter(Upfirdn2dParams& p, KernelArgs& a, const at::Tensor& f, bool flip, double gain,
                at::ScalarType acc) {
  p.flip = flip;
  p.gain = gain;
  if (!f.is_cuda()) {
    a.f = f;
    return;
  }
  at::Tensor w = (f.dim() == 1 ? at::outer(f.detach(), f.detach()) : f.detach()).to(acc);
  if (!flip) w = w.flip({0, 1});
  a.w = (w * gain).contiguous();
}

// The layout input and output share: channels_last for a channels_last input, else NCHW
// (anything else is copied to NCHW first). vidgan/ops/_registry.py mirrors this rule.
at::MemoryFormat layout_of(const at::Tensor& x) {
  return (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) ? at::MemoryFormat::ChannelsLast
                                                                                 : at::MemoryFormat::Contiguous;
}

void run_kernel(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  if (p.n * p.c == 0) return;  // empty batch: nothing to compute
  if (a.out.is_cuda()) {
#ifdef VIDGAN_WITH_CUDA
    upfirdn2d_kernel_cuda(p, mode, a);
    return;
#else
    VIDGAN_CHECK(false, "vidgan._C was built without CUDA; rebuild with VIDGAN_CUDA=1 "
                        "(pip install --no-build-isolation -e .) to run the op on a GPU.");
#endif
  }
  upfirdn2d_kernel_cpu(p, mode, a);
}

}  // namespace

at::Tensor upfirdn2d(const at::Tensor& x_in, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip,
                     double gain) {
  const char* op = "vidgan::upfirdn2d";
  check_tensor(x_in, "x", op);
  check_filter(f, x_in, op);
  Upfirdn2dParams p = make_params(x_in, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, op);
  const at::MemoryFormat fmt = layout_of(x_in);
  KernelArgs a;
  a.x = x_in.contiguous(fmt);
  set_filter(p, a, f, flip, gain, acc_dtype(x_in.scalar_type()));
  a.out = at::empty({p.n, p.c, p.out_h, p.out_w}, x_in.options().memory_format(fmt));
  run_kernel(p, Mode::Plain, a);
  return a.out;
}

at::Tensor fused_upsample(const at::Tensor& x_in, const at::Tensor& f, const c10::optional<at::Tensor>& bias,
                          int64_t upx, int64_t upy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1,
                          bool flip, double gain, const std::string& act, double alpha, double act_gain,
                          double clamp) {
  const char* op = "vidgan::fused_upsample";
  check_tensor(x_in, "x", op);
  check_filter(f, x_in, op);
  Upfirdn2dParams p = make_params(x_in, f, upx, upy, 1, 1, padx0, padx1, pady0, pady1, op);
  set_act(p, act, alpha, act_gain, clamp);
  const at::ScalarType acc = acc_dtype(x_in.scalar_type());
  const at::MemoryFormat fmt = layout_of(x_in);
  KernelArgs a;
  if (bias.has_value() && bias->defined()) {
    const at::Tensor& b = *bias;
    VIDGAN_CHECK(b.dim() == 1 && b.size(0) == p.c, op, ": bias must have shape [C] = [", p.c, "], got ",
                 b.sizes(), ".");
    VIDGAN_CHECK(b.device() == x_in.device(), op, ": bias is on ", b.device(), " but the input is on ",
                 x_in.device(), ".");
    VIDGAN_CHECK(at::isFloatingType(b.scalar_type()), op, ": bias must be floating point, got ", b.scalar_type(),
                 ".");
    // Round to the input dtype first, as `x + bias.to(x.dtype)` does.
    a.bias = b.detach().to(x_in.scalar_type()).to(acc).contiguous();
    p.has_bias = true;
  }
  a.x = x_in.contiguous(fmt);
  set_filter(p, a, f, flip, gain, acc);
  a.out = at::empty({p.n, p.c, p.out_h, p.out_w}, x_in.options().memory_format(fmt));
  run_kernel(p, Mode::BiasAct, a);
  return a.out;
}

std::tuple<at::Tensor, at::Tensor> fused_upsample_grad(
    const at::Tensor& dy_in, const at::Tensor& y_in, const at::Tensor& f, int64_t downx, int64_t downy,
    int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip, double gain, const std::string& act,
    double alpha, double act_gain, double clamp, bool bias_grad) {
  const char* op = "vidgan::fused_upsample_grad";
  check_tensor(dy_in, "dy", op);
  check_tensor(y_in, "y", op);
  check_filter(f, dy_in, op);
  VIDGAN_CHECK(dy_in.sizes() == y_in.sizes(), op, ": dy ", dy_in.sizes(), " and y ", y_in.sizes(),
               " must have the same shape.");
  VIDGAN_CHECK(dy_in.device() == y_in.device(), op, ": dy and y must be on the same device.");
  Upfirdn2dParams p = make_params(dy_in, f, 1, 1, downx, downy, padx0, padx1, pady0, pady1, op);
  set_act(p, act, alpha, act_gain, clamp);
  p.has_bias = bias_grad;
  const at::ScalarType acc = acc_dtype(dy_in.scalar_type());
  // The CPU kernel reads NCHW planes; the CUDA kernel takes any strides.
  const at::MemoryFormat fmt = layout_of(dy_in);
  const at::MemoryFormat run_fmt = dy_in.is_cuda() ? fmt : at::MemoryFormat::Contiguous;
  const bool cuda = dy_in.is_cuda();
  KernelArgs a;
  a.x = dy_in.contiguous(run_fmt);
  // The CPU kernel reads y only when the mask varies (not for act="linear" without a clamp).
  if (cuda || p.act != Act::Linear || p.clamp >= 0) a.y = y_in.to(dy_in.scalar_type()).contiguous(run_fmt);
  set_filter(p, a, f, flip, gain, acc);
  a.out = at::empty({p.n, p.c, p.out_h, p.out_w}, dy_in.options().memory_format(run_fmt));
  if (bias_grad) {
    // CPU: the kernel writes every plane's sum, so no zero fill.
    const auto opts = dy_in.options().dtype(acc);
    a.bias_sum = cuda ? at::zeros({p.n * p.c}, opts) : at::empty({p.n * p.c}, opts);
  }
  run_kernel(p, Mode::GradMask, a);
  at::Tensor dx = (run_fmt == fmt) ? a.out : a.out.contiguous(fmt);
  if (!bias_grad) return {dx, at::zeros({p.c}, dy_in.options())};
  if (cuda) return {dx, a.bias_sum.view({p.n, p.c}).sum(0).to(dy_in.scalar_type())};
  // CPU: db[c] = sum over n of the plane sums, in batch order, as plain loops (no tensor ops).
  at::Tensor db = at::empty({p.c}, a.bias_sum.options());
  AT_DISPATCH_FLOATING_TYPES(db.scalar_type(), "vidgan_bias_grad", [&] {
    const scalar_t* s = a.bias_sum.data_ptr<scalar_t>();
    scalar_t* d = db.data_ptr<scalar_t>();
    for (int64_t c = 0; c < p.c; ++c) {
      scalar_t v = 0;
      for (int64_t n = 0; n < p.n; ++n) v += s[n * p.c + c];
      d[c] = v;
    }
  });
  return {dx, db.to(dy_in.scalar_type())};
}

}  // namespace vidgan

TORCH_LIBRARY(vidgan, m) {
  // Fake (meta) kernels and autograd formulas are registered from Python in this module.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  m.set_python_module("vidgan.ops._registry");
#else
  m.impl_abstract_pystub("vidgan.ops._registry");
#endif
  m.def(
      "upfirdn2d(Tensor x, Tensor f, int upx, int upy, int downx, int downy, int padx0, int padx1, "
      "int pady0, int pady1, bool flip, float gain) -> Tensor");
  m.def(
      "fused_upsample(Tensor x, Tensor f, Tensor? bias, int upx, int upy, int padx0, int padx1, int pady0, "
      "int pady1, bool flip, float gain, str act, float alpha, float act_gain, float clamp) -> Tensor");
  m.def(
      "fused_upsample_grad(Tensor dy, Tensor y, Tensor f, int downx, int downy, int padx0, int padx1, "
      "int pady0, int pady1, bool flip, float gain, str act, float alpha, float act_gain, float clamp, "
      "bool bias_grad) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(vidgan, CPU, m) {
  m.impl("upfirdn2d", &vidgan::upfirdn2d);
  m.impl("fused_upsample", &vidgan::fused_upsample);
  m.impl("fused_upsample_grad", &vidgan::fused_upsample_grad);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "vidgan compiled ops (torch.ops.vidgan.*) and the facts of this build.";
  m.attr("__version__") = VIDGAN_VERSION;
  m.attr("torch_version") = TORCH_VERSION;  // the torch this build was compiled against
  m.def("cpu_level", &vidgan::cpu_level,
        "The instruction-set level the CPU kernels run at: 'avx512', 'avx2' or 'baseline' (picked at load; "
        "VIDGAN_CPU_LEVEL can ask for a lower one).");
  m.def("cpu_levels", &vidgan::cpu_levels, "The levels this CPU supports, best first.");
  m.def("cpu_level_note", &vidgan::cpu_level_note, "Why VIDGAN_CPU_LEVEL was not followed ('' when it was).");
#ifdef VIDGAN_WITH_CUDA
  m.attr("cuda_compiled") = true;
  m.attr("cuda_version") = std::to_string(CUDA_VERSION / 1000) + "." + std::to_string(CUDA_VERSION % 1000 / 10);
#else
  m.attr("cuda_compiled") = false;
  m.attr("cuda_version") = pybind11::none();
#endif
}
