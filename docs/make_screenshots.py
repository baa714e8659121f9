"""Regenerate the README screenshots: the shipped model on the bundled HDFS sample, in Chromium.

    python docs/make_screenshots.py        # writes docs/screenshots/*.png

Needs Debian's chromium (/usr/bin/chromium) and Playwright for Python; starts its own Streamlit
server on a free loopback port and stops it afterwards.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAGES = [("Score distribution", "2_score_distribution"), ("ROC / PR", "3_roc_pr"),
         ("Embedding explorer", "4_embedding_explorer"), ("Anomalies", "5_anomalies"),
         ("Download", "6_download"), ("Timeline", "7_timeline"), ("Templates", "8_templates")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(page, quiet: int = 8) -> None:
    """Wait until Streamlit has shown no "running" indicator for ``quiet`` checks in a row."""
    calm = 0
    for _ in range(1200):
        busy = page.get_by_test_id("stStatusWidget").is_visible()
        calm = 0 if busy else calm + 1
        if calm >= quiet:
            return
        page.wait_for_timeout(250)


def main() -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "TINYLOGBERT_MODEL": str(ROOT / "checkpoint")}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
         "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(180_000)
            page.goto(url)
            page.get_by_role("heading", name="Upload a log").wait_for()
            # The README's first step: the sample (sample_data/HDFS_heldout.log.gz) and its labels.
            page.get_by_role("button", name="Use the HDFS sample").click()
            page.get_by_test_id("stMetricValue").filter(has_text="45,066").wait_for()
            page.get_by_text(re.compile(r"Labels from .*anomalous")).wait_for()
            page.mouse.move(5, 5)  # off the button: its tooltip would cover the caption
            settle(page)
            page.screenshot(path=str(OUT / "1_upload.png"))
            for name, file in PAGES:
                page.get_by_test_id("stSidebarNavItems").get_by_role("link", name=name).click()
                page.get_by_role("heading", name=name, level=1).wait_for()
                if name == "Embedding explorer":
                    page.locator(".js-plotly-plot .scatterlayer .point").first.wait_for()
                if name == "Timeline":
                    page.locator(".js-plotly-plot .barlayer .point").first.wait_for()
                    page.get_by_text("Why:").wait_for()
                if name == "Templates":  # a rare line, and the sessions that hold it
                    search = page.get_by_role("textbox", name="Search")
                    search.fill("unexpected error")
                    search.press("Enter")
                    page.get_by_text(re.compile(r"^1 template matching")).wait_for()
                    settle(page)
                    table = page.get_by_test_id("stDataFrame").first.bounding_box()
                    page.mouse.click(table["x"] + 14, table["y"] + 35 + 17)  # its check box
                    page.get_by_text(re.compile(r"sessions? with this line")).wait_for()
                settle(page)
                page.wait_for_timeout(1500)  # canvas tables paint after the script ends
                page.screenshot(path=str(OUT / f"{file}.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"wrote {len(PAGES) + 1} screenshots to {OUT}")


if __name__ == "__main__":
    main()
