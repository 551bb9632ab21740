# mailpit: the real SMTP server of the local stack (notification's email
# channel and its tests). Built once from the Go module proxy
# (github.com/axllent/mailpit, whose go.mod has no replace directives, so
# `go install module@version` builds exactly that release) into
# $TODO_EVENTS_CACHE/mailpit/<version>/bin, and run on loopback at its
# default ports: SMTP $SMTP_PORT (1025), HTTP API $SMTP_HTTP_PORT (8025;
# received mail at /api/v1/messages). Sourced, not run; needs common.sh.

: "${MAILPIT_VERSION:=1.33.1}"
MAILPIT_BIN="$TODO_EVENTS_CACHE/mailpit/$MAILPIT_VERSION/bin/mailpit"

mailpit_ensure_built() {
  [[ -x $MAILPIT_BIN ]] && return 0
  need_cmd go "install Go 1.26 or newer (the mailpit build needs it)"
  say "building mailpit $MAILPIT_VERSION from the Go module proxy (first time only)"
  mkdir -p "$(dirname "$MAILPIT_BIN")"
  GOBIN="$(dirname "$MAILPIT_BIN")" GOFLAGS=-mod=mod go install -trimpath \
    -ldflags "-s -w -X github.com/axllent/mailpit/config.Version=v$MAILPIT_VERSION" \
    "github.com/axllent/mailpit@v$MAILPIT_VERSION" >>"$LOG_DIR/mailpit-build.log" 2>&1 \
    || die "building mailpit failed; see $LOG_DIR/mailpit-build.log"
}

mailpit_up() {
  mailpit_ensure_built
  if pid_alive mailpit; then return 0; fi
  port_open "$SMTP_PORT" && die "port $SMTP_PORT (SMTP) is taken by another process; set SMTP_PORT"
  say "starting mailpit (SMTP 127.0.0.1:$SMTP_PORT, API http://127.0.0.1:$SMTP_HTTP_PORT)"
  # --smtp-auth-accept-any + --smtp-auth-allow-insecure: notification may
  # log in with any credentials over plain SMTP (SMTP_TLS=none locally);
  # --enable-chaos lets tests make it answer 451/535 (PUT /api/v1/chaos).
  # --max 20000: mailpit deletes the oldest messages beyond --max (default
  # 500; axllent/mailpit-website content/docs/configuration/runtime-options.md),
  # and the fault suite counts each reminder's mail at the end of a run
  # (tests/faults/src/workload/reminders.rs): a pruned one would read as lost.
  start_bg mailpit "$MAILPIT_BIN" --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$SMTP_HTTP_PORT" \
    --database "$TODO_EVENTS_RUN/mailpit.db" --smtp-auth-accept-any --smtp-auth-allow-insecure \
    --enable-chaos --disable-version-check --max 20000
  wait_for "mailpit" 30 curl -fsS "http://127.0.0.1:$SMTP_HTTP_PORT/api/v1/info"
}

mailpit_down() { stop_bg mailpit; }
