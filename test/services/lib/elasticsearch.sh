# shellcheck shell=bash
# Elasticsearch, the real server, from Maven Central's integration-test distribution
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip, cached and
# extracted once). It ships no JDK: it runs on a Java 21+ JDK (Temurin 25 on this machine)
# as the service user, single node, security off, its config copied into data/elasticsearch.

elasticsearch_ports() { echo "$SLUICE_ES_PORT $SLUICE_ES_TRANSPORT_PORT"; }
elasticsearch_packages() { echo maven unzip curl; }
elasticsearch_match() { echo "org.elasticsearch.bootstrap.Elasticsearch"; }
es_dir() { echo "$CACHE_ROOT/elasticsearch-$SLUICE_ES_VERSION"; }

# the JDK: SLUICE_ES_JAVA_HOME, else the newest /usr/lib/jvm JDK that is Java 21 or later
es_java_home() {
  if [[ -x $SLUICE_ES_JAVA_HOME/bin/java ]]; then echo "$SLUICE_ES_JAVA_HOME"; return; fi
  local j v best="" bestv=0
  for j in /usr/lib/jvm/*/; do
    j=${j%/}
    [[ -x $j/bin/java && -r $j/release ]] || continue
    v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$j/release")
    [[ $v =~ ^[0-9]+$ ]] && ((v >= 21 && v > bestv)) && { best=$j; bestv=$v; }
  done
  [[ -n $best ]] || fail "elasticsearch: no Java 21+ found (SLUICE_ES_JAVA_HOME=$SLUICE_ES_JAVA_HOME has no bin/java, nothing suitable in /usr/lib/jvm)"
  echo "$best"
}

elasticsearch_install() {
  local dir stamp="elasticsearch $SLUICE_ES_VERSION"
  dir=$(es_dir)
  [[ -f $dir/.sluice-complete && $(<"$dir/.sluice-complete") == "$stamp" ]] && return 0
  local ilog="$LOG_ROOT/elasticsearch-install.log"
  local gav="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$SLUICE_ES_VERSION:zip"
  local zip="$CACHE_ROOT/m2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$SLUICE_ES_VERSION/elasticsearch-$SLUICE_ES_VERSION.zip"
  if [[ ! -s $zip ]]; then
    note "elasticsearch: fetching $gav from Maven Central (log: $ilog)"
    # (no pom.xml in the cache dir, so mvn runs this goal without a project)
    if ! (cd "$CACHE_ROOT" && mvn_cached org.apache.maven.plugins:maven-dependency-plugin:3.8.1:get \
      -Dartifact="$gav" -Dtransitive=false) >>"$ilog" 2>&1 || [[ ! -s $zip ]]; then
      tail -n 20 "$ilog" >&2
      fail "elasticsearch: could not fetch $gav; see $ilog"
    fi
  fi
  rm -rf "$dir" "$dir.tmp"; mkdir -p "$dir.tmp"
  unzip -q "$zip" -d "$dir.tmp" || fail "elasticsearch: could not unzip $zip"
  mv "$dir.tmp/elasticsearch-$SLUICE_ES_VERSION" "$dir" && rmdir "$dir.tmp"
  echo "$stamp" >"$dir/.sluice-complete"
}

elasticsearch_launch() {
  local data conf home jhome
  data=$(svc_data elasticsearch); conf=$data/config
  jhome=$(es_java_home)
  home=$(stage_for_user "$(es_dir)" "elasticsearch-$SLUICE_ES_VERSION")

  # ES wants a writable config dir (keystore): a copy of the distribution's, per version
  if [[ ! -f $conf/.sluice-from || $(<"$conf/.sluice-from") != "$SLUICE_ES_VERSION" ]]; then
    rm -rf "$conf"; mkdir -p "$data"; cp -r "$home/config" "$conf"; echo "$SLUICE_ES_VERSION" >"$conf/.sluice-from"
  fi
  mkdir -p "$data/data" "$data/tmp" "$LOG_ROOT/elasticsearch"
  cat >"$conf/elasticsearch.yml" <<EOF
# written by test/services/lib/elasticsearch.sh on every start
cluster.name: sluice-test
node.name: sluice-test-node
path.data: $data/data
path.logs: $LOG_ROOT/elasticsearch
network.host: $H
http.port: $SLUICE_ES_PORT
transport.port: $SLUICE_ES_TRANSPORT_PORT
discovery.type: single-node
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
  give_to_user "$data" "$LOG_ROOT/elasticsearch"
  rm -f "$(svc_pidfile elasticsearch)"

  # bin/elasticsearch is a launcher: the server is its child and writes its own pid file (-p)
  start_bg elasticsearch env -u JAVA_HOME ES_JAVA_HOME="$jhome" ES_PATH_CONF="$conf" \
    ES_JAVA_OPTS="$SLUICE_ES_JAVA_OPTS" ES_TMPDIR="$data/tmp" \
    "$home/bin/elasticsearch" -p "$(svc_pidfile elasticsearch)"
}

# (the integ-test-zip has no rest-root module, so GET / answers 405: ask for cluster health)
# cluster health at least yellow, answered by Elasticsearch itself (the product header the
# client checks). Not GET /: the integ-test-zip lacks the rest-root module, so that is a 405.
elasticsearch_probe() {
  local r
  r=$(curl -fsSi --max-time 5 "http://$H:$SLUICE_ES_PORT/_cluster/health?wait_for_status=yellow&timeout=2s" \
    2>/dev/null | tr -d '\r') || return 1
  contains "$r" $'\nX-elastic-product: Elasticsearch\n' && [[ $r =~ \"status\":\"(yellow|green)\" ]]
}

elasticsearch_stop() {
  stop_pid elasticsearch "$1" 60
  local lp; lp=$(cat "$RUN_ROOT/elasticsearch.launcher.pid" 2>/dev/null || true)
  stop_group "$lp" elasticsearch
  rm -f "$RUN_ROOT/elasticsearch.launcher.pid"
}

elasticsearch_start_timeout() { echo $((SLUICE_SERVICES_TIMEOUT * 2)); }
