// CPU kernels of the upfirdn2d family (see upfirdn2d.h for the modes): instruction-set levels,
// the parallel loop, the filter weights, the channels_last path and the dispatch. The NCHW
// kernel itself is in upfirdn2d_cpu_nchw.h.
//
// Levels. The hot loops are compiled three times, for AVX-512 (x86-64-v4), AVX2 + FMA
// (x86-64-v3) and baseline x86-64, each with its own vector width (64, 32, 16 bytes). When
// vidgan._C loads, the best level this CPU runs is picked, or the one VIDGAN_CPU_LEVEL names
// (avx512 | avx2 | baseline) if the CPU supports it; cpu_level() says which one runs.
//
// Threads. at::parallel_for is a header template that only runs in parallel when the including
// file is compiled with -fopenmp, which the extension build does not pass. So the kernels start
// their parallel region themselves: at::parallel_for when _OPENMP is defined, else through
// libgomp's GOMP_parallel, the entry point `#pragma omp parallel` compiles to (libgomp is loaded
// with torch's OpenMP build; a weak reference, so without it the kernels run on one thread).
// Either way the team has at::get_num_threads() threads and takes tasks from a shared counter.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cctype>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "upfirdn2d.h"
#include "upfirdn2d_cpu_lanes.h"
#include "upfirdn2d_cpu_nchw.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define VIDGAN_X86_LEVELS 1
#define VIDGAN_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define VIDGAN_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#endif

#if !defined(_OPENMP) && defined(__GNUC__) && defined(__linux__)
#define VIDGAN_GOMP 1
extern "C" void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags)
    __attribute__((weak));
#endif

namespace vidgan {
namespace {

enum Level : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };
const char* const kLevelNames[] = {"baseline", "avx2", "avx512"};

Level best_level() {
#ifdef VIDGAN_X86_LEVELS
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return kBaseline;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return kAvx512;
  return kAvx2;
#else
  return kBaseline;
#endif
}

struct LevelChoice {
  Level best = kBaseline, level = kBaseline;
  std::string note;  // why VIDGAN_CPU_LEVEL was not followed (empty when it was, or is unset)
};

LevelChoice choose_level() {
  LevelChoice c;
  c.best = c.level = best_level();
  const char* env = std::getenv("VIDGAN_CPU_LEVEL");
  std::string want;
  for (const char* s = env ? env : ""; *s; ++s)
    if (!std::isspace(static_cast<unsigned char>(*s))) want += char(std::tolower(static_cast<unsigned char>(*s)));
  if (want.empty()) return c;
  for (int l = kBaseline; l <= kAvx512; ++l) {
    if (want != kLevelNames[l]) continue;
    if (l <= c.best) {
      c.level = Level(l);
    } else {
      c.note = "VIDGAN_CPU_LEVEL=" + want + " asks for more than this CPU supports; running " +
               kLevelNames[c.best] + ".";
    }
    return c;
  }
  c.note = "VIDGAN_CPU_LEVEL='" + std::string(env) + "' is not one of avx512, avx2, baseline; running " +
           kLevelNames[c.best] + ".";
  return c;
}

const LevelChoice g_level = choose_level();  // read once, when vidgan._C loads

// ----------------------------------------------------------------------------- parallel loop
constexpr int64_t kGrain = 16384;  // output elements per thread below which more threads do not pay

template <class F>
struct TeamArgs {
  const F* worker;
  cpu::TaskQueue* queue;
  std::exception_ptr error;
  std::atomic_flag failed = ATOMIC_FLAG_INIT;
};

template <class F>
void team_member(void* data) {
  auto* a = static_cast<TeamArgs<F>*>(data);
  try {
    (*a->worker)(*a->queue);
  } catch (...) {
    if (!a->failed.test_and_set()) a->error = std::current_exception();
  }
}

// worker(queue) on each thread of a team sized by the work (output elements); the threads take
// the `ntasks` tasks from the shared queue until none are left.
template <class F>
void run_tasks(int64_t ntasks, int64_t work, const F& worker) {
  cpu::TaskQueue queue;
  queue.n = ntasks;
  const int64_t threads =
      std::min<int64_t>({int64_t(at::get_num_threads()), ntasks, std::max<int64_t>(1, work / kGrain)});
  if (threads <= 1 || at::in_parallel_region()) return worker(queue);
#if defined(_OPENMP)
  at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) worker(queue);
  });
#elif defined(VIDGAN_GOMP)
  if (GOMP_parallel == nullptr) return worker(queue);
  TeamArgs<F> args{&worker, &queue, nullptr};
  GOMP_parallel(&team_member<F>, &args, unsigned(threads), 0);
  if (args.error) std::rethrow_exception(args.error);
#else
  worker(queue);
#endif
}

// Each plan's run<VB>(queue) compiled for each level (the plan's loops are forced inline).
template <class K>
void run_baseline(const K& k, cpu::TaskQueue& q) {
  k.template run<16>(q);
}
#ifdef VIDGAN_X86_LEVELS
template <class K>
VIDGAN_TARGET_AVX2 void run_avx2(const K& k, cpu::TaskQueue& q) {
  k.template run<32>(q);
}
template <class K>
VIDGAN_TARGET_AVX512 void run_avx512(const K& k, cpu::TaskQueue& q) {
  k.template run<64>(q);
}
#endif

template <class K>
void run_plan(const K& k, int64_t ntasks, int64_t work) {
  run_tasks(ntasks, work, [&](cpu::TaskQueue& q) {
    switch (g_level.level) {
#ifdef VIDGAN_X86_LEVELS
      case kAvx512: return run_avx512(k, q);
      case kAvx2: return run_avx2(k, q);
#endif
      default: return run_baseline(k, q);
    }
  });
}

// ----------------------------------------------------------------------------- filter weights
// Cross-correlation weights [fh * fw] in T: the filter (a.f: 2D, or 1D = separable, whose outer
// product is taken in its own dtype as torch.outer would) flipped unless p.flip, times p.gain;
// or a.w when the caller prepared it already.
template <typename T>
std::vector<T> cpu_weights(const Upfirdn2dParams& p, const KernelArgs& a) {
  std::vector<T> w(p.fh * p.fw);
  if (a.w.defined()) {
    const at::Tensor wc = a.w.to(c10::CppTypeToScalarType<T>::value).contiguous();
    std::copy(wc.data_ptr<T>(), wc.data_ptr<T>() + w.size(), w.begin());
    return w;
  }
  const at::Tensor& f = a.f;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "vidgan_weights", [&] {
    const scalar_t* d = f.data_ptr<scalar_t>();
    const int64_t s0 = f.stride(0), s1 = f.dim() == 2 ? f.stride(1) : 0;
    for (int64_t ky = 0; ky < p.fh; ++ky) {
      for (int64_t kx = 0; kx < p.fw; ++kx) {
        const int64_t iy = p.flip ? ky : p.fh - 1 - ky, ix = p.flip ? kx : p.fw - 1 - kx;
        const scalar_t v = f.dim() == 2 ? d[iy * s0 + ix * s1] : scalar_t(d[iy * s0] * d[ix * s0]);
        w[ky * p.fw + kx] = T(v) * T(p.gain);
      }
    }
  });
  return w;
}

// ----------------------------------------------------------------------------- channels_last
// x [N, H, W, C] and out [N, OH, OW, C] in memory, Plain / BiasAct; a task is one output row and
// the innermost loop runs over the contiguous channels.
template <Act A, bool CLAMP, typename scalar_t, typename T>
struct NhwcPlan {
  Upfirdn2dParams p;
  std::vector<int64_t> xk0, xib;  // first column tap and its input column, per output column
  std::vector<T> w;
  cpu::Epi<T> epi;
  bool epilogue;
  const scalar_t* x;
  const T* bias;
  scalar_t* out;

  template <int VB>
  VIDGAN_INLINE void run(cpu::TaskQueue& q) const {
    const int64_t C = p.c, H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w;
    std::vector<T> acc(C);
    for (int64_t row = q.take(); row >= 0; row = q.take()) {
      const int64_t n = row / OH, oy = row % OH;
      const int64_t s = oy * p.downy - p.pady0;
      const int64_t k0y = floor_mod(-s, p.upy), iby = floor_div(s + k0y, p.upy);
      for (int64_t ox = 0; ox < OW; ++ox) {
        T* __restrict ac = acc.data();
        std::fill(ac, ac + C, T(0));
        for (int64_t ky = k0y, iy = iby; ky < p.fh; ky += p.upy, ++iy) {
          if (iy < 0 || iy >= H) continue;
          for (int64_t kx = xk0[ox], ix = xib[ox]; kx < p.fw; kx += p.upx, ++ix) {
            if (ix < 0 || ix >= W) continue;
            const scalar_t* __restrict src = x + ((n * H + iy) * W + ix) * C;
            const T wv = w[ky * p.fw + kx];
            for (int64_t c = 0; c < C; ++c) ac[c] += wv * T(src[c]);
          }
        }
        scalar_t* __restrict dst = out + ((n * OH + oy) * OW + ox) * C;
        if (bias) {
          for (int64_t c = 0; c < C; ++c)
            dst[c] = static_cast<scalar_t>(epi.template apply<A, true, CLAMP>(ac[c], bias[c]));
        } else if (epilogue) {
          for (int64_t c = 0; c < C; ++c)
            dst[c] = static_cast<scalar_t>(epi.template apply<A, false, CLAMP>(ac[c], T(0)));
        } else {
          for (int64_t c = 0; c < C; ++c) dst[c] = static_cast<scalar_t>(ac[c]);
        }
      }
    }
  }
};

template <Act A, bool CLAMP, typename scalar_t, typename T>
void nhwc_kernel(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a, std::vector<T> w) {
  NhwcPlan<A, CLAMP, scalar_t, T> k{p, {}, {}, std::move(w), {}, mode == Mode::BiasAct,
                                    a.x.data_ptr<scalar_t>(), nullptr, a.out.data_ptr<scalar_t>()};
  for (int64_t ox = 0; ox < p.out_w; ++ox) {
    const int64_t s = ox * p.downx - p.padx0;
    k.xk0.push_back(floor_mod(-s, p.upx));
    k.xib.push_back(floor_div(s + k.xk0.back(), p.upx));
  }
  if (k.epilogue) {
    const T hi = p.clamp >= 0 ? T(p.clamp) : std::numeric_limits<T>::infinity();
    k.epi = cpu::Epi<T>{T(p.alpha), T(p.act_gain), -hi, hi};
    if (p.has_bias) k.bias = a.bias.data_ptr<T>();
  }
  run_plan(k, p.n * p.out_h, p.n * p.c * p.out_h * p.out_w);
}

template <typename scalar_t, typename T>
void nhwc_dispatch(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a, std::vector<T> w) {
  TORCH_CHECK(mode != Mode::GradMask, "vidgan: internal error: the channels_last CPU path has no GradMask mode.");
  const bool clamp = mode == Mode::BiasAct && p.clamp >= 0;
  switch (mode == Mode::BiasAct ? p.act : Act::Linear) {
    case Act::LRelu:
      return clamp ? nhwc_kernel<Act::LRelu, true, scalar_t, T>(p, mode, a, std::move(w))
                   : nhwc_kernel<Act::LRelu, false, scalar_t, T>(p, mode, a, std::move(w));
    case Act::Relu:
      return clamp ? nhwc_kernel<Act::Relu, true, scalar_t, T>(p, mode, a, std::move(w))
                   : nhwc_kernel<Act::Relu, false, scalar_t, T>(p, mode, a, std::move(w));
    default:
      return clamp ? nhwc_kernel<Act::Linear, true, scalar_t, T>(p, mode, a, std::move(w))
                   : nhwc_kernel<Act::Linear, false, scalar_t, T>(p, mode, a, std::move(w));
  }
}

}  // namespace

const char* cpu_level() { return kLevelNames[g_level.level]; }

std::vector<std::string> cpu_levels() {
  std::vector<std::string> names;
  for (int l = g_level.best; l >= kBaseline; --l) names.push_back(kLevelNames[l]);
  return names;
}

std::string cpu_level_note() { return g_level.note; }

void upfirdn2d_kernel_cpu(const Upfirdn2dParams& p, Mode mode, const KernelArgs& a) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.x.scalar_type(), "vidgan_upfirdn2d_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    std::vector<T> w = cpu_weights<T>(p, a);
    if (a.x.is_contiguous() && a.out.is_contiguous()) {
#ifdef VIDGAN_SHUFFLE
      if constexpr (std::is_same_v<scalar_t, T>) {
        if (cpu::LanesPlan<T>::suits(p)) {  // small planes: a vector holds the same pixel of several planes
          const cpu::LanesPlan<T> plan(p, mode, a, w);
          return run_plan(plan, plan.ntasks, p.n * p.c * p.out_h * p.out_w);
        }
      }
#endif
      const cpu::NchwPlan<scalar_t, T> plan(p, mode, a, w);
      run_plan(plan, plan.ntasks, p.n * p.c * p.out_h * p.out_w);
    } else {
      TORCH_CHECK(a.x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                      a.out.is_contiguous(at::MemoryFormat::ChannelsLast),
                  "vidgan: internal error: the CPU kernel needs NCHW or channels_last tensors.");
      nhwc_dispatch<scalar_t, T>(p, mode, a, std::move(w));
    }
  });
}

}  // namespace vidgan
