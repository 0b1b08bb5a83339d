"""Fixed, public values of the sandbox Spotify API.

These are *not* secrets: they only open the sandbox, which runs on loopback and serves
synthetic data. They exist so local mode needs no Spotify account at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

SANDBOX_CLIENT_ID = "sandbox-client-id"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - a public sandbox value, not a secret
SANDBOX_REFRESH_TOKEN = "sandbox-refresh-token"  # noqa: S105 - valid from start in every sandbox

#: Where the fixed clock stands unless told otherwise: a Friday evening, so the history is busy.
DEFAULT_NOW = datetime(2026, 11, 20, 21, 0, 0, tzinfo=UTC)
DEFAULT_SEED = 42
DEFAULT_TOKEN_TTL_S = 3600

#: Spotify only ever exposes the user's latest 50 plays.
RECENTLY_PLAYED_WINDOW = 50
#: How far back (hours) the sandbox looks for those 50 plays before giving up.
MAX_LOOKBACK_HOURS = 24 * 60
#: Spotify's cap on ids per /v1/audio-features request.
MAX_AUDIO_FEATURE_IDS = 100

#: The real API's public address, used in hrefs/uris inside catalogue objects.
PUBLIC_API = "https://api.spotify.com"
