# Helpers shared by the bench/ scripts; sourced after BENCH_NAME (the log
# prefix) is set. WORK (a work directory) and READY_TIMEOUT (seconds) are
# read when the functions run.

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

CLK_TCK=$(getconf CLK_TCK)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_package PACKAGE BINARY: installs a Debian package when BINARY is missing.
ensure_package() {
  local pkg=$1 bin=$2
  command -v "$bin" >/dev/null 2>&1 && return 0
  log "installing Debian package $pkg"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >"$WORK/apt-$pkg.log" 2>&1; then
    as_root apt-get update >>"$WORK/apt-$pkg.log" 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >>"$WORK/apt-$pkg.log" 2>&1 \
      || die "cannot install $pkg (see $WORK/apt-$pkg.log)"
  fi
  command -v "$bin" >/dev/null 2>&1 || die "$pkg installed but $bin not found"
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# wait_ready URL PID: polls URL until it answers 2xx, at most READY_TIMEOUT s.
wait_ready() {
  local url=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    if curl -sf -o /dev/null --max-time 2 "$url"; then return 0; fi
    sleep 0.3
  done
  return 1
}

# cpu_seconds PID: utime+stime of the process, in seconds.
cpu_seconds() {
  # Fields after the ")" closing the command name: state is 1st, utime 12th, stime 13th.
  sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / hz }'
}

# status_kb PID FIELD: a VmXXX field of /proc/PID/status, in kB.
status_kb() {
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# dir_bytes DIR: apparent size of everything under DIR (0 when absent).
dir_bytes() {
  if [ -e "$1" ]; then du -sb "$1" | awk '{ print $1 }'; else echo 0; fi
}

calc() { awk "BEGIN { printf \"$1\", $2 }"; }
