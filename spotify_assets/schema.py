"""The warehouse schemas, read from one source: the JSON files in ``schemas/``.

The same files drive the DuckDB DDL, the BigQuery load-job schema, the Parquet/CSV
types in the lake and the Terraform table definitions, so a column can never exist in
one place and not the other. The files use BigQuery's JSON schema format because that
is the one format all four consumers already understand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

TableName = Literal["plays", "track_features", "track_metadata", "top_ten_tracks", "gaps"]

#: Warehouse table names, named after the assets that own them.
PLAYS_TABLE = "bq_plays"
FEATURES_TABLE = "track_features"
TOP_TEN_TABLE = "top_ten_tracks"
TRACK_METADATA_TABLE = "track_metadata"
#: The poll windows in which plays may have been missed (see ``record_gap``): bookkeeping, but
#: with columns in both warehouses, so its columns are ``schemas/gaps.json`` like the data's.
GAPS_TABLE = "ingest_gaps"
#: The published-at stamp the dashboard reads: a key-value table of one row, not in ``schemas/``.
META_TABLE = "warehouse_meta"

#: Each schema file's table in the warehouse. Terraform reads these names from
#: ``terraform/tables.json``, written from this map (``python -m spotify_assets.schema``;
#: ``test_terraform.py`` fails when the file and the map differ), so it never spells them.
TABLES: dict[TableName, str] = {
    "plays": PLAYS_TABLE,
    "track_features": FEATURES_TABLE,
    "track_metadata": TRACK_METADATA_TABLE,
    "top_ten_tracks": TOP_TEN_TABLE,
    "gaps": GAPS_TABLE,
}

#: ``top_ten_tracks.user_id`` of the rows ranking every listener's plays together; the other
#: rows carry the listener's Spotify user id. A marker string rather than a null, so the
#: column is REQUIRED and one equality (``user_id = '*'`` or ``= 'alice'``) selects a scope in
#: DuckDB and BigQuery alike (a null never equals a query parameter, and BigQuery cannot
#: cluster or key on "is null"); ``*`` is never a Spotify user id (those are letters, digits
#: and ``._-``). ``spark/top_ten.py`` spells it as ``ALL_USERS`` (a test keeps them equal).
ALL_LISTENERS = "*"
#: The column that makes a play unique (see ``plays.json``).
PLAY_KEY = "play_key"
#: How BigQuery clusters ``bq_plays`` (Terraform spells the same list, test_terraform checks):
#: by listener first, as a household's per-user questions (cursor, top ten, a user's pages)
#: read one user's blocks; then by track, for the top ten and per-track lookups.
PLAYS_CLUSTERING = ("user_id", "track_id")


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # BigQuery standard SQL type: STRING, INT64, FLOAT64, BOOL, TIMESTAMP
    mode: str  # REQUIRED or NULLABLE
    description: str

    @property
    def required(self) -> bool:
        return self.mode == "REQUIRED"


_DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "BOOL": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMPTZ",
}
_PANDAS_DTYPES: dict[str, Any] = {
    "STRING": "string",
    "INT64": "Int64",
    "FLOAT64": "Float64",
    "BOOL": "boolean",
    "TIMESTAMP": "datetime64[us, UTC]",
}
_ARROW_TYPES = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


class SchemaError(ValueError):
    """A frame does not fit its table's schema (missing column, null in a REQUIRED column)."""


@cache
def load_schema(table: TableName) -> tuple[Field, ...]:
    """The fields of ``table`` as declared in ``schemas/<table>.json``."""
    text = resources.files("spotify_assets.schemas").joinpath(f"{table}.json").read_text()
    return tuple(Field(**raw) for raw in json.loads(text))


def schema_path(table: TableName) -> str:
    """Filesystem path of the schema file (Terraform and docs point at it)."""
    return str(resources.files("spotify_assets.schemas").joinpath(f"{table}.json"))


def column_names(table: TableName) -> list[str]:
    return [f.name for f in load_schema(table)]


def duckdb_columns_sql(table: TableName) -> str:
    """Column definitions for ``CREATE TABLE``; REQUIRED becomes NOT NULL."""
    return ",\n  ".join(
        f'"{f.name}" {_DUCKDB_TYPES[f.type]}{" NOT NULL" if f.required else ""}' for f in load_schema(table)
    )


def arrow_schema(table: TableName) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, _ARROW_TYPES[f.type], nullable=not f.required) for f in load_schema(table)]
    )


def conform(df: pd.DataFrame, table: TableName) -> pd.DataFrame:
    """Return ``df`` with exactly the schema's columns, in order, with the schema's types.

    Missing NULLABLE columns are added as nulls; extra columns are an error (a typo must
    not silently vanish), and so is a null in a REQUIRED column.
    """
    fields = load_schema(table)
    names = [f.name for f in fields]
    extra = sorted(set(df.columns) - set(names))
    if extra:
        raise SchemaError(f"{table}: unexpected columns {extra}")
    out = pd.DataFrame(index=df.index)
    for f in fields:
        if f.name in df.columns:
            col = df[f.name]
        elif f.required:
            raise SchemaError(f"{table}: missing required column {f.name!r}")
        else:
            col = pd.Series([None] * len(df), index=df.index, dtype="object")
        if f.type == "TIMESTAMP":
            out[f.name] = pd.to_datetime(col, utc=True).astype(_PANDAS_DTYPES[f.type])
        else:
            out[f.name] = col.astype(_PANDAS_DTYPES[f.type])
        if f.required and out[f.name].isna().any():
            raise SchemaError(
                f"{table}: {int(out[f.name].isna().sum())} null(s) in required column {f.name!r}"
            )
    return out.reset_index(drop=True)


def empty_frame(table: TableName) -> pd.DataFrame:
    return conform(pd.DataFrame({f.name: [] for f in load_schema(table)}), table)


def terraform_tables_json() -> str:
    """``terraform/tables.json``: schema name -> table id, what ``terraform/bigquery.tf`` names its tables by."""
    return json.dumps(TABLES, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(terraform_tables_json(), end="")
