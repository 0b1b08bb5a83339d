"""Plays without a Spotify id on every page family, against figures worked out by hand.

The history is ``fixtures/dashboard.idless_plays`` (its docstring lists every play): 9 plays,
6 of them scrobbles no Spotify play matched (no track, artist or album id, mostly no length).
Every number below is counted from that list by hand, never read back from the warehouse.
Each page family is checked through its batch (``app/queries.py``, on the real DuckDB
snapshot, restricted to a listener the way ``Context.fetch`` does) and, where it says
something of its own about such plays, through the page itself (``AppTest``).
BigQuery gives the same answers: ``test_dashboard_bigquery_parity.py`` runs these batches on
this history too.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import queries as q
from app.warehouse import DuckDBSnapshot
from spotify_assets_tests.fixtures.dashboard import ALICE, BOB
from spotify_assets_tests.test_dashboard import _metrics, _text
from spotify_assets_tests.test_dashboard_pages import LINK

TZ = "UTC"
APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
VINYL, LONG_WAY, NIGHT = "dust choir|vinyl hiss", "dust choir|long way", "neon fox|night drive"


def june(day: int, hour: int, minute: int = 0) -> pd.Timestamp:
    return pd.Timestamp(datetime(2024, 6, day, hour, minute, tzinfo=UTC))


def fetch(snapshot: Path, batch: dict[str, str], user: str | None = None) -> dict[str, pd.DataFrame]:
    out = DuckDBSnapshot(snapshot).fetch({n: q.for_listener(sql, user) for n, sql in batch.items()})
    return {n: df for n, df in out.items() if df is not None}


def rows(df: pd.DataFrame, *cols: str) -> list[tuple]:
    """Selected columns as plain tuples (None for nulls, floats rounded to 3 places)."""

    def plain(v: object) -> object:
        if v is None or (not isinstance(v, str) and pd.isna(v)):  # type: ignore[arg-type]
            return None
        return round(float(v), 3) if isinstance(v, float) else v

    return [tuple(plain(v) for v in r) for r in df[list(cols)].itertuples(index=False)]


def _open(monkeypatch: pytest.MonkeyPatch, snapshot: Path, page: str, **params: str) -> AppTest:
    monkeypatch.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(snapshot))
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(snapshot.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _links(at: AppTest) -> dict[str, tuple[str, dict[str, str]]]:
    """The page's links to detail pages: label -> (page, its id= or key= parameter)."""
    found = {}
    for element in at.get("html"):
        for page, query, label in LINK.findall(element.proto.body):
            params = parse_qs(html.unescape(query))
            found[html.unescape(label)] = (page, {k: v[0] for k, v in params.items() if k in ("id", "key")})
    return found


# -- Overview and the headline numbers --------------------------------------------------------
def test_overview_counts_plays_without_an_id_and_says_what_minutes_cover(dashboard_env, idless_snapshot):
    res = fetch(idless_snapshot, q.overview_queries(TZ))
    # 9 plays; minutes: Night Drive 3 x 200 s + Long Way 300 s = 15 min; 5 scrobbles without a length.
    assert rows(res["totals"], "plays", "hours", "tracks", "artists", "albums", "untimed") == [
        (9, 0.25, 3, 2, 2, 5)
    ]
    assert rows(res["top_artist"], "artist", "plays") == [("Dust Choir", 5)]
    assert rows(res["last_track"], "track_name", "artist_names") == [("Night Drive", "Neon Fox")]
    alice = fetch(idless_snapshot, q.overview_queries(TZ), ALICE)
    assert rows(alice["totals"], "plays", "hours", "untimed") == [
        (7, round(700 / 3600, 3), 4)
    ]  # 400 s + 300 s
    at = _open(dashboard_env, idless_snapshot, "overview")
    assert _metrics(at)["Plays"] == "9"
    assert (
        "Minutes cover 4 of 9 plays (44%): 5 plays of unknown length (scrobbles without a duration) count 0 minutes."
        in _text(at)
    )


# -- Top ---------------------------------------------------------------------------------------
def test_top_groups_plays_of_the_same_names_with_and_without_an_id(dashboard_env, idless_snapshot):
    res = fetch(idless_snapshot, q.top_queries(TZ, q.Period()))
    # Night Drive: 3 Spotify plays (10 min) and the "NEON FOX - night drive" scrobble, one row;
    # Vinyl Hiss in two spellings, one row; the name shown is the latest play's.
    assert rows(res["tracks"], "track", "plays", "minutes", "id", "key") == [
        ("Night Drive", 4, 10.0, "s1", NIGHT),
        ("vinyl hiss", 4, 0.0, None, VINYL),
        ("Long Way", 1, 5.0, None, LONG_WAY),
    ]
    assert rows(res["artists"], "artist", "plays", "minutes", "tracks", "id", "key") == [
        ("Dust Choir", 5, 5.0, 2, None, "dust choir"),
        ("Neon Fox", 4, 10.0, 1, "n1", "neon fox"),
    ]
    assert rows(res["albums"], "album", "plays", "id", "key") == [
        ("Chrome", 4, "c1", "neon fox|chrome"),
        ("Crackle", 4, None, "dust choir|crackle"),
    ]
    at = _open(dashboard_env, idless_snapshot, "top")
    links = _links(at)
    assert links["vinyl hiss"] == ("track", {"key": VINYL})  # a card with no id opens by its names
    assert links["Night Drive"] == ("track", {"id": "s1"})
    assert links["Dust Choir"] == ("artist", {"key": "dust choir"})
    mart = at.dataframe[3].value  # the Spark top ten's tab: its id-less rows open by key too
    assert list(zip(mart["id"].fillna(""), mart["key"].fillna(""), strict=True))[:2] == [
        ("", VINYL),
        ("s1", ""),
    ]


def test_the_top_ten_mart_counts_plays_without_an_id_and_opens_them_by_key(idless_snapshot):
    res = fetch(idless_snapshot, q.top_ten_mart_query())
    assert rows(res["top_ten"], "rank", "track_name", "track_id", "plays", "key") == [
        (1, "vinyl hiss", None, 4, VINYL),
        (2, "Night Drive", "s1", 3, None),
        (3, "Long Way", None, 1, LONG_WAY),
        (4, "night drive", None, 1, NIGHT),
    ]
    # The Spark job's rule: every track play with an id or with both names, here all 9.
    assert rows(res["mart_input"], "seen", "now") == [(9, 9)]


# -- When --------------------------------------------------------------------------------------
def test_when_counts_plays_without_an_id_by_day_hour_and_session(idless_snapshot):
    res = fetch(idless_snapshot, q.when_queries(TZ, q.Period(), "day"))
    assert rows(res["timeline"], "plays", "minutes") == [
        (3, round(20 / 3, 3)),
        (4, 0.0),
        (1, 5.0),
        (1, round(10 / 3, 3)),
    ]
    assert [str(d)[:10] for d in res["timeline"]["period"]] == [
        "2024-06-03",
        "2024-06-04",
        "2024-06-05",
        "2024-06-06",
    ]
    # 3 Jun was a Monday (isodow 1).
    assert rows(res["heatmap"], "dow", "hour", "plays") == [
        (1, 20, 3),
        (2, 21, 3),
        (2, 22, 1),
        (3, 9, 1),
        (4, 10, 1),
    ]
    assert rows(res["streaks"], "days") == [(4,)]
    # Sessions end after 30 min without a play: 3 Jun (3 plays), 4 Jun 21:00-21:10 (3), 22:00 (1), 5 Jun, 6 Jun.
    assert rows(res["sessions"], "plays", "minutes", "n_sessions") == [
        (3, round(20 / 3, 3), 5),
        (1, 5.0, 5),
        (1, round(10 / 3, 3), 5),
        (1, 0.0, 5),
        (3, 0.0, 5),
    ]


# -- Recent ------------------------------------------------------------------------------------
def test_recent_lists_plays_without_an_id_with_the_key_that_opens_them(dashboard_env, idless_snapshot):
    res = fetch(idless_snapshot, q.recent_queries(TZ, q.RecentFilter(), 100, 0))
    assert rows(res["count"], "n") == [(9,)]
    assert rows(res["rows"], "track", "id", "key", "source") == [
        ("Night Drive", "s1", NIGHT, "api"),
        ("Long Way", None, LONG_WAY, "listenbrainz"),
        ("vinyl hiss", None, VINYL, "listenbrainz"),
        *[("Vinyl Hiss", None, VINYL, "lastfm")] * 3,
        ("night drive", None, NIGHT, "lastfm"),
        *[("Night Drive", "s1", NIGHT, "api")] * 2,
    ]
    at = _open(dashboard_env, idless_snapshot, "recent")
    shown = at.dataframe[0].value
    assert len(shown) == 9 and shown["key"].notna().all()
    assert list(shown["source"])[1:3] == ["ListenBrainz", "ListenBrainz"]


# -- detail pages ------------------------------------------------------------------------------
def test_detail_pages_open_by_key_for_items_known_by_name_only(idless_snapshot):
    track = fetch(idless_snapshot, q.detail_queries("track", VINYL, TZ, by="key"))
    assert rows(
        track["summary"], "name", "plays", "minutes", "by_name", "artist_id", "artist_key", "album_key"
    ) == [("vinyl hiss", 4, 0.0, 4, None, "dust choir", "dust choir|crackle")]
    assert (track["summary"]["first_play"].iloc[0], track["summary"]["last_play"].iloc[0]) == (
        june(4, 21),
        june(4, 22),
    )
    assert rows(track["hours"], "hour", "plays") == [(21, 3), (22, 1)]
    assert rows(track["features"], "plays_with_features", "plays") == [(0, 4)]
    artist = fetch(idless_snapshot, q.detail_queries("artist", "dust choir", TZ, by="key"))
    assert rows(artist["summary"], "plays", "minutes", "tracks") == [(5, 5.0, 2)]
    assert rows(artist["tracks"], "track", "plays", "id", "key") == [
        ("vinyl hiss", 4, None, VINYL),
        ("Long Way", 1, None, LONG_WAY),
    ]
    assert rows(artist["albums"], "album", "plays", "key") == [("Crackle", 4, "dust choir|crackle")]
    assert rows(artist["rank"], "rank", "plays") == [(1, 5)]  # June: 5 plays against Neon Fox's 4
    album = fetch(idless_snapshot, q.detail_queries("album", "dust choir|crackle", TZ, by="key"))
    assert rows(album["summary"], "plays", "tracks") == [(4, 1)]
    # Bob's own: one scrobble of Vinyl Hiss.
    bobs = fetch(idless_snapshot, q.detail_queries("track", VINYL, TZ, by="key"), BOB)
    assert rows(bobs["summary"], "plays") == [(1,)]
    # A Spotify track's page by id includes the scrobble of its names.
    spotify = fetch(idless_snapshot, q.detail_queries("track", "s1", TZ))
    assert rows(spotify["summary"], "plays", "minutes", "by_name") == [(4, 10.0, 1)]
    nobody = fetch(idless_snapshot, q.detail_queries("track", "nobody|nothing", TZ, by="key"))
    assert rows(nobody["summary"], "plays") == [(0,)]


def test_the_track_page_by_key_shows_the_plays_and_links_by_key(dashboard_env, idless_snapshot):
    at = _open(dashboard_env, idless_snapshot, "track", key=VINYL)
    assert at.title[0].value == "vinyl hiss"
    m = _metrics(at)
    assert (m["Plays"], m["Minutes"], m["First play"]) == ("4", "0", "04 Jun 2024")
    assert at.query_params["key"] == VINYL  # the address stays shareable
    assert "No Spotify id for this track: it is known by name only" in _text(at)
    links = _links(at)
    assert links["dust choir"] == ("artist", {"key": "dust choir"})
    assert links["Crackle"] == ("album", {"key": "dust choir|crackle"})
    at = _open(dashboard_env, idless_snapshot, "artist", key="dust choir")
    assert (at.title[0].value, _metrics(at)["Plays"]) == ("Dust Choir", "5")
    assert list(at.dataframe[0].value["key"]) == [VINYL, LONG_WAY]
    at = _open(dashboard_env, idless_snapshot, "track", key="nobody|nothing")
    assert "No plays of the track named `nobody|nothing`" in at.warning[0].value


# -- Wrapped, Discovery, Compare ---------------------------------------------------------------
def test_wrapped_counts_plays_without_an_id(dashboard_env, idless_snapshot):
    res = fetch(idless_snapshot, q.wrapped_queries(TZ, 2024))
    assert rows(res["totals"], "plays", "hours", "untimed") == [(9, 0.25, 5)]
    assert rows(res["discoveries"], "new_tracks", "new_artists") == [(3, 2)]
    assert rows(res["busiest_day"], "plays", "minutes") == [
        (3, round(20 / 3, 3))
    ]  # 3 Jun: the only day with 2 Spotify plays
    assert rows(res["artists"], "artist", "key") == [("Dust Choir", "dust choir"), ("Neon Fox", "neon fox")]
    at = _open(dashboard_env, idless_snapshot, "wrapped", year="2024")
    assert _metrics(at)["Plays"] == "9"
    assert _links(at)["1. Dust Choir · 5 plays"] == ("artist", {"key": "dust choir"})


def test_discovery_dates_tracks_known_by_name(idless_snapshot):
    res = fetch(idless_snapshot, q.discovery_queries(TZ))
    assert rows(res["new_per_month"], "new_tracks", "new_artists") == [(3, 2)]
    assert rows(res["share"], "plays", "new_plays") == [(9, 9)]
    assert rows(res["recent_artists"], "artist", "plays") == [("Dust Choir", 5), ("Neon Fox", 4)]


def test_compare_shares_artists_and_tracks_known_by_name(dashboard_env, idless_snapshot):
    res = fetch(idless_snapshot, q.compare_queries(TZ, q.Period(), ALICE, BOB))
    assert rows(res["overlap"], "top_shared", "top_union", "plays_a", "plays_b", "shared_artists") == [
        (2, 2, 7, 2, 2)
    ]
    assert rows(res["shared_artists"], "artist", "id", "key", "plays_a", "plays_b") == [
        ("Dust Choir", None, "dust choir", 4, 1),
        ("NEON FOX", "n1", "neon fox", 3, 1),
    ]
    # Alice's latest spellings; "Vinyl Hiss" sorts before "night drive" (upper case first, both engines).
    assert rows(res["shared_tracks"], "track", "id", "key", "plays_a", "plays_b") == [
        ("Vinyl Hiss", None, VINYL, 3, 1),
        ("night drive", "s1", NIGHT, 3, 1),
    ]
    assert rows(res["features"], "who", "plays_with_features", "plays") == [("a", 2, 7), ("b", 1, 2)]
    at = _open(dashboard_env, idless_snapshot, "compare", user=ALICE, **{"with": BOB})
    assert list(at.dataframe[0].value["key"]) == ["dust choir", "neon fox"]
    assert "2 plays with features (29% of their plays" in _text(at)


# -- Mood --------------------------------------------------------------------------------------
def test_mood_says_what_share_of_plays_its_features_cover(dashboard_env, idless_snapshot):
    res = fetch(idless_snapshot, q.mood_queries(TZ, q.Period()))
    # Only the 3 Spotify plays of Night Drive have an id, hence features; 6 plays have no id.
    assert rows(res["summary"], "plays_with_features", "plays", "plays_without_id", "energy") == [
        (3, 9, 6, 0.8)
    ]
    at = _open(dashboard_env, idless_snapshot, "mood")
    assert _metrics(at)["Coverage"] == "33%"
    text = _text(at)
    assert "Features known for 33% of plays (3 of 9); the figures below describe those plays only." in text
    assert "6 plays have no Spotify id" in text


def test_a_period_without_scrobbles_has_no_minutes_note(dashboard_env, idless_snapshot):
    """Bob's 6 June alone: one Spotify play of known length, so nothing to say about minutes."""
    period = q.period_for("custom", TZ, first_day=date(2024, 6, 6), last_day=date(2024, 6, 6))
    res = fetch(idless_snapshot, q.overview_queries(TZ, period))
    assert rows(res["totals"], "plays", "untimed") == [(1, 0)]


# -- Charts of plays without a length -----------------------------------------------------------
def _chart_fields(at: AppTest) -> list[str]:
    """The y field of each Vega-Lite chart on the page."""
    import json

    fields = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        fields.append(str(spec.get("encoding", {}).get("y", {}).get("field")))
    return fields


def test_a_period_of_scrobbles_without_a_length_charts_plays_not_a_flat_line(dashboard_env, idless_snapshot):
    """Defect: Alice's 4 June holds only the three "Vinyl Hiss" scrobbles (no length): the minutes
    charts drew a flat line at 0 ("0.000000" on the axis). They chart plays where no play of the
    period has a length, and minutes as before wherever one has."""
    day = {"user": "alice", "period": "custom", "from": "2024-06-04", "to": "2024-06-04"}
    at = _open(dashboard_env, idless_snapshot, "overview", **day)
    assert _metrics(at)["Plays"] == "3"
    assert "Plays per hour" in [s.value for s in at.subheader], [s.value for s in at.subheader]
    assert _metrics(at)["Plays per day"] == "3.0"
    assert _chart_fields(at) == ["plays"]
    when = _open(dashboard_env, idless_snapshot, "when", **day)
    assert "plays" in _chart_fields(when) and "minutes" not in _chart_fields(when)
    # The whole history has lengths (Night Drive, Long Way): minutes, as before.
    everything = _open(dashboard_env, idless_snapshot, "overview", user="alice", period="all")
    assert "Minutes per day" in _metrics(everything)
    assert "minutes" in _chart_fields(everything)
