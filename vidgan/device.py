"""Device names -> torch.device, shared by training, generation and evaluation."""
import os

import torch

from vidgan.errors import InputError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto" -> cuda:<local_rank> when CUDA is available, else cpu; "cuda" -> cuda:<local_rank>."""
    if name in (None, "", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(f"device {name!r} is not a torch device; use auto, cpu, cuda or cuda:N (--device).") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name} was asked for but CUDA is not available here; use --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"device {name} was asked for but this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s); use cuda:0 to cuda:{torch.cuda.device_count() - 1} (--device).")
    return dev


def idle_threads() -> int:
    """CPU threads worth using now: the cores this process may run on, less the load average of the last
    minute (at least 1). Two threads on two cores that another job already keeps busy wait on each other
    at every parallel op: `vidgan generate` under a training run rendered 9-60 frames/s with 2 threads and
    85-140 with 1 (benchmarks/generate.py, docs/generate.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def compile_in_place(*modules) -> None:
    """torch.compile each module in place (its state_dict keys stay as they are). Random draws inside keep
    eager's stream (so a compiled run and its resume draw the same numbers), and inductor keeps the eager
    memory layout: its channels-last rewrite made the generator's forward + backward 0.78x as fast on this
    project's 2-core CPU."""
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    inductor_config.layout_optimization = False
    for m in modules:
        if getattr(m, "_compiled_call_impl", None) is None:
            m.compile()
