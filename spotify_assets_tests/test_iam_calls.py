"""Least privilege that works: every Cloud Storage and BigQuery call of a real cloud-mode run
is covered by a grant Terraform gives the pipeline's service account, and every such grant is used.

The calls are recorded, not listed by hand: the run is the cloud graph against the GCS and
BigQuery emulators (a run stopped after the lake, the full graph, then a rerun that skips),
and every HTTP request the Google clients send goes through ``AuthorizedSession.request``,
which the test wraps. Each request is mapped to the IAM permission real Google Cloud checks
for it and the resource it is checked on (bucket, object name, dataset, project). The grants
come from ``terraform/`` parsed with python-hcl2; what each predefined role contains is
``ROLE_PERMISSIONS`` below (from Google's role reference; only the permissions this project's
calls need are listed). What stays unproven offline: that Google enforces exactly these
permissions for these calls (the mapping is the documented one, not observed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from google.auth.transport.requests import AuthorizedSession

from spotify_assets.assets import PIPELINE_ASSETS, PIPELINE_GRAPH
from spotify_assets.deployments import resources_for
from spotify_assets_tests.fixtures.partitions import materialize_user
from spotify_assets_tests.test_terraform import TF_DIR, Terraform

#: Permissions of the predefined roles the Terraform module grants (the subset these calls use).
ROLE_PERMISSIONS: dict[str, set[str]] = {
    "roles/storage.objectCreator": {"storage.objects.create"},
    "roles/storage.objectViewer": {"storage.objects.get", "storage.objects.list"},
    "roles/bigquery.dataEditor": {
        "bigquery.tables.create",
        "bigquery.tables.get",
        "bigquery.tables.getData",
        "bigquery.tables.updateData",
    },
    "roles/bigquery.jobUser": {"bigquery.jobs.create"},
}
PIPELINE = "serviceAccount:${google_service_account.pipeline.email}"
LAKE_BUCKET = "${google_storage_bucket.lake.name}"
DATASETS = {
    "warehouse": "${google_bigquery_dataset.warehouse.dataset_id}",
    "staging": "${google_bigquery_dataset.staging.dataset_id}",
}
DEFAULT_GCS_PREFIX = "spotify"  # terraform var.gcs_prefix's default = the code's default


@dataclass(frozen=True)
class Need:
    """One permission a call needs, on one resource: ``bucket``, ``object:<name>``, ``dataset:<id>``, ``project``."""

    permission: str
    resource: str


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    body: bytes


def _body(kwargs: dict[str, Any]) -> bytes:
    data = kwargs.get("data")
    if data is None and kwargs.get("json") is not None:
        return json.dumps(kwargs["json"]).encode()
    if isinstance(data, str):
        return data.encode()
    return data if isinstance(data, bytes) else b""


def _job_needs(body: bytes) -> set[Need]:
    text = body.decode("utf-8", "replace")
    match = re.search(r"\{.*\}", text, flags=re.DOTALL) if "configuration" in text else None
    needs = {Need("bigquery.jobs.create", "project")}
    if not match:
        return needs
    try:
        job = json.JSONDecoder().raw_decode(text[match.start() :])[0]
    except ValueError:
        return needs
    config = job.get("configuration", {})
    if "load" in config:
        dest = config["load"]["destinationTable"]["datasetId"]
        needs |= {
            Need("bigquery.tables.create", f"dataset:{dest}"),
            Need("bigquery.tables.updateData", f"dataset:{dest}"),
        }
        needs |= {
            Need("storage.objects.get", f"object:{urlsplit(u).netloc}{urlsplit(u).path}")
            for u in config["load"].get("sourceUris", [])
        }
    if "query" in config:
        sql = config["query"]["query"]
        default = (config["query"].get("defaultDataset") or {}).get("datasetId")
        referenced = set(re.findall(r"`[^.`]+\.([^.`]+)\.[^`]+`", sql)) | ({default} if default else set())
        writes = sql.lstrip().upper().startswith(("MERGE", "UPDATE", "INSERT", "DELETE"))
        for ds in referenced:
            needs.add(Need("bigquery.tables.getData", f"dataset:{ds}"))
            if writes:
                needs.add(Need("bigquery.tables.updateData", f"dataset:{ds}"))
    return needs


def needs_of(call: Call) -> set[Need]:
    """The IAM permissions Google checks for ``call`` (the JSON APIs' documented mapping)."""
    parts = urlsplit(call.url)
    path, query = unquote(parts.path), parse_qs(parts.query)
    if m := re.fullmatch(r"/storage/v1/b/([^/]+)", path):
        return {Need("storage.buckets.get", "bucket")}
    if m := re.fullmatch(r"/storage/v1/b/([^/]+)/o", path):
        return {Need("storage.objects.list", "bucket")}
    if m := re.fullmatch(r"/(?:download/)?storage/v1/b/([^/]+)/o/(.+)", path):
        name = m.group(2)
        if call.method == "DELETE":
            return {Need("storage.objects.delete", f"object:{m.group(1)}/{name}")}
        return {Need("storage.objects.get", f"object:{m.group(1)}/{name}")}
    if m := re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path):
        names = query.get("name") or re.findall(r'"name":\s*"([^"]+)"', call.body.decode("utf-8", "replace"))
        (name,) = names[:1] or ["?"]
        obj = f"object:{m.group(1)}/{name}"
        needs = {Need("storage.objects.create", obj)}
        if query.get("ifGenerationMatch") != ["0"]:
            needs.add(Need("storage.objects.delete", obj))  # may replace an existing object
        return needs
    if m := re.fullmatch(r"/bigquery/v2/projects/[^/]+/datasets/([^/]+)/tables/[^/]+/data", path):
        return {Need("bigquery.tables.getData", f"dataset:{m.group(1)}")}
    if m := re.fullmatch(r"/bigquery/v2/projects/[^/]+/datasets/([^/]+)/tables/[^/]+", path):
        return {Need("bigquery.tables.get", f"dataset:{m.group(1)}")}
    if m := re.fullmatch(r"/bigquery/v2/projects/[^/]+/datasets/([^/]+)/tables", path):
        return {Need("bigquery.tables.create", f"dataset:{m.group(1)}")}
    if re.fullmatch(r"(?:/upload)?/bigquery/v2/projects/[^/]+/jobs", path) and call.method == "POST":
        return _job_needs(call.body)
    if re.fullmatch(r"/bigquery/v2/projects/[^/]+/(?:jobs|queries)/[^/]+", path):
        return set()  # the caller's own jobs: creating them is what needs a permission
    if re.fullmatch(r"/upload/bigquery/v2/projects/[^/]+/jobs", path):
        return set()  # resumable upload chunks of a job whose creation was checked
    raise AssertionError(f"no IAM mapping for {call.method} {path}: add one")


@dataclass(frozen=True)
class Grant:
    role: str
    scope: str  # "bucket", "dataset:warehouse|staging" or "project"
    object_prefix: str | None  # from an IAM condition on object names


def pipeline_grants(tf: Terraform) -> list[Grant]:
    customs = {
        f"${{google_project_iam_custom_role.{name}.id}}": body
        for name, body in tf.resources.get("google_project_iam_custom_role", {}).items()
    }
    grants = []
    for rtype, by_name in tf.resources.items():
        for body in by_name.values():
            if "_iam_member" not in rtype or body.get("member") != PIPELINE:
                continue
            if rtype == "google_storage_bucket_iam_member":
                assert body["bucket"] == LAKE_BUCKET
                scope = "bucket"
            elif rtype == "google_bigquery_dataset_iam_member":
                (scope,) = [f"dataset:{k}" for k, v in DATASETS.items() if v == body["dataset_id"]]
            else:
                scope = "project"
            prefix = None
            for cond in body.get("condition", []):
                m = re.fullmatch(
                    r'resource\.name\.startsWith\("projects/_/buckets/\$\{google_storage_bucket\.lake\.name\}/objects/(.+)"\)',
                    cond["expression"].replace('\\"', '"'),
                )
                assert m, f"unrecognised condition {cond['expression']}"
                prefix = m.group(1).replace("${var.gcs_prefix}", DEFAULT_GCS_PREFIX)
            role = body["role"]
            if role in customs:
                ROLE_PERMISSIONS[role] = set(customs[role]["permissions"])
            grants.append(Grant(role, scope, prefix))
    return grants


def covering(need: Need, grants: list[Grant], env: dict[str, str]) -> list[Grant]:
    """The grants that allow ``need`` (the emulator's names mapped back to Terraform's)."""
    resource = need.resource
    if resource.startswith("dataset:"):
        ds = resource.split(":", 1)[1]
        names = {
            env["SPOTIFY_BQ_DATASET"]: "dataset:warehouse",
            env["SPOTIFY_BQ_STAGING_DATASET"]: "dataset:staging",
        }
        resource = names.get(ds, f"dataset:foreign:{ds}")
    out = []
    for g in grants:
        if need.permission not in ROLE_PERMISSIONS.get(g.role, set()):
            continue
        if resource.startswith("object:"):
            bucket, _, name = resource.removeprefix("object:").partition("/")
            if g.scope != "bucket" or bucket != env["SPOTIFY_GCS_BUCKET"]:
                continue
            if g.object_prefix is not None and not name.startswith(g.object_prefix):
                continue
        elif g.scope != resource:
            continue
        out.append(g)
    return out


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    calls: list[Call] = []
    original = AuthorizedSession.request

    def request(self: AuthorizedSession, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(Call(method.upper(), url, _body(kwargs)))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(AuthorizedSession, "request", request)
    return calls


def test_terraform_grants_cover_every_call_of_a_cloud_run_and_no_grant_is_unused(
    cloud_env: dict[str, str], recorded: list[Call]
) -> None:
    for assets in (PIPELINE_ASSETS[:3], PIPELINE_ASSETS, PIPELINE_ASSETS):
        assert materialize_user(PIPELINE_GRAPH, selection=assets, resources=resources_for()).success
    needs = set().union(*(needs_of(c) for c in recorded))
    # The run really exercised what the IO manager and the lake need (so this test can fail).
    perms = {n.permission for n in needs}
    assert {"storage.objects.create", "storage.objects.get", "bigquery.jobs.create"} <= perms
    assert "bigquery.tables.getData" in perms  # Spark's driver reads bq_plays
    # The data handed between assets went to GCS (typed files under <prefix>/dagster/) ...
    bucket = cloud_env["SPOTIFY_GCS_BUCKET"]
    handoff = f"object:{bucket}/{DEFAULT_GCS_PREFIX}/dagster/"
    created = {n.resource for n in needs if n.permission == "storage.objects.create"}
    assert {r for r in created if r.startswith(handoff)}, "no handoff object was written"
    # ... through create-only uploads alone: no bucket lookup, nothing deleted or replaced anywhere.
    assert not perms & {"storage.buckets.get", "storage.objects.delete"}

    grants = pipeline_grants(Terraform(TF_DIR))
    uncovered = sorted((n.permission, n.resource) for n in needs if not covering(n, grants, cloud_env))
    assert uncovered == [], "calls of a cloud run that Terraform does not allow"
    used = {g for n in needs for g in covering(n, grants, cloud_env)}
    assert set(grants) - used == set(), "grants no call of a cloud run uses"
