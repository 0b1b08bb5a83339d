"""Every warehouse table with columns is built from its file in ``schemas/``, in both dialects.

The gaps table was written twice by hand (a DuckDB ``CREATE TABLE`` and a list of BigQuery
``SchemaField``s); now both come from ``schemas/gaps.json`` like the data tables. These tests
ask the real warehouses (a DuckDB file, the BigQuery emulator) what they created.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import duckdb
import pytest

from spotify_assets.resources.warehouse import DuckDBWarehouseResource
from spotify_assets.schema import GAPS_TABLE, TABLES, TableName, load_schema
from spotify_assets.tables import gaps as gaps_table
from spotify_assets_tests.fixtures.bigquery import BigQueryEmulator

DUCKDB_TYPES = {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "BOOL": "BOOLEAN"}


def test_every_schema_file_names_its_table() -> None:
    assert sorted(TABLES) == sorted(get_args(TableName))
    assert TABLES["gaps"] == GAPS_TABLE


@pytest.mark.parametrize("schema", get_args(TableName))
def test_duckdb_tables_are_their_schema_files(tmp_path: Path, schema: TableName) -> None:
    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    now = datetime(2026, 12, 6, tzinfo=UTC)
    gaps_table.record(warehouse, now, now)  # opens the file, so every table is created
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        found = con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [TABLES[schema]],
        ).fetchall()
    expected = [
        (
            f.name,
            "TIMESTAMP WITH TIME ZONE" if f.type == "TIMESTAMP" else DUCKDB_TYPES[f.type],
            "NO" if f.required else "YES",
        )
        for f in load_schema(schema)
    ]
    assert found == expected


def test_bigquery_gaps_table_is_its_schema_file(bigquery_emulator: BigQueryEmulator) -> None:
    warehouse = bigquery_emulator.warehouse()
    warehouse.ensure_tables()
    gaps = bigquery_emulator.client().get_table(warehouse.table_id(GAPS_TABLE))
    assert [(f.name, f.field_type, f.mode) for f in gaps.schema] == [
        (f.name, f.type, f.mode) for f in load_schema("gaps")
    ]
