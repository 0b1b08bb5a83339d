"""Spotify listening history as Dagster software-defined assets."""
