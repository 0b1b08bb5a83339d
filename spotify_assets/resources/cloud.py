"""The cloud stores: lake in GCS, warehouse in BigQuery, Dagster's own outputs in GCS.

Configuration is environment variables only (``dg.EnvVar`` where Dagster should resolve it at
run time and show it in the UI), so the same image runs in any project:

========================== ======== ==================================================
variable                   default  what it sets
========================== ======== ==================================================
SPOTIFY_GCP_PROJECT        required project for GCS and BigQuery clients and jobs
SPOTIFY_GCS_BUCKET         required bucket: lake under ``<prefix>/lake``, Dagster IO under
                                    ``<prefix>/dagster``
SPOTIFY_GCS_PREFIX         spotify  object-name prefix inside the bucket
SPOTIFY_BQ_DATASET         required dataset holding bq_plays, track_features, top_ten_tracks
SPOTIFY_BQ_STAGING_DATASET required dataset for per-batch staging tables (set a table expiry)
SPOTIFY_BQ_LOCATION        EU       BigQuery location of the datasets and all jobs
SPOTIFY_GCS_ENDPOINT       (Google) Cloud Storage JSON API endpoint, e.g. an emulator's
                                    ``http://127.0.0.1:9023``
SPOTIFY_BQ_ENDPOINT        (Google) BigQuery REST endpoint, e.g. ``http://127.0.0.1:9050``;
                                    also handed to the Spark job, which reads the plays
========================== ======== ==================================================

Credentials are never configured here: the clients use Application Default Credentials
(the runtime's service account, or ``gcloud auth application-default login``). A client
given an endpoint is anonymous (what emulators expect), so the endpoints are for emulators
and test doubles; unset, the clients talk to Google with ADC.

The BigQuery variables (project, dataset, location, endpoint) have their one home in
``spotify_assets/settings.py`` (``bigquery_settings``), Dagster-free, because the dashboard
reads the same warehouse with the same variables; this module adds the pipeline's own.

The lake and the data handed between assets (``io_managers/``: typed Parquet/JSON, create-only,
no pickles) live under sibling prefixes, never one inside the other, so listing the lake can
never pick up a handoff file. The IO managers are put on top in ``spotify_assets/deployments.py``
(the one resource factory), so this package never imports ``io_managers`` (which imports it).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from spotify_assets.resources.bigquery_warehouse import BigQueryWarehouseResource
from spotify_assets.resources.gcs_client import GCSClientResource
from spotify_assets.resources.gcs_lake import GCSLakeResource
from spotify_assets.settings import (
    BQ_DATASET_ENV,
    BQ_ENDPOINT_ENV,
    BQ_PROJECT_ENV,
    DEFAULT_BQ_LOCATION,
    LAKE_DIR,
    REQUIRED_BIGQUERY_ENV,
    bigquery_location,
    endpoint,
    missing_env,
)

__all__ = ["DEFAULT_BQ_LOCATION", "REQUIRED_CLOUD_ENV", "cloud_stores", "endpoint", "missing_cloud_env"]

#: Variables cloud mode cannot run without (the others have defaults): the warehouse's
#: (``settings.REQUIRED_BIGQUERY_ENV``) plus the pipeline's own bucket and staging dataset.
REQUIRED_CLOUD_ENV = (*REQUIRED_BIGQUERY_ENV, "SPOTIFY_GCS_BUCKET", "SPOTIFY_BQ_STAGING_DATASET")
DEFAULT_GCS_PREFIX = "spotify"


def missing_cloud_env() -> list[str]:
    """Required cloud variables that are unset or empty (for a clear error before a run starts)."""
    return missing_env(REQUIRED_CLOUD_ENV)


def gcs_prefix() -> str:
    return os.environ.get("SPOTIFY_GCS_PREFIX", DEFAULT_GCS_PREFIX).strip("/")


def cloud_stores() -> dict[str, Any]:
    """``gcs``, ``lake``, ``warehouse`` and ``handoff`` (the store the IO manager keeps the data handed
    between assets in) for cloud mode; Spotify and Spark are the same in both deployments."""
    prefix = gcs_prefix()
    project = dg.EnvVar(BQ_PROJECT_ENV)
    bucket = dg.EnvVar("SPOTIFY_GCS_BUCKET")
    gcs = GCSClientResource(project=project, api_endpoint=endpoint("SPOTIFY_GCS_ENDPOINT"))
    return {
        "gcs": gcs,
        "lake": GCSLakeResource(
            bucket=bucket, prefix=f"{prefix}/{LAKE_DIR}" if prefix else LAKE_DIR, project=project, gcs=gcs
        ),
        "warehouse": BigQueryWarehouseResource(
            project=project,
            dataset=dg.EnvVar(BQ_DATASET_ENV),
            staging_dataset=dg.EnvVar("SPOTIFY_BQ_STAGING_DATASET"),
            location=bigquery_location(),
            api_endpoint=endpoint(BQ_ENDPOINT_ENV),
        ),
        "handoff": GCSLakeResource(
            bucket=bucket, prefix=f"{prefix}/dagster" if prefix else "dagster", project=project, gcs=gcs
        ),
    }
