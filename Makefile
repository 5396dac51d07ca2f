# txcoord: every target installs what it needs (Debian 12), configures, builds and runs.
BUILD ?= build
TYPE ?= RelWithDebInfo
JOBS ?= 2
CMAKE_FLAGS ?=
LAUNCHER := $(shell command -v ccache >/dev/null 2>&1 && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

.PHONY: all deps configure build test demo demo-crossdb demo-outbox bench profile soak sanitize tsan clean fuzz fuzz-seed

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(TYPE) $(LAUNCHER) $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# The whole suite: unit, simulation and integration tests (real processes on loopback).
# The suite but the database tests runs quietly (a line a test in $(BUILD)/ctest.log; on a
# failure the failed tests run again with their output), then the database tests (label db:
# real PostgreSQL and MariaDB servers) run in the open, so the output ends with their lines.
test: build
	cd $(BUILD) && if ctest -Q -j $(JOBS) --timeout 300 -LE db --output-log ctest.log; then \
	  grep -E 'tests passed|Total Test time' ctest.log; \
	else \
	  grep -E '\*\*\*|Failed|Timeout' ctest.log; ctest --rerun-failed --output-on-failure --timeout 300; exit 1; \
	fi
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300 -L db

# The bank-transfer demo: a coordinator and two agents on loopback, an agent killed mid-run.
demo: build
	$(BUILD)/bin/bank_transfer --bin $(BUILD)/bin

# The cross-database demo: each order one transaction over PostgreSQL, MariaDB and
# SQLite (throwaway servers as nobody on loopback), the database agents killed mid-run.
# Builds only what it runs (not the test suite).
demo-crossdb: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target txcoord txagent crossdb_demo
	$(BUILD)/bin/crossdb_demo --bin $(BUILD)/bin

# The transactional outbox: each order one transaction over an SQLite shop and a
# queue resource (outbox=queue:...), consumers dequeue and ship atomically, the
# outbox's agent killed mid-run. Builds only what it runs.
demo-outbox: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target txcoord txagent order_outbox
	$(BUILD)/bin/order_outbox --bin $(BUILD)/bin

# Benchmarks (not part of the test suite); results go to docs/benchmarks.md by hand.
# bench-paxos.sh: the replicated log against etcd, failover, 1 vs 3 replicas.
# bench-3pc.sh: 2PC vs 3PC end to end against 3 replicas.
# bench-tls.sh: mutual TLS vs plaintext (and the plaintext decision confirmation), 3 replicas.
# bench-crossdb.sh: PostgreSQL + MariaDB transfers, txcoord vs a direct 2PC
# client (throwaway servers run as nobody: needs root).
bench: build
	bash scripts/bench.sh $(BUILD)
	bash scripts/bench-paxos.sh $(BUILD)
	bash scripts/bench-3pc.sh $(BUILD)
	bash scripts/bench-tls.sh $(BUILD)
	bash scripts/bench-crossdb.sh $(BUILD)

# Long simulation soak: 10,000 heavy-fault seeds.
# perf profiles of the leader, a follower and an agent at concurrency 64 (not a test; linux-perf).
profile: build
	bash scripts/profile.sh $(BUILD)

soak: build
	$(BUILD)/bin/txsim --seeds 1..10000 --faults heavy

# The suite under AddressSanitizer + UndefinedBehaviorSanitizer, and under ThreadSanitizer.
# UBSan only prints a finding and carries on by default, so a test (or a txcoord
# or txagent it starts) that hits undefined behaviour would still pass: halt instead.
sanitize:
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(MAKE) test BUILD=build-asan TYPE=Debug CMAKE_FLAGS="-DTXC_SANITIZE=address,undefined"
# TSan carries on after a report (a test binary then exits 66 and fails, but a
# txcoord or txagent a test started only writes to its own log): every process
# writes its reports under build-tsan/tsan-reports, and any report fails the target.
tsan:
	rm -rf build-tsan/tsan-reports && mkdir -p build-tsan/tsan-reports
	TSAN_OPTIONS=log_path=$(CURDIR)/build-tsan/tsan-reports/tsan $(MAKE) test BUILD=build-tsan TYPE=Debug CMAKE_FLAGS="-DTXC_SANITIZE=thread"
	@if [ -n "$$(ls build-tsan/tsan-reports)" ]; then \
	  echo "ThreadSanitizer reports (one file per reporting process):"; ls build-tsan/tsan-reports; exit 1; fi

# libFuzzer over every decoder of untrusted bytes (tests/fuzz, docs/testing.md,
# "Fuzzing"): a clang build of its own (build-fuzz/, ASan + UBSan), each target
# FUZZ_SECONDS on its corpus; a crash is kept in tests/fuzz/crashes/ and fails.
# Not part of `make test`, which replays the committed corpus (replay_test).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) bash scripts/fuzz.sh
# Re-captures the seed corpus from a real run (tests/fuzz/capture_test.cc).
fuzz-seed: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target capture_test txcoord txagent
	TXC_FUZZ_CAPTURE_DIR=$(CURDIR)/tests/fuzz/corpus $(BUILD)/bin/capture_test

clean:
	rm -rf $(BUILD)
