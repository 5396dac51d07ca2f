// The participant SDK: what a resource (a database, a queue, a service) must
// do to take part in txcoord transactions.
//
// A txcoord agent (txagent) hosts one or more ResourceManagers. The agent runs
// the protocol (votes, idempotency, tombstones, lock waits, asking the
// coordinator about in-doubt branches); a ResourceManager only does local,
// durable work on one branch at a time, when the agent asks. A branch is the
// part of one global transaction (txid) that touches this resource.
//
// Contract, per branch, in the order the agent calls:
//   Execute*        apply the statements, keep what is needed to undo them,
//                   take row locks so no other branch sees or changes those rows
//   Prepare         make the branch durable as PREPARED: after OK, a crash and
//                   restart must still be able to Commit or Rollback it
//   Commit          make the outcome durable, drop the undo, release the locks
//   Rollback        undo every change, release the locks, leave a tombstone
// Recover() at start returns every branch that is not final, so the agent can
// roll back ACTIVE ones and ask the coordinator about PREPARED ones.
//
// Threading: the agent calls every method from its io thread, never two
// operations on the same txid at once. Operations on different txids may be
// in flight together (that is what lets a resource group-commit). A callback
// may run on any thread, exactly once; the agent moves it to its io thread.
// The methods must not block for long: queue the work and call back.
//
// Durability: "OK" from Prepare and Commit means the record is on disk (fsync
// or equivalent). The agent sends the vote or the ack only after that OK:
// never call back OK early (DESIGN.md: durability points).
//
// Errors: return a Status whose message a user can act on, e.g.
// "SQL_ERROR: bank_a: no such table: acounts". A storage failure (a failed
// fsync or COMMIT) must make the resource refuse every later write with
// STORAGE_FAILED until restarted.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/txid.h"
#include "txcoord_types.h"

namespace txc::participant {

// Branch states as stored in a resource's log.
// on-disk format: do not renumber
enum class BranchState : int {
  kActive = 1,
  kPrepared = 2,
  kPreCommitted = 3,
  kCommitted = 4,
  kAborted = 5,
};
const char* BranchStateName(BranchState s);

struct ExecuteResult {
  // OK; SQL_ERROR, EXPECTATION_FAILED or TIMEOUT (the call ran longer than
  // the resource allows) (nothing of this call is applied; the branch keeps
  // what earlier calls did); CONFLICT when a row this call needs
  // is locked by another branch: nothing of this call is applied, `holder`
  // names the lock's owner and `conflict` the row, and the agent decides
  // whether to wait and retry or fail.
  Status status;
  std::vector<proto::ResultSet> results;  // one per statement, rows for queries
  std::optional<TxId> holder;
  std::string conflict;  // e.g. "bank_a.accounts id=7"
  // True when the branch has changed data (this call or an earlier one); a
  // branch that never wrote votes READ_ONLY.
  bool wrote = false;
};

struct PrepareInfo {
  std::vector<proto::Participant> participants;  // every participant of the txn
  proto::Protocol::type protocol = proto::Protocol::TWO_PC;
};

struct RecoveredBranch {
  TxId txid;
  BranchState state = BranchState::kActive;
  PrepareInfo info;
};

// An operator's heuristic decision on a branch (HeuristicDecide), as the
// resource keeps it until ForgetHeuristic.
struct HeuristicRecord {
  TxId txid;
  proto::Outcome::type outcome = proto::Outcome::ABORTED;  // COMMITTED or ABORTED
  std::string reason;
  std::string who;
  int64_t at_ms = 0;  // Unix ms, when it was recorded
};

class ResourceManager {
 public:
  template <class T>
  using Callback = std::function<void(T)>;

  virtual ~ResourceManager() = default;

  // The resource's name, as clients address it ("bank_a").
  virtual const std::string& name() const = 0;

  // Called once before any other operation. Returns every branch that is not
  // final (ACTIVE, PREPARED, PRECOMMITTED) with the row locks it held already
  // re-taken by the resource.
  virtual Result<std::vector<RecoveredBranch>> Recover() = 0;

  // Applies `statements` within branch `txid` (creating the branch, ACTIVE, on
  // first use). Changes must be undoable and locked until Commit/Rollback.
  // Need not be durable: an ACTIVE branch is rolled back after a crash.
  virtual void Execute(const TxId& txid, std::vector<proto::Statement> statements,
                       Callback<ExecuteResult> done) = 0;

  // Records the branch as PREPARED. OK means durable.
  // REQUIRES: the branch exists and is ACTIVE (Execute returned OK at least once).
  virtual void Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) = 0;

  // One-shot: Execute then Prepare. A resource that can do both in one local
  // transaction (and one sync) should override this. On a non-OK result
  // nothing of `statements` is applied and the branch is not prepared.
  virtual void ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                                 const PrepareInfo& info, Callback<ExecuteResult> done);

  // Three-phase commit: records the PREPARED branch as PRECOMMITTED (the
  // coordinator group chose PRECOMMIT: the transaction will commit), keeping
  // its changes and locks. OK means durable. Idempotent: OK for a branch
  // PRECOMMITTED or COMMITTED already; ABORTED for an aborted one. Called
  // only when SupportsPreCommit(); the default refuses (INVALID_ARGUMENT).
  virtual void PreCommit(const TxId& txid, Callback<Status> done);
  // Whether PreCommit records PRECOMMITTED. The agent does not call a
  // resource that says no: it acknowledges PRE_COMMIT at once and the branch
  // stays PREPARED. Default: false.
  virtual bool SupportsPreCommit() const { return false; }

  // Records the branch as COMMITTED, releases its locks. OK means durable.
  // Idempotent: committing a committed branch is OK.
  virtual void Commit(const TxId& txid, Callback<Status> done) = 0;

  // Undoes the branch, records it ABORTED (a tombstone: also for a txid with
  // no branch at all), releases its locks. Need not be durable (presumed
  // abort). Idempotent.
  // On failure nothing is undone and the branch stays as it was (its changes,
  // undo and locks), so it can be retried: UNAVAILABLE for a transient cause
  // (another process holds the database); CONFLICT when the undo cannot
  // restore a row exactly (someone wrote it outside txcoord; the message names
  // the row, and a retry succeeds once it is fixed); STORAGE_FAILED as above.
  // Never OK unless every change is undone. A branch that committed here:
  // OK if it changed nothing (released read-only), else INVALID_ARGUMENT, a
  // final answer (the agent reports the disagreement and never retries it).
  virtual void Rollback(const TxId& txid, Callback<Status> done) = 0;

  // Heuristic decisions (txadmin agent HOST:PORT resolve): an operator ends
  // an in-doubt branch without the group. `record.outcome` COMMITTED commits
  // the PREPARED (or PRECOMMITTED) branch, ABORTED rolls it back, and the
  // record is kept, durably and in the same local transaction, until
  // ForgetHeuristic. OK means both are on disk. A branch that is not in
  // doubt is refused with INVALID_ARGUMENT naming its state; a resource that
  // cannot record heuristics (the default) refuses every call so.
  virtual void HeuristicDecide(const HeuristicRecord& record, Callback<Status> done);
  // Drops the record of txid; NOT_FOUND when there is none.
  virtual void ForgetHeuristic(const TxId& txid, Callback<Status> done);
  // Every record kept, at start (called once, after Recover, on the agent's
  // thread). Default: none.
  virtual Result<std::vector<HeuristicRecord>> Heuristics();
  // A heuristic record the resource took by itself while running, for txid:
  // asked by the agent (on its thread; keep it cheap) after a Commit or
  // Rollback of txid failed. A database resource records one when the
  // branch's prepared transaction was ended outside txcoord. Default: none.
  virtual std::optional<HeuristicRecord> HeuristicOf(const TxId& txid) const { return std::nullopt; }

  // The resource's own event counters (say, what reconciling a database's
  // prepared transactions found), exported as
  // txagent_resource_events_total{resource,event}. Called on the agent's io
  // thread at any time: must be thread-safe. Default: none.
  virtual std::vector<std::pair<std::string, uint64_t>> Counters() const { return {}; }
};

// The resource names an agent accepts: 1-64 characters of A-Z a-z 0-9 _ -.
bool ValidResourceName(std::string_view name);

// What MakeResource needs besides the spec.
struct ResourceContext {
  // The agent's directory: a database resource keeps its WAL there
  // (NAME.xa.db).
  std::string data_dir = ".";
  // Passwords by resource name (txagent --secret-file NAME=PATH, or the
  // environment variable TXC_PASSWORD_<NAME>, upper-cased, '-' as '_').
  std::map<std::string, std::string> passwords;
  // Most connections each database resource opens (txagent --db-pool-size).
  size_t db_pool_size = 32;
};

// Builds the resource named by a --resource value:
//   NAME=sqlite:PATH
//   NAME=postgres:CONNINFO   libpq's "host=... port=... dbname=... user=..."
//   NAME=mariadb:CONNINFO    "host=... port=... database=... user=..." (or socket=PATH)
//   NAME=queue:PATH          a transactional message queue (queue_resource.h)
// Returns INVALID_ARGUMENT naming what is wrong otherwise, and, for a
// database, UNAVAILABLE naming the resource when its server cannot be used.
Result<std::unique_ptr<ResourceManager>> MakeResource(const std::string& spec,
                                                      const ResourceContext& context = {});

}  // namespace txc::participant
