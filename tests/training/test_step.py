"""Networks.train_step (vidgan/training/step.py): what each update renders and trains on."""
import torch

import vidgan.training.step as step_module
from vidgan.training.loop import Trainer


def quiet(*_):
    pass


def _recorded_run(tmp_path, make_cfg, monkeypatch, **fields):
    """Runs a tiny Trainer; returns (the fakes rendered, in order; the fakes the G objective saw)."""
    trainer = Trainer(make_cfg(tmp_path / "run", sample_every=0, ckpt_every=0, **fields), log=quiet)
    rendered, judged, fake = [], [], trainer.nets.fake

    def recording_fake(n):
        out = fake(n)
        rendered.append(out)
        return out

    def recording_objective(cfg, discs, fake_clips, acc, autocast):
        judged.append(fake_clips)
        return objective(cfg, discs, fake_clips, acc, autocast)

    objective = step_module.generator_objective
    monkeypatch.setattr(trainer.nets, "fake", recording_fake)
    monkeypatch.setattr(step_module, "generator_objective", recording_objective)
    trainer.run()
    trainer.close()
    return rendered, judged


def test_the_g_update_renders_new_fakes(tmp_path, make_cfg, monkeypatch):
    rendered, judged = _recorded_run(tmp_path, make_cfg, monkeypatch, steps=2)
    assert len(rendered) == 4                                              # D and G render once each per step
    assert all(not r.requires_grad for r in rendered[0::2])              # the D update's: no graph
    assert judged[0] is rendered[1] and not torch.equal(rendered[0], rendered[1])
