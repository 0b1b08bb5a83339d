"""The served dashboard in a real headless browser (Debian's Chromium driven by Playwright).

Streamlit runs as a subprocess on a free loopback port over the fixture warehouse; the test
loads pages in light and dark mode, waits for the charts to draw, checks the visible text and
leaves screenshots in ``artifacts/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test-services.sh)"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served_dashboard(dashboard_snapshot: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "SPOTIFY_WAREHOUSE_SNAPSHOT": str(dashboard_snapshot),
        "SPOTIFY_TIMEZONE": "UTC",
        "SPOTIFY_DEPLOYMENT": "local",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app" / "streamlit_app.py"),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("streamlit did not become healthy")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _open(browser, url: str, scheme: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, color_scheme=scheme)
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    return context, page


def _wait_for_charts(page, count: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
    page.wait_for_function(
        f'document.querySelectorAll(\'[data-testid="stVegaLiteChart"] canvas, '
        f'[data-testid="stVegaLiteChart"] svg.marks\').length >= {count}',
        timeout=60_000,
    )
    page.wait_for_timeout(500)  # let the last chart finish its first paint before the screenshot


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_overview_in_the_browser(served_dashboard, browser, scheme):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page = _open(browser, served_dashboard, scheme)
    try:
        _wait_for_charts(page, 1)
        body = page.inner_text("body")
        assert "Overview" in body and "Plays" in body and "232" in body
        assert "Aurora Lane" in body and "Hours listened" in body
        assert "Traceback" not in body and "Error" not in body
        shot = SHOTS / f"dashboard-overview-{scheme}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        context.close()


def test_when_page_in_the_browser(served_dashboard, browser):
    context, page = _open(browser, f"{served_dashboard}/when", "dark")
    try:
        _wait_for_charts(page, 2)
        body = page.inner_text("body")
        assert "When you listen" in body and "20:00" in body and "10 days" in body
        page.screenshot(path=str(SHOTS / "dashboard-when-dark.png"), full_page=True)
    finally:
        context.close()


def test_top_page_in_the_browser(served_dashboard, browser):
    context, page = _open(browser, f"{served_dashboard}/top", "light")
    try:
        page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)
        page.wait_for_function("document.body.innerText.includes('Northern Glass')", timeout=60_000)
        page.wait_for_timeout(800)
        body = page.inner_text("body")
        assert "Aurora Lane" in body and "Northern Glass" in body
        page.screenshot(path=str(SHOTS / "dashboard-top-light.png"), full_page=True)
    finally:
        context.close()
