"""The dashboard listens on loopback unless told otherwise (issue 14, item 1).

``make dashboard`` (``python -m app.serve``) is started for real over the fixture warehouse,
and the sockets its process tree listens on are read from ``/proc``: every one must be on
loopback. A bare ``streamlit run`` gets the same default from ``app/.streamlit/config.toml``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from app.serve import ADDRESS_ENV, is_loopback, streamlit_argv
from spotify_assets_tests.fixtures.sockets import is_loopback as socket_is_loopback
from spotify_assets_tests.fixtures.sockets import listening_sockets, process_tree

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
            return bool(r.read().decode().strip() == "ok")
    except OSError:
        return False


def test_make_dashboard_listens_on_loopback_only_and_says_where(
    dashboard_snapshot: Path, tmp_path: Path
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "STREAMLIT_"))}
    env |= {"SPOTIFY_WAREHOUSE_SNAPSHOT": str(dashboard_snapshot), "SPOTIFY_DEPLOYMENT": "local"}
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.serve",
                "--server.port",
                str(port),
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not _healthy(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        listening = listening_sockets(process_tree(proc.pid))
        assert ("127.0.0.1", port) in listening, listening
        assert all(socket_is_loopback(addr) for addr, _ in listening), listening
        assert f"Dashboard at http://127.0.0.1:{port} (this machine only" in log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def test_serving_beyond_loopback_is_the_explicit_choice(monkeypatch) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    from app.serve import dashboard_address

    assert dashboard_address() == "127.0.0.1"
    monkeypatch.setenv(ADDRESS_ENV, "0.0.0.0")
    assert dashboard_address() == "0.0.0.0"
    argv = streamlit_argv(dashboard_address(), ["--server.port", "8600"])
    assert argv[argv.index("--server.address") + 1] == "0.0.0.0"
    assert [is_loopback(a) for a in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::", "192.168.1.5", "myhost")] == [
        True, True, True, False, False, False, False,
    ]  # fmt: skip


def test_a_bare_streamlit_run_is_loopback_too() -> None:
    config = tomllib.loads((ROOT / "app" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
