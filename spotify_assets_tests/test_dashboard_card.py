"""The Wrapped share card (issue 25): text of any length fits, the cover shows or a placeholder does.

The card is laid out (``card.layout``) before it is drawn, so what a name turned into is
checked on the layout, and the cover on the PNG's pixels. Covers come from a base64 ``data:``
URL or an HTTP server on loopback: nothing is fetched from the internet.
"""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from app import card
from spotify_assets.schema import conform
from spotify_assets_tests.fixtures.dashboard import (
    build_dashboard_warehouse,
    dashboard_plays,
    first_day_plays,
)
from spotify_assets_tests.fixtures.sockets import free_port

#: The name the card cut ("All The Gardens - The G…") and longer ones.
LONG_TRACK = "All The Gardens - The Gentle Mirrors, The Midnight Shadows"
LONGER = (
    "Symphony No. 9 in D minor, Op. 125 'Choral': IV. Presto - Allegro assai (Live at the Royal Albert Hall)"
)
NO_SPACES = "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaah"


def _summary(**extra: object) -> card.WrappedSummary:
    base: dict[str, object] = {
        "year": 2026,
        "minutes": 105_452,
        "plays": 31_204,
        "top_artists": [
            "The Gentle Mirrors",
            NO_SPACES,
            "Basalt",
            "The Midnight Shadows and the Long Name",
            "Fable",
        ],
        "top_tracks": [LONG_TRACK, LONGER, "Low Orbit - Basalt", "Magma - Basalt", "Lantern - Glow Worm"],
        "busiest_day": "Wed 14 Feb (11 h 44 min)",
        "longest_streak": "42 days",
        "discoveries": "1,204 artists, 9,881 tracks, and a great many albums besides those",
        "mood": "happy / upbeat (energy 0.71, valence 0.66)",
    }
    return card.WrappedSummary(**(base | extra))  # type: ignore[arg-type]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_every_text_is_shown_whole_and_inside_the_card():
    placed = card.layout(_summary())
    texts = {p.text: p for p in placed}
    for name in (LONG_TRACK, LONGER, NO_SPACES):
        shown = next(p for t, p in texts.items() if name in t)
        assert "…" not in shown.shown, shown
        assert shown.shown.replace(" ", "") == shown.text.replace(" ", "")  # every character, in order
    assert texts[f"1. {LONG_TRACK}"].shown == f"1. {LONG_TRACK}"
    for p in placed:
        assert p.size >= card.MIN_SIZE
        left, top, right, bottom = p.box
        assert 0 < left < right <= card.WIDTH - card.MARGIN + 1 and 0 < top < bottom <= card.HEIGHT
        for line in p.lines:  # each line fits the box's width at its size
            assert card._width(line, p.size) <= right - left
        if p.text != "Spotify Listening Platform":
            assert bottom <= card.FOOTER_Y, p
        assert not _overlap(p.box, card.COVER_BOX), p
    for a, b in combinations(placed, 2):
        assert not _overlap(a.box, b.box), (a, b)


def test_a_text_too_long_for_any_size_ends_in_an_ellipsis_inside_its_box():
    absurd = "The Longest Name " * 40
    placed = card.layout(_summary(top_tracks=[absurd], mood=absurd))
    for p in placed:
        if absurd.strip() in p.text:
            assert p.shown.endswith("…") and p.size == card.MIN_SIZE
            assert all(card._width(line, p.size) <= p.box[2] - p.box[0] for line in p.lines)
    for a, b in combinations(placed, 2):
        assert not _overlap(a.box, b.box), (a, b)


def _png(colour: str, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 640), colour).save(out, format=fmt)
    return out.getvalue()


def _pixel(png: bytes, xy: tuple[int, int]) -> tuple[int, ...]:
    return tuple(Image.open(io.BytesIO(png)).convert("RGB").getpixel(xy))  # type: ignore[arg-type]


CENTRE = ((card.COVER_BOX[0] + card.COVER_BOX[2]) // 2 + card.COVER // 4, card.COVER_BOX[1] + card.COVER // 6)


def test_the_cover_is_drawn_when_there_is_one():
    png = card.summary_png(_summary(cover=_png("#E4508F", "JPEG")))
    r, g, b = _pixel(png, CENTRE)
    assert abs(r - 0xE4) < 6 and abs(g - 0x50) < 6 and abs(b - 0x8F) < 6


@pytest.mark.parametrize("cover", [None, b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\x89PNG truncated"])
def test_a_missing_or_unreadable_cover_leaves_the_drawn_placeholder(cover):
    png = card.summary_png(_summary(cover=cover))
    assert _pixel(png, CENTRE) == Image.new("RGB", (1, 1), card.PLACEHOLDER).getpixel((0, 0))
    # The note drawn on it: the placeholder is not an empty square.
    box = Image.open(io.BytesIO(png)).convert("RGB").crop(card.COVER_BOX)
    assert len(box.getcolors(maxcolors=100_000) or []) > 2


@pytest.fixture
def cover_server() -> Iterator[str]:
    """Covers over HTTP on loopback, as a CDN would serve them."""
    body = _png("#2BB3C0")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/cover.png"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cover_bytes_from_a_data_url_and_over_http(cover_server):
    import base64

    png = _png("#7C5CFF")
    assert card.cover_bytes("data:image/png;base64," + base64.b64encode(png).decode()) == png
    fetched = card.cover_bytes(f"{cover_server}/cover.png")
    assert fetched is not None and _pixel(card.summary_png(_summary(cover=fetched)), CENTRE)[:3] == (
        0x2B,
        0xB3,
        0xC0,
    )
    assert card.cover_bytes(f"{cover_server}/missing.png") is None  # 404
    assert card.cover_bytes(f"http://127.0.0.1:{free_port()}/cover.png") is None  # nobody listening
    assert card.cover_bytes("javascript:alert(1)") is None and card.cover_bytes(None) is None


@pytest.mark.parametrize(
    ("starts", "so_far", "heading"),
    [
        (None, False, "My 2026 in music"),
        (date(2026, 1, 1), False, "My 2026 in music"),
        (None, True, "My 2026 in music so far"),
        (date(2026, 3, 14), False, "My 2026 in music from March"),
        (date(2026, 11, 20), True, "My 2026 in music from November so far"),
    ],
)
def test_the_heading_says_when_the_year_is_partial(starts, so_far, heading):
    """Shared without the page and its note, a card of six weeks must not read as a whole year's."""
    placed = card.layout(_summary(starts=starts, so_far=so_far))
    assert placed[0].text == heading and placed[0].shown == heading  # whole, on the card's first line(s)


def _card_heading(env: pytest.MonkeyPatch, snapshot: Path, year: str) -> str:
    """The heading of the card the Wrapped page hands its download button (the real drawing, watched)."""
    from spotify_assets_tests.test_dashboard_periods import _opened

    drawn: list[str] = []
    real = card.summary_png

    def watched(summary: card.WrappedSummary) -> bytes:
        drawn.append(card.layout(summary)[0].text)
        return real(summary)

    env.setattr(card, "summary_png", watched)
    _opened(env, snapshot, "wrapped", year=year)
    assert drawn
    return drawn[-1]


def test_the_wrapped_page_cards_a_year_the_history_starts_in_as_partial(dashboard_env, dashboard_snapshot):
    """The fixture's history starts on 10 Jan 2024 (the page says so in a note the card has not)."""
    assert _card_heading(dashboard_env, dashboard_snapshot, "2024") == "My 2024 in music from January"


@pytest.fixture(scope="module")
def this_year_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known history and plays yesterday: this year is not over."""
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    plays = pd.concat([dashboard_plays(), first_day_plays(day)], ignore_index=True)
    return build_dashboard_warehouse(tmp_path_factory.mktemp("card_now"), conform(plays, "plays"))


def test_the_wrapped_page_cards_this_year_so_far(dashboard_env, this_year_snapshot):
    today = datetime.now(UTC).date()
    whole = today == date(today.year, 12, 31)
    assert _card_heading(dashboard_env, this_year_snapshot, str(today.year)) == (
        f"My {today.year} in music" + ("" if whole else " so far")
    )
