"""The warehouse's SQL, one module per table, both dialects side by side (DuckDB, BigQuery).

The warehouse resources (``resources/warehouse.py``, ``resources/bigquery_warehouse.py``) hold a
connection and a lock; what each table's statements say lives here, so a change to a table is
made once for both backends and reviewed side by side.
"""
