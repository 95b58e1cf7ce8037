// CPU kernels of the upfirdn2d family (see upfirdn2d.h for the modes).
//
// NCHW path (all modes): parallel over the N*C planes (at::parallel_for). Per plane:
//   1. the input plane (GradMask: dy * mask(y), summed for the bias gradient) is copied in
//      the accumulation dtype into a scratch with zero margins, rows and columns split into
//      D = down / gcd(up, down) interleaved sub-lines;
//   2. outputs fall into P = up / gcd(up, down) phases per axis; all outputs of one (row
//      phase, column phase) pair use the same filter taps and read consecutive scratch rows
//      and columns, so the pair is one register-blocked multiply-add pass over a flattened
//      window, touching only the taps that meet real samples (polyphase: no zero-inserted
//      buffer, no multiplications by inserted zeros);
//   3. the phases are interleaved into the output rows with bias, activation, gain, clamp.
//
// channels_last path (Plain/BiasAct): parallel over the N*OH output rows; the innermost
// loop runs over the contiguous channels. (GradMask runs on NCHW copies.)
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "upfirdn2d.h"

// The per-plane loops are compiled for several x86-64 levels (AVX-512, AVX2+FMA, baseline)
// and the best one for the running CPU is picked at load time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 12
#define VIDGAN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VIDGAN_CPU_CLONES
#endif
// Helpers are forced inline so each clone gets its own vector code.
#if defined(__GNUC__)
#define VIDGAN_INLINE inline __attribute__((always_inline))
#else
#define VIDGAN_INLINE inline
#endif

namespace vidgan {
namespace {

// act(v) * gain, with the activation fixed at compile time.
template <Act A, typename T>
VIDGAN_INLINE T activate(T v, T alpha, T gain) {
  // Branch-free (max/min) so the loops over a row vectorize; NaN stays NaN.
  if constexpr (A == Act::LRelu) {
    return (std::max(v, T(0)) + alpha * std::min(v, T(0))) * gain;
  } else if constexpr (A == Act::Relu) {
    return std::max(v, T(0)) * gain;
  } else {
    return v;
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
  VIDGAN_INLINE T apply(T v) const {
    return std::min(std::max(activate<A>(v, alpha, gain), lo), hi);
  }
};

// Deterministic sum with 16 independent partial sums (so it vectorizes).
template <typename T>
VIDGAN_INLINE T block_sum(const T* __restrict s, int64_t n) {
  T part[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) part[j] += s[i + j];
  T total = 0;
  for (; i < n; ++i) total += s[i];
  for (int j = 0; j < 16; ++j) total += part[j];
  return total;
}

// out[ox] = epilogue(phase[ox % P][ox / P] + b) for one output row (P phase pointers).
template <Act A, typename scalar_t, typename T>
VIDGAN_INLINE void write_row(scalar_t* __restrict out, const T* const* phase, int64_t P, int64_t ow, T b,
                             const Epi<T>& e) {
  if (P == 1) {
    const T* __restrict a0 = phase[0];
    for (int64_t i = 0; i < ow; ++i) out[i] = static_cast<scalar_t>(e.template apply<A>(a0[i] + b));
  } else if (P == 2) {
    const T* __restrict a0 = phase[0];
    const T* __restrict a1 = phase[1];
    const int64_t half = ow / 2;
    for (int64_t m = 0; m < half; ++m) {
      out[2 * m] = static_cast<scalar_t>(e.template apply<A>(a0[m] + b));
      out[2 * m + 1] = static_cast<scalar_t>(e.template apply<A>(a1[m] + b));
    }
    if (ow & 1) out[ow - 1] = static_cast<scalar_t>(e.template apply<A>(a0[half] + b));
  } else {
    for (int64_t r = 0; r < P && r < ow; ++r) {
      const T* __restrict ar = phase[r];
      for (int64_t ox = r, m = 0; ox < ow; ox += P, ++m)
        out[ox] = static_cast<scalar_t>(e.template apply<A>(ar[m] + b));
    }
  }
}

// Polyphase plan along one axis. Output samples o = r, r + P, r + 2P, ... (phase r) use the
// same taps k0, k0 + up, ... and read input samples ib + j + m * D (tap j, m-th sample of
// the phase). The scratch keeps the input samples [lo, hi) split into D interleaved
// sub-lines of length L (sample i -> sub-line (i - lo) % D, position (i - lo) / D), so
// those reads are consecutive.
struct Axis {
  struct Phase {
    int64_t count = 0;  // output samples in the phase
    int64_t ib = 0;     // input sample of tap 0 for the first output sample
    int64_t k0 = 0;     // first filter tap
    int64_t ntaps = 0;  // taps that land on non-zero samples of the zero-inserted signal
  };
  int64_t P = 1, D = 1, lo = 0, L = 0, maxcount = 0;
  std::vector<Phase> ph;

  Axis(int64_t in, int64_t out, int64_t up, int64_t down, int64_t pad0, int64_t taps) {
    const int64_t g = std::gcd(up, down);
    P = up / g;
    D = down / g;
    ph.resize(P);
    int64_t hi = in;
    for (int64_t r = 0; r < P; ++r) {
      Phase& q = ph[r];
      const int64_t s = r * down - pad0;
      q.k0 = floor_mod(-s, up);
      q.ib = floor_div(s + q.k0, up);
      q.ntaps = q.k0 < taps ? (taps - 1 - q.k0) / up + 1 : 0;
      q.count = r < out ? (out - 1 - r) / P + 1 : 0;
      maxcount = std::max(maxcount, q.count);
      if (q.count > 0 && q.ntaps > 0) {
        lo = std::min(lo, q.ib);
        hi = std::max(hi, q.ib + q.ntaps + (q.count - 1) * D);
      }
    }
    // At least maxcount: accumulator rows are L apart and hold `count` outputs of any phase,
    // including phases no tap reaches.
    L = std::max((hi - lo + D - 1) / D, maxcount);
  }
  int64_t sub(int64_t i) const { return (i - lo) % D; }  // sub-line of input sample i
  int64_t pos(int64_t i) const { return (i - lo) / D; }  // its position in the sub-line
};

// out[i] = sum_t w[t] * base[off[t] + i] for i < n, accumulated in registers (four
// 64-byte vectors at a time) so each output is stored once whatever the number of taps.
template <typename T>
VIDGAN_INLINE void multi_tap(T* __restrict out, const T* __restrict base, const int64_t* __restrict off,
                             const T* __restrict w, int64_t k, int64_t n) {
  if (k == 0) {
    std::fill(out, out + n, T(0));
    return;
  }
  int64_t i = 0;
#if defined(__GNUC__)
  // GCC/clang vector extension: lowered to AVX-512, AVX2 or SSE by each clone.
  typedef T V __attribute__((vector_size(64), aligned(alignof(T))));
  constexpr int64_t kLanes = 64 / sizeof(T);
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    const T* s = base + off[0] + i;
    const T w0 = w[0];
    V a0 = *reinterpret_cast<const V*>(s) * w0;
    V a1 = *reinterpret_cast<const V*>(s + kLanes) * w0;
    V a2 = *reinterpret_cast<const V*>(s + 2 * kLanes) * w0;
    V a3 = *reinterpret_cast<const V*>(s + 3 * kLanes) * w0;
    for (int64_t t = 1; t < k; ++t) {
      const T* st = base + off[t] + i;
      const T wt = w[t];
      a0 += *reinterpret_cast<const V*>(st) * wt;
      a1 += *reinterpret_cast<const V*>(st + kLanes) * wt;
      a2 += *reinterpret_cast<const V*>(st + 2 * kLanes) * wt;
      a3 += *reinterpret_cast<const V*>(st + 3 * kLanes) * wt;
    }
    *reinterpret_cast<V*>(out + i) = a0;
    *reinterpret_cast<V*>(out + i + kLanes) = a1;
    *reinterpret_cast<V*>(out + i + 2 * kLanes) = a2;
    *reinterpret_cast<V*>(out + i + 3 * kLanes) = a3;
  }
  for (; i + kLanes <= n; i += kLanes) {
    V a0 = *reinterpret_cast<const V*>(base + off[0] + i) * w[0];
    for (int64_t t = 1; t < k; ++t) a0 += *reinterpret_cast<const V*>(base + off[t] + i) * w[t];
    *reinterpret_cast<V*>(out + i) = a0;
  }
#endif
  for (; i < n; ++i) {
    T v = w[0] * base[off[0] + i];
    for (int64_t t = 1; t < k; ++t) v += w[t] * base[off[t] + i];
    out[i] = v;
  }
}

// One input line into its scratch sub-line: d[k] = value(k * S) for k < n, where value is
// the input converted to T, or for GradMask dy * mask(y). S = 0 means the runtime `step`.
template <int S, bool GRAD, typename scalar_t, typename T>
VIDGAN_INLINE void load_line(T* __restrict d, const scalar_t* __restrict x, const scalar_t* __restrict y, int64_t n,
                             int64_t step, T gain_pos, T gain_neg, T mask_hi) {
  const int64_t st = S > 0 ? S : step;
  for (int64_t k = 0; k < n; ++k) {
    if constexpr (GRAD) {
      const T yv = T(y[k * st]);
      const T m = yv > T(0) ? gain_pos : gain_neg;
      d[k] = std::abs(yv) < mask_hi ? T(x[k * st]) * m : T(0);
    } else {
      d[k] = T(x[k * st]);
    }
  }
}

// Everything the per-plane loop needs, computed once per call.
//
// Scratch layout per plane: D_x sub-planes, each [rows][Lx] where rows = D_y * Ly (input
// rows split into D_y interleaved sub-columns). Consecutive outputs of one (row phase,
// column phase) then read consecutive rows and columns of one sub-plane, so each filter
// tap is a single multiply-add over the flattened [band rows, Lx] window.
template <typename scalar_t, typename T>
struct NchwPlan {
  Upfirdn2dParams p;
  Mode mode;
  Act act;                // BiasAct: activation; GradMask: activation whose mask is applied
  Axis ax, ay;            // column and row polyphase plans
  int64_t sub_plane;      // scratch elements per sub-plane: D_y * Ly * Lx
  int64_t band;           // output-row groups per accumulator band (sized for the L2 cache)
  std::vector<int64_t> row_off;              // [H] scratch offset of input row iy
  std::vector<int64_t> col_i0, col_n, col_off;  // [D_x] first input column, count, scratch offset
  std::vector<int64_t> pair_first, pair_k;   // [Py*Px] taps of each phase pair: first index, count
  std::vector<int64_t> tap_off;              // scratch offset read by each tap (for band row 0)
  std::vector<T> tap_w;                      // weight of each tap
  T gain_pos, gain_neg, mask_hi;  // GradMask: mask = (y > 0 ? gain_pos : gain_neg) * (|y| < mask_hi)
  const scalar_t* x;
  const scalar_t* y;
  const T* bias;
  T* bias_sum;
  scalar_t* out;
  Epi<T> out_epi;  // what the output rows get: activation / clamp for BiasAct, identity otherwise

  NchwPlan(const Upfirdn2dParams& p_, Mode mode_, const KernelArgs& a)
      : p(p_),
        mode(mode_),
        act(mode_ == Mode::Plain ? Act::Linear : p_.act),
        ax(p_.in_w, p_.out_w, p_.upx, p_.downx, p_.padx0, p_.fw),
        ay(p_.in_h, p_.out_h, p_.upy, p_.downy, p_.pady0, p_.fh),
        x(a.x.data_ptr<scalar_t>()),
        y(mode_ == Mode::GradMask ? a.y.data_ptr<scalar_t>() : nullptr),
        bias((mode_ == Mode::BiasAct && p_.has_bias) ? a.bias.data_ptr<T>() : nullptr),
        bias_sum((mode_ == Mode::GradMask && p_.has_bias) ? a.bias_sum.data_ptr<T>() : nullptr),
        out(a.out.data_ptr<scalar_t>()),
        out_epi(mode_ == Mode::BiasAct ? p_ : Upfirdn2dParams{}) {
    const int64_t Lx = ax.L;
    sub_plane = ay.D * ay.L * Lx;
    const int64_t budget = int64_t(256) << 10;
    band = std::max<int64_t>(1, std::min<int64_t>(ay.maxcount, budget / int64_t(sizeof(T) * ax.P * ay.P * Lx)));
    row_off.resize(p.in_h);
    for (int64_t iy = 0; iy < p.in_h; ++iy) row_off[iy] = (ay.sub(iy) * ay.L + ay.pos(iy)) * Lx;
    for (int64_t q = 0; q < ax.D; ++q) {
      const int64_t i0 = floor_mod(q + ax.lo, ax.D);  // first input column in sub-line q
      if (i0 >= p.in_w) continue;
      col_i0.push_back(i0);
      col_n.push_back((p.in_w - 1 - i0) / ax.D + 1);
      col_off.push_back(q * sub_plane + ax.pos(i0));
    }
    const T* w = a.w.data_ptr<T>();
    for (int64_t ry = 0; ry < ay.P; ++ry) {
      for (int64_t rx = 0; rx < ax.P; ++rx) {
        const Axis::Phase& qy = ay.ph[ry];
        const Axis::Phase& qx = ax.ph[rx];
        pair_first.push_back(int64_t(tap_off.size()));
        for (int64_t jy = 0; jy < qy.ntaps; ++jy) {
          const int64_t iy = qy.ib + jy;
          for (int64_t jx = 0; jx < qx.ntaps; ++jx) {
            const int64_t ix = qx.ib + jx;
            tap_off.push_back((ay.sub(iy) * ay.L + ay.pos(iy)) * Lx + ax.sub(ix) * sub_plane + ax.pos(ix));
            tap_w.push_back(w[(qy.k0 + jy * p.upy) * p.fw + qx.k0 + jx * p.upx]);
          }
        }
        pair_k.push_back(int64_t(tap_off.size()) - pair_first.back());
      }
    }
    const Epi<T> e(p);
    gain_pos = act == Act::Linear ? T(1) : T(p.act_gain);
    gain_neg = act == Act::Linear ? T(1) : act == Act::Relu ? T(0) : T(p.alpha * p.act_gain);
    mask_hi = e.hi;
  }
};

// Load one input plane into the scratch (zero margins, sub-lines); returns its sum.
template <int S, bool GRAD, typename scalar_t, typename T>
VIDGAN_INLINE void load_plane(const NchwPlan<scalar_t, T>& c, int64_t plane, T* scratch) {
  const int64_t H = c.p.in_h, W = c.p.in_w;
  for (int64_t iy = 0; iy < H; ++iy) {
    const scalar_t* xrow = c.x + (plane * H + iy) * W;
    const scalar_t* yrow = GRAD ? c.y + (plane * H + iy) * W : nullptr;
    T* dst = scratch + c.row_off[iy];
    for (size_t q = 0; q < c.col_i0.size(); ++q) {
      const int64_t i0 = c.col_i0[q];
      load_line<S, GRAD>(dst + c.col_off[q], xrow + i0, GRAD ? yrow + i0 : nullptr, c.col_n[q], c.ax.D,
                         c.gain_pos, c.gain_neg, c.mask_hi);
    }
  }
}

// Planes [begin, end) of the NCHW kernel.
template <typename scalar_t, typename T>
VIDGAN_CPU_CLONES void nchw_planes(const NchwPlan<scalar_t, T>& c, int64_t begin, int64_t end) {
  const Upfirdn2dParams& p = c.p;
  const Axis& ax = c.ax;
  const Axis& ay = c.ay;
  const int64_t OH = p.out_h, OW = p.out_w;
  const int64_t Lx = ax.L, Px = ax.P, Py = ay.P, band = c.band, phase_stride = band * Lx;
  const bool grad = c.mode == Mode::GradMask;
  std::vector<T> scratch(ax.D * c.sub_plane);
  std::vector<T> acc(Py * Px * phase_stride);
  std::vector<const T*> phase_ptr(Px);
  std::vector<int64_t> offs(c.tap_off.size());
  for (int64_t plane = begin; plane < end; ++plane) {
    // 1. The plane in the accumulation dtype (GradMask: dy * mask(y)), zero margins,
    //    rows and columns split into their sub-lines.
    std::fill(scratch.begin(), scratch.end(), T(0));
    if (ax.D == 1) {
      grad ? load_plane<1, true>(c, plane, scratch.data()) : load_plane<1, false>(c, plane, scratch.data());
    } else if (ax.D == 2) {
      grad ? load_plane<2, true>(c, plane, scratch.data()) : load_plane<2, false>(c, plane, scratch.data());
    } else {
      grad ? load_plane<0, true>(c, plane, scratch.data()) : load_plane<0, false>(c, plane, scratch.data());
    }
    if (c.bias_sum) c.bias_sum[plane] = block_sum(scratch.data(), int64_t(scratch.size()));
    const T b = c.bias ? c.bias[plane % p.c] : T(0);
    scalar_t* out_plane = c.out + plane * OH * OW;

    for (int64_t tb = 0; tb < ay.maxcount; tb += band) {
      // 2. Each (row phase, column phase) of this band of output rows: all its taps in one
      //    register-blocked pass over the flattened [band rows, Lx] window.
      for (size_t t = 0; t < offs.size(); ++t) offs[t] = c.tap_off[t] + tb * Lx;
      for (int64_t ry = 0; ry < Py; ++ry) {
        const int64_t nt = std::min(band, ay.ph[ry].count - tb);
        if (nt <= 0) continue;
        for (int64_t rx = 0; rx < Px; ++rx) {
          const int64_t count = ax.ph[rx].count;
          if (count == 0) continue;
          const int64_t pair = ry * Px + rx, first = c.pair_first[pair];
          multi_tap(acc.data() + pair * phase_stride, scratch.data(), offs.data() + first, c.tap_w.data() + first,
                    c.pair_k[pair], (nt - 1) * Lx + count);
        }
      }
      // 3. Interleave the phases into output rows, with bias / activation / clamp.
      const int64_t oy_end = std::min(OH, (tb + band) * Py);
      for (int64_t oy = tb * Py; oy < oy_end; ++oy) {
        const int64_t ry = oy % Py, t = oy / Py - tb;
        for (int64_t rx = 0; rx < Px; ++rx) phase_ptr[rx] = acc.data() + (ry * Px + rx) * phase_stride + t * Lx;
        scalar_t* orow = out_plane + oy * OW;
        switch (c.mode == Mode::BiasAct ? c.act : Act::Linear) {
          case Act::LRelu: write_row<Act::LRelu>(orow, phase_ptr.data(), Px, OW, b, c.out_epi); break;
          case Act::Relu: write_row<Act::Relu>(orow, phase_ptr.data(), Px, OW, b, c.out_epi); break;
          default: write_row<Act::Linear>(orow, phase_ptr.data(), Px, OW, b, c.out_epi);
        }
      }
    }
  }
}

template <typename scalar_t, typename T>
void nchw_kernel(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  const NchwPlan<scalar_t, T> plan(p, mode, a);
  at::parallel_for(0, p.n * p.c, 1, [&](int64_t begin, int64_t end) { nchw_planes(plan, begin, end); });
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
