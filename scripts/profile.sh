#!/usr/bin/env bash
# Profiles (not a test): 3 replicas and two SQLite agents under one-shot
# txbench transfers at concurrency 64; in the middle of the run, `perf record
# --call-graph dwarf` on the leader, one follower and one agent for PERF_SECS.
# Writes each process's folded stacks (root;...;leaf COUNT, the input of any
# flame-graph tool) to OUT, and prints per process its CPU per committed
# transaction (from /proc), the functions with the most samples of their own,
# and the project's functions with the most samples including their callees.
# This is how docs/benchmarks.md ("Profile-driven CPU work") was measured.
# Usage: [MODE=interactive] [PERF_SECS=N] scripts/profile.sh [BUILD_DIR] [SECONDS] [OUT_DIR]   (needs linux-perf)
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-20}
OUT=${3:-$(mktemp -d /tmp/txc-profile.XXXXXX)}
PERF_SECS=${PERF_SECS:-5}
MODE=${MODE:-oneshot}  # or interactive
BIN=$(cd "$BUILD/bin" && pwd)
command -v perf >/dev/null || { echo "profile.sh: perf (linux-perf) is not installed" >&2; exit 2; }
mkdir -p "$OUT"
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
work_dir profile-run

start_group "$WORK/group"
leader_of_group >/dev/null
start_agents "$WORK" "$GLIST"
servers=("${GPID[1]}" "${GPID[2]}" "${GPID[3]}" "$APID" "$BPID")
"$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 10000 --concurrency 64 \
  --duration 3s --mode oneshot >/dev/null 2>&1 || true  # warm-up: creates the accounts
ticks() { proc_ticks "${servers[@]}"; }
mapfile -t before < <(ticks)
"$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 10000 --concurrency 64 \
  --duration "${SECS}s" --mode "$MODE" --json >"$OUT/txbench.json" 2>"$WORK/bench.log" & TB=$!; PIDS+=($!)
sleep $((SECS / 3))
L=$(leader_of_group)
F=$((L % 3 + 1))
declare -A WHO=([leader]="${GPID[$L]}" [follower]="${GPID[$F]}" [agent]="$APID")
for who in leader follower agent; do
  perf record -F 299 --call-graph dwarf,16384 -o "$WORK/$who.data" -p "${WHO[$who]}" -- sleep "$PERF_SECS" \
    >/dev/null 2>&1 &
done
wait "$TB" || true
forget "$TB"
mapfile -t after < <(ticks)
sleep 1  # the perf records ended with their sleeps
committed=$(json "$OUT/txbench.json" committed)
echo "## profile: 3 replicas, two agents, $MODE c64, ${SECS} s ($(json "$OUT/txbench.json" "round(committed_per_s)") committed/s)"
names=(replica1 replica2 replica3 agent_a agent_b)
echo
echo "CPU per committed transaction (us, user+sys from /proc; replica $L leads):"
for i in "${!servers[@]}"; do
  awk -v n="${names[$i]}" -v d=$((after[i] - before[i])) -v c="$committed" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "- %s: %.0f\n", n, d / hz * 1e6 / (c > 0 ? c : 1) }'
done
for who in leader follower agent; do
  perf script -i "$WORK/$who.data" 2>/dev/null | python3 -c '
import collections, re, sys
stacks = collections.Counter(); cur = []
def short(s):
    s = s.rsplit(" (", 1)[0]
    s = re.sub(r"\(.*", "", s); s = re.sub(r"<.*>", "<>", s)
    return re.sub(r"\+0x[0-9a-f]+$", "", s.strip()).strip()
for line in sys.stdin:
    if not line.strip():
        if cur: stacks[";".join(reversed(cur))] += 1
        cur = []
    elif line[0] in " \t":
        parts = line.strip().split(" ", 1)
        if len(parts) == 2: cur.append(short(parts[1]))
if cur: stacks[";".join(reversed(cur))] += 1
for k, v in stacks.items(): print(k, v)' >"$OUT/$who.folded"
  python3 - "$OUT/$who.folded" "$who" <<'PY'
import collections, sys
own = collections.Counter(); incl = collections.Counter(); total = 0
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1); n = int(n); frames = stack.split(";"); total += n
    own[frames[-1]] += n
    for f in set(frames):
        if f.startswith("txc::"): incl[f] += n
print(f"\n### {sys.argv[2]}: {total} samples")
print("own samples:")
for f, n in own.most_common(12): print(f"  {100 * n / max(total, 1):5.1f}%  {f[:110]}")
print("txcoord functions, callees included:")
for f, n in incl.most_common(15): print(f"  {100 * n / max(total, 1):5.1f}%  {f[:110]}")
PY
done
echo
echo "folded stacks: $OUT/{leader,follower,agent}.folded"
