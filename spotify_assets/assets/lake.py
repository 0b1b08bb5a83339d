"""Lake: every batch of plays kept as files, the seed's CSV plus typed Parquet."""

import io
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd

from spotify_assets.encoding import content_digest, parquet_bytes
from spotify_assets.lake_layout import PLAYS_CSV_KIND, PLAYS_KIND, TRACK_FEATURES_PREFIX, plays_day_path
from spotify_assets.partitions import users_partitions
from spotify_assets.resources.lake import LakeConflictError, LakeResource, LakeWrite

__all__ = ["gcs_csv", "parquet_bytes"]  # parquet_bytes: re-exported for callers that land batches


def _csv_bytes(df: pd.DataFrame) -> bytes:
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out.to_csv(index=False, lineterminator="\n").encode()


def _land_batch_file(lake: LakeResource, path: str, data: bytes, keys: set[str], kind: str) -> LakeWrite:
    """Create ``path``, or accept the file already there if it holds exactly the same plays.

    A batch's path is a function of its play keys, but its bytes also carry ``ingested_at``:
    two runs that fetched the same plays (overlapping runs, a rerun after a crash) produce
    the same path with different bytes. The lake keeps the first landing; anything else at
    that path (different plays) is a real conflict and fails loudly.
    """
    try:
        return lake.write_bytes(path, data)
    except LakeConflictError:
        existing = lake.read_bytes(path)
        try:
            if kind == "parquet":
                landed = set(pd.read_parquet(io.BytesIO(existing), columns=["play_key"])["play_key"])
            else:
                landed = set(pd.read_csv(io.BytesIO(existing), usecols=["play_key"])["play_key"])
        except Exception as exc:
            raise LakeConflictError(
                f"lake file {path} already exists but cannot be read ({exc}); it is damaged: "
                "inspect or remove it and rerun"
            ) from exc
        if landed != keys:
            raise
        return LakeWrite(path=path, uri=lake.uri(path), created=False)


@dg.asset(group_name="lake", kinds={"csv", "parquet"}, partitions_def=users_partitions, code_version="1")
def gcs_csv(
    context: dg.AssetExecutionContext,
    raw_recent_tracks: pd.DataFrame,
    audio_features: pd.DataFrame,
    lake: LakeResource,
) -> dg.Output[dict[str, Any]]:
    """The batch landed in the lake, partitioned by the day each play ended (UTC).

    Per day: ``plays/user_id=<listener>/played_date=<day>/<batch>.parquet`` (the plays schema,
    what the warehouse loads), ``plays_csv/user_id=<listener>/played_date=<day>/<batch>.csv`` (the seed's format: plays
    joined with their audio features) and ``track_features/fetched_date=<day>/<hash>.parquet``. Paths are a
    function of the batch's content and writes are create-only and atomic, so a retry
    writes nothing new and a reader never sees half a file. (Locally a folder; in cloud
    mode the same code writes to GCS, hence the asset's name.)
    """
    plays = raw_recent_tracks
    batch_id = str(plays["batch_id"].iloc[0])
    user_ids = plays["user_id"].dropna().unique().tolist() if "user_id" in plays else []
    if len(user_ids) > 1:
        raise ValueError(f"a batch holds the plays of one listener, this one of {len(user_ids)}")
    user_id = str(user_ids[0]) if user_ids else None
    if user_id != context.partition_key:
        # One user's run lands (and so merges) that user's plays only: the partition is the writer's scope.
        raise ValueError(f"partition {context.partition_key!r} got a batch of user {user_id!r}'s plays")
    feature_cols = [c for c in audio_features.columns if c not in {"track_id", "duration_ms"}]
    joined = plays.merge(
        audio_features[["track_id", *feature_cols]].rename(columns={"fetched_at": "features_fetched_at"}),
        on="track_id",
        how="left",
    )
    files: dict[str, list[str]] = {"plays_parquet": [], "plays_csv": [], "features_parquet": []}
    created = 0
    days = plays["played_at"].dt.strftime("%Y-%m-%d")
    for day in sorted(days.unique()):
        part = plays[days == day]
        joined_part = joined[joined["play_key"].isin(part["play_key"])]
        keys = set(part["play_key"])
        for kind, path, data in (
            (
                "plays_parquet",
                plays_day_path(PLAYS_KIND, user_id, day, f"{batch_id}.parquet"),
                parquet_bytes(part, "plays"),
            ),
            (
                "plays_csv",
                plays_day_path(PLAYS_CSV_KIND, user_id, day, f"{batch_id}.csv"),
                _csv_bytes(joined_part),
            ),
        ):
            write = _land_batch_file(lake, path, data, keys, kind.rsplit("_", 1)[1])
            files[kind].append(write.path)
            created += int(write.created)
    if len(audio_features):
        # Features change between runs (a provider comes back): name the file by its bytes.
        data = parquet_bytes(audio_features, "track_features")
        digest = content_digest(data)
        write = lake.write_bytes(
            f"{TRACK_FEATURES_PREFIX}fetched_date={datetime.now(UTC):%Y-%m-%d}/{digest}.parquet", data
        )
        files["features_parquet"].append(write.path)
        created += int(write.created)
    manifest = {"batch_id": batch_id, "rows": len(plays), **files}
    context.log.info(
        f"batch {batch_id}: {len(plays)} plays over {days.nunique()} day(s), {created} new file(s)"
    )
    return dg.Output(
        manifest,
        metadata={
            "batch_id": batch_id,
            "rows": len(plays),
            "days": days.nunique(),
            "files_written": created,
            "files_already_present": sum(len(v) for v in files.values()) - created,
            "csv_uri": lake.uri(files["plays_csv"][0]),
        },
    )
