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
event, bob's counts included, stays as it was. ``spotify-assets import`` reports its write to
``bq_plays`` as a runless materialization of the user's partition, which ``delete_run`` never
reaches: those events are deleted.

What has no public API in Dagster 1.13 (the asset index row whose last materialization was a
deleted run's, runless events, the stored text of events, the sensor's cursor) is done by
``users/dagster_internals.py``, the one module that touches Dagster's internals, behind a
contract test pinned to the Dagster version. Last, each SQLite file of the instance is
compacted (``VACUUM``): a deleted row's text stays in the file's free pages until then, unless
SQLite was built with ``SECURE_DELETE`` (Debian's is, so the tests here cannot tell; SQLite's
default build is not).
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
from spotify_assets.users import dagster_internals

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
    parsed = json.loads(text)
    scrubbed = _scrubbed(parsed, pattern)
    if scrubbed == parsed:
        return None
    rewritten = json.dumps(scrubbed)
    if type(dg.deserialize_value(rewritten)) is not type(dg.deserialize_value(text)):
        raise ValueError("rewriting an event naming a deleted listener changed its type")
    return rewritten


def _scrub_events(instance: dg.DagsterInstance, user_id: str) -> int:
    """Rewrite the stored events of the remaining runs that name ``user_id`` (``_scrub_text``);
    returns how many events. See the module docstring for why."""
    pattern = id_pattern(user_id)
    # ``%id%`` is a first cut in SQL; id_pattern decides.
    return dagster_internals.rewrite_events(instance, f"%{user_id}%", lambda text: _scrub_text(text, pattern))


def _forget_in_instigators(instance: dg.DagsterInstance, user_id: str) -> tuple[int, int]:
    """Drop ``user_id`` from the sensor's cursor and purge the ticks naming them: (cursors, ticks)."""
    cursors = ticks = 0
    pattern = id_pattern(user_id)
    for state in instance.all_instigator_state():
        raw = dagster_internals.sensor_cursor(state) if state.instigator_name == SENSOR_NAME else None
        if raw:
            try:
                cursor = json.loads(raw)
            except ValueError:
                cursor = None
            if isinstance(cursor, dict) and user_id in cursor:
                del cursor[user_id]
                run_key = dagster_internals.last_run_key(state)
                instance.update_instigator_state(
                    dagster_internals.with_sensor_cursor(
                        state,
                        cursor=json.dumps(cursor, sort_keys=True),
                        last_run_key=None if pattern.search(run_key or "") else run_key,
                    )
                )
                cursors += 1
        every = instance.get_ticks(state.instigator_origin_id, state.selector_id)
        naming = [t.timestamp for t in every if pattern.search(dg.serialize_value(t.tick_data))]
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
            dagster_internals.remove_run_shard(instance, run_id)
        report["runs"] = len(runs)
        if runs:
            report["asset index rows"] = dagster_internals.repoint_asset_index(instance, runs)
        report["runless events"] = dagster_internals.delete_runless_events(instance, user_id)
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
