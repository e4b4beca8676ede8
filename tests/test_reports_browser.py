"""The report opens offline in a real browser: headless Chromium renders it and takes a screenshot.

Runs when Chromium is installed (Debian: ``apt-get install -y chromium chromium-driver``); skipped otherwise.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import reports

CANNED = Path(__file__).parent / "data" / "canned_run"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (apt-get install -y chromium chromium-driver)")
def test_report_renders_in_headless_chromium(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(CANNED, run)
    html = reports.render(run)
    png, dom = tmp_path / "shot.png", tmp_path / "dom.html"
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = html.resolve().as_uri()
    proc = subprocess.run([*flags, f"--screenshot={png}", "--window-size=1400,3000", url],
                          capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    img = Image.open(png).convert("RGB")
    assert img.size == (1400, 3000)
    # a real page: many distinct colours (text, tables, plot markers), not a blank or error page
    colours = img.resize((350, 750)).getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200
    proc = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    dom.write_text(proc.stdout)
    assert proc.stdout.count("<svg") >= 8 and "Pareto fronts" in proc.stdout  # the parsed DOM keeps the inline SVGs
