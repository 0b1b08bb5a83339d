"""Where a listener's files go in the lake: the one home of the per-user folder.

Plays, their CSV copies and the raw API answers live under ``<kind>/user_id=<id>/...``, so
each listener's history is its own prefix (listed, loaded or deleted on its own). Files of
the single-user layout (no ``user_id=`` level) stay where they are: the lake is create-only,
and ``users/adoption.py`` records whose they are instead of moving them.
"""

from __future__ import annotations

USER_DIR_PREFIX = "user_id="


def user_dir(kind: str, user_id: str | None) -> str:
    """``kind/user_id=<id>`` for a listener; ``kind`` alone for the single-user layout (None)."""
    if user_id is None:
        return kind
    if not user_id or "/" in user_id or user_id in {".", ".."}:
        raise ValueError(f"not a usable Spotify user id for a lake path: {user_id!r}")
    return f"{kind}/{USER_DIR_PREFIX}{user_id}"


def plays_day_path(kind: str, user_id: str | None, day: str, name: str) -> str:
    """A batch's file for one UTC day: ``plays/user_id=<id>/played_date=<day>/<name>``."""
    return f"{user_dir(kind, user_id)}/played_date={day}/{name}"


#: Which export files were imported for a listener: one create-only record per (user, file),
#: ``imports/user_id=<id>/<sha256>.json``. The raw copies (``raw/exports/<sha256>/``) are shared
#: by everyone who imported the same file, so this is how ``users remove --delete-data``
#: knows whose they are.
IMPORTS_KIND = "imports"


def import_record_path(user_id: str, sha256: str) -> str:
    return f"{user_dir(IMPORTS_KIND, user_id)}/{sha256}.json"
