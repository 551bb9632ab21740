//go:build tools

// Package tools pins the OpenTofu CLI that scripts/validate-deploy builds.
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
