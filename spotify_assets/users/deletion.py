"""Deleting a listener's data (``spotify-assets users remove NAME --delete-data``).

Everything the platform keeps of one person goes: their plays in the warehouse (and the
published snapshot, re-published from a rewritten file), their folders in the lake
(``lake_layout.user_dir`` of every kind ``lake_layout.USER_KINDS`` lists: Parquet and CSV
batches, raw API pages, quarantined pages, import records; on a local lake the folders
themselves too, so no empty ``user_id=<id>`` folder names them afterwards), the raw copies of
the export files imported for them with their redaction records and quarantined rows, the
handoff files that hold their rows (a folder locally, the bucket's ``dagster/`` prefix in the
cloud), and their runs in the Dagster instance (``users/run_history.py``: run records, event
logs, compute logs, the sensor's cursor entry, their partition, the events of other runs that
name them rewritten; the SQLite files compacted). The command then removes their token and
its lock file and their registry entry (``registry.remove``): afterwards no path or file under
the data directory carries their name or id (``test_users_delete.py`` searches both).

The raw copies sit under the file's hash, not under a user (``landing.raw_copy_path``): one file
imported for two people is one copy. Whose a copy is comes from the import records
(``lake_layout.import_record_path``) and, for imports made before those records existed, from the
plays' ``batch_id`` (``export-<sha256[:16]>``). A copy another listener also imported stays
until the last of them is deleted.

The lake is create-only for the pipeline; deleting is an operator's act, like ``redact-lake``,
and confined to these two commands. On GCS it needs ``storage.objects.delete``, which the
pipeline's service account does not have (terraform/iam.tf): run it with a bucket owner's
credentials (``gcloud auth application-default login``).

The steps are ordered so that a run cut short is finished by the next one: the lake files
first, then the warehouse, then the handoff files and the Dagster runs, and the import records last (they are what
says whose the shared copies are). Nothing found is a report of zeros.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spotify_assets import lake_layout
from spotify_assets.lake_layout import (
    ADOPTION_PATH,
    IMPORTS_KIND,
    REDACTIONS_PREFIX,
    USER_DIR_PREFIX,
    user_dir,
)
from spotify_assets.lake_layout import EXPORTS_QUARANTINE_PREFIX as QUARANTINE_PREFIX
from spotify_assets.lake_layout import RAW_EXPORTS_PREFIX as RAW_PREFIX
from spotify_assets.lake_layout import REDACTIONS_STAGING_PREFIX as STAGING_PREFIX
from spotify_assets.resources.lake import LakeResource, LocalLakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import PLAYS_TABLE
from spotify_assets.tables import admin
from spotify_assets.users.adoption import legacy_owner
from spotify_assets.users.run_history import (
    InstanceBusyError,
    delete_run_history,
    id_pattern,
    unfinished_runs,
)

_EXPORT_BATCH = "export-"


@dataclass
class Deletion:
    """What ``delete_user_data`` deleted, for the command's report."""

    user_id: str
    warehouse_rows: int = 0
    #: Lake files deleted, by what they were.
    lake_files: Counter[str] = field(default_factory=Counter)
    #: Raw export copies kept because another listener imported the same file too.
    shared_exports_kept: int = 0
    handoff_files: int = 0
    #: What went from the Dagster instance (``users/run_history.py``), by kind.
    dagster: Counter[str] = field(default_factory=Counter)

    @property
    def nothing(self) -> bool:
        return not (self.warehouse_rows or self.lake_files or self.handoff_files or self.dagster)

    def render(self) -> str:
        lines = [f"Deleted the data of Spotify user {self.user_id}:"]
        lines.append(f"  warehouse plays       {self.warehouse_rows:>8,} rows")
        for what in sorted(self.lake_files):
            lines.append(f"  lake {what:<16} {self.lake_files[what]:>8,} files")
        lines.append(f"  handoff files         {self.handoff_files:>8,}")
        for what in sorted(self.dagster):
            lines.append(f"  dagster {what:<13} {self.dagster[what]:>8,}")
        if self.shared_exports_kept:
            lines.append(
                f"  kept {self.shared_exports_kept} raw export copies another listener imported too "
                "(they go with the last of them)"
            )
        if self.nothing:
            lines.append(
                "  nothing to delete: no play, lake file, handoff file or Dagster run of theirs was found"
            )
        return "\n".join(lines)


def _export_owners(lake: LakeResource, warehouse: WarehouseResource) -> dict[str, set[str | None]]:
    """sha256 of each raw export copy -> the listeners it was imported for (None: no user)."""
    shas = {p[len(RAW_PREFIX) :].split("/", 1)[0] for p in lake.list(RAW_PREFIX.rstrip("/"))}
    owners: dict[str, set[str | None]] = {sha: set() for sha in shas}
    for path in lake.list(IMPORTS_KIND):
        folder, _, name = path[len(IMPORTS_KIND) + 1 :].partition("/")
        sha = name.removesuffix(".json")
        if folder.startswith(USER_DIR_PREFIX) and sha in owners:
            owners[sha].add(folder[len(USER_DIR_PREFIX) :])
    batches = warehouse.query(
        f"SELECT DISTINCT user_id, batch_id FROM {PLAYS_TABLE} WHERE batch_id LIKE '{_EXPORT_BATCH}%'"
    )
    by_prefix: dict[str, set[str | None]] = {}
    for user, batch in zip(batches["user_id"], batches["batch_id"], strict=True):
        owner = None if pd.isna(user) else str(user)
        by_prefix.setdefault(str(batch)[len(_EXPORT_BATCH) :], set()).add(owner)
    for sha, found in owners.items():
        found |= by_prefix.get(sha[:16], set())
    return owners


def _export_files(lake: LakeResource, shas: set[str]) -> list[tuple[str, str]]:
    """(what, path) of every lake file that is or describes one of these exports' copies."""
    if not shas:
        return []

    def of(path: str) -> bool:
        if path.startswith(RAW_PREFIX):
            return path[len(RAW_PREFIX) :].split("/", 1)[0] in shas
        if path.startswith(QUARANTINE_PREFIX):
            return path[len(QUARANTINE_PREFIX) :].split(".", 1)[0] in shas
        return False

    found = [("raw exports", p) for p in lake.list(RAW_PREFIX.rstrip("/")) if of(p)]
    found += [("export quarantine", p) for p in lake.list(QUARANTINE_PREFIX.rstrip("/")) if of(p)]
    for path in lake.list(REDACTIONS_PREFIX.rstrip("/")):
        inner = (
            path[len(STAGING_PREFIX) :] if path.startswith(STAGING_PREFIX) else path[len(REDACTIONS_PREFIX) :]
        )
        if of(inner.removesuffix(".json")) or of(inner):
            found.append(("redactions", path))
    return found


def _legacy_files(lake: LakeResource) -> list[tuple[str, str]]:
    """The single-user layout's files (no ``user_id=`` level): the legacy owner's."""
    found = list(lake_layout.legacy_files(lake))
    if lake.exists(ADOPTION_PATH):
        found.append(("legacy owner record", ADOPTION_PATH))
    return found


def _drop_folders(lake: LakeResource, folders: list[str]) -> None:
    """Remove these folders of a local lake, whatever is left in them.

    Their files are gone by now; what stays is the empty ``user_id=<id>`` folder (its name is
    the listener's id), the empty ``played_date=`` / ``fetched_date=`` folders under it, and any
    ``.tmp-`` file a write cut short left (``LakeResource.list`` hides those; they hold the
    listener's rows too). Each folder is exactly one listener's (``lake_layout.user_dir``), so
    nobody else's file is in it. An object store has no folders: nothing to do there.
    """
    if not isinstance(lake, LocalLakeResource):
        return
    for folder in folders:
        path = Path(lake.root) / folder
        if path.is_dir():
            shutil.rmtree(path)


def _prune_empty(lake: LakeResource, folders: list[str]) -> None:
    """Remove the folders of a local lake that the deletion emptied (the raw export copies' ``<sha256>/``)."""
    if not isinstance(lake, LocalLakeResource):
        return
    root = Path(lake.root)
    for folder in folders:
        path = root / folder
        while path != root and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
            path = path.parent


def _holds_user(path: str, data: bytes, user_id: str) -> bool:
    """Whether a handoff file holds a row of ``user_id`` (a ``user_id`` value or a key of theirs;
    in a JSON file, their id whole: ``sandbox-a`` is not in ``user_id=sandbox-alice/``)."""
    if not path.endswith(".parquet"):
        return id_pattern(user_id).search(data.decode("utf-8", errors="replace")) is not None
    table = pq.read_table(io.BytesIO(data))
    prefix = f"{user_id}|"
    for name in table.column_names:
        column = table.column(name)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        for value in column.to_pylist():
            if value is not None and (value == user_id or value.startswith(prefix)):
                return True
    return False


def delete_user_data(
    user_id: str,
    warehouse: WarehouseResource,
    lake: LakeResource,
    handoff: LakeResource | None = None,
    dagster_home: Path | None = None,
) -> Deletion:
    """Delete ``user_id``'s plays and files (see the module docstring); idempotent.

    ``handoff``: the store the assets hand data through (``io_managers/``: ``handoff/`` locally,
    the bucket's ``dagster/`` prefix in the cloud); its files holding their rows go.
    ``dagster_home``: the Dagster instance whose runs, event logs, sensor cursor and partition
    of theirs go too (``users/run_history.py``); None leaves the instance alone.
    """
    if dagster_home is not None:
        going = unfinished_runs(dagster_home, user_id)
        if going:
            raise InstanceBusyError(
                f"{len(going)} run(s) of {user_id} have not finished ({', '.join(going)}): wait for "
                "them or cancel them in the Dagster UI, then run this again; nothing was deleted"
            )
    report = Deletion(user_id)
    owners = _export_owners(lake, warehouse)
    is_legacy_owner = legacy_owner(lake) == user_id
    # The single-user layout's owner also owns the copies nobody else is recorded for: imports
    # without ``--user`` write no record, and a copy whose rows were all quarantined has no play.
    theirs = {sha for sha, who in owners.items() if user_id in who or (is_legacy_owner and not who - {None})}
    alone = {sha for sha in theirs if not (owners[sha] - {user_id, None})}
    report.shared_exports_kept = len(theirs - alone)

    kinds = lake_layout.data_kinds()
    doomed = [(kind, p) for kind in kinds for p in lake.list(user_dir(kind, user_id))]
    doomed += _export_files(lake, alone)
    if is_legacy_owner:
        doomed += _legacy_files(lake)
    for what, path in doomed:
        lake.remove(path)
        report.lake_files[what] += 1
    _drop_folders(lake, [user_dir(kind, user_id) for kind in kinds])
    _prune_empty(lake, sorted({path.rsplit("/", 1)[0] for _, path in doomed if "/" in path}))

    report.warehouse_rows = admin.delete_user(warehouse, user_id)

    if handoff is not None:
        for path in handoff.list():
            if _holds_user(path, handoff.read_bytes(path), user_id):
                handoff.remove(path)
                report.handoff_files += 1

    if dagster_home is not None:
        report.dagster = delete_run_history(dagster_home, user_id)

    for path in lake.list(user_dir(IMPORTS_KIND, user_id)):
        with contextlib.suppress(FileNotFoundError):
            lake.remove(path)
        report.lake_files["import records"] += 1
    _drop_folders(lake, [user_dir(IMPORTS_KIND, user_id)])
    return report
