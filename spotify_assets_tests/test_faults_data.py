"""Data-integrity faults: a crash between lake and warehouse, overlapping runs, a damaged lake
file, and audio-features providers failing. Every test ends with the exact play count."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from spotify_assets.assets import PIPELINE_ASSETS
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.faults import (
    BuildResources,
    failed_steps,
    failure_text,
    lake_files,
    play_keys,
    run_assets,
    step_meta,
    truth_keys,
)
from spotify_assets_tests.fixtures.partitions import add_partition_to_home
from spotify_sandbox.reccobeats import is_analysed
from spotify_sandbox.server import SandboxServer

UPSTREAM_OF_SPARK = PIPELINE_ASSETS[:-1]  # everything but top_ten_tracks
DAGSTER = str(Path(sys.executable).with_name("dagster"))


# -- a crash after the lake write, before the warehouse write -----------------------------------


def test_lake_landed_but_warehouse_not_written_is_completed_exactly_once(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """A run that stops after gcs_csv (here: a selection that ends there) left the batch in the
    lake and nothing in the warehouse. The cursor comes from the warehouse, so the next run
    fetches the same plays; the lake keeps the first landing (same play keys -> same path) and
    the merge loads each play once."""
    resources = fault_resources()
    assert run_assets(resources, PIPELINE_ASSETS[:3]).success
    landed = lake_files(data_dir, "plays")
    assert landed and resources["warehouse"].count("bq_plays") == 0

    result = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert step_meta(result, "bq_plays")["plays_inserted"] == 50
    assert lake_files(data_dir, "plays") == landed
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())
    # And again: nothing new, nothing doubled.
    assert run_assets(fault_resources(), UPSTREAM_OF_SPARK).success
    assert len(play_keys(resources)) == 50


def test_sigkill_while_bq_plays_waits_then_next_run_loads_batch_once(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, data_dir: Path, tmp_path: Path
) -> None:
    """A real ``dagster asset materialize`` process is SIGKILLed at a known point: the test holds
    the warehouse writer lock (the flock writers serialise on), so the run lands the batch in
    the lake and then blocks in bq_plays; the kill comes once the lake has the batch. The next
    run completes the batch exactly once."""
    resources = fault_resources()
    warehouse = resources["warehouse"]
    assert plays_table.max_played_at(warehouse) is None  # creates the empty warehouse and its snapshot
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "SPOTIFY_DATA_DIR": str(data_dir),
        "SPOTIFY_SANDBOX_URL": pipeline_sandbox.url,
        "DAGSTER_HOME": str(home),
    }
    env.pop("SPOTIFY_CLIENT_ID", None)
    cmd = [DAGSTER, "asset", "materialize", "-m", "spotify_assets.definitions", "--select"]
    cmd += ["raw_recent_tracks,audio_features,gcs_csv,bq_plays", *add_partition_to_home(home)]
    lock_path = Path(warehouse.path).with_suffix(".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while not any(f.endswith(".parquet") for f in lake_files(data_dir, "plays")):
                assert proc.poll() is None, proc.communicate()[0][-3000:]
                assert time.monotonic() < deadline, "the run never landed its batch"
                time.sleep(0.1)
            # Let gcs_csv finish its remaining files (csv, features) before the kill.
            while not lake_files(data_dir, "track_features") or not lake_files(data_dir, "plays_csv"):
                assert proc.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert warehouse.count("bq_plays") == 0
    landed = lake_files(data_dir, "plays")

    result = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert step_meta(result, "bq_plays")["plays_inserted"] == 50
    assert lake_files(data_dir, "plays") == landed
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())


# -- overlapping runs ---------------------------------------------------------------------------


def test_two_concurrent_in_process_runs_load_each_play_once(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    """Two runs at once on one data dir (threads here; test_cli_materialize does processes).
    Why no duplicate: the merge is an idempotent INSERT OR IGNORE on play_key, writers
    serialise on a flock next to the DuckDB file, and the lake accepts a second landing of the
    same plays. Both runs must succeed, and the warehouse holds each of the 50 plays once."""
    results: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        resources = fault_resources()
        barrier.wait()
        results[i] = run_assets(resources, UPSTREAM_OF_SPARK)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for r in results:
        assert r is not None and r.success, failure_text(r) if r is not None else "thread did not finish"
    inserted = [step_meta(r, "bq_plays")["plays_inserted"] for r in results]
    assert sorted(inserted) == [0, 50]
    assert play_keys(fault_resources()) == truth_keys(pipeline_sandbox.recently_played_truth())


# -- a damaged lake -----------------------------------------------------------------------------


def test_stray_temp_file_in_the_lake_is_ignored(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """A ``.tmp-`` file is what a writer killed mid-write leaves (writes go to a temp file, then
    a create-only link). Readers never list them and the writer never reuses the name, so a
    run next to one loads exactly the batch, and the stray file is left for cleanup."""
    resources = fault_resources()
    day = pipeline_sandbox.recently_played_truth()[0]["played_at"][:10]
    stray_dir = data_dir / "lake" / "plays" / f"played_date={day}"
    stray_dir.mkdir(parents=True)
    (stray_dir / ".tmp-killed").write_bytes(b"PAR1 half a parquet")
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert resources["lake"].list("plays") and all(".tmp-" not in p for p in resources["lake"].list("plays"))
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())


def test_corrupt_lake_batch_file_fails_loudly_never_drops_plays_then_recovers(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """The lake is create-only, so a batch file damaged after landing (disk fault, hand edit)
    blocks that batch: the next run refuses to land over it and fails naming the file
    (never a silent skip of those plays, never a success with fewer plays). Removing the
    damaged file lets the next run land and load the batch exactly once."""
    resources = fault_resources()
    assert run_assets(resources, PIPELINE_ASSETS[:3]).success  # landed, not loaded
    parquets = [p for p in lake_files(data_dir, "plays") if p.endswith(".parquet")]
    victim = data_dir / "lake" / parquets[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])

    failed = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert not failed.success
    assert failed_steps(failed) == ["gcs_csv"]
    assert resources["warehouse"].count("bq_plays") == 0

    victim.unlink()
    result = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    assert pq.read_table(victim).num_rows > 0
    assert play_keys(resources) == truth_keys(pipeline_sandbox.recently_played_truth())


def test_corrupt_lake_batch_file_error_names_the_file(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    """The failure's own message (not a chained context) tells the operator which lake file
    is unreadable, so they know what to inspect or remove."""
    resources = fault_resources()
    assert run_assets(resources, PIPELINE_ASSETS[:3]).success
    parquets = [p for p in lake_files(data_dir, "plays") if p.endswith(".parquet")]
    victim = data_dir / "lake" / parquets[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    failed = run_assets(fault_resources(), UPSTREAM_OF_SPARK)
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    assert error is not None and error.cause is not None
    assert victim.name in error.cause.message


# -- audio features: never fail the run ---------------------------------------------------------


def _features(resources: dict[str, Any]) -> dict[str, str]:
    rows = resources["warehouse"].query("SELECT track_id, status FROM track_features")
    return dict(zip(rows["track_id"], rows["status"], strict=True))


def test_spotify_403_records_unavailable_and_points_to_reccobeats(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.configure(audio_features_forbidden=True)
    resources = fault_resources()
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    meta = step_meta(result, "audio_features")
    assert "reccobeats" in meta["note"].lower() and meta["features_available"] is False
    truth = pipeline_sandbox.recently_played_truth()
    tracks = {i["track"]["id"] for i in truth}
    assert _features(resources) == dict.fromkeys(tracks, "unavailable")
    assert play_keys(resources) == truth_keys(truth)


def test_reccobeats_provider_ok_for_known_not_found_for_unknown(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    """Against the sandbox's ReccoBeats emulation: analysed tracks come back ``ok`` with the
    catalogue's values, the others are absent from the answer and recorded ``not_found``."""
    pipeline_sandbox.configure(audio_features_forbidden=True)  # Spotify must not be asked
    resources = fault_resources(provider="reccobeats")
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    truth = pipeline_sandbox.recently_played_truth()
    tracks = {i["track"]["id"] for i in truth}
    expected = {t: "ok" if is_analysed(pipeline_sandbox.catalogue, t) else "not_found" for t in tracks}
    assert set(expected.values()) == {"ok", "not_found"}, "the seed should give both outcomes"
    assert _features(resources) == expected
    some_ok = next(t for t, s in expected.items() if s == "ok")
    row = (
        resources["warehouse"]
        .query(f"SELECT energy, tempo FROM track_features WHERE track_id = '{some_ok}'")
        .iloc[0]
    )
    catalogue = pipeline_sandbox.catalogue.audio_features_by_id[some_ok]
    assert (row["energy"], row["tempo"]) == (catalogue["energy"], catalogue["tempo"])
    assert pipeline_sandbox.stats()["requests"].get("GET /v1/audio-features", 0) == 0
    assert play_keys(resources) == truth_keys(truth)


def test_reccobeats_429_storm_never_fails_the_run_and_next_run_fills_features(
    fault_resources: BuildResources, pipeline_sandbox: SandboxServer
) -> None:
    pipeline_sandbox.fail_next(429, count=100, path="/reccobeats/*", retry_after=3600)
    resources = fault_resources(provider="reccobeats")
    result = run_assets(resources, UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    meta = step_meta(result, "audio_features")
    assert "429" in meta["note"] and meta["features_available"] is False
    first = pipeline_sandbox.recently_played_truth()
    first_tracks = {i["track"]["id"] for i in first}
    assert _features(resources) == dict.fromkeys(first_tracks, "unavailable")
    assert play_keys(resources) == truth_keys(first)

    pipeline_sandbox.clear_faults()
    before = pipeline_sandbox.now()
    pipeline_sandbox.advance(6 * 3600)
    new = pipeline_sandbox.plays_between(before, pipeline_sandbox.now())
    assert 0 < len(new) <= 50
    result = run_assets(fault_resources(provider="reccobeats"), UPSTREAM_OF_SPARK)
    assert result.success, failure_text(result)
    new_tracks = {i["track"]["id"] for i in new}
    status = _features(resources)
    for track in new_tracks:
        assert status[track] == ("ok" if is_analysed(pipeline_sandbox.catalogue, track) else "not_found")
    refilled = first_tracks & new_tracks
    assert refilled, "the second batch should replay some tracks of the first"
    for track in first_tracks - new_tracks:
        assert status[track] == "unavailable"
    assert len(play_keys(resources)) == 50 + len(new)
