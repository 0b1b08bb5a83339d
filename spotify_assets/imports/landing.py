"""Land imported plays in the lake before any merge: the lake is the warehouse's source of truth.

An imported play reaches the plays table only through the lake ("the warehouse can be rebuilt
from the lake"): a chunk's new plays are written as
``plays/user_id=<id>/played_month=<YYYY-MM>/<batch>.parquet`` (``lake_layout.plays_month_path``:
bulk history lands by month, not by day, so a decade is ~120 files, not ~3,650; the same
encoder and schema as the pipeline's day files), and the ``bq_plays`` asset merges them in the
run the import starts. ``<batch>`` is ``batch_id_for`` of the chunk's play keys, as for a
pipeline batch, so:

* a re-import lands nothing: its plays are all duplicates, no chunk has plays to land;
* an import killed after landing and before its merge is repeated by the next import with the
  same plays (the warehouse still lacks them), hence the same paths; the bytes differ only
  in ``ingested_at``, and the file already there is accepted when it holds exactly the same
  keys (as ``gcs_csv`` accepts a batch an overlapping run landed). Its rows are then the ones
  merged, with the earlier ``ingested_at``, which the caller is told.

Each export file's raw copy lands too (``land_raw_copy``), under the original file's sha256,
without its IP addresses unless the user keeps them (``redaction``).
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spotify_assets.encoding import parquet_bytes
from spotify_assets.imports.redaction import IP_FIELDS, Redacted, redact
from spotify_assets.lake_layout import PLAYS_KIND, RAW_EXPORTS_PREFIX, REDACTIONS_PREFIX, plays_month_path
from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets.spotify.normalize import batch_id_for


@dataclass(frozen=True)
class LandedPlays:
    """Where a chunk's plays are in the lake (``paths``, one per month) and under which batch id."""

    batch_id: str
    paths: list[str]
    #: ``ingested_at`` of rows in files an earlier, interrupted import had already landed.
    earlier_ingested_at: set[datetime] = field(default_factory=set)


@dataclass
class LandingPlays:
    """A chunk's files on their way into the lake: ``wait`` for them before the merge."""

    batch_id: str
    futures: list[Future[tuple[str, set[datetime]]]]

    def wait(self) -> LandedPlays:
        """Once every file is in place (each fsynced by the lake); the first failure is raised."""
        paths, earlier = [], set()
        for future in self.futures:  # in order; the first failure is raised once all writes finished
            path, stamps = future.result()
            paths.append(path)
            earlier |= stamps
        return LandedPlays(batch_id=self.batch_id, paths=paths, earlier_ingested_at=earlier)


def land_plays(
    lake: LakeResource, plays: pa.Table, pool: Executor, user_id: str | None = None
) -> LandingPlays:
    """Write ``plays`` (typed as ``plays``; all ``user_id``'s) as one Parquet file per UTC month,
    under the listener's folder (``lake_layout``), in ``pool``: the caller goes on with its next
    chunk and ``wait``s before the merge, which must find every file.
    """
    batch_id = batch_id_for(plays["play_key"].to_pylist())
    month = pc.strftime(plays["played_at"], format="%Y-%m")
    order = pc.sort_indices(month)  # stable: chunk order within a month
    arrow = plays.take(order)
    months = month.take(order).to_pylist()
    starts = [i for i in range(len(months)) if i == 0 or months[i] != months[i - 1]]
    ends = [*starts[1:], len(months)]
    futures = []
    for start, end in zip(starts, ends, strict=True):
        path = plays_month_path(PLAYS_KIND, user_id, months[start], f"{batch_id}.parquet")
        futures.append(pool.submit(_land_part, lake, path, arrow.slice(start, end - start)))
    return LandingPlays(batch_id=batch_id, futures=futures)


def _land_part(lake: LakeResource, path: str, part: pa.Table) -> tuple[str, set[datetime]]:
    """Create ``path``, or accept the file already there when it holds exactly these plays."""
    try:
        lake.write_bytes(path, parquet_bytes(part, "plays"))
        return path, set()
    except LakeConflictError:
        existing = pd.read_parquet(io.BytesIO(lake.read_bytes(path)), columns=["play_key", "ingested_at"])
        if set(existing["play_key"]) != set(part["play_key"].to_pylist()):
            raise
        return path, {pd.Timestamp(t).to_pydatetime() for t in existing["ingested_at"].unique()}


def raw_copy_path(sha256: str, name: str) -> str:
    """The lake path of an export file's raw copy: named by the *original* file's hash, so a
    re-import of the same file finds it whether the copy there is byte-exact or redacted."""
    return f"{RAW_EXPORTS_PREFIX}{sha256}/{name}"


def redaction_record(path: str, original: bytes, copy: Redacted) -> tuple[str, bytes]:
    """The record of one redacted copy (path, bytes): deterministic, so writing it again is a no-op."""
    body = {
        "path": path,
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "sha256": hashlib.sha256(copy.data).hexdigest(),
        "removed_fields": list(IP_FIELDS),
        "fields_removed": copy.fields,
    }
    return f"{REDACTIONS_PREFIX}{path}.json", (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def land_raw_copy(lake: LakeResource, sha256: str, name: str, data: bytes, keep_ip: bool) -> int:
    """Land one export file's raw copy; returns how many IP members its copy lacks.

    ``keep_ip``: byte for byte. Otherwise ``redact(data)`` and a record saying so. When the
    same file was imported before with the other setting, the copy already there is kept (the
    lake is create-only; ``spotify-assets redact-lake`` redacts a byte-exact one).
    """
    path = raw_copy_path(sha256, name)
    red = None if keep_ip else redact(data, verify=False)
    copy = data if red is None else red.data
    try:
        lake.write_bytes(path, copy)
    except LakeConflictError:
        existing = lake.read_bytes(path)
        if existing == data:
            return 0
        red = red or redact(data, verify=False)
        if existing != red.data:
            raise
    if red is None or not red.fields:
        return 0
    record_path, record = redaction_record(path, data, red)
    try:
        lake.write_bytes(record_path, record)
    except LakeConflictError:
        # A record an earlier version wrote: it stays, if it describes this same copy.
        if json.loads(lake.read_bytes(record_path)).get("sha256") != json.loads(record)["sha256"]:
            raise
    return red.fields
