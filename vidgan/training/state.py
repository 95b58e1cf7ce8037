"""Training checkpoints: save atomically, keep the newest K, load with fallback past corrupt ones.

Layout of one checkpoint (RUN_DIR/checkpoints/step-XXXXXXXX/):

    config.json            model config + meta (vidgan.checkpoint.save_model)   } a loadable model:
    generator.safetensors  the EMA generator (vidgan.checkpoint.save_model)     } vidgan.load(RUN_DIR)
    G.safetensors, Df.safetensors, Dc.safetensors   the trained modules (vidgan.checkpoint.save_modules)
    state.pt               optimiser states, step, RNG states of every rank, data position, learning-rate
                           scale, augmentation p, the collapse watch's count (tensors/numbers/lists/dicts
                           only: torch.load(weights_only=True))
    train.json             the TrainConfig of the run

A checkpoint is written into a hidden temporary folder beside it and renamed into place
(vidgan.checkpoint.atomic_directory), so a folder named step-* is always complete. Nothing here ever unpickles code.
"""
import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from vidgan import jsonfile
from vidgan._atomic import remove_stale_temps
from vidgan.checkpoint import list_checkpoints
from vidgan.errors import CheckpointError, InputError
from vidgan.manifest import verify, write_manifest

CKPT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
PREFIX = "step-"
STATE_FILE = "state.pt"
TRAIN_FILE = "train.json"


def ckpt_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def clean_temp(run_dir) -> None:
    """Remove half-written checkpoint folders and half-removed old ones left by a crash (the run folder's lock
    says no other writer is alive), after putting back a folder a crash left between the two renames of
    a swap (vidgan._atomic.remove_stale_temps)."""
    root = Path(run_dir) / CKPT_DIR
    if root.is_dir():
        remove_stale_temps(root)
        for p in root.iterdir():
            if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
                shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------- RNG states
def rng_state() -> Dict[str, Any]:
    """torch (CPU, and every CUDA device), numpy and python RNG states as tensors/ints/lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(s: Dict[str, Any]) -> None:
    """Inverse of rng_state()."""
    torch.set_rng_state(s["torch"].cpu().to(torch.uint8))
    n = s["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = s["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in s and torch.cuda.is_available():
        states = s["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all([t.cpu().to(torch.uint8) for t in states])


# ---------------------------------------------------------------------- save
def save_checkpoint(run_dir, step: int, G_ema: torch.nn.Module, modules: Dict[str, torch.nn.Module],
                    state: Dict[str, Any], train_cfg: Dict[str, Any], meta: Optional[Dict[str, Any]] = None,
                    keep: int = 3) -> Path:
    """Write RUN_DIR/checkpoints/step-XXXXXXXX as a whole (temp folder + rename), then keep the newest `keep`."""
    from vidgan.checkpoint import atomic_directory, save_model, save_modules

    root = Path(run_dir) / CKPT_DIR
    final = root / ckpt_name(step)
    with atomic_directory(final) as tmp:
        save_model(tmp, G_ema, meta=dict(meta or {}, step=int(step)))
        save_modules(tmp, modules)
        torch.save(state, str(tmp / STATE_FILE))
        with open(tmp / TRAIN_FILE, "w") as fh:
            json.dump(dict(train_cfg, step=int(step)), fh, indent=2, sort_keys=True)
        write_manifest(tmp)                                  # last: the size and sha256 of every file
        for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if keep > 0:
        for _, path in list_checkpoints(run_dir)[:-keep]:
            if path != final:
                # Out of the step-* names first, so a kill during the removal leaves no half folder under one.
                trash = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, trash)
                shutil.rmtree(trash, ignore_errors=True)
    return final


# ---------------------------------------------------------------------- load
def read_train_config(path: Path) -> Dict[str, Any]:
    """The train.json of a checkpoint; CheckpointError if missing or unreadable."""
    f = Path(path) / TRAIN_FILE
    try:
        d = jsonfile.read(f)
        if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
            raise ValueError("not a training config object")
        return d
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint file {f} is missing or corrupt ({exc}).") from None


def load_checkpoint(path: Path, G_ema: torch.nn.Module, modules: Dict[str, torch.nn.Module]) -> Dict[str, Any]:
    """Load a checkpoint's weights into G_ema and `modules` in place; return its training state dict.

    Any missing, truncated or corrupt file raises CheckpointError naming that file (the modules may
    then be partly overwritten: load another checkpoint into them, or rebuild them).
    """
    from vidgan.checkpoint import load_modules

    path = Path(path)
    verify(path, [CONFIG_FILE, TRAIN_FILE, STATE_FILE] + [f"{n}.safetensors" for n in [*modules, "generator"]])
    load_modules(path, dict(modules, generator=G_ema))
    f = path / STATE_FILE
    try:
        state = torch.load(str(f), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("no training step in it")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {f} is missing; resume from another checkpoint or delete this "
                              "one.") from None
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):                        # not a refused object: plain damage
            raise CheckpointError(f"checkpoint file {f} cannot be read as a training state (UnpicklingError); "
                                  "it is damaged: resume from another checkpoint or delete this one.") from None
        raise CheckpointError(f"checkpoint file {f} holds objects other than tensors and numbers, which vidgan "
                              "never loads; it is damaged or not vidgan's: resume from another checkpoint or "
                              "delete this one.") from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on damaged files
        raise CheckpointError(f"checkpoint file {f} cannot be read as a training state ({type(exc).__name__}); it "
                              "is damaged: resume from another checkpoint or delete this one.") from None
    return state


def _with_defaults(model: Any) -> Any:
    """A saved model config dict with the fields it predates filled in (unchanged when it does not parse)."""
    from vidgan.models import ModelConfig

    try:
        return ModelConfig.from_dict(dict(model)).to_dict()
    except (InputError, TypeError, ValueError):
        return model


def find_resumable(run_dir, model_cfg: Dict[str, Any], G_ema: torch.nn.Module, modules: Dict[str, torch.nn.Module],
                   log=print) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """Load the newest usable checkpoint of RUN_DIR into the modules; (its path, its state) or None if none.

    A corrupt checkpoint is reported (naming the file) and the previous one is tried; when every
    checkpoint is corrupt, CheckpointError. A checkpoint made with a different model config raises
    CheckpointError naming the differing keys (resuming it would mean silently starting over), except
    for the fields that ModelConfig declares changeable on resume, which are reported and take the new value.
    """
    from vidgan.models import ModelConfig
    from vidgan.training.merge import config_diff

    changeable = ModelConfig.rule_fields("resume")
    problems = []
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            train = read_train_config(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            log(f"warning: {exc} Falling back to the previous checkpoint.")
            continue
        saved = {"model": _with_defaults(train["model"])}  # a field added since then takes its default
        diff = config_diff(saved, {"model": model_cfg})
        changed = [k for k in diff if k.split(".", 1)[1] in changeable]
        diff = [k for k in diff if k not in changed]
        if diff:
            details = ", ".join(f"{k} (checkpoint {_get(saved, k)!r}, now {_get({'model': model_cfg}, k)!r})"
                                for k in diff)
            raise CheckpointError(f"{run_dir} holds a checkpoint ({path.name}) from an incompatible config: "
                                  f"{details}; use the same settings to resume, or start a new run in another "
                                  "directory.")
        try:
            state = load_checkpoint(path, G_ema, modules)
        except CheckpointError as exc:
            problems.append(str(exc))
            log(f"warning: {exc} Falling back to the previous checkpoint.")
            continue
        for k in changed:
            log(f"note: {path.name} was trained with {k}={_get(saved, k)!r}; continuing with "
                f"{_get({'model': model_cfg}, k)!r}.")
        return path, state
    if problems:
        raise CheckpointError(f"no usable checkpoint in {Path(run_dir) / CKPT_DIR}, every one is corrupt "
                              f"(newest: {problems[0].rstrip('.')}); delete that folder to start over.")
    return None


def _get(d: Dict[str, Any], dotted: str) -> Any:
    for p in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d
