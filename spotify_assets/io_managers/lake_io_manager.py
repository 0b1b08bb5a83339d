"""Asset outputs as typed files in a create-only store (a folder locally, GCS in the cloud).

Why not Dagster's ``FilesystemIOManager`` / ``GCSPickleIOManager``: they pickle (a file no
other tool can read, stored beside the lake's own Parquet of the same batch), they overwrite
one object per asset on every run (on GCS: ``storage.objects.delete``), and the GCS one checks
the bucket at start-up (``storage.buckets.get``); the pipeline's least-privilege account has
neither permission. This manager writes through the project's ``LakeResource`` instead, so it
inherits the lake's guarantees: create-only (``ifGenerationMatch=0`` on GCS), atomic, and only
object create/get/list calls.

Layout: ``<asset key>/<run id>.parquet`` for a frame (typed by the schema named in the asset's
``spotify/table`` metadata: the same encoder as the lake's batches), ``<asset key>/<run id>.json``
for anything else JSON can hold (a manifest dict, a path string). Names are per run, never reused, so nothing is overwritten and a re-execution of a
failed run reads its parent run's files (Dagster hands the producing run's id to the loader).
An input whose upstream asset did not run in this run (nor in the run it re-executes) is the
asset's latest materialization (of the same ``users`` partition, for the partitioned chain); an ``AssetIn`` with ``metadata={ONLY_THIS_RUN_KEY: True}`` asks
instead for an empty frame in that case, for a table that merges what its writers produced in
this run and must not merge an old batch again.
"""

from __future__ import annotations

import io
import json
from typing import Any, cast

import dagster as dg
import pandas as pd
from pydantic import Field

from spotify_assets.encoding import parquet_bytes
from spotify_assets.resources.lake import LakeResource
from spotify_assets.schema import TableName, conform, empty_frame, load_schema

#: Asset metadata naming the schema (``schemas/<table>.json``) a frame output is typed by.
HANDOFF_TABLE_KEY = "spotify/table"
#: Input metadata: load an empty frame (``None`` for a JSON value) unless the upstream asset ran in this run.
ONLY_THIS_RUN_KEY = "spotify/only_this_run"
#: Input metadata: the upstream's latest materialization as usual, ``None`` when it has none.
NONE_IF_NEVER_KEY = "spotify/none_if_never"


class HandoffMissingError(RuntimeError):
    """An input's upstream asset has never been materialized (or its file is gone)."""


class LakeIOManager(dg.ConfigurableIOManager):
    """Frames as Parquet, other values (dicts, lists, strings) as JSON, in ``store`` (a lake resource rooted beside the lake)."""

    store: LakeResource = Field(
        description="Create-only file store for the handoff files: a folder, or a GCS prefix beside the lake."
    )

    # -- writing -----------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        path, data = self._encode(context, obj)
        write = self.store.write_bytes(path, data)
        context.add_output_metadata({"handoff_uri": dg.MetadataValue.path(write.uri)})

    def _encode(self, context: dg.OutputContext, obj: Any) -> tuple[str, bytes]:
        base = _base(context.asset_key, context.run_id)
        if isinstance(obj, pd.DataFrame):
            table = _table(context.definition_metadata, context.asset_key)
            return f"{base}.parquet", parquet_bytes(conform(obj, table), table)
        try:
            return f"{base}.json", json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        except TypeError as exc:
            raise TypeError(
                f"{context.asset_key.to_user_string()}: LakeIOManager stores DataFrames (as Parquet) and "
                f"JSON values (dicts, lists, strings, numbers), got {type(obj).__name__}"
            ) from exc

    # -- reading -----------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None or not upstream.has_asset_key:
            raise HandoffMissingError("LakeIOManager loads asset outputs only")
        asset_key = upstream.asset_key
        table = _table_or_none(upstream.definition_metadata)
        run_id = _producing_run(context, upstream)
        if run_id is None:
            if context.definition_metadata.get(ONLY_THIS_RUN_KEY):
                context.log.info(
                    f"{asset_key.to_user_string()} did not run in this run: nothing to take from it"
                )
                return None if table is None else empty_frame(table)
            try:
                run_id = _latest_run(context, asset_key)
            except HandoffMissingError:
                if context.definition_metadata.get(NONE_IF_NEVER_KEY):
                    return None
                raise
        base = _base(asset_key, run_id)
        if table is not None:
            return conform(pd.read_parquet(io.BytesIO(self._read(f"{base}.parquet"))), table)
        return json.loads(self._read(f"{base}.json"))

    def _read(self, path: str) -> bytes:
        if not self.store.exists(path):
            raise HandoffMissingError(f"handoff file {self.store.uri(path)} does not exist")
        return self.store.read_bytes(path)


def _base(asset_key: dg.AssetKey, run_id: str) -> str:
    return "/".join([*asset_key.path, run_id])


def _table_or_none(metadata: Any) -> TableName | None:
    name = (metadata or {}).get(HANDOFF_TABLE_KEY)
    if name is None:
        return None
    table = cast(TableName, str(name))
    load_schema(table)  # an unknown table fails here, loudly
    return table


def _table(metadata: Any, asset_key: dg.AssetKey) -> TableName:
    table = _table_or_none(metadata)
    if table is None:
        raise TypeError(
            f"{asset_key.to_user_string()} returns a DataFrame but names no schema: "
            f"add metadata={{{HANDOFF_TABLE_KEY!r}: '<table>'}} to the asset"
        )
    return table


def _producing_run(context: dg.InputContext, upstream: dg.OutputContext) -> str | None:
    """The run that produced the upstream output in this run's lineage, or None if it is not in it.

    Dagster hands the loader the id of the run that produced the output (this run, or the run a
    re-execution re-executes). For an upstream asset outside the run it builds an output context
    whose run id names no run: so the question asked is the public one, whether the instance
    has a run of that id.
    """
    try:
        run_id = upstream.run_id
    except dg.DagsterInvariantViolationError:
        return None
    return run_id if context.instance.get_run_by_id(run_id) is not None else None


def _latest_run(context: dg.InputContext, asset_key: dg.AssetKey) -> str:
    """The run of the upstream's latest materialization: of the input's own partition when the
    upstream is partitioned by user (another user's batch is never handed over)."""
    keys = context.asset_partition_keys if context.has_asset_partitions else []
    partition = keys[0] if len(keys) == 1 else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    if not records:
        whose = f" for partition {partition!r}" if partition else ""
        raise HandoffMissingError(
            f"{asset_key.to_user_string()} has never been materialized{whose}: materialize it first"
        )
    return records[0].run_id
