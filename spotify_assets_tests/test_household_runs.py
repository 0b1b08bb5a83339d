"""A household in the pipeline: one run per ``users`` partition, each with that user's own token;
plays kept apart; a revoked user fails alone and is named; runs of two users overlap safely (two
real processes on one instance and one DuckDB file); the hourly schedule and the sensor ask for
one run per user partition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from spotify_assets.assets import PIPELINE_GRAPH
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.schema import PLAYS_TABLE
from spotify_assets.spotify.normalize import normalize_recently_played
from spotify_assets.users.adoption import legacy_owner
from spotify_assets.users.registry import User
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID, add_partition_to_home, materialize_user
from spotify_assets_tests.fixtures.sandbox import register_listeners
from spotify_sandbox import SandboxServer
from spotify_sandbox.resource import SandboxSpotifyResource

DAGSTER = str(Path(sys.executable).with_name("dagster"))
#: The pipeline up to the warehouse: the Spark top ten (all users) is not what these tests judge.
UP_TO_WAREHOUSE = ["raw_recent_tracks", "audio_features", "gcs_csv", "bq_plays", "track_features"]
#: What a run that finds no new plays skips (raw_recent_tracks yields nothing; it is not a failure).
UP_TO_WAREHOUSE_SKIPPED = sorted(UP_TO_WAREHOUSE[1:])


def _register(sandbox: SandboxServer, data_dir: Path, *names: str) -> list[User]:
    return register_listeners(sandbox, data_dir / "users", *names)


def _run(
    resources: dict[str, Any], user: User, instance: dg.DagsterInstance | None = None
) -> dg.ExecuteInProcessResult:
    return materialize_user(
        PIPELINE_GRAPH,
        user_id=user.user_id,
        selection=UP_TO_WAREHOUSE,
        resources=resources,
        instance=instance,
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
    # A fresh household: no single-user layout, so neither first run recorded itself as its owner.
    assert legacy_owner(local_resources["lake"]) is None
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


def test_a_429_on_one_users_poll_holds_back_the_others_polls(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """Spotify's limits are per app: after alice's poll is told to wait an hour, bob's run does not
    call Spotify (though the sandbox would answer him) and fails naming him and the wait; once the
    hour is over both go on, each with exactly their own window."""
    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    recently_played = "/v1/me/player/recently-played"
    before = pipeline_sandbox.stats()["requests"].get(f"GET {recently_played}", 0)
    pipeline_sandbox.fail_next(429, count=1, path=recently_played, retry_after=3600)
    first, second = _run(local_resources, alice), _run(local_resources, bob)
    assert not first.success and not second.success
    assert pipeline_sandbox.stats()["requests"][f"GET {recently_played}"] == before + 1  # alice's only
    text = " ".join(str(e.event_specific_data) for e in second.all_events if e.is_step_failure)
    assert "polling user bob (sandbox-bob) failed" in text and "rate-limited this app" in text, text

    for gate in (data_dir / "state").glob("spotify-rate-limit-*.json"):  # an hour later
        gate.unlink()
    for user, name in ((alice, "alice"), (bob, "bob")):
        assert _run(local_resources, user).success
        assert _plays_of(local_resources["warehouse"], user.user_id) == _expected(
            pipeline_sandbox, user, name
        )


def _skipped(result: dg.ExecuteInProcessResult) -> list[str]:
    return sorted(e.step_key or "" for e in result.all_events if e.event_type_value == "STEP_SKIPPED")


def test_five_users_one_tick_kept_apart_a_revoked_user_fails_alone_and_a_rerun_adds_nothing(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """The whole sandbox household through one hourly tick: the schedule's run requests, one
    in-process run per partition. Carol revoked the app: her run fails naming her; the other
    four load exactly their own windows; a second tick adds 0 (the chain is skipped, visibly);
    the all-users top ten is asked for once after the partitions' writes."""
    from spotify_assets.definitions import defs
    from spotify_assets.schedules import hourly_schedule

    names = ["alice", "bob", "carol", "dave", "erin"]
    users = dict(zip(names, _register(pipeline_sandbox, data_dir, *names), strict=True))
    answer = requests.post(f"{pipeline_sandbox.url}/_sandbox/revoke", json={"user": "carol"}, timeout=5)
    assert answer.ok and answer.json()["revoked"] >= 1
    warehouse = local_resources["warehouse"]
    expected = {u.user_id: _expected(pipeline_sandbox, u, n) for n, u in users.items() if n != "carol"}
    assert all(n > 40 for n in expected.values())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [u.user_id for u in users.values()])
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # type: ignore[arg-type]
        by_id = {u.user_id: u for u in users.values()}

        def tick(hour: int) -> dict[str, dg.ExecuteInProcessResult]:
            when = datetime(2026, 11, 20, hour, 0, tzinfo=UTC)
            context = dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=when,
                resources={"spotify": local_resources["spotify"]},
            )
            with context as ctx:
                requests_ = hourly_schedule(ctx)
            assert isinstance(requests_, list)
            assert sorted(r.partition_key or "" for r in requests_) == sorted(by_id)
            return {
                r.partition_key or "": _run(local_resources, by_id[r.partition_key or ""], instance)
                for r in requests_
            }

        first = tick(21)
        carol = users["carol"].user_id
        assert {uid for uid, r in first.items() if not r.success} == {carol}
        message = _failure_messages(first[carol])
        assert "user carol (sandbox-carol)" in message and "invalid_grant" in message
        counts = {uid: _plays_of(warehouse, uid) for uid in by_id}
        assert counts == {**expected, carol: 0}
        assert warehouse.count(PLAYS_TABLE) == sum(expected.values())
        distinct = warehouse.query(f"SELECT count(DISTINCT play_key) AS n FROM {PLAYS_TABLE}")["n"].iloc[0]
        assert distinct == sum(expected.values())
        owners = warehouse.query(f"SELECT user_id, play_key FROM {PLAYS_TABLE}")
        assert all(key.startswith(uid + "|") for uid, key in owners.itertuples(index=False))
        # Each partition's materialization of the plays table is its own user's write.
        assert instance.get_materialized_partitions(dg.AssetKey("bq_plays")) == set(expected)
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)  # type: ignore[arg-type]
        assert after.get_num_requested(dg.AssetKey("top_ten_tracks")) == 1

        second = tick(22)
        assert not second[carol].success
        for uid in expected:
            assert second[uid].success
            assert _skipped(second[uid]) == UP_TO_WAREHOUSE_SKIPPED, uid  # skipped, not failed
        assert {uid: _plays_of(warehouse, uid) for uid in by_id} == {**expected, carol: 0}


def test_two_partitions_run_at_once_in_two_processes_each_play_once(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path, tmp_path: Path
) -> None:
    """Two real ``dagster asset materialize --partition`` processes started together, alice's and
    bob's, on one Dagster instance, one DuckDB file and one lake: each loads exactly their own
    window (the warehouse's writer lock serialises the merges), no key twice; a rerun adds 0."""
    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    home = tmp_path / "home"
    partitions = {u.name: add_partition_to_home(home, u.user_id) for u in (alice, bob)}
    env = {**os.environ, "SPOTIFY_DATA_DIR": str(data_dir), "SPOTIFY_SANDBOX_URL": pipeline_sandbox.url,
           "DAGSTER_HOME": str(home)}  # fmt: skip
    env.pop("SPOTIFY_CLIENT_ID", None)
    clock = {"config": {"now": pipeline_sandbox.now().isoformat()}}
    config = {"ops": {"bq_plays_no_future_plays": clock, "bq_plays_newest_play_is_fresh": clock}}
    cmd = [
        DAGSTER,
        "asset",
        "materialize",
        "-m",
        "spotify_assets.definitions",
        "--select",
        ",".join(UP_TO_WAREHOUSE[:4]),
    ]
    cmd += ["--config-json", json.dumps(config)]
    procs = {
        name: subprocess.Popen(
            [*cmd, *partition],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, partition in partitions.items()
    }
    outputs = {name: p.communicate(timeout=300)[0] for name, p in procs.items()}
    for name, proc in procs.items():
        assert proc.returncode == 0 and "RUN_SUCCESS" in outputs[name], outputs[name][-3000:]
    warehouse = local_resources["warehouse"]
    expected = {alice.user_id: _expected(pipeline_sandbox, alice, "alice"),
                bob.user_id: _expected(pipeline_sandbox, bob, "bob")}  # fmt: skip
    assert {u: _plays_of(warehouse, u) for u in expected} == expected
    distinct = warehouse.query(f"SELECT count(DISTINCT play_key) AS n FROM {PLAYS_TABLE}")["n"].iloc[0]
    assert warehouse.count(PLAYS_TABLE) == distinct == sum(expected.values())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert sorted(r.tags.get("dagster/partition", "") for r in runs) == sorted(expected)
    # A rerun of each adds 0.
    for user in (alice, bob):
        assert _run(local_resources, user).success
    assert {u: _plays_of(warehouse, u) for u in expected} == expected


def test_the_hourly_schedule_requests_one_run_per_user_partition(pipeline_sandbox: SandboxServer) -> None:
    from spotify_assets.schedules import hourly_schedule

    tick = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    resources = {"spotify": SandboxSpotifyResource(url=pipeline_sandbox.url)}
    with dg.instance_for_test() as instance:
        # No partition yet (one listener, no `users add`): the tick adds the token store's owner.
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, resources=resources
        ) as ctx:
            single = hourly_schedule(ctx)
        assert isinstance(single, list) and [r.partition_key for r in single] == [DEFAULT_USER_ID]
        assert instance.get_dynamic_partitions(USERS_PARTITIONS_NAME) == [DEFAULT_USER_ID]
        keys = ["sandbox-alice", "sandbox-bob", "sandbox-carol"]
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, keys)
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, resources=resources
        ) as ctx:
            requests_ = hourly_schedule(ctx)
    assert isinstance(requests_, list)
    assert [r.partition_key for r in requests_] == [DEFAULT_USER_ID, *keys]
    assert len({r.run_key for r in requests_}) == 4 and all(
        "2026-11-20T21:00" in (r.run_key or "") for r in requests_
    )


def test_with_no_partition_and_no_usable_token_the_tick_skips_saying_what_to_run(
    pipeline_sandbox: SandboxServer,
) -> None:
    from spotify_assets.schedules import hourly_schedule

    pipeline_sandbox.revoke(DEFAULT_USER_ID)
    resources = {"spotify": SandboxSpotifyResource(url=pipeline_sandbox.url)}
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance, resources=resources) as ctx:
            skipped = hourly_schedule(ctx)
        assert isinstance(skipped, dg.SkipReason)
        assert "spotify-assets auth" in (skipped.skip_message or "") and "invalid_grant" in (
            skipped.skip_message or ""
        )
        assert instance.get_dynamic_partitions(USERS_PARTITIONS_NAME) == []


def test_the_sensor_keeps_a_cursor_per_user_and_a_failed_user_blocks_nobody(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    from spotify_assets.sensors import new_plays_sensor

    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    resources = {"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id, bob.user_id])

        def tick(cursor: str | None) -> dg.SensorResult:
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
                result = new_plays_sensor(ctx)
            assert isinstance(result, dg.SensorResult)
            return result

        first = tick(None)
        # Nothing merged for either yet: a first run each, requested without asking the API.
        assert sorted(r.partition_key or "" for r in first.run_requests or []) == [alice.user_id, bob.user_id]
        for user in (alice, bob):
            assert _run(local_resources, user, instance).success
        quiet = tick(first.cursor)
        assert not quiet.run_requests and "no new plays" in (quiet.skip_reason.skip_message or "")
        cursor = json.loads(quiet.cursor or "{}")
        for user, name in ((alice, "alice"), (bob, "bob")):
            newest = max(datetime.fromisoformat(i["played_at"].replace("Z", "+00:00"))
                         for i in pipeline_sandbox.recently_played_truth(name))  # fmt: skip
            assert cursor[user.user_id] == int(newest.timestamp() * 1000)
        pipeline_sandbox.advance(12 * 3600)
        pipeline_sandbox.revoke("alice")
        again = tick(quiet.cursor)
        assert [r.partition_key for r in again.run_requests or []] == [bob.user_id]
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


def test_a_run_without_a_partition_says_how_to_name_one(local_resources: dict[str, Any]) -> None:
    result = dg.materialize(
        PIPELINE_GRAPH, selection=UP_TO_WAREHOUSE, resources=local_resources, raise_on_error=False
    )
    assert not result.success
    assert "raw_recent_tracks is partitioned by listener" in _failure_messages(result)
    assert "--partition <Spotify user id>" in _failure_messages(result)


def test_a_handoff_from_an_earlier_run_is_the_same_partitions(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """``bq_plays`` run on its own loads ``gcs_csv``'s latest materialization *of its partition*:
    bob's batch landed last, but alice's run merges alice's batch, and bob's plays wait for his."""
    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    with dg.instance_for_test() as instance:
        for user in (alice, bob):
            landed = materialize_user(
                PIPELINE_GRAPH, user_id=user.user_id, selection=UP_TO_WAREHOUSE[:3], resources=local_resources,
                instance=instance,
            )  # fmt: skip
            assert landed.success
        merged = materialize_user(
            PIPELINE_GRAPH,
            user_id=alice.user_id,
            selection=["bq_plays"],
            resources=local_resources,
            instance=instance,
        )
        assert merged.success
        warehouse = local_resources["warehouse"]
        assert _plays_of(warehouse, alice.user_id) == _expected(pipeline_sandbox, alice, "alice")
        assert _plays_of(warehouse, bob.user_id) == 0
