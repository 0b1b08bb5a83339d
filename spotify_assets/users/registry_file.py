"""The household registry's file format, read here and nowhere else.

``users/registry.py`` (the ``spotify-assets users`` commands and the runs) and the dashboard's
listener picker (``app/listeners.py``) both read ``users/users.json``; this module is the one that
knows its shape, and it imports neither Dagster nor an HTTP client, so the dashboard can use it.

The file is ``{"version": 1, "users": [{"name", "user_id", "display_name", "added_at"}, ...]}``,
written whole and atomically by ``UserRegistry``. An entry without a Spotify id keys nobody's
plays and is skipped; a missing label reads as empty.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The registry's name inside ``settings.DataLayout.users``.
REGISTRY_FILE = "users.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class User:
    """One listener of the household."""

    name: str
    user_id: str
    display_name: str
    added_at: str


class RegistryUnreadable(ValueError):
    """The registry file exists but is not valid JSON; the message names the file."""


def registry_path(users_root: Path) -> Path:
    return users_root / REGISTRY_FILE


def read_users(path: Path) -> list[User]:
    """The registered users, in the order they were added; none when there is no file.

    Raises ``RegistryUnreadable`` for a file that is not JSON (``OSError`` for one that cannot be read).
    """
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise RegistryUnreadable(
            f"the user registry {path} is not valid JSON ({exc}); fix or restore it"
        ) from None
    entries = raw.get("users", []) if isinstance(raw, dict) else []
    return [
        User(**{field: str(entry.get(field) or "") for field in User.__dataclass_fields__})
        for entry in entries
        if isinstance(entry, dict) and entry.get("user_id")
    ]


def registry_payload(users: list[User]) -> dict[str, Any]:
    """The file's content for ``users`` (what ``UserRegistry`` writes)."""
    return {"version": FORMAT_VERSION, "users": [asdict(u) for u in users]}
