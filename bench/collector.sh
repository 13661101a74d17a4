#!/usr/bin/env bash
# Collector benchmark: the fleetwatch collector, vmagent and Prometheus in
# agent mode scrape the same frozen simulators (`fleetwatch simulate`) and
# remote-write to a fleetwatch hub, in one run, one system after the other,
# each for the same measured window after the same warm-up. Each system gets
# a fresh hub behind a small byte-counting TCP proxy. Prints per system:
# samples shipped (counted at the hub), CPU-seconds of the sender per
# million samples shipped, the sender's peak RSS, the bytes it sent to the
# receiver per sample; then the ratios fleetwatch/vmagent and
# fleetwatch/prometheus. See bench/README.md.
#
# Usage: bench/collector.sh [--targets N] [--vms N] [--interval 15s]
#                           [--warmup SECONDS] [--duration SECONDS]
#                           [--systems "fleetwatch vmagent prometheus"]
#                           [--skip-build] [--keep]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

TARGETS=20
VMS=115            # about 44 series per VM: ~5,000 series per target
INTERVAL=15s
WARMUP=30          # seconds of shipping before the measured window
DURATION=180       # seconds of the measured window
SYSTEMS="fleetwatch vmagent prometheus"
SKIP_BUILD=0
KEEP=0
READY_TIMEOUT=60   # seconds to wait for a process to answer
SHIP_TIMEOUT=90    # seconds to wait for a sender's first samples at the hub

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

# number NAME VALUE: dies unless VALUE is a positive integer.
number() {
  case "$2" in ''|*[!0-9]*|0) echo "collector.sh: $1 must be a positive number" >&2; exit 2 ;; esac
}

while [ $# -gt 0 ]; do
  case "$1" in
    --targets) TARGETS=${2:?--targets needs a number}; shift 2 ;;
    --vms) VMS=${2:?--vms needs a number}; shift 2 ;;
    --interval) INTERVAL=${2:?--interval needs a duration such as 15s}; shift 2 ;;
    --warmup) WARMUP=${2:?--warmup needs seconds}; shift 2 ;;
    --duration) DURATION=${2:?--duration needs seconds}; shift 2 ;;
    --systems) SYSTEMS=${2:?--systems needs a list}; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "collector.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
number --targets "$TARGETS"
number --vms "$VMS"
number --warmup "$WARMUP"
number --duration "$DURATION"
case "$INTERVAL" in [0-9]*s|[0-9]*m) ;; *) echo "collector.sh: --interval must look like 15s or 1m" >&2; exit 2 ;; esac

BENCH_NAME=collector
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetwatch-collector-bench.XXXXXX")
PIDS_FILE="$WORK/pids"
: >"$PIDS_FILE"

# stop PID: SIGTERM, up to 15 s for a clean exit, then SIGKILL.
stop() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  # Everything this script started is listed in $PIDS_FILE; processes a
  # system's run already stopped are skipped.
  while read -r pid; do
    stop "$pid"
  done <"$PIDS_FILE"
  if [ "$KEEP" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# started PID: records a process for cleanup.
started() { echo "$1" >>"$PIDS_FILE"; }

# --- prerequisites ----------------------------------------------------------

for tool in curl awk getconf; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done
ensure_package python3 python3   # the byte-counting proxy
for sys in $SYSTEMS; do
  case "$sys" in
    fleetwatch) ;;
    vmagent) ensure_package victoria-metrics vmagent ;;
    prometheus) ensure_package prometheus prometheus ;;
    *) die "unknown system $sys (fleetwatch, vmagent, prometheus)" ;;
  esac
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FLEETWATCH="$TARGET_DIR/release/fleetwatch"
if [ "$SKIP_BUILD" = 0 ]; then
  log "building fleetwatch (release; the first build takes minutes)"
  (cd "$ROOT" && cargo build --release -p fleetwatch) >&2
fi
[ -x "$FLEETWATCH" ] || die "$FLEETWATCH missing (build it or drop --skip-build)"


# --- helpers ----------------------------------------------------------------

# hub_samples BASE: the hub's count of samples in accepted remote writes.
hub_samples() {
  curl -sf --max-time 10 "$1/metrics" \
    | awk '$1 == "fleetwatch_remote_write_samples_received_total" { printf "%.0f", $2; found = 1 } END { exit !found }'
}

# proxy_bytes PORT: bytes the proxy with control port PORT has forwarded
# from senders to the hub so far.
proxy_bytes() {
  local bytes _conns
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  read -r bytes _conns <&3
  exec 3<&-
  echo "$bytes"
}

# kv KEY FILE: the value of KEY in a key=value line file.
kv() {
  awk -F= -v k="$1" '$1 == k { print substr($0, length(k) + 2); exit }' "$2"
}

# The proxy: forwards 127.0.0.1:LISTEN to 127.0.0.1:UPSTREAM and counts the
# bytes senders write (HTTP request lines, headers and bodies: the TCP
# payload towards the receiver); a connection to CONTROL gets
# "<bytes> <connections>\n".
cat >"$WORK/proxy.py" <<'EOF'
import socket, sys, threading

listen_port, upstream_port, control_port = (int(a) for a in sys.argv[1:4])
lock = threading.Lock()
totals = [0, 0]  # bytes sender -> receiver, connections


def pump(src, dst, counted):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if counted:
                with lock:
                    totals[0] += len(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def forward(client):
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        client.close()
        return
    with lock:
        totals[1] += 1
    back = threading.Thread(target=pump, args=(upstream, client, False), daemon=True)
    back.start()
    pump(client, upstream, True)
    back.join()
    client.close()
    upstream.close()


def control(conn):
    with lock:
        msg = "%d %d\n" % (totals[0], totals[1])
    conn.sendall(msg.encode())
    conn.close()


def serve(port, handler):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


threading.Thread(target=serve, args=(control_port, control), daemon=True).start()
serve(listen_port, forward)
EOF

# --- the simulators -----------------------------------------------------------

log "starting $TARGETS frozen simulators with $VMS VMs each"
TARGET_LIST=""
SERIES=0
for i in $(seq 1 "$TARGETS"); do
  port=$(free_port)
  "$FLEETWATCH" simulate --frozen --vms "$VMS" --cluster "sim-$i" --seed "$i" \
    --listen "127.0.0.1:$port" >"$WORK/sim-$i.log" 2>&1 &
  pid=$!
  started "$pid"
  wait_ready "http://127.0.0.1:$port/metrics" "$pid" || { tail -n 5 "$WORK/sim-$i.log" >&2; die "simulator $i did not start"; }
  n=$(curl -sf --max-time 10 "http://127.0.0.1:$port/metrics" | grep -vc '^#' || true)
  SERIES=$((SERIES + n))
  TARGET_LIST="$TARGET_LIST${TARGET_LIST:+, }'127.0.0.1:$port'"
done
# Each scrape also yields the 5 synthetic series (up, scrape_duration_seconds,
# scrape_samples_scraped, scrape_samples_post_metric_relabeling,
# scrape_series_added) in every system.
INTERVAL_S=$(case "$INTERVAL" in *m) echo $(( ${INTERVAL%m} * 60 )) ;; *) echo "${INTERVAL%s}" ;; esac)
EXPECTED_RATE=$(calc '%.0f' "($SERIES + 5 * $TARGETS) / $INTERVAL_S")
log "targets expose $SERIES series in all: about $EXPECTED_RATE samples/s at $INTERVAL"

# scrape_config FILE REMOTE_WRITE_URL [yes|no]: the shared scrape config
# (Prometheus format); unless the third argument is "no" it also carries the
# external label and the remote-write section.
scrape_config() {
  local file=$1 url=$2 full=${3:-yes}
  {
    echo "global:"
    echo "  scrape_interval: $INTERVAL"
    echo "  scrape_timeout: 10s"
    if [ "$full" = yes ]; then
      echo "  external_labels:"
      echo "    cluster: bench"
    fi
    echo "scrape_configs:"
    echo "  - job_name: kubevirt"
    echo "    static_configs:"
    echo "      - targets: [$TARGET_LIST]"
    if [ "$full" = yes ]; then
      echo "remote_write:"
      echo "  - url: $url"
    fi
  } >"$file"
}

# --- one system -------------------------------------------------------------

# run_system NAME: starts a hub, the proxy and the sender NAME, measures the
# window, stops all three; writes $WORK/result-NAME (key=value lines). Runs
# in a subshell with errexit.
run_system() {
  local name=$1
  local dir="$WORK/$name" hub_port proxy_port control_port sender_port
  # Not local: the EXIT trap of this subshell stops them whatever happens.
  hub_pid="" proxy_pid="" pid=""
  trap 'stop "$pid"; stop "$proxy_pid"; stop "$hub_pid"' EXIT
  mkdir -p "$dir"
  hub_port=$(free_port)
  local hub="http://127.0.0.1:$hub_port"
  "$FLEETWATCH" aggregator --listen "127.0.0.1:$hub_port" --data-dir "$dir/hub" >"$dir/hub.log" 2>&1 &
  hub_pid=$!
  started "$hub_pid"
  wait_ready "$hub/-/ready" "$hub_pid" || { tail -n 20 "$dir/hub.log" >&2; die "$name: hub did not become ready"; }

  proxy_port=$(free_port)
  control_port=$(free_port)
  [ "$proxy_port" != "$control_port" ] || control_port=$(free_port)
  python3 "$WORK/proxy.py" "$proxy_port" "$hub_port" "$control_port" >"$dir/proxy.log" 2>&1 &
  proxy_pid=$!
  started "$proxy_pid"
  wait_ready "http://127.0.0.1:$proxy_port/-/ready" "$proxy_pid" || { cat "$dir/proxy.log" >&2; die "$name: proxy did not start"; }
  local url="http://127.0.0.1:$proxy_port/api/v1/write"

  sender_port=$(free_port)
  case "$name" in
    fleetwatch)
      scrape_config "$dir/config.yml" "$url"
      "$FLEETWATCH" collector --config "$dir/config.yml" --data-dir "$dir/data" \
        --listen "127.0.0.1:$sender_port" >"$dir/sender.log" 2>&1 &
      ;;
    vmagent)
      # vmagent adds the external label with -remoteWrite.label.
      scrape_config "$dir/config.yml" "$url" no
      vmagent -promscrape.config="$dir/config.yml" -remoteWrite.url="$url" \
        -remoteWrite.label=cluster=bench -remoteWrite.tmpDataPath="$dir/data" \
        -httpListenAddr="127.0.0.1:$sender_port" >"$dir/sender.log" 2>&1 &
      ;;
    prometheus)
      scrape_config "$dir/config.yml" "$url"
      prometheus --enable-feature=agent --config.file="$dir/config.yml" \
        --storage.agent.path="$dir/data" --web.listen-address="127.0.0.1:$sender_port" \
        >"$dir/sender.log" 2>&1 &
      ;;
  esac
  pid=$!
  started "$pid"
  log "$name: pid $pid, hub on $hub behind the proxy on :$proxy_port"

  # Shipping has started when the hub has samples.
  local deadline=$((SECONDS + SHIP_TIMEOUT)) s=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$dir/sender.log" >&2; die "$name exited"; }
    s=$(hub_samples "$hub" || echo 0)
    [ "$s" -gt 0 ] && break
    sleep 0.5
  done
  [ "$s" -gt 0 ] || { tail -n 20 "$dir/sender.log" >&2; die "$name shipped nothing in ${SHIP_TIMEOUT}s"; }
  log "$name: shipping; warm-up ${WARMUP}s, then a ${DURATION}s window"
  sleep "$WARMUP"

  local cpu0 cpu1 s0 s1 b0 b1
  cpu0=$(cpu_seconds "$pid"); s0=$(hub_samples "$hub"); b0=$(proxy_bytes "$control_port")
  sleep "$DURATION"
  cpu1=$(cpu_seconds "$pid"); s1=$(hub_samples "$hub"); b1=$(proxy_bytes "$control_port")
  local hwm rss
  hwm=$(status_kb "$pid" VmHWM)
  rss=$(status_kb "$pid" VmRSS)
  kill -0 "$pid" 2>/dev/null || die "$name exited during the window"

  local shipped=$((s1 - s0)) bytes=$((b1 - b0))
  [ "$shipped" -gt 0 ] || die "$name shipped nothing during the window"
  {
    echo "samples_shipped=$shipped"
    echo "samples_per_s=$(calc '%.0f' "$shipped / $DURATION")"
    echo "cpu_s=$(calc '%.2f' "$cpu1 - $cpu0")"
    echo "cpu_s_per_M=$(calc '%.3f' "($cpu1 - $cpu0) / ($shipped / 1e6)")"
    echo "peak_rss_MiB=$(calc '%.1f' "$hwm / 1024")"
    echo "rss_MiB=$(calc '%.1f' "$rss / 1024")"
    echo "wire_bytes_per_sample=$(calc '%.3f' "$bytes / $shipped")"
  } >"$dir/result"
  log "$name: $(tr '\n' ' ' <"$dir/result")"

  stop "$pid"
  stop "$proxy_pid"
  stop "$hub_pid"
  mv "$dir/result" "$WORK/result-$name"
}

FAILED=""
for sys in $SYSTEMS; do
  log "=== $sys ==="
  set +e
  (set -e; run_system "$sys")
  rc=$?
  set -e
  [ "$rc" = 0 ] || { FAILED="$FAILED $sys"; log "$sys failed (exit $rc); its logs: $WORK/$sys/"; }
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

# below A B C: "yes" when A < B and A < C (all numbers), "no" otherwise.
below() {
  awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && c ~ /^[0-9.]+$/) print ((a + 0 < b + 0 && a + 0 < c + 0) ? "yes" : "no"); else print "-" }'
}

ROWS=(samples_shipped samples_per_s cpu_s cpu_s_per_M peak_rss_MiB rss_MiB wire_bytes_per_sample)

echo
echo "fleetwatch collector benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "targets: $TARGETS frozen simulators x $VMS VMs, $SERIES series in all, scraped every $INTERVAL (~$EXPECTED_RATE samples/s)"
echo "window: ${DURATION}s after a ${WARMUP}s warm-up, per system; receiver: a fresh fleetwatch hub per system behind a byte-counting proxy"
echo
printf '%-24s %12s %12s %12s %8s %10s\n' figure fleetwatch vmagent prometheus fw/vma fw/prom
for row in "${ROWS[@]}"; do
  fw=$(get fleetwatch "$row"); va=$(get vmagent "$row"); pr=$(get prometheus "$row")
  printf '%-24s %12s %12s %12s %8s %10s\n' "$row" "$fw" "$va" "$pr" "$(ratio "$fw" "$va")" "$(ratio "$fw" "$pr")"
done
echo
echo "fleetwatch below both on cpu_s_per_M: $(below "$(get fleetwatch cpu_s_per_M)" "$(get vmagent cpu_s_per_M)" "$(get prometheus cpu_s_per_M)")"
echo "fleetwatch below both on peak_rss_MiB: $(below "$(get fleetwatch peak_rss_MiB)" "$(get vmagent peak_rss_MiB)" "$(get prometheus peak_rss_MiB)")"
if [ -n "$FAILED" ]; then
  log "failed:$FAILED"
  exit 1
fi
