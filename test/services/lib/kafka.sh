# shellcheck shell=bash
# Apache Kafka, the real broker: one KRaft node that is both broker and controller. Its jars come
# from Maven Central (test/services/kafka/pom.xml, cached); it runs on the machine's Java 17 as
# the service user. Readiness: a metadata request (kcat -L) that lists the broker.

kafka_ports() { echo "$SLUICE_KAFKA_PORT $SLUICE_KAFKA_CONTROLLER_PORT"; }
# The JDK, not only the JRE: test/flink (and bench/debezium) compile a Java class with javac.
kafka_packages() { echo openjdk-17-jdk-headless maven kcat; }
kafka_match() { echo "kafka.Kafka $(svc_data kafka)/server.properties"; }
kafka_dir() { echo "$CACHE_ROOT/kafka-$SLUICE_KAFKA_VERSION"; }

kafka_install() {
  local dir stamp
  dir=$(kafka_dir)
  stamp="kafka $SLUICE_KAFKA_VERSION pom $(sha256sum <"$SERVICES_HOME/kafka/pom.xml" | cut -c1-16)"
  [[ -f $dir/.sluice-complete && $(<"$dir/.sluice-complete") == "$stamp" ]] && return 0
  local ilog="$LOG_ROOT/kafka-install.log"
  note "kafka: fetching Apache Kafka $SLUICE_KAFKA_VERSION from Maven Central (log: $ilog)"
  rm -rf "$dir"; mkdir -p "$dir"
  if ! mvn_cached -f "$SERVICES_HOME/kafka/pom.xml" -Dkafka.version="$SLUICE_KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$dir/jars" >>"$ilog" 2>&1; then
    tail -n 20 "$ilog" >&2
    fail "kafka: could not fetch the Kafka $SLUICE_KAFKA_VERSION jars; see $ilog"
  fi
  echo "$stamp" >"$dir/.sluice-complete"
}

kafka_launch() {
  local data home java
  data=$(svc_data kafka)
  java=$SLUICE_KAFKA_JAVA_HOME/bin/java
  [[ -x $java ]] || fail "kafka: no java at $java (set SLUICE_KAFKA_JAVA_HOME to a Java 17+ JDK/JRE)"
  home=$(stage_for_user "$(kafka_dir)" "kafka-$SLUICE_KAFKA_VERSION")
  mkdir -p "$data/log"

  cat >"$data/server.properties" <<EOF
# written by test/services/lib/kafka.sh on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$H:$SLUICE_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$H:$SLUICE_KAFKA_PORT,CONTROLLER://$H:$SLUICE_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$H:$SLUICE_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data/log
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# the log cleaner looks for work every second, not every 15 s: tests of compacted topics wait for it
log.cleaner.backoff.ms=1000
# tests create their topics explicitly
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=48
EOF
  # a private broker's own settings (test/services/private-kafka.ts, options.properties): one per line, appended
  if [[ -n ${SLUICE_KAFKA_EXTRA_PROPERTIES:-} ]]; then printf '%s\n' "$SLUICE_KAFKA_EXTRA_PROPERTIES" >>"$data/server.properties"; fi
  cat >"$data/log4j2.properties" <<'EOF'
# written by test/services/lib/kafka.sh: everything to stdout, which up appends to logs/kafka.log
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
EOF
  give_to_user "$data"

  # format the storage once (a cluster id of our own: base64url of 16 random bytes; never a leading "-", which the
  # storage tool would take for an option)
  if [[ ! -f $data/log/meta.properties ]]; then
    [[ -s $data/cluster.id ]] || head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | sed 's/^-/A/' >"$data/cluster.id"
    as_user "$java" -cp "$home/jars/*" -Dlog4j2.configurationFile="$data/log4j2.properties" \
      kafka.tools.StorageTool format -t "$(<"$data/cluster.id")" -c "$data/server.properties" \
      --ignore-formatted >>"$(svc_log kafka)" 2>&1 || return 1
  fi

  local heap; read -ra heap <<<"$SLUICE_KAFKA_HEAP_OPTS"
  start_bg kafka "$java" "${heap[@]}" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$data/log4j2.properties" -Dkafka.logs.dir="$LOG_ROOT" \
    -cp "$home/jars/*" kafka.Kafka "$data/server.properties"
  echo "$LAUNCHED_PID" >"$(svc_pidfile kafka)"
}

kafka_probe() {
  local md; md=$(kcat -L -b "$H:$SLUICE_KAFKA_PORT" -m 3 2>/dev/null) || return 1
  contains "$md" "broker 1 at $H:$SLUICE_KAFKA_PORT"
}

kafka_stop() { stop_pid kafka "$1" 60; }
