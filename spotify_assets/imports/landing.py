"""Land imported plays in the lake exactly as the pipeline lands its batches, before any merge.

The lake is the warehouse's source of truth ("the warehouse can be rebuilt from the lake"), so
an imported play reaches the plays table only through the lake: the chunk's new plays are
written as ``plays/played_date=<day>/<batch>.parquet`` (the pipeline's layout, the same
encoder and schema), then merged with ``warehouse.merge_plays_from_lake``, the call
``bq_plays`` makes. ``<batch>`` is ``batch_id_for`` of the chunk's play keys, as for a
pipeline batch, so:

* a re-import lands nothing: its plays are all duplicates, no chunk has plays to land;
* an import killed after landing and before its merge is repeated by the next import with the
  same plays (the warehouse still lacks them), hence the same paths; the bytes differ only
  in ``ingested_at``, and the file already there is accepted when it holds exactly the same
  keys (as ``gcs_csv`` accepts a batch an overlapping run landed). Its rows are then the ones
  merged, with the earlier ``ingested_at``, which the caller is told.
"""

from __future__ import annotations

import io
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from spotify_assets.encoding import parquet_bytes
from spotify_assets.lake_layout import plays_day_path
from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets.schema import arrow_schema
from spotify_assets.spotify.normalize import batch_id_for


@dataclass(frozen=True)
class LandedPlays:
    """Where a chunk's plays are in the lake (``paths``, one per day) and under which batch id."""

    batch_id: str
    paths: list[str]
    #: ``ingested_at`` of rows in files an earlier, interrupted import had already landed.
    earlier_ingested_at: set[datetime] = field(default_factory=set)


def land_plays(
    lake: LakeResource, plays: pd.DataFrame, pool: Executor, user_id: str | None = None
) -> LandedPlays:
    """Write ``plays`` (conformed to ``plays``; all ``user_id``'s) as one Parquet file per day, under
    the listener's folder (``lake_layout``); writes overlap in ``pool``.

    Returns only once every file is in place: the merge that follows must find all of them.
    """
    batch_id = batch_id_for(plays["play_key"].tolist())
    day = plays["played_at"].dt.floor("D")
    order = np.argsort(day.to_numpy(), kind="stable")  # by day, chunk order within a day
    arrow = pa.Table.from_pandas(plays.iloc[order], schema=arrow_schema("plays"), preserve_index=False)
    days = day.to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    ends = np.r_[starts[1:], len(days)]
    futures = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        path = plays_day_path(
            "plays", user_id, f"{pd.Timestamp(days[start]):%Y-%m-%d}", f"{batch_id}.parquet"
        )
        futures.append(pool.submit(_land_day, lake, path, arrow.slice(start, end - start)))
    paths, earlier = [], set()
    for future in futures:  # in order; the first failure is raised once all writes finished
        path, stamps = future.result()
        paths.append(path)
        earlier |= stamps
    return LandedPlays(batch_id=batch_id, paths=paths, earlier_ingested_at=earlier)


def _land_day(lake: LakeResource, path: str, part: pa.Table) -> tuple[str, set[datetime]]:
    """Create ``path``, or accept the file already there when it holds exactly these plays."""
    try:
        lake.write_bytes(path, parquet_bytes(part, "plays"))
        return path, set()
    except LakeConflictError:
        existing = pd.read_parquet(io.BytesIO(lake.read_bytes(path)), columns=["play_key", "ingested_at"])
        if set(existing["play_key"]) != set(part["play_key"].to_pylist()):
            raise
        return path, {pd.Timestamp(t).to_pydatetime() for t in existing["ingested_at"].unique()}
