"""The detail pages (``/artist?id=``, ``/track?id=``, ``/album?id=``) and Wrapped (``/wrapped?year=``).

Expected figures are SQL counts on the fixture warehouse (the same snapshot the page reads),
never values read back from the page.
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import duckdb
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import card
from spotify_assets_tests.fixtures.dashboard import (
    ALBUM_COLORS,
    LOOKED_UP,
    _svg,
    build_dashboard_warehouse,
    dashboard_features,
    dashboard_plays,
)
from spotify_assets_tests.test_dashboard import _metrics, _text
from spotify_assets_tests.test_dashboard_defects import _chart_data, _charts

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
MUSIC = "is_play AND content_type <> 'episode'"


def _sql(snapshot: Path, sql: str) -> object:
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        row = con.execute(sql).fetchone()
        assert row is not None
        return row[0]
    finally:
        con.close()


#: A link as ``ui.link_html`` writes it: its page, query string and label.
LINK = re.compile(r'<a class="sp-link" href="\./(\w+)\?([^"]*)" target="_self">(.*?)</a>')


def _links(at: AppTest) -> dict[str, tuple[str, str]]:
    """The page's links to detail pages: label -> (page, the id it opens as ``id=<id>``, or
    ``key=<names>`` for an item without one).

    The links are plain anchors (``ui.link_html``) that also carry the view's ``tz=`` and
    period; those are checked by the browser tests, the id here.
    """
    found = {}
    for element in at.get("html"):
        for page, query, label in LINK.findall(element.proto.body):
            params = parse_qs(html.unescape(query))
            which = "id" if "id" in params else "key"
            found[html.unescape(label)] = (page, f"{which}={params[which][0]}")
    return found


def _open(monkeypatch: pytest.MonkeyPatch, snapshot: Path, page: str, **params: str) -> AppTest:
    """What a browser opening ``/<page>?<params>`` gets."""
    monkeypatch.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(snapshot))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.query_params.clear()
    at.query_params.update(params)
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize(
    ("kind", "item_id", "where", "title"),
    [
        ("artist", "a1", "lower(primary_artist_name) = 'aurora lane'", "Aurora Lane"),
        (
            "track",
            "t3",
            "lower(track_name) = 'low orbit' AND lower(primary_artist_name) = 'basalt'",
            "Low Orbit",
        ),
        (
            "album",
            "al4",
            "lower(album_name) = 'desert tapes' AND lower(primary_artist_name) = 'dune radio'",
            "Desert Tapes",
        ),
    ],
)
def test_detail_page_totals_equal_a_sql_count(dashboard_env, dashboard_snapshot, kind, item_id, where, title):
    at = _open(dashboard_env, dashboard_snapshot, kind, id=item_id)
    assert at.title[0].value == title
    plays = _sql(dashboard_snapshot, f"SELECT count(*) FROM bq_plays WHERE {MUSIC} AND {where}")
    minutes = _sql(
        dashboard_snapshot, f"SELECT sum(duration_ms) / 60000 FROM bq_plays WHERE {MUSIC} AND {where}"
    )
    first = _sql(
        dashboard_snapshot,
        f"SELECT strftime(min(played_at), '%d %b %Y') FROM bq_plays WHERE {MUSIC} AND {where}",
    )
    m = _metrics(at)
    assert m["Plays"] == f"{plays:,}"
    assert m["Minutes"] == f"{minutes:,.0f}"
    assert m["First play"] == first
    assert at.query_params["id"] == item_id  # the address stays shareable
    hours = _chart_data(_charts(at)[1])
    assert int(hours["plays"].sum()) == plays and len(hours) == 24


def test_artist_page_top_tracks_rank_and_features(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "artist", id="a1")
    tracks = at.dataframe[0].value
    assert list(zip(tracks["track"], tracks["plays"], strict=True)) == [
        ("Northern Glass", 40),
        ("Tidewater", 20),
    ]
    albums = at.dataframe[1].value
    assert list(albums["album"]) == ["Glass Harbour"] and int(albums["plays"].iloc[0]) == 60
    # Rank among all artists per month: January 1st (35 plays); February 3rd behind Dune Radio
    # (22) and Basalt/Echo Park Kids (10/15); March 4th.
    rank = _chart_data(_charts(at)[2])
    assert rank["rank"].tolist() == [1, 3, 4] and rank["plays"].tolist() == [35, 10, 15]
    axis = json.loads(_charts(at)[2].proto.spec)["encoding"]["y"]["axis"]
    assert (axis["format"], axis["tickMinStep"]) == ("d", 1)  # whole ranks, never "1.000000"
    plays = dashboard_plays()
    mine = plays[
        plays["is_play"]
        & (plays["primary_artist_name"] == "Aurora Lane")
        & (plays["content_type"] == "track")
    ]
    feats = dashboard_features("ok").query("status == 'ok'").set_index("track_id")
    energy = mine.join(feats[["energy"]], on="track_id")["energy"].astype(float).mean()
    assert _metrics(at)["Energy"] == f"{energy:.2f}"
    assert _links(at) == {}  # an artist page links down via its rows


def test_track_page_links_to_its_artist_and_album(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "track", id="t1")
    links = {label: q for label, (_, q) in _links(at).items()}
    assert links == {"Aurora Lane": "id=a1", "Glass Harbour": "id=al1"}


#: A play's ids after the pipeline's lookups: the stored id, else the one ``track_metadata`` found.
RESOLVED = """(SELECT p.*, coalesce(p.primary_artist_id, m.primary_artist_id) AS primary_artist_id_resolved,
  coalesce(p.album_id, m.album_id) AS album_id_resolved
FROM bq_plays AS p LEFT JOIN track_metadata AS m ON m.track_id = p.track_id AND m.status = 'ok') AS r"""


@pytest.mark.parametrize(
    ("kind", "item_id", "column", "title"),
    [
        ("artist", "a1", "primary_artist_id", "Aurora Lane"),
        ("album", "al1", "album_id", "Glass Harbour"),
    ],
)
def test_imported_plays_open_by_the_ids_their_lookups_found(
    dashboard_env, dashboard_snapshot, kind, item_id, column, title
):
    """Every play of Aurora Lane came from an export (no artist or album id); the track lookups
    found the ids, and the page by id counts every one of those plays."""
    stored = _sql(
        dashboard_snapshot,
        f"SELECT count(*) FROM bq_plays WHERE {MUSIC} AND {column} = '{item_id}'",
    )
    assert stored == 0  # no play in the plays table carries the id
    plays = _sql(
        dashboard_snapshot,
        f"SELECT count(*) FROM {RESOLVED} WHERE {MUSIC} AND {column}_resolved = '{item_id}'",
    )
    assert plays == 60
    at = _open(dashboard_env, dashboard_snapshot, kind, id=item_id)
    assert at.title[0].value == title
    assert _metrics(at)["Plays"] == f"{plays:,}"
    assert "matched by name" not in _text(at)  # all resolved: nothing left to match by name
    # The cover the lookup found is shown (the plays themselves have none), over the placeholder.
    covers = [e.proto.body for e in at.get("html") if 'class="sp-cover"' in e.proto.body]
    assert len(covers) == 1 and f"url(&#x27;{_svg(ALBUM_COLORS['al1'])}&#x27;)" in covers[0]
    assert "data:image/svg+xml;utf8" in covers[0]  # the placeholder layer
    assert not at.get("image")  # no <img>: it would be a broken-image icon when offline


def test_plays_not_yet_looked_up_are_matched_by_name_and_said_so(dashboard_env, dashboard_snapshot):
    """Basalt's "Magma" (t4) has not been looked up yet: its plays join the artist by name."""
    by_id = _sql(
        dashboard_snapshot,
        f"SELECT count(*) FROM {RESOLVED} WHERE {MUSIC} AND primary_artist_id_resolved = 'a2'",
    )
    pending = _sql(
        dashboard_snapshot,
        f"SELECT count(*) FROM {RESOLVED} WHERE {MUSIC} AND primary_artist_id_resolved IS NULL AND primary_artist_name = 'Basalt'",
    )
    assert (by_id, pending) == (35, 10)
    at = _open(dashboard_env, dashboard_snapshot, "artist", id="a2")
    assert _metrics(at)["Plays"] == "45"  # as on the Top page
    assert (
        "10 plays came from an export without Spotify ids whose tracks have not been looked up yet"
        in _text(at)
    )


def test_before_any_lookup_imported_names_have_no_id_and_top_says_why(
    dashboard_env, dashboard_snapshot, tmp_path
):
    snapshot = build_dashboard_warehouse(tmp_path, dashboard_plays())  # no track_metadata rows yet
    at = _open(dashboard_env, snapshot, "artist", id="a1")
    assert "No plays of the artist" in at.warning[0].value
    at = _open(dashboard_env, snapshot, "top")
    artists = at.dataframe[1].value
    assert artists["artist"].iloc[0] == "Aurora Lane" and pd.isna(artists["id"].iloc[0])
    # The lookups add ids and covers only: every figure is the same once they have arrived.
    after = _open(dashboard_env, dashboard_snapshot, "top")
    assert _metrics(after) == _metrics(at)
    for i in range(3):
        before_df, after_df = at.dataframe[i].value, after.dataframe[i].value
        cols = [c for c in before_df.columns if c not in ("id", "image")]
        pd.testing.assert_frame_equal(before_df[cols], after_df[cols])
    assert after.dataframe[1].value["id"].iloc[0] == "a1"
    assert _pending(looked_up=()) == (137, 6)  # the 105 imported plays, and 32 API plays without a cover
    assert "137 plays of 6 tracks lack Spotify ids or a cover (an export has neither)" in _text(at)


def _pending(looked_up: tuple[str, ...]) -> tuple[int, int]:
    """Plays (and tracks) the ``track_metadata`` step has still to look up, counted in pandas."""
    plays = dashboard_plays()
    lacking = plays[["primary_artist_id", "album_id", "album_image_url"]].isna().any(axis=1)
    todo = plays[
        plays["is_play"]
        & (plays["content_type"] == "track")
        & plays["track_id"].notna()
        & lacking
        & ~plays["track_id"].isin(looked_up)
    ]
    return len(todo), todo["track_id"].nunique()


def test_top_counts_the_plays_still_to_look_up(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "top")
    assert _pending(looked_up=LOOKED_UP) == (42, 3)  # Magma (pending), Paper Crown and Lantern (no cover)
    assert "42 plays of 3 tracks lack Spotify ids or a cover" in _text(at)


def test_unknown_or_missing_id(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "album", id="nope'; DROP TABLE bq_plays; --")
    assert "No plays of the album" in at.warning[0].value
    at = _open(dashboard_env, dashboard_snapshot, "track")
    assert at.info[0].value.startswith("Open a track from the Top page")


def test_top_links_its_number_ones_to_their_pages(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "top")
    links = {label: link for label, link in _links(at).items() if label.startswith("Open the")}
    assert {label: q for label, (_, q) in links.items()} == {
        "Open the track": "id=t1",
        "Open the artist": "id=a1",
        "Open the album": "id=al1",
    }
    # Every ranked row carries the id its click opens.
    assert at.dataframe[0].value["id"].iloc[0] == "t1"
    assert at.dataframe[1].value["id"].iloc[0] == "a1"


# -- Wrapped --------------------------------------------------------------------------------
def test_wrapped_for_a_year(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "wrapped", year="2024")
    assert at.title[0].value == "Your 2024 in music"
    minutes = _sql(dashboard_snapshot, f"SELECT sum(duration_ms) / 60000 FROM bq_plays WHERE {MUSIC}")
    m = _metrics(at)
    assert m["Minutes"] == f"{minutes:,.0f}" == "796"
    assert m["Plays"] == "232" and m["Longest streak"] == "10 days" and m["New artists"] == "7"
    busiest = _sql(
        dashboard_snapshot,
        f"SELECT sum(duration_ms) / 60000 FROM bq_plays WHERE {MUSIC} AND CAST(played_at AS DATE) = DATE '2024-02-14'",
    )
    text = _text(at)
    assert f"**Busiest day:** Wed 14 Feb ({int(busiest) // 60} h {round(busiest) % 60:02d} min)" in text
    assert "**Discovered:** 7 artists, 11 tracks" in text
    assert "**Mood:** happy / upbeat (energy 0.51, valence 0.59)" in text
    labels = list(_links(at))
    assert labels[:5] == [
        "1. Aurora Lane · 60 plays",
        "2. Basalt · 45 plays",
        "3. Dune Radio · 40 plays",
        "4. Cinder Youth · 30 plays",
        "5. Echo Park Kids · 20 plays",
    ]
    button = at.get("download_button")[0].proto
    assert button.label == "Download the summary card (PNG)" and button.url.endswith(".png")


def test_wrapped_ignores_a_year_without_plays(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot, "wrapped", year="1999")
    assert at.title[0].value == "Your 2024 in music"  # the newest year with plays
    assert at.query_params["year"] == "2024"


def test_wrapped_card_is_a_png_with_the_summary():
    summary = card.WrappedSummary(
        year=2024,
        minutes=796,
        plays=232,
        top_artists=["Aurora Lane", "A name far too long to fit on the card without being shortened by it"],
        top_tracks=["Northern Glass - Aurora Lane"],
        busiest_day="Wed 14 Feb (1 h 44 min)",
        longest_streak="10 days",
        discoveries="7 artists, 11 tracks",
        mood="happy / upbeat",
    )
    png = card.summary_png(summary)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(png))
    assert img.size == (card.WIDTH, card.HEIGHT)
    # Text was drawn: the card is not a blank background.
    assert len(img.convert("RGB").getcolors(maxcolors=100_000) or []) > 50
