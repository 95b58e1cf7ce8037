"""Loads the compiled extension `vidgan._C` once, or remembers why it could not.

Never compiles anything. On failure (not built, built for another torch, VIDGAN_NO_EXT=1)
it warns once, naming the reason and the build command, and the ops run on the
plain-PyTorch reference path.
"""
import importlib
import os
import warnings
from typing import Optional

import torch  # noqa: F401  (vidgan._C links against torch's libraries: load them first)

BUILD_HINT = ("build it with `pip install --no-build-isolation -e .` from the vidgan source folder "
              "(add VIDGAN_CUDA=1 for the GPU kernels)")

_C = None                    # the extension module, when it loaded
ERROR: Optional[str] = None  # why it did not load
_loaded = False
_warned = False


def _load():
    global _C, ERROR, _loaded
    if _loaded:
        return
    _loaded = True
    if os.environ.get("VIDGAN_NO_EXT", "").strip().lower() not in ("", "0", "false", "no", "off"):
        ERROR = "VIDGAN_NO_EXT is set"
        return
    try:
        module = importlib.import_module("vidgan._C")
        # Fake kernels and autograd formulas for torch.ops.vidgan.* (the C++ library names this module).
        importlib.import_module("vidgan.ops._registry")
    except Exception as exc:  # ImportError, undefined symbols from a torch mismatch, ...
        ERROR = f"importing vidgan._C failed: {type(exc).__name__}: {exc}"
        return
    _C = module
    note = module.cpu_level_note() if hasattr(module, "cpu_level_note") else ""
    if note:  # VIDGAN_CPU_LEVEL asked for a level this CPU cannot run, or is misspelt
        warnings.warn(f"vidgan: {note}", RuntimeWarning, stacklevel=2)


def cpu_level() -> Optional[str]:
    """The instruction-set level the CPU kernels run at ('avx512', 'avx2', 'baseline'), or None
    without the extension. Picked once at load: the best this CPU runs, or VIDGAN_CPU_LEVEL."""
    return _C.cpu_level() if _C is not None and hasattr(_C, "cpu_level") else None


def warn_once():
    """The single fallback warning of this process."""
    global _warned
    if _C is None and not _warned:
        _warned = True
        warnings.warn(f"vidgan: the compiled op extension is not in use ({ERROR}); the fused ops run on "
                      f"their slower plain-PyTorch reference path. To use the extension, {BUILD_HINT}.",
                      RuntimeWarning, stacklevel=3)


def ext():
    """The extension module or None."""
    return _C


def has_cuda() -> bool:
    """Whether the loaded extension carries CUDA kernels."""
    return _C is not None and bool(getattr(_C, "cuda_compiled", False))


def supports(device) -> bool:
    """Whether the extension can run on `device` (a torch.device)."""
    if _C is None:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and has_cuda()


_load()
warn_once()
