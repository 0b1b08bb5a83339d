"""Every variable of the README's configuration table: set it, build the resources the way
``definitions.py`` does (``resources_for()``), run something, and observe the effect.

``SPOTIFY_DATA_DIR``'s default is covered in ``test_import_command.py`` (from a directory
outside the repo); ``spotify-assets demo`` itself runs at the end of this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from google.cloud import storage

from spotify_assets.assets.ingest import audio_features, raw_recent_tracks
from spotify_assets.deployments import resources_for
from spotify_assets.resources.features import AudioFeaturesResource
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.spotify import LiveSpotifyResource, SpotifyResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.tables import plays as plays_table
from spotify_assets_tests.fixtures.gcs import GCSEmulator
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN
from spotify_sandbox.constants import DEFAULT_NOW, DEMO_NOW_ENV
from spotify_sandbox.reccobeats import RECCOBEATS_PREFIX
from spotify_sandbox.resource import SandboxSpotifyResource
from spotify_sandbox.server import SandboxServer

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env_sandbox(
    data_dir: Path, pipeline_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    """A sandbox the resources reach through ``SPOTIFY_SANDBOX_URL``, nothing else configured."""
    monkeypatch.setenv("SPOTIFY_SANDBOX_URL", pipeline_sandbox.url)
    for name in ("SPOTIFY_FEATURES_PROVIDER", "SPOTIFY_SPARK_MASTER", "SPOTIFY_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return pipeline_sandbox


def _features_after_one_poll(resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    result = materialize_user([raw_recent_tracks, audio_features], resources=resources)
    assert result.success
    return result


def _statuses(result: dg.ExecuteInProcessResult) -> set[tuple[str, str]]:
    frame = result.output_for_node("audio_features")
    return set(zip(frame["provider"], frame["status"], strict=True))


# -- SPOTIFY_SANDBOX_URL, SPOTIFY_FEATURES_PROVIDER ------------------------------------------------
def test_sandbox_url_is_the_api_the_pipeline_asks(env_sandbox: SandboxServer) -> None:
    resources = resources_for()
    assert isinstance(resources["spotify"], SandboxSpotifyResource)
    _features_after_one_poll(resources)
    assert env_sandbox.stats()["requests"]["GET /v1/me/player/recently-played"] == 1


def test_features_provider_defaults_to_spotify(env_sandbox: SandboxServer) -> None:
    resources = resources_for()
    assert resources["features"].provider == "spotify"
    assert _statuses(_features_after_one_poll(resources)) == {("spotify", "ok")}
    assert any(k.startswith("GET /v1/audio-features") for k in env_sandbox.stats()["requests"])


def test_features_provider_none_asks_no_one_and_records_unavailable(
    env_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTIFY_FEATURES_PROVIDER", "none")
    result = _features_after_one_poll(resources_for())
    assert _statuses(result) == {("none", "unavailable")}
    (event,) = result.asset_materializations_for_node("audio_features")
    assert "switched off (SPOTIFY_FEATURES_PROVIDER=none)" in event.metadata["note"].value
    assert not any("audio-features" in k for k in env_sandbox.stats()["requests"])


def test_features_provider_reccobeats_asks_reccobeats(
    env_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTIFY_FEATURES_PROVIDER", "reccobeats")
    resources = resources_for()
    assert resources["features"].provider == "reccobeats"
    # The provider's real host is on the internet; the sandbox serves its emulation.
    # The provider's real host is on the internet; the sandbox serves its emulation.
    resources["features"] = AudioFeaturesResource(
        spotify=resources["spotify"],
        provider=resources["features"].provider,
        reccobeats_base_url=f"{env_sandbox.url}{RECCOBEATS_PREFIX}",
    )
    statuses = _statuses(_features_after_one_poll(resources))
    assert ("reccobeats", "ok") in statuses and {p for p, _ in statuses} == {"reccobeats"}
    requests = env_sandbox.stats()["requests"]
    assert any(k.startswith(f"GET {RECCOBEATS_PREFIX}/v1/audio-features") for k in requests), requests
    assert not any(k.startswith("GET /v1/audio-features") for k in requests)


# -- SPOTIFY_CLIENT_ID / _SECRET, SPOTIFY_REFRESH_TOKEN, SPOTIFY_TOKEN_FILE -------------------------
def test_credentials_and_token_file_from_the_environment_reach_the_api(
    env_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Credentials set: the live resource, with the id, secret and refresh token resolved from
    the environment by Dagster; the token store is ``$SPOTIFY_TOKEN_FILE``. Only the API's base
    URLs are pointed at the sandbox (which accepts the sandbox's credentials)."""
    token_file = tmp_path / "tokens" / "token.json"
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", SANDBOX_CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", SANDBOX_CLIENT_SECRET)
    monkeypatch.setenv("SPOTIFY_REFRESH_TOKEN", SANDBOX_REFRESH_TOKEN)
    monkeypatch.setenv("SPOTIFY_TOKEN_FILE", str(token_file))
    spotify = resources_for()["spotify"]
    assert type(spotify) is LiveSpotifyResource
    # The fields as built from the environment (Dagster resolves the EnvVars at run time),
    # pointed at the sandbox instead of api.spotify.com.
    spotify = LiveSpotifyResource(
        client_id=spotify.client_id,
        client_secret=spotify.client_secret,
        refresh_token=spotify.refresh_token,
        api_base_url=env_sandbox.url,
        accounts_base_url=env_sandbox.url,
    )

    @dg.asset
    def polled(spotify: SpotifyResource) -> int:
        return len(spotify.get_client().recently_played())

    result = dg.materialize([polled], resources={"spotify": spotify})
    assert result.output_for_node("polled") == 50
    assert env_sandbox.stats()["grant_types"] == {"refresh_token": 1}
    assert json.loads(token_file.read_text())  # the env token seeded the store at $SPOTIFY_TOKEN_FILE
    assert SANDBOX_REFRESH_TOKEN in token_file.read_text()

    monkeypatch.setenv("SPOTIFY_REFRESH_TOKEN", "not-a-token-the-sandbox-issued")
    token_file.unlink()
    failed = dg.materialize([polled], resources={"spotify": spotify}, raise_on_error=False)
    assert not failed.success  # proves the token came from the variable


# -- SPOTIFY_DEPLOYMENT, SPOTIFY_DATA_DIR ----------------------------------------------------------
@dg.asset
def landed(lake: LakeResource) -> str:
    return lake.write_bytes("raw/config-test.bin", b"x").uri


@dg.asset
def handed_to_spark(landed: str, warehouse: WarehouseResource) -> str:
    return plays_table.export_plays_for_spark(warehouse, "unused")


def test_deployment_local_puts_everything_under_the_data_dir(
    env_sandbox: SandboxServer, data_dir: Path
) -> None:
    resources = resources_for()
    assert resources["warehouse"].path == str(data_dir / "warehouse.duckdb")
    result = dg.materialize([landed], resources=resources)
    assert result.output_for_node("landed") == (data_dir / "lake" / "raw" / "config-test.bin").as_uri()
    # The value handed to the next asset: typed JSON under handoff/, beside the lake, per run.
    handoff = data_dir / "handoff" / "landed" / f"{result.run_id}.json"
    assert json.loads(handoff.read_text()) == result.output_for_node("landed")


def test_deployment_cloud_through_resources_for_lands_in_the_bucket(
    env_sandbox: SandboxServer, gcs_emulator: GCSEmulator, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("SPOTIFY_DEPLOYMENT", "cloud")
    monkeypatch.setenv("SPOTIFY_GCP_PROJECT", "test-proj")
    monkeypatch.setenv("SPOTIFY_GCS_BUCKET", gcs_emulator.bucket)
    monkeypatch.setenv("SPOTIFY_BQ_DATASET", "spotify")
    monkeypatch.setenv("SPOTIFY_BQ_STAGING_DATASET", "spotify_staging")
    monkeypatch.delenv("SPOTIFY_GCS_PREFIX", raising=False)
    resources = resources_for()
    assert isinstance(resources["spotify"], SandboxSpotifyResource)  # shared parts unchanged
    result = dg.materialize([landed, handed_to_spark], resources=resources)
    assert result.output_for_node("landed") == f"gs://{gcs_emulator.bucket}/spotify/lake/raw/config-test.bin"
    assert result.output_for_node("handed_to_spark") == "bigquery:test-proj.spotify.bq_plays"
    names = {b.name for b in storage.Client().list_blobs(gcs_emulator.bucket)}
    assert names == {
        "spotify/lake/raw/config-test.bin",
        f"spotify/dagster/landed/{result.run_id}.json",
        f"spotify/dagster/handed_to_spark/{result.run_id}.json",
    }
    assert not data_dir.exists()  # nothing local


# -- SPOTIFY_SPARK_MASTER: SparkResource's own session, in a fresh process ------------------------
SPARK_PROBE = """
import json
from spotify_assets.deployments import resources_for
from spotify_assets.resources.features import AudioFeaturesResource
spark = resources_for()["spark"]
session = spark.get_session()
print(json.dumps({"resource_master": spark.master, "session_master": session.sparkContext.master,
                  "shuffle": session.conf.get("spark.sql.shuffle.partitions")}))
"""


@pytest.mark.spark
def test_spark_master_default_and_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared test session hides ``SparkResource.get_session``'s own path, so it runs here
    in a fresh process: the master comes from ``SPOTIFY_SPARK_MASTER``, with the resource's settings."""
    monkeypatch.delenv("SPOTIFY_SPARK_MASTER", raising=False)
    assert resources_for()["spark"].master == "local[*]"
    env = {**os.environ, "SPOTIFY_SPARK_MASTER": "local[1]", "SPOTIFY_DATA_DIR": str(tmp_path / "data")}
    env.update({"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"})
    proc = subprocess.run(
        [sys.executable, "-c", SPARK_PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"resource_master": "local[1]", "session_master": "local[1]", "shuffle": "4"}


# -- spotify-assets demo ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.spark
def test_demo_runs_the_pipeline_then_a_second_demo_adds_nothing(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPOTIFY_", "DAGSTER_")) or k == "SPOTIFY_TIMEZONE"
    }
    env |= {
        "SPOTIFY_DATA_DIR": str(tmp_path / "data"),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        # The demo's clock, pinned: the two runs see one history even across midnight UTC.
        DEMO_NOW_ENV: DEFAULT_NOW.isoformat(),
    }
    demo = [str(Path(sys.executable).with_name("spotify-assets")), "demo", "--history-days", "3"]
    first = subprocess.run(demo, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    assert "using the sandbox Spotify API" in first.stdout
    assert f"Data directory: {tmp_path / 'data'}" in first.stdout
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource

    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "data" / "warehouse.duckdb"))
    plays = warehouse.count("bq_plays")
    scopes = warehouse.query("SELECT user_id, count(*) AS n FROM top_ten_tracks GROUP BY user_id ORDER BY 1")
    # Everyone's ten and the one listener's own ten, from the one Spark job.
    assert plays > 50 and list(scopes["n"]) == [10, 10] and scopes["user_id"].iloc[0] == "*"
    assert (tmp_path / "data" / "dagster_home").is_dir()

    second = subprocess.run(demo, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert "0 added" in second.stdout
    assert "No new plays: skipped" in second.stdout
    assert warehouse.count("bq_plays") == plays
