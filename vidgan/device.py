"""Device names -> torch.device, shared by training, generation and evaluation."""
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
