"""Whose token a run polls with: the run's ``spotify/user`` tag names the listener.

A run for one user (the hourly schedule and the sensor start one per ``users`` partition,
tagged with its key, the Spotify user id) refreshes with that user's own 0600 token file from
the registry, so one person's revoked or throttled token fails their run only. A run without
the tag is today's single-user setup: the token-store listener, exactly as before the
household (``make demo``, ``dg.materialize`` in the tests).

Why a tag and not the partition key of partitioned assets: in Dagster 1.13 a run of
partitioned assets without a partition key fails as soon as an upstream partition exists
("Cannot access partition_key for a non-partitioned run"), so partitioning the assets makes
every untagged caller (the single-user demo, the CLI, the tests) name a partition first.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from spotify_assets.partitions import USER_TAG
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
    """The registered listener whose Spotify id (their partition key) is ``user_id``."""
    registry = registry or UserRegistry()
    user = registry.by_user_id(user_id)
    if user is None:
        raise UserError(
            f"partition {user_id!r} names no registered user (registry {registry.path}); "
            "add them with `spotify-assets users add NAME` or delete the partition"
        )
    return Listener(spotify.get_user_client(user_id, registry.token_store(user.name)), user_id, user.name)


def run_listener(context: dg.AssetExecutionContext, spotify: SpotifyResource) -> Listener:
    """The run's listener: the tagged user, or the single-user token store without the tag."""
    user_id = context.run.tags.get(USER_TAG)
    if user_id:
        return user_listener(spotify, user_id)
    return Listener(spotify.get_client(), None, None)
