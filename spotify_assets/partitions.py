"""The partitions of the graph: one per listener of the household.

A dynamic partition per user (keyed by their Spotify user id, the key their plays are kept
under): ``spotify-assets users add`` and ``users remove`` add and delete them on the Dagster
instance, so the UI lists the household and a run names whose plays it moves.
"""

from __future__ import annotations

import dagster as dg

USERS_PARTITIONS_NAME = "users"

users_partitions = dg.DynamicPartitionsDefinition(name=USERS_PARTITIONS_NAME)

#: The run tag naming whose plays a run moves (a Spotify user id, a ``users`` partition key).
#: The hourly schedule and the sensor set it, one run per user; the ingest asset polls with
#: that user's token (``users/polling.py``). A run without it is the single-user setup's.
USER_TAG = "spotify/user"
