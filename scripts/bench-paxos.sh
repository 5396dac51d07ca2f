#!/usr/bin/env bash
# Benchmarks of the replicated coordinator (not tests), all in one run, on
# loopback, fsync on everywhere:
#  1. the replicated log alone: txbench log against a 3-replica txcoord group
#     and against a 3-member etcd cluster (puts through its v3 JSON gateway,
#     sent to the etcd leader), same record size, concurrency 1 and 256;
#  2. failover: with a log load running, kill -9 the leader KILLS times and
#     measure, with a client appending back to back (txbench probe), the time
#     from the kill to the first successful Append under the new leader;
#  3. end to end: txbench transfer (two agents) against one coordinator and
#     against a 3-replica group; prints the ratio.
# Prints Markdown tables for docs/benchmarks.md and draws parts 1 and 2 as
# docs/bench-log-vs-etcd.svg and docs/bench-failover.svg (their data in the
# .dat files next to them; PLOT_DIR=DIR puts them elsewhere; without gnuplot
# the plots are skipped). Every process it starts is a child of this shell and
# is stopped by pid in the EXIT trap.
# Usage: scripts/bench-paxos.sh [BUILD_DIR] [SECONDS] [KILLS]
# PARTS=log,failover,e2e (the default: all three) runs only the parts named;
# KEEP_WORK=1 keeps the scratch directory (logs, the probe's gaps) and prints it;
# FAILOVER_SIGNAL=STOP hangs the leader (kill -STOP, then -9 once the group
# moved on) instead of killing it: its connections stay open, as when its
# machine or network fails, so the followers wait for the election timeout
# (the times go to bench-failover-stop.dat/.svg).
set -euo pipefail
PARTS=${PARTS:-log,failover,e2e}
part() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
BUILD=${1:-build}
SECS=${2:-10}
KILLS=${3:-20}
RECORD=256
BIN=$(cd "$BUILD/bin" && pwd)
WORK=$(mktemp -d /tmp/txc-bench-paxos.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "bench-paxos: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if part log && ! command -v etcd >/dev/null 2>&1; then
  echo "bench-paxos: installing etcd-server" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >/dev/null
fi

# free_port, wait_port, json, forget, start_agents, plot and the 3-replica group helpers. The
# groups serve LogBench.Append (txbench log, txbench probe): --serve-log-bench.
GLOGBENCH=1
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

echo "## machine"
echo "- $(nproc) cores: $(cpu_model); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if part log; then echo "- $(etcd --version | head -1), record ${RECORD} bytes (etcd: 16-byte key + ${RECORD}-byte value)"; fi

# ---------------------------------------------------------------- servers
# start_group, start_replica, leader_of_group, group_caught_up: scripts/bench-lib.sh

declare -A EC EPP
EPID=(); ELIST=""
start_etcd() { # dir
  local d=$1 cluster="" i
  for i in 1 2 3; do EC[$i]=$(free_port); EPP[$i]=$(free_port); done
  for i in 1 2 3; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${EPP[$i]}"; done
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$d/e$i" \
      --listen-client-urls "http://127.0.0.1:${EC[$i]}" --advertise-client-urls "http://127.0.0.1:${EC[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${EPP[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${EPP[$i]}" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token txc-bench \
      --logger zap --log-level warn 2>"$d/e$i.log" & EPID[$i]=$!; PIDS+=($!)
  done
  ELIST="http://127.0.0.1:${EC[1]},http://127.0.0.1:${EC[2]},http://127.0.0.1:${EC[3]}"
  for i in 1 2 3; do wait_port "${EC[$i]}"; done
}

# ------------------------------------------------------ 1. the log alone
start_group "$WORK/log-group"
if part log; then
start_etcd "$WORK"
leader_of_group >/dev/null
group_caught_up
echo
echo "## replicated log alone: txbench log, ${SECS} s each, ${RECORD}-byte records, fsync on"
echo
echo "| system | concurrency | committed/s | p50 ms | p99 ms | p999 ms | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
LOG_CONC=(1 256)
for c in "${LOG_CONC[@]}"; do
  for sys in txcoord etcd; do
    if [ $sys = txcoord ]; then target=(--coordinator "$GLIST"); else target=(--etcd "$ELIST"); fi
    "$BIN/txbench" log "${target[@]}" --concurrency $c --duration "${SECS}s" --record-bytes $RECORD --json \
      >"$WORK/log-$sys-$c.json" 2>"$WORK/log-$sys-$c.err" || true
    if [ -s "$WORK/log-$sys-$c.json" ]; then
      json "$WORK/log-$sys-$c.json" \
        '"| %s (3 replicas) | %d | %.0f | %.2f | %.2f | %.2f | %d |" % (target, concurrency, committed_per_s, p50_ms, p99_ms, p999_ms, errors)'
    else
      echo "| $sys (3 replicas) | $c | failed: $(head -c 200 "$WORK/log-$sys-$c.err" | tr '\n' ' ') | | | | |"
    fi
  done
done
python3 - "$WORK" "$PLOT_DIR/bench-log-vs-etcd.dat" "$SECS" "$RECORD" "${LOG_CONC[@]}" <<'PY'
import json, sys
w, dat, secs, record, conc = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def load(system, c):
    try:
        return json.load(open(f"{w}/log-{system}-{c}.json"))
    except Exception:
        return None
# For scripts/plots/log-vs-etcd.gp: a row per concurrency, "?" where a run failed.
with open(dat, "w") as f:
    f.write(f"# scripts/bench-paxos.sh: txbench log, 3 replicas / 3 etcd members, {secs} s per run, {record}-byte records\n")
    f.write("# concurrency txcoord_per_s txcoord_p99_ms etcd_per_s etcd_p99_ms\n")
    for c in conc:
        cols = [c]
        for r in (load("txcoord", c), load("etcd", c)):
            cols += ["%.1f" % r["committed_per_s"], "%.3f" % r["p99_ms"]] if r else ["?", "?"]
        f.write(" ".join(cols) + "\n")
try:
    t = json.load(open(f"{w}/log-txcoord-256.json")); e = json.load(open(f"{w}/log-etcd-256.json"))
    print(f"\nAt concurrency 256: txcoord/etcd throughput {t['committed_per_s'] / e['committed_per_s']:.2f}x; "
          f"p99 {t['p99_ms']:.2f} ms vs {e['p99_ms']:.2f} ms")
except Exception as ex:
    print(f"\n(no ratio: {ex})")
PY
echo
plot log-vs-etcd bench-log-vs-etcd.dat bench-log-vs-etcd.svg "secs='$SECS'; record='$RECORD'"
for i in 1 2 3; do kill "${EPID[$i]}" 2>/dev/null || true; wait "${EPID[$i]}" 2>/dev/null || true; done
fi

# -------------------------------------------------------------- 2. failover
# A background log load (concurrency 32) plus the probe; the group is the one above.
if part failover; then
leader_of_group >/dev/null
echo
SIG=${FAILOVER_SIGNAL:-KILL}
FO=bench-failover; [ "$SIG" = KILL ] || FO=bench-failover-$(echo "$SIG" | tr 'A-Z' 'a-z')
SHOW=$SIG; [ "$SIG" = KILL ] && SHOW=9
echo "## failover: kill -$SHOW of the leader, ${KILLS} times, default timeouts, under a log load (concurrency 32)"
LOAD_SECS=$((KILLS * 8 + 30))
"$BIN/txbench" log --coordinator "$GLIST" --concurrency 32 --duration "${LOAD_SECS}s" --record-bytes $RECORD --quiet \
  >"$WORK/failover-load.out" 2>"$WORK/failover-load.err" & LOADPID=$!; PIDS+=($!)
"$BIN/txbench" probe --coordinator "$GLIST" --duration "${LOAD_SECS}s" --gap-ms 5 \
  >"$WORK/probe.out" 2>"$WORK/probe.err" & PROBEPID=$!; PIDS+=($!)
: >"$WORK/kills"
sleep 1
for k in $(seq 1 "$KILLS"); do
  group_caught_up || { echo "- kill $k: the group did not catch up within 20 s; stopping here"; break; }
  leader=$(leader_of_group) || { echo "- kill $k: no leader within 10 s; stopping here"; break; }
  sleep 0.5
  t=$(date +%s%6N)
  kill -"$SIG" "${GPID[$leader]}"
  if [ "$SIG" = KILL ]; then wait "${GPID[$leader]}" 2>/dev/null || true; forget "${GPID[$leader]}"; fi
  echo "$t $leader" >>"$WORK/kills"
  # Wait (15 s at most) for the probe's first success after the kill.
  for _ in $(seq 1 150); do
    awk -v t="$t" '$1 == "gap" { split($3, a, "="); if (a[2] + 0 > t + 0) f = 1 } END { exit !f }' "$WORK/probe.out" && break
    sleep 0.1
  done
  if [ "$SIG" != KILL ]; then
    kill -9 "${GPID[$leader]}"; wait "${GPID[$leader]}" 2>/dev/null || true; forget "${GPID[$leader]}"
  fi
  start_replica "$leader"
  wait_port "${GP[$leader]}" || true
done
kill "$PROBEPID" "$LOADPID" 2>/dev/null || true
wait "$PROBEPID" "$LOADPID" 2>/dev/null || true
python3 - "$WORK/kills" "$WORK/probe.out" "$PLOT_DIR/$FO.dat" "$WORK/failover.pct" "$SHOW" <<'PY'
import sys
kills = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
gaps = []
for l in open(sys.argv[2]):
    if l.startswith("gap "):
        f = dict(x.split("=") for x in l.split()[1:])
        gaps.append((int(f["last_ok_us"]), int(f["first_ok_us"])))
ms, missing = [], 0
for t, leader in kills:
    after = [g for g in gaps if g[1] > t and g[0] <= t + 20000]
    if not after:
        missing += 1
        continue
    ms.append((min(g[1] for g in after) - t) / 1000.0)
ms.sort()
def pct(p):  # nearest rank
    import math
    return ms[max(0, math.ceil(p * len(ms)) - 1)]
print()
if ms:
    print("| kills | measured | p50 ms | p99 ms | max ms | min ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {len(kills)} | {len(ms)} | {pct(0.5):.0f} | {pct(0.99):.0f} | {ms[-1]:.0f} | {ms[0]:.0f} |")
    print("\nall (ms): " + ", ".join(f"{x:.0f}" for x in ms))
if missing:
    print(f"\n{missing} kill(s) without a matching gap in the probe's output")
# For scripts/plots/failover.gp: the sorted times with their cumulative
# fraction, and the percentiles above for its title and markers.
if ms:
    with open(sys.argv[3], "w") as f:
        f.write(f"# scripts/bench-paxos.sh: failover after kill -{sys.argv[5]} of the leader, {len(ms)} of {len(kills)} kills measured\n")
        f.write("# rank fraction_of_kills ms\n")
        for i, x in enumerate(ms):
            f.write(f"{i + 1} {(i + 1) / len(ms):.4f} {x:.1f}\n")
    with open(sys.argv[4], "w") as f:
        f.write(f"{pct(0.5):.1f} {pct(0.99):.1f} {len(ms)}\n")
PY
if [ -s "$WORK/failover.pct" ]; then
  read -r P50 P99 MEASURED <"$WORK/failover.pct"
  echo
  plot failover $FO.dat $FO.svg "p50=$P50; p99=$P99; kills=$MEASURED; sig='$SHOW'"
fi
fi

# ------------------------------------------------------------ 3. end to end
if part e2e; then
run_transfer() { # name coordinator-list -> $WORK/e2e-name.json
  local d=$WORK/e2e-$1; mkdir -p "$d"
  start_agents "$d" "$2"
  timeout $((SECS + 120)) "$BIN/txbench" transfer --coordinator "$2" "${AGENTS[@]}" \
    --accounts 10000 --concurrency 64 --duration "${SECS}s" --mode oneshot --json >"$WORK/e2e-$1.json" 2>"$d/bench.log" || true
  stop_pids $APID $BPID
}
echo
echo "## end to end: txbench transfer, oneshot, concurrency 64, two agents, ${SECS} s each"
echo
echo "| coordinator | committed/s | aborted/s | p50 ms | p99 ms | p999 ms |"
echo "| --- | --- | --- | --- | --- | --- |"
# The failover group is no longer needed: stop it first.
for i in 1 2 3; do kill "${GPID[$i]}" 2>/dev/null || true; wait "${GPID[$i]}" 2>/dev/null || true; done
sp=$(free_port)
"$BIN/txcoord" --listen 127.0.0.1:$sp --data "$WORK/single" --log-level warn 2>"$WORK/single.log" & SPID=$!; PIDS+=($!)
wait_port $sp
run_transfer single "127.0.0.1:$sp"
kill $SPID; wait $SPID 2>/dev/null || true
GLOGBENCH=0  # end to end: transactions only, as in production
start_group "$WORK/e2e-group"
leader_of_group >/dev/null
run_transfer group "$GLIST"
for i in 1 2 3; do kill "${GPID[$i]}" 2>/dev/null || true; wait "${GPID[$i]}" 2>/dev/null || true; done
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
rows = {}
for name, label in (("single", "1 replica"), ("group", "3 replicas")):
    try:
        r = json.load(open(f"{w}/e2e-{name}.json")); rows[name] = r
        print("| %s | %.0f | %.0f | %.2f | %.2f | %.2f |" % (label, r["committed_per_s"], r["aborted_per_s"],
              r["p50_ms"], r["p99_ms"], r["p999_ms"]))
    except Exception as ex:
        print(f"| {label} | failed: {ex} | | | | |")
if len(rows) == 2:
    print(f"\n3 replicas / 1 replica: {rows['group']['committed_per_s'] / rows['single']['committed_per_s']:.2f}x")
PY
fi
echo
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
