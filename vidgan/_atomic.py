"""Atomic outputs: build in a temporary sibling of the target, then rename into place.

A crash or Ctrl-C leaves at most a hidden ``.NAME.tmp-*`` sibling, never a half-written target.
"""
import contextlib
import os
import shutil
import tempfile

from vidgan.errors import InputError


def check_target(out, overwrite, what="output"):
    """Refuse an existing `out` unless `overwrite`; make sure its parent folder exists."""
    out = os.path.abspath(os.fspath(out))
    if os.path.lexists(out) and not overwrite:
        raise InputError(f"{what} {out} already exists; pass overwrite=True (--overwrite) to replace it "
                         f"or choose another path.")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise InputError(f"the folder {parent} for {what} {out} does not exist; create it first.")
    return out


def _default_mode(directory):
    """Permissions a plain mkdir/open would give under the current umask (mkdtemp/mkstemp use 0o700/0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _swap_in(tmp, out):
    """Move `tmp` onto `out`. A file replaces a file in one rename; a folder is moved aside first
    (briefly leaving neither) and put back if the second rename fails."""
    if os.path.lexists(out) and (os.path.isdir(out) or os.path.isdir(tmp)):
        trash = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=os.path.dirname(out))
        old = os.path.join(trash, "old")
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)                 # put the previous output back
            os.rmdir(trash)
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def atomic_dir(out, overwrite=False, what="output folder", owned=None):
    """Yield a temporary folder beside `out`; on success it becomes `out`, on error it is removed.

    An existing file at `out` is never replaced by the folder. With `owned` (a predicate on entry
    names), an existing folder is replaced only if every entry in it passes: what this writer would
    have made, so --overwrite never deletes a user's other files.
    """
    out = check_target(out, overwrite, what)
    if os.path.lexists(out) and not os.path.isdir(out):
        raise InputError(f"{out} is a file, but {what} is a folder; remove it or choose another path.")
    if owned is not None and os.path.isdir(out):
        foreign = sorted(e for e in os.listdir(out) if not owned(e))
        if foreign:
            raise InputError(f"{what} {out} holds files this command did not write (e.g. {foreign[0]!r}), "
                             "so --overwrite will not replace it; choose another folder or empty it first.")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=os.path.dirname(out))
    try:
        os.chmod(tmp, _default_mode(True))
        yield tmp
        _swap_in(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(out, overwrite=False, what="output file", suffix=""):
    """Yield a temporary file path beside `out`; on success it is renamed to `out` (never onto a folder).

    The temporary file exists (empty) and is named ``.NAME.tmp-XXXXXXXX<suffix>``: pass the target's
    extension as `suffix` for writers that pick the format from it (ffmpeg). `out` ends up with the
    permissions a plain open() would give.
    """
    out = check_target(out, overwrite, what)
    if os.path.isdir(out):
        raise InputError(f"{out} is a folder, but {what} is a file; choose another path.")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.tmp-", suffix=suffix, dir=os.path.dirname(out))
    try:
        os.close(fd)
        yield tmp
        os.chmod(tmp, _default_mode(False))  # after writing: some writers recreate the file
        _swap_in(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(out, text, overwrite=True, what="output file"):
    """Write the str `text` to `out` through `atomic_file` (UTF-8); replaces an existing file by default."""
    with atomic_file(out, overwrite, what) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
