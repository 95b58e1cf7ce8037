// The second generation of the CUDA kernels (v2), selected per call by VIDGAN_CUDA_KERNEL=v2 until it has
// passed `make gpu-check` on a GPU; unset (or any other value) keeps the v1 kernel of upfirdn2d_cuda.cu.
//
// Host-only declarations (safe to include from a .cpp built by the host compiler):
//   cuda_kernel_v2_selected()   whether VIDGAN_CUDA_KERNEL=v2 is set now (read at every call, so a
//                               process can compare both kernels side by side)
//   upfirdn2d_kernel_cuda_v2()  runs the call on v2 and returns true, or returns false (nothing launched)
//                               for what v2 leaves to v1: double, layouts other than NCHW / channels_last,
//                               sizes that need 64-bit offsets, footprints over the shared-memory budget.
//
// Bias gradient (Mode::GradMask with has_bias): a.bias_sum may be either [N * C] (per-plane sums, what
// upfirdn2d.cpp allocates today) or [C] (the sum over the batch as well, so the caller needs no .sum(0));
// every entry is written, so the caller may allocate it with at::empty. Both kernels accept both sizes.
#pragma once

#include <cuda_runtime_api.h>

#include "upfirdn2d.h"

namespace vidgan {

bool cuda_kernel_v2_selected();
bool upfirdn2d_kernel_cuda_v2(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a, cudaStream_t stream);

namespace v2 {

// One launch of the v2 kernel (plain ints: every offset inside a block's group of planes fits 32 bits;
// the group's base offset is 64-bit). Filled by plan() in upfirdn2d_cuda_v2.cu.
struct Plan {
  int n, c, planes;                    // batch, channels, n * c
  int in_h, in_w, out_h, out_w;
  int upx, upy, downx, downy, padx0, pady0, fh, fw;
  bool cl;                             // channels_last (else NCHW)
  int mty, mtx;                        // outputs per thread task (micro-tile), 1 x 1 for the generic kernel
  int toh, tow;                        // outputs per block tile (multiples of mty, mtx)
  int sy, sx;                          // tile t starts at output t * toh - sy (phase alignment, < up)
  int tih, tiw, pitch;                 // staged input footprint (rows, columns); NCHW smem row pitch
  int cpb;                             // planes (NCHW) or channels (channels_last) per block
  int tiles_y, tiles_x, groups;        // block items = tiles_y * tiles_x * groups
  int vload;                           // 4: 4-wide loads along the contiguous dim when staging; 1: scalar
  bool vstore;                         // NCHW: mtx-wide stores
  bool has_bias;                       // BiasAct: add bias; GradMask: bias gradient wanted
  int act;
  float alpha, act_gain, lo, hi, gain_pos, gain_neg;
};

// Launchers, one per kernel family (defined in upfirdn2d_v2_*.cu). `partial` receives per-(plane, tile)
// bias-gradient sums, [planes * tiles_y * tiles_x], when mode is GradMask and p.has_bias.
using Launcher = void (*)(Mode mode, const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream);
void launch_up2_f4(Mode mode, const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream);
void launch_down2_f4(Mode mode, const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream);
void launch_generic(Mode mode, const Plan& p, const KernelArgs& a, float* partial, cudaStream_t stream);

}  // namespace v2
}  // namespace vidgan
