import itertools
import os

import pytest
import torch

from vidgan.data import InfiniteShardSampler, VideoDataset, build_loader
from vidgan.errors import InputError

from .conftest import make_frames


def _stream(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_sampler_resume_equals_tail():
    full = _stream(InfiniteShardSampler(7, seed=3), 40)  # several epochs
    for k in (0, 1, 6, 7, 8, 23):
        assert _stream(InfiniteShardSampler(7, seed=3, start=k), 40 - k) == full[k:]
    s = InfiniteShardSampler(7, seed=3)
    assert [s.key(p) for p in range(40)] == full
    assert sorted(i for i, _ in full[:7]) == list(range(7))  # each epoch is a permutation
    assert _stream(InfiniteShardSampler(7, seed=4), 40) != full


def test_two_ranks_see_disjoint_items():
    n = 10
    r0 = InfiniteShardSampler(n, seed=1, rank=0, world_size=2)
    r1 = InfiniteShardSampler(n, seed=1, rank=1, world_size=2)
    for epoch in range(3):
        a = [i for i, _ in _stream(InfiniteShardSampler(n, 1, 0, 2, start=5 * epoch), 5)]
        b = [i for i, _ in _stream(InfiniteShardSampler(n, 1, 1, 2, start=5 * epoch), 5)]
        assert not set(a) & set(b) and sorted(a + b) == list(range(n))
    seeds0 = {s for _, s in _stream(r0, 20)}
    seeds1 = {s for _, s in _stream(r1, 20)}
    assert not seeds0 & seeds1  # different sample seeds too
    # uneven: 11 items on 2 ranks still disjoint within an epoch (one item rests)
    a = [i for i, _ in _stream(InfiniteShardSampler(11, 1, 0, 2), 5)]
    b = [i for i, _ in _stream(InfiniteShardSampler(11, 1, 1, 2), 5)]
    assert not set(a) & set(b)


def test_sampler_bad_arguments():
    with pytest.raises(InputError, match="rank=2"):
        InfiniteShardSampler(5, rank=2, world_size=2)
    with pytest.raises(InputError, match="start=-1"):
        InfiniteShardSampler(5, start=-1)


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    for v in range(5):
        make_frames(root / f"v{v}", 12 + v, 8, 8)
    return VideoDataset(root, frames=4, resolution=8, hflip=True)


def test_loader_is_infinite_and_resumable(small_ds):
    loader = build_loader(small_ds, batch_size=3, workers=0, seed=7)
    batches = [next(loader) for _ in range(6)]  # 18 samples > 5 videos: wraps around epochs
    assert all(b.shape == (3, 3, 4, 8, 8) for b in batches)
    assert loader.position == 18
    resumed = build_loader(small_ds, batch_size=3, workers=0, seed=7, start=9)
    for k in range(3, 6):
        assert torch.equal(next(resumed), batches[k])
    other_rank = build_loader(small_ds, batch_size=3, workers=0, seed=7, rank=1, world_size=2)
    assert not torch.equal(next(other_rank), batches[0])


@pytest.mark.slow
def test_workers_give_the_same_stream_and_report_skips(tmp_path, small_ds):
    ref = build_loader(small_ds, batch_size=2, workers=0, seed=1)
    par = build_loader(small_ds, batch_size=2, workers=2, seed=1)
    for _ in range(4):
        assert torch.equal(next(ref), next(par))
    # a frame that breaks after indexing: found in a worker, reported in the main process
    root = tmp_path / "r"
    make_frames(root / "good", 6, 8, 8)
    bad = make_frames(root / "bad", 6, 8, 8)
    ds = VideoDataset(root, frames=6, resolution=8)
    with open(os.path.join(bad, "frame_3.png"), "r+b") as fh:
        fh.seek(40)
        fh.write(b"\0" * 200)  # header intact, pixel data damaged
    loader = build_loader(ds, batch_size=2, workers=2, seed=0)
    with pytest.warns(UserWarning, match=r"bad: unreadable at load time .*frame_3\.png.*replaced"):
        x = next(loader)
    assert x.shape == (2, 3, 6, 8, 8)
    assert list(loader.skipped) == [bad]
    # replacements do not depend on which process saw the damage first
    serial = build_loader(ds, batch_size=2, workers=0, seed=0)
    assert torch.equal(next(serial), x)
    for _ in range(3):
        assert torch.equal(next(serial), next(loader))


def test_batches_match_dataset_items(small_ds):
    loader = build_loader(small_ds, batch_size=4, workers=0, seed=5, device="cpu")
    x = next(loader)
    keys = [loader.sampler.key(p) for p in range(4)]
    assert torch.equal(x, torch.stack([small_ds[k] for k in keys]))
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1


@pytest.mark.cuda
def test_device_batches_match_cpu(small_ds):
    cpu = build_loader(small_ds, batch_size=4, workers=0, seed=2)
    gpu = build_loader(small_ds, batch_size=4, workers=2, seed=2, device="cuda", pin_memory=True)
    for _ in range(3):
        g = next(gpu)
        assert g.is_cuda and g.shape == (4, 3, 4, 8, 8)
        assert torch.equal(g.cpu(), next(cpu))


def test_workers_survive_a_signal_to_the_process_group(small_ds, tmp_path):
    # Ctrl-C / SIGTERM go to the whole process group: workers must leave them to the main
    # process (which checkpoints and stops), not die and crash the next batch.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, time
        from vidgan.data import VideoDataset, build_loader
        ds = VideoDataset({small_ds.root!r}, frames=4, resolution=8)
        got = []
        signal.signal(signal.SIGTERM, lambda *a: got.append(1))
        it = build_loader(ds, batch_size=2, workers=1)
        next(it)
        os.killpg(os.getpgid(0), signal.SIGTERM)
        time.sleep(1.0)
        for _ in range(3):
            next(it)
        print("ok", len(got))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         start_new_session=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["ok", "1"]
