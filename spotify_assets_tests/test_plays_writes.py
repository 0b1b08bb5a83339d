"""One path per write: the plays table is written by the ``bq_plays`` merge and the operator
commands ``plays_writes.OPERATOR_REWRITES`` lists, nothing else; ``rebuild-warehouse``
restores every table the lake holds files of.

The first test reads the runtime's code (the package and the dashboard), as ``test_one_home.py``
does: a call of a plays-writing method of the warehouse outside its homes is the sixth writer
coming back.
"""

from __future__ import annotations

import ast
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from spotify_assets.encoding import parquet_bytes
from spotify_assets.plays_writes import OPERATOR_REWRITES
from spotify_assets.rebuild import rebuild_from_lake
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.schema import TRACK_METADATA_TABLE
from spotify_assets.spotify.normalize import normalize_recently_played, normalize_track_metadata
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID, materialize_user
from spotify_sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[1]
#: The warehouse's methods that write ``bq_plays``.
PLAYS_WRITES = {
    "merge_plays",
    "merge_plays_from_lake",
    "merge_plays_from_uris",
    "adopt_legacy_plays",
    "delete_user",
}
#: Where they are implemented (the warehouse backends) and the one module that calls them for the merge.
HOMES = {
    "spotify_assets/plays_writes.py",
    "spotify_assets/resources/warehouse.py",
    "spotify_assets/resources/bigquery_warehouse.py",
}


def _operator_modules() -> set[str]:
    return {target.rsplit(".", 1)[0].replace(".", "/") + ".py" for target in OPERATOR_REWRITES.values()}


def _writers() -> dict[str, set[str]]:
    """Module -> the plays-writing methods it calls, over the runtime package and the dashboard."""
    found: dict[str, set[str]] = {}
    for folder in ("spotify_assets", "app"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            calls = {
                node.func.attr
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in PLAYS_WRITES
            }
            if calls:
                found[str(path.relative_to(ROOT))] = calls
    return found


def test_the_plays_table_is_written_only_by_its_merge_and_the_listed_operator_commands() -> None:
    outside = {m: calls for m, calls in _writers().items() if m not in HOMES | _operator_modules()}
    assert outside == {}, "write bq_plays through plays_writes (or list the operator command there)"


def test_every_listed_operator_command_names_a_function_that_exists() -> None:
    for command, target in OPERATOR_REWRITES.items():
        module, name = target.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name)), command


def test_rebuild_restores_the_catalogue_lookups_from_the_lake(tmp_path: Path) -> None:
    """``track_metadata`` lands its answers in the lake; a rebuild merges them back, oldest first,
    so the newest answer for a track wins, as it did the first time."""
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    track = {
        "id": "a" * 22,
        "name": "Song",
        "uri": "spotify:track:" + "a" * 22,
        "artists": [{"id": "r" * 22, "name": "Artist"}],
        "album": {"id": "b" * 22, "name": "Album", "images": [{"url": "https://i/x.jpg"}]},
        "duration_ms": 1000,
    }
    first = normalize_track_metadata(
        {"a" * 22: track, "c" * 22: None}, looked_up_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    renamed = {**track, "name": "Song (2026 remaster)"}
    later = normalize_track_metadata({"a" * 22: renamed}, looked_up_at=datetime(2026, 2, 1, tzinfo=UTC))
    for name, rows in (("0", later), ("1", first)):  # the later answer's file sorts first by name
        lake.write_bytes(f"track_metadata/{name}.parquet", parquet_bytes(rows, "track_metadata"))

    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    report = rebuild_from_lake(warehouse, lake)
    assert (report.metadata_files, report.metadata_total) == (2, 2)
    assert "2 track lookup(s) from 2 file(s)" in report.render()
    got = warehouse.query(
        f"SELECT track_id, status, track_name FROM {TRACK_METADATA_TABLE} ORDER BY track_id"
    )
    assert got.to_dict("records") == [
        {"track_id": "a" * 22, "status": "ok", "track_name": "Song (2026 remaster)"},
        {"track_id": "c" * 22, "status": "not_found", "track_name": None},
    ]
    again = rebuild_from_lake(warehouse, lake)
    assert again.metadata_total == 2


def test_adoption_is_shown_in_the_plays_tables_history(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    """The single-user layout's plays adopted by a poll are a rewrite of ``bq_plays``: the run
    records it in ``bq_plays``' timeline (an observation of the listener's partition, with the
    count), not as a materialization (no play is new)."""
    from spotify_assets.assets import PIPELINE_GRAPH

    warehouse = local_resources["warehouse"]
    older = normalize_recently_played(pipeline_sandbox.recently_played_truth()[-3:]).plays
    assert older["user_id"].isna().all()  # normalised without a listener: the single-user layout's rows
    assert plays_table.merge_plays(warehouse, older).inserted == 3
    result = materialize_user(PIPELINE_GRAPH, selection=["raw_recent_tracks"], resources=local_resources)
    assert result.success
    adoptions = [
        e.event_specific_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
        and e.event_specific_data.asset_observation.asset_key == dg.AssetKey("bq_plays")
    ]
    assert len(adoptions) == 1
    assert adoptions[0].partition == DEFAULT_USER_ID
    assert adoptions[0].metadata["adopted_single_user_plays"].value == 3
    assert not [
        m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("bq_plays")
    ]
    assert warehouse.query("SELECT count(*) AS n FROM bq_plays WHERE user_id IS NULL")["n"].iloc[0] == 0


def test_the_merge_reads_a_local_lakes_files_in_one_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``bq_plays`` merge of a local lake's files is one DuckDB ``read_parquet`` over the list
    (day files and an import's month files alike), never a Python read of each file: with the
    lake's per-file read broken, the merge still inserts every play, exactly once."""
    import pandas as pd

    from spotify_assets.lake_layout import PLAYS_KIND, plays_day_path, plays_month_path
    from spotify_assets.plays_writes import merge_plays_files
    from spotify_assets.schema import conform

    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    at = pd.Timestamp("2024-03-01T12:00:00Z")

    def plays(keys: range) -> pd.DataFrame:
        rows = [
            {
                "play_key": f"u1:k{i}",
                "user_id": "u1",
                "played_at": at + pd.Timedelta(minutes=i),
                "content_type": "track",
                "is_play": True,
                "source": "extended_export",
                "batch_id": "b",
                "ingested_at": at,
            }
            for i in keys
        ]
        return conform(pd.DataFrame(rows), "plays")

    paths = [
        plays_day_path(PLAYS_KIND, "u1", "2024-03-01", "a.parquet"),
        plays_month_path(PLAYS_KIND, "u1", "2024-03", "b.parquet"),
        plays_month_path(PLAYS_KIND, "u1", "2024-04", "c.parquet"),
    ]
    for path, keys in zip(paths, (range(0, 10), range(5, 20), range(20, 30)), strict=True):
        lake.write_bytes(path, parquet_bytes(plays(keys), "plays"))

    def no_reads(self: LocalLakeResource, path: str) -> bytes:
        raise AssertionError(f"read one by one: {path}")

    monkeypatch.setattr(LocalLakeResource, "read_bytes", no_reads)
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    result = merge_plays_files(warehouse, lake, paths, "batch")
    assert (result.inserted, result.duplicates, result.total_rows) == (30, 5, 30)
    again = merge_plays_files(warehouse, lake, paths, "batch")
    assert (again.inserted, again.duplicates, again.total_rows) == (0, 35, 30)
