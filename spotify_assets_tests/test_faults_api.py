"""Spotify API faults injected into real runs: each run either succeeds with the exact plays or
fails with a message that says what happened, and the next run after the fault clears loads
exactly the plays the sandbox's ground truth holds (no loss, no duplicate).

All runs are ``dg.materialize`` of raw_recent_tracks -> audio_features -> gcs_csv -> bq_plays
on the real local resources (DuckDB file, lake folder) against a sandbox on loopback.
"""

from __future__ import annotations

from pathlib import Path

from spotify_assets.assets import PIPELINE_ASSETS
from spotify_assets_tests.fixtures.faults import (
    RECENTLY_PLAYED,
    BuildResources,
    failed_steps,
    failure_text,
    lake_files,
    play_keys,
    run_assets,
    step_meta,
    truth_keys,
)
from spotify_sandbox.server import SandboxServer

UPSTREAM_OF_SPARK = PIPELINE_ASSETS[:4]


def _recover(build: BuildResources, sandbox: SandboxServer) -> None:
    """With the fault cleared, a normal run completes and the warehouse holds exactly the 50 plays
    the API shows (the first run of an empty warehouse)."""
    sandbox.clear_faults()
    resources = build()
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    keys = play_keys(resources)
    assert len(keys) == 50
    assert keys == truth_keys(sandbox.recently_played_truth())


def test_429_storm_with_long_retry_after_fails_clearly_and_leaves_warehouse_as_it_was(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """Retry-After (1 h) beyond max_retry_wait_s: the run stops at once instead of stalling,
    says "rate-limited ... Retry-After", and nothing downstream runs, so the warehouse keeps
    its previous 50 plays and the lake gets no half batch. The next run catches up exactly."""
    resources = fault_resources()
    assert run_assets(resources, UPSTREAM_OF_SPARK).success
    assert len(play_keys(resources)) == 50
    files_before = lake_files(data_dir)
    before = pipeline_sandbox.now()
    pipeline_sandbox.advance(3 * 3600)
    new = pipeline_sandbox.plays_between(before, pipeline_sandbox.now())
    assert 0 < len(new) <= 50

    pipeline_sandbox.fail_next(429, count=100, path=RECENTLY_PLAYED, retry_after=3600)
    failed = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert not failed.success
    assert failed_steps(failed) == ["raw_recent_tracks"]
    text = failure_text(failed)
    assert "rate-limited" in text and "Retry-After" in text and "3600" in text
    assert len(play_keys(resources)) == 50
    assert lake_files(data_dir) == files_before
    # One request: a 1 h Retry-After is not waited for, nor retried.
    assert pipeline_sandbox.stats()["requests"][f"GET {RECENTLY_PLAYED}"] == 2

    # Spotify's limits are per app: within the hour the next run (any listener's) does not call
    # it at all, although the sandbox would answer now (rate_gate.py).
    pipeline_sandbox.clear_faults()
    held = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert not held.success
    assert "rate-limited this app (recently_played)" in failure_text(held)
    assert pipeline_sandbox.stats()["requests"][f"GET {RECENTLY_PLAYED}"] == 2
    gates = list((data_dir / "state").glob("spotify-rate-limit-*.json"))
    assert len(gates) == 1 and "sandbox" not in gates[0].read_text()  # the endpoint, not whose

    for gate in gates:  # an hour later
        gate.unlink()
    result = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert step_meta(result, "bq_plays")["plays_inserted"] == len(new)
    assert len(play_keys(resources)) == 50 + len(new)
    assert truth_keys(new) <= play_keys(resources)


def test_5xx_within_retries_succeeds_with_exact_count(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.fail_next(503, count=2, path=RECENTLY_PLAYED)
    resources = fault_resources(max_retries=2)
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert step_meta(result, "raw_recent_tracks")["api_calls"]["recently_played"] == 3
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())


def test_5xx_beyond_retries_fails_clearly_then_recovers(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    pipeline_sandbox.fail_next(500, count=3, path=RECENTLY_PLAYED)
    resources = fault_resources(max_retries=2)
    failed = run_assets(resources, UPSTREAM_OF_SPARK)
    assert not failed.success
    text = failure_text(failed)
    assert "HTTP 500" in text and "gave up after 3 attempts" in text
    assert resources["warehouse"].count("bq_plays") == 0
    assert not (data_dir / "lake" / "plays").exists()
    _recover(fault_resources, pipeline_sandbox)


def test_one_timeout_is_retried_to_success(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.delay(6.0, count=1, path=RECENTLY_PLAYED)
    resources = fault_resources(timeout_s=1.5, max_retries=2)
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert step_meta(result, "raw_recent_tracks")["api_calls"]["recently_played"] == 2
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())


def test_persistent_timeouts_fail_clearly_then_recover(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.delay(6.0, count=None, path=RECENTLY_PLAYED)
    resources = fault_resources(timeout_s=1.5, max_retries=1)
    failed = run_assets(resources, UPSTREAM_OF_SPARK)
    assert not failed.success
    text = failure_text(failed)
    assert "timed out after 1.5 s" in text and "gave up after 2 attempts" in text
    assert resources["warehouse"].count("bq_plays") == 0
    _recover(fault_resources, pipeline_sandbox)


def test_one_truncated_body_is_retried_to_success(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.malformed_next(1, path=RECENTLY_PLAYED)
    resources = fault_resources()
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert step_meta(result, "raw_recent_tracks")["api_calls"]["recently_played"] == 2
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())


def test_truncated_token_answer_is_retried_to_success(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.malformed_next(1, path="/api/token")
    resources = fault_resources()
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert len(play_keys(resources)) == 50


def test_truncated_bodies_beyond_retries_fail_clearly_then_recover(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.malformed_next(3, path=RECENTLY_PLAYED)
    resources = fault_resources(max_retries=2)
    failed = run_assets(resources, UPSTREAM_OF_SPARK)
    assert not failed.success
    text = failure_text(failed)
    assert "malformed JSON" in text and "gave up after 3 attempts" in text
    assert resources["warehouse"].count("bq_plays") == 0
    _recover(fault_resources, pipeline_sandbox)


def test_unknown_refresh_token_fails_with_rerun_auth_hint(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    revoked = "sbx-rt-revoked-" + "x" * 24
    assert not pipeline_sandbox.is_refresh_token_valid(revoked)
    resources = fault_resources(refresh_token=revoked)
    failed = run_assets(resources, UPSTREAM_OF_SPARK)
    assert not failed.success
    assert failed_steps(failed) == ["raw_recent_tracks"]
    text = failure_text(failed)
    assert "invalid_grant" in text and "spotify-assets auth" in text
    assert revoked not in text
    assert resources["warehouse"].count("bq_plays") == 0
    # With a token the sandbox knows, the same data dir loads everything.
    result = run_assets(
        fault_resources(refresh_token=pipeline_sandbox.issue_refresh_token()), UPSTREAM_OF_SPARK
    )
    assert result.success, failure_text(result)
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())
