"""vidgan: short-video GANs in PyTorch.

Heavy submodules load on first use, so `import vidgan` stays cheap:

    import vidgan
    G = vidgan.load()                        # the embedded default model
    clips = vidgan.generate(G, seed=0)       # uint8 [N, T, H, W, 3]
"""
__version__ = "0.2.0"

_LAZY = {
    "load": ("vidgan.checkpoint", "load"),
    "generate": ("vidgan.generate", "generate"),
    "train": ("vidgan.training", "train"),
    "TrainConfig": ("vidgan.training", "TrainConfig"),
    "write_video": ("vidgan.export", "write_video"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'vidgan' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
