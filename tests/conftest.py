import os
import signal

import pytest
import torch

# Tests run on a 2-core CPU: keep torch from oversubscribing it.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def ctrl_c_default() -> None:
    """preexec_fn of a child that a test sends SIGINT: a shell that starts the tests in the background
    (`cmd &`) ignores SIGINT and its children inherit that, where a user's Ctrl-C reaches a foreground
    process, whose SIGINT is not ignored. Restored, the child's Python raises KeyboardInterrupt as it would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
