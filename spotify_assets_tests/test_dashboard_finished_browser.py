"""Issue 25's page defects in a real headless browser, in light and dark: links that look like
links, Back that goes back, the Recent table that opens tracks and fits, phone width.

The served dashboard over the fixture warehouse, as ``test_dashboard_browser.py`` serves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spotify_assets_tests.fixtures.dashboard import CHROMIUM, rendered_text
from spotify_assets_tests.test_dashboard_browser import CLIPPED_JS, SHOTS, _serve, _settle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test-services.sh)"
    ),
]

SCHEMES = ["light", "dark"]


@pytest.fixture(scope="module")
def served(dashboard_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(tmp_path_factory, dashboard_snapshot) as url:
        yield url


#: Names as long as real ones get ("... (Remastered 2011) [feat. ...]"): a table's widths are
#: judged on these, not on the fixture's short names.
LONG = " (Live at the Royal Albert Hall, Remastered 2011) [feat. The Midnight Shadows]"


@pytest.fixture(scope="module")
def served_long_names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from spotify_assets_tests.fixtures.dashboard import build_dashboard_warehouse, dashboard_plays

    plays = dashboard_plays()
    for column in ("track_name", "artist_names", "album_name"):
        plays[column] = plays[column] + LONG
    snapshot = build_dashboard_warehouse(tmp_path_factory.mktemp("long_names"), plays)
    with _serve(tmp_path_factory, snapshot) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from spotify_assets_tests.fixtures.dashboard import chromium

    with chromium() as b:
        yield b


def _page(browser, url: str, scheme: str, width: int = 1440, height: int = 1100):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    return context, page


#: Every detail link on screen: its text, colour, underline, and the colours it sits on.
LINKS_JS = """
() => {
  const rgb = s => (s.match(/\\d+(\\.\\d+)?/g) || []).slice(0, 3).map(Number);
  const bg = rgb(getComputedStyle(document.querySelector('[data-testid="stApp"]')).backgroundColor);
  const text = rgb(getComputedStyle(document.querySelector('[data-testid="stMarkdownContainer"] p, h1')).color);
  return [...document.querySelectorAll('a.sp-link')].filter(a => a.offsetParent).map(a => {
    const s = getComputedStyle(a);
    return {label: a.innerText, href: a.getAttribute('href'), color: rgb(s.color),
            underline: s.textDecorationLine.includes('underline'), bg, text};
  });
}
"""


def _luminance(rgb: list[float]) -> float:
    lin = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: list[float], b: list[float]) -> float:
    hi, lo = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    ("path", "title", "text", "expected"),
    [
        ("top", "Top", "Northern Glass", {"Northern Glass", "Open the track", "Open the artist"}),
        ("track?id=t1", "Northern Glass", "Glass Harbour", {"Aurora Lane", "Glass Harbour"}),
        ("wrapped?year=2024", "Your 2024 in music", "Download", {"1. Aurora Lane · 60 plays"}),
    ],
    ids=["top", "track", "wrapped"],
)
def test_links_look_like_links(served, browser, scheme, path, title, text, expected):
    """Underlined, in a colour of their own that reads on the background (4.5:1), in both themes."""
    context, page = _page(browser, f"{served}/{path}", scheme)
    try:
        _settle(page, title, text, 0)
        links = page.evaluate(LINKS_JS)
        assert expected <= {link["label"] for link in links}, links
        for link in links:
            assert link["underline"], link
            assert link["color"] != link["text"], link  # not the body text's colour
            assert _contrast(link["color"], link["bg"]) >= 4.5, link
            assert "tz=UTC" in link["href"], link  # carries the view: nothing to add on arrival
    finally:
        context.close()


def _back_lands_where_it_left(page, go) -> None:  # type: ignore[no-untyped-def]
    """Do ``go`` (which opens a track page) from the page shown, then Back: the same address."""
    rendered_text(page)
    before = page.url
    go()
    page.wait_for_function("location.pathname.endsWith('/track')", timeout=60_000)
    page.wait_for_function("!!document.querySelector('h1')", timeout=60_000)
    rendered_text(page)
    page.go_back(wait_until="domcontentloaded")
    page.wait_for_function(f"location.href === {before!r}", timeout=30_000)
    page.wait_for_function("!!document.querySelector('h1')", timeout=60_000)
    rendered_text(page)
    assert page.url == before  # still: nothing pushed on arrival


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("how", ["cover card", "open the track"])
def test_back_from_a_linked_page_returns_to_the_page(served, browser, scheme, how):
    """One Back from the page a link opened shows the page the link was on, at its address:
    not the same track page again (an added ``tz=`` was a history entry of its own), not
    ``/top?id=<track id>`` (the page link wrote its id into Top's address first)."""
    context, page = _page(browser, f"{served}/top", scheme)
    try:
        _settle(page, "Top", "Northern Glass", 0)
        if how == "cover card":
            _back_lands_where_it_left(page, lambda: page.locator(".sp-card a.sp-link").first.click())
        else:
            _back_lands_where_it_left(page, lambda: page.get_by_text("Open the track").click())
        assert "id=" not in page.url and page.url.split("?")[0].endswith("/top")
    finally:
        context.close()


def _first_row_marker(page):  # type: ignore[no-untyped-def]
    """Where the first data row's selection marker is (the table is drawn on a canvas)."""
    box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    return box["x"] + 12, box["y"] + 35 + 18


@pytest.mark.parametrize("scheme", SCHEMES)
def test_recent_fits_at_1400_px_with_long_names(served_long_names, browser, scheme):
    """At 1,400 px no column of Recent is cut off (Source was), with names as long as real ones."""
    context, page = _page(browser, f"{served_long_names}/recent", scheme, width=1400, height=1000)
    try:
        _settle(page, "Recent plays", "232 matching plays", 0)
        assert page.evaluate(CLIPPED_JS) == []
        page.screenshot(path=str(SHOTS / f"dashboard-recent-1400-{scheme}.png"))
    finally:
        context.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_recent_rows_open_the_track(served, browser, scheme):
    """The newest play (Lantern, 29 Mar) opens its track page as Top's rows do; Back returns
    to Recent without ``id=``."""
    context, page = _page(browser, f"{served}/recent", scheme, width=1400, height=1000)
    try:
        _settle(page, "Recent plays", "232 matching plays", 0)

        def click() -> None:
            x, y = _first_row_marker(page)
            page.mouse.click(x, y)

        _back_lands_where_it_left(page, click)
        assert "id=" not in page.url and page.url.split("?")[0].endswith("/recent")
    finally:
        context.close()


#: The headline numbers' rows (distinct tops of the metrics in their container) and where Top's
#: list (its tabs) starts, in CSS pixels from the top of the page.
PHONE_JS = """
() => ({
  rows: new Set([...document.querySelectorAll('.st-key-sp_headlines [data-testid="stMetric"]')]
    .map(e => Math.round(e.getBoundingClientRect().top))).size,
  metrics: document.querySelectorAll('.st-key-sp_headlines [data-testid="stMetric"]').length,
  list: document.querySelector('[data-testid="stTabs"]')
    ? document.querySelector('[data-testid="stTabs"]').getBoundingClientRect().top : null,
})
"""
PHONE = {"width": 390, "height": 844}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    ("path", "title", "text"), [("", "Overview", "232"), ("top", "Top", "Northern Glass")]
)
def test_phone_width(served, browser, scheme, path, title, text):
    """At 390 px the five headline numbers share two rows (they stacked one per row) and
    nothing in them is cut; Top's list starts on the first screen (it started 1.5 screens down)."""
    context, page = _page(browser, f"{served}/{path}", scheme, **PHONE)
    try:
        _settle(page, title, text, 0)
        shape = page.evaluate(PHONE_JS)
        assert shape["metrics"] == 5 and shape["rows"] <= 2, shape
        # The numbers fit (a phone may scroll a wide table sideways; a number must not be cut).
        assert [c for c in page.evaluate(CLIPPED_JS) if c.startswith(("metric", "control"))] == []
        if path == "top":
            assert shape["list"] is not None and shape["list"] < PHONE["height"], shape
        page.screenshot(path=str(SHOTS / f"dashboard-phone-{path or 'overview'}-{scheme}.png"))
    finally:
        context.close()


@pytest.fixture(scope="module")
def served_twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Alice and Bob with the same history: 7 shared artists and 11 shared tracks (more than
    the 10 rows Compare's lists showed before they scrolled inside their box)."""
    from spotify_assets.schema import conform
    from spotify_assets_tests.fixtures.dashboard import (
        ALICE,
        BOB,
        _listener,
        build_dashboard_warehouse,
        dashboard_plays,
        write_registry,
    )

    rows = []
    for user in (ALICE, BOB):
        rows += _listener(dashboard_plays().to_dict("records"), user)
    import pandas as pd

    folder = tmp_path_factory.mktemp("twins")
    snapshot = build_dashboard_warehouse(folder, conform(pd.DataFrame(rows), "plays"))
    write_registry(folder)
    with _serve(tmp_path_factory, snapshot, SPOTIFY_DATA_DIR=str(folder)) as url:
        yield url


@pytest.mark.parametrize("scheme", SCHEMES)
def test_compare_lists_are_shown_whole(served_twins, browser, scheme):
    context, page = _page(browser, f"{served_twins}/compare?user=sandbox-alice&with=sandbox-bob", scheme)
    try:
        _settle(page, "Compare", "Shared tracks", 0)
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=\"stDataFrame\"] .dvn-scroller').length >= 2",
            timeout=60_000,
        )
        rendered_text(page)
        assert [c for c in page.evaluate(CLIPPED_JS) if "scrolls down" in c] == []
        page.screenshot(path=str(SHOTS / f"dashboard-compare-twins-{scheme}.png"), full_page=True)
    finally:
        context.close()
