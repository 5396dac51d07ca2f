#!/usr/bin/env bash
# Memory under 10,000 transactions in flight (not a test): 3 replicas and two
# SQLite agents, a 3 s one-shot warm-up (creates the accounts), then
# `txbench transfer --mode interactive --concurrency 10000 --client async
# --accounts 100000` for SECONDS; prints txbench's summary (RSS now/peak of
# every server, from --server-pids) and each server's RSS at the end in MB:
# replicas 1-3, then agents a and b. Every process is stopped by pid.
# Usage: scripts/inflight-memory.sh [SECONDS] (default 20)
#   BIN: the binaries (default build/bin); GEXTRA: more txcoord flags, e.g.
#   GEXTRA="--snapshot-every 20000". See docs/benchmarks.md.
set -euo pipefail
SECS=${1:-20}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(cd "${BIN:-$HERE/../build/bin}" && pwd)
PIDS=()
WORK=$(mktemp -d /tmp/txc-inflight.XXXXXX)
# shellcheck source=bench-lib.sh
source "$HERE/bench-lib.sh"
trap 'for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
start_group "$WORK/group"
leader_of_group >/dev/null || { echo "inflight-memory.sh: no leader" >&2; exit 1; }
start_agents "$WORK" "$GLIST"
servers="${GPID[1]},${GPID[2]},${GPID[3]},$APID,$BPID"
"$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 100000 --concurrency 64 \
  --duration 3s --mode oneshot >/dev/null 2>&1 || true
"$BIN/txbench" transfer --coordinator "$GLIST" "${AGENTS[@]}" --accounts 100000 --concurrency 10000 \
  --client async --duration "${SECS}s" --mode interactive --server-pids "$servers" 2>&1 | tail -6
rss=""
for p in "${GPID[1]}" "${GPID[2]}" "${GPID[3]}" "$APID" "$BPID"; do
  rss="$rss $(( $(awk '/VmRSS/{print $2}' "/proc/$p/status") / 1024 ))"
done
echo "RSS at the end (MB, replicas 1-3, agents a, b):$rss"
