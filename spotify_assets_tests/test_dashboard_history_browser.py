"""Back works as in any website (issue 25): arriving on a page adds no step to the browser's history.

A typed link's first load wrote the browser's time zone and the default period into the
address, each as a history entry of its own (``/top``, ``/top?tz=…``, ``/top?tz=…&period=…``),
so Back stayed on the page, and so did the first Back after moving to another page. In the
served dashboard, in a real browser: a typed URL stays one entry while the address gains the
view's state, one click in the sidebar is one entry, and one Back returns to the typed page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from spotify_assets_tests.fixtures.dashboard import (
    CHROMIUM,
    chromium,
    rendered_text,
    serve_dashboard,
    served_env,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test-services.sh)"
    ),
]


@pytest.fixture(scope="module")
def served(dashboard_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = served_env(SPOTIFY_WAREHOUSE_SNAPSHOT=str(dashboard_snapshot), SPOTIFY_TIMEZONE="UTC")
    with serve_dashboard(env, tmp_path_factory.mktemp("history") / "dashboard.log") as dash:
        yield dash.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def _title(page, title: str) -> str:  # type: ignore[no-untyped-def]
    """Wait until the page titled ``title`` has finished its run; returns its text."""
    page.wait_for_function(
        f"document.querySelector('h1') && document.querySelector('h1').innerText.trim() === {title!r}",
        timeout=60_000,
    )
    return rendered_text(page)


#: Counts the steps the page adds to the history itself (``pushState``), from before any script.
COUNT_PUSHES = """window.__spPushes = 0; const push = history.pushState.bind(history);
history.pushState = (...args) => { window.__spPushes += 1; return push(...args); };"""


def _opened(browser, url: str, timezone: str):  # type: ignore[no-untyped-def]
    """A new tab that opens ``url`` as a typed link; returns it and its history's length on arrival
    (before the app ran: the new tab's blank page is a step of its own)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, timezone_id=timezone)
    context.add_init_script(COUNT_PUSHES)
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    return context, page, page.evaluate("history.length")


def _query(page) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return parse_qs(urlsplit(page.url).query)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [("/top", {}), ("/top?period=6m", {"period": ["6m"]})],
    ids=["bare", "with-period"],
)
def test_a_typed_link_is_one_step_and_back_returns_to_it(browser, served, typed, kept):
    context, page, arrived = _opened(browser, served + typed, "Asia/Tokyo")
    try:
        _title(page, "Top")
        # The address holds the view's state (the browser's zone, the period) once the page ran...
        page.wait_for_function(
            "location.search.includes('tz=Asia%2FTokyo') && location.search.includes('period=')"
        )
        assert _query(page)["tz"] == ["Asia/Tokyo"]
        assert kept.items() <= _query(page).items() and _query(page)["period"] == kept.get("period", ["all"])
        # ...and the typed link is still one step of the history.
        assert (page.evaluate("window.__spPushes"), page.evaluate("history.length")) == (0, arrived)

        page.locator('[data-testid="stSidebarNav"] a', has_text="When").click()
        _title(page, "When you listen")
        page.wait_for_function("location.pathname.endsWith('/when') && location.search.includes('tz=')")
        assert page.evaluate("history.length") == arrived + 1  # one click, one step

        page.go_back(wait_until="commit")
        _title(page, "Top")
        assert urlsplit(page.url).path.endswith("/top")
        assert kept.items() <= _query(page).items()
    finally:
        context.close()


def test_a_change_the_viewer_makes_is_a_step_back_undoes(browser, served):
    context, page, arrived = _opened(browser, served + "/top", "UTC")
    try:
        _title(page, "Top")
        page.wait_for_function("location.search.includes('period=all')")
        page.get_by_role("radio", name="Last 6 months").click()
        page.wait_for_function("location.search.includes('period=6m')")
        rendered_text(page)
        assert page.evaluate("history.length") == arrived + 1
        page.go_back(wait_until="commit")
        page.wait_for_function("location.search.includes('period=all')")
        _title(page, "Top")
        assert page.evaluate("history.length") == arrived + 1 and urlsplit(page.url).path.endswith("/top")
    finally:
        context.close()
