//go:build tools

// Package tools pins kubectl-validate, which scripts/validate-deploy uses to
// check the rendered manifests against built-in Kubernetes schemas and the
// Knative and Dapr CRDs.
package tools

import _ "sigs.k8s.io/kubectl-validate"
