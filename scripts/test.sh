#!/usr/bin/env bash
# Runs every fleetwatch test, on a fresh machine too: installs the real
# peers the end-to-end tests use (Prometheus, promtool and Alertmanager from Debian's
# packages, pyarrow from PyPI) when they are missing, then checks formatting and lints and
# runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
if ((${#missing[@]})); then
  echo "test.sh: installing peers: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# pyarrow: an independent Parquet reader, to check that blocks open outside fleetwatch.
if ! python3 -c "import pyarrow" >/dev/null 2>&1; then
  echo "test.sh: installing pyarrow"
  python3 -m pip install --quiet pyarrow
fi

echo "test.sh: cargo fmt --check"
cargo fmt --all -- --check
echo "test.sh: cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "test.sh: PromQL conformance (Prometheus's own test scripts, per-file figures)"
# --workspace, not -p: the same dependency features as the full run below, so
# the dependencies are built once.
cargo test --workspace --test conformance -- --nocapture
echo "test.sh: cargo test"
cargo test --workspace
