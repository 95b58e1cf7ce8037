"""A run folder has one writer: an advisory lock (fcntl.flock on RUN_DIR/.lock) held for the run's life.

The operating system releases it when the process ends, however it ends (even kill -9), so a folder is
never left locked by a dead run. A second `vidgan train` on the same folder is refused at once, before
it reads or writes anything there. Under torchrun only rank 0 takes it. Where fcntl does not exist
(Windows) runs are not locked.
"""
import os
from pathlib import Path
from typing import Dict

from vidgan._atomic import ensure_folder, output_error
from vidgan.errors import InputError

LOCK_FILE = ".lock"
_held: Dict[str, "RunLock"] = {}        # by folder: a process may re-enter its own lock (one per phase)


class RunLock:
    """`with RunLock(run_dir):` holds the run folder's lock (InputError naming the holder's PID if taken)."""

    def __init__(self, run_dir):
        self.path = Path(os.path.abspath(run_dir)) / LOCK_FILE
        self.fd = None
        self.created = False

    def __enter__(self) -> "RunLock":
        key = str(self.path)
        if key in _held or int(os.environ.get("RANK", "0")) != 0:
            return self
        try:
            import fcntl
        except ImportError:                 # no advisory locks here
            return self
        self.created = not self.path.parent.exists()
        ensure_folder(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            err = output_error(exc, self.path)
            if err is None:
                raise
            raise err from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise InputError(f"the run folder {self.path.parent} is in use by another vidgan train (PID {holder}); "
                             "wait for it to end or stop it, or train into another folder.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        _held[key] = self
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        _held.pop(str(self.path), None)
        folder = self.path.parent
        if self.created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            os.remove(self.path)            # a run that wrote nothing leaves no folder behind
            folder.rmdir()
        os.close(self.fd)                   # releases the lock
        self.fd = None
