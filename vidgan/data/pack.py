"""The packed format (.vidpack): decoded, resized uint8 frames in one memory-mappable file.

Layout of a .vidpack file (all integers little-endian):

    bytes 0..8      magic b"VIDPACK1"
    bytes 8..16     uint64 byte offset of the JSON index
    bytes 16..24    uint64 byte length of the JSON index
    bytes 4096..    frames, uint8 [total_frames, H, W, 3], C order (numpy memmap)
    then            the JSON index (UTF-8)

The JSON index holds {"format": "vidpack", "version": 1, "height", "width", "resolution",
"keep_aspect", "total_frames", "data_offset", "channels", "videos": [{"name", "offset", "length", "fps"}],
"source": {"path", "fingerprint"}, "meta": {...}}; "channels" is 1 when every stored frame has
R = G = B (a grey source), else 3 (packs written before it existed lack it); a video's frames are rows
[offset, offset + length) of the frame array. The file is written beside its target and
renamed into place, so a reader never sees a half-written pack.
"""
import hashlib
import json
import os
import struct
import time

import numpy as np

from vidgan._atomic import atomic_file
from vidgan.data.channels import is_grey
from vidgan.data.decode import decode_frames, iter_video, prepare_frames
from vidgan.errors import DataError, InputError

MAGIC = b"VIDPACK1"
VERSION = 1
DATA_OFFSET = 4096
PACK_EXT = ".vidpack"


class PackWriter:
    """Append videos (uint8 [T, R, R, 3]) to a new pack file at `path` (a temporary path)."""

    def __init__(self, path, height, width):
        self.path, self.height, self.width = path, int(height), int(width)
        self.videos, self.total = [], 0
        self.grey = True                     # every frame written so far has R = G = B
        self._fh = open(path, "wb")
        self._fh.write(b"\0" * DATA_OFFSET)

    def add(self, name, chunks, fps=25.0):
        """Write one video given as an iterable of uint8 chunks [k, H, W, 3]; returns its length.

        If reading the chunks fails, the partial video is removed from the file and the error re-raised.
        """
        start_pos, length, grey = self._fh.tell(), 0, self.grey
        try:
            for chunk in chunks:
                chunk = np.ascontiguousarray(np.asarray(chunk, dtype=np.uint8))
                if chunk.shape[1:] != (self.height, self.width, 3):
                    raise DataError(f"video {name} has frames of shape {chunk.shape[1:]}, the pack holds "
                                    f"{(self.height, self.width, 3)}.")
                self._fh.write(chunk.tobytes())
                self.grey = self.grey and is_grey(chunk)
                length += chunk.shape[0]
        except BaseException:
            self._fh.seek(start_pos)
            self._fh.truncate()
            self.grey = grey
            raise
        if length:
            self.videos.append({"name": name, "offset": self.total, "length": length, "fps": float(fps)})
            self.total += length
        return length

    def finish(self, **info):
        """Write the JSON index and the header; close the file."""
        index = {"format": "vidpack", "version": VERSION, "height": self.height, "width": self.width,
                 "resolution": self.height, "total_frames": self.total, "data_offset": DATA_OFFSET,
                 "channels": 1 if self.grey and self.total else 3, "videos": self.videos, **info}
        blob = json.dumps(index).encode("utf-8")
        pos = self._fh.tell()
        self._fh.write(blob)
        self._fh.seek(0)
        self._fh.write(MAGIC + struct.pack("<QQ", pos, len(blob)))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return index

    def abort(self):
        """Close the file after a failure; a flush that fails too (a full disk) is not a second error."""
        try:
            self._fh.close()
        except OSError:
            pass


def is_pack(path):
    """True if `path` is a file that starts with the vidpack magic."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        return fh.read(8) == MAGIC


def read_index(path):
    """The JSON index of a pack. Raises DataError naming the file if it is not a complete pack."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(24)
        if len(head) < 24 or head[:8] != MAGIC:
            raise DataError(f"{path} is not a vidpack file (bad magic); build it with `vidgan data pack`.")
        pos, n = struct.unpack("<QQ", head[8:24])
        if pos < DATA_OFFSET or pos + n > size:
            raise DataError(f"{path} is truncated or damaged (index outside the file); rebuild it with "
                            f"`vidgan data pack`.")
        fh.seek(pos)
        try:
            index = json.loads(fh.read(n).decode("utf-8"))
        except ValueError:
            raise DataError(f"{path} has a damaged index; rebuild it with `vidgan data pack`.") from None
    damaged = f"{path} has a damaged index ({{}}); rebuild it with `vidgan data pack`."
    if not isinstance(index, dict):
        raise DataError(damaged.format(f"a JSON {type(index).__name__}, not an object"))
    if index.get("version") != VERSION:
        raise DataError(f"{path} is vidpack version {index.get('version')}, this vidgan reads version {VERSION}; "
                        f"rebuild it with `vidgan data pack`.")
    for key in ("height", "width", "total_frames", "data_offset"):
        if not _count(index.get(key)):
            raise DataError(damaged.format(f"{key} is {index.get(key)!r}, not a count"))
    if not isinstance(index.get("videos"), list):
        raise DataError(damaged.format("it has no list of videos"))
    h, w, total = index["height"], index["width"], index["total_frames"]
    if index["data_offset"] + total * h * w * 3 != pos:
        raise DataError(f"{path} is damaged (frame data size does not match its index); rebuild it.")
    for i, v in enumerate(index["videos"]):
        if not (isinstance(v, dict) and isinstance(v.get("name"), str) and _count(v.get("offset"))
                and _count(v.get("length"))):
            raise DataError(damaged.format(f"video {i} lacks a name, offset or length"))
        if v["offset"] + v["length"] > total:
            raise DataError(damaged.format(f"video {v['name']!r} runs to frame {v['offset'] + v['length']} "
                                           f"of {total} stored"))
    return index


def _count(x):
    """True for a non-negative int (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def open_pack(path):
    """(index, frames) where frames is a read-only numpy memmap uint8 [total_frames, H, W, 3]."""
    index = read_index(path)
    shape = (index["total_frames"], index["height"], index["width"], 3)
    if index["total_frames"] == 0:
        return index, np.zeros(shape, np.uint8)
    return index, np.memmap(os.fspath(path), dtype=np.uint8, mode="r", offset=index["data_offset"], shape=shape)


def source_fingerprint(entries):
    """A short hash of the sources' names, sizes and modification times (cheap to recompute)."""
    h = hashlib.sha256()
    for e in entries:
        files = e.frames if e.kind == "frames" else (e.path,)
        for p in files:
            st = os.stat(p)
            h.update(f"{os.path.relpath(p, os.path.dirname(e.path))}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def video_chunks(entry, resolution, keep_aspect, chunk=64):
    """Decode and resize one indexed video in chunks -> iterator of uint8 [k, R, R, 3] numpy arrays."""
    if entry.kind == "frames":
        for i in range(0, entry.length, chunk):
            yield prepare_frames(decode_frames(entry.frames[i:i + chunk]), resolution, keep_aspect).numpy()
    else:
        for raw in iter_video(entry.path, chunk):
            yield prepare_frames(raw, resolution, keep_aspect).numpy()


def pack_dataset(src, out, resolution=64, keep_aspect=False, overwrite=False):
    """Decode and resize every video under `src` once into the pack file `out`.

    Unreadable videos are skipped and listed in the summary; nothing usable -> DataError.
    Returns {"out", "videos", "frames", "resolution", "keep_aspect", "bytes", "skipped", "seconds",
    "fingerprint"}.
    """
    from vidgan.data.discover import index_videos

    t0 = time.perf_counter()
    resolution = int(resolution)
    if resolution < 8 or resolution > 4096:
        raise InputError(f"resolution={resolution} is out of range; use a size between 8 and 4096 (e.g. 64).")
    if not os.fspath(out).endswith(PACK_EXT):
        raise InputError(f"output {out} should end with {PACK_EXT}; pass e.g. --out data{PACK_EXT}.")
    if is_pack(src):
        raise InputError(f"{src} is already a vidpack; train on it directly.")
    entries, skipped = index_videos(src)
    with atomic_file(out, overwrite, what="pack") as tmp:
        writer = PackWriter(tmp, resolution, resolution)
        try:
            for e in entries:
                try:
                    writer.add(e.name, video_chunks(e, resolution, keep_aspect), fps=e.fps)
                except DataError as exc:
                    skipped[e.path] = f"{exc}"
            if not writer.videos:
                raise DataError(f"nothing to pack under {src}: {len(skipped)} unreadable video(s) "
                                f"({_first(skipped)}); fix or remove them.")
            writer.finish(keep_aspect=bool(keep_aspect),
                          source={"path": os.path.abspath(os.fspath(src)), "fingerprint": source_fingerprint(entries)},
                          meta={"created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        except BaseException:
            writer.abort()
            raise
    return {"out": os.path.abspath(os.fspath(out)), "videos": len(writer.videos), "frames": writer.total,
            "resolution": resolution, "keep_aspect": bool(keep_aspect),
            "bytes": os.path.getsize(out), "skipped": skipped, "seconds": round(time.perf_counter() - t0, 3)}


def _first(skipped, n=3):
    items = list(skipped.items())[:n]
    more = f"; and {len(skipped) - n} more" if len(skipped) > n else ""
    return "; ".join(f"{os.path.basename(p)}: {r}" for p, r in items) + more
