"""Decoding frames and videos to uint8 RGB, and resizing clips in one batched call.

Image frames go through torchvision.io's libpng / libjpeg-turbo / libwebp decoders (the
fastest of torchvision, PIL and imageio measured on 64x64 and 256x256 frames; see
benchmarks/data.py), with PIL for the formats torchvision does not read (bmp). Video files
go through the ffmpeg binary shipped by imageio-ffmpeg. Every decoder returns RGB uint8:
grayscale is repeated, alpha is dropped, 16-bit samples are scaled to 8 bits.
"""
import os
import re
import subprocess
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from vidgan.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".gif")
_TV_EXTS = (".png", ".jpg", ".jpeg", ".webp")

# torchvision >= 0.29 announces (on every call) that its image codecs will move to torchcodec;
# they remain the fastest decoders measured here, and PIL takes over where torchvision.io is missing.
try:
    from torchvision.io import ImageReadMode as _Mode, decode_image as _tv_decode
except ImportError:  # pragma: no cover - torchvision without image codecs
    _tv_decode = None


def natural_key(name):
    """Sort key that orders digit runs by value: frame_2 < frame_10 (case-insensitive)."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


# ----------------------------------------------------------------------------- images
def _to_rgb8_chw(img):
    """[C, H, W] uint8/uint16 with C in {1, 2, 3, 4} -> uint8 [3, H, W]."""
    if img.dtype != torch.uint8:  # 16-bit PNG: round v / 257 (65535 -> 255, exact on k * 257)
        img = ((img.to(torch.int32) + 128) // 257).to(torch.uint8)
    c = img.shape[0]
    if c in (1, 2):
        img = img[:1].expand(3, -1, -1)
    elif c == 4:
        img = img[:3]
    return img


def decode_image(path):
    """One image file -> uint8 tensor [H, W, 3]. Raises DataError naming the file if unreadable."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in _TV_EXTS and _tv_decode is not None:
            with open(path, "rb") as fh:
                data = torch.frombuffer(bytearray(fh.read()), dtype=torch.uint8)
            if data.numel() == 0:
                raise ValueError("the file is empty")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                img = _tv_decode(data, mode=_Mode.RGB)  # [3, H, W] uint8, or uint16 for 16-bit PNG
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit gray: scale to 8 bits
                    arr = (np.asarray(im, dtype=np.int64).clip(0, 65535) + 128) // 257
                    img = torch.from_numpy(arr.astype(np.uint8))[None]
                else:
                    img = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)
    except (OSError, RuntimeError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot decode image {path} ({_short(exc)}); delete or replace the file.") from None
    return _to_rgb8_chw(img).permute(1, 2, 0).contiguous()


def decode_frames(paths):
    """Image files of one video -> uint8 [T, H, W, 3]; all frames must share one size."""
    frames = [decode_image(p) for p in paths]
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) > 1:
        first = frames[0].shape
        bad = next(p for p, f in zip(paths, frames) if f.shape != first)
        raise DataError(f"frames of mixed sizes in {os.path.dirname(os.fspath(paths[0]))}: "
                        f"{os.path.basename(os.fspath(paths[0]))} is {first[1]}x{first[0]} but "
                        f"{os.path.basename(os.fspath(bad))} is not; resize them to one size.")
    return torch.stack(frames)


# ----------------------------------------------------------------------------- videos
def ffmpeg_exe():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_PASSTHROUGH = []


def _passthrough():
    """ffmpeg options that output every decoded frame once (no duplication to a constant rate)."""
    if not _PASSTHROUGH:
        try:
            out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-h", "full"], capture_output=True,
                                 timeout=30).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            out = ""
        _PASSTHROUGH.extend(["-fps_mode", "passthrough"] if "-fps_mode" in out or not out else ["-vsync", "0"])
    return list(_PASSTHROUGH)


def _short(exc):
    text = str(exc).strip().splitlines()
    text = text[-1] if text else type(exc).__name__
    return text[:200]


def probe_video(path):
    """(frames, width, height, fps) of a video file by a stream copy through ffmpeg (no decoding).

    Raises DataError naming the file when ffmpeg cannot read it.
    """
    path = os.fspath(path)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    try:
        res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    except subprocess.TimeoutExpired:
        raise DataError(f"reading {path} with ffmpeg took over 120 s; check the file.") from None
    err = res.stderr.decode("utf-8", "replace")
    m = re.search(r"Stream #\S+.*?Video: .*?(\d{2,5})x(\d{2,5})", err)
    if res.returncode != 0 or m is None:
        lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
        why = lines[-1][:200] if lines else f"ffmpeg exit code {res.returncode}"
        exc = DataError(f"cannot read video {path} ({why}); delete or replace the file.")
        exc.reason = f"unreadable video ({why})"
        raise exc
    width, height = int(m.group(1)), int(m.group(2))
    counts = re.findall(r"frame=\s*(\d+)", err)
    frames = int(counts[-1]) if counts else 0
    # The rate comes from the stream line only: progress lines ("frame=  300 fps=...") would match too.
    end = err.find("\n", m.start())
    stream = err[m.start(): end if end >= 0 else len(err)]
    fps_m = re.search(r"(\d+(?:\.\d+)?) fps", stream) or re.search(r"(\d+(?:\.\d+)?) tbr", stream)
    fps = float(fps_m.group(1)) if fps_m else 25.0
    return frames, width, height, fps


def decode_video(path, start=0, count=None, fps=None):
    """Frames [start, start + count) of a video file -> uint8 numpy [T, H, W, 3].

    start > 0 seeks by time (start / fps) before decoding, so a clip from a long video does not
    decode what comes before it. Raises DataError naming the file if ffmpeg fails or returns
    no frame.
    """
    import imageio_ffmpeg

    path = os.fspath(path)
    input_params = ["-nostdin"]
    if start > 0:
        if not fps:
            raise ValueError("decode_video needs fps to seek")
        # Seek half a frame early so rounding of timestamps never skips the wanted frame.
        input_params += ["-ss", f"{max(0.0, (start - 0.5) / fps):.6f}"]
    output_params = _passthrough() + (["-frames:v", str(count)] if count is not None else [])
    frames = []
    try:
        gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24", input_params=input_params,
                                         output_params=output_params)
        meta = next(gen)
        w, h = meta["size"]
        for buf in gen:
            frames.append(np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3))
            if count is not None and len(frames) >= count:
                break
        gen.close()
    except (OSError, RuntimeError, StopIteration, KeyError) as exc:
        raise DataError(f"cannot decode video {path} ({_short(exc)}); delete or replace the file.") from None
    if not frames:
        raise DataError(f"video {path} gave no frames; delete or replace the file.")
    return np.stack(frames)


def iter_video(path, chunk=64):
    """Stream a whole video file as uint8 numpy chunks [<=chunk, H, W, 3] (bounded memory)."""
    import imageio_ffmpeg

    path = os.fspath(path)
    got = 0
    try:
        gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24", input_params=["-nostdin"],
                                         output_params=_passthrough())
        meta = next(gen)
        w, h = meta["size"]
        buf = []
        for raw in gen:
            buf.append(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3))
            if len(buf) == chunk:
                got += len(buf)
                yield np.stack(buf)
                buf = []
        if buf:
            got += len(buf)
            yield np.stack(buf)
    except (OSError, RuntimeError, StopIteration, KeyError) as exc:
        raise DataError(f"cannot decode video {path} ({_short(exc)}); delete or replace the file.") from None
    if got == 0:
        raise DataError(f"video {path} gave no frames; delete or replace the file.")


def read_video(path):
    """A whole video file or a frame folder (natural-sorted) -> uint8 numpy [T, H, W, 3]."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path} does not exist; pass a video file or a folder of frames.")
    if os.path.isdir(path):
        names = sorted((n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTS) and not n.startswith(".")),
                       key=natural_key)
        if not names:
            raise DataError(f"no image frames ({', '.join(IMAGE_EXTS)}) in {path}; pass a folder of frames.")
        return decode_frames([os.path.join(path, n) for n in names]).numpy()
    if path.lower().endswith(VIDEO_EXTS):
        return decode_video(path)
    raise DataError(f"{path} is neither a video file ({', '.join(VIDEO_EXTS)}) nor a folder of frames.")


# ----------------------------------------------------------------------------- resizing
def prepare_frames(frames, resolution, keep_aspect=False):
    """Resize a clip to a square: uint8 [T, H, W, 3] (tensor or array) -> uint8 tensor [T, R, R, 3].

    Default: centre-crop the short side to a square, then resize (bilinear, antialiased) to R.
    keep_aspect: resize the long side to R and pad the short side with black, centred.
    All frames go through one interpolate call. The packed format stores exactly this output.
    """
    x = torch.as_tensor(frames)
    t, h, w, _ = x.shape
    r = int(resolution)
    if h == r and w == r:
        return x.contiguous()
    x = x.permute(0, 3, 1, 2)  # [T, 3, H, W]
    if not keep_aspect:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[:, :, top:top + s, left:left + s]
        out_h = out_w = r
    else:
        scale = r / max(h, w)
        out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (x.shape[2], x.shape[3]) != (out_h, out_w):
        y = F.interpolate(x.float(), size=(out_h, out_w), mode="bilinear", align_corners=False,
                          antialias=True)
        x = y.round_().clamp_(0, 255).to(torch.uint8)
    if keep_aspect and (out_h, out_w) != (r, r):
        pt, pl = (r - out_h) // 2, (r - out_w) // 2
        x = F.pad(x, (pl, r - out_w - pl, pt, r - out_h - pt))
    return x.permute(0, 2, 3, 1).contiguous()  # [T, R, R, 3]


def to_model_range(clip, hflip=False):
    """uint8 [T, H, W, 3] -> float32 [3, T, H, W] in [-1, 1] (or a batch [N, T, H, W, 3] -> [N, 3, T, H, W]).

    hflip flips left-right. Done in numpy: single-threaded and fast on such small arrays, where
    torch's intra-op threads only add contention when the trainer already uses every core.
    """
    x = np.asarray(clip)
    x = np.moveaxis(x, -1, -4)  # channels before time: a view
    if hflip:
        x = x[..., ::-1]
    out = np.empty(x.shape, np.float32)
    np.multiply(x, np.float32(1 / 127.5), out=out)
    out -= np.float32(1.0)
    return torch.from_numpy(out)
