# Infrastructure for the "cloud" deployment of the Spotify Listening Platform:
# a GCS lake bucket, the BigQuery warehouse (plus a staging dataset for MERGE loads)
# and two least-privilege service accounts. Compute is not created here: Dagster and
# Spark run from docker-compose.yaml (a standalone Spark cluster), or Spark runs on a
# Dataproc cluster the user already has and points at with SPOTIFY_SPARK_MASTER.

locals {
  bucket_name = coalesce(var.bucket_name, "${var.project_id}-spotify-lake")
  # One schema source: the JSON files the Python code reads via spotify_assets.schema.
  schemas_dir = "${path.module}/../spotify_assets/schemas"
  # The tables' names, by schema file: written from spotify_assets.schema.TABLES
  # (`python -m spotify_assets.schema > terraform/tables.json`; test_terraform.py checks it).
  table_ids = jsondecode(file("${path.module}/tables.json"))

  labels = merge(
    {
      app        = "spotify-listening-platform"
      managed-by = "terraform"
    },
    var.labels,
  )

  apis = var.enable_apis ? toset([
    "bigquery.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
  ]) : toset([])
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
