# shellcheck shell=bash
# Settings for the real services used by tests: ports, directories, credentials, versions.
# Sourced by test/services/{up,down,status}; every value can be overridden from the environment.
# Keep in sync with test/services/ports.ts (test/services/ports.test.ts checks that they agree).
#
# Sourcing this file only sets variables; it has no side effects.

# --- where things live -----------------------------------------------------------------------
# State: data/<svc>/ (config + data), logs/<svc>.log, run/<svc>.pid (and sockets).
: "${SLUICE_SERVICES_DIR:=/var/tmp/sluice-services}"
# Download cache (Maven repository, extracted distributions) so a second run downloads nothing.
: "${SLUICE_SERVICES_CACHE:=${HOME:-/root}/.cache/sluice-services}"
# Unprivileged OS user the servers run as when the scripts run as root
# (PostgreSQL, MariaDB and Elasticsearch refuse to run as root).
: "${SLUICE_SERVICES_USER:=sluice}"
# Every service listens on this loopback address only.
: "${SLUICE_SERVICES_HOST:=127.0.0.1}"
# Seconds to wait for one service to answer after starting it (Elasticsearch gets twice this).
: "${SLUICE_SERVICES_TIMEOUT:=120}"

# --- PostgreSQL 15 (Debian package postgresql-15) --------------------------------------------
: "${SLUICE_PG_PORT:=55432}"
: "${SLUICE_PG_USER:=sluice}"          # superuser with REPLICATION
: "${SLUICE_PG_PASSWORD:=sluice}"
: "${SLUICE_PG_DATABASE:=sluice}"
: "${SLUICE_PG_BIN:=/usr/lib/postgresql/15/bin}"

# --- MariaDB 10.11 (Debian package mariadb-server) -------------------------------------------
: "${SLUICE_MARIADB_PORT:=53306}"
: "${SLUICE_MARIADB_USER:=sluice}"     # ALL PRIVILEGES incl. REPLICATION SLAVE / CLIENT
: "${SLUICE_MARIADB_PASSWORD:=sluice}"
: "${SLUICE_MARIADB_DATABASE:=sluice}"

# --- Apache Kafka, KRaft single node (jars from Maven Central, test/services/kafka/pom.xml) --
: "${SLUICE_KAFKA_PORT:=59092}"
: "${SLUICE_KAFKA_CONTROLLER_PORT:=59093}"
: "${SLUICE_KAFKA_VERSION:=4.3.1}"
: "${SLUICE_KAFKA_JAVA_HOME:=/usr/lib/jvm/java-17-openjdk-amd64}"
: "${SLUICE_KAFKA_HEAP_OPTS:=-Xms512m -Xmx512m}"

# --- Elasticsearch (integ-test-zip from Maven Central) ---------------------------------------
: "${SLUICE_ES_PORT:=59200}"
: "${SLUICE_ES_TRANSPORT_PORT:=59300}"
: "${SLUICE_ES_VERSION:=9.4.3}"        # same major (and version) as the @elastic/elasticsearch client
: "${SLUICE_ES_JAVA_HOME:=/usr/lib/jvm/temurin-25-jdk-amd64}"   # ES 9 needs Java 21+
: "${SLUICE_ES_JAVA_OPTS:=-Xms512m -Xmx1g}"

# --- ClickHouse 18.16 (Debian package clickhouse-server) -------------------------------------
: "${SLUICE_CLICKHOUSE_HTTP_PORT:=58123}"
: "${SLUICE_CLICKHOUSE_TCP_PORT:=59000}"
: "${SLUICE_CLICKHOUSE_USER:=sluice}"  # the passwordless 'default' user exists too
: "${SLUICE_CLICKHOUSE_PASSWORD:=sluice}"

# --- Prometheus 2.42 (Debian package prometheus) ---------------------------------------------
: "${SLUICE_PROMETHEUS_PORT:=59090}"

export SLUICE_SERVICES_DIR SLUICE_SERVICES_CACHE SLUICE_SERVICES_USER SLUICE_SERVICES_HOST \
  SLUICE_SERVICES_TIMEOUT \
  SLUICE_PG_PORT SLUICE_PG_USER SLUICE_PG_PASSWORD SLUICE_PG_DATABASE SLUICE_PG_BIN \
  SLUICE_MARIADB_PORT SLUICE_MARIADB_USER SLUICE_MARIADB_PASSWORD SLUICE_MARIADB_DATABASE \
  SLUICE_KAFKA_PORT SLUICE_KAFKA_CONTROLLER_PORT SLUICE_KAFKA_VERSION SLUICE_KAFKA_JAVA_HOME \
  SLUICE_KAFKA_HEAP_OPTS \
  SLUICE_ES_PORT SLUICE_ES_TRANSPORT_PORT SLUICE_ES_VERSION SLUICE_ES_JAVA_HOME SLUICE_ES_JAVA_OPTS \
  SLUICE_CLICKHOUSE_HTTP_PORT SLUICE_CLICKHOUSE_TCP_PORT SLUICE_CLICKHOUSE_USER \
  SLUICE_CLICKHOUSE_PASSWORD \
  SLUICE_PROMETHEUS_PORT
