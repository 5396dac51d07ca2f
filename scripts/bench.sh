#!/usr/bin/env bash
# Benchmarks (not tests): fsync cost, then txbench transfer against a real
# coordinator and two agents on loopback, one-shot and interactive, at
# concurrency 1 and 64. Prints a Markdown table for docs/benchmarks.md.
# Usage: scripts/bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-10}
BIN=$(cd "$BUILD/bin" && pwd)
WORK=$(mktemp -d /tmp/txc-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

echo "## machine"
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "- $(free -g | awk '/Mem:/ {print $2}') GiB memory; data in $(df -h "$WORK" | awk 'NR==2 {print $1}')"

echo
echo "## fsync of a 4 KiB append (the cost every durable write pays)"
python3 - "$WORK/fsync.bin" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
buf = os.urandom(4096); lat = []
for _ in range(2000):
    t = time.perf_counter(); os.write(fd, buf); os.fsync(fd); lat.append(time.perf_counter() - t)
lat.sort()
print(f"- p50 {lat[len(lat)//2]*1e3:.3f} ms, p99 {lat[int(len(lat)*0.99)]*1e3:.3f} ms: at most {1/lat[len(lat)//2]:.0f} serial syncs/s")
PY

run() { # mode concurrency
  local d=$WORK/run-$1-$2; mkdir -p "$d"
  local cp ap bp; cp=$(free_port); ap=$(free_port); bp=$(free_port)
  "$BIN/txcoord" --listen 127.0.0.1:$cp --data "$d/c" --log-level warn 2>"$d/c.log" & PIDS+=($!); local c=$!
  "$BIN/txagent" --listen 127.0.0.1:$ap --data "$d/a" --coordinator 127.0.0.1:$cp --resource bank_a=sqlite:$d/a.db --log-level warn 2>"$d/a.log" & PIDS+=($!); local a=$!
  "$BIN/txagent" --listen 127.0.0.1:$bp --data "$d/b" --coordinator 127.0.0.1:$cp --resource bank_b=sqlite:$d/b.db --log-level warn 2>"$d/b.log" & PIDS+=($!); local b=$!
  wait_port $cp; wait_port $ap; wait_port $bp
  "$BIN/txbench" transfer --coordinator 127.0.0.1:$cp --agent bank_a=127.0.0.1:$ap --agent bank_b=127.0.0.1:$bp \
    --accounts 10000 --concurrency "$2" --duration "${SECS}s" --mode "$1" --json --server-pids "$c,$a,$b" \
    >"$d/result.json" 2>"$d/bench.log" || true
  kill $c $a $b; wait $c $a $b 2>/dev/null || true
}

echo
echo "## txbench transfer (${SECS} s each, 2 resources of 10,000 accounts, fsync on)"
echo
echo "| mode | concurrency | committed/s | aborted/s | p50 ms | p99 ms | p999 ms | server CPU/txn us |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for mode in oneshot interactive; do
  for c in 1 64; do
    # Not in a pipeline: run's servers must be this shell's children, stopped by its trap.
    run "$mode" "$c"
    python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).read())
print("| %s | %d | %.0f | %.0f | %.2f | %.2f | %.2f | %.0f |" % (r["mode"], r["concurrency"], r["committed_per_s"],
      r["aborted_per_s"], r["p50_ms"], r["p99_ms"], r["p999_ms"], r.get("cpu_us_per_txn", float("nan"))))' "$WORK/run-$mode-$c/result.json"
  done
done
