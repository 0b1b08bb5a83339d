"""Fixed, public values of the sandbox Spotify API.

These are *not* secrets: they only open the sandbox, which runs on loopback and serves
synthetic data. They exist so local mode needs no Spotify account at all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from spotify_assets.spotify.client import RECENTLY_PLAYED_LIMIT

SANDBOX_CLIENT_ID = "sandbox-client-id"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - a public sandbox value, not a secret
SANDBOX_REFRESH_TOKEN = "sandbox-refresh-token"  # noqa: S105 - valid from start in every sandbox

#: Where the fixed clock stands unless told otherwise: a Friday evening, so the history is busy.
#: The tests' sandboxes stand here; ``demo`` anchors its clock to the current day instead
#: (``spotify_sandbox.demo.demo_now``) unless ``DEMO_NOW_ENV`` pins it.
DEFAULT_NOW = datetime(2026, 11, 20, 21, 0, 0, tzinfo=UTC)
#: Pins ``demo``'s sandbox clock (ISO 8601, e.g. ``2026-11-20T21:00:00Z``): tests that run the
#: demo twice set it, so a run that crosses midnight UTC still finds the same history.
DEMO_NOW_ENV = "SPOTIFY_SANDBOX_NOW"
DEFAULT_SEED = 42
DEFAULT_TOKEN_TTL_S = 3600

#: Spotify only ever exposes the user's latest 50 plays (the fact's one home is the client).
RECENTLY_PLAYED_WINDOW = RECENTLY_PLAYED_LIMIT
#: How far back (hours) the sandbox looks for those 50 plays before giving up.
MAX_LOOKBACK_HOURS = 24 * 60
#: Spotify's cap on ids per /v1/audio-features request.
MAX_AUDIO_FEATURE_IDS = 100

#: The real API's public address, used in hrefs/uris inside catalogue objects.
PUBLIC_API = "https://api.spotify.com"
