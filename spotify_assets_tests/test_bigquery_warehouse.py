"""BigQueryWarehouseResource with the real google-cloud-bigquery client against an HTTP fake.

BigQuery is tested at the HTTP level against a fake; nothing here proves the SQL runs on real
BigQuery. No BigQuery emulator runs here, so ``FakeBigQuery`` (a pytest-httpserver handler)
answers the REST calls the code makes (tables.get/insert, jobs.insert incl. multipart
uploads, jobs.get, jobs.getQueryResults, jobs.query) and records every request. The tests
assert what the code *asks BigQuery to do*: load-job configuration (source URIs, format,
schema = ``schemas/plays.json``, WRITE_TRUNCATE, staging destination), deterministic job ids
and their reuse on 409, the MERGE statements (parsed with sqlglot's BigQuery dialect), and
partitioning/clustering in the table-create request. Row counts in answers are scripted by
the fake, so the counts in ``MergeResult`` are tested as arithmetic on BigQuery's statistics,
not as a database result.
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
import sqlglot
from pytest_httpserver import HTTPServer
from sqlglot import exp
from werkzeug import Request, Response

from spotify_assets.resources.bigquery_warehouse import BigQueryWarehouseResource, safe_id
from spotify_assets.resources.gcs_lake import GCSLakeResource
from spotify_assets.schema import conform, empty_frame, load_schema

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
        if m:  # jobs.getQueryResults for a DML job
            job = self.jobs[m.group(1)]
            return _json(
                {
                    "kind": "bigquery#getQueryResultsResponse",
                    "jobReference": job["jobReference"],
                    "jobComplete": True,
                    "totalRows": "0",
                    "schema": {"fields": []},
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


# -- table creation ------------------------------------------------------------------------
def test_missing_tables_are_created_partitioned_and_clustered(warehouse, fake_bq) -> None:
    warehouse.ensure_tables()
    creates = {r.body["tableReference"]["tableId"]: r.body for r in fake_bq.calls("POST", r".*/tables")}
    assert set(creates) == {"bq_plays", "track_features", "top_ten_tracks", "ingest_gaps"}
    plays = creates["bq_plays"]
    assert plays["tableReference"] == {"projectId": PROJECT, "datasetId": DATASET, "tableId": "bq_plays"}
    assert plays["timePartitioning"] == {"type": "DAY", "field": "played_at"}
    assert plays["clustering"] == {"fields": ["track_id"]}
    assert plays["schema"]["fields"] == _schema_json("plays")
    assert creates["top_ten_tracks"]["schema"]["fields"] == _schema_json("top_ten_tracks")
    assert "timePartitioning" not in creates["top_ten_tracks"]


def test_existing_tables_are_left_alone(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    warehouse.ensure_tables()
    assert fake_bq.calls("POST", r".*/tables") == []
    assert len(fake_bq.calls("GET", r".*/tables/.*")) == 4


# -- plays from lake URIs ------------------------------------------------------------------
URIS = ["gs://lake/spotify/raw/b=2/part-1.parquet", "gs://lake/spotify/raw/b=2/part-0.parquet"]
BATCH = "2026-01-01T12:00:00Z-abc"


def test_load_job_configuration(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    warehouse.merge_plays_from_uris(URIS, BATCH)
    loads = [j for j in fake_bq.job_inserts() if "load" in j["configuration"]]
    assert len(loads) == 1
    job = loads[0]
    key = safe_id(BATCH)
    assert key != BATCH and re.fullmatch(r"[A-Za-z0-9_]+", key)
    assert job["jobReference"]["jobId"] == f"spotify_load_plays_{key}"
    assert job["jobReference"]["location"] == "EU"
    load = job["configuration"]["load"]
    assert load["sourceUris"] == sorted(URIS)
    assert load["sourceFormat"] == "PARQUET"
    assert load["writeDisposition"] == "WRITE_TRUNCATE"
    assert load["destinationTable"] == {"projectId": PROJECT, "datasetId": STAGING, "tableId": f"plays_{key}"}
    assert load["schema"]["fields"] == _schema_json("plays")


def _parse_merge(sql: str) -> exp.Merge:
    tree = sqlglot.parse_one(sql, read="bigquery")
    assert isinstance(tree, exp.Merge)
    return tree


def test_merge_statement_is_insert_only_on_play_key(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    warehouse.merge_plays_from_uris(URIS, BATCH)
    merges = [j for j in fake_bq.job_inserts() if "query" in j["configuration"]]
    assert [m["jobReference"]["jobId"] for m in merges] == [f"spotify_merge_plays_{safe_id(BATCH)}"]
    tree = _parse_merge(merges[0]["configuration"]["query"]["query"])

    target = tree.this
    assert (target.catalog, target.db, target.name) == (PROJECT, DATASET, "bq_plays")
    on = tree.args["on"]
    assert isinstance(on, exp.EQ)
    assert {c.name for c in on.find_all(exp.Column)} == {"play_key"}
    assert {c.table for c in on.find_all(exp.Column)} == {"T", "S"}
    whens = list(tree.args["whens"].expressions)
    assert len(whens) == 1
    (when,) = whens
    assert when.args["matched"] is False
    assert isinstance(when.args["then"], exp.Insert)
    assert "ROW" in when.args["then"].sql(dialect="bigquery").upper()
    assert not list(tree.find_all(exp.Update)) and not list(tree.find_all(exp.Delete))
    # the source is the staging table, one row per play_key
    source_tables = {t.name for t in tree.args["using"].find_all(exp.Table)}
    assert source_tables == {f"plays_{safe_id(BATCH)}"}
    window = next(tree.args["using"].find_all(exp.Window))
    assert [p.name for p in window.args["partition_by"]] == ["play_key"]


def test_merge_result_comes_from_the_job_statistics(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    fake_bq.uri_load_rows = 5
    fake_bq.dml = lambda sql: {"inserted": 2, "updated": 0}
    fake_bq.answer = lambda sql, params: ([("n", "INTEGER")], [[42]])
    result = warehouse.merge_plays_from_uris(URIS, BATCH)
    assert (result.inserted, result.duplicates, result.total_rows) == (2, 3, 42)
    counts = [r.body["query"] for r in fake_bq.calls("POST", r".*/queries")]
    assert counts == ["SELECT count(*) AS n FROM bq_plays"]
    assert fake_bq.calls("POST", r".*/queries")[0].body["defaultDataset"] == {
        "projectId": PROJECT,
        "datasetId": DATASET,
    }


def test_rerun_reuses_both_jobs_and_loads_nothing_twice(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    fake_bq.dml = lambda sql: {"inserted": 3, "updated": 0}
    first = warehouse.merge_plays_from_uris(URIS, BATCH)
    n_requests = len(fake_bq.requests)
    again = warehouse.merge_plays_from_uris(URIS, BATCH)

    key = safe_id(BATCH)
    assert set(fake_bq.jobs) == {f"spotify_load_plays_{key}", f"spotify_merge_plays_{key}"}
    second_round = fake_bq.requests[n_requests:]
    inserts = [r.body["jobReference"]["jobId"] for r in second_round if r.path.endswith("/jobs")]
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
    warehouse.merge_plays_from_uris(URIS, BATCH)
    load_ids = [j["jobReference"]["jobId"] for j in fake_bq.job_inserts() if "load" in j["configuration"]]
    assert load_ids == [failed_id, f"{failed_id}_r1"]
    assert fake_bq.jobs[f"{failed_id}_r1"]["status"] == {"state": "DONE"}


def test_lake_batches_in_gcs_are_loaded_by_uri(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    lake = GCSLakeResource(bucket="lake", prefix="spotify")  # uri() needs no GCS access
    warehouse.merge_plays_from_lake(lake, ["raw/b=2/part-0.parquet"], "b2")
    (load,) = [j for j in fake_bq.job_inserts() if "load" in j["configuration"]]
    assert load["configuration"]["load"]["sourceUris"] == ["gs://lake/spotify/raw/b=2/part-0.parquet"]


# -- plays from a frame --------------------------------------------------------------------
def test_merge_plays_uploads_parquet_with_the_schema_then_merges(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    plays = _plays(3)
    fake_bq.dml = lambda sql: {"inserted": 3, "updated": 0}
    result = warehouse.merge_plays(pd.concat([plays, plays.iloc[:1]], ignore_index=True))
    (upload,) = fake_bq.calls("POST", r"/upload/bigquery/v2/projects/.*/jobs")
    assert upload.args["uploadType"] == "multipart"
    load = upload.body["metadata"]["configuration"]["load"]
    assert load["writeDisposition"] == "WRITE_TRUNCATE"
    assert load["sourceFormat"] == "PARQUET"
    assert load["schema"]["fields"] == _schema_json("plays")
    assert load["destinationTable"]["datasetId"] == STAGING
    uploaded = pq.read_table(io.BytesIO(upload.body["data"]))
    assert uploaded.column_names == [f.name for f in load_schema("plays")]
    assert sorted(uploaded.column("play_key").to_pylist()) == sorted(
        [*plays["play_key"], plays["play_key"][0]]
    )
    assert (result.inserted, result.duplicates) == (3, 1)
    job_id = upload.body["metadata"]["jobReference"]["jobId"]
    assert job_id.startswith("spotify_load_plays_df_")
    # the same content again reuses the same jobs: nothing uploaded as a new job
    again = warehouse.merge_plays(
        plays.iloc[::-1].reset_index(drop=True).pipe(lambda d: pd.concat([d, plays.iloc[:1]]))
    )
    assert (again.inserted, again.duplicates) == (0, 4)
    assert len([j for j in fake_bq.jobs if j.startswith("spotify_load_plays_df_")]) == 1


def test_empty_frame_submits_no_job(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    result = warehouse.merge_plays(empty_frame("plays"))
    assert (result.inserted, result.duplicates, result.total_rows) == (0, 0, 0)
    assert fake_bq.job_inserts() == []


# -- features ------------------------------------------------------------------------------
def _features() -> pd.DataFrame:
    now = datetime(2026, 1, 3, tzinfo=UTC)
    return conform(
        pd.DataFrame(
            [
                {"track_id": "t1", "status": "ok", "provider": "spotify", "energy": 0.5, "fetched_at": now},
                {"track_id": "t2", "status": "unavailable", "provider": "none", "fetched_at": now},
                {"track_id": "t1", "status": "ok", "provider": "spotify", "energy": 0.7, "fetched_at": now},
            ]
        ),
        "track_features",
    )


def test_feature_upsert_merge_sql_updates_only_rows_not_ok_or_with_ok(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    fake_bq.dml = lambda sql: {"inserted": 1, "updated": 1}
    result = warehouse.merge_track_features(_features())
    (upload,) = fake_bq.calls("POST", r"/upload/bigquery/v2/projects/.*/jobs")
    uploaded = pq.read_table(io.BytesIO(upload.body["data"])).to_pandas()
    assert sorted(uploaded["track_id"]) == ["t1", "t2"]  # last row per track wins before loading
    assert uploaded.set_index("track_id").loc["t1", "energy"] == 0.7
    (merge,) = [j for j in fake_bq.job_inserts() if "query" in j["configuration"]]
    tree = _parse_merge(merge["configuration"]["query"]["query"])
    assert tree.this.name == "track_features"
    assert {c.name for c in tree.args["on"].find_all(exp.Column)} == {"track_id"}
    whens = {w.args["matched"]: w for w in tree.args["whens"].expressions}
    assert set(whens) == {True, False}
    cond = whens[True].args["condition"].sql(dialect="bigquery")
    assert cond == "(T.status <> 'ok' OR S.status = 'ok')"
    update = whens[True].args["then"]
    assert isinstance(update, exp.Update)
    set_cols = {e.this.name for e in update.expressions}
    assert set_cols == {f.name for f in load_schema("track_features")} - {"track_id"}
    assert isinstance(whens[False].args["then"], exp.Insert)
    assert (result.inserted, result.duplicates) == (1, 1)


def test_track_features_query_is_parameterised(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    fake_bq.answer = lambda sql, params: (
        [("track_id", "STRING"), ("status", "STRING"), ("provider", "STRING"), ("fetched_at", "TIMESTAMP")],
        [["t1", "ok", "spotify", "1767398400000000"]],
    )
    df = warehouse.track_features(["t1", "t9", "t1"])
    (q,) = fake_bq.calls("POST", r".*/queries")
    assert "IN UNNEST(@ids)" in q.body["query"]
    (param,) = q.body["queryParameters"]
    assert param["name"] == "ids"
    assert [v["value"] for v in param["parameterValue"]["arrayValues"]] == ["t1", "t9"]
    assert list(df.columns) == [f.name for f in load_schema("track_features")]
    assert df["track_id"].tolist() == ["t1"]
    assert df["fetched_at"].iloc[0] == pd.Timestamp("2026-01-03", tz="UTC")


# -- marts, cursor, Spark ------------------------------------------------------------------
def test_replace_top_ten_is_one_truncating_load(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    now = datetime(2026, 1, 3, tzinfo=UTC)
    top = pd.DataFrame(
        [
            {"rank": r, "track_id": f"t{r}", "plays": 10 - r, "minutes_listened": 1.5, "first_played_at": now}
            | {"last_played_at": now, "computed_at": now}
            for r in (1, 2)
        ]
    )
    warehouse.replace_top_ten(top)
    (upload,) = fake_bq.calls("POST", r"/upload/bigquery/v2/projects/.*/jobs")
    load = upload.body["metadata"]["configuration"]["load"]
    assert load["destinationTable"] == {
        "projectId": PROJECT,
        "datasetId": DATASET,
        "tableId": "top_ten_tracks",
    }
    assert load["writeDisposition"] == "WRITE_TRUNCATE"
    assert load["schema"]["fields"] == _schema_json("top_ten_tracks")
    assert pq.read_table(io.BytesIO(upload.body["data"])).column("rank").to_pylist() == [1, 2]
    assert [j for j in fake_bq.job_inserts() if "query" in j["configuration"]] == []


def test_max_played_at(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    fake_bq.answer = lambda sql, params: ([("m", "TIMESTAMP")], [[None]])
    assert warehouse.max_played_at() is None
    fake_bq.answer = lambda sql, params: ([("m", "TIMESTAMP")], [["1767268800000000"]])
    assert warehouse.max_played_at() == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert "MAX(played_at)" in fake_bq.calls("POST", r".*/queries")[-1].body["query"]


def test_export_for_spark_names_the_bigquery_table_for_the_connector(warehouse) -> None:
    assert warehouse.export_plays_for_spark("/unused") == f"bigquery:{PROJECT}.{DATASET}.bq_plays"


# -- poll gaps -----------------------------------------------------------------------------
def test_gaps_are_recorded_once_listed_and_closed(warehouse, fake_bq) -> None:
    _tables_exist(fake_bq)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    warehouse.record_gap(start, end)
    (record,) = [j["configuration"]["query"] for j in fake_bq.job_inserts()]
    tree = _parse_merge(record["query"])
    assert tree.this.name == "ingest_gaps"
    (when,) = tree.args["whens"].expressions
    assert when.args["matched"] is False and isinstance(when.args["then"], exp.Insert)
    params = {p["name"]: p["parameterValue"]["value"] for p in record["queryParameters"]}
    assert params == {"gap_start": "2026-01-01 00:00:00+00:00", "gap_end": "2026-01-02 00:00:00+00:00"}

    fake_bq.answer = lambda sql, params: (
        [("gap_start", "TIMESTAMP"), ("gap_end", "TIMESTAMP"), ("detected_at", "TIMESTAMP")],
        [["1767225600000000", "1767312000000000", "1767312000000000"]],
    )
    gaps = warehouse.open_gaps()
    assert list(gaps.columns) == ["gap_start", "gap_end", "detected_at"]
    assert gaps["gap_start"].iloc[0] == pd.Timestamp(start)
    assert "closed_at IS NULL" in fake_bq.calls("POST", r".*/queries")[-1].body["query"]

    fake_bq.dml = lambda sql: {"inserted": 0, "updated": 1}
    assert warehouse.close_gaps_covered_by(start, end) == 1
    update = sqlglot.parse_one(fake_bq.job_inserts()[-1]["configuration"]["query"]["query"], read="bigquery")
    assert isinstance(update, exp.Update) and update.this.name == "ingest_gaps"
    assert {e.this.name for e in update.expressions} == {"closed_at"}
