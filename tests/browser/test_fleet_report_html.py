# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML fleet report in a real browser: Debian's Chromium, headless, on the prod inventory's fleet.

The page is written by the preflight role's template (roles/preflight/templates/preflight.html.j2) and asked about
through the DevTools protocol (tests/browser/devtools.py): the browser's computed styles and element boxes say that
the text is readable (size, contrast), that nothing overflows a 1280 px window or its cell, that each verdict has its
colour and the chosen model its outline, and that a host name holding markup stayed text. The browser's own
screenshots (first screen and whole page) and PDF are kept in tests/output/browser/ (ignored by git) to look at;
nothing here decodes them.

Chromium comes from scripts/apt-prereqs.sh browser. The tests skip only when it is missing and cannot be installed here
(not root); as root, a missing Chromium is a failure.
"""

import json
import os
import re
import shutil
import struct

import jinja2
import pytest

from . import fleet_fixture
from .devtools import Browser

pytestmark = pytest.mark.slow

OUTPUT = os.path.join(fleet_fixture.REPO, "tests", "output", "browser")
TEMPLATES = os.path.join(fleet_fixture.REPO, "roles", "preflight", "templates")
WIDTH = 1280

# What each state looks like (the template's stylesheet): cell background, text colour.
COLOURS = {
    "fits": ("#d3f0da", "#146c2e"),
    "tight": ("#ffe9b3", "#8a5300"),
    "insufficient": ("#f9d0cc", "#a50e0e"),
    "unsupported": ("#f9d0cc", "#a50e0e"),
    "band": ("#e3e6f3", "#3c4675"),
    "unreachable": ("#e4e4e4", "#4a4a4a"),
    "failed": ("#e4e4e4", "#4a4a4a"),
    "unchecked": ("#e4e4e4", "#4a4a4a"),
}
CHOSEN = "#1a56db"

# Everything the tests ask the page, in one call: styles and boxes as the browser computed them.
MEASURE = r"""
JSON.stringify((() => {
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const css = e => getComputedStyle(e);
  const parentBackground = e => { for (let p = e; p; p = p.parentElement) { const b = css(p).backgroundColor;
                                   if (b !== 'rgba(0, 0, 0, 0)' && b !== 'transparent') return b; }
                                  return 'rgb(255, 255, 255)'; };
  const texts = [...document.querySelectorAll('h1, p, th, td span, li, .hn, .hw, .pick, .cpu, caption, footer')]
    .filter(e => e.innerText.trim());
  return {
    viewport: {width: innerWidth, height: innerHeight},
    document: {scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
               height: document.documentElement.scrollHeight},
    scripts: document.querySelectorAll('script').length,
    text: document.body.innerText,
    body: {background: css(document.body).backgroundColor, color: css(document.body).color},
    matrix: box(document.getElementById('matrix')),
    cells: [...document.querySelectorAll('td.cell')].map(td => ({
      host: td.closest('tr').dataset.host, candidate: td.dataset.candidate, state: td.dataset.state,
      chosen: td.classList.contains('chosen'), background: css(td).backgroundColor, color: css(td).color,
      shadow: css(td).boxShadow, text: td.innerText, box: box(td),
      overflows: td.scrollWidth > td.clientWidth || td.scrollHeight > td.clientHeight})),
    hosts: [...document.querySelectorAll('tr[data-host]')].map(tr => ({
      host: tr.dataset.host, text: tr.querySelector('th').innerText, box: box(tr.querySelector('th')),
      overflows: tr.querySelector('th').scrollWidth > tr.querySelector('th').clientWidth})),
    texts: texts.map(e => ({tag: e.tagName, size: parseFloat(css(e).fontSize), color: css(e).color,
                            background: parentBackground(e), box: box(e), text: e.innerText.slice(0, 60)})),
  };
})())
"""


def _rgb(colour):
    """'#d3f0da' or 'rgb(211, 240, 218)' -> (211, 240, 218)."""
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return tuple(int(float(x)) for x in re.findall(r"[\d.]+", colour)[:3])


def contrast(foreground, background):
    """WCAG 2 contrast ratio of two colours."""
    def luminance(colour):
        channels = []
        for value in _rgb(colour):
            value /= 255.0
            channels.append(value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4)
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def png_size(data):
    """(width, height) from a PNG's header chunk (the picture itself is not read)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path:
        return path
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and this user cannot install it (scripts/apt-prereqs.sh browser)")
    pytest.fail("chromium is missing: run scripts/apt-prereqs.sh browser (CI runs it as root before pytest)")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The prod fleet's report, written by the role's template as ansible.builtin.template writes it."""
    directory = tmp_path_factory.mktemp("fleet-report")
    report = fleet_fixture.prod_fleet_report()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    path = directory / "preflight.html"
    path.write_text(env.get_template("preflight.html.j2").render(__preflight_report=report), encoding="utf-8")
    return report, path


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    instance = Browser(chromium, tmp_path_factory.mktemp("chromium"))
    yield instance
    instance.close()


def measure(browser, html_path, height):
    browser.open(html_path.as_uri(), WIDTH, height)
    return json.loads(browser.evaluate(MEASURE))


def keep(data, name):
    os.makedirs(OUTPUT, exist_ok=True)
    with open(os.path.join(OUTPUT, name), "wb") as handle:
        handle.write(data)


def test_first_screen_at_1280_by_900(browser, page, tmp_path):
    report, html_path = page
    dom = measure(browser, html_path, 900)
    assert dom["viewport"] == {"width": 1280, "height": 900}
    shot = browser.screenshot(str(tmp_path / "fleet-report.png"))
    keep(shot, "fleet-report.png")
    assert png_size(shot) == (1280, 900)
    # Data-centre hosts come first: fitting cells, insufficient ones (the A100s cannot hold every 32B, nor run FP8)
    # and the chosen-model outline, all on the first screen.
    first = [c for c in dom["cells"] if c["box"]["top"] < 900]
    assert len([c for c in first if c["state"] == "fits"]) >= 4
    assert len([c for c in first if c["state"] in ("insufficient", "unsupported")]) >= 4
    assert [c for c in first if c["chosen"]]
    # Nothing runs past the right margin at 1280 px: no horizontal scrolling, the matrix inside the window.
    assert dom["document"]["scrollWidth"] <= dom["document"]["clientWidth"] == WIDTH, dom["document"]
    assert 0 <= dom["matrix"]["left"] and dom["matrix"]["right"] <= WIDTH - 16


def test_text_is_readable(browser, page):
    _report, html_path = page
    dom = measure(browser, html_path, 900)
    assert contrast(dom["body"]["color"], dom["body"]["background"]) >= 7
    assert len(dom["texts"]) > 100
    for item in dom["texts"]:
        assert item["size"] >= 10, item  # the smallest type (tags, badges) is 10.5 px
        assert contrast(item["color"], item["background"]) >= 4.5, item  # WCAG AA for text
        assert item["box"]["right"] <= WIDTH, item


def test_every_cell_has_its_verdict_colour_and_fits_its_box(browser, page, tmp_path):
    report, html_path = page
    dom = measure(browser, html_path, 2600)
    shot = browser.screenshot(str(tmp_path / "fleet-report-full.png"), full_page=True)
    keep(shot, "fleet-report-full.png")
    assert png_size(shot)[0] == WIDTH and png_size(shot)[1] == dom["document"]["height"]
    hosts = [row["host"] for row in report["hosts"]]
    assert len(dom["cells"]) == len(hosts) * len(report["candidates"]) == 60
    states = {}
    for cell in dom["cells"]:
        expected = report["matrix"][cell["host"]][cell["candidate"]]
        assert cell["state"] == expected["state"]
        background, colour = COLOURS[cell["state"]]
        assert _rgb(cell["background"]) == _rgb(background), cell
        assert _rgb(cell["color"]) == _rgb(colour), cell
        assert contrast(cell["color"], cell["background"]) >= 4.5, cell
        assert not cell["overflows"], cell
        assert cell["box"]["right"] <= WIDTH - 16, cell
        states[cell["state"]] = states.get(cell["state"], 0) + 1
        # The chosen model of each host is outlined in the chosen colour, and only it.
        assert (CHOSEN_RGB in _shadow_colours(cell["shadow"])) == cell["chosen"], cell
    # Every state of the example fleet is shown, as many times as the report has it.
    for state in ("fits", "tight", "insufficient", "unsupported", "unreachable"):
        assert states.get(state) == sum(1 for cells in report["matrix"].values() for c in cells.values()
                                        if c["state"] == state) > 0, state
    assert sum(1 for c in dom["cells"] if c["chosen"]) == report["totals"]["with_choice"] == 9
    for host in dom["hosts"]:
        assert not host["overflows"] and host["box"]["right"] <= WIDTH, host


CHOSEN_RGB = _rgb(CHOSEN)


def _shadow_colours(shadow):
    return [tuple(int(x) for x in match) for match in re.findall(r"rgb\((\d+), (\d+), (\d+)\)", shadow or "")]


def test_rendered_dom_has_the_matrix_and_no_injected_markup(browser, page):
    report, html_path = page
    dom = measure(browser, html_path, 900)
    hosts = [row["host"] for row in report["hosts"]]
    assert sorted(h["host"] for h in dom["hosts"]) == sorted(hosts) and len(hosts) == 10
    # The host name with markup is text in the page, not an element.
    assert dom["scripts"] == 0
    assert fleet_fixture.HOSTILE_HOST in dom["text"]
    # The context from the detailed sizing of the 7B is in its cells; the others show '-'.
    assert re.search(r"ctx \d+(\.\d)?k", dom["text"]) and "ctx -" in dom["text"]
    # The CPU host of the example fleet is planned as a CPU target: its plan, no GPU figure.
    cpu = [h for h in dom["hosts"] if h["host"] == "cpu-node-01"][0]
    plan = [row for row in report["hosts"] if row["host"] == "cpu-node-01"][0]["cpu_plan"]
    assert "CPU plan: host RAM %s GB" % plan["host_ram_gb"] in cpu["text"]
    assert "GPU" not in cpu["text"].replace("no GPU", "")


def test_prints_to_pdf(browser, page):
    _report, html_path = page
    browser.open(html_path.as_uri(), WIDTH, 900)
    data = browser.print_pdf()
    keep(data, "fleet-report.pdf")
    assert data.startswith(b"%PDF-") and len(re.findall(rb"/Type\s*/Page[^s]", data)) >= 1
