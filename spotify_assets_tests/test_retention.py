"""The instance stays small (issue 25): tick retention in the local and deployed ``dagster.yaml``,
and the daily purge of old successful runs through the instance's public APIs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster._core.scheduler.instigation import InstigatorType, TickStatus  # no public name (1.13)

from spotify_assets.assets import PIPELINE_GRAPH
from spotify_assets.definitions import defs
from spotify_assets.instance_config import INSTANCE_RETENTION, prepare_local_home
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.retention import purge_runs
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID
from spotify_assets_tests.test_household_runs import UP_TO_WAREHOUSE
from spotify_sandbox import SandboxServer

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_local_and_deployed_instances_keep_ticks_alike(tmp_path: Path) -> None:
    deployed = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    assert deployed["retention"] == INSTANCE_RETENTION
    home = prepare_local_home(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        sensor = instance.get_tick_retention_settings(InstigatorType.SENSOR)
        assert sensor[TickStatus.SKIPPED] == 1
        assert instance.get_tick_retention_settings(InstigatorType.SCHEDULE)[TickStatus.SUCCESS] == 90
    # An operator's own file is never rewritten.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    prepare_local_home(home)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_the_purge_deletes_old_successful_runs_only_and_keeps_the_latest_materialization(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, tmp_path: Path
) -> None:
    job = defs.resolve_job_def(spotify_pipeline_job.name)
    with dg.DagsterInstance.from_config(str(prepare_local_home(tmp_path / "home"))) as instance:
        instance.add_dynamic_partitions("users", [DEFAULT_USER_ID])
        # A run of the pipeline job (same name, the steps up to the warehouse) that materializes.
        pipeline = dg.Definitions(
            assets=list(PIPELINE_GRAPH),
            resources=local_resources,
            jobs=[dg.define_asset_job(spotify_pipeline_job.name, selection=UP_TO_WAREHOUSE)],
        ).resolve_job_def(spotify_pipeline_job.name)
        real = pipeline.execute_in_process(instance=instance, partition_key=DEFAULT_USER_ID)
        assert real.success
        # The materializing run is the oldest; 6 newer runs succeeded, 2 failed.
        succeeded = [
            instance.create_run_for_job(job, status=dg.DagsterRunStatus.SUCCESS).run_id for _ in range(6)
        ]
        failed = [
            instance.create_run_for_job(job, status=dg.DagsterRunStatus.FAILURE).run_id for _ in range(2)
        ]
        for run_id in succeeded + failed:  # each run's own events file (SQLite) holds an event
            instance.report_engine_event("a step's event", instance.get_run_by_id(run_id))
        shard = instance.event_log_storage.path_for_shard  # type: ignore[attr-defined]
        assert all(Path(shard(run_id)).is_file() for run_id in succeeded + failed)
        later = datetime.now(UTC) + timedelta(days=8)
        assert purge_runs(instance, keep_newest=3) == []  # nothing is old yet
        deleted = purge_runs(instance, keep_newest=3, now=later)
        assert sorted(deleted) == sorted(succeeded[:3])  # the oldest successes beyond the newest 3
        left = {r.dagster_run.run_id for r in instance.get_run_records()}
        assert set(failed) <= left and set(succeeded[3:]) <= left and real.run_id in left
        # A deleted run's own file goes too (delete_run only empties it): the instance does not
        # grow with the number of runs; the kept runs' files stay.
        assert [r for r in deleted if Path(shard(r)).exists()] == []
        assert all(Path(shard(r)).is_file() for r in [*failed, *succeeded[3:], real.run_id])
        newest = instance.fetch_materializations(dg.AssetKey("bq_plays"), limit=1).records
        assert newest and newest[0].run_id == real.run_id
