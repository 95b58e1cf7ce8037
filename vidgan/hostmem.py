"""CPU memory that is freed and allocated again stays with the process (glibc malloc settings).

A training step at 64x64 allocates and frees activations of 32 MB and more hundreds of times. glibc
serves each block above its mmap threshold (at most 32 MB) with a fresh mapping from the kernel and
unmaps it on free, so every such tensor is written through page faults that zero its memory first:
about half the time of the generator's forward and backward here. `reuse_freed_memory()` makes malloc
serve every block from its heap and keep freed memory for the next step, which doubles the speed of
the generator's forward and backward at the default config (benchmarks/train_step.py --against,
docs/profile.md) for a peak resident size within a few percent of the mmap path.

It changes process-wide settings, so vidgan calls it only where it runs CPU training steps (the Trainer);
a library user may call it (or not) at start-up. Without glibc (macOS, musl) it does nothing.
VIDGAN_SYSTEM_MALLOC=1 leaves malloc as it is (to compare, or to return freed memory to other programs at
once).
"""
import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1   # mallopt parameter numbers from glibc's malloc.h
_M_MMAP_MAX = -4
_KEEP = 1 << 30          # freed memory at the top of the heap that is kept rather than given back (bytes)
_state = {"done": None}


def reuse_freed_memory() -> bool:
    """Tell glibc malloc to serve large blocks from its heap and keep up to 1 GiB of freed memory; True if the
    settings are in effect (idempotent), False where they do not apply."""
    if _state["done"] is not None:
        return _state["done"]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("VIDGAN_SYSTEM_MALLOC", "") in ("", "0"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            gnu = libc.gnu_get_libc_version                  # glibc only: musl has no such symbol
        except (OSError, AttributeError):
            mallopt = gnu = None
        if mallopt is not None and gnu is not None:
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP))
    _state["done"] = ok
    return ok
