# The warehouse. Table schemas come from spotify_assets/schemas/*.json, the same files
# the pipeline reads, and table names from tables.json (written from spotify_assets.schema),
# so Terraform and the code cannot disagree about a column or a name.

resource "google_bigquery_dataset" "warehouse" {
  #checkov:skip=CKV_GCP_81:CMEK is optional (var.kms_key_name); Google-managed encryption is the default for a personal listening history.
  project       = var.project_id
  dataset_id    = var.dataset_id
  friendly_name = "Spotify listening history"
  description   = "Plays, audio features and the Spark top-ten of the Spotify Listening Platform."
  location      = var.location
  labels        = local.labels

  delete_contents_on_destroy = false
  max_time_travel_hours      = 168

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  depends_on = [google_project_service.apis]
}

# The pipeline loads each lake batch into a fresh staging table, then MERGEs it into
# bq_plays on play_key. Staging tables are disposable, so the dataset expires them.
resource "google_bigquery_dataset" "staging" {
  #checkov:skip=CKV_GCP_81:CMEK is optional (var.kms_key_name); staging tables live at most staging_table_expiration_hours.
  project       = var.project_id
  dataset_id    = var.staging_dataset_id
  friendly_name = "Spotify pipeline staging"
  description   = "Per-batch staging tables loaded from the lake and MERGEd into the warehouse; they expire automatically."
  location      = var.location
  labels        = local.labels

  default_table_expiration_ms = var.staging_table_expiration_hours * 3600 * 1000
  delete_contents_on_destroy  = true

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_table" "bq_plays" {
  #checkov:skip=CKV_GCP_80:CMEK is optional (var.kms_key_name, inherited from the dataset's default encryption when set).
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = local.table_ids.plays
  description = "One row per play (play_key); loaded from the lake by MERGE, so reruns add nothing."
  labels      = local.labels

  schema = file("${path.module}/../spotify_assets/schemas/plays.json")

  # Dashboards filter by time; daily partitions keep those scans small. Clustered by listener
  # first (spotify_assets.schema.PLAYS_CLUSTERING, the same list ensure_tables uses).
  time_partitioning {
    type  = "DAY"
    field = "played_at"
  }
  require_partition_filter = false
  clustering               = ["user_id", "track_id"]

  deletion_protection = var.deletion_protection
}

resource "google_bigquery_table" "track_features" {
  #checkov:skip=CKV_GCP_80:CMEK is optional (var.kms_key_name, inherited from the dataset's default encryption when set).
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = local.table_ids.track_features
  description = "Audio features per track id, from Spotify or a fallback provider."
  labels      = local.labels

  schema     = file("${path.module}/../spotify_assets/schemas/track_features.json")
  clustering = ["track_id"]

  deletion_protection = var.deletion_protection
}

resource "google_bigquery_table" "track_metadata" {
  #checkov:skip=CKV_GCP_80:CMEK is optional (var.kms_key_name, inherited from the dataset's default encryption when set).
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = local.table_ids.track_metadata
  description = "Artist and album ids and album art per track id (GET /v1/tracks/{id}), for plays imported without them."
  labels      = local.labels

  schema     = file("${path.module}/../spotify_assets/schemas/track_metadata.json")
  clustering = ["track_id"]

  deletion_protection = var.deletion_protection
}

resource "google_bigquery_table" "top_ten_tracks" {
  #checkov:skip=CKV_GCP_80:CMEK is optional (var.kms_key_name, inherited from the dataset's default encryption when set).
  project     = var.project_id
  dataset_id  = google_bigquery_dataset.warehouse.dataset_id
  table_id    = local.table_ids.top_ten_tracks
  description = "The ten most played tracks, recomputed by Spark on every run (replaced, not appended)."
  labels      = local.labels

  schema = file("${path.module}/../spotify_assets/schemas/top_ten_tracks.json")

  deletion_protection = var.deletion_protection
}
