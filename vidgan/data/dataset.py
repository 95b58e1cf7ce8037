"""VideoDataset: fixed-length clips from frame folders, video files or a .vidpack.

Clip = `frames` frames taken every `stride`-th source frame, so a clip spans
``(frames - 1) * stride + 1`` source frames. Videos shorter than that are skipped, counted
and reported once. Items are float32 [C, T, R, R] in [-1, 1].

Channels: C = `channels`, 3 (RGB) or 1 (grey); None (the default) detects it from the data: 1 when the
source is grey, 3 otherwise (the rule: vidgan.data.channels). channels=3 on grey data replicates the grey;
channels=1 on colour data converts every clip to ITU-R BT.601 luma, and `summary()` says so.

train mode: len = number of usable videos. ``ds[i]`` draws a random start (and flip) from an
internal generator; ``ds[(i, sample_seed)]`` draws them from `sample_seed` alone, so a stream
of keys (what build_loader feeds) is deterministic and resumable.

eval mode: ``ds.clip_list`` is a deterministic list of (video_name, start):
  - eval_clips=None: every non-overlapping clip of every video, in natural name order
    (starts 0, span, 2*span, ... while the clip fits);
  - eval_clips=N: N clips; clip j comes from the video at position j % V of a permutation of the
    V usable videos drawn from numpy default_rng(seed) (so videos are used evenly), and its start is
    drawn uniformly from that generator. Same (data, frames, stride, eval_clips, seed) -> same list.

Unreadable files: what the headers reveal is skipped at indexing; a clip that fails at load time
(a damaged frame, a video whose data ends early) is replaced by another clip (train: a video drawn
from the same key; eval: the next clip of the list); the file is reported once and recorded in
``ds.skipped`` {path: reason}. Whether a clip fails depends only on the file, never on what this
process loaded before, so the stream stays deterministic with any number of workers.
``ds.verify()`` (what `vidgan data check` runs) decodes every frame up front and skips the damaged files.
"""
import collections
import os
import warnings

import numpy as np
import torch

from vidgan.data.channels import detect_channels, to_channels
from vidgan.data.decode import decode_frames, decode_video, prepare_frames, to_model_range
from vidgan.data.discover import VideoEntry, index_videos
from vidgan.data.pack import PACK_EXT, is_pack, open_pack
from vidgan.errors import DataError, InputError

_MAX_TRIES = 64


def _in_worker():
    return torch.utils.data.get_worker_info() is not None


class VideoDataset(torch.utils.data.Dataset):
    """Clips [C, frames, resolution, resolution] in [-1, 1] from `root` (see the module docstring)."""

    def __init__(self, root, frames=16, resolution=64, stride=1, keep_aspect=False, hflip=False,
                 mode="train", seed=0, eval_clips=None, cache_bytes=256 << 20, channels=None):
        if mode not in ("train", "eval"):
            raise InputError(f"mode={mode!r} is not valid; use 'train' or 'eval'.")
        if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
            raise InputError(f"channels={channels!r} is not valid; use 1 (grey), 3 (RGB) or None (detect).")
        for key, val, low in (("frames", frames, 1), ("stride", stride, 1), ("resolution", resolution, 8)):
            if not isinstance(val, (int, np.integer)) or val < low:
                raise InputError(f"{key}={val!r} is not valid; use an integer >= {low}.")
        if eval_clips is not None and (not isinstance(eval_clips, (int, np.integer)) or eval_clips < 1):
            raise InputError(f"eval_clips={eval_clips!r} is not valid; use a positive integer or None.")
        self.root = os.path.abspath(os.fspath(root))
        self.frames, self.resolution, self.stride = int(frames), int(resolution), int(stride)
        self.keep_aspect, self.hflip, self.mode, self.seed = bool(keep_aspect), bool(hflip), mode, int(seed)
        self.eval_clips = None if eval_clips is None else int(eval_clips)
        self.span = (self.frames - 1) * self.stride + 1
        self.cache_bytes = int(cache_bytes)
        self.skipped = {}
        self._reported = set()
        self._bad = set()
        self._mm = None
        self._cache = collections.OrderedDict()
        self._cache_used = 0
        self._rng = np.random.default_rng(self.seed)

        self.packed = is_pack(self.root)
        if self.packed:
            entries = self._index_pack()
        else:
            if self.root.endswith(PACK_EXT) and os.path.isfile(self.root):
                open_pack(self.root)  # raises the precise DataError
            entries, bad = index_videos(self.root)
            self.skipped.update(bad)
        self.found = len(entries) + len(self.skipped)
        self.unreadable = len(self.skipped)
        short = [e for e in entries if e.length < self.span]
        self.entries = [e for e in entries if e.length >= self.span]
        self.too_short = len(short)
        for e in short:
            self.skipped[e.path] = (f"too short: {e.length} frame(s), a clip needs {self.span} "
                                    f"(frames={self.frames}, stride={self.stride}); skipped")
        if not self.entries:
            raise DataError(self._nothing_usable_message(short))
        if self.skipped:
            self.report(dict(self.skipped), at="indexing")
        self.clip_list = self._make_clip_list() if mode == "eval" else None
        # 1 (grey) or 3, from the data alone; the clips carry self.channels.
        self.source_channels = detect_channels(entries, getattr(self, "pack_index", None),
                                               self._mm if self.packed else None)
        self.channels = self.source_channels if channels is None else int(channels)
        # Video files: keep whole resized videos in memory when all of them fit in the cache budget;
        # otherwise decode each clip on its own (seek + a few frames), which never thrashes.
        file_bytes = sum(e.length for e in self.entries if e.kind == "file") * self.resolution ** 2 * 3
        self.cache_videos = 0 < file_bytes <= self.cache_bytes

    # ------------------------------------------------------------------ indexing
    def _index_pack(self):
        index, self._mm = open_pack(self.root)
        if index["height"] != self.resolution or index["width"] != self.resolution:
            raise DataError(f"{self.root} holds {index['width']}x{index['height']} frames but resolution="
                            f"{self.resolution} was asked; train at {index['height']} or re-pack with "
                            f"--resolution {self.resolution}.")
        self.pack_index = {k: v for k, v in index.items() if k != "videos"}
        return [VideoEntry(v["name"], f"{self.root}#{v['name']}", "packed", int(v["length"]), index["width"],
                           index["height"],
                           float(v.get("fps", 25.0)), offset=int(v["offset"])) for v in index["videos"]]

    def _nothing_usable_message(self, short):
        names = ", ".join(os.path.basename(e.path) for e in short[:3]) + (" ..." if len(short) > 3 else "")
        unread = ""
        if self.unreadable:
            first = next(iter(self.skipped.items()))
            unread = f" ({os.path.basename(first[0])}: {first[1]})"
        found = (f"no usable video under {self.root}: found {self.found} video(s), {self.too_short} too short"
                 + (f" ({names})" if short else "") + f" and {self.unreadable} unreadable{unread}")
        if not short:
            return found + "; replace the unreadable videos or point to other data."
        return (found + f"; a clip needs {self.span} frames (frames={self.frames}, stride={self.stride}): "
                "lower frames/stride or add longer videos.")

    def _make_clip_list(self):
        if self.eval_clips is None:
            return [(e.name, s) for e in self.entries for s in range(0, e.length - self.span + 1, self.span)]
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self.entries))
        clips = []
        for j in range(self.eval_clips):
            e = self.entries[order[j % len(order)]]
            clips.append((e.name, int(rng.integers(0, e.length - self.span + 1))))
        return clips

    def verify(self, workers=None):
        """Decode every frame of every usable video (slow; `vidgan data check` does it). A video that
        does not decode whole (a file cut short, a damaged frame) moves to `skipped`. Returns the newly
        skipped {path: reason}; DataError when no usable video is left."""
        from vidgan.data.verify import check_entries

        bad = check_entries(self.entries, workers)
        if bad:
            self.entries = [e for e in self.entries if e.path not in bad]
            self.skipped.update(bad)
            self.unreadable += len(bad)
            self.__dict__.pop("_names", None)
            if not self.entries:
                raise DataError(self._nothing_usable_message([]))
            if self.mode == "eval":
                self.clip_list = self._make_clip_list()
        return bad

    # ------------------------------------------------------------------ reporting
    def report(self, new, at="load time"):
        """Record newly skipped files {path: reason} in ds.skipped; warn once per file.

        Inside a DataLoader worker it only records: the loader hands `fetch`'s skips to the main
        process, which reports them.
        """
        for path, reason in new.items():
            self.skipped.setdefault(path, reason)
        fresh = {p: r for p, r in new.items() if p not in self._reported}
        self._reported.update(fresh)
        if fresh and not _in_worker():
            lines = [f"{self._display(p)}: {r}" for p, r in list(fresh.items())[:10]]
            more = f"\n  ... and {len(fresh) - 10} more" if len(fresh) > 10 else ""
            warnings.warn(f"vidgan.data: {len(fresh)} file(s) under {self.root} skipped at {at}:\n  "
                          + "\n  ".join(lines) + more, stacklevel=3)

    _report = report

    def _display(self, path):
        """A skipped path as shown to users: relative to the root when inside it."""
        rel = os.path.relpath(path, self.root) if os.path.isdir(self.root) else os.path.basename(path)
        return path if rel.startswith("..") else rel

    def summary(self):
        """One paragraph for logs: what was found, used and skipped."""
        frames = sum(e.length for e in self.entries)
        kinds = collections.Counter(e.kind for e in self.entries)
        labels = {"frames": "frame folder(s)", "file": "video file(s)", "packed": "packed"}
        kind_text = ", ".join(f"{n} {labels[k]}" for k, n in sorted(kinds.items()))
        text = (f"{len(self.entries)} usable video(s) ({kind_text}; {frames} frames) from {self.root}; "
                f"clips of {self.frames} frames, stride {self.stride}, {self.resolution}x{self.resolution}, "
                f"mode {self.mode}")
        if self.mode == "eval":
            text += f", {len(self.clip_list)} eval clips"
        text += "; " + self.channels_text()
        if any(e.kind == "file" for e in self.entries) and not self.cache_videos:
            text += ("; video files larger than the cache are decoded per clip (slow): "
                     "`vidgan data pack` them once for fast loading")
        if self.skipped:
            short = sum(1 for r in self.skipped.values() if r.startswith("too short"))
            text += (f"; skipped {len(self.skipped)}: {short} too short (need {self.span} frames), "
                     f"{len(self.skipped) - short} unreadable")
        return text

    def channels_text(self):
        """What the clips' channels are and where they come from, for logs."""
        if self.channels == self.source_channels:
            return "grey frames (1 channel)" if self.channels == 1 else "colour frames (3 channels)"
        if self.channels == 1:
            return "colour frames converted to grey (ITU-R BT.601 luma) for a 1-channel model"
        return "grey frames replicated to 3 channels for an RGB model"

    # ------------------------------------------------------------------ loading
    def __len__(self):
        return len(self.clip_list) if self.mode == "eval" else len(self.entries)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mm"], state["_cache"], state["_cache_used"] = None, collections.OrderedDict(), 0
        return state

    def _load(self, e, start):
        """uint8 [T, R, R, 3] of entry e from source frame `start`."""
        stop = start + self.span
        if e.kind == "packed":
            if self._mm is None:
                self._mm = open_pack(self.root)[1]
            return np.array(self._mm[e.offset + start:e.offset + stop:self.stride])
        if e.kind == "frames":
            raw = decode_frames(e.frames[start:stop:self.stride])
            if raw.shape[1:3] != (e.height, e.width):
                raise DataError(f"frames in {e.path} are {raw.shape[2]}x{raw.shape[1]}, their headers said "
                                f"{e.width}x{e.height}")
            return prepare_frames(raw, self.resolution, self.keep_aspect)
        full = self._cached_video(e)
        if full is not None:
            clip = full[start:stop:self.stride]
        else:
            raw = decode_video(e.path, start=start, count=self.span, fps=e.fps)[::self.stride]
            clip = prepare_frames(raw, self.resolution, self.keep_aspect)
        if clip.shape[0] != self.frames:
            raise DataError(f"video {e.path} ended after {start + clip.shape[0] * self.stride} frames but its "
                            f"header says {e.length}; it is truncated")
        return clip

    def _cached_video(self, e):
        """Whole video resized, kept in a per-process cache (when all video files fit in cache_bytes)."""
        if not self.cache_videos:
            return None
        if e.path in self._cache:
            self._cache.move_to_end(e.path)
            return self._cache[e.path]
        try:
            full = prepare_frames(decode_video(e.path), self.resolution, self.keep_aspect)
        except DataError:
            self._bad.add(e.path)  # fails for every clip of this file: never try it again
            raise
        while self._cache and self._cache_used + full.numel() > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cache_used -= old.numel()
        self._cache[e.path] = full
        self._cache_used += full.numel()
        return full

    def _candidates(self, index, sample_seed):
        """Deterministic (entry, start, flip) tries for one key: the asked item first, then replacements."""
        if self.mode == "eval":
            n = len(self.clip_list)
            by_name = self._by_name()
            for k in range(min(n, _MAX_TRIES)):
                name, start = self.clip_list[(index + k) % n]
                yield by_name[name], start, False
            return
        rng = np.random.default_rng(sample_seed) if sample_seed is not None else \
            np.random.default_rng(self._rng.integers(2 ** 63))
        v = index
        for k in range(_MAX_TRIES):  # other starts of the same video count too: a damaged frame fails few
            if k:
                v = int(rng.integers(len(self.entries)))
            e = self.entries[v]
            start = int(rng.integers(0, e.length - self.span + 1))
            flip = bool(rng.random() < 0.5) and self.hflip
            yield e, start, flip

    def _by_name(self):
        if "_names" not in self.__dict__:
            self._names = {e.name: e for e in self.entries}
        return self._names

    def fetch(self, key):
        """(clip uint8 numpy [T, R, R, C], already flipped, newly skipped {path: reason}) for a key.

        key: an index or (index, sample_seed). The loader moves these 4x smaller uint8 clips between
        processes and converts whole batches with `to_model_range`.
        """
        index, sample_seed = (key if isinstance(key, (tuple, list)) else (key, None))
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        new, tries = {}, 0
        for e, start, flip in self._candidates(index, sample_seed):
            if e.path in self._bad:
                continue
            tries += 1
            try:
                clip = self._load(e, start)
            except DataError as exc:  # a damaged frame or a short decode fails only the clips that touch it
                new[e.path] = f"unreadable at load time ({exc}); replaced by another clip"
                continue
            clip = to_channels(np.asarray(clip), self.channels)
            return (np.ascontiguousarray(clip[:, :, ::-1]) if flip else clip), new
        raise DataError(f"could not load any clip from {self.root} after {tries} tries; "
                        f"last problems: {list(new.values())[-3:]}; check the data.")

    def __getitem__(self, key):
        clip, new = self.fetch(key)
        if new:
            self.report(new)
        return to_model_range(clip)  # float32 [C, T, R, R] in [-1, 1]
