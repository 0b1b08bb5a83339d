"""Whose export is it: the ``username`` an extended streaming history carries, checked against the user.

Spotify's extended export writes the account's user name (its Spotify user id) into every
row. Imported under the wrong listener, a year of someone else's plays would land in their
history and their top ten; so ``spotify-assets import --user NAME`` refuses an export whose
``username`` is not NAME's Spotify id, unless ``--force``. Exports without the field (newer
ones, account data) are taken as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from spotify_assets.imports.parsers import FileKind, iter_export_files

#: A ``"username": "..."`` pair in the raw JSON (found without parsing every row).
_USERNAME = re.compile(rb'"username"\s*:\s*"((?:[^"\\]|\\.)*)"')


def export_usernames(path: str | Path) -> set[str]:
    """Every ``username`` value in the extended history files of the export at ``path``."""
    found: set[str] = set()
    for f in iter_export_files(path):
        if f.kind is FileKind.EXTENDED:
            found.update(json.loads(b'"' + m + b'"') for m in set(_USERNAME.findall(f.read())))
    return found


def mismatch(path: str | Path, user_id: str) -> str | None:
    """Why the export at ``path`` is not ``user_id``'s, or None when nothing says so."""
    others = sorted(export_usernames(path) - {user_id})
    if not others:
        return None
    return (
        f"this export belongs to Spotify user {', '.join(others)}, not {user_id}; import it for "
        "the right user (--user), or pass --force if you are sure"
    )
