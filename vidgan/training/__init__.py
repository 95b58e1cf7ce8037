"""Training: losses, augmentation, EMA, checkpoints, distributed glue and the loop.

    from vidgan.training import TrainConfig, train
    summary = train(TrainConfig(run_dir="runs/mnist", data="mnist.vidpack", steps=2000))

The names below load on first use, so importing a submodule (e.g. losses) stays light.
"""
_LAZY = {
    "TrainConfig": ("vidgan.training.config", "TrainConfig"),
    "resolve_config": ("vidgan.training.sources", "resolve_config"),
    "list_presets": ("vidgan.training.sources", "list_presets"),
    "train": ("vidgan.training.phases", "train"),
    "Trainer": ("vidgan.training.loop", "Trainer"),
    "VideoAugment": ("vidgan.training.augment", "VideoAugment"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'vidgan.training' has no attribute {name!r}")


__all__ = list(_LAZY)
