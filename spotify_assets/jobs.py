"""The jobs the UI offers: the pipeline (the six pipeline assets, end to end) and a history import."""

from __future__ import annotations

import dagster as dg

from spotify_assets.assets import PIPELINE_ASSETS
from spotify_assets.assets.history import history_import
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.instance_config import PIPELINE_MAX_RUNTIME_S

#: Runs carry this tag so the deployed instance can cap them at one at a time
#: (deploy/dagster.yaml); locally, correctness does not depend on it (the merge is idempotent).
PIPELINE_TAG = {"spotify/pipeline": "hourly"}

spotify_pipeline_job = dg.define_asset_job(
    name="spotify_pipeline",
    selection=dg.AssetSelection.assets(*PIPELINE_ASSETS),
    description="Fetch new plays and their features, land them in the lake, merge into the warehouse, recompute the top ten.",
    # Run monitoring fails a run that outlives this (its worker gone): see instance_config.
    tags={**PIPELINE_TAG, "dagster/max_runtime": str(PIPELINE_MAX_RUNTIME_S)},
    executor_def=dg.in_process_executor,
)


#: A listening history's import, as the UI offers it: give ``history_import``'s ``path`` (or the
#: scrobble server's ``inbox``) in the Launchpad and pick the listener's partition; the run lands the
#: new plays in the lake and ``bq_plays`` merges them, as ``spotify-assets import`` does
#: (``import_run.import_export``, which runs the same two assets).
history_import_job = dg.define_asset_job(
    name="import_history",
    selection=dg.AssetSelection.assets(history_import, bq_plays),
    description="Import a listening history (a Spotify, Last.fm or ListenBrainz export): set "
    "history_import's path in the Launchpad and pick the listener; the new plays land in the lake "
    "and bq_plays merges them.",
    executor_def=dg.in_process_executor,
)
