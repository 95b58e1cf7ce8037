"""vidgan train --compile: torch.compile'd G synthesis and discriminators train like the eager ones, a resumed
compiled run repeats an uninterrupted one bit for bit, and the compilation time is reported once."""
import json
import shutil

import pytest
import torch

from vidgan.training import resolve_config, train

pytestmark = pytest.mark.slow          # compiling the tiny model takes about a minute on a 2-core CPU


def _stats(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def _weights(run, step):
    from safetensors.torch import load_file

    ck = run / "checkpoints" / f"step-{step:08d}"
    return {p.name: load_file(str(p)) for p in sorted(ck.glob("*.safetensors"))}


def test_compiled_training_matches_eager_and_resumes_exactly(tmp_path, make_cfg):
    said = []
    # r1_every=2: steps 0 and 2 run the discriminators eager (R1), steps 1 and 3 compiled.
    c = tmp_path / "c"
    train(make_cfg(c, steps=4, ckpt_every=2, keep=2, compile=True), log=said.append)
    compiled = [m for m in said if m.startswith("torch.compile:")]
    assert len(compiled) == 1 and "compilation included" in compiled[0]
    train(make_cfg(tmp_path / "e", steps=4), log=lambda m: None)
    for a, b in zip(_stats(c), _stats(tmp_path / "e")):
        for key in ("loss_D", "loss_G"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), (a["step"], key)   # the same maths

    r = tmp_path / "r"                      # the same run, stopped at step 2 and resumed (compiled again)
    shutil.copytree(c, r)
    shutil.rmtree(r / "checkpoints" / "step-00000004")
    assert train(resolve_config(str(r)), log=lambda m: None)["start_step"] == 2
    a, b = _weights(c, 4), _weights(r, 4)
    assert a.keys() == b.keys() and a
    for name in a:
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}:{k} differs after a compiled resume"
