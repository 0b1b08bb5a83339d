"""``spotify-assets sandbox`` as a real subprocess: --port-file, HTTP controls from another process, SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from spotify_assets.spotify.client import HttpSpotifyClient
from spotify_sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REFRESH_TOKEN


def wait_for_file(path: Path, proc: subprocess.Popen[str], limit_s: float = 30.0) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text().strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"sandbox did not write {path}: {proc.communicate()}")


def test_sandbox_command_serves_until_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotify_assets.cli", "sandbox", "--port", "0", "--seed", "42",
         "--now", "2026-11-20T21:00:00Z", "--port-file", str(port_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(wait_for_file(port_file, proc))
        url = f"http://127.0.0.1:{port}"
        client = HttpSpotifyClient(
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            SANDBOX_REFRESH_TOKEN,
            api_base_url=url,
            accounts_base_url=url,
        )
        latest = client.recently_played()
        assert len(latest) == 50
        cursor = client.recently_played(after_ms=None)[0]["played_at"]
        assert requests.post(f"{url}/_sandbox/clock", json={"advance_seconds": 3600}, timeout=5).ok
        assert client.recently_played()[0]["played_at"] > cursor  # the other process's clock moved
        stats = requests.get(f"{url}/_sandbox/stats", timeout=5).json()
        assert stats["requests"]["GET /v1/me/player/recently-played"] == 3
        assert stats["grant_types"] == {"refresh_token": 1}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in out and "Sandbox stopped." in out


def test_sandbox_command_rejects_a_bad_clock(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spotify_assets.cli", "sandbox", "--clock", "sideways"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "--clock" in result.stderr
