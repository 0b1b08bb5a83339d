"""The new-plays sensor at its minute-level cadence (issue 25, "A minute behind the music").

On the real parts: the sandbox API, the real pipeline into DuckDB, a real Dagster instance.
The run polls from the warehouse, not from the sensor's peek, so a play that ends between the
two is fetched by the run once and starts no second run; a listener whose run is on its way is
not asked again; every listener's window ends in the warehouse exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from spotify_assets.definitions import defs
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.schema import PLAYS_TABLE
from spotify_assets.sensors import new_plays_sensor
from spotify_assets.spotify.client import played_at_ms
from spotify_assets.users.run_history import PARTITION_TAG
from spotify_assets_tests.test_household_runs import _plays_of, _register, _run
from spotify_sandbox import SandboxServer

RECENTLY_PLAYED = "GET /v1/me/player/recently-played"


def _tick(instance: dg.DagsterInstance, cursor: str | None, resources: dict[str, Any]) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = new_plays_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    return result


def _calls(sandbox: SandboxServer) -> int:
    return int(sandbox.stats()["requests"].get(RECENTLY_PLAYED, 0))


def test_a_play_the_run_fetched_past_the_sensors_peek_starts_no_second_run_and_lands_once(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    resources = {"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    warehouse = local_resources["warehouse"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        # Her first run (requested unasked: ``test_sensor_first_run``), then plays: the sensor peeks.
        assert _run(local_resources, alice, instance).success
        first_oldest = min(played_at_ms(i) or 0 for i in pipeline_sandbox.recently_played_truth("alice"))
        pipeline_sandbox.advance(30 * 60)
        first = _tick(instance, None, resources)
        assert [r.partition_key for r in first.run_requests or []] == [alice.user_id]
        peeked = json.loads(first.cursor or "{}")[alice.user_id]
        assert peeked == max(played_at_ms(i) or 0 for i in pipeline_sandbox.recently_played_truth("alice"))
        # Plays end between the sensor's peek and the run's own poll: the run fetches them.
        pipeline_sandbox.advance(40 * 60)
        assert len(pipeline_sandbox.plays_between(_iso(peeked), pipeline_sandbox.now(), "alice")) >= 2
        assert _run(local_resources, alice, instance).success
        since_first = pipeline_sandbox.plays_between(_iso(first_oldest - 1), pipeline_sandbox.now(), "alice")
        assert _plays_of(warehouse, alice.user_id) == len(since_first)

        calls = _calls(pipeline_sandbox)
        quiet = _tick(instance, first.cursor, resources)
        assert not quiet.run_requests, "plays the run already merged must not start another run"
        assert "no new plays" in (quiet.skip_reason.skip_message or "")
        assert _calls(pipeline_sandbox) == calls + 1  # one recently-played call for the listener
        assert json.loads(quiet.cursor or "{}")[alice.user_id] > peeked

        pipeline_sandbox.advance(30 * 60)
        merged = json.loads(quiet.cursor or "{}")[alice.user_id]
        assert pipeline_sandbox.plays_between(_iso(merged), pipeline_sandbox.now(), "alice")
        again = _tick(instance, quiet.cursor, resources)
        assert [r.partition_key for r in again.run_requests or []] == [alice.user_id]
        assert _run(local_resources, alice, instance).success
        # Every play since the first window, once: none lost or doubled by the sensor and the run overlapping.
        truth = {
            i["played_at"]
            for i in pipeline_sandbox.plays_between(_iso(first_oldest - 1), pipeline_sandbox.now(), "alice")
        }
        held = warehouse.query(f"SELECT played_at FROM {PLAYS_TABLE} WHERE user_id = '{alice.user_id}'")
        assert {_iso_z(t) for t in held["played_at"]} == truth and len(held) == len(truth)
        keys = warehouse.query(f"SELECT count(*) AS n, count(DISTINCT play_key) AS k FROM {PLAYS_TABLE}")
        assert int(keys["n"].iloc[0]) == int(keys["k"].iloc[0])


def test_a_listener_whose_run_is_on_its_way_is_not_asked_again(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    resources = {"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id, bob.user_id])
        first = _tick(instance, None, resources)
        assert len(first.run_requests or []) == 2
        # alice's run is going (it polls itself); bob has none.
        instance.create_run_for_job(
            defs.resolve_job_def(spotify_pipeline_job.name),
            tags={PARTITION_TAG: alice.user_id},
            status=dg.DagsterRunStatus.STARTED,
        )
        pipeline_sandbox.advance(12 * 3600)
        calls = _calls(pipeline_sandbox)
        second = _tick(instance, first.cursor, resources)
        assert [r.partition_key for r in second.run_requests or []] == [bob.user_id]
        assert _calls(pipeline_sandbox) == calls + 1  # bob's only: alice's run polls itself
        cursor = json.loads(second.cursor or "{}")
        assert cursor[alice.user_id] == json.loads(first.cursor or "{}")[alice.user_id]


def test_the_sensor_is_on_by_default_once_a_minute() -> None:
    sensor = defs.resolve_sensor_def("new_plays_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60


def _iso_z(t: object) -> str:
    """A warehouse ``played_at`` in the API's format (``2026-11-20T20:58:03.123Z``)."""
    return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()
