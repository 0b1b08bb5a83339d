"""``make dashboard``: serve the dashboard on loopback unless told otherwise, and say where.

A listening history is personal data, and Streamlit on its own listens on every interface
(anyone on the same café or office network could open it). So the address is chosen here:
``127.0.0.1`` by default, ``SPOTIFY_DASHBOARD_ADDRESS`` (for example ``0.0.0.0``) as the
explicit choice to serve beyond this machine. ``app/.streamlit/config.toml`` sets the same
loopback default for a bare ``streamlit run app/streamlit_app.py``.

Served beyond loopback it needs a login (``app/auth.py``): without a complete one it does not
start, and says what to set. Any further arguments go to ``streamlit run`` (``--server.port
8600``, ...).
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.auth import HELP, check_login_configured
from app.auth import is_loopback as is_loopback

#: The environment variable that serves the dashboard beyond loopback.
ADDRESS_ENV = "SPOTIFY_DASHBOARD_ADDRESS"
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = "8501"
APP = Path(__file__).resolve().parent / "streamlit_app.py"
#: The script-level config ``streamlit run`` reads beside the app.
CONFIG_FILE = APP.parent / ".streamlit" / "config.toml"


def apply_runner_config() -> None:
    """Set the ``[runner]`` options of ``CONFIG_FILE`` in this process.

    Streamlit's ``AppTest`` (the tests and ``bench/dashboard_render.py``) does not read the
    script-level config file, so without this the pages would run there under other runner
    options than served (magic on, for one).
    """
    from streamlit import config

    runner = tomllib.loads(CONFIG_FILE.read_text()).get("runner", {})
    for key, value in runner.items():
        config.set_option(f"runner.{key}", value)


def dashboard_address() -> str:
    """The address the dashboard binds: ``SPOTIFY_DASHBOARD_ADDRESS`` or loopback."""
    return os.environ.get(ADDRESS_ENV, "").strip() or LOOPBACK


def _option(args: Sequence[str], name: str, default: str) -> str:
    """The value of ``--name value`` or ``--name=value`` in ``args``."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


#: Streamlit's own environment variable for ``server.port`` (``STREAMLIT_<SECTION>_<OPTION>``).
PORT_ENV = "STREAMLIT_SERVER_PORT"


def served_port(args: Sequence[str], env: Mapping[str, str]) -> str:
    """The port Streamlit will serve on, by its own precedence: ``--server.port``, then
    ``STREAMLIT_SERVER_PORT``, then the default (the config file sets none). The line that says
    where the dashboard is must name the port a browser can actually open."""
    return _option(args, "--server.port", "") or env.get(PORT_ENV, "").strip() or DEFAULT_PORT


def streamlit_argv(address: str, args: Sequence[str]) -> list[str]:
    """The ``streamlit run`` command line for ``address``, ``args`` passed through."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        address,
        "--server.headless",
        "true",
        *args,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    address = dashboard_address()
    port = served_port(args, os.environ)
    secrets, missing = check_login_configured(address)
    if missing:
        where = f"on {address}" if not is_loopback(address) else "with a login"
        print(
            f"make dashboard: not serving {where}: {'; '.join(missing)}.\nTo share it, {HELP}.",
            file=sys.stderr,
        )
        return 2
    if secrets is not None:
        args = ["--secrets.files", str(secrets), *args]
    if is_loopback(address):
        print(
            f"Dashboard at http://{address}:{port} (this machine only; set {ADDRESS_ENV} to serve it beyond)",
            flush=True,
        )
    else:
        print(f"Dashboard served beyond this machine on {address}:{port} ({ADDRESS_ENV})", flush=True)
    os.execv(sys.executable, streamlit_argv(address, args))  # noqa: S606 (argv list, no shell)
    return 0  # not reached: the process is Streamlit from here on


if __name__ == "__main__":
    raise SystemExit(main())
