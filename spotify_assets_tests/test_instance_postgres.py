"""The deployed Dagster instance config (``deploy/dagster.yaml``) on a real PostgreSQL server.

The file is validated by Dagster's own instance schema, then loaded as-is (env vars pointed
at the test server) and used to materialize assets; the run and its events are then read
back both with raw SQL from Postgres and through a second, fresh instance.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from spotify_assets.io_managers import LakeIOManager
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_assets_tests.fixtures.postgres import dagster_postgres_env

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DAGSTER_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
PIPELINE_TAG_KEY = "spotify/pipeline"


def _set_postgres_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for key, value in dagster_postgres_env(url).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def deploy_instance(
    tmp_path: Path, postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """A DagsterInstance built from the unmodified deploy/dagster.yaml, on a fresh database."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    _set_postgres_env(monkeypatch, postgres_database)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def _asset_key(db_string: str) -> str:
    key = dg.AssetKey.from_db_string(db_string)
    assert key is not None, db_string
    return key.to_user_string()


def _fetchall(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


# --- the config file itself --------------------------------------------------------------


def test_deploy_dagster_yaml_passes_dagsters_instance_schema(tmp_path: Path) -> None:
    """Dagster's own validator accepts the file, and the parts we rely on are what we think."""
    config, custom_class = dagster_instance_config(str(DEPLOY_DAGSTER_YAML.parent))
    assert custom_class is None
    assert set(config["storage"]) == {"postgres"}
    db = dict(config["storage"]["postgres"]["postgres_db"])
    # The installed driver (SQLAlchemy 2.1 would otherwise pick psycopg 3, which is absent).
    assert db.pop("scheme") == "postgresql+psycopg2"
    # Every connection setting comes from the environment; nothing is hard-coded.
    assert {k: v["env"] for k, v in db.items()} == {
        "username": "DAGSTER_POSTGRES_USER",
        "password": "DAGSTER_POSTGRES_PASSWORD",
        "hostname": "DAGSTER_POSTGRES_HOST",
        "db_name": "DAGSTER_POSTGRES_DB",
        "port": "DAGSTER_POSTGRES_PORT",
    }
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert {"key": PIPELINE_TAG_KEY, "limit": 1} in config["run_coordinator"]["config"][
        "tag_concurrency_limits"
    ]

    # The validator is not a rubber stamp: a misspelt key in the same file is rejected.
    broken = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())
    broken["run_coordinator"]["config"]["tag_concurency_limits"] = broken["run_coordinator"]["config"].pop(
        "tag_concurrency_limits"
    )
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(DagsterInvalidConfigError):
        dg.DagsterInstance.from_config(str(tmp_path))


def test_the_pipeline_job_carries_the_tag_the_instance_limits() -> None:
    """The concurrency limit only works if the job's runs carry the limited tag key."""
    from spotify_assets import jobs

    assert PIPELINE_TAG_KEY in jobs.PIPELINE_TAG
    assert jobs.spotify_pipeline_job.tags.get(PIPELINE_TAG_KEY) == jobs.PIPELINE_TAG[PIPELINE_TAG_KEY]


# --- the instance on a real server ---------------------------------------------------------


@dg.asset
def upstream_numbers() -> list[int]:
    return [3, 1, 2]


@dg.asset
def sorted_numbers(upstream_numbers: list[int]) -> list[int]:
    return sorted(upstream_numbers)


def test_instance_storage_is_postgres_with_the_queued_coordinator(
    deploy_instance: dg.DagsterInstance, postgres_database: str
) -> None:
    assert isinstance(deploy_instance.run_storage, PostgresRunStorage)
    assert isinstance(deploy_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(deploy_instance.schedule_storage, PostgresScheduleStorage)

    coordinator = deploy_instance.run_coordinator
    assert isinstance(coordinator, QueuedRunCoordinator)
    queue = coordinator.get_run_queue_config()
    assert queue.max_concurrent_runs == 4
    assert [dict(limit) for limit in queue.tag_concurrency_limits] == [{"key": PIPELINE_TAG_KEY, "limit": 1}]

    # Dagster created its schema in our database (runs, events, schedule/sensor state).
    tables = {
        row[0]
        for row in _fetchall(
            postgres_database,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        )
    }
    assert {"runs", "run_tags", "event_logs", "asset_keys", "instigators", "jobs", "job_ticks"} <= tables


def test_materialize_writes_the_run_and_its_events_to_postgres(
    deploy_instance: dg.DagsterInstance, postgres_database: str, tmp_path: Path
) -> None:
    result = dg.materialize(
        [upstream_numbers, sorted_numbers],
        instance=deploy_instance,
        tags={PIPELINE_TAG_KEY: "test"},
        resources={"io_manager": LakeIOManager(store=LocalLakeResource(root=str(tmp_path / "io")))},
    )
    assert result.success
    assert result.output_for_node("sorted_numbers") == [1, 2, 3]
    run_id = result.run_id

    # Raw SQL: the rows are in Postgres, not in some local SQLite file.
    assert _fetchall(postgres_database, "SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [
        ("SUCCESS",)
    ]
    assert _fetchall(
        postgres_database,
        "SELECT value FROM run_tags WHERE run_id = %s AND key = %s",
        (run_id, PIPELINE_TAG_KEY),
    ) == [("test",)]
    materialized = _fetchall(
        postgres_database,
        "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'"
        " ORDER BY asset_key",
        (run_id,),
    )
    assert [_asset_key(row[0]) for row in materialized] == ["sorted_numbers", "upstream_numbers"]
    assert not list((Path(deploy_instance.root_directory)).glob("**/*.db")), (
        "no SQLite storage may be created"
    )

    # A second instance (new connections, as the webserver or daemon would have) sees it all.
    second = dg.DagsterInstance.from_config(deploy_instance.root_directory)
    try:
        record = second.get_run_record_by_id(run_id)
        assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        latest = second.get_latest_materialization_event(dg.AssetKey("sorted_numbers"))
        assert latest is not None and latest.run_id == run_id
        assert {key.to_user_string() for key in second.get_asset_keys()} == {
            "upstream_numbers",
            "sorted_numbers",
        }
    finally:
        second.dispose()


@pytest.mark.spark
@pytest.mark.slow
def test_the_real_project_graph_on_postgres_instance_storage(
    request: pytest.FixtureRequest, deploy_instance: dg.DagsterInstance, postgres_database: str
) -> None:
    """The project's six pipeline assets, with the test resources (tmp data dir + sandbox API), on Postgres."""
    from spotify_assets import jobs
    from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH

    resources: dict[str, Any] = request.getfixturevalue("local_resources")

    assets = list(PIPELINE_ASSETS)
    expected = sorted(key.to_user_string() for a in assets for key in a.keys)
    assert len(expected) == 6

    result = materialize_user(
        PIPELINE_GRAPH,
        selection=assets,
        instance=deploy_instance,
        resources=resources,
        tags=jobs.PIPELINE_TAG,
    )
    assert result.success

    assert _fetchall(postgres_database, "SELECT status FROM runs WHERE run_id = %s", (result.run_id,)) == [
        ("SUCCESS",)
    ]
    materialized = _fetchall(
        postgres_database,
        "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        (result.run_id,),
    )
    assert sorted(_asset_key(row[0]) for row in materialized) == expected
    assert _fetchall(
        postgres_database,
        "SELECT value FROM run_tags WHERE run_id = %s AND key = %s",
        (result.run_id, PIPELINE_TAG_KEY),
    ) == [(jobs.PIPELINE_TAG[PIPELINE_TAG_KEY],)]
