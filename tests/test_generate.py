import os

import numpy as np
import pytest
import torch

from vidgan.checkpoint import save_model
from vidgan.cli import main
from vidgan.errors import InputError
from vidgan.generate import generate, generate_to_file
from vidgan.models import ModelConfig, TemporalGenerator

TINY = dict(resolution=32, frames=4, z_dim=8, w_dim=8, mapping_layers=1, motion_dim=4, motion_code_dim=4,
            channel_base=64, channel_max=8, d_channel_base=64, d_channel_max=8, clip_channel_base=64,
            clip_channel_max=8)


@pytest.fixture(scope="module", params=["continuous", "gru"])
def G(request):
    torch.manual_seed(0)
    return TemporalGenerator(ModelConfig(motion=request.param, **TINY)).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("ckpt") / "model"
    save_model(d, TemporalGenerator(ModelConfig(**TINY)), meta={"fps": 12})
    return str(d)


def test_shape_dtype_and_determinism(G):
    a = generate(G, seed=3, num=2, frames=5)
    assert a.shape == (2, 5, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, generate(G, seed=3, num=2, frames=5))
    assert not np.array_equal(a, generate(G, seed=4, num=2, frames=5))


def test_clip_i_equals_seed_plus_i(G):
    # generate renders clip by clip in chunks whose size does not depend on num: equal by construction.
    a = generate(G, seed=10, num=3, frames=20)
    assert np.array_equal(a[2], generate(G, seed=12, num=1, frames=20)[0])
    assert np.array_equal(a[:2], generate(G, seed=10, num=2, frames=20))


def test_chunked_rendering_matches_one_pass_up_to_rounding(G):
    # Other chunk sizes are other batch sizes for the convolutions, whose kernels may round differently.
    full = generate(G, seed=1, frames=9, batch=9).astype(int)
    assert np.abs(full - generate(G, seed=1, frames=9, batch=2)).max() <= 1


def test_content_and_motion_seeds_are_independent(G):
    base = generate(G, content_seed=1, motion_seed=1, frames=6)
    new_motion = generate(G, content_seed=1, motion_seed=2, frames=6)
    new_content = generate(G, content_seed=2, motion_seed=1, frames=6)
    assert not np.array_equal(base, new_motion) and not np.array_equal(base, new_content)
    # Holding both seeds reproduces the clip whatever `seed` says.
    assert np.array_equal(base, generate(G, seed=99, content_seed=1, motion_seed=1, frames=6))


def test_longer_than_training(G):
    a = generate(G, seed=0, frames=40, batch=8)
    assert a.shape[1] == 40
    # Late frames are as structured as early ones (no collapse to a constant).
    assert a[:, -8:].std() > 0.25 * a[:, :8].std()


def test_generate_to_file_numbered_and_grid(ckpt, tmp_path):
    rep = generate_to_file(str(tmp_path / "c.gif"), checkpoint=ckpt, num=2, frames=3)
    assert rep["paths"] == [str(tmp_path / "c_000.gif"), str(tmp_path / "c_001.gif")]
    assert all(os.path.getsize(p) > 0 for p in rep["paths"]) and rep["fps"] == 12
    rep = generate_to_file(str(tmp_path / "g"), checkpoint=ckpt, grid="2x3", frames=3, scale=2)
    assert rep["clips"] == 1 and rep["width"] == 2 * (3 * 32 + 4 * 2) and rep["height"] == 2 * (2 * 32 + 3 * 2)
    assert len(os.listdir(tmp_path / "g")) == 3


def test_refuses_to_overwrite_and_bad_options(ckpt, tmp_path):
    out = tmp_path / "x.gif"
    out.write_bytes(b"keep")
    with pytest.raises(InputError, match="already exists"):
        generate_to_file(str(out), checkpoint=ckpt)
    assert out.read_bytes() == b"keep"
    with pytest.raises(InputError, match="grid"):
        generate_to_file(str(tmp_path / "y.gif"), checkpoint=ckpt, grid="2by3")
    with pytest.raises(InputError, match="scale"):
        generate_to_file(str(tmp_path / "y.gif"), checkpoint=ckpt, scale=0)
    assert not (tmp_path / "y.gif").exists()


@pytest.mark.parametrize("options, words", [
    (dict(num=0), "--num must be at least 1, got 0"),
    (dict(num=-3), "--num must be at least 1, got -3"),
    (dict(frames=0), "--frames must be at least 1, got 0"),
    (dict(batch=0), "--batch must be at least 1, got 0"),
    (dict(truncation=float("nan")), "--truncation must be a finite number"),
    (dict(scale=1000), "--scale 1000 makes frames 32000 pixels"),
    (dict(device="foo"), "device 'foo' is not a torch device"),
    (dict(device="cuda:7"), "device cuda:7 was asked for but"),
])
def test_bad_options_are_one_sentence_and_write_nothing(ckpt, tmp_path, options, words):
    with pytest.raises(InputError, match=words):
        generate_to_file(str(tmp_path / "y.gif"), checkpoint=ckpt, frames=options.pop("frames", 2), **options)
    assert os.listdir(tmp_path) == []


def test_every_numbered_target_is_checked_before_the_first_is_written(ckpt, tmp_path):
    (tmp_path / "c_001.gif").mkdir()
    with pytest.raises(InputError, match=r"c_001\.gif is a folder"):
        generate_to_file(str(tmp_path / "c.gif"), checkpoint=ckpt, num=2, frames=2, overwrite=True)
    assert os.listdir(tmp_path) == ["c_001.gif"]
    (tmp_path / "c_001.gif").rmdir()
    (tmp_path / "c_001.gif").write_bytes(b"keep")
    with pytest.raises(InputError, match=r"c_001\.gif already exists"):
        generate_to_file(str(tmp_path / "c.gif"), checkpoint=ckpt, num=2, frames=2)
    assert os.listdir(tmp_path) == ["c_001.gif"] and (tmp_path / "c_001.gif").read_bytes() == b"keep"


def test_cli_generate_and_exit_codes(ckpt, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    assert main(["generate", "--out", str(out), "--checkpoint", ckpt, "--frames", "4", "--seed", "1"]) == 0
    assert out.stat().st_size > 0
    assert "frames/s" in capsys.readouterr().out
    assert main(["generate", "--out", str(out), "--checkpoint", ckpt]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path / "z.mp4"), "--checkpoint", str(tmp_path / "missing")]) == 2
    capsys.readouterr()
    assert main(["generate", "--out", str(tmp_path / "z.mp4"), "--checkpoint", ckpt, "--device", "foo"]) == 2
    err = capsys.readouterr().err
    assert "device 'foo' is not a torch device" in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "z.mp4").exists()


def test_model_meta_sets_default_length_and_rate(tmp_path):
    torch.manual_seed(0)
    d = tmp_path / "m"
    save_model(d, TemporalGenerator(ModelConfig(**TINY)), meta={"fps": 5, "frames": 7})
    rep = generate_to_file(str(tmp_path / "a.gif"), checkpoint=str(d))
    assert rep["frames"] == 7 and rep["fps"] == 5
    rep = generate_to_file(str(tmp_path / "b.gif"), checkpoint=str(d), frames=3, fps=9)
    assert rep["frames"] == 3 and rep["fps"] == 9


def test_package_generate_is_callable_after_the_module_is_imported(G):
    # `import vidgan.generate` (done by this test module too) binds the package attribute to the
    # module; the documented call `vidgan.generate(G, ...)` must still work.
    import vidgan
    import vidgan.generate  # noqa: F401

    np.testing.assert_array_equal(vidgan.generate(G, seed=3, num=1, frames=3), generate(G, seed=3, num=1, frames=3))


def test_cli_warnings_are_one_line_without_source(monkeypatch, capsys):
    import warnings

    import vidgan.cli

    def run(args):
        warnings.warn("something to know", UserWarning)
        return 0

    monkeypatch.setattr(vidgan.cli, "_run_generate", run)
    assert main(["generate", "--out", "unused.mp4"]) == 0
    assert capsys.readouterr().err == "vidgan generate: warning: something to know\n"


def test_the_embedded_model_loads_the_same_weights_and_renders_the_reference_clips():
    # tests/assets/default_model_seed0.npz: vidgan.generate(vidgan.load(), seed=0, num=2, frames=8) rendered by
    # vidgan 0.1.0. The weights must be bit-identical; the clips may differ only by the rounding of other CPU
    # kernels (another vector width), so at most one grey level, and rarely.
    import hashlib

    import vidgan

    G = vidgan.load()
    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes())
    assert h.hexdigest() == "187636e423d8f6548cc409be041e69ba9d2bbc1e4e7de731559cc4734a231439"
    ref = np.load(os.path.join(os.path.dirname(__file__), "assets", "default_model_seed0.npz"))["clips"]
    clips = generate(G, seed=0, num=2, frames=8)
    diff = np.abs(clips.astype(int) - ref.astype(int))
    assert clips.shape == ref.shape == (2, 8, 64, 64, 3) and diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_a_grey_model_round_trips_and_exports_a_browser_playable_grey_mp4(tmp_path):
    import re

    from vidgan.checkpoint import load

    from .test_export import ffmpeg_stream_line, read_back

    torch.manual_seed(0)
    save_model(tmp_path / "grey", TemporalGenerator(ModelConfig(channels=1, **TINY)))
    G = load(str(tmp_path / "grey"))
    assert G.cfg.channels == 1
    clips = generate(G, seed=0, num=2)                                    # replicated to RGB
    assert clips.shape == (2, 4, 32, 32, 3) and (clips[..., 0] == clips[..., 1]).all() \
        and (clips[..., 1] == clips[..., 2]).all() and clips.std() > 0
    out = tmp_path / "grey.mp4"
    assert main(["generate", "--out", str(out), "--checkpoint", str(tmp_path / "grey"), "--frames", "4"]) == 0
    line = ffmpeg_stream_line(out)
    assert re.search(r"Video: h264\b", line) and "yuv420p" in line, line
    _, got = read_back(out)                                               # decoded RGB [T, H, W, 3]
    assert got.shape == (4, 32, 32, 3)
    assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 1], got[..., 2])
    assert np.abs(got.astype(int) - clips[0]).mean() < 4.0                 # the same clip, through the codec


@pytest.mark.slow                      # compiling the tiny generator takes about 20 s on a 2-core CPU
def test_compiled_rendering_matches_eager(tmp_path):
    """compile=True renders the same clips as eager up to rounding (both chunk sizes of a render), and the
    CLI flag reaches it."""
    torch.manual_seed(0)
    eager = TemporalGenerator(ModelConfig(**TINY)).eval()
    comp = TemporalGenerator(ModelConfig(**TINY)).eval()
    comp.load_state_dict(eager.state_dict())
    want = generate(eager, seed=3, num=2, frames=20)                  # chunks of 16 and 4 frames
    got = generate(comp, seed=3, num=2, frames=20, compile=True)
    assert getattr(comp.synthesis, "_compiled_call_impl", None) is not None
    assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1
    path = tmp_path / "model"
    save_model(path, eager)
    assert main(["generate", "--checkpoint", str(path), "--out", str(tmp_path / "c.mp4"), "--compile"]) == 0
    assert (tmp_path / "c.mp4").stat().st_size > 0


def test_cli_renders_with_the_idle_cores(ckpt, tmp_path, monkeypatch):
    """On the CPU, generate takes as many threads as there are idle cores (at least one), unless
    OMP_NUM_THREADS says otherwise."""
    from vidgan.device import idle_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (1e6, 1e6, 1e6))    # a machine busy with other work
    before = torch.get_num_threads()
    try:
        assert idle_threads() == 1
        generate_to_file(str(tmp_path / "a.mp4"), checkpoint=ckpt, device="cpu")
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert idle_threads() == len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(before)
