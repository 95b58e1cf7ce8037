"""Property-based agreement of the compiled ops with the reference (hypothesis)."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ops.conftest import out_hw, rand
from vidgan.ops import fused_upsample, reference, upfirdn2d


@st.composite
def configs(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    up = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    down = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    taps = draw(st.integers(1, 7))
    separable = draw(st.booleans())
    f_shape = (taps,) if separable else (taps, draw(st.integers(1, 7)))
    pad = tuple(draw(st.integers(-3, 5)) for _ in range(4))
    return dict(shape=shape, up=up, down=down, f_shape=f_shape, pad=pad, flip=draw(st.booleans()),
                gain=draw(st.floats(0.25, 4.0)), seed=draw(st.integers(0, 2**16)),
                channels_last=draw(st.booleans()))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(configs())
def test_upfirdn2d_agrees_with_reference(cfg):
    x = rand(*cfg["shape"], seed=cfg["seed"])
    if cfg["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    f = rand(*cfg["f_shape"], seed=cfg["seed"] + 1)
    oh, ow = out_hw(x, f, cfg["up"], cfg["down"], cfg["pad"])
    if oh < 1 or ow < 1:
        return  # rejected by the argument checks (tested elsewhere)
    kw = dict(up=cfg["up"], down=cfg["down"], padding=cfg["pad"], flip_filter=cfg["flip"], gain=cfg["gain"])
    ref = reference.upfirdn2d(x, f, **kw)
    got = upfirdn2d(x, f, impl="ext", **kw)
    assert got.shape == ref.shape == (*cfg["shape"][:2], oh, ow)
    assert torch.allclose(got, ref, atol=1e-5 * max(1.0, float(ref.abs().max())), rtol=1e-5)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(configs(), st.sampled_from(["lrelu", "relu", "linear"]), st.one_of(st.none(), st.floats(0.0, 2.0)),
       st.floats(0.0, 0.5), st.floats(0.1, 3.0))
def test_fused_upsample_agrees_with_reference(cfg, act, clamp, alpha, act_gain):
    x = rand(*cfg["shape"], seed=cfg["seed"])
    b = rand(cfg["shape"][1], seed=cfg["seed"] + 2)
    f = rand(*cfg["f_shape"], seed=cfg["seed"] + 1)
    if min(out_hw(x, f, cfg["up"], 1, cfg["pad"])) < 1:
        return
    kw = dict(up=cfg["up"], padding=cfg["pad"], flip_filter=cfg["flip"], gain=cfg["gain"], act=act, alpha=alpha,
              act_gain=act_gain, clamp=clamp)
    ref = reference.fused_upsample(x, f, b, **kw)
    got = fused_upsample(x, f, b, impl="ext", **kw)
    assert torch.allclose(got, ref, atol=1e-5 * max(1.0, float(ref.abs().max())), rtol=1e-5)
