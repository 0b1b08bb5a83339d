"""The ``bq_plays`` merge across sources (``scrobbles/merge.py``), on the lake files an import lands,
in DuckDB and in the BigQuery emulator: any order of the sources' batches, and each twice, gives
the same table; a plan cut short leaves the table as it was, and the rerun finishes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from spotify_assets.encoding import parquet_bytes
from spotify_assets.imports.runner import land_export
from spotify_assets.plays_writes import merge_plays_files
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource, WarehouseResource
from spotify_assets.schema import conform
from spotify_assets.scrobbles.detect import source_format
from spotify_assets.scrobbles.landing import land_listens
from spotify_assets.scrobbles.listen import LASTFM, LISTENBRAINZ, SPOTIFY, Listen
from spotify_assets.scrobbles.merge import plan
from spotify_assets.scrobbles.rows import listen_row
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator
from spotify_assets_tests.test_import_sources import EXPECTED_SOURCES, NOW, USER, write_exports

#: The columns compared across warehouses (BigQuery and DuckDB type the rest alike but not identically).
COMPARED = ["play_key", "played_at", "track_id", "source", "sources", "scrobbled_at", "track_name"]


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalLakeResource, dict[str, list[str]]]:
    """Each export landed in one lake, as ``history_import`` lands it (nothing merged yet)."""
    root = tmp_path_factory.mktemp("landed")
    exports = write_exports(root / "exports")
    lake = LocalLakeResource(root=str(root / "lake"))
    empty = DuckDBWarehouseResource(path=str(root / "empty.duckdb"))
    paths = {}
    for source, path in exports.items():
        if source == SPOTIFY:
            landing = land_export(path, empty, lake, now=NOW, user_id=USER)
        else:
            landing = land_listens(
                path, source_format(path), empty, lake, chunk_rows=1000, now=NOW, user_id=USER
            )
        paths[source] = landing.paths
    return lake, paths


def _merge_all(
    wh: WarehouseResource, lake: LocalLakeResource, paths: dict[str, list[str]], order: tuple[str, ...]
) -> pd.DataFrame:
    for round_ in (1, 2):
        for source in order:
            result = merge_plays_files(wh, lake, paths[source], f"test-{source}", plan)
            if round_ == 2:
                assert (result.inserted, result.matched, result.replaced) == (0, 0, 0), (
                    order,
                    source,
                    result,
                )
    return _table(wh)


def _table(wh: WarehouseResource) -> pd.DataFrame:
    rows = wh.query(f"SELECT {', '.join(COMPARED)} FROM bq_plays")
    rows["played_at"] = pd.to_datetime(rows["played_at"], utc=True)
    rows = rows.astype(object).where(rows.notna(), None)
    return rows.sort_values("play_key").reset_index(drop=True)


ORDERS = [(LASTFM, LISTENBRAINZ, SPOTIFY), (SPOTIFY, LASTFM, LISTENBRAINZ), (LISTENBRAINZ, SPOTIFY, LASTFM)]


def test_duckdb_merges_the_sources_in_any_order_into_the_same_table(tmp_path: Path, landed) -> None:
    lake, paths = landed
    tables = [
        _merge_all(DuckDBWarehouseResource(path=str(tmp_path / f"wh{i}.duckdb")), lake, paths, order)
        for i, order in enumerate(ORDERS)
    ]
    assert sorted(s or SPOTIFY for s in tables[0]["sources"]) == EXPECTED_SOURCES
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])


def test_a_plan_cut_short_leaves_the_table_as_it_was_and_the_rerun_finishes_it(
    tmp_path: Path, landed, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, paths = landed
    clean = _merge_all(DuckDBWarehouseResource(path=str(tmp_path / "clean.duckdb")), lake, paths, ORDERS[0])
    wh = DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"))
    for source in (LASTFM, LISTENBRAINZ):
        merge_plays_files(wh, lake, paths[source], source, plan)
    before = _table(wh)
    apply = plays_table.duckdb_apply_plan

    def dies_halfway(con, planned) -> None:  # type: ignore[no-untyped-def]
        con.execute("DELETE FROM bq_plays WHERE play_key IN (SELECT unnest($k))", {"k": planned.deletes})
        raise KeyboardInterrupt("killed between the plan's delete and its insert")

    monkeypatch.setattr(plays_table, "duckdb_apply_plan", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        merge_plays_files(wh, lake, paths[SPOTIFY], SPOTIFY, plan)
    pd.testing.assert_frame_equal(_table(wh), before)
    monkeypatch.setattr(plays_table, "duckdb_apply_plan", apply)
    merge_plays_files(wh, lake, paths[SPOTIFY], SPOTIFY, plan)
    for source in ORDERS[0]:
        merge_plays_files(wh, lake, paths[source], source, plan)
    pd.testing.assert_frame_equal(_table(wh), clean)


def test_bigquery_merges_across_sources_as_duckdb_does(
    tmp_path: Path, landed, bigquery_emulator: BigQueryEmulator
) -> None:
    lake, paths = landed
    duck = _merge_all(DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb")), lake, paths, ORDERS[0])
    for order in ORDERS[:2]:
        table = _merge_all(bigquery_emulator.warehouse(), lake, paths, order)
        pd.testing.assert_frame_equal(table, duck)


def test_a_frame_merged_with_the_planner_is_merged_across_sources_in_both_dialects(
    tmp_path: Path, landed, bigquery_emulator: BigQueryEmulator
) -> None:
    """``merge_plays`` of a frame with a planner merges across sources as the lake path does, in
    DuckDB as in BigQuery (DuckDB's frame path once ignored the planner and inserted every
    scrobble as a play of its own); without one a frame is a plain insert of new keys."""
    lake, paths = landed
    from_lake = _table(_merged(DuckDBWarehouseResource(path=str(tmp_path / "lake.duckdb")), lake, paths))
    for wh in (DuckDBWarehouseResource(path=str(tmp_path / "frames.duckdb")), bigquery_emulator.warehouse()):
        for source in ORDERS[0]:
            frame = pd.concat([pd.read_parquet(lake.uri(p)) for p in paths[source]], ignore_index=True)
            plays_table.merge_plays(wh, frame, plan)
        pd.testing.assert_frame_equal(_table(wh), from_lake)
    plain = DuckDBWarehouseResource(path=str(tmp_path / "plain.duckdb"))
    for source in ORDERS[0]:
        frame = pd.concat([pd.read_parquet(lake.uri(p)) for p in paths[source]], ignore_index=True)
        plays_table.merge_plays(plain, frame)
    assert len(_table(plain)) > len(from_lake)  # every listen a row of its own


def _merged(wh: WarehouseResource, lake: LocalLakeResource, paths: dict[str, list[str]]) -> WarehouseResource:
    for source in ORDERS[0]:
        merge_plays_files(wh, lake, paths[source], f"test-{source}", plan)
    return wh


def _lake_file(lake: LocalLakeResource, name: str, rows: list[dict[str, object]]) -> list[str]:

    path = f"plays/user_id={USER}/played_month=2021-01/{name}.parquet"
    lake.write_bytes(path, parquet_bytes(conform(pd.DataFrame(rows), "plays"), "plays"))
    return [path]


@pytest.mark.parametrize("poll_first", [True, False])
def test_a_polled_play_and_its_scrobble_are_one_play_in_either_order(
    tmp_path: Path, poll_first: bool
) -> None:
    """The poll's rows have no ``ms_played``: their start is their end minus the track's length."""

    start = datetime(2021, 1, 31, 14, 0, tzinfo=UTC)
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    scrobble = Listen(LASTFM, "Radiohead", "Airbag", "OK Computer", start + timedelta(seconds=2), "csv:1")
    lastfm = _lake_file(
        lake, "lastfm", [{**listen_row(scrobble, USER), "batch_id": "b1", "ingested_at": NOW}]
    )
    end = start + timedelta(milliseconds=284_000, seconds=40)  # paused 40 s
    polled = {
        "play_key": f"{USER}|{end.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}|6zN9s4lC3Qrk8F3d0U4m2Z",
        "played_at": end,
        "track_id": "6zN9s4lC3Qrk8F3d0U4m2Z",
        "track_name": "Airbag",
        "primary_artist_name": "Radiohead",
        "duration_ms": 284_000,
        "content_type": "track",
        "is_play": True,
        "source": "api",
        "batch_id": "b2",
        "ingested_at": NOW,
        "user_id": USER,
    }
    api = _lake_file(lake, "api", [polled])
    wh = DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"))
    for paths in (api, lastfm) if poll_first else (lastfm, api):
        merge_plays_files(wh, lake, paths, "b", plan)
    rows = _table(wh)
    assert rows[["play_key", "track_id", "source", "sources"]].values.tolist() == [
        [polled["play_key"], "6zN9s4lC3Qrk8F3d0U4m2Z", "api", "lastfm,spotify"]
    ]


def test_a_batch_of_scrobbles_merged_without_the_planner_is_refused(tmp_path: Path, landed) -> None:
    """Insert-only, the scrobbles of a Spotify play would be plays of their own: never silently."""
    lake, paths = landed
    wh = DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb"))
    with pytest.raises(plays_table.PlannerMissing):
        merge_plays_files(wh, lake, paths[LASTFM], "no-planner")
    assert wh.count("bq_plays") == 0
    merge_plays_files(wh, lake, paths[SPOTIFY], "spotify alone needs none")
    assert wh.count("bq_plays") == 4
