"""Issue 25, item 4 in a real browser, light and dark: the period follows the listener from page
to page through the sidebar's links (which drop the link's parameters), and a link with a value
the page cannot show gets its one-line notice and the default.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spotify_assets_tests.fixtures.dashboard import CHROMIUM, chromium, rendered_text
from spotify_assets_tests.test_dashboard_browser import SHOTS, _open, _serve, _settle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test-services.sh)"
    ),
]


@pytest.fixture(scope="module")
def served(dashboard_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(tmp_path_factory, dashboard_snapshot) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_period_follows_the_sidebar_links(served, browser, scheme):
    context, page = _open(browser, f"{served}/top?period=custom&from=2024-02-01&to=2024-02-29", scheme)
    try:
        _settle(page, "Top", "Dune Radio", 0)
        for title, text in (
            ("When you listen", "Longest streak"),
            ("Mood", "Mood map"),
            ("Overview", "Plays"),
        ):
            page.locator('[data-testid="stSidebarNav"] a', has_text=title.split()[0]).first.click()
            _settle(page, title, text, 0)
            page.wait_for_function(
                "location.search.includes('period=custom') && location.search.includes('from=2024-02-01')"
                " && location.search.includes('to=2024-02-29')",
                timeout=30_000,
            )
            body = rendered_text(page)
            assert "Date range (inclusive)" in body, title
            shown = " ".join(i.input_value() for i in page.locator('[data-testid="stDateInput"] input').all())
            assert "2024-02-01" in shown and "2024-02-29" in shown, (title, shown)
        assert "Your listening from 01 Feb 2024 to 14 Feb 2024 (UTC)." in body
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"dashboard-period-across-pages-{scheme}.png"))
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_an_invalid_period_in_the_link_gets_a_notice(served, browser, scheme):
    context, page = _open(browser, f"{served}/when?period=decade", scheme)
    try:
        _settle(page, "When you listen", "is not one this page knows", 0)
        body = rendered_text(page)
        assert "The link's period=decade is not one this page knows: showing All time." in body
        page.wait_for_function("location.search.includes('period=all')", timeout=30_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"dashboard-period-notice-{scheme}.png"))
    finally:
        context.close()
