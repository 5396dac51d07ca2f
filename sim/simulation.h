// txsim's entry points: run one seed of the whole system (coordinator, agents,
// resources, clients) in the simulated shell, with faults, and check the
// invariants. See docs/testing.md.
//
// Thread-compatible: RunSeed shares nothing between calls, so seeds may run
// on different threads; one seed's output never depends on another's.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace txc::sim {

enum class FaultLevel { kNone, kLight, kHeavy };
std::optional<FaultLevel> ParseFaultLevel(const std::string& s);
const char* FaultLevelName(FaultLevel f);

// Deliberate bugs, switched on in the simulated shells (never in the cores),
// to prove that the checkers bite.
struct BugInfo {
  const char* name;
  const char* what;
  bool group = false;  // a bug of the replicated coordinator: needs --replicas 3 or 5
  bool three_pc = false;  // a bug of three-phase commit: runs with protocol 3pc
};
const std::vector<BugInfo>& Bugs();
bool KnownBug(const std::string& name);

struct SimOptions {
  uint64_t seed = 1;
  FaultLevel faults = FaultLevel::kHeavy;
  // The commit protocol clients ask for: "2pc" or "3pc" (a 3PC bug,
  // BugInfo::three_pc, runs with "3pc" whatever this says).
  std::string protocol = "2pc";
  // Transactions the clients attempt in this seed. Default: 120.
  int txns = 120;
  std::string bug;  // "" or a name from Bugs()
  // Coordinator replicas: 1 (a single coordinator with its local decision
  // log, as coordinator/local_log.cc), or 3 or 5 (the Multi-Paxos group, as
  // coordinator/paxos_log.cc; see docs/testing.md, "group mode"). A bug of
  // the group (BugInfo::group) runs with 3 when this is 1.
  int replicas = 1;
  // "transfers": every branch gets one Execute call (interactive) or its work
  // with PREPARE (one-shot). "split-execute": an interactive transfer debits
  // in two Execute calls on the same branch, first and last (see
  // docs/testing.md, known weaknesses).
  std::string workload = "transfers";
  // A scripted run instead of random faults (docs/testing.md):
  //   "3pc-partition": no random faults, 3PC; at the first PRE_COMMIT the
  //   leader sends to an agent while another agent takes part, that agent is
  //   cut off from every node (coordinators, agents, clients) for 15 s.
  std::string scenario;
  // Agents run 3PC's autonomous termination (AgentOptions::
  // autonomous_termination_timeout, 2 s here). Off by default.
  bool autonomous_termination = false;
  // Every event as a line, to this stream (nullptr: none).
  std::ostream* trace = nullptr;
  // Keep a hash of the formatted trace (SimResult::trace_hash) even without a stream.
  bool hash_trace = false;
  // Where violations are reported (nullptr: nowhere; they are still counted).
  std::ostream* report = nullptr;
};

// The fault classes of the FAULTS line, in its order. Adding a class is one
// line here (a counter in FaultCounts, summed over seeds and printed, follows);
// the shell that injects the fault counts it. docs/testing.md, "The FAULTS
// line", says what each counts.
#define TXC_SIM_FAULT_CLASSES(X) \
  X(crash)                       \
  X(power)                       \
  X(partition)                   \
  X(loss)                        \
  X(disk_error)                  \
  X(disk_full)                   \
  X(empty_disk)                  \
  X(snapshot_install)            \
  X(retention)                   \
  X(slow_statement)              \
  X(disk_stall)                  \
  X(resolve)

// What one seed (or a sum of seeds) actually injected, or saw happen, by class.
struct FaultCounts {
#define TXC_SIM_FAULT_FIELD(name) uint64_t name = 0;
  TXC_SIM_FAULT_CLASSES(TXC_SIM_FAULT_FIELD)
#undef TXC_SIM_FAULT_FIELD

  // Of disk_error and disk_full, how many were on agents' disks (the rest on
  // coordinator logs). Not in the line; txsim --stats prints them.
  uint64_t agent_disk_error = 0;
  uint64_t agent_disk_full = 0;

  FaultCounts& operator+=(const FaultCounts& o);
  // "FAULTS crash=N power=N ...", every class in order, no newline.
  std::string Line() const;
};

struct SimResult {
  uint64_t seed = 0;
  int txns = 0;       // attempted by clients
  int committed = 0;  // clients were told COMMITTED
  int aborted = 0;    // clients were told ABORTED, or gave up before commit
  int unknown = 0;    // crashed clients, commit outcome never learnt
  int violations = 0;
  std::string first_violation;
  uint64_t trace_hash = 0;
  uint64_t events = 0;
  uint64_t messages = 0;
  int crashes = 0;  // server crashes, the final power loss included
  int64_t sim_micros = 0;
  FaultCounts faults;
};

SimResult RunSeed(const SimOptions& options);

// The command line that replays a seed, for reports.
std::string ReplayCommand(const SimOptions& options);

}  // namespace txc::sim
