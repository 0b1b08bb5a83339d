"""The partitions of the graph: one per listener of the household.

A dynamic partition per user, keyed by their Spotify user id (the key their plays are kept
under). ``spotify-assets users add`` and ``users remove`` add and delete them on the Dagster
instance; the single-user setup's listener (the token store's) gets one too, from ``demo``,
``dev`` or the first hourly tick, which ask ``GET /v1/me`` whose it is. The ingest, lake and
warehouse assets are partitioned by it, so a run (one per partition) names whose plays it
moves, and the UI lists the household.
"""

from __future__ import annotations

import dagster as dg

USERS_PARTITIONS_NAME = "users"

users_partitions = dg.DynamicPartitionsDefinition(name=USERS_PARTITIONS_NAME)


def add_user_partition(instance: dg.DagsterInstance, user_id: str) -> bool:
    """Add ``user_id``'s partition unless it is there; True when it was added."""
    if instance.has_dynamic_partition(USERS_PARTITIONS_NAME, user_id):
        return False
    instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [user_id])
    return True
