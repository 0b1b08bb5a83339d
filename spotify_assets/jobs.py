"""The one job: the six pipeline assets, end to end."""

from __future__ import annotations

import dagster as dg

from spotify_assets.assets import PIPELINE_ASSETS
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
