"""A raw-frame pipe into the ffmpeg binary shipped by imageio-ffmpeg, with its messages kept.

ffmpeg's stderr is read by a thread instead of going to the terminal, so a failure becomes one
OSError that quotes ffmpeg's last message and carries the errno ffmpeg reported for the output
(ENOSPC, EDQUOT, EROFS, EACCES, EPERM) when it names one: vidgan._atomic turns those into one
sentence. ffmpeg runs in its own session, so a Ctrl-C or SIGTERM sent to the terminal's process
group reaches vidgan only, which then kills ffmpeg before removing the temporary file.
"""
from __future__ import annotations

import collections
import errno
import os
import subprocess
import threading
from fractions import Fraction

_KNOWN_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def errno_in(text: str):
    """The first of ENOSPC, EDQUOT, EROFS, EACCES, EPERM whose message (os.strerror) appears in `text`."""
    for code in _KNOWN_ERRNOS:
        if os.strerror(code).lower() in text.lower():
            return code
    return None


class FFmpegWriter:
    """ffmpeg reading rgb24 frames of `size` (width, height) at `fps` from a pipe, encoding to `path`.

    write(frame) for each uint8 [H, W, 3] frame, then close(); kill() on any error (it never raises).
    """

    def __init__(self, path: str, size, fps: Fraction, codec: str, pix_fmt_out: str, output_params,
                 log_level: str = "error"):
        import imageio_ffmpeg

        w, h = size
        self.path = path
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-y", "-f", "rawvideo", "-vcodec", "rawvideo",
               "-s", f"{w}x{h}", "-pix_fmt", "rgb24", "-r", str(Fraction(fps)), "-i", "-", "-an",
               "-vcodec", codec, "-pix_fmt", pix_fmt_out, "-v", log_level] + list(output_params) + [path]
        self._log = collections.deque(maxlen=40)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self._reader = threading.Thread(target=self._drain, name="ffmpeg-stderr", daemon=True)
        self._reader.start()

    def _drain(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._log.append(line)
        self.proc.stderr.close()

    def messages(self):
        """ffmpeg's last messages (at most 40 lines), after it exited."""
        return list(self._log)

    def write(self, frame) -> None:
        try:
            self.proc.stdin.write(memoryview(frame).cast("B"))
        except (BrokenPipeError, ValueError, OSError) as exc:   # ffmpeg died: say why it did
            self._finish(wait=True)
            raise self._error(f"ffmpeg stopped while writing {self.path}", exc) from None

    def close(self) -> None:
        """Let ffmpeg finish the file; OSError when it fails."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        code = self._finish(wait=True)
        if code != 0:
            raise self._error(f"ffmpeg exited with code {code} while writing {self.path}")

    def kill(self) -> None:
        """Stop ffmpeg at once (the output is abandoned) and reap it."""
        try:
            self.proc.kill()
        except OSError:
            pass
        self._finish(wait=True)

    def _finish(self, wait):
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        code = self.proc.wait() if wait else self.proc.poll()
        self._reader.join(timeout=10)
        return code

    def _error(self, what, cause=None) -> OSError:
        log = self.messages()
        detail = log[-1] if log else (str(cause) if cause is not None else "no message")
        code = errno_in("\n".join(log))
        if code is None:
            return OSError(f"{what}: {detail}")
        return OSError(code, f"{what}: {detail}", self.path)
