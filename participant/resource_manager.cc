#include "participant/resource_manager.h"

#include <memory>
#include <utility>

namespace txc::participant {

bool ValidResourceName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

const char* BranchStateName(BranchState s) {
  switch (s) {
    case BranchState::kActive: return "ACTIVE";
    case BranchState::kPrepared: return "PREPARED";
    case BranchState::kPreCommitted: return "PRECOMMITTED";
    case BranchState::kCommitted: return "COMMITTED";
    case BranchState::kAborted: return "ABORTED";
  }
  return "UNKNOWN";
}

// The generic one-shot: Execute, then Prepare from Execute's callback (so
// Prepare may be called on the resource's callback thread). A Prepare failure
// after a successful Execute leaves the statements applied in an ACTIVE
// branch: the caller rolls the branch back, as for any NO vote.
void ResourceManager::ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                                        const PrepareInfo& info, Callback<ExecuteResult> done) {
  Execute(txid, std::move(statements),
          [this, txid, info, done = std::move(done)](ExecuteResult r) mutable {
            if (!r.status.ok()) {
              done(std::move(r));
              return;
            }
            auto shared = std::make_shared<ExecuteResult>(std::move(r));
            Prepare(txid, info, [shared, done = std::move(done)](Status s) mutable {
              shared->status = std::move(s);
              done(std::move(*shared));
            });
          });
}

void ResourceManager::PreCommit(const TxId& txid, Callback<Status> done) {
  done(Status::InvalidArgument("resource " + name() + " does not implement PreCommit (three-phase "
                               "commit); " + ToString(txid) + " stays PREPARED until DO_COMMIT"));
}

void ResourceManager::HeuristicDecide(const HeuristicRecord& record, Callback<Status> done) {
  done(Status::InvalidArgument("resource " + name() + " cannot record heuristic decisions; " +
                               ToString(record.txid) + " stays in doubt until the group answers"));
}

void ResourceManager::ForgetHeuristic(const TxId& txid, Callback<Status> done) {
  done(Status::NotFound("resource " + name() + " keeps no heuristic decisions (asked about " +
                        ToString(txid) + ")"));
}

Result<std::vector<HeuristicRecord>> ResourceManager::Heuristics() {
  return std::vector<HeuristicRecord>();
}

}  // namespace txc::participant
