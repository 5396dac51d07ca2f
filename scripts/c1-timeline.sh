#!/usr/bin/env bash
# What a one-shot transaction costs at concurrency 1, thread by thread and
# message by message (not a test; needs linux-perf and root for `perf record -a`):
# 3 replicas and two SQLite agents on loopback under txbench one-shot
# transfers at concurrency 1. Prints
#   - each server thread's CPU per committed transaction (from /proc, over
#     SECONDS of the run);
#   - per process, the messages it sent per committed transaction, by socket
#     and size (system-wide syscall tracepoints over PERF_SECS);
#   - the durations of the syscalls that carry a transaction (sendto,
#     recvfrom, fdatasync) and how long threads slept in epoll_wait/futex;
#   - with TIMELINE=N, the first N traced events as a timeline (us, process,
#     thread, syscall, size), to follow one transaction through the cluster.
# scripts/c1-breakdown.sh gives the same run's time from the nodes' own
# histograms; this one shows what the histograms cannot: the hops, the
# wake-ups and the work that runs between two transactions.
# CONC and MODE run it at another concurrency or in interactive mode (e.g.
# CONC=64 MODE=interactive): per-thread CPU and per-process syscalls per
# transaction then come from the committed rate, not from the client's sends.
# Usage: [CONC=N] [MODE=interactive] scripts/c1-timeline.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-6}
PERF_SECS=${PERF_SECS:-0.5}
CONC=${CONC:-1}
MODE=${MODE:-oneshot}
BIN=$(cd "$BUILD/bin" && pwd)
command -v perf >/dev/null || { echo "c1-timeline.sh: perf (linux-perf) is not installed" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
work_dir c1t

start_group "$WORK/group"
L=$(leader_of_group)
start_agents "$WORK" "$GLIST"
"$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 10000 --concurrency 1 \
  --duration 2s --mode oneshot --quiet >/dev/null 2>&1 || true  # creates the accounts
declare -A ROLE
f=1
for i in 1 2 3; do
  if [ "$i" = "$L" ]; then ROLE[${GPID[$i]}]=leader; else ROLE[${GPID[$i]}]=follower$f; f=$((f + 1)); fi
done
ROLE[$APID]=agent_a; ROLE[$BPID]=agent_b
servers=("${GPID[1]}" "${GPID[2]}" "${GPID[3]}" "$APID" "$BPID")
thread_ticks() { # -> "role tid comm ticks" for every thread of the servers
  local p t
  for p in "${servers[@]}"; do
    for t in /proc/"$p"/task/*; do
      echo "${ROLE[$p]} $(basename "$t") $(awk '{print $2, $14 + $15}' "$t/stat")"
    done
  done
}
"$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 10000 --concurrency "$CONC" \
  --duration "${SECS}s" --mode "$MODE" --json >"$WORK/r.json" 2>/dev/null &
BENCH=$!
sleep 1
thread_ticks >"$WORK/t0"; date +%s.%N >"$WORK/t0.time"
perf record -q -a -o "$WORK/perf.data" -e 'syscalls:sys_enter_sendto,syscalls:sys_exit_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_exit_recvfrom,syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync,syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_exit_futex,syscalls:sys_enter_pwrite64' \
  -- sleep "$PERF_SECS" >/dev/null 2>&1
sleep 3
thread_ticks >"$WORK/t1"; date +%s.%N >"$WORK/t1.time"
wait "$BENCH"
perf script -i "$WORK/perf.data" -F comm,pid,tid,time,event,trace >"$WORK/trace.txt" 2>/dev/null
for p in "${servers[@]}"; do echo "$p ${ROLE[$p]}"; done >"$WORK/roles"
echo "## concurrency $CONC ($MODE), 3 replicas (replica $L leads), two agents; CPU over about 4 s, syscalls over ${PERF_SECS} s"
python3 - "$WORK" "$(getconf CLK_TCK)" "${TIMELINE:-0}" "$CONC" <<'PY'
import collections, json, re, sys
work, hz, timeline, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(work + "/r.json"))
rate = r["committed_per_s"]
print("client: p50 %.3f ms, %d committed/s" % (r["p50_ms"], rate))
def ticks(path):
    return {(a, b): (c, int(d)) for a, b, c, d in (l.split() for l in open(path))}
t0, t1 = ticks(work + "/t0"), ticks(work + "/t1")
secs = float(open(work + "/t1.time").read()) - float(open(work + "/t0.time").read())
total = 0.0
print("\nserver threads, CPU us per committed transaction (%.1f s):" % secs)
for key in sorted(t1):
    if key not in t0:
        continue
    us = (t1[key][1] - t0[key][1]) / hz * 1e6 / max(rate * secs, 1)
    total += us
    if us >= 1:
        print("  %-10s %-7s %-10s %6.0f" % (key[0], key[1], t1[key][0], us))
print("  all server threads: %.0f us" % total)
roles = dict(l.split() for l in open(work + "/roles"))
main_tid = {pid: pid for pid in roles}
ev = []
for line in open(work + "/trace.txt"):
    m = re.match(r"\s*(\S+)\s+(\d+)/(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):\s*(.*)", line)
    if not m:
        continue
    comm, pid, tid, t, ee, name, arg = m.groups()
    who = roles.get(pid, "client" if comm == "txbench" else None)
    if who is None:
        continue
    ev.append((float(t) * 1e6, who, pid, tid, ee, name, arg))
if not ev:
    print("no trace events (perf record -a needs root)"); sys.exit(0)
span = (ev[-1][0] - ev[0][0]) / 1e6
if conc == 1:
    txns = sum(1 for e in ev if e[1] == "client" and e[4] == "enter" and e[5] == "sendto")
    print("\ntraced %.2f s, %d client sends (about one per transaction)" % (span, txns))
else:
    txns = int(rate * span)
    print("\ntraced %.2f s, about %d transactions (the committed rate times the span)" % (span, txns))
calls = collections.Counter((e[1], e[5]) for e in ev if e[4] == "enter")
names = sorted({n for _, n in calls})
print("\nsyscalls per transaction (entries):")
print("  %-10s " % "process" + " ".join("%11s" % n for n in names))
for who in sorted({w for w, _ in calls}):
    print("  %-10s " % who + " ".join("%11.2f" % (calls[(who, n)] / max(txns, 1)) for n in names))
sends = collections.Counter()
for t, who, pid, tid, ee, name, arg in ev:
    if ee == "enter" and name == "sendto":
        fd = int(re.search(r"fd: (0x[0-9a-f]+)", arg).group(1), 16)
        n = int(re.search(r", len: (0x[0-9a-f]+)", arg).group(1), 16)
        sends[(who, fd, n)] += 1
print("\nmessages sent per transaction (process, socket fd, bytes: count per transaction):")
per_who = collections.Counter()
for (who, fd, n), c in sorted(sends.items()):
    per_who[who] += c
    if c / max(txns, 1) >= 0.2:
        print("  %-10s fd %-3d %5d bytes: %.2f" % (who, fd, n, c / max(txns, 1)))
print("  writes per transaction: " + ", ".join("%s %.1f" % (w, c / max(txns, 1)) for w, c in sorted(per_who.items())) +
      "; all %.1f" % (sum(per_who.values()) / max(txns, 1)))
opened, dur = {}, collections.defaultdict(list)
for t, who, pid, tid, ee, name, arg in ev:
    kind = "server" if who != "client" else "client"
    if ee == "enter":
        opened[(tid, name)] = t
    elif (tid, name) in opened:
        dur[(kind, name)].append(t - opened.pop((tid, name)))
print("\nsyscall durations, us (p50 / p90 / count):")
for (kind, name), v in sorted(dur.items()):
    v.sort()
    print("  %-6s %-11s %6.0f %6.0f %6d" % (kind, name, v[len(v) // 2], v[len(v) * 9 // 10], len(v)))
if timeline:
    print("\ntimeline (us from the first event; epoll polls without a wait and empty reads left out):")
    start = ev[0][0]
    shown = 0
    for t, who, pid, tid, ee, name, arg in ev:
        if name == "recvfrom" and ee == "enter":
            continue
        if name == "recvfrom" and arg.startswith("0xfffffffffffffff5"):
            continue
        if name == "epoll_wait" and (("timeout: 0x00000000" in arg) or (ee == "exit" and arg.strip() == "0x0")):
            continue
        what = ""
        m = re.search(r", len: (0x[0-9a-f]+)", arg) or re.search(r"count: (0x[0-9a-f]+)", arg)
        if m:
            what = "%d bytes" % int(m.group(1), 16)
        elif ee == "exit":
            what = arg.split()[0] if arg else ""
        print("  %8.1f %-10s %-7s %-5s %-11s %s" % (t - start, who, "main" if tid == pid else tid, ee, name, what))
        shown += 1
        if shown >= timeline:
            break
PY
