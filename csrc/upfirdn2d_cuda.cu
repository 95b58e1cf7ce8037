// CUDA kernels of the upfirdn2d family (see upfirdn2d.h for the modes).
//
// One block computes a tile of tile_oh x tile_ow outputs of one (n, c) plane: it first
// stages the tile's input footprint (halo included, zero outside the input, for GradMask
// dy * mask(y)) in shared memory in the accumulation dtype, then every thread computes
// its outputs polyphase-wise (only the filter taps that meet non-zero samples of the
// zero-inserted signal), adds bias, activates, clamps and stores. Blocks loop over
// planes and tiles, so any size fits the grid limits; all offsets are 64-bit. Inputs and
// outputs are addressed through their strides (NCHW, channels_last, anything). The bias
// gradient is a per-plane block reduction (no atomics) summed over the batch afterwards.
// Everything runs on the current stream; the filter arrives as a tensor (no constant memory).
// This is the default kernel; VIDGAN_CUDA_KERNEL=v2 routes calls to the v2 kernels first
// (upfirdn2d_cuda_v2.cu), which hand back to this one what they do not cover.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // the current stream (what at::cuda::getCurrentCUDAStream returns),
                                    // without ATen/cuda/CUDAContext.h's cuBLAS/cuSPARSE headers
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "upfirdn2d.h"
#include "upfirdn2d_cuda_v2.cuh"

namespace vidgan {
namespace {

constexpr int kThreads = 256;                  // threads per block (a power of two: the reduction needs it)
constexpr int kMaxTileH = 32, kMaxTileW = 64;  // output tile (shrunk when the input footprint is too big)
constexpr int64_t kMaxSmem = 46 * 1024;        // dynamic shared memory (48 KiB without opting in, less the tables)
constexpr int64_t kMaxFilterSmem = 16 * 1024;  // larger filters are read from global memory

// Sizes, strides and epilogue constants of one launch (passed by value).
template <typename acc_t>
struct DevParams {
  int64_t c, planes, in_h, in_w, out_h, out_w;
  int64_t upx, upy, downx, downy, padx0, pady0, fh, fw;
  int64_t xs[4], ys[4], os[4];  // element strides of x (or dy), y (GradMask) and out
  int64_t tile_oh, tile_ow, tile_ih, tile_iw, tiles_y, tiles_x;
  bool use_smem, w_in_smem, has_bias;
  int act;
  acc_t alpha, act_gain, lo, hi;  // activation slope / gain; clamp range (+-inf: none)
  acc_t gain_pos, gain_neg;       // GradMask: mask = (y > 0 ? gain_pos : gain_neg) * (|y| < hi)
};

template <typename acc_t>
__device__ __forceinline__ acc_t epilogue(acc_t v, const DevParams<acc_t>& p) {
  if (p.act == static_cast<int>(Act::LRelu)) {
    v = (v > acc_t(0) ? v : v * p.alpha) * p.act_gain;
  } else if (p.act == static_cast<int>(Act::Relu)) {
    v = (v > acc_t(0) || v != v ? v : acc_t(0)) * p.act_gain;
  }
  return v < p.lo ? p.lo : (v > p.hi ? p.hi : v);  // NaN passes through
}

template <typename acc_t>
__device__ __forceinline__ acc_t grad_mask(acc_t yv, const DevParams<acc_t>& p) {
  const acc_t m = yv > acc_t(0) ? p.gain_pos : p.gain_neg;
  const acc_t ay = yv < acc_t(0) ? -yv : yv;
  return ay < p.hi ? m : acc_t(0);
}

// Value of the kernel's input at (iy, ix) of the plane (in range), in the accumulation dtype.
template <Mode MODE, typename scalar_t, typename acc_t>
__device__ __forceinline__ acc_t load_input(const scalar_t* __restrict__ xp, const scalar_t* __restrict__ yp,
                                            int64_t iy, int64_t ix, const DevParams<acc_t>& p) {
  const acc_t v = static_cast<acc_t>(xp[iy * p.xs[2] + ix * p.xs[3]]);
  if constexpr (MODE == Mode::GradMask) {
    return v * grad_mask(static_cast<acc_t>(yp[iy * p.ys[2] + ix * p.ys[3]]), p);
  } else {
    return v;
  }
}

template <Mode MODE, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    upfirdn2d_tile_kernel(const DevParams<acc_t> p, const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                          const acc_t* __restrict__ w, const acc_t* __restrict__ bias, scalar_t* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* s_w = reinterpret_cast<acc_t*>(smem_raw);      // [fh * fw] when w_in_smem
  acc_t* s_in = s_w + (p.w_in_smem ? p.fh * p.fw : 0);  // [tile_ih * tile_iw] when use_smem
  // Per tile row / column: first filter tap and the tile-local input row / column it meets.
  __shared__ int s_k0y[kMaxTileH], s_ry[kMaxTileH], s_k0x[kMaxTileW], s_rx[kMaxTileW];
  const int tid = threadIdx.x;
  if (p.w_in_smem) {
    for (int64_t i = tid; i < p.fh * p.fw; i += blockDim.x) s_w[i] = w[i];
  }
  const acc_t* __restrict__ wp = p.w_in_smem ? s_w : w;
  const int fh = static_cast<int>(p.fh), fw = static_cast<int>(p.fw);
  const int upx = static_cast<int>(p.upx), upy = static_cast<int>(p.upy);
  const int tile_oh = static_cast<int>(p.tile_oh), tile_ow = static_cast<int>(p.tile_ow);
  const int tile_iw = static_cast<int>(p.tile_iw);
  const int n_in = static_cast<int>(p.tile_ih) * tile_iw;
  const int n_out = tile_oh * tile_ow;

  for (int64_t plane = blockIdx.z; plane < p.planes; plane += gridDim.z) {
    const int64_t ni = plane / p.c, ci = plane - ni * p.c;
    const scalar_t* __restrict__ xp = x + ni * p.xs[0] + ci * p.xs[1];
    const scalar_t* __restrict__ yp = MODE == Mode::GradMask ? y + ni * p.ys[0] + ci * p.ys[1] : nullptr;
    scalar_t* __restrict__ op = out + ni * p.os[0] + ci * p.os[1];
    const acc_t b = (MODE == Mode::BiasAct && p.has_bias) ? bias[ci] : acc_t(0);

    for (int64_t ty = blockIdx.y; ty < p.tiles_y; ty += gridDim.y) {
      for (int64_t tx = blockIdx.x; tx < p.tiles_x; tx += gridDim.x) {
        const int64_t oy0 = ty * p.tile_oh, ox0 = tx * p.tile_ow;
        // First input row / column any output of the tile reads: ceil((o0 * down - pad0) / up).
        const int64_t iy0 = floor_div(oy0 * p.downy - p.pady0 + p.upy - 1, p.upy);
        const int64_t ix0 = floor_div(ox0 * p.downx - p.padx0 + p.upx - 1, p.upx);
        __syncthreads();  // the previous tile is done with the tables and s_in
        // Polyphase tables (64-bit math once per tile row / column): taps k0, k0 + up, ...
        // of output o meet input samples ib, ib + 1, ... with ib = (o * down - pad0 + k0) / up.
        for (int i = tid; i < tile_oh + tile_ow; i += blockDim.x) {
          const bool row = i < tile_oh;
          const int l = row ? i : i - tile_oh;
          const int64_t s = row ? (oy0 + l) * p.downy - p.pady0 : (ox0 + l) * p.downx - p.padx0;
          const int64_t up = row ? p.upy : p.upx;
          const int64_t k0 = floor_mod(-s, up);
          const int local = static_cast<int>((s + k0) / up - (row ? iy0 : ix0));  // exact division
          if (row) {
            s_k0y[l] = static_cast<int>(k0);
            s_ry[l] = local;
          } else {
            s_k0x[l] = static_cast<int>(k0);
            s_rx[l] = local;
          }
        }
        if (p.use_smem) {
          for (int i = tid; i < n_in; i += blockDim.x) {
            const int ly = i / tile_iw, lx = i - ly * tile_iw;
            const int64_t iy = iy0 + ly, ix = ix0 + lx;
            acc_t v = acc_t(0);
            if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w) v = load_input<MODE>(xp, yp, iy, ix, p);
            s_in[i] = v;
          }
        }
        __syncthreads();
        for (int i = tid; i < n_out; i += blockDim.x) {
          const int ly = i / tile_ow, lx = i - ly * tile_ow;
          const int64_t oy = oy0 + ly, ox = ox0 + lx;
          if (oy >= p.out_h || ox >= p.out_w) continue;
          const int k0y = s_k0y[ly], ry = s_ry[ly], k0x = s_k0x[lx], rx = s_rx[lx];
          acc_t acc = acc_t(0);
          if (p.use_smem) {
            // All rows / columns a tile output reads lie inside the staged footprint.
            for (int ky = k0y, r = ry; ky < fh; ky += upy, ++r) {
              const acc_t* srow = s_in + r * tile_iw;
              const acc_t* wrow = wp + static_cast<int64_t>(ky) * fw;
              for (int kx = k0x, c = rx; kx < fw; kx += upx, ++c) acc += wrow[kx] * srow[c];
            }
          } else {
            for (int ky = k0y, r = ry; ky < fh; ky += upy, ++r) {
              const int64_t iy = iy0 + r;
              if (iy < 0 || iy >= p.in_h) continue;
              const acc_t* wrow = wp + static_cast<int64_t>(ky) * fw;
              for (int kx = k0x, c = rx; kx < fw; kx += upx, ++c) {
                const int64_t ix = ix0 + c;
                if (ix >= 0 && ix < p.in_w) acc += wrow[kx] * load_input<MODE>(xp, yp, iy, ix, p);
              }
            }
          }
          if constexpr (MODE == Mode::BiasAct) acc = epilogue(acc + b, p);
          op[oy * p.os[2] + ox * p.os[3]] = static_cast<scalar_t>(acc);
        }
      }
    }
  }
}

// sums[plane] = sum over the plane of dy * mask(y); one block per plane, tree reduction.
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    bias_grad_kernel(const DevParams<acc_t> p, const scalar_t* __restrict__ dy, const scalar_t* __restrict__ y,
                     acc_t* __restrict__ sums) {
  __shared__ acc_t red[kThreads];
  const int64_t hw = p.in_h * p.in_w;
  for (int64_t plane = blockIdx.x; plane < p.planes; plane += gridDim.x) {
    const int64_t ni = plane / p.c, ci = plane - ni * p.c;
    const scalar_t* dp = dy + ni * p.xs[0] + ci * p.xs[1];
    const scalar_t* yp = y + ni * p.ys[0] + ci * p.ys[1];
    acc_t s = acc_t(0);
    for (int64_t e = threadIdx.x; e < hw; e += blockDim.x) {
      const int64_t iy = e / p.in_w, ix = e - iy * p.in_w;
      s += static_cast<acc_t>(dp[iy * p.xs[2] + ix * p.xs[3]]) *
           grad_mask(static_cast<acc_t>(yp[iy * p.ys[2] + ix * p.ys[3]]), p);
    }
    red[threadIdx.x] = s;
    __syncthreads();
    for (int off = kThreads / 2; off > 0; off >>= 1) {
      if (static_cast<int>(threadIdx.x) < off) red[threadIdx.x] += red[threadIdx.x + off];
      __syncthreads();
    }
    if (threadIdx.x == 0) sums[plane] = red[0];
    __syncthreads();  // red is reused by the next plane
  }
}

void copy_strides(int64_t* dst, const at::Tensor& t) {
  for (int i = 0; i < 4; ++i) dst[i] = t.stride(i);
}

template <typename acc_t>
DevParams<acc_t> make_dev_params(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  DevParams<acc_t> d{};
  d.c = p.c;
  d.planes = p.n * p.c;
  d.in_h = p.in_h, d.in_w = p.in_w, d.out_h = p.out_h, d.out_w = p.out_w;
  d.upx = p.upx, d.upy = p.upy, d.downx = p.downx, d.downy = p.downy;
  d.padx0 = p.padx0, d.pady0 = p.pady0, d.fh = p.fh, d.fw = p.fw;
  copy_strides(d.xs, a.x);
  copy_strides(d.os, a.out);
  if (mode == Mode::GradMask) copy_strides(d.ys, a.y);
  d.has_bias = p.has_bias;
  const bool epi = mode != Mode::Plain;
  d.act = epi ? static_cast<int>(p.act) : static_cast<int>(Act::Linear);
  d.alpha = acc_t(p.alpha);
  d.act_gain = acc_t(p.act_gain);
  const bool clamp = epi && p.clamp >= 0;
  d.lo = clamp ? acc_t(-p.clamp) : -std::numeric_limits<acc_t>::infinity();
  d.hi = clamp ? acc_t(p.clamp) : std::numeric_limits<acc_t>::infinity();
  const Act act = static_cast<Act>(d.act);
  d.gain_pos = act == Act::Linear ? acc_t(1) : acc_t(p.act_gain);
  d.gain_neg = act == Act::Linear ? acc_t(1) : act == Act::Relu ? acc_t(0) : acc_t(p.alpha * p.act_gain);

  // Output tile and its input footprint: ((tile - 1) * down + taps - 1) / up + 1 samples.
  d.w_in_smem = p.fh * p.fw * int64_t(sizeof(acc_t)) <= kMaxFilterSmem;
  const int64_t w_bytes = d.w_in_smem ? p.fh * p.fw * int64_t(sizeof(acc_t)) : 0;
  int64_t toh = std::min<int64_t>(kMaxTileH, p.out_h), tow = std::min<int64_t>(kMaxTileW, p.out_w);
  auto footprint = [](int64_t t, int64_t down, int64_t taps, int64_t up) {
    return ((t - 1) * down + taps - 1) / up + 1;
  };
  auto smem_bytes = [&] {
    const int64_t in_h = footprint(toh, p.downy, p.fh, p.upy), in_w = footprint(tow, p.downx, p.fw, p.upx);
    return w_bytes + in_h * in_w * int64_t(sizeof(acc_t));
  };
  while (smem_bytes() > kMaxSmem && (toh > 1 || tow > 1)) {
    if (tow >= toh && tow > 1) {
      tow = (tow + 1) / 2;
    } else {
      toh = (toh + 1) / 2;
    }
  }
  // Staging pays off while a tile still gives every thread an output; past that (huge
  // filters or factors) read the input straight from global memory, with full-size tiles.
  d.use_smem = smem_bytes() <= kMaxSmem && toh * tow >= std::min<int64_t>(kThreads, p.out_h * p.out_w);
  if (!d.use_smem) {
    toh = std::min<int64_t>(kMaxTileH, p.out_h);
    tow = std::min<int64_t>(kMaxTileW, p.out_w);
  }
  d.tile_oh = toh, d.tile_ow = tow;
  d.tile_ih = footprint(toh, p.downy, p.fh, p.upy);
  d.tile_iw = footprint(tow, p.downx, p.fw, p.upx);
  d.tiles_y = (p.out_h + toh - 1) / toh;
  d.tiles_x = (p.out_w + tow - 1) / tow;
  return d;
}

template <Mode MODE, typename scalar_t, typename acc_t>
void launch(const DevParams<acc_t>& d, const KernelArgs& a, cudaStream_t stream) {
  const int64_t smem = (d.w_in_smem ? d.fh * d.fw : 0) * int64_t(sizeof(acc_t)) +
                       (d.use_smem ? d.tile_ih * d.tile_iw * int64_t(sizeof(acc_t)) : 0);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(d.tiles_x, 1 << 30)),
                  static_cast<unsigned>(std::min<int64_t>(d.tiles_y, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(d.planes, 65535)));
  const scalar_t* y = MODE == Mode::GradMask ? a.y.data_ptr<scalar_t>() : nullptr;
  const acc_t* bias = (MODE == Mode::BiasAct && d.has_bias) ? a.bias.data_ptr<acc_t>() : nullptr;
  upfirdn2d_tile_kernel<MODE, scalar_t, acc_t><<<grid, kThreads, static_cast<size_t>(smem), stream>>>(
      d, a.x.data_ptr<scalar_t>(), y, a.w.data_ptr<acc_t>(), bias, a.out.data_ptr<scalar_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (MODE == Mode::GradMask && d.has_bias) {
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(d.planes, 1 << 20));
    bias_grad_kernel<scalar_t, acc_t><<<blocks, kThreads, 0, stream>>>(d, a.x.data_ptr<scalar_t>(), y,
                                                                       a.bias_sum.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace

void upfirdn2d_kernel_cuda(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  const c10::cuda::CUDAGuard guard(a.out.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(a.out.device().index());
  // VIDGAN_CUDA_KERNEL=v2: the v2 kernels (upfirdn2d_cuda_v2.cu) take the call unless they decline it.
  if (cuda_kernel_v2_selected() && upfirdn2d_kernel_cuda_v2(p, mode, a, stream)) return;
  if (mode == Mode::GradMask && p.has_bias && p.n > 1 && a.bias_sum.numel() == p.c) {
    // A caller that wants the batch-summed bias gradient [C]: per-plane sums, then their sum over N.
    KernelArgs per_plane = a;
    per_plane.bias_sum = at::empty({p.n * p.c}, a.bias_sum.options());
    upfirdn2d_kernel_cuda(p, mode, per_plane);
    at::Tensor db = a.bias_sum;
    at::sum_out(db, per_plane.bias_sum.view({p.n, p.c}), at::IntArrayRef{0});
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.x.scalar_type(), "vidgan_upfirdn2d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const DevParams<acc_t> d = make_dev_params<acc_t>(p, mode, a);
    switch (mode) {
      case Mode::Plain: launch<Mode::Plain, scalar_t, acc_t>(d, a, stream); break;
      case Mode::BiasAct: launch<Mode::BiasAct, scalar_t, acc_t>(d, a, stream); break;
      case Mode::GradMask: launch<Mode::GradMask, scalar_t, acc_t>(d, a, stream); break;
    }
  });
}

}  // namespace vidgan

TORCH_LIBRARY_IMPL(vidgan, CUDA, m) {
  m.impl("upfirdn2d", &vidgan::upfirdn2d);
  m.impl("fused_upsample", &vidgan::fused_upsample);
  m.impl("fused_upsample_grad", &vidgan::fused_upsample_grad);
}
