"""What the ``bq_plays`` merge does with a batch once another source than Spotify is involved.

The merge is the one writer of the plays table (``plays_writes.py``); this module is the part of
it that counts a listen once across sources, as a plan the warehouse applies in one transaction
(DuckDB) or one ``MERGE`` (BigQuery). ``plan`` takes the batch's rows (lake files: Spotify's rows
and scrobbled listens, ``rows.listen_row``) and the warehouse's rows of the same listeners within
``PAD`` of the batch's times, and runs ``matching.decide`` (the rules live there only) on them:

* a row whose key the table holds is already present;
* a scrobble ``decide`` calls a duplicate (its source recorded it: ``scrobbled_at``) is already
  present; one it matches to a play adds its source to that play's ``sources`` and its start to
  ``scrobbled_at``; a new one is its own play (``track_id`` NULL);
* a Spotify row matched to a play no Spotify record holds (a scrobble imported before Spotify's
  export) **replaces** that row: Spotify's ids and times win, the play keeps every source;
* a play no Spotify record holds is the row of its earliest listen (by start, then source name),
  so the table is the same whichever of its listens arrived first.

Batches of Spotify rows only, when the listener has no play without a Spotify id near them
(``needs_plan`` is False), skip all this: the merge inserts new keys as it always did.

A rerun gives the same table: a batch already merged has every row present or recorded in
``scrobbled_at``, so its plan is empty; the plan is applied atomically, so kill -9 leaves the
table before or after it, never between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from spotify_assets.play_sources import SCROBBLE_SOURCES
from spotify_assets.scrobbles.listen import SPOTIFY, Listen
from spotify_assets.scrobbles.matching import Outcome, Seen, decide, play_key, spotify_listen
from spotify_assets.scrobbles.rows import (
    Scrobbled,
    join,
    row_listen,
    scrobbles_of,
    sources_of,
    split,
)
from spotify_assets.tables.plays import Plan


def is_scrobble(source: Any) -> bool:
    return source in SCROBBLE_SOURCES


def needs_plan(incoming: pd.DataFrame, idless_nearby: int) -> bool:
    """Whether the batch goes through ``plan``: it holds scrobbles, or plays without a Spotify id
    (``idless_nearby``: how many the warehouse holds within ``PAD``) could match its rows."""
    return bool(idless_nearby) or bool(incoming["source"].isin(SCROBBLE_SOURCES).any())


@dataclass
class _Play:
    """One play the batch touches: the row it is (``row``, existing or incoming), whether that row is
    in the table now (``existing_key``), and the sources and starts it gains."""

    row: dict[str, Any]
    existing_key: str | None
    sources: set[str]
    scrobbles: set[str]
    changed: bool = False


def _rank(row: dict[str, Any]) -> tuple[int, pd.Timestamp, str]:
    """Which row stands for a play: Spotify's first, else the earliest start, then the source name."""
    spotify = 0 if not is_scrobble(row["source"]) else 1
    return spotify, pd.Timestamp(row["played_at"]), str(row["source"])


def _utc(times: pd.Series) -> pd.Series:
    """Times as UTC-aware datetimes (DuckDB may hand TIMESTAMP back naive, Parquet aware)."""
    times = pd.to_datetime(times)
    if times.dt.tz is None:
        return times.dt.tz_localize("UTC")
    return times.dt.tz_convert("UTC")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts, a missing value None (not NaN or NA), as ``matching`` and the rows expect."""
    return [{str(k): None if pd.isna(v) else v for k, v in r.items()} for r in frame.to_dict("records")]


def plan(incoming: pd.DataFrame, existing: pd.DataFrame) -> Plan:
    """The writes that merge ``incoming`` (rows of the lake files) into a table holding ``existing``
    (its rows of the same listeners within ``PAD``); see the module docstring."""
    result = Plan()
    incoming = incoming.assign(played_at=_utc(incoming["played_at"]))
    existing = existing.assign(played_at=_utc(existing["played_at"]))
    present = set(existing["play_key"])
    for user, rows in incoming.groupby(incoming["user_id"].fillna("\0"), sort=True):
        mine = existing[existing["user_id"].fillna("\0") == user]
        _plan_listener(rows, mine, present, result)
    return result


def _plan_listener(incoming: pd.DataFrame, existing: pd.DataFrame, present: set[str], result: Plan) -> None:
    seen: list[Seen] = []
    plays: dict[str, _Play] = {}
    for row in _records(existing):
        key = str(row["play_key"])
        scrobble = is_scrobble(row["source"])
        had = (split(row["sources"]) or {row["source"]}) if scrobble else sources_of(row["sources"])
        scrobbled = scrobbles_of(row["scrobbled_at"])
        plays[key] = _Play(row, key, had, {s.encode() for s in scrobbled})
        names = str(row["primary_artist_name"]), str(row["track_name"])
        if not scrobble:
            played = row["ms_played"] if row["ms_played"] is not None else row["duration_ms"]
            if played is not None and row["primary_artist_name"] and row["track_name"]:
                seen.append(Seen.spotify(key, row["played_at"], int(played), *names))
        seen.extend(Seen(key, s.source, *names, s.started_at, s.precision_s) for s in scrobbled)

    # The batch's rows: one per key (the first), present keys counted and left alone.
    listens: list[Listen] = []
    row_of: dict[int, dict[str, Any]] = {}
    plain: list[dict[str, Any]] = []
    first: set[str] = set()
    ordered = incoming.assign(_scrobble=incoming["source"].isin(SCROBBLE_SOURCES)).sort_values(
        ["_scrobble", "source", "played_at", "play_key"], kind="stable"
    )
    for record in _records(ordered.drop(columns="_scrobble")):
        key = record["play_key"]
        if key in present or key in first:
            result.count(record["batch_id"], "duplicates")
            continue
        first.add(key)
        if is_scrobble(record["source"]):
            listen: Listen | None = row_listen(record)
        else:  # a polled row has no ms_played: the track's length stands in (matching's rule)
            listen = spotify_listen(record, key, duration_ms=record["duration_ms"])
        if listen is None:  # a Spotify row without names or length: nothing to match it with
            plain.append(record)
            result.count(record["batch_id"], "added")
            continue
        row_of[len(listens)] = record
        listens.append(listen)

    new_plays: dict[str, str] = {}  # decide's name of a play new in this batch -> its row's key
    for i, decision in enumerate(decide(seen, listens)):
        record = row_of[i]
        listen = decision.listen
        batch = record["batch_id"]
        if decision.outcome is Outcome.DUPLICATE:
            if listen.source == SPOTIFY:  # a Spotify row: its key decides, as it always did
                plain.append(record)
                result.count(batch, "added")
            else:
                result.count(batch, "duplicates")
            continue
        entry = (
            None
            if listen.source == SPOTIFY
            else Scrobbled(listen.source, listen.started_at, listen.precision_s)
        )
        if decision.outcome is Outcome.NEW:
            new_plays[play_key(listen)] = record["play_key"]
            plays[record["play_key"]] = _Play(
                dict(record), None, {listen.source}, {entry.encode()} if entry else set(), changed=True
            )
            result.count(batch, "added")
            continue
        target = plays[new_plays.get(decision.play, decision.play)]
        target.sources.add(listen.source)
        if entry is not None:
            target.scrobbles.add(entry.encode())
        if _rank(record) < _rank(target.row):
            target.row = dict(record)
        target.changed = True
        result.count(batch, "matched")

    result.inserts.extend(plain)
    for play in plays.values():
        if not play.changed:
            continue
        seen_in = join(play.sources)
        starts = join(play.scrobbles) or None
        if play.existing_key is not None and play.row["play_key"] == play.existing_key:
            result.updates[play.existing_key] = (seen_in, starts)
            continue
        if play.existing_key is not None:
            result.deletes.append(play.existing_key)
        result.inserts.append(
            {**play.row, "sources": None if seen_in == SPOTIFY else seen_in, "scrobbled_at": starts}
        )
