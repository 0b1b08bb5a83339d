"""Resource sets, one per deployment, picked by one small function (``resources_for``).

Assets only ever see the abstract resources (``SpotifyResource``, ``LakeResource``,
``WarehouseResource``, ``SparkResource``); which implementation they get is decided here,
from environment variables, never by editing code.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

import dagster as dg

from spotify_assets.io_managers import LakeIOManager, WarehouseTableIOManager
from spotify_assets.resources.features import AudioFeaturesResource
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.resources.spark import SparkResource
from spotify_assets.resources.spotify import LiveSpotifyResource, SpotifyResource
from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.settings import (
    Deployment,
    deployment,
    handoff_root,
    lake_root,
    spotify_accounts_url,
    spotify_api_url,
    warehouse_path,
)


def spotify_resource() -> SpotifyResource:
    """The real API when credentials are set; otherwise the shipped sandbox (started on demand).

    With credentials, ``SPOTIFY_API_URL`` and ``SPOTIFY_ACCOUNTS_URL`` point the client at any
    compatible server (a recording proxy, a gateway, a test double). The features resource
    gets this same instance, so every client in the process talks to the same servers.
    """
    if os.environ.get("SPOTIFY_CLIENT_ID"):
        return LiveSpotifyResource(
            client_id=dg.EnvVar("SPOTIFY_CLIENT_ID"),
            client_secret=dg.EnvVar("SPOTIFY_CLIENT_SECRET"),
            refresh_token=dg.EnvVar("SPOTIFY_REFRESH_TOKEN")
            if os.environ.get("SPOTIFY_REFRESH_TOKEN")
            else None,
            api_base_url=spotify_api_url(),
            accounts_base_url=spotify_accounts_url(),
        )
    return spotify_fallback(os.environ.get("SPOTIFY_SANDBOX_URL", ""))


#: Entry-point group a package registers its stand-in Spotify API under (the project's own
#: sandbox does); this package never imports a test double.
FALLBACK_GROUP = "spotify_assets.spotify_fallback"


class NoSpotifyError(RuntimeError):
    """No credentials and no stand-in API installed: nothing to collect plays from."""


def spotify_fallback(url: str = "") -> SpotifyResource:
    """The Spotify stand-in registered under ``FALLBACK_GROUP`` (the sandbox API), at ``url`` or embedded."""
    found = sorted(entry_points(group=FALLBACK_GROUP), key=lambda ep: ep.name)
    if not found:
        raise NoSpotifyError(
            "No Spotify credentials (SPOTIFY_CLIENT_ID) and no sandbox API installed. Either set "
            "SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET and SPOTIFY_REFRESH_TOKEN (see README "
            '"Use your real Spotify account"), or install the project with its sandbox: `make venv`.'
        )
    resource = found[0].load()(url)
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


def shared_resources(spotify: SpotifyResource | None = None) -> dict[str, Any]:
    """What both deployments share: the API, the features provider and Spark."""
    spotify = spotify or spotify_resource()
    return {
        "spotify": spotify,
        "features": AudioFeaturesResource(
            spotify=spotify, provider=os.environ.get("SPOTIFY_FEATURES_PROVIDER", "spotify")
        ),
        "spark": spark_resource(),
    }


def local_resources(spotify: SpotifyResource | None = None) -> dict[str, Any]:
    """Lake = a folder, warehouse = DuckDB, Spark = local[*], all under ``SPOTIFY_DATA_DIR``.

    Data handed between assets goes to ``handoff/`` beside the lake as Parquet/JSON (no
    pickles); the mart goes to its warehouse table (see ``io_managers/``).
    """
    warehouse = DuckDBWarehouseResource(path=str(warehouse_path()))
    return {
        **shared_resources(spotify),
        "lake": LocalLakeResource(root=str(lake_root())),
        "warehouse": warehouse,
        "io_manager": LakeIOManager(store=LocalLakeResource(root=str(handoff_root()))),
        "warehouse_io_manager": WarehouseTableIOManager(warehouse=warehouse),
    }


def resources_for(which: Deployment | None = None) -> dict[str, Any]:
    if (which or deployment()) == "cloud":
        from spotify_assets.resources.cloud import cloud_resources

        return {**shared_resources(), **cloud_resources()}
    return local_resources()
