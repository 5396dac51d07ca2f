#!/usr/bin/env bash
# Benchmark (not a test): what mutual TLS costs. A 3-replica txcoord group on
# loopback, run four ways: plaintext (the default, where agents confirm a
# COMMIT/ABORT with the group unless it is signed under the key they
# registered: after each agent's first decision, every one is), plaintext with
# --sign-decisions off (every decision confirmed), plaintext with
# --confirm-decisions off (nothing confirmed: what the confirmation costs),
# and mutual TLS on every connection (certificates from scripts/make-certs.sh;
# the agents trust Decide from the replica role and confirm nothing). Measures the
# replicated log alone (txbench log, concurrency 256) and end to end
# (txbench transfer, one-shot, concurrency 64, two SQLite agents), with the
# servers' CPU per committed transaction. Prints Markdown for
# docs/benchmarks.md.
# Usage: scripts/bench-tls.sh [BUILD_DIR] [SECONDS] [ROUNDS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-10}
ROUNDS=${3:-2}
BIN=$(cd "$BUILD/bin" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GLOGBENCH=1
source "$SRC/scripts/bench-lib.sh"
work_dir bench-tls
"$SRC/scripts/make-certs.sh" "$WORK/certs" >/dev/null

echo "## machine"
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# One configuration: $1 name, $2 plain|tls, $3 extra txagent flags; results in
# $WORK/NAME-ROUND-{log,e2e}.json.
run_config() {
  local name=$1 mode=$2 agent_extra=$3 round=$4 d="$WORK/$1-$4"
  mkdir -p "$d"
  if [ "$mode" = tls ]; then GTLS=$WORK/certs; else GTLS=""; fi
  GLOGBENCH=1
  start_group "$d/log-group"
  leader_of_group >/dev/null
  group_caught_up || true
  # shellcheck disable=SC2046
  timeout $((SECS + 60)) "$BIN/txbench" log --coordinator "$GLIST" $(tls_flags admin) --concurrency 256 \
    --duration "${SECS}s" --record-bytes 256 --json --quiet >"$WORK/$name-$round-log.json" 2>"$d/log.log" || true
  stop_group
  # End to end on a fresh group (the log benchmark's records would be in its log and snapshots).
  GLOGBENCH=0
  start_group "$d/group"
  leader_of_group >/dev/null
  local ap bp a b
  ap=$(free_port); bp=$(free_port)
  # shellcheck disable=SC2046,SC2086
  "$BIN/txagent" --listen 127.0.0.1:$ap --data "$d/a" --coordinator "$GLIST" --resource bank_a=sqlite:$d/a.db \
    $(tls_flags agent) $agent_extra --log-level warn 2>"$d/a.log" & a=$!; PIDS+=($a)
  # shellcheck disable=SC2046,SC2086
  "$BIN/txagent" --listen 127.0.0.1:$bp --data "$d/b" --coordinator "$GLIST" --resource bank_b=sqlite:$d/b.db \
    $(tls_flags agent) $agent_extra --log-level warn 2>"$d/b.log" & b=$!; PIDS+=($b)
  wait_port $ap; wait_port $bp
  # shellcheck disable=SC2046
  timeout $((SECS + 120)) "$BIN/txbench" transfer --coordinator "$GLIST" --agent bank_a=127.0.0.1:$ap \
    --agent bank_b=127.0.0.1:$bp $(tls_flags client) --accounts 10000 --concurrency 64 --duration "${SECS}s" \
    --mode oneshot --json --server-pids "${GPID[1]},${GPID[2]},${GPID[3]},$a,$b" \
    >"$WORK/$name-$round-e2e.json" 2>"$d/bench.log" || true
  stop_pids "$a" "$b"
  stop_group
}

for round in $(seq 1 "$ROUNDS"); do
  run_config plain plain "" "$round"
  run_config plain-unsigned plain "--sign-decisions off" "$round"
  run_config plain-noconfirm plain "--confirm-decisions off" "$round"
  run_config tls tls "" "$round"
done

python3 - "$WORK" "$ROUNDS" "$SECS" <<'PY'
import json, statistics, sys
w, rounds, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names = [("plain", "plaintext (agents confirm what is not signed)"),
         ("plain-unsigned", "plaintext, --sign-decisions off (every decision confirmed)"),
         ("plain-noconfirm", "plaintext, --confirm-decisions off"),
         ("tls", "mutual TLS")]
def load(name, kind):
    out = []
    for r in range(1, rounds + 1):
        try:
            out.append(json.load(open(f"{w}/{name}-{r}-{kind}.json")))
        except Exception:
            pass
    return out
def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")
print(f"\n## TLS on vs off: 3 replicas, {secs} s per run, median of {rounds} rounds (interleaved)\n")
print("| configuration | log commands/s (c256) | log p99 ms | e2e committed/s (c64) | e2e p50 ms | e2e p99 ms | server CPU/txn us |")
print("| --- | --- | --- | --- | --- | --- | --- |")
res = {}
for name, label in names:
    log, e2e = load(name, "log"), load(name, "e2e")
    res[name] = (med(log, "committed_per_s"), med(e2e, "committed_per_s"), med(e2e, "cpu_us_per_txn"))
    print("| %s | %.0f | %.2f | %.0f | %.2f | %.2f | %.0f |" % (label, res[name][0], med(log, "p99_ms"),
          res[name][1], med(e2e, "p50_ms"), med(e2e, "p99_ms"), res[name][2]))
p, n, t = res["plain"], res["plain-noconfirm"], res["tls"]
print()
print(f"- TLS vs plaintext without confirmation: log {t[0] / n[0]:.2f}x, end to end {t[1] / n[1]:.2f}x, "
      f"CPU/txn {t[2] / n[2]:.2f}x")
print(f"- TLS vs the plaintext default: end to end {t[1] / p[1]:.2f}x, CPU/txn {t[2] / p[2]:.2f}x")
print(f"- the plaintext confirmation (signed): end to end {p[1] / n[1]:.2f}x, CPU/txn {p[2] / n[2]:.2f}x")
u = res["plain-unsigned"]
print(f"- every decision confirmed (unsigned): end to end {u[1] / n[1]:.2f}x, CPU/txn {u[2] / n[2]:.2f}x")
PY
echo
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
