"""The asset graph, in the order the data flows: ingest -> lake -> warehouse -> marts."""

from spotify_assets.assets.ingest import audio_features, raw_recent_tracks
from spotify_assets.assets.lake import gcs_csv
from spotify_assets.assets.marts import top_ten_tracks
from spotify_assets.assets.warehouse import bq_plays

PIPELINE_ASSETS = [raw_recent_tracks, audio_features, gcs_csv, bq_plays, top_ten_tracks]

__all__ = ["PIPELINE_ASSETS", "audio_features", "bq_plays", "gcs_csv", "raw_recent_tracks", "top_ten_tracks"]
