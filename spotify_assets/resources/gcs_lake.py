"""The lake as a GCS bucket (cloud mode); the same create-only contract as the local folder.

Create-only on GCS is a server-side precondition, not a check-then-write: every upload
carries ``ifGenerationMatch=0`` ("only if no live object has this name"), so two writers
racing for one path cannot both win and an existing object is never overwritten. GCS
answers 412 Precondition Failed when the object exists; ``_create`` maps that to
"not created" and the base class then compares bytes (identical: a retried run, fine;
different: ``LakeConflictError``). A single-request upload is atomic: readers see the
whole object or nothing. A cheap ``exists`` check runs first so a rerun does not upload a
batch again; it is only a shortcut, the precondition is what guarantees create-only when
two writers race.

The client comes from dagster-gcp's ``GCSResource`` (Application Default Credentials, so
a service account on Cloud Run/GCE or ``gcloud auth application-default login`` on a
laptop). google-cloud-storage itself honours ``STORAGE_EMULATOR_HOST``, which is how the
tests point it at a local emulator.
"""

from __future__ import annotations

from dagster_gcp import GCSResource
from google.api_core.exceptions import PreconditionFailed
from google.cloud import storage
from pydantic import Field

from spotify_assets.resources.lake import LakeResource, check_relative


class GCSLakeResource(LakeResource):
    """Lake files as objects ``gs://<bucket>/<prefix>/<path>``."""

    bucket: str = Field(description="GCS bucket holding the lake (Terraform creates it).")
    prefix: str = Field(default="", description="Object-name prefix of the lake inside the bucket.")
    project: str | None = Field(
        default=None, description="GCP project for the client when the nested ``gcs`` resource names none."
    )
    gcs: GCSResource = Field(
        default_factory=GCSResource, description="Builds the storage client (dagster-gcp, ADC credentials)."
    )

    # -- names -------------------------------------------------------------------------
    def _root(self) -> str:
        return self.prefix.strip("/")

    def _name(self, path: str) -> str:
        check_relative(path)
        root = self._root()
        return f"{root}/{path}" if root else path

    def _bucket(self) -> storage.Bucket:
        gcs = self.gcs if self.gcs.project or not self.project else GCSResource(project=self.project)
        return gcs.get_client().bucket(self.bucket)

    # -- the contract ------------------------------------------------------------------
    def uri(self, path: str) -> str:
        return f"gs://{self.bucket}/{self._name(path)}"

    def read_bytes(self, path: str) -> bytes:
        return self._bucket().blob(self._name(path)).download_as_bytes()

    def exists(self, path: str) -> bool:
        return self._bucket().blob(self._name(path)).exists()

    def list(self, prefix: str = "") -> list[str]:
        """Files under the folder ``prefix`` (folder semantics: "raw" never matches "raw2/x")."""
        root = self._root()
        base = "/".join(p for p in (root, prefix.strip("/")) if p)
        search = f"{base}/" if base else ""
        strip = len(f"{root}/") if root else 0
        names = (b.name for b in self._bucket().list_blobs(prefix=search))
        return sorted(n[strip:] for n in names if not n.endswith("/"))

    def remove(self, path: str) -> None:
        """Delete the live generation itself: on the versioned bucket (terraform/storage.tf) a
        plain delete would only make it a noncurrent version, kept for the retention period."""
        bucket = self._bucket()
        blob = bucket.get_blob(self._name(path))
        if blob is None:
            raise FileNotFoundError(self.uri(path))
        bucket.delete_blob(blob.name, generation=blob.generation)

    def _create(self, path: str, data: bytes) -> bool:
        blob = self._bucket().blob(self._name(path))
        if blob.exists():
            return False  # a rerun: skip re-uploading the batch; write_bytes compares the bytes
        try:
            # if_generation_match=0: create-only, enforced by GCS. The client's default retry
            # for generation-conditioned uploads retries transient errors; if a retried
            # request finds its own first attempt already landed, GCS says 412 and the byte
            # comparison in ``write_bytes`` confirms it is the same file.
            blob.upload_from_string(data, content_type=_content_type(path), if_generation_match=0)
        except PreconditionFailed:
            return False
        return True


def _content_type(path: str) -> str:
    if path.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    if path.endswith(".csv"):
        return "text/csv"
    if path.endswith(".json"):
        return "application/json"
    return "application/octet-stream"
