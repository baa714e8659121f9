"""End to end in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run`.

Uploads a small HDFS log and its labels, moves the threshold, opens every page, lasso-selects on
the embedding map, opens a period of the timeline, searches the templates and downloads both
CSVs. Screenshots of each page go to artifacts/screenshots/
for a reviewer to look at.
"""
from __future__ import annotations

import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, SMALL_LABELS, SMALL_LOG

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SMALL_LOG_LINES = 7481
SMALL_LOG_SESSIONS = 300
START_TIMEOUT_S = 90
STEP_TIMEOUT_MS = 120_000
FLAGGED_TEXT = re.compile(r"^[\d,]+ of [\d,]+ sessions? flagged")  # the sidebar's count


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        reason = "real-browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason + "; in CI it must run (.ci/run installs chromium)")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{process.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit was not healthy within {START_TIMEOUT_S} s")


@pytest.fixture
def dashboard_url(tiny_checkpoint):
    _require_browser()
    port = _free_port()
    env = dict(os.environ, TINYLOGBERT_MODEL=str(tiny_checkpoint))
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _flagged(page) -> int:
    text = page.get_by_test_id("stSidebar").get_by_text(FLAGGED_TEXT).inner_text()
    return int(re.match(r"([\d,]+) of", text).group(1).replace(",", ""))


def _threshold(page) -> str:
    """The threshold as the sidebar states it ("... flagged (x%) at 41.0627")."""
    text = page.get_by_test_id("stSidebar").get_by_text(FLAGGED_TEXT).inner_text()
    return re.search(r" at ([-\d.]+)$", text.strip()).group(1)


def _open(page, name: str) -> None:
    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name, level=1).wait_for(timeout=STEP_TIMEOUT_MS)


def _settled(page) -> None:
    """Wait until Streamlit has been idle (no "running" status widget) for about a second."""
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    quiet_checks = 0
    while quiet_checks < 4:
        if time.monotonic() > deadline:
            raise TimeoutError("the app kept running")
        busy = page.get_by_test_id("stStatusWidget").is_visible()
        quiet_checks = 0 if busy else quiet_checks + 1
        page.wait_for_timeout(250)


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _download(page, label: str, folder: Path) -> list[dict]:
    with page.expect_download(timeout=STEP_TIMEOUT_MS) as info:
        page.get_by_role("button", name=re.compile(label)).click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_upload_threshold_pages_and_download_in_a_real_browser(dashboard_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page.set_default_timeout(STEP_TIMEOUT_MS)
        expect.set_options(timeout=STEP_TIMEOUT_MS)
        page.goto(dashboard_url)
        page.get_by_role("heading", name="Upload a log").wait_for()

        uploaders = page.get_by_test_id("stFileUploader")
        uploaders.filter(has_text="Log file").locator("input[type=file]").set_input_files(SMALL_LOG)
        expect(page.get_by_test_id("stMetricValue").first).to_have_text(f"{SMALL_LOG_LINES:,}")
        uploaders.filter(has_text="Labels CSV").locator("input[type=file]").set_input_files(
            SMALL_LABELS)
        page.get_by_text(re.compile(r"Labels from .*16 anomalous")).wait_for()
        _settled(page)
        _shot(page, "1_upload")

        # Move the threshold as a user can: the share-flagged slider up, with the keyboard.
        sidebar = page.get_by_test_id("stSidebar")
        at_model_threshold = _flagged(page)
        for _ in range(1):  # one press: the tiny model's tied scores can jump to the slider's top
            before = _flagged(page)
            sidebar.get_by_test_id("stSlider").get_by_role("slider").focus()
            page.keyboard.press("PageUp")
            expect(sidebar.get_by_text(FLAGGED_TEXT)).not_to_have_text(
                re.compile(rf"^{before:,} of"))
            _settled(page)
        flagged = _flagged(page)
        assert flagged > at_model_threshold
        # The exact threshold box follows the slider.
        expect(sidebar.get_by_test_id("stNumberInput").locator("input")).to_have_value(
            _threshold(page))

        _open(page, "Score distribution")
        page.locator(".js-plotly-plot").nth(1).wait_for()
        expect(page.get_by_test_id("stMetricValue").first).to_have_text(f"{flagged:,}")
        _settled(page)
        _shot(page, "2_score_distribution")

        _open(page, "ROC / PR")
        page.locator(".js-plotly-plot").nth(1).wait_for()
        page.get_by_text("ROC-AUC").wait_for()
        _settled(page)
        _shot(page, "3_roc_pr")

        _open(page, "Embedding explorer")
        points = page.locator(".js-plotly-plot .scatterlayer .point")
        points.first.wait_for()
        box = points.nth(0).bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x - 20, y - 20)
        page.mouse.down()
        for dx, dy in [(20, -20), (20, 20), (-20, 20), (-20, -20)]:  # a lasso around one point
            page.mouse.move(x + dx, y + dy, steps=5)
        page.mouse.up()
        page.get_by_text(re.compile(r"\d+ selected session")).wait_for()
        _settled(page)
        _shot(page, "4_embedding_explorer")

        _open(page, "Anomalies")
        page.get_by_text(f"{flagged:,} sessions at or above").wait_for()
        page.get_by_text("Why:").wait_for()
        _settled(page)
        _shot(page, "5_anomalies")

        _open(page, "Timeline")
        page.locator(".js-plotly-plot").first.wait_for()
        page.get_by_text(re.compile(r"^\d[\d,]* sessions? in 2008-11-")).wait_for()
        page.get_by_text("Why:").wait_for()
        expect(page.get_by_test_id("stMetricValue").first).to_have_text(f"{flagged:,}")
        period = page.get_by_role("combobox", name="Period")
        before = period.input_value()
        _settled(page)
        _shot(page, "7_timeline")
        bars = page.locator(".js-plotly-plot .barlayer .trace").first.locator(".point")
        boxes = [bars.nth(i).bounding_box() for i in range(bars.count())]
        tall = [box for box in boxes if box and box["height"] > 3]
        assert len(tall) > 1
        box = tall[-1]  # the last period with sessions: a click on its bar picks it
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(period).not_to_have_value(before)
        _settled(page)

        _open(page, "Templates")
        page.get_by_test_id("stDataFrame").first.wait_for()
        search = page.get_by_role("textbox", name="Search")
        search.fill("verification")
        search.press("Enter")
        page.get_by_text(re.compile(r"^1 template matching 'verification'")).wait_for()
        _settled(page)
        table = page.get_by_test_id("stDataFrame").first.bounding_box()
        page.mouse.click(table["x"] + 14, table["y"] + 35 + 17)  # the first row's check box
        page.get_by_text(re.compile(r"^\d[\d,]* sessions? with this line")).wait_for()
        page.get_by_text("Why:").wait_for()
        _settled(page)
        _shot(page, "8_templates")

        _open(page, "Download")
        page.get_by_text(f"({flagged:,} anomalous sessions)").wait_for()
        _settled(page)
        _shot(page, "6_download")
        lines = _download(page, "Download lines CSV", tmp_path)
        sessions = _download(page, "Download sessions CSV", tmp_path)
        browser.close()

    assert len(lines) == SMALL_LOG_LINES
    assert [int(row["line_no"]) for row in lines] == list(range(1, SMALL_LOG_LINES + 1))
    assert len(sessions) == SMALL_LOG_SESSIONS
    assert sum(row["is_anomaly"] == "true" for row in sessions) == flagged
