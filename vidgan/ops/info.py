"""Which implementation of the ops runs, and the facts of this installation (`vidgan info`)."""
import os
import platform
from typing import Optional

import torch

from vidgan.ops import _ext


def backend(device=None) -> str:
    """'cuda', 'cpu-ext' or 'reference': the path fused_upsample takes for tensors on `device`.

    device None means the default device: CUDA when one is visible, else the CPU.
    """
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if not _ext.supports(device):
        return "reference"
    return "cuda" if device.type == "cuda" else "cpu-ext"


def build_info() -> dict:
    """Versions, the op backend, whether the extension and its CUDA kernels are built, devices."""
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
        "VIDGAN_NO_EXT": os.environ.get("VIDGAN_NO_EXT"),
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
