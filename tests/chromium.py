"""Headless Chromium for tests: open a local page, find its plots, take a full-page screenshot.

Drives Debian's ``chromium`` over the DevTools protocol (a pipe would need a second process;
a websocket on 127.0.0.1 is simpler): navigate, wait for ``load``, read the bounding box and
decoded size of every ``img.plot`` with ``Runtime.evaluate``, then ``Page.captureScreenshot``
of the whole page. Network access is blocked for the page (``--host-rules``), so a report that
needed the network would render without it.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CANDIDATES = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Page:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def wait_event(self, method: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            msg = json.loads(self.ws.recv(timeout=timeout))
            if msg.get("method") == method:
                return
        raise TimeoutError(method)


PLOTS_JS = """JSON.stringify([...document.querySelectorAll('img.plot')].map(img => {
  const r = img.getBoundingClientRect();
  return {id: img.closest('figure').id, x: r.left + window.scrollX, y: r.top + window.scrollY,
          width: r.width, height: r.height, natural: img.naturalWidth, complete: img.complete};
}))"""


def screenshot_plots(chromium: str, page: Path, width: int = 1100) -> tuple[bytes, list[dict]]:
    """(PNG of the whole page, every plot's box in page pixels with its decoded width)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
             "--host-rules=MAP * ~NOTFOUND", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            end = time.monotonic() + 60
            while not (port_file.is_file() and port_file.read_text().strip()):
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("chromium did not start its DevTools endpoint")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
                target = next(t for t in json.load(r) if t["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
                return _capture(_Page(ws), page, width)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _capture(tab: _Page, page: Path, width: int) -> tuple[bytes, list[dict]]:
    tab.call("Page.enable")
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        width=width, height=900, deviceScaleFactor=1, mobile=False,
    )  # fmt: skip
    tab.call("Page.navigate", url=page.resolve().as_uri())
    tab.wait_event("Page.loadEventFired")
    plots = json.loads(
        tab.call("Runtime.evaluate", expression=PLOTS_JS, returnByValue=True)["result"]["value"]
    )
    height = tab.call("Runtime.evaluate", expression="document.body.scrollHeight",
                      returnByValue=True)["result"]["value"]  # fmt: skip
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        width=width, height=int(height) + 40, deviceScaleFactor=1, mobile=False,
    )  # fmt: skip
    shot = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    return base64.b64decode(shot["data"]), plots
