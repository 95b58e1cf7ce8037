"""What a run shows and leaves behind besides checkpoints (rank 0 only):

    progress bar   tqdm: step, kimg/s, losses, ETA
    stats.jsonl    one JSON object per `log_every` steps (mean losses over the interval, speed, memory)
    tb/            TensorBoard scalars, sample videos and contact sheets (when tensorboard is installed)
    samples/       step-XXXXXXXX.mp4 (grid of clips from fixed seeds) and step-XXXXXXXX.png (contact sheet)
"""
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from vidgan._atomic import output_error
from vidgan.errors import OutputError

from vidgan._atomic import atomic_write_text

STATS_FILE = "stats.jsonl"


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on CUDA; peak resident set size of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def truncate_stats(run_dir, step: int) -> None:
    """Drop stats lines written after `step` (a resumed run continues the curve from its checkpoint)."""
    path = Path(run_dir) / STATS_FILE
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except ValueError:
            continue  # a torn last line from a killed run
    atomic_write_text(path, "".join(s + "\n" for s in keep), what="stats file")


class Reporter:
    """Progress bar, stats.jsonl and TensorBoard of one run; a no-op on ranks other than 0."""

    def __init__(self, run_dir, total_steps: int, start_step: int, batch: int, device: torch.device,
                 enabled: bool = True, progress: bool = True, tensorboard: bool = True, log=print):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.batch, self.device, self.log = batch, device, log
        self.sums: Dict[str, float] = defaultdict(float)
        self.counts: Dict[str, int] = defaultdict(int)
        self.t_start = self.t_last = time.perf_counter()
        self.step_last = start_step
        self.kimg_per_s = 0.0
        self.bar = None
        self.tb = None
        self._tb_video_ok = True
        self._mp4_ok = True
        if not enabled:
            return
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                            desc="train", smoothing=0.05)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"))
            except Exception:  # noqa: BLE001 - tensorboard missing or broken: scalars still go to stats.jsonl
                self.tb = None

    def _append(self, line: str) -> None:
        """One line onto stats.jsonl; a full disk, read-only folder or missing permission is one sentence."""
        path = self.run_dir / STATS_FILE
        try:
            with open(path, "a") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            err = output_error(exc, path)
            if err is None:
                raise
            raise err from None

    def write(self, msg: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            self.log(msg)

    def add(self, values: Dict[str, float]) -> None:
        """Accumulate one step's values (each key averaged over the steps that reported it, at `flush`)."""
        for k, v in values.items():
            self.sums[k] += float(v)
            self.counts[k] += 1

    def step_done(self, step: int, values: Dict[str, float]) -> None:
        """Advance the bar and show the latest losses and a smoothed kimg/s."""
        now = time.perf_counter()
        dt, self._t_bar = now - getattr(self, "_t_bar", self.t_start), now
        rate = self.batch / max(dt, 1e-9) / 1000.0
        self._rate = rate if not hasattr(self, "_rate") else 0.9 * self._rate + 0.1 * rate
        if self.bar is None:
            return
        post = {k: f"{v:.3f}" for k, v in values.items() if k in ("loss_G", "loss_D")}
        post["kimg/s"] = f"{self._rate:.3g}"
        if getattr(self, "diversity", None) is not None:
            post["div"] = self.diversity                    # samples' diversity / the data's (collapse: ~0)
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def rewind(self, step: int) -> None:
        """The run went back to `step` (NaN recovery): move the bar and drop the interval's partial sums."""
        self.sums.clear()
        self.counts.clear()
        self.t_last, self.step_last = time.perf_counter(), step
        if self.bar is not None:
            self.bar.n = step
            self.bar.refresh()

    def flush(self, step: int, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Write the interval's means to stats.jsonl and TensorBoard; return the record."""
        now = time.perf_counter()
        steps = max(1, step - self.step_last)
        sec = (now - self.t_last) / steps
        self.kimg_per_s = self.batch * steps / max(now - self.t_last, 1e-9) / 1000.0
        rec: Dict[str, Any] = {"step": step, "kimg": round(step * self.batch / 1000.0, 4)}
        rec.update({k: v / max(self.counts[k], 1) for k, v in self.sums.items()})
        rec.update({"sec_per_step": sec, "kimg_per_s": self.kimg_per_s,
                    "peak_mem_mb": round(peak_memory_mb(self.device), 1), "time": time.time()})
        if extra:
            rec.update(extra)
        self.sums.clear()
        self.counts.clear()
        self.t_last, self.step_last = now, step
        if self.enabled:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}
            self._append(json.dumps(clean))
            if self.tb is not None:
                for k, v in rec.items():
                    if k not in ("step", "time") and isinstance(v, (int, float)) and math.isfinite(v):
                        self.tb.add_scalar(k, v, step)
                self.tb.flush()
        return rec

    def event(self, step: int, **info) -> None:
        """A one-off event line in stats.jsonl (e.g. a NaN recovery)."""
        if self.enabled:
            self._append(json.dumps(dict(step=step, **info)))

    def samples(self, step: int, clips_u8: np.ndarray, fps: float) -> Dict[str, str]:
        """Write the sample grid MP4 and contact-sheet PNG of uint8 clips [N, T, H, W, 3] (the PNG alone,
        after one note, where ffmpeg cannot be had). Grey clips [N, T, H, W, 1] are replicated to RGB first,
        so every writer (and TensorBoard) sees the same three channels."""
        from vidgan.export import contact_sheet, make_grid, write_image, write_video

        if clips_u8.shape[-1] == 1:
            clips_u8 = np.repeat(clips_u8, 3, axis=-1)
        out = self.run_dir / "samples"
        name = f"step-{step:08d}"
        sheet = contact_sheet(clips_u8[:8])                        # [H'', W'', 3]
        paths = {}
        if self._mp4_ok:
            try:
                paths["video"] = write_video(make_grid(clips_u8), str(out / f"{name}.mp4"), fps=fps)  # [T, H', W', 3]
            except OutputError:                    # a full disk ends the run (after its checkpoint), in one sentence
                raise
            except (ImportError, OSError) as exc:  # no ffmpeg here: a sample video must not end the run
                self._mp4_ok = False
                self.write(f"note: sample videos are off ({type(exc).__name__}: {exc}); the contact sheets "
                           "go on. Install imageio-ffmpeg (a vidgan dependency) to get MP4 samples.")
        paths["sheet"] = write_image(sheet, str(out / f"{name}.png"))
        if self.tb is not None:
            self.tb.add_image("samples/contact_sheet", sheet, step, dataformats="HWC")
            if self._tb_video_ok:
                try:  # needs moviepy; without it TensorBoard gets the contact sheet only
                    vid = torch.from_numpy(np.ascontiguousarray(clips_u8)).permute(0, 1, 4, 2, 3)  # [N, T, 3, H, W]
                    self.tb.add_video("samples/clips", vid, step, fps=int(round(fps)))
                except Exception as exc:  # noqa: BLE001
                    self._tb_video_ok = False
                    self.write(f"note: TensorBoard videos are off ({type(exc).__name__}: {exc}); "
                               "install moviepy to get them.")
            self.tb.flush()
        return paths

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
