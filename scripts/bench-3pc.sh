#!/usr/bin/env bash
# Benchmark (not a test): 2PC against 3PC end to end, 3 replicas. For every
# row it starts a fresh 3-replica txcoord group and two txagents (each with its
# own SQLite database) on loopback, fsync on everywhere, runs
#   txbench transfer --protocol P --mode M --concurrency C
# (the same transfer as scripts/bench.sh and scripts/bench-paxos.sh), and stops
# them by pid. Rows: protocol 2pc/3pc x mode oneshot/interactive x
# concurrency 1/64, REPS times; within a repetition 2PC and 3PC of the same
# mode and concurrency run back to back, so that load from other processes on
# the machine hits both alike. Prints one row per run, then the median per
# configuration and 3PC/2PC ratios, as Markdown for docs/benchmarks.md.
# Usage: scripts/bench-3pc.sh [BUILD_DIR] [SECONDS] [REPS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-10}
REPS=${3:-2}
BIN=$(cd "$BUILD/bin" && pwd)

# free_port, wait_port, stop_pids and the 3-replica group helpers.
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
work_dir bench-3pc

echo "## machine"
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # protocol mode concurrency rep -> $WORK/r-P-M-C-rep.json (+ .load: 1-min load average before)
  local name=$1-$2-$3-$4 ap bp a b
  local d=$WORK/$name; mkdir -p "$d"
  cut -d' ' -f1 /proc/loadavg >"$WORK/r-$name.load"
  start_group "$d/group"
  if ! leader_of_group >/dev/null; then
    echo "no leader within 10 s" >"$d/bench.log"; stop_group; return 0
  fi
  ap=$(free_port); bp=$(free_port)
  "$BIN/txagent" --listen 127.0.0.1:$ap --data "$d/a" --coordinator "$GLIST" --resource bank_a=sqlite:$d/a.db --log-level warn 2>"$d/a.log" & PIDS+=($!); a=$!
  "$BIN/txagent" --listen 127.0.0.1:$bp --data "$d/b" --coordinator "$GLIST" --resource bank_b=sqlite:$d/b.db --log-level warn 2>"$d/b.log" & PIDS+=($!); b=$!
  wait_port $ap; wait_port $bp
  timeout $((SECS + 120)) "$BIN/txbench" transfer --coordinator "$GLIST" --agent bank_a=127.0.0.1:$ap --agent bank_b=127.0.0.1:$bp \
    --accounts 10000 --concurrency "$3" --duration "${SECS}s" --mode "$2" --protocol "$1" --json \
    --server-pids "${GPID[1]},${GPID[2]},${GPID[3]},$a,$b" \
    >"$WORK/r-$name.json" 2>"$d/bench.log" || true
  stop_pids $a $b
  stop_group
  [ -s "$WORK/r-$name.json" ] || cp "$d/bench.log" "$WORK/r-$name.err"
}

echo
echo "## 2PC vs 3PC: txbench transfer, 3 replicas, two agents, ${SECS} s per run, ${REPS} runs per row, fsync on"
echo
echo "| protocol | mode | concurrency | run | load avg | committed/s | aborted/s | errors | p50 ms | p99 ms | p999 ms | server CPU/txn us |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for rep in $(seq 1 "$REPS"); do
  for mode in oneshot interactive; do
    for c in 1 64; do
      for proto in 2pc 3pc; do
        # Not in a pipeline: run's servers must be this shell's children, stopped by its trap.
        run "$proto" "$mode" "$c" "$rep"
        n=$proto-$mode-$c-$rep
        if [ -s "$WORK/r-$n.json" ]; then
          python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print("| %s | %s | %d | %s | %s | %.0f | %.0f | %d | %.2f | %.2f | %.2f | %.0f |" % (r["protocol"], r["mode"], r["concurrency"],
      sys.argv[2], sys.argv[3], r["committed_per_s"], r["aborted_per_s"], r["errors"], r["p50_ms"], r["p99_ms"], r["p999_ms"],
      r.get("cpu_us_per_txn", float("nan"))))' \
            "$WORK/r-$n.json" "$rep" "$(cat "$WORK/r-$n.load")"
        else
          echo "| $proto | $mode | $c | $rep | $(cat "$WORK/r-$n.load") | failed: $(head -c 200 "$WORK/r-$n.err" 2>/dev/null | tr '\n|' '  ') | | | | | | |"
        fi
      done
    done
  done
done

python3 - "$WORK" "$REPS" <<'PY'
import json, statistics, sys
w, reps = sys.argv[1], int(sys.argv[2])
med = {}
print("\n### median of the runs\n")
print("| protocol | mode | concurrency | runs | committed/s | p50 ms | p99 ms | server CPU/txn us |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in ("oneshot", "interactive"):
    for c in (1, 64):
        for proto in ("2pc", "3pc"):
            rs = []
            for rep in range(1, reps + 1):
                try:
                    rs.append(json.load(open(f"{w}/r-{proto}-{mode}-{c}-{rep}.json")))
                except Exception:
                    pass
            if not rs:
                print(f"| {proto} | {mode} | {c} | 0 | | | | |")
                continue
            m = {k: statistics.median(r.get(k, float("nan")) for r in rs)
                 for k in ("committed_per_s", "p50_ms", "p99_ms", "cpu_us_per_txn")}
            med[(proto, mode, c)] = m
            print("| %s | %s | %d | %d | %.0f | %.2f | %.2f | %.0f |" % (proto, mode, c, len(rs), m["committed_per_s"],
                  m["p50_ms"], m["p99_ms"], m["cpu_us_per_txn"]))
print()
for mode in ("oneshot", "interactive"):
    two, three = med.get(("2pc", mode, 64)), med.get(("3pc", mode, 64))
    if two and three:
        print(f"- {mode}, concurrency 64: 3PC/2PC committed/s {three['committed_per_s'] / two['committed_per_s']:.2f}x")
    two, three = med.get(("2pc", mode, 1)), med.get(("3pc", mode, 1))
    if two and three:
        print(f"- {mode}, concurrency 1: p50 {two['p50_ms']:.2f} ms (2PC) vs {three['p50_ms']:.2f} ms (3PC), "
              f"+{three['p50_ms'] - two['p50_ms']:.2f} ms")
PY
echo
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
