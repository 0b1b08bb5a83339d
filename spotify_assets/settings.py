"""Where local data lives, which deployment is active and which Spotify servers to talk to.

Assets never read these; ``definitions.py`` does, once, to pick the resource set (and the
``spotify-assets`` commands do, so every client in a process points at the same servers).
The dashboard (``app/``) reads the data directory here too, so this module imports nothing
from Dagster: it is the one home of these defaults for every process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

Deployment = Literal["local", "cloud"]

_REPO_ROOT = Path(__file__).resolve().parents[1]

#: Spotify's own servers: the defaults of ``SPOTIFY_API_URL`` and ``SPOTIFY_ACCOUNTS_URL``.
DEFAULT_API_URL = "https://api.spotify.com"
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com"


def deployment() -> Deployment:
    """``SPOTIFY_DEPLOYMENT``: ``local`` (default; no account needed) or ``cloud`` (GCS + BigQuery)."""
    value = os.environ.get("SPOTIFY_DEPLOYMENT", "local").strip().lower() or "local"
    if value not in ("local", "cloud"):
        raise ValueError(f"SPOTIFY_DEPLOYMENT must be 'local' or 'cloud', got {value!r}")
    return "cloud" if value == "cloud" else "local"


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``SPOTIFY_DATA_DIR``, default ``.data/`` at the repo root (or the working directory when installed)."""
    configured = (os.environ if environ is None else environ).get("SPOTIFY_DATA_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    root = _REPO_ROOT if (_REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / ".data"


def warehouse_path(environ: Mapping[str, str] | None = None) -> Path:
    return data_dir(environ) / "warehouse.duckdb"


def dagster_home(data: Path | None = None) -> Path:
    """The Dagster instance the commands report to: ``$DAGSTER_HOME``, else ``dagster_home`` in the
    data directory (what ``make demo`` and ``make dev`` use)."""
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured).expanduser() if configured else (data or data_dir()) / "dagster_home"


def users_root(data: Path | None = None) -> Path:
    """The household's registry and each listener's 0600 token file (``spotify-assets users``)."""
    return (data or data_dir()) / "users"


def rate_limit_path(app: str, data: Path | None = None) -> Path:
    """The app's shared Retry-After (``spotify/rate_gate.py``): every run and sensor of this
    installation reads it before calling Spotify, so one listener's 429 holds back them all."""
    return (data or data_dir()) / "state" / f"spotify-rate-limit-{app}.json"


def snapshot_path_for(database: Path) -> Path:
    """The published read-only copy of a DuckDB warehouse, next to it (what the dashboard opens)."""
    return database.with_suffix(".snapshot.duckdb")


def lake_root() -> Path:
    return data_dir() / "lake"


def handoff_root(data: Path | None = None) -> Path:
    """Where assets hand data to each other locally (typed files, see ``io_managers/``): beside the
    lake, never inside it, so listing the lake never finds a handoff file."""
    return (data or data_dir()) / "handoff"


def spotify_api_url() -> str:
    """``SPOTIFY_API_URL``: the Web API base URL (a recording proxy, a gateway, a test double...)."""
    return (os.environ.get("SPOTIFY_API_URL") or DEFAULT_API_URL).rstrip("/")


def spotify_accounts_url() -> str:
    """``SPOTIFY_ACCOUNTS_URL``: the accounts service (``/api/token``, ``/authorize``) base URL."""
    return (os.environ.get("SPOTIFY_ACCOUNTS_URL") or DEFAULT_ACCOUNTS_URL).rstrip("/")


def sandbox_token_path(sandbox_url: str) -> Path:
    """Where refresh tokens a running sandbox hands out are kept: per sandbox URL, under the data dir.

    Never the user's real token file: a sandbox token must not overwrite a real one, and a
    restarted sandbox (a new port) must not be offered a token only the old one knew.
    """
    name = "".join(c if c.isalnum() else "_" for c in sandbox_url.split("://", 1)[-1]).strip("_")
    return data_dir() / "sandbox-tokens" / f"{name or 'sandbox'}.json"
