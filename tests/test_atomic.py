"""vidgan._atomic: outputs appear whole or not at all, and --overwrite never deletes what it did not write."""
import os

import pytest

import vidgan._atomic
from vidgan._atomic import atomic_dir, atomic_file, atomic_write_text
from vidgan.errors import InputError


def _is_frame(name):
    return name.startswith("frame_")


def test_atomic_dir_replaces_only_a_folder_of_its_own_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame_0.png").write_text("old")
    with atomic_dir(out, overwrite=True, owned=_is_frame) as tmp:
        open(os.path.join(tmp, "frame_1.png"), "w").write("new")
    assert os.listdir(out) == ["frame_1.png"]

    (out / "notes.txt").write_text("precious")
    with pytest.raises(InputError, match=r"holds files this command did not write \(e.g. 'notes.txt'\)"):
        with atomic_dir(out, overwrite=True, owned=_is_frame):
            pytest.fail("the body must not run")
    assert sorted(os.listdir(out)) == ["frame_1.png", "notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary sibling left


def test_a_file_and_a_folder_never_replace_each_other(tmp_path):
    (tmp_path / "f").write_text("precious")
    with pytest.raises(InputError, match=r"is a file, but output folder is a folder"):
        with atomic_dir(tmp_path / "f", overwrite=True):
            pytest.fail("the body must not run")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("precious")
    with pytest.raises(InputError, match=r"is a folder, but pack is a file"):
        with atomic_file(tmp_path / "d", overwrite=True, what="pack"):
            pytest.fail("the body must not run")
    assert (tmp_path / "f").read_text() == "precious" and (tmp_path / "d" / "x").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["d", "f"]


def test_a_failed_body_leaves_the_old_output(tmp_path):
    out = tmp_path / "out.bin"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(out, overwrite=True) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("stop")
    assert out.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_temp_file_is_a_hidden_sibling_with_the_suffix(tmp_path):
    with atomic_file(tmp_path / "clip.mp4", suffix=".mp4") as tmp:
        name = os.path.basename(tmp)
        assert name.startswith(".clip.mp4.tmp-") and name.endswith(".mp4") and os.path.isfile(tmp)
        assert os.path.dirname(tmp) == str(tmp_path)
        open(tmp, "w").write("x")
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_atomic_write_text(tmp_path):
    out = tmp_path / "a.json"
    atomic_write_text(out, "one\n")
    atomic_write_text(out, "two\n")  # replaces by default
    assert out.read_text() == "two\n"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(InputError, match="config .* already exists"):
        atomic_write_text(out, "three\n", overwrite=False, what="config")
    with pytest.raises(InputError, match="does not exist"):
        atomic_write_text(tmp_path / "missing" / "a.json", "x")
    assert out.read_text() == "two\n" and sorted(os.listdir(tmp_path)) == ["a.json"]


def test_a_failed_folder_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "frame_0.png").write_text("old")
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # moving the new folder in
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(vidgan._atomic.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out, overwrite=True) as tmp:
            open(os.path.join(tmp, "frame_1.png"), "w").write("new")
    assert os.listdir(out) == ["frame_0.png"] and sorted(os.listdir(tmp_path)) == ["out"]
