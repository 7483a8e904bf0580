# shellcheck shell=bash
# MariaDB 10.11 from Debian's mariadb-server: own datadir (mariadb-install-db), mariadbd started
# directly (no systemd) as the service user with its own my.cnf (/etc/mysql is not read).
# Row-based binlog with full images and metadata, GTID, a user with replication rights.

mariadb_ports() { echo "$SLUICE_MARIADB_PORT"; }
mariadb_packages() { echo mariadb-server mariadb-client; }
mariadb_match() { echo "--defaults-file=$(svc_data mariadb)/my.cnf"; }

mariadb_root() {  # root over the unix socket; root has no password and only exists @localhost
  mariadb --no-defaults --protocol=socket --socket="$RUN_ROOT/mariadb.sock" -uroot \
    --connect-timeout=3 "$@"
}

mariadb_launch() {
  local base db; base=$(svc_data mariadb); db=$base/db
  mkdir -p "$base/tmp"
  cat >"$base/my.cnf" <<EOF
# written by test/services/lib/mariadb.sh on every start
[mysqld]
datadir = $db
tmpdir = $base/tmp
socket = $RUN_ROOT/mariadb.sock
pid-file = $(svc_pidfile mariadb)
port = $SLUICE_MARIADB_PORT
bind-address = $H
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
default-time-zone = '+00:00'
innodb_buffer_pool_size = 128M
max_connections = 200
# binlog for change data capture
server_id = 1
log_bin = mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
gtid_strict_mode = ON
log_slave_updates = ON
expire_logs_days = 2

[client]
socket = $RUN_ROOT/mariadb.sock
port = $SLUICE_MARIADB_PORT
EOF
  give_to_user "$base"

  # A datadir without our marker is a half-finished install: start over.
  if [[ -d $db && ! -f $base/.sluice-initialized ]]; then rm -rf "$db"; fi
  if [[ ! -d $db ]]; then
    as_user mariadb-install-db --defaults-file="$base/my.cnf" --auth-root-authentication-method=normal \
      --skip-test-db >>"$(svc_log mariadb)" 2>&1 || return 1
    touch "$base/.sluice-initialized"; give_to_user "$base/.sluice-initialized"
  fi
  start_bg mariadb /usr/sbin/mariadbd --defaults-file="$base/my.cnf"
}

mariadb_probe() { [[ $(mariadb_root -N -e 'SELECT 1' 2>/dev/null) == 1 ]]; }

mariadb_post() {
  local u=$SLUICE_MARIADB_USER pw=$SLUICE_MARIADB_PASSWORD db=$SLUICE_MARIADB_DATABASE host sql=""
  sql+="CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4;"
  for host in '%' localhost "$H"; do
    sql+="CREATE USER IF NOT EXISTS '$u'@'$host' IDENTIFIED BY '$pw';"
    sql+="ALTER USER '$u'@'$host' IDENTIFIED BY '$pw';"
    sql+="GRANT ALL PRIVILEGES ON *.* TO '$u'@'$host' WITH GRANT OPTION;"
    sql+="GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '$u'@'$host';"
  done
  mariadb_root -e "$sql" || return 1
  # the real check: password login over TCP, row binlog on
  [[ $(mariadb --no-defaults --protocol=tcp -h "$H" -P "$SLUICE_MARIADB_PORT" -u "$u" -p"$pw" \
    --connect-timeout=5 -N -e 'SELECT @@log_bin, @@binlog_format' "$db") == $'1\tROW' ]]
}
