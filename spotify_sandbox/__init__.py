"""A sandbox Spotify Web API on loopback: synthetic but faithful, so local mode needs no account."""

from spotify_sandbox.constants import (
    DEFAULT_NOW,
    DEFAULT_SEED,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
)
from spotify_sandbox.server import SandboxServer, embedded_sandbox

__all__ = [
    "DEFAULT_NOW",
    "DEFAULT_SEED",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_REFRESH_TOKEN",
    "SandboxServer",
    "embedded_sandbox",
]
