// Vector loops shared by the CPU kernels of the upfirdn2d family (upfirdn2d_cpu_nchw.h,
// upfirdn2d_cpu.cpp). Everything here is forced inline, so it is compiled into the function of
// each instruction-set level with that level's vector width (VB bytes: 64 AVX-512, 32 AVX2, 16
// baseline) and instructions.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "upfirdn2d.h"

#if defined(__GNUC__)
// Vectors pass between forced-inline functions only, so the ABI notes about them do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#define VIDGAN_INLINE inline __attribute__((always_inline))
#else
#define VIDGAN_INLINE inline
#endif

namespace vidgan {
namespace cpu {


// Tasks handed out one at a time to the threads of a parallel region.
struct TaskQueue {
  std::atomic<int64_t> next{0};
  int64_t n = 0;
  int64_t take() {
    const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
    return t < n ? t : -1;
  }
};

constexpr int64_t kSlackBytes = 256;  // >= 4 vectors of the widest level: reads/writes past a window

// act(v) * gain, with the activation fixed at compile time. Branch-free; NaN stays NaN.
template <Act A, typename T>
VIDGAN_INLINE T activate(T v, T alpha, T gain) {
  if constexpr (A == Act::LRelu) {
    return (std::max(v, T(0)) + alpha * std::min(v, T(0))) * gain;
  } else if constexpr (A == Act::Relu) {
    return std::max(v, T(0)) * gain;
  } else {
    return v;
  }
}

// d[i] = s[i] for i < n, in fixed-size pieces whose index the compiler cannot follow: written as
// a loop, GCC calls memmove once per row, which costs more than the copy for short rows.
#if defined(__GNUC__)
#define VIDGAN_OPAQUE(v) asm("" : "+r"(v))
#else
#define VIDGAN_OPAQUE(v)
#endif
template <typename T>
VIDGAN_INLINE void copy_row(T* __restrict d, const T* __restrict s, int64_t n) {
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __builtin_memcpy(d + k, s + k, 8 * sizeof(T));
    VIDGAN_OPAQUE(k);
  }
  if (k + 4 <= n) {
    __builtin_memcpy(d + k, s + k, 4 * sizeof(T));
    k += 4;
  }
  for (; k < n; ++k) {
    d[k] = s[k];
    VIDGAN_OPAQUE(k);
  }
}

// Epilogue of one output value: + bias, activation * gain, clamp (each only when asked for).
template <typename T>
struct Epi {
  T alpha = 0, gain = 1, lo = 0, hi = 0;
  template <Act A, bool BIAS, bool CLAMP>
  VIDGAN_INLINE T apply(T v, T b) const {
    if constexpr (BIAS) v = v + b;
    v = activate<A>(v, alpha, gain);
    if constexpr (CLAMP) v = std::min(std::max(v, lo), hi);
    return v;
  }
};

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define VIDGAN_SHUFFLE 1
// The epilogue on a vector, with the NaN behaviour of std::max / std::min above.
// b: one bias for all lanes (a scalar) or one per lane (a vector).
template <Act A, bool BIAS, bool CLAMP, typename V, typename B, typename T>
VIDGAN_INLINE V apply_vec(V v, B b, const Epi<T>& e) {
  const V z = {};
  if constexpr (BIAS) v = v + b;
  if constexpr (A == Act::LRelu) v = ((v < z ? z : v) + e.alpha * (z < v ? z : v)) * e.gain;
  if constexpr (A == Act::Relu) v = (v < z ? z : v) * e.gain;
  if constexpr (CLAMP) {
    const V lo = z + e.lo, hi = z + e.hi;
    v = v < lo ? lo : v;
    v = hi < v ? hi : v;
  }
  return v;
}

// [a0, b0, a1, b1, ...] from the low (H = false) or high halves of a and b.
template <bool H, typename V, size_t... I>
VIDGAN_INLINE V zip(V a, V b, std::index_sequence<I...>) {
  constexpr size_t L = sizeof...(I), o = H ? L / 2 : 0;
  return __builtin_shufflevector(a, b, ((I % 2) ? (I / 2 + o + L) : (I / 2 + o))...);
}

// r[j][l] -> r[l][j] for an L x L block of L vectors: log2(L) rounds of zipping row i with row
// i + L/2 into rows 2i and 2i + 1 (a perfect shuffle each round).
template <typename V, size_t L = sizeof(V) / sizeof(std::remove_reference_t<decltype(V{}[0])>)>
VIDGAN_INLINE void transpose(V* r) {
  for (size_t round = 1; round < L; round *= 2) {
    V n[L];
#pragma GCC unroll 16
    for (size_t i = 0; i < L / 2; ++i) {
      n[2 * i] = zip<false>(r[i], r[i + L / 2], std::make_index_sequence<L>());
      n[2 * i + 1] = zip<true>(r[i], r[i + L / 2], std::make_index_sequence<L>());
    }
#pragma GCC unroll 16
    for (size_t i = 0; i < L; ++i) r[i] = n[i];
  }
}

// inter[2i + r] = epilogue(ar[i]) for i < n, in whole vectors of VB bytes (so up to a vector past n:
// the accumulators and `inter` have slack). One long loop over many rows, no per-row work.
template <int VB, Act A, bool BIAS, bool CLAMP, typename T>
VIDGAN_INLINE void zip_rows(T* __restrict inter, const T* __restrict a0, const T* __restrict a1, int64_t n, T b,
                            const Epi<T>& e) {
  typedef T V __attribute__((vector_size(VB), aligned(alignof(T))));
  constexpr int64_t L = VB / int64_t(sizeof(T));
  for (int64_t i = 0; i < n; i += L) {
    const V va = apply_vec<A, BIAS, CLAMP>(*reinterpret_cast<const V*>(a0 + i), b, e);
    const V vb = apply_vec<A, BIAS, CLAMP>(*reinterpret_cast<const V*>(a1 + i), b, e);
    *reinterpret_cast<V*>(inter + 2 * i) = zip<false>(va, vb, std::make_index_sequence<L>());
    *reinterpret_cast<V*>(inter + 2 * i + L) = zip<true>(va, vb, std::make_index_sequence<L>());
  }
}
#endif

// out[ox] = epilogue(phase[ox % P][ox / P]) for one output row (P phase pointers).
template <Act A, bool BIAS, bool CLAMP, typename scalar_t, typename T>
VIDGAN_INLINE void write_row(scalar_t* __restrict out, const T* const* phase, int64_t P, int64_t ow, T b,
                             const Epi<T>& e) {
  if (P == 1 && A == Act::Linear && !BIAS && !CLAMP && std::is_same_v<scalar_t, T>) {
    copy_row(reinterpret_cast<T*>(out), phase[0], ow);
  } else if (P == 1) {
    const T* __restrict a0 = phase[0];
    for (int64_t i = 0; i < ow; ++i) out[i] = static_cast<scalar_t>(e.template apply<A, BIAS, CLAMP>(a0[i], b));
  } else if (P == 2) {
    const T* __restrict a0 = phase[0];
    const T* __restrict a1 = phase[1];
    const int64_t half = ow / 2;
    for (int64_t m = 0; m < half; ++m) {
      out[2 * m] = static_cast<scalar_t>(e.template apply<A, BIAS, CLAMP>(a0[m], b));
      out[2 * m + 1] = static_cast<scalar_t>(e.template apply<A, BIAS, CLAMP>(a1[m], b));
    }
    if (ow & 1) out[ow - 1] = static_cast<scalar_t>(e.template apply<A, BIAS, CLAMP>(a0[half], b));
  } else {
    for (int64_t r = 0; r < P && r < ow; ++r) {
      const T* __restrict ar = phase[r];
      for (int64_t ox = r, m = 0; ox < ow; ox += P, ++m)
        out[ox] = static_cast<scalar_t>(e.template apply<A, BIAS, CLAMP>(ar[m], b));
    }
  }
}

// out[i] = sum_t w[t] * base[off[t] + i] for i < n, n a multiple of 4 vectors of VB bytes,
// accumulated in registers so each output is stored once whatever the number of taps.
template <int VB, typename T>
VIDGAN_INLINE void multi_tap(T* __restrict out, const T* __restrict base, const int64_t* __restrict off,
                             const T* __restrict w, int64_t k, int64_t n) {
  if (k == 0) {
    std::fill(out, out + n, T(0));
    return;
  }
#if defined(__GNUC__)
  typedef T V __attribute__((vector_size(VB), aligned(alignof(T))));
  constexpr int64_t L = VB / int64_t(sizeof(T));
  for (int64_t i = 0; i < n; i += 4 * L) {
    const T* s = base + off[0] + i;
    const T w0 = w[0];
    V a0 = *reinterpret_cast<const V*>(s) * w0;
    V a1 = *reinterpret_cast<const V*>(s + L) * w0;
    V a2 = *reinterpret_cast<const V*>(s + 2 * L) * w0;
    V a3 = *reinterpret_cast<const V*>(s + 3 * L) * w0;
    for (int64_t t = 1; t < k; ++t) {
      const T* st = base + off[t] + i;
      const T wt = w[t];
      a0 += *reinterpret_cast<const V*>(st) * wt;
      a1 += *reinterpret_cast<const V*>(st + L) * wt;
      a2 += *reinterpret_cast<const V*>(st + 2 * L) * wt;
      a3 += *reinterpret_cast<const V*>(st + 3 * L) * wt;
    }
    *reinterpret_cast<V*>(out + i) = a0;
    *reinterpret_cast<V*>(out + i + L) = a1;
    *reinterpret_cast<V*>(out + i + 2 * L) = a2;
    *reinterpret_cast<V*>(out + i + 3 * L) = a3;
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    T v = w[0] * base[off[0] + i];
    for (int64_t t = 1; t < k; ++t) v += w[t] * base[off[t] + i];
    out[i] = v;
  }
#endif
}

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

#ifdef VIDGAN_SHUFFLE
// Even (O = 0) or odd elements of the concatenation [a, b].
template <int O, typename V, size_t... I>
VIDGAN_INLINE V unzip(V a, V b, std::index_sequence<I...>) {
  return __builtin_shufflevector(a, b, (2 * I + O)...);
}
#endif

// d0[k] = s[2k] for k < n0, d1[k] = s[2k + 1] for k < n1 (n0 = n1 or n1 + 1): one input row into
// its two interleaved sub-lines (down = 2). Stores stay inside the sub-lines (their margins are zero).
template <int VB, typename T>
VIDGAN_INLINE void split2(T* __restrict d0, T* __restrict d1, const T* __restrict s, int64_t n0, int64_t n1) {
  int64_t k = 0;
#ifdef VIDGAN_SHUFFLE
  typedef T V __attribute__((vector_size(VB), aligned(alignof(T))));
  constexpr int64_t L = VB / int64_t(sizeof(T));
  for (; k + L <= n1; k += L) {
    const V a = *reinterpret_cast<const V*>(s + 2 * k), b = *reinterpret_cast<const V*>(s + 2 * k + L);
    *reinterpret_cast<V*>(d0 + k) = unzip<0>(a, b, std::make_index_sequence<L>());
    *reinterpret_cast<V*>(d1 + k) = unzip<1>(a, b, std::make_index_sequence<L>());
  }
#endif
  for (; k < n1; ++k) {
    d0[k] = s[2 * k];
    d1[k] = s[2 * k + 1];
  }
  if (n0 > n1) d0[n1] = s[2 * n1];
}

// d[i] = dy[i] * mask(y[i]) for i < n, mask = (y > 0 ? gp : gn) * (-hi < y < hi): the upstream
// gradient through the activation and clamp, in one long vector loop (vectors, then single values
// with the same arithmetic: a product and selects).
template <int VB, typename T>
VIDGAN_INLINE void mask_grad(T* __restrict d, const T* __restrict dy, const T* __restrict y, int64_t n, T gp, T gn,
                             T hi) {
  int64_t i = 0;
#if defined(__GNUC__)
  typedef T V __attribute__((vector_size(VB), aligned(alignof(T))));
  constexpr int64_t L = VB / int64_t(sizeof(T));
  const V z = {}, vgp = z + gp, vgn = z + gn, vhi = z + hi, vlo = z - hi;
  for (; i + L <= n; i += L) {
    const V yv = *reinterpret_cast<const V*>(y + i);
    const V v = *reinterpret_cast<const V*>(dy + i) * (z < yv ? vgp : vgn);
    *reinterpret_cast<V*>(d + i) = ((yv < vhi) & (vlo < yv)) ? v : z;
  }
#endif
  for (; i < n; ++i) {
    const T v = dy[i] * (T(0) < y[i] ? gp : gn);
    d[i] = (y[i] < hi && -hi < y[i]) ? v : T(0);
  }
}

}  // namespace cpu
}  // namespace vidgan
