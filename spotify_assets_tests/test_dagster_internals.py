"""The contract of ``users/dagster_internals.py``, the one module beneath Dagster's public API.

An upgrade of Dagster must fail here, naming what to re-check, rather than let the listener
deletion (``users remove --delete-data``) silently leave their data in the instance. What the
deletion does is tested end to end in ``test_users_delete.py``; this file pins the version and
checks every internal name, column and signature the module (and ``run_history.py``, for the
instance methods Dagster does not mark public) relies on.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from spotify_assets.users import dagster_internals

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The packages that ship; tests may import what they like.
RUNTIME_PACKAGES = ("spotify_assets", "spotify_sandbox", "spark", "app")
PRIVATE_IMPORT = re.compile(r"^\s*(from|import)\s+dagster(_\w+)?\._", re.MULTILINE)


def _params(func: Any) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p != "self"]


def test_installed_dagster_is_the_verified_release() -> None:
    assert dg.__version__ == dagster_internals.VERIFIED_DAGSTER_VERSION, (
        f"Dagster {dg.__version__} is installed; spotify_assets/users/dagster_internals.py was "
        f"verified against {dagster_internals.VERIFIED_DAGSTER_VERSION}. Check every internal it "
        "uses on the new release (this file lists them), then bump VERIFIED_DAGSTER_VERSION."
    )


def test_only_the_contract_module_imports_dagster_internals() -> None:
    offenders = sorted(
        str(path.relative_to(REPO_ROOT))
        for package in RUNTIME_PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
        if PRIVATE_IMPORT.search(path.read_text())
    )
    assert offenders == ["spotify_assets/users/dagster_internals.py"]


def test_event_log_tables_have_the_columns_used() -> None:
    from dagster._core.storage.event_log.schema import (
        AssetEventTagsTable,
        AssetKeyTable,
        SqlEventLogStorageTable,
    )

    assert {"asset_key", "last_materialization", "last_run_id"} <= set(AssetKeyTable.c.keys())
    assert {"id", "run_id", "event", "partition"} <= set(SqlEventLogStorageTable.c.keys())
    assert "event_id" in AssetEventTagsTable.c


def test_storages_have_the_connections_used() -> None:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from dagster_postgres.event_log import PostgresEventLogStorage

    for storage in (SqliteEventLogStorage, PostgresEventLogStorage):
        assert _params(storage.index_connection) == []
        assert _params(storage.run_connection) == ["run_id"]
    assert _params(SqliteEventLogStorage.path_for_shard) == ["run_id"]
    assert not hasattr(PostgresEventLogStorage, "path_for_shard")  # one database: no shards to walk


def test_sensor_state_shape() -> None:
    from dagster._core.scheduler.instigation import InstigatorState, SensorInstigatorData

    assert {"cursor", "last_run_key"} <= set(SensorInstigatorData._fields)
    assert _params(InstigatorState.with_data) == ["instigator_data"]
    assert "instigator_data" in InstigatorState._fields


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("update_instigator_state", ["state"]),
        ("purge_ticks", ["origin_id", "selector_id", "before", "tick_statuses"]),
        ("get_ticks", ["origin_id", "selector_id", "before", "after", "limit", "statuses"]),
        (
            "all_instigator_state",
            ["repository_origin_id", "repository_selector_id", "instigator_type", "instigator_statuses"],
        ),
        ("wipe_asset_cached_status", ["asset_keys"]),
        ("get_materialized_partitions", ["asset_key", "before_cursor", "after_cursor"]),
        ("has_dynamic_partition", ["partitions_def_name", "partition_key"]),
        ("delete_dynamic_partition", ["partitions_def_name", "partition_key"]),
    ],
)
def test_instance_methods_dagster_does_not_mark_public(name: str, params: list[str]) -> None:
    assert _params(getattr(dg.DagsterInstance, name)) == params


def test_sqlite_run_shard_layout(tmp_path: Path) -> None:
    """A run's own SQLite file keeps its events in the table ``_run_files`` pre-filters with."""

    @dg.asset
    def marker() -> str:
        return "needle-4c1f"

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        result = dg.materialize([marker], instance=instance)
        path = Path(instance.event_log_storage.path_for_shard(result.run_id))  # type: ignore[attr-defined]
        con = sqlite3.connect(path)
        try:
            count = con.execute(
                f"SELECT count(*) FROM {dagster_internals._SQLITE_EVENTS_TABLE} WHERE event LIKE ?",
                ("%STEP_SUCCESS%",),
            ).fetchone()[0]
        finally:
            con.close()
        assert count == 1
        assert dagster_internals._shard_matches(path, "%STEP_SUCCESS%")
        assert not dagster_internals._shard_matches(path, "%no-such-text-9e2a%")


def test_the_run_health_answer_has_the_members_and_fields_used() -> None:
    """``run_launcher.py`` answers run monitoring with these; the daemon reads them."""
    from dagster._core.launcher import CheckRunHealthResult, RunLauncher, WorkerStatus

    assert {"RUNNING", "FAILED", "UNKNOWN"} <= set(WorkerStatus.__members__)
    assert CheckRunHealthResult._fields[:2] == ("status", "msg")
    assert isinstance(inspect.getattr_static(RunLauncher, "supports_check_run_worker_health"), property)
    assert _params(RunLauncher.check_run_worker_health) == ["run"]
