"""What bqemulator cannot show: BigQuery's 409 on a reused job id, and the warehouse's reuse of it.

Real BigQuery job ids are unique per project: asking for an existing id answers 409 Conflict,
and the warehouse then waits for / reuses that job instead of loading a batch twice (or tries
the next id of its sequence if that job failed). bqemulator runs a job again under a reused
id, so this one behaviour is tested at the HTTP level: the real ``google-cloud-bigquery``
client against ``FakeBigQuery`` (a pytest-httpserver handler answering the REST calls the code
makes and recording them). Everything else the warehouse does runs against the emulator in
``test_bigquery_emulator_warehouse.py``, where the SQL really executes.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from spotify_assets.resources.bigquery_warehouse import BigQueryWarehouseResource
from spotify_assets.schema import conform, load_schema
from spotify_assets.tables import plays as plays_table
from spotify_assets.tables.sql import safe_id

PROJECT, DATASET, STAGING = "proj-1", "spotify", "spotify_staging"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str) -> Response:
    reason = {404: "notFound", 409: "duplicate"}.get(status, "invalid")
    return _json({"error": {"code": status, "message": message, "errors": [{"reason": reason}]}}, status)


@dataclass
class Recorded:
    method: str
    path: str
    args: dict[str, str]
    body: Any  # parsed JSON, or for multipart uploads {"metadata": ..., "data": bytes}


@dataclass
class FakeBigQuery:
    """Enough of the BigQuery v2 REST API for the warehouse, with scripted statistics."""

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # "project.dataset.table" -> resource
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    uri_load_rows: int = 3  # outputRows reported for loads from gs:// URIs
    dml: Callable[[str], dict[str, int]] = lambda sql: {"inserted": 0, "updated": 0}
    answer: Callable[[str, list[Any]], tuple[list[tuple[str, str]], list[list[Any]]]] = lambda sql, params: (
        [("n", "INTEGER")],
        [[0]],
    )

    # -- helpers for tests ---------------------------------------------------------------
    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def job_inserts(self) -> list[dict[str, Any]]:
        out = []
        for r in self.requests:
            if r.method == "POST" and r.path.endswith(f"/projects/{PROJECT}/jobs"):
                out.append(r.body.get("metadata", r.body))
        return out

    def add_table(self, table_id: str) -> None:
        p, d, t = table_id.split(".")
        self.tables[table_id] = {"tableReference": {"projectId": p, "datasetId": d, "tableId": t}}

    # -- the server --------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        path = request.path
        if request.content_type and request.content_type.startswith("multipart/related"):
            msg = BytesParser(policy=email_policy).parsebytes(
                f"Content-Type: {request.content_type}\r\n\r\n".encode() + request.get_data()
            )
            parts = list(msg.iter_parts())  # type: ignore[attr-defined]
            body: Any = {
                "metadata": json.loads(parts[0].get_content()),
                "data": parts[1].get_payload(decode=True),
            }
        else:
            raw = request.get_data()
            body = json.loads(raw) if raw else None
        self.requests.append(Recorded(request.method, path, dict(request.args), body))

        m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables(?:/([^/]+))?", path)
        if m:
            p, d, t = m.groups()
            if request.method == "GET":
                tid = f"{p}.{d}.{t}"
                return (
                    _json(self.tables[tid]) if tid in self.tables else _error(404, f"Not found: Table {tid}")
                )
            ref = body["tableReference"]
            tid = f"{ref['projectId']}.{ref['datasetId']}.{ref['tableId']}"
            if tid in self.tables:
                return _error(409, f"Already Exists: Table {tid}")
            self.tables[tid] = body
            return _json(body)
        if path.endswith(f"/projects/{PROJECT}/jobs") and request.method == "POST":
            return self._insert_job(body.get("metadata", body), body)
        m = re.fullmatch(rf"/bigquery/v2/projects/{PROJECT}/jobs/([^/]+)", path)
        if m and request.method == "GET":
            job = self.jobs.get(m.group(1))
            return _json(job) if job else _error(404, f"Not found: Job {m.group(1)}")
        m = re.fullmatch(rf"/bigquery/v2/projects/{PROJECT}/queries/([^/]+)", path)
        if m:  # jobs.getQueryResults
            job = self.jobs[m.group(1)]
            fields, rows = job.get("_answer", ([], []))
            return _json(
                {
                    "kind": "bigquery#getQueryResultsResponse",
                    "jobReference": job["jobReference"],
                    "jobComplete": True,
                    "totalRows": str(len(rows)),
                    "schema": {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in fields]},
                    "rows": [{"f": [{"v": None if v is None else str(v)} for v in row]} for row in rows],
                    "numDmlAffectedRows": job["statistics"]["query"].get("numDmlAffectedRows", "0"),
                }
            )
        if path == f"/bigquery/v2/projects/{PROJECT}/queries" and request.method == "POST":
            params = body.get("queryParameters", [])
            fields, rows = self.answer(body["query"], params)
            return _json(
                {
                    "kind": "bigquery#queryResponse",
                    "jobComplete": True,
                    "schema": {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in fields]},
                    "rows": [{"f": [{"v": None if v is None else str(v)} for v in row]} for row in rows],
                    "totalRows": str(len(rows)),
                    "queryId": "q1",
                }
            )
        return _error(404, f"fake has no route for {request.method} {path}")

    def _insert_job(self, job: dict[str, Any], body: dict[str, Any]) -> Response:
        job_id = job["jobReference"]["jobId"]
        if job_id in self.jobs:
            return _error(409, f"Already Exists: Job {PROJECT}:EU.{job_id}")
        config = job["configuration"]
        job = {**job, "id": f"{PROJECT}:EU.{job_id}", "status": {"state": "DONE"}}
        if "load" in config:
            rows = pq.read_table(io.BytesIO(body["data"])).num_rows if "data" in body else self.uri_load_rows
            job["statistics"] = {"load": {"outputRows": str(rows)}}
            dest = config["load"]["destinationTable"]
            self.add_table(f"{dest['projectId']}.{dest['datasetId']}.{dest['tableId']}")
        elif config["query"]["query"].lstrip().upper().startswith("SELECT"):
            job["statistics"] = {"query": {"statementType": "SELECT"}}
            job["_answer"] = self.answer(config["query"]["query"], config["query"].get("queryParameters", []))
        else:
            counts = self.dml(config["query"]["query"])
            job["statistics"] = {
                "query": {
                    "statementType": "MERGE",
                    "numDmlAffectedRows": str(counts["inserted"] + counts["updated"]),
                    "dmlStats": {
                        "insertedRowCount": str(counts["inserted"]),
                        "updatedRowCount": str(counts["updated"]),
                        "deletedRowCount": "0",
                    },
                }
            }
        self.jobs[job_id] = job
        return _json(job)


@pytest.fixture
def fake_bq(httpserver: HTTPServer) -> FakeBigQuery:
    fake = FakeBigQuery()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    return fake


@pytest.fixture
def warehouse(httpserver: HTTPServer, fake_bq: FakeBigQuery) -> BigQueryWarehouseResource:
    return BigQueryWarehouseResource(
        project=PROJECT,
        dataset=DATASET,
        staging_dataset=STAGING,
        location="EU",
        api_endpoint=httpserver.url_for("").rstrip("/"),
        job_timeout_s=30,
    )


def _schema_json(table: str) -> list[dict[str, str]]:
    return [
        {"name": f.name, "type": f.type, "mode": f.mode, "description": f.description}
        for f in load_schema(table)
    ]  # type: ignore[arg-type]


def _tables_exist(fake: FakeBigQuery) -> None:
    for t in ("bq_plays", "track_features", "top_ten_tracks", "ingest_gaps"):
        fake.add_table(f"{PROJECT}.{DATASET}.{t}")


def _plays(n: int, batch: str = "b1") -> pd.DataFrame:
    rows = []
    for i in range(n):
        played = datetime(2026, 1, 1, 12, i, tzinfo=UTC)
        rows.append(
            {
                "play_key": f"{played.isoformat()}|t{i}",
                "played_at": played,
                "track_id": f"t{i}",
                "content_type": "track",
                "is_play": True,
                "source": "api",
                "batch_id": batch,
                "ingested_at": datetime(2026, 1, 2, tzinfo=UTC),
            }
        )
    return conform(pd.DataFrame(rows), "plays")


# -- job ids reused on 409 ------------------------------------------------------------------
URIS = ["gs://lake/spotify/raw/b=2/part-1.parquet", "gs://lake/spotify/raw/b=2/part-0.parquet"]
BATCH = "2026-01-01T12:00:00Z-abc"


def test_rerun_reuses_both_jobs_and_loads_nothing_twice(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    fake_bq.dml = lambda sql: {"inserted": 3, "updated": 0}
    first = plays_table.merge_plays_from_uris(warehouse, URIS, BATCH)
    n_requests = len(fake_bq.requests)
    again = plays_table.merge_plays_from_uris(warehouse, URIS, BATCH)

    key = safe_id(BATCH)
    named = {j for j in fake_bq.jobs if j.startswith("spotify_")}  # the rest are count queries
    assert named == {f"spotify_load_plays_{key}", f"spotify_merge_plays_{key}"}
    second_round = fake_bq.requests[n_requests:]
    inserts = [
        r.body["jobReference"]["jobId"]
        for r in second_round
        if r.path.endswith("/jobs") and r.body["jobReference"]["jobId"].startswith("spotify_")
    ]
    gets = [r.path.rsplit("/", 1)[1] for r in second_round if r.method == "GET" and "/jobs/" in r.path]
    # the same two ids were asked for again, refused (409), and fetched instead
    assert inserts == [f"spotify_load_plays_{key}", f"spotify_merge_plays_{key}"]
    assert f"spotify_load_plays_{key}" in gets and f"spotify_merge_plays_{key}" in gets
    assert (first.inserted, first.duplicates) == (3, 0)
    assert (again.inserted, again.duplicates) == (0, 3)


def test_a_failed_job_is_retried_under_the_next_id(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    key = safe_id(BATCH)
    failed_id = f"spotify_load_plays_{key}"
    fake_bq.jobs[failed_id] = {
        "jobReference": {"projectId": PROJECT, "jobId": failed_id, "location": "EU"},
        "configuration": {
            "load": {"destinationTable": {"projectId": PROJECT, "datasetId": STAGING, "tableId": "x"}}
        },
        "status": {"state": "DONE", "errorResult": {"reason": "invalid", "message": "bad parquet"}},
    }
    plays_table.merge_plays_from_uris(warehouse, URIS, BATCH)
    load_ids = [j["jobReference"]["jobId"] for j in fake_bq.job_inserts() if "load" in j["configuration"]]
    assert load_ids == [failed_id, f"{failed_id}_r1"]
    assert fake_bq.jobs[f"{failed_id}_r1"]["status"] == {"state": "DONE"}


def test_the_same_frame_twice_reuses_its_content_derived_jobs(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    plays = _plays(3)
    fake_bq.dml = lambda sql: {"inserted": 3, "updated": 0}
    first = plays_table.merge_plays(warehouse, plays)
    again = plays_table.merge_plays(
        warehouse, plays.iloc[::-1].reset_index(drop=True)
    )  # same rows, other order
    assert (first.inserted, again.inserted, again.duplicates) == (3, 0, 3)
    assert len([j for j in fake_bq.jobs if j.startswith("spotify_load_plays_df_")]) == 1
    assert len([j for j in fake_bq.jobs if j.startswith("spotify_merge_plays_df_")]) == 1
