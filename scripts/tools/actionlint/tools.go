//go:build tools

// Package tools pins actionlint, which scripts/validate-deploy runs on the
// GitHub Actions workflows.
package tools

import _ "github.com/rhysd/actionlint/cmd/actionlint"
