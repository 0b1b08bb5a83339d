"""Where plays may be missing when a run merges its own window with pages the sensor handed it.

Pure rules of ``raw_pages.unseen_spans`` and ``union_items``: the sensor-and-run path that uses
them runs on the real sandbox and pipeline in ``test_sensor_full_peek.py``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from spotify_assets.raw_pages import Page, union_items, unseen_spans
from spotify_assets.spotify.client import RECENTLY_PLAYED_LIMIT, RecentlyPlayed

CURSOR = 1_000_000
NOW = 9_000_000


def _item(ms: int, track: str = "t") -> dict[str, Any]:
    return {"played_at": pd.Timestamp(ms, unit="ms", tz="UTC").isoformat(), "track": {"id": track}}


def _items(oldest: int, newest: int) -> list[dict[str, Any]]:
    step = (newest - oldest) // (RECENTLY_PLAYED_LIMIT - 1)
    return [_item(oldest + i * step) for i in reversed(range(RECENTLY_PLAYED_LIMIT))]


def _page(oldest: int, newest: int) -> Page:
    """A full page the sensor was shown (asked after the run's cursor)."""
    return Page(items=_items(oldest, newest), after_ms=CURSOR, full=True)


def _window(items: list[Any], full: bool) -> RecentlyPlayed:
    times = [int(pd.Timestamp(i["played_at"]).timestamp() * 1000) for i in items if isinstance(i, dict)]
    return RecentlyPlayed(
        items=items,
        after_ms=CURSOR,
        raw_items=RECENTLY_PLAYED_LIMIT if full else len(items),
        oldest_ms=min(times, default=None),
    )


def test_a_window_that_reached_the_cursor_leaves_nothing_unseen_whatever_was_handed() -> None:
    assert unseen_spans(_window([_item(2_000_000)], full=False), [_page(3_000_000, 4_000_000)], NOW) == []


def test_a_full_window_alone_leaves_the_span_before_its_oldest() -> None:
    assert unseen_spans(_window(_items(5_000_000, 8_000_000), full=True), [], NOW) == [(CURSOR, 5_000_000)]


def test_a_handed_page_that_meets_the_run_window_moves_the_gap_back_to_its_own_oldest() -> None:
    run = _window(_items(5_000_000, 8_000_000), full=True)
    assert unseen_spans(run, [_page(3_000_000, 6_000_000)], NOW) == [(CURSOR, 3_000_000)]


def test_a_handed_page_apart_from_the_run_window_leaves_a_span_on_each_side() -> None:
    run = _window(_items(6_000_000, 8_000_000), full=True)
    assert unseen_spans(run, [_page(3_000_000, 3_980_000)], NOW) == [
        (CURSOR, 3_000_000),
        (3_980_000, 6_000_000),
    ]


def test_a_full_window_of_unreadable_items_vouches_for_nothing() -> None:
    run = RecentlyPlayed(items=["junk"], after_ms=CURSOR, raw_items=RECENTLY_PLAYED_LIMIT, oldest_ms=None)
    assert unseen_spans(run, [], NOW) == [(CURSOR, NOW)]


def test_a_first_run_has_no_cursor_so_nothing_to_miss() -> None:
    run = RecentlyPlayed(items=_items(5_000_000, 8_000_000), after_ms=None, raw_items=50, oldest_ms=5_000_000)
    assert unseen_spans(run, [], NOW) == []


def test_the_union_keeps_each_play_once_newest_first_and_none_at_or_before_the_cursor() -> None:
    run = _window([_item(7_000_000), _item(5_000_000), "junk"], full=False)
    handed = [_item(5_000_000), _item(4_000_000), _item(CURSOR), "junk"]
    union = union_items(run, [Page(items=handed, after_ms=None, full=False)])
    assert union == [_item(7_000_000), _item(5_000_000), _item(4_000_000), "junk"]


def test_a_page_that_was_not_full_vouches_from_the_cursor_it_was_asked_after() -> None:
    """The run came hours after the peek (a 429 storm): its window full and newer than the peek."""
    run = _window(_items(6_000_000, 8_000_000), full=True)
    peek = Page(items=[_item(3_000_000), _item(2_000_000)], after_ms=CURSOR, full=False)
    assert unseen_spans(run, [peek], NOW) == [(3_000_000, 6_000_000)]
