"""`python benchmarks/train_step.py --against REV`: this working tree against the code at git revision REV,
one child process per tree, steps alternated so both see the same machine load (see train_step.py).
With --compile a third child runs this tree with `compile: true` (vidgan train --compile); its warm-up
steps include the compilation, whose time is printed on its own. `--variant KEY=VALUE ...` (without
--against): this tree against itself with those --set values, e.g. `--preset fast --variant
model.frame_d_frames=4`."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# --tiny: the tests' 32x32x8 model (tests/training/conftest.py), where per-op costs outweigh the convolutions.
TINY = dict(resolution=32, frames=8, z_dim=16, w_dim=16, mapping_layers=1, motion_dim=8, motion_code_dim=8,
            motion_spacing=2, time_features=3, channel_base=128, channel_max=16, d_channel_base=128,
            d_channel_max=16, clip_channel_base=64, clip_channel_max=16)


def _git(*argv, cwd=ROOT):
    return subprocess.run(["git", *argv], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def checkout(rev: str) -> str:
    """A built tree of REV: a git worktree in the temp folder (reused when it is there and built)."""
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = os.path.join(tempfile.gettempdir(), f"vidgan-against-{sha[:12]}")
    stamp = os.path.join(tree, ".vidgan-built")
    if os.path.exists(stamp):
        return tree
    if os.path.exists(tree):
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
        shutil.rmtree(tree, ignore_errors=True)
    _git("worktree", "add", "--detach", tree, sha)
    print(f"building vidgan._C at {sha[:12]} in {tree} (once; a few minutes on 2 cores)", flush=True)
    env = dict(os.environ, VIDGAN_CUDA="0", VIDGAN_BUILD_EXT="1", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree, env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"building {rev} failed:\n{out.stderr[-3000:]}")
    open(stamp, "w").close()
    return tree


def shipped_config(args, run_dir: str) -> dict:
    """The embedded model's training settings (model, optimiser, 16-frame clips), or with --preset that
    preset's own keys (each tree fills in its defaults), for a short timed run."""
    if args.preset:
        path = os.path.join(ROOT, "vidgan", "presets", f"{args.preset}.json")
        if not os.path.isfile(path):
            sys.exit(f"there is no preset {args.preset!r} in vidgan/presets; `vidgan train --list-presets` lists them.")
        with open(path) as fh:
            tc = json.load(fh)["config"]
    else:
        with open(os.path.join(ROOT, "vidgan", "assets", "default", "config.json")) as fh:
            tc = dict(json.load(fh)["meta"]["training"]["train_config"])
    tc.update(run_dir=run_dir, data=args.data, batch=args.batch, device=args.device, workers=0, steps=10 ** 6,
              minutes=None, sample_every=0, ckpt_every=0, log_every=0, progress=False, tensorboard=False)
    if args.tiny:
        tc["model"] = dict(tc["model"], **TINY)
    return tc


class Child:
    def __init__(self, tree: str, script: str, args, name: str, **config):
        self.name = name
        run = tempfile.mkdtemp(prefix=f"vidgan-against-run-{name.replace(' ', '-')}-")
        cfg = os.path.join(run, "bench.json")
        with open(cfg, "w") as fh:
            json.dump(dict(shipped_config(args, os.path.join(run, "run")), **config), fh)
        env = dict(os.environ, PYTHONPATH=tree + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("VIDGAN_NO_EXT", None)
        self.proc = subprocess.Popen([sys.executable, script, "--child", "serve", "--config", cfg, "--threads",
                                      str(args.threads)], cwd=tree, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.ask(None)

    def ask(self, cmd):
        if cmd is not None:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"the {self.name} child died")
        return json.loads(line)

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


def run_against(args, script: str) -> None:
    import torch

    if args.data is None:
        from vidgan.data import make_moving_mnist

        size = 32 if args.tiny else 64
        args.data = os.path.join(tempfile.gettempdir(), f"vidgan-bench-mm{size}.vidpack")
        if not os.path.exists(args.data):
            make_moving_mnist(args.data, videos=32, frames=20, digits=2, size=size, seed=0)
    if args.against:
        old = Child(checkout(args.against), os.path.abspath(script), args, args.against)
        new = Child(ROOT, os.path.abspath(script), args, "working tree")
    else:                                                   # --variant: the tree against itself
        from vidgan.training.merge import parse_assignments

        changed = parse_assignments(args.variant)                 # the child validates them
        if "model" in changed:                                    # over the base model's keys, not in place of them
            changed["model"] = dict(shipped_config(args, "")["model"], **changed["model"])
        old = Child(ROOT, os.path.abspath(script), args, "working tree")
        new = Child(ROOT, os.path.abspath(script), args, " ".join(args.variant), **changed)
        args.against = old.name
    children = [old, new]
    if args.compile:
        children.append(Child(ROOT, os.path.abspath(script), args, "tree --compile", compile=True))
    times = {c.name: [] for c in children}
    warm = {c.name: [] for c in children}
    # Step 0 runs R1 (uncompiled); the first plain step compiles, so --compile warms up for two steps at least.
    for _ in range(max(args.warmup, 2 if args.compile else 1)):
        for c in children:
            warm[c.name].append(c.ask("step")["s"])
    for i in range(args.steps):
        for c in children[i % len(children):] + children[:i % len(children)]:   # rotating order
            times[c.name].append(c.ask("step")["s"])
    peaks = {c.name: c.ask("peak")["peak_mb"] for c in children}
    for c in children:
        c.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    what = ("the tests' tiny model (32x32, 8 frames)" if args.tiny else f"preset {args.preset}" if args.preset
            else "the embedded model's config (64x64, 16 frames)")
    print(f"train step, {what}, batch {args.batch}, device {args.device}, "
          f"{args.threads} threads, torch {torch.__version__}; {args.steps} alternated steps each")
    for c in children:
        print(f"  {c.name:20s}: {med[c.name]:.3f} s/step (median; all: "
              f"{' '.join(f'{t:.2f}' for t in times[c.name])}), peak memory {peaks[c.name]:.0f} MB")
    print(f"  speed-up of the {new.name} over {args.against}: {med[old.name] / med[new.name]:.2f}x; "
          f"peak memory ratio ({new.name} / {args.against}): {peaks[new.name] / peaks[old.name]:.2f}")
    if args.compile:
        name = children[2].name
        print(f"  --compile: {med[new.name] / med[name]:.2f}x the eager working tree, "
              f"{med[old.name] / med[name]:.2f}x {args.against}; its first plain step took {warm[name][1]:.0f} s "
              f"(compilation included); peak memory ratio (compiled / eager tree): "
              f"{peaks[name] / peaks[new.name]:.2f}")
