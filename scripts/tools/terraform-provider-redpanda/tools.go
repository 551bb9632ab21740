//go:build tools

// Package tools pins the Redpanda Terraform provider that
// scripts/validate-deploy builds into a local provider mirror.
package tools

import _ "github.com/redpanda-data/terraform-provider-redpanda"
