# The lake: raw API batches and the CSV/Parquet files BigQuery loads from.
# The pipeline only ever creates objects (batch ids are deterministic, a rerun writes the
# same name), so versioning plus lifecycle rules bound what an accidental overwrite or
# delete can cost.
resource "google_storage_bucket" "lake" {
  #checkov:skip=CKV_GCP_62:Access logging is optional (var.access_log_bucket); a personal project rarely has a log sink bucket, and Cloud Audit Logs cover admin access.
  name          = local.bucket_name
  project       = var.project_id
  location      = var.location
  storage_class = "STANDARD"
  labels        = local.labels
  force_destroy = false

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  # Noncurrent versions are the undo buffer; keep them for a bounded time...
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # ...and never more than a few per object.
  lifecycle_rule {
    condition {
      num_newer_versions = var.max_noncurrent_versions
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Scratch space (load staging, Spark temp files) is never worth keeping.
  lifecycle_rule {
    condition {
      age            = var.temp_object_retention_days
      matches_prefix = ["temp/"]
    }
    action {
      type = "Delete"
    }
  }

  # Data handed between assets (typed files, one per asset per run, never replaced) is
  # only read by the same run or a re-execution of it: expire it, Google deletes it, the
  # pipeline itself never needs delete.
  lifecycle_rule {
    condition {
      age            = var.handoff_retention_days
      matches_prefix = ["${var.gcs_prefix}/dagster/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "logging" {
    for_each = var.access_log_bucket == null ? [] : [var.access_log_bucket]
    content {
      log_bucket        = logging.value
      log_object_prefix = "${local.bucket_name}/"
    }
  }

  depends_on = [google_project_service.apis]
}
