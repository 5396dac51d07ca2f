#include "participant/agent_core.h"

#include "common/status_proto.h"

#include <utility>

namespace txc::participant {

OutcomeAnswer ReadOutcomeAnswer(const Status& call, const proto::OutcomeResponse& response) {
  OutcomeAnswer a;
  if (!call.ok()) {
    a.status = call;
    return a;
  }
  switch (response.status.code) {
    case proto::Code::OK:
      a.outcome = response.outcome;
      return a;
    case proto::Code::INVALID_ARGUMENT:
      // "never allocated by this coordinator group" (CommitDriver::OnOutcome):
      // a definite answer, not a failure to answer.
      a.outcome = proto::Outcome::UNKNOWN;
      return a;
    default:
      // NOT_LEADER, UNAVAILABLE and the rest: nobody could say.
      a.status = FromProto(response.status);
      return a;
  }
}

void RunResourceOp(ResourceManager& resource, ResourceOp op,
                   ResourceManager::Callback<ExecuteResult> exec_done,
                   ResourceManager::Callback<Status> status_done) {
  switch (op.kind) {
    case ResourceOp::kExecute:
      return resource.Execute(op.txid, std::move(op.statements), std::move(exec_done));
    case ResourceOp::kExecuteAndPrepare:
      return resource.ExecuteAndPrepare(op.txid, std::move(op.statements), op.info,
                                        std::move(exec_done));
    case ResourceOp::kPrepare:
      return resource.Prepare(op.txid, op.info, std::move(status_done));
    case ResourceOp::kCommit:
      return resource.Commit(op.txid, std::move(status_done));
    case ResourceOp::kPreCommit:
      return resource.PreCommit(op.txid, std::move(status_done));
    case ResourceOp::kRollback:
      return resource.Rollback(op.txid, std::move(status_done));
    case ResourceOp::kHeuristic:
      return resource.HeuristicDecide(op.heuristic, std::move(status_done));
    case ResourceOp::kForgetHeuristic:
      return resource.ForgetHeuristic(op.txid, std::move(status_done));
  }
}

AgentCore::AgentCore(std::vector<std::string> resources, AgentOptions options, Micros tick)
    : branches_(std::move(resources), options), tick_(tick) {}

void AgentCore::OnRecovered(const std::string& resource,
                            const std::vector<RecoveredBranch>& branches, Micros now) {
  branches_.OnRecovered(resource, branches, now);
}

void AgentCore::OnRecoveredHeuristics(const std::string& resource,
                                      const std::vector<HeuristicRecord>& records, Micros now) {
  branches_.OnRecoveredHeuristics(resource, records, now);
}

void AgentCore::OnRecoveryFailed(const std::string& resource, const Status& status) {
  failed_[resource] = status.ok() ? Status::Internal("resource " + resource + " did not recover")
                                  : status;
}

AgentCoreEffects AgentCore::Start(Micros now) {
  AgentCoreEffects fx = Collect(now);
  fx.wake_at = now + tick_;
  return fx;
}

AgentCoreEffects AgentCore::OnExecute(uint64_t token, const proto::ExecuteRequest& req,
                                      Micros now) {
  branches_.OnExecute(token, req, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnPrepare(uint64_t token, const proto::PrepareRequest& req,
                                      Micros now) {
  branches_.OnPrepare(token, req, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnDecide(uint64_t token, const proto::DecideRequest& req, Micros now) {
  branches_.OnDecide(token, req, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnResolve(uint64_t token, const proto::AgentResolveRequest& req,
                                      Micros now) {
  branches_.OnResolve(token, req, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnForget(uint64_t token, const proto::AgentForgetRequest& req,
                                     Micros now) {
  branches_.OnForget(token, req, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnBranchState(uint64_t token, const proto::BranchStateRequest& req,
                                          Micros now) {
  branches_.OnBranchState(token, req);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnPeerStateReply(const PeerQuery& q, const Status& call,
                                             const proto::BranchStateResponse& response,
                                             Micros now) {
  branches_.OnPeerState(q, call, response, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnExecuteDone(uint64_t op, const ExecuteResult& result, Micros now) {
  branches_.OnExecuteDone(op, result, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnOpDone(uint64_t op, const Status& status, Micros now) {
  branches_.OnOpDone(op, status, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnResourceHeuristic(const std::string& resource,
                                                const HeuristicRecord& record, Micros now) {
  branches_.OnResourceHeuristic(resource, record, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::OnOutcomeReply(const TxId& txid, const Status& call,
                                           const proto::OutcomeResponse& response, Micros now) {
  OutcomeAnswer a = ReadOutcomeAnswer(call, response);
  branches_.OnOutcome(txid, a.status, a.outcome, now);
  return Collect(now);
}

AgentCoreEffects AgentCore::Tick(Micros now) {
  branches_.Tick(now);
  AgentCoreEffects fx = Collect(now);
  fx.wake_at = now + tick_;
  return fx;
}

AgentCoreEffects AgentCore::Collect(Micros now) {
  AgentCoreEffects out;
  for (;;) {
    AgentEffects fx = branches_.TakeEffects();
    if (fx.empty()) break;
    for (AgentReply& r : fx.replies) out.replies.push_back(std::move(r));
    for (TxId& t : fx.queries) out.queries.push_back(std::move(t));
    for (PeerQuery& q : fx.peer_queries) out.peer_queries.push_back(std::move(q));
    for (AgentLogLine& l : fx.logs) out.logs.push_back(std::move(l));
    for (ResourceOp& op : fx.ops) {
      auto f = failed_.find(op.resource);
      if (f == failed_.end()) {
        out.ops.push_back(std::move(op));
      } else if (op.kind == ResourceOp::kExecute || op.kind == ResourceOp::kExecuteAndPrepare) {
        ExecuteResult r;
        r.status = f->second;
        branches_.OnExecuteDone(op.id, r, now);
      } else {
        branches_.OnOpDone(op.id, f->second, now);
      }
    }
  }
  return out;
}

}  // namespace txc::participant
