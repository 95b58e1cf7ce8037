import pytest
import torch

from vidgan.errors import InputError
from vidgan.models import TemporalGenerator

from .conftest import tiny_config


def gen(seed):
    return torch.Generator().manual_seed(seed)


def build(motion="continuous", **kw):
    torch.manual_seed(0)
    return TemporalGenerator(tiny_config(motion=motion, **kw)).eval()


@pytest.mark.parametrize("motion", ["continuous", "gru"])
@pytest.mark.parametrize("resolution", [32, 64])
def test_output_shape_and_range_of_values(motion, resolution):
    G = build(motion, resolution=resolution)
    z, m = G.sample_content(2, gen(1)), G.sample_motion(2, 5, gen(2))
    assert m.shape[0] == 2
    with torch.no_grad():
        codes = G.motion_trajectory(m, 5)
        video = G(z, m, frames=5)
    assert codes.shape == (2, 5, G.cfg.motion_code_dim)
    assert video.shape == (2, 3, 5, resolution, resolution)
    assert torch.isfinite(video).all()
    with torch.no_grad():
        assert G(z, G.sample_motion(2, None, gen(2))).shape[2] == G.cfg.frames


@pytest.mark.parametrize("motion", ["continuous", "gru"])
def test_long_renders_stay_bounded(motion):
    # Frames far beyond the training length keep the scale of the first frames (no drift).
    G = build(motion)
    z, m = G.sample_content(3, gen(3)), G.sample_motion(3, 400, gen(4))
    with torch.no_grad():
        codes = G.motion_trajectory(m, 400)
        early = G.synthesize(z, codes[:, 2:10])
        late = G.synthesize(z, codes[:, 392:400])
    assert torch.isfinite(codes).all() and torch.isfinite(late).all()
    ratio_codes = codes[:, 392:].std() / codes[:, 2:10].std()
    ratio_frames = late.std() / early.std()
    assert 0.5 < float(ratio_codes) < 2.0
    assert 0.5 < float(ratio_frames) < 2.0


@pytest.mark.parametrize("motion", ["continuous", "gru"])
def test_chunked_synthesis_equals_full(motion):
    G = build(motion)
    z, m = G.sample_content(2, gen(5)), G.sample_motion(2, 9, gen(6))
    with torch.no_grad():
        codes = G.motion_trajectory(m, 9)
        full = G.synthesize(z, codes)
        parts = torch.cat([G.synthesize(z, codes[:, a:a + 4]) for a in range(0, 9, 4)], dim=2)
    assert torch.equal(full, parts)


def test_same_inputs_same_output_and_seeds_control_content_and_motion():
    G = build()
    z1, z2 = G.sample_content(1, gen(1)), G.sample_content(1, gen(2))
    m1, m2 = G.sample_motion(1, 6, gen(11)), G.sample_motion(1, 6, gen(12))
    assert torch.equal(z1, G.sample_content(1, gen(1)))
    with torch.no_grad():
        a = G(z1, m1, frames=6)
        assert torch.equal(a, G(z1, m1, frames=6))
        new_motion, new_content = G(z1, m2, frames=6), G(z2, m1, frames=6)
        # Motion codes depend on the motion noise only.
        assert torch.equal(G.motion_trajectory(m1, 6), G.motion_trajectory(m1.clone(), 6))
    assert not torch.allclose(a, new_motion)
    assert not torch.allclose(a, new_content)
    # New motion changes frame-to-frame change, new content changes the mean picture more than motion does.
    d_content = (a.mean(2) - new_content.mean(2)).abs().mean()
    d_motion = (a.mean(2) - new_motion.mean(2)).abs().mean()
    assert d_content > d_motion


def test_truncation_zero_gives_the_same_content_for_every_seed():
    G = build()
    G.w_avg.normal_()
    m = G.sample_motion(1, 4, gen(9))
    with torch.no_grad():
        outs = [G(G.sample_content(1, gen(s)), m, truncation=0.0) for s in range(3)]
        half = G(G.sample_content(1, gen(0)), m, truncation=0.5)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    assert not torch.equal(half, outs[0])


def test_w_avg_tracks_in_training_mode_only():
    G = build()
    z, m = G.sample_content(4, gen(1)), G.sample_motion(4, 4, gen(2))
    with torch.no_grad():
        G.eval()(z, m)
        assert torch.count_nonzero(G.w_avg) == 0
        G.train()(z, m)
    expected = G.mapping(z).mean(0) * (1 - G.cfg.w_avg_beta)
    assert torch.allclose(G.w_avg, expected, atol=1e-6)


@pytest.mark.parametrize("motion", ["continuous", "gru"])
def test_fractional_frame_rate_hits_the_integer_frames(motion):
    G = build(motion)
    m = G.sample_motion(2, 11, gen(3), fps_scale=2.0)   # 11 frames at 2x cover t = 0..5
    with torch.no_grad():
        fine = G.motion_trajectory(m, 11, fps_scale=2.0)     # t = 0, 0.5, ..., 5
        coarse = G.motion_trajectory(m, 6)                   # t = 0, 1, ..., 5
        explicit = G.motion_trajectory(m, times=torch.tensor([0.25, 4.75]))
    assert torch.allclose(fine[:, ::2], coarse, atol=1e-6)
    assert not torch.allclose(fine[:, 1], coarse[:, 0])
    assert explicit.shape == (2, 2, G.cfg.motion_code_dim)


@pytest.mark.parametrize("interp", ["linear", "cubic"])
def test_continuous_motion_is_continuous_in_time(interp):
    G = build(motion_interp=interp)
    m = G.sample_motion(2, 9, gen(4))
    t = torch.linspace(0, 8, 801)
    with torch.no_grad():
        codes = G.motion_trajectory(m, times=t)
    step = (codes[:, 1:] - codes[:, :-1]).abs().max()
    assert step < 0.1 * codes.abs().max()


@pytest.mark.parametrize("motion", ["continuous", "gru"])
def test_too_short_motion_noise_is_a_clear_error(motion):
    G = build(motion)
    m = G.sample_motion(1, 4, gen(0))
    with pytest.raises(InputError, match="sample_motion"):
        G.motion_trajectory(m, 40)
    with pytest.raises(InputError, match="fps_scale"):
        G.sample_motion(1, 4, fps_scale=0)
    with pytest.raises(InputError, match="z_content"):
        G.synthesize(torch.zeros(1, 3), G.motion_trajectory(m, 4))


def test_generator_size_of_the_default_config_fits_the_budget():
    from vidgan.models import ModelConfig
    cfg = ModelConfig()
    n = sum(p.numel() for p in TemporalGenerator(cfg).parameters())
    assert n * 4 < 20e6  # float32 weights under 20 MB


@pytest.mark.parametrize("motion", ["continuous", "gru"])
def test_a_clip_renders_the_same_alone_or_in_a_batch(motion):
    G = build(motion)
    z, m = G.sample_content(3, gen(7)), G.sample_motion(3, 6, gen(8))
    with torch.no_grad():
        batch = G(z, m, frames=6)
        alone = G(z[1:2], m[1:2], frames=6)
    assert torch.equal(batch[1:2], alone)


def test_motion_to_styles_off_keeps_motion_at_the_input_only():
    G = build(motion_to_styles=False)
    assert G.motion_style is None and not any(k.startswith("motion_style") for k in G.state_dict())
    z, m = G.sample_content(2, gen(1)), G.sample_motion(2, 6, gen(2))
    codes = G.motion_trajectory(m, 6)
    seen = {}

    def grab(module, args):                       # the styles every layer is modulated with
        seen["w"] = args[0]

    hook = G.synthesis.register_forward_pre_hook(grab)
    with torch.no_grad():
        video = G.synthesize(z, codes)
        w = seen["w"].reshape(2, 6, -1)
        video2 = G.synthesize(z, G.motion_trajectory(G.sample_motion(2, 6, gen(9)), 6))
    hook.remove()
    assert torch.equal(w, w[:, :1].expand_as(w))  # styles constant over time: content only
    assert not torch.allclose(video, video2)      # yet other motion noise still moves the frames
    assert sum(p.numel() for p in G.parameters()) < sum(p.numel() for p in build().parameters())


def test_styles_per_clip_keep_the_weights_and_take_motion_at_the_input_only():
    # The same weights as a per-frame model; the style offset network sees a zero motion code, so every
    # frame of a clip has the styles w_c + offset(w_c, 0) and only the 4x4 input moves.
    G = build()
    P = TemporalGenerator(tiny_config(motion="continuous", styles_per_clip=True)).eval()
    P.load_state_dict(G.state_dict())
    z, m = G.sample_content(2, gen(1)), G.sample_motion(2, 6, gen(2))
    codes = G.motion_trajectory(m, 6)
    seen = {}
    hook = P.synthesis.register_forward_pre_hook(lambda module, args: seen.update(w=args[0], m=args[1]))
    with torch.no_grad():
        video = P.synthesize(z, codes)
        w, m_seen = seen["w"].reshape(2, 6, -1), seen["m"]
        wc = G.content_styles(z)
        expected = wc + G.motion_style(torch.cat([wc, torch.zeros(2, G.cfg.motion_code_dim)], dim=1))
        frame_styles = G.synthesize(z, codes)
        other = P.synthesize(z, G.motion_trajectory(G.sample_motion(2, 6, gen(9)), 6))
    hook.remove()
    assert torch.allclose(w, expected[:, None].expand_as(w), atol=1e-6)   # one style per clip, of the content
    assert torch.equal(m_seen, codes.reshape(12, -1))                     # the motion codes still reach the input
    assert not torch.allclose(video, other)                                # so other motion noise moves the frames
    assert not torch.allclose(video, frame_styles)                         # and the per-frame model differs
    with torch.no_grad():                                                  # chunks render the same frames
        assert torch.allclose(torch.cat([P.synthesize(z, codes[:, :2]), P.synthesize(z, codes[:, 2:])], 2), video,
                              atol=1e-6)


def test_styles_per_clip_needs_the_style_offset_network():
    with pytest.raises(InputError, match="styles_per_clip needs motion_to_styles true"):
        tiny_config(motion="continuous", styles_per_clip=True, motion_to_styles=False)


# ---------------------------------------------------------------------------------------------- motion_warp
def _set_warp(G, translation=None):
    """Make G's warp a fixed transform: the identity, or a translation (tx, ty) of every group."""
    last = G.synthesis.warp.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        if translation is not None:
            bias = last.bias.view(G.cfg.warp_groups, 2, 3)
            bias[:, 0, 2], bias[:, 1, 2] = translation[0] / last.bias_gain, translation[1] / last.bias_gain


def test_warp_features_moves_each_channel_group_by_its_own_transform():
    from vidgan.models.synthesis import warp_features
    x = torch.randn(2, 6, 8, 8)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    theta = identity.repeat(2, 3, 1, 1)                       # [B=2, K=3, 2, 3]
    assert torch.equal(warp_features(x, theta), x)            # pixel centres map onto themselves exactly
    theta[:, 1, 0, 2] = 2 / 8                                 # group 1 reads one pixel to the right
    out = warp_features(x, theta)
    assert torch.equal(out[:, :2], x[:, :2]) and torch.equal(out[:, 4:], x[:, 4:])
    assert torch.allclose(out[:, 2:4, :, :-1], x[:, 2:4, :, 1:], atol=1e-6)
    assert torch.equal(out[:, 2:4, :, -1], x[:, 2:4, :, -1])            # outside, the map's edge continues


def test_motion_warp_moves_a_content_map_rendered_once_per_clip():
    G = build(motion_warp=True, motion_to_styles=False, warp_resolution=8, warp_groups=2)
    assert not hasattr(G.synthesis, "torgb4")                 # the RGB skip starts at warp_resolution
    z, m = G.sample_content(2, gen(1)), G.sample_motion(2, 6, gen(2))
    codes = G.motion_trajectory(m, 6)
    with torch.no_grad():
        video = G.synthesize(z, codes)
        other = G.synthesize(z, G.motion_trajectory(G.sample_motion(2, 6, gen(3)), 6))
        chunks = torch.cat([G.synthesize(z, codes[:, a:a + 4]) for a in (0, 4)], dim=2)
        alone = G.synthesize(z[1:], codes[1:])
    assert video.shape == (2, 3, 6, 32, 32) and torch.isfinite(video).all()
    assert not torch.allclose(video, other)                   # motion noise moves the frames
    assert torch.equal(video, chunks) and torch.equal(video[1:], alone)
    # With the warp fixed at the identity, motion has no way in: every frame of a clip is the same.
    _set_warp(G)
    with torch.no_grad():
        still = G.synthesize(z, codes)
    assert torch.equal(still, still[:, :, :1].expand_as(still))
    assert not torch.equal(still[0], still[1])                # while the content still differs by clip
    # A translation by one pixel of the 8x8 map moves the 32x32 frame by 4 pixels (away from the borders).
    _set_warp(G, translation=(2 / 8, 0.0))
    with torch.no_grad():
        moved = G.synthesize(z, codes)
    assert torch.allclose(moved[..., 8:24, 12:16], still[..., 8:24, 16:20], atol=1e-5)
    assert not torch.allclose(moved, still, atol=1e-2)


def test_motion_warp_renders_each_group_apart_so_groups_cannot_combine_into_new_shapes():
    G = build(motion_warp=True, motion_to_styles=False, warp_resolution=8, warp_groups=2)
    z, m = G.sample_content(2, gen(1)), G.sample_motion(2, 3, gen(2))
    codes = G.motion_trajectory(m, 3)
    with torch.no_grad():
        wc = G.content_styles(z)
        w = wc[:, None].expand(2, 3, -1).reshape(6, -1)
        x = G.synthesis.content_map(wc)
        layers = G.synthesis.render_layers(w, codes.reshape(6, -1), wc, x)
        x2 = x.clone()
        x2[:, x.shape[1] // 2:] += 1.0                          # change what group 1 holds
        layers2 = G.synthesis.render_layers(w, codes.reshape(6, -1), wc, x2)
        frames = G.synthesize(z, codes).transpose(1, 2).reshape(6, 3, 32, 32)
    assert layers.shape == (6, 2, 4, 32, 32)                    # RGB and an opacity logit per group
    assert torch.equal(layers2[:, 0], layers[:, 0]) and not torch.allclose(layers2[:, 1], layers[:, 1])
    opacity = torch.softmax(layers[:, :, 3:], dim=1)
    assert torch.allclose(frames, (opacity * layers[:, :, :3]).sum(1), atol=1e-6)


def test_motion_warp_learns_the_transforms_from_the_motion_codes():
    G = build(motion_warp=True, motion_to_styles=False, warp_resolution=16).train()
    z, m = G.sample_content(2, gen(1)), G.sample_motion(2, 4, gen(2))
    G(z, m, frames=4).square().mean().backward()
    for p in G.synthesis.warp.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert G.synthesis.input_map.weight.shape[1] == G.cfg.w_dim        # the content map sees no motion code


def test_translate_warp_moves_groups_without_turning_or_scaling_them():
    G = build(motion_warp=True, motion_to_styles=False, warp_resolution=8, warp_groups=2, warp_transform="translate")
    assert G.synthesis.warp.net[-1].weight.shape[0] == 2 * 2            # a translation per group, nothing else
    z, m = G.sample_content(3, gen(1)), G.sample_motion(3, 5, gen(2))
    codes = G.motion_trajectory(m, 5)
    with torch.no_grad():
        theta = G.transforms(z, codes).reshape(15, 2, 2, 3)
        video = G.synthesize(z, codes)
    assert torch.equal(theta[..., :2], torch.eye(2).expand(15, 2, 2, 2))           # exactly no turn, scale, shear
    assert theta[..., 2].std(dim=0).min() > 0                                       # the translations do vary
    assert video.shape == (3, 3, 5, 32, 32) and torch.isfinite(video).all()
    G.train()
    G(z, m, frames=4).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.synthesis.warp.parameters())
    affine = build(motion_warp=True, motion_to_styles=False, warp_resolution=8, warp_groups=2)
    assert affine.synthesis.warp.net[-1].weight.shape[0] == 6 * 2


def test_warp_limit_bounds_the_translations_softly():
    from vidgan.models.synthesis import MotionWarp
    x = torch.randn(64, 10, generator=gen(3))
    for transform in ("translate", "affine"):
        free = MotionWarp(10, 16, 2, transform)
        bounded = MotionWarp(10, 16, 2, transform, limit=0.5)
        bounded.load_state_dict(free.state_dict())
        with torch.no_grad():
            for mw in (free, bounded):
                mw.net[-1].weight.mul_(50.0)                # raw translations far beyond the bound
            a, b = free(x), bounded(x)
        assert a[..., 2].abs().max() > 2.0 and b[..., 2].abs().max() <= 0.5
        assert torch.allclose(b[..., 2], 0.5 * torch.tanh(a[..., 2] / 0.5))
        assert torch.equal(a[..., :2], b[..., :2])            # the linear part is not bounded
    G = build(motion_warp=True, motion_to_styles=False, warp_resolution=8, warp_transform="translate", warp_limit=1.0)
    assert G.synthesis.warp.limit == 1.0
    with pytest.raises(ValueError, match="limit must be 0 \\(no bound\\) or positive, got -1"):
        MotionWarp(10, 16, 2, "translate", limit=-1)


def test_transforms_are_those_the_frames_are_rendered_with(monkeypatch):
    # With per-clip styles the clip's style includes the offset network's output: the transforms must too.
    from vidgan.models import synthesis
    G = build(motion_warp=True, styles_per_clip=True, warp_resolution=8, warp_groups=2)
    used = []
    real = synthesis.warp_features
    monkeypatch.setattr(synthesis, "warp_features", lambda x, theta: used.append(theta) or real(x, theta))
    z, codes = G.sample_content(3, gen(1)), G.motion_trajectory(G.sample_motion(3, 5, gen(2)), 5)
    with torch.no_grad():
        G.synthesize(z, codes, truncation=0.7)
        theta = G.transforms(z, codes, truncation=0.7)
        content_only = G.synthesis.transforms(G.content_styles(z, 0.7), codes.reshape(15, -1))
    assert theta.shape == (3, 5, 2, 2, 3) and torch.equal(theta.reshape(15, 2, 2, 3), used[0])
    assert not torch.allclose(content_only, used[0])              # the style offset does change them
    with pytest.raises(InputError, match="transforms exist only for a model with model.motion_warp"):
        build().transforms(z, codes)
    with pytest.raises(InputError, match=r"motion codes must be \[3, T, "):
        G.transforms(z, codes[:2])


def test_motion_warp_settings_are_checked():
    with pytest.raises(InputError, match="warp_resolution must be a power of two from 4 to resolution"):
        tiny_config(motion_warp=True, warp_resolution=64)
    with pytest.raises(InputError, match="warp_resolution must be a power of two"):
        tiny_config(motion_warp=True, warp_resolution=12)
    with pytest.raises(InputError, match="warp_resolution must be a power of two"):
        tiny_config(motion_warp=True, warp_resolution=2)
    with pytest.raises(InputError, match=r"warp_groups \(3\) must divide the generator width"):
        tiny_config(motion_warp=True, warp_groups=3)
    with pytest.raises(InputError, match="warp_groups must be at least 1"):
        tiny_config(motion_warp=True, warp_groups=0)
    with pytest.raises(InputError, match="warp_transform must be one of affine, translate, got 'rigid'"):
        tiny_config(motion_warp=True, warp_transform="rigid")
    with pytest.raises(InputError, match="warp_limit must be 0 \\(no bound\\) or positive, got -0.5"):
        tiny_config(motion_warp=True, warp_limit=-0.5)
    tiny_config(warp_groups=3, warp_resolution=12, warp_transform="rigid", warp_limit=-0.5)   # unused without motion_warp


def test_warp_features_sample_in_float32_under_autocast():
    # Under autocast the features arrive in bfloat16; the grid must not be rounded to it (1/3 pixel shifts).
    from vidgan.models.synthesis import warp_features
    x = torch.randn(2, 4, 16, 16)
    theta = torch.tensor([[1.0, 0.02, 1 / 48], [-0.01, 1.0, -1 / 48]]).repeat(2, 2, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = warp_features(x.bfloat16(), theta)
    assert low.dtype == torch.bfloat16
    assert torch.equal(low, warp_features(x.bfloat16().float(), theta).bfloat16())


def test_motion_warp_content_maps_computed_once_render_the_same_frames():
    G = build(motion_warp=True, motion_to_styles=False, warp_resolution=8)
    z, m = G.sample_content(3, gen(1)), G.sample_motion(3, 6, gen(2))
    codes = G.motion_trajectory(m, 6)
    assert build().content_map(z) is None                     # other models have none
    with torch.no_grad():
        content = G.content_map(z, truncation=0.7)
        whole = G.synthesize(z, codes, truncation=0.7)
        parts = torch.cat([G.synthesize(z, codes[:, a:a + 2], truncation=0.7, content=content) for a in (0, 2, 4)], 2)
    assert torch.equal(whole, parts)
    with pytest.raises(InputError, match="content maps for 2 clips were given with the styles of 3"):
        G.synthesize(z, codes, content=content[:2])
    with pytest.raises(InputError, match="needs the content styles wc"):
        G.synthesis(torch.zeros(6, G.cfg.w_dim), torch.zeros(6, G.cfg.motion_code_dim))
    with pytest.raises(InputError, match="needs the content styles wc"):
        G.synthesis(torch.zeros(5, G.cfg.w_dim), torch.zeros(5, G.cfg.motion_code_dim), torch.zeros(2, G.cfg.w_dim))
