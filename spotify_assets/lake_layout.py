"""Where a listener's files go in the lake: the one home of the per-user folder.

Plays, their CSV copies and the raw API answers live under ``<kind>/user_id=<id>/...``, so
each listener's history is its own prefix (listed, loaded or deleted on its own). Files of
the single-user layout (no ``user_id=`` level) stay where they are: the lake is create-only,
and ``users/adoption.py`` records whose they are instead of moving them.

``USER_KINDS`` is the one list of the kinds that have a per-listener folder: ``user_dir``
refuses any other kind, so a writer cannot start a new per-listener folder without adding it
here, and ``users remove --delete-data`` (``users/deletion.py``) deletes every kind listed
here, so a kind added here is deleted without a change to the deletion.

Every other prefix of the lake (shared folders, the import's copies, the redaction records) is
spelled here too and nowhere else (``spotify_assets_tests/test_one_home.py`` checks it): the
deletion and ``rebuild-warehouse`` derive the folders they list from these names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

USER_DIR_PREFIX = "user_id="

#: Played tracks as Parquet: what the warehouse loads. Two granularities under one kind: one file
#: per (listener, day, batch) from the pipeline (``assets/lake.py``, ``plays_day_path``), one per
#: (listener, month, chunk) from a history import (``imports/landing.py``, ``plays_month_path``:
#: a decade of history is ~120 files, not ~3,650). Every reader lists the whole kind
#: (``rebuild-warehouse``, the deletion), so both are read alike.
PLAYS_KIND = "plays"
#: The same plays as CSV (the seed's format), beside the Parquet (``assets/lake.py``).
PLAYS_CSV_KIND = "plays_csv"
#: The raw recently-played pages as Spotify answered them, and the items quarantined from them
#: (``assets/ingest.py``).
RAW_RECENTLY_PLAYED_KIND = "raw/recently_played"
QUARANTINED_RECENTLY_PLAYED_KIND = "quarantine/recently_played"
#: Which export files were imported for a listener: one create-only record per (user, file),
#: ``imports/user_id=<id>/<sha256>.json``. The raw copies (``raw/exports/<sha256>/``) are shared
#: by everyone who imported the same file, so this is how ``users remove --delete-data``
#: knows whose they are.
IMPORTS_KIND = "imports"
#: Listens scrobblers submitted to the door (``spotify-assets scrobble-server``), as received,
#: one create-only JSON-lines file per accepted submission, named by its content so a retried
#: submission lands nothing new: ``inbox/scrobbles/user_id=<id>/listened_date=<day>/<digest>.jsonl``
#: (``scrobbles/inbox.py``). Merging them into the plays is the pipeline's (a sensor, next).
SCROBBLE_INBOX_KIND = "inbox/scrobbles"

#: Every kind of per-listener folder ``<kind>/user_id=<id>/``: played tracks as Parquet
#: (``assets/lake.py``, ``imports/landing.py``) and CSV, the raw API pages and the pages
#: quarantined from them (``assets/ingest.py``), the scrobblers' listens, and the import records (last: the deletion
#: reads them to know whose the shared export copies are, so they go after everything else).
USER_KINDS: tuple[str, ...] = (
    PLAYS_KIND,
    PLAYS_CSV_KIND,
    RAW_RECENTLY_PLAYED_KIND,
    QUARANTINED_RECENTLY_PLAYED_KIND,
    SCROBBLE_INBOX_KIND,
    IMPORTS_KIND,
)

#: Audio features as fetched, shared by every listener: ``track_features/fetched_date=<day>/<digest>.parquet``
#: (``assets/lake.py``) and ``track_features/backfill/<digest>.parquet`` (``assets/ingest.py``);
#: ``rebuild-warehouse`` merges them again in the order they were fetched.
TRACK_FEATURES_PREFIX = "track_features/"
#: Track metadata, content-addressed (``track_metadata/<digest>.parquet``, ``assets/catalog.py``):
#: shared by every listener, so no per-listener folder.
TRACK_METADATA_PREFIX = "track_metadata/"
#: Export files' raw copies (``raw/exports/<sha256 of the original>/<name>``), shared by every
#: listener who imported the same file (``imports/landing.py``).
RAW_EXPORTS_PREFIX = "raw/exports/"
#: An export's rows the import rejected (``quarantine/exports/<sha256>[.<digest>].jsonl``,
#: ``imports/runner.py``).
EXPORTS_QUARANTINE_PREFIX = "quarantine/exports/"
#: Per redacted copy, what it was cut from: ``redactions/<copy's path>.json`` (``imports/landing.py``),
#: and the replacements ``redact-lake`` stages before swapping them in.
REDACTIONS_PREFIX = "redactions/"
REDACTIONS_STAGING_PREFIX = f"{REDACTIONS_PREFIX}staging/"
#: Who the single-user layout's plays belong to (``{"user_id": ...}``), written once
#: (``users/adoption.py``).
ADOPTION_PATH = "users/legacy_owner.json"


class LakeLister(Protocol):
    """What ``legacy_files`` needs of a lake (``resources/lake.LakeResource`` has it)."""

    def list(self, prefix: str = "") -> list[str]: ...


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


def data_kinds() -> list[str]:
    """The per-listener kinds but the import records, read from ``USER_KINDS`` at call time: the
    folders that hold plays and pages (the deletion removes the import records last, separately),
    and the folders the single-user layout wrote without a ``user_id=`` level (``user_dir(kind,
    None)``; import records always name their listener)."""
    return [kind for kind in USER_KINDS if kind != IMPORTS_KIND]


def legacy_files(lake: LakeLister) -> Iterator[tuple[str, str]]:
    """(kind, path) of each file of the single-user layout: under a ``data_kinds()`` folder,
    outside every ``user_id=`` folder. Lazy, so a caller asking whether there is one lists no
    more folders than it must (``users/adoption.py``); ``users/deletion.py`` takes them all."""
    for kind in data_kinds():
        for path in lake.list(kind):
            if not path[len(kind) + 1 :].startswith(USER_DIR_PREFIX):
                yield kind, path


def plays_day_path(kind: str, user_id: str | None, day: str, name: str) -> str:
    """A batch's file for one UTC day: ``plays/user_id=<id>/played_date=<day>/<name>``."""
    return f"{user_dir(kind, user_id)}/played_date={day}/{name}"


def plays_month_path(kind: str, user_id: str | None, month: str, name: str) -> str:
    """An import chunk's file for one UTC month (``YYYY-MM``): ``plays/user_id=<id>/played_month=<month>/<name>``."""
    return f"{user_dir(kind, user_id)}/played_month={month}/{name}"


def import_record_path(user_id: str, sha256: str) -> str:
    return f"{user_dir(IMPORTS_KIND, user_id)}/{sha256}.json"


def scrobble_inbox_path(user_id: str, day: str, name: str) -> str:
    """One accepted submission of the door: ``inbox/scrobbles/user_id=<id>/listened_date=<day>/<name>``."""
    return f"{user_dir(SCROBBLE_INBOX_KIND, user_id)}/listened_date={day}/{name}"
