"""init_from: a new run's generator starts from a trained one (the embedded model, a model or run folder)."""
import torch

from vidgan.errors import CheckpointError, InputError


def init_generator(nets, cfg, source: str) -> str:
    """Loads the generator in `source` ("default": the embedded model) into nets.G and nets.G_ema; returns
    the note that says so. InputError when it does not load or was built with other model settings."""
    from vidgan.checkpoint import load

    try:
        src = load(None if source == "default" else source)
    except CheckpointError as exc:
        raise InputError(f"init_from: {exc}") from None
    mc = cfg.model
    differ = [k for k in mc.rule_fields("g") if getattr(src.cfg, k) != getattr(mc, k)]
    if differ:
        raise InputError(f"init_from: the generator in {source} was built with other model settings ("
                         + ", ".join(f"model.{k} {getattr(src.cfg, k)!r} there, {getattr(mc, k)!r} here"
                                     for k in differ)
                         + "); use the same model settings as that generator.")
    weights = src.state_dict()
    with torch.no_grad():
        nets.G.load_state_dict(weights)
        nets.G_ema.load_state_dict(weights)
    training = src.meta.get("training") if isinstance(src.meta, dict) else None
    steps = training.get("steps") if isinstance(training, dict) else None
    return (f"note: G starts from the generator in {source}" + (f" ({steps} steps)" if steps else "")
            + "; the discriminators start fresh"
            + (f" and train alone for the first {cfg.d_warmup} step{'s' * (cfg.d_warmup != 1)}."
               if cfg.d_warmup else "."))
