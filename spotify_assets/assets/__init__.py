"""The asset graph, in the order the data flows: ingest -> lake -> warehouse -> marts."""

from spotify_assets.assets.history import history_import
from spotify_assets.assets.ingest import audio_features, audio_features_backfill, raw_recent_tracks
from spotify_assets.assets.lake import gcs_csv
from spotify_assets.assets.marts import top_ten_tracks
from spotify_assets.assets.warehouse import bq_plays, track_features

#: What the hourly job materializes.
PIPELINE_ASSETS = [raw_recent_tracks, audio_features, gcs_csv, bq_plays, track_features, top_ten_tracks]
#: The pipeline plus the on-demand writers it reads from: ``track_features`` takes the backfill's
#: output as an input, ``bq_plays`` a history import's (each empty unless it ran in the same
#: run), so ``dg.materialize`` needs them defined: ``dg.materialize(PIPELINE_GRAPH, selection=PIPELINE_ASSETS)``.
PIPELINE_GRAPH = [*PIPELINE_ASSETS, audio_features_backfill, history_import]

__all__ = [
    "PIPELINE_ASSETS",
    "PIPELINE_GRAPH",
    "audio_features",
    "audio_features_backfill",
    "bq_plays",
    "gcs_csv",
    "history_import",
    "raw_recent_tracks",
    "top_ten_tracks",
    "track_features",
]
