"""The dashboard, page by page, with Streamlit's AppTest against fixture warehouses.

The fixture history (``fixtures/dashboard.py``) is small and known, so each page is checked
against numbers worked out by hand; its traps (short streams, podcast episodes) make a page
that forgets the play definition show different numbers.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.dashboard import (
    EXPECTED,
    build_dashboard_warehouse,
    dashboard_features,
    dashboard_plays,
)

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")


def _app(
    monkeypatch: pytest.MonkeyPatch, snapshot: Path, page: str | None = None, tz: str | None = None
) -> AppTest:
    monkeypatch.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(snapshot))
    if tz:
        monkeypatch.setenv("SPOTIFY_TIMEZONE", tz)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _deltas(at: AppTest) -> dict[str, str]:
    return {m.label: m.delta for m in at.metric}


def _cards(at: AppTest) -> dict[str, tuple[str, str]]:
    """The name headlines (``ui.name_card``): label -> (name, detail)."""
    out = {}
    for md in at.markdown:
        m = re.fullmatch(
            r"<small>(.+?)</small>\n\n\*\*(.+?)\*\*(?:  \n<small>(.*)</small>)?", str(md.value), re.S
        )
        if m:
            name = re.sub(r"^\[(.*)\]\(.*\)$", r"\1", m.group(2))
            out[html.unescape(m.group(1))] = (name, html.unescape(m.group(3) or ""))
    return out


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.warning, *at.title, *at.subheader)]
    return "\n".join(str(p) for p in parts)


# -- Overview -----------------------------------------------------------------------
def test_overview_counts_only_plays_of_music(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot)
    m = _metrics(at)
    assert m["Plays"] == str(EXPECTED["plays"])
    assert m["Hours listened"] == f"{EXPECTED['minutes'] / 60:.1f}"
    assert m["Tracks"] == str(EXPECTED["tracks"])
    assert m["Artists"] == str(EXPECTED["artists"])
    assert m["Albums"] == str(EXPECTED["albums"])
    artist, plays = EXPECTED["top_artist"]
    assert _cards(at)["#1 artist"] == (artist, f"{plays} plays")
    assert "Plays last arrived" in m and m["Plays last arrived"] != "unknown"
    text = _text(at)
    assert f"{EXPECTED['episodes']} podcast episodes" in text
    assert "at least 30 seconds" in text  # the definitions note
    assert at.get("vega_lite_chart"), "the daily-minutes chart is drawn"


# -- Top ------------------------------------------------------------------------------
def _top_tables(at: AppTest) -> dict[str, pd.DataFrame]:
    frames = [d.value for d in at.dataframe]
    return {"tracks": frames[0], "artists": frames[1], "albums": frames[2], "mart": frames[3]}


def test_top_all_time(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "top")  # an old history opens on "All time"
    assert at.segmented_control(key="top_period").value == "all"
    t = _top_tables(at)
    track, track_plays = EXPECTED["top_track"]
    assert (t["tracks"].iloc[0]["track"], t["tracks"].iloc[0]["plays"]) == (track, track_plays)
    assert t["tracks"].iloc[0]["image"].startswith("data:image/svg+xml")  # album art passes through
    artist, artist_plays = EXPECTED["top_artist"]
    assert list(t["artists"]["artist"][:3]) == [artist, "Basalt", "Dune Radio"]
    assert list(t["artists"]["plays"][:3]) == [artist_plays, 45, 40]
    assert "The Daily Pod" not in set(t["artists"]["artist"])
    assert t["albums"].iloc[0]["album"] == "Glass Harbour"
    assert int(t["albums"].iloc[0]["plays"]) == 60
    assert _cards(at)["#1 artist"] == (artist, f"{artist_plays} plays")
    # The Spark mart is shown as stored, with its own ranks.
    assert list(t["mart"]["rank"][:2]) == [1, 2]
    assert t["mart"].iloc[0]["track"] == track and int(t["mart"].iloc[0]["plays"]) == track_plays


def test_top_custom_range_in_local_days(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "top")
    at.segmented_control(key="top_period").set_value("custom").run()
    at.date_input(key="top_range").set_value((dt.date(2024, 2, 1), dt.date(2024, 2, 29))).run()
    assert not at.exception
    t = _top_tables(at)
    artist, plays = EXPECTED["feb_top_artist"]
    assert (t["artists"].iloc[0]["artist"], int(t["artists"].iloc[0]["plays"])) == (artist, plays)
    assert int(t["artists"]["plays"].sum()) == 62


def test_top_last_four_weeks_explains_an_old_history(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "top")
    at.segmented_control(key="top_period").set_value("4w").run()  # the fixture history is from 2024
    assert "No plays in this period" in _text(at)
    assert len(at.dataframe[0].value) == 0


# -- When -----------------------------------------------------------------------------
def test_when_in_utc(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "when")
    m = _metrics(at)
    assert m["Peak hour"] == f"{EXPECTED['peak_hour_utc']:02d}:00"
    assert m["Longest streak"] == f"{EXPECTED['longest_streak_days']} days"
    assert _deltas(at)["Longest streak"] == "10 Jan 2024 - 19 Jan 2024"
    assert f"{EXPECTED['longest_session_plays']} plays on 14 Feb 2024" == _deltas(at)["Longest session"]
    streaks = at.dataframe[0].value
    assert list(streaks["Days"][:2]) == [10, 4]
    assert len(at.get("vega_lite_chart")) == 2  # heatmap and timeline


def test_when_follows_the_selected_time_zone(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "when")
    at.sidebar.selectbox(key="tz").set_value("Asia/Tokyo").run()
    assert not at.exception
    assert _metrics(at)["Peak hour"] == f"{EXPECTED['peak_hour_tokyo']:02d}:00"
    assert _deltas(at)["Longest streak"] == "11 Jan 2024 - 20 Jan 2024"


def test_when_time_zone_defaults_from_env(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "when", tz="Asia/Tokyo")
    assert _metrics(at)["Peak hour"] == "05:00"


# -- Mood -----------------------------------------------------------------------------
def test_mood_with_features(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "mood")
    m = _metrics(at)
    plays = dashboard_plays()
    music = plays[plays["is_play"] & (plays["content_type"] != "episode")]
    feats = dashboard_features("ok").query("status == 'ok'").set_index("track_id")
    joined = music.join(feats[["energy"]], on="track_id", how="inner")
    assert m["Coverage"] == f"{len(joined) / len(music):.0%}" == "84%"
    assert m["Energy"] == f"{joined['energy'].astype(float).mean():.2f}"
    assert len(at.get("vega_lite_chart")) == 4  # map, tempo, danceability, trend
    assert not at.warning


def test_mood_explains_unavailable_features(dashboard_env, dashboard_snapshot_no_features):
    at = _app(dashboard_env, dashboard_snapshot_no_features, "mood")
    assert len(at.warning) == 1
    text = at.warning[0].value
    assert "403" in text and "SPOTIFY_FEATURES_PROVIDER=reccobeats" in text and "November 2024" in text
    assert not at.get("vega_lite_chart"), "no empty charts"
    assert not at.metric


# -- Discovery ------------------------------------------------------------------------
def test_discovery(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "discovery")
    m = _metrics(at)
    assert m["New artists in March 2024"] == str(EXPECTED["new_artists"][3])
    assert m["New tracks in March 2024"] == str(EXPECTED["new_tracks"][3])
    assert m["New music share, March 2024"] == f"{EXPECTED['new_share'][3]:.0%}"
    assert m["Artists discovered, all time"] == str(EXPECTED["artists"])
    assert len(at.get("vega_lite_chart")) == 2


# -- Recent plays ---------------------------------------------------------------------
def test_recent_plays_search_and_filters(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "recent")
    assert f"{EXPECTED['plays']} matching plays" in _text(at)
    assert len(at.dataframe[0].value) == 100  # one page
    at.text_input(key="recent_search").set_value(
        "GLASS"
    ).run()  # track "Northern Glass" + album "Glass Harbour"
    assert "60 matching plays" in _text(at)
    rows = at.dataframe[0].value
    assert len(rows) == 60 and set(rows["artists"]) == {"Aurora Lane"}
    assert rows["played_at"].is_monotonic_decreasing
    # Imported plays: the source as a listener knows it, the looked-up cover, no "None" cells.
    assert set(rows["source"]) == {"Extended history"} and rows["image"].str.startswith("data:image/").all()
    assert not rows[["source", "context_type", "image"]].isna().any().any()
    at.text_input(key="recent_search").set_value("it's \\ %_").run()  # quotes and wildcards are literal
    assert not at.exception
    assert "0 matching plays" in _text(at)
    at.text_input(key="recent_search").set_value("").run()
    at.toggle(key="recent_short").set_value(True).run()
    assert f"{EXPECTED['plays'] + 12} matching plays" in _text(at)
    at.segmented_control(key="recent_content").set_value("podcasts").run()
    assert f"{EXPECTED['episodes']} matching plays" in _text(at)


def test_recent_plays_local_times(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot, "recent", tz="America/New_York")
    newest = at.dataframe[0].value["played_at"].iloc[0]
    assert pd.Timestamp(newest) == pd.Timestamp("2024-03-29 16:20")  # 20:20 UTC, EDT (UTC-4)


# -- First run ------------------------------------------------------------------------
ONBOARDING_COMMANDS = [
    "export SPOTIFY_CLIENT_ID=your-client-id SPOTIFY_CLIENT_SECRET=your-client-secret",
    ".venv/bin/spotify-assets auth",
    "make demo",
    ".venv/bin/spotify-assets import ~/Downloads/my_spotify_data.zip",
]


def test_first_run_without_a_warehouse(dashboard_env, tmp_path):
    at = _app(dashboard_env, tmp_path / "nothing-here.duckdb")
    assert "not been collected" in at.info[0].value
    text = _text(at)
    for command in ONBOARDING_COMMANDS:  # the exact commands a listener types
        assert f"\n{command}\n" in text, command
    assert "http://127.0.0.1:8888/callback" in text and "Extended streaming history" in text
    assert not at.metric and not at.dataframe


def test_first_run_with_an_empty_warehouse(dashboard_env, dashboard_snapshot_empty):
    at = _app(dashboard_env, dashboard_snapshot_empty)
    assert "no plays have arrived yet" in at.info[0].value
    assert all(f"\n{c}\n" in _text(at) for c in ONBOARDING_COMMANDS)
    assert not at.metric


def test_the_welcome_pages_cover_every_address_of_the_ready_app(dashboard_env, dashboard_snapshot):
    at = _app(dashboard_env, dashboard_snapshot)
    ready = {str(i.get("url_pathname")) for i in at._registered_pages.values()} - {""}
    src = Path(APP).read_text()
    listed = set(
        re.search(r"READY_PATHS = \[(.*?)\]", src, re.S).group(1).replace('"', "").replace(" ", "").split(",")
    )  # type: ignore[union-attr]
    assert ready == listed


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_a_fresh_install_imports_its_history_in_the_app(
    dashboard_env, dashboard_snapshot_empty, tmp_path, state
):
    """Defect: the welcome page only named the command, and /import opened the welcome page too,
    so a fresh install could not use the Import page its first visit needs most."""
    snapshot = tmp_path / "nothing-here.duckdb" if state == "missing" else dashboard_snapshot_empty
    dashboard_env.setenv("SPOTIFY_DATA_DIR", str(snapshot.parent))
    at = _app(dashboard_env, snapshot)
    links = [(link.proto.label, link.proto.page) for link in at.get("page_link")]
    assert ("Or upload your export here", "import") in links, links
    registered = {str(i.get("url_pathname")): h for h, i in at._registered_pages.items()}
    at._page_hash = registered["import"]  # what following the link (or typing /import) opens
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Import your history", [t.value for t in at.title]
    assert "into **your** plays" in _text(at) and "Last.fm" in _text(at)
    assert [b for b in at.button if b.key == "import_start"] and not at.error


@pytest.mark.parametrize("page", ["top", "when", "mood", "discovery", "recent", "wrapped", "artist"])
def test_deep_links_on_an_empty_warehouse_open_the_welcome_page(
    dashboard_env, dashboard_snapshot_empty, page
):
    """Defect: ``/top`` on a fresh install opened a "Page not found" dialog."""
    at = _app(dashboard_env, dashboard_snapshot_empty)
    # What a browser opening /<page> does: ask for the page registered under that URL path.
    # (AppTest.switch_page only knows script files; the welcome pages are functions.)
    registered = {str(i.get("url_pathname")): h for h, i in at._registered_pages.items()}
    assert page in registered, sorted(registered)  # before the fix: only "welcome" existed
    at._page_hash = registered[page]
    at.run()
    assert not at.exception, at.exception
    assert "no plays have arrived yet" in at.info[0].value
    assert at.title[0].value == "Your listening, your data"


# -- Freshness ------------------------------------------------------------------------
def test_new_pipeline_run_shows_without_restart(dashboard_env, tmp_path):
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.schema import conform

    plays = dashboard_plays()
    snapshot = build_dashboard_warehouse(tmp_path, plays.iloc[:100])
    at = _app(dashboard_env, snapshot)
    before = int(_metrics(at)["Plays"])
    assert before == int(
        (plays.iloc[:100]["is_play"] & (plays.iloc[:100]["content_type"] != "episode")).sum()
    )
    wh = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"), snapshot_path=str(snapshot))
    new_play = plays.iloc[[0]].copy()
    new_play["play_key"] = "2024-04-02T10:00:00+00:00|t1"
    new_play["played_at"] = pd.Timestamp("2024-04-02T10:00:00Z")
    assert plays_table.merge_plays(wh, conform(new_play, "plays")).inserted == 1
    at.run()
    assert not at.exception
    assert int(_metrics(at)["Plays"]) == before + 1
