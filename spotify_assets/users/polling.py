"""Whose token a run polls with: the run's ``users`` partition key names the listener.

A partitioned run (one per user, from the hourly schedule or the sensor) refreshes with that
user's own 0600 token file from the registry, so one person's revoked or throttled token
fails their run only. A run without a partition key is today's single-user setup: the
token-store listener, exactly as before the household (``make demo``, ``dg.materialize``
without a key).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.spotify.client import SpotifyClient
from spotify_assets.users.registry import UserError, UserRegistry


@dataclass(frozen=True)
class Listener:
    """The client a run polls with and the label its messages name (``None``: the single user)."""

    client: SpotifyClient
    user_id: str | None
    name: str | None

    def label(self) -> str:
        return f"user {self.name} ({self.user_id})" if self.name else "the single-user listener"


def user_listener(spotify: SpotifyResource, user_id: str, registry: UserRegistry | None = None) -> Listener:
    """The registered listener whose Spotify id (the partition key) is ``user_id``."""
    registry = registry or UserRegistry()
    user = registry.by_user_id(user_id)
    if user is None:
        raise UserError(
            f"partition {user_id!r} names no registered user (registry {registry.path}); "
            "add them with `spotify-assets users add NAME` or delete the partition"
        )
    return Listener(spotify.get_user_client(user_id, registry.token_store(user.name)), user_id, user.name)


def run_listener(context: dg.AssetExecutionContext, spotify: SpotifyResource) -> Listener:
    """The run's listener: the partition's user, or the single-user token store without a key."""
    if context.has_partition_key:
        return user_listener(spotify, context.partition_key)
    return Listener(spotify.get_client(), None, None)
