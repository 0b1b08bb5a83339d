"""Whose token a run polls with: the run's ``users`` partition key names the listener.

The ingest, lake and warehouse assets are partitioned by user (``partitions.py``): the hourly
schedule and the sensor start one run per partition, its key the Spotify user id. A
registered user (``spotify-assets users add``) polls with their own 0600 token file from the
registry, so one person's revoked or throttled token fails their run only. Any other key must
be the single-user setup's listener, the one the token store (``spotify-assets auth``, the
sandbox's default) belongs to: that is asked of Spotify (``GET /v1/me``), so a partition
whose key is nobody's fails naming what to do instead of polling someone else's plays under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from spotify_assets.partitions import add_user_partition
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.spotify.client import SpotifyClient
from spotify_assets.users.registry import UserError, UserRegistry


@dataclass(frozen=True)
class Listener:
    """The client a run polls with, whose id its plays are kept under, and the label its messages
    name (``name`` is None for the single-user token store's listener)."""

    client: SpotifyClient
    user_id: str
    name: str | None

    def label(self) -> str:
        return (
            f"user {self.name} ({self.user_id})"
            if self.name
            else f"the single-user listener ({self.user_id})"
        )


def token_store_owner(spotify: SpotifyResource) -> tuple[SpotifyClient, str]:
    """The single-user token store's client and the Spotify id it belongs to (one ``/v1/me`` call)."""
    client = spotify.get_client()
    return client, client.me().id


def listener_for(spotify: SpotifyResource, user_id: str, registry: UserRegistry | None = None) -> Listener:
    """The listener whose Spotify id (their partition key) is ``user_id``: a registered user, or
    the token store's owner. Raises ``UserError`` for a key that is neither. The registry is the
    one under the resource's data directory (config, not the environment)."""
    registry = registry or UserRegistry(spotify.data_layout().users)
    user = registry.by_user_id(user_id)
    if user is not None:
        return Listener(spotify.get_user_client(user_id, registry.token_store(user.name)), user_id, user.name)
    client, owner = token_store_owner(spotify)
    if owner != user_id:
        raise UserError(
            f"partition {user_id!r} names no registered user (registry {registry.path}) and the single-user "
            f"token store belongs to {owner!r}; add them with `spotify-assets users add NAME` or delete the partition"
        )
    return Listener(client, user_id, None)


def run_listener(context: dg.AssetExecutionContext, spotify: SpotifyResource) -> Listener:
    """The listener of the run's partition; a run that names none is refused, saying how to name one."""
    if not context.has_partition_key:
        raise UserError(
            f"{context.asset_key.to_user_string()} is partitioned by listener: run it for one "
            "(`dagster asset materialize --partition <Spotify user id>`, a partition in the UI; "
            "`spotify-assets users list` shows the ids, `demo`/`dev` add the single listener's)"
        )
    return listener_for(spotify, context.partition_key)


def add_token_store_partition(instance: dg.DagsterInstance, spotify: SpotifyResource) -> str:
    """Make the single-user setup's listener a partition: ask whose the token store's token is
    (``GET /v1/me``) and add that id to ``users``; returns it. ``demo``, ``dev`` and the first
    hourly tick call this, so one listener needs no ``users add``."""
    _, owner = token_store_owner(spotify)
    add_user_partition(instance, owner)
    return owner
