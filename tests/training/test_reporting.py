"""Run outputs: stats.jsonl records, truncation on resume, TensorBoard calls, sample files."""
import json
import sys
import types

import numpy as np
import torch

from vidgan.training.reporting import Reporter, truncate_stats


class FakeWriter:
    calls = []

    def __init__(self, logdir):
        FakeWriter.calls.append(("init", logdir))

    def add_scalar(self, tag, value, step):
        FakeWriter.calls.append(("scalar", tag, value, step))

    def add_image(self, tag, img, step, dataformats="CHW"):
        FakeWriter.calls.append(("image", tag, tuple(img.shape), dataformats))

    def add_video(self, tag, vid, step, fps=4):
        FakeWriter.calls.append(("video", tag, tuple(vid.shape), fps))

    def flush(self):
        pass

    def close(self):
        FakeWriter.calls.append(("close",))


def test_stats_tensorboard_and_samples(tmp_path, monkeypatch):
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    FakeWriter.calls.clear()
    rep = Reporter(tmp_path, total_steps=10, start_step=0, batch=4, device=torch.device("cpu"), progress=True)
    rep.add({"loss_D": 1.0, "loss_G": 2.0, "r1_f": 0.5})
    rep.step_done(1, {"loss_D": 1.0, "loss_G": 2.0})
    rep.add({"loss_D": 3.0, "loss_G": 4.0})
    rep.step_done(2, {"loss_D": 3.0, "loss_G": 4.0})
    rec = rep.flush(2, {"lr_G": 0.002})
    assert rec["loss_D"] == 2.0 and rec["loss_G"] == 3.0 and rec["r1_f"] == 0.5       # r1 only on its steps
    assert rec["kimg"] == 0.008 and rec["kimg_per_s"] > 0 and rec["peak_mem_mb"] > 0
    line = json.loads((tmp_path / "stats.jsonl").read_text())
    assert line["step"] == 2 and line["lr_G"] == 0.002
    scalars = {c[1]: c[2] for c in FakeWriter.calls if c[0] == "scalar"}
    assert scalars["loss_D"] == 2.0 and "time" not in scalars and "step" not in scalars

    clips = np.random.default_rng(0).integers(0, 256, (4, 6, 16, 16, 3), dtype=np.uint8)
    paths = rep.samples(2, clips, fps=8)
    assert paths["video"].endswith("samples/step-00000002.mp4") and paths["sheet"].endswith("step-00000002.png")
    from PIL import Image

    sheet = np.asarray(Image.open(paths["sheet"]))
    assert sheet.shape[0] > 4 * 16 and sheet.shape[1] > 6 * 16             # 4 rows of 6 frames
    assert ("video", "samples/clips", (4, 6, 3, 16, 16), 8) in FakeWriter.calls
    assert any(c[0] == "image" and c[3] == "HWC" for c in FakeWriter.calls)
    rep.close()
    assert FakeWriter.calls[-1] == ("close",)


def test_samples_without_ffmpeg_keep_the_run_going(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)      # `import imageio_ffmpeg` raises ImportError
    notes = []
    rep = Reporter(tmp_path, total_steps=10, start_step=0, batch=4, device=torch.device("cpu"), progress=False,
                   tensorboard=False, log=notes.append)
    clips = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    for step in (2, 4):
        paths = rep.samples(step, clips, fps=8)
        assert "video" not in paths and (tmp_path / "samples" / f"step-{step:08d}.png").is_file()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-00000002.png", "step-00000004.png"]
    assert len(notes) == 1 and "sample videos are off" in notes[0] and "imageio-ffmpeg" in notes[0]
    rep.close()


def test_truncate_drops_lines_after_the_checkpoint(tmp_path):
    lines = [{"step": s, "loss_D": 1.0} for s in (1, 2, 3, 4)] + [{"step": 3, "event": "nan"}]
    (tmp_path / "stats.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"step": 5, "lo')
    truncate_stats(tmp_path, 3)
    kept = [json.loads(s) for s in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [k["step"] for k in kept] == [1, 2, 3, 3]
