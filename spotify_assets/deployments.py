"""The one resource factory: the settings in, the deployment's resource set out.

``definitions.py`` gets its resources from ``resources_for``; each ``spotify-assets`` command
opens the stores it writes (``lake``, ``warehouse``, ``handoff``) with ``command_stores``; the
dashboard reads the Dagster-free half of the same decision (``settings.load_settings``). Local or
cloud is decided once, from ``SPOTIFY_DEPLOYMENT``, and every local path comes from one
``settings.DataLayout``, so no caller builds a resource or joins a path by hand.

Assets only ever see the abstract resources (``SpotifyResource``, ``LakeResource``,
``WarehouseResource``, ``SparkResource``): which implementation they get is decided here,
from environment variables, never by editing code. This module sits above ``resources/`` and
``io_managers/`` (it imports both, neither imports it), so the layers have no cycle.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import dagster as dg

from spotify_assets.io_managers import LakeIOManager, WarehouseTableIOManager
from spotify_assets.resources.cloud import REQUIRED_CLOUD_ENV, cloud_stores
from spotify_assets.resources.features import AudioFeaturesResource
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.spark import SparkResource
from spotify_assets.resources.spotify import LiveSpotifyResource, SpotifyResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.settings import (
    DataLayout,
    Deployment,
    MissingSettings,
    Settings,
    layout,
    load_settings,
    spotify_accounts_url,
    spotify_api_url,
)

#: The stores an operator command may open (``command_stores``): the lake, the warehouse and the
#: store of the values handed between assets (``handoff/`` locally, the bucket's ``dagster/``).
STORES = ("lake", "warehouse", "handoff")


def deployment_settings(which: Deployment | None = None, *, data: Path | str | None = None) -> Settings:
    """The validated settings of ``which`` deployment (default ``SPOTIFY_DEPLOYMENT``), under ``data``
    (a command's ``--data-dir``; default ``SPOTIFY_DATA_DIR``). In cloud mode every variable the
    pipeline needs is checked at once (``settings.MissingSettings`` names the missing ones)."""
    env = os.environ if which is None else {**os.environ, "SPOTIFY_DEPLOYMENT": which}
    return load_settings(env, data=data, cloud_requires=REQUIRED_CLOUD_ENV)


def command_settings(prog: str, data: Path | str | None = None) -> Settings | None:
    """The active deployment's settings for the operator command ``prog`` (its ``--data-dir`` in
    ``data``), or None once the missing ones are told on stderr: the caller then exits 2.

    Every command that reads the deployment starts here, so a missing variable reads the same from
    each (``prog: cloud mode (SPOTIFY_DEPLOYMENT=cloud) needs X, Y (unset or empty)``, every one
    named at once) and exits with the usage status. None rather than ``SystemExit``: the commands
    stay functions that return their exit status, as ``cli.main`` and the tests call them.
    """
    try:
        return deployment_settings(data=data)
    except MissingSettings as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def spotify_resource(data: DataLayout | None = None) -> SpotifyResource:
    """The real API when credentials are set; otherwise the shipped sandbox (started on demand).

    With credentials, ``SPOTIFY_API_URL`` and ``SPOTIFY_ACCOUNTS_URL`` point the client at any
    compatible server (a recording proxy, a gateway, a test double). The features resource
    gets this same instance, so every client in the process talks to the same servers. The data
    directory is handed over as config: a run never reads it from the environment again.
    """
    root = str((data or layout()).root)
    if os.environ.get("SPOTIFY_CLIENT_ID"):
        return LiveSpotifyResource(
            client_id=dg.EnvVar("SPOTIFY_CLIENT_ID"),
            client_secret=dg.EnvVar("SPOTIFY_CLIENT_SECRET"),
            refresh_token=dg.EnvVar("SPOTIFY_REFRESH_TOKEN")
            if os.environ.get("SPOTIFY_REFRESH_TOKEN")
            else None,
            api_base_url=spotify_api_url(),
            accounts_base_url=spotify_accounts_url(),
            data_dir=root,
        )
    return spotify_fallback(os.environ.get("SPOTIFY_SANDBOX_URL", ""), data_dir=root)


#: Entry-point group a package registers its stand-in Spotify API under (the project's own
#: sandbox does); this package never imports a test double.
FALLBACK_GROUP = "spotify_assets.spotify_fallback"


class NoSpotifyError(RuntimeError):
    """No credentials and no stand-in API installed: nothing to collect plays from."""


def spotify_fallback(url: str = "", data_dir: str | None = None) -> SpotifyResource:
    """The Spotify stand-in registered under ``FALLBACK_GROUP`` (the sandbox API), at ``url`` or embedded."""
    found = sorted(entry_points(group=FALLBACK_GROUP), key=lambda ep: ep.name)
    if not found:
        raise NoSpotifyError(
            "No Spotify credentials (SPOTIFY_CLIENT_ID) and no sandbox API installed. Either set "
            "SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET and SPOTIFY_REFRESH_TOKEN (see README "
            '"Use your real Spotify account"), or install the project with its sandbox: `make venv`.'
        )
    resource = found[0].load()(url, data_dir=data_dir)
    if not isinstance(resource, SpotifyResource):
        raise TypeError(
            f"entry point {found[0].value} returned {type(resource).__name__}, not a SpotifyResource"
        )
    return resource


def spark_resource() -> SparkResource:
    """``SPOTIFY_SPARK_MASTER`` (default ``local[*]``) and, when set, ``SPOTIFY_SPARK_REMOTE``:
    the Spark Connect server to use first (``spotify-assets dev`` sets it). The URL may hold a
    token, so it is passed as an ``EnvVar`` and the UI shows the variable's name, not its value.
    """
    remote = dg.EnvVar("SPOTIFY_SPARK_REMOTE") if os.environ.get("SPOTIFY_SPARK_REMOTE") else ""
    return SparkResource(master=os.environ.get("SPOTIFY_SPARK_MASTER", "local[*]"), remote=remote)


def shared_resources(
    spotify: SpotifyResource | None = None, data: DataLayout | None = None
) -> dict[str, Any]:
    """What both deployments share: the API, the features provider and Spark."""
    spotify = spotify or spotify_resource(data)
    return {
        "spotify": spotify,
        "features": AudioFeaturesResource(
            spotify=spotify, provider=os.environ.get("SPOTIFY_FEATURES_PROVIDER", "spotify")
        ),
        "spark": spark_resource(),
    }


def stores_for(settings: Settings) -> dict[str, Any]:
    """The deployment's ``lake``, ``warehouse`` and ``handoff`` (and ``gcs`` in the cloud), unbuilt.

    Locally: a folder, DuckDB and ``handoff/`` beside the lake, all under the data directory.
    """
    if settings.deployment == "cloud":
        return cloud_stores()
    return {
        "lake": LocalLakeResource(root=str(settings.data.lake)),
        "warehouse": DuckDBWarehouseResource(path=str(settings.data.warehouse)),
        "handoff": LocalLakeResource(root=str(settings.data.handoff)),
    }


def _with_io_managers(stores: dict[str, Any]) -> dict[str, Any]:
    """The stores as a run sees them: data handed between assets goes through ``io_manager`` to the
    handoff store as Parquet/JSON (no pickles); the mart goes to its warehouse table."""
    out = {name: resource for name, resource in stores.items() if name != "handoff"}
    out["io_manager"] = LakeIOManager(store=stores["handoff"])
    out["warehouse_io_manager"] = WarehouseTableIOManager(warehouse=stores["warehouse"])
    return out


def resource_set(settings: Settings, spotify: SpotifyResource | None = None) -> dict[str, Any]:
    """Everything a run of ``settings``' deployment gets (what ``definitions.py`` registers)."""
    return {**shared_resources(spotify, settings.data), **_with_io_managers(stores_for(settings))}


def resources_for(which: Deployment | None = None, *, data: Path | str | None = None) -> dict[str, Any]:
    """The resource set of ``which`` deployment (default: ``SPOTIFY_DEPLOYMENT``), validated."""
    return resource_set(deployment_settings(which, data=data))


def local_resources(spotify: SpotifyResource | None = None, data: Path | str | None = None) -> dict[str, Any]:
    """The local resource set (lake = a folder, warehouse = DuckDB), with ``spotify`` if given."""
    return resource_set(deployment_settings("local", data=data), spotify)


def cloud_resources() -> dict[str, Any]:
    """The cloud stores with their IO managers (``lake``, ``warehouse``, ``gcs``, the IO managers)."""
    return _with_io_managers(cloud_stores())


@contextlib.contextmanager
def command_stores(settings: Settings, *names: str) -> Iterator[Any]:
    """The deployment's stores ``names`` (of ``STORES``) for an operator command, initialised as a
    run would (``build_resources`` resolves the cloud set's ``EnvVar`` fields); closed on exit."""
    unknown = set(names) - set(STORES)
    if unknown:
        raise ValueError(f"no store named {', '.join(sorted(unknown))}; the stores are {', '.join(STORES)}")
    stores = stores_for(settings)
    with dg.build_resources({name: stores[name] for name in names}) as built:
        yield built
