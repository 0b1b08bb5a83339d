"""Secrets stay secret: a whole run (all six pipeline assets, Spark included) and a failing run, with
distinctive fake credentials, leave no client secret, refresh token or access token in any
log, event, exception, output or file, except the refresh token in the 0600 token store.

The sandbox is started with the distinctive client id/secret, so the credentials really are
used (a wrong secret would fail with invalid_client); rotation is on, so a rotated refresh
token goes through the token store path too.
"""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.deployments import local_resources
from spotify_assets_tests.fixtures.faults import failure_text, play_keys, truth_keys
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_sandbox.constants import SANDBOX_REFRESH_TOKEN
from spotify_sandbox.resource import SandboxSpotifyResource
from spotify_sandbox.server import SandboxServer

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CLIENT_ID = "secrets-test-client-id-7Q4Z"
CLIENT_SECRET = "S3CRET-client-secret-XKQJ-9v8u7t6s5r4q"
REVOKED_REFRESH_TOKEN = "sbx-rt-REVOKED-refresh-token-PLMN-1a2b3c"


def _run_texts(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> list[str]:
    """Everything Dagster recorded about a run: events, their metadata, the stored event log."""
    texts = [failure_text(result)]
    for event in result.all_events:
        texts += [str(event), repr(event), event.message or ""]
        data = event.event_specific_data
        materialization = getattr(data, "materialization", None)
        if materialization is not None:
            texts += [f"{k}={v.value!r}" for k, v in materialization.metadata.items()]
    for entry in instance.all_logs(result.run_id):
        texts += [repr(entry), entry.user_message or ""]
    return texts


def test_no_secret_leaks_from_a_full_run_and_a_failing_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    spark: SparkSession,
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(data))
    monkeypatch.delenv("SPOTIFY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIFY_DEPLOYMENT", raising=False)
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "config" / "token.json"

    with SandboxServer(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, rotate_refresh_tokens=True
    ) as sandbox:
        refresh_token = sandbox.issue_refresh_token()
        monkeypatch.setenv("SECRETS_TEST_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("SECRETS_TEST_REFRESH_TOKEN", refresh_token)
        spotify = SandboxSpotifyResource(
            url=sandbox.url,
            client_id=CLIENT_ID,
            client_secret=dg.EnvVar("SECRETS_TEST_CLIENT_SECRET"),
            refresh_token=dg.EnvVar("SECRETS_TEST_REFRESH_TOKEN"),
            token_store_path=str(token_file),
            max_retries=2,
        )
        resources = local_resources(spotify)
        # A retried 503 and an expired token make the client log its warning/info paths too.
        sandbox.fail_next(503, count=1, path="/v1/me/player/recently-played")
        texts: list[str] = []
        (data / "dagster_home").mkdir(parents=True)
        with dg.instance_for_test(temp_dir=str(data / "dagster_home")) as instance:
            ok = materialize_user(
                PIPELINE_GRAPH, selection=PIPELINE_ASSETS, resources=resources, instance=instance
            )
            assert ok.success
            assert play_keys(resources) == truth_keys(sandbox.recently_played_truth())
            texts += _run_texts(ok, instance)

            sandbox.advance(3600)
            bad = SandboxSpotifyResource(
                url=sandbox.url,
                client_id=CLIENT_ID,
                client_secret=dg.EnvVar("SECRETS_TEST_CLIENT_SECRET"),
                refresh_token=REVOKED_REFRESH_TOKEN,
                token_store_path=str(tmp_path / "config" / "other-token.json"),
            )
            failed = materialize_user(
                PIPELINE_GRAPH,
                selection=PIPELINE_ASSETS,
                resources=local_resources(bad),
                instance=instance,
                raise_on_error=False,
            )
            assert not failed.success
            assert "spotify-assets auth" in failure_text(failed)
            texts += _run_texts(failed, instance)
            texts += [repr(spotify), str(spotify), repr(bad), repr(resources["features"])]

        access_tokens = list(sandbox.state.access_tokens)
        refresh_tokens = [t for t in sandbox.state.refresh_tokens if t != SANDBOX_REFRESH_TOKEN]
    assert access_tokens and len(refresh_tokens) == 1 and refresh_tokens[0] != refresh_token  # rotated

    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    secrets = {
        "client secret": CLIENT_SECRET,
        "basic auth header": basic,
        "refresh token": refresh_token,
        "rotated refresh token": refresh_tokens[0],
        "revoked refresh token": REVOKED_REFRESH_TOKEN,
        **{f"access token {i}": t for i, t in enumerate(access_tokens)},
    }

    captured = capfd.readouterr()
    log_texts = [caplog.text] + [
        f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    ]
    # Positive controls: the capture really holds the runs' output and logs.
    assert "PIPELINE_SUCCESS" in " ".join(texts) and "PIPELINE_FAILURE" in " ".join(texts)
    assert any("new play(s)" in t for t in [*log_texts, captured.err, captured.out, *texts])

    sources = {
        "dagster events": "\n".join(texts),
        "python logging": "\n".join(log_texts),
        "stdout": captured.out,
        "stderr": captured.err,
    }
    leaks = [
        f"{what} in {where}" for where, text in sources.items() for what, s in secrets.items() if s in text
    ]

    # Files: every file under the data dir (lake, DuckDB + snapshot, IO manager, Dagster storage).
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name == "warehouse.duckdb" for p in files) and any("dagster_home" in p.parts for p in files)
    for path in files:
        blob = path.read_bytes()
        leaks += [f"{what} in {path}" for what, s in secrets.items() if s.encode() in blob]
    assert leaks == []

    # The one place a refresh token may live: the token store, readable by its owner only.
    # (Also a positive control for the byte search above.)
    assert refresh_tokens[0].encode() in token_file.read_bytes()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert CLIENT_SECRET.encode() not in token_file.read_bytes()
