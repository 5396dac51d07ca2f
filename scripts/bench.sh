#!/usr/bin/env bash
# Benchmarks (not tests): fsync cost, then txbench transfer against a real
# coordinator and two agents on loopback, one-shot and interactive, at
# concurrency 1 and 64; then a one-shot sweep over concurrency 1 to 256
# against 1 coordinator and against a 3-replica group. Prints Markdown tables
# for docs/benchmarks.md and draws the sweep as docs/bench-throughput.svg and
# docs/bench-p99.svg (data: docs/bench-sweep.dat; PLOT_DIR=DIR puts them
# elsewhere; without gnuplot the plots are skipped).
# Usage: scripts/bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-10}
BIN=$(cd "$BUILD/bin" && pwd)

# free_port, wait_port, stop_pids, start_agents, the 3-replica group helpers, plot.
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
work_dir bench

echo "## machine"
echo "- $(nproc) cores: $(cpu_model); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
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

run() { # replicas(1|3) mode concurrency -> $WORK/run-R-M-C/result.json
  local d=$WORK/run-$1-$2-$3 coord servers c=""; mkdir -p "$d"
  if [ "$1" = 1 ]; then
    local cp; cp=$(free_port)
    "$BIN/txcoord" --listen 127.0.0.1:$cp --data "$d/c" --log-level warn 2>"$d/c.log" & c=$!; PIDS+=($!)
    coord=127.0.0.1:$cp; servers=$c
    wait_port $cp
  else
    start_group "$d/group"; coord=$GLIST; servers="${GPID[1]},${GPID[2]},${GPID[3]}"
    if ! leader_of_group >/dev/null; then echo "no leader within 10 s" >"$d/bench.log"; stop_group; return 0; fi
  fi
  start_agents "$d" "$coord"
  timeout $((SECS + 120)) "$BIN/txbench" transfer --coordinator "$coord" "${AGENTS[@]}" \
    --accounts 10000 --concurrency "$3" --duration "${SECS}s" --mode "$2" --json --server-pids "$servers,$APID,$BPID" \
    >"$d/result.json" 2>"$d/bench.log" || true
  stop_pids $APID $BPID
  if [ -n "$c" ]; then stop_pids $c; else stop_group; fi
}

echo
echo "## txbench transfer (${SECS} s each, 2 resources of 10,000 accounts, fsync on)"
echo
echo "| mode | concurrency | committed/s | aborted/s | p50 ms | p99 ms | p999 ms | server CPU/txn us |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for mode in oneshot interactive; do
  for c in 1 64; do
    # Not in a pipeline: run's servers must be this shell's children, stopped by its trap.
    run 1 "$mode" "$c"
    python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).read())
print("| %s | %d | %.0f | %.0f | %.2f | %.2f | %.2f | %.0f |" % (r["mode"], r["concurrency"], r["committed_per_s"],
      r["aborted_per_s"], r["p50_ms"], r["p99_ms"], r["p999_ms"], r.get("cpu_us_per_txn", float("nan"))))' "$WORK/run-1-$mode-$c/result.json"
  done
done

echo
echo "## one-shot sweep: txbench transfer, 1 coordinator and 3 replicas, ${SECS} s each"
echo
# A fresh group (or coordinator) and two agents per point; the 1-coordinator
# points at concurrency 1 and 64 are the one-shot rows above, not run again.
SWEEP=(1 4 16 64 256)
for r in 1 3; do
  for c in "${SWEEP[@]}"; do
    # Not in a pipeline: run's servers must be this shell's children, stopped by its trap.
    [ -s "$WORK/run-$r-oneshot-$c/result.json" ] || run "$r" oneshot "$c"
  done
done
python3 - "$WORK" "$PLOT_DIR/bench-sweep.dat" "$SECS" "${SWEEP[@]}" <<'PY'
import json, sys
work, dat, secs, sweep = sys.argv[1], sys.argv[2], sys.argv[3], [int(c) for c in sys.argv[4:]]
print("| replicas | concurrency | committed/s | p50 ms | p99 ms | server CPU/txn us |")
print("| --- | --- | --- | --- | --- | --- |")
# One block per replica count, two blank lines apart, its title first (scripts/plots/sweep.gp).
blocks = []
for replicas, title in ((1, "1 replica"), (3, "3 replicas")):
    rows = []
    for c in sweep:
        d = f"{work}/run-{replicas}-oneshot-{c}"
        try:
            r = json.load(open(f"{d}/result.json"))
        except Exception:
            err = open(f"{d}/bench.log").read(200).replace("\n", " ").replace("|", " ")
            print(f"| {replicas} | {c} | failed: {err} | | | |")
            continue
        cpu = r.get("cpu_us_per_txn", float("nan"))
        print("| %d | %d | %.0f | %.2f | %.2f | %.0f |" % (replicas, c, r["committed_per_s"], r["p50_ms"], r["p99_ms"], cpu))
        rows.append("%d %d %.1f %.3f %.3f %.1f" % (replicas, c, r["committed_per_s"], r["p50_ms"], r["p99_ms"], cpu))
    blocks.append(f'"{title}"\n' + "".join(row + "\n" for row in rows))
with open(dat, "w") as f:
    f.write(f"# scripts/bench.sh: txbench transfer --mode oneshot, {secs} s per point, two SQLite agents\n")
    f.write("# replicas concurrency committed_per_s p50_ms p99_ms cpu_us_per_txn\n")
    f.write("\n\n".join(blocks))
PY
echo
plot sweep bench-sweep.dat bench-throughput.svg "col=3; ylabel='committed transactions/s'; what='txbench transfer, one-shot, ${SECS} s per point: throughput'"
plot sweep bench-sweep.dat bench-p99.svg "col=5; ylabel='p99 latency (ms)'; what='txbench transfer, one-shot, ${SECS} s per point: p99 latency'"
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
