# PostgreSQL from Debian's packages, run as a private cluster under
# $TODO_EVENTS_RUN/pgdata (so it never touches a system cluster).
# Sourced, not run.

: "${PG_USER:=todo}"
: "${PG_PASSWORD:=todo}"
: "${PG_DATABASE:=todo}"
PG_DATA="$TODO_EVENTS_RUN/pgdata"
PG_SOCKET_DIR="$TODO_EVENTS_RUN/pgsock"
DATABASE_URL_DEFAULT="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PGPORT/$PG_DATABASE"

pg_bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir ]] && echo "$dir"
}

pg_ensure_installed() {
  if [[ -z $(pg_bin_dir) ]]; then
    say "installing PostgreSQL from Debian's packages"
    apt_install postgresql postgresql-contrib
  fi
  need_cmd psql "install Debian's postgresql-client"
}

pg_run() { runuser -u postgres -- "$@"; }

pg_ready() { pg_run "$(pg_bin_dir)/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; }

pg_up() {
  pg_ensure_installed
  local bin; bin=$(pg_bin_dir)
  mkdir -p "$PG_SOCKET_DIR"
  chown postgres:postgres "$PG_SOCKET_DIR"
  if pg_ready; then
    say "PostgreSQL already answering on 127.0.0.1:$PGPORT"
  else
    if [[ ! -s $PG_DATA/PG_VERSION ]]; then
      say "initialising a PostgreSQL cluster in $PG_DATA"
      mkdir -p "$PG_DATA"
      chown postgres:postgres "$PG_DATA" "$TODO_EVENTS_RUN"
      pg_run "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >>"$LOG_DIR/postgres.log" 2>&1 || die "initdb failed; see $LOG_DIR/postgres.log"
    fi
    chown postgres:postgres "$LOG_DIR/postgres.log" 2>/dev/null || touch "$LOG_DIR/postgres.log"
    chown postgres:postgres "$LOG_DIR/postgres.log"
    say "starting PostgreSQL on 127.0.0.1:$PGPORT"
    pg_run "$bin/pg_ctl" -D "$PG_DATA" -l "$LOG_DIR/postgres.log" -w -t 60 start \
      -o "-p $PGPORT -k $PG_SOCKET_DIR -c listen_addresses=127.0.0.1 -c max_connections=300" >/dev/null \
      || die "PostgreSQL did not start; see $LOG_DIR/postgres.log"
    echo "pg" >"$PID_DIR/postgres.owned"
  fi
  pg_ensure_database
}

# Creates the application role and database if missing (idempotent).
pg_ensure_database() {
  local psql=(pg_run psql -h "$PG_SOCKET_DIR" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qtAX)
  if ! "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'" 2>/dev/null | grep -q 1; then
    "${psql[@]}" -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" >/dev/null || die "could not create role $PG_USER"
  fi
  if ! "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'" | grep -q 1; then
    "${psql[@]}" -c "CREATE DATABASE $PG_DATABASE OWNER $PG_USER" >/dev/null || die "could not create database $PG_DATABASE"
  fi
}

pg_down() {
  [[ -f $PID_DIR/postgres.owned ]] || return 0
  local bin; bin=$(pg_bin_dir)
  say "stopping PostgreSQL"
  pg_run "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  rm -f "$PID_DIR/postgres.owned"
}
