"""Where a listener's files go in the lake: the one home of the per-user folder.

Plays, their CSV copies and the raw API answers live under ``<kind>/user_id=<id>/...``, so
each listener's history is its own prefix (listed, loaded or deleted on its own). Files of
the single-user layout (no ``user_id=`` level) stay where they are: the lake is create-only,
and ``users/adoption.py`` records whose they are instead of moving them.

``USER_KINDS`` is the one list of the kinds that have a per-listener folder: ``user_dir``
refuses any other kind, so a writer cannot start a new per-listener folder without adding it
here, and ``users remove --delete-data`` (``users/deletion.py``) deletes every kind listed
here, so a kind added here is deleted without a change to the deletion.
"""

from __future__ import annotations

USER_DIR_PREFIX = "user_id="

#: Which export files were imported for a listener: one create-only record per (user, file),
#: ``imports/user_id=<id>/<sha256>.json``. The raw copies (``raw/exports/<sha256>/``) are shared
#: by everyone who imported the same file, so this is how ``users remove --delete-data``
#: knows whose they are.
IMPORTS_KIND = "imports"

#: Every kind of per-listener folder ``<kind>/user_id=<id>/``: played tracks as Parquet
#: (``assets/lake.py``, ``imports/landing.py``) and CSV, the raw API pages and the pages
#: quarantined from them (``assets/ingest.py``), and the import records (last: the deletion
#: reads them to know whose the shared export copies are, so they go after everything else).
USER_KINDS: tuple[str, ...] = (
    "plays",
    "plays_csv",
    "raw/recently_played",
    "quarantine/recently_played",
    IMPORTS_KIND,
)


def user_dir(kind: str, user_id: str | None) -> str:
    """``kind/user_id=<id>`` for a listener; ``kind`` alone for the single-user layout (None).

    ``kind`` must be one of ``USER_KINDS`` (read at call time): a per-listener folder nobody
    declared there would outlive its listener's deletion.
    """
    if kind not in USER_KINDS:
        raise ValueError(
            f"{kind!r} is not a per-listener kind of the lake; declare it in lake_layout.USER_KINDS "
            "(users remove --delete-data deletes exactly those)"
        )
    if user_id is None:
        return kind
    if not user_id or "/" in user_id or user_id in {".", ".."}:
        raise ValueError(f"not a usable Spotify user id for a lake path: {user_id!r}")
    return f"{kind}/{USER_DIR_PREFIX}{user_id}"


def plays_day_path(kind: str, user_id: str | None, day: str, name: str) -> str:
    """A batch's file for one UTC day: ``plays/user_id=<id>/played_date=<day>/<name>``."""
    return f"{user_dir(kind, user_id)}/played_date={day}/{name}"


def import_record_path(user_id: str, sha256: str) -> str:
    return f"{user_dir(IMPORTS_KIND, user_id)}/{sha256}.json"
