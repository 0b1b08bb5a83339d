"""Overview's "Now playing" (issue 25, item 3) in a real headless browser, in light and dark.

The served dashboard (``make dashboard``'s process) asks the sandbox Spotify API on loopback,
as it would ask Spotify: during a play it names the track and draws how far it is; when the
sandbox's clock moves to a silent night, the widget says so by itself (its fragment refreshes
every ``now_playing.REFRESH_S`` seconds), without the page being reloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from app import now_playing
from spotify_assets_tests.fixtures.dashboard import (
    CHROMIUM,
    chromium,
    rendered_text,
    serve_dashboard,
    served_env,
)
from spotify_assets_tests.test_now_playing import _during_a_play
from spotify_sandbox import SandboxServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test-services.sh)"
    ),
]

SCHEMES = ["light", "dark"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def served(dashboard_snapshot: Path, sandbox: SandboxServer, tmp_path: Path) -> Iterator[str]:
    """The dashboard over the known history, asking the sandbox what plays (its own token store)."""
    env = served_env(
        SPOTIFY_WAREHOUSE_SNAPSHOT=str(dashboard_snapshot),
        SPOTIFY_DATA_DIR=str(tmp_path / "data"),
        SPOTIFY_SANDBOX_URL=sandbox.url,
        SPOTIFY_TIMEZONE="UTC",
    )
    with serve_dashboard(env, tmp_path / "dashboard.log") as dash:
        yield dash.url


#: The widget's text, once Streamlit drew it (the paragraph that starts "Now playing:").
WIDGET_JS = """() => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
    .map(e => e.innerText.trim()).find(t => t.startsWith('Now playing:')) || null"""


@pytest.mark.parametrize("scheme", SCHEMES)
def test_now_playing_on_the_served_overview_and_between_plays(browser, served, sandbox, scheme):
    play = _during_a_play(sandbox)  # 20 s before the end of a play
    name, artist = play["track"]["name"], play["track"]["artists"][0]["name"]
    duration = play["track"]["duration_ms"]
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, color_scheme=scheme)
    page = context.new_page()
    try:
        page.goto(served, wait_until="domcontentloaded")
        page.wait_for_function(f"({WIDGET_JS})() !== null", timeout=60_000)
        rendered_text(page)
        assert page.evaluate(WIDGET_JS) == f"Now playing: {name} - {artist}"
        bar = page.locator('[data-testid="stProgress"] [role="progressbar"]')
        assert bar.count() == 1
        assert int(bar.get_attribute("aria-valuenow") or -1) == int((duration - 20_000) / duration * 100)

        # A silent night on the sandbox's clock: the widget follows within one refresh, in place.
        sandbox.set_now(pd.Timestamp(play["played_at"]).floor("D") + pd.Timedelta(hours=3))
        page.evaluate("window.__spSamePage = true")
        page.wait_for_function(
            "document.body.innerText.includes('Now playing: nothing right now.')",
            timeout=(now_playing.REFRESH_S + 30) * 1000,
        )
        assert page.evaluate("window.__spSamePage === true")  # refreshed in place, not reloaded
        text = rendered_text(page)
        assert f"Now playing: {name}" not in text
        assert page.locator('[data-testid="stProgress"]').count() == 0
    finally:
        context.close()
