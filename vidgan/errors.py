"""Errors a user can cause. The CLI prints their message as one sentence and exits 2."""


class VidganError(Exception):
    """Base of every error caused by user input (a path, a file, an option)."""


class InputError(VidganError, ValueError):
    """A bad argument, option or file content; the message names it and says what to do."""


class DataError(InputError):
    """A dataset that cannot be used (missing, empty, all clips too short, corrupt)."""


class CheckpointError(InputError):
    """A checkpoint that is missing, corrupt or made by an incompatible configuration."""


class OutputError(VidganError, OSError):
    """An output that could not be written: no space left, a read-only filesystem, or no permission.

    `reason` is "space", "quota", "readonly" or "permission"; `path` is the output that was not
    written (any previous file or folder there is intact).
    """

    def __init__(self, message, reason=None, path=None):
        super().__init__(message)
        self.reason, self.path = reason, path

    def __str__(self):
        return str(self.args[0]) if self.args else ""
