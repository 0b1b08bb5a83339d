"""The Cloud Storage client for the lake and Dagster's IO manager, with an optional API endpoint.

dagster-gcp's ``GCSResource`` builds ``storage.Client(project)`` only: the endpoint can be
moved solely by ``STORAGE_EMULATOR_HOST``, a process-wide switch. This subclass adds
``api_endpoint`` as configuration (``SPOTIFY_GCS_ENDPOINT``, read in ``resources/cloud.py``)
so one resource set can point at an emulator or a private endpoint without touching the
environment of everything else in the process. With an endpoint the client is anonymous
(emulators accept any caller); without one it uses Application Default Credentials.

google-cloud-storage (3.17+) also looks up each bucket it touches in a background thread
(``storage.buckets.get``) only to label tracing spans with the bucket's project and location;
the pipeline's account is not granted that (it needs objects, not buckets; a 403 would be
swallowed by the library). The library's own switch turns the lookup off, so a run makes only
the object calls Terraform grants (``test_iam_calls.py``).
"""

from __future__ import annotations

import os

from dagster_gcp import GCSResource
from google.cloud import storage
from pydantic import Field

#: google-cloud-storage's switch for its span-labelling bucket lookups (see the module docstring).
DISABLE_BUCKET_LOOKUP_ENV = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"


class GCSClientResource(GCSResource):
    """``GCSResource`` plus an API endpoint; a drop-in for everything typed ``GCSResource``."""

    api_endpoint: str | None = Field(
        default=None,
        description="Cloud Storage JSON API endpoint (emulator or private endpoint); anonymous when set.",
    )

    def get_client(self) -> storage.Client:
        os.environ.setdefault(DISABLE_BUCKET_LOOKUP_ENV, "true")
        if not self.api_endpoint:
            return super().get_client()
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=self.project or "anonymous",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.api_endpoint},
        )
