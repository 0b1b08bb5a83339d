variable "project_id" {
  description = "GCP project that holds the lake bucket, the BigQuery datasets and the service accounts."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id: 6-30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Default region for regional API calls made by the provider (resources themselves use var.location)."
  type        = string
  default     = "europe-west1"
}

variable "location" {
  description = "Location of the lake bucket and both BigQuery datasets. BigQuery can only load from a bucket in a compatible location, so one value drives both (e.g. EU, US, europe-west1)."
  type        = string
  default     = "EU"

  validation {
    condition     = length(trimspace(var.location)) > 0
    error_message = "location must not be empty."
  }
}

variable "bucket_name" {
  description = "Name of the lake bucket. Bucket names are global; null means \"<project_id>-spotify-lake\"."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 lowercase letters, digits, dots, hyphens or underscores, starting and ending with a letter or digit."
  }
}

variable "dataset_id" {
  description = "BigQuery dataset with the warehouse tables (bq_plays, track_features, top_ten_tracks)."
  type        = string
  default     = "spotify"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.dataset_id))
    error_message = "dataset_id may only contain letters, digits and underscores."
  }
}

variable "staging_dataset_id" {
  description = "BigQuery dataset for the per-batch staging tables the pipeline loads before MERGE-ing into bq_plays. Its tables expire on their own."
  type        = string
  default     = "spotify_staging"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,1024}$", var.staging_dataset_id))
    error_message = "staging_dataset_id may only contain letters, digits and underscores."
  }
}

variable "staging_table_expiration_hours" {
  description = "Staging tables are deleted this many hours after creation. A MERGE finishes in minutes; the margin keeps a failed batch inspectable for a day."
  type        = number
  default     = 24

  validation {
    condition     = var.staging_table_expiration_hours >= 1 && var.staging_table_expiration_hours <= 24 * 30
    error_message = "staging_table_expiration_hours must be between 1 and 720."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Overwritten or deleted lake objects stay recoverable (as noncurrent versions) for this many days."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "max_noncurrent_versions" {
  description = "At most this many noncurrent versions of one object are kept, whatever their age."
  type        = number
  default     = 3

  validation {
    condition     = var.max_noncurrent_versions >= 1
    error_message = "max_noncurrent_versions must be at least 1."
  }
}

variable "handoff_retention_days" {
  description = "Objects under <gcs_prefix>/dagster/ (data handed between assets, one file per asset per run) are deleted after this many days; a failed run can be re-executed within that time."
  type        = number
  default     = 30

  validation {
    condition     = var.handoff_retention_days >= 1
    error_message = "handoff_retention_days must be at least 1."
  }
}

variable "temp_object_retention_days" {
  description = "Objects under temp/ (scratch space for loads and Spark) are deleted after this many days."
  type        = number
  default     = 7

  validation {
    condition     = var.temp_object_retention_days >= 1
    error_message = "temp_object_retention_days must be at least 1."
  }
}

variable "kms_key_name" {
  description = "Optional Cloud KMS key (projects/.../cryptoKeys/...) for customer-managed encryption of the bucket and datasets. null means Google-managed keys. The GCS and BigQuery service agents need roles/cloudkms.cryptoKeyEncrypterDecrypter on it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "kms_key_name must look like projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "access_log_bucket" {
  description = "Optional existing bucket that receives usage/storage access logs of the lake bucket. null disables access logging (Cloud Audit Logs still record admin activity)."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to destroy the warehouse tables from Terraform. The play history cannot be re-fetched from Spotify (the API returns only the last 50 plays), so this stays true outside throwaway projects."
  type        = bool
  default     = true
}

variable "enable_apis" {
  description = "Enable the BigQuery, Cloud Storage and IAM APIs in the project. Turn off if the project's APIs are managed elsewhere."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Extra labels merged into every labelled resource."
  type        = map(string)
  default     = {}
}

variable "gcs_prefix" {
  description = "SPOTIFY_GCS_PREFIX: object prefix in the bucket; the lake is under <prefix>/lake/, the data handed between assets under <prefix>/dagster/ (create-only too; expired by a lifecycle rule)."
  type        = string
  default     = "spotify"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_/-]*[a-z0-9]$", var.gcs_prefix))
    error_message = "gcs_prefix: lower-case letters, digits, _, - and /, not starting or ending with /."
  }
}
