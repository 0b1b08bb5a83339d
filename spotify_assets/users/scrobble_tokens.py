"""The scrobblers' tokens: one per listener, kept as a sha256 only.

A listener's credential, so it lives with the household's other credentials (``users/``); the
door (``scrobbles/server.py``) asks ``who`` a token is.

``spotify-assets users token NAME`` makes a new token for NAME (the old one stops working),
prints it once and stores its sha256 in ``DataLayout.scrobble_tokens`` (0600, written whole and
atomically under a lock). A stolen file reveals no token. A plain sha256 is enough: the token is
32 random bytes, so there is nothing to guess that a slow hash would protect. The door asks
``who`` on each request, so a new token works without restarting it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spotify_assets.file_lock import exclusive_lock
from spotify_assets.spotify.token_store import write_private_json

#: Random bytes in a token (43 URL-safe characters).
TOKEN_BYTES = 32
FORMAT_VERSION = 1


class TokensUnreadable(ValueError):
    """The tokens file exists but is not what this module writes; the message names it."""


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ScrobbleTokens:
    """The tokens file at ``path`` (``settings.DataLayout.scrobble_tokens``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> dict[str, dict[str, Any]]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise TokensUnreadable(
                f"the scrobble tokens file {self.path} is not valid JSON ({exc})"
            ) from None
        entries = raw.get("tokens") if isinstance(raw, dict) else None
        if not isinstance(entries, dict):
            raise TokensUnreadable(f"the scrobble tokens file {self.path} has no 'tokens' object")
        return {k: v for k, v in entries.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}

    def issue(self, name: str, user_id: str) -> str:
        """A new token for listener ``name`` (Spotify user ``user_id``), replacing theirs; returned
        once, never stored. The id is kept with the hash so that a later listener given the same
        name (after ``users remove``) is not let in by the old token."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            entries = self._entries()
            entries[name] = {
                "sha256": token_sha256(token),
                "user_id": user_id,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            write_private_json(
                self.path,
                {"version": FORMAT_VERSION, "tokens": entries},
                prefix=".scrobble-tokens-",
                indent=2,
            )
        return token

    def who(self, token: str) -> tuple[str, str] | None:
        """(name, Spotify user id) of the listener whose token this is, or None. Every entry is
        compared in constant time."""
        wanted = token_sha256(token)
        found = None
        for name, entry in self._entries().items():
            if hmac.compare_digest(entry["sha256"], wanted):
                found = (name, str(entry.get("user_id") or ""))
        return found

    def names(self) -> list[str]:
        """Who has a token (for ``users list``-style reports; no secret in it)."""
        return sorted(self._entries())
