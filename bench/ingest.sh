#!/usr/bin/env bash
# Ingest benchmark: the same pre-encoded remote-write load (3 clusters x N
# VMs with their node series, one hour at 15 s) sent in one run to
# fleetwatch, VictoriaMetrics and Prometheus, each on a fresh data directory
# on a free 127.0.0.1 port, one after the other. Prints per system: samples/s
# ingested, server CPU-seconds per million samples, peak RSS, RSS per
# series, on-disk bytes per sample after the head is flushed to blocks, and
# the p50/p90 latency of every dashboard query in dashboards/ as a range
# query over the loaded hour; then the ratios fleetwatch/VM and
# fleetwatch/Prometheus. See bench/README.md.
#
# Usage: bench/ingest.sh [--vms N] [--skip-build] [--concurrency N]
#                        [--systems "fleetwatch victoriametrics prometheus"]
#                        [--load FILE] [--keep] [--query-runs N]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

VMS=2000
CLUSTERS=3
HOURS=1
CONCURRENCY=4
SKIP_BUILD=0
KEEP=0
LOAD=""
SYSTEMS="fleetwatch victoriametrics prometheus"
READY_TIMEOUT=60   # seconds to wait for a server to answer
SETTLE=10          # seconds after the send before the "settled" CPU reading
MERGE_TIMEOUT=180  # seconds to wait for flushes and merges to finish
QUERY_RUNS=10      # timed runs per dashboard query, after one warm-up run

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --vms) VMS=${2:?--vms needs a number}; shift 2 ;;
    --concurrency) CONCURRENCY=${2:?--concurrency needs a number}; shift 2 ;;
    --systems) SYSTEMS=${2:?--systems needs a list}; shift 2 ;;
    --load) LOAD=${2:?--load needs a file}; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    --query-runs) QUERY_RUNS=${2:?--query-runs needs a number}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "ingest.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$VMS" in ''|*[!0-9]*) echo "ingest.sh: --vms must be a number" >&2; exit 2 ;; esac

BENCH_NAME=ingest
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetwatch-ingest.XXXXXX")
PIDS_FILE="$WORK/pids"
: >"$PIDS_FILE"

cleanup() {
  local pid
  # Servers started by a system's subshell are stopped there; this catches
  # whatever an interrupted run left behind.
  while read -r pid; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$PIDS_FILE"
  if [ "$KEEP" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites ----------------------------------------------------------

for tool in curl awk du getconf jq; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done
for sys in $SYSTEMS; do
  case "$sys" in
    fleetwatch) ;;
    victoriametrics) ensure_package victoria-metrics victoria-metrics ;;
    prometheus) ensure_package prometheus prometheus ;;
    *) die "unknown system $sys (fleetwatch, victoriametrics, prometheus)" ;;
  esac
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FLEETWATCH="$TARGET_DIR/release/fleetwatch"
LOADGEN="$TARGET_DIR/release/loadgen"
if [ "$SKIP_BUILD" = 0 ]; then
  log "building fleetwatch and loadgen (release; the first build takes minutes)"
  (cd "$ROOT" && cargo build --release -p fleetwatch -p loadgen) >&2
fi
[ -x "$LOADGEN" ] || die "$LOADGEN missing (build it or drop --skip-build)"
case " $SYSTEMS " in *" fleetwatch "*) [ -x "$FLEETWATCH" ] || die "$FLEETWATCH missing" ;; esac


# --- the load ---------------------------------------------------------------

if [ -z "$LOAD" ]; then
  LOAD="$WORK/load.bin"
  log "generating the load: $CLUSTERS clusters x $VMS VMs, ${HOURS} h at 15 s"
  "$LOADGEN" generate --clusters "$CLUSTERS" --vms "$VMS" --hours "$HOURS" --interval 15s --out "$LOAD" >&2
fi
[ -f "$LOAD.meta" ] || die "$LOAD.meta missing"

# meta KEY: a value of the load's .meta file.
meta() {
  awk -F= -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$LOAD.meta"
}
SERIES=$(meta series)
SAMPLES=$(meta samples)
START_MS=$(meta start_ms)
END_MS=$(meta end_ms)
log "load: $SERIES series, $SAMPLES samples, $(meta requests) requests, $(meta file_bytes) bytes"
# Warm the page cache so every system reads the load from memory.
cat "$LOAD" >/dev/null

# --- helpers ----------------------------------------------------------------

# kv FILE KEY: the value of KEY in a key=value line file.
kv() {
  awk -v k="$1" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' "$2"
}

# The dashboard queries: every distinct panel expression of dashboards/*.json.
# Grafana's variables are set per system once the load is in (see
# dashboard_queries); $__rate_interval is 5m (four scrape intervals plus
# margin, as Grafana computes it for 15 s data and a 60 s step), $__range
# the loaded hour.
DASHBOARD_EXPRS="$WORK/dashboard-exprs.txt"
jq -r '.. | objects | select(has("expr")) | .expr' "$ROOT"/dashboards/*.json | sort -u >"$DASHBOARD_EXPRS"
QUERY_COUNT=$(wc -l <"$DASHBOARD_EXPRS")
[ "$QUERY_COUNT" -gt 0 ] || die "no panel queries found in dashboards/"

# dashboard_queries BASE OUT: writes the dashboard queries with the variables
# set for the load: cluster-2, its vm-0042 and that VM's namespace (asked
# from the system at BASE).
dashboard_queries() {
  local base=$1 out=$2 ns
  ns=$(curl -sf --max-time 30 -G "$base/api/v1/series" \
    --data-urlencode 'match[]=kubevirt_vm_memory_usage_bytes{cluster="cluster-2",name="vm-0042"}' \
    | jq -r '.data[0].namespace // empty')
  [ -n "$ns" ] || die "vm-0042 of cluster-2 is not in the load (use --vms 43 or more)"
  sed -e 's/\$__rate_interval/5m/g' -e 's/\$__range/1h/g' \
    -e 's/\${cluster}/cluster-2/g' -e 's/\$cluster/cluster-2/g' \
    -e 's/\${vm}/vm-0042/g' -e 's/\$vm/vm-0042/g' \
    -e "s/\\\${namespace}/$ns/g" -e "s/\\\$namespace/$ns/g" \
    "$DASHBOARD_EXPRS" >"$out"
}

# --- one system -------------------------------------------------------------

# run_system NAME: starts NAME, loads, measures, stops it; writes
# $WORK/result-NAME (key=value lines). Runs in a subshell with errexit.
run_system() {
  local name=$1 port data base pid out res
  port=$(free_port)
  data="$WORK/data-$name"
  base="http://127.0.0.1:$port"
  out="$WORK/$name.log"
  res="$WORK/result-$name"
  mkdir -p "$data"
  : >"$res"
  case "$name" in
    fleetwatch)
      # FLEETWATCH_HUB_CONFIG: an optional hub config file (e.g. to compare block encodings).
      "$FLEETWATCH" aggregator --listen "127.0.0.1:$port" --data-dir "$data" \
        ${FLEETWATCH_HUB_CONFIG:+--config "$FLEETWATCH_HUB_CONFIG"} >"$out" 2>&1 &
      pid=$!
      ready="$base/-/ready"
      ;;
    victoriametrics)
      # The rollup cache is off so that repeated queries measure the engine.
      victoria-metrics -storageDataPath="$data" -httpListenAddr="127.0.0.1:$port" \
        -retentionPeriod=1y -search.disableCache >"$out" 2>&1 &
      pid=$!
      ready="$base/health"
      ;;
    prometheus)
      printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$WORK/prometheus.yml"
      prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$data" \
        --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver \
        --web.enable-admin-api --storage.tsdb.retention.time=1y >"$out" 2>&1 &
      pid=$!
      ready="$base/-/ready"
      ;;
  esac
  echo "$pid" >>"$PIDS_FILE"
  # Stop the server whatever happens in here.
  # shellcheck disable=SC2064
  trap "kill -TERM $pid 2>/dev/null || true" EXIT
  wait_ready "$ready" "$pid" || { tail -n 20 "$out" >&2; die "$name did not become ready in ${READY_TIMEOUT}s"; }
  log "$name: pid $pid on $base, data in $data"

  local cpu0 cpu1 cpu2
  cpu0=$(cpu_seconds "$pid")
  "$LOADGEN" send --file "$LOAD" --url "$base/api/v1/write" --concurrency "$CONCURRENCY" >"$WORK/send-$name" \
    || { tail -n 20 "$out" >&2; die "$name: send failed"; }
  cpu1=$(cpu_seconds "$pid")
  log "$name: $(cat "$WORK/send-$name")"
  sleep "$SETTLE"
  cpu2=$(cpu_seconds "$pid")
  local sent secs rate hwm rss
  sent=$(kv sent_samples "$WORK/send-$name")
  secs=$(kv seconds "$WORK/send-$name")
  rate=$(kv samples_per_second "$WORK/send-$name")
  hwm=$(status_kb "$pid" VmHWM)
  rss=$(status_kb "$pid" VmRSS)
  {
    echo "samples_per_s=$rate"
    echo "send_seconds=$secs"
    echo "cpu_s_per_M=$(calc '%.3f' "($cpu1 - $cpu0) / ($sent / 1e6)")"
    echo "cpu_s_per_M_settled=$(calc '%.3f' "($cpu2 - $cpu0) / ($sent / 1e6)")"
    echo "peak_rss_MiB=$(calc '%.1f' "$hwm / 1024")"
    echo "rss_MiB=$(calc '%.1f' "$rss / 1024")"
    echo "rss_bytes_per_series=$(calc '%.0f' "$rss * 1024 / $SERIES")"
  } >>"$res"

  # VictoriaMetrics buffers rows for about a second before they are searchable.
  if [ "$name" = victoriametrics ]; then
    curl -sf -o /dev/null --max-time 60 "$base/internal/force_flush" || log "victoriametrics: force_flush failed"
  fi

  # Every dashboard query as a range query over the loaded hour, step 60 s.
  local i=0 q qout
  dashboard_queries "$base" "$WORK/queries-$name.txt"
  log "$name: $QUERY_COUNT dashboard queries, $QUERY_RUNS runs each"
  while IFS= read -r q; do
    i=$((i + 1))
    qout="$WORK/query-$name-$i"
    if "$LOADGEN" query --url "$base" --query "$q" --start-ms "$START_MS" --end-ms "$END_MS" \
      --step 60 --warmup 1 --runs "$QUERY_RUNS" >"$qout" 2>"$qout.err"; then
      echo "dq_${i}_p50=$(kv p50_ms "$qout") dq_${i}_p90=$(kv p90_ms "$qout") dq_${i}_series=$(kv series "$qout")" >>"$res"
    else
      log "$name: query $i failed: $(head -c 300 "$qout.err")"
      echo "dq_${i}_p50=fail dq_${i}_p90=fail dq_${i}_series=fail" >>"$res"
    fi
  done <"$WORK/queries-$name.txt"

  # On-disk size once the head is in blocks.
  local bytes="" method="" total deadline
  case "$name" in
    fleetwatch)
      local code
      code=$(curl -s -o "$WORK/flush-$name" -w '%{http_code}' --max-time "$MERGE_TIMEOUT" -X POST "$base/api/v1/admin/tsdb/flush" || echo 000)
      if [ "${code:0:1}" = 2 ]; then
        bytes=$(( $(dir_bytes "$data") - $(dir_bytes "$data/wal") ))
        method="POST /api/v1/admin/tsdb/flush, then du -sb of the data dir minus wal/"
      else
        method="not available: POST /api/v1/admin/tsdb/flush answered $code"
        log "fleetwatch: flush answered $code: $(head -c 200 "$WORK/flush-$name"); bytes/sample not available yet"
      fi
      ;;
    victoriametrics)
      curl -sf -o /dev/null --max-time 60 "$base/internal/force_flush" || log "victoriametrics: force_flush failed"
      curl -sf -o /dev/null --max-time 60 "$base/internal/force_merge" || log "victoriametrics: force_merge failed"
      # force_merge runs in the background: wait until no forced merge is
      # active and the size stopped changing.
      local prev=-1 cur active
      deadline=$((SECONDS + MERGE_TIMEOUT))
      sleep 2
      while [ "$SECONDS" -lt "$deadline" ]; do
        active=$(curl -sf --max-time 5 "$base/metrics" | awk '$1 == "vm_active_force_merges" { print $2 }')
        cur=$(dir_bytes "$data")
        if [ "${active:-0}" = 0 ] && [ "$cur" = "$prev" ]; then break; fi
        prev=$cur
        sleep 3
      done
      bytes=$(dir_bytes "$data")
      method="GET /internal/force_flush and /internal/force_merge, wait until merged, du -sb of the data dir"
      ;;
    prometheus)
      local snap
      snap=$(curl -sf --max-time "$MERGE_TIMEOUT" -X POST "$base/api/v1/admin/tsdb/snapshot" \
        | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
      if [ -n "$snap" ] && [ -d "$data/snapshots/$snap" ]; then
        bytes=$(dir_bytes "$data/snapshots/$snap")
        method="POST /api/v1/admin/tsdb/snapshot (writes the head as a block), du -sb of the snapshot"
      else
        method="not available: snapshot failed"
      fi
      ;;
  esac
  total=$(dir_bytes "$data")
  {
    if [ -n "$bytes" ]; then
      echo "disk_bytes_per_sample=$(calc '%.3f' "$bytes / $sent")"
    else
      echo "disk_bytes_per_sample=n/a"
    fi
    echo "disk_method=$method"
    echo "datadir_bytes_per_sample=$(calc '%.3f' "$total / $sent")"
  } >>"$res"
  log "$name: disk: $method"

  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 150 ]; do sleep 0.2; waited=$((waited + 1)); done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "ok=1" >>"$res"
}

FAILED=""
for sys in $SYSTEMS; do
  log "=== $sys ==="
  set +e
  (set -e; run_system "$sys")
  rc=$?
  set -e
  [ "$rc" = 0 ] || { FAILED="$FAILED $sys"; log "$sys failed (exit $rc); its log: $WORK/$sys.log"; }
done

# --- report -----------------------------------------------------------------

# get SYSTEM KEY: a figure, or "-".
get() {
  local f="$WORK/result-$1" v=""
  [ -f "$f" ] && v=$(kv "$2" "$f")
  echo "${v:--}"
}

# ratio A B: A/B to two decimals, or "-" when either is not a number.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'
}

ROWS=(samples_per_s cpu_s_per_M cpu_s_per_M_settled peak_rss_MiB rss_MiB rss_bytes_per_series
  disk_bytes_per_sample datadir_bytes_per_sample)

echo
echo "fleetwatch ingest benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
echo "load: $CLUSTERS clusters x $VMS VMs, $SERIES series, $SAMPLES samples (${HOURS} h at 15 s), concurrency $CONCURRENCY"
for sys in $SYSTEMS; do
  echo
  echo "## $sys"
  if [ -f "$WORK/result-$sys" ]; then
    grep -v '^ok=' "$WORK/result-$sys" | sed 's/^/  /'
  else
    echo "  (no result)"
  fi
done
echo
printf '%-26s %14s %16s %14s %8s %10s\n' figure fleetwatch victoriametrics prometheus fw/vm fw/prom
for row in "${ROWS[@]}"; do
  fw=$(get fleetwatch "$row"); vm=$(get victoriametrics "$row"); pr=$(get prometheus "$row")
  printf '%-26s %14s %16s %14s %8s %10s\n' "$row" "$fw" "$vm" "$pr" "$(ratio "$fw" "$vm")" "$(ratio "$fw" "$pr")"
done
echo
echo "dashboard queries: range over the loaded hour, step 60 s, latency in ms over $QUERY_RUNS runs after one warm-up;"
echo "series: how many each system returned (fleetwatch/victoriametrics/prometheus), a check that they agree"
printf '%-4s %8s %8s %8s %8s %8s %8s %8s  %-14s %s\n' '#' fw_p50 fw_p90 vm_p50 vm_p90 prom_p50 prom_p90 fw/prom series query
at_most=0 with_data=0 i=0
while IFS= read -r q; do
  i=$((i + 1))
  fw=$(get fleetwatch "dq_${i}_p50"); pr=$(get prometheus "dq_${i}_p50")
  series="$(get fleetwatch "dq_${i}_series")/$(get victoriametrics "dq_${i}_series")/$(get prometheus "dq_${i}_series")"
  printf '%-4s %8s %8s %8s %8s %8s %8s %8s  %-14s %s\n' "$i" "$fw" "$(get fleetwatch "dq_${i}_p90")" \
    "$(get victoriametrics "dq_${i}_p50")" "$(get victoriametrics "dq_${i}_p90")" "$pr" \
    "$(get prometheus "dq_${i}_p90")" "$(ratio "$fw" "$pr")" "$series" "$q"
  if [ "$(get prometheus "dq_${i}_series")" != 0 ] && [ "$(ratio "$fw" "$pr")" != - ]; then
    with_data=$((with_data + 1))
    awk -v a="$fw" -v b="$pr" 'BEGIN { exit !(a <= b) }' && at_most=$((at_most + 1))
  fi
done <"$DASHBOARD_EXPRS"
echo "fleetwatch p50 at most prometheus p50 on $at_most of $with_data queries that return data"
if [ -n "$FAILED" ]; then
  log "failed:$FAILED"
  exit 1
fi
