// AgentCore: the whole node logic of a participant agent, as one
// deterministic core that both the real agent (participant/agent.cc) and the
// simulator (sim/agent_shell.cc) run. It owns the BranchCore and everything
// the shells used to decide around it: how the coordinator group's answer to
// an outcome query maps onto the branches, which resource operations run
// (and what happens to one on a resource that could not recover), and when
// the core wants its next Tick.
//
// Inputs: requests (each with a token the shell uses to route the reply),
// completions of resource operations, answers to outcome queries, Tick(now).
// Every input returns one AgentCoreEffects value: replies to send, resource
// operations to run, outcome queries to send, and when to call Tick next.
// The shells only move bytes, timers and disk I/O. No sockets, files, clocks,
// threads or randomness inside.
//
// The row locks stay inside each resource (SqliteResource, or the
// simulator's resource), which owns its LockTable; lock waits are the
// BranchCore's.
//
// Not thread-safe; owned by the agent's io thread (the World thread in txsim).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "common/txid.h"
#include "participant/branch_core.h"
#include "participant/resource_manager.h"
#include "txcoord_types.h"

namespace txc::participant {

// What the shell must do after one input, in this order: arm the tick timer
// (if wake_at is set), send the replies, run the operations, send the queries.
struct AgentCoreEffects {
  // Send each response to the request that came in with this token. A YES
  // vote or a COMMIT ack is here only once the resource operation that made
  // its record durable has completed.
  std::vector<AgentReply> replies;
  // Run each on the resource it names (RunResourceOp); report the completion
  // with OnExecuteDone (kExecute, kExecuteAndPrepare) or OnOpDone (the rest).
  // Only resources that recovered are named here.
  std::vector<ResourceOp> ops;
  // Ask the coordinator group Outcome(OutcomeQuery(txid)); hand the answer
  // (or the call's failure) to OnOutcomeReply.
  std::vector<TxId> queries;
  // 3PC autonomous termination: ask the agent at q.to Agent.BranchState for
  // its branch of q.txid; hand the answer (or the call's failure) to
  // OnPeerStateReply.
  std::vector<PeerQuery> peer_queries;
  // Call Tick at this time (replaces the timer armed before). Set by Start and
  // Tick only: the core ticks for as long as it runs.
  std::optional<Micros> wake_at;
  // Lines for the operator's log (a failing rollback, its recovery).
  std::vector<AgentLogLine> logs;

  bool empty() const {
    return replies.empty() && ops.empty() && queries.empty() && peer_queries.empty() && !wake_at &&
           logs.empty();
  }
};

// How the agent reads the coordinator group's answer to an outcome query.
// `status` not OK: no answer (the call failed, no leader, the group could
// not say): the branch asks again at its next deadline. Otherwise `outcome`
// is the group's word: PENDING, COMMITTED, ABORTED, or UNKNOWN when the group
// says it never allocated the txid. UNKNOWN rolls back an ACTIVE branch (no
// coordinator will ever ask it to commit, and a branch that has not voted may
// always abort) but never moves a PREPARED one: a branch that voted YES must
// keep asking until it hears COMMITTED or ABORTED, however long that takes.
struct OutcomeAnswer {
  Status status;
  proto::Outcome::type outcome = proto::Outcome::UNKNOWN;
};
OutcomeAnswer ReadOutcomeAnswer(const Status& call, const proto::OutcomeResponse& response);

// Starts `op` on `resource`, whose name must be op.resource: `exec_done` gets
// the result of kExecute and kExecuteAndPrepare, `status_done` that of the
// others. Callbacks run as the resource runs them (any thread; exactly once).
void RunResourceOp(ResourceManager& resource, ResourceOp op,
                   ResourceManager::Callback<ExecuteResult> exec_done,
                   ResourceManager::Callback<Status> status_done);

class AgentCore {
 public:
  // `resources`: the names of the resources this agent hosts. `tick`: how
  // often the core wants Tick (lock retries and deadlines are checked then;
  // a deadline fires up to one tick late).
  AgentCore(std::vector<std::string> resources, AgentOptions options, Micros tick);

  // Start-up, before Start: the branches a resource's Recover() returned.
  // ACTIVE ones will be rolled back; PREPARED ones stay in doubt, holding
  // their locks, and ask the group at the first Tick. Nothing leaves before
  // Start.
  void OnRecovered(const std::string& resource, const std::vector<RecoveredBranch>& branches,
                   Micros now);
  // Start-up, before Start: `resource` could not recover. Every operation on
  // it fails with `status` inside the core (requests for it get that error,
  // prepares vote NO); no ResourceOp names it.
  void OnRecoveryFailed(const std::string& resource, const Status& status);
  // Start-up: `resource` cannot record PRECOMMITTED (BranchCore::SetPreCommitUnsupported).
  void SetPreCommitUnsupported(const std::string& resource) {
    branches_.SetPreCommitUnsupported(resource);
  }
  // Start-up, after OnRecovered: the heuristic decisions `resource` keeps
  // (ResourceManager::Heuristics); reconciled with the group after Start.
  void OnRecoveredHeuristics(const std::string& resource,
                             const std::vector<HeuristicRecord>& records, Micros now);
  // Every resource has recovered (or failed to): the recovery work and the
  // first tick. The inputs below come after Start.
  AgentCoreEffects Start(Micros now);

  AgentCoreEffects OnExecute(uint64_t token, const proto::ExecuteRequest& req, Micros now);
  AgentCoreEffects OnPrepare(uint64_t token, const proto::PrepareRequest& req, Micros now);
  AgentCoreEffects OnDecide(uint64_t token, const proto::DecideRequest& req, Micros now);
  // The operator's heuristic decision and its removal (BranchCore::OnResolve,
  // OnForget): each gets one reply, once the resources have recorded it.
  AgentCoreEffects OnResolve(uint64_t token, const proto::AgentResolveRequest& req, Micros now);
  AgentCoreEffects OnForget(uint64_t token, const proto::AgentForgetRequest& req, Micros now);
  // Agent.BranchState (another participant's autonomous termination), and the
  // answer to one of this agent's PeerQuery.
  AgentCoreEffects OnBranchState(uint64_t token, const proto::BranchStateRequest& req, Micros now);
  AgentCoreEffects OnPeerStateReply(const PeerQuery& q, const Status& call,
                                    const proto::BranchStateResponse& response, Micros now);

  // Completions of ResourceOps (op = ResourceOp::id).
  AgentCoreEffects OnExecuteDone(uint64_t op, const ExecuteResult& result, Micros now);
  AgentCoreEffects OnOpDone(uint64_t op, const Status& status, Micros now);
  // BranchCore::OnResourceHeuristic.
  AgentCoreEffects OnResourceHeuristic(const std::string& resource, const HeuristicRecord& record,
                                       Micros now);

  // The group's answer to Outcome(txid): `call` is the RPC's own status (a
  // timeout, an unreachable group), `response` what the group said when
  // `call` is OK. Read as ReadOutcomeAnswer says.
  AgentCoreEffects OnOutcomeReply(const TxId& txid, const Status& call,
                                  const proto::OutcomeResponse& response, Micros now);
  // The request to send for an outcome query (AgentCoreEffects::queries):
  // the txid, and this agent's key for signed decisions when it has one
  // (AgentOptions::decision_key). Send it only on a connection the agent
  // dials to the group.
  proto::OutcomeRequest OutcomeQuery(const TxId& txid) const { return branches_.OutcomeQuery(txid); }

  // The timer armed from wake_at fired.
  AgentCoreEffects Tick(Micros now);

  std::vector<BranchCore::BranchView> Branches() const { return branches_.Branches(); }
  size_t in_doubt_count() const { return branches_.in_doubt_count(); }
  size_t heuristic_count() const { return branches_.heuristic_count(); }
  size_t heuristic_hazard_count() const { return branches_.heuristic_hazard_count(); }
  const BranchCore::Counters& counters() const { return branches_.counters(); }

 private:
  // Everything the BranchCore has emitted since the last input, with the
  // operations on resources that failed to recover completed here.
  AgentCoreEffects Collect(Micros now);

  BranchCore branches_;
  Micros tick_;
  std::map<std::string, Status> failed_;  // resources that could not recover
};

}  // namespace txc::participant
