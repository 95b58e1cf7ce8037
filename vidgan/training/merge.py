"""Typed merging of nested config dicts: JSON files, flags and KEY=VALUE assignments into a config's dict.

Values are checked against the type of the field they replace (or its declared type when its default is
None); dotted keys ("model.frames") reach nested fields. Errors are InputError sentences naming the key
and the source it came from.
"""
import typing
from typing import Any, Callable, Dict, List, Optional, Sequence

from vidgan import jsonfile
from vidgan.errors import InputError


def read_json(path: str) -> Dict[str, Any]:
    try:
        d = jsonfile.read(path)
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist; check the path given to --config.") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"config file {path} is not valid JSON ({exc}); fix or remove it.") from None
    if not isinstance(d, dict):
        raise InputError(f"config file {path} must hold a JSON object of TrainConfig keys, not {type(d).__name__}.")
    return d


def parse_assignments(items: Sequence[str]) -> Dict[str, Any]:
    """["a.b=1", "loss=hinge"] -> {"a": {"b": 1}, "loss": "hinge"}; values are JSON, else plain strings."""
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--set {item!r} is not of the form KEY=VALUE (e.g. --set model.motion=gru).")
        try:
            value = jsonfile.loads(raw)
        except ValueError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {item!r} conflicts with another assignment to {p}.")
        node[parts[-1]] = value
    return out


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and (prefix + k) == "model":
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def merge(base: Dict[str, Any], new: Dict[str, Any], source: str, annotation: Callable[[str], Any],
          aliases: Optional[Dict[str, str]] = None) -> None:
    """Merge `new` (nested or dotted keys) into the full dict `base`, type-checking each value against the
    field's current value or its declared type (`annotation(dotted key)`); unknown keys are an InputError."""
    flat = {}
    for k, v in flatten(new).items():
        flat[(aliases or {}).get(k, k)] = v
    unknown = []
    for key, value in flat.items():
        parts = key.split(".")
        node, name = base, parts[-1]
        ok = True
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                ok = False
                break
            node = node[p]
        if not ok or name not in node:
            unknown.append(key)
            continue
        node[name] = _coerce(key, value, node[name], source, annotation(key))
    if unknown:
        raise InputError(f"unknown training config key(s) {', '.join(sorted(unknown))} in {source}; "
                         f"see the TrainConfig fields (model.* for the model) for the valid names.")


# An example value of each plain type, to check a value against a field whose default is None or
# against the items of a list field.
_EXAMPLES = {float: 0.0, int: 0, str: "", bool: False}


def _optional(annotation: Any) -> bool:
    """Whether a declared type admits None (Optional[...])."""
    return typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(annotation)


def _example(annotation: Any) -> Any:
    """An example value of `annotation` with Optional[...] removed (None when it is not a plain type)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        annotation = args[0]
    return _EXAMPLES.get(annotation)


def _coerce(key: str, value: Any, default: Any, source: str, annotation: Any = None) -> Any:
    """Convert `value` to the type of the current `default` (for a None default, to the declared
    `annotation` of the field, e.g. Optional[float]; items of a list to the declared item type)."""
    def bad():
        like = default if default is not None else _example(annotation)
        return InputError(f"{key}={value!r} in {source} has the wrong type; expected "
                          f"{type(like).__name__} like {like!r}.")

    if value is None:
        if default is None or _optional(annotation):
            return value
        like = default
        raise InputError(f"{key} in {source} must be a {type(like).__name__} like {like!r}, not null.")
    if default is None:
        example = _example(annotation)
        if example is None:
            return value
        default = example
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad()
    if isinstance(default, int):
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad()
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad()
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise bad()
    if isinstance(default, (list, tuple)):
        if isinstance(value, str):  # "flip,color" -> ["flip", "color"]
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad()
        item_types = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        out = []
        for i, item in enumerate(value):
            example = _EXAMPLES.get(item_types[min(i, len(item_types) - 1)]) if item_types else None
            out.append(item if example is None else _coerce(f"{key}[{i}]", item, example, source))
        return out
    return value


def config_diff(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> List[str]:
    """Dotted keys whose values differ between two (nested) config dicts."""
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, prefix + k + ".")
        elif va != vb:
            out.append(prefix + k)
    return out
