"""No space left, a read-only filesystem, no permission: every writer ends with one sentence naming the
folder and the output (exit 2 from the CLI), the previous output intact and no temporary file left.

Errors are injected at the write call; where this machine lets us mount a tmpfs, a real full and a
real read-only filesystem are used too (skipped where mounting is not allowed).
"""
import errno
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

import vidgan._atomic
from vidgan.cli import main
from vidgan.errors import OutputError
from vidgan.export import ffmpeg as ffmpeg_mod, write_video


def listing(folder):
    return sorted(os.listdir(folder))


def space(folder, name):
    return f"no space left on the device holding {folder} (writing {name}); free some space or write elsewhere."


def readonly(folder, name):
    return f"{folder} is on a read-only filesystem (writing {name}); write elsewhere or remount it read-write."


def denied(folder, name):
    return (f"no permission to write in {folder} (writing {name}); write elsewhere or change the folder's "
            "permissions.")


def oserror(code, filename=None):
    return OSError(code, os.strerror(code)) if filename is None else OSError(code, os.strerror(code), filename)


def noise(t=3, size=16):
    return np.random.default_rng(0).integers(0, 256, (t, size, size, 3), dtype=np.uint8)


def frame_folders(root, videos=2, frames=3):
    for v in range(videos):
        (root / f"v{v}").mkdir(parents=True)
        for t in range(frames):
            Image.fromarray(np.full((8, 8, 3), 40 * t, np.uint8)).save(root / f"v{v}" / f"f{t}.png")
    return str(root)


def one_line(err, cmd, sentence):
    assert err == f"vidgan {cmd}: error: {sentence}\n"


# ----------------------------------------------------------------------------- injected at the write call
def test_generate_out_of_space_exits_2_and_keeps_the_old_clip(tmp_path, monkeypatch, capsys):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"old clip")
    real = ffmpeg_mod.FFmpegWriter.write

    def write(self, frame):                      # the first frame reaches ffmpeg, then the disk is full
        real(self, frame)
        raise oserror(errno.ENOSPC)

    monkeypatch.setattr(ffmpeg_mod.FFmpegWriter, "write", write)
    assert main(["generate", "--out", str(out), "--frames", "2", "--overwrite"]) == 2
    one_line(capsys.readouterr().err, "generate", space(tmp_path, "clip.mp4"))
    assert out.read_bytes() == b"old clip" and listing(tmp_path) == ["clip.mp4"]


@pytest.mark.parametrize("ext", [".mp4", ".gif", ""])
def test_write_video_on_a_read_only_filesystem(tmp_path, monkeypatch, ext):
    target = tmp_path / f"clip{ext}"
    write_video(noise(), target, fps=4)
    before = listing(target) if ext == "" else target.read_bytes()

    def refuse_close(self):                      # ffmpeg: the output's filesystem went read-only
        self.kill()
        raise oserror(errno.EROFS, self.path)

    def refuse_save(self, fp, *a, **k):          # Pillow: half a file, then the error
        if hasattr(fp, "write"):
            fp.write(b"GIF89a half")
        else:
            open(fp, "wb").write(b"half a PNG")
        raise oserror(errno.EROFS)

    monkeypatch.setattr(ffmpeg_mod.FFmpegWriter, "close", refuse_close)
    monkeypatch.setattr(Image.Image, "save", refuse_save)
    with pytest.raises(OutputError) as info:
        write_video(noise(t=4), target, fps=4)
    assert str(info.value) == readonly(tmp_path, f"clip{ext}") and info.value.reason == "readonly"
    assert (listing(target) if ext == "" else target.read_bytes()) == before
    assert listing(tmp_path) == [f"clip{ext}"]


def test_pack_without_permission_exits_2_and_keeps_the_old_pack(tmp_path, monkeypatch, capsys):
    import vidgan.data.pack as pack

    src, out = frame_folders(tmp_path / "src"), tmp_path / "data.vidpack"
    assert main(["data", "pack", src, "--out", str(out), "--resolution", "8"]) == 0
    before = out.read_bytes()
    capsys.readouterr()

    def finish(self, **info):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), self.path)

    monkeypatch.setattr(pack.PackWriter, "finish", finish)
    assert main(["data", "pack", src, "--out", str(out), "--resolution", "8", "--overwrite"]) == 2
    one_line(capsys.readouterr().err, "data", denied(tmp_path, "data.vidpack"))
    assert out.read_bytes() == before and listing(tmp_path) == ["data.vidpack", "src"]


@pytest.mark.parametrize("name, code", [("mm", errno.ENOSPC), ("mm.vidpack", errno.EDQUOT)])
def test_moving_mnist_out_of_space_exits_2_and_keeps_the_old_set(tmp_path, monkeypatch, capsys, name, code):
    import vidgan.data.pack as pack

    out = tmp_path / name
    argv = ["data", "moving-mnist", "--out", str(out), "--videos", "2", "--frames", "3", "--digits", "1",
            "--size", "32"]
    assert main(argv) == 0
    before = listing(out) if out.is_dir() else out.read_bytes()
    capsys.readouterr()

    def save(self, fp, *a, **k):
        with open(fp, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise oserror(code)

    def add(self, *a, **k):
        self._fh.write(b"half a video")
        raise oserror(code)

    monkeypatch.setattr(Image.Image, "save", save)
    monkeypatch.setattr(pack.PackWriter, "add", add)
    assert main(argv + ["--overwrite"]) == 2
    err = capsys.readouterr().err
    if code == errno.ENOSPC:
        one_line(err, "data", space(tmp_path, name))
    else:
        one_line(err, "data", f"your disk quota is used up on the device holding {tmp_path} (writing {name}); "
                              "free some space or write elsewhere.")
    assert (listing(out) if out.is_dir() else out.read_bytes()) == before and listing(tmp_path) == [name]


def _save_checkpoint(run, step):
    from vidgan.models import ClipDiscriminator, FrameDiscriminator, ModelConfig, TemporalGenerator
    from vidgan.training import state as S

    from .training.conftest import TINY_MODEL

    torch.manual_seed(step)
    cfg = ModelConfig(**TINY_MODEL)
    mods = {"G": TemporalGenerator(cfg), "Df": FrameDiscriminator(cfg), "Dc": ClipDiscriminator(cfg)}
    return S.save_checkpoint(run, step, TemporalGenerator(cfg), mods, {"step": step}, {"model": cfg.to_dict()})


def _checkpoint_files(run):
    return {p.name: sorted(f.name for f in p.iterdir()) for p in (run / "checkpoints").iterdir()}


def test_checkpoint_out_of_space_from_safetensors_names_the_step_folder(tmp_path, monkeypatch):
    import safetensors.torch

    run = tmp_path / "run"
    _save_checkpoint(run, 1)
    before = _checkpoint_files(run)

    def save_file(tensors, path, metadata=None):  # what safetensors raises, with the errno this time
        open(path, "wb").write(b"half")
        raise oserror(errno.ENOSPC)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    with pytest.raises(OutputError) as info:
        _save_checkpoint(run, 2)
    assert str(info.value) == space(run / "checkpoints", "step-00000002")
    assert _checkpoint_files(run) == before


def test_checkpoint_library_error_is_translated_only_when_the_disk_explains_it(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _save_checkpoint(run, 1)
    before = _checkpoint_files(run)

    def torch_save(obj, f, *a, **k):             # torch.save on a full disk: no errno, only this
        open(f, "wb").write(b"PK half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", torch_save)
    with pytest.raises(RuntimeError, match="unexpected pos"):    # the disk has room: the original error
        _save_checkpoint(run, 2)
    assert _checkpoint_files(run) == before
    monkeypatch.setattr(vidgan._atomic, "_FULL_BYTES", 1 << 62)  # now the disk looks full
    with pytest.raises(OutputError) as info:
        _save_checkpoint(run, 2)
    assert str(info.value) == space(run / "checkpoints", "step-00000002")
    assert isinstance(info.value.__cause__, RuntimeError) and _checkpoint_files(run) == before


def test_an_error_about_another_file_is_not_called_an_output_error(tmp_path):
    with pytest.raises(PermissionError):
        with vidgan._atomic.atomic_file(tmp_path / "out.bin"):
            raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/else/input.png")
    assert listing(tmp_path) == []


def test_creating_the_temporary_file_fails(tmp_path, monkeypatch):
    def mkstemp(*a, **k):
        raise oserror(errno.EROFS, str(tmp_path / ".x.tmp"))

    monkeypatch.setattr(vidgan._atomic.tempfile, "mkstemp", mkstemp)
    with pytest.raises(OutputError, match="read-only filesystem"):
        vidgan._atomic.atomic_write_text(tmp_path / "a.json", "{}")


# ----------------------------------------------------------------------------- real filesystems
@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs folder of that size; skips the test where mounting is not allowed."""
    mounted = []

    def mount(size):
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()[:120]}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_really_full_filesystem(tmpfs, capsys):
    fs = tmpfs("400k")
    (fs / "clip.mp4").write_bytes(b"old clip")
    with pytest.raises(OutputError) as info:              # ffmpeg runs out of space
        write_video(noise(t=60, size=128), fs / "clip.mp4")
    assert str(info.value) == space(fs, "clip.mp4") and (fs / "clip.mp4").read_bytes() == b"old clip"

    run = fs / "run"                                       # safetensors and torch.save run out of space
    _save_checkpoint(run, 1)                               # about 260 kB: fits once
    before = _checkpoint_files(run)
    with pytest.raises(OutputError) as info:
        _save_checkpoint(run, 2)
    assert str(info.value) == space(run / "checkpoints", "step-00000002") and _checkpoint_files(run) == before

    assert main(["data", "moving-mnist", "--out", str(fs / "mm.vidpack"), "--videos", "20", "--frames", "20",
                 "--digits", "1", "--size", "64"]) == 2    # 5 MB of frames
    one_line(capsys.readouterr().err, "data", space(fs, "mm.vidpack"))
    assert listing(fs) == ["clip.mp4", "run"] and listing(run / "checkpoints") == ["step-00000001"]


def test_a_really_read_only_filesystem(tmpfs, tmp_path, capsys):
    fs = tmpfs("1m")
    write_video(noise(), fs / "clip.mp4", fps=4)
    before = (fs / "clip.mp4").read_bytes()
    res = subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot remount read-only: {res.stderr.strip()[:120]}")
    with pytest.raises(OutputError) as info:
        write_video(noise(), fs / "clip.mp4", fps=4)
    assert str(info.value) == readonly(fs, "clip.mp4") and (fs / "clip.mp4").read_bytes() == before
    assert main(["data", "pack", frame_folders(tmp_path / "src"), "--out", str(fs / "d.vidpack"),
                 "--resolution", "8"]) == 2
    one_line(capsys.readouterr().err, "data", readonly(fs, "d.vidpack"))
    with pytest.raises(OutputError, match="read-only filesystem"):
        with vidgan._atomic.atomic_dir(fs / "step-1"):
            pytest.fail("the body must not run")
    with pytest.raises(OutputError) as info:                # a folder to create first
        write_video(noise(), fs / "new" / "clip.mp4", fps=4)
    assert str(info.value) == readonly(fs, "new")
    assert listing(fs) == ["clip.mp4"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_a_folder_without_write_permission(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    write_video(noise(), folder / "clip.mp4", fps=4)
    before = (folder / "clip.mp4").read_bytes()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError) as info:
            write_video(noise(), folder / "clip.mp4", fps=4)
        assert str(info.value) == denied(folder, "clip.mp4")
        assert (folder / "clip.mp4").read_bytes() == before and listing(folder) == ["clip.mp4"]
    finally:
        folder.chmod(0o755)
