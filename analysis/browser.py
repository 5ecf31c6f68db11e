"""Look at a report the way a person would: headless Chromium renders it and screenshots it.

``screenshot(html, png)`` opens the page in Debian's ``chromium`` (no sandbox, no GPU,
background networking off, every host name unresolvable so nothing can be fetched) and
drives it over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3 in,
fd 4 out, JSON messages ending in NUL). Over that pipe it hears what a person would see in
the console: ``console.error`` calls, uncaught exceptions, failed loads; it asks the page
whether every ``<img>`` decoded, and where every figure was laid out (a ``PageCheck``).
The plain ``--screenshot`` flag would be simpler, but its logging prints console messages
without their level, so an error cannot be told from a log line.

As a command, ``python analysis/browser.py REPORT.html [--screenshot OUT.png]`` writes the
screenshot (default: beside the report, ``REPORT.png``), prints what it found and exits 0
for a clean render, 1 when the page had console errors or broken images, 2 when it could
not look (no such file, no Chromium, Chromium failed).

Left out: other browsers, and waiting for anything after the load event (reports have no
network and no timers).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # a page that reaches for the network fails loudly
    "--remote-debugging-pipe",
)
WIDTH = 1280
MAX_HEIGHT = 16_000  # pixels; a longer page is cut there

# Every <figure>'s image (an <img> or inline <svg>) as laid out: its label and its box in
# page pixels; the page's own width, which is wider than the window when something overflows.
LAYOUT_JS = """JSON.stringify({
  page_width: document.documentElement.scrollWidth,
  images: document.images.length,
  figures: Array.from(document.querySelectorAll('figure')).map(f => {
    const shown = f.querySelector('img, svg') || f;
    const box = shown.getBoundingClientRect();
    return {label: shown.getAttribute('alt') || shown.getAttribute('aria-label') || '',
            x: box.left + window.scrollX, y: box.top + window.scrollY,
            width: box.width, height: box.height};
  })
})"""


@dataclass(frozen=True)
class Box:
    """Where one figure's image was drawn, in CSS pixels of the page."""

    label: str  # its alt text or aria-label
    x: float
    y: float
    width: float
    height: float


@dataclass
class PageCheck:
    """What rendering a page showed."""

    problems: list[str] = field(default_factory=list)  # console errors, failed loads, bad images
    images: int = 0  # <img> elements (every one decoded unless a problem says otherwise)
    figures: list[Box] = field(default_factory=list)  # in page order
    page_width: int = 0  # the document's scroll width: above the window width, it overflows
    width: int = 0  # of the screenshot
    height: int = 0


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or did not answer in time."""


def chromium_path() -> str | None:
    """The Chromium executable on PATH (Debian package ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    *,
    width: int = WIDTH,
    height: int | None = None,
    timeout: float = 60.0,
) -> PageCheck:
    """Render ``html_path``, write a PNG screenshot to ``png_path``, return what it showed.

    The window and screenshot are ``width`` pixels wide and, by default, as tall as the
    page (capped at ``MAX_HEIGHT``). ``PageCheck.problems`` holds one line per console
    error, uncaught exception, failed load or image that did not decode; empty means a
    clean render. Raises ``BrowserError`` when Chromium is missing or fails, and
    ``FileNotFoundError`` when there is no file at ``html_path``.
    """
    source = Path(html_path)
    if not source.is_file():
        why = "is not a file" if source.exists() else "does not exist"
        raise FileNotFoundError(f"{source} {why}")
    exe = chromium_path()
    if exe is None:
        raise BrowserError("chromium is not on PATH (Debian: apt-get install chromium)")
    url = source.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="marl-chromium-") as profile:
        session = _Session(exe, profile, timeout)
        try:
            check, png = session.render(url, width, height)
        finally:
            session.close()
    Path(png_path).write_bytes(png)
    return check


class _Session:
    """One Chromium process and one page, spoken to over the DevTools pipe."""

    def __init__(self, exe: str, profile: str, timeout: float):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds() -> None:
            # In the child: the protocol wants fd 3 (in) and fd 4 (out). Move both ends above
            # 10 first, so placing one cannot overwrite the other; dup2 makes them inheritable.
            high_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            high_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        # close_fds=False: with it, Popen would close fds 3 and 4 after wire_fds ran. Every
        # other descriptor Python opened is close-on-exec, so nothing else leaks.
        self._process = subprocess.Popen(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=wire_fds,
            close_fds=False,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._deadline = time.monotonic() + timeout
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._session_id: str | None = None

    # ---------------------------------------------------------------- protocol

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One command; waits for its answer, keeping the events that arrive meanwhile."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session_id is not None:
            message["sessionId"] = self._session_id
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply["result"]
            self._events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for i, event in enumerate(self._events):
            if event.get("method") == method:
                return self._events.pop(i)
        while True:
            event = self._receive()
            if event.get("method") == method:
                return event
            self._events.append(event)

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self._deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, left))
            if not ready:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                stderr = self._process.stderr.read().decode(errors="replace")[-2000:]
                raise BrowserError(f"chromium exited (status {self._process.poll()}): {stderr}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    # ---------------------------------------------------------------- page

    def render(self, url: str, width: int, height: int | None) -> tuple[PageCheck, bytes]:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session_id = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height or 900,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        broken = self.send(
            "Runtime.evaluate",
            expression=(
                "JSON.stringify(Array.from(document.images)"
                ".filter(i => !i.complete || i.naturalWidth === 0)"
                ".map(i => i.alt || i.src.slice(0, 60)))"
            ),
            returnByValue=True,
        )["result"]["value"]
        if height is None:
            page = self.send(
                "Runtime.evaluate",
                expression="document.documentElement.scrollHeight",
                returnByValue=True,
            )["result"]["value"]
            height = min(int(page), MAX_HEIGHT)
            self.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        layout = json.loads(
            self.send("Runtime.evaluate", expression=LAYOUT_JS, returnByValue=True)["result"][
                "value"
            ]
        )
        shot = self.send("Page.captureScreenshot", format="png")
        problems = [_describe(event) for event in self._events]
        problems = [p for p in problems if p is not None]
        problems += [f"image did not load: {name}" for name in json.loads(broken)]
        check = PageCheck(
            problems=problems,
            images=layout["images"],
            figures=[Box(**box) for box in layout["figures"]],
            page_width=int(layout["page_width"]),
            width=width,
            height=height or 900,
        )
        return check, base64.b64decode(shot["data"])

    def close(self) -> None:
        try:
            self._session_id = None
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._process.stderr.close()


def _describe(event: dict[str, Any]) -> str | None:
    """A console error, uncaught exception or failed load as one line; None for the rest."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text", "")
        return f"uncaught exception at line {details.get('lineNumber', 0) + 1}: {text}"
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
        return f"console.{params['type']}: {args}"
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        entry = params["entry"]
        return f"{entry['source']} error: {entry['text']} {entry.get('url', '')}".rstrip()
    return None


# --------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    """``python analysis/browser.py REPORT.html``: screenshot it, say what went wrong."""
    parser = argparse.ArgumentParser(
        prog="python analysis/browser.py",
        description="Render an HTML report in headless Chromium, save a screenshot, and "
        "report console errors and images that did not decode.",
    )
    parser.add_argument("report", help="the HTML file, e.g. a run folder's report.html")
    parser.add_argument(
        "--screenshot", metavar="PNG", help="where to save it (default: REPORT.png beside it)"
    )
    parser.add_argument("--width", type=int, default=WIDTH, help=f"pixels (default {WIDTH})")
    parser.add_argument(
        "--height", type=int, help=f"pixels (default: the whole page, at most {MAX_HEIGHT})"
    )
    args = parser.parse_args(argv)
    if not 200 <= args.width <= 8000:
        parser.error(f"--width must be 200 to 8000 pixels, got {args.width}")
    if args.height is not None and not 200 <= args.height <= MAX_HEIGHT:
        parser.error(f"--height must be 200 to {MAX_HEIGHT} pixels, got {args.height}")
    report = Path(args.report)
    out = Path(args.screenshot) if args.screenshot else report.with_suffix(".png")
    if not out.parent.is_dir():
        print(
            f"error: cannot write the screenshot to {out}: no folder {out.parent}", file=sys.stderr
        )
        return 2
    try:
        check = screenshot(report, out, width=args.width, height=args.height)
    except (BrowserError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the screenshot cannot be written there
        print(
            f"error: cannot write the screenshot to {out}: {err.strerror or err}", file=sys.stderr
        )
        return 2
    print(f"screenshot: {out} ({check.width} x {check.height} px)")
    broken = [p for p in check.problems if p.startswith("image did not load")]
    print(
        f"images: {check.images - len(broken)} of {check.images} decoded; "
        f"figures: {len(check.figures)}"
        + (f", narrowest {min(b.width for b in check.figures):.0f} px" if check.figures else "")
    )
    if check.page_width > check.width:
        print(f"note: the page is {check.page_width} px wide, wider than the window")
    for problem in check.problems:
        print(problem)
    errors = len(check.problems) - len(broken)
    print(f"console errors: {errors}, broken images: {len(broken)}")
    return 1 if check.problems else 0


if __name__ == "__main__":
    sys.exit(main())
