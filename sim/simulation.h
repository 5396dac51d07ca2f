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
  //   "abort-after-prepared": no random faults, 2PC, interactive transfers
  //   over three resources whose clients vanish once Commit is sent; the
  //   first PREPARE to an agent holding two of a transaction's branches
  //   stalls on its disk for 3 s and the coordinator crashes before the
  //   next PREPARE leaves (Cluster::OnPrepareSent).
  std::string scenario;
  // Agents run 3PC's autonomous termination (AgentOptions::
  // autonomous_termination_timeout, 2 s here). Off by default.
  bool autonomous_termination = false;
  // Agents confirm every decision for a branch in doubt with the group before
  // applying it (AgentOptions::confirm_decisions), as a real txagent does
  // without TLS. Off by default: the default schedule (and the seeds that
  // catch the injected bugs) stays as it was; sim_test runs seeds with it on.
  bool confirm_decisions = false;
  // With confirm_decisions: agents register a key with their outcome queries
  // and apply decisions signed under it without asking (AgentOptions::
  // decision_key; the key comes from the seed, the agent and its boot, and
  // draws nothing from the seed's random stream). Default: true, as a real
  // txagent; false runs the confirmation of every decision.
  bool sign_decisions = true;
  // A forger sends agents decisions for their branches in doubt, every 5-50
  // ms of the load, each with a random MAC or none (it reaches their ports
  // but never sees their keys). Implies confirm_decisions; counted as
  // `forged` on the FAULTS line. Off by default.
  bool forge_decisions = false;
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
  X(resolve)                     \
  X(forged)

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

// ------------------------------------------------------------- txsim --measure
//
// What one committed transaction costs, and how long participants stay in
// doubt when the leader crashes: the production cores in the simulated shells,
// as RunSeed runs them, on a topology built by hand (the coordinator replicas,
// `participants` agents with one bank resource each, one client), with no
// random faults, every message exactly `one_way` on the wire and every disk
// sync taking no time. Transactions run one at a time. See sim/measure.cc and
// docs/protocols-measured.md.
struct MeasureOptions {
  std::string protocol = "2pc";  // "2pc" or "3pc"
  int participants = 2;
  int replicas = 1;  // 1, 3 or 5
  int txns = 20;     // measured transactions per mode (after one warm-up)
  uint64_t seed = 1;  // the group's election jitter draws from it
  int64_t one_way_micros = 1000;
  bool blocking = true;  // also run the crash-point table
  bool confirm_decisions = false;  // SimOptions::confirm_decisions
  bool sign_decisions = true;      // SimOptions::sign_decisions
  std::ostream* trace = nullptr;
};

// Per committed transaction, averaged over the measured ones.
struct MeasureCost {
  std::string mode;  // "one-shot" (Begin + Submit) or "interactive" (Begin, Execute each, Commit)
  int txns = 0;
  int committed = 0;
  // Network messages (requests and replies each one), by the kind of link.
  double client_coord = 0, coord_agents = 0, client_agents = 0, replicas = 0, agents_agents = 0;
  double total = 0;  // the five above
  // Paxos HEARTBEAT / HEARTBEAT_REPLY sent while the transaction ran: driven
  // by time, not by the transaction, so not in `replicas` nor `total`.
  double heartbeats = 0;
  // Disk syncs: every coordinator replica's (decision log / acceptor), every agent's.
  double coord_syncs = 0, agent_syncs = 0;
  // Sequential one-way message delays from the moment the client sends
  // Submit/Commit: until it hears COMMITTED, until the last participant's
  // COMMITTED record is durable. Mean, min and max over the transactions.
  double client_delays = 0, client_delays_min = 0, client_delays_max = 0;
  double all_delays = 0, all_delays_min = 0, all_delays_max = 0;
  // Before that: Begin, and in interactive mode the Execute calls.
  double before_commit_delays = 0;
};

// One leader crash at a crash point, in a fresh cluster.
struct MeasureBlocking {
  std::string point;
  bool crashed = false;     // the point was reached
  std::string outcome;      // what the participants did: "committed", "aborted", "mixed: ..."
  std::string client;       // what the client was told, and when (after the crash)
  int64_t longest_after_crash_micros = -1;  // max over participants of final - max(prepared, crash)
  int64_t longest_in_doubt_micros = -1;     // max over participants of final - prepared
  bool settled = true;      // every participant reached a final state within the bound
};

struct MeasureResult {
  std::vector<MeasureCost> costs;
  std::vector<MeasureBlocking> blocking;
  int violations = 0;  // the checker's, over every cluster this ran
  std::string first_violation;
};

MeasureResult Measure(const MeasureOptions& options);
// The markdown tables of a result, with the command that reproduces them.
std::string MeasureReport(const MeasureOptions& options, const MeasureResult& result);

}  // namespace txc::sim
