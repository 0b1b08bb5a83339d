"""GCSLakeResource against a real GCS JSON API (``gcp-storage-emulator``) with the real client.

What is tested how:

* Reading, writing, listing, ``exists``, URIs, identical-rewrite idempotency and the
  different-bytes ``LakeConflictError``: end to end against the emulator with the real
  google-cloud-storage client (the client reaches it through ``STORAGE_EMULATOR_HOST``,
  exactly as it would be redirected in any emulator setup).
  Against the emulator the rewrite cases go through the code's ``exists`` pre-check.
* Create-only enforcement by GCS itself (two writers racing past that pre-check): the
  emulator does NOT enforce ``ifGenerationMatch`` (it overwrites), so these tests cannot
  prove it. ``test_gcs_lake_precondition.py`` covers it at the HTTP level: a
  pytest-httpserver stand-in for the GCS JSON API checks that the upload carries
  ``ifGenerationMatch=0``, answers 412 the way GCS does for an existing object, and the
  tests assert the code maps 412 to "exists" (then compares bytes). What remains unproven
  here is only that real GCS answers 412, which is GCS's documented behaviour.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster_gcp import GCSResource
from google.cloud import storage

from spotify_assets.resources.gcs_lake import GCSLakeResource
from spotify_assets.resources.lake import LakeConflictError, LakeResource
from spotify_assets_tests.fixtures.gcs import GCSEmulator, wait_until_answering


@pytest.fixture
def lake(gcs_emulator: GCSEmulator) -> GCSLakeResource:
    return GCSLakeResource(bucket=gcs_emulator.bucket, prefix="spotify", gcs=GCSResource(project="test"))


def _object_names(bucket: str) -> list[str]:
    return sorted(b.name for b in storage.Client().list_blobs(bucket))


def test_write_then_read_exists_and_uri(lake: GCSLakeResource, gcs_emulator: GCSEmulator) -> None:
    assert not lake.exists("raw/batch=1/part.parquet")
    written = lake.write_bytes("raw/batch=1/part.parquet", b"PAR1 first batch")
    assert written.created is True
    assert written.uri == f"gs://{gcs_emulator.bucket}/spotify/raw/batch=1/part.parquet"
    assert lake.uri("raw/batch=1/part.parquet") == written.uri
    assert lake.exists("raw/batch=1/part.parquet")
    assert lake.read_bytes("raw/batch=1/part.parquet") == b"PAR1 first batch"
    # The object really lives under the prefix in the bucket (what BigQuery/Spark will read).
    assert _object_names(gcs_emulator.bucket) == ["spotify/raw/batch=1/part.parquet"]


def test_list_is_relative_sorted_and_folder_scoped(lake: GCSLakeResource, gcs_emulator: GCSEmulator) -> None:
    lake.write_bytes("raw/b=2/x.parquet", b"2")
    lake.write_bytes("raw/b=1/x.parquet", b"1")
    lake.write_bytes("raw2/y.csv", b"y")
    lake.write_bytes("csv/z.csv", b"z")
    # An object outside the lake's prefix is not part of the lake.
    storage.Client().bucket(gcs_emulator.bucket).blob("dagster/io/pickle").upload_from_string(b"p")

    assert lake.list() == ["csv/z.csv", "raw/b=1/x.parquet", "raw/b=2/x.parquet", "raw2/y.csv"]
    assert lake.list("raw") == ["raw/b=1/x.parquet", "raw/b=2/x.parquet"]
    assert lake.list("raw/") == ["raw/b=1/x.parquet", "raw/b=2/x.parquet"]
    assert lake.list("missing") == []


def test_lake_without_prefix_uses_bucket_root(gcs_emulator: GCSEmulator) -> None:
    lake = GCSLakeResource(bucket=gcs_emulator.bucket)
    lake.write_bytes("a/b.txt", b"ab")
    assert lake.uri("a/b.txt") == f"gs://{gcs_emulator.bucket}/a/b.txt"
    assert lake.list() == ["a/b.txt"]
    assert _object_names(gcs_emulator.bucket) == ["a/b.txt"]


def test_identical_rewrite_is_a_no_op(lake: GCSLakeResource) -> None:
    first = lake.write_bytes("raw/b/part.parquet", b"same bytes")
    again = lake.write_bytes("raw/b/part.parquet", b"same bytes")
    assert (first.created, again.created) == (True, False)
    assert again.uri == first.uri
    assert lake.read_bytes("raw/b/part.parquet") == b"same bytes"


def test_different_bytes_raise_conflict_and_keep_the_original(lake: GCSLakeResource) -> None:
    lake.write_bytes("raw/b/part.parquet", b"original")
    with pytest.raises(LakeConflictError, match=r"gs://.*/spotify/raw/b/part.parquet"):
        lake.write_bytes("raw/b/part.parquet", b"something else")
    assert lake.read_bytes("raw/b/part.parquet") == b"original"


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a"])
def test_paths_must_be_relative_and_normalised(lake: GCSLakeResource, bad: str) -> None:
    with pytest.raises(ValueError):
        lake.write_bytes(bad, b"x")


def test_assets_see_only_the_lake_contract(gcs_emulator: GCSEmulator) -> None:
    """Dagster resolves the nested GCSResource; the asset is typed against LakeResource only."""

    @dg.asset
    def lands_a_file(lake: LakeResource) -> str:
        return lake.write_bytes("raw/from_asset.txt", b"hello").uri

    result = dg.materialize(
        [lands_a_file],
        resources={"lake": GCSLakeResource(bucket=gcs_emulator.bucket, prefix="p", gcs=GCSResource())},
    )
    assert result.success
    assert result.output_for_node("lands_a_file") == f"gs://{gcs_emulator.bucket}/p/raw/from_asset.txt"
    assert (
        storage.Client().bucket(gcs_emulator.bucket).blob("p/raw/from_asset.txt").download_as_bytes()
        == b"hello"
    )


#: A server that binds, writes its port, and answers its first request only after ``sys.argv[2]``
#: seconds (a cold emulator on a busy machine), later ones at once.
_SLOW_FIRST_ANSWER = """
import http.server, pathlib, sys, time
first = [True]
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if first[0]:
            first[0] = False
            time.sleep(float(sys.argv[2]))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
tmp = pathlib.Path(sys.argv[1] + ".tmp")
tmp.write_text(str(server.server_address[1]))
tmp.rename(sys.argv[1])
server.serve_forever()
"""


def test_the_emulators_readiness_wait_survives_a_slow_first_answer(tmp_path: Path) -> None:
    """The first probe times out reading (``ReadTimeout``, not a refused connection): the wait
    tries again and returns the URL instead of failing the session's GCS tests."""
    port_file, log = tmp_path / "port", tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SLOW_FIRST_ANSWER, str(port_file), "0.6"], stdout=out, stderr=out
        )
    try:
        url = wait_until_answering(proc, port_file, "/", log, within_s=20, probe_s=0.2)
        assert url == f"http://127.0.0.1:{port_file.read_text().strip()}"
    finally:
        proc.kill()
        proc.wait()
