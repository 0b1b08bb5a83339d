"""What a listener's scrobbler says is playing now (``listen_type: playing_now`` at the door).

One small file per listener (``settings.DataLayout.now_playing``), replaced atomically on each
notification. It is not a play and never reaches the lake: a scrobbler sends the listen itself
when the track has played long enough. ``current`` is what the dashboard's "Now playing" can
show (wired next session): the track until it should have ended, ``duration_ms`` after the
notification, or ``DEFAULT_SHOWN`` when the scrobbler did not say how long it is.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spotify_assets.spotify.token_store import write_private_json

#: How long a notification without a duration is shown.
DEFAULT_SHOWN = timedelta(minutes=10)


def save(path: Path, listen: dict[str, Any], received_at: datetime, duration_ms: int | None) -> None:
    """Keep ``listen`` (as sent, validated) as playing from ``received_at``."""
    until = received_at + (timedelta(milliseconds=duration_ms) if duration_ms else DEFAULT_SHOWN)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    payload = {
        "received_at": received_at.astimezone(UTC).isoformat(),
        "until": until.astimezone(UTC).isoformat(),
        "listen": listen,
    }
    write_private_json(path, payload, prefix=".now-playing-")


def current(path: Path, now: datetime) -> dict[str, Any] | None:
    """The listen playing at ``now`` (its ``track_metadata`` and all), or None: none sent, or it ended."""
    try:
        payload = json.loads(path.read_text())
        until = datetime.fromisoformat(payload["until"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    listen = payload.get("listen")
    return listen if isinstance(listen, dict) and now < until else None
