"""Infinite, seeded, rank-sharded loading for GAN training.

The sample stream of one rank is a pure function of (seed, rank, world_size, position):

    epoch e = position // m, j = position % m, with m = n // world_size items per rank and epoch
    (n < world_size: m = 1 and ranks share items)
    perm_e  = numpy default_rng([seed, e]).permutation(n)
    seeds_e = numpy default_rng([seed, e, 1]).integers(2**63, size=n)
    key     = (perm_e[rank + j * world_size], seeds_e[rank + j * world_size])

so within an epoch the ranks see disjoint items, and `start` (the number of samples this rank
already consumed) resumes the stream exactly, whatever the number of workers.
"""
import os
import signal
import warnings
import weakref

import numpy as np
import torch

from vidgan.data.decode import to_model_range
from vidgan.errors import InputError


class InfiniteShardSampler(torch.utils.data.Sampler):
    """Yields (index, sample_seed) keys forever for one rank, from position `start`."""

    def __init__(self, n, seed=0, rank=0, world_size=1, start=0):
        if n < 1:
            raise InputError("the dataset is empty; nothing to sample.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise InputError(f"rank={rank} and world_size={world_size} are not valid; need 0 <= rank < world_size.")
        if start < 0:
            raise InputError(f"start={start} is not valid; use the number of samples already consumed (>= 0).")
        self.n, self.seed, self.rank, self.world_size, self.start = int(n), int(seed), rank, world_size, int(start)
        self.per_epoch = max(1, self.n // self.world_size)

    def _epoch(self, e):
        perm = np.random.default_rng([self.seed, e]).permutation(self.n)
        seeds = np.random.default_rng([self.seed, e, 1]).integers(2 ** 63, size=self.n, dtype=np.int64)
        return perm, seeds

    def key(self, position):
        """The key at one position of this rank's stream."""
        e, j = divmod(int(position), self.per_epoch)
        perm, seeds = self._epoch(e)
        g = (self.rank + j * self.world_size) % self.n
        return int(perm[g]), int(seeds[g])

    def __iter__(self):
        e, j = divmod(self.start, self.per_epoch)
        while True:
            perm, seeds = self._epoch(e)
            for jj in range(j, self.per_epoch):
                g = (self.rank + jj * self.world_size) % self.n
                yield int(perm[g]), int(seeds[g])
            e, j = e + 1, 0

    def __len__(self):  # DataLoader asks; the stream is endless
        return 2 ** 62


class _Keyed(torch.utils.data.Dataset):
    """Returns (clip, newly skipped files) so skips found in workers reach the main process."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        return self.dataset.fetch(key)


def _collate(items):
    clips = torch.from_numpy(np.stack([c for c, _ in items]))  # uint8 [B, T, H, W, C]
    skipped = {}
    for _, new in items:
        skipped.update(new)
    return clips, skipped


def _worker_init(_):
    torch.set_num_threads(1)
    # Ctrl-C and SIGTERM reach the whole process group. The main process handles them (a clean
    # checkpoint, then close() shuts the workers down); a worker dying of them first would crash it.
    # SIGINT is ignored; the first SIGTERM too, a second one (a shutdown that did not get through
    # the queue) ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _ignore_first_sigterm)


def _ignore_first_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _shutdown(holder, loader):
    """Stops the worker processes of `loader` through their queues (no signals)."""
    it, holder[0] = holder[0], None
    loader._iterator = None  # persistent workers: the DataLoader keeps the iterator too
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()


class ClipLoader:
    """Infinite iterator of float batches [B, C, T, H, W] (C: the dataset's channels); `.position` = samples this
    rank consumed.

    Workers hand over uint8 clips (4x less to copy between processes); each batch is converted to
    float in [-1, 1] here, on `device` when one is given (then only uint8 crosses to the GPU).
    """

    def __init__(self, dataset, batch_size, workers, rank, world_size, seed, start, pin_memory,
                 device=None, prefetch_factor=2):
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.device = None if device is None else torch.device(device)
        self.pin_memory = bool(pin_memory)
        self.position = int(start)
        self.sampler = InfiniteShardSampler(len(dataset), seed, rank, world_size, start)
        kwargs = {}
        if workers > 0:
            kwargs = dict(persistent_workers=True, prefetch_factor=prefetch_factor, worker_init_fn=_worker_init)
        self._loader = torch.utils.data.DataLoader(
            _Keyed(dataset), batch_size=self.batch_size, sampler=self.sampler, num_workers=workers,
            collate_fn=_collate, drop_last=True, **kwargs,
            pin_memory=self.pin_memory and self.device is not None and self.device.type == "cuda")
        self._holder = [None]  # the live iterator; closed by close(), or at exit before multiprocessing's hook
        self._finalizer = weakref.finalize(self, _shutdown, self._holder, self._loader)

    def close(self):
        """Shuts the worker processes down (the loader can be iterated again afterwards)."""
        _shutdown(self._holder, self._loader)

    @property
    def skipped(self):
        return self.dataset.skipped

    def __iter__(self):
        return self

    def __next__(self):
        if self._holder[0] is None:
            self._holder[0] = iter(self._loader)
        clips, new = next(self._holder[0])  # uint8 [B, T, H, W, C]
        if new:
            self.dataset.report(new)
        self.position += self.batch_size
        if self.device is not None and self.device.type != "cpu":
            x = clips.to(self.device, non_blocking=True).permute(0, 4, 1, 2, 3)
            return x.float().mul_(1 / 127.5).sub_(1.0).contiguous()  # [B, C, T, H, W]
        x = to_model_range(clips.numpy())  # float32 [B, C, T, H, W]
        return x.pin_memory() if self.pin_memory else x  # pinned: the trainer's .to(cuda) can overlap


def default_workers():
    """Worker processes used when none is given: up to 4, leaving one core to the trainer."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def build_loader(dataset, batch_size, workers=None, rank=0, world_size=1, seed=0, start=0, pin_memory=None,
                 device=None):
    """Infinite iterator of float [B, C, T, H, W] batches of `dataset` for one rank.

    workers: DataLoader processes, persistent between batches. None = 0 for a .vidpack (a memmap read
    costs less than handing a batch between processes) and default_workers() otherwise.
    rank/world_size: shard of this process (default: from torch.distributed when initialised).
    start: samples this rank already consumed; the stream from `start` equals the tail of the
    stream from 0. pin_memory None = pin when CUDA is available.
    device: if given (e.g. "cuda"), batches arrive there: uint8 is copied and converted on the device.
    """
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size} is not valid; use a positive integer.")
    if workers is None:
        workers = 0 if getattr(dataset, "packed", False) else default_workers()
    workers = int(workers)
    if workers < 0:
        raise InputError(f"workers={workers} is not valid; use 0 (load in the main process) or more.")
    if rank == 0 and world_size == 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    pin_memory = bool(pin_memory) and torch.cuda.is_available()
    if len(dataset) < world_size:
        warnings.warn(f"vidgan.data: {len(dataset)} item(s) for {world_size} ranks; ranks will share items.",
                      stacklevel=2)
    return ClipLoader(dataset, batch_size, workers, rank, world_size, seed, start, pin_memory, device)
