"""Starts ``bqemulator`` (the BigQuery emulator) with two narrow fixes where it differs from BigQuery.

Run by ``scripts/bigquery-emulator.sh`` with the emulator's own interpreter (it lives in its
own virtual environment: it cannot be installed beside the project's lock), never imported by
the project. Each fix makes the emulator do what real BigQuery documents, so the project's
code is tested as it will run in the cloud, not bent to the emulator:

* **Parquet loads map columns by name.** BigQuery matches Parquet columns to the table's
  columns by name, and adds hive partition keys (``played_date=...`` folders) as columns only
  when ``hivePartitioningOptions`` asks for it. bqemulator 1.4.0 inserts by position and lets
  DuckDB add the partition folder as an extra column, so a lake file fails to load.
* **Multipart uploads with the client's default media type.** ``load_table_from_file`` sends
  its data part as ``*/*``, which BigQuery accepts and bqemulator 1.4.0 refuses.

Differences left as they are (the README lists them): a reused job id runs the job again
instead of answering 409, REQUIRED columns are not enforced, ``dmlStats`` is absent.
"""

from __future__ import annotations

import sys
from typing import Any


def _load_parquet_by_name(path: str, target_ref: str, ctx: Any) -> None:
    ctx.engine.execute(
        f"INSERT INTO {target_ref} BY NAME SELECT * FROM read_parquet(?, hive_partitioning = false)",
        [path],
    )


def patch() -> None:
    from bqemulator.api.routes import upload
    from bqemulator.jobs import executor

    executor._LOAD_FORMAT_HANDLERS["PARQUET"] = _load_parquet_by_name
    executor._load_parquet = _load_parquet_by_name
    if "*/*" not in upload._PERMITTED_MEDIA_CONTENT_TYPES:
        upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")


def main() -> None:
    patch()
    from bqemulator.cli import main as cli_main

    sys.argv = ["bqemulator", *sys.argv[1:]]
    cli_main()


if __name__ == "__main__":
    main()
