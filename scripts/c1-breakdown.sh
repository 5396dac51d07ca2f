#!/usr/bin/env bash
# Where a one-shot transaction's time goes at concurrency 1 (not a test):
# 3 replicas and two SQLite agents on loopback, txbench one-shot transfers at
# concurrency 1, and the nodes' own latency histograms over the run (their
# /metrics before and after): the leader's Submit-to-answer time, each
# replica's log write (hand-off to durable), each agent's execute_prepare and
# commit operations (hand-off to the resource until the completion is back on
# the io thread). What the client's p50 has beyond the agents' prepare and a
# replica's log write is the hops between processes and threads.
# Usage: scripts/c1-breakdown.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-8}
BIN=$(cd "$BUILD/bin" && pwd)
GMETRICS=1
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
work_dir c1

start_group "$WORK/group"
L=$(leader_of_group)
ap=$(free_port); bp=$(free_port); am=$(free_port); bm=$(free_port)
for x in "a $ap $am" "b $bp $bm"; do
  set -- $x
  "$BIN/txagent" --listen 127.0.0.1:$2 --metrics-listen 127.0.0.1:$3 --data "$WORK/$1" \
    --coordinator "$GLIST" --resource bank_$1=sqlite:$WORK/$1.db --log-level warn 2>"$WORK/$1.log" & PIDS+=($!)
done
wait_port $ap; wait_port $bp
AG=(--agent bank_a=127.0.0.1:$ap --agent bank_b=127.0.0.1:$bp)
"$BIN/txbench" transfer --coordinator "$GLIST" "${AG[@]}" --accounts 10000 --concurrency 1 \
  --duration 2s --mode oneshot --quiet >/dev/null 2>&1 || true  # creates the accounts
names=([${GM[1]}]=replica1 [${GM[2]}]=replica2 [${GM[3]}]=replica3 [$am]=agent_a [$bm]=agent_b)
scrape() {
  for p in ${GM[1]} ${GM[2]} ${GM[3]} $am $bm; do
    curl -s "127.0.0.1:$p/metrics" |
      grep -E '^(txcoord_commit_latency_seconds|txcoord_log_write_latency_seconds|txagent_wal_write_latency_seconds)_(sum|count)' |
      sed "s/^/${names[$p]} /" || true
  done
}
scrape >"$WORK/before"
"$BIN/txbench" transfer --coordinator "$GLIST" "${AG[@]}" --accounts 10000 --concurrency 1 \
  --duration "${SECS}s" --mode oneshot --json 2>/dev/null >"$WORK/r.json"
scrape >"$WORK/after"
echo "## concurrency 1, 3 replicas (replica $L leads), two agents, ${SECS} s"
python3 - "$WORK/before" "$WORK/after" "$WORK/r.json" <<'PY'
import collections, json, re, sys
def read(path):
    out = {}
    for line in open(path):
        who, key, value = line.split()
        out[(who, key)] = float(value)
    return out
before, after = read(sys.argv[1]), read(sys.argv[2])
r = json.load(open(sys.argv[3]))
print("client: p50 %.3f ms, %d committed" % (r["p50_ms"], r["committed"]))
series = collections.defaultdict(dict)
for (who, key), v in after.items():
    m = re.match(r"(\w+?)_(sum|count)(\{.*\})?$", key)
    if not m:
        continue
    series[(who, m.group(1) + (m.group(3) or ""))][m.group(2)] = v - before.get((who, key), 0)
for (who, name), d in sorted(series.items()):
    if d.get("count", 0) > 0:
        print("%s %s: mean %.3f ms over %d" % (who, name, 1000 * d["sum"] / d["count"], d["count"]))
PY
