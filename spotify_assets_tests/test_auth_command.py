"""``spotify-assets auth`` end to end against the sandbox, as a real subprocess with a real callback server."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from spotify_assets.spotify.auth import auth_command
from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_assets.spotify.token_store import FileTokenStore
from spotify_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SandboxServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_auth(sandbox: SandboxServer, token_file: Path, redirect_uri: str, env_token: str | None = None):
    env = {
        **os.environ,
        "SPOTIFY_CLIENT_ID": SANDBOX_CLIENT_ID,
        "SPOTIFY_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "SPOTIFY_TOKEN_FILE": str(token_file),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SPOTIFY_REFRESH_TOKEN", None)
    if env_token:
        env["SPOTIFY_REFRESH_TOKEN"] = env_token
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotify_assets.cli", "auth", "--no-browser", "--timeout", "60",
         "--redirect-uri", redirect_uri, "--accounts-url", sandbox.accounts_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "/authorize?" in line:
            return proc, line.strip(), lines
    proc.kill()
    raise AssertionError(f"no authorize URL printed: {lines!r} {proc.stderr.read() if proc.stderr else ''}")


def test_auth_command_end_to_end_via_the_callback_server(sandbox: SandboxServer, tmp_path: Path) -> None:
    token_file = tmp_path / "cfg" / "token.json"
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    proc, url, printed = start_auth(sandbox, token_file, redirect_uri)
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["user-read-recently-played user-read-currently-playing"] and query[
        "redirect_uri"
    ] == [redirect_uri]
    assert len(query["state"][0]) >= 16
    # The "browser": the sandbox auto-approves and 302s to the command's loopback callback.
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and "close this tab" in page.text
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stored = json.loads(token_file.read_text())
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert sandbox.is_refresh_token_valid(stored["refresh_token"])
    stdout = "".join(printed) + out
    assert str(token_file) in stdout
    assert stored["refresh_token"] not in stdout and stored["refresh_token"] not in err
    assert SANDBOX_CLIENT_SECRET not in stdout + err
    # The stored token works for the pipeline's client with nothing in the environment.
    client = HttpSpotifyClient(
        SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, None,
        api_base_url=sandbox.url, accounts_base_url=sandbox.url, token_store=FileTokenStore(token_file),
    )  # fmt: skip
    assert len(client.recently_played()) == 50


def test_auth_command_accepts_a_pasted_redirect_url(sandbox: SandboxServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token.json"
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    proc, url, _ = start_auth(sandbox, token_file, redirect_uri, env_token="an-old-env-token")
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    out, err = proc.communicate(input=location + "\n", timeout=30)
    assert proc.returncode == 0, err
    assert "SPOTIFY_REFRESH_TOKEN is set too" in out
    stored = FileTokenStore(token_file)
    # The fresh token wins over the (unchanged) env token it supersedes.
    resolved = stored.resolve("an-old-env-token")
    assert resolved is not None and sandbox.is_refresh_token_valid(resolved.refresh_token)


def test_auth_command_rejects_a_wrong_state(sandbox: SandboxServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token.json"
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    proc, url, _ = start_auth(sandbox, token_file, redirect_uri)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    forged = requests.get(
        f"{sandbox.url}/authorize", params={**params, "state": "forged"}, allow_redirects=False, timeout=10
    ).headers["Location"]
    _out, err = proc.communicate(input=forged + "\n", timeout=30)
    assert proc.returncode == 1
    assert "state does not match" in err
    assert not token_file.exists()
    assert urlencode({"state": "forged"}) in forged


def test_auth_command_needs_client_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SPOTIFY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIFY_CLIENT_SECRET", raising=False)
    assert auth_command(["--no-browser"]) == 2
    assert "SPOTIFY_CLIENT_ID" in capsys.readouterr().err


def test_auth_command_refuses_non_loopback_redirect(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", "x")
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "y")
    assert auth_command(["--no-browser", "--redirect-uri", "http://example.com/callback"]) == 2
    assert "loopback" in capsys.readouterr().err
