"""The served dashboard in a real headless browser (Debian's Chromium driven by Playwright).

``make dashboard`` (``fixtures/dashboard.serve_dashboard``) runs as a subprocess on a free
loopback port over the fixture warehouse; the test loads pages in light and dark mode, waits
for the charts to draw, checks the visible text and leaves screenshots in ``artifacts/screenshots/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from spotify_assets_tests.fixtures.dashboard import (
    CHROMIUM,
    COVER_OFFLINE,
    ROOT,
    chromium,
    rendered_text,
    serve_dashboard,
    served_env,
)

SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test-services.sh)"
    ),
]


@contextmanager
def _serve(tmp: pytest.TempPathFactory, snapshot: Path, **extra_env: str) -> Iterator[str]:
    """The real dashboard over ``snapshot`` (times in UTC); yields the base URL."""
    env = served_env(SPOTIFY_WAREHOUSE_SNAPSHOT=str(snapshot), SPOTIFY_TIMEZONE="UTC", **extra_env)
    with serve_dashboard(env, tmp.mktemp("served") / "dashboard.log") as served:
        yield served.url


@pytest.fixture(scope="module")
def served_dashboard(dashboard_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(tmp_path_factory, dashboard_snapshot) as url:
        yield url


@pytest.fixture(scope="module")
def served_household(household_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Alice and Bob in one warehouse, labelled from the users registry beside it."""
    with _serve(tmp_path_factory, household_snapshot, SPOTIFY_DATA_DIR=str(household_snapshot.parent)) as url:
        yield url


@pytest.fixture(scope="module")
def served_first_day(
    dashboard_snapshot_first_day: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with _serve(tmp_path_factory, dashboard_snapshot_first_day) as url:
        yield url


@pytest.fixture(scope="module")
def served_empty_dashboard(
    dashboard_snapshot_empty: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with _serve(tmp_path_factory, dashboard_snapshot_empty) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def _open(browser, url: str, scheme: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, color_scheme=scheme)
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    return context, page


#: Every page of the ready app: (path, its title, a text it must show, charts it draws).
PAGES = [
    ("", "Overview", "232", 1),
    ("top", "Top", "Northern Glass", 0),
    ("when", "When you listen", "10 days", 2),
    ("mood", "Mood", "tense / angry", 4),
    ("discovery", "Discovery", "New tracks in March 2024", 2),
    ("recent", "Recent plays", "232 matching plays", 0),
    ("artist?id=a1", "Aurora Lane", "Rank among your artists", 3),
    ("track?id=t1", "Northern Glass", "Glass Harbour", 2),
    ("album?id=al4", "Desert Tapes", "Top tracks", 2),
    # Imported plays: the cover the lookup found is unreachable offline; one track still pending.
    ("album?id=al2", "Core Samples", "not been looked up yet", 2),
    ("wrapped?year=2024", "Your 2024 in music", "Download the summary card", 0),
]

#: Elements whose content must fit their box: metric values, segmented controls, and the
#: scrolling area of every visible table (a table that scrolls sideways cuts its last column;
#: one that scrolls down is a box of a few rows). Returns a description of each offender.
CLIPPED_JS = """
() => {
  const out = [];
  const check = (el, what) => {
    if (!el.offsetParent) return;  // hidden (another tab)
    if (el.scrollWidth > el.clientWidth + 1) out.push(`${what} cut sideways: ${el.innerText.slice(0, 40)}`);
  };
  document.querySelectorAll('[data-testid="stMetricValue"], [data-testid="stMetricValue"] *')
    .forEach(el => check(el, 'metric'));
  document.querySelectorAll('[data-testid="stButtonGroup"], [data-testid="stButtonGroup"] *')
    .forEach(el => check(el, 'control'));
  document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller').forEach(el => {
    if (!el.offsetParent) return;
    if (el.scrollWidth > el.clientWidth + 1) out.push(`table scrolls sideways (${el.scrollWidth} > ${el.clientWidth})`);
    if (el.scrollHeight > el.clientHeight + 1 && el.scrollHeight < 10000)
      out.push(`table scrolls down (${el.scrollHeight} > ${el.clientHeight})`);
  });
  return out;
}
"""


#: Images the browser failed to load: each would show as a broken-image icon.
BROKEN_IMAGES_JS = (
    "() => [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src.slice(0, 60))"
)

#: The Top page's cover cards on screen: name, and whether a cover is layered over the placeholder.
CARDS_JS = r"""
() => [...document.querySelectorAll('.sp-card')].filter(c => c.offsetParent).map(c => {
  const bg = getComputedStyle(c.querySelector('.sp-art')).backgroundImage;
  const art = c.querySelector('.sp-art').getBoundingClientRect();
  return {name: c.querySelector('.sp-name').innerText, layers: (bg.match(/url\(/g) || []).length,
          cover: bg.split('url(').length > 2 ? bg.split('url(')[1].slice(1, 30) : '', w: art.width, h: art.height,
          cut: c.querySelector('.sp-name').scrollWidth > c.querySelector('.sp-name').clientWidth + 1};
})
"""


def _settle(page, title: str, text: str, charts: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        f"document.querySelector('h1') && document.querySelector('h1').innerText.includes({title!r})"
        f" && document.body.innerText.includes({text!r})",
        timeout=60_000,
    )
    if charts:
        page.wait_for_function(
            'document.querySelectorAll(\'[data-testid="stVegaLiteChart"] canvas, '
            f'[data-testid="stVegaLiteChart"] svg.marks\').length >= {charts}',
            timeout=60_000,
        )
    # Streamlit draws grey skeletons for elements still on their way; checks and screenshots
    # of a page half drawn would prove nothing.
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stSkeleton\"]')"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=60_000,
    )
    page.wait_for_timeout(800)  # let the last chart and table finish their first paint


def _whole_page(page) -> None:  # type: ignore[no-untyped-def]
    """Make the window as tall as the page: Streamlit scrolls inside its main section, so a
    full-page screenshot would otherwise stop at the first screen (no tables below it)."""
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], section.main')]"
        ".map(e => e.scrollHeight), 0)"
    )
    if height > 1100:
        page.set_viewport_size({"width": 1440, "height": min(int(height) + 40, 12_000)})
        page.wait_for_timeout(800)  # charts redraw for the new size


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("path", "title", "text", "charts"), PAGES, ids=[p[1] for p in PAGES])
def test_every_page_in_the_browser(served_dashboard, browser, scheme, path, title, text, charts):
    _check_page(served_dashboard, browser, scheme, path, title, text, charts)


#: The household's pages (two listeners): Compare, and one listener's Overview picked by link.
HOUSEHOLD_PAGES = [
    ("compare?user=sandbox-alice&with=sandbox-bob", "Compare", "Taste overlap", 2),
    ("?user=sandbox-bob", "Overview", "Ivy Coast", 1),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("path", "title", "text", "charts"), HOUSEHOLD_PAGES, ids=["Compare", "Bob"])
def test_household_pages_in_the_browser(served_household, browser, scheme, path, title, text, charts):
    _check_page(served_household, browser, scheme, path, title, text, charts, prefix="household-")


def _check_page(base, browser, scheme, path, title, text, charts, prefix=""):  # type: ignore[no-untyped-def]
    """Open ``path``, wait for it to draw, screenshot it and check nothing is cut, broken or failing."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page = _open(browser, f"{base}/{path}", scheme)
    try:
        _settle(page, title, text, charts)
        assert "Page not found" not in page.inner_text("body")
        name = prefix + (path.replace("?", "-").replace("=", "-").replace("&", "-").strip("-") or "overview")
        shot = SHOTS / f"dashboard-{name}-{scheme}.png"
        _whole_page(page)
        page.screenshot(path=str(shot), full_page=True)  # first: a failure below leaves the evidence
        assert shot.stat().st_size > 10_000
        body = page.inner_text("body")
        for bad in ("Traceback", "Page not found", "Error"):
            assert bad not in body, bad
        assert page.evaluate(CLIPPED_JS) == []
        assert page.evaluate(BROKEN_IMAGES_JS) == []
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_top_cover_cards_show_covers_or_the_placeholder(served_dashboard, browser, scheme):
    """The top ten as cards: looked-up covers drawn, the unreachable one (offline) and the ones
    never known left as the placeholder, never a broken-image icon; each card square."""
    context, page = _open(browser, f"{served_dashboard}/top", scheme)
    try:
        _settle(page, "Top", "Northern Glass", 0)
        page.wait_for_function("document.querySelectorAll('.sp-card').length >= 10", timeout=60_000)
        grid = page.locator(".sp-grid").first
        grid.scroll_into_view_if_needed()
        grid.screenshot(path=str(SHOTS / f"dashboard-top-cards-{scheme}.png"))
        cards = page.evaluate(CARDS_JS)
        assert len(cards) == 10  # the Tracks tab: its first ten
        by_name = {c["name"].split(" ", 1)[1]: c for c in cards}
        # Northern Glass (imported, looked up): its cover from track_metadata over the placeholder.
        assert by_name["Northern Glass"]["layers"] == 2
        assert by_name["Northern Glass"]["cover"].startswith("data:image/svg+xml;base64")
        # Low Orbit's looked-up cover cannot load (COVER_OFFLINE): the placeholder shows.
        low_orbit = by_name["Low Orbit"]
        assert (
            low_orbit["layers"] == 2 and low_orbit["cover"] and COVER_OFFLINE.startswith(low_orbit["cover"])
        )
        # Magma's lookup is pending and Lantern's album has no cover: the placeholder alone.
        assert by_name["Magma"]["layers"] == by_name["Lantern"]["layers"] == 1
        assert all(abs(c["w"] - c["h"]) < 1 and c["w"] >= 100 and not c["cut"] for c in cards)
        assert page.evaluate(BROKEN_IMAGES_JS) == []
    finally:
        context.close()


def test_the_browsers_time_zone_is_the_default_and_stays_in_the_link(served_dashboard, browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1100}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    try:
        page.goto(f"{served_dashboard}/when", wait_until="domcontentloaded")
        _settle(page, "When you listen", "05:00", 2)  # the peak hour in Tokyo (20:00 UTC)
        page.wait_for_function("location.search.includes('tz=Asia%2FTokyo')", timeout=30_000)
        page.reload(wait_until="domcontentloaded")
        _settle(page, "When you listen", "05:00", 2)
    finally:
        context.close()


@pytest.mark.parametrize("path", ["top", "when", "recent"])
def test_deep_links_on_an_empty_warehouse(served_empty_dashboard, browser, path):
    context, page = _open(browser, f"{served_empty_dashboard}/{path}", "light")
    try:
        page.wait_for_function("document.body.innerText.includes('spotify-assets import')", timeout=60_000)
        body = rendered_text(page)
        assert "Page not found" not in body and "Your listening, your data" in body
        page.screenshot(path=str(SHOTS / f"dashboard-welcome-{path}-light.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize(
    ("path", "title", "text"), [("", "Overview", "Minutes per hour"), ("when", "When you listen", "1 day")]
)
def test_a_first_day_in_the_browser(served_first_day, browser, path, title, text):
    context, page = _open(browser, f"{served_first_day}/{path}", "dark")
    try:
        _settle(page, title, text, 1)
        assert page.evaluate(CLIPPED_JS) == []
        assert "1 days" not in page.inner_text("body")
        page.screenshot(
            path=str(SHOTS / f"dashboard-first-day-{path or 'overview'}-dark.png"), full_page=True
        )
    finally:
        context.close()
