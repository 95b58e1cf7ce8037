// v2 dispatch: the environment switch, which kernel family serves a call, the launch plan (tiles,
// planes per block, vector widths), and the bias-gradient finish. The kernels are in
// upfirdn2d_v2_kernel.cuh, instantiated by upfirdn2d_v2_{up2,down2,generic}.cu.
//
// Kernel families (any padding, NCHW or channels_last, float32 / float16 / bfloat16):
//   up2_f4    up = 2, down = 1, 4 x 4 taps; Plain and BiasAct: fused_upsample's default (the generator's
//             upsampling and its toRGB skips), upfirdn2d(up=2) (Downsample2d's adjoint, i.e. its
//             backward), and the second-order pass of fused_upsample_grad. 4 x 2 outputs per task.
//   down2_f4  up = 1, down = 2, 4 x 4 taps; Plain and GradMask: Downsample2d (discriminators), upfirdn2d's
//             backward of up=2, and fused_upsample's backward with the bias gradient. 4 x 1 outputs per task.
//   generic   everything else (other factors, filter sizes, non-square filters, up != 1 and down != 1).
// Calls v2 leaves to v1 (return false): float64, other layouts, sizes needing 64-bit offsets inside a
// group of planes, footprints over the shared-memory budget.
#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "upfirdn2d_cuda_v2.cuh"

namespace vidgan {

bool cuda_kernel_v2_selected() {
  const char* v = std::getenv("VIDGAN_CUDA_KERNEL");
  return v != nullptr && std::strcmp(v, "v2") == 0;
}

namespace v2 {
namespace {

constexpr int kThreads = 256;                    // must match the kernel's
constexpr int64_t kMaxSmem = 46 * 1024;          // dynamic shared memory per block (48 KiB less s_red)
constexpr int64_t kLim32 = int64_t(1) << 30;     // coordinates stay below this (products below 2^31)

constexpr unsigned bit(Mode m) { return 1u << static_cast<int>(m); }

struct Family {
  int up, down, fh, fw, mty, mtx;  // 0: read at run time (generic)
  unsigned modes;
  Launcher launch;
};

const Family kUp2F4{2, 1, 4, 4, 4, 2, bit(Mode::Plain) | bit(Mode::BiasAct), &launch_up2_f4};
const Family kDown2F4{1, 2, 4, 4, 4, 1, bit(Mode::Plain) | bit(Mode::GradMask), &launch_down2_f4};
const Family kGeneric{0, 0, 0, 0, 1, 1, bit(Mode::Plain) | bit(Mode::BiasAct) | bit(Mode::GradMask), &launch_generic};

const Family& family_for(const Upfirdn2dParams& p, Mode mode) {
  for (const Family* f : {&kUp2F4, &kDown2F4}) {
    if ((f->modes & bit(mode)) && p.upx == f->up && p.upy == f->up && p.downx == f->down && p.downy == f->down &&
        p.fh == f->fh && p.fw == f->fw)
      return *f;
  }
  return kGeneric;
}

int sm_count(int device) {
  static std::array<std::atomic<int>, 64> cache{};
  if (device < 0 || device >= 64) return 132;
  int v = cache[device].load(std::memory_order_relaxed);
  if (v == 0) {
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || v <= 0) {
      (void)cudaGetLastError();
      v = 132;
    }
    cache[device].store(v, std::memory_order_relaxed);
  }
  return v;
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
int64_t pow2_floor(int64_t v) {
  int64_t r = 1;
  while (r * 2 <= v) r *= 2;
  return r;
}
bool aligned(const at::Tensor& t, int64_t bytes) {
  return t.defined() && reinterpret_cast<std::uintptr_t>(t.data_ptr()) % static_cast<std::uintptr_t>(bytes) == 0;
}
int64_t footprint(int64_t tile, int64_t down, int64_t taps, int64_t up) {
  return ((tile - 1) * down + taps - 1) / up + 1;
}

// The launch plan, or false when v2 cannot take the call.
bool make_plan(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a, const Family& fam, bool cl, Plan& d) {
  // 32-bit offsets: a channels_last image, or an NCHW group of planes (checked below), has < 2^31 elements.
  if (p.n * p.c >= kLim32 || p.fh * p.fw >= kLim32) return false;
  if (cl && (p.in_h * p.in_w * p.c >= kLim32 * 2 || p.out_h * p.out_w * p.c >= kLim32 * 2)) return false;
  for (int64_t v : {p.in_h * p.upy, p.in_w * p.upx, p.out_h * p.downy, p.out_w * p.downx})
    if (v >= kLim32) return false;

  const int64_t mty = fam.mty, mtx = fam.mtx, planes = p.n * p.c;
  const int64_t sy = fam.up > 1 ? floor_mod(-p.pady0, fam.up) : 0;  // phase alignment (down == 1 there)
  const int64_t sx = fam.up > 1 ? floor_mod(-p.padx0, fam.up) : 0;
  const int64_t ext_h = p.out_h + sy, ext_w = p.out_w + sx;
  const int64_t target = fam.up > 0 ? 4096 : 2048;  // outputs per block item
  const int64_t esize = a.x.element_size();
  int64_t toh, tow, cpb;
  if (!cl) {
    tow = std::min<int64_t>(round_up(ext_w, mtx), 64);
    toh = std::min<int64_t>(round_up(ext_h, mty), std::max<int64_t>(mty, pow2_floor(target / tow) / mty * mty));
    const int64_t tiles = ((ext_h + toh - 1) / toh) * ((ext_w + tow - 1) / tow);
    const int64_t tasks_plane = (toh / mty) * (tow / mtx);
    cpb = std::max<int64_t>(1, std::min<int64_t>(target / (toh * tow), kThreads));
    // Small planes: enough groups for about two block items per SM, but at least 64 tasks per item.
    const int64_t want_groups = (2 * sm_count(a.out.get_device()) + tiles - 1) / tiles;
    const int64_t fill =
        std::max<int64_t>((planes + want_groups - 1) / want_groups, (64 + tasks_plane - 1) / tasks_plane);
    cpb = std::min<int64_t>({cpb, fill, planes});
  } else {
    cpb = std::min<int64_t>(p.c, 32);  // a warp of channels per pixel
    const int64_t spatial = std::max<int64_t>(mty * mtx, target / cpb);
    tow = std::min<int64_t>(round_up(ext_w, mtx),
                            std::max<int64_t>(mtx, pow2_floor((int64_t)std::sqrt((double)spatial))));
    toh = std::min<int64_t>(round_up(ext_h, mty), std::max<int64_t>(mty, pow2_floor(spatial / tow) / mty * mty));
  }
  // NCHW: 4-wide staging loads when rows (and planes) start aligned; channels_last: when channels do.
  const int64_t vbytes = 4 * esize;
  const bool y_ok = mode != Mode::GradMask || aligned(a.y, vbytes);
  int64_t tih, tiw, pitch;
  bool vload;
  auto measure = [&] {
    tih = footprint(toh, p.downy, p.fh, p.upy);
    tiw = footprint(tow, p.downx, p.fw, p.upx);
    vload = y_ok && aligned(a.x, vbytes) && (cl ? (p.c % 4 == 0 && cpb % 4 == 0) : (p.in_w % 4 == 0));
    pitch = (!cl && vload) ? round_up(tiw + 3, 4) : tiw;
    return cpb * tih * pitch * int64_t(sizeof(float));
  };
  while (measure() > kMaxSmem) {  // shrink: NCHW planes first, channels_last space first
    const bool can_c = cpb > 1, can_h = toh > mty, can_w = tow > mtx;
    if (!cl && can_c) {
      cpb = (cpb + 1) / 2;
    } else if (can_h && (toh >= tow || !can_w)) {
      toh = std::max<int64_t>(mty, toh / 2 / mty * mty);
    } else if (can_w) {
      tow = std::max<int64_t>(mtx, tow / 2 / mtx * mtx);
    } else if (can_c) {
      cpb = (cpb + 1) / 2;
    } else {
      return false;  // one output's footprint does not fit: v1 reads such filters from global memory
    }
  }
  const int64_t tiles_y = (ext_h + toh - 1) / toh, tiles_x = (ext_w + tow - 1) / tow;
  const int64_t groups = cl ? p.n * ((p.c + cpb - 1) / cpb) : (planes + cpb - 1) / cpb;
  if (tiles_y * tiles_x * groups >= kLim32) return false;
  if (!cl && cpb * std::max(p.in_h * p.in_w, p.out_h * p.out_w) >= kLim32 * 2) return false;
  // 32-bit coordinates: tile origins scaled by down, padded, and their footprints stay below 2^30.
  const int64_t pads = std::abs(p.padx0) + std::abs(p.padx1) + std::abs(p.pady0) + std::abs(p.pady1);
  if ((tiles_y + 1) * toh * p.downy + pads + p.fh + tih >= kLim32) return false;
  if ((tiles_x + 1) * tow * p.downx + pads + p.fw + pitch >= kLim32) return false;
  if (p.in_h + p.in_w + 2 * (tih + pitch) + pads >= kLim32) return false;

  d = Plan{};
  d.n = int(p.n), d.c = int(p.c), d.planes = int(planes);
  d.in_h = int(p.in_h), d.in_w = int(p.in_w), d.out_h = int(p.out_h), d.out_w = int(p.out_w);
  d.upx = int(p.upx), d.upy = int(p.upy), d.downx = int(p.downx), d.downy = int(p.downy);
  d.padx0 = int(p.padx0), d.pady0 = int(p.pady0), d.fh = int(p.fh), d.fw = int(p.fw);
  d.cl = cl;
  d.mty = int(mty), d.mtx = int(mtx), d.toh = int(toh), d.tow = int(tow), d.sy = int(sy), d.sx = int(sx);
  d.tih = int(tih), d.tiw = int(tiw), d.pitch = int(pitch), d.cpb = int(cpb);
  d.tiles_y = int(tiles_y), d.tiles_x = int(tiles_x), d.groups = int(groups);
  d.vload = vload ? 4 : 1;
  d.vstore = !cl && mtx > 1 && sx == 0 && p.out_w % mtx == 0 && aligned(a.out, mtx * esize);
  d.has_bias = p.has_bias;
  const bool epi = mode != Mode::Plain;
  const Act act = epi ? p.act : Act::Linear;
  d.act = static_cast<int>(act);
  d.alpha = float(p.alpha), d.act_gain = float(p.act_gain);
  const bool clamp = epi && p.clamp >= 0;
  d.lo = clamp ? float(-p.clamp) : -std::numeric_limits<float>::infinity();
  d.hi = clamp ? float(p.clamp) : std::numeric_limits<float>::infinity();
  d.gain_pos = act == Act::Linear ? 1.f : float(p.act_gain);
  d.gain_neg = act == Act::Linear ? 1.f : act == Act::Relu ? 0.f : float(p.alpha * p.act_gain);
  return true;
}

// out[i] = the sum of partial[plane][tile] over tiles, per plane (per_plane) or over the batch and tiles
// per channel; in a fixed order, so repeats are bit-identical.
__global__ void bias_finish_kernel(const float* __restrict__ partial, int tiles, int n, int c, bool per_plane,
                                   float* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (per_plane) {
    if (i >= n * c) return;
    float s = 0.f;
    for (int t = 0; t < tiles; ++t) s += partial[int64_t(i) * tiles + t];
    out[i] = s;
  } else {
    if (i >= c) return;
    float s = 0.f;
    for (int b = 0; b < n; ++b)
      for (int t = 0; t < tiles; ++t) s += partial[(int64_t(b) * c + i) * tiles + t];
    out[i] = s;
  }
}

}  // namespace
}  // namespace v2

bool upfirdn2d_kernel_cuda_v2(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a, cudaStream_t stream) {
  const at::ScalarType st = a.x.scalar_type();
  if (st != at::kFloat && st != at::kHalf && st != at::kBFloat16) return false;
  if (a.w.scalar_type() != at::kFloat || !a.w.is_contiguous()) return false;
  if (mode == Mode::BiasAct && p.has_bias && (a.bias.scalar_type() != at::kFloat || !a.bias.is_contiguous()))
    return false;
  const bool with_y = mode == Mode::GradMask;
  auto all = [&](at::MemoryFormat f) {
    return a.x.is_contiguous(f) && a.out.is_contiguous(f) && (!with_y || a.y.is_contiguous(f));
  };
  bool cl;
  if (all(at::MemoryFormat::Contiguous)) {
    cl = false;
  } else if (all(at::MemoryFormat::ChannelsLast)) {
    cl = true;
  } else {
    return false;
  }
  const v2::Family& fam = v2::family_for(p, mode);
  v2::Plan plan;
  if (!v2::make_plan(p, mode, a, fam, cl, plan)) return false;

  const bool db = mode == Mode::GradMask && p.has_bias;
  const int64_t planes = p.n * p.c, tiles = int64_t(plan.tiles_y) * plan.tiles_x;
  bool per_plane = true;
  float* partial = nullptr;
  at::Tensor scratch;
  if (db) {
    TORCH_CHECK(a.bias_sum.scalar_type() == at::kFloat && a.bias_sum.is_contiguous() &&
                    (a.bias_sum.numel() == planes || a.bias_sum.numel() == p.c),
                "vidgan v2 CUDA kernel: bias_sum must be a contiguous float tensor of N * C or C entries.");
    per_plane = a.bias_sum.numel() == planes;
    if (per_plane && tiles == 1) {
      partial = a.bias_sum.data_ptr<float>();  // one tile per plane: the kernel writes the sums itself
    } else {
      scratch = at::empty({planes * tiles}, a.bias_sum.options());
      partial = scratch.data_ptr<float>();
    }
  }
  fam.launch(mode, plan, a, partial, stream);
  if (db && scratch.defined()) {
    const int64_t count = per_plane ? planes : p.c;
    const unsigned blocks = static_cast<unsigned>((count + v2::kThreads - 1) / v2::kThreads);
    v2::bias_finish_kernel<<<blocks, v2::kThreads, 0, stream>>>(partial, int(tiles), int(p.n), int(p.c), per_plane,
                                                                a.bias_sum.data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return true;
}

}  // namespace vidgan
