# Everything the pipeline's environment needs; `terraform output -raw pipeline_env`
# prints a block to paste into deploy/.env.

output "spotify_deployment" {
  description = "Value for SPOTIFY_DEPLOYMENT: this stack is the cloud deployment."
  value       = "cloud"
}

output "gcp_project" {
  description = "SPOTIFY_GCP_PROJECT"
  value       = var.project_id
}

output "gcs_bucket" {
  description = "SPOTIFY_GCS_BUCKET: the lake bucket."
  value       = google_storage_bucket.lake.name
}

output "bq_dataset" {
  description = "SPOTIFY_BQ_DATASET: the warehouse dataset."
  value       = google_bigquery_dataset.warehouse.dataset_id
}

output "bq_staging_dataset" {
  description = "SPOTIFY_BQ_STAGING_DATASET: dataset whose tables expire, used for MERGE staging."
  value       = google_bigquery_dataset.staging.dataset_id
}

output "bq_location" {
  description = "SPOTIFY_BQ_LOCATION: where BigQuery jobs must run."
  value       = google_bigquery_dataset.warehouse.location
}

output "pipeline_service_account_email" {
  description = "Identity for the Dagster code location, daemon and Spark (GOOGLE_APPLICATION_CREDENTIALS key of this account)."
  value       = google_service_account.pipeline.email
}

output "dashboard_service_account_email" {
  description = "Read-only identity for the Streamlit dashboard."
  value       = google_service_account.dashboard.email
}

output "pipeline_env" {
  description = "An .env block for deploy/.env (no secrets: Spotify credentials and the key file path are added by hand)."
  value       = <<-EOT
    SPOTIFY_DEPLOYMENT=cloud
    SPOTIFY_GCP_PROJECT=${var.project_id}
    SPOTIFY_GCS_BUCKET=${google_storage_bucket.lake.name}
    SPOTIFY_GCS_PREFIX=${var.gcs_prefix}
    SPOTIFY_BQ_DATASET=${google_bigquery_dataset.warehouse.dataset_id}
    SPOTIFY_BQ_STAGING_DATASET=${google_bigquery_dataset.staging.dataset_id}
    SPOTIFY_BQ_LOCATION=${google_bigquery_dataset.warehouse.location}
    # pipeline service account: ${google_service_account.pipeline.email}
    # dashboard service account: ${google_service_account.dashboard.email}
  EOT
}
