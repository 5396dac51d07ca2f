#!/usr/bin/env bash
# The leader's memory while a follower is stopped (not a test): 3 replicas and
# two SQLite agents under one-shot txbench transfers at concurrency 64; after
# 3 s one follower gets SIGSTOP (alive, its connections open, reading
# nothing). Prints the leader's RSS in MB every 3 s, the committed rate, how
# often the leader dropped a connection to a server that was not reading
# (ChannelOptions::max_queued_bytes), and, after SIGCONT, whether the
# follower caught up again. Every process is stopped by pid.
# Usage: scripts/stalled-follower.sh [BUILD_DIR] [SECONDS] (default build, 90)
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-90}
BIN=$(cd "$BUILD/bin" && pwd)
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
work_dir stalled

start_group "$WORK/group"
L=$(leader_of_group)
start_agents "$WORK" "$GLIST"
F=$((L % 3 + 1))
"$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 10000 --concurrency 64 \
  --duration "${SECS}s" --mode oneshot --json >"$WORK/tb.json" 2>/dev/null & TB=$!; PIDS+=($TB)
sleep 3
kill -STOP "${GPID[$F]}"
echo -n "leader (replica $L) RSS MB every 3 s, replica $F stopped:"
for _ in $(seq 1 $(((SECS - 4) / 3))); do
  sleep 3
  echo -n " $(($(awk '/VmRSS/{print $2}' "/proc/${GPID[$L]}/status") / 1024))"
done
echo
wait "$TB" || true
forget "$TB"
kill -CONT "${GPID[$F]}"
echo "committed/s: $(json "$WORK/tb.json" 'round(committed_per_s)')"
echo "connections dropped (server not reading): $(grep -c 'the server is not reading' "$WORK/group/r$L.log" || true)"
if group_caught_up; then echo "after SIGCONT: replica $F caught up"; else echo "after SIGCONT: replica $F did NOT catch up in 20 s"; fi
