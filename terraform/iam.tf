# Two identities, each with only what it uses:
#   pipeline  - writes new lake objects, reads them back for BigQuery loads, creates and
#               MERGEs tables in the two datasets, runs query/load jobs.
#   dashboard - reads the warehouse and runs query jobs; nothing else.
# No role is granted at project level except bigquery.jobUser (jobs are project-scoped
# in BigQuery; it grants no data access by itself). No service account keys are created
# here: a key in Terraform state is a long-lived secret in a file. Create one with
# `gcloud iam service-accounts keys create` (or use workload identity) and point
# GOOGLE_APPLICATION_CREDENTIALS at it.

resource "google_service_account" "pipeline" {
  project      = var.project_id
  account_id   = "spotify-pipeline"
  display_name = "Spotify pipeline (Dagster)"
  description  = "Runs the Dagster pipeline: creates lake objects, loads and merges BigQuery tables."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "dashboard" {
  project      = var.project_id
  account_id   = "spotify-dashboard"
  display_name = "Spotify dashboard (Streamlit)"
  description  = "Read-only access to the warehouse for the Streamlit dashboard."

  depends_on = [google_project_service.apis]
}

# --- Lake bucket: create and read objects. Deliberately not objectAdmin: the pipeline
# never deletes or overwrites a lake object; versioning and lifecycle rules handle retention.
# spotify_assets_tests/test_iam_calls.py records every Cloud Storage and BigQuery call of a
# cloud-mode run against the emulators and checks that these grants cover each of them.
resource "google_storage_bucket_iam_member" "pipeline_object_creator" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_storage_bucket_iam_member" "pipeline_object_viewer" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.pipeline.email}"
}

# Data handed between assets (spotify_assets/io_managers/) is written under <prefix>/dagster/
# through the same create-only lake code: one new object per asset per run, never replaced,
# no bucket lookup. So the two grants above cover it: no storage.buckets.get, no delete.
# The one command that deletes, `spotify-assets redact-lake` (issue 14: IP addresses out of
# export copies an older import landed), runs with an operator's credentials, not this account.

# --- BigQuery data access, scoped to the two datasets.
resource "google_bigquery_dataset_iam_member" "pipeline_warehouse_editor" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_bigquery_dataset_iam_member" "pipeline_staging_editor" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.staging.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_bigquery_dataset_iam_member" "dashboard_warehouse_viewer" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.dashboard.email}"
}

# --- Running BigQuery jobs (load, query, MERGE) is a project-level permission.
resource "google_project_iam_member" "pipeline_job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.pipeline.email}"
}

resource "google_project_iam_member" "dashboard_job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.dashboard.email}"
}
