"""`train(cfg)`, what `vidgan train` calls: the run folder's lock, then one Trainer (loop.py) per phase of
the config's schedule, each resuming where the previous one stopped, within one time limit."""
import dataclasses
import os
import time
from typing import Any, Callable, Dict

from vidgan.training import distributed as D
from vidgan.training.config import TrainConfig
from vidgan.training.loop import Trainer
from vidgan.training.runlock import RunLock
from vidgan.training.state import list_checkpoints


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train (or resume) the run described by `cfg`, phase by phase through its schedule; returns the summary
    of the last phase run (see Trainer.run), with start_step and steps_run over the whole call."""
    cfg.validate()
    with RunLock(cfg.run_dir):                          # one writer for all the phases
        return _train_phases(cfg, log)


def _train_phases(cfg: TrainConfig, log: Callable[[str], None]) -> Dict[str, Any]:
    deadline = None if cfg.minutes is None else time.monotonic() + cfg.minutes * 60
    step = _newest_step(cfg.run_dir)
    first, runs, summary = None, 0, None
    while True:
        phase, end = cfg.phase(step)
        if deadline is not None:
            left = (deadline - time.monotonic()) / 60
            if left <= 0 and summary is not None:
                summary["stopped"] = "time limit"
                break
            phase = dataclasses.replace(phase, minutes=max(left, 1e-6))
        trainer = None
        try:
            trainer = Trainer(phase, log=log, record=cfg)
            if cfg.phase(trainer.step)[1] != end:
                step = trainer.step                 # it resumed from a checkpoint of another phase
                continue
            result = trainer.run()
        finally:
            if trainer is not None:
                trainer.close()
            elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
                D.teardown()
        first = result["start_step"] if first is None else first
        runs += result["steps_run"]
        summary = dict(result, start_step=first, steps_run=runs)
        step = result["step"]
        if result["stopped"] != "completed" or step >= cfg.steps:
            break
    return summary


def _newest_step(run_dir) -> int:
    """The step of the run folder's newest checkpoint (0 for a new run); the Trainer checks it loads."""
    found = list_checkpoints(run_dir)
    return found[-1][0] if found else 0
