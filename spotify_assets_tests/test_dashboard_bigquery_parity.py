"""The dashboard on BigQuery, for real: every query on the BigQuery emulator equals DuckDB's answer.

The same plays (the two-listener household of ``fixtures/dashboard.py``: Alice's four months
with imported plays, lookups, short streams and podcasts; Bob's day of ties) are written by
the pipeline's own writers into the BigQuery emulator and into a DuckDB snapshot. The app's
warehouses (``app.warehouse.from_env`` in cloud mode, with ``SPOTIFY_BQ_ENDPOINT``, and
``DuckDBSnapshot``) then answer:

* every query of every builder in ``app/queries.py``, called the way the pages call them: each
  period option for everyone, two for one listener (``for_listener``, as ``Context.fetch``
  does), every grain, the detail pages for several artists, tracks and albums, Wrapped for a
  year with plays and one without, and Compare both ways; a new query in a builder is compared
  at once, and a new builder this test does not call fails it;
* every page rendered by ``AppTest`` (the pages' own batches, recorded as sent) on each;
* the same for a second history that is mostly plays without a Spotify id (scrobbles no
  Spotify play matched: ``fixtures/dashboard.idless_plays``), its detail pages opened by names'
  key (``?key=``), as ``test_dashboard_idless.py`` checks them by hand on DuckDB.

Frames must be equal value for value and row for row (``app.parity`` lists the only
representation differences it normalises).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, get_args

import pytest

from app import parity
from app import queries as q
from app.warehouse import BigQueryWarehouse, DuckDBSnapshot, Warehouse, from_env
from spotify_assets.schema import PLAYS_TABLE
from spotify_assets.tables import plays as plays_table
from spotify_assets.tables import top_ten as top_ten_table
from spotify_assets.tables import tracks as tracks_table
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator
from spotify_assets_tests.fixtures.dashboard import (
    ALICE,
    BOB,
    build_dashboard_warehouse,
    dashboard_features,
    dashboard_metadata,
    dashboard_top_ten,
    household_plays,
    idless_features,
    idless_plays,
    idless_top_ten,
)

#: A day after the household's newest play (2 May 2024), so "last 4 weeks" and "last 6 months" hold plays.
NOW = datetime(2024, 5, 3, 12, tzinfo=UTC)
#: A zone with a daylight-saving switch inside the plays (31 March), so local days and hours matter.
TZ = "Europe/Berlin"
CUSTOM = (date(2024, 2, 1), date(2024, 3, 31))
#: Detail pages opened for everyone: looked-up imports (a1, t1, al1), a pending import (a2, t4),
#: API plays (al4) and an id nobody played; for Bob: a shared artist and his own track and album.
DETAIL_IDS: dict[str | None, list[tuple[q.DetailKind, str]]] = {
    None: [
        ("artist", "a1"),
        ("artist", "a2"),
        ("artist", "nobody"),
        ("track", "t1"),
        ("track", "t4"),
        ("album", "al1"),
        ("album", "al4"),
    ],
    BOB: [("artist", "a2"), ("track", "b1"), ("album", "alb1")],
}
#: Detail pages opened by names' key (an item without a Spotify id): the household's local file
#: (no track or album id) and its album.
DETAIL_KEYS: dict[str | None, list[tuple[q.DetailKind, str]]] = {
    None: [("track", "fable|demo take 3"), ("album", "fable|demo takes")],
    BOB: [("track", "fable|demo take 3")],  # none of his: an empty page
}
#: The periods each scope is compared over: every option for everyone; for Bob (whose plays are
#: in January and May) the two where he has plays in and out of the period.
PERIODS: dict[str | None, tuple[q.PeriodKind, ...]] = {None: get_args(q.PeriodKind), BOB: ("4w", "all")}


@pytest.fixture(scope="module")
def warehouses(
    bigquery_emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BigQueryWarehouse, DuckDBSnapshot]:
    """The household's plays, features, lookups and mart in both warehouses, each written by
    the pipeline's own writer; the BigQuery side read through the app's own cloud selection."""
    plays = household_plays()
    features, metadata, top_ten = dashboard_features("ok"), dashboard_metadata(), dashboard_top_ten(plays)
    writer = bigquery_emulator.warehouse()
    plays_table.merge_plays(writer, plays)
    tracks_table.merge_features(writer, features)
    tracks_table.merge_metadata(writer, metadata)
    top_ten_table.replace(writer, top_ten)
    bigquery = from_env(
        {
            "SPOTIFY_DEPLOYMENT": "cloud",
            "SPOTIFY_GCP_PROJECT": writer.project,
            "SPOTIFY_BQ_DATASET": writer.dataset,
            "SPOTIFY_BQ_ENDPOINT": bigquery_emulator.url,
        }
    )
    assert isinstance(bigquery, BigQueryWarehouse) and bigquery.endpoint == bigquery_emulator.url
    snapshot = build_dashboard_warehouse(
        tmp_path_factory.mktemp("parity"), plays, features, top_ten, metadata
    )
    return bigquery, DuckDBSnapshot(snapshot)


def _builders() -> dict[str, Callable[..., dict[str, str]]]:
    """Every public function of ``app.queries`` that returns a batch (``dict[str, str]``)."""
    return {
        name: fn
        for name, fn in inspect.getmembers(q, inspect.isfunction)
        if fn.__module__ == q.__name__
        and not name.startswith("_")
        and inspect.signature(fn).return_annotation in ("dict[str, str]", dict[str, str])
        and name != "all_builders_sample"  # the transpile tests' own sample, built from the others
    }


#: Taken before any test wraps them (``called``).
BUILDERS = _builders()


@pytest.fixture
def called(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Which batch builders were called (each one wrapped to note its name)."""
    seen: set[str] = set()

    def noting(name: str, fn: Callable[..., dict[str, str]]) -> Callable[..., dict[str, str]]:
        def wrapper(*args: Any, **kwargs: Any) -> dict[str, str]:
            seen.add(name)
            return fn(*args, **kwargs)

        return wrapper

    for name, fn in BUILDERS.items():
        monkeypatch.setattr(q, name, noting(name, fn))
    yield seen


def _period(kind: q.PeriodKind) -> q.Period:
    return q.period_for(kind, TZ, now=NOW, first_day=CUSTOM[0], last_day=CUSTOM[1])


def _pages(user: str | None) -> list[dict[str, str]]:
    """The batches of every page for one scope, built with the pages' arguments."""
    out = [q.freshness_query(), q.discovery_queries(TZ), q.sources_query(), q.years_query(TZ)]
    out.append(q.top_ten_mart_query(user))
    for kind in PERIODS[user]:
        period = _period(kind)
        previous = q.previous_period(period, now=NOW)
        out += [
            q.overview_queries(TZ, period, previous),
            {**q.top_queries(TZ, period, previous=previous), **q.pending_lookups_query(period)},
            q.mood_queries(TZ, period),
            q.recent_queries(TZ, q.RecentFilter(period=period), 100, 0),
        ]
        out += [q.when_queries(TZ, period, grain) for grain in (q.GRAINS if kind == "all" else ("week",))]
    out += [
        q.recent_queries(TZ, q.RecentFilter(search="pines", content="all", sources=("api",)), 100, 0),
        q.recent_queries(TZ, q.RecentFilter(content="podcasts", include_short=True), 10, 20),
        q.wrapped_queries(TZ, 2024),
    ]
    out += [q.detail_queries(kind, item, TZ) for kind, item in DETAIL_IDS[user]]
    out += [q.detail_queries(kind, key, TZ, by="key") for kind, key in DETAIL_KEYS[user]]
    return [{name: q.for_listener(sql, user) for name, sql in batch.items()} for batch in out]


def every_batch() -> list[dict[str, str]]:
    """Every batch the pages send: the frame's (everyone's), each scope's pages, Compare's."""
    batches = [q.version_queries(), q.listeners_query(), q.wrapped_queries(TZ, 2023)]  # 2023: no plays
    for user in PERIODS:
        batches += _pages(user)
    batches += [q.compare_queries(TZ, _period(kind), ALICE, BOB) for kind in get_args(q.PeriodKind)]
    batches.append(q.compare_queries(TZ, _period("all"), BOB, ALICE))
    return batches


def test_every_dashboard_query_gives_duckdbs_answer_on_bigquery(
    warehouses: tuple[BigQueryWarehouse, DuckDBSnapshot], called: set[str]
) -> None:
    bigquery, duckdb = warehouses
    batches = every_batch()
    assert len(BUILDERS) >= 15 and called == set(BUILDERS), (
        f"builders no batch calls: {set(BUILDERS) - called}"
    )
    result = parity.compare(batches, bigquery, duckdb)
    assert result.differences == {}, "\n".join(f"{k}: {v}" for k, v in result.differences.items())
    assert set(result.skipped.values()) == {parity.NOT_ON_BIGQUERY["warehouse_meta"]}
    # Not a comparison of empty frames: hundreds of queries, thousands of rows.
    assert result.compared > 200 and result.rows > 1000, result


def test_rankings_with_ties_come_back_in_the_same_order(
    warehouses: tuple[BigQueryWarehouse, DuckDBSnapshot],
) -> None:
    """Bob played four tracks 10 times each (his first day): their order is decided by the
    tie-breaks (minutes, then name), and it is the same on both."""
    bigquery, duckdb = warehouses
    batch = {n: q.for_listener(sql, BOB) for n, sql in q.top_queries(TZ, q.Period(), limit=8).items()}
    on_bq, on_duck = bigquery.fetch(batch), duckdb.fetch(batch)
    tracks = on_bq["tracks"]
    assert tracks is not None and on_duck["tracks"] is not None
    assert list(tracks["plays"]) == [16, 15, 10, 10, 10, 10]
    assert list(tracks["track"]) == list(on_duck["tracks"]["track"])
    assert parity.frame_difference(tracks, on_duck["tracks"]) is None
    swapped = on_duck["tracks"].iloc[[0, 1, 3, 2, 4, 5]].reset_index(drop=True)
    assert parity.frame_difference(tracks, swapped) is not None  # the order is compared


def test_every_page_renders_on_bigquery_with_duckdbs_figures(
    warehouses: tuple[BigQueryWarehouse, DuckDBSnapshot], tmp_path: Path
) -> None:
    """``AppTest`` opens each page on both warehouses: no exception, the same figures shown,
    the same batches sent, and each of those batches answered alike."""
    bigquery, duckdb = warehouses
    env = {"SPOTIFY_TIMEZONE": TZ, "SPOTIFY_DATA_DIR": str(tmp_path)}
    params = parity.page_params(duckdb, TZ)
    assert parity.page_params(bigquery, TZ) == params
    seen: dict[str, list[parity.RenderedPage]] = {}
    recorded: dict[str, parity.RecordingWarehouse] = {}
    for side, wh in (("bigquery", bigquery), ("duckdb", duckdb)):
        recorded[side] = parity.RecordingWarehouse(wh)
        seen[side] = parity.render_pages(recorded[side], params, env=env)
    bq_pages, duck_pages = seen["bigquery"], seen["duckdb"]
    assert [p.page for p in bq_pages] == list(parity.PAGES)
    assert {p.page: p.exceptions for p in bq_pages if p.exceptions} == {}
    assert parity.figure_differences(bq_pages, duck_pages) == {}, "page figures (BigQuery, DuckDB) differ"
    # Freshness comes from the plays on both (no snapshot needed), so it is shown and compared too.
    overview = {p.page: p for p in bq_pages}["overview"].metrics
    assert overview["Plays last arrived"] not in ("unknown", "-") and overview["Plays"] == "303"
    assert sum(len(p.metrics) for p in bq_pages) > 30, [p.metrics for p in bq_pages]
    assert sum(len(t) for p in bq_pages for t in p.tables) > 100  # the tables shown, row by row
    assert _sqls(recorded["bigquery"]) == _sqls(recorded["duckdb"])
    result = parity.compare(recorded["bigquery"].batches, bigquery, duckdb)
    assert result.differences == {} and result.compared > 50, result


def _sqls(wh: parity.RecordingWarehouse) -> set[str]:
    return {sql for batch in wh.batches for sql in batch.values()}


def test_the_emulator_cannot_tell_bigquerys_weeks_or_max_by_from_duckdbs(
    warehouses: tuple[BigQueryWarehouse, DuckDBSnapshot], bigquery_emulator: BigQueryEmulator
) -> None:
    """Why ``to_bigquery`` rewrites weeks and ``MAX_BY`` with no emulator result to show for it:
    bqemulator (which translates BigQuery SQL back to DuckDB) starts ``TIMESTAMP_TRUNC(t, WEEK)``
    on Monday where BigQuery documents Sunday (an emulator bug), and its ``MAX_BY`` is DuckDB's
    ``arg_max``, which skips NULLs (BigQuery's ``ANY_VALUE(x HAVING MAX y)`` does not promise
    to). If a later emulator changes either, this fails, and the parity tests then check those
    rewrites on the emulator too."""
    client = bigquery_emulator.client()
    row = next(
        iter(
            client.query(
                "SELECT CAST(TIMESTAMP_TRUNC(TIMESTAMP '2024-05-05 10:00:00', WEEK) AS DATE) AS week, "
                "MAX_BY(x, y) AS newest FROM UNNEST([STRUCT('old' AS x, 1 AS y), STRUCT(NULL, 2)])"
            ).result()
        )
    )
    client.close()
    assert (str(row["week"]), row["newest"]) == ("2024-04-29", "old")  # BigQuery: 2024-05-05 (a Sunday)


def test_the_comparison_sees_a_changed_figure(warehouses: tuple[BigQueryWarehouse, DuckDBSnapshot]) -> None:
    """The guard guards: one play fewer on one side is a difference, named by its query."""
    bigquery, duckdb = warehouses

    class OnePlayFewer:
        source_id = "fewer"

        def exists(self) -> bool:
            return True

        def freshness_token(self) -> str:
            return "0"

        def fetch(self, queries: dict[str, str]) -> dict[str, Any]:
            fewer = (
                f"(SELECT * FROM {PLAYS_TABLE} WHERE play_key <> (SELECT min(play_key) FROM {PLAYS_TABLE}))"
            )
            return duckdb.fetch(
                {n: sql.replace(f"FROM {PLAYS_TABLE}", f"FROM {fewer} AS _p") for n, sql in queries.items()}
            )

    fewer: Warehouse = OnePlayFewer()
    result = parity.compare([q.overview_queries(TZ)], bigquery, fewer)
    assert "totals" in " ".join(result.differences), result


# -- plays without a Spotify id ---------------------------------------------------------------
VINYL = "dust choir|vinyl hiss"
#: The id-less history's detail pages: by key where an item has no id, by id where it has one
#: (the Spotify track whose page includes a scrobble of its names).
IDLESS_DETAIL: list[tuple[q.DetailKind, str, q.DetailBy]] = [
    ("track", VINYL, "key"),
    ("track", "dust choir|long way", "key"),
    ("artist", "dust choir", "key"),
    ("album", "dust choir|crackle", "key"),
    ("track", "s1", "id"),
    ("artist", "n1", "id"),
    ("album", "c1", "id"),
]


@pytest.fixture(scope="module")
def idless_warehouses(
    bigquery_emulator: BigQueryEmulator, tmp_path_factory: pytest.TempPathFactory
) -> tuple[BigQueryWarehouse, DuckDBSnapshot]:
    """``idless_plays`` (with its features and mart) in both warehouses, as ``warehouses`` does."""
    plays, features, top_ten = idless_plays(), idless_features(), idless_top_ten()
    writer = bigquery_emulator.warehouse()
    plays_table.merge_plays(writer, plays)
    tracks_table.merge_features(writer, features)
    top_ten_table.replace(writer, top_ten)
    bigquery = from_env(
        {
            "SPOTIFY_DEPLOYMENT": "cloud",
            "SPOTIFY_GCP_PROJECT": writer.project,
            "SPOTIFY_BQ_DATASET": writer.dataset,
            "SPOTIFY_BQ_ENDPOINT": bigquery_emulator.url,
        }
    )
    assert isinstance(bigquery, BigQueryWarehouse)
    snapshot = build_dashboard_warehouse(tmp_path_factory.mktemp("parity_idless"), plays, features, top_ten)
    return bigquery, DuckDBSnapshot(snapshot)


def idless_batches() -> list[dict[str, str]]:
    """Every page family's batch over the id-less history, for everyone and for each listener."""
    june = q.period_for("custom", TZ, first_day=date(2024, 6, 4), last_day=date(2024, 6, 5))
    batches = [q.version_queries(), q.listeners_query()]
    for user in (None, ALICE, BOB):
        scope = [q.freshness_query(), q.discovery_queries(TZ), q.sources_query(), q.years_query(TZ)]
        scope += [q.top_ten_mart_query(user), q.wrapped_queries(TZ, 2024)]
        for period in (q.Period(), june):
            scope += [
                q.overview_queries(TZ, period, q.previous_period(period, now=NOW)),
                {**q.top_queries(TZ, period), **q.pending_lookups_query(period)},
                q.mood_queries(TZ, period),
                q.recent_queries(TZ, q.RecentFilter(period=period), 100, 0),
                q.when_queries(TZ, period, "day"),
            ]
        scope.append(q.recent_queries(TZ, q.RecentFilter(search="vinyl", sources=("lastfm",)), 100, 0))
        scope += [q.detail_queries(kind, item, TZ, by=by) for kind, item, by in IDLESS_DETAIL]
        batches += [{name: q.for_listener(sql, user) for name, sql in batch.items()} for batch in scope]
    batches += [q.compare_queries(TZ, q.Period(), ALICE, BOB), q.compare_queries(TZ, q.Period(), BOB, ALICE)]
    return batches


def test_plays_without_an_id_give_duckdbs_answer_on_bigquery(
    idless_warehouses: tuple[BigQueryWarehouse, DuckDBSnapshot],
) -> None:
    bigquery, duckdb = idless_warehouses
    result = parity.compare(idless_batches(), bigquery, duckdb)
    assert result.differences == {}, "\n".join(f"{k}: {v}" for k, v in result.differences.items())
    assert result.compared > 300 and result.rows > 300, result
    # Not equal by being empty alike: the id-less rows are there, grouped and keyed, on BigQuery.
    tracks = bigquery.fetch(q.top_queries(TZ, q.Period()))["tracks"]
    assert tracks is not None
    assert [
        (t, int(n), k) for t, n, k in zip(tracks["track"], tracks["plays"], tracks["key"], strict=True)
    ] == [
        ("Night Drive", 4, "neon fox|night drive"),
        ("vinyl hiss", 4, VINYL),
        ("Long Way", 1, "dust choir|long way"),
    ]
    page = bigquery.fetch(q.detail_queries("track", VINYL, TZ, by="key"))["summary"]
    assert page is not None and (int(page["plays"].iloc[0]), int(page["by_name"].iloc[0])) == (4, 4)


def test_pages_of_items_without_an_id_render_on_bigquery_with_duckdbs_figures(
    idless_warehouses: tuple[BigQueryWarehouse, DuckDBSnapshot], tmp_path: Path
) -> None:
    """The pages that say something of their own about id-less plays (Overview's minutes, Mood's
    coverage) and the detail pages opened by key, on both warehouses: the same figures."""
    bigquery, duckdb = idless_warehouses
    env = {"SPOTIFY_TIMEZONE": TZ, "SPOTIFY_DATA_DIR": str(tmp_path)}
    pages = ("overview", "top", "mood", "recent", "track", "artist", "album")
    params = {
        "track": {"key": VINYL},
        "artist": {"key": "dust choir"},
        "album": {"key": "dust choir|crackle"},
    }
    seen = {
        side: parity.render_pages(wh, params, pages, env=env)
        for side, wh in (("bq", bigquery), ("duck", duckdb))
    }
    assert {p.page: p.exceptions for p in seen["bq"] if p.exceptions} == {}
    assert parity.figure_differences(seen["bq"], seen["duck"]) == {}
    shown = {p.page: p.metrics for p in seen["bq"]}
    assert (shown["overview"]["Plays"], shown["mood"]["Coverage"], shown["track"]["Plays"]) == (
        "9",
        "33%",
        "4",
    )
