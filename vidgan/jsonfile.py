"""Reading JSON that may come from strangers: a size and a nesting-depth limit checked before parsing, so a
hostile file ends in one ValueError sentence instead of a RecursionError or an exhausted memory."""
import json
import os
from typing import Any

MAX_BYTES = 16 * 2**20     # a config or manifest is a few KB; the embedded model's config.json is 4 KB
MAX_DEPTH = 32             # vidgan's own files nest 4 deep


def loads(text: str) -> Any:
    """json.loads with the depth limit; ValueError (json.JSONDecodeError is one) on bad or too-deep JSON."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"it nests deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    return json.loads(text)


def read(path) -> Any:
    """The JSON value in file `path`; OSError if unreadable, ValueError if too large, not UTF-8, or not JSON
    within the limits."""
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise ValueError(f"it is {size} bytes, more than the {MAX_BYTES} a vidgan JSON file may have")
    with open(path, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    return loads(text)
