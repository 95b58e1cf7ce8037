// CPU kernels of the upfirdn2d family (see upfirdn2d.h for the modes).
//
// NCHW path (all modes): parallel over the N*C planes. Each plane is first copied, in the
// accumulation dtype, into a scratch buffer with zero margins (for GradMask: dy * mask(y),
// summed on the way for the bias gradient), its columns split into D = down/gcd(up, down)
// interleaved sub-rows. Output columns then fall into P = up/gcd(up, down) phases; all
// columns of one phase use the same filter taps and read consecutive scratch elements, so
// every tap of every row is one contiguous multiply-add loop over the phase (polyphase:
// only the non-zero taps of the zero-inserted signal are ever touched). The phases are
// then interleaved into the output row together with bias, activation, gain and clamp.
//
// channels_last path (Plain/BiasAct): parallel over the N*OH output rows; the innermost
// loop runs over the contiguous channels.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "upfirdn2d.h"

namespace vidgan {
namespace {

// act(v) * gain, with the activation fixed at compile time.
template <Act A, typename T>
inline T activate(T v, T alpha, T gain) {
  if constexpr (A == Act::LRelu) {
    return (v > T(0) ? v : v * alpha) * gain;
  } else if constexpr (A == Act::Relu) {
    return (v > T(0) ? v : T(0)) * gain;
  } else {
    return v;
  }
}

// d(act(v) * gain)/dv read off the output y (sign-preserving activations, gain > 0).
template <Act A, typename T>
inline T act_slope(T y, T alpha, T gain) {
  if constexpr (A == Act::LRelu) {
    return y > T(0) ? gain : alpha * gain;
  } else if constexpr (A == Act::Relu) {
    return y > T(0) ? gain : T(0);
  } else {
    return T(1);
  }
}

// Epilogue constants in the accumulation dtype.
template <typename T>
struct Epi {
  T alpha, gain, lo, hi;  // clamp to [lo, hi]; +-inf when there is no clamp
  explicit Epi(const Upfirdn2dParams& p)
      : alpha(T(p.alpha)),
        gain(T(p.act_gain)),
        lo(p.clamp >= 0 ? T(-p.clamp) : -std::numeric_limits<T>::infinity()),
        hi(p.clamp >= 0 ? T(p.clamp) : std::numeric_limits<T>::infinity()) {}
  template <Act A>
  inline T apply(T v) const {
    return std::min(std::max(activate<A>(v, alpha, gain), lo), hi);
  }
  template <Act A>
  inline T slope(T y) const {  // gradient mask, clamp included (zero where the clamp was hit)
    const T ay = y < T(0) ? -y : y;
    return ay < hi ? act_slope<A>(y, alpha, gain) : T(0);
  }
};

// a[i] += w * s[i]
template <typename T>
inline void axpy(T* __restrict a, const T* __restrict s, T w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] += w * s[i];
}

// Deterministic sum with 16 independent partial sums (so it vectorizes).
template <typename T>
inline T block_sum(const T* __restrict s, int64_t n) {
  T part[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) part[j] += s[i + j];
  T total = 0;
  for (; i < n; ++i) total += s[i];
  for (int j = 0; j < 16; ++j) total += part[j];
  return total;
}

// One output row: the P phase accumulators (each `stride` long) interleaved, plus bias and epilogue.
template <Act A, typename scalar_t, typename T>
void write_row(scalar_t* __restrict out, const T* __restrict acc, int64_t P, int64_t stride, int64_t ow, T b,
               const Epi<T>& e) {
  if (P == 1) {
    for (int64_t i = 0; i < ow; ++i) out[i] = static_cast<scalar_t>(e.template apply<A>(acc[i] + b));
  } else if (P == 2) {
    const T* __restrict a0 = acc;
    const T* __restrict a1 = acc + stride;
    const int64_t half = ow / 2;
    for (int64_t m = 0; m < half; ++m) {
      out[2 * m] = static_cast<scalar_t>(e.template apply<A>(a0[m] + b));
      out[2 * m + 1] = static_cast<scalar_t>(e.template apply<A>(a1[m] + b));
    }
    if (ow & 1) out[ow - 1] = static_cast<scalar_t>(e.template apply<A>(a0[half] + b));
  } else {
    for (int64_t r = 0; r < P && r < ow; ++r) {
      const T* __restrict ar = acc + r * stride;
      for (int64_t ox = r, m = 0; ox < ow; ox += P, ++m)
        out[ox] = static_cast<scalar_t>(e.template apply<A>(ar[m] + b));
    }
  }
}

// Column phase: output columns ox = r, r + P, ... share taps k0, k0 + up, ... and read
// input columns ib + j + m * D for tap j of the m-th column.
struct XPhase {
  int64_t count = 0;  // output columns in this phase
  int64_t ib = 0;     // input column of the first tap of the first column
  int64_t k0 = 0;     // first filter column
  int64_t ntaps = 0;  // taps that hit a non-zero sample
};

template <typename scalar_t, typename T>
void nchw_kernel(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  const int64_t H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w, NC = p.n * p.c;
  const int64_t g = std::gcd(p.upx, p.downx), P = p.upx / g, D = p.downx / g;

  // Column phases and the scratch column range [lo, hi) they read.
  std::vector<XPhase> phases(P);
  int64_t lo = 0, hi = W, stride = 1;
  for (int64_t r = 0; r < P; ++r) {
    XPhase& q = phases[r];
    const int64_t s = r * p.downx - p.padx0;
    q.k0 = floor_mod(-s, p.upx);
    q.ib = floor_div(s + q.k0, p.upx);
    q.ntaps = q.k0 < p.fw ? (p.fw - 1 - q.k0) / p.upx + 1 : 0;
    q.count = r < OW ? (OW - 1 - r) / P + 1 : 0;
    stride = std::max(stride, q.count);
    if (q.count > 0 && q.ntaps > 0) {
      lo = std::min(lo, q.ib);
      hi = std::max(hi, q.ib + q.ntaps + (q.count - 1) * D);
    }
  }
  const int64_t Wq = (hi - lo + D - 1) / D;  // length of one interleaved sub-row
  const int64_t row_len = D * Wq;             // scratch floats per input row

  const T* w = a.w.data_ptr<T>();
  const scalar_t* x = a.x.data_ptr<scalar_t>();
  const scalar_t* y = mode == Mode::GradMask ? a.y.data_ptr<scalar_t>() : nullptr;
  const T* bias = (mode == Mode::BiasAct && p.has_bias) ? a.bias.data_ptr<T>() : nullptr;
  T* bias_sum = (mode == Mode::GradMask && p.has_bias) ? a.bias_sum.data_ptr<T>() : nullptr;
  scalar_t* out = a.out.data_ptr<scalar_t>();
  const Epi<T> epi(p);
  const Epi<T> plain(Upfirdn2dParams{});  // linear, no clamp
  const Act act = mode == Mode::Plain ? Act::Linear : p.act;

  at::parallel_for(0, NC, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(H * row_len);
    std::vector<T> acc(P * stride);
    for (int64_t plane = begin; plane < end; ++plane) {
      // 1. The plane in the accumulation dtype, zero margins, columns split into D sub-rows.
      std::fill(scratch.begin(), scratch.end(), T(0));
      for (int64_t iy = 0; iy < H; ++iy) {
        const scalar_t* src = x + (plane * H + iy) * W;
        T* dst = scratch.data() + iy * row_len;
        if (mode == Mode::GradMask) {
          const scalar_t* ysrc = y + (plane * H + iy) * W;
          for (int64_t q = 0; q < D; ++q) {
            const int64_t i0 = floor_mod(q + lo, D);  // first column whose (i - lo) % D == q
            T* d = dst + q * Wq + (i0 - lo) / D;
            const int64_t cnt = i0 < W ? (W - 1 - i0) / D + 1 : 0;
            switch (act) {
              case Act::LRelu:
                for (int64_t k = 0; k < cnt; ++k)
                  d[k] = T(src[i0 + k * D]) * epi.template slope<Act::LRelu>(T(ysrc[i0 + k * D]));
                break;
              case Act::Relu:
                for (int64_t k = 0; k < cnt; ++k)
                  d[k] = T(src[i0 + k * D]) * epi.template slope<Act::Relu>(T(ysrc[i0 + k * D]));
                break;
              default:
                for (int64_t k = 0; k < cnt; ++k)
                  d[k] = T(src[i0 + k * D]) * epi.template slope<Act::Linear>(T(ysrc[i0 + k * D]));
            }
          }
        } else if (D == 1) {
          T* d = dst - lo;
          for (int64_t i = 0; i < W; ++i) d[i] = T(src[i]);
        } else {
          for (int64_t i = 0; i < W; ++i) dst[((i - lo) % D) * Wq + (i - lo) / D] = T(src[i]);
        }
      }
      if (bias_sum) bias_sum[plane] = block_sum(scratch.data(), H * row_len);
      const T b = bias ? bias[plane % p.c] : T(0);
      scalar_t* out_plane = out + plane * OH * OW;

      // 2. Each output row: its row taps, then per column phase its column taps.
      for (int64_t oy = 0; oy < OH; ++oy) {
        std::fill(acc.begin(), acc.end(), T(0));
        const int64_t s = oy * p.downy - p.pady0;
        const int64_t k0y = floor_mod(-s, p.upy);
        for (int64_t ky = k0y, iy = floor_div(s + k0y, p.upy); ky < p.fh; ky += p.upy, ++iy) {
          if (iy < 0 || iy >= H) continue;  // zero padding
          const T* srow = scratch.data() + iy * row_len;
          const T* wrow = w + ky * p.fw;
          for (int64_t r = 0; r < P; ++r) {
            const XPhase& q = phases[r];
            T* ar = acc.data() + r * stride;
            for (int64_t j = 0; j < q.ntaps; ++j) {
              const int64_t off = q.ib + j - lo;
              axpy(ar, srow + (off % D) * Wq + off / D, wrow[q.k0 + j * p.upx], q.count);
            }
          }
        }
        scalar_t* orow = out_plane + oy * OW;
        switch (mode == Mode::BiasAct ? act : Act::Linear) {
          case Act::LRelu: write_row<Act::LRelu>(orow, acc.data(), P, stride, OW, b, epi); break;
          case Act::Relu: write_row<Act::Relu>(orow, acc.data(), P, stride, OW, b, epi); break;
          default: write_row<Act::Linear>(orow, acc.data(), P, stride, OW, b, mode == Mode::BiasAct ? epi : plain);
        }
      }
    }
  });
}

// channels_last: x [N, H, W, C] and out [N, OH, OW, C] in memory. Plain / BiasAct only.
template <Act A, typename scalar_t, typename T>
void nhwc_rows(const Upfirdn2dParams& p, const KernelArgs& a, const Epi<T>& e, bool epilogue) {
  const int64_t C = p.c, H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w;
  std::vector<int64_t> xk0(OW), xib(OW);  // first column tap and its input column, per output column
  for (int64_t ox = 0; ox < OW; ++ox) {
    const int64_t s = ox * p.downx - p.padx0;
    xk0[ox] = floor_mod(-s, p.upx);
    xib[ox] = floor_div(s + xk0[ox], p.upx);
  }
  const T* w = a.w.data_ptr<T>();
  const scalar_t* x = a.x.data_ptr<scalar_t>();
  const T* bias = (epilogue && p.has_bias) ? a.bias.data_ptr<T>() : nullptr;
  scalar_t* out = a.out.data_ptr<scalar_t>();

  at::parallel_for(0, p.n * OH, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(C);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / OH, oy = row % OH;
      const int64_t s = oy * p.downy - p.pady0;
      const int64_t k0y = floor_mod(-s, p.upy), iby = floor_div(s + k0y, p.upy);
      for (int64_t ox = 0; ox < OW; ++ox) {
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t ky = k0y, iy = iby; ky < p.fh; ky += p.upy, ++iy) {
          if (iy < 0 || iy >= H) continue;
          for (int64_t kx = xk0[ox], ix = xib[ox]; kx < p.fw; kx += p.upx, ++ix) {
            if (ix < 0 || ix >= W) continue;
            const scalar_t* __restrict src = x + ((n * H + iy) * W + ix) * C;
            const T wv = w[ky * p.fw + kx];
            T* __restrict ac = acc.data();
            for (int64_t c = 0; c < C; ++c) ac[c] += wv * T(src[c]);
          }
        }
        scalar_t* __restrict dst = out + ((n * OH + oy) * OW + ox) * C;
        const T* __restrict ac = acc.data();
        if (bias) {
          for (int64_t c = 0; c < C; ++c) dst[c] = static_cast<scalar_t>(e.template apply<A>(ac[c] + bias[c]));
        } else if (epilogue) {
          for (int64_t c = 0; c < C; ++c) dst[c] = static_cast<scalar_t>(e.template apply<A>(ac[c]));
        } else {
          for (int64_t c = 0; c < C; ++c) dst[c] = static_cast<scalar_t>(ac[c]);
        }
      }
    }
  });
}

template <typename scalar_t, typename T>
void nhwc_kernel(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  TORCH_CHECK(mode != Mode::GradMask, "vidgan: internal error: the channels_last CPU path has no GradMask mode.");
  const Epi<T> e(p);
  const bool epilogue = mode == Mode::BiasAct;
  switch (epilogue ? p.act : Act::Linear) {
    case Act::LRelu: nhwc_rows<Act::LRelu, scalar_t, T>(p, a, e, epilogue); break;
    case Act::Relu: nhwc_rows<Act::Relu, scalar_t, T>(p, a, e, epilogue); break;
    default: nhwc_rows<Act::Linear, scalar_t, T>(p, a, e, epilogue);
  }
}

}  // namespace

void upfirdn2d_kernel_cpu(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.x.scalar_type(), "vidgan_upfirdn2d_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    if (a.x.is_contiguous() && a.out.is_contiguous()) {
      nchw_kernel<scalar_t, T>(p, mode, a);
    } else {
      TORCH_CHECK(a.x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                      a.out.is_contiguous(at::MemoryFormat::ChannelsLast),
                  "vidgan: internal error: the CPU kernel needs NCHW or channels_last tensors.");
      nhwc_kernel<scalar_t, T>(p, mode, a);
    }
  });
}

}  // namespace vidgan
