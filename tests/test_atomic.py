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


# ----------------------------------------------------------------------------- temporaries left by a kill -9
def _dead_pid():
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()                                   # reaped: no process has this PID now
    return proc.pid


def _temp(folder, name, pid, suffix="", host=None, directory=False):
    path = folder / f".{name}.tmp-{pid}-{host or vidgan._atomic._HOST}-abcd1234{suffix}"
    if directory:
        path.mkdir()
        (path / "frame_000000.png").write_bytes(b"half")
    else:
        path.write_bytes(b"half")
    return path.name


def test_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    import time

    dead = _dead_pid()
    _temp(tmp_path, "clip.mp4", dead, ".mp4")                          # dead writers: a file and a folder
    _temp(tmp_path, "frames", dead, directory=True)
    stale = tmp_path / ".old.mp4.tmp-qwer5678.mp4"                      # an older vidgan's, 2 hours old
    stale.write_text("x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    kept = {_temp(tmp_path, "clip.mp4", os.getpid(), ".mp4"),          # a live writer (this process)
            _temp(tmp_path, "other.mp4", dead, ".mp4", host="ffffff")}  # another host's: only by age
    for name in (".clip.mp4.tmp-zyxw9876.mp4",                          # an older vidgan's, fresh
                 ".notes.tmp-whatever", ".hidden"):                     # not vidgan's naming
        (tmp_path / name).write_text("x")
        kept.add(name)
    atomic_write_text(tmp_path / "a.json", "{}")
    assert sorted(os.listdir(tmp_path)) == sorted(kept | {"a.json"})


def test_a_folder_swap_killed_halfway_gets_its_old_folder_back(tmp_path):
    # Killed between the two renames of _swap_in: the previous folder sits in .out.old-*/old, out is gone.
    trash = tmp_path / f".out.old-{_dead_pid()}-{vidgan._atomic._HOST}-abcd1234"
    (trash / "old").mkdir(parents=True)
    (trash / "old" / "frame_0.png").write_text("previous")
    _temp(tmp_path, "out", _dead_pid(), directory=True)                # the new one, never swapped in
    atomic_write_text(tmp_path / "b.json", "{}")
    assert sorted(os.listdir(tmp_path)) == ["b.json", "out"]
    assert (tmp_path / "out" / "frame_0.png").read_text() == "previous"


def test_two_writers_in_one_folder_do_not_break_each_other(tmp_path):
    import subprocess
    import sys

    script = ("import sys\nfrom vidgan._atomic import atomic_file\n"
              "with atomic_file(sys.argv[1]) as tmp:\n"
              "    open(tmp, 'w').write('from the other writer')\n"
              "    print('ready', flush=True)\n"
              "    sys.stdin.readline()\n")
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "other.txt")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "ready\n"
        with atomic_file(tmp_path / "mine.txt") as tmp:               # cleans the folder: spares the other
            open(tmp, "w").write("mine")
            atomic_write_text(tmp_path / "third.txt", "nested")        # and a writer in this process spares mine
        other.communicate("go\n", timeout=30)
    finally:
        if other.poll() is None:
            other.kill()
    assert other.returncode == 0
    assert sorted(os.listdir(tmp_path)) == ["mine.txt", "other.txt", "third.txt"]
    assert (tmp_path / "other.txt").read_text() == "from the other writer"


def test_the_temporary_of_a_writer_killed_with_sigkill_goes_with_the_next_write(tmp_path):
    import signal
    import subprocess
    import sys

    script = ("import sys, time\nfrom vidgan._atomic import atomic_dir\n"
              "with atomic_dir(sys.argv[1]) as tmp:\n"
              "    open(tmp + '/frame_000000.png', 'w').write('half')\n"
              "    print('ready', flush=True)\n"
              "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "frames")], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = os.listdir(tmp_path)
    assert len(left) == 1 and left[0].startswith(f".frames.tmp-{proc.pid}-")
    atomic_write_text(tmp_path / "next.json", "{}")
    assert os.listdir(tmp_path) == ["next.json"]
