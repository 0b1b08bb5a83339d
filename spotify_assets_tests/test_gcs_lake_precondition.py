"""Create-only on GCS, at the HTTP level: what the emulator cannot show.

``gcp-storage-emulator`` ignores ``ifGenerationMatch``, so ``test_gcs_lake.py`` cannot prove
that the lake relies on GCS to refuse an overwrite. Here the real google-cloud-storage client
(redirected with ``STORAGE_EMULATOR_HOST``) talks to a pytest-httpserver stand-in for the GCS
JSON API that behaves like GCS in the race the precondition exists for: the object does not
exist when the writer checks, then another writer creates it, so the upload is answered
``412 Precondition Failed``.

Tested here: (1) every upload request carries ``ifGenerationMatch=0``; (2) a 412 is mapped
to "exists" (``created=False``) and the bytes are then compared, so identical bytes are a
no-op and different bytes raise ``LakeConflictError``; (3) a 200 means "created". Not tested:
that real GCS answers 412 (its documented behaviour for ``ifGenerationMatch=0``).
"""

from __future__ import annotations

import json

import pytest
from dagster_gcp import GCSResource
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from spotify_assets.resources.gcs_lake import GCSLakeResource
from spotify_assets.resources.lake import LakeConflictError

BUCKET = "lake-bucket"
NAME = "spotify/raw/b=1/part.parquet"


class RacingGCS:
    """GCS JSON API for one object that 'appears' between the exists check and the upload."""

    def __init__(self, upload_status: int, stored: bytes) -> None:
        self.upload_status = upload_status
        self.stored = stored
        self.uploads: list[Request] = []

    def handle(self, request: Request) -> Response:
        path = request.path  # werkzeug has already decoded %2F in the object name
        if request.method == "GET" and path == f"/storage/v1/b/{BUCKET}":
            return Response(json.dumps({"name": BUCKET}), status=200, content_type="application/json")
        if request.method == "GET" and path == f"/storage/v1/b/{BUCKET}/o/{NAME}":
            # metadata GET (blob.exists): not there yet when the writer looks
            return Response(json.dumps({"error": {"code": 404, "message": "No such object"}}), status=404)
        if request.method == "POST" and path == f"/upload/storage/v1/b/{BUCKET}/o":
            self.uploads.append(request)
            if self.upload_status == 412:
                body = {
                    "error": {
                        "code": 412,
                        "message": "At least one of the pre-conditions you specified did not hold.",
                    }
                }
                return Response(json.dumps(body), status=412, content_type="application/json")
            resource = {"bucket": BUCKET, "name": NAME, "generation": "1", "size": "3"}
            return Response(json.dumps(resource), status=200, content_type="application/json")
        if request.method == "GET" and path == f"/download/storage/v1/b/{BUCKET}/o/{NAME}":
            return Response(self.stored, status=200, content_type="application/octet-stream")
        return Response(
            json.dumps({"error": {"code": 404, "message": f"unexpected {request.method} {path}"}}), 404
        )


@pytest.fixture
def racing_gcs(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch):
    def make(upload_status: int, stored: bytes = b"") -> tuple[RacingGCS, GCSLakeResource]:
        fake = RacingGCS(upload_status, stored)
        httpserver.expect_request("").respond_with_handler(fake.handle)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", httpserver.url_for("").rstrip("/"))
        lake = GCSLakeResource(bucket=BUCKET, prefix="spotify", gcs=GCSResource(project="test"))
        return fake, lake

    return make


def _assert_create_only(upload: Request) -> None:
    assert upload.args.get("ifGenerationMatch") == "0", upload.url


def test_upload_is_conditional_and_200_means_created(racing_gcs) -> None:
    fake, lake = racing_gcs(200)
    written = lake.write_bytes("raw/b=1/part.parquet", b"new")
    assert written.created is True
    assert written.uri == f"gs://{BUCKET}/{NAME}"
    assert len(fake.uploads) == 1
    _assert_create_only(fake.uploads[0])
    assert b"new" in fake.uploads[0].get_data()


def test_412_with_identical_bytes_is_an_idempotent_no_op(racing_gcs) -> None:
    fake, lake = racing_gcs(412, stored=b"same")
    written = lake.write_bytes("raw/b=1/part.parquet", b"same")
    assert written.created is False
    assert len(fake.uploads) == 1  # a 412 is an answer, not a transient error: no retry
    _assert_create_only(fake.uploads[0])


def test_412_with_different_bytes_is_a_conflict(racing_gcs) -> None:
    fake, lake = racing_gcs(412, stored=b"the other writer's batch")
    with pytest.raises(LakeConflictError, match=f"gs://{BUCKET}/{NAME}"):
        lake.write_bytes("raw/b=1/part.parquet", b"mine")
    _assert_create_only(fake.uploads[0])
