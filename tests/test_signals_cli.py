"""SIGTERM (a scheduler, `kill`) during `vidgan generate` and `vidgan data moving-mnist` is handled like
Ctrl-C: the half-written output is removed, ffmpeg is stopped, and the command exits 143 with one line."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ctrl_c_default
from vidgan.cli import _sigterm_raises, Terminated


def _run_until_writing(cmd, folder, prefix, ready, sig=signal.SIGTERM, timeout=120):
    """Start `cmd`, wait until a temporary named prefix* in `folder` passes ready(path), send `sig`;
    -> (return code, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_default)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [n for n in os.listdir(folder) if n.startswith(prefix)]
            if temps and ready(os.path.join(folder, temps[0])):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def _ffmpeg_writing_into(folder):
    """ffmpeg processes (any parent: ffmpeg runs in its own session) whose command line names `folder`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"ffmpeg" in cmd and os.fsencode(str(folder)) in cmd:
            found.append(pid)
    return found


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signal_during_generate(tmp_path, sig, code, word):
    cmd = [sys.executable, "-m", "vidgan", "generate", "--out", str(tmp_path / "long.mp4"), "--frames", "2000",
           "--batch", "4", "--device", "cpu"]
    rc, err = _run_until_writing(cmd, tmp_path, ".long.mp4.tmp-", lambda p: os.path.getsize(p) > 0, sig)
    assert rc == code and err == f"vidgan generate: {word}\n"
    assert os.listdir(tmp_path) == []
    if os.path.isdir("/proc"):
        assert _ffmpeg_writing_into(tmp_path) == []


def test_sigterm_during_moving_mnist(tmp_path):
    cmd = [sys.executable, "-m", "vidgan", "data", "moving-mnist", "--out", str(tmp_path / "mm"), "--videos",
           "200000", "--frames", "4", "--digits", "1", "--size", "32"]
    rc, err = _run_until_writing(cmd, tmp_path, ".mm.tmp-", lambda p: len(os.listdir(p)) >= 3)
    assert rc == 143 and err == "vidgan data: terminated\n"
    assert os.listdir(tmp_path) == []


def test_the_handler_is_restored_and_nested_handlers_win():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with _sigterm_raises():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)                                  # the handler runs between bytecodes
    assert signal.getsignal(signal.SIGTERM) is before
    seen = []
    with _sigterm_raises():                                # a command that installs its own (vidgan train)
        old = signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        signal.signal(signal.SIGTERM, old)
    assert seen == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is before
