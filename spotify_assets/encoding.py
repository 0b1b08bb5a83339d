"""How the project turns data into bytes and names: the one Parquet encoder, the one content digest.

Every Parquet file the project writes (lake batches, features, the handoff between assets,
BigQuery staging uploads) goes through ``parquet_bytes``, so a file written by one path reads
the same as one written by another, and the same rows always give the same bytes (the
create-only lake recognises a retried write as identical). Every name derived from content
(a batch id, a raw-response file, a staging table) goes through ``content_digest``, so the
length and the hash cannot drift apart between writers. No Dagster import: the dashboard and
the benchmarks may use it.
"""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spotify_assets.schema import TableName, arrow_schema

#: Hex characters kept from a sha256: 80 bits, far beyond any collision risk for a listener's batches.
DIGEST_CHARS = 20


def content_digest(data: bytes) -> str:
    """A short, stable name for ``data`` (the first ``DIGEST_CHARS`` hex digits of its sha256)."""
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def parquet_bytes(df: pd.DataFrame | pa.Table, table: TableName) -> bytes:
    """``df`` as Parquet typed by ``schemas/<table>.json`` (zstd, statistics, deterministic bytes).

    An Arrow table is taken as it is (cast to the schema): the history import writes one file
    per day of a chunk, and zero-copy slices of one Arrow table cost far less than a pandas
    frame per day.
    """
    schema = arrow_schema(table)
    arrow = (
        df.select(schema.names).cast(schema)
        if isinstance(df, pa.Table)
        else pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    )
    return arrow_parquet_bytes(arrow)


def arrow_parquet_bytes(arrow: pa.Table) -> bytes:
    """An Arrow table already typed by its caller as Parquet, with the same writer settings."""
    buf = io.BytesIO()
    # Fixed writer settings keep the bytes deterministic for the same rows, so a retried
    # write of the same batch is recognised as identical by the create-only lake.
    pq.write_table(
        arrow,
        buf,
        compression="zstd",
        write_statistics=True,
        store_schema=True,
    )
    return buf.getvalue()
