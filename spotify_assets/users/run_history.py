"""Deleting a listener from the Dagster instance's own storage (``users remove --delete-data``).

The instance keeps what every run did, and a run of one listener carries their plays: the
run's tags and partition name their Spotify id, its event log holds the asset metadata
(previews of the plays: track names, times), its compute logs what the steps printed, the
asset index the last materialization of each asset, the new-plays sensor its per-user cursor
and its ticks the run keys. ``delete_run_history`` removes all of it through the instance's
public APIs where there is one:

* the runs tagged ``spotify/user=<id>`` (``LEGACY_USER_TAG``, runs of the release before user partitions), the runs of the ``<id>``
  partition (``dagster/partition``, or the ``users`` dimension of a multi-partition) and the
  runs that materialized that partition: ``instance.delete_run`` (run, tags, event log) and
  the compute log manager's ``delete_logs``;
* the user's entry in the new-plays sensor's JSON cursor, and the sensor and schedule ticks
  naming them: ``update_instigator_state`` and ``purge_ticks`` (Dagster can only purge an
  instigator's ticks up to a time, so the ticks older than the last one naming them go too:
  tick history, not data);
* the ``users`` dynamic partition: ``delete_dynamic_partition``.

Metadata of the runs that stay can name a listener too: an unpartitioned asset's
materialization belongs to no listener's run (the household's ``top_ten_tracks``, which before
2026-12-06 kept ``rows_per_scope: {"<id>": 10, ...}``; it now records counts only). Dagster's
event log is append-only and has no API to edit an event, so ``_scrub_events`` rewrites, in the
stored events of every remaining run and in the asset index's copy of the last
materialization, each mapping key naming the listener (dropped) and each string naming them
(their id replaced by ``[deleted listener]``, which is not derived from it); the rest of the
event, bob's counts included, stays as it was.

Three things have no public API in Dagster 1.13 and are done on the storage itself, for SQLite
(``<data>/dagster_home``, the local default) and Postgres alike through the storage's own
SQLAlchemy connection: the asset index row whose ``last_materialization`` was one of the
deleted runs' is pointed at the newest remaining materialization (``delete_run`` leaves it, and
``wipe_asset_partitions`` raises ``NotImplementedError`` on SQL storage), and the cached status
of those assets is wiped so Dagster recomputes it without the partition; and the events
rewritten above. Last, each SQLite
file of the instance is compacted (``VACUUM``): a deleted row's text stays in the file's free
pages until then, unless SQLite was built with ``SECURE_DELETE`` (Debian's is, so the tests here
cannot tell; SQLite's default build is not).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg

from spotify_assets.partitions import USERS_PARTITIONS_NAME

#: The run tag the release before user partitions (2026-12-03) named a run's listener by; an
#: upgraded installation keeps those runs in its history, so a deletion still finds them by it.
LEGACY_USER_TAG = "spotify/user"

#: Dagster's run tags for a partition: the key, and a dimension of a multi-partition.
PARTITION_TAG = "dagster/partition"
DIMENSION_TAG = f"{PARTITION_TAG}/{USERS_PARTITIONS_NAME}"
#: The sensor whose cursor is per user (``sensors.py``).
SENSOR_NAME = "new_plays_sensor"
#: What a listener's id becomes in the events of runs that stay (``_scrub_events``).
DELETED_LISTENER = "[deleted listener]"


def _user_runs(instance: dg.DagsterInstance, user_id: str) -> set[str]:
    """Run ids of every run that moved ``user_id``'s plays (by tag, by partition, by materialization)."""
    runs: set[str] = set()
    for tags in ({LEGACY_USER_TAG: user_id}, {PARTITION_TAG: user_id}, {DIMENSION_TAG: user_id}):
        runs |= {r.dagster_run.run_id for r in instance.get_run_records(dg.RunsFilter(tags=tags))}
    for key in instance.get_asset_keys():
        if user_id not in instance.get_materialized_partitions(key):
            continue
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[user_id]), limit=10_000
        ).records
        runs |= {r.run_id for r in records if r.run_id}
    return runs


def _repoint_asset_index(instance: dg.DagsterInstance, deleted: set[str]) -> int:
    """Point the asset index rows whose last materialization was a deleted run's at the newest
    remaining one (or none); returns how many rows changed. See the module docstring for why."""
    from dagster._core.storage.event_log.schema import AssetKeyTable
    from dagster._serdes import serialize_value

    storage = instance.event_log_storage
    changed = 0
    with storage.index_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            AssetKeyTable.select().where(AssetKeyTable.c.last_run_id.in_(sorted(deleted)))
        ).fetchall()
    for row in rows:
        key = dg.AssetKey.from_db_string(row.asset_key)
        if key is None:
            continue
        newest = instance.fetch_materializations(key, limit=1).records
        values = (
            {"last_materialization": serialize_value(newest[0]), "last_run_id": newest[0].run_id}
            if newest
            else {"last_materialization": None, "last_run_id": None}
        )
        with storage.index_connection() as conn:  # type: ignore[attr-defined]
            conn.execute(
                AssetKeyTable.update().where(AssetKeyTable.c.asset_key == row.asset_key).values(**values)
            )
        instance.wipe_asset_cached_status([key])
        changed += 1
    return changed


def _delete_runless_events(instance: dg.DagsterInstance, user_id: str) -> int:
    """Delete the events recorded without a run for ``user_id``'s partition; returns how many.

    ``spotify-assets import`` reports its write to ``bq_plays`` as a runless materialization of
    the user's partition (``imports/command.py``), which ``delete_run`` never reaches. No public
    API deletes one event (``wipe_asset_partitions`` raises on SQL storage in 1.13.27), so this
    deletes the rows through the storage's own table definitions: in the index and, on SQLite,
    in the shard of runless events (run id ``""``).
    """
    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable

    table = SqlEventLogStorageTable
    where = db.and_(table.c.run_id == "", table.c.partition == user_id)
    storage = instance.event_log_storage
    connections = [storage.index_connection]  # type: ignore[attr-defined]
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


def id_pattern(user_id: str) -> re.Pattern[str]:
    """``user_id`` as a whole id, not inside a longer one: deleting ``sandbox-a`` must leave
    ``sandbox-alice`` alone (Spotify ids are letters, digits, ``.``, ``_`` and ``-``)."""
    return re.compile(rf"(?<![\w.-]){re.escape(user_id)}(?![\w.-])")


def _scrubbed(value: Any, pattern: re.Pattern[str]) -> Any:
    """``value`` (a serialized event, parsed) without the id ``pattern`` finds: mapping keys
    naming it are dropped (a per-listener count goes with its listener), strings naming it have
    the id replaced. Field names of Dagster's records never hold an id: the event keeps its shape."""
    if isinstance(value, dict):
        return {k: _scrubbed(v, pattern) for k, v in value.items() if not pattern.search(k)}
    if isinstance(value, list):
        return [_scrubbed(v, pattern) for v in value]
    if isinstance(value, str):
        return pattern.sub(DELETED_LISTENER, value)
    return value


def _scrub_text(text: str, pattern: re.Pattern[str]) -> str | None:
    """A serialized event (or the asset index's record of one) rewritten by ``_scrubbed``, or
    None when it does not name the id; checked to load again as the same kind of record (an
    error here leaves the row as it was)."""
    from dagster._serdes import deserialize_value

    parsed = json.loads(text)
    scrubbed = _scrubbed(parsed, pattern)
    if scrubbed == parsed:
        return None
    rewritten = json.dumps(scrubbed)
    if type(deserialize_value(rewritten)) is not type(deserialize_value(text)):
        raise ValueError("rewriting an event naming a deleted listener changed its type")
    return rewritten


def _shard_names(path: Path, like: str) -> bool:
    """Whether a run's own SQLite file has an event matching ``like``: a plain read-only query,
    so the storage's per-file set-up (a schema check) is paid only for the few that do; a
    household's hourly runs are thousands of files."""
    if not path.is_file():
        return False
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return (
            con.execute("SELECT 1 FROM event_logs WHERE event LIKE ? LIMIT 1", (like,)).fetchone() is not None
        )
    except sqlite3.OperationalError:
        return True  # not readable this way: let the storage open it
    finally:
        con.close()


def _scrub_events(instance: dg.DagsterInstance, user_id: str) -> int:
    """Rewrite the stored events of the remaining runs that name ``user_id``; returns how many
    events (each counted once: SQLite keeps an asset event in its run's file and in the index).

    See the module docstring for why. Done on the storage's own table definitions through its
    own connections (no public API edits an event): the event log rows in the index (all of
    Postgres's; SQLite's asset events) and, on SQLite, in each remaining run's own file, and the
    asset index's ``last_materialization``.
    """
    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import AssetKeyTable, SqlEventLogStorageTable

    storage = instance.event_log_storage
    like = f"%{user_id}%"  # a first cut in SQL; id_pattern decides
    pattern = id_pattern(user_id)
    connections = [storage.index_connection]  # type: ignore[attr-defined]
    if hasattr(storage, "path_for_shard"):  # SQLite: one file per run, besides the index
        for run_id in sorted(r.dagster_run.run_id for r in instance.get_run_records()):
            if _shard_names(Path(storage.path_for_shard(run_id)), like):
                connections.append(lambda run_id=run_id: storage.run_connection(run_id))  # type: ignore[attr-defined]
    table = SqlEventLogStorageTable
    events: set[tuple[str, str]] = set()
    for connect in connections:
        with connect() as conn:
            rows = conn.execute(
                db.select(table.c.id, table.c.run_id, table.c.event).where(table.c.event.like(like))
            ).fetchall()
            for row in rows:
                rewritten = _scrub_text(row.event, pattern)
                if rewritten is not None:
                    conn.execute(table.update().where(table.c.id == row.id).values(event=rewritten))
                    events.add((row.run_id, row.event))
    with storage.index_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            db.select(AssetKeyTable.c.asset_key, AssetKeyTable.c.last_materialization).where(
                AssetKeyTable.c.last_materialization.like(like)
            )
        ).fetchall()
        changed = []
        for row in rows:
            rewritten = _scrub_text(row.last_materialization, pattern)
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


def _forget_in_instigators(instance: dg.DagsterInstance, user_id: str) -> tuple[int, int]:
    """Drop ``user_id`` from the sensor's cursor and purge the ticks naming them: (cursors, ticks)."""
    from dagster._core.scheduler.instigation import SensorInstigatorData
    from dagster._serdes import serialize_value

    cursors = ticks = 0
    pattern = id_pattern(user_id)
    for state in instance.all_instigator_state():
        data = state.instigator_data
        if isinstance(data, SensorInstigatorData) and state.instigator_name == SENSOR_NAME and data.cursor:
            try:
                cursor = json.loads(data.cursor)
            except ValueError:
                cursor = None
            if isinstance(cursor, dict) and user_id in cursor:
                del cursor[user_id]
                last_run_key = None if pattern.search(data.last_run_key or "") else data.last_run_key
                instance.update_instigator_state(
                    state.with_data(
                        SensorInstigatorData(
                            last_tick_timestamp=data.last_tick_timestamp,
                            last_run_key=last_run_key,
                            min_interval=data.min_interval,
                            cursor=json.dumps(cursor, sort_keys=True),
                            last_tick_start_timestamp=data.last_tick_start_timestamp,
                            last_sensor_start_timestamp=data.last_sensor_start_timestamp,
                            sensor_type=data.sensor_type,
                            last_tick_success_timestamp=data.last_tick_success_timestamp,
                        )
                    )
                )
                cursors += 1
        every = instance.get_ticks(state.instigator_origin_id, state.selector_id)
        naming = [t.timestamp for t in every if pattern.search(serialize_value(t.tick_data))]
        if naming:
            newest = max(naming)
            instance.purge_ticks(state.instigator_origin_id, state.selector_id, before=newest + 1e-3)
            ticks += sum(1 for t in every if t.timestamp <= newest)
    return cursors, ticks


class InstanceBusyError(RuntimeError):
    """A run of the listener is still going, or another process holds the instance's files."""


def compact_sqlite(files: Iterable[Path]) -> int:
    """``VACUUM`` each SQLite file (a deleted row's bytes stay in free pages until then)."""
    done = 0
    for path in files:
        with path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                continue
        con = sqlite3.connect(path, timeout=30)
        try:
            con.execute("VACUUM")
        except sqlite3.OperationalError as exc:
            raise InstanceBusyError(
                f"could not compact {path} ({exc}): stop `dagster dev` / `spotify-assets dev` and run "
                "this again; it finishes what is left"
            ) from exc
        finally:
            con.close()
        done += 1
    return done


def delete_run_history(home: Path, user_id: str) -> Counter[str]:
    """Delete ``user_id`` from the Dagster instance at ``home`` (see the module docstring).

    Returns what went, by kind, for the command's report; nothing when ``home`` has no instance.
    A run of theirs still going is refused (``InstanceBusyError``) before anything is deleted:
    it would write their plays again after the deletion. The SQLite files are compacted on
    every call, so a call cut short after its deletions is finished by the next one.
    """
    report: Counter[str] = Counter()
    if not (home / "dagster.yaml").exists() and not (home / "storage").exists():
        return report
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = _user_runs(instance, user_id)
        for run_id in sorted(runs):
            instance.compute_log_manager.delete_logs(prefix=[run_id])
            instance.delete_run(run_id)
        report["runs"] = len(runs)
        if runs:
            report["asset index rows"] = _repoint_asset_index(instance, runs)
        report["runless events"] = _delete_runless_events(instance, user_id)
        if runs or report["runless events"]:
            instance.wipe_asset_cached_status(list(instance.get_asset_keys()))
        report["events rewritten"] = _scrub_events(instance, user_id)
        report["sensor cursors"], report["ticks"] = _forget_in_instigators(instance, user_id)
        if instance.has_dynamic_partition(USERS_PARTITIONS_NAME, user_id):
            instance.delete_dynamic_partition(USERS_PARTITIONS_NAME, user_id)
            report["partitions"] = 1
    compact_sqlite(p for p in home.rglob("*") if p.is_file())
    return +report


def unfinished_runs(home: Path, user_id: str) -> list[str]:
    """Ids of ``user_id``'s runs that have not finished (queued, starting, started, canceling)."""
    if not (home / "dagster.yaml").exists() and not (home / "storage").exists():
        return []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = _user_runs(instance, user_id)
        records = instance.get_run_records(dg.RunsFilter(run_ids=sorted(runs))) if runs else []
        return sorted(r.dagster_run.run_id for r in records if not r.dagster_run.is_finished)
