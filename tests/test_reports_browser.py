"""The report opens offline in a real browser: headless Chromium renders it, takes screenshots at a narrow
(480 px) and a wide (1600 px) window, and a measuring script (added to a copy, not to the report) checks
the layout: no horizontal overflow of the page, the summary tables fit at the wide window, key headings.

Runs when Chromium is installed (Debian: ``apt-get install -y chromium chromium-driver``); skipped otherwise.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import reports

CANNED = Path(__file__).parent / "data" / "canned_run"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
HEADINGS = ("Summary", "Pareto fronts", "Latency, throughput and memory vs batch size", "Per-operator time breakdown",
            "Ablations: LSNet-T token mixers", "Accuracy sources", "Failed or skipped cells", "Environment")
# Measures the laid-out page and writes the result into the DOM, which --dump-dom prints.
MEASURE = """<script>
window.addEventListener("load", function () {
  var doc = document.documentElement, out = {win: window.innerWidth, page: doc.scrollWidth, summary: [],
      headings: Array.prototype.map.call(document.querySelectorAll("h2"), function (h) { return h.textContent; })};
  var s = document.getElementById("summary"), el = s.nextElementSibling;
  while (el && el.tagName !== "H2") {
    el.querySelectorAll("table").forEach(function (t) {
      out.summary.push({table: t.getBoundingClientRect().width, box: t.parentElement.clientWidth}); });
    el = el.nextElementSibling;
  }
  var pre = document.createElement("pre"); pre.id = "measured"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

pytestmark = pytest.mark.skipif(BROWSER is None,
                                reason="Chromium is not installed (apt-get install -y chromium chromium-driver)")


def _flags(tmp_path: Path) -> list[str]:
    return [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]


def _shoot(tmp_path: Path, url: str, width: int, height: int) -> Image.Image:
    png = tmp_path / f"shot-{width}.png"
    proc = subprocess.run([*_flags(tmp_path), f"--screenshot={png}", f"--window-size={width},{height}", url],
                          capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    img = Image.open(png).convert("RGB")
    assert img.size == (width, height)
    return img


def _measure(tmp_path: Path, html: Path, width: int) -> dict:
    probe = tmp_path / f"probe-{width}.html"
    probe.write_text(html.read_text().replace("</body>", MEASURE + "</body>"))
    proc = subprocess.run([*_flags(tmp_path), f"--window-size={width},2000", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="measured">(.*?)</pre>', proc.stdout, flags=re.S)
    assert m, f"the measuring script did not run; chromium said:\n{proc.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("browser") / "run"
    shutil.copytree(CANNED, run)
    return reports.render(run)


def test_report_renders_in_headless_chromium(page, tmp_path):
    url = page.resolve().as_uri()
    img = _shoot(tmp_path, url, 1400, 3000)
    # a real page: many distinct colours (text, tables, plot markers), not a blank or error page
    colours = img.resize((350, 750)).getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200
    proc = subprocess.run([*_flags(tmp_path), "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("<svg") >= 8 and "Pareto fronts" in proc.stdout  # the parsed DOM keeps the inline SVGs
    assert proc.stdout.count("<title>") > 20   # hover texts survive parsing


@pytest.mark.parametrize("width", [480, 1600])
def test_layout_at_narrow_and_wide_windows(page, tmp_path, width):
    img = _shoot(tmp_path, page.resolve().as_uri(), width, 2400)
    shutil.copy(tmp_path / f"shot-{width}.png", page.parent / f"shot-{width}.png")  # kept for a person to look at
    small = img.resize((width // 4, 600))
    colours = small.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "blank screenshot"
    # not blank anywhere in the first screen: every horizontal band holds some ink
    grey = small.convert("L")
    bands = [grey.crop((0, y, grey.width, y + 100)) for y in range(0, 300, 100)]
    assert all(b.getextrema()[0] < 200 for b in bands)
    m = _measure(tmp_path, page, width)
    assert m["page"] <= m["win"] + 1, f"the page overflows horizontally at {width} px: {m}"
    for h in HEADINGS:
        assert h in m["headings"], h
    assert m["summary"], "no summary table"
    if width >= 1600:
        assert all(t["table"] <= t["box"] + 1 for t in m["summary"]), f"a summary table overflows: {m['summary']}"
