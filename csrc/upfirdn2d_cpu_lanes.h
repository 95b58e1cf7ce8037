// The CPU kernel of the upfirdn2d family for small planes (float / double, NCHW, all modes):
// planes as vector lanes. With 4x4 or 8x8 planes every row is shorter than a vector or two, and
// the row-wise kernel (upfirdn2d_cpu_nchw.h) spends its time on per-row work; here a vector holds
// the same pixel of L planes instead (L = VB / sizeof(T): 16, 8 or 4 floats), so:
//   1. the input pixels of L planes are transposed into S [H*W][L] (GradMask: dy * mask(y));
//   2. each output pixel is one multiply-add per filter tap that meets a real input sample (the
//      taps of every output pixel are listed once per call; padding and zero insertion are just
//      taps left out), then bias (one per lane), activation, gain and clamp;
//   3. L such pixels at a time are transposed in registers and stored into the L output planes.
// A task is 16 planes (a multiple of L at every level). Each output is computed by the same
// instructions whatever its lane, so results depend neither on the batch nor on the threads.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "upfirdn2d.h"
#include "upfirdn2d_cpu_loops.h"

#ifdef VIDGAN_SHUFFLE
namespace vidgan {
namespace cpu {

template <typename T>
struct LanesPlan {
  static constexpr int64_t kBlock = 16;  // planes per task
  Upfirdn2dParams p;
  Mode mode;
  int64_t planes, ntasks, HW, OHW;
  std::vector<int64_t> pix_first;  // [OH*OW + 1] taps of output pixel o: [pix_first[o], pix_first[o + 1])
  std::vector<int64_t> tap_src;    // input pixel iy * W + ix of each tap
  std::vector<T> tap_w;            // its weight
  bool mask = false;
  T gain_pos = 1, gain_neg = 1, mask_hi = 0;
  Epi<T> epi;
  const T* x = nullptr;
  const T* y = nullptr;
  const T* bias = nullptr;
  T* bias_sum = nullptr;
  T* out = nullptr;

  // Whether a call is better served by this kernel than the row-wise one.
  static bool suits(const Upfirdn2dParams& p) {
    return p.in_h * p.in_w <= 256 && p.out_h * p.out_w <= 256 && p.n * p.c >= kBlock;
  }

  LanesPlan(const Upfirdn2dParams& p_, Mode mode_, const KernelArgs& a, const std::vector<T>& w)
      : p(p_), mode(mode_) {
    planes = p.n * p.c;
    ntasks = (planes + kBlock - 1) / kBlock;
    HW = p.in_h * p.in_w;
    OHW = p.out_h * p.out_w;
    for (int64_t oy = 0; oy < p.out_h; ++oy) {
      const int64_t sy = oy * p.downy - p.pady0, k0y = floor_mod(-sy, p.upy), iby = floor_div(sy + k0y, p.upy);
      for (int64_t ox = 0; ox < p.out_w; ++ox) {
        const int64_t sx = ox * p.downx - p.padx0, k0x = floor_mod(-sx, p.upx), ibx = floor_div(sx + k0x, p.upx);
        pix_first.push_back(int64_t(tap_src.size()));
        for (int64_t ky = k0y, iy = iby; ky < p.fh; ky += p.upy, ++iy) {
          if (iy < 0 || iy >= p.in_h) continue;
          for (int64_t kx = k0x, ix = ibx; kx < p.fw; kx += p.upx, ++ix) {
            if (ix < 0 || ix >= p.in_w) continue;
            tap_src.push_back(iy * p.in_w + ix);
            tap_w.push_back(w[ky * p.fw + kx]);
          }
        }
      }
    }
    pix_first.push_back(int64_t(tap_src.size()));
    x = a.x.data_ptr<T>();
    out = a.out.data_ptr<T>();
    const Act act = mode == Mode::Plain ? Act::Linear : p.act;
    const T hi = p.clamp >= 0 ? T(p.clamp) : std::numeric_limits<T>::infinity();
    if (mode == Mode::BiasAct) {
      epi = Epi<T>{T(p.alpha), T(p.act_gain), -hi, hi};
      if (p.has_bias) bias = a.bias.data_ptr<T>();
    } else if (mode == Mode::GradMask) {
      mask = act != Act::Linear || p.clamp >= 0;
      if (mask) y = a.y.data_ptr<T>();
      gain_pos = act == Act::Linear ? T(1) : T(p.act_gain);
      gain_neg = act == Act::Linear ? T(1) : act == Act::Relu ? T(0) : T(p.alpha * p.act_gain);
      mask_hi = hi;
      if (p.has_bias) bias_sum = a.bias_sum.data_ptr<T>();
    }
  }

  // Output pixel o of all lanes: the taps, then bias, activation, gain and clamp.
  template <Act A, bool BIAS, bool CLAMP, typename V>
  VIDGAN_INLINE V pixel(int64_t o, const T* __restrict S, V b) const {
    constexpr int64_t L = sizeof(V) / sizeof(T);
    V acc = {};
    const int64_t t0 = pix_first[o], t1 = pix_first[o + 1];
    if (t1 > t0) {
      acc = *reinterpret_cast<const V*>(S + tap_src[t0] * L) * tap_w[t0];
      for (int64_t t = t0 + 1; t < t1; ++t) acc += *reinterpret_cast<const V*>(S + tap_src[t] * L) * tap_w[t];
    }
    return apply_vec<A, BIAS, CLAMP>(acc, b, epi);
  }

  // 2. and 3.: L output pixels at a time, transposed in registers into the n output planes.
  template <int VB, Act A, bool BIAS, bool CLAMP>
  VIDGAN_INLINE void compute(int64_t p0, int64_t n, const T* __restrict S) const {
    typedef T V __attribute__((vector_size(VB), aligned(alignof(T))));
    constexpr int64_t L = VB / int64_t(sizeof(T));
    V b = {};
    if constexpr (BIAS)
      for (int64_t l = 0; l < n; ++l) b[l] = bias[(p0 + l) % p.c];
    T* const dst = out + p0 * OHW;
    int64_t o = 0;
    for (; o + L <= OHW; o += L) {
      V r[L];
      for (int64_t j = 0; j < L; ++j) r[j] = pixel<A, BIAS, CLAMP>(o + j, S, b);
      transpose(r);
      for (int64_t l = 0; l < n; ++l) *reinterpret_cast<V*>(dst + l * OHW + o) = r[l];
    }
    for (; o < OHW; ++o) {
      const V v = pixel<A, BIAS, CLAMP>(o, S, b);
      for (int64_t l = 0; l < n; ++l) dst[l * OHW + o] = v[l];
    }
  }

  // compute() with the bias (b) and clamp (c) flags made compile-time.
  template <int VB, Act A>
  VIDGAN_INLINE void compute_bc(bool b, bool c, int64_t p0, int64_t n, const T* __restrict S) const {
    if (b) return c ? compute<VB, A, true, true>(p0, n, S) : compute<VB, A, true, false>(p0, n, S);
    return c ? compute<VB, A, false, true>(p0, n, S) : compute<VB, A, false, false>(p0, n, S);
  }

  // Planes [p0, p0 + n) of the batch, n <= L.
  template <int VB>
  VIDGAN_INLINE void block(int64_t p0, int64_t n, T* __restrict S, T* __restrict tmp) const {
    typedef T V __attribute__((vector_size(VB), aligned(alignof(T))));
    constexpr int64_t L = VB / int64_t(sizeof(T));
    const T* src[L];  // 1. each lane's input plane (GradMask: dy * mask(y)), transposed into S
    for (int64_t l = 0; l < L; ++l) {
      src[l] = l < n ? x + (p0 + l) * HW : nullptr;
      if (mask && l < n) {
        mask_grad<VB>(tmp + l * HW, src[l], y + (p0 + l) * HW, HW, gain_pos, gain_neg, mask_hi);
        src[l] = tmp + l * HW;
      }
      if (bias_sum && l < n) bias_sum[p0 + l] = block_sum(src[l], HW);
    }
    int64_t i = 0;
    for (; i + L <= HW; i += L) {
      V r[L];
      for (int64_t l = 0; l < L; ++l) r[l] = l < n ? *reinterpret_cast<const V*>(src[l] + i) : V{};
      transpose(r);
      for (int64_t j = 0; j < L; ++j) *reinterpret_cast<V*>(S + (i + j) * L) = r[j];
    }
    for (; i < HW; ++i)
      for (int64_t l = 0; l < L; ++l) S[i * L + l] = l < n ? src[l][i] : T(0);
    const bool b = bias != nullptr, c = mode == Mode::BiasAct && p.clamp >= 0;
    switch (mode == Mode::BiasAct ? p.act : Act::Linear) {
      case Act::LRelu:
        return compute_bc<VB, Act::LRelu>(b, c, p0, n, S);
      case Act::Relu:
        return compute_bc<VB, Act::Relu>(b, c, p0, n, S);
      default:
        return compute_bc<VB, Act::Linear>(b, c, p0, n, S);
    }
  }

  template <int VB>
  VIDGAN_INLINE void run(TaskQueue& q) const {
    constexpr int64_t L = VB / int64_t(sizeof(T));
    static_assert(kBlock % L == 0, "a task is a whole number of vectors of planes");
    std::vector<T> S(HW * L), tmp(mask ? HW * L : 0);
    for (int64_t task = q.take(); task >= 0; task = q.take())
      for (int64_t p0 = task * kBlock; p0 < std::min(planes, task * kBlock + kBlock); p0 += L)
        block<VB>(p0, std::min(L, planes - p0), S.data(), tmp.data());
  }
};

}  // namespace cpu
}  // namespace vidgan
#endif
