# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML fleet report in a real browser: Debian's Chromium, headless, on the prod inventory's fleet.

Screenshots (read with zlib here, no imaging library) must be the window's size, not blank, show the fits / tight /
insufficient / out-of-band / unreachable cell colours and the chosen-model outline, and keep the 1280 px layout
inside the window. ``--dump-dom`` checks the rendered matrix, and a host name holding markup stays text. The
screenshots are kept in tests/output/browser/ (ignored by git) to look at.

Chromium comes from scripts/apt-prereqs.sh browser. The tests skip only when it is missing and cannot be installed here
(not root); as root, a missing Chromium is a failure.
"""

import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import pytest

from ansible_collections.llmops.deploy.plugins.module_utils import fleet_report_html

from . import fleet_fixture

pytestmark = pytest.mark.slow

OUTPUT = os.path.join(fleet_fixture.REPO, "tests", "output", "browser")
WIDTH = 1280


def _hex(colour):
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


BACKGROUND = {name: _hex(pair[0]) for name, pair in fleet_report_html.COLOURS.items()}
PAGE = _hex("#f6f7f9")


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path:
        return path
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and this user cannot install it (scripts/apt-prereqs.sh browser)")
    pytest.fail("chromium is missing: run scripts/apt-prereqs.sh browser (CI runs it as root before pytest)")


def run_chromium(chromium, tmp_path, *args):
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--force-color-profile=srgb", "--hide-scrollbars",
            "--user-data-dir=%s" % (tmp_path / "chromium-profile")] + list(args)
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180, check=False, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return proc.stdout.decode("utf-8")


def read_png(path):
    """``(width, height, rows)``: rows of (r, g, b) tuples from an 8-bit RGB or RGBA PNG (filters 0-4)."""
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type, _c, _f, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, channels)])
        previous = line
    return width, height, rows


def count_near(rows, colour, tolerance=2):
    return sum(1 for row in rows for pixel in row if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour)))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fleet-report")
    report = fleet_fixture.prod_fleet_report()
    path = directory / "preflight.html"
    path.write_text(fleet_report_html.render_html(report), encoding="utf-8")
    return report, path


def screenshot(chromium, tmp_path, html_path, height, name):
    png = tmp_path / name
    run_chromium(chromium, tmp_path, "--screenshot=%s" % png, "--window-size=%d,%d" % (WIDTH, height),
                 html_path.as_uri())
    assert png.exists(), "chromium wrote no screenshot"
    os.makedirs(OUTPUT, exist_ok=True)
    shutil.copyfile(str(png), os.path.join(OUTPUT, name))
    return read_png(str(png))


def test_first_screen_at_1280_by_900(chromium, tmp_path, page):
    _report, html_path = page
    width, height, rows = screenshot(chromium, tmp_path, html_path, 900, "fleet-report.png")
    assert (width, height) == (1280, 900)
    colours = set(pixel for row in rows for pixel in row)
    assert len(colours) > 200, "the screenshot is (nearly) blank: %d colours" % len(colours)
    # Data-centre hosts come first: green cells, red ones (the A100s cannot hold every 32B, nor run FP8), and the
    # chosen-model outline, all on the first screen.
    assert count_near(rows, BACKGROUND["fits"]) > 40000
    assert count_near(rows, BACKGROUND["insufficient"]) > 20000
    assert count_near(rows, BACKGROUND["chosen"]) > 2000
    # Dark text on the light page: the header and the host names were drawn.
    assert count_near(rows, (0x1f, 0x23, 0x28), tolerance=40) > 3000
    # Nothing runs past the right margin at 1280 px: the last columns of pixels are the page background.
    margin = [row[x] for row in rows[:height] for x in range(WIDTH - 16, WIDTH)]
    assert all(abs(a - b) <= 2 for pixel in margin for a, b in zip(pixel, PAGE)), "content overflows 1280 px"


def test_whole_matrix_shows_every_state(chromium, tmp_path, page):
    _report, html_path = page
    width, height, rows = screenshot(chromium, tmp_path, html_path, 2600, "fleet-report-full.png")
    assert (width, height) == (1280, 2600)
    # Whole cells (about 150 x 70 px each), not only the legend swatches.
    assert count_near(rows, BACKGROUND["tight"]) > 3 * 8000
    assert count_near(rows, BACKGROUND["unreachable"]) > 5 * 8000
    assert count_near(rows, BACKGROUND["fits"]) > 20 * 8000
    assert count_near(rows, BACKGROUND["insufficient"]) > 15 * 8000


class Dom(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self)
        self.tags = []
        self.cells = []
        self.rows = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "td" and "cell" in (attrs.get("class") or "").split():
            self.cells.append((attrs["class"].split(), attrs.get("data-candidate")))
        if tag == "tr" and "data-host" in attrs:
            self.rows.append(attrs["data-host"])

    def handle_data(self, data):
        self.text.append(data)


def test_rendered_dom_has_the_matrix_and_no_injected_markup(chromium, tmp_path, page):
    report, html_path = page
    dom_text = run_chromium(chromium, tmp_path, "--dump-dom", html_path.as_uri())
    dom = Dom()
    dom.feed(dom_text)
    hosts = [row["host"] for row in report["hosts"]]
    candidates = [c["key"] for c in report["candidates"]]
    assert sorted(dom.rows) == sorted(hosts) and len(hosts) == 10
    assert len(dom.cells) == len(hosts) * len(candidates) == 60
    assert sum(1 for classes, _c in dom.cells if "chosen" in classes) == report["totals"]["with_choice"] == 8
    for state in ("fits", "tight", "insufficient", "unreachable"):
        assert any(state in classes for classes, _c in dom.cells), state
    # The host name with markup is text in the page, not an element.
    assert "script" not in dom.tags
    assert fleet_fixture.HOSTILE_HOST in "".join(dom.text)
    assert "&lt;script&gt;alert" in dom_text
    # The context from the detailed sizing of the 7B is in its cells; the others show '-'.
    assert re.search(r"ctx \d+(\.\d)?k", dom_text) and "ctx -" in dom_text


def test_prints_to_pdf(chromium, tmp_path, page):
    _report, html_path = page
    pdf = tmp_path / "fleet-report.pdf"
    run_chromium(chromium, tmp_path, "--print-to-pdf=%s" % pdf, "--no-pdf-header-footer", html_path.as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page[^s]", data)) >= 1
