"""A sandbox Spotify Web API on loopback: synthetic but faithful, so local mode needs no account.

Its names are imported on first use (PEP 562): ``spotify-assets dev`` and the command list
import this package, and the server pulls in pandas, which a supervisor that runs for months
must not hold (issue 28).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spotify_sandbox.constants import (
        DEFAULT_NOW,
        DEFAULT_SEED,
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_REFRESH_TOKEN,
    )
    from spotify_sandbox.server import SandboxServer, embedded_sandbox

_HOMES = {
    "DEFAULT_NOW": "spotify_sandbox.constants",
    "DEFAULT_SEED": "spotify_sandbox.constants",
    "SANDBOX_CLIENT_ID": "spotify_sandbox.constants",
    "SANDBOX_CLIENT_SECRET": "spotify_sandbox.constants",
    "SANDBOX_REFRESH_TOKEN": "spotify_sandbox.constants",
    "SandboxServer": "spotify_sandbox.server",
    "embedded_sandbox": "spotify_sandbox.server",
}

__all__ = [
    "DEFAULT_NOW",
    "DEFAULT_SEED",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_REFRESH_TOKEN",
    "SandboxServer",
    "embedded_sandbox",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'spotify_sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
