# shellcheck shell=bash
# PostgreSQL 15 from Debian's postgresql-15: a cluster of our own (initdb in data/postgres, not
# Debian's system cluster), started with pg_ctl as the service user. wal_level=logical,
# socket in run/, a superuser+replication role and a database for tests.

postgres_ports() { echo "$SLUICE_PG_PORT"; }
postgres_packages() { echo postgresql-15 postgresql-client-15; }   # contrib (hstore) ships in postgresql-15
postgres_match() { echo "$SLUICE_PG_BIN/postgres -D $(svc_data postgres)"; }

pg_psql_local() {  # over the unix socket (trust), as the superuser
  as_user env PGCONNECT_TIMEOUT=3 "$SLUICE_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN_ROOT" \
    -p "$SLUICE_PG_PORT" -U "$SLUICE_PG_USER" "$@"
}

postgres_launch() {
  local data; data=$(svc_data postgres)
  [[ -x $SLUICE_PG_BIN/initdb ]] || fail "postgres: $SLUICE_PG_BIN/initdb not found (package postgresql-15)"

  # A data dir without our marker is a half-finished initdb: start over.
  if [[ -d $data && ! -f $data/.sluice-initialized ]]; then rm -rf "$data"; fi
  if [[ ! -d $data ]]; then
    mkdir -p "$data"; chmod 700 "$data"; give_to_user "$data"
    local pwfile="$RUN_ROOT/postgres.initdb-pw"
    printf '%s\n' "$SLUICE_PG_PASSWORD" >"$pwfile"; give_to_user "$pwfile"; chmod 600 "$pwfile"
    if ! as_user "$SLUICE_PG_BIN/initdb" -D "$data" -U "$SLUICE_PG_USER" --pwfile="$pwfile" \
      --encoding=UTF8 --no-locale --auth-local=trust --auth-host=scram-sha-256 \
      >>"$(svc_log postgres)" 2>&1; then
      rm -f "$pwfile"; return 1
    fi
    rm -f "$pwfile"
    echo "include_if_exists = 'sluice.conf'" >>"$data/postgresql.conf"
    touch "$data/.sluice-initialized"
  fi
  give_to_user "$data"

  # Rewritten on every start so env.sh changes apply.
  cat >"$data/sluice.conf" <<EOF
# written by test/services/lib/postgres.sh on every start
listen_addresses = '$H'
port = $SLUICE_PG_PORT
unix_socket_directories = '$RUN_ROOT'
external_pid_file = '$(svc_pidfile postgres)'
max_connections = 200
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
wal_sender_timeout = 60s
password_encryption = 'scram-sha-256'
fsync = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
  cat >"$data/pg_hba.conf" <<EOF
# written by test/services/lib/postgres.sh on every start
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
local   replication  all                  trust
host    all          all   $H/32   scram-sha-256
host    replication  all   $H/32   scram-sha-256
EOF
  give_to_user "$data/sluice.conf" "$data/pg_hba.conf"

  # A postmaster.pid left by a killed server blocks the start if its pid got reused.
  if [[ -f $data/postmaster.pid ]]; then
    local old; old=$(head -n1 "$data/postmaster.pid" 2>/dev/null || true)
    pid_is postgres "$old" || rm -f "$data/postmaster.pid"
  fi
  local log; log=$(svc_log postgres)
  # shellcheck disable=SC2094  # pg_ctl appends the server's output, we append pg_ctl's own
  as_user "$SLUICE_PG_BIN/pg_ctl" start -D "$data" -l "$log" -W -s >>"$log" 2>&1
}

postgres_probe() { [[ $(pg_psql_local -d postgres -tAc 'SELECT 1' 2>/dev/null) == 1 ]]; }

postgres_post() {
  local u=$SLUICE_PG_USER db=$SLUICE_PG_DATABASE
  # keep the password in step with env.sh, then make sure the database exists
  pg_psql_local -d postgres -v u="$u" -v pw="$SLUICE_PG_PASSWORD" >/dev/null <<'EOF'
ALTER ROLE :"u" WITH SUPERUSER REPLICATION LOGIN PASSWORD :'pw';
EOF
  if [[ -z $(pg_psql_local -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
    pg_psql_local -d postgres -c "CREATE DATABASE \"$db\" OWNER \"$u\"" >/dev/null
  fi
  # the real check: password login over TCP, logical decoding available
  [[ $(PGPASSWORD=$SLUICE_PG_PASSWORD PGCONNECT_TIMEOUT=5 "$SLUICE_PG_BIN/psql" -X -h "$H" \
    -p "$SLUICE_PG_PORT" -U "$u" -d "$db" -tAc 'SHOW wal_level') == logical ]]
}

postgres_stop() {
  local pid=$1
  as_user "$SLUICE_PG_BIN/pg_ctl" stop -D "$(svc_data postgres)" -m fast -w -t 30 -s >/dev/null 2>&1 ||
    stop_pid postgres "$pid" 10
}
