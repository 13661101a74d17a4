#!/usr/bin/env bash
# Logs benchmark: realistic pod logs (namespaces x pods x containers; JSON,
# logfmt and klog-style lines; default 5 million lines, ~1 GB raw) pushed
# through the Loki push API (protobuf + snappy) into a release-build hub on
# a fresh data directory and a free 127.0.0.1 port. Prints: lines/s and MB/s
# of raw log at the sender, MB of raw log per server CPU-second ("per core
# used", CPU from /proc/<pid>/stat, after the index commits settle), bytes
# on disk per raw byte; then the p50 latency over several runs of a needle
# search (a unique string in exactly 10 lines), a selector-only query and
# `sum by (namespace) (count_over_time({job="bench"}[1h]))` over the whole set.
#
# Usage: bench/logs.sh [--lines N] [--skip-build] [--concurrency N]
#                      [--runs N] [--load FILE] [--keep]
# Env: FLEETWATCH_BIN / LOADGEN_BIN use prebuilt binaries (implies --skip-build).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

LINES=5000000
CONCURRENCY=4
RUNS=7
SKIP_BUILD=0
KEEP=0
LOAD=""
READY_TIMEOUT=60
COMMIT_WAIT=12     # seconds after the send for the index commit (interval 10s)
SETTLE_TIMEOUT=180 # then wait (at most this) until merges stop using CPU

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --lines) LINES=${2:?--lines needs a number}; shift 2 ;;
    --concurrency) CONCURRENCY=${2:?--concurrency needs a number}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --load) LOAD=${2:?--load needs a file}; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "logs.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$LINES" in ''|*[!0-9]*) echo "logs.sh: --lines must be a number" >&2; exit 2 ;; esac

BENCH_NAME=logs
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
for tool in curl jq python3; do command -v "$tool" >/dev/null || die "$tool is required"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetwatch-logs.XXXXXX")
HUB_PID=""
cleanup() {
  if [ -n "$HUB_PID" ] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$HUB_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FW=${FLEETWATCH_BIN:-$ROOT/target/release/fleetwatch}
LG=${LOADGEN_BIN:-$ROOT/target/release/loadgen}
if [ -n "${FLEETWATCH_BIN:-}${LOADGEN_BIN:-}" ]; then SKIP_BUILD=1; fi
if [ "$SKIP_BUILD" = 0 ]; then
  log "building release binaries"
  (cd "$ROOT" && cargo build --release -p fleetwatch -p loadgen) >&2
fi
[ -x "$FW" ] || die "no fleetwatch binary at $FW"
[ -x "$LG" ] || die "no loadgen binary at $LG"

if [ -z "$LOAD" ]; then
  LOAD="$WORK/logs.load"
  log "generating $LINES lines"
  "$LG" logs-generate --lines "$LINES" --out "$LOAD" >"$WORK/gen.json"
else
  [ -f "$LOAD.json" ] || die "no $LOAD.json next to --load (written by a --keep run)"
  cp "$LOAD.json" "$WORK/gen.json"
fi
GEN=$(cat "$WORK/gen.json")
log "load: $GEN"
cp "$WORK/gen.json" "$LOAD.json" 2>/dev/null || true

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
cat >"$WORK/hub.yaml" <<EOF
limits:
  max_write_body_bytes: 67108864
logs:
  retention: 30d
EOF
"$FW" aggregator --config "$WORK/hub.yaml" --listen "$ADDR" --data-dir "$WORK/data" >"$WORK/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 1 $((READY_TIMEOUT * 5))); do
  curl -fs "http://$ADDR/ready" >/dev/null 2>&1 && break
  kill -0 "$HUB_PID" 2>/dev/null || { cat "$WORK/hub.log" >&2; die "hub exited"; }
  sleep 0.2
done
curl -fs "http://$ADDR/ready" >/dev/null || die "hub not ready after ${READY_TIMEOUT}s"

cpu_secs() { cpu_seconds "$HUB_PID"; }

CPU0=$(cpu_secs)
log "sending (concurrency $CONCURRENCY)"
SEND=$("$LG" logs-send --file "$LOAD" --url "http://$ADDR/loki/api/v1/push" --concurrency "$CONCURRENCY")
CPU_SEND=$(cpu_secs)
log "send: $SEND; waiting ${COMMIT_WAIT}s for the index commit"
sleep "$COMMIT_WAIT"
PREV=$(cpu_secs)
for _ in $(seq 1 $((SETTLE_TIMEOUT / 3))); do
  sleep 3
  CPU1=$(cpu_secs)
  awk -v a="$PREV" -v b="$CPU1" 'BEGIN {exit !(b - a < 0.1)}' && break
  PREV=$CPU1
done
CPU1=$(cpu_secs)
RAW=$(jq -r .raw_bytes <<<"$GEN")
LINES_SENT=$(jq -r .lines <<<"$SEND")
DISK=$(du -sb "$WORK/data/logs" | cut -f1)
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$HUB_PID/status")

START=$(jq -r .start_ns <<<"$GEN")
END=$(( $(jq -r .end_ns <<<"$GEN") + 1000000000 ))
NEEDLE=$(jq -r .needle <<<"$GEN")

# p50 of $RUNS timed runs (after one warm-up) of a query_range; checks the
# answer with a jq expression that must print "ok".
time_query() {
  local name=$1 query=$2 extra=$3 check=$4 times=() out t
  out=$(curl -fsS -G "http://$ADDR/loki/api/v1/query_range" --data-urlencode "query=$query" \
    --data-urlencode "start=$START" --data-urlencode "end=$END" $extra)
  [ "$(jq -r "$check" <<<"$out")" = ok ] || die "$name: unexpected answer: $(head -c 600 <<<"$out")"
  for _ in $(seq 1 "$RUNS"); do
    t=$(curl -fsS -o /dev/null -w '%{time_total}' -G "http://$ADDR/loki/api/v1/query_range" \
      --data-urlencode "query=$query" --data-urlencode "start=$START" --data-urlencode "end=$END" $extra)
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "%s p50 %.1f ms (min %.1f, max %.1f, %d runs)\n", n, a[int((NR+1)/2)]*1000, a[1]*1000, a[NR]*1000, NR}'
}

Q1=$(time_query "needle search" "{job=\"bench\"} |= \"$NEEDLE\"" "--data-urlencode limit=100" \
  '[.data.result[].values[]] | if length == 10 then "ok" else "got \(length) lines" end')
Q2=$(time_query "selector only" '{namespace="ns-03"}' "--data-urlencode limit=100" \
  '[.data.result[].values[]] | if length == 100 then "ok" else "got \(length) lines" end')
Q3=$(time_query "sum by (namespace) (count_over_time[1h])" 'sum by (namespace) (count_over_time({job="bench"}[1h]))' \
  "--data-urlencode step=3600" \
  "[.data.result[].values[][1] | tonumber] | add | if . == $LINES_SENT then \"ok\" else \"counted \\(.)\" end")
CPU_END=$(cpu_secs)

python3 - "$RAW" "$LINES_SENT" "$CPU0" "$CPU_SEND" "$CPU1" "$DISK" "$RSS_KB" "$SEND" <<'EOF'
import json, sys
raw, lines, c0, cs, c1, disk, rss = (float(x) for x in sys.argv[1:8])
send = json.loads(sys.argv[8])
cpu = c1 - c0
print(f"lines ingested:        {int(lines):,} ({raw/1e6:,.0f} MB raw) in {send['seconds']:.1f} s")
print(f"ingest rate:           {send['lines_per_sec']:,.0f} lines/s, {send['raw_mb_per_sec']:.1f} MB/s raw (wall, 2 cores)")
print(f"server CPU:            {cpu:.1f} s ({cs - c0:.1f} s during the send, {c1 - cs:.1f} s committing after)")
print(f"raw MB per CPU-second: {raw/1e6/cpu:.1f} MB/s per core used")
print(f"on disk:               {disk/1e6:,.0f} MB = {disk/raw:.3f} bytes per raw byte")
print(f"peak RSS:              {rss/1024:,.0f} MB")
EOF
echo "$Q1"
echo "$Q2"
echo "$Q3"
log "query CPU: $(awk -v a="$CPU1" -v b="$CPU_END" 'BEGIN {printf "%.1f s", b - a}')"
