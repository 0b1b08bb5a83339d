"""The Dagster instance stays small: tick retention, and a daily purge of old, uneventful runs.

With the new-plays sensor ticking once a minute and a run per few minutes per listener, the
instance (``<data>/dagster_home`` locally, Postgres deployed) would otherwise grow without
bound: 1,440 sensor ticks a day, and every run's event log and compute logs.

* Ticks: Dagster's own ``retention:`` settings (``instance_config.INSTANCE_RETENTION``), written into
  the local ``dagster.yaml`` by ``instance_config.prepare_local_home`` and kept equal in ``deploy/dagster.yaml`` (a test
  holds them together). The daemon purges ticks itself.
* Runs: Dagster has no run retention, so ``purge_runs`` (the ``purge_old_runs`` job, daily) deletes,
  through the instance's public ``get_run_records`` and ``delete_run``, the pipeline's runs older
  than ``RUN_RETENTION_DAYS`` that ended in success (on SQLite with each one's own events file,
  which ``delete_run`` empties but leaves: ``users/dagster_internals.remove_run_shard``), keeping
  the newest ``KEEP_NEWEST_RUNS`` and
  every run holding the latest materialization of an asset partition (the sensor reads the
  newest fetch from it, and the UI shows it). Failed and cancelled runs stay: they are what an
  operator looks into.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.users import dagster_internals

#: A successful run older than this is deleted by the daily purge (unless protected, see above).
RUN_RETENTION_DAYS = 7
#: The newest successful runs are always kept, however old.
KEEP_NEWEST_RUNS = 100


def _protected_runs(instance: dg.DagsterInstance) -> set[str]:
    """Runs holding the latest materialization of an asset partition (or of an unpartitioned asset)."""
    keep: set[str] = set()
    partitions: list[str | None] = [None, *instance.get_dynamic_partitions(USERS_PARTITIONS_NAME)]
    for key in instance.get_asset_keys():
        for partition in partitions:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
                limit=1,
            ).records
            keep |= {r.run_id for r in records if r.run_id}
    return keep


def purge_runs(
    instance: dg.DagsterInstance,
    *,
    older_than_days: float = RUN_RETENTION_DAYS,
    keep_newest: int = KEEP_NEWEST_RUNS,
    now: datetime | None = None,
) -> list[str]:
    """Delete the pipeline's old successful runs (see the module docstring); returns their ids."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    records = instance.get_run_records(
        dg.RunsFilter(job_name=spotify_pipeline_job.name, statuses=[dg.DagsterRunStatus.SUCCESS])
    )  # newest first
    candidates = [r for r in records[keep_newest:] if r.create_timestamp < cutoff]
    if not candidates:
        return []
    protected = _protected_runs(instance)
    deleted = []
    for record in candidates:
        run_id = record.dagster_run.run_id
        if run_id in protected:
            continue
        instance.compute_log_manager.delete_logs(prefix=[run_id])
        instance.delete_run(run_id)
        dagster_internals.remove_run_shard(instance, run_id)
        deleted.append(run_id)
    return deleted


@dg.op(description="Delete the pipeline's old successful runs (their events and logs) from the instance.")
def purge_old_runs_op(context: dg.OpExecutionContext) -> dg.Output[int]:
    deleted = purge_runs(context.instance)
    context.log.info(f"deleted {len(deleted)} run(s) older than {RUN_RETENTION_DAYS} days")
    return dg.Output(len(deleted), metadata={"runs_deleted": len(deleted)})


@dg.job(
    name="purge_old_runs",
    description=f"Keep the instance small: delete successful pipeline runs older than {RUN_RETENTION_DAYS} "
    f"days (the newest {KEEP_NEWEST_RUNS} and those holding an asset's latest materialization stay).",
)
def purge_old_runs_job() -> None:
    purge_old_runs_op()


purge_old_runs_schedule = dg.ScheduleDefinition(
    name="purge_old_runs_daily",
    job=purge_old_runs_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Once a day, delete old successful pipeline runs (see the purge_old_runs job).",
)
