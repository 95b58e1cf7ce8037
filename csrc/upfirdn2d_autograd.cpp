// Autograd formulas of torch.ops.vidgan.* (the Autograd dispatch key), in C++: the Python
// registration (torch.library.register_autograd) cost about 100 us of host time per call.
//
// Every backward calls the ops themselves through the dispatcher, so it is recorded and
// differentiable again, to any order (R1 and path-length penalties need the second order):
//
//   upfirdn2d            backward = upfirdn2d with up/down swapped, the filter flipped
//   fused_upsample       backward = fused_upsample_grad (dy masked by the activation and clamp
//                                   derivative read off y, then the adjoint upfirdn2d; + db)
//   fused_upsample_grad  backward = fused_upsample(act="linear") of (ddx, ddb), times the mask:
//                        the op is linear in dy, (dx, db) = (D(m * dy), sum(m * dy)), with a mask
//                        m that is piecewise constant in y, so y gets no gradient.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "upfirdn2d.h"

namespace vidgan {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The ops through the dispatcher (so autograd sees the calls the backward makes).
at::Tensor op_upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                        int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip, double gain) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("vidgan::upfirdn2d", "").typed<decltype(upfirdn2d)>();
  return op.call(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip, gain);
}

at::Tensor op_fused_upsample(const at::Tensor& x, const at::Tensor& f, const c10::optional<at::Tensor>& bias,
                             int64_t upx, int64_t upy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip,
                             double gain, const std::string& act, double alpha, double act_gain, double clamp) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("vidgan::fused_upsample", "").typed<decltype(fused_upsample)>();
  return op.call(x, f, bias, upx, upy, px0, px1, py0, py1, flip, gain, act, alpha, act_gain, clamp);
}

std::tuple<at::Tensor, at::Tensor> op_fused_upsample_grad(const at::Tensor& dy, const at::Tensor& y,
                                                          const at::Tensor& f, int64_t downx, int64_t downy,
                                                          int64_t px0, int64_t px1, int64_t py0, int64_t py1,
                                                          bool flip, double gain, const std::string& act, double alpha,
                                                          double act_gain, double clamp, bool bias_grad) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("vidgan::fused_upsample_grad", "")
                             .typed<decltype(fused_upsample_grad)>();
  return op.call(dy, y, f, downx, downy, px0, px1, py0, py1, flip, gain, act, alpha, act_gain, clamp, bias_grad);
}

// Padding (p0, p1) of the adjoint upfirdn (up and down swapped, filter flipped) along one axis:
// it maps a length-n_out signal back to exactly n_in samples.
std::pair<int64_t, int64_t> adjoint_pads(int64_t n_in, int64_t n_out, int64_t up, int64_t down, int64_t p0,
                                         int64_t taps) {
  return {taps - 1 - p0, n_in * up - n_out * down + p0 - up + 1};
}

int64_t taps_x(const at::Tensor& f) { return f.size(f.dim() - 1); }

// d(clamp(act(v) * act_gain))/dv read off the output y; undefined when it is 1 everywhere.
at::Tensor grad_mask(const at::Tensor& y, const std::string& act, double alpha, double act_gain, double clamp) {
  at::Tensor m;
  if (act == "lrelu") m = (y > 0).to(y.scalar_type()) * (act_gain - alpha * act_gain) + alpha * act_gain;
  if (act == "relu") m = (y > 0).to(y.scalar_type()) * act_gain;
  if (clamp >= 0) {
    at::Tensor inside = (y.abs() < clamp).to(y.scalar_type());
    m = m.defined() ? m * inside : inside;
  }
  return m;
}

struct Upfirdn2dFn : public torch::autograd::Function<Upfirdn2dFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy,
                            int64_t downx, int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip,
                            double gain) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor out = op_upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip, gain);
    ctx->save_for_backward({f});
    ctx->saved_data["i"] = std::vector<int64_t>{upx, upy, downx, downy, px0, px1, py0, py1,
                                                x.size(2), x.size(3), out.size(2), out.size(3)};
    ctx->saved_data["flip"] = flip;
    ctx->saved_data["gain"] = gain;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor f = ctx->get_saved_variables()[0];
    const auto i = ctx->saved_data["i"].toIntVector();
    const auto qx = adjoint_pads(i[9], i[11], i[0], i[2], i[4], taps_x(f));
    const auto qy = adjoint_pads(i[8], i[10], i[1], i[3], i[6], f.size(0));
    at::Tensor dx = op_upfirdn2d(grads[0], f, i[2], i[3], i[0], i[1], qx.first, qx.second, qy.first, qy.second,
                                 !ctx->saved_data["flip"].toBool(), ctx->saved_data["gain"].toDouble());
    variable_list out(12);
    out[0] = dx;
    return out;
  }
};

struct FusedUpsampleFn : public torch::autograd::Function<FusedUpsampleFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& f,
                            const c10::optional<at::Tensor>& bias, int64_t upx, int64_t upy, int64_t px0, int64_t px1,
                            int64_t py0, int64_t py1, bool flip, double gain, const std::string& act, double alpha,
                            double act_gain, double clamp) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor y = op_fused_upsample(x, f, bias, upx, upy, px0, px1, py0, py1, flip, gain, act, alpha, act_gain, clamp);
    ctx->save_for_backward({y, f});
    ctx->saved_data["i"] =
        std::vector<int64_t>{upx, upy, px0, py0, x.size(2), x.size(3), bias.has_value() && bias->defined()};
    ctx->saved_data["flip"] = flip;
    ctx->saved_data["d"] = std::vector<double>{gain, alpha, act_gain, clamp};
    ctx->saved_data["act"] = act;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &f = saved[1];
    const auto i = ctx->saved_data["i"].toIntVector();
    const auto d = ctx->saved_data["d"].toDoubleVector();
    const auto qx = adjoint_pads(i[5], y.size(3), i[0], 1, i[2], taps_x(f));
    const auto qy = adjoint_pads(i[4], y.size(2), i[1], 1, i[3], f.size(0));
    const bool bias_grad = i[6] && ctx->needs_input_grad(2);
    auto [dx, db] = op_fused_upsample_grad(grads[0], y, f, i[0], i[1], qx.first, qx.second, qy.first, qy.second,
                                           !ctx->saved_data["flip"].toBool(), d[0],
                                           ctx->saved_data["act"].toStringRef(), d[1], d[2], d[3], bias_grad);
    variable_list out(15);
    out[0] = dx;
    if (bias_grad) out[2] = db;
    return out;
  }
};

struct FusedUpsampleGradFn : public torch::autograd::Function<FusedUpsampleGradFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& dy, const at::Tensor& y, const at::Tensor& f,
                               int64_t downx, int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1,
                               bool flip, double gain, const std::string& act, double alpha, double act_gain,
                               double clamp, bool bias_grad) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [dx, db] = op_fused_upsample_grad(dy, y, f, downx, downy, px0, px1, py0, py1, flip, gain, act, alpha,
                                           act_gain, clamp, bias_grad);
    ctx->save_for_backward({y, f});
    ctx->saved_data["i"] = std::vector<int64_t>{downx, downy, px0, py0, dy.size(2), dy.size(3), dx.size(2),
                                                dx.size(3), bias_grad};
    ctx->saved_data["flip"] = flip;
    ctx->saved_data["d"] = std::vector<double>{gain, alpha, act_gain, clamp};
    ctx->saved_data["act"] = act;
    return {dx, db};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &f = saved[1];
    const auto i = ctx->saved_data["i"].toIntVector();
    const auto d = ctx->saved_data["d"].toDoubleVector();
    const auto qx = adjoint_pads(i[5], i[7], 1, i[0], i[2], taps_x(f));
    const auto qy = adjoint_pads(i[4], i[6], 1, i[1], i[3], f.size(0));
    c10::optional<at::Tensor> ddb;
    if (i[8]) ddb = grads[1];
    at::Tensor ddy = op_fused_upsample(grads[0], f, ddb, i[0], i[1], qx.first, qx.second, qy.first, qy.second,
                                       !ctx->saved_data["flip"].toBool(), d[0], "linear", 0.0, 1.0, -1.0);
    const at::Tensor m = grad_mask(y, ctx->saved_data["act"].toStringRef(), d[1], d[2], d[3]);
    variable_list out(16);
    out[0] = m.defined() ? ddy * m : ddy;
    return out;
  }
};

at::Tensor upfirdn2d_autograd(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                              int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip,
                              double gain) {
  return Upfirdn2dFn::apply(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip, gain);
}

at::Tensor fused_upsample_autograd(const at::Tensor& x, const at::Tensor& f, const c10::optional<at::Tensor>& bias,
                                   int64_t upx, int64_t upy, int64_t px0, int64_t px1, int64_t py0, int64_t py1,
                                   bool flip, double gain, const std::string& act, double alpha, double act_gain,
                                   double clamp) {
  return FusedUpsampleFn::apply(x, f, bias, upx, upy, px0, px1, py0, py1, flip, gain, act, alpha, act_gain, clamp);
}

std::tuple<at::Tensor, at::Tensor> fused_upsample_grad_autograd(
    const at::Tensor& dy, const at::Tensor& y, const at::Tensor& f, int64_t downx, int64_t downy, int64_t px0,
    int64_t px1, int64_t py0, int64_t py1, bool flip, double gain, const std::string& act, double alpha,
    double act_gain, double clamp, bool bias_grad) {
  auto out = FusedUpsampleGradFn::apply(dy, y, f, downx, downy, px0, px1, py0, py1, flip, gain, act, alpha, act_gain,
                                        clamp, bias_grad);
  return {out[0], out[1]};
}

}  // namespace
}  // namespace vidgan

TORCH_LIBRARY_IMPL(vidgan, Autograd, m) {
  m.impl("upfirdn2d", &vidgan::upfirdn2d_autograd);
  m.impl("fused_upsample", &vidgan::fused_upsample_autograd);
  m.impl("fused_upsample_grad", &vidgan::fused_upsample_grad_autograd);
}
