"""Saving and loading generators: a directory of config.json + generator.safetensors (no pickle).

    save_model("out/model", G_ema, meta={"steps": 20000, "data": "moving-mnist ..."})
    G = load("out/model")        # a model dir
    G = load("runs/mnist")       # a run dir: newest complete RUN_DIR/checkpoints/step-XXXXXXXX/
    G = load()                   # the embedded model in vidgan/assets/default/

config.json: {"format": "vidgan-generator", "format_version": 1, "model": ModelConfig.to_dict(),
"meta": {...}}. generator.safetensors: G.state_dict() (buffers included) in float32.

A run dir's checkpoints/step-XXXXXXXX/ folders hold config.json + generator.safetensors (the EMA
generator) plus whatever else training writes (save_modules / load_modules for the discriminators
and other modules). A new checkpoint folder is written as a whole: `atomic_directory(path)` yields
a temporary sibling folder and renames it into place only when the block succeeds.
"""
import contextlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from vidgan import jsonfile
from vidgan._atomic import atomic_dir, atomic_file, ensure_folder
from vidgan.errors import CheckpointError, InputError
from vidgan.manifest import verify, write_manifest
from vidgan.models import ModelConfig, TemporalGenerator

FORMAT = "vidgan-generator"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.safetensors"
DEFAULT_DIR = Path(__file__).resolve().parent / "assets" / "default"
STEP_DIR = re.compile(r"^step-(\d+)$")

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_directory(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yields a fresh temporary folder beside `path` (parents created); on success it replaces `path`
    (an existing folder is moved aside and removed afterwards), on error it is removed and `path` is
    untouched."""
    path = Path(path)
    ensure_folder(path.parent)
    with atomic_dir(path, overwrite, what="checkpoint folder") as tmp:
        yield Path(tmp)


def _write_atomic(path: Path, write) -> None:
    """Calls write(tmp_path) on a temp file in path's folder, then renames it to path."""
    with atomic_file(path, overwrite=True, what="checkpoint file") as tmp:
        write(tmp)


def _state_tensors(module: nn.Module) -> Dict[str, torch.Tensor]:
    """state_dict as contiguous CPU tensors that share no memory (what safetensors needs)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def _save_safetensors(path: Path, module: nn.Module, metadata: Optional[Dict[str, str]] = None) -> None:
    from safetensors.torch import save_file

    _write_atomic(path, lambda tmp: save_file(_state_tensors(module), tmp, metadata=metadata))


def _load_safetensors(path: Path, module: nn.Module, device="cpu") -> None:
    """Loads path into module (strict); any failure is a CheckpointError naming the file."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete, pick another one.")
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types for truncated / garbled files
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); it is corrupt, "
                              f"pick another checkpoint.") from None
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    bad_shape = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or bad_shape:
        parts = [f"missing {', '.join(missing[:5])}" if missing else "",
                 f"unexpected {', '.join(unexpected[:5])}" if unexpected else "",
                 f"wrong shape {', '.join(bad_shape[:5])}" if bad_shape else ""]
        raise CheckpointError(f"{path} does not match its model ({'; '.join(p for p in parts if p)}); "
                              f"it was written by another configuration or version.")
    bad_values = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad_values:
        raise CheckpointError(f"{path} holds NaN/Inf values (in {', '.join(bad_values[:5])}); it is corrupt, "
                              f"pick another checkpoint.")
    module.load_state_dict(tensors, strict=True)


# ----------------------------------------------------------------------------- public API
def save_model(path: PathLike, G: TemporalGenerator, meta: Optional[dict] = None) -> Path:
    """Writes path/config.json (model config + meta) and path/generator.safetensors.

    A new `path` is written as a whole (temporary folder, then rename); in an existing folder
    (e.g. a checkpoint folder being filled inside `atomic_directory`) each file is written to a
    temporary file and renamed, and other files are left alone. `meta` must be JSON-serialisable.
    """
    path = Path(path)
    meta = dict(meta or {})
    try:
        doc = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "model": G.cfg.to_dict(),
                          "meta": meta}, indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"checkpoint meta must be JSON-serialisable: {exc}.") from None

    def write_into(folder: Path) -> None:
        _save_safetensors(folder / WEIGHTS_FILE, G, metadata={"format": FORMAT})
        _write_atomic(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(doc + "\n"))
        write_manifest(folder, [CONFIG_FILE, WEIGHTS_FILE])

    if path.is_dir():
        write_into(path)
    else:
        with atomic_directory(path) as tmp:
            write_into(tmp)
    return path


def save_modules(path: PathLike, modules: Dict[str, nn.Module]) -> None:
    """Writes path/<name>.safetensors for each module (each file atomically); path must exist or is created."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        _save_safetensors(path / f"{name}.safetensors", module)


def load_modules(path: PathLike, modules: Dict[str, nn.Module], device="cpu") -> None:
    """Loads path/<name>.safetensors into each module in place; CheckpointError names a missing/corrupt file."""
    path = Path(path)
    for name, module in modules.items():
        _load_safetensors(path / f"{name}.safetensors", module, device=device)


def read_config(path: PathLike) -> tuple:
    """(ModelConfig, meta) from a config.json; CheckpointError naming the file if unreadable or invalid."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; a model folder needs {CONFIG_FILE} and {WEIGHTS_FILE}.")
    try:
        doc = jsonfile.read(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); the checkpoint is corrupt.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("model"), dict):
        raise CheckpointError(f"{path} is not a vidgan generator config (expected \"format\": \"{FORMAT}\" "
                              f"and a \"model\" object).")
    version = doc.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path} has format_version {version!r}, not an integer; the checkpoint is corrupt.")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {doc['format_version']}, newer than this vidgan "
                              f"reads ({FORMAT_VERSION}); upgrade vidgan.")
    try:
        cfg = ModelConfig.from_dict(doc["model"])
    except InputError as exc:
        raise CheckpointError(f"{path} holds a bad model config: {exc}") from None
    meta = doc.get("meta") or {}
    meta = meta if isinstance(meta, dict) else {}
    _check_meta(meta, path)
    return cfg, meta


def _check_meta(meta: dict, path: Path) -> None:
    """CheckpointError unless the viewing length and rate a model suggests (meta "frames", "fps") are sane."""
    from vidgan.models.config import MAX_FRAMES

    frames, fps = meta.get("frames"), meta.get("fps")
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int)
                               or not 1 <= frames <= MAX_FRAMES):
        raise CheckpointError(f"{path} has meta.frames {frames!r}, not a whole number from 1 to {MAX_FRAMES:,}; "
                              "the config is damaged: fix or remove that key.")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000):
        raise CheckpointError(f"{path} has meta.fps {fps!r}, not a number above 0 and at most 1000; the config "
                              "is damaged: fix or remove that key.")


def load_model_dir(path: PathLike, device="cpu") -> TemporalGenerator:
    """A TemporalGenerator (eval mode, .cfg, .meta) from a folder holding config.json + generator.safetensors."""
    path = Path(path)
    verify(path, [CONFIG_FILE, WEIGHTS_FILE])
    cfg, meta = read_config(path / CONFIG_FILE)
    G = TemporalGenerator(cfg)
    _load_safetensors(path / WEIGHTS_FILE, G)
    G.meta = meta
    return G.to(device).eval()


def list_checkpoints(run_dir: PathLike) -> List[Tuple[int, Path]]:
    """[(step, folder)] of RUN_DIR/checkpoints/step-XXXXXXXX (or of step folders directly under run_dir),
    oldest first. A folder is published whole (atomic_directory), so every one listed is complete."""
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints" if (run_dir / "checkpoints").is_dir() else run_dir
    found = []
    for p in root.iterdir() if root.is_dir() else []:
        m = STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def model_config(source: Optional[PathLike] = None) -> ModelConfig:
    """The ModelConfig of the generator that `source` names (as `load` takes it: None for the embedded
    model, a model folder, a run folder's newest checkpoint, or a .safetensors file), read from its
    config.json alone: no weights are read."""
    if source is None:
        return read_config(DEFAULT_DIR / CONFIG_FILE)[0]
    p = Path(source)
    if p.is_file():
        return read_config(p.parent / CONFIG_FILE)[0]
    folders = [f for _, f in list_checkpoints(_model_folder(p))]
    return read_config((folders[-1] if folders else p) / CONFIG_FILE)[0]


def latest_checkpoint(run_dir: PathLike, device="cpu"):
    """(folder, generator) of the newest checkpoint that loads; a newer broken one is skipped with a warning.

    Returns (None, None) when run_dir holds no step folders; CheckpointError when all of them are broken.
    """
    folders = [f for _, f in reversed(list_checkpoints(run_dir))]       # newest first
    errors = []
    for i, folder in enumerate(folders):
        try:
            return folder, load_model_dir(folder, device=device)
        except CheckpointError as exc:
            errors.append(str(exc))
            nxt = folders[i + 1].name if i + 1 < len(folders) else None
            warnings.warn(f"skipping checkpoint {folder}: {exc} "
                          + (f"Falling back to {nxt}." if nxt else "No older checkpoint left."), stacklevel=2)
    if folders:
        raise CheckpointError(f"no loadable checkpoint in {run_dir}: every step folder is broken "
                              f"(newest: {errors[0]})")
    return None, None


def load(path: Optional[PathLike] = None, device="cpu") -> TemporalGenerator:
    """A generator in eval mode with .cfg and .meta, from:

    None (the embedded model in vidgan/assets/default/), a model folder (config.json +
    generator.safetensors), a run folder (newest complete RUN_DIR/checkpoints/step-XXXXXXXX/; a broken
    newest one is skipped with a warning), or a .safetensors file with config.json beside it.
    Anything missing, corrupt or incompatible raises CheckpointError naming the file.
    """
    if path is None:
        if not (DEFAULT_DIR / CONFIG_FILE).is_file() or not (DEFAULT_DIR / WEIGHTS_FILE).is_file():
            raise CheckpointError(f"the embedded default model is not present in {DEFAULT_DIR}; reinstall vidgan "
                                  f"or pass a checkpoint path.")
        return load_model_dir(DEFAULT_DIR, device=device)
    p = Path(path)
    if p.is_file():
        if p.suffix != ".safetensors":
            raise CheckpointError(f"{p} is not a checkpoint: pass a model folder, a run folder or a "
                                  f".safetensors file with {CONFIG_FILE} beside it.")
        verify(p.parent, [CONFIG_FILE, p.name])
        cfg, meta = read_config(p.parent / CONFIG_FILE)
        G = TemporalGenerator(cfg)
        _load_safetensors(p, G)
        G.meta = meta
        return G.to(device).eval()
    folder = _model_folder(p)
    return latest_checkpoint(folder, device=device)[1] if list_checkpoints(folder) else load_model_dir(folder, device)


def _model_folder(p: Path) -> Path:
    """The folder of a model (config.json + generator.safetensors) or run (checkpoints/step-*) that p names;
    CheckpointError saying what is missing otherwise."""
    if not p.exists():
        raise CheckpointError(f"{p} does not exist; pass a model folder, a run folder or a .safetensors file.")
    if list_checkpoints(p):
        return p
    if (p / "checkpoints").is_dir():
        raise CheckpointError(f"the run folder {p} has no checkpoints/step-XXXXXXXX/ folder yet; train longer "
                              f"or pass a model folder.")
    if (p / CONFIG_FILE).is_file() or (p / WEIGHTS_FILE).is_file():
        return p
    raise CheckpointError(f"{p} holds no checkpoint: expected {CONFIG_FILE} + {WEIGHTS_FILE}, or "
                          f"checkpoints/step-XXXXXXXX/ folders of a training run.")
