"""Ingest that no answer from the API can break (issue 9), each against the sandbox over real HTTP.

Junk items inside the window go to quarantine while the rest of the page is stored; a gap is
judged from the raw window even when local files or episodes fill part of it; rotated refresh
tokens survive from one CLI process to the next in every mode; the live client reaches any
server by configuration; a failed demo says why; an HTML page is called an HTML page.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.settings import sandbox_token_path
from spotify_assets.spotify.client import HttpSpotifyClient, played_at_ms
from spotify_assets.spotify.errors import SpotifyServerError
from spotify_assets.tables import gaps as gaps_table
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.partitions import DEFAULT_USER_ID, add_partition_to_home, materialize_user
from spotify_assets_tests.fixtures.sandbox import SleepRecorder
from spotify_assets_tests.test_auth_command import free_port
from spotify_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    SandboxServer,
)

RP = "/v1/me/player/recently-played"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
UPSTREAM_OF_SPARK = PIPELINE_ASSETS[:4]
#: The README's documented CLI selection of the pipeline (the schedule's six assets, nothing on demand).
PIPELINE_SELECTION = "raw_recent_tracks,audio_features,gcs_csv,bq_plays,track_features,top_ten_tracks"

#: One of each kind of item the client cannot read or normalization must refuse, with its reason.
JUNK = {
    3: ("missing_played_at", "missing played_at"),
    9: ("unparseable_played_at", "unparseable played_at"),
    17: ("track_not_object", "missing track object"),
    25: ("unknown_type", "unknown item type 'audiobook_chapter'"),
    33: ("not_object", "item is not an object"),
    41: ("null_id", "null track id"),
}


def _meta(result: dg.ExecuteInProcessResult, step: str) -> dict[str, Any]:
    (event,) = result.asset_materializations_for_node(step)
    return {k: v.value for k, v in event.metadata.items()}


def _quarantine_reasons(lake: Path) -> list[str]:
    return sorted(
        json.loads(line)["reason"]
        for f in (lake / "quarantine").rglob("*.jsonl")
        for line in f.read_text().splitlines()
    )


# -- the client ----------------------------------------------------------------------------------------


def test_client_keeps_unreadable_items_for_quarantine_instead_of_failing(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient
) -> None:
    sandbox.corrupt_items({pos: kind for pos, (kind, _) in JUNK.items()})
    truth = sandbox.recently_played_truth()
    window = sandbox_client.recently_played_window()
    assert window.raw_items == 50 and len(window.items) == 50
    unreadable = {"missing_played_at", "unparseable_played_at", "not_object"}
    readable_positions = [n for n in range(50) if JUNK.get(n, ("",))[0] not in unreadable]
    # Readable items keep their newest-first order; the three unreadable ones come last.
    assert [played_at_ms(i) for i in window.items[:47]] == [
        played_at_ms(truth[n]) for n in readable_positions
    ]
    assert all(played_at_ms(i) is None for i in window.items[47:])
    assert window.oldest_ms == played_at_ms(truth[49])


def test_an_html_page_with_status_200_is_named_with_its_url(
    sandbox: SandboxServer, sandbox_client: HttpSpotifyClient, sleep_recorder: SleepRecorder
) -> None:
    sandbox.html_next(count=1, path=RP)
    assert len(sandbox_client.recently_played()) == 50  # one page of HTML is retried
    assert sleep_recorder.waits == [0.5]
    sandbox.html_next(count=100, path=RP)
    with pytest.raises(SpotifyServerError) as err:
        sandbox_client.recently_played()
    message = str(err.value)
    assert f"an HTML page instead of JSON (HTTP 200, text/html) from {sandbox.api_url}{RP}" in message
    assert "malformed JSON" not in message


# -- the pipeline --------------------------------------------------------------------------------------


def test_junk_items_are_quarantined_with_reasons_and_the_rest_is_stored(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    pipeline_sandbox.corrupt_items({pos: kind for pos, (kind, _) in JUNK.items()})
    truth = pipeline_sandbox.recently_played_truth()
    result = materialize_user(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=local_resources)
    assert result.success
    meta = _meta(result, "raw_recent_tracks")
    assert meta["items_returned"] == 50
    assert meta["quarantined"] == len(JUNK)
    assert meta["new_plays"] == 50 - len(JUNK)
    assert meta["quarantine_reasons"] == {reason: 1 for _, reason in JUNK.values()}
    warehouse = local_resources["warehouse"]
    stored = set(
        warehouse.query("SELECT played_at, track_id FROM bq_plays").itertuples(index=False, name=None)
    )
    expected = {
        (pd.Timestamp(item["played_at"]), item["track"]["id"])
        for n, item in enumerate(truth)
        if n not in JUNK
    }
    assert stored == expected
    assert _quarantine_reasons(data_dir / "lake") == sorted(reason for _, reason in JUNK.values())


def test_a_gap_is_found_when_local_files_and_episodes_fill_part_of_the_window(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    warehouse = local_resources["warehouse"]
    assert materialize_user(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=local_resources).success
    cursor = plays_table.max_played_at(warehouse)
    pipeline_sandbox.advance(4 * 3600)
    between = pipeline_sandbox.plays_between(cursor, pipeline_sandbox.now())
    assert len(between) < 50  # no gap yet: the window reaches back past the cursor
    pipeline_sandbox.corrupt_items({0: "local", 1: "local", 2: "episode"})
    quiet = materialize_user(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=local_resources)
    assert _meta(quiet, "raw_recent_tracks")["possible_gap"] is False
    assert gaps_table.open_gaps(warehouse).empty

    cursor = plays_table.max_played_at(warehouse)
    pipeline_sandbox.advance(36 * 3600)  # far more than 50 plays: the window cannot reach the cursor
    missed = pipeline_sandbox.plays_between(cursor, pipeline_sandbox.now())
    assert len(missed) > 60
    pipeline_sandbox.corrupt_items({5: "local", 20: "local", 44: "episode"})
    result = materialize_user(PIPELINE_GRAPH, selection=UPSTREAM_OF_SPARK, resources=local_resources)
    meta = _meta(result, "raw_recent_tracks")
    assert (meta["items_returned"], meta["new_plays"], meta["quarantined"]) == (50, 47, 3)
    assert meta["possible_gap"] is True
    gaps = gaps_table.open_gaps(warehouse)
    assert len(gaps) == 1
    assert gaps["gap_start"].iloc[0] == pd.Timestamp(cursor)
    # The gap ends at the oldest item the API showed, episode or not.
    oldest_shown = pd.Timestamp(pipeline_sandbox.recently_played_truth()[-1]["played_at"])
    assert pd.Timestamp(gaps["gap_end"].iloc[0]) == oldest_shown


def test_the_sensor_ignores_unreadable_items_when_moving_its_cursor(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer
) -> None:
    from spotify_assets.sensors import new_plays_sensor

    pipeline_sandbox.corrupt_items({0: "missing_played_at", 1: "not_object"})
    truth = pipeline_sandbox.recently_played_truth()
    with dg.build_sensor_context(
        resources={"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    ) as ctx:
        result = new_plays_sensor(ctx)
    assert isinstance(result, dg.SensorResult) and result.run_requests
    assert json.loads(result.cursor or "") == {DEFAULT_USER_ID: played_at_ms(truth[2])}


# -- configuration across processes -------------------------------------------------------------------


def _cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIFY_")}
    env.update({"SPOTIFY_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "home"), **extra})
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _materialize(env: dict[str, str], cwd: Path, selection: str) -> str:
    partition = add_partition_to_home(Path(env["DAGSTER_HOME"]))
    proc = subprocess.run(
        [
            DAGSTER,
            "asset",
            "materialize",
            "-m",
            "spotify_assets.definitions",
            "--select",
            selection,
            *partition,
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def _assert_rotation_persisted(sandbox: SandboxServer, token_file: Path) -> None:
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())["refresh_token"]
    assert stored != SANDBOX_REFRESH_TOKEN
    assert sandbox.is_refresh_token_valid(stored)
    assert not sandbox.is_refresh_token_valid(SANDBOX_REFRESH_TOKEN)  # rotated away after the first run


def test_rotated_sandbox_tokens_survive_between_cli_processes(
    tmp_path: Path, pipeline_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline_sandbox.configure(rotate_refresh_tokens=True)
    env = _cli_env(tmp_path, SPOTIFY_SANDBOX_URL=pipeline_sandbox.url)
    _materialize(env, tmp_path, "raw_recent_tracks")
    pipeline_sandbox.advance(3600)
    _materialize(env, tmp_path, "raw_recent_tracks")  # failed with invalid_grant when kept in memory
    assert pipeline_sandbox.stats()["grant_types"] == {"refresh_token": 2}
    monkeypatch.setenv("SPOTIFY_DATA_DIR", env["SPOTIFY_DATA_DIR"])
    _assert_rotation_persisted(pipeline_sandbox, sandbox_token_path(pipeline_sandbox.url))


def test_live_client_reaches_any_server_by_configuration_and_keeps_rotation(
    tmp_path: Path, pipeline_sandbox: SandboxServer
) -> None:
    """Real-credentials mode pointed at a compatible server: recently-played *and* audio features go
    there (the features resource's client included), and a rotated token lands in SPOTIFY_TOKEN_FILE."""
    pipeline_sandbox.configure(rotate_refresh_tokens=True)
    token_file = tmp_path / "secrets" / "token.json"
    env = _cli_env(
        tmp_path,
        SPOTIFY_CLIENT_ID=SANDBOX_CLIENT_ID,
        SPOTIFY_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        SPOTIFY_REFRESH_TOKEN=SANDBOX_REFRESH_TOKEN,
        SPOTIFY_TOKEN_FILE=str(token_file),
        SPOTIFY_API_URL=pipeline_sandbox.api_url,
        SPOTIFY_ACCOUNTS_URL=pipeline_sandbox.accounts_url,
    )
    newest = pipeline_sandbox.recently_played_truth()[0]["played_at"]
    _materialize(env, tmp_path, "raw_recent_tracks,audio_features,gcs_csv,bq_plays")
    pipeline_sandbox.advance(3600)
    _materialize(env, tmp_path, "raw_recent_tracks,audio_features,gcs_csv,bq_plays")
    stats = pipeline_sandbox.stats()
    assert stats["grant_types"] == {"refresh_token": 2, "client_credentials": 2}
    assert stats["requests"]["GET /v1/audio-features"] == 2
    _assert_rotation_persisted(pipeline_sandbox, token_file)
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "data" / "warehouse.duckdb"))
    assert warehouse.count("bq_plays") == 50 + len(
        pipeline_sandbox.plays_between(newest, pipeline_sandbox.now())
    )


def test_auth_command_takes_the_accounts_server_from_the_environment(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    env = _cli_env(
        tmp_path,
        SPOTIFY_CLIENT_ID=SANDBOX_CLIENT_ID,
        SPOTIFY_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        SPOTIFY_ACCOUNTS_URL=sandbox.accounts_url,
        SPOTIFY_TOKEN_FILE=str(tmp_path / "token.json"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotify_assets.cli", "auth", "--no-browser", "--timeout", "30",
         "--redirect-uri", f"http://127.0.0.1:{free_port()}/callback"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "/authorize?" in line:
                assert line.strip().startswith(f"{sandbox.accounts_url}/authorize?")
                break
        else:
            raise AssertionError("no authorize URL printed")
    finally:
        proc.kill()
        proc.wait()


def test_demo_reports_a_failed_run_with_its_cause(tmp_path: Path) -> None:
    with SandboxServer(client_secret="not-the-projects-secret") as wrong:
        proc = subprocess.run(
            [sys.executable, "-m", "spotify_assets.cli", "demo"],
            env=_cli_env(tmp_path, SPOTIFY_SANDBOX_URL=wrong.url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "CheckError" not in proc.stderr
    # The first call is the listener's partition (whose token is it, GET /v1/me), before any run.
    assert "Could not ask Spotify whose the stored token is (GET /v1/me): " in proc.stderr
    assert "invalid_client" in proc.stderr
    assert "run `make demo` again" in proc.stderr


def test_documented_pipeline_selection_is_the_six_assets_not_the_backfill(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"--partition {DEFAULT_USER_ID} --select {PIPELINE_SELECTION}\n" in readme
    proc = subprocess.run(
        [DAGSTER, "asset", "list", "-m", "spotify_assets.definitions", "--select", PIPELINE_SELECTION],
        env=_cli_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = sorted(line.strip() for line in proc.stdout.splitlines() if line.strip())
    assert listed == sorted(a.key.to_user_string() for a in PIPELINE_ASSETS)
    assert "audio_features_backfill" not in listed and "history_import" not in listed
