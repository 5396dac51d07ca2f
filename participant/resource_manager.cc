#include "participant/resource_manager.h"

#include <utility>

#include "participant/sqlite_resource.h"

namespace txc::participant {

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

namespace {

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<ResourceManager>> MakeResource(const std::string& spec) {
  const std::string where = "resource spec \"" + spec + "\": ";
  auto eq = spec.find('=');
  if (eq == std::string::npos) {
    return Status::InvalidArgument(where + "expected NAME=KIND:PATH, e.g. bank_a=sqlite:/var/lib/bank_a.db");
  }
  std::string name = spec.substr(0, eq);
  std::string rest = spec.substr(eq + 1);
  if (!ValidName(name)) {
    return Status::InvalidArgument(where + "name \"" + name +
                                   "\" must be 1-64 characters of A-Z a-z 0-9 _ -");
  }
  auto colon = rest.find(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument(where + "expected KIND:PATH after \"" + name +
                                   "=\", e.g. sqlite:/var/lib/" + name + ".db");
  }
  std::string kind = rest.substr(0, colon);
  std::string path = rest.substr(colon + 1);
  if (kind != "sqlite") {
    return Status::InvalidArgument(where + "unknown resource kind \"" + kind +
                                   "\" (supported: sqlite)");
  }
  if (path.empty()) {
    return Status::InvalidArgument(where + "empty database path after \"sqlite:\"");
  }
  auto r = SqliteResource::Open(name, path);
  if (!r.ok()) return Status(r.status().code(), where + r.status().message());
  return std::unique_ptr<ResourceManager>(std::move(*r));
}

}  // namespace txc::participant
