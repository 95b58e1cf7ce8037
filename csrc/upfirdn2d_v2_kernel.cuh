// The v2 kernel template (device code), included by the upfirdn2d_v2_*.cu files that instantiate it.
//
// A block item is one output tile (toh x tow) of a group of cpb planes: NCHW, cpb consecutive (n, c)
// planes; channels_last, cpb consecutive channels of one image. The item's input footprint is staged in
// shared memory in float (GradMask: dy * mask(y)), zero outside the input; then every thread computes
// micro-tiles of mty x mtx outputs from a window of that footprint and stores them (bias, activation,
// clamp in BiasAct mode).
//
// Specialised (UP, DOWN, FH, FW > 0; UP == 1 or DOWN == 1): tiles start at outputs whose first tap meets
// an input sample (o * DOWN - pad0 divisible by UP), so within a micro-tile every (output, tap, input)
// triple is known at compile time; the taps live in registers and the loops unroll fully. Generic
// (all 0): 1 x 1 micro-tiles, taps and factors read at run time, polyphase as in v1.
//
// Taps accumulate in ascending (ky, kx) order for every output, as in v1 and the CPU kernel; the result
// is rounded to the storage dtype once. Bias gradient: each item sums dy * mask(y) over the input rows
// and columns it owns (the input is split between tiles without overlap), in a fixed order per thread and
// a fixed order across threads; no atomics, so repeats are bit-identical.
#pragma once

#include <algorithm>
#include <cstdint>

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "upfirdn2d_cuda_v2.cuh"

namespace vidgan {
namespace v2 {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int floordiv(int a, int d) { return a >= 0 ? a / d : -((-a + d - 1) / d); }
__device__ __forceinline__ int floormod(int a, int d) { return a - floordiv(a, d) * d; }

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

__device__ __forceinline__ float epilogue(float v, const Plan& p) {
  if (p.act == static_cast<int>(Act::LRelu)) {
    v = (v > 0.f ? v : v * p.alpha) * p.act_gain;
  } else if (p.act == static_cast<int>(Act::Relu)) {
    v = (v > 0.f || v != v ? v : 0.f) * p.act_gain;
  }
  return v < p.lo ? p.lo : (v > p.hi ? p.hi : v);  // NaN passes through
}

__device__ __forceinline__ float grad_mask(float y, const Plan& p) {
  const float m = y > 0.f ? p.gain_pos : p.gain_neg;
  const float ay = y < 0.f ? -y : y;
  return ay < p.hi ? m : 0.f;
}

// Walks e = start, start + step, ... as mixed-radix digits (d0 < r0, d1 < r1, d2): one division at the start,
// additions and carries per step (runtime integer division costs tens of instructions on a GPU).
struct Walk {
  int d0, d1, d2, s0, s1, s2, r0, r1;
  __device__ __forceinline__ Walk(int start, int step, int r0_, int r1_) : r0(r0_), r1(r1_) {
    d0 = start % r0, d1 = (start / r0) % r1, d2 = start / r0 / r1;
    s0 = step % r0, s1 = (step / r0) % r1, s2 = step / r0 / r1;
  }
  __device__ __forceinline__ void next() {
    d0 += s0;
    int carry = d0 >= r0;
    d0 -= carry ? r0 : 0;
    d1 += s1 + carry;
    carry = d1 >= r1;
    d1 -= carry ? r1 : 0;
    d2 += s2 + carry;
  }
};

// Where one block item's planes live: element (c, iy, ix) of the group is at base + c * cs + iy * rs + ix * xs.
struct Group {
  int64_t in_base, out_base;
  int in_cs, in_rs, in_xs, out_cs, out_rs, out_xs;
  int count;     // planes of the group that exist (the last group may be short)
  int plane0;    // plane index n * C + c of the group's first plane; planes follow one by one
};

__device__ __forceinline__ Group group_of(const Plan& p, int g) {
  Group q;
  if (p.cl) {
    const int gpi = (p.c + p.cpb - 1) / p.cpb;  // groups per image
    const int n = g / gpi, c0 = (g - n * gpi) * p.cpb;
    q.count = min(p.cpb, p.c - c0);
    q.plane0 = n * p.c + c0;
    q.in_base = (int64_t(n) * p.in_h * p.in_w) * p.c + c0;
    q.out_base = (int64_t(n) * p.out_h * p.out_w) * p.c + c0;
    q.in_cs = 1, q.in_rs = p.in_w * p.c, q.in_xs = p.c;
    q.out_cs = 1, q.out_rs = p.out_w * p.c, q.out_xs = p.c;
  } else {
    const int pl0 = g * p.cpb;
    q.count = min(p.cpb, p.planes - pl0);
    q.plane0 = pl0;
    q.in_base = int64_t(pl0) * p.in_h * p.in_w;
    q.out_base = int64_t(pl0) * p.out_h * p.out_w;
    q.in_cs = p.in_h * p.in_w, q.in_rs = p.in_w, q.in_xs = 1;
    q.out_cs = p.out_h * p.out_w, q.out_rs = p.out_w, q.out_xs = 1;
  }
  return q;
}

// Shared-memory index of staged sample (c, ly, lx): NCHW planes of rows (a row starts `ax` samples before
// the footprint's first column when staged with aligned 4-wide loads); channels_last pixels of channels.
__device__ __forceinline__ int sidx(const Plan& p, int ax, int c, int ly, int lx) {
  return p.cl ? (ly * p.tiw + lx) * p.cpb + c : (c * p.tih + ly) * p.pitch + lx + ax;
}

// The kernel's input at element offset `off` (in range), in float: x, or dy * mask(y) for GradMask.
template <Mode MODE, typename T>
__device__ __forceinline__ float load_in(const T* __restrict__ x, const T* __restrict__ y, int64_t off,
                                         const Plan& p) {
  const float v = static_cast<float>(x[off]);
  if constexpr (MODE == Mode::GradMask) {
    return v * grad_mask(static_cast<float>(y[off]), p);
  } else {
    return v;
  }
}

// Stages rows iy0.. and columns ix0.. of the group's planes into s (zeros outside the input). V = 4:
// 4-wide loads along the contiguous dimension (x for NCHW, from ix0 - ax, a multiple of 4; c for
// channels_last); the plan allows it only where those loads are aligned.
template <Mode MODE, int V, typename T>
__device__ __forceinline__ void stage(const Plan& p, const Group& q, const T* __restrict__ x,
                                      const T* __restrict__ y, int iy0, int ix0, int ax, float* __restrict__ s) {
  const T* xg = x + q.in_base;
  const T* yg = MODE == Mode::GradMask ? y + q.in_base : nullptr;
  if (!p.cl) {
    const int ixa = ix0 - ax, chunks = p.pitch / V, n = p.cpb * p.tih * chunks;
    Walk it(threadIdx.x, kThreads, chunks, p.tih);  // e = (c * tih + ly) * chunks + j
    for (int e = threadIdx.x; e < n; e += kThreads, it.next()) {
      const int j = it.d0, ly = it.d1, c = it.d2;
      const int iy = iy0 + ly, ix = ixa + j * V;
      float* dst = s + (c * p.tih + ly) * p.pitch + j * V;
      const bool row = c < q.count && iy >= 0 && iy < p.in_h;
      const int off = row ? c * q.in_cs + iy * q.in_rs + ix : 0;  // (offsets only of rows that exist)
      if (V > 1 && row && ix >= 0 && ix + V <= p.in_w) {
        const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(xg + off);
        Vec<T, V> yvv;
        if constexpr (MODE == Mode::GradMask) yvv = *reinterpret_cast<const Vec<T, V>*>(yg + off);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          float v = static_cast<float>(xv.v[i]);
          if constexpr (MODE == Mode::GradMask) v *= grad_mask(static_cast<float>(yvv.v[i]), p);
          dst[i] = v;
        }
      } else {
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const bool in = row && ix + i >= 0 && ix + i < p.in_w;
          dst[i] = in ? load_in<MODE>(xg, yg, off + i, p) : 0.f;
        }
      }
    }
  } else {
    const int cchunks = p.cpb / V, n = p.tih * p.tiw * cchunks;
    Walk it(threadIdx.x, kThreads, cchunks, p.tiw);  // e = (ly * tiw + lx) * cchunks + j
    for (int e = threadIdx.x; e < n; e += kThreads, it.next()) {
      const int j = it.d0, lx = it.d1, ly = it.d2, pix = ly * p.tiw + lx;
      const int iy = iy0 + ly, ix = ix0 + lx, c = j * V;
      float* dst = s + pix * p.cpb + c;
      const bool inside = iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w;
      const int off = inside ? iy * q.in_rs + ix * q.in_xs + c : 0;
      if (V > 1 && inside && c + V <= q.count) {
        const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(xg + off);
        Vec<T, V> yvv;
        if constexpr (MODE == Mode::GradMask) yvv = *reinterpret_cast<const Vec<T, V>*>(yg + off);
#pragma unroll
        for (int i = 0; i < V; ++i) {
          float v = static_cast<float>(xv.v[i]);
          if constexpr (MODE == Mode::GradMask) v *= grad_mask(static_cast<float>(yvv.v[i]), p);
          dst[i] = v;
        }
      } else {
#pragma unroll
        for (int i = 0; i < V; ++i) dst[i] = inside && c + i < q.count ? load_in<MODE>(xg, yg, off + i, p) : 0.f;
      }
    }
  }
}

template <Mode MODE, int UP, int DOWN, int FH, int FW, int MTY, int MTX, typename T>
__global__ void __launch_bounds__(kThreads)
    v2_kernel(const Plan p, const T* __restrict__ x, const T* __restrict__ y, const float* __restrict__ w,
              const float* __restrict__ bias, T* __restrict__ out, float* __restrict__ partial) {
  constexpr bool kSpec = UP > 0;
  static_assert(!kSpec || UP == 1 || DOWN == 1, "specialisations need up == 1 or down == 1");
  static_assert(!kSpec || MTY % (kSpec ? UP : 1) == 0, "micro-tiles must keep the phase alignment");
  static_assert(kSpec || (MTY == 1 && MTX == 1), "the generic kernel computes one output per task");
  extern __shared__ __align__(16) float s_in[];
  __shared__ float s_red[kThreads];
  const int tid = threadIdx.x;

  float wr[kSpec ? FH : 1][kSpec ? FW : 1];  // cross-correlation taps, in registers when specialised
  if constexpr (kSpec) {
#pragma unroll
    for (int ky = 0; ky < FH; ++ky)
#pragma unroll
      for (int kx = 0; kx < FW; ++kx) wr[ky][kx] = __ldg(w + ky * FW + kx);
  }
  const int upy = kSpec ? UP : p.upy, upx = kSpec ? UP : p.upx;
  const int downy = kSpec ? DOWN : p.downy, downx = kSpec ? DOWN : p.downx;
  const int my_n = p.toh / MTY, mx_n = p.tow / MTX, tasks = p.cpb * my_n * mx_n;
  const int tiles = p.tiles_y * p.tiles_x, items = tiles * p.groups;

  for (int item = blockIdx.x; item < items; item += gridDim.x) {
    const int g = item / tiles, t = item - g * tiles;
    const int ty = t / p.tiles_x, tx = t - ty * p.tiles_x;
    const int oy0 = ty * p.toh - p.sy, ox0 = tx * p.tow - p.sx;
    // First input row / column of the footprint: ceil((o0 * down - pad0) / up), exact when specialised.
    const int iy0 = floordiv(oy0 * downy - p.pady0 + upy - 1, upy);
    const int ix0 = floordiv(ox0 * downx - p.padx0 + upx - 1, upx);
    const int ax = p.vload == 4 && !p.cl ? floormod(ix0, 4) : 0;
    const Group q = group_of(p, g);
    __syncthreads();  // the previous item is done with s_in and s_red
    if (p.vload == 4) {
      stage<MODE, 4>(p, q, x, y, iy0, ix0, ax, s_in);
    } else {
      stage<MODE, 1>(p, q, x, y, iy0, ix0, ax, s_in);
    }
    __syncthreads();

    for (int k = tid; k < tasks; k += kThreads) {
      int c, my, mx;
      if (p.cl) {
        c = k % p.cpb;
        const int r = k / p.cpb;
        mx = r % mx_n, my = r / mx_n;
      } else {
        mx = k % mx_n;
        const int r = k / mx_n;
        my = r % my_n, c = r / my_n;
      }
      const int oys = oy0 + my * MTY, oxs = ox0 + mx * MTX;
      if (c >= q.count || oys >= p.out_h || oxs >= p.out_w) continue;
      float acc[MTY][MTX];
#pragma unroll
      for (int r = 0; r < MTY; ++r)
#pragma unroll
        for (int i = 0; i < MTX; ++i) acc[r][i] = 0.f;
      if constexpr (kSpec) {
        // Output row r of the micro-tile meets window row wy through tap ky = wy * UP - r * DOWN.
        constexpr int WY = ((MTY - 1) * DOWN + FH - 1) / UP + 1, WX = ((MTX - 1) * DOWN + FW - 1) / UP + 1;
        const float* sw = s_in + sidx(p, ax, c, my * (MTY * DOWN / UP), mx * (MTX * DOWN / UP));
        const int srow = p.cl ? p.tiw * p.cpb : p.pitch, scol = p.cl ? p.cpb : 1;
#pragma unroll
        for (int wy = 0; wy < WY; ++wy) {
          float row[WX];
#pragma unroll
          for (int wx = 0; wx < WX; ++wx) row[wx] = sw[wy * srow + wx * scol];
#pragma unroll
          for (int r = 0; r < MTY; ++r) {
            const int ky = wy * UP - r * DOWN;
            if (ky < 0 || ky >= FH) continue;
#pragma unroll
            for (int wx = 0; wx < WX; ++wx)
#pragma unroll
              for (int i = 0; i < MTX; ++i) {
                const int kx = wx * UP - i * DOWN;
                if (kx >= 0 && kx < FW) acc[r][i] += wr[ky][kx] * row[wx];
              }
          }
        }
      } else {
        const int sy = oys * downy - p.pady0, sx = oxs * downx - p.padx0;
        const int k0y = floormod(-sy, upy), k0x = floormod(-sx, upx);
        const int ry = (sy + k0y) / upy - iy0, rx = (sx + k0x) / upx - ix0;  // exact divisions
        for (int ky = k0y, r = ry; ky < p.fh; ky += upy, ++r) {
          const float* wrow = w + ky * p.fw;
          for (int kx = k0x, cc = rx; kx < p.fw; kx += upx, ++cc)
            acc[0][0] += __ldg(wrow + kx) * s_in[sidx(p, ax, c, r, cc)];
        }
      }
      float b = 0.f;
      if (MODE == Mode::BiasAct && p.has_bias) b = __ldg(bias + (q.plane0 + c) % p.c);
      T* og = out + q.out_base + c * q.out_cs;
#pragma unroll
      for (int r = 0; r < MTY; ++r) {
        const int oy = oys + r;
        if (oy < 0 || oy >= p.out_h) continue;
        float v[MTX];
#pragma unroll
        for (int i = 0; i < MTX; ++i) v[i] = MODE == Mode::BiasAct ? epilogue(acc[r][i] + b, p) : acc[r][i];
        if (MTX > 1 && p.vstore && oxs + MTX <= p.out_w) {  // vstore: NCHW, oxs >= 0 and aligned
          Vec<T, MTX> o;
#pragma unroll
          for (int i = 0; i < MTX; ++i) o.v[i] = static_cast<T>(v[i]);
          *reinterpret_cast<Vec<T, MTX>*>(og + oy * q.out_rs + oxs) = o;
        } else {
#pragma unroll
          for (int i = 0; i < MTX; ++i) {
            const int ox = oxs + i;
            if (ox >= 0 && ox < p.out_w) og[oy * q.out_rs + ox * q.out_xs] = static_cast<T>(v[i]);
          }
        }
      }
    }

    if constexpr (MODE == Mode::GradMask) {
      if (p.has_bias) {
        // This item owns input rows [r0, r1) and columns [c0, c1): tile boundaries mapped to the input
        // (up is 1 here), the first / last tile stretched to the input's edges, so items never overlap.
        const int r0 = ty == 0 ? 0 : min(max(oy0 * downy - p.pady0, 0), p.in_h);
        const int r1 = ty == p.tiles_y - 1 ? p.in_h : min(max((oy0 + p.toh) * downy - p.pady0, 0), p.in_h);
        const int c0 = tx == 0 ? 0 : min(max(ox0 * downx - p.padx0, 0), p.in_w);
        const int c1 = tx == p.tiles_x - 1 ? p.in_w : min(max((ox0 + p.tow) * downx - p.padx0, 0), p.in_w);
        const int ow = max(c1 - c0, 0), own = max(r1 - r0, 0) * ow;
        const int per = kThreads / p.cpb;  // threads per plane (the plan keeps cpb <= kThreads)
        float sum = 0.f;
        if (tid < p.cpb * per) {
          const int c = p.cl ? tid % p.cpb : tid / per, j = p.cl ? tid / p.cpb : tid % per;
          if (c < q.count && own > 0) {
            Walk it(j, per, ow, own);  // e = (iy - r0) * ow + (ix - c0)
            for (int e = j; e < own; e += per, it.next()) {
              const int iy = r0 + it.d1, ix = c0 + it.d0, ly = iy - iy0, lx = ix - ix0;
              if (ly >= 0 && ly < p.tih && lx >= 0 && lx < p.tiw) {
                sum += s_in[sidx(p, ax, c, ly, lx)];
              } else {
                sum += load_in<MODE>(x + q.in_base, y + q.in_base,
                                     int64_t(c) * q.in_cs + iy * q.in_rs + ix * q.in_xs, p);
              }
            }
          }
        }
        s_red[tid] = sum;
        __syncthreads();
        if (tid < q.count) {
          float tot = 0.f;
          for (int j = 0; j < per; ++j) tot += s_red[p.cl ? tid + j * p.cpb : tid * per + j];
          partial[int64_t(q.plane0 + tid) * tiles + t] = tot;
        }
      }
    }
  }
}

// One launch: grid of block items, dynamic shared memory for the footprint.
template <Mode MODE, int UP, int DOWN, int FH, int FW, int MTY, int MTX, typename T>
void launch_typed(const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream) {
  const int64_t items = int64_t(p.tiles_y) * p.tiles_x * p.groups;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(items, (int64_t(1) << 31) - 1));
  const size_t smem = size_t(p.cl ? p.tih * p.tiw * p.cpb : p.cpb * p.tih * p.pitch) * sizeof(float);
  const T* y = MODE == Mode::GradMask ? static_cast<const T*>(a.y.data_ptr()) : nullptr;
  const float* bias = MODE == Mode::BiasAct && p.has_bias ? a.bias.data_ptr<float>() : nullptr;
  v2_kernel<MODE, UP, DOWN, FH, FW, MTY, MTX, T><<<blocks, kThreads, smem, stream>>>(
      p, static_cast<const T*>(a.x.data_ptr()), y, a.w.data_ptr<float>(), bias, static_cast<T*>(a.out.data_ptr()),
      partial);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <Mode MODE, int UP, int DOWN, int FH, int FW, int MTY, int MTX>
void launch_dtype(const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream) {
  switch (a.x.scalar_type()) {
    case at::kFloat: launch_typed<MODE, UP, DOWN, FH, FW, MTY, MTX, float>(p, a, partial, stream); break;
    case at::kHalf: launch_typed<MODE, UP, DOWN, FH, FW, MTY, MTX, c10::Half>(p, a, partial, stream); break;
    case at::kBFloat16: launch_typed<MODE, UP, DOWN, FH, FW, MTY, MTX, c10::BFloat16>(p, a, partial, stream); break;
    default: TORCH_CHECK(false, "vidgan v2 CUDA kernel: unsupported dtype (the dispatcher should have used v1).");
  }
}

}  // namespace
}  // namespace v2
}  // namespace vidgan
