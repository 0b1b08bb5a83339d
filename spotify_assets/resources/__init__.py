"""Dagster resources: the Spotify API, the features provider, the lake, the warehouse and Spark.

Which implementation each deployment gets is decided in ``spotify_assets/deployments.py``."""
