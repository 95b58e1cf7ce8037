"""Where a run's settings come from. Later sources win (`resolve_config`):

    1. the defaults (TrainConfig(): the `default` preset),
    2. a named preset (`--preset NAME`: vidgan/presets/NAME.json),
    3. RUN_DIR/train_config.json when RUN_DIR already holds a run (so `vidgan train --out RUN_DIR`
       alone resumes with the settings it was started with),
    4. a JSON file (`--config FILE`),
    5. command-line flags (`--batch 16`; `--resolution`/`--frames`/`--channels` set `model.resolution`/
       `model.frames`/`model.channels`),
    6. dotted assignments (`--set model.motion=gru --set betas=[0,0.99]`).

A new run with init_from takes the model settings of that generator (read from its config.json, no
weights) in place of the defaults and the preset's.

model.channels, when no source sets it, follows the data in a new run: 1 for a grey source, 3 for colour
(the rule: vidgan.data.channels). A run folder that holds a run keeps what its train_config.json says (a
config written before the key existed: 3), and init_from's generator brings its own.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from vidgan.errors import CheckpointError, InputError
from vidgan.training.config import RUN_CONFIG_NAME, TrainConfig, merge_layer
from vidgan.training.merge import parse_assignments, read_json

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"


def list_presets() -> Dict[str, str]:
    """{name: one-paragraph description} of the shipped presets."""
    return {p.stem: _read_preset(p)["about"] for p in sorted(PRESET_DIR.glob("*.json"))}


def preset(name: str) -> Dict[str, Any]:
    """The TrainConfig keys of preset `name` (InputError naming the presets for an unknown one)."""
    path = PRESET_DIR / f"{name}.json"
    if not isinstance(name, str) or "/" in name or not path.is_file():
        raise InputError(f"there is no preset {name!r}; choose one of {', '.join(list_presets())} "
                         "(vidgan train --list-presets describes them).")
    return _read_preset(path)["config"]


def _read_preset(path: Path) -> Dict[str, Any]:
    d = json.loads(path.read_text())
    if not isinstance(d, dict) or not isinstance(d.get("config"), dict) or not isinstance(d.get("about"), str):
        raise InputError(f"preset file {path} must hold an object with \"about\" and \"config\"; reinstall vidgan.")
    return d


def resolve_config(run_dir: str, preset_name: Optional[str] = None, config_file: Optional[str] = None,
                   overrides: Optional[Dict[str, Any]] = None,
                   assignments: Optional[Sequence[str]] = None) -> TrainConfig:
    """The validated TrainConfig of a run from its sources (see the module docstring)."""
    from vidgan.checkpoint import list_checkpoints

    saved = os.path.join(run_dir, RUN_CONFIG_NAME)
    saved_cfg = read_json(saved) if os.path.isfile(saved) else None
    layers: List[tuple] = []
    if preset_name is not None:
        layers.append((preset(preset_name), f"preset {preset_name}"))
    if saved_cfg is not None:
        layers.append((saved_cfg, saved))
    if config_file is not None:
        layers.append((read_json(config_file), config_file))
    if overrides:
        layers.append((dict(overrides), "the command-line flags"))
    if assignments:
        layers.append((parse_assignments(assignments), "--set"))

    def merged(model: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        out = TrainConfig().to_dict()
        for layer, source in layers:
            merge_layer(out, layer, source)
        if model is not None:                       # init_from's generator: over the defaults and the preset,
            out["model"].update(model)              # under what is set for this run
            for layer, source in layers[1 if preset_name is not None else 0:]:
                merge_layer(out, layer, source)
        return out

    d = merged()
    init = d.get("init_from")
    if isinstance(init, str) and init and init != "default":
        init = d["init_from"] = os.path.abspath(os.path.expanduser(init))
    if list_checkpoints(run_dir):                   # a resume: init_from has done its work already
        if saved_cfg is not None:
            d["init_from"] = saved_cfg.get("init_from", d["init_from"])
    elif isinstance(init, str) and init:
        d = merged(_generator_model(init))
        d["init_from"] = init
    if saved_cfg is None and not list_checkpoints(run_dir) and d.get("init_from") is None \
            and not any(_sets_channels(layer) for layer, _ in layers):
        found = _data_channels(d)
        if found is not None:
            d["model"]["channels"] = found
    d["run_dir"] = os.fspath(run_dir)
    if isinstance(d.get("data"), str) and d["data"]:
        # saved as absolute, so a resume from another folder reads the same data
        d["data"] = os.path.abspath(os.path.expanduser(d["data"]))
    return TrainConfig.from_dict(d, "the merged training config")


def _sets_channels(layer: Dict[str, Any]) -> bool:
    """Whether one source's keys set model.channels."""
    return "model.channels" in layer or (isinstance(layer.get("model"), dict) and "channels" in layer["model"])


def _data_channels(d: Dict[str, Any]) -> Optional[int]:
    """1 or 3 as the data of the merged config `d` is grey or colour; None when the data cannot be read
    here (the run itself then reports why, in its own words)."""
    import warnings

    from vidgan.data import VideoDataset
    from vidgan.errors import VidganError

    data, model = d.get("data"), d.get("model") or {}
    if not isinstance(data, str) or not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # skipped files: the run reports them once
            ds = VideoDataset(data, frames=model.get("frames", 16), resolution=model.get("resolution", 64),
                              stride=d.get("stride", 1), keep_aspect=d.get("keep_aspect", False))
    except (VidganError, TypeError, ValueError, OSError):
        return None
    return ds.source_channels


def _generator_model(source: str) -> Dict[str, Any]:
    """The model config (a dict) of the generator that init_from names, from its config.json alone."""
    from vidgan.checkpoint import model_config

    try:
        return model_config(None if source == "default" else source).to_dict()
    except CheckpointError as exc:
        raise InputError(f"init_from: {exc}") from None
