"""``normalize_recently_played``: every malformed API item is quarantined with its reason.

The pipeline tests exercise episodes and local files through the sandbox; the items the
sandbox never produces (not an object, no track, no or unparseable ``played_at``, a null id)
are exercised here, each beside a good item so a reason that swallowed good plays would fail.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from spotify_assets.schema import column_names
from spotify_assets.spotify.normalize import normalize_recently_played, play_key

INGESTED_AT = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


def good_item(
    track_id: str = "4uLU6hMCjMI75M1A2tKUQC", played_at: str = "2026-11-20T20:00:00.123Z"
) -> dict[str, Any]:
    """One recently-played item in the API's shape."""
    return {
        "played_at": played_at,
        "context": {"type": "playlist", "uri": "spotify:playlist:p1"},
        "track": {
            "id": track_id,
            "type": "track",
            "name": "Song",
            "uri": f"spotify:track:{track_id}",
            "duration_ms": 201_000,
            "popularity": 50,
            "explicit": False,
            "is_local": False,
            "artists": [{"id": "a1", "name": "Artist One"}, {"id": "a2", "name": "Artist Two"}],
            "album": {
                "id": "al1",
                "name": "Album",
                "release_date": "2020-01-01",
                "images": [
                    {"url": "https://img/small", "width": 64, "height": 64},
                    {"url": "https://img/large", "width": 640, "height": 640},
                ],
            },
        },
    }


def _with(
    change: dict[str, Any], *, track: dict[str, Any] | None = None, drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    item = copy.deepcopy(good_item(track_id="0000000000000000000bad"))
    item.update(change)
    for key in drop:
        item.pop(key)
    if track is not None:
        item["track"].update(track)
    return item


MALFORMED: list[tuple[str, Any, str]] = [
    ("a list", ["not", "an", "object"], "item is not an object"),
    ("a string", "garbage", "item is not an object"),
    ("null", None, "item is not an object"),
    ("no track key", _with({}, drop=("track",)), "missing track object"),
    ("track is null", _with({"track": None}), "missing track object"),
    ("track is a string", _with({"track": "spotify:track:x"}), "missing track object"),
    ("no played_at", _with({}, drop=("played_at",)), "missing played_at"),
    ("empty played_at", _with({"played_at": ""}), "missing played_at"),
    ("null played_at", _with({"played_at": None}), "missing played_at"),
    ("unparseable played_at", _with({"played_at": "yesterday-ish"}), "unparseable played_at"),
    ("played_at of the wrong type", _with({"played_at": ["2026-11-20"]}), "unparseable played_at"),
    ("null track id", _with({}, track={"id": None}), "null track id"),
    ("empty track id", _with({}, track={"id": ""}), "null track id"),
    ("episode", _with({}, track={"type": "episode"}), "podcast episode (not a music play)"),
    ("local file", _with({}, track={"is_local": True, "id": None}), "local file (no Spotify id)"),
]


@pytest.mark.parametrize(("case", "item", "reason"), MALFORMED, ids=[c for c, _, _ in MALFORMED])
def test_malformed_item_is_quarantined_with_its_reason_and_good_items_still_load(
    case: str, item: Any, reason: str
) -> None:
    good = good_item()
    result = normalize_recently_played([good, item], ingested_at=INGESTED_AT)
    assert result.quarantine == [{"reason": reason, "item": item}]
    assert result.quarantine_reasons == {reason: 1}
    assert result.plays["play_key"].tolist() == [
        play_key(pd.Timestamp(good["played_at"]), good["track"]["id"])
    ]


def test_every_item_lands_in_exactly_one_place() -> None:
    items = [good_item(played_at=f"2026-11-20T20:0{i}:00Z", track_id=f"t{i}") for i in range(3)]
    items += [item for _, item, _ in MALFORMED]
    result = normalize_recently_played(items, ingested_at=INGESTED_AT)
    assert len(result.plays) == 3
    assert len(result.quarantine) == len(MALFORMED)
    assert result.quarantine_reasons == {
        "item is not an object": 3,
        "missing track object": 3,
        "missing played_at": 3,
        "unparseable played_at": 2,
        "null track id": 2,
        "podcast episode (not a music play)": 1,
        "local file (no Spotify id)": 1,
    }


def test_only_malformed_items_give_an_empty_frame_with_the_plays_columns() -> None:
    result = normalize_recently_played([None, {"track": None}], ingested_at=INGESTED_AT)
    assert result.plays.empty
    assert list(result.plays.columns) == column_names("plays")
    assert [q["reason"] for q in result.quarantine] == ["item is not an object", "missing track object"]


def test_good_item_becomes_one_row_with_every_field_mapped() -> None:
    result = normalize_recently_played([good_item()], ingested_at=INGESTED_AT)
    assert result.quarantine == []
    (row,) = result.plays.to_dict("records")
    assert row["played_at"] == pd.Timestamp("2026-11-20T20:00:00.123Z")
    assert row["play_key"] == "2026-11-20T20:00:00.123000Z|4uLU6hMCjMI75M1A2tKUQC"
    assert (row["artist_ids"], row["artist_names"]) == ("a1,a2", "Artist One, Artist Two")
    assert (row["primary_artist_id"], row["album_image_url"]) == ("a1", "https://img/large")
    assert (row["context_type"], row["source"], row["is_play"]) == ("playlist", "api", True)
    assert row["ingested_at"] == pd.Timestamp(INGESTED_AT)
