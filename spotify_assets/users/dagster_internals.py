"""The one module that reaches beneath Dagster's public API, for deleting a listener.

``users/run_history.py`` deletes a listener from the Dagster instance through public APIs
(``delete_run``, ``fetch_materializations``, ``delete_dynamic_partition``, ...). Four things
have no public API in Dagster 1.13, and live here so that an upgrade breaks one module, loudly,
instead of the deletion silently:

* the asset index row (``AssetKeyTable``) whose ``last_materialization`` was a deleted run's:
  ``delete_run`` leaves it, and ``wipe_asset_partitions`` raises ``NotImplementedError`` on SQL
  storage; :func:`repoint_asset_index` points it at the newest remaining materialization;
* runless events (``spotify-assets import``'s materializations), which no ``delete_run``
  reaches: :func:`delete_runless_events`;
* the stored text of events of runs that stay (the event log is append-only, no API edits an
  event): :func:`rewrite_events`;
* the new-plays sensor's cursor inside its ``SensorInstigatorData``: :func:`sensor_cursor`,
  :func:`with_sensor_cursor`;
* a deleted run's own SQLite file: ``delete_run`` empties it but leaves it (~112 KiB each, one
  per run: the local instance would grow with the number of runs whatever the retention):
  :func:`remove_run_shard` (used by the daily purge, ``retention.py``, and the deletion);
* what a run launcher answers run monitoring (``WorkerStatus``, ``CheckRunHealthResult``): the
  public ``RunLauncher`` hook ``check_run_worker_health`` returns them, but Dagster exports
  neither; ``run_launcher.py`` tells the daemon a local run's worker is gone.

Each works for SQLite (``<data>/dagster_home``, the local default) and Postgres alike through
the event log storage's own SQLAlchemy connections and table definitions.
``spotify_assets_tests/test_dagster_internals.py`` is the contract: it pins the Dagster version
these were verified against (:data:`VERIFIED_DAGSTER_VERSION`) and checks every name, column
and signature used here; an upgrade fails it until someone checks them again and bumps the pin.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as db
from dagster._core.launcher import CheckRunHealthResult as CheckRunHealthResult  # for run_launcher.py
from dagster._core.launcher import WorkerStatus as WorkerStatus
from dagster._core.scheduler.instigation import InstigatorState, SensorInstigatorData
from dagster._core.storage.event_log.schema import (
    AssetEventTagsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)

#: The Dagster release every name used in this module was checked against; the contract test
#: fails on any other installed version (re-check, then bump it with the pin in pyproject.toml).
VERIFIED_DAGSTER_VERSION = "1.13.27"

#: The SQLite file of one run's events (``<storage>/<run id>.db``) names its table so.
_SQLITE_EVENTS_TABLE = "event_logs"

Connect = Callable[[], AbstractContextManager[Any]]


def _index(instance: dg.DagsterInstance) -> Connect:
    return instance.event_log_storage.index_connection  # type: ignore[attr-defined]


def _run_files(instance: dg.DagsterInstance, like: str) -> Iterator[Connect]:
    """Connections to the per-run SQLite files whose events match ``like`` (none on Postgres,
    which keeps every event in the index). A plain read-only query first, so the storage's
    per-file set-up (a schema check) is paid only for the few that match: a household's hourly
    runs are thousands of files."""
    storage = instance.event_log_storage
    if not hasattr(storage, "path_for_shard"):
        return
    for run_id in sorted(r.dagster_run.run_id for r in instance.get_run_records()):
        if _shard_matches(Path(storage.path_for_shard(run_id)), like):
            yield functools.partial(storage.run_connection, run_id)  # type: ignore[attr-defined]


def remove_run_shard(instance: dg.DagsterInstance, run_id: str) -> int:
    """Remove the SQLite file (and its ``-wal``/``-shm``) of a run ``delete_run`` already deleted;
    the bytes freed. Nothing on Postgres (one database, no per-run files). Dagster's own ``wipe``
    unlinks these files the same way; a process that still has one open keeps reading it."""
    storage = instance.event_log_storage
    if not hasattr(storage, "path_for_shard"):
        return 0
    shard = Path(storage.path_for_shard(run_id))
    freed = 0
    for path in (shard, shard.with_name(shard.name + "-wal"), shard.with_name(shard.name + "-shm")):
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed


def _shard_matches(path: Path, like: str) -> bool:
    if not path.is_file():
        return False
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        query = f"SELECT 1 FROM {_SQLITE_EVENTS_TABLE} WHERE event LIKE ? LIMIT 1"
        return con.execute(query, (like,)).fetchone() is not None
    except sqlite3.OperationalError:
        return True  # not readable this way: let the storage open it
    finally:
        con.close()


def repoint_asset_index(instance: dg.DagsterInstance, deleted: set[str]) -> int:
    """Point the asset index rows whose last materialization was one of the ``deleted`` runs'
    at the newest remaining one (or none), and wipe those assets' cached status so Dagster
    recomputes it; returns how many rows changed."""
    connect = _index(instance)
    with connect() as conn:
        rows = conn.execute(
            AssetKeyTable.select().where(AssetKeyTable.c.last_run_id.in_(sorted(deleted)))
        ).fetchall()
    changed = 0
    for row in rows:
        key = dg.AssetKey.from_db_string(row.asset_key)
        if key is None:
            continue
        newest = instance.fetch_materializations(key, limit=1).records
        values = (
            {"last_materialization": dg.serialize_value(newest[0]), "last_run_id": newest[0].run_id}
            if newest
            else {"last_materialization": None, "last_run_id": None}
        )
        with connect() as conn:
            conn.execute(
                AssetKeyTable.update().where(AssetKeyTable.c.asset_key == row.asset_key).values(**values)
            )
        instance.wipe_asset_cached_status([key])
        changed += 1
    return changed


def delete_runless_events(instance: dg.DagsterInstance, partition: str) -> int:
    """Delete the events recorded without a run (run id ``""``) for ``partition``: in the index
    (with their tags) and, on SQLite, in the shard of runless events; returns how many."""
    table = SqlEventLogStorageTable
    where = db.and_(table.c.run_id == "", table.c.partition == partition)
    storage = instance.event_log_storage
    connections: list[Connect] = [_index(instance)]
    if hasattr(storage, "run_connection"):
        connections.append(lambda: storage.run_connection(""))  # type: ignore[attr-defined]
    deleted = 0
    for i, connect in enumerate(connections):
        with connect() as conn:
            ids = [row.id for row in conn.execute(db.select(table.c.id).where(where)).fetchall()]
            if not ids:
                continue
            if i == 0:
                conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id.in_(ids)))
                deleted = len(ids)
            conn.execute(table.delete().where(table.c.id.in_(ids)))
    return deleted


def rewrite_events(instance: dg.DagsterInstance, like: str, rewrite: Callable[[str], str | None]) -> int:
    """Replace each stored event whose text matches the SQL pattern ``like`` by ``rewrite(text)``
    (None: leave it), in the index, in every run's own SQLite file, and in the asset index's
    copy of the last materialization; wipes the cached status of the assets whose copy changed.
    Returns how many events changed, each counted once (SQLite keeps an asset event in its
    run's file and in the index)."""
    table = SqlEventLogStorageTable
    events: set[tuple[str, str]] = set()
    for connect in [_index(instance), *_run_files(instance, like)]:
        with connect() as conn:
            rows = conn.execute(
                db.select(table.c.id, table.c.run_id, table.c.event).where(table.c.event.like(like))
            ).fetchall()
            for row in rows:
                rewritten = rewrite(row.event)
                if rewritten is not None:
                    conn.execute(table.update().where(table.c.id == row.id).values(event=rewritten))
                    events.add((row.run_id, row.event))
    changed = []
    with _index(instance)() as conn:
        rows = conn.execute(
            db.select(AssetKeyTable.c.asset_key, AssetKeyTable.c.last_materialization).where(
                AssetKeyTable.c.last_materialization.like(like)
            )
        ).fetchall()
        for row in rows:
            rewritten = rewrite(row.last_materialization)
            if rewritten is not None:
                conn.execute(
                    AssetKeyTable.update()
                    .where(AssetKeyTable.c.asset_key == row.asset_key)
                    .values(last_materialization=rewritten)
                )
                changed.append(row.asset_key)
    keys = [k for k in (dg.AssetKey.from_db_string(a) for a in changed) if k is not None]
    if keys:
        instance.wipe_asset_cached_status(keys)
    return len(events)


def sensor_cursor(state: InstigatorState) -> str | None:
    """The cursor a sensor's state holds (None for a schedule, or a sensor without one)."""
    data = state.instigator_data
    return data.cursor if isinstance(data, SensorInstigatorData) else None


def last_run_key(state: InstigatorState) -> str | None:
    """The run key of the sensor's last requested run (None for a schedule)."""
    data = state.instigator_data
    return data.last_run_key if isinstance(data, SensorInstigatorData) else None


def with_sensor_cursor(state: InstigatorState, cursor: str, last_run_key: str | None) -> InstigatorState:
    """``state`` with the sensor's cursor and last run key replaced, every other field kept."""
    data = state.instigator_data
    if not isinstance(data, SensorInstigatorData):
        raise TypeError(f"{state.instigator_name} is not a sensor")
    return state.with_data(data._replace(cursor=cursor, last_run_key=last_run_key))
