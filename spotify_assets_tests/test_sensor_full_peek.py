"""A full peek's page reaches the run: plays the sensor was shown are merged even once gone from the window.

Issue 27, found by the 168-hour soak (seed 1 lost 16 plays this way). A listener with merged plays
stays unpolled for hours (the daemon down, a token revoked), then the sensor peeks: Spotify shows
the latest 50 plays, all newer than the cursor (a full window: the plays before it are a gap,
recorded). The run polls on its own later; the plays that ended in between push the oldest of
the 50 the sensor was shown out of Spotify's window, and the run never sees them. The sensor now
lands such a page in the lake, as received, and hands its path to the run, which merges the
page's plays with its own and records the gap only before the page. Checked as the soak's verdict
checks it (every play of every page the sandbox answered is in the warehouse), on the real
sandbox, the real pipeline into DuckDB and a real Dagster instance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from spotify_assets.deployments import resources_for
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.tables import gaps as gaps_table
from spotify_assets.users.registry import User
from spotify_assets.users.run_history import PARTITION_TAG
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID, materialize_user
from spotify_assets_tests.test_household_runs import PIPELINE_GRAPH, UP_TO_WAREHOUSE, _register, _run
from spotify_assets_tests.test_sensor_first_run import _lost, failed_run
from spotify_assets_tests.test_sensor_minute import _tick
from spotify_sandbox import SandboxServer

#: Long enough for the listener to play far more than Spotify's 50-play window (two days).
SILENT_S = 48 * 3600
#: The run starts this long after its request (the soak's clock: half an hour in tens of seconds).
RUN_DELAY_S = 40 * 60


def _requested_run(
    resources: dict[str, Any], request: dg.RunRequest, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """The run the request asked for: its partition and its run config, as the daemon would launch it."""
    return materialize_user(
        PIPELINE_GRAPH,
        user_id=str(request.partition_key),
        selection=UP_TO_WAREHOUSE,
        resources=resources,
        instance=instance,
        run_config=request.run_config,
        tags={PARTITION_TAG: str(request.partition_key)},
        raise_on_error=False,
    )


def _peek_after_silence(
    instance: dg.DagsterInstance, local_resources: dict[str, Any], sandbox: SandboxServer, alice: User
) -> dg.SensorResult:
    """Alice's first run merged, then hours unpolled (more than a window of plays ends): the
    sensor's tick that peeks at her full window and requests one run."""
    instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
    first = _tick(instance, None, _sensor_resources(local_resources))
    assert _run(local_resources, alice, instance).success
    sandbox.advance(SILENT_S)
    peek = _tick(instance, first.cursor, _sensor_resources(local_resources))
    assert len(peek.run_requests or []) == 1, peek.skip_reason
    return peek


def _sensor_resources(resources: dict[str, Any]) -> dict[str, Any]:
    return {"spotify": resources["spotify"], "lake": resources["lake"]}


def test_a_full_peeks_plays_are_merged_though_gone_from_the_window_when_the_run_polls(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    warehouse = local_resources["warehouse"]
    with dg.instance_for_test() as instance:
        (request,) = (
            _peek_after_silence(instance, local_resources, pipeline_sandbox, alice).run_requests or []
        )
        # The run starts later: plays end meanwhile and push the peek's oldest out of the window.
        pipeline_sandbox.advance(RUN_DELAY_S)
        result = _requested_run(local_resources, request, instance)
        assert result.success
        assert _lost(pipeline_sandbox, warehouse, "alice", alice.user_id) == []
        # One gap, before the page the sensor was shown (not before the run's later window).
        shown = pipeline_sandbox.shown_at()[alice.user_id]
        peeked_at = max(ms for ms in shown if ms < max(shown))
        peek_page = pipeline_sandbox.listener_for("alice").recent(peeked_at)
        gaps = gaps_table.open_gaps(warehouse)
        assert len(gaps) == 1, gaps
        assert pd.Timestamp(gaps["gap_end"].iloc[0]) == pd.Timestamp(
            min(p.played_at_ms for p in peek_page), unit="ms", tz="UTC"
        )


def test_the_retry_of_a_failed_run_still_carries_the_full_peeks_page(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path, monkeypatch: Any
) -> None:
    from spotify_assets import sensors

    monkeypatch.setattr(sensors, "POLL_INTERVAL_S", 0)  # the retry's wait is not what is tested
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    with dg.instance_for_test() as instance:
        peek = _peek_after_silence(instance, local_resources, pipeline_sandbox, alice)
        (request,) = peek.run_requests or []
        # That run failed before it merged (its worker killed): recorded with the request's config.
        failed_run(instance, alice.user_id, request.run_config)
        pipeline_sandbox.advance(RUN_DELAY_S)
        again = _tick(instance, peek.cursor, _sensor_resources(local_resources))
        (retry,) = again.run_requests or []
        pipeline_sandbox.advance(RUN_DELAY_S)
        assert _requested_run(local_resources, retry, instance).success
        assert _lost(pipeline_sandbox, local_resources["warehouse"], "alice", alice.user_id) == []


def test_in_cloud_mode_the_page_is_handed_through_the_bucket_and_the_gap_lands_in_bigquery(
    cloud_env: dict[str, str], pipeline_sandbox: SandboxServer
) -> None:
    """The same promise with ``SPOTIFY_DEPLOYMENT=cloud``'s resources as ``definitions.py`` builds
    them: the sensor lands the page in the GCS emulator, the run reads it back from there and records
    its gap in the BigQuery emulator (the single listener of the token store)."""
    resources = resources_for()
    warehouse = resources["warehouse"].process_config_and_initialize()
    with dg.instance_for_test() as instance:
        assert materialize_user(
            PIPELINE_GRAPH, selection=UP_TO_WAREHOUSE, resources=resources, instance=instance
        ).success
        pipeline_sandbox.advance(SILENT_S)
        peek = _tick(instance, None, _sensor_resources(resources))
        (request,) = peek.run_requests or []
        assert "gs://" not in str(request.run_config)  # a lake path, read through the lake resource
        pipeline_sandbox.advance(RUN_DELAY_S)
        assert _requested_run(resources, request, instance).success
        assert _lost(pipeline_sandbox, warehouse, DEFAULT_USER_ID, DEFAULT_USER_ID) == []
        assert len(gaps_table.open_gaps(warehouse)) == 1


def test_a_peek_that_was_not_full_still_counts_when_its_run_is_held_back_for_hours(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """The 168-hour soak's seed 2 lost 9 plays so: the sensor peeked at a few new plays, then a 429
    storm failed the runs at once until it ended, hours later, by when those plays had left the
    window. Only the stretch between the peek's newest and the run's oldest is a gap."""
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    warehouse = local_resources["warehouse"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        first = _tick(instance, None, _sensor_resources(local_resources))
        assert _run(local_resources, alice, instance).success
        pipeline_sandbox.advance(3600)  # a few plays: a page that is not full
        peek = _tick(instance, first.cursor, _sensor_resources(local_resources))
        (request,) = peek.run_requests or []
        pipeline_sandbox.advance(SILENT_S)  # the run held back: far more than a window of plays
        assert _requested_run(local_resources, request, instance).success
        assert _lost(pipeline_sandbox, warehouse, "alice", alice.user_id) == []
        gaps = gaps_table.open_gaps(warehouse)
        assert len(gaps) == 1, gaps
        shown = pipeline_sandbox.shown_at()[alice.user_id]
        peeked_at = max(ms for ms in shown if ms < max(shown))
        newest_peeked = max(p.played_at_ms for p in pipeline_sandbox.listener_for("alice").recent(peeked_at))
        assert pd.Timestamp(gaps["gap_start"].iloc[0]) == pd.Timestamp(newest_peeked, unit="ms", tz="UTC")


def test_the_retry_carries_the_page_a_failed_run_landed_itself(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path, monkeypatch: Any
) -> None:
    """The 168-hour soak's seed 1 lost 14 plays so: a run polled and landed its page, its worker was
    killed in the lake step before the merge, and its retry polled hours later (the soak's clock),
    by when those plays had left the window. The page is named on the run as soon as it lands."""
    from spotify_assets import sensors
    from spotify_assets.assets.ingest import OWN_PAGE_TAG

    monkeypatch.setattr(sensors, "POLL_INTERVAL_S", 0)  # the retry's wait is not what is tested
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        first = _tick(instance, None, _sensor_resources(local_resources))
        assert _run(local_resources, alice, instance).success
        pipeline_sandbox.advance(3600)
        # The run's first step polls and lands its page; the run then dies before the merge.
        landed = materialize_user(
            PIPELINE_GRAPH,
            user_id=alice.user_id,
            selection=["raw_recent_tracks"],
            resources=local_resources,
            instance=instance,
        )
        own = landed.dagster_run.tags[OWN_PAGE_TAG]
        failed_run(instance, alice.user_id, tags={OWN_PAGE_TAG: own})
        pipeline_sandbox.advance(SILENT_S)  # the retry comes hours later
        again = _tick(instance, first.cursor, _sensor_resources(local_resources))
        (retry,) = again.run_requests or []
        assert _requested_run(local_resources, retry, instance).success
        assert _lost(pipeline_sandbox, local_resources["warehouse"], "alice", alice.user_id) == []
