# Centrifugo v6 beside the sync gateway, for the side-by-side fan-out
# benchmark (scripts/bench-centrifugo, tests/src/bin/bench_fanout). Built from
# the Go module proxy once per version into
# $TODO_EVENTS_CACHE/centrifugo-<version>/, and only by the benchmark:
# ./scripts/test and ./scripts/dev never build or start it. Sourced, not run;
# needs common.sh and kafka.sh sourced first.
#
# How Centrifugo is fed (read in centrifugo v6.9.1's sources):
# - its Kafka consumer (internal/consuming/kafka.go, processRecord) either
#   dispatches an API command (method header + API request as the value) or,
#   with publication_data_mode on, publishes the record's value as it is into
#   the channels named in one header (processPublicationDataRecord; header
#   name from publication_data_mode.channels_header, internal/configtypes/types.go);
# - daprd's Kafka publisher turns every publish metadata entry into a record
#   header: task-api's relay publishes through the bulk API, and
#   components-contrib v1.18.3 (the version dapr v1.18.2's go.mod pins)
#   common/component/kafka/producer.go, BulkPublish (lines 172-197), copies
#   the request's metadata into each entry's and appends one header per
#   entry, so each task-updates record carries `partitionKey: <user id>`,
#   the key the relay publishes with.
# So Centrifugo reads the very records the gateway's daprd delivers, in
# publication data mode with channels_header = partitionKey: the CloudEvent
# lands unchanged in the channel named after the user. A client joins that
# channel through the `channels` claim of its HS256 connection token
# (internal/jwtverify/token_verifier_jwt.go: a server-side subscription), so,
# like the gateway, only a token for the user reaches the user's events.

: "${CENTRIFUGO_VERSION:=6.9.1}"
CENTRIFUGO_DIR="$TODO_EVENTS_CACHE/centrifugo-$CENTRIFUGO_VERSION"
CENTRIFUGO_BIN="$CENTRIFUGO_DIR/bin/centrifugo"
CENTRIFUGO_RUN="$TODO_EVENTS_RUN/bench-centrifugo"

# centrifugo_ensure: builds the pinned Centrifugo once. v6.9.1's go.mod has
# no replace directives, so `go install module@version` builds it as
# released; the version string is stamped as its Makefile does
# (internal/build.Version).
centrifugo_ensure() {
  [[ -x $CENTRIFUGO_BIN ]] && return 0
  need_cmd go "install Go 1.26 or newer (the Centrifugo build needs it)"
  say "building Centrifugo $CENTRIFUGO_VERSION from the Go module proxy (first time only, a few minutes)"
  local tmp="$CENTRIFUGO_DIR/bin.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath \
    -ldflags "-s -w -X github.com/centrifugal/centrifugo/v6/internal/build.Version=$CENTRIFUGO_VERSION" \
    "github.com/centrifugal/centrifugo/v6@v$CENTRIFUGO_VERSION" >>"$LOG_DIR/centrifugo-build.log" 2>&1 \
    || die "building Centrifugo failed; see $LOG_DIR/centrifugo-build.log"
  mkdir -p "$CENTRIFUGO_DIR/bin"
  mv "$tmp/centrifugo" "$CENTRIFUGO_BIN"
  rm -rf "$tmp"
}

# centrifugo_free_port: a loopback port nothing listens on right now.
centrifugo_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# centrifugo_config FILE PORT SECRET GROUP: writes the generated config.
# Only the WebSocket transport (on by default) and /health are served; no
# history, presence or recovery, so a publication costs what the gateway's
# live push costs (the gateway's replay is served by task-api, not by it).
centrifugo_config() {
  local file=$1 port=$2 secret=$3 group=$4
  cat >"$file" <<JSON
{
  "http_server": {"address": "127.0.0.1", "port": $port},
  "log": {"level": "warn"},
  "usage_stats": {"disabled": true},
  "health": {"enabled": true},
  "client": {"token": {"hmac_secret_key": "$secret"}},
  "consumers": [{
    "name": "task_updates",
    "enabled": true,
    "type": "kafka",
    "kafka": {
      "brokers": ["$KAFKA_BOOTSTRAP"],
      "topics": ["task-updates"],
      "consumer_group": "$group",
      "publication_data_mode": {"enabled": true, "channels_header": "partitionKey"}
    }
  }]
}
JSON
}

# centrifugo_group_at_end GROUP: commits GROUP's offsets at the end of
# task-updates before Centrifugo joins it. Centrifugo sets no reset offset
# (internal/consuming/kafka.go builds its franz-go client without
# ConsumeResetOffset) and franz-go's default is the start of the partition
# (pkg/kgo/config.go, resetOffset: NewOffset().AtStart()), so a new group
# would first replay hours of records; the gateway's daprd is at the end too.
centrifugo_group_at_end() {
  kafka_java org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$KAFKA_BOOTSTRAP" --group "$1" --topic task-updates \
    --reset-offsets --to-latest --execute >>"$LOG_DIR/bench-centrifugo.log" 2>&1 \
    || die "could not place consumer group $1 at the end of task-updates; see $LOG_DIR/bench-centrifugo.log"
}

# centrifugo_up: starts Centrifugo on a free loopback port with a fresh
# secret and consumer group; sets CENTRIFUGO_URL, CENTRIFUGO_HMAC_SECRET and
# CENTRIFUGO_PID for the bench tool. Each run has its own name (pid file,
# config), so two runs at once never stop each other's server.
centrifugo_up() {
  mkdir -p "$CENTRIFUGO_RUN"
  local port group config
  CENTRIFUGO_NAME="bench-centrifugo-$BASHPID"
  config="$CENTRIFUGO_RUN/$CENTRIFUGO_NAME.json"
  port=$(centrifugo_free_port)
  group="bench-centrifugo-$(date +%s)-$BASHPID"
  CENTRIFUGO_HMAC_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  centrifugo_config "$config" "$port" "$CENTRIFUGO_HMAC_SECRET" "$group"
  centrifugo_group_at_end "$group"
  say "starting Centrifugo $CENTRIFUGO_VERSION on 127.0.0.1:$port (consumer group $group)"
  start_bg "$CENTRIFUGO_NAME" "$CENTRIFUGO_BIN" --config "$config"
  CENTRIFUGO_URL="http://127.0.0.1:$port"
  CENTRIFUGO_PID=$(cat "$PID_DIR/$CENTRIFUGO_NAME.pid")
  export CENTRIFUGO_URL CENTRIFUGO_HMAC_SECRET CENTRIFUGO_PID
  wait_for "Centrifugo" 30 curl -fsS "$CENTRIFUGO_URL/health"
}

centrifugo_down() {
  [[ -n ${CENTRIFUGO_NAME:-} ]] || return 0
  stop_bg "$CENTRIFUGO_NAME"
  rm -f "$CENTRIFUGO_RUN/$CENTRIFUGO_NAME.json"
}

# centrifugo_bench ARGS...: the whole side-by-side run. Builds Centrifugo and
# the bench tool (release), starts Centrifugo, runs bench_fanout ARGS...
# against the running stack and Centrifugo, and stops Centrifugo however the
# run ends. A subshell, so its EXIT trap leaves a sourcing script's own alone.
centrifugo_bench() (
  centrifugo_ensure
  # The whole workspace, as scripts/bench builds it (a `-p` subset links
  # other binaries over the stack's); BENCH_NO_BUILD=1: scripts/bench has.
  if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    (cd "$REPO_ROOT" && cargo build --release --quiet --bins) || die "building the release binaries failed"
  fi
  pid_alive app-sync-gateway || die "the sync gateway is not running: ./scripts/dev up first"
  # Every socket is a descriptor in the bench and one in the server (both
  # servers' sockets at once in the bench): lift the soft limit to the hard
  # one; Centrifugo inherits it.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  trap centrifugo_down EXIT
  centrifugo_up
  "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/bench_fanout" "$@"
)
