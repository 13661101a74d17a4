#!/usr/bin/env bash
# Rules benchmark: 1,000 alerting rules (10 groups of 100, variants of the
# seed's rules per cluster and namespace) evaluated every 15 s by the
# release hub over the ingest benchmark's fleet load (3 clusters x N VMs,
# one hour at 15 s, ending when it is generated). The hub starts with an
# empty rule directory, the load is sent, then the rules are written and
# loaded with POST /-/reload, so evaluation starts right after the load is
# in (the rules look back 5 minutes from now). Over the next cycles it
# reads the hub's /metrics every second and prints per cycle: the sum of
# the groups' evaluation durations (groups run in parallel), the wall time
# of the whole cycle (first group start to last group end), then p50/max
# over the cycles and the hub's CPU share (CPU-seconds per second of wall
# time over the measuring window, /proc/<pid>/stat). See bench/README.md.
#
# Usage: bench/rules.sh [--vms N] [--cycles N] [--skip-build] [--load FILE] [--keep]
#        (FLEETWATCH_BIN, LOADGEN_BIN: binaries to use; default target/release)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

VMS=2000
CLUSTERS=3
HOURS=1
CYCLES=6            # evaluation cycles measured
INTERVAL=15         # seconds between evaluations of a group
NGROUPS=10
RULES_PER_GROUP=100
CONCURRENCY=4
SKIP_BUILD=0
KEEP=0
LOAD=""
READY_TIMEOUT=60    # seconds to wait for the hub to answer
RELOAD_TIMEOUT=120  # seconds to wait for POST /-/reload

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --vms) VMS=${2:?--vms needs a number}; shift 2 ;;
    --cycles) CYCLES=${2:?--cycles needs a number}; shift 2 ;;
    --load) LOAD=${2:?--load needs a file}; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "rules.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$VMS" in ''|*[!0-9]*) echo "rules.sh: --vms must be a number" >&2; exit 2 ;; esac
case "$CYCLES" in ''|*[!0-9]*|0) echo "rules.sh: --cycles must be a positive number" >&2; exit 2 ;; esac

BENCH_NAME=rules
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

for tool in curl awk getconf jq; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetwatch-rules.XXXXXX")
HUB_PID=""

cleanup() {
  if [ -n "$HUB_PID" ] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$HUB_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# FLEETWATCH_BIN / LOADGEN_BIN: binaries to use instead of the target
# directory's (a target directory shared between worktrees holds whichever
# was built last).
FLEETWATCH=${FLEETWATCH_BIN:-$TARGET_DIR/release/fleetwatch}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/loadgen}
if [ "$SKIP_BUILD" = 0 ]; then
  log "building fleetwatch and loadgen (release; the first build takes minutes)"
  (cd "$ROOT" && cargo build --release -p fleetwatch -p loadgen) >&2
fi
[ -x "$FLEETWATCH" ] || die "$FLEETWATCH missing (build it or drop --skip-build)"
[ -x "$LOADGEN" ] || die "$LOADGEN missing (build it or drop --skip-build)"

# --- helpers ----------------------------------------------------------------

now_s() { date +%s.%N; }
# --- the load ---------------------------------------------------------------

if [ -z "$LOAD" ]; then
  LOAD="$WORK/load.bin"
  log "generating the load: $CLUSTERS clusters x $VMS VMs, ${HOURS} h at 15 s"
  "$LOADGEN" generate --clusters "$CLUSTERS" --vms "$VMS" --hours "$HOURS" --interval 15s --out "$LOAD" >&2
fi
[ -f "$LOAD.meta" ] || die "$LOAD.meta missing"
meta() {
  awk -F= -v k="$1" '$1 == k { print $2; found = 1 } END { exit !found }' "$LOAD.meta"
}
SERIES=$(meta series)
SAMPLES=$(meta samples)
END_MS=$(meta end_ms)
log "load: $SERIES series, $SAMPLES samples, ending $(( $(date +%s) - END_MS / 1000 )) s ago"

# --- the hub ----------------------------------------------------------------

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
mkdir -p "$WORK/rules" "$WORK/data"
cat >"$WORK/hub.yaml" <<EOF
rule_files: ['rules/*.yaml']
global:
  evaluation_interval: ${INTERVAL}s
EOF
"$FLEETWATCH" aggregator --config "$WORK/hub.yaml" --listen "127.0.0.1:$PORT" \
  --data-dir "$WORK/data" >"$WORK/hub.log" 2>&1 &
HUB_PID=$!
deadline=$((SECONDS + READY_TIMEOUT))
until curl -sf -o /dev/null --max-time 2 "$BASE/-/ready"; do
  kill -0 "$HUB_PID" 2>/dev/null || { tail -n 20 "$WORK/hub.log" >&2; die "the hub exited"; }
  [ "$SECONDS" -lt "$deadline" ] || die "the hub did not become ready in ${READY_TIMEOUT}s"
  sleep 0.3
done
log "hub: pid $HUB_PID on $BASE"

log "sending the load"
"$LOADGEN" send --file "$LOAD" --url "$BASE/api/v1/write" --concurrency "$CONCURRENCY" >"$WORK/send" \
  || { tail -n 20 "$WORK/hub.log" >&2; die "send failed"; }
log "$(cat "$WORK/send")"

# --- the rules --------------------------------------------------------------

# Rule k of 1,000: one of four kinds (the seed's memory and migration
# alerts, a CPU alert, a namespace aggregate), for one cluster and one
# namespace, with a threshold that varies with k.
NAMESPACES=(tenant-a tenant-b tenant-c infra)
for g in $(seq 0 $((NGROUPS - 1))); do
  f="$WORK/rules/group-$g.yaml"
  {
    echo "groups:"
    echo "  - name: fleet-$g"
    echo "    rules:"
    for j in $(seq 0 $((RULES_PER_GROUP - 1))); do
      k=$((g * RULES_PER_GROUP + j))
      c="cluster-$((1 + (k / 4) % CLUSTERS))"
      ns=${NAMESPACES[$(((k / 12) % 4))]}
      sel="cluster=\"$c\",namespace=\"$ns\""
      case $((k % 4)) in
        0)
          thr=$(calc '%.2f' "0.90 + ($k % 10) * 0.01")
          echo "      - alert: VMHighMemory$k"
          echo "        expr: kubevirt_vm_memory_usage_bytes{$sel} / kubevirt_vm_memory_available_bytes{$sel} > $thr"
          echo "        for: 5m"
          ;;
        1)
          echo "      - alert: VMMigrationFailed$k"
          echo "        expr: increase(kubevirt_vm_migration_failed_total{$sel}[5m]) > $(((k / 4) % 3))"
          ;;
        2)
          thr=$(calc '%.2f' "0.80 + ($k % 20) * 0.01")
          echo "      - alert: VMHighCPU$k"
          echo "        expr: rate(kubevirt_vmi_cpu_usage_seconds_total{$sel}[5m]) > $thr"
          echo "        for: 5m"
          ;;
        3)
          echo "      - alert: NamespaceNetworkHigh$k"
          echo "        expr: sum by (cluster, namespace) (rate(kubevirt_vmi_network_receive_bytes_total{$sel}[5m])) > $((1000 * (k % 50)))"
          echo "        for: 5m"
          ;;
      esac
      echo "        labels:"
      echo "          severity: warning"
      echo "        annotations:"
      echo "          summary: '{{ \$labels.cluster }}/{{ \$labels.namespace }}: {{ \$value }}'"
    done
  } >"$f"
done
"$FLEETWATCH" rules check "$WORK"/rules/*.yaml >"$WORK/check" || { cat "$WORK/check" >&2; die "rules check failed"; }

code=$(curl -s -o "$WORK/reload" -w '%{http_code}' --max-time "$RELOAD_TIMEOUT" -X POST "$BASE/-/reload" || echo 000)
[ "$code" = 200 ] || die "POST /-/reload answered $code: $(cat "$WORK/reload")"
log "$(cat "$WORK/reload")"
RELOADED_S=$(now_s)
log "the data ends $(calc '%.0f' "$RELOADED_S - $END_MS / 1000") s before the first evaluation"

# --- measuring --------------------------------------------------------------

# Every second: each group's last evaluation timestamp and duration.
POLLS="$WORK/polls"
: >"$POLLS"
cpu0=$(cpu_seconds "$HUB_PID")
t0=$(now_s)
deadline=$((SECONDS + (CYCLES + 2) * INTERVAL + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
  kill -0 "$HUB_PID" 2>/dev/null || { tail -n 20 "$WORK/hub.log" >&2; die "the hub exited"; }
  curl -sf --max-time 5 "$BASE/metrics" | awk '
    /^fleetwatch_rule_group_last_evaluation_timestamp_seconds\{/ { split($1, a, "\""); ts[a[2]] = $2 }
    /^fleetwatch_rule_group_last_duration_seconds\{/ { split($1, a, "\""); d[a[2]] = $2 }
    END { for (g in ts) if (ts[g] > 0) print g, ts[g], d[g] }' >>"$POLLS" || true
  # Done once every group has CYCLES distinct evaluations.
  done_groups=$(awk '!seen[$1 " " $2]++ { n[$1]++ } END { c = 0; for (g in n) if (n[g] >= '"$CYCLES"') c++; print c }' "$POLLS")
  [ "$done_groups" -ge "$NGROUPS" ] && break
  sleep 1
done
cpu1=$(cpu_seconds "$HUB_PID")
t1=$(now_s)
[ "$done_groups" -ge "$NGROUPS" ] || log "only $done_groups of $NGROUPS groups reached $CYCLES evaluations in time"

curl -sf --max-time 30 "$BASE/metrics" >"$WORK/metrics-end"
curl -sf --max-time 30 "$BASE/api/v1/alerts" >"$WORK/alerts"
curl -sf --max-time 30 "$BASE/api/v1/rules" >"$WORK/rules.json"
metric_sum() { awk -v n="$1" 'index($1, n "{") == 1 || $1 == n { s += $2 } END { printf "%.0f", s }' "$WORK/metrics-end"; }
RULE_EVALS=$(metric_sum fleetwatch_rule_evaluations_total)
RULE_FAILS=$(metric_sum fleetwatch_rule_evaluation_failures_total)
MISSED=$(metric_sum fleetwatch_rule_group_iterations_missed_total)
ALERTS=$(jq '.data.alerts | length' "$WORK/alerts")
FIRING=$(jq '[.data.alerts[] | select(.state == "firing")] | length' "$WORK/alerts")
RULES_LOADED=$(jq '[.data.groups[].rules[]] | length' "$WORK/rules.json")
UNHEALTHY=$(jq '[.data.groups[].rules[] | select(.health != "ok")] | length' "$WORK/rules.json")
WITH_ALERTS=$(jq '[.data.groups[].rules[] | select((.alerts | length) > 0)] | length' "$WORK/rules.json")

# Cycle n = every group's n-th evaluation (the groups start together at the
# reload, so their n-th evaluations fall in the same interval).
awk '!seen[$1 " " $2]++ { n[$1]++; print n[$1], $1, $2, $3 }' "$POLLS" | sort -n -k1,1 >"$WORK/evals"
awk -v want="$NGROUPS" -v cycles="$CYCLES" '
  $1 <= cycles {
    c = $1; cnt[c]++; sum[c] += $4
    if (!(c in lo) || $3 < lo[c]) lo[c] = $3
    if (!(c in hi) || $3 + $4 > hi[c]) hi[c] = $3 + $4
    if ($4 > slow[c]) slow[c] = $4
  }
  END {
    for (c = 1; c <= cycles; c++) if (cnt[c] == want)
      printf "%d %.3f %.3f %.3f\n", c, sum[c], hi[c] - lo[c], slow[c]
  }' "$WORK/evals" >"$WORK/cycles"
[ -s "$WORK/cycles" ] || die "no complete cycle measured (see $WORK/polls)"

# p50 (nearest rank) and max of column COL of the cycles.
stat() {
  awk -v col="$1" '{ print $col }' "$WORK/cycles" | sort -g | awk '
    { v[NR] = $1 } END { r = int((NR + 1) / 2); printf "%.3f %.3f\n", v[r], v[NR] }'
}
read -r SUM_P50 SUM_MAX < <(stat 2)
read -r WALL_P50 WALL_MAX < <(stat 3)
read -r SLOW_P50 SLOW_MAX < <(stat 4)
CPU_SHARE=$(calc '%.3f' "($cpu1 - $cpu0) / ($t1 - $t0)")
MET=$(awk -v w="$WALL_MAX" -v i="$INTERVAL" 'BEGIN { print (w < i / 3) ? "yes" : "no" }')

echo
echo "fleetwatch rules benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "load: $CLUSTERS clusters x $VMS VMs, $SERIES series, $SAMPLES samples (${HOURS} h at 15 s)"
echo "rules: $RULES_LOADED alerting rules in $NGROUPS groups, every ${INTERVAL}s; after the run: $ALERTS alerts active ($FIRING firing) from $WITH_ALERTS rules, $UNHEALTHY rules not ok, $RULE_FAILS failed and $RULE_EVALS rule evaluations, $MISSED missed iterations"
echo
echo "cycle  sum_of_group_s  cycle_wall_s  slowest_group_s"
awk '{ printf "%5d %15s %13s %16s\n", $1, $2, $3, $4 }' "$WORK/cycles"
echo
echo "sum of group durations per cycle: p50 ${SUM_P50}s, max ${SUM_MAX}s"
echo "wall time per cycle:              p50 ${WALL_P50}s, max ${WALL_MAX}s"
echo "slowest group per cycle:          p50 ${SLOW_P50}s, max ${SLOW_MAX}s"
echo "data age: $(calc '%.0f' "$RELOADED_S - $END_MS / 1000") s at the first evaluation, $(calc '%.0f' "$t1 - $END_MS / 1000") s at the end (rules look back 5 minutes)"
echo "hub CPU share over $(calc '%.0f' "$t1 - $t0") s: ${CPU_SHARE} CPU-seconds per second"
echo "target (every cycle under a third of ${INTERVAL}s): $MET"
