"""Issue 25's page defects through Streamlit's AppTest: each artist of a track linked, Recent
rows and Compare's lists that open their pages, Compare's lists whole and with separators."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from spotify_assets.schema import conform
from spotify_assets_tests.fixtures.dashboard import ALICE, BOB, Track, _row, build_dashboard_warehouse
from spotify_assets_tests.test_dashboard_household import _open as _open_household
from spotify_assets_tests.test_dashboard_pages import _links, _open

#: A track of two artists, and one artist whose name holds a comma (one id).
DUET = Track("d1", "d1", "All The Gardens", "m1", "The Gentle Mirrors", "alm", "Gardens", 200_000)
TYLER = Track("ty", "ty", "See You Again", "tc", "Tyler, The Creator", "alt", "Flower Boy", 180_000)


@pytest.fixture(scope="module")
def credits_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    start = datetime(2024, 6, 1, 20, tzinfo=UTC)
    rows = [
        _row(
            DUET,
            start + timedelta(minutes=4 * i),
            artist_ids="m1,m2",
            artist_names="The Gentle Mirrors, The Midnight Shadows",
        )
        for i in range(5)
    ] + [_row(TYLER, start + timedelta(hours=2, minutes=4 * i), artist_ids="tc") for i in range(3)]
    return build_dashboard_warehouse(tmp_path_factory.mktemp("credits"), conform(pd.DataFrame(rows), "plays"))


def test_a_track_links_each_of_its_artists(dashboard_env, credits_snapshot):
    at = _open(dashboard_env, credits_snapshot, "track", id="d1")
    links = _links(at)
    assert links["The Gentle Mirrors"] == ("artist", "id=m1")
    assert links["The Midnight Shadows"] == ("artist", "id=m2")
    assert links["Gardens"] == ("album", "id=alm")
    # One artist whose name holds ", ": one link to them, not two halves.
    at = _open(dashboard_env, credits_snapshot, "track", id="ty")
    assert _links(at)["Tyler, The Creator"] == ("artist", "id=tc")


def test_recent_rows_carry_the_track_they_open(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "recent")
    table = at.dataframe[0]
    rows = table.value
    assert rows["id"].iloc[0] == "t11"  # the newest play: Lantern, 29 Mar 2024
    assert rows[rows["content_type"] == "episode"]["id"].isna().all()  # an episode has no track page
    config = json.loads(table.proto.columns)
    assert config["id"]["hidden"] is True
    assert table.proto.selection_mode, "rows are selectable (a click opens the track)"


def test_compare_lists_are_whole_with_separators_and_open_their_pages(dashboard_env, household_snapshot):
    at = _open_household(dashboard_env, household_snapshot, "compare", user=ALICE, **{"with": BOB})
    for table, kind_id in ((at.dataframe[0], "a1"), (at.dataframe[1], None)):
        config = json.loads(table.proto.columns)
        for column in ("Alice plays", "Bob plays"):
            assert config[column]["type_config"]["format"] == "localized", config[column]
        assert config["id"]["hidden"] is True
        assert table.proto.selection_mode, "rows are selectable (a click opens the page)"
        if kind_id:
            assert kind_id in set(table.value["id"])
    assert set(at.dataframe[1].value["id"].dropna()) <= {"t1", "t2", "t3", "t4", "t5"}
