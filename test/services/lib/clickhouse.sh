# shellcheck shell=bash
# ClickHouse from Debian's clickhouse-server (18.16): a minimal config of our own in
# data/clickhouse (HTTP + native TCP on loopback, no interserver port), data under it, logs to
# stdout, which goes to logs/clickhouse.log. Users: 'default' (no password) and the test user.

clickhouse_ports() { echo "$SLUICE_CLICKHOUSE_HTTP_PORT $SLUICE_CLICKHOUSE_TCP_PORT"; }
clickhouse_packages() { echo clickhouse-server curl; }
clickhouse_match() { echo "--config-file=$(svc_data clickhouse)/config.xml"; }

clickhouse_bin() {
  local b
  for b in /usr/bin/clickhouse-server /usr/sbin/clickhouse-server; do
    [[ -x $b ]] && { echo "$b"; return; }
  done
  fail "clickhouse: clickhouse-server binary not found (package clickhouse-server)"
}

clickhouse_launch() {
  local data; data=$(svc_data clickhouse)
  mkdir -p "$data/db" "$data/tmp" "$data/user_files" "$data/format_schemas"
  cat >"$data/config.xml" <<EOF
<?xml version="1.0"?>
<!-- written by test/services/lib/clickhouse.sh on every start -->
<yandex>
    <logger>
        <level>information</level>
        <console>true</console>
    </logger>
    <listen_host>$H</listen_host>
    <http_port>$SLUICE_CLICKHOUSE_HTTP_PORT</http_port>
    <tcp_port>$SLUICE_CLICKHOUSE_TCP_PORT</tcp_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$data/db/</path>
    <tmp_path>$data/tmp/</tmp_path>
    <user_files_path>$data/user_files/</user_files_path>
    <format_schema_path>$data/format_schemas/</format_schema_path>
    <users_config>$data/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
  cat >"$data/users.xml" <<EOF
<?xml version="1.0"?>
<!-- written by test/services/lib/clickhouse.sh on every start -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip><ip>$H</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <$SLUICE_CLICKHOUSE_USER>
            <password>$SLUICE_CLICKHOUSE_PASSWORD</password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip><ip>$H</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </$SLUICE_CLICKHOUSE_USER>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
  give_to_user "$data"
  rm -f "$(svc_pidfile clickhouse)"
  start_bg clickhouse "$(clickhouse_bin)" --config-file="$data/config.xml"
  echo "$LAUNCHED_PID" >"$(svc_pidfile clickhouse)"
}

clickhouse_probe() {
  [[ $(http_get -u "$SLUICE_CLICKHOUSE_USER:$SLUICE_CLICKHOUSE_PASSWORD" \
    "http://$H:$SLUICE_CLICKHOUSE_HTTP_PORT/?query=SELECT%201") == 1 ]]
}

clickhouse_stop() { stop_pid clickhouse "$1" 30; }
