"""Proof that exported videos play in a browser: headless Chromium loads them into a <video>.

A page served from 127.0.0.1 loads the clip, reports its duration and size, draws the first
frame and a later (seeked) frame to a canvas and samples known colours, plays it to the end,
and POSTs the results back to the test's server. Skipped only where no Chromium binary exists
(CI installs Debian's `chromium`; set VIDGAN_CHROMIUM to use another binary).
"""
import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from vidgan.export import write_video

pytestmark = pytest.mark.browser

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TIMEOUT_S = 120         # a cold Chromium on a busy 2-core machine can take a while
PAGE_TIMEOUT_S = 45     # the page reports how far it got after this long
FPS, T = 16, 16
# quadrant colours (TL, TR, BL, BR) of the first half of the clip; the second half shows them reversed
COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 210), (230, 230, 230)]


def find_chromium():
    env = os.environ.get("VIDGAN_CHROMIUM")
    if env:
        return env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def quadrant_clip(h, w):
    """uint8 [T, h, w, 3]: four flat quadrants; their colours reverse halfway through."""
    clip = np.zeros((T, h, w, 3), np.uint8)
    hh, hw = h // 2, w // 2
    for t in range(T):
        c = COLOURS if t < T // 2 else COLOURS[::-1]
        clip[t, :hh, :hw], clip[t, :hh, hw:], clip[t, hh:, :hw], clip[t, hh:, hw:] = c
    return clip


PAGE = """<!doctype html>
<html><body>
<video id="v" src="{src}" muted playsinline preload="auto"></video>
<script>
const W = {w}, H = {h};                       // the source size (before padding to even)
const v = document.getElementById("v");
const out = {{canPlay: v.canPlayType({mime})}};
let sent = false;
function send(extra) {{
  if (sent) return; sent = true;
  Object.assign(out, extra || {{}});
  fetch("/result", {{method: "POST", body: JSON.stringify(out)}});
}}
window.onerror = (msg) => send({{error: "script: " + msg}});
out.stage = "loading";                        // the last step reached, reported if the page gives up
setTimeout(() => send({{error: "page gave up waiting at stage " + out.stage}}), {page_timeout_ms});
v.addEventListener("error", () => send({{error: "media: " + (v.error ? v.error.code + " " + v.error.message : "?")}}));
function sample() {{                          // mean colour of a 5x5 patch at each quadrant centre
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const at = (x, y) => {{
    const s = [0, 0, 0];
    for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {{
      const i = 4 * ((y + dy) * c.width + (x + dx));
      for (let k = 0; k < 3; k++) s[k] += d[i + k] / 25;
    }}
    return s.map(Math.round);
  }};
  let lo = 255, hi = 0;
  for (let i = 0; i < d.length; i += 4) {{
    lo = Math.min(lo, d[i], d[i + 1], d[i + 2]); hi = Math.max(hi, d[i], d[i + 1], d[i + 2]);
  }}
  const qx = Math.floor(W / 4), qy = Math.floor(H / 4);
  return {{quads: [at(qx, qy), at(W - qx, qy), at(qx, H - qy), at(W - qx, H - qy)], lo: lo, hi: hi}};
}}
v.addEventListener("loadeddata", () => {{
  out.duration = v.duration; out.width = v.videoWidth; out.height = v.videoHeight;
  out.firstTries = 0;
  const firstFrame = () => {{                 // a busy machine may paint the first frame a little later
    out.first = sample();
    out.firstTries += 1;
    if (out.first.hi - out.first.lo <= 100 && out.firstTries < 30) {{ setTimeout(firstFrame, 100); return; }}
    seekLate();
  }};
  firstFrame();
}}, {{once: true}});
function seekLate() {{
  out.stage = "seeking";
  v.addEventListener("seeked", () => {{
    out.lateTime = v.currentTime;
    out.lateTries = 0;
    const first = JSON.stringify(out.first.quads);
    const settle = () => {{                    // a busy machine may paint the seeked frame a little later
      out.late = sample();
      out.lateTries += 1;
      if (JSON.stringify(out.late.quads) === first && out.lateTries < 20) {{ setTimeout(settle, 100); return; }}
      out.stage = "playing";
      v.addEventListener("ended", () => send({{ended: true, endTime: v.currentTime}}), {{once: true}});
      v.currentTime = 0;
      v.play().catch((e) => send({{error: "play: " + e}}));
    }};
    settle();
  }}, {{once: true}});
  v.currentTime = v.duration * 0.8;           // a frame from the second half
}}
</script>
</body></html>
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with byte-range support (browsers only seek in media served with ranges)."""

    results = None                              # set per server

    def do_GET(self):
        rng = self.headers.get("Range", "")
        path = self.translate_path(self.path)
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        if not m or not os.path.isfile(path):
            return super().do_GET()
        data = open(path, "rb").read()
        size = len(data)
        if m.group(1):
            start, end = int(m.group(1)), int(m.group(2)) if m.group(2) else size - 1
        else:                                   # bytes=-N: the last N bytes
            start, end = max(0, size - int(m.group(2) or 0)), size - 1
        end = min(end, size - 1)
        if start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start:end + 1])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.results.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def chromium():
    exe = find_chromium()
    if exe is not None and not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        pytest.fail(f"VIDGAN_CHROMIUM={exe} is not an executable file; point it at a Chromium binary or unset it.")
    if exe is None:
        pytest.skip("no Chromium binary found (install Debian's chromium or set VIDGAN_CHROMIUM)")
    return exe


def run_page(exe, folder, page):
    """Serve `folder` on 127.0.0.1, open `page` in headless Chromium, return the page's JSON report."""
    results = []
    handler = functools.partial(type("H", (_Handler,), {"results": results}), directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = folder / "profile"
    profile.mkdir()
    log_path = folder / "chromium.log"
    url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--mute-audio", "--autoplay-policy=no-user-gesture-required", "--enable-logging=stderr",
           f"--user-data-dir={profile}", url]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not results and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)          # Chromium and the helpers it started
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        server.shutdown()
        server.server_close()
    if not results:
        tail = log_path.read_text(errors="replace")[-4000:]
        why = f"exited with code {proc.returncode}" if proc.returncode not in (None, -signal.SIGTERM) \
            else f"sent no report within {TIMEOUT_S} s"
        pytest.fail(f"headless Chromium ({exe}) {why} for {url}; its output:\n{tail}")
    return results[0]


def close(got, want, tol):
    return all(abs(g - w) <= tol for g, w in zip(got, want))


@pytest.mark.parametrize("ext,mime,h,w", [
    (".mp4", 'video/mp4; codecs="avc1.640028"', 45, 63),       # odd size: padded to 64x46
    (".mp4", 'video/mp4; codecs="avc1.640028"', 720, 1280),    # HD: colours must not shift
    (".webm", 'video/webm; codecs="vp9"', 45, 63),
])
def test_exported_video_plays_in_chromium(chromium, tmp_path, ext, mime, h, w):
    info = {}
    write_video(quadrant_clip(h, w), tmp_path / f"clip{ext}", fps=FPS, info=info)
    (tmp_path / "index.html").write_text(PAGE.format(src=f"clip{ext}", mime=json.dumps(mime), w=w, h=h,
                                                           page_timeout_ms=PAGE_TIMEOUT_S * 1000))
    r = run_page(chromium, tmp_path, "index.html")
    msg = f"page report: {r}"
    assert "error" not in r, msg
    assert r["canPlay"] in ("probably", "maybe"), msg
    assert r["duration"] == pytest.approx(T / FPS, abs=0.07), msg
    assert (r["width"], r["height"]) == (info["width"], info["height"]) == (w + w % 2, h + h % 2), msg
    assert r["lateTime"] == pytest.approx(0.8 * T / FPS, abs=0.07), f"seeking failed; {msg}"
    for frame, colours in (("first", COLOURS), ("late", COLOURS[::-1])):
        s = r[frame]
        assert s["hi"] - s["lo"] > 100, f"{frame} frame drawn to the canvas is blank; {msg}"
        for got, want in zip(s["quads"], colours):
            assert close(got, want, 12), f"{frame} frame colour {got} != {want}; {msg}"
    assert r["ended"] is True, f"playback did not reach the end; {msg}"
