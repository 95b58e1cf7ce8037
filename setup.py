"""Builds the compiled extension ``vidgan._C`` from ``csrc/``.

Environment switches (all optional):

  VIDGAN_BUILD_EXT=0     install the pure-Python package (the op then runs on its
                         plain-PyTorch reference path and warns once at first use).
  VIDGAN_BUILD_EXT=1     the extension is required: a failed build fails the install.
                         Unset, a failed build (for example no C++ compiler) falls
                         back to the pure-Python package with a loud warning.
  VIDGAN_CUDA=1 / 0      force the CUDA build on / off. Unset, CUDA is built when a GPU
                         is visible and nvcc is found.
  CUDA_HOME              the CUDA toolkit; else /usr/local/cuda when it holds bin/nvcc.
  TORCH_CUDA_ARCH_LIST   GPU architectures; set here to the visible GPU's, or to a
                         fixed list, when unset (an unset list crashes GPU-less builds).
  VIDGAN_DEBUG=1         compile with -O0 -g.

Nothing is ever compiled at import time.
"""
import glob
import os
import shutil
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "7.5;8.0;8.6;8.9;9.0+PTX"


def _log(msg):
    print(f"[vidgan setup] {msg}", file=sys.stderr)


def _env_flag(name):
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    return v.strip().lower() not in ("0", "false", "no", "off")


def _find_cuda_home():
    """CUDA_HOME if set, else /usr/local/cuda if it holds nvcc, else the dir of nvcc on PATH."""
    for cand in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if cand and os.path.exists(os.path.join(cand, "bin", "nvcc")):
            return cand
    nvcc = shutil.which("nvcc")
    if nvcc:
        home = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        if os.path.isdir(os.path.join(home, "include")) and os.path.exists(os.path.join(home, "include", "cuda.h")):
            return home
    return None


def _extensions():
    build_ext = _env_flag("VIDGAN_BUILD_EXT")
    if build_ext is False:
        _log("VIDGAN_BUILD_EXT=0: installing the pure-Python package (reference op path).")
        return [], None
    try:
        import torch  # noqa: F401
        from torch.utils import cpp_extension
    except Exception as exc:  # torch missing in the build environment
        if build_ext:
            raise RuntimeError(
                "VIDGAN_BUILD_EXT=1 but torch cannot be imported in the build environment; "
                "install torch first and build with `pip install --no-build-isolation -e .`."
            ) from exc
        _log(f"torch is not importable at build time ({exc}); installing the pure-Python package. "
             "Install torch first and use `pip install --no-build-isolation -e .` to build the extension.")
        return [], None

    want_cuda = _env_flag("VIDGAN_CUDA")
    cuda_home = _find_cuda_home()
    if want_cuda is None:
        want_cuda = bool(torch.cuda.is_available() and cuda_home)
    if want_cuda and not cuda_home:
        raise RuntimeError("VIDGAN_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME to the folder holding bin/nvcc.")
    if want_cuda and torch.version.cuda is None:
        raise RuntimeError("VIDGAN_CUDA=1 but the installed torch is a CPU-only build; install a CUDA build of torch.")

    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cxx_flags = ["-O0", "-g"] if _env_flag("VIDGAN_DEBUG") else ["-O3"]
    # No -std flag: torch's build tools add the standard its headers need (C++17 for
    # torch 2.4, C++20 for recent releases, whose ATen.h refuses anything older).
    cxx_flags += ["-DVIDGAN_VERSION=\"0.2.0\""]
    define_macros = []
    if want_cuda:
        # torch guesses CUDA_HOME itself at import of cpp_extension; make it see ours.
        os.environ["CUDA_HOME"] = cuda_home
        cpp_extension.CUDA_HOME = cuda_home
        if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            if torch.cuda.is_available():
                archs = sorted({"%d.%d" % torch.cuda.get_device_capability(i)
                                for i in range(torch.cuda.device_count())})
                os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(archs)
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCHS
        _log(f"building CUDA extension with CUDA_HOME={cuda_home}, "
             f"TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}")
        sources += sorted(glob.glob(os.path.join("csrc", "*.cu")))
        define_macros.append(("VIDGAN_WITH_CUDA", "1"))
        ext = cpp_extension.CUDAExtension(
            "vidgan._C", sources, define_macros=define_macros,
            # No --use_fast_math: the kernels only multiply-add, and CPU/GPU parity tests
            # compare against exact float arithmetic.
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-lineinfo"]},
        )
    else:
        _log("building the CPU extension (set VIDGAN_CUDA=1 for CUDA).")
        ext = cpp_extension.CppExtension("vidgan._C", sources, define_macros=define_macros,
                                         extra_compile_args={"cxx": cxx_flags})

    class OptionalBuildExt(cpp_extension.BuildExtension):
        """Falls back to the pure-Python package when the build fails, unless it is required."""

        def run(self):
            try:
                super().run()
            except Exception as exc:
                if build_ext or want_cuda:
                    raise
                _log(f"WARNING: building vidgan._C failed ({exc}); installing the pure-Python package. "
                     "The op will run on its (slower) reference path. Set VIDGAN_BUILD_EXT=1 to make this fatal.")

    if not build_ext and shutil.which(os.environ.get("CXX", "c++")) is None:
        _log("WARNING: no C++ compiler found; installing the pure-Python package (reference op path).")
        return [], None
    return [ext], OptionalBuildExt.with_options(use_ninja=shutil.which("ninja") is not None)


ext_modules, build_cls = _extensions()
setup(ext_modules=ext_modules, cmdclass={"build_ext": build_cls} if build_cls else {})
