"""Regression tests for the defects of issue 12, each failing on the dashboard before its fix.

Same method as ``test_dashboard.py``: Streamlit's AppTest on fixture warehouses, expected
values worked out from the fixture (or counted from it with pandas), never read back from
the page under test. Charts are checked through the Vega-Lite spec and data the page sends.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from app import ui
from spotify_assets.schema import conform
from spotify_assets_tests.fixtures.dashboard import (
    EXPECTED,
    build_dashboard_warehouse,
    dashboard_plays,
    dashboard_top_ten,
    first_day_plays,
)
from spotify_assets_tests.test_dashboard import _app, _cards, _deltas, _metrics, _text

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")


def _charts(at: AppTest) -> list[Any]:
    return list(at.get("vega_lite_chart"))


def _spec(chart: Any) -> dict[str, Any]:
    return dict(json.loads(chart.proto.spec))


def _chart_data(chart: Any) -> pd.DataFrame:
    """The rows a chart draws (all its named datasets, concatenated)."""
    frames = [convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]
    if chart.proto.data.data:
        frames.append(convert_arrow_bytes_to_pandas_df(chart.proto.data.data))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for layer in spec.get("layer", [spec]):
        out += _layers(layer) if "layer" in layer else [layer]
    return out


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# -- Discovery --------------------------------------------------------------------------
def test_discovery_labels_the_newest_month_with_its_own_figures(dashboard_env, dashboard_snapshot_summer):
    """July 2024 has plays and no discovery; before, it showed March's 2 artists / 3 tracks."""
    at = _app(dashboard_env, dashboard_snapshot_summer, "discovery")
    m = _metrics(at)
    assert m["New artists in July 2024"] == "0"
    assert m["New tracks in July 2024"] == "0"
    assert m["New music share, July 2024"] == "0%"
    assert m["Artists discovered, all time"] == str(EXPECTED["artists"])


def test_discovery_chart_shows_months_without_discoveries(dashboard_env, dashboard_snapshot_summer):
    at = _app(dashboard_env, dashboard_snapshot_summer, "discovery")
    data = _chart_data(_charts(at)[0])
    data["m"] = pd.to_datetime(data["month"]).dt.month
    per_month = data.pivot_table(index="m", columns="kind", values="count", aggfunc="sum")
    assert list(per_month.index) == [1, 2, 3, 4, 5, 6, 7]  # April-July were missing
    assert per_month["new artists"].to_dict() == {**EXPECTED["new_artists"], 4: 0, 5: 0, 6: 0, 7: 0}
    assert per_month["new tracks"].to_dict() == {**EXPECTED["new_tracks"], 4: 0, 5: 0, 6: 0, 7: 0}


def test_discovery_says_why_there_are_no_recent_discoveries(dashboard_env, dashboard_snapshot_summer):
    at = _app(dashboard_env, dashboard_snapshot_summer, "discovery")
    assert "No new artists in the 90 days up to your newest play (10 Jul 2024)" in _text(at)
    assert not at.dataframe  # not a bare "empty" table


# -- Mood in dark mode ------------------------------------------------------------------
def test_mood_guides_and_labels_are_visible_on_both_themes(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "mood")
    mood_map = _charts(at)[0]
    marks = [layer["mark"] for layer in _layers(_spec(mood_map)) if layer["mark"]["type"] in ("text", "rule")]
    assert len(marks) == 4  # two quadrant-label layers, two 0.5 guides
    for mark in marks:
        colour = mark.get("color")
        assert colour, mark  # before: no colour, so Vega's black on the dark background
        for background in ("#FFFFFF", "#0E1117"):  # Streamlit's light and dark backgrounds
            assert _contrast(colour, background) >= 3.0, (colour, background)


# -- Clipping and number formats --------------------------------------------------------
NUMERIC = re.compile(
    r"[-+]?[\d,.]+(%| BPM|:00)?|\d+ h \d\d min|\d+ min|\d+ days?|just now|.* ago|unknown|-|\w{3}"
)


@pytest.mark.parametrize("page", ["overview", "top", "when", "mood", "discovery"])
def test_metrics_hold_numbers_and_names_go_to_wrapping_cards(dashboard_env, dashboard_snapshot, page):
    """st.metric cuts its value to one line ("The Lone..."): names must not be metric values."""
    at = _app(dashboard_env, dashboard_snapshot, page if page != "overview" else None)
    for metric in at.metric:
        assert NUMERIC.fullmatch(metric.value), (metric.label, metric.value)


def test_top_names_are_cards_with_exact_figures(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "top")
    cards = _cards(at)
    assert cards["#1 track"] == (EXPECTED["top_track"][0], f"{EXPECTED['top_track'][1]} plays")
    assert cards["#1 album"] == ("Glass Harbour", "60 plays")


def test_top_tables_use_one_number_format(dashboard_env, dashboard_snapshot):
    """Before: "10730" next to "1,991.6"; now every count and minute total is localized."""
    at = _app(dashboard_env, dashboard_snapshot, "top")
    for table in at.dataframe:
        columns = json.loads(table.proto.columns)
        for name in ("plays", "minutes", "tracks"):
            if name in columns:
                assert columns[name]["type_config"]["format"] == "localized", (name, columns[name])
        if "minutes" in table.value:
            assert table.value["minutes"].dtype.kind == "i"  # whole minutes, no stray decimals


# -- Time ---------------------------------------------------------------------------------
def test_time_zone_defaults_to_the_browsers_and_goes_into_the_url(dashboard_env, dashboard_snapshot):
    dashboard_env.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(dashboard_snapshot))
    dashboard_env.setenv("SPOTIFY_TIMEZONE", "America/New_York")  # the browser's zone wins over it
    at = AppTest.from_file(APP, default_timeout=60)
    at.context = {"timezone": "Asia/Tokyo"}
    at.run()
    assert at.sidebar.selectbox(key="tz").value == "Asia/Tokyo"
    assert at.query_params["tz"] == "Asia/Tokyo"
    at.switch_page("views/when.py").run()
    assert _metrics(at)["Peak hour"] == f"{EXPECTED['peak_hour_tokyo']:02d}:00"


def test_a_link_with_tz_and_period_reopens_the_same_view(dashboard_env, dashboard_snapshot):
    """URL round trip: a copied link's ``tz``, ``period``, ``from`` and ``to`` are honoured."""
    dashboard_env.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(dashboard_snapshot))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"tz": "Asia/Tokyo", "period": "custom", "from": "2024-02-01", "to": "2024-02-29"})
    at.run()
    at.query_params.update({"tz": "Asia/Tokyo", "period": "custom", "from": "2024-02-01", "to": "2024-02-29"})
    at.switch_page("views/top.py").run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="top_period").value == "custom"
    artists = at.dataframe[1].value
    assert (artists.iloc[0]["artist"], int(artists.iloc[0]["plays"])) == EXPECTED["feb_top_artist"]
    assert int(artists["plays"].sum()) == 62  # February in Tokyo holds the same 62 plays
    # Changing the view rewrites the link.
    at.segmented_control(key="top_period").set_value("all").run()
    assert at.query_params["period"] == "all" and "from" not in at.query_params
    at.sidebar.selectbox(key="tz").set_value("Europe/Berlin").run()
    assert at.query_params["tz"] == "Europe/Berlin"


def test_recent_search_is_kept_in_the_url(dashboard_env, dashboard_snapshot):
    dashboard_env.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(dashboard_snapshot))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.query_params["q"] = "glass"
    at.switch_page("views/recent.py").run()
    assert at.text_input(key="recent_search").value == "glass"
    assert "60 matching plays" in _text(at)
    at.text_input(key="recent_search").set_value("basalt").run()
    assert at.query_params["q"] == "basalt"


def _timeline(at: AppTest) -> tuple[dict[str, Any], pd.DataFrame]:
    chart = _charts(at)[1]
    return _spec(chart), _chart_data(chart)


def test_weeks_are_monday_weeks_labelled_by_their_monday(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "when")
    assert at.segmented_control(key="when_grain").value == "week"
    spec, data = _timeline(at)
    assert "timeUnit" not in spec["encoding"]["x"]  # before: utcyearweek, Sunday weeks, "2024 W00"
    assert "yearweek" not in json.dumps(spec).lower()
    assert pd.to_datetime(data["period"]).dt.dayofweek.eq(0).all()  # every bar starts on a Monday
    assert data["label"].iloc[0] == "Week of Mon 08 Jan 2024 (partial)"  # plays start Wed 10 Jan
    assert data["label"].iloc[1] == "Week of Mon 15 Jan 2024"


def test_partial_periods_are_marked(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "when")
    at.segmented_control(key="when_grain").set_value("month").run()
    _, data = _timeline(at)
    assert data["partial"].tolist() == [True, False, False]  # January starts on the 10th
    assert "partial periods" in _text(at)
    at.segmented_control(key="when_period").set_value("custom").run()
    at.date_input(key="when_range").set_value(
        (datetime(2024, 2, 1).date(), datetime(2024, 3, 15).date())
    ).run()
    _, data = _timeline(at)
    assert data["label"].tolist() == ["February 2024", "March 2024 (partial)"]
    assert data["plays"].tolist() == [62, 6 * 8]  # 1-15 March: the odd days 1..15, 6 plays each


def test_sessions_show_end_dates_and_explain_played_against_span(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "when")
    sessions = at.dataframe[1].value
    top = sessions.iloc[0]
    plays = dashboard_plays()
    valentine = plays[(plays["played_at"].dt.date == datetime(2024, 2, 14).date()) & plays["is_play"]]
    assert (top["Started"], top["Ended"]) == ("2024-02-14 18:00", "2024-02-14 19:56")  # before: "19:56"
    assert top["Played"] == ui.duration(valentine["duration_ms"].sum() / 60000)
    assert top["Span"] == "1 h 56 min"
    assert "*Played* adds up the plays' lengths; *Span* runs from the end of the first play" in _text(at)


# -- First day ----------------------------------------------------------------------------
def test_first_day_overview_draws_the_day_by_hour(dashboard_env, dashboard_snapshot_first_day):
    at = _app(dashboard_env, dashboard_snapshot_first_day)
    assert "Minutes per hour" in [s.value for s in at.subheader]
    data = _chart_data(_charts(at)[0])
    plays = first_day_plays()
    by_hour = plays.groupby(plays["played_at"].dt.hour)["duration_ms"].sum() / 60000
    assert len(data) == len(by_hour) == 4  # 09:00-12:16
    assert data["minutes"].tolist() == by_hour.round(0).tolist()
    assert _metrics(at)["Plays"] == "50"


def test_first_day_when_page(dashboard_env, dashboard_snapshot_first_day):
    at = _app(dashboard_env, dashboard_snapshot_first_day, "when")
    assert _metrics(at)["Longest streak"] == "1 day"  # before: "1 days"
    assert _deltas(at)["Longest session"] == "50 plays on 01 May 2024"
    spec, data = _timeline(at)
    assert len(data) == 1
    domain = pd.to_datetime(spec["encoding"]["x"]["scale"]["domain"], unit="ms")
    # The one week is one bar of eight, not a bar across the whole page.
    assert domain[1] - domain[0] == pd.Timedelta(weeks=8)


# -- The Spark mart's freshness on the page -------------------------------------------------
def _rankable(plays: pd.DataFrame) -> pd.Series:
    """The Spark job's rule (``spark/top_ten.py``): a play with a track id, or without one but
    with artist and track names (a scrobble, a local file)."""
    return plays["track_id"].notna() | (plays["primary_artist_name"].notna() & plays["track_name"].notna())


def test_top_ten_mart_says_when_and_over_how_many_plays(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "top")
    plays = dashboard_plays()
    counted = plays[plays["is_play"] & (plays["content_type"] == "track") & _rankable(plays)]
    assert len(counted) == 232  # every music play: the local file's 5 (no id) count by their names
    assert f"top ten, counted on 2024-04-01 12:00 (UTC) over {len(counted)} plays" in _text(at)
    assert not at.warning


def test_a_stale_top_ten_mart_is_flagged(dashboard_env, tmp_path):
    """The reported defect: plays imported after the mart was computed, numbers silently old."""
    plays = dashboard_plays()
    mart = dashboard_top_ten(plays)
    later = plays.iloc[:40].copy()
    later["play_key"] = [f"2024-04-0{1 + i // 20}T0{i % 10}:00:00+00:00|x{i}" for i in range(40)]
    later["played_at"] = [pd.Timestamp(f"2024-04-0{1 + i // 20}T0{i % 10}:00:00Z") for i in range(40)]
    later["ingested_at"] = datetime(2024, 4, 2, tzinfo=UTC)  # after computed_at (1 Apr 12:00)
    snapshot = build_dashboard_warehouse(
        tmp_path, conform(pd.concat([plays, later], ignore_index=True), "plays"), top_ten=mart
    )
    at = _app(dashboard_env, snapshot, "top")
    arrived = later[later["is_play"] & (later["content_type"] == "track") & _rankable(later)]
    assert len(at.warning) == 1
    assert at.warning[0].value.startswith(f"{len(arrived)} plays arrived after this was computed")
    assert "over 232 plays" in _text(at)


#: Words of the machinery, not of the listener (issue 25: "computed by the Spark job").
ENGINEERING_WORDS = ("spark", "job", "mart", "pipeline", "sensor", "computed by", "plays table")


@pytest.mark.parametrize("user", [None, "bob"])
def test_the_top_ten_tab_speaks_a_listeners_language(dashboard_env, household_snapshot, user):
    """The Top page says when its all-time ten was counted and over how many plays, in a
    listener's words: no engine, job or table names (Everyone's and one listener's)."""
    from spotify_assets_tests.test_dashboard_household import _open

    at = _open(dashboard_env, household_snapshot, "top", **({"user": user} if user else {}))
    assert not at.exception
    caption = next(c.value for c in at.caption if "top ten, counted on 2024-04-01 12:00 (UTC)" in c.value)
    found = [w for w in ENGINEERING_WORDS if w in _text(at).lower()]
    assert not found, (found, caption)


# -- Comparisons against the previous period ------------------------------------------------
def _expected_headline(start: str, end: str) -> dict[str, float]:
    plays = dashboard_plays()
    music = plays[plays["is_play"] & (plays["content_type"] != "episode")]
    window = music[(music["played_at"] >= pd.Timestamp(start)) & (music["played_at"] < pd.Timestamp(end))]
    return {
        "plays": len(window),
        "hours": window["duration_ms"].sum() / 3_600_000,
        "tracks": window["track_name"].nunique(),
        "artists": window["primary_artist_name"].nunique(),
        "albums": window["album_name"].nunique(),
    }


@pytest.mark.parametrize("page", ["overview", "top"])
def test_headline_numbers_compare_with_the_previous_period(dashboard_env, dashboard_snapshot, page):
    at = _app(dashboard_env, dashboard_snapshot, None if page == "overview" else page)
    assert at.segmented_control(key=f"{page}_period").value == "all"
    assert _deltas(at)["Plays"] in (None, "")  # all time has nothing before it
    at.segmented_control(key=f"{page}_period").set_value("custom").run()
    at.date_input(key=f"{page}_range").set_value(
        (datetime(2024, 2, 1).date(), datetime(2024, 2, 29).date())
    ).run()
    now = _expected_headline("2024-02-01T00:00Z", "2024-03-01T00:00Z")
    before = _expected_headline("2024-01-03T00:00Z", "2024-02-01T00:00Z")  # the 29 days before
    assert (now["plays"], before["plays"]) == (62, 80)
    m, d = _metrics(at), _deltas(at)
    assert (m["Plays"], d["Plays"]) == ("62", "-18")
    assert (m["Hours listened"], d["Hours listened"]) == (
        f"{now['hours']:,.1f}",
        f"{now['hours'] - before['hours']:+,.1f}",
    )
    for key, label in (("tracks", "Tracks"), ("artists", "Artists"), ("albums", "Albums")):
        assert (m[label], d[label]) == (str(now[key]), f"{now[key] - before[key]:+d}"), label
    assert "Changes are against the 29 days before this period." in _text(at)
