"""Networks.train_step (vidgan/training/step.py): what each update renders and trains on."""
import pytest
import torch

import vidgan.training.step as step_module
from vidgan.training.loop import Trainer


def quiet(*_):
    pass


def _recorded_run(tmp_path, make_cfg, monkeypatch, **fields):
    """Runs a tiny Trainer; returns (fakes rendered per step, fakes the G objective saw, the trainer)."""
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
    return rendered, judged, trainer


@pytest.mark.parametrize("accum", [1, 2])
def test_reuse_fakes_trains_g_on_the_d_updates_fakes_and_renders_once(tmp_path, make_cfg, monkeypatch, accum):
    steps = 2
    rendered, judged, _ = _recorded_run(tmp_path, make_cfg, monkeypatch, steps=steps, accum=accum, batch=2 * accum,
                                        reuse_fakes=True)
    assert len(rendered) == steps * accum                                  # no second render for the G update
    assert len(judged) == steps * accum
    for i in range(steps):
        d_fakes = rendered[i * accum:(i + 1) * accum]
        for d_fake, g_fake in zip(d_fakes, judged[i * accum:(i + 1) * accum]):
            assert g_fake is d_fake and g_fake.grad_fn is not None       # augment_p 0: the same tensor


def test_without_reuse_the_g_update_renders_new_fakes(tmp_path, make_cfg, monkeypatch):
    rendered, judged, _ = _recorded_run(tmp_path, make_cfg, monkeypatch, steps=2)
    assert len(rendered) == 4                                              # D and G render once each per step
    assert all(not r.requires_grad for r in rendered[0::2])              # the D update's: no graph
    assert judged[0] is rendered[1] and not torch.equal(rendered[0], rendered[1])


def test_reuse_fakes_leaves_the_d_update_as_it_was(tmp_path, make_cfg, monkeypatch):
    """The D update of the first step sees the same fakes either way (same step seed), so Df and Dc match."""
    _, _, plain = _recorded_run(tmp_path / "a", make_cfg, monkeypatch, steps=1)
    _, _, reused = _recorded_run(tmp_path / "b", make_cfg, monkeypatch, steps=1, reuse_fakes=True)
    for name in ("Df", "Dc"):
        a, b = plain.nets.modules[name].state_dict(), reused.nets.modules[name].state_dict()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=f"{name}.{k}")


def test_reuse_fakes_keeps_no_graph_while_g_waits(tmp_path, make_cfg, monkeypatch):
    """During d_warmup there is no G update, so the D update's fakes are rendered without a graph."""
    rendered, judged, _ = _recorded_run(tmp_path, make_cfg, monkeypatch, steps=2, d_warmup=2, reuse_fakes=True)
    assert len(rendered) == 2 and not judged
    assert all(not r.requires_grad for r in rendered)
