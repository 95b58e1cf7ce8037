"""The objectives (vidgan/training/objectives.py): model.content_classes charges D and G the class cross-entropy."""
import json

import torch
from safetensors.torch import load_file

from vidgan.models import ClipDiscriminator, FrameDiscriminator
from vidgan.training import train
from vidgan.training.objectives import discriminator_objective, generator_objective


def _setup(tmp_path, make_cfg, k):
    cfg = make_cfg(tmp_path / "run", sets=[f"model.content_classes={k}"] if k else [])
    torch.manual_seed(0)
    discs = [("f", FrameDiscriminator(cfg.model), 0.5), ("c", ClipDiscriminator(cfg.model), 1.0)]
    return cfg, discs


def _objectives(cfg, discs, real, fake, classes, seed=1):
    logs = {}

    def acc(key, v):
        logs[key] = logs.get(key, 0) + float(v)

    torch.manual_seed(seed)
    d = discriminator_objective(cfg, discs, real, fake, False, acc, torch.no_grad, classes)
    torch.manual_seed(seed)
    g = generator_objective(cfg, discs, fake, acc, torch.no_grad, classes)
    return float(d), float(g), logs


def test_content_classes_add_the_frame_ds_cross_entropy_to_both_players(tmp_path, make_cfg):
    cfg, discs = _setup(tmp_path, make_cfg, 3)
    real, fake = torch.randn(4, 1, 4, 32, 32), torch.randn(4, 1, 4, 32, 32)
    classes = torch.tensor([0, 2, 1, 2])
    d, g, logs = _objectives(cfg, discs, real, fake, classes)
    d0, g0, plain = _objectives(cfg, discs, real, fake, None)
    # The frames judged are the same draws in both calls, so the GAN terms agree and the difference is the CE.
    assert plain.keys() == {"loss_Df", "loss_Dc", "real_sign", "loss_Gf", "loss_Gc"}
    assert {k: logs[k] for k in plain} == plain
    torch.manual_seed(1)
    discs[0][1](real)                                             # the D objective judged the reals first
    with torch.no_grad():
        _, guess = discs[0][1](fake, with_info=True)             # [4, 2, 3]
    p = guess.softmax(dim=2)[torch.arange(4)[:, None], torch.arange(2)[None], classes[:, None]]   # [4, 2]
    err = float(-p.log().mean())                                  # cross-entropy, by hand
    assert abs(logs["info_D"] - err) < 1e-5 and err > 0.1
    assert abs((d - d0) - 0.5 * err) < 1e-5                       # weighted like the frame D's other terms
    assert abs((g - g0) - 0.5 * logs["info_G"]) < 1e-5 and logs["info_G"] > 0.1


def test_without_content_classes_the_classes_change_nothing(tmp_path, make_cfg):
    cfg, discs = _setup(tmp_path, make_cfg, 0)
    real, fake = torch.randn(2, 1, 4, 32, 32), torch.randn(2, 1, 4, 32, 32)
    assert _objectives(cfg, discs, real, fake, torch.tensor([0, 1])) == _objectives(cfg, discs, real, fake, None)


def test_a_run_with_content_classes_logs_the_cross_entropy_and_saves_the_head(tmp_path, make_cfg):
    cfg = make_cfg(tmp_path / "run", sets=["model.content_classes=2"], steps=3, ckpt_every=3)
    train(cfg, log=lambda msg: None)
    stats = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3]
    assert all(0 < s["info_D"] < 100 and 0 < s["info_G"] < 100 for s in stats)
    saved = load_file(str(tmp_path / "run" / "checkpoints" / "step-00000003" / "Df.safetensors"))
    assert saved["info.1.weight"].shape[0] == 2
