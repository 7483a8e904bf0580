# shellcheck shell=bash
# Shared helpers for test/services/{up,down,status}. Each service lives in lib/<svc>.sh and
# defines these functions (the optional ones may be left out):
#
#   <svc>_ports          the loopback ports it listens on (first one is the main one)
#   <svc>_packages       Debian packages it needs
#   <svc>_install        optional: fetch what apt does not provide (Maven Central, into the cache)
#   <svc>_launch         write its config, initialise its data dir if needed, start it in the
#                        background; must leave the server's pid in run/<svc>.pid (or have the
#                        server write it there)
#   <svc>_probe          one real request; succeeds once the service answers it
#   <svc>_post           optional: idempotent provisioning once it answers (users, databases)
#   <svc>_match          a string the server's /proc/<pid>/cmdline contains
#   <svc>_stop           optional: clean stop (default: SIGTERM to the pid)
#   <svc>_start_timeout  optional: seconds to wait for it after launching

set -euo pipefail

SERVICES_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=/dev/null
source "$SERVICES_HOME/env.sh"

ALL_SERVICES=(postgres mariadb kafka elasticsearch clickhouse prometheus)

DATA_ROOT="$SLUICE_SERVICES_DIR/data"
LOG_ROOT="$SLUICE_SERVICES_DIR/logs"
RUN_ROOT="$SLUICE_SERVICES_DIR/run"
OPT_ROOT="$SLUICE_SERVICES_DIR/opt"     # cache contents the service user can read (see stage_for_user)
CACHE_ROOT="$SLUICE_SERVICES_CACHE"
H="$SLUICE_SERVICES_HOST"

svc_data() { echo "$DATA_ROOT/$1"; }
svc_log() { echo "$LOG_ROOT/$1.log"; }
svc_pidfile() { echo "$RUN_ROOT/$1.pid"; }
main_port() { local p; p=$("${1}_ports"); echo "${p%% *}"; }
svc_addr() { local p; p=$("${1}_ports"); echo "$H:${p// /,}"; }

is_root() { [[ $EUID -eq 0 ]]; }
have_fn() { declare -F "$1" >/dev/null; }
now() { date +%s; }

# messages: progress goes to stderr, the one line per service to stdout
note() { printf '%s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# select_services [svc...] -> sets SELECTED (all services when none given)
select_services() {
  SELECTED=()
  if (($# == 0)); then SELECTED=("${ALL_SERVICES[@]}"); return; fi
  local s a
  for a in "$@"; do
    for s in "${ALL_SERVICES[@]}"; do
      if [[ $a == "$s" ]]; then SELECTED+=("$s"); continue 2; fi
    done
    fail "unknown service '$a' (known: ${ALL_SERVICES[*]})"
  done
}

# --- the unprivileged service user ---------------------------------------------------------------

ensure_user() {
  is_root || return 0
  local u=$SLUICE_SERVICES_USER
  id -u "$u" >/dev/null 2>&1 && return 0
  local group_opt=(--user-group)
  getent group "$u" >/dev/null && group_opt=(--gid "$u")
  useradd --system "${group_opt[@]}" --no-create-home --home-dir "$SLUICE_SERVICES_DIR" \
    --shell /usr/sbin/nologin "$u" || fail "could not create OS user '$u'"
}

# as_user CMD... : run CMD as the service user (through exec, no extra process), HOME = state dir
user_prefix() {
  AS_USER=()
  if is_root; then
    local u=$SLUICE_SERVICES_USER
    AS_USER=(setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups
      env HOME="$SLUICE_SERVICES_DIR" USER="$u" LOGNAME="$u")
  fi
}
as_user() { user_prefix; "${AS_USER[@]}" "$@" 9>&-; }   # fd 9 is take_lock's: not for servers

# give_to_user PATH... : make PATHs (recursively) owned by the service user if they are not already
give_to_user() {
  is_root || return 0
  local p u=$SLUICE_SERVICES_USER
  for p in "$@"; do
    [[ -e $p ]] || continue
    if [[ $(stat -c %U "$p") != "$u" ]] || [[ -n $(find "$p" ! -user "$u" -print -quit 2>/dev/null) ]]; then
      chown -R "$u:$(id -gn "$u")" "$p"
    fi
  done
}

ensure_dirs() {
  mkdir -p "$DATA_ROOT" "$LOG_ROOT" "$RUN_ROOT" "$CACHE_ROOT"
  chmod 755 "$SLUICE_SERVICES_DIR" "$DATA_ROOT" "$LOG_ROOT" "$RUN_ROOT"
  if is_root; then
    chown "$SLUICE_SERVICES_USER:$(id -gn "$SLUICE_SERVICES_USER")" \
      "$SLUICE_SERVICES_DIR" "$DATA_ROOT" "$LOG_ROOT" "$RUN_ROOT"
  fi
}

# Serialise up/down so two runs (e.g. parallel test jobs) do not start a service twice.
take_lock() {
  mkdir -p "$RUN_ROOT"
  exec 9>"$RUN_ROOT/.lock"
  if ! flock -w 900 9; then fail "another test/services command holds $RUN_ROOT/.lock"; fi
}

# --- Debian packages --------------------------------------------------------------------------------

pkg_installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

# ensure_packages PKG... : install the missing ones (apt-get update first), without starting
# any of the packages' own services.
ensure_packages() {
  local p missing=()
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  is_root || fail "missing Debian packages: ${missing[*]} (run test/services/up as root to install them)"
  note "installing Debian packages: ${missing[*]} (log: $LOG_ROOT/apt.log)"
  local rc=0 prc=/usr/sbin/policy-rc.d saved=""
  # policy-rc.d exiting 101 stops the packages' postinst from starting their services.
  if [[ -e $prc ]] && ! grep -qx 'exit 101' "$prc"; then
    saved="$prc.sluice-saved"; mv "$prc" "$saved"
  fi
  local created=""
  if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"; created=1; fi
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  } >>"$LOG_ROOT/apt.log" 2>&1 || rc=$?
  [[ -n $created ]] && rm -f "$prc"
  [[ -n $saved ]] && mv "$saved" "$prc"
  if ((rc != 0)); then
    tail -n 20 "$LOG_ROOT/apt.log" >&2
    fail "apt-get install ${missing[*]} failed (exit $rc); see $LOG_ROOT/apt.log"
  fi
}

# --- Maven Central (through mvn, cached) ------------------------------------------------------------

# mvn_cached ARGS... : run mvn with the local repository inside the download cache
mvn_cached() {
  command -v mvn >/dev/null || fail "mvn not found (Debian package maven)"
  mvn -B -q -Dmaven.repo.local="$CACHE_ROOT/m2" "$@"
}

# stage_for_user DIR NAME : print a path to DIR's contents that the service user can read.
# The cache is usually under root's home, which other users cannot enter: then hard-link
# (or copy) it once into $OPT_ROOT/NAME. DIR must contain the marker file .sluice-complete.
stage_for_user() {
  local src=$1 dst="$OPT_ROOT/$2"
  if ! is_root || as_user test -r "$src/.sluice-complete"; then echo "$src"; return; fi
  if ! cmp -s "$src/.sluice-complete" "$dst/.sluice-complete" 2>/dev/null; then
    rm -rf "$dst"; mkdir -p "$OPT_ROOT"
    cp -al "$src" "$dst" 2>/dev/null || { rm -rf "$dst"; cp -a "$src" "$dst"; }
    chmod -R a+rX "$dst"
  fi
  echo "$dst"
}

# --- processes and ports ----------------------------------------------------------------------------

# (no `... | grep -q` on long output here: with pipefail, grep's early exit fails the pipeline)
pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# pid_is SVC PID : PID is alive and is that service's server (not a recycled pid)
pid_is() {
  local svc=$1 pid=$2 cmd
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(pid_cmdline "$pid")
  [[ $cmd == *"$("${svc}_match")"* ]]
}

# svc_pid SVC : print the running server's pid, or fail
svc_pid() {
  local f pid
  f=$(svc_pidfile "$1")
  [[ -r $f ]] || return 1
  pid=$(<"$f") 2>/dev/null || return 1
  pid=${pid//[[:space:]]/}   # (Elasticsearch writes no trailing newline)
  pid_is "$1" "$pid" || return 1
  echo "$pid"
}

# port_pid PORT : pid of the process listening on 127.0.0.1:PORT (or any address), if any
port_pid() {
  local out; out=$(ss -Hltnp "sport = :$1" 2>/dev/null) || return 0
  [[ $out =~ pid=([0-9]+) ]] && echo "${BASH_REMATCH[1]}"
  return 0
}

port_busy() { (exec 3<>"/dev/tcp/$H/$1") 2>/dev/null; }

# adopt_orphan SVC : a server of ours (its command line names our state dir) may be running
# without a pid file (e.g. the pid file was deleted); if so, record its pid again.
adopt_orphan() {
  local svc=$1 pid
  pid=$(port_pid "$(main_port "$svc")")
  [[ -n $pid ]] || return 1
  if pid_is "$svc" "$pid" && [[ $(pid_cmdline "$pid") == *"$SLUICE_SERVICES_DIR/"* ]]; then
    echo "$pid" >"$(svc_pidfile "$svc")"
    return 0
  fi
  return 1
}

# check_ports_free SVC : fail naming the squatter when one of SVC's ports is taken
check_ports_free() {
  local svc=$1 port pid who
  for port in $("${svc}_ports"); do
    if port_busy "$port" || [[ -n $(port_pid "$port") ]]; then
      pid=$(port_pid "$port")
      who=${pid:+pid $pid: $(pid_cmdline "$pid" | cut -c1-120)}
      echo "port $port is already in use by another process (${who:-unknown}); stop it, or pick other ports (SLUICE_*_PORT, see test/services/env.sh)"
      return 1
    fi
  done
}

# start_bg SVC CMD... : start CMD as the service user in a new session, detached, its output
# appended to the service's log. Sets LAUNCHED_PID and writes it to run/<svc>.launcher.pid.
# nohup, setsid, setpriv and env all exec, so LAUNCHED_PID is CMD's own pid (and process group).
start_bg() {
  local svc=$1; shift
  local log; log=$(svc_log "$svc")
  user_prefix
  nohup setsid "${AS_USER[@]}" "$@" </dev/null >>"$log" 2>&1 9>&- &
  LAUNCHED_PID=$!
  echo "$LAUNCHED_PID" >"$RUN_ROOT/$svc.launcher.pid"
}

# log_mark SVC : separate this start from earlier ones in the service's log
log_mark() {
  local log; log=$(svc_log "$1")
  touch "$log"; give_to_user "$log"
  printf '\n===== %s: starting %s (test/services/up) =====\n' "$(date -u +%FT%TZ)" "$1" >>"$log"
}

# stop_pid SVC PID GRACE : SIGTERM, wait up to GRACE seconds, then SIGKILL it (and, when it
# leads its own process group, as the servers start_bg starts do, that whole group)
stop_pid() {
  local svc=$1 pid=$2 grace=$3 i pgid
  pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  note "$svc: pid $pid did not stop within ${grace}s; killing it"
  if [[ $pgid == "$pid" ]]; then kill -KILL -- "-$pgid" 2>/dev/null || true; fi
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# stop_group PGID MATCH : kill what is left of a launcher's process group (e.g. a CLI wrapper),
# provided a process of that group still has MATCH in its command line (pids get recycled)
stop_group() {
  local pgid=$1 match=$2
  [[ $pgid =~ ^[0-9]+$ ]] || return 0
  pgrep -g "$pgid" -f -- "$match" >/dev/null 2>&1 || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  sleep 1
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# http_get URL : body of a successful (2xx) response, quickly
http_get() { curl -fsS --max-time 5 "$@" 2>/dev/null; }

# contains HAYSTACK NEEDLE : plain substring test
contains() { [[ $1 == *"$2"* ]]; }

# one status line: service, state, address, pid, note
status_line() {
  printf '%-14s %-9s %-22s %-11s %s\n' "$1" "$2" "$3" "${4:+pid $4}" "${5:-}"
}

for _svc in "${ALL_SERVICES[@]}"; do
  # shellcheck source=/dev/null
  source "$SERVICES_HOME/lib/$_svc.sh"
done
unset _svc
