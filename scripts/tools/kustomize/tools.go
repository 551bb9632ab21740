//go:build tools

// Package tools pins the kustomize CLI that renders knative/overlays/*.
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
