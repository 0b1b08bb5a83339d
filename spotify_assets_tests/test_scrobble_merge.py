"""The ``bq_plays`` merge across sources (``scrobbles/merge.py``), on the lake files an import lands,
in DuckDB and in the BigQuery emulator: any order of the sources' batches, and each twice, gives
the same table; a plan cut short leaves the table as it was, and the rerun finishes it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from spotify_assets.imports.runner import land_export
from spotify_assets.plays_writes import merge_plays_files
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource, WarehouseResource
from spotify_assets.scrobbles.detect import source_format
from spotify_assets.scrobbles.landing import land_listens
from spotify_assets.scrobbles.listen import LASTFM, LISTENBRAINZ, SPOTIFY
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
            result = merge_plays_files(wh, lake, paths[source], f"test-{source}")
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
        merge_plays_files(wh, lake, paths[source], source)
    before = _table(wh)
    apply = plays_table.duckdb_apply_plan

    def dies_halfway(con, planned) -> None:  # type: ignore[no-untyped-def]
        con.execute("DELETE FROM bq_plays WHERE play_key IN (SELECT unnest($k))", {"k": planned.deletes})
        raise KeyboardInterrupt("killed between the plan's delete and its insert")

    monkeypatch.setattr(plays_table, "duckdb_apply_plan", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        merge_plays_files(wh, lake, paths[SPOTIFY], SPOTIFY)
    pd.testing.assert_frame_equal(_table(wh), before)
    monkeypatch.setattr(plays_table, "duckdb_apply_plan", apply)
    merge_plays_files(wh, lake, paths[SPOTIFY], SPOTIFY)
    for source in ORDERS[0]:
        merge_plays_files(wh, lake, paths[source], source)
    pd.testing.assert_frame_equal(_table(wh), clean)


def test_bigquery_merges_across_sources_as_duckdb_does(
    tmp_path: Path, landed, bigquery_emulator: BigQueryEmulator
) -> None:
    lake, paths = landed
    duck = _merge_all(DuckDBWarehouseResource(path=str(tmp_path / "wh.duckdb")), lake, paths, ORDERS[0])
    for order in ORDERS[:2]:
        table = _merge_all(bigquery_emulator.warehouse(), lake, paths, order)
        pd.testing.assert_frame_equal(table, duck)
