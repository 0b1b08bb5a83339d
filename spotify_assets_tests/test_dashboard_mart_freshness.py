"""The Spark top ten follows every write to the plays table (the "stale mart" defect).

Before: ``top_ten_tracks`` ran only inside the hourly job, which skips it when the API has no
new plays, so an import left the "All-time top ten" showing old counts. Now an automation
condition requests it after any update of ``bq_plays`` or ``history_import`` (the CLI import
is a run of both), and the dashboard says when the mart was computed and over how many plays.
"""

from __future__ import annotations

import dagster as dg
import pytest

from spotify_assets.definitions import defs
from spotify_assets.import_run import import_command
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID
from spotify_sandbox.exports import generate_export

TOP_TEN = dg.AssetKey("top_ten_tracks")


def _requested(instance: dg.DagsterInstance, cursor: object) -> tuple[int, object]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)  # type: ignore[arg-type]
    return result.get_num_requested(TOP_TEN), result.cursor


def test_the_automation_sensor_is_on_by_default_and_targets_the_mart():
    sensor = defs.get_sensor_def("mart_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    graph = defs.resolve_asset_graph()
    assert graph.get(TOP_TEN).automation_condition is not None
    assert {k.to_user_string() for k in graph.get(TOP_TEN).parent_keys} == {"bq_plays", "history_import"}


def _write(instance: dg.DagsterInstance, writer: str) -> str | None:
    """Report a write by ``writer``: ``bq_plays`` is partitioned by listener, so its write names one."""
    partition = None
    if writer == "bq_plays":
        partition = DEFAULT_USER_ID
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [partition])
    instance.report_runless_asset_event(dg.AssetMaterialization(writer, partition=partition))
    return partition


@pytest.mark.parametrize("writer", ["history_import", "bq_plays"])
def test_any_write_to_the_plays_table_requests_the_top_ten_once(writer):
    with dg.DagsterInstance.ephemeral() as instance:
        n, cursor = _requested(instance, None)
        assert n == 0  # nothing happened yet
        _write(instance, writer)
        n, cursor = _requested(instance, cursor)
        assert n == 1
        n, cursor = _requested(instance, cursor)
        assert n == 0  # handled: not requested again on the next tick
        _write(instance, writer)
        n, cursor = _requested(instance, cursor)
        assert n == 1  # a second import: once more


@pytest.mark.parametrize("passed", [True, False])
def test_a_failed_blocking_check_on_the_plays_holds_the_mart_back(passed):
    with dg.DagsterInstance.ephemeral() as instance:
        _, cursor = _requested(instance, None)
        partition = _write(instance, "bq_plays")
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("bq_plays"),
                check_name="play_key_unique",
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                partition=partition,
            )
        )
        n, _ = _requested(instance, cursor)
        assert n == (1 if passed else 0)  # the passing case shows the write alone would request it


def test_the_import_command_reports_its_write_to_dagster(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    summary = generate_export(tmp_path / "export.zip", 300, seed=5, rows_per_file=300)
    assert (
        import_command([str(tmp_path / "export.zip"), "--data-dir", str(tmp_path / "d"), "--no-progress"])
        == 0
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("history_import"))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata["plays_landed"].value == summary.expected_added
        merged = instance.get_latest_materialization_event(dg.AssetKey("bq_plays"))
        assert merged is not None and merged.asset_materialization is not None
        assert merged.asset_materialization.metadata["plays_inserted"].value == summary.expected_added
        assert merged.run_id == event.run_id  # one run: the landing, then the merge
    # A second import of the same export is a run too, which lands and merges nothing.
    assert (
        import_command([str(tmp_path / "export.zip"), "--data-dir", str(tmp_path / "d"), "--no-progress"])
        == 0
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("history_import"), limit=10).records
        assert len(records) == 2
        assert records[0].asset_materialization is not None
        assert records[0].asset_materialization.metadata["plays_landed"].value == 0
        merged = instance.get_latest_materialization_event(dg.AssetKey("bq_plays"))
        assert merged is not None and merged.asset_materialization is not None
        assert merged.asset_materialization.metadata["plays_inserted"].value == 0
