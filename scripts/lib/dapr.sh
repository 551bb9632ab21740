# Builds daprd and the Dapr scheduler from the Go module proxy, once per
# version, into $TODO_EVENTS_CACHE/dapr/<version>/bin. Sourced, not run.

DAPR_BIN_DIR="$TODO_EVENTS_CACHE/dapr/$DAPR_VERSION/bin"
DAPRD="$DAPR_BIN_DIR/daprd"
DAPR_SCHEDULER="$DAPR_BIN_DIR/scheduler"

dapr_ensure_built() {
  if [[ -x $DAPRD && -x $DAPR_SCHEDULER ]]; then return 0; fi
  need_cmd go "install Go 1.26 or newer (the dapr build needs it)"
  say "building daprd and scheduler $DAPR_VERSION from the Go module proxy (first time only, ~10-15 min on 2 cores)"
  local src="$TODO_EVENTS_CACHE/dapr/$DAPR_VERSION/src"
  mkdir -p "$src" "$DAPR_BIN_DIR"
  cp "$REPO_ROOT/scripts/dapr-build/go.mod" "$REPO_ROOT/scripts/dapr-build/go.sum" \
    "$REPO_ROOT/scripts/dapr-build/tools.go" "$src/"
  local pkg=github.com/dapr/dapr/pkg/buildinfo
  local ldflags="-s -w -X $pkg.version=$DAPR_VERSION -X $pkg.gitversion=v$DAPR_VERSION -X $pkg.gitcommit=gomodproxy"
  (
    cd "$src" &&
      GOFLAGS=-mod=mod go build -trimpath -tags stablecomponents -ldflags "$ldflags" \
        -o "$DAPR_BIN_DIR/daprd.tmp" github.com/dapr/dapr/cmd/daprd &&
      GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" \
        -o "$DAPR_BIN_DIR/scheduler.tmp" github.com/dapr/dapr/cmd/scheduler
  ) >>"$LOG_DIR/dapr-build.log" 2>&1 || die "building dapr failed; see $LOG_DIR/dapr-build.log"
  mv "$DAPR_BIN_DIR/daprd.tmp" "$DAPRD"
  mv "$DAPR_BIN_DIR/scheduler.tmp" "$DAPR_SCHEDULER"
}
