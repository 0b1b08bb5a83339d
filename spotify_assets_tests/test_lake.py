"""The local lake: create-only, atomic, idempotent for identical bytes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from spotify_assets.resources.lake import LakeConflictError, LocalLakeResource


def test_write_is_create_only_and_idempotent(tmp_path: Path) -> None:
    lake = LocalLakeResource(root=str(tmp_path))
    first = lake.write_bytes("plays/played_date=2026-11-20/b1.csv", b"a,b\n1,2\n")
    again = lake.write_bytes("plays/played_date=2026-11-20/b1.csv", b"a,b\n1,2\n")
    assert (first.created, again.created) == (True, False)
    assert lake.read_bytes(first.path) == b"a,b\n1,2\n"
    with pytest.raises(LakeConflictError, match="create-only"):
        lake.write_bytes("plays/played_date=2026-11-20/b1.csv", b"different")
    assert lake.read_bytes(first.path) == b"a,b\n1,2\n"
    assert lake.list() == ["plays/played_date=2026-11-20/b1.csv"]
    assert first.uri.startswith("file://") and first.uri.endswith("b1.csv")


def test_no_temp_files_left_and_paths_are_checked(tmp_path: Path) -> None:
    lake = LocalLakeResource(root=str(tmp_path))
    lake.write_bytes("x/y.bin", b"1")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y.bin"]
    for bad in ["/abs", "../escape", "a//b", "a/./b", ""]:
        with pytest.raises(ValueError):
            lake.write_bytes(bad, b"1")


def test_concurrent_writers_of_one_path_create_it_once(tmp_path: Path) -> None:
    lake = LocalLakeResource(root=str(tmp_path))
    created: list[bool] = []
    barrier = threading.Barrier(8)

    def write() -> None:
        barrier.wait()
        created.append(lake.write_bytes("race/file.parquet", b"same bytes").created)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False] * 7 + [True]
