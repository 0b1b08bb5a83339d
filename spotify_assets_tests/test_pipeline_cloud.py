"""The whole asset graph in cloud mode: GCS emulator + BigQuery emulator + Spark, sandbox API.

``SPOTIFY_DEPLOYMENT=cloud`` and the documented variables only (bucket, datasets and the two
endpoint variables): the resources are ``resources_for()`` exactly as ``definitions.py``
builds them, no test wiring. Lake files land in the GCS emulator, BigQuery load jobs read
them back by ``gs://`` URI, MERGE runs as SQL, Spark's driver reads ``bq_plays`` from the
BigQuery emulator and the top ten is written back there (the warehouse IO manager); the data
handed between assets goes to the bucket as typed Parquet/JSON (no pickles).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.deployments import resources_for
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_sandbox.exports import generate_export
from spotify_sandbox.server import SandboxServer

UPSTREAM_OF_WAREHOUSE = PIPELINE_ASSETS[:3]


def _objects(env: dict[str, str]) -> list[str]:
    client = storage.Client(
        project="p",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": env["SPOTIFY_GCS_ENDPOINT"]},
    )
    return sorted(b.name for b in client.list_blobs(env["SPOTIFY_GCS_BUCKET"]))


def _run(assets: list[Any] | None = None) -> dg.ExecuteInProcessResult:
    result = materialize_user(PIPELINE_GRAPH, selection=assets or PIPELINE_ASSETS, resources=resources_for())
    assert result.success
    return result


def _materialized(result: dg.ExecuteInProcessResult) -> list[str]:
    return sorted(
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key
    )


def _skipped(result: dg.ExecuteInProcessResult) -> list[str]:
    return sorted(e.step_key or "" for e in result.all_events if e.event_type_value == "STEP_SKIPPED")


def _meta(result: dg.ExecuteInProcessResult, step: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(step)
    return {k: v.value for k, v in event.metadata.items()}


def _warehouse() -> Any:
    """The cloud warehouse resource with its ``EnvVar`` fields resolved, for reading back."""
    return resources_for()["warehouse"].process_config_and_initialize()


def _truth_keys(sandbox: SandboxServer) -> set[tuple[pd.Timestamp, str]]:
    return {(pd.Timestamp(i["played_at"]), i["track"]["id"]) for i in sandbox.recently_played_truth()}


def test_cloud_graph_twice_exact_and_second_run_skips(
    cloud_env: dict[str, str], pipeline_sandbox: SandboxServer
) -> None:
    first = _run()
    assert _materialized(first) == sorted(a.key.to_user_string() for a in PIPELINE_ASSETS)
    warehouse = _warehouse()
    assert warehouse.project == cloud_env["SPOTIFY_GCP_PROJECT"]  # the cloud set, from the environment
    assert warehouse.count("bq_plays") == 50
    assert _meta(first, "bq_plays")["plays_inserted"] == 50
    keys = set(warehouse.query("SELECT played_at, track_id FROM bq_plays").itertuples(index=False, name=None))
    assert keys == _truth_keys(pipeline_sandbox)

    truth = pipeline_sandbox.recently_played_truth()
    per_track = pd.Series([i["track"]["id"] for i in truth]).value_counts()
    mart = warehouse.query("SELECT * FROM top_ten_tracks ORDER BY user_id, rank")
    # One job, two scopes: everyone's ('*') and the one listener's own, the same ten here.
    assert list(mart["user_id"]) == ["*"] * 10 + ["sandbox-listener"] * 10
    top = mart[mart["user_id"] == "*"].reset_index(drop=True)
    own = mart[mart["user_id"] == "sandbox-listener"].reset_index(drop=True)
    assert own[["rank", "track_id", "plays"]].equals(top[["rank", "track_id", "plays"]])
    assert list(top["rank"]) == list(range(1, 11))
    assert top["plays"].iloc[0] == per_track.max()
    assert top["plays"].sum() == per_track.sort_values(ascending=False).head(10).sum()

    objects = _objects(cloud_env)
    mine = "user_id=sandbox-listener"
    assert any(
        o.startswith(f"spotify/lake/plays/{mine}/played_date=") and o.endswith(".parquet") for o in objects
    )
    assert any(o.startswith(f"spotify/lake/plays_csv/{mine}/played_date=") for o in objects)
    assert any(o.startswith("spotify/lake/raw/recently_played/") for o in objects)
    # The IO manager hands data between assets as typed files in the bucket, one per asset per run.
    handoff = [o for o in objects if o.startswith("spotify/dagster/")]
    assert handoff == sorted(
        f"spotify/dagster/{name}/{first.run_id}.{ext}"
        for name, ext in (
            ("raw_recent_tracks", "parquet"),
            ("audio_features", "parquet"),
            ("gcs_csv", "json"),
        )
    )
    assert _meta(first, "track_features")["from_audio_features"] == warehouse.count("track_features")

    second = _run()
    assert _materialized(second) == []
    assert _skipped(second) == ["audio_features", "bq_plays", "gcs_csv", "top_ten_tracks", "track_features"]
    assert warehouse.count("bq_plays") == 50
    assert [o for o in _objects(cloud_env) if o.startswith("spotify/lake/")] == [
        o for o in objects if o.startswith("spotify/lake/")
    ]


def test_cloud_crash_between_lake_and_warehouse_then_rerun_is_exact(
    cloud_env: dict[str, str], pipeline_sandbox: SandboxServer
) -> None:
    """A run that stopped after the lake (a selection ending at gcs_csv) left the batch in GCS
    and nothing in BigQuery; the rerun fetches the same plays (cursor from the warehouse), finds
    the same lake files and loads each play once."""
    _run(UPSTREAM_OF_WAREHOUSE)
    warehouse = _warehouse()
    landed = [o for o in _objects(cloud_env) if o.startswith("spotify/lake/plays/")]
    assert landed and warehouse.count("bq_plays") == 0

    rerun = _run()
    assert _meta(rerun, "bq_plays")["plays_inserted"] == 50
    assert [o for o in _objects(cloud_env) if o.startswith("spotify/lake/plays/")] == landed
    assert warehouse.count("bq_plays") == 50
    keys = set(warehouse.query("SELECT played_at, track_id FROM bq_plays").itertuples(index=False, name=None))
    assert keys == _truth_keys(pipeline_sandbox)

    again = _run()
    assert _materialized(again) == []
    assert warehouse.count("bq_plays") == 50


def test_import_command_honours_cloud_mode_twice_exact(cloud_env: dict[str, str], tmp_path: Path) -> None:
    """``spotify-assets import`` as a subprocess with the cloud variables: plays into BigQuery,
    the raw export into the GCS lake; a second import adds 0."""
    summary = generate_export(tmp_path / "export.zip", 2_000, seed=7, rows_per_file=800)
    env = {k: v for k, v in os.environ.items() if k != "SPOTIFY_DATA_DIR"}
    reports = []
    for _ in range(2):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "spotify_assets.cli",
                "import",
                str(tmp_path / "export.zip"),
                "--json",
                "--no-progress",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout))
    assert (reports[0]["rows_read"], reports[0]["added"]) == (2_000, summary.expected_added)
    assert (reports[1]["added"], reports[1]["duplicates"]) == (0, summary.expected_added)
    assert _warehouse().count("bq_plays") == summary.expected_added
    assert not (tmp_path / ".data").exists()  # nothing went to the local default
    assert any(o.startswith("spotify/lake/raw/exports/") for o in _objects(cloud_env))
