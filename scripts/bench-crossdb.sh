#!/usr/bin/env bash
# Cross-database benchmark (not a test): the transfer workload between a
# PostgreSQL 15 and a MariaDB 10.11 database, all in one run, on loopback,
# fsync on everywhere:
#   txcoord  txbench transfer (oneshot) through a 3-replica txcoord group and
#            two txagents (one per database, resources postgres: / mariadb:);
#   direct   txbench transfer --direct: the same transfers as a hand-written
#            2PC client over the same drivers, no coordinator (each worker
#            prepares both branches at once, then commits both at once).
# Concurrency 1, 16 and 32 each (CONCS). Prints a Markdown table for docs/benchmarks.md:
# throughput, latency, the CPU per committed transaction of txcoord's own
# processes and of the databases, and the fsyncs per transaction each
# database counted (PostgreSQL pg_stat_wal.wal_sync, MariaDB
# Innodb_data_fsyncs) and the group commits of the coordinators' log; then a
# short separate pass at concurrency 1 with strace counting the
# fsync/fdatasync calls of the replicas and agents. Then the ratios against
# issue 11's goals: p50(txcoord)/p50(direct) at c1 within 1.3x, and
# throughput(txcoord)/throughput(direct) at c32 at least 0.8x.
#
# The databases are throwaway servers in a temp dir, run as user nobody (so
# this script must run as root), on free loopback ports, stopped by pid on
# exit with everything else this script starts.
# Usage: scripts/bench-crossdb.sh [BUILD_DIR] [SECONDS] [ACCOUNTS]
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-10}
ACCOUNTS=${3:-10000}
# Concurrency levels (the ratios need 1 and 32; 16 shows where txcoord stands
# below its agents' 32-connection pools).
CONCS=${CONCS:-1 16 32}
BIN=$(cd "$BUILD/bin" && pwd)
PGBIN=/usr/lib/postgresql/15/bin
for b in txcoord txagent txbench txadmin; do
  [ -x "$BIN/$b" ] || { echo "bench-crossdb: $BIN/$b is missing (cmake --build $BUILD)" >&2; exit 2; }
done
if [ "$(id -u)" -ne 0 ]; then echo "bench-crossdb: run as root (the databases run as nobody via setpriv)" >&2; exit 2; fi
for f in "$PGBIN/initdb" "$PGBIN/postgres" "$(command -v mariadbd || true)" "$(command -v mariadb-install-db || true)"; do
  [ -n "$f" ] && [ -x "$f" ] || { echo "bench-crossdb: needs postgresql-15 and mariadb-server-core (scripts/install-deps.sh)" >&2; exit 2; }
done

# free_port, wait_port, json, forget, stop_pids and the 3-replica group helpers.
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
work_dir bench-crossdb
chmod 755 "$WORK"

# ------------------------------------------------------------- databases
AS_NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
PG_PORT=$(free_port); MY_PORT=$(free_port)
PGD=$WORK/pg; MYD=$WORK/mariadb
mkdir -p "$PGD" "$MYD"; chown nobody:nogroup "$PGD" "$MYD"; chmod 700 "$PGD" "$MYD"
"${AS_NOBODY[@]}" "$PGBIN/initdb" -D "$PGD/data" -U txc --auth=trust -E UTF8 --no-instructions >"$PGD/initdb.log" 2>&1
"${AS_NOBODY[@]}" "$PGBIN/postgres" -D "$PGD/data" -c listen_addresses=127.0.0.1 -p "$PG_PORT" \
  -c unix_socket_directories="$PGD" -c max_connections=300 -c max_prepared_transactions=300 \
  -c fsync=on -c synchronous_commit=on -c shared_buffers=128MB \
  >"$PGD/server.log" 2>&1 & PG_PID=$!; PIDS+=($!)
"${AS_NOBODY[@]}" mariadb-install-db --no-defaults --datadir="$MYD/data" --user=nobody \
  --auth-root-authentication-method=normal --skip-test-db >"$MYD/install.log" 2>&1
"${AS_NOBODY[@]}" mariadbd --no-defaults --datadir="$MYD/data" --bind-address=127.0.0.1 --port="$MY_PORT" \
  --socket="$MYD/mysqld.sock" --pid-file="$MYD/mysqld.pid" --skip-name-resolve --max-connections=300 \
  --innodb-flush-log-at-trx-commit=1 --innodb-buffer-pool-size=128M --log-error="$MYD/server.log" \
  2>>"$MYD/server.log" &
MY_PID=$!; PIDS+=($!)
wait_port "$PG_PORT" || { echo "bench-crossdb: PostgreSQL did not start:" >&2; tail -5 "$PGD/server.log" >&2; exit 1; }
wait_port "$MY_PORT" || { echo "bench-crossdb: MariaDB did not start:" >&2; tail -5 "$MYD/server.log" >&2; exit 1; }
for _ in $(seq 1 100); do "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.1; done
my_root() { mariadb --no-defaults -S "$MYD/mysqld.sock" -u root -N -B -e "$1"; }
pg_q() { psql -h 127.0.0.1 -p "$PG_PORT" -U txc -d postgres -X -A -t -q -c "$1"; }
MY_PASSWORD=bench-$RANDOM$RANDOM
my_root "CREATE DATABASE bench; CREATE USER 'txc'@'127.0.0.1' IDENTIFIED BY '$MY_PASSWORD';
         GRANT ALL ON bench.* TO 'txc'@'127.0.0.1';"
export TXC_PASSWORD_BANK_MY=$MY_PASSWORD  # PostgreSQL trusts loopback here: no password
PG_CI="host=127.0.0.1 port=$PG_PORT dbname=postgres user=txc"
MY_CI="host=127.0.0.1 port=$MY_PORT database=bench user=txc"
DBS=(--db "bank_pg=postgres:$PG_CI" --db "bank_my=mariadb:$MY_CI")

echo "## machine"
echo "- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $(pg_q 'SHOW server_version' | cut -d' ' -f1) (PostgreSQL), $(my_root 'SELECT VERSION()') (MariaDB); fsync on, synchronous_commit on, innodb_flush_log_at_trx_commit=1, no binlog"
echo "- data in $(df -h "$WORK" | awk 'NR==2 {print $1}'); ${ACCOUNTS} accounts per database, ${SECS} s per run"

"$BIN/txbench" setup-db "${DBS[@]}" --accounts "$ACCOUNTS" --balance 1000 >"$WORK/setup.log" 2>&1 ||
  { echo "bench-crossdb: txbench setup-db failed:" >&2; cat "$WORK/setup.log" >&2; exit 1; }

# ------------------------------------------------------------- counters
# CPU (user+sys, microseconds) of the database servers: the postmaster with
# its backends (children that ended are in its cutime/cstime) and mariadbd.
db_cpu_us() {
  python3 - "$PG_PID" "$MY_PID" <<'PY'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
pg, my = int(sys.argv[1]), int(sys.argv[2])
pids = {pg, my}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            if int(f[1]) == pg: pids.add(int(d))
        except OSError:
            pass
total = 0
for p in pids:
    try:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in f[11:15]) if p == pg else sum(int(x) for x in f[11:13])
    except OSError:
        pass
print(total * 1000000 // tck)
PY
}
pg_fsyncs() { pg_q "SELECT wal_sync FROM pg_stat_wal"; }
my_fsyncs() { my_root "SHOW GLOBAL STATUS LIKE 'Innodb_data_fsyncs'" | cut -f2; }
log_groups() { # the coordinators' log group commits (one fsync each), summed over the replicas
  local t=0 i v
  for i in 1 2 3; do
    v=$(curl -s --max-time 2 "http://127.0.0.1:${GM[$i]}/metrics" | awk '/^txcoord_log_groups_written_total/ {print int($2)}' || true)
    t=$((t + ${v:-0}))
  done
  echo $t
}

# run NAME ARGS...: txbench transfer --json into $WORK/NAME.json, plus the
# database counters over the run in $WORK/NAME.counters.
run() {
  local name=$1; shift
  local c0 p0 m0 g0 c1 p1 m1 g1
  c0=$(db_cpu_us); p0=$(pg_fsyncs); m0=$(my_fsyncs); g0=$( [ "$name" != "${name#txcoord}" ] && log_groups || echo 0)
  timeout $((SECS + 120)) "$BIN/txbench" transfer "$@" --accounts "$ACCOUNTS" --duration "${SECS}s" --json \
    >"$WORK/$name.json" 2>"$WORK/$name.err" || true
  c1=$(db_cpu_us); p1=$(pg_fsyncs); m1=$(my_fsyncs); g1=$( [ "$name" != "${name#txcoord}" ] && log_groups || echo 0)
  echo "{\"db_cpu_us\":$((c1 - c0)),\"pg_fsyncs\":$((p1 - p0)),\"my_fsyncs\":$((m1 - m0)),\"log_groups\":$((g1 - g0))}" \
    >"$WORK/$name.counters"
}

# ------------------------------------------------------- txcoord runs
GMETRICS=1
start_group "$WORK/group"
leader_of_group >/dev/null || { echo "bench-crossdb: the txcoord group elected no leader in 10 s" >&2; exit 1; }
group_caught_up || { echo "bench-crossdb: the txcoord replicas did not catch up in 20 s" >&2; exit 1; }
AP=$(free_port); BP=$(free_port)
"$BIN/txagent" --listen 127.0.0.1:$AP --data "$WORK/agent-pg" --coordinator "$GLIST" \
  --resource "bank_pg=postgres:$PG_CI" --log-level warn 2>"$WORK/agent-pg.log" & AGENT_PG=$!; PIDS+=($!)
"$BIN/txagent" --listen 127.0.0.1:$BP --data "$WORK/agent-my" --coordinator "$GLIST" \
  --resource "bank_my=mariadb:$MY_CI" --log-level warn 2>"$WORK/agent-my.log" & AGENT_MY=$!; PIDS+=($!)
wait_port $AP || { echo "bench-crossdb: the PostgreSQL agent did not start:" >&2; tail -5 "$WORK/agent-pg.log" >&2; exit 1; }
wait_port $BP || { echo "bench-crossdb: the MariaDB agent did not start:" >&2; tail -5 "$WORK/agent-my.log" >&2; exit 1; }
SERVERS="${GPID[1]},${GPID[2]},${GPID[3]},$AGENT_PG,$AGENT_MY"
AGENTS=(--coordinator "$GLIST" --agent bank_pg=127.0.0.1:$AP --agent bank_my=127.0.0.1:$BP --no-setup --mode oneshot)
for c in $CONCS; do run "txcoord-c$c" "${AGENTS[@]}" --concurrency $c --server-pids "$SERVERS"; done

# fsync/fdatasync calls of the replicas and the agents, per committed
# transaction, at concurrency 1 (strace slows them: only the counts matter).
if command -v strace >/dev/null 2>&1; then
  STRACES=()
  for p in "${GPID[1]}" "${GPID[2]}" "${GPID[3]}" "$AGENT_PG" "$AGENT_MY"; do
    strace -f -c -e trace=fsync,fdatasync -o "$WORK/strace.$p" -p "$p" 2>/dev/null & STRACES+=($!); PIDS+=($!)
  done
  sleep 1
  SECS_SAVED=$SECS; SECS=5
  run strace-txcoord-c1 "${AGENTS[@]}" --concurrency 1
  SECS=$SECS_SAVED
  for p in "${STRACES[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${STRACES[@]}"; do wait "$p" 2>/dev/null || true; forget "$p"; done
  for who in "${GPID[1]}:replica" "${GPID[2]}:replica" "${GPID[3]}:replica" "$AGENT_PG:agent-pg" "$AGENT_MY:agent-my"; do
    p=${who%%:*}
    n=$(awk '$NF == "fsync" || $NF == "fdatasync" {s += $4} END {print s + 0}' "$WORK/strace.$p" 2>/dev/null || echo 0)
    echo "${who#*:} $n" >>"$WORK/strace.counts"
  done

fi
# Prepared branches the agents have not finished yet, right after the load
# and once they had 10 s more (with the agents still up).
prepared_now() { echo "$(pg_q 'SELECT COUNT(*) FROM pg_prepared_xacts') $(my_root 'XA RECOVER' | wc -l)"; }
read -r PREP_PG0 PREP_MY0 < <(prepared_now)
sleep 10
read -r PREP_PG1 PREP_MY1 < <(prepared_now)
echo "$PREP_PG0 $PREP_MY0 $PREP_PG1 $PREP_MY1" >"$WORK/prepared-after-txcoord"
stop_pids "$AGENT_PG" "$AGENT_MY"
stop_group

# -------------------------------------------------------- direct runs
for c in $CONCS; do run "direct-c$c" --direct "${DBS[@]}" --concurrency $c; done

# --------------------------------------------------------------- report
echo
echo "## cross-database transfer: txcoord (3 replicas, 2 agents) vs direct 2PC, ${SECS} s each"
echo
CONCS=$CONCS python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
rows = {}
print("| mode | concurrency | committed/s | aborted/s | errors | p50 ms | p99 ms | txcoord CPU/txn | DB CPU/txn | PG fsyncs/txn | MariaDB fsyncs/txn | log groups/txn |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in ("txcoord", "direct"):
    for c in sorted(int(x) for x in __import__("os").environ.get("CONCS", "1 16 32").split()):
        name = f"{mode}-c{c}"
        try:
            r = json.load(open(f"{w}/{name}.json")); k = json.load(open(f"{w}/{name}.counters"))
        except Exception as ex:
            err = open(f"{w}/{name}.err").read()[:200].replace("\n", " ") if __import__("os").path.exists(f"{w}/{name}.err") else ""
            print(f"| {mode} | {c} | failed: {ex} {err} | | | | | | | | | |")
            continue
        rows[name] = r
        n = max(r["committed"], 1)
        tx = f"{r['cpu_us_per_txn']:.0f} us" if "cpu_us_per_txn" in r else "n/a"
        log = f"{k['log_groups'] / n:.2f}" if mode == "txcoord" else "n/a"
        print(f"| {mode} | {c} | {r['committed_per_s']:.0f} | {r['aborted_per_s']:.1f} | {r['errors']} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {tx} | {k['db_cpu_us'] / n:.0f} us | {k['pg_fsyncs'] / n:.2f} | "
              f"{k['my_fsyncs'] / n:.2f} | {log} |")
print()
for name, r in rows.items():
    extra = []
    if r.get("aborted_by"): extra.append("aborted by " + ", ".join(f"{a}={b}" for a, b in r["aborted_by"].items()))
    if "money_ok" in r: extra.append(f"money before={r.get('money_before')} after={r.get('money_after')} leftover_prepared={r.get('leftover_prepared')} ok={r['money_ok']}")
    if extra: print(f"- {name}: " + "; ".join(extra))
print()
def ratio(a, b, key):
    try: return rows[a][key] / rows[b][key]
    except Exception: return None
p = ratio("txcoord-c1", "direct-c1", "p50_ms")
t = ratio("txcoord-c32", "direct-c32", "committed_per_s")
print(f"- p50 txcoord/direct at concurrency 1: " + (f"{p:.2f}x (goal: at most 1.3x) -> {'met' if p <= 1.3 else 'MISSED'}" if p else "n/a"))
print(f"- throughput txcoord/direct at concurrency 32: " + (f"{t:.2f}x (goal: at least 0.8x) -> {'met' if t >= 0.8 else 'MISSED'}" if t else "n/a"))
try:
    a, b, c, d = open(f"{w}/prepared-after-txcoord").read().split()
    print(f"- prepared transactions still in the databases after the txcoord runs: PostgreSQL {a}, MariaDB {b}; "
          f"10 s later: PostgreSQL {c}, MariaDB {d}")
except Exception as ex:
    print(f"- (no count of prepared transactions: {ex})")
try:
    r = json.load(open(f"{w}/strace-txcoord-c1.json")); k = json.load(open(f"{w}/strace-txcoord-c1.counters"))
    n = max(r["committed"], 1)
    counts = {}
    for line in open(f"{w}/strace.counts"):
        who, c = line.split(); counts[who] = counts.get(who, 0) + int(c)
    print(f"\nfsync+fdatasync calls per committed transaction, txcoord at concurrency 1 under strace "
          f"({r['committed']} transactions): " + ", ".join(f"{a} {b / n:.2f}" for a, b in counts.items()) +
          f"; PostgreSQL WAL syncs {k['pg_fsyncs'] / n:.2f}, MariaDB fsyncs {k['my_fsyncs'] / n:.2f}")
except Exception as ex:
    print(f"\n(no strace counts: {ex})")
PY
echo
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# What txbench said besides the JSON (first error, first abort by reason), to stderr.
for f in "$WORK"/*.err; do
  [ -s "$f" ] && { echo "--- $(basename "$f" .err):"; head -c 2000 "$f"; } >&2
done
true
