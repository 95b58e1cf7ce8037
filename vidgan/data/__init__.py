"""Video data: frame folders, video files and packed sets -> clips [C, T, H, W] in [-1, 1].

    from vidgan.data import VideoDataset, build_loader
    ds = VideoDataset("clips/", frames=16, resolution=64)       # or a video file, or data.vidpack
    batches = build_loader(ds, batch_size=8, seed=0)              # infinite, seeded, rank-sharded
    x = next(batches)                                             # float [8, C, 16, 64, 64]

C is 1 for grey data (detected: vidgan.data.channels) and 3 for colour; VideoDataset(channels=1 or 3)
forces it (colour -> BT.601 luma, grey -> replicated).

Builders: pack_dataset (decode + resize once into a memory-mappable .vidpack), extract_frames
(video -> PNG frames), make_moving_mnist (the classic benchmark from real MNIST digits).
This package is a leaf: it never imports models, training or checkpoints.
"""
from vidgan.data.dataset import VideoDataset
from vidgan.data.decode import decode_image, natural_key, prepare_frames, read_video
from vidgan.data.discover import index_videos
from vidgan.data.extract import extract_frames
from vidgan.data.loader import InfiniteShardSampler, build_loader
from vidgan.data.mnist import make_moving_mnist
from vidgan.data.pack import open_pack, pack_dataset

__all__ = ["VideoDataset", "build_loader", "InfiniteShardSampler", "pack_dataset", "open_pack", "extract_frames",
           "make_moving_mnist", "read_video", "decode_image", "prepare_frames", "natural_key", "index_videos"]
