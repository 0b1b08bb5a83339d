"""The dashboard for a household (issues 13 and 14): the listener picker, Compare, per-listener access.

Expected figures are computed from the fixture warehouse itself (SQL and pandas over the same
snapshot the app reads), never read back from the page.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlglot
from sqlglot import exp
from streamlit.testing.v1 import AppTest

from app import queries
from app.auth import VIEWER_KEY, Viewer
from spotify_assets_tests.fixtures.dashboard import ALICE, BOB
from spotify_assets_tests.test_dashboard import _metrics, _text
from spotify_assets_tests.test_dashboard_defects import _chart_data, _charts

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
MUSIC = "is_play AND content_type <> 'episode'"


def _plays(snapshot: Path) -> pd.DataFrame:
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        return con.execute(f"SELECT * FROM bq_plays WHERE {MUSIC}").df()
    finally:
        con.close()


def _scalar(snapshot: Path, sql: str) -> float:
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        row = con.execute(sql).fetchone()
        assert row is not None
        return float(row[0])
    finally:
        con.close()


def _open(
    monkeypatch: pytest.MonkeyPatch,
    snapshot: Path,
    page: str | None = None,
    viewer: Viewer | None = None,
    **params: str,
) -> AppTest:
    """What a browser opening ``/<page>?<params>`` gets (as ``viewer``, through app/auth's viewer hook)."""
    monkeypatch.setenv("SPOTIFY_WAREHOUSE_SNAPSHOT", str(snapshot))
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(snapshot.parent))
    at = AppTest.from_file(APP, default_timeout=60)
    if viewer is not None:
        at.session_state[VIEWER_KEY] = viewer
    at.query_params.update(params)
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _picker(at: AppTest):  # type: ignore[no-untyped-def]
    return next(s for s in at.sidebar.selectbox if s.label == "Listener")


#: Tracks only Alice plays in the household fixture (Bob's are t1..t5 and Hollow Pines).
ALICE_ALONE = {"Mirage", "Oasis", "Swings", "Paper Crown", "Demo Take 3", "Lantern"}


# -- one filter for every page ---------------------------------------------------------
def test_every_read_of_the_plays_table_is_restricted_to_the_listener():
    for name, sql in queries.all_builders_sample().items():
        reads = [
            t for t in sqlglot.parse_one(sql, dialect="duckdb").find_all(exp.Table) if t.name == "bq_plays"
        ]
        scoped = sqlglot.parse_one(queries.for_listener(sql, "o'brien"), dialect="duckdb")
        after = [t for t in scoped.find_all(exp.Table) if t.name == "bq_plays"]
        assert len(after) == len(reads), name
        for table in after:  # each read is now the listener's own plays, and nothing else
            select = table.find_ancestor(exp.Select)
            assert select is not None and isinstance(select.parent, exp.Subquery), name
            assert select.sql(dialect="duckdb") == "SELECT * FROM bq_plays WHERE user_id = 'o''brien'", name
        assert queries.for_listener(sql, None) == sql


# -- the picker ------------------------------------------------------------------------
def test_one_listeners_pages_count_only_their_plays(dashboard_env, household_snapshot):
    plays = _plays(household_snapshot)
    everyone = _open(dashboard_env, household_snapshot)
    assert _metrics(everyone)["Plays"] == f"{len(plays):,}"
    assert _picker(everyone).value == ""
    assert _picker(everyone).options == ["Everyone", "Alice", "Bob"]  # display names from the registry
    for uid in (ALICE, BOB):
        mine = plays[plays["user_id"] == uid]
        at = _open(dashboard_env, household_snapshot, user=uid)
        m = _metrics(at)
        assert m["Plays"] == f"{len(mine):,}", uid
        assert m["Artists"] == str(mine["primary_artist_name"].str.lower().nunique()), uid
        # The detail pages and Wrapped follow the same filter.
        basalt = mine[mine["primary_artist_name"] == "Basalt"]
        detail = _open(dashboard_env, household_snapshot, "artist", id="a2", user=uid)
        assert _metrics(detail)["Plays"] == str(len(basalt)), uid


def test_the_picked_listener_is_kept_in_the_link(dashboard_env, household_snapshot):
    at = _open(dashboard_env, household_snapshot, "top")
    assert "user" not in at.query_params
    _picker(at).set_value(BOB).run()
    assert at.query_params["user"] == [BOB] or at.query_params["user"] == BOB
    # Bob's top tracks are drawn, and they are his, with his counts: his own Hollow Pines, none
    # of Alice's alone (the Spark mart's table lists his tracks too, so the table is found by key).
    tables = {df.key: df.value for df in at.dataframe}
    assert "top_tracks_table" in tables, f"the Top page drew no table of Bob's tracks: {list(tables)}"
    bob_top = tables["top_tracks_table"]
    drawn = {str(t): int(n) for t, n in zip(bob_top["track"], bob_top["plays"], strict=True)}
    plays = _plays(household_snapshot)
    assert drawn == plays[plays["user_id"] == BOB].groupby("track_name").size().to_dict()
    assert "Hollow Pines" in drawn and not set(drawn) & ALICE_ALONE
    # Opening that link again reopens Bob's view; a registry name works as well as the id.
    again = _open(dashboard_env, household_snapshot, "top", user="bob")
    assert _picker(again).value == BOB
    bob = _plays(household_snapshot).query("user_id == @BOB")
    assert _metrics(again)["Plays"] == str(len(bob))


def _mart_rows(snapshot: Path, scope: str) -> list[tuple[str, int]]:
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        sql = "SELECT track_name, plays FROM top_ten_tracks WHERE user_id = ? ORDER BY rank"
        return [(str(name), int(plays)) for name, plays in con.execute(sql, [scope]).fetchall()]
    finally:
        con.close()


def test_the_spark_top_ten_tab_shows_the_picked_listeners_own_ranking(dashboard_env, household_snapshot):
    """One mart, one job, a ranking per scope: Bob's page shows Bob's rows, Everyone's the household's,
    each with its own "over how many plays"."""
    plays = _plays(household_snapshot)
    # The Spark job's rule: a play with a track id, or with artist and track names (Alice's local file).
    named = plays["primary_artist_name"].notna() & plays["track_name"].notna()
    counted = plays[(plays["content_type"] == "track") & (plays["track_id"].notna() | named)]
    bob_counted = counted[counted["user_id"] == BOB]
    assert (len(counted), len(bob_counted)) == (303, 71)
    for user, scope, whose, n in ((None, "*", "All-time", 303), ("bob", BOB, "This listener's", 71)):
        at = _open(dashboard_env, household_snapshot, "top", **({"user": user} if user else {}))
        assert not at.exception
        mart = at.dataframe[3].value
        shown = [(str(t), int(p)) for t, p in zip(mart["track"], mart["plays"], strict=True)]
        assert shown == _mart_rows(household_snapshot, scope), scope
        assert list(mart["rank"]) == list(range(1, len(mart) + 1))
        assert f"{whose} top ten, counted on 2024-04-01 12:00 (UTC) over {n} plays" in _text(at)
    # Bob's own: Low Orbit 6 + 10 plays, Hollow Pines 15, then his first day's other four tracks.
    assert _mart_rows(household_snapshot, BOB)[:2] == [("Low Orbit", 16), ("Hollow Pines", 15)]
    assert len(_mart_rows(household_snapshot, BOB)) == 6
    assert _mart_rows(household_snapshot, "*")[0] != _mart_rows(household_snapshot, BOB)[0]


def test_one_listener_has_no_picker(dashboard_env, dashboard_snapshot):
    at = _open(dashboard_env, dashboard_snapshot)
    assert not [s for s in at.sidebar.selectbox if s.label == "Listener"]


# -- Compare ---------------------------------------------------------------------------
def _expected_compare(plays: pd.DataFrame) -> dict[str, object]:
    plays = plays.assign(artist=plays["primary_artist_name"].str.lower())
    per = {uid: plays[plays["user_id"] == uid] for uid in (ALICE, BOB)}
    counts = {uid: df.groupby("artist").size().reset_index(name="n") for uid, df in per.items()}
    top = {
        uid: set(c.sort_values(["n", "artist"], ascending=[False, True]).head(queries.OVERLAP_TOP)["artist"])
        for uid, c in counts.items()
    }
    shared = set(counts[ALICE]["artist"]) & set(counts[BOB]["artist"])
    first = {
        artist: (
            ALICE
            if per[ALICE][per[ALICE]["artist"] == artist]["played_at"].min()
            < per[BOB][per[BOB]["artist"] == artist]["played_at"].min()
            else BOB
        )
        for artist in shared
    }
    return {
        "jaccard": len(top[ALICE] & top[BOB]) / len(top[ALICE] | top[BOB]),
        "shared": shared,
        "share": {uid: per[uid]["artist"].isin(shared).sum() / len(per[uid]) for uid in (ALICE, BOB)},
        "first": first,
    }


def test_compare_two_listeners(dashboard_env, household_snapshot):
    plays = _plays(household_snapshot)
    want = _expected_compare(plays)
    at = _open(dashboard_env, household_snapshot, "compare", user=ALICE, **{"with": BOB})
    m = _metrics(at)
    assert m["Taste overlap"] == f"{want['jaccard']:.0%}"
    assert m["Shared artists"] == str(len(want["shared"]))  # type: ignore[arg-type]
    share = want["share"]
    assert isinstance(share, dict)
    assert m["Alice: plays on shared artists"] == f"{share[ALICE]:.0%}"
    assert m["Bob: plays on shared artists"] == f"{share[BOB]:.0%}"
    artists = at.dataframe[0].value
    assert {a.lower() for a in artists["Artist"]} == want["shared"]
    first = want["first"]
    assert isinstance(first, dict)
    found = {a.lower(): who for a, who in zip(artists["Artist"], artists["Found first"], strict=True)}
    assert found == {a: ("Alice" if uid == ALICE else "Bob") for a, uid in first.items()}
    assert found["basalt"] == "Bob"
    tracks = at.dataframe[1].value
    both = set(plays[plays["user_id"] == ALICE]["track_name"]) & set(
        plays[plays["user_id"] == BOB]["track_name"]
    )
    assert set(tracks["Track"]) == both
    for _, row in tracks.iterrows():
        for uid, col in ((ALICE, "Alice plays"), (BOB, "Bob plays")):
            assert row[col] == ((plays["user_id"] == uid) & (plays["track_name"] == row["Track"])).sum()
    hours, features = (_chart_data(c) for c in _charts(at))  # side by side: one bar per listener
    for uid, label in ((ALICE, "Alice"), (BOB, "Bob")):
        mine = plays[plays["user_id"] == uid]
        drawn = hours[hours["listener"] == label].set_index("hour")["plays"].astype(int).to_dict()
        assert drawn == mine.groupby(mine["played_at"].dt.tz_convert("UTC").dt.hour).size().to_dict(), uid
        energy = _scalar(
            household_snapshot,
            f"SELECT avg(f.energy) FROM bq_plays AS p JOIN track_features AS f ON f.track_id = p.track_id "
            f"WHERE {MUSIC} AND f.status = 'ok' AND p.user_id = '{uid}'",
        )
        shown = features[(features["listener"] == label) & (features["feature"] == "Energy")]["value"]
        assert shown.tolist() == pytest.approx([energy]), uid
    assert at.query_params["with"] in (BOB, [BOB])


# -- access (issue 14) -----------------------------------------------------------------
ALICE_ONLY = Viewer("alice@example.org", "alice", household=False)
ALICE_HOUSEHOLD = Viewer("alice@example.org", "alice", household=True)


def test_a_listener_sees_only_their_own_plays(dashboard_env, household_snapshot):
    plays = _plays(household_snapshot)
    at = _open(dashboard_env, household_snapshot, viewer=ALICE_ONLY)
    assert _picker(at).options == ["Alice"]
    assert _metrics(at)["Plays"] == str((plays["user_id"] == ALICE).sum())


def _shown(at: AppTest) -> str:
    """Everything a page shows as text: its markdown, captions, metrics and every table's cells."""
    tables = [df.value.to_csv() for df in at.dataframe]
    metrics = [f"{m.label} {m.value}" for m in at.metric]
    sidebar = [str(c.value) for c in at.sidebar.caption]
    return "\n".join([_text(at), *tables, *metrics, *sidebar])


@pytest.mark.parametrize("page", ["top", "recent"])
def test_a_listeners_pages_show_none_of_the_other_listeners_plays(dashboard_env, household_snapshot, page):
    """On the page, not in the SQL: signed in as Bob (no household views), the Top and Recent pages
    list his plays and nothing Alice alone played; without ``for_listener`` her tracks show."""
    bob = Viewer("bob@example.org", "bob", household=False)
    at = _open(dashboard_env, household_snapshot, page, viewer=bob)
    shown = _shown(at)
    assert "Hollow Pines" in shown  # his own plays are drawn: the absence below is judged on a drawn page
    assert not [t for t in ALICE_ALONE if t in shown], page


def test_a_listeners_page_frame_shows_their_newest_play_not_the_warehouses(dashboard_env, household_snapshot):
    """Alice's newest play is on 29 March, Bob's a month later: signed in as Alice (no household
    views), the sidebar's newest play and the custom period's default bounds are hers."""
    con = duckdb.connect(str(household_snapshot), read_only=True)
    try:
        newest = dict(con.execute("SELECT user_id, max(played_at) FROM bq_plays GROUP BY user_id").fetchall())
    finally:
        con.close()
    hers, his = (pd.Timestamp(newest[uid]).tz_convert("UTC") for uid in (ALICE, BOB))
    assert his.date() > hers.date()  # the warehouse's newest play is Bob's
    # A session's first run (the picker has not chosen yet when the frame starts) and a later one.
    first = _open(dashboard_env, household_snapshot, viewer=ALICE_ONLY)
    at = _open(dashboard_env, household_snapshot, "top", viewer=ALICE_ONLY, period="custom")
    for run in (first, at):
        assert run.session_state["tz"] == "UTC"
        sidebar = " ".join(str(c.value) for c in run.sidebar.caption)
        assert "Newest play" in sidebar and f"({hers:%d %b %Y})" in sidebar, sidebar
        assert f"{his:%d %b %Y}" not in sidebar
    first, last = at.date_input[0].value
    assert (first, last) == ((hers - pd.Timedelta(days=30)).date(), hers.date())
    # The owner (everyone's view) still sees the warehouse's newest play, Bob's.
    owner = _open(dashboard_env, household_snapshot)
    assert f"({his:%d %b %Y})" in " ".join(str(c.value) for c in owner.sidebar.caption)


@pytest.mark.parametrize(
    ("page", "params"), [(None, {"user": BOB}), ("top", {"user": "bob"}), ("compare", {})]
)
def test_another_listeners_page_by_url_is_refused(dashboard_env, household_snapshot, page, params):
    at = _open(dashboard_env, household_snapshot, page, viewer=ALICE_ONLY, **params)
    assert at.title[0].value == "Not shared with you"
    assert not at.metric
    assert "Northern Glass" not in _text(at) and "Ivy Coast" not in _text(at)


def test_a_household_member_may_pick_everyone_and_compare(dashboard_env, household_snapshot):
    at = _open(dashboard_env, household_snapshot, viewer=ALICE_HOUSEHOLD, user=BOB)
    assert _picker(at).options == ["Everyone", "Alice", "Bob"]
    assert _metrics(at)["Plays"] == str((_plays(household_snapshot)["user_id"] == BOB).sum())
    compare = _open(dashboard_env, household_snapshot, "compare", viewer=ALICE_HOUSEHOLD)
    assert compare.title[0].value == "Compare"


def test_one_listeners_queries_transpile_to_bigquery():
    """The cloud warehouse gets the same filter: every plays read qualified and restricted."""
    from app.warehouse import to_bigquery

    for name, sql in queries.all_builders_sample().items():
        out = to_bigquery(queries.for_listener(sql, "alice"), "my-project", "spotify")
        tree = sqlglot.parse_one(out, read="bigquery")
        for table in (t for t in tree.find_all(exp.Table) if t.name == "bq_plays"):
            assert (table.catalog, table.db) == ("my-project", "spotify"), name
            select = table.find_ancestor(exp.Select)
            assert select is not None and select.args["where"].this.sql("bigquery") == "user_id = 'alice'", (
                name
            )


def test_a_listener_without_plays_sees_none_of_the_others(dashboard_env, household_snapshot):
    at = _open(
        dashboard_env, household_snapshot, viewer=Viewer("carol@example.org", "carol", household=False)
    )
    # No picker of the others: a page saying so, and nothing of theirs.
    assert not [s for s in at.sidebar.selectbox if s.label == "Listener"]
    assert [t.value for t in at.title] == ["No plays of yours yet"]
    assert "Northern Glass" not in _text(at) and "Ivy Coast" not in _text(at)
    assert _metrics(at).get("Plays", "0") == "0"
