"""The cloud resource set, resolved by Dagster from environment variables, against the GCS emulator.

Runs two assets typed only against ``LakeResource`` / ``WarehouseResource`` with
``cloud_resources()``: the lake file and the values handed between assets (``LakeIOManager``,
JSON here) really land in the emulator's bucket under their sibling prefixes. The warehouse is only
resolved here (``export_plays_for_spark`` needs no BigQuery call); its BigQuery behaviour is
in ``test_bigquery_warehouse.py``.
"""

from __future__ import annotations

import dagster as dg
import pytest
from google.cloud import storage

from spotify_assets.deployments import cloud_resources
from spotify_assets.resources.cloud import missing_cloud_env
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.gcs import GCSEmulator


@pytest.fixture
def cloud_env(gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch) -> GCSEmulator:
    monkeypatch.setenv("SPOTIFY_GCP_PROJECT", "test-proj")
    monkeypatch.setenv("SPOTIFY_GCS_BUCKET", gcs_emulator.bucket)
    monkeypatch.setenv("SPOTIFY_BQ_DATASET", "spotify")
    monkeypatch.setenv("SPOTIFY_BQ_STAGING_DATASET", "spotify_staging")
    monkeypatch.delenv("SPOTIFY_GCS_PREFIX", raising=False)
    monkeypatch.delenv("SPOTIFY_BQ_LOCATION", raising=False)
    return gcs_emulator


@dg.asset
def landed(lake: LakeResource) -> str:
    return lake.write_bytes("raw/batch=1/part-0.parquet", b"PAR1").uri


@dg.asset
def spark_input(landed: str, warehouse: WarehouseResource) -> str:
    return f"{landed} -> {plays_table.export_plays_for_spark(warehouse, 'unused')}"


def test_cloud_resources_land_lake_and_io_files_in_the_bucket(cloud_env: GCSEmulator) -> None:
    resources = cloud_resources()
    assert set(resources) == {"lake", "warehouse", "io_manager", "warehouse_io_manager", "gcs"}

    result = dg.materialize([landed, spark_input], resources=resources)
    assert result.success
    bucket = cloud_env.bucket
    lake_uri = f"gs://{bucket}/spotify/lake/raw/batch=1/part-0.parquet"
    assert result.output_for_node("landed") == lake_uri
    assert result.output_for_node("spark_input") == f"{lake_uri} -> bigquery:test-proj.spotify.bq_plays"

    names = sorted(b.name for b in storage.Client().list_blobs(bucket))
    assert "spotify/lake/raw/batch=1/part-0.parquet" in names
    run = result.run_id
    assert {f"spotify/dagster/landed/{run}.json", f"spotify/dagster/spark_input/{run}.json"} <= set(names)
    assert all(n.startswith(("spotify/lake/", "spotify/dagster/")) for n in names)


def test_prefix_and_location_come_from_the_environment(cloud_env: GCSEmulator, monkeypatch) -> None:
    monkeypatch.setenv("SPOTIFY_GCS_PREFIX", "me/music/")
    monkeypatch.setenv("SPOTIFY_BQ_LOCATION", "europe-west1")
    resources = cloud_resources()
    assert resources["warehouse"].location == "europe-west1"
    result = dg.materialize([landed], resources=resources)
    assert (
        result.output_for_node("landed")
        == f"gs://{cloud_env.bucket}/me/music/lake/raw/batch=1/part-0.parquet"
    )
    names = {b.name for b in storage.Client().list_blobs(cloud_env.bucket)}
    assert {
        "me/music/lake/raw/batch=1/part-0.parquet",
        f"me/music/dagster/landed/{result.run_id}.json",
    } == names


def test_missing_required_variables_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SPOTIFY_GCP_PROJECT",
        "SPOTIFY_GCS_BUCKET",
        "SPOTIFY_BQ_DATASET",
        "SPOTIFY_BQ_STAGING_DATASET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPOTIFY_GCS_BUCKET", "b")
    assert missing_cloud_env() == ["SPOTIFY_GCP_PROJECT", "SPOTIFY_BQ_DATASET", "SPOTIFY_BQ_STAGING_DATASET"]
