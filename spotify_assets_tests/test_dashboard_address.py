"""The dashboard listens on loopback unless told otherwise (issue 14, item 1).

``make dashboard`` (``python -m app.serve``) is started for real over the fixture warehouse,
and the sockets its process tree listens on are read from ``/proc``: every one must be on
loopback. A bare ``streamlit run`` gets the same default from ``app/.streamlit/config.toml``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from app.serve import ADDRESS_ENV, PORT_ENV, is_loopback, served_port, streamlit_argv
from spotify_assets_tests.fixtures.dashboard import ROOT, serve_dashboard, served_env
from spotify_assets_tests.fixtures.sockets import is_loopback as socket_is_loopback
from spotify_assets_tests.fixtures.sockets import listening_sockets, process_tree


def test_make_dashboard_listens_on_loopback_only_and_says_where(
    dashboard_snapshot: Path, tmp_path: Path
) -> None:
    """The port chosen by ``STREAMLIT_SERVER_PORT`` (not 8501): the printed address is the one served."""
    env = served_env(SPOTIFY_WAREHOUSE_SNAPSHOT=str(dashboard_snapshot))
    with serve_dashboard(env, tmp_path / "dashboard.log", port_by_env=True) as served:
        assert served.port != 8501
        listening = listening_sockets(process_tree(served.proc.pid))
        assert ("127.0.0.1", served.port) in listening, listening
        assert all(socket_is_loopback(addr) for addr, _ in listening), listening
        assert f"Dashboard at http://127.0.0.1:{served.port} (this machine only" in served.log.read_text()


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


def test_the_printed_port_is_the_one_streamlit_takes() -> None:
    """Streamlit's precedence: the command line's ``--server.port``, then ``STREAMLIT_SERVER_PORT``."""
    assert served_port([], {}) == "8501"
    assert served_port([], {PORT_ENV: "8600"}) == "8600"
    assert served_port(["--server.port", "8700"], {PORT_ENV: "8600"}) == "8700"
    assert served_port(["--server.port=8701"], {PORT_ENV: "8600"}) == "8701"


def test_a_bare_streamlit_run_is_loopback_too() -> None:
    config = tomllib.loads((ROOT / "app" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_pages_run_without_magic_as_served(tmp_path: Path) -> None:
    """The served config turns magic off, and AppTest runs under it (conftest applies it).

    Magic parses pages into Python AST objects, which CPython 3.11 does not do safely across
    threads: make test once failed with "AST constructor recursion depth mismatch".
    """
    from streamlit.testing.v1 import AppTest

    script = tmp_path / "page.py"
    script.write_text('import streamlit as st\n"a bare expression"\nst.write("written")\n')
    at = AppTest.from_file(str(script), default_timeout=30).run()
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown] == ["written"]
