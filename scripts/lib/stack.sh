# The Dapr side of the local stack: the scheduler, each function, and each
# function's own daprd sidecar (app-id = function name). The dapr CLI is not
# served by the Go module proxy here, so this supervisor does what
# `dapr run -f` would: start the app and its sidecar with the same flags,
# logs and pid files per process. Sourced, not run.

: "${CARGO_TARGET_DIR:=$TODO_EVENTS_CACHE/target}"
export CARGO_TARGET_DIR
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
}

scheduler_up() {
  if pid_alive scheduler; then return 0; fi
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

sidecar_up() {
  local name=$1
  if pid_alive "daprd-$name"; then return 0; fi
  local fields; read -r -a fields <<<"$(printf '%s\n' "${FUNCTION_TABLE[@]}" | grep "^$name ")"
  (
    cd "$REPO_ROOT" &&
      start_bg "daprd-$name" "$DAPRD" --app-id "$name" --app-port "$(fn_port "$name")" \
        --app-protocol http --app-channel-address 127.0.0.1 \
        --dapr-http-port "${fields[2]}" --dapr-grpc-port "${fields[3]}" --metrics-port "${fields[4]}" \
        --dapr-listen-addresses 127.0.0.1 \
        --resources-path dapr/components --resources-path dapr/local --config dapr/config.yaml \
        --scheduler-host-address "127.0.0.1:$SCHEDULER_PORT" --placement-host-address "" \
        --log-as-json --log-level info
  )
}

wait_function_ready() {
  local name=$1
  wait_for "$name (/healthz on port $(fn_port "$name"))" 120 curl -fsS "http://127.0.0.1:$(fn_port "$name")/healthz"
  wait_for "daprd for $name (/v1.0/healthz on port $(fn_dapr_http "$name"))" 120 \
    curl -fsS "http://127.0.0.1:$(fn_dapr_http "$name")/v1.0/healthz"
  # Outbound: its components (Kafka, PostgreSQL state, secrets) are ready.
  wait_for "daprd for $name to reach its components (/v1.0/healthz/outbound)" 60 \
    curl -fsS "http://127.0.0.1:$(fn_dapr_http "$name")/v1.0/healthz/outbound"
}

functions_up() {
  local name
  for name in $(functions_present); do app_up "$name"; done
  for name in $(functions_present); do sidecar_up "$name"; done
  for name in $(functions_present); do wait_function_ready "$name"; done
}

functions_down() {
  local name
  for name in $(functions_present); do stop_bg "daprd-$name"; stop_bg "app-$name"; done
  stop_bg scheduler
}
