"""Ctrl-C / SIGTERM sent to the whole process group (a terminal, a cluster scheduler) while data
loader workers run: the run must stop with a checkpoint, not crash on a dead worker."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import tiny_sets


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_group_signal_with_workers_saves_and_exits_cleanly(tmp_path, mm_pack, sig):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "vidgan", "train", "--data", mm_pack, "--out", str(run), "--steps", "100000",
           "--batch", "2", "--workers", "1", "--ckpt-every", "0", "--sample-every", "0",
           "--set", "log_every=1", "--set", "progress=false", "--set", "tensorboard=false"]
    for a in tiny_sets():
        cmd += ["--set", a]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    stats = run / "stats.jsonl"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if stats.exists() and any('"loss_D"' in line for line in stats.read_text().splitlines()):
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        os.killpg(proc.pid, sig)                       # the whole group: main process and its worker
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-2000:]
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts and ckpts[-1].startswith("step-")
    step = int(ckpts[-1].split("-")[1])
    logged = [json.loads(line)["step"] for line in stats.read_text().splitlines() if '"loss_D"' in line]
    assert step >= 1 and step == logged[-1]            # the checkpoint is of the last finished step
