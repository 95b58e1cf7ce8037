"""A run folder has one writer: a second `vidgan train` on it is refused at once, naming the holder."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vidgan.errors import InputError
from vidgan.training.runlock import LOCK_FILE, RunLock

from .conftest import TINY_RUN, tiny_sets


def test_the_lock_is_exclusive_reentrant_and_leaves_no_empty_folder(tmp_path):
    run = tmp_path / "new"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from vidgan.training.runlock import RunLock; "
                               f"l = RunLock({str(run)!r}).__enter__(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError) as err:
            RunLock(run).__enter__()
        assert str(err.value) == (f"the run folder {run} is in use by another vidgan train (PID {holder.pid}); "
                                  "wait for it to end or stop it, or train into another folder.")
    finally:
        holder.kill()
        holder.wait()
    # The OS released the dead holder's lock; one process may take its own lock again (one per phase).
    with RunLock(tmp_path / "other") as outer, RunLock(tmp_path / "other"):
        assert outer.fd is not None and (tmp_path / "other" / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (tmp_path / "other").exists()                      # nothing was written there but the lock
    with RunLock(run):
        pass


def _argv(pack, run, steps):
    argv = [sys.executable, "-m", "vidgan", "train", "--data", pack, "--out", str(run), "--steps", str(steps),
            "--ckpt-every", "1"]
    for k, v in TINY_RUN.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    for s in tiny_sets():
        argv += ["--set", s]
    return argv


def test_a_second_training_on_the_same_folder_is_refused_and_changes_nothing(tmp_path, mm_pack):
    run = tmp_path / "run"
    first = subprocess.Popen(_argv(mm_pack, run, 100000), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.time() + 120
        while not (run / "stats.jsonl").exists() or len((run / "stats.jsonl").read_text().splitlines()) < 2:
            assert first.poll() is None and time.time() < deadline, first.stderr.read() if first.poll() else ""
            time.sleep(0.2)
        second = subprocess.run(_argv(mm_pack, run, 100000), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"vidgan train: error: the run folder {run} is in use by another vidgan "
                                         f"train (PID {first.pid}); wait for it to end or stop it, or train into "
                                         "another folder.")
    finally:
        first.send_signal(signal.SIGTERM)                       # saves a checkpoint and stops
        first.wait(timeout=120)
    assert first.returncode == 0, first.stderr.read()
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))               # one writer: no step twice


def test_a_run_folder_that_cannot_be_written_is_one_sentence(tmp_path, monkeypatch, capsys, mm_pack):
    import errno

    import vidgan.training.runlock as R
    from vidgan.cli import main

    real_open = os.open

    def read_only(path, *a, **k):
        if str(path).endswith(LOCK_FILE):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(R.os, "open", read_only)
    run = tmp_path / "run"
    assert main(["train", "--data", mm_pack, "--out", str(run), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"vidgan train: error: {run} is on a read-only filesystem (writing {LOCK_FILE}); write "
                   "elsewhere or remount it read-write.")
