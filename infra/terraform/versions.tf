# Pinned versions. OpenTofu >= 1.11 or Terraform >= 1.11 is needed for the
# write-only user passwords (password_wo), which never reach the state.
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    redpanda = {
      source = "redpanda-data/redpanda"
      # 1.9.0 is the version CI builds and tests (scripts/validate-deploy).
      version = "~> 1.9.0"
    }
  }
}
