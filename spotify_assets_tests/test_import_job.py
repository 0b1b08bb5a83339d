"""The UI offers a listening history's import as a job (``import_history``), not as a hand
selection of ``history_import`` + ``bq_plays`` and a partition: the job lands an export and
merges it, as ``spotify-assets import`` does."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from spotify_assets.assets.history import history_import
from spotify_assets.assets.lake import gcs_csv
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.definitions import defs
from spotify_assets.io_managers import LakeIOManager
from spotify_assets.jobs import history_import_job
from spotify_assets.partitions import add_user_partition
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID
from spotify_sandbox.exports import generate_export


def test_the_definitions_offer_the_import_as_a_job_of_its_two_assets() -> None:
    job = defs.resolve_job_def(history_import_job.name)
    assert set(job.asset_layer.executable_asset_keys) == {history_import.key, bq_plays.key}
    assert job.partitions_def == bq_plays.partitions_def  # the UI asks whose plays these are
    fields = job.run_config_schema.config_type.fields["ops"].config_type.fields
    assert "path" in fields["history_import"].config_type.fields["config"].config_type.fields


def test_the_import_job_lands_an_export_and_merges_it(tmp_path: Path) -> None:
    summary = generate_export(tmp_path / "export.zip", 120, seed=7, rows_per_file=120)
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    lake = LocalLakeResource(root=str(tmp_path / "lake"))
    handoff = LakeIOManager(store=LocalLakeResource(root=str(tmp_path / "handoff")))
    job = dg.Definitions(
        assets=[history_import, bq_plays, *gcs_csv.to_source_assets()],
        jobs=[history_import_job],
        resources={"warehouse": warehouse, "lake": lake, "io_manager": handoff},
    ).resolve_job_def(history_import_job.name)
    config = {"path": str(tmp_path / "export.zip"), "user_id": DEFAULT_USER_ID}
    with dg.instance_for_test() as instance:
        add_user_partition(instance, DEFAULT_USER_ID)
        result = job.execute_in_process(
            run_config={"ops": {"history_import": {"config": config}}},
            partition_key=DEFAULT_USER_ID,
            instance=instance,
        )
    assert result.success
    (merged,) = result.asset_materializations_for_node("bq_plays")
    assert merged.metadata["plays_inserted"].value == summary.expected_added
    assert warehouse.count("bq_plays") == summary.expected_added
