import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from vidgan.checkpoint import save_model
from vidgan.export import write_image
from vidgan.models import ModelConfig, TemporalGenerator

from tests.test_generate import TINY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def motion_check():
    spec = importlib.util.spec_from_file_location("motion_check", os.path.join(REPO, "examples", "motion_check.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_clip_stats_tell_still_from_moving(motion_check):
    still = torch.rand(4, 1, 8, 8, 3).expand(4, 6, 8, 8, 3)
    s = motion_check.clip_stats(still)
    assert s["motion"] == 0 and s["drift"] == 0 and s["spread"] > 0.1
    moving = torch.zeros(2, 6, 8, 8, 3)
    for t in range(6):
        moving[:, t, :, t] = 1.0                                  # a bright column sweeping right
    m = motion_check.clip_stats(moving)
    assert m["motion"] == pytest.approx(2 * 8 * 3 / (8 * 8 * 3), abs=1e-4)  # two columns change per step
    assert m["spread"] == 0                                       # both clips start the same


def test_motion_check_runs_on_a_model_and_a_frame_folder(motion_check, tmp_path, capsys):
    torch.manual_seed(0)
    save_model(tmp_path / "model", TemporalGenerator(ModelConfig(**TINY)))
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        write_image(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), str(folder / f"f{i}.png"))
    sheet = tmp_path / "sheet.png"
    assert motion_check.main(["--checkpoint", str(tmp_path / "model"), "--data", str(folder), "--num", "4",
                              "--sheet", str(sheet)]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert out["frames"] == 4 and out["num"] == 4
    assert out["data"]["motion"] > 0.1                            # independent noise frames (resized)
    assert 0 <= out["model"]["motion"] < 1 and sheet.exists()
