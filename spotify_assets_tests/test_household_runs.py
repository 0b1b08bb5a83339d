"""A household in the pipeline: one run per user (tagged ``spotify/user``), each with that user's
own token; plays kept apart; a revoked user fails alone and is named; runs of two users overlap
safely; the hourly schedule and the sensor ask for one run per user."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from spotify_assets.assets import PIPELINE_GRAPH
from spotify_assets.partitions import USER_TAG, USERS_PARTITIONS_NAME
from spotify_assets.schema import PLAYS_TABLE
from spotify_assets.spotify.normalize import normalize_recently_played
from spotify_assets.users.registry import User
from spotify_assets_tests.fixtures.sandbox import register_listeners
from spotify_sandbox import SandboxServer

#: The pipeline up to the warehouse: the Spark top ten (all users) is not what these tests judge.
UP_TO_WAREHOUSE = ["raw_recent_tracks", "audio_features", "gcs_csv", "bq_plays", "track_features"]


def _register(sandbox: SandboxServer, data_dir: Path, *names: str) -> list[User]:
    return register_listeners(sandbox, data_dir / "users", *names)


def _run(
    resources: dict[str, Any], user: User, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        PIPELINE_GRAPH,
        selection=UP_TO_WAREHOUSE,
        resources=resources,
        instance=instance,
        tags={USER_TAG: user.user_id},
        raise_on_error=False,
    )


def _plays_of(warehouse: Any, user_id: str) -> int:
    return int(
        warehouse.query(f"SELECT count(*) AS n FROM {PLAYS_TABLE} WHERE user_id = '{user_id}'")["n"].iloc[0]
    )


def _expected(sandbox: SandboxServer, user: User, name: str) -> int:
    """The plays the API window holds for ``name`` (tracks with a readable played_at)."""
    truth = sandbox.recently_played_truth(name)
    return len(normalize_recently_played(truth, ingested_at=datetime.now(UTC), user_id=user.user_id).plays)


def _failure_messages(result: dg.ExecuteInProcessResult) -> str:
    messages = []
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return "\n".join(messages)


def test_two_users_end_to_end_plays_kept_apart_and_a_rerun_adds_nothing(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    warehouse = local_resources["warehouse"]
    for user in (alice, bob):
        assert _run(local_resources, user).success
    expected = {alice.user_id: _expected(pipeline_sandbox, alice, "alice"),
                bob.user_id: _expected(pipeline_sandbox, bob, "bob")}  # fmt: skip
    assert all(n > 40 for n in expected.values())
    assert {u: _plays_of(warehouse, u) for u in expected} == expected
    assert warehouse.count(PLAYS_TABLE) == sum(expected.values())  # nobody else's plays, no untagged ones
    # Each user's plays are their own tracks at their own times, keyed by them.
    keys = warehouse.query(f"SELECT user_id, play_key FROM {PLAYS_TABLE}")
    assert all(key.startswith(uid + "|") for uid, key in keys.itertuples(index=False))
    # The lake paths carry the user.
    lake_root = Path(local_resources["lake"].root)
    landed = {p.parts[p.parts.index("plays") + 1] for p in lake_root.rglob("plays/user_id=*/*/*.parquet")}
    assert landed == {f"user_id={alice.user_id}", f"user_id={bob.user_id}"}
    # A rerun of both adds 0.
    for user in (alice, bob):
        assert _run(local_resources, user).success
    assert {u: _plays_of(warehouse, u) for u in expected} == expected


def test_a_revoked_user_fails_alone_and_the_failure_names_them(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    answer = requests.post(f"{pipeline_sandbox.url}/_sandbox/revoke", json={"user": "alice"}, timeout=5)
    assert answer.ok and answer.json()["revoked"] >= 1
    failed = _run(local_resources, alice)
    assert not failed.success
    message = _failure_messages(failed)
    assert "user alice (sandbox-alice)" in message and "invalid_grant" in message
    ok = _run(local_resources, bob)
    assert ok.success
    warehouse = local_resources["warehouse"]
    assert _plays_of(warehouse, alice.user_id) == 0
    assert _plays_of(warehouse, bob.user_id) == _expected(pipeline_sandbox, bob, "bob")


def test_the_hourly_schedule_requests_one_run_per_user_partition() -> None:
    from spotify_assets.schedules import hourly_schedule

    tick = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as ctx:
            single = hourly_schedule(ctx)
        assert isinstance(single, list) and len(single) == 1 and USER_TAG not in single[0].tags
        keys = ["sandbox-alice", "sandbox-bob", "sandbox-carol"]
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, keys)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick) as ctx:
            requests_ = hourly_schedule(ctx)
    assert isinstance(requests_, list)
    assert [r.tags[USER_TAG] for r in requests_] == keys
    assert len({r.run_key for r in requests_}) == 3 and all(
        "2026-11-20T21:00" in (r.run_key or "") for r in requests_
    )


def test_the_sensor_keeps_a_cursor_per_user_and_a_failed_user_blocks_nobody(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    from spotify_assets.sensors import new_plays_sensor

    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    resources = {"spotify": local_resources["spotify"]}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id, bob.user_id])

        def tick(cursor: str | None) -> dg.SensorResult:
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
                result = new_plays_sensor(ctx)
            assert isinstance(result, dg.SensorResult)
            return result

        first = tick(None)
        assert sorted(r.tags[USER_TAG] for r in first.run_requests or []) == [alice.user_id, bob.user_id]
        cursor = json.loads(first.cursor or "{}")
        for user, name in ((alice, "alice"), (bob, "bob")):
            newest = max(datetime.fromisoformat(i["played_at"].replace("Z", "+00:00"))
                         for i in pipeline_sandbox.recently_played_truth(name))  # fmt: skip
            assert cursor[user.user_id] == int(newest.timestamp() * 1000)
        quiet = tick(first.cursor)
        assert not quiet.run_requests and "no new plays" in (quiet.skip_reason.skip_message or "")
        pipeline_sandbox.advance(12 * 3600)
        pipeline_sandbox.revoke("alice")
        again = tick(first.cursor)
        assert [r.tags[USER_TAG] for r in again.run_requests or []] == [bob.user_id]
        moved = json.loads(again.cursor or "{}")
        assert moved[alice.user_id] == cursor[alice.user_id]  # alice asks again from the same point
        assert moved[bob.user_id] > cursor[bob.user_id]


@pytest.mark.parametrize("tag", ["sandbox-mallory"])
def test_a_run_for_an_unregistered_user_says_how_to_add_them(
    local_resources: dict[str, Any], data_dir: Path, tag: str
) -> None:
    result = _run(local_resources, User("x", tag, "X", ""))
    assert not result.success
    assert "names no registered user" in _failure_messages(result)
