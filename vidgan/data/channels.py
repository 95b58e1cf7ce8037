"""Grey or colour: how many channels a data source's clips carry, and converting clips to a model's count.

Frames are decoded and packed as uint8 RGB [..., 3] (a single-channel PNG decodes to R = G = B). A source
is grey when R = G = B exactly at every pixel of its probe frames:

  - a .vidpack built by this version (`vidgan data pack`, `vidgan data moving-mnist --out X.vidpack`)
    records "channels" in its index, from a check of every frame it stores: that value is used as is;
  - otherwise up to PROBE_VIDEOS videos spread evenly over every video indexed (first, last and evenly
    between, in the set's order; too-short ones included) are probed: the first, middle and last frame
    of a frame folder or an older pack's video, or PROBE_FRAMES consecutive frames from the middle of a
    video file (one decode).
    A probe frame that does not decode is left out; with nothing decoded the source counts as colour.

The rule depends only on the files (not on frames, stride, seed or mode), so every dataset built over
one source finds the same answer. A colour source whose probe frames all happen to be grey is taken for
grey: force colour with `vidgan train --channels 3`.

to_channels: 3 keeps the clip; 1 takes the ITU-R BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B, rounded, in
integers, so a grey pixel (R = G = B = v) gives exactly v.
"""
import numpy as np

from vidgan.errors import DataError

PROBE_VIDEOS = 8
PROBE_FRAMES = 3
LUMA = (299, 587, 114)          # BT.601 weights x 1000


def is_grey(frames) -> bool:
    """True when uint8 frames [..., 3] have R = G = B at every pixel."""
    a = np.asarray(frames)
    return bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]))


def to_channels(clip, channels: int) -> np.ndarray:
    """uint8 [..., 3] -> uint8 [..., channels]: 3 unchanged, 1 the BT.601 luma (see the module docstring)."""
    a = np.asarray(clip)
    if channels == 3:
        return a
    r, g, b = LUMA
    y = a[..., 0].astype(np.uint32) * r + a[..., 1].astype(np.uint32) * g + a[..., 2].astype(np.uint32) * b
    return ((y + 500) // 1000).astype(np.uint8)[..., None]


def probe_entries(entries):
    """Up to PROBE_VIDEOS entries spread evenly over `entries` (the first and the last among them)."""
    n = len(entries)
    k = min(n, PROBE_VIDEOS)
    if k <= 1:
        return list(entries[:k])
    return [entries[round(i * (n - 1) / (k - 1))] for i in range(k)]


def probe_frames(entry, pack_frames=None):
    """The probe frames of one indexed video as uint8 [k, H, W, 3] (DataError if they do not decode)."""
    from vidgan.data.decode import decode_frames, decode_video

    n = entry.length
    picks = sorted({0, n // 2, n - 1})
    if entry.kind == "packed":
        return np.asarray(pack_frames[[entry.offset + i for i in picks]])
    if entry.kind == "frames":
        return np.asarray(decode_frames([entry.frames[i] for i in picks]))
    start = max(0, n // 2 - PROBE_FRAMES // 2)
    return np.asarray(decode_video(entry.path, start=start, count=min(PROBE_FRAMES, n - start), fps=entry.fps))


def detect_channels(entries, pack_index=None, pack_frames=None) -> int:
    """1 when the source is grey, else 3 (the rule is in the module docstring)."""
    recorded = (pack_index or {}).get("channels")
    if recorded in (1, 3) and not isinstance(recorded, bool):
        return recorded
    seen = False
    for e in probe_entries(entries):
        try:
            frames = probe_frames(e, pack_frames)
        except DataError:
            continue
        if not len(frames):
            continue
        if not is_grey(frames):
            return 3
        seen = True
    return 1 if seen else 3
