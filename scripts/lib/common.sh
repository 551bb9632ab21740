# Shared settings and helpers for the local-stack scripts. Sourced, not run.
#
# Everything the stack downloads or builds is cached under TODO_EVENTS_CACHE,
# outside the clone, so a fresh clone (CI) reuses it. Runtime state (data
# directories, logs, pids) lives under TODO_EVENTS_RUN.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Toolchains installed the usual way (rustup, the Go tarball) may be missing
# from a non-login shell's PATH, as in CI.
for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/go/bin; do
  [[ -d $dir && ":$PATH:" != *":$dir:"* ]] && PATH="$dir:$PATH"
done
export PATH
: "${TODO_EVENTS_CACHE:=/var/cache/todo-events}"
: "${TODO_EVENTS_RUN:=/var/tmp/todo-events}"
export TODO_EVENTS_CACHE TODO_EVENTS_RUN

# Pinned versions. See scripts/dapr-build/go.mod for why dapr is 1.18.2.
# Kafka's version is pinned in scripts/kafka/pom.xml (its jars come from
# Maven Central).
: "${DAPR_VERSION:=1.18.2}"

# Ports. Each can be overridden from the environment.
: "${PGPORT:=5432}"
: "${KAFKA_PORT:=9092}"
: "${KAFKA_CONTROLLER_PORT:=9093}"
: "${SCHEDULER_PORT:=50006}"
# mailpit's defaults (scripts/lib/mailpit.sh); notification reads SMTP_PORT too.
: "${SMTP_PORT:=1025}"
: "${SMTP_HTTP_PORT:=8025}"
export PGPORT KAFKA_PORT SCHEDULER_PORT SMTP_PORT SMTP_HTTP_PORT

LOG_DIR="$TODO_EVENTS_RUN/logs"
PID_DIR="$TODO_EVENTS_RUN/pids"
mkdir -p "$TODO_EVENTS_CACHE" "$LOG_DIR" "$PID_DIR"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mwarn:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds, or dies naming WHAT.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "$what did not become ready within ${seconds}s (logs: $LOG_DIR)"
    fi
    sleep 0.2
  done
}

# pid_alive NAME: true when the process recorded as NAME is still running.
pid_alive() {
  local f="$PID_DIR/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_bg NAME CMD...: starts CMD detached, logging to $LOG_DIR/NAME.log.
start_bg() {
  local name=$1; shift
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

# stop_bg NAME: stops the process group started as NAME, politely first.
stop_bg() {
  local name=$1 f="$PID_DIR/$1.pid" pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"; }

apt_updated=""
apt_install() {
  if [[ -z $apt_updated ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# trim_build_cache: keeps the shared cargo target directory from filling the
# disk. rustc keeps one incremental directory per crate and build (every
# checkout path, profile and feature set makes its own, and only old
# sessions inside one are collected); a CI run once failed with "No space
# left on device" at 41 GiB of them. They are dropped when they pass
# TODO_EVENTS_INCREMENTAL_MAX_GIB or the disk has less than
# TODO_EVENTS_MIN_FREE_GIB free. If the disk is still short, CI
# (TODO_EVENTS_CI=1, set by .ci/run) removes the whole target directory and
# builds cold; elsewhere that is only advised, because the running stack
# and scripts/bench's restore use the binaries in it.
trim_build_cache() {
  local target=${CARGO_TARGET_DIR:-$TODO_EVENTS_CACHE/target}
  [[ $target == /* ]] || target="$REPO_ROOT/$target"
  [[ -d $target ]] || return 0
  local max_gib=${TODO_EVENTS_INCREMENTAL_MAX_GIB:-8} min_free_gib=${TODO_EVENTS_MIN_FREE_GIB:-20}
  [[ $max_gib =~ ^[0-9]+$ && $min_free_gib =~ ^[0-9]+$ ]] \
    || die "TODO_EVENTS_INCREMENTAL_MAX_GIB and TODO_EVENTS_MIN_FREE_GIB are whole GiB"
  local dirs=() dir incremental_gib=0 free_gib
  for dir in "$target"/*/incremental; do [[ -d $dir ]] && dirs+=("$dir"); done
  if ((${#dirs[@]})); then
    incremental_gib=$({ du -s -BG -- "${dirs[@]}" 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
  fi
  free_gib=$(disk_free_gib "$target" "$min_free_gib")
  if ((${#dirs[@]})) && ((incremental_gib > max_gib || free_gib < min_free_gib)); then
    say "dropping cargo's incremental state (${incremental_gib} GiB; ${free_gib} GiB free on disk)"
    for dir in "${dirs[@]}"; do
      # cargo holds its profile's .cargo-lock (flock(2), cargo's
      # util/flock.rs) while it builds: wait for a running build rather
      # than pull rustc's session directories from under it.
      flock "$(dirname "$dir")/.cargo-lock" rm -rf "$dir"
    done
    free_gib=$(disk_free_gib "$target" "$min_free_gib")
  fi
  ((free_gib < min_free_gib)) || return 0
  if [[ ${TODO_EVENTS_CI:-0} == 1 ]]; then
    say "only ${free_gib} GiB free: removing the cargo target directory $target (a cold build follows)"
    rm -rf "$target"
  else
    warn "only ${free_gib} GiB free on the disk of $target: \`./scripts/dev down; rm -rf $target\` frees $(du -sh "$target" 2>/dev/null | cut -f1) (the next build is a cold one)"
  fi
}

# disk_free_gib DIR UNKNOWN: whole GiB free on DIR's file system, or
# UNKNOWN when df cannot tell.
disk_free_gib() {
  local free
  free=$({ df --output=avail -BG "$1" 2>/dev/null || true; } | awk 'NR == 2 {print $1 + 0}')
  echo "${free:-$2}"
}
