# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Headless Chromium driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``): no port, no
websocket, no driver to install. Chromium reads commands on its fd 3 and writes replies and events on its fd 4, one
JSON message per NUL-terminated record (https://chromedevtools.github.io/devtools-protocol/).

The tests ask the browser itself: computed styles and element boxes through ``Runtime.evaluate``, screenshots
(``Page.captureScreenshot``, kept as artefacts) and PDF (``Page.printToPDF``) from its own renderer.
"""

import base64
import fcntl
import json
import os
import select
import subprocess
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--force-color-profile=srgb", "--hide-scrollbars", "--remote-debugging-pipe"]


class DevToolsError(Exception):
    pass


class Browser:
    """One headless Chromium with one page (a tab) attached; ``call`` sends a command to that page."""

    def __init__(self, chromium, profile_dir, timeout=120):
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._events = []
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Chromium's fds 3 and 4; moved out of the way first so the dup2 calls cannot clobber each other.
        high_r = _dup_at_least(to_browser_r, 10)
        high_w = _dup_at_least(from_browser_w, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def child_fds():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        env = dict(os.environ, HOME=str(profile_dir))
        self.stderr_path = os.path.join(str(profile_dir), "chromium.stderr")
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(  # pylint: disable=subprocess-popen-preexec-fn
                [chromium] + FLAGS + ["--user-data-dir=%s" % os.path.join(str(profile_dir), "profile"),
                                      "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env, close_fds=False,
                preexec_fn=child_fds)
        os.close(high_r)
        os.close(high_w)
        self._out = to_browser_w
        self._in = from_browser_r
        try:
            targets = self.call("Target.getTargets", session=False)["targetInfos"]
            page = [t for t in targets if t["type"] == "page"]
            target_id = page[0]["targetId"] if page else self.call(
                "Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target_id, "flatten": True},
                                     session=False)["sessionId"]
        except Exception:
            self.close()
            raise

    def _send(self, message):
        data = json.dumps(message).encode("utf-8") + b"\0"
        while data:
            data = data[os.write(self._out, data):]

    def _receive(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise DevToolsError("no answer from Chromium within %d s (stderr: %s)" % (
                    self.timeout, self.stderr_tail()))
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise DevToolsError("Chromium closed the pipe (stderr: %s)" % self.stderr_tail())
            self._buffer += chunk
        record, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(record.decode("utf-8"))

    def stderr_tail(self):
        with open(self.stderr_path, "rb") as handle:
            return handle.read()[-2000:].decode("utf-8", "replace")

    def call(self, method, params=None, session=True):
        """Send a command and return its result; events that arrive meanwhile are kept for ``wait_event``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method):
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self._events:
                if event["method"] == method:
                    self._events.remove(event)
                    return event.get("params", {})
            self._events.append(self._receive(deadline))

    def open(self, url, width, height):
        """Load ``url`` in a ``width`` x ``height`` CSS-pixel window and wait for its load event."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.call("Page.enable")
        self._events = []
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise DevToolsError("the page's script failed: %s" % result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, path, full_page=False):
        """The browser's own PNG of the window (or of the whole page), written to ``path``."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        with open(path, "wb") as handle:
            handle.write(data)
        return data

    def print_pdf(self):
        return base64.b64decode(self.call("Page.printToPDF", {"displayHeaderFooter": False,
                                                              "printBackground": True})["data"])

    def close(self):
        try:
            self._send({"id": 0, "method": "Browser.close"})
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass


def _dup_at_least(fd, lowest):
    """A duplicate of ``fd`` numbered ``lowest`` or above (so that it is neither 3 nor 4), closed on exec."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
