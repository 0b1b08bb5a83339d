"""The dashboard's query layer: SQL correctness on DuckDB, BigQuery transpilation, snapshot reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from app import queries as q
from app.warehouse import (
    BigQueryWarehouse,
    DuckDBSnapshot,
    WarehouseMissing,
    from_env,
    to_bigquery,
)
from spotify_assets.resources.cloud import REQUIRED_CLOUD_ENV
from spotify_assets.settings import DEFAULT_BQ_LOCATION, REQUIRED_BIGQUERY_ENV, MissingSettings
from spotify_assets_tests.fixtures.dashboard import EXPECTED


def test_every_query_transpiles_to_bigquery_and_parses():
    for name, sql in q.all_builders_sample().items():
        out = to_bigquery(sql, "my-project", "spotify")
        tree = sqlglot.parse_one(out, read="bigquery")
        tables = {t.name: t for t in tree.find_all(exp.Table)}
        cte_names = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        for table_name, table in tables.items():
            if table_name not in cte_names:
                assert (table.catalog, table.db) == ("my-project", "spotify"), (name, table.sql("bigquery"))
        lowered = out.lower()
        for duckdb_only in ("epoch_us(", "time_to_unix", "isodow(", "now()"):
            assert duckdb_only not in lowered, (name, duckdb_only)


def test_cloud_mode_selects_bigquery_and_local_mode_the_snapshot(tmp_path):
    wh = from_env({"SPOTIFY_DEPLOYMENT": "cloud", "SPOTIFY_GCP_PROJECT": "p", "SPOTIFY_BQ_DATASET": "d"})
    assert isinstance(wh, BigQueryWarehouse) and wh.source_id == "bigquery:p.d"
    assert (wh.location, wh.endpoint) == (DEFAULT_BQ_LOCATION, None)
    local = from_env({"SPOTIFY_DATA_DIR": str(tmp_path)})
    assert isinstance(local, DuckDBSnapshot) and local.path == tmp_path / "warehouse.snapshot.duckdb"
    explicit = from_env({"SPOTIFY_WAREHOUSE_SNAPSHOT": str(tmp_path / "x.duckdb")})
    assert isinstance(explicit, DuckDBSnapshot) and explicit.path == tmp_path / "x.duckdb"


def test_the_dashboard_reads_the_pipelines_bigquery_settings():
    """The same variables, defaults and validation as the pipeline (``settings.bigquery_settings``):
    the endpoint and location are honoured, a missing dataset is an error naming it (no
    default dataset of the dashboard's own), and the pipeline's bucket and staging dataset are
    not asked of a reader."""
    env = {
        "SPOTIFY_DEPLOYMENT": " Cloud ",
        "SPOTIFY_GCP_PROJECT": "p",
        "SPOTIFY_BQ_DATASET": "d",
        "SPOTIFY_BQ_LOCATION": "US",
        "SPOTIFY_BQ_ENDPOINT": "http://127.0.0.1:9050/",
    }
    wh = from_env(env)
    assert isinstance(wh, BigQueryWarehouse)
    assert (wh.project, wh.dataset, wh.location, wh.endpoint) == ("p", "d", "US", "http://127.0.0.1:9050")
    with pytest.raises(MissingSettings, match="SPOTIFY_GCP_PROJECT, SPOTIFY_BQ_DATASET") as missing:
        from_env({"SPOTIFY_DEPLOYMENT": "cloud", "SPOTIFY_BQ_DATASET": " "})
    assert missing.value.missing == ["SPOTIFY_GCP_PROJECT", "SPOTIFY_BQ_DATASET"]
    with pytest.raises(ValueError, match="SPOTIFY_DEPLOYMENT"):
        from_env({"SPOTIFY_DEPLOYMENT": "clod"})
    assert set(REQUIRED_BIGQUERY_ENV) < set(REQUIRED_CLOUD_ENV)


def test_the_bigquery_variables_have_one_home():
    """Their names and the default location are spelled in ``settings.py`` alone: a second
    spelling (the dashboard's old ``"spotify"`` dataset default was one) would drift."""
    root = Path(__file__).resolve().parents[1]
    spelled = re.compile(
        r"[\"'](SPOTIFY_GCP_PROJECT|SPOTIFY_BQ_DATASET|SPOTIFY_BQ_LOCATION|SPOTIFY_BQ_ENDPOINT|EU)[\"']"
    )
    homes = sorted(
        str(p.relative_to(root))
        for folder in ("spotify_assets", "app", "spark")
        for p in (root / folder).rglob("*.py")
        if spelled.search(p.read_text())
    )
    assert homes == ["spotify_assets/settings.py"]


def test_time_zones_are_checked_before_reaching_sql():
    with pytest.raises(ValueError):
        q.overview_queries("Europe/Berlin'; DROP TABLE bq_plays; --")
    with pytest.raises(ValueError):
        q.when_queries("UTC", q.Period(), "year")  # type: ignore[arg-type]


def test_custom_period_is_whole_local_days():
    p = q.period_for("custom", "Asia/Tokyo", first_day=date(2024, 2, 1), last_day=date(2024, 2, 29))
    assert p.start == datetime(2024, 1, 31, 15, tzinfo=UTC)
    assert p.end == datetime(2024, 2, 29, 15, tzinfo=UTC)


def test_query_layer_numbers(dashboard_snapshot):
    wh = DuckDBSnapshot(dashboard_snapshot)
    res = wh.fetch({**q.overview_queries("UTC"), **q.discovery_queries("UTC")})
    totals = res["totals"].iloc[0]
    assert (int(totals["plays"]), int(totals["tracks"]), int(totals["artists"])) == (232, 11, 7)
    assert float(totals["hours"]) * 60 == pytest.approx(EXPECTED["minutes"])
    new = res["new_per_month"].assign(m=lambda d: [x.month for x in d["month"]]).set_index("m")
    assert new["new_artists"].to_dict() == EXPECTED["new_artists"]
    assert new["new_tracks"].to_dict() == EXPECTED["new_tracks"]
    share = res["share"].assign(m=lambda d: [x.month for x in d["month"]]).set_index("m")
    for month, expected in EXPECTED["new_share"].items():
        assert share.loc[month, "new_plays"] / share.loc[month, "plays"] == pytest.approx(expected)


@pytest.mark.parametrize("lookups", ["filled", "empty"])
def test_top_lists_keep_their_limit(dashboard_snapshot, dashboard_snapshot_no_features, lookups):
    """A regression guard: joining ``track_metadata`` into the pages' base as ``coalesce(p.x, m.x)
    AS x`` made DuckDB 2.0.1 drop these LIMITs while the lookup table was empty."""
    snapshot = dashboard_snapshot if lookups == "filled" else dashboard_snapshot_no_features
    wh = DuckDBSnapshot(snapshot)
    assert int(wh.fetch({"n": "SELECT count(*) AS n FROM track_metadata"})["n"]["n"].iloc[0]) == (
        3 if lookups == "filled" else 0
    )
    res = wh.fetch(q.top_queries("UTC", q.Period(), limit=3))
    assert [len(res[n]) for n in ("tracks", "artists", "albums")] == [3, 3, 3]
    wrapped = wh.fetch(q.wrapped_queries("UTC", 2024))
    assert [len(wrapped[n]) for n in ("tracks", "artists", "albums")] == [5, 5, 5]
    assert len(wh.fetch(q.recent_queries("UTC", q.RecentFilter(), 7, 0))["rows"]) == 7


def test_sessions_and_streaks_in_sql(dashboard_snapshot):
    res = DuckDBSnapshot(dashboard_snapshot).fetch(q.when_queries("UTC", q.Period(), "month"))
    top = res["sessions"].iloc[0]
    assert int(top["plays"]) == 30 and int(top["n_sessions"]) == 10 + 4 + 1 + 15
    assert str(top["started"])[:16] == "2024-02-14 18:00"
    assert str(top["ended"])[:16] == "2024-02-14 19:56"
    assert int(res["sessions"]["plays"].sum()) >= 30
    assert list(res["streaks"]["days"][:2]) == [10, 4]
    assert res["timeline"]["plays"].tolist() == [80, 62, 90]


def test_search_text_is_quoted_not_executed(dashboard_snapshot):
    wh = DuckDBSnapshot(dashboard_snapshot)
    for needle in ["'; DROP TABLE bq_plays; --", "\\", "%", "_", "O'Brien"]:
        res = wh.fetch(q.recent_queries("UTC", q.RecentFilter(search=needle), 10, 0))
        assert int(res["count"]["n"].iloc[0]) == 0
    assert int(wh.fetch(q.version_queries())["plays"]["n"].iloc[0]) == 232 + 12 + 72


def test_missing_snapshot_and_missing_tables(tmp_path):
    with pytest.raises(WarehouseMissing):
        DuckDBSnapshot(tmp_path / "none.duckdb").fetch(q.version_queries())
    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).close()  # a file without the dashboard's tables
    res = DuckDBSnapshot(old).fetch(q.version_queries())
    assert res == {"plays": None, "meta": None}


def test_reader_survives_the_snapshot_being_replaced(dashboard_snapshot, dashboard_snapshot_empty, tmp_path):
    snap = tmp_path / "warehouse.snapshot.duckdb"
    shutil.copyfile(dashboard_snapshot, snap)
    wh = DuckDBSnapshot(snap)
    token = wh.freshness_token()
    con = duckdb.connect(str(snap), read_only=True)  # a reader mid-query while the pipeline publishes
    tmp = tmp_path / ".snapshot-tmp.duckdb"
    shutil.copyfile(dashboard_snapshot_empty, tmp)
    os.replace(tmp, snap)
    assert con.execute("SELECT count(*) FROM bq_plays").fetchone() == (316,)  # old file, still consistent
    con.close()
    assert wh.freshness_token() != token
    assert int(wh.fetch(q.version_queries())["plays"]["n"].iloc[0]) == 0


def test_reader_retries_while_another_process_holds_the_file(dashboard_snapshot, tmp_path):
    """A writer lock on the snapshot (never done by the pipeline, but possible by hand) is waited out.

    The holder keeps the lock until told to let go, so the read provably starts (and keeps
    retrying) while the file is locked, however slow the machine: a reader without the retry
    would fail at once instead of still waiting when the lock is released.
    """
    import threading
    import time

    snap = tmp_path / "warehouse.snapshot.duckdb"
    shutil.copyfile(dashboard_snapshot, snap)
    ready, release = tmp_path / "locked", tmp_path / "release"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, pathlib, time
                con = duckdb.connect({str(snap)!r})
                pathlib.Path({str(ready)!r}).touch()
                deadline = time.monotonic() + 60
                while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                con.close()
                """
            ),
        ]
    )
    outcome: dict[str, object] = {}

    def read() -> None:
        try:
            outcome["result"] = DuckDBSnapshot(snap).fetch(q.version_queries())
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc
        outcome["finished"] = time.monotonic()

    try:
        for _ in range(3000):
            if ready.exists() or holder.poll() is not None:
                break
            time.sleep(0.01)
        assert ready.exists() and holder.poll() is None, "the holder should hold the lock now"
        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.4)
        assert holder.poll() is None, "the holder still holds the lock while the read is under way"
        assert reader.is_alive(), f"the read should be waiting for the lock, got {outcome}"
        released_at = time.monotonic()
        release.touch()
        reader.join(timeout=30)
        assert "error" not in outcome, outcome
        assert outcome["finished"] > released_at
        assert int(outcome["result"]["plays"]["n"].iloc[0]) == 316
    finally:
        release.touch()
        holder.wait(timeout=30)
