# Provider and CLI pins. The google provider is pinned to one major version so a
# `terraform init -upgrade` can never pull in a release with breaking resource changes.
terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
