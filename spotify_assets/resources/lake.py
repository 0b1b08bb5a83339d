"""The lake: an append-only, create-only file store for every batch the pipeline lands.

Two implementations share one contract, so assets never ask where they run:
``LocalLakeResource`` (a folder; the default) and ``GCSLakeResource`` (a bucket; cloud mode,
in ``resources/gcs_lake.py``). The contract that keeps data safe:

* **create-only**: a path, once written, never changes. Writing the same bytes again is a
  no-op (a retried run); writing *different* bytes to an existing path is an error
  (``LakeConflictError``) rather than a silent overwrite.
* **atomic**: a reader sees a whole file or none (temp file + rename locally, a single
  object upload with ``if_generation_match=0`` on GCS).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import dagster as dg


class LakeConflictError(RuntimeError):
    """A create-only write found a different file already at the path."""


@dataclass(frozen=True)
class LakeWrite:
    """Where a write landed and whether this call created it (False: identical file already there)."""

    path: str
    uri: str
    created: bool


class LakeResource(dg.ConfigurableResource):
    """Create-only file store addressed by relative, '/'-separated paths."""

    @abstractmethod
    def uri(self, path: str) -> str:
        """A URI for ``path`` that other tools (BigQuery load jobs, Spark) can read."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Relative paths of all files under ``prefix``, sorted."""

    @abstractmethod
    def _create(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` atomically unless it exists; True if this call created it."""

    @abstractmethod
    def remove(self, path: str) -> None:
        """Delete ``path``. Outside the pipeline's contract: only operator commands call it
        (``spotify-assets redact-lake``, after the replacement is written and verified); the
        pipeline never does, and its GCS account is not allowed to (no ``storage.objects.delete``)."""

    def write_bytes(self, path: str, data: bytes) -> LakeWrite:
        """Create ``path`` holding ``data``; idempotent for identical bytes, an error otherwise."""
        check_relative(path)
        created = self._create(path, data)
        if not created:
            existing = self.read_bytes(path)
            if hashlib.sha256(existing).digest() != hashlib.sha256(data).digest():
                raise LakeConflictError(
                    f"lake file {self.uri(path)} already exists with different content; "
                    "lake files are create-only, so this batch was not written over it"
                )
        return LakeWrite(path=path, uri=self.uri(path), created=created)


def check_relative(path: str) -> None:
    """Refuse absolute, empty or ``..`` paths: every lake implementation addresses files the same way."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise ValueError(f"lake paths are relative and normalised, got {path!r}")


class LocalLakeResource(LakeResource):
    """The lake as a local folder (default ``$SPOTIFY_DATA_DIR/lake``)."""

    root: str

    def _path(self, path: str) -> Path:
        check_relative(path)
        return Path(self.root) / path

    def uri(self, path: str) -> str:
        return self._path(path).resolve().as_uri()

    def read_bytes(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def list(self, prefix: str = "") -> list[str]:
        root = Path(self.root)
        base = root / prefix if prefix else root
        if not base.exists():
            return []
        return sorted(
            p.relative_to(root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def remove(self, path: str) -> None:
        self._path(path).unlink()

    def _create(self, path: str, data: bytes) -> bool:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            # os.link fails if the target exists: an atomic create-only publish, even
            # against a concurrent writer of the same path.
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(tmp)
