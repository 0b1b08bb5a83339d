"""The raw recently-played pages in the lake, and what a run learns from more than one of them.

A run lands the page it polled (``raw_recent_tracks``), exactly as received. The sensor lands the
page of each peek it requests a run for, too. Spotify shows only the latest 50 plays, so the plays
that end between that peek and the run's own poll push the oldest of the peek's out of the window,
and the run would never see them: seconds in real time, but hours when the run is held back (a
429 storm fails the runs at once until it ends; the 168-hour soaks lost 16, then 9 plays so). The sensor hands the page's lake path to the run
(``assets/ingest.RawRecentTracksConfig``), the run merges the page's plays with its own and judges the gap on
what the pages saw together (``unseen_spans``): a gap only where no page reached.

Why the lake and not the run's config: the page is what Spotify answered, which the lake keeps
as the audit copy anyway (and ``users remove --delete-data`` deletes with the listener's other
files); the run config carries only the path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spotify_assets.encoding import content_digest
from spotify_assets.lake_layout import RAW_RECENTLY_PLAYED_KIND, user_dir
from spotify_assets.resources.lake import LakeResource
from spotify_assets.spotify.client import RecentlyPlayed, item_key, played_at_ms


def land_page(lake: LakeResource, user_id: str, items: Sequence[Any], fetched_at: datetime) -> str:
    """Land a page's items as received (compact JSON, named by its content: idempotent); its path."""
    body = json.dumps(list(items), sort_keys=True, separators=(",", ":")).encode()
    path = f"{user_dir(RAW_RECENTLY_PLAYED_KIND, user_id)}/fetched_date={fetched_at:%Y-%m-%d}/{content_digest(body)}.json"
    return lake.write_bytes(path, body).path


def read_page(lake: LakeResource, path: str) -> list[Any] | None:
    """A landed page's items, or None when the file is gone (folded by ``compact-lake`` days later)."""
    if not lake.exists(path):
        return None
    items = json.loads(lake.read_bytes(path))
    if not isinstance(items, list):
        raise ValueError(f"lake page {path} is not a list of play-history items")
    return items


@dataclass(frozen=True)
class Page:
    """A page the sensor was shown and handed to the run: its items as received, the cursor it was
    asked after, and whether it was full (then it vouches for nothing before its oldest play)."""

    items: Sequence[Any]
    after_ms: int | None
    full: bool


def union_items(window: RecentlyPlayed, pages: Sequence[Page]) -> list[Any]:
    """The run's items and the handed pages' newer than the run's cursor, each play once, newest
    first; items without a readable played_at last (for quarantine), each once by content."""
    readable: dict[tuple[int, str | None], tuple[int, Any]] = {}
    unreadable: dict[str, Any] = {}
    for items in (window.items, *(page.items for page in pages)):
        for item in items:
            ms = played_at_ms(item)
            if ms is None:
                unreadable.setdefault(json.dumps(item, sort_keys=True, default=str), item)
            elif window.after_ms is None or ms > window.after_ms:
                readable.setdefault(item_key(item, ms), (ms, item))
    newest_first = [item for _, item in sorted(readable.values(), key=lambda p: p[0], reverse=True)]
    return newest_first + list(unreadable.values())


def unseen_spans(window: RecentlyPlayed, pages: Sequence[Page], fetched_ms: int) -> list[tuple[int, int]]:
    """(start, end) in ms, after the run's cursor, that neither the run's window nor a handed page
    showed: where plays may be missing (up to ``fetched_ms``, the run's poll, when nothing did).

    A handed page vouches for the plays up to its newest: from its oldest when it was full, from
    the cursor it was asked after when it was not; the run's window vouches for everything after
    its oldest, or after the cursor when it was not full. No cursor (a first run): nothing to miss."""
    cursor = window.after_ms
    if cursor is None:
        return []
    seen: list[tuple[float, float]] = []
    for page in pages:
        times = [ms for ms in map(played_at_ms, page.items) if ms is not None]
        if not times:
            continue
        if page.full:
            seen.append((min(times), max(times)))
        else:
            seen.append((float("-inf") if page.after_ms is None else page.after_ms, max(times)))
    if not window.possible_gap:
        seen.append((cursor, float("inf")))
    elif window.oldest_ms is not None:
        seen.append((window.oldest_ms, float("inf")))
    spans: list[tuple[int, int]] = []
    reached: float = cursor
    for start, end in sorted(seen):
        if start > reached:
            spans.append((int(reached), int(start)))
        reached = max(reached, end)
    if reached < fetched_ms:  # a full window of unreadable items: it vouched for nothing
        spans.append((int(reached), fetched_ms))
    return spans
