"""Which implementation of the ops runs, and the facts of this installation (`vidgan info`)."""
import os
import platform
from typing import Optional

import torch

from vidgan.ops import _ext


def backend(device=None) -> str:
    """'cuda', 'cpu-ext' or 'reference': the path fused_upsample(impl=None) takes for float32
    tensors on `device`. On CUDA that is 'reference' until a CUDA kernel has been measured faster
    than the composite of standard ops (vidgan.ops.fused.default_impl); impl='ext' forces it.

    device None means the default device: CUDA when one is visible, else the CPU.
    """
    from vidgan.ops.fused import default_impl

    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if default_impl("fused_upsample", device.type, torch.float32, _ext.supports(device)) == "reference":
        return "reference"
    return "cuda" if device.type == "cuda" else "cpu-ext"


def cpu_level() -> Optional[str]:
    """The instruction-set level the CPU kernels run at: 'avx512', 'avx2' or 'baseline' (None
    without the extension). The best this CPU supports, or the lower one VIDGAN_CPU_LEVEL names;
    read once, when the extension loads."""
    return _ext.cpu_level()


def build_info() -> dict:
    """Versions, the op backend and CPU level, whether the extension and its CUDA kernels are built, devices."""
    import vidgan

    ext = _ext.ext()
    cuda_ok = torch.cuda.is_available()
    devices = ["cpu: " + _cpu_name()]
    if cuda_ok:
        devices += [f"cuda:{i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    return {
        "vidgan": vidgan.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "backend": backend(),
        "ext_compiled": ext is not None,
        "ext_error": _ext.ERROR,
        "ext_path": getattr(ext, "__file__", None),
        "ext_built_with_torch": getattr(ext, "torch_version", None),
        "cuda_compiled": _ext.has_cuda(),
        "ext_cuda_version": getattr(ext, "cuda_version", None),
        "torch_cuda_version": torch.version.cuda,
        "cuda_available": cuda_ok,
        "devices": devices,
        "num_threads": torch.get_num_threads(),
        "cpu_capability": _cpu_capability(),
        "cpu_level": _ext.cpu_level(),
        "cpu_levels_supported": list(ext.cpu_levels()) if hasattr(ext, "cpu_levels") else None,
        "cuda_kernels_by_default": _ext.has_cuda() and backend("cuda") == "cuda",
        "VIDGAN_NO_EXT": os.environ.get("VIDGAN_NO_EXT"),
        "VIDGAN_CPU_LEVEL": os.environ.get("VIDGAN_CPU_LEVEL"),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _cpu_capability() -> Optional[str]:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        return None
