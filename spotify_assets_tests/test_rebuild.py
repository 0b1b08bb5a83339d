"""The warehouse rebuilt from the lake alone holds the same plays: API batches and imported history.

One history: the real pipeline polls the sandbox API (50 plays), then an export is imported
that overlaps the API's window (those plays are the same streams: skipped) and reaches back a
year before it. The plays table is counted and checksummed, the warehouse file is deleted, and
``spotify-assets rebuild-warehouse`` (in process and as the real console script) rebuilds it
from the lake's Parquet: same count, same checksum, every column of every row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.import_run import import_export
from spotify_assets.rebuild import rebuild_command, rebuild_from_lake, set_aside
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_sandbox.exports import extended_row_from_api_item, generate_export
from spotify_sandbox.server import SandboxServer

#: Everything up to the warehouse tables (plays and track features); the top ten needs Spark.
UPSTREAM_OF_SPARK = [a for a in PIPELINE_ASSETS if a.key.to_user_string() != "top_ten_tracks"]


def _resources(sandbox: SandboxServer) -> dict[str, Any]:
    """The local resources ``definitions.py`` builds (Spark is not needed up to ``bq_plays``)."""
    from spotify_assets.deployments import local_resources
    from spotify_sandbox.resource import SandboxSpotifyResource

    return local_resources(SandboxSpotifyResource(url=sandbox.url))


def _fingerprint(warehouse: DuckDBWarehouseResource) -> tuple[int, int, dict[str, int]]:
    """Row count, an order-free checksum over every column of every play, and rows per source."""
    plays = warehouse.query("SELECT * FROM bq_plays ORDER BY play_key")
    checksum = int(pd.util.hash_pandas_object(plays, index=False).sum())
    return len(plays), checksum, plays["source"].value_counts().to_dict()


@pytest.fixture
def mixed_history(data_dir: Path, pipeline_sandbox: SandboxServer, tmp_path: Path) -> dict[str, Any]:
    resources = _resources(pipeline_sandbox)
    assert materialize_user(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=resources).success
    warehouse, lake = resources["warehouse"], resources["lake"]
    assert warehouse.count("bq_plays") == 50

    export = tmp_path / "export"
    folder = export / "Spotify Extended Streaming History"
    # The last three days as the export has them: the newest 50 are already in from the API
    # (the export's clock is 2 s early), the rest are new.
    recent = pipeline_sandbox.plays_between(
        pipeline_sandbox.now() - timedelta(days=3), pipeline_sandbox.now()
    )
    rows = [
        extended_row_from_api_item(
            item,
            ts=(pd.Timestamp(item["played_at"]) - pd.Timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for item in recent
    ]
    start = pd.Timestamp(recent[-1]["played_at"] if recent else pipeline_sandbox.now()).to_pydatetime()
    generate_export(
        export,
        2_000,
        seed=3,
        rows_per_file=800,
        start=start - timedelta(days=365),
        end=start - timedelta(days=300),
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Streaming_History_Audio_2026_9.json").write_text(json.dumps(rows))
    report = import_export(export, warehouse, lake)
    assert report.duplicates_window == 50  # the API's plays, seen again by the export
    assert report.added > 2_000 - report.quarantined
    return {"warehouse": warehouse, "lake": lake, "report": report, "data_dir": data_dir}


def test_rebuild_from_the_lake_gives_the_same_plays(mixed_history: dict[str, Any]) -> None:
    warehouse, lake, data_dir = mixed_history["warehouse"], mixed_history["lake"], mixed_history["data_dir"]
    before = _fingerprint(warehouse)
    assert before[0] == 50 + mixed_history["report"].added
    assert set(before[2]) == {"api", "extended_export"}
    features_before = warehouse.count("track_features")
    assert features_before > 0
    # Both granularities of plays files: the pipeline's by day, the import's by month.
    plays_files = lake.list("plays")
    assert any("/played_date=" in p for p in plays_files) and any("/played_month=" in p for p in plays_files)

    db = Path(warehouse.path)
    for f in db.parent.glob("warehouse*"):
        f.unlink()  # the warehouse is gone: database, snapshot, lock
    fresh = DuckDBWarehouseResource(path=str(db))
    assert fresh.count("bq_plays") == 0

    report = rebuild_from_lake(fresh, lake)
    assert report.plays_inserted == report.plays_total == before[0]
    assert _fingerprint(fresh) == before
    assert fresh.count("track_features") == features_before

    # Rebuilding again adds nothing: the same merge, idempotent.
    again = rebuild_from_lake(fresh, lake)
    assert (again.plays_inserted, again.plays_total) == (0, before[0])
    assert data_dir in db.parents


def test_rebuild_command_replaces_the_local_warehouse(mixed_history: dict[str, Any]) -> None:
    warehouse, data_dir = mixed_history["warehouse"], mixed_history["data_dir"]
    before = _fingerprint(warehouse)
    plays_table.merge_plays(
        warehouse, warehouse.query("SELECT * FROM bq_plays LIMIT 0")
    )  # publish the snapshot
    # A warehouse that still holds plays is not rebuilt over without --replace.
    assert rebuild_command(["--data-dir", str(data_dir)]) == 2

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spotify_assets.cli",
            "rebuild-warehouse",
            "--data-dir",
            str(data_dir),
            "--replace",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"{before[0]:,} in the plays table" in done.stdout
    kept = list(data_dir.glob("warehouse.duckdb.replaced-*"))
    assert len(kept) == 1  # the old warehouse is set aside, never deleted
    assert _fingerprint(DuckDBWarehouseResource(path=str(data_dir / "warehouse.duckdb"))) == before
    assert _fingerprint(DuckDBWarehouseResource(path=str(kept[0]), snapshot_path=str(kept[0]))) == before


def test_set_aside_leaves_nothing_behind(tmp_path: Path) -> None:
    assert set_aside(tmp_path / "warehouse.duckdb") is None
    wh = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    assert wh.count("bq_plays") == 0
    moved = set_aside(tmp_path / "warehouse.duckdb")
    assert moved is not None and moved.exists()
    assert not (tmp_path / "warehouse.duckdb").exists()
    assert not (tmp_path / "warehouse.snapshot.duckdb").exists()
