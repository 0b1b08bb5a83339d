"""Where local data lives, which deployment is active and which Spotify servers to talk to.

Assets never read these. ``load_settings`` reads them once per process and validates them;
the resource factory (``deployments.py``) turns the result into the resource set for
``definitions.py`` and every ``spotify-assets`` command, and the dashboard (``app/``) uses the
same function, so this module imports nothing from Dagster: it is the one home of these
defaults, and ``DataLayout`` the one place a path under the data directory is named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Deployment = Literal["local", "cloud"]

_REPO_ROOT = Path(__file__).resolve().parents[1]

#: Spotify's own servers: the defaults of ``SPOTIFY_API_URL`` and ``SPOTIFY_ACCOUNTS_URL``.
DEFAULT_API_URL = "https://api.spotify.com"
DEFAULT_ACCOUNTS_URL = "https://accounts.spotify.com"

#: The local warehouse's file and the lake's folder, in the data directory (the lake's prefix
#: in the bucket too, ``resources/cloud.py``).
WAREHOUSE_FILE = "warehouse.duckdb"
LAKE_DIR = "lake"


#: ``SPOTIFY_POLL_INTERVAL_S``: seconds between the new-plays sensor's ticks (``sensors.py``).
POLL_INTERVAL_ENV = "SPOTIFY_POLL_INTERVAL_S"
#: A minute: the dashboard a minute behind the music, one recently-played call a minute per listener.
DEFAULT_POLL_INTERVAL_S = 60
#: The least and the most ``SPOTIFY_POLL_INTERVAL_S`` may be. Dagster's sensor daemon looks at its
#: sensors every 5 s at most, so a shorter interval would not be honoured; a longer one than an hour
#: would poll less often than the hourly schedule, the sensor's safety net, runs anyway.
POLL_INTERVAL_BOUNDS_S = (5, 3600)


def poll_interval_s(environ: Mapping[str, str] | None = None) -> int:
    """``SPOTIFY_POLL_INTERVAL_S``, default 60: whole seconds between two recently-played calls
    for one listener.

    The new-plays sensor's one cadence: its minimum interval, the "polled N s ago" gate that
    keeps a run's own call from being doubled by the sensor, and the first wait before a failed
    run is retried (doubled after each further failure) all derive from it. A household may want
    30 s or 5 min; a test soak sets a few seconds to run the same platform faster. Nonsense
    (``0``, ``abc``, ``1.5``) fails loudly rather than polling in a loop or never.
    """
    env = os.environ if environ is None else environ
    raw = env.get(POLL_INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_POLL_INTERVAL_S
    low, high = POLL_INTERVAL_BOUNDS_S
    wanted = f"{POLL_INTERVAL_ENV} must be a whole number of seconds from {low} to {high}, got {raw!r}"
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(wanted) from None
    if not low <= value <= high:
        raise ValueError(wanted)
    return value


def deployment(environ: Mapping[str, str] | None = None) -> Deployment:
    """``SPOTIFY_DEPLOYMENT``: ``local`` (default; no account needed) or ``cloud`` (GCS + BigQuery).

    The one place local or cloud is decided: the pipeline's resource set and the dashboard's
    warehouse both ask here, so they can never disagree about where the data is.
    """
    env = os.environ if environ is None else environ
    value = env.get("SPOTIFY_DEPLOYMENT", "local").strip().lower() or "local"
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


@dataclass(frozen=True)
class DataLayout:
    """Every local path, derived from the data directory here and nowhere else.

    The pipeline's resources, each ``spotify-assets`` command and the dashboard ask this for
    their paths, so the name of a folder (``lake``, ``handoff``, ``users``...) or of the warehouse
    file is written once: a command given ``--data-dir`` gets the same tree the pipeline uses.
    """

    root: Path

    @property
    def lake(self) -> Path:
        return self.root / LAKE_DIR

    @property
    def warehouse(self) -> Path:
        return self.root / WAREHOUSE_FILE

    @property
    def snapshot(self) -> Path:
        """The published read-only copy of the warehouse (what the dashboard opens)."""
        return snapshot_path_for(self.warehouse)

    @property
    def handoff(self) -> Path:
        """Where assets hand data to each other locally (typed files, see ``io_managers/``): beside
        the lake, never inside it, so listing the lake never finds a handoff file."""
        return self.root / "handoff"

    @property
    def users(self) -> Path:
        """The household's registry and each listener's 0600 token file (``spotify-assets users``)."""
        return self.root / "users"

    @property
    def scrobble_tokens(self) -> Path:
        """The scrobblers' tokens, one per listener, as sha256 only (``spotify-assets users token``,
        ``scrobbles/tokens.py``): beside the registry that names the listeners, 0600 like it."""
        return self.users / "scrobble_tokens.json"

    def now_playing(self, user_id: str) -> Path:
        """What a listener's scrobbler last said is playing (``playing_now`` at the door,
        ``scrobbles/now_playing.py``): a small file the dashboard's "Now playing" can read."""
        if not user_id or not user_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"not a usable user id for a file name: {user_id!r}")
        return self.root / "state" / f"now-playing-{user_id}.json"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance ``make demo`` and ``make dev`` use when ``$DAGSTER_HOME`` is unset."""
        return self.root / "dagster_home"

    def rate_limit(self, app: str) -> Path:
        """The app's shared Retry-After (``spotify/rate_gate.py``): every run and sensor of this
        installation reads it before calling Spotify, so one listener's 429 holds back them all."""
        return self.root / "state" / f"spotify-rate-limit-{app}.json"

    def sandbox_tokens(self, sandbox_url: str) -> Path:
        """Where refresh tokens a running sandbox hands out are kept: per sandbox URL.

        Never the user's real token file: a sandbox token must not overwrite a real one, and a
        restarted sandbox (a new port) must not be offered a token only the old one knew.
        """
        name = "".join(c if c.isalnum() else "_" for c in sandbox_url.split("://", 1)[-1]).strip("_")
        return self.root / "sandbox-tokens" / f"{name or 'sandbox'}.json"


def layout(data: Path | str | None = None, environ: Mapping[str, str] | None = None) -> DataLayout:
    """The paths under ``data`` (a ``--data-dir``), else under ``SPOTIFY_DATA_DIR`` (``data_dir``)."""
    return DataLayout(Path(data).expanduser().resolve() if data else data_dir(environ))


def dagster_home(data: Path | None = None) -> Path:
    """The Dagster instance the commands report to: ``$DAGSTER_HOME``, else ``dagster_home`` in the
    data directory (what ``make demo`` and ``make dev`` use)."""
    configured = os.environ.get("DAGSTER_HOME")
    return Path(configured).expanduser() if configured else layout(data).dagster_home


def users_root(data: Path | None = None) -> Path:
    """The household's registry and each listener's 0600 token file (``spotify-assets users``)."""
    return layout(data).users


def rate_limit_path(app: str, data: Path | None = None) -> Path:
    """The app's shared Retry-After file (``DataLayout.rate_limit``)."""
    return layout(data).rate_limit(app)


def snapshot_path_for(database: Path) -> Path:
    """The published read-only copy of a DuckDB warehouse, next to it (what the dashboard opens)."""
    return database.with_suffix(".snapshot.duckdb")


def spotify_api_url() -> str:
    """``SPOTIFY_API_URL``: the Web API base URL (a recording proxy, a gateway, a test double...)."""
    return (os.environ.get("SPOTIFY_API_URL") or DEFAULT_API_URL).rstrip("/")


def spotify_accounts_url() -> str:
    """``SPOTIFY_ACCOUNTS_URL``: the accounts service (``/api/token``, ``/authorize``) base URL."""
    return (os.environ.get("SPOTIFY_ACCOUNTS_URL") or DEFAULT_ACCOUNTS_URL).rstrip("/")


def sandbox_token_path(sandbox_url: str, data: Path | None = None) -> Path:
    """Where a running sandbox's refresh tokens are kept (``DataLayout.sandbox_tokens``)."""
    return layout(data).sandbox_tokens(sandbox_url)


# -- BigQuery: the connection settings every cloud reader and writer shares ---------------
#: The variables naming where the warehouse is in BigQuery (project and dataset are required
#: in cloud mode; the pipeline's own extras, bucket and staging dataset, are in
#: ``resources/cloud.py``). The dashboard needs only these.
BQ_PROJECT_ENV = "SPOTIFY_GCP_PROJECT"
BQ_DATASET_ENV = "SPOTIFY_BQ_DATASET"
BQ_LOCATION_ENV = "SPOTIFY_BQ_LOCATION"
BQ_ENDPOINT_ENV = "SPOTIFY_BQ_ENDPOINT"
REQUIRED_BIGQUERY_ENV = (BQ_PROJECT_ENV, BQ_DATASET_ENV)
DEFAULT_BQ_LOCATION = "EU"


class MissingSettings(ValueError):
    """Required variables are unset or empty; the message names every one of them."""

    def __init__(self, missing: list[str], what: str) -> None:
        self.missing = missing
        super().__init__(f"{what} needs {', '.join(missing)} (unset or empty)")


def missing_env(names: tuple[str, ...], environ: Mapping[str, str] | None = None) -> list[str]:
    """Which of ``names`` are unset or empty (blank counts as unset), in the order given."""
    env = os.environ if environ is None else environ
    return [name for name in names if not env.get(name, "").strip()]


def endpoint(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """An endpoint variable (``SPOTIFY_GCS_ENDPOINT`` / ``SPOTIFY_BQ_ENDPOINT``); None when unset or empty.

    A set endpoint means an emulator or test double: clients given one are anonymous.
    """
    env = os.environ if environ is None else environ
    return env.get(name, "").strip().rstrip("/") or None


@dataclass(frozen=True)
class BigQuerySettings:
    """Where the warehouse lives in BigQuery and how to reach it (no credentials: ADC or anonymous)."""

    project: str
    dataset: str
    location: str = DEFAULT_BQ_LOCATION
    endpoint: str | None = None


def bigquery_location(environ: Mapping[str, str] | None = None) -> str:
    """``SPOTIFY_BQ_LOCATION``, default ``EU``: the datasets' location and every job's."""
    env = os.environ if environ is None else environ
    return env.get(BQ_LOCATION_ENV, "").strip() or DEFAULT_BQ_LOCATION


def bigquery_settings(environ: Mapping[str, str] | None = None) -> BigQuerySettings:
    """The warehouse's BigQuery settings from the environment, validated.

    Raises ``MissingSettings`` naming every required variable that is unset, so a deployment
    with two missing variables learns both at once rather than one per restart.
    """
    env = os.environ if environ is None else environ
    missing = missing_env(REQUIRED_BIGQUERY_ENV, env)
    if missing:
        raise MissingSettings(missing, "the BigQuery warehouse (SPOTIFY_DEPLOYMENT=cloud)")
    return BigQuerySettings(
        project=env[BQ_PROJECT_ENV].strip(),
        dataset=env[BQ_DATASET_ENV].strip(),
        location=bigquery_location(env),
        endpoint=endpoint(BQ_ENDPOINT_ENV, env),
    )


@dataclass(frozen=True)
class Settings:
    """The deployment a process serves, decided and validated once (``load_settings``).

    ``data`` is the local tree (the DuckDB warehouse and lake in local mode; the household
    registry, the Dagster instance and the rate-limit state in both). ``bigquery`` is set, and
    validated, in cloud mode only.
    """

    deployment: Deployment
    data: DataLayout
    bigquery: BigQuerySettings | None = None


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    data: Path | str | None = None,
    cloud_requires: tuple[str, ...] = (),
) -> Settings:
    """The settings from the environment (and a command's ``--data-dir``), validated.

    In cloud mode every variable the caller needs is checked at once: the warehouse's
    (``REQUIRED_BIGQUERY_ENV``, all the dashboard needs) plus ``cloud_requires`` (the pipeline's
    bucket and staging dataset, ``resources/cloud.py``); ``MissingSettings`` names each missing one.
    """
    env = os.environ if environ is None else environ
    which = deployment(env)
    tree = layout(data, env)
    if which == "local":
        return Settings("local", tree)
    missing = missing_env(tuple(dict.fromkeys((*REQUIRED_BIGQUERY_ENV, *cloud_requires))), env)
    if missing:
        what = "cloud mode" if cloud_requires else "the BigQuery warehouse"
        raise MissingSettings(missing, f"{what} (SPOTIFY_DEPLOYMENT=cloud)")
    return Settings("cloud", tree, bigquery_settings(env))
