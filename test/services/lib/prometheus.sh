# shellcheck shell=bash
# Prometheus from Debian's prometheus package (the package's own service is never started).
# Config at data/prometheus/prometheus.yml (rewritten on every start), TSDB under it,
# lifecycle API on so tests can POST /-/reload after editing the config.
# Tests can also add scrape targets without a reload: drop a file_sd JSON/YAML file into
# data/prometheus/targets/ (job "sluice"; picked up within 5s). Alert rules: drop a file into
# data/prometheus/rules/, then POST /-/reload.

prometheus_ports() { echo "$SLUICE_PROMETHEUS_PORT"; }
prometheus_packages() { echo prometheus curl; }
prometheus_match() { echo "--config.file=$(svc_data prometheus)/prometheus.yml"; }

prometheus_launch() {
  local data; data=$(svc_data prometheus)
  mkdir -p "$data/tsdb" "$data/targets" "$data/rules"
  cat >"$data/prometheus.yml" <<EOF
# written by test/services/lib/prometheus.sh on every start of Prometheus
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files: ['$data/rules/*.yml']
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['$H:$SLUICE_PROMETHEUS_PORT']
  - job_name: sluice
    file_sd_configs:
      - files: ['$data/targets/*.json', '$data/targets/*.yml']
        refresh_interval: 5s
EOF
  give_to_user "$data"
  start_bg prometheus /usr/bin/prometheus --config.file="$data/prometheus.yml" \
    --storage.tsdb.path="$data/tsdb" --storage.tsdb.retention.time=2d \
    --web.listen-address="$H:$SLUICE_PROMETHEUS_PORT" --web.enable-lifecycle
  echo "$LAUNCHED_PID" >"$(svc_pidfile prometheus)"
}

# ready once it has scraped itself: the query for `up` has a result
prometheus_probe() {
  local r; r=$(http_get "http://$H:$SLUICE_PROMETHEUS_PORT/api/v1/query?query=up") || return 1
  contains "$r" '"status":"success"' && contains "$r" '"result":[{'
}

prometheus_stop() { stop_pid prometheus "$1" 30; }
