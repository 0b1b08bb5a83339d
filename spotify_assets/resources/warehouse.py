"""The warehouse: a connection and a lock. What is written, and how, is the tables' business.

``WarehouseResource`` is the resource the assets hold; ``DuckDBWarehouseResource`` (local
default, here) and ``BigQueryWarehouseResource`` (cloud, ``resources/bigquery_warehouse.py``)
implement it. Each table's operations live in ``spotify_assets/tables/`` (one module per
table, both dialects side by side: ``plays``, ``tracks``, ``top_ten``, ``gaps``, ``admin``);
they ask the resource for its ``backend()`` and run their own dialect's statements on it.
Exactly-once is the warehouse's job, not the caller's: ``tables.plays.merge_plays`` inserts
only rows whose ``play_key`` is not there yet, so a retried run, a rerun or two overlapping
runs can load the same batch any number of times. The backends hold the connection, the
lock, the transaction and the snapshot (DuckDB) or the client and job plumbing (BigQuery),
and the tables' DDL (``tables/admin.py``).

DuckDB locks its file per process (one writer, or many read-only readers, never both). The
design that respects that:

* writers serialise on an advisory ``flock`` next to the database (bounded wait), so two
  overlapping runs queue instead of failing with "Could not set lock";
* after each committed write the writer publishes ``warehouse.snapshot.duckdb`` by copy +
  atomic rename while it still holds the lock, and the dashboard reads only that snapshot.
  Readers therefore never hold a lock the pipeline needs, and a reader that has the old
  snapshot open keeps a consistent file until it closes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

import dagster as dg
import duckdb
import pandas as pd
from pydantic import PrivateAttr

from spotify_assets.file_lock import LockTimeout, exclusive_lock
from spotify_assets.resources.dedupe import DuckDBPlaysIndex, FetchingPlaysIndex, PlaysIndex
from spotify_assets.schema import META_TABLE, PLAYS_TABLE
from spotify_assets.settings import snapshot_path_for
from spotify_assets.tables import admin
from spotify_assets.tables.backends import BigQueryBackend, DuckDBBackend


class WarehouseLockTimeout(TimeoutError):
    """Another writer held the warehouse longer than the configured bound."""


class WarehouseResource(dg.ConfigurableResource):
    """Where plays, features and marts live: a backend the table modules write through, ``query``
    for reads in its dialect, ``batch`` to hold it for several writes."""

    @abstractmethod
    def backend(self) -> DuckDBBackend | BigQueryBackend:
        """This warehouse as the table modules use it (``tables/backends.py``): they run their own
        dialect's statements on it."""

    @abstractmethod
    def query(self, sql: str) -> pd.DataFrame:
        """Run read-only SQL (in this warehouse's dialect) and return the result."""

    # -- the dedupe questions asked before a merge (see resources/dedupe.py) ------------
    def plays_index(self) -> PlaysIndex:
        """Where "is this play (or this stream) already here?" is answered for this warehouse.

        Any warehouse can answer through ``query`` (the chunk's time window is fetched and
        joined locally); a warehouse that can join in place overrides this.
        """
        return FetchingPlaysIndex(self)

    @contextmanager
    def batch(self, *, publish: bool = True) -> Iterator[None]:
        """Group several writes (implementations may hold a lock or defer work until the end)."""
        yield

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) AS n FROM {table}")["n"].iloc[0])


class DuckDBWarehouseResource(WarehouseResource):
    """The warehouse as one DuckDB file (default ``$SPOTIFY_DATA_DIR/warehouse.duckdb``)."""

    dialect: ClassVar[Literal["duckdb"]] = "duckdb"

    path: str
    snapshot_path: str = ""
    lock_timeout_s: float = 300.0

    # Per thread: a resource instance may be shared by runs in several threads.
    _tls: threading.local = PrivateAttr(default_factory=threading.local)
    #: The published snapshot has been seen to carry the current tables (checked once).
    _snapshot_current: bool = PrivateAttr(default=False)

    @property
    def _batch_con(self) -> duckdb.DuckDBPyConnection | None:
        return getattr(self._tls, "con", None)

    @_batch_con.setter
    def _batch_con(self, con: duckdb.DuckDBPyConnection | None) -> None:
        self._tls.con = con

    @property
    def _snapshot(self) -> Path:
        return Path(self.snapshot_path) if self.snapshot_path else snapshot_path_for(Path(self.path))

    def backend(self) -> DuckDBBackend:
        return self

    # -- connections -----------------------------------------------------------------
    @contextmanager
    def batch(self, *, publish: bool = True) -> Iterator[None]:
        """Hold the warehouse for several writes: one lock, one connection, one snapshot.

        Each write inside still commits on its own (an import's progress is durable chunk by
        chunk), and reads inside see those writes. Publishing the snapshot copies the whole
        file, so a 1M-play import or a run's plays + features merge publishes it once at the
        end instead of after every write.
        """
        if self._batch_con is not None:
            yield
            return
        with self._exclusive(publish=publish) as con:
            self._batch_con = con
            try:
                yield
            finally:
                self._batch_con = None

    @contextmanager
    def _exclusive(
        self, *, publish: bool = True, rewrite: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Lock (bounded wait) -> connect -> ... -> checkpoint, close, [rewrite,] publish the snapshot.

        ``rewrite``: copy the database into a fresh file and rename it over the old one, so that
        rows deleted in it are not left behind in the old file's free blocks (``delete_user``).
        """
        db = Path(self.path)
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = exclusive_lock(db.with_suffix(".lock"), timeout_s=self.lock_timeout_s)
        try:
            lock.acquire()
        except LockTimeout:
            raise WarehouseLockTimeout(
                f"another pipeline process held {db} for over {self.lock_timeout_s:.0f}s"
            ) from None
        try:
            con = _connect_with_retry(str(db), read_only=False, timeout_s=self.lock_timeout_s)
            try:
                admin.duckdb_ensure_tables(con)
                yield con
                con.execute("CHECKPOINT")
            finally:
                _close(con)
            if rewrite:
                _rewrite_database(db)
            # Only committed data is in the file: publish even if a later write in a
            # batch failed, so readers see everything that did commit.
            if publish or not self._snapshot.exists():
                self._publish_snapshot(db)
        finally:
            lock.release()

    @contextmanager
    def writer(self, *, publish: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write, in its own transaction, inside the current batch or a batch of its own."""
        with self.batch(publish=publish):
            con = self._batch_con
            assert con is not None
            with self._transaction(con):
                yield con

    @contextmanager
    def rewriter(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction, after which the file is rewritten (``_rewrite_database``) and the
        snapshot published from it.

        DuckDB reuses the blocks a DELETE frees but does not wipe them, so deleted rows' bytes
        would stay readable in the file (and in every snapshot copied from it). The file is
        rewritten on every call, even when the transaction changed nothing: a run cut short
        between its DELETE and the rewrite is finished by the next.
        """
        if self._batch_con is not None:
            raise RuntimeError("a rewrite replaces the database file: run it outside a batch")
        with self._exclusive(publish=True, rewrite=True) as con, self._transaction(con):
            yield con

    @classmethod
    @contextmanager
    def _transaction(cls, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """One transaction on ``con``, stamped with its commit time (``_stamp``), rolled back on any error."""
        con.execute("BEGIN TRANSACTION")
        try:
            yield
            cls._stamp(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    @staticmethod
    def _stamp(con: duckdb.DuckDBPyConnection) -> None:
        """Record when this write committed (the dashboard shows the data's age)."""
        con.execute(
            f"INSERT OR REPLACE INTO {META_TABLE} VALUES ('published_at', ?)",
            [datetime.now(UTC).isoformat()],
        )

    def _publish_snapshot(self, db: Path) -> None:
        """Copy the closed database next to itself and rename it over the snapshot (atomic)."""
        target = self._snapshot
        fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".duckdb", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(db, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Reads go to the published snapshot: they never contend with a writer (inside a
        batch they go to the batch's connection, so they see the batch's own writes)."""
        if self._batch_con is not None:
            yield self._batch_con
            return
        if not self._snapshot_current:
            if not self._snapshot.exists() or not _has_current_tables(self._snapshot):
                with self.writer():
                    pass  # create (or upgrade) the warehouse and publish its snapshot
            self._snapshot_current = True
        con = _connect_with_retry(str(self._snapshot), read_only=True, timeout_s=30)
        try:
            yield con
        finally:
            _close(con)

    # -- the contract ----------------------------------------------------------------
    def query(self, sql: str) -> pd.DataFrame:
        with self.reader() as con:
            return con.execute(sql).df()

    def plays_index(self) -> PlaysIndex:
        """Joins run in place, inside the published snapshot (or the current batch's connection,
        so an import's previous chunk is visible to the next one's dedupe)."""
        return DuckDBPlaysIndex(self.reader)


def _rewrite_database(db: Path) -> None:
    """Copy the closed database ``db`` into a fresh file (``COPY FROM DATABASE``: tables, keys
    and rows, none of the free blocks) and rename it over ``db``."""
    fd, tmp = tempfile.mkstemp(prefix=".rewrite-", suffix=".duckdb", dir=db.parent)
    os.close(fd)
    os.unlink(tmp)  # DuckDB creates the file itself

    def quoted(path: Path | str) -> str:
        return "'" + str(path).replace("'", "''") + "'"

    try:
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH {quoted(db)} AS old_db (READ_ONLY)")
            con.execute(f"ATTACH {quoted(tmp)} AS new_db")
            con.execute("COPY FROM DATABASE old_db TO new_db")
            con.execute("DETACH new_db")
            con.execute("DETACH old_db")
        finally:
            con.close()
        os.replace(tmp, db)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        Path(tmp + ".wal").unlink(missing_ok=True)
        raise


def _has_current_tables(snapshot: Path) -> bool:
    """Whether ``snapshot`` has the current plays table (a warehouse of the single-user layout
    lacks ``user_id``, an older one ``sources`` and ``scrobbled_at``, until a writer has run ``admin.duckdb_ensure_tables`` on it)."""
    con = _connect_with_retry(str(snapshot), read_only=True, timeout_s=30)
    try:
        found = con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = ? "
            "AND column_name IN ('user_id', 'sources', 'scrobbled_at')",
            [PLAYS_TABLE],
        ).fetchall()[0][0]
    finally:
        _close(con)
    return found == 3


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


#: Held while a database file is opened or a connection to it closed. Connections of one process
#: to one file share a DuckDB database instance, and the last close tears it down: two runs in
#: threads (test_two_concurrent_in_process_runs_load_each_play_once) could then open the
#: snapshot while the other thread's close was tearing it down, and a query on the new
#: connection failed with "Table Function with name pandas_scan does not exist".
_INSTANCES_LOCK = threading.Lock()


def _close(con: duckdb.DuckDBPyConnection) -> None:
    with _INSTANCES_LOCK:
        con.close()


def _connect_with_retry(path: str, *, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """Open DuckDB, retrying with backoff while another process holds a conflicting lock."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            with _INSTANCES_LOCK:
                return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
