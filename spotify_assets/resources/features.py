"""Where audio features come from: a resource choice, because Spotify's own endpoint is closed.

Spotify answers ``403`` on ``/v1/audio-features`` for apps created after 27 Nov 2024, so
the provider is configuration (``SPOTIFY_FEATURES_PROVIDER``):

* ``spotify`` (default): the Web API, for apps that still have access;
* ``reccobeats``: ReccoBeats' free public API, which accepts Spotify track ids;
* ``none``: do not ask anyone; tracks are recorded as ``unavailable``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.spotify.errors import AudioFeaturesUnavailable

PROVIDERS = ("spotify", "reccobeats", "none")


class FeaturesUnavailableError(RuntimeError):
    """The provider refused or is switched off; the tracks are recorded as unavailable."""


class AudioFeaturesResource(dg.ConfigurableResource):
    """Fetches audio features for Spotify track ids from the configured provider."""

    spotify: SpotifyResource
    provider: str = "spotify"
    reccobeats_base_url: str = "https://api.reccobeats.com"

    def fetch(self, track_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Features per id (``None`` where the provider knows the id but has no features)."""
        if self.provider not in PROVIDERS:
            raise ValueError(f"features provider must be one of {PROVIDERS}, got {self.provider!r}")
        if self.provider == "none":
            raise FeaturesUnavailableError("audio features are switched off (SPOTIFY_FEATURES_PROVIDER=none)")
        if self.provider == "reccobeats":
            from spotify_assets.providers.reccobeats import ReccoBeatsClient, ReccoBeatsError

            try:
                return ReccoBeatsClient(base_url=self.reccobeats_base_url).audio_features(track_ids)
            except ReccoBeatsError as exc:
                raise FeaturesUnavailableError(f"{exc}; the tracks are retried on the next run") from exc
        try:
            return self.spotify.get_client().audio_features(track_ids)
        except AudioFeaturesUnavailable as exc:
            raise FeaturesUnavailableError(
                "Spotify refused audio features (403: the endpoint is closed to apps created after "
                "Nov 2024). The tracks are recorded as unavailable; set SPOTIFY_FEATURES_PROVIDER=reccobeats "
                "to fetch them from ReccoBeats instead."
            ) from exc
