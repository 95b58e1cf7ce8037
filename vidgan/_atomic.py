"""Atomic outputs: build in a temporary sibling of the target, then rename into place.

A failure or Ctrl-C leaves the previous target intact and no temporary file. A process killed
outright (-9) leaves a hidden ``.NAME.tmp-PID-HOST-XXXXXXXX`` sibling: the next write into that
folder removes it once its writer is dead (temps of live writers are never touched).

A write that fails for lack of space, on a read-only filesystem or for lack of permission raises
vidgan.errors.OutputError: one sentence naming the folder and the output, and what to do.
"""
import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time

from vidgan.errors import InputError, OutputError, VidganError

_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
# .NAME.tmp-PID-HOST-XXXXXXXX[SUFFIX] (this version), .NAME.tmp-XXXXXXXX[SUFFIX] (older ones);
# .NAME.old-... holds a replaced folder for the moment of the swap.
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?:(?P<pid>\d{1,10})-(?P<host>[0-9a-f]{6})-)?"
                      r"(?P<rand>[a-z0-9_]{8})(?P<suffix>\.[^.]*)?$")
STALE_AGE_S = 3600          # a temp without a PID (older vidgan) is stale after an hour without change
_FULL_BYTES = 4 << 20       # less free space than this explains a write error from a library
_ERRNO_REASON = {errno.ENOSPC: "space", errno.EDQUOT: "quota", errno.EROFS: "readonly",
                 errno.EACCES: "permission", errno.EPERM: "permission"}


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


# ----------------------------------------------------------------------------- stale temporaries
def _prefix(out, kind="tmp"):
    """Name prefix of this process's temporaries for `out`: .NAME.tmp-PID-HOST- (mkstemp adds 8 characters)."""
    return f".{os.path.basename(out)}.{kind}-{os.getpid()}-{_HOST}-"


def _writer_gone(path, pid, host):
    """True when the process that made the temporary `path` is dead (or, without a PID of this
    host to ask, when `path` has not changed for STALE_AGE_S)."""
    if pid is not None and host == _HOST:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (OSError, OverflowError, ValueError):   # PermissionError: alive, another user's
            return False
        return False
    try:
        return time.time() - os.lstat(path).st_mtime > STALE_AGE_S
    except OSError:
        return False


def remove_stale_temps(folder):
    """Remove the temporaries vidgan's writers left in `folder` when they were killed (-9).

    Only names of vidgan's own pattern whose writer is dead are touched. A `.NAME.old-*` folder left
    between the two renames of a folder swap holds the previous output: it is put back as NAME when
    NAME is missing. Best effort: errors are ignored. Returns the names removed."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(".")]
    except OSError:
        return []
    removed = []
    for n in names:
        m = _TEMP_RE.match(n)
        if m is None or (m["pid"] is None and m["suffix"] not in (None, os.path.splitext(m["name"])[1])):
            continue
        path = os.path.join(folder, n)
        if not _writer_gone(path, m["pid"], m["host"]):
            continue
        try:
            if m["kind"] == "old":
                target, old = os.path.join(folder, m["name"]), os.path.join(path, "old")
                if os.path.lexists(old) and not os.path.lexists(target):
                    os.replace(old, target)           # the previous output, never swapped back
            _remove(path)
            removed.append(n)
        except OSError:
            pass
    return removed


# ----------------------------------------------------------------------------- write errors
def _sentence(reason, out):
    folder, name = os.path.split(out)
    return {"space": f"no space left on the device holding {folder} (writing {name}); free some space "
                     "or write elsewhere.",
            "quota": f"your disk quota is used up on the device holding {folder} (writing {name}); free some "
                     "space or write elsewhere.",
            "readonly": f"{folder} is on a read-only filesystem (writing {name}); write elsewhere or remount "
                        "it read-write.",
            "permission": f"no permission to write in {folder} (writing {name}); write elsewhere or change "
                          "the folder's permissions."}[reason]


def _inside(path, folder):
    path, folder = os.path.abspath(os.fspath(path)), os.path.abspath(os.fspath(folder))
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _filesystem_reason(folder):
    """Why writes into `folder` fail, as far as the filesystem shows it ("readonly", "permission",
    "space"), or None when it looks writable with room to spare."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return "readonly"
    if not os.access(folder, os.W_OK):
        return "permission"
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail      # root may use the reserved blocks
    if blocks * st.f_frsize < _FULL_BYTES or (st.f_files > 0 and st.f_favail == 0):
        return "space"
    return None


def output_error(exc, out, tmp=None):
    """The OutputError that explains `exc`, raised while writing `out` (through the temporary `tmp`),
    or None when it is not a lack of space, a read-only filesystem or a lack of permission.

    An OSError says so by its errno (when its filename, if any, is the output's folder or inside it).
    Libraries that hide the errno (safetensors, torch.save, an ffmpeg that died) are judged by the
    folder itself: read-only, not writable, or (nearly) full. Call it before removing `tmp`."""
    out = os.path.abspath(os.fspath(out))
    folder = os.path.dirname(out)
    if isinstance(exc, OutputError):                 # from a nested atomic write inside our temporary
        inner = exc.path is not None and tmp is not None and _inside(exc.path, tmp)
        return OutputError(_sentence(exc.reason, out), exc.reason, out) if inner else None
    if not isinstance(exc, Exception) or isinstance(exc, VidganError):
        return None
    reason = None
    if isinstance(exc, OSError) and exc.errno in _ERRNO_REASON:
        names = [f for f in (exc.filename, exc.filename2) if f is not None]
        if not all(_inside(f, folder) for f in names):
            return None                              # about another file (an input, a cache)
        reason = _ERRNO_REASON[exc.errno]
    else:
        reason = _filesystem_reason(folder)
    return None if reason is None else OutputError(_sentence(reason, out), reason, out)


def ensure_folder(folder):
    """os.makedirs(folder, exist_ok=True); no space, a read-only filesystem or no permission -> OutputError
    naming the folder that could not be made."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        reason = _ERRNO_REASON.get(exc.errno)
        if reason is None:
            raise
        made = os.path.abspath(os.fspath(exc.filename if exc.filename is not None else folder))
        raise OutputError(_sentence(reason, made), reason, made) from exc


def _failed(exc, out, tmp):
    """Remove `tmp` after `exc`; the OutputError to raise instead of `exc`, or None."""
    err = output_error(exc, out, tmp)
    _remove(tmp)
    return err


def _make_temp(out, directory, suffix=""):
    """mkdtemp/mkstemp beside `out` (named after this process); OutputError when the folder refuses it."""
    remove_stale_temps(os.path.dirname(out))
    try:
        if directory:
            return tempfile.mkdtemp(prefix=_prefix(out), dir=os.path.dirname(out))
        fd, tmp = tempfile.mkstemp(prefix=_prefix(out), suffix=suffix, dir=os.path.dirname(out))
        os.close(fd)
        return tmp
    except OSError as exc:
        err = output_error(exc, out)
        if err is None:
            raise
        raise err from exc


def _swap_in(tmp, out):
    """Move `tmp` onto `out`. A file replaces a file in one rename; a folder is moved aside first
    (briefly leaving neither) and put back if the second rename fails."""
    if os.path.lexists(out) and (os.path.isdir(out) or os.path.isdir(tmp)):
        trash = tempfile.mkdtemp(prefix=_prefix(out, "old"), dir=os.path.dirname(out))
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
    have made, so --overwrite never deletes a user's other files. Out of space, a read-only
    filesystem or no permission -> OutputError (see output_error).
    """
    out = check_target(out, overwrite, what)
    if os.path.lexists(out) and not os.path.isdir(out):
        raise InputError(f"{out} is a file, but {what} is a folder; remove it or choose another path.")
    if owned is not None and os.path.isdir(out):
        foreign = sorted(e for e in os.listdir(out) if not owned(e))
        if foreign:
            raise InputError(f"{what} {out} holds files this command did not write (e.g. {foreign[0]!r}), "
                             "so --overwrite will not replace it; choose another folder or empty it first.")
    tmp = _make_temp(out, directory=True)
    with _cleaned_up(out, tmp):
        os.chmod(tmp, _default_mode(True))
        yield tmp
        _swap_in(tmp, out)


@contextlib.contextmanager
def _cleaned_up(out, tmp):
    """When the block fails: remove `tmp`, then raise the OutputError that explains the failure (see
    _failed) or the failure itself."""
    try:
        yield
    except BaseException as exc:
        err = _failed(exc, out, tmp)
        if err is None:
            raise
        raise err from exc


@contextlib.contextmanager
def atomic_file(out, overwrite=False, what="output file", suffix=""):
    """Yield a temporary file path beside `out`; on success it is renamed to `out` (never onto a folder).

    The temporary file exists (empty) and is named ``.NAME.tmp-PID-HOST-XXXXXXXX<suffix>``: pass the
    target's extension as `suffix` for writers that pick the format from it (ffmpeg). `out` ends up
    with the permissions a plain open() would give. Out of space, a read-only filesystem or no
    permission -> OutputError (see output_error).
    """
    out = check_target(out, overwrite, what)
    if os.path.isdir(out):
        raise InputError(f"{out} is a folder, but {what} is a file; choose another path.")
    tmp = _make_temp(out, directory=False, suffix=suffix)
    with _cleaned_up(out, tmp):
        yield tmp
        os.chmod(tmp, _default_mode(False))  # after writing: some writers recreate the file
        _swap_in(tmp, out)


def atomic_write_text(out, text, overwrite=True, what="output file"):
    """Write the str `text` to `out` through `atomic_file` (UTF-8); replaces an existing file by default."""
    with atomic_file(out, overwrite, what) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
