"""Two CPU processes with gloo: data-parallel training keeps the ranks' weights identical."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from vidgan.errors import InputError


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, port, cfg, out_dir):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from vidgan.training.loop import Trainer

    trainer = Trainer(cfg, log=lambda msg: None)
    try:
        res = trainer.run()
        weights = {f"{name}.{k}": v.clone() for name, m in list(trainer.modules.items()) + [("G_ema", trainer.G_ema)]
                   for k, v in m.state_dict().items()}
        torch.save({"weights": weights, "step": res["step"], "micro": trainer.micro,
                    "backend": trainer.dist.backend}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        trainer.close()


def test_two_gloo_ranks_stay_identical(tmp_path, make_cfg):
    # batch 8 over 2 ranks with 2 accumulation rounds: two clips per rank and round
    cfg = make_cfg(tmp_path / "run", steps=2, batch=8, accum=2, ckpt_every=1)
    mp.spawn(_worker, args=(_free_port(), cfg, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["step"] == r1["step"] == 2 and r0["micro"] == 2 and r0["backend"] == "gloo"
    assert r0["weights"].keys() == r1["weights"].keys() and any(k.startswith("Dc.") for k in r0["weights"])
    for k, v in r0["weights"].items():
        assert torch.equal(v, r1["weights"][k]), f"{k} differs between ranks"
    # training happened: weights moved away from the initial ones
    from vidgan.models import TemporalGenerator

    torch.manual_seed(cfg.seed)
    G0 = TemporalGenerator(cfg.model)
    moved = [not torch.equal(v, r0["weights"][f"G.{k}"]) for k, v in G0.state_dict().items() if k != "w_avg"]
    assert sum(moved) > len(moved) // 2
    # only rank 0 wrote checkpoints, and they hold the shared weights
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["step-00000001", "step-00000002"]
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "checkpoints" / "step-00000002" / "Dc.safetensors"))
    assert all(torch.equal(v, r1["weights"][f"Dc.{k}"]) for k, v in saved.items())


def test_batch_not_divisible_by_world_size(tmp_path, make_cfg, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    from vidgan.training.loop import Trainer

    with pytest.raises(InputError, match="batch 3 is not divisible by world size 2"):
        Trainer(make_cfg(tmp_path / "run", batch=3))


def test_resolve_device_names_what_cannot_be_used():
    from vidgan.training.distributed import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="device 'foo' is not a torch device"):
        resolve_device("foo")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available here"):
            resolve_device("cuda:0")


@pytest.mark.cuda
def test_resolve_device_refuses_a_cuda_index_past_the_last_gpu():
    from vidgan.training.distributed import resolve_device

    n = torch.cuda.device_count()
    assert resolve_device(f"cuda:{n - 1}") == torch.device(f"cuda:{n - 1}")
    with pytest.raises(InputError, match=f"has {n} CUDA device"):
        resolve_device(f"cuda:{n}")
