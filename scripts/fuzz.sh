#!/usr/bin/env bash
# make fuzz: builds tests/fuzz's libFuzzer targets with clang under ASan +
# UBSan in their own build directory and runs each on its corpus for
# FUZZ_SECONDS (docs/testing.md, "Fuzzing").
#   - Each target starts from the committed seeds (tests/fuzz/corpus/TARGET,
#     read only) and its working corpus (FUZZ_BUILD/corpus/TARGET). New inputs
#     are kept there, merged (-merge=1) so it holds only inputs that add
#     coverage; it grows from run to run, outside the repository (copy
#     entries worth keeping into tests/fuzz/corpus by hand).
#   - A crash, leak, timeout or out-of-memory input is written to
#     tests/fuzz/crashes/TARGET/ (kept: the replay test runs it from then on)
#     and makes this script fail.
# Environment: FUZZ_SECONDS (default 60), FUZZ_TARGETS (default: all),
# FUZZ_BUILD (default build-fuzz), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${FUZZ_SECONDS:-60}
BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${JOBS:-2}
TARGETS=${FUZZ_TARGETS:-"rpc_frame messages coord_log participant_wal paxos_peer"}

# clang and its libFuzzer/sanitizer runtime (Debian 12: clang 14), as
# scripts/install-deps.sh installs the rest: idempotent, quiet when present.
bash scripts/install-deps.sh
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "fuzz: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -O1 with assertions on (no NDEBUG): a broken assert is a finding too.
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DTXC_SANITIZE=address,undefined -DTXC_FUZZ=ON
fi
cmake --build "$BUILD" -j "$JOBS" --target fuzzers

# UBSan stops at its first report, so libFuzzer keeps the input as a crash.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
summary="$BUILD/fuzz-summary.txt"
: > "$summary"
failed=()
for t in $TARGETS; do
  seeds_dir="$ROOT/tests/fuzz/corpus/$t"
  corpus="$ROOT/$BUILD/corpus/$t"
  crashes="$ROOT/tests/fuzz/crashes/$t"
  work="$ROOT/$BUILD/fuzz-work/$t"
  mkdir -p "$seeds_dir" "$corpus" "$crashes" "$work"
  before=$(ls "$crashes" | wc -l)
  seeds=$(ls "$seeds_dir" | wc -l)
  kept=$(ls "$corpus" | wc -l)
  echo "fuzz: $t for ${SECS}s on $seeds seeds + $kept kept inputs (log: $work/fuzz.log)"
  # New inputs go to the working corpus (the first directory); the seeds are only read.
  status=0
  (cd "$work" && "$ROOT/$BUILD/bin/${t}_fuzz" -max_total_time="$SECS" -timeout=25 \
     -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
     -artifact_prefix="$crashes/" "$corpus" "$seeds_dir") > "$work/fuzz.log" 2>&1 || status=$?
  after=$(ls "$crashes" | wc -l)
  # Keep what adds coverage: merge the working corpus and the seeds into a fresh one.
  rm -rf "$work/merged" && mkdir -p "$work/merged"
  (cd "$work" && "$ROOT/$BUILD/bin/${t}_fuzz" -merge=1 -timeout=25 -max_len=65536 merged "$corpus" "$seeds_dir") \
     > "$work/merge.log" 2>&1 || true
  if [ "$(ls "$work/merged" | wc -l)" -gt 0 ]; then
    rm -rf "$corpus" && mv "$work/merged" "$corpus"
  fi
  line=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$work/fuzz.log" | tail -1 || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$work/fuzz.log" | awk '{print $2}' || true)
  cov=$(echo "$line" | grep -oE 'cov: [0-9]+' | awk '{print $2}')
  ft=$(echo "$line" | grep -oE 'ft: [0-9]+' | awk '{print $2}')
  printf '%-16s execs=%-10s cov=%-6s ft=%-6s seeds=%s corpus=%s->%s crashes_new=%s exit=%s\n' \
    "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "$kept" "$(ls "$corpus" | wc -l)" \
    "$((after - before))" "$status" | tee -a "$summary"
  if [ "$status" -ne 0 ] || [ "$after" -ne "$before" ]; then
    failed+=("$t")
    grep -E 'ERROR|SUMMARY|fuzz check failed|Test unit written' "$work/fuzz.log" | head -5 || true
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}: inputs kept in tests/fuzz/crashes/ (logs in $BUILD/fuzz-work/)"
  exit 1
fi
echo "fuzz: no crash (summary: $summary)"
