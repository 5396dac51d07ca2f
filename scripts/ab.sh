#!/usr/bin/env bash
# A/B of two builds' CPU per transaction, run side by side (not a test).
#
# On this shared 2-core VM one whole-cluster run moves by 15-30% from the
# next, so alternating runs of A and B cannot resolve a 5% change. Here each
# round starts both clusters at the same moment (3 replicas and two SQLite
# agents each, every process on loopback), loads both with the same txbench
# transfer, and reads each cluster's server CPU from /proc: whatever the host
# does to the machine during the round, it does to both. Run A against itself
# to see the instrument's own spread (2026-12-05: within 4%).
#
# Usage: scripts/ab.sh BIN_DIR_A BIN_DIR_B [ROUNDS] [SECONDS] [CONCURRENCY] [MODE]
#   defaults: 5 rounds of 10 s, concurrency 32 per cluster, oneshot
#   A_GEXTRA / B_GEXTRA: more txcoord flags for that side's replicas (one build
#   against itself with a flag on one side: scripts/ab.sh build/bin build/bin
#   with B_GEXTRA="--snapshot-every 20000").
# Prints per round each side's committed/s, p50 and us of server CPU per
# committed transaction (replicas + agents; the leader first), and B/A; at the
# end the median of B/A. Every process is stopped by pid, also on Ctrl-C.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,16p "$0" >&2; exit 2; }
A=$(cd "$1" && pwd); B=$(cd "$2" && pwd)
ROUNDS=${3:-5}; SECS=${4:-10}; CONC=${5:-32}; MODE=${6:-oneshot}
for b in "$A" "$B"; do
  for exe in txcoord txagent txbench txadmin; do
    [ -x "$b/$exe" ] || { echo "ab.sh: $b/$exe is missing" >&2; exit 2; }
  done
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d /tmp/txc-ab.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# One cluster under load: prints
# "committed_per_s p50_ms cpu_us_per_txn leader_us follower_us follower_us agent_us agent_us".
side() { # bin_dir out_dir replica_flags (called with &: it runs in a subshell of its own)
  BIN=$1; PIDS=(); GEXTRA=$3
  # Its processes go when it ends or when the main script sends TERM (a
  # background subshell ignores the terminal's SIGINT, and so does txbench).
  trap 'for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
        pkill -TERM -P "$BASHPID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
  trap 'exit 143' TERM
  # shellcheck source=bench-lib.sh
  source "$HERE/bench-lib.sh"
  start_group "$2/group"
  L=$(leader_of_group) || { echo "no leader" >&2; exit 1; }
  start_agents "$2" "$GLIST"
  order=("${GPID[$L]}")
  for i in 1 2 3; do [ "$i" = "$L" ] || order+=("${GPID[$i]}"); done
  order+=("$APID" "$BPID")
  load() { # duration [txbench flags...]: in the background, so TERM stops it too
    "$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 10000 --concurrency "$CONC" \
      --duration "$1" --mode "$MODE" --quiet "${@:2}" & local tb=$!; PIDS+=($tb)
    wait $tb || true
  }
  load 3s >/dev/null 2>&1  # creates the accounts
  ticks() { proc_ticks "${order[@]}" | paste -sd' '; }
  before=$(ticks)
  load "${SECS}s" --json >"$2/r.json" 2>"$2/bench.log"
  after=$(ticks)
  python3 - "$2/r.json" "$before" "$after" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1])); hz = os.sysconf("SC_CLK_TCK"); n = max(r["committed"], 1)
per = [(int(b) - int(a)) / hz * 1e6 / n for a, b in zip(sys.argv[2].split(), sys.argv[3].split())]
print("%.0f %.3f %.0f %s" % (r["committed_per_s"], r["p50_ms"], sum(per), " ".join("%.0f" % x for x in per)))
PY
}

pa=""; pb=""
trap 'kill -TERM $pa $pb 2>/dev/null; wait 2>/dev/null; exit 130' INT TERM
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  mkdir -p "$WORK/a$round" "$WORK/b$round"
  side "$A" "$WORK/a$round" "${A_GEXTRA:-}" >"$WORK/a$round.out" 2>"$WORK/a$round.err" & pa=$!
  side "$B" "$WORK/b$round" "${B_GEXTRA:-}" >"$WORK/b$round.out" 2>"$WORK/b$round.err" & pb=$!
  wait $pa || true; wait $pb || true
  read -r ta pa50 ca rest_a <"$WORK/a$round.out" || { echo "round $round: A failed: $(tail -2 "$WORK/a$round.err")"; continue; }
  read -r tb pb50 cb rest_b <"$WORK/b$round.out" || { echo "round $round: B failed: $(tail -2 "$WORK/b$round.err")"; continue; }
  ratio=$(awk -v a="$ca" -v b="$cb" 'BEGIN{printf "%.3f", b / a}')
  ratios+=("$ratio")
  echo "round $round: A ${ta}/s p50 ${pa50} ms ${ca} us/txn [${rest_a}] | B ${tb}/s p50 ${pb50} ms ${cb} us/txn [${rest_b}] | B/A ${ratio}"
done
[ ${#ratios[@]} -gt 0 ] || { echo "ab.sh: no round completed" >&2; exit 1; }
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR] = $1} END {
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "B/A CPU per transaction: median %.3f over %d rounds (min %.3f, max %.3f)\n", m, NR, v[1], v[NR]}'
