// NodeCore: the whole node logic of a coordinator replica, as one
// deterministic core that both the real node (coordinator/node.cc with its
// decision log) and the simulator (sim/coordinator_shell.cc) run. It owns the
// TxnTable, the CommitDriver and, in a group, the paxos::Replica, and the glue
// between them: chosen commands go to the table and then to the driver; the
// EPOCH marker of the epoch this replica leads makes it serve; a step-down or
// a new leader stops it serving with the leader as hint; the driver's
// proposals go to the replica (group) or to the shell's log (single replica).
//
// Two modes:
//   single replica (self_id 0 in the options): the shell owns the decision
//   log. It replays the durable log with Replay(), makes a new epoch durable
//   and calls Lead(epoch); a ProposeAction asks it to make a slot durable,
//   after which it calls OnChosen(index, commands).
//   group (self_id > 0): the core runs the paxos::Replica. The shell makes
//   PersistActions durable (then OnPersisted), delivers SendActions and peer
//   messages (OnPeerMessage), and stores InstallActions (a leader's snapshot).
//
// Every input returns one NodeEffects: timers to arm, then actions to carry
// out in order. The order is the order in which the node logic did things, so
// a shell that dies at a crash point (a NoteAction with `point`) stops right
// there, as a process would, and a simulated run stays deterministic.
//
// No sockets, files, clocks, threads or randomness inside (the replica's
// jitter comes from Options.paxos.seed).
//
// Not thread-safe; owned by the node's io thread (the World thread in txsim).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "common/txid.h"
#include "coordinator/commit_driver.h"
#include "coordinator/paxos/replica.h"
#include "coordinator/txn_table.h"
#include "txcoord_types.h"

namespace txc::coord {

// Group mode: the most commands one slot carries (about 100 KiB
// encoded); a turn that proposes more fills several slots. A batch whose
// encoding exceeds kMaxSlotBytes (large participant lists) is split in halves
// until each fits or holds one command, so a slot, and an ACCEPT of many
// slots, stays well under the RPC frame limit (16 MiB).
inline constexpr size_t kMaxCommandsPerSlot = 512;
inline constexpr size_t kMaxSlotBytes = size_t{1} << 20;

struct NodeCoreOptions {
  DriverOptions driver;
  // How often the driver's timers are checked. Default: 5 ms.
  Micros tick = 5 * kMillis;
  // Group mode: this replica's id (> 0), every member's id, the client
  // address of each member (the NOT_LEADER hint), the replica's options and
  // what its acceptor recovered from disk. 0: a single replica.
  int self_id = 0;
  std::vector<int> members;
  std::map<int, std::string> addresses;
  paxos::Options paxos;
  // How often the replica's timers are checked. Default: 5 ms.
  Micros paxos_tick = 5 * kMillis;
  paxos::DurableState recovered;
  // Applied commands between snapshots of the table (0: never); a slot
  // counts as at least one. At each, the core hands the image to the replica
  // (which may then forget the slots it covers) and a SnapshotAction asks the
  // shell to keep it. Default: 0.
  uint64_t snapshot_every = 0;
  // Describe each command applied while serving in a NoteAction (the shell
  // logs it at debug). The real node sets it only when its log shows debug
  // lines: the text costs a few percent of a busy leader. Default: true.
  bool describe_applied = true;
  // Testing seam (txsim's injected bugs live in its shell, never here): runs
  // on every chosen command before the core applies it, and may rewrite it.
  // Default: none.
  std::function<void(const TxnTable& table, proto::Command* cmd)> before_apply;
  // Testing seam, never set outside tests (txsim's dead-leader-heartbeats
  // bug): when the log fails as a whole, OnLogFailed leaves the
  // paxos::Replica running, as before the fix (the node stops serving, but a
  // leader keeps heartbeating and the healthy majority never elects anyone).
  // Default: false.
  bool testing_keep_replica_on_log_failure = false;
  // Testing seam, never set outside tests (txsim's persist-before-install
  // bug): HandleReplica hands the replica's persists to the shell before the
  // snapshot it installed in the same turn, as before the fix. Default: false.
  bool testing_persist_before_install = false;
};

// Make `cmds` durable as one slot. Single replica: as slot `index`, then call
// OnChosen(index, cmds). Group: already handed to the replica (index 0);
// nothing to do but note it. `refused`: this replica does not lead, or its
// log failed; the driver was told (a request for the group still waiting
// outside the core should fail).
struct ProposeAction {
  uint64_t index = 0;
  std::vector<proto::Command> cmds;
  std::string bytes;  // the encoded batch (the value of the slot)
  bool refused = false;
};

// Group: a chosen slot, about to be applied (a single replica's shell knows
// its slots already): for a record of what was applied where. `value` is
// empty for the replica's own gap-filling no-op.
struct AppliedAction {
  uint64_t index = 0;
  std::string value;
};

// Group: the leader's snapshot was installed (the table holds it now); keep
// it as this replica's own snapshot, so a restart starts from it.
struct InstallAction {
  uint64_t index = 0;
  std::string image;
};

// The table's image through slot `index` (`entries` transactions): keep it
// as this replica's snapshot; the log may drop the slots at or below it.
struct SnapshotAction {
  uint64_t index = 0;
  // One copy for the replica (catch-up) and the log write; never changed.
  std::shared_ptr<const std::string> image;
  size_t entries = 0;
};

// A chosen NOOP that carries `who` (txbench's Append records), at `index`.
struct AppendedAction {
  std::string who;
  uint64_t index = 0;
};

// Something the node did that its log (or the simulator's trace) shows.
// kWarn: an operator must look (e.g. the replica's disk failed). kError:
// something that must not happen (an unreadable chosen value, a snapshot that
// does not restore). `point`: a named crash point, right here.
struct NoteAction {
  enum Level { kInfo, kWarn, kError };
  Level level = kInfo;
  std::optional<TxId> txid;
  std::string text;  // empty: no log line, only the crash point
  const char* point = nullptr;
  // A leadership change or a recovery step (the real node logs it at info;
  // the rest, one line per chosen command, at debug).
  bool notable = false;
};

// A HeuristicHazard (commit_driver.h): an agent refused the group's decision
// (its branch was settled the other way); the shell logs and reports it.
using NodeAction = std::variant<ClientReply, ProposeAction, ParticipantCall, paxos::Persist,
                                paxos::Outgoing, AppliedAction, InstallAction, SnapshotAction,
                                AppendedAction, NoteAction, HeuristicHazard>;

struct NodeEffects {
  // Call Tick / TickReplica at these times (each replaces its timer).
  std::optional<Micros> wake_driver;
  std::optional<Micros> wake_replica;
  std::vector<NodeAction> actions;
  // The node stopped serving during this input (a step-down, a new leader, a
  // failed log): requests it holds outside the core get NOT_LEADER.
  bool stepped_down = false;
  // Call FlushProposals() once the inputs already queued have run.
  bool flush_proposals = false;
};

class NodeCore {
 public:
  // Group mode: the table starts from options.recovered's snapshot (see
  // startup_status()).
  explicit NodeCore(NodeCoreOptions options);
  ~NodeCore();
  // Not OK: the recovered snapshot does not restore; do not serve.
  const Status& startup_status() const { return startup_; }

  // ---- start-up
  // Single replica: the durable log, in order (a snapshot image first, if
  // any, through Install). Nothing leaves.
  Status Install(uint64_t index, const std::string& image);
  void Replay(uint64_t index, const std::vector<proto::Command>& cmds);
  // The timers. Call once, after the replay.
  NodeEffects Start(Micros now);
  // Single replica: `epoch` is durable as this run's epoch; propose its
  // marker and serve once that is applied.
  NodeEffects Lead(int64_t epoch, Micros now);

  // ---- the log
  // Single replica: the slot of a ProposeAction is durable.
  NodeEffects OnChosen(uint64_t index, const std::vector<proto::Command>& cmds, Micros now);
  // The log could not make these durable (a storage failure); with no
  // commands, the log failed as a whole: stop serving.
  NodeEffects OnLogFailed(const std::vector<proto::Command>& cmds, const Status& why, Micros now);
  // Group.
  NodeEffects OnPersisted(uint64_t token, Micros now);
  NodeEffects OnPeerMessage(const paxos::Message& m, Micros now);
  // The transport saw replica `peer`'s process go away (paxos::Replica::OnPeerGone).
  NodeEffects OnPeerGone(int peer, Micros now);
  NodeEffects TickReplica(Micros now);
  // txbench's Append: proposes `cmds` (NOOPs carrying `who`) as one slot;
  // each comes back as an AppendedAction once chosen, or in a refused
  // ProposeAction.
  NodeEffects ProposeCommands(std::vector<proto::Command> cmds, Micros now);
  // Group: after a proposal the core holds the proposals and the replica's
  // effects until this call: the commands proposed in one turn of the
  // shell's event loop go to the replica as one slot (at most
  // kMaxCommandsPerSlot each), so they share one ACCEPT, one log record and
  // one apply. A shell calls it when effects ask (flush_proposals), behind
  // the inputs already queued (the real node posts it to its io_context, the
  // simulator schedules it after the events due at the same instant).
  NodeEffects FlushProposals(Micros now);

  // ---- clients and agents
  NodeEffects OnBegin(uint64_t token, const proto::BeginRequest& req, Micros now);
  NodeEffects OnCommit(uint64_t token, const proto::CommitRequest& req, Micros now);
  NodeEffects OnSubmit(uint64_t token, const proto::SubmitRequest& req, Micros now);
  NodeEffects OnAbort(uint64_t token, const proto::AbortRequest& req, Micros now);
  NodeEffects OnOutcome(uint64_t token, const proto::OutcomeRequest& req, Micros now);
  NodeEffects OnResolve(uint64_t token, const proto::ResolveRequest& req, Micros now);
  NodeEffects OnForgetParticipant(uint64_t token, const proto::ForgetParticipantRequest& req,
                                  Micros now);
  NodeEffects OnVote(const TxId& txid, size_t index, const Status& call,
                     const proto::PrepareResponse& resp, Micros now);
  // Every answer to a COMMIT/ABORT call (`call` as the core sent it, also
  // the fire-and-forget ones): `transport` is the RPC's own status; `resp`
  // the agent's answer when it is OK. An ack, a failure to retry, or a
  // refusal (a heuristic hazard).
  NodeEffects OnDecideAnswer(const ParticipantCall& call, const Status& transport,
                             const proto::DecideResponse& resp, Micros now);
  static Status AckStatus(const Status& call, const proto::DecideResponse& resp);

  NodeEffects Tick(Micros now);

  // ---- operators
  // "Retry now" (CommitDriver::RetryNow): `*retried` gets how many
  // transactions had their decision resent; 0 when this node is not serving.
  NodeEffects OnRetry(const std::optional<TxId>& txid, size_t* retried, Micros now);

  // ---- views
  const TxnTable& table() const { return table_; }
  const CommitDriver& driver() const { return driver_; }
  const paxos::Replica* replica() const { return replica_.get(); }
  bool group() const { return replica_ != nullptr; }
  // Group: the client address of the leader, "" when unknown or this one.
  std::string LeaderAddress() const;

 private:
  NodeEffects Collect(Micros now);
  void HandleReplica(paxos::Effects& fx, Micros now, NodeEffects* out);
  void HandleDriver(DriverEffects& fx, Micros now, NodeEffects* out);
  void Propose(std::vector<proto::Command> cmds, Micros now, NodeEffects* out);
  // Group: what was proposed since the last flush goes to the
  // replica as one slot (or is refused, if this replica no longer leads).
  void ProposeHeld(Micros now, NodeEffects* out);
  void ProposeSlot(std::vector<proto::Command> cmds, Micros now, NodeEffects* out);
  // Why no proposal can be made now (the log failed, or this replica does
  // not lead), if so.
  std::optional<Status> CannotPropose() const;
  void Refuse(std::vector<proto::Command> cmds, const Status& why, Micros now, NodeEffects* out);
  // The driver stops serving: its waiters hear NOT_LEADER with the leader's
  // address when one is known (UNAVAILABLE otherwise).
  void StepDownDriver(NodeEffects* out);
  void MaybeSnapshot(NodeEffects* out);
  // A slot applied with `commands` commands: counts towards the next
  // snapshot as at least one (an empty or unreadable slot too).
  void CountApplied(size_t commands) {
    applied_since_snapshot_ += std::max<size_t>(commands, 1);
  }
  void Apply(uint64_t index, proto::Command cmd, Micros now, NodeEffects* out);
  static void Merge(NodeEffects* out, NodeEffects more);
  static void Note(NodeEffects* out, std::string text, const TxId* txid = nullptr,
                   const char* point = nullptr, NoteAction::Level level = NoteAction::kInfo,
                   bool notable = false);

  NodeCoreOptions options_;
  TxnTable table_;
  CommitDriver driver_;
  std::unique_ptr<paxos::Replica> replica_;
  uint64_t next_index_ = 1;  // single replica: the slot of the next proposal
  uint64_t applied_since_snapshot_ = 0;  // commands (a slot counts as at least one)
  int64_t lead_epoch_ = 0;   // the epoch whose marker this replica proposed
  int known_leader_ = 0;
  bool failed_ = false;      // the log failed as a whole
  bool holding_ = false;     // group: the replica's effects wait for FlushProposals
  std::vector<proto::Command> held_;  // group: proposed since the last flush
  Status startup_;
};

}  // namespace txc::coord
