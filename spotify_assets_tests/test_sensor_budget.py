"""A sensor tick stays within its budget however long the API asks it to wait (issue 27).

Dagster cancels a sensor evaluation after 60 s. The tick stops asking after ``TICK_BUDGET_S``,
but a single listener's poll could wait out a 45 s Retry-After (twice, with a retry) inside
one call. On the real parts (the sandbox API answering 429 with ``Retry-After``, the app's
shared rate gate, a real Dagster instance): the tick returns within its budget, says which
listeners it left for the next tick and why, moves no cursor for them, and the next tick,
once the wait is over, asks from the same point, so nothing between is lost or asked twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest

from spotify_assets import sensors
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.sensors import TICK_BUDGET_S, new_plays_sensor
from spotify_assets.spotify.client import played_at_ms
from spotify_assets_tests.test_household_runs import _register
from spotify_sandbox import SandboxServer
from spotify_sandbox.resource import SandboxSpotifyResource

RECENTLY_PLAYED = "GET /v1/me/player/recently-played"


def _tick(
    instance: dg.DagsterInstance, cursor: str | None, sandbox: SandboxServer, data_dir: Path
) -> tuple[dg.SensorResult, float]:
    """One evaluation, as the daemon runs it; (its result, its wall seconds)."""
    resources = {
        "spotify": SandboxSpotifyResource(url=sandbox.url),
        "lake": LocalLakeResource(root=str(data_dir / "lake")),
    }
    started = time.monotonic()
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = new_plays_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    return result, time.monotonic() - started


def _calls(sandbox: SandboxServer) -> int:
    return int(sandbox.stats()["requests"].get(RECENTLY_PLAYED, 0))


def _newest_ms(sandbox: SandboxServer, name: str) -> int:
    return max(played_at_ms(i) or 0 for i in sandbox.recently_played_truth(name))


def test_a_45s_retry_after_leaves_the_listeners_for_the_next_tick_within_the_budget(
    pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    alice, bob = _register(pipeline_sandbox, data_dir, "alice", "bob")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id, bob.user_id])
        first, _ = _tick(instance, None, pipeline_sandbox, data_dir)
        assert len(first.run_requests or []) == 2
        pipeline_sandbox.advance(3 * 3600)  # both listeners have new plays
        calls = _calls(pipeline_sandbox)
        pipeline_sandbox.fail_next(429, count=2, path="/v1/*", retry_after=45)
        second, took = _tick(instance, first.cursor, pipeline_sandbox, data_dir)
        # Without the bound: 45 s, a retry, 45 s more (past Dagster's 60 s) for alice alone.
        assert took < TICK_BUDGET_S, f"the tick took {took:.1f} s"
        assert not second.run_requests
        # One call answered 429; nobody called Spotify again inside the app's wait.
        assert _calls(pipeline_sandbox) == calls + 1
        # Left for the next tick, visibly, and from the same cursor: nothing skipped.
        reason = (second.skip_reason.skip_message if second.skip_reason else None) or ""
        for user in (alice, bob):
            assert f"{user.user_id}: left for the next tick" in reason, reason
            assert "45" in reason, reason
        assert json.loads(second.cursor or "{}") == json.loads(first.cursor or "{}")


def test_the_next_tick_after_the_wait_asks_from_the_same_cursor(
    pipeline_sandbox: SandboxServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short budget and Retry-After, so the wait can be waited out: the same bound as 30 s and 45 s.
    monkeypatch.setattr(sensors, "TICK_BUDGET_S", 2.0)
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        first, _ = _tick(instance, None, pipeline_sandbox, data_dir)
        pipeline_sandbox.advance(3 * 3600)
        pipeline_sandbox.fail_next(429, count=1, path="/v1/*", retry_after=4)
        left, took = _tick(instance, first.cursor, pipeline_sandbox, data_dir)
        assert took < 2.0 and not left.run_requests
        assert left.cursor == first.cursor
        waited = time.monotonic()
        while True:  # until the app's wait is over: a tick then asks and finds the new plays
            again, _ = _tick(instance, left.cursor, pipeline_sandbox, data_dir)
            if again.run_requests:
                break
            assert time.monotonic() - waited < 30, again.skip_reason
            time.sleep(0.2)  # the interval between two looks, not a wait for something
        (request,) = again.run_requests
        assert request.partition_key == alice.user_id
        newest = _newest_ms(pipeline_sandbox, "alice")
        assert json.loads(again.cursor or "{}")[alice.user_id] == newest
        assert request.run_key == f"plays-{alice.user_id}-until-{newest}"
