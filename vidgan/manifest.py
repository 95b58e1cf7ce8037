"""Checkpoints that know they are whole: FOLDER/manifest.json records the size and sha256 of every file a
model or checkpoint folder holds, written last (inside the temporary folder, before the rename that
publishes it). Loading verifies each file it reads against it, so bytes damaged after the write (a bad
disk, a copy cut short, a stray write) are found and named instead of loaded.

    {"format": "vidgan-manifest", "files": {"generator.safetensors": {"size": 2175196, "sha256": "..."}}}

A folder without a manifest (written by vidgan 0.1.0) loads unverified.
"""
import hashlib
import json
from pathlib import Path
from typing import Dict, Iterable, Optional

from vidgan import jsonfile
from vidgan._atomic import atomic_write_text
from vidgan.errors import CheckpointError

MANIFEST_FILE = "manifest.json"
FORMAT = "vidgan-manifest"


def file_digest(path: Path) -> Dict[str, object]:
    """{"size": bytes, "sha256": hex} of one file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"size": Path(path).stat().st_size, "sha256": h.hexdigest()}


def write_manifest(folder, names: Optional[Iterable[str]] = None) -> None:
    """Record `names` (default: every file in folder but the manifest) in FOLDER/manifest.json, keeping the
    entries of other files that are still there unchanged."""
    folder = Path(folder)
    old = _read(folder) or {}
    if names is None:
        names = [p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_FILE]
    files = {n: e for n, e in old.items() if (folder / n).is_file()}
    files.update({n: file_digest(folder / n) for n in names})
    text = json.dumps({"format": FORMAT, "files": dict(sorted(files.items()))}, indent=2) + "\n"
    atomic_write_text(folder / MANIFEST_FILE, text, what="checkpoint manifest")


def verify(folder, names: Iterable[str]) -> bool:
    """CheckpointError naming the first of `names` whose size or sha256 differs from the manifest's (or that
    it does not list); True when all match, False when the folder has no manifest (unverified)."""
    folder = Path(folder)
    files = _read(folder)
    if files is None:
        return False
    for name in names:
        entry, path = files.get(name), folder / name
        if entry is None:
            raise CheckpointError(f"{path} is not recorded in {folder / MANIFEST_FILE}; the folder was changed "
                                  "after it was written: pick another checkpoint.")
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; the checkpoint is incomplete, pick another one.")
        if path.stat().st_size != entry.get("size") or file_digest(path)["sha256"] != entry.get("sha256"):
            raise CheckpointError(f"{path} does not match the size and sha256 recorded when it was written "
                                  f"({folder / MANIFEST_FILE}): it was damaged since; pick another checkpoint.")
    return True


def _read(folder: Path) -> Optional[Dict[str, dict]]:
    """The manifest's {name: entry}, None when there is none; CheckpointError when it is unreadable."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        doc = jsonfile.read(path)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict) \
                or not all(isinstance(e, dict) for e in doc["files"].values()):
            raise ValueError("not a vidgan manifest")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is unreadable ({exc}); the checkpoint is damaged, pick another one.") from None
    return doc["files"]
