# The Dapr side of the local stack: the scheduler, each function, and each
# function's own daprd sidecar (app-id = function name). The dapr CLI is not
# served by the Go module proxy here, so this supervisor does what
# `dapr run -f` would: start the app and its sidecar with the same flags,
# logs and pid files per process. Sourced, not run.

: "${CARGO_TARGET_DIR:=$TODO_EVENTS_CACHE/target}"
export CARGO_TARGET_DIR
# Which build the functions run from: debug (default) or release
# (`cargo build --release`; benchmarks, docs/benchmarks.md).
: "${TODO_EVENTS_PROFILE:=debug}"
DEV_DIR="$REPO_ROOT/.dev"
SCHEDULER_DATA="$TODO_EVENTS_RUN/scheduler"
: "${SCHEDULER_HEALTH_PORT:=8089}"

# name, default app port, daprd HTTP, gRPC and metrics ports.
FUNCTION_TABLE=(
  "task-api 8080 3500 50001 9190"
  "audit 8081 3501 50002 9191"
  "recurring 8082 3502 50003 9192"
  "notification 8083 3503 50004 9193"
  "sync-gateway 8090 3504 50005 9194"
)

# The functions that exist in this checkout, in start order.
functions_present() {
  local row name
  for row in "${FUNCTION_TABLE[@]}"; do
    name=${row%% *}
    [[ -f $REPO_ROOT/functions/$name/Cargo.toml ]] && echo "$name"
  done
}

# fn_field NAME INDEX: a column of FUNCTION_TABLE; the app port can be
# overridden by <NAME>_PORT (e.g. TASK_API_PORT).
fn_field() {
  local row fields var
  for row in "${FUNCTION_TABLE[@]}"; do
    read -r -a fields <<<"$row"
    [[ ${fields[0]} == "$1" ]] || continue
    if [[ $2 == 1 ]]; then
      var="$(tr 'a-z-' 'A-Z_' <<<"$1")_PORT"
      echo "${!var:-${fields[1]}}"
    else
      echo "${fields[$2]}"
    fi
    return
  done
}
fn_port() { fn_field "$1" 1; }
fn_dapr_http() { fn_field "$1" 2; }

# Writes .dev/env (tokens, dev JWT secret) and .dev/secrets.json once.
dev_secrets_ensure() {
  mkdir -p "$DEV_DIR"
  if [[ ! -f $DEV_DIR/env ]]; then
    say "writing development secrets to .dev/ (git-ignored)"
    {
      echo "DAPR_API_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "APP_API_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
      echo "JWT_HS256_SECRET=dev-only-hs256-secret-do-not-use-in-production"
    } >"$DEV_DIR/env"
  fi
  cat >"$DEV_DIR/secrets.json" <<JSON
{ "postgres-connection-string": "host=127.0.0.1 port=$PGPORT user=$PG_USER password=$PG_PASSWORD dbname=$PG_DATABASE sslmode=disable" }
JSON
}

# Exports the dev secrets, then the user's .env (which wins).
dev_env_load() {
  set -a
  # shellcheck disable=SC1091
  source "$DEV_DIR/env"
  # shellcheck disable=SC1091
  [[ -f $REPO_ROOT/.env ]] && source "$REPO_ROOT/.env"
  set +a
  : "${DATABASE_URL:=$DATABASE_URL_DEFAULT}"
  export DATABASE_URL
  # The local page is served by sync-gateway on its own port, another
  # origin than any other function's: every function admits it, in both
  # spellings of loopback a browser may use (shared/service/src/cors.rs).
  # The tests read the same value. A value in .env wins.
  local gw; gw=$(fn_port sync-gateway)
  : "${CORS_ALLOWED_ORIGINS:=http://127.0.0.1:$gw,http://localhost:$gw}"
  export CORS_ALLOWED_ORIGINS
}

# The stack's listening ports inside Linux's ephemeral range (32768-60999 by
# default): daprd's gRPC ports and the scheduler's. The kernel may give any
# outgoing connection one of them as its local port: seen here, a daprd's
# connection to the scheduler took 127.0.0.1:50002 and audit's daprd then
# failed with "bind: address already in use". So they are reserved
# (net.ipv4.ip_local_reserved_ports, kept until reboot) before the scheduler
# or a daprd starts. Where the setting is not writable (not root, or a
# container without it), a warning, and the stack starts as before.
stack_reserve_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports merged
  merged=$(stack_ports_unreserved) || return 0
  [[ -n $merged ]] || return 0
  if ! { printf '%s\n' "$merged" >"$file"; } 2>/dev/null; then
    warn "cannot reserve the stack's ports ($file is not writable): another process's outgoing connection may take one"
  fi
}

# stack_ports_unreserved: nothing when every port of the stack in the
# ephemeral range is reserved, else the reserved list with them added (what
# stack_reserve_ports writes; scripts/test checks it prints nothing).
stack_ports_unreserved() {
  local ports row grpc
  ports=("$SCHEDULER_PORT" "$SYNC_GATEWAY_REPLICA_DAPR_GRPC_PORT")
  for row in "${FUNCTION_TABLE[@]}"; do
    read -r _ _ _ grpc _ <<<"$row"
    ports+=("$grpc")
  done
  python3 - "$(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null)" "${ports[@]}" <<'PY'
import sys
reserved = set()
for part in filter(None, sys.argv[1].strip().split(",")):
    low, _, high = part.partition("-")
    reserved.update(range(int(low), int(high or low) + 1))
wanted = {int(p) for p in sys.argv[2:]}
if not wanted <= reserved:
    print(",".join(str(p) for p in sorted(reserved | wanted)))
PY
}

scheduler_up() {
  if pid_alive scheduler; then return 0; fi
  stack_reserve_ports
  mkdir -p "$SCHEDULER_DATA"
  say "starting the Dapr scheduler on 127.0.0.1:$SCHEDULER_PORT"
  start_bg scheduler "$DAPR_SCHEDULER" --mode standalone --listen-address 127.0.0.1 \
    --port "$SCHEDULER_PORT" --healthz-port "$SCHEDULER_HEALTH_PORT" --metrics-port 9099 \
    --override-broadcast-host-port "127.0.0.1:$SCHEDULER_PORT" \
    --etcd-data-dir "$SCHEDULER_DATA" --etcd-client-port 23790 \
    --etcd-initial-cluster "dapr-scheduler-server-0=http://127.0.0.1:23800" \
    --log-as-json
  wait_for "the Dapr scheduler" 60 curl -fsS "http://127.0.0.1:$SCHEDULER_HEALTH_PORT/healthz"
}

build_functions() {
  need_cmd cargo "install Rust (rustup) to build the functions"
  local args=(build --bins)
  [[ $TODO_EVENTS_PROFILE == release ]] && args+=(--release)
  trim_build_cache
  say "building the functions (cargo ${args[*]})"
  (cd "$REPO_ROOT" && cargo "${args[@]}") >>"$LOG_DIR/cargo-build.log" 2>&1 \
    || die "cargo build failed; see $LOG_DIR/cargo-build.log"
}

app_up() {
  local name=$1 port; port=$(fn_port "$1")
  if pid_alive "app-$name"; then return 0; fi
  port_open "$port" && die "port $port for $name is taken by another process; set $(tr 'a-z-' 'A-Z_' <<<"$name")_PORT"
  local extra=()
  [[ $name == notification ]] && mapfile -t extra < <(notification_dev_env)
  [[ $name == sync-gateway ]] && mapfile -t extra < <(sync_gateway_dev_env)
  start_bg "app-$name" env PORT="$port" DAPR_HTTP_PORT="$(fn_dapr_http "$name")" "${extra[@]}" \
    "$CARGO_TARGET_DIR/$TODO_EVENTS_PROFILE/$name"
}

# notification on the local stack: mailpit has no TLS, the tests' push
# service listens on loopback (a test-only setting), and a VAPID key is
# made once into .dev/ (32 random bytes are a valid P-256 scalar except
# with probability ~2^-32, and then the app refuses to start). Values already
# in the environment (.env) win.
notification_dev_env() {
  local key_file="$DEV_DIR/vapid-private-key"
  if [[ ! -s $key_file ]]; then
    mkdir -p "$DEV_DIR"
    head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$key_file"
  fi
  echo "SMTP_TLS=${SMTP_TLS:-none}"
  echo "SMTP_PORT=$SMTP_PORT"
  echo "VAPID_PRIVATE_KEY=${VAPID_PRIVATE_KEY:-$(cat "$key_file")}"
  echo "NOTIFICATION_PUSH_ALLOW_PRIVATE_ENDPOINTS=${NOTIFICATION_PUSH_ALLOW_PRIVATE_ENDPOINTS:-true}"
}

# sync-gateway on the local stack serves the page compiled into web/dist/
# (scripts/lib/browser.sh builds it), whose /config.json points it at
# task-api's own port: another origin, admitted by CORS_ALLOWED_ORIGINS
# (dev_env_load).
sync_gateway_dev_env() {
  echo "WEB_DIR=${WEB_DIR:-$REPO_ROOT/web/dist}"
  echo "WEB_API_URL=${WEB_API_URL:-http://127.0.0.1:$(fn_port task-api)}"
}

sidecar_up() {
  local name=$1
  if pid_alive "daprd-$name"; then return 0; fi
  local fields; read -r -a fields <<<"$(printf '%s\n' "${FUNCTION_TABLE[@]}" | grep "^$name ")"
  daprd_start "daprd-$name" "$name" "$(fn_port "$name")" "${fields[2]}" "${fields[3]}" "${fields[4]}" dapr/local
}

# daprd_start PROCESS APP_ID APP_PORT HTTP GRPC METRICS RESOURCES [ENV=VALUE...]:
# one daprd with the stack's flags; RESOURCES holds the pub/sub and secret
# store components (dapr/local, or a replica's patched copy).
daprd_start() {
  local process=$1 app_id=$2 app_port=$3 http=$4 grpc=$5 metrics=$6 resources=$7; shift 7
  stack_reserve_ports
  (
    cd "$REPO_ROOT" &&
      start_bg "$process" env "$@" "$DAPRD" --app-id "$app_id" --app-port "$app_port" \
        --app-protocol http --app-channel-address 127.0.0.1 \
        --dapr-http-port "$http" --dapr-grpc-port "$grpc" --metrics-port "$metrics" \
        --dapr-listen-addresses 127.0.0.1 \
        --resources-path dapr/components --resources-path "$resources" --config dapr/config.yaml \
        --scheduler-host-address "127.0.0.1:$SCHEDULER_PORT" --placement-host-address "" \
        --log-as-json --log-level info
  )
}

wait_function_ready() {
  wait_ports_ready "$1" "$(fn_port "$1")" "$(fn_dapr_http "$1")"
}

# wait_ports_ready NAME APP_PORT DAPR_HTTP_PORT
wait_ports_ready() {
  local name=$1 app=$2 dapr=$3
  wait_for "$name (/healthz on port $app)" 120 curl -fsS "http://127.0.0.1:$app/healthz"
  wait_for "daprd for $name (/v1.0/healthz on port $dapr)" 120 \
    curl -fsS "http://127.0.0.1:$dapr/v1.0/healthz"
  # Outbound: its components (Kafka, PostgreSQL state, secrets) are ready.
  wait_for "daprd for $name to reach its components (/v1.0/healthz/outbound)" 60 \
    curl -fsS "http://127.0.0.1:$dapr/v1.0/healthz/outbound"
}

functions_up() {
  local name
  for name in $(functions_present); do app_up "$name"; done
  for name in $(functions_present); do sidecar_up "$name"; done
  for name in $(functions_present); do wait_function_ready "$name"; done
}

functions_down() {
  local name
  replica_down
  for name in $(functions_present); do stop_bg "daprd-$name"; stop_bg "app-$name"; done
  stop_bg scheduler
}

# A second sync-gateway replica on the running stack, as the cluster runs
# one: the same binary and app-id, its own daprd on other ports, and its own
# Kafka consumer group, so it too receives every task-updates event. The
# cluster gets the group from daprd's "{podName}" (knative/base/sync-gateway
# patches dapr/kubernetes/pubsub.yaml); this does the same to a copy of
# dapr/local/pubsub.yaml and gives daprd a POD_NAME, which it reads in every
# mode (dapr v1.18.2 pkg/runtime/runtime.go; the substitution is
# pkg/runtime/meta/meta.go convertItemsToProps, which fails the component if
# POD_NAME is empty). Like a new pod, each start is a new group that begins
# at the newest offset; the client's resume covers anything older. Kafka
# expires the empty groups (offsets.retention.minutes, 7 days by default).
# Only on request: ./scripts/dev replica start|stop sync-gateway.
: "${SYNC_GATEWAY_REPLICA_PORT:=8091}"
: "${SYNC_GATEWAY_REPLICA_DAPR_HTTP_PORT:=3510}"
: "${SYNC_GATEWAY_REPLICA_DAPR_GRPC_PORT:=50010}"
: "${SYNC_GATEWAY_REPLICA_METRICS_PORT:=9200}"
REPLICA_RESOURCES="$TODO_EVENTS_RUN/sync-gateway-replica"

# The local components with the cluster's gateway patch: consumerGroup
# "{podName}", initialOffset "newest". Fails if either field is missing.
replica_resources() {
  mkdir -p "$REPLICA_RESOURCES"
  cp "$REPO_ROOT/dapr/local/secretstore.yaml" "$REPLICA_RESOURCES/"
  awk '
    /- name: consumerGroup$/ { print; getline; sub(/value: .*/, "value: \"{podName}\""); group = 1 }
    /- name: initialOffset$/ { print; getline; sub(/value: .*/, "value: \"newest\""); offset = 1 }
    { print }
    END { exit !(group && offset) }
  ' "$REPO_ROOT/dapr/local/pubsub.yaml" >"$REPLICA_RESOURCES/pubsub.yaml" \
    || die "dapr/local/pubsub.yaml has no consumerGroup/initialOffset entry to patch"
}

replica_up() {
  local port=$SYNC_GATEWAY_REPLICA_PORT http=$SYNC_GATEWAY_REPLICA_DAPR_HTTP_PORT pod
  if ! pid_alive app-sync-gateway-replica; then
    port_open "$port" && die "port $port for the replica is taken; set SYNC_GATEWAY_REPLICA_PORT"
    local extra=()
    declare -F sync_gateway_dev_env >/dev/null && mapfile -t extra < <(sync_gateway_dev_env)
    start_bg app-sync-gateway-replica env PORT="$port" DAPR_HTTP_PORT="$http" "${extra[@]}" \
      "$CARGO_TARGET_DIR/$TODO_EVENTS_PROFILE/sync-gateway"
  fi
  if ! pid_alive daprd-sync-gateway-replica; then
    replica_resources
    pod="sync-gateway-replica-$(date +%s)-$RANDOM"
    say "starting a sync-gateway replica on port $port (consumer group $pod)"
    echo "$pod" >"$REPLICA_RESOURCES/group"
    daprd_start daprd-sync-gateway-replica sync-gateway "$port" "$http" \
      "$SYNC_GATEWAY_REPLICA_DAPR_GRPC_PORT" "$SYNC_GATEWAY_REPLICA_METRICS_PORT" \
      "$REPLICA_RESOURCES" POD_NAME="$pod"
  fi
  wait_ports_ready "the sync-gateway replica" "$port" "$http"
  # Ready means consuming: the new group has joined and owns the partitions,
  # so it reads from the newest offset as of now.
  wait_for "the replica's consumer group $(cat "$REPLICA_RESOURCES/group")" 90 replica_group_stable
}

replica_group_stable() {
  kafka_java org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --state \
    --group "$(cat "$REPLICA_RESOURCES/group")" 2>/dev/null | grep -Eq 'Stable +[1-9]'
}

replica_down() {
  stop_bg daprd-sync-gateway-replica
  stop_bg app-sync-gateway-replica
}
