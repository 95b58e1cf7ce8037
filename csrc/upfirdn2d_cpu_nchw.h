// The NCHW CPU kernel of the upfirdn2d family (all modes): the plan, made once per call, and the
// per-task loops, which upfirdn2d_cpu.cpp inlines into one function per instruction-set level
// with the vector width of that level (VB bytes: 64 AVX-512, 32 AVX2, 16 baseline).
//
// A task is a group of G consecutive planes (G > 1 when planes are small, so vectors stay long
// on 4x4 planes too). Per group:
//   1. the planes (GradMask: dy * mask(y)) are copied in the accumulation dtype into a scratch
//      with zero margins laid out [Dx][Dy][G][Ly][Lx]: columns split into Dx = down / gcd(up,
//      down) interleaved sub-lines, rows into Dy sub-columns, so the outputs of one phase read
//      consecutive scratch elements along a row, down the rows and on across the planes;
//   2. each (row phase, column phase) pair is one register-blocked multiply-add pass over the
//      flattened [rows, Lx] window, touching only the taps that meet real samples (polyphase:
//      no zero-inserted buffer). Positions past a row's or a plane's outputs are computed and
//      dropped, and every pass is a whole number of vector blocks (no scalar tail), so each
//      output is computed by the same instructions wherever it sits: results do not depend on
//      the grouping, the batch or the thread count;
//   3. the phases are interleaved into the output rows with bias, activation, gain and clamp.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <type_traits>
#include <vector>

#include "upfirdn2d.h"
#include "upfirdn2d_cpu_loops.h"

namespace vidgan {
namespace cpu {

// Polyphase plan along one axis. Output samples o = r, r + P, r + 2P, ... (phase r) use the
// same taps k0, k0 + up, ... and read input samples ib + j + m * D (tap j, m-th sample of the
// phase). The scratch keeps the input samples [lo, hi) split into D interleaved sub-lines of
// length L (sample i -> sub-line (i - lo) % D, position (i - lo) / D): those reads are consecutive.
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
    // At least maxcount: a phase's outputs sit in a row (plane) of L, including phases no tap reaches.
    L = std::max((hi - lo + D - 1) / D, maxcount);
  }
  int64_t sub(int64_t i) const { return (i - lo) % D; }  // sub-line of input sample i
  int64_t pos(int64_t i) const { return (i - lo) / D; }  // its position in the sub-line
};

// The whole NCHW call: sizes, taps, pointers, and the per-task loop run<VB>().
template <typename scalar_t, typename T>
struct NchwPlan {
  Upfirdn2dParams p;
  Mode mode;
  Axis ax, ay;
  int64_t planes, G, ntasks;  // planes N*C, planes per task, tasks
  int64_t Lx, Ly, blk;        // scratch row length, rows per plane, elements per [Dx][Dy] block
  int64_t band, acc_stride;   // accumulator rows per pass, elements per phase accumulator
  int64_t used_rows;          // accumulator rows that hold outputs of a full group
  std::vector<int64_t> row_off;                 // [H] offset of input row iy in plane 0
  std::vector<int64_t> col_i0, col_n, col_off;  // per column sub-line: first input column, count, offset
  std::vector<int64_t> pair_first, pair_k;      // [Py*Px] taps of each phase pair: first index, count
  std::vector<int64_t> tap_off;                 // scratch offset read by each tap (plane 0, row 0)
  std::vector<T> tap_w;                         // weight of each tap
  bool mask = false;  // GradMask: dy is multiplied by mask(y) (false: the mask is 1, y is not read)
  T gain_pos = 1, gain_neg = 1, mask_hi = 0;  // mask = (y > 0 ? gain_pos : gain_neg) * (|y| < mask_hi)
  Epi<T> epi;
  const scalar_t* x = nullptr;
  const scalar_t* y = nullptr;
  const T* bias = nullptr;
  T* bias_sum = nullptr;
  scalar_t* out = nullptr;

  // w: cross-correlation weights [fh * fw] in T, already flipped and scaled by the gain.
  NchwPlan(const Upfirdn2dParams& p_, Mode mode_, const KernelArgs& a, const std::vector<T>& w)
      : p(p_),
        mode(mode_),
        ax(p_.in_w, p_.out_w, p_.upx, p_.downx, p_.padx0, p_.fw),
        ay(p_.in_h, p_.out_h, p_.upy, p_.downy, p_.pady0, p_.fh) {
    planes = p.n * p.c;
    Lx = ax.L;
    Ly = ay.L;
    const int64_t slack = kSlackBytes / int64_t(sizeof(T));
    const int64_t budget = int64_t(24) << 10;
    const int64_t plane_bytes = int64_t(sizeof(T)) * Ly * Lx * (ax.D * ay.D + ax.P * ay.P);
    G = std::max<int64_t>(1, std::min<int64_t>(budget / plane_bytes, (planes + 15) / 16));
    ntasks = (planes + G - 1) / G;
    if (G > 1) {
      band = used_rows = (G - 1) * Ly + ay.maxcount;
    } else {
      used_rows = ay.maxcount;
      band = std::max<int64_t>(1, std::min(used_rows, budget / int64_t(sizeof(T) * ax.P * ay.P * Lx)));
    }
    acc_stride = band * Lx + slack;
    // Reads reach at most Ly + 1 rows and a vector block past the accumulator rows of a block.
    blk = (G * Ly + Ly + 1) * Lx + slack;
    for (int64_t iy = 0; iy < p.in_h; ++iy) row_off.push_back(ay.sub(iy) * blk + ay.pos(iy) * Lx);
    for (int64_t q = 0; q < ax.D; ++q) {
      const int64_t i0 = floor_mod(q + ax.lo, ax.D);  // first input column in sub-line q
      if (i0 >= p.in_w) continue;
      col_i0.push_back(i0);
      col_n.push_back((p.in_w - 1 - i0) / ax.D + 1);
      col_off.push_back(q * ay.D * blk + ax.pos(i0));
    }
    for (int64_t ry = 0; ry < ay.P; ++ry) {
      for (int64_t rx = 0; rx < ax.P; ++rx) {
        const Axis::Phase& qy = ay.ph[ry];
        const Axis::Phase& qx = ax.ph[rx];
        pair_first.push_back(int64_t(tap_off.size()));
        for (int64_t jy = 0; jy < qy.ntaps; ++jy) {
          const int64_t iy = qy.ib + jy;
          for (int64_t jx = 0; jx < qx.ntaps; ++jx) {
            const int64_t ix = qx.ib + jx;
            tap_off.push_back((ax.sub(ix) * ay.D + ay.sub(iy)) * blk + ay.pos(iy) * Lx + ax.pos(ix));
            tap_w.push_back(w[(qy.k0 + jy * p.upy) * p.fw + qx.k0 + jx * p.upx]);
          }
        }
        pair_k.push_back(int64_t(tap_off.size()) - pair_first.back());
      }
    }
    x = a.x.data_ptr<scalar_t>();
    out = a.out.data_ptr<scalar_t>();
    const Act act = mode == Mode::Plain ? Act::Linear : p.act;
    const T hi = p.clamp >= 0 ? T(p.clamp) : std::numeric_limits<T>::infinity();
    if (mode == Mode::BiasAct) {
      epi = Epi<T>{T(p.alpha), T(p.act_gain), -hi, hi};
      if (p.has_bias) bias = a.bias.data_ptr<T>();
    } else if (mode == Mode::GradMask) {
      mask = act != Act::Linear || p.clamp >= 0;
      if (mask) y = a.y.data_ptr<scalar_t>();
      gain_pos = act == Act::Linear ? T(1) : T(p.act_gain);
      gain_neg = act == Act::Linear ? T(1) : act == Act::Relu ? T(0) : T(p.alpha * p.act_gain);
      mask_hi = hi;
      if (p.has_bias) bias_sum = a.bias_sum.data_ptr<T>();
    }
  }

  int64_t scratch_size() const { return ax.D * ay.D * blk; }

  // One input line into its scratch sub-line: d[k] = value(k * step), the input in T (GradMask
  // with a mask: dy * mask(y)). S > 0 fixes the step at compile time.
  template <int S, bool MASK>
  VIDGAN_INLINE void load_line(T* __restrict d, const scalar_t* __restrict xs, const scalar_t* __restrict ys,
                               int64_t n, int64_t step) const {
    if constexpr (S == 1 && !MASK && std::is_same_v<scalar_t, T>) return copy_row(d, xs, n);
    const int64_t st = S > 0 ? S : step;
    const T gp = gain_pos, gn = gain_neg, hi = mask_hi;  // locals: no reloads, selects instead of branches
    for (int64_t k = 0; k < n; ++k) {
      const T xv = T(xs[k * st]);
      if constexpr (MASK) {
        const T yv = T(ys[k * st]);
        const T v = xv * (yv > T(0) ? gp : gn);
        d[k] = std::abs(yv) < hi ? v : T(0);
      } else {
        d[k] = xv;
      }
    }
  }

  template <int S, bool MASK>
  VIDGAN_INLINE void load_plane(int64_t plane, T* __restrict dst) const {
    const int64_t H = p.in_h, W = p.in_w;
    for (int64_t iy = 0; iy < H; ++iy) {
      const scalar_t* xrow = x + (plane * H + iy) * W;
      const scalar_t* yrow = MASK ? y + (plane * H + iy) * W : nullptr;
      for (size_t q = 0; q < col_i0.size(); ++q)
        load_line<S, MASK>(dst + row_off[iy] + col_off[q], xrow + col_i0[q], MASK ? yrow + col_i0[q] : nullptr,
                           col_n[q], ax.D);
    }
  }

  // float / double: GradMask's dy * mask(y) over the whole plane in one vector loop (into tmp),
  // then plain row copies (down = 2: each row split into its two sub-lines in one pass).
  template <int VB>
  VIDGAN_INLINE void load_plane_fast(int64_t plane, T* __restrict dst, T* __restrict tmp) const {
    const int64_t H = p.in_h, W = p.in_w;
    const T* src = reinterpret_cast<const T*>(x) + plane * H * W;
    if (mask) {
      mask_grad<VB>(tmp, src, reinterpret_cast<const T*>(y) + plane * H * W, H * W, gain_pos, gain_neg, mask_hi);
      src = tmp;
    }
    const bool pair = ax.D == 2 && col_i0.size() == 2;
    const size_t qe = pair && col_i0[1] == 0 ? 1 : 0;  // the sub-line of the even columns
    for (int64_t iy = 0; iy < H; ++iy) {
      const T* row = src + iy * W;
      T* d = dst + row_off[iy];
      if (ax.D == 1) {
        copy_row(d + col_off[0], row, W);
      } else if (pair) {
        split2<VB>(d + col_off[qe], d + col_off[1 - qe], row, col_n[qe], col_n[1 - qe]);
      } else {
        for (size_t q = 0; q < col_i0.size(); ++q)
          for (int64_t k = 0; k < col_n[q]; ++k) d[col_off[q] + k] = row[col_i0[q] + k * ax.D];
      }
    }
  }

  // Output rows of accumulator rows [u0, u0 + nrows) (row u: plane u / Ly of the group, phase row u % Ly).
  template <Act A, bool BIAS, bool CLAMP>
  VIDGAN_INLINE void write_rows(const T* acc, int64_t first, int64_t last, int64_t u0, int64_t nrows,
                                const T** ph) const {
    const int64_t OH = p.out_h, OW = p.out_w, Px = ax.P, Py = ay.P;
    for (int64_t g = u0 / Ly; first + g < last && g * Ly < u0 + nrows; ++g) {  // one division per band
      const int64_t plane = first + g;
      const T b = BIAS ? bias[plane % p.c] : T(0);
      scalar_t* out_plane = out + plane * OH * OW;
      const int64_t t_end = std::min(u0 + nrows - g * Ly, Ly);
      for (int64_t t = std::max<int64_t>(u0 - g * Ly, 0); t < t_end; ++t) {
        const T* row = acc + (g * Ly + t - u0) * Lx;
        for (int64_t ry = 0; ry < Py; ++ry) {
          if (t >= ay.ph[ry].count) continue;
          for (int64_t rx = 0; rx < Px; ++rx) ph[rx] = row + (ry * Px + rx) * acc_stride;
          write_row<A, BIAS, CLAMP>(out_plane + (ry + t * Py) * OW, ph, Px, OW, b, epi);
        }
      }
    }
  }

#ifdef VIDGAN_SHUFFLE
  // The same for two column phases (float / double outputs): per plane and row phase, the phases
  // are interleaved with the epilogue in one long vector loop over the band's rows into `inter`
  // (rows of 2 * Lx), and each output row is then a copy.
  template <int VB, Act A, bool BIAS, bool CLAMP>
  VIDGAN_INLINE void write_rows_zip(const T* acc, T* inter, int64_t first, int64_t last, int64_t u0,
                                    int64_t nrows) const {
    const int64_t OH = p.out_h, OW = p.out_w, Py = ay.P, istride = 2 * acc_stride;
    for (int64_t g = u0 / Ly; first + g < last && g * Ly < u0 + nrows; ++g) {
      const int64_t plane = first + g;
      const T b = BIAS ? bias[plane % p.c] : T(0);
      T* out_plane = reinterpret_cast<T*>(out) + plane * OH * OW;
      const int64_t t0 = std::max<int64_t>(u0 - g * Ly, 0), t_end = std::min(u0 + nrows - g * Ly, Ly);
      for (int64_t ry = 0; ry < Py; ++ry) {
        const int64_t nt = std::min(t_end, ay.ph[ry].count) - t0;
        const T* a = acc + 2 * ry * acc_stride + (g * Ly + t0 - u0) * Lx;
        if (nt > 0)
          zip_rows<VB, A, BIAS, CLAMP>(inter + ry * istride, a, a + acc_stride, (nt - 1) * Lx + (OW + 1) / 2, b, epi);
      }
      for (int64_t t = t0; t < t_end; ++t)
        for (int64_t ry = 0; ry < Py; ++ry)
          if (t < ay.ph[ry].count)
            copy_row(out_plane + (ry + t * Py) * OW, inter + ry * istride + (t - t0) * 2 * Lx, OW);
    }
  }
#endif

  template <int VB, Act A, bool BIAS>
  VIDGAN_INLINE void write_rows_c(const T* acc, T* inter, int64_t first, int64_t last, int64_t u0, int64_t nrows,
                                  const T** ph) const {
    const bool clamp = p.clamp >= 0 && mode == Mode::BiasAct;
#ifdef VIDGAN_SHUFFLE
    if (ax.P == 2 && std::is_same_v<scalar_t, T>) {
      return clamp ? write_rows_zip<VB, A, BIAS, true>(acc, inter, first, last, u0, nrows)
                   : write_rows_zip<VB, A, BIAS, false>(acc, inter, first, last, u0, nrows);
    }
#endif
    clamp ? write_rows<A, BIAS, true>(acc, first, last, u0, nrows, ph)
          : write_rows<A, BIAS, false>(acc, first, last, u0, nrows, ph);
  }

  // One task: planes [task * G, task * G + G) of the batch.
  template <int VB>
  VIDGAN_INLINE void group(int64_t task, T* scratch, T* acc, T* inter, T* tmp, int64_t* offs, const T** ph) const {
    const int64_t first = task * G, last = std::min(first + G, planes);
    const int64_t plane_stride = Ly * Lx;
    for (int64_t g = 0; first + g < last; ++g) {
      T* dst = scratch + g * plane_stride;
      if constexpr (std::is_same_v<scalar_t, T>) {
        load_plane_fast<VB>(first + g, dst, tmp);
      } else {
        switch ((mask ? 4 : 0) + std::min<int64_t>(ax.D, 3)) {
          case 1: load_plane<1, false>(first + g, dst); break;
          case 2: load_plane<2, false>(first + g, dst); break;
          case 3: load_plane<0, false>(first + g, dst); break;
          case 5: load_plane<1, true>(first + g, dst); break;
          case 6: load_plane<2, true>(first + g, dst); break;
          default: load_plane<0, true>(first + g, dst);
        }
      }
      if (bias_sum) {
        T s = 0;
        for (int64_t b = 0; b < ax.D * ay.D; ++b) s += block_sum(dst + b * blk, plane_stride);
        bias_sum[first + g] = s;
      }
    }
    const int64_t rows = (last - first - 1) * Ly + ay.maxcount;
    const int64_t chunk = 4 * VB / int64_t(sizeof(T));
    for (int64_t u0 = 0; u0 < rows; u0 += band) {
      const int64_t nrows = std::min(band, rows - u0);
      const int64_t n = (nrows * Lx + chunk - 1) / chunk * chunk;
      for (size_t t = 0; t < tap_off.size(); ++t) offs[t] = tap_off[t] + u0 * Lx;
      for (int64_t pair = 0; pair < ay.P * ax.P; ++pair) {
        const int64_t first_tap = pair_first[pair];
        multi_tap<VB>(acc + pair * acc_stride, scratch, offs + first_tap, tap_w.data() + first_tap,
                      pair_k[pair], n);
      }
      const bool b = bias != nullptr;
      switch (mode == Mode::BiasAct ? p.act : Act::Linear) {
        case Act::LRelu:
          b ? write_rows_c<VB, Act::LRelu, true>(acc, inter, first, last, u0, nrows, ph)
            : write_rows_c<VB, Act::LRelu, false>(acc, inter, first, last, u0, nrows, ph);
          break;
        case Act::Relu:
          b ? write_rows_c<VB, Act::Relu, true>(acc, inter, first, last, u0, nrows, ph)
            : write_rows_c<VB, Act::Relu, false>(acc, inter, first, last, u0, nrows, ph);
          break;
        default:
          b ? write_rows_c<VB, Act::Linear, true>(acc, inter, first, last, u0, nrows, ph)
            : write_rows_c<VB, Act::Linear, false>(acc, inter, first, last, u0, nrows, ph);
      }
    }
  }

  // The loop of one thread: scratch and accumulators once, then tasks until none are left.
  template <int VB>
  VIDGAN_INLINE void run(TaskQueue& q) const {
    std::vector<T> scratch(scratch_size() + kSlackBytes / sizeof(T), T(0));  // margins stay zero
    std::vector<T> acc(ax.P * ay.P * acc_stride);
    std::vector<T> inter(ax.P == 2 ? ay.P * 2 * acc_stride : 0);
    std::vector<T> tmp(mask ? p.in_h * p.in_w : 0);
    std::vector<int64_t> offs(tap_off.size());
    std::vector<const T*> ph(ax.P);
    for (int64_t task = q.take(); task >= 0; task = q.take())
      group<VB>(task, scratch.data(), acc.data(), inter.data(), tmp.data(), offs.data(), ph.data());
  }
};

}  // namespace cpu
}  // namespace vidgan
