// BankResource: an in-memory participant::ResourceManager with the semantics
// of the SQLite resource (participant/sqlite_resource.h), for the simulator.
//
// It understands only the bank workload's statements (kDebitSql, kCreditSql,
// kSumSql, kBalanceSql, matched exactly); anything else is SQL_ERROR. As the
// SQLite resource: an Execute applies its changes at once and keeps their
// undo (before-images), takes a row lock per changed row and answers CONFLICT
// with the holder when another branch holds one (nothing of that call is
// applied); reads take no locks (read-uncommitted); expect_rows mismatches
// are EXPECTATION_FAILED. Prepare and Commit are durable before they answer
// (they wait for the node's disk sync); Execute and Rollback are not. Rollback
// applies the undo, newest first, and leaves a tombstone (also for a txid
// with no branch). Recover returns every ACTIVE/PREPARED branch and re-takes
// its locks.
//
// Durability: every change to the live state is also written to the node's
// Disk as a record that updates `durable` (the image that survives a crash)
// once synced. A restarted agent builds a new BankResource from `durable`.
//
// Completions run as World events after a small virtual delay, never inside
// the call, and only while the incarnation that asked is alive.
//
// Not thread-safe; one World thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "participant/resource_manager.h"
#include "sim/world.h"

namespace txc::sim {

inline constexpr const char* kDebitSql =
    "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?";
inline constexpr const char* kCreditSql = "UPDATE accounts SET balance = balance + ? WHERE id = ?";
inline constexpr const char* kSumSql = "SELECT SUM(balance) FROM accounts";
inline constexpr const char* kBalanceSql = "SELECT balance FROM accounts WHERE id = ?";

struct RowChange {
  int64_t id = 0;
  int64_t before = 0;
  int64_t after = 0;
};

struct BankBranch {
  participant::BranchState state = participant::BranchState::kActive;
  participant::PrepareInfo info;
  // One entry per Execute call that changed rows (redo = after, undo = before).
  std::vector<std::vector<RowChange>> changes;
  bool HasChanges() const { return !changes.empty(); }
  // Net change of the sum of balances this branch made.
  int64_t Delta() const;
};

// What a resource holds: the table `accounts(id PRIMARY KEY, balance)` and the
// branch log. The same type is the live state and the durable image.
struct BankImage {
  std::map<int64_t, int64_t> accounts;
  std::map<TxId, BankBranch, TxIdLess> branches;
  std::set<TxId, TxIdLess> open;  // ACTIVE or PREPARED branches

  void PutBranch(const TxId& txid, const BankBranch& b);
  int64_t Sum() const;
};

class Checker;

// Which deliberate bugs the resource has (see sim/simulation.h).
struct ResourceBugs {
  bool vote_before_durable = false;  // Prepare answers before its record is synced
  bool forget_undo = false;          // Rollback leaves the branch's changes in place
};

struct ResourceEnv {
  World* world = nullptr;
  Disk* disk = nullptr;
  Checker* checker = nullptr;
  int node = -1;
  std::shared_ptr<bool> alive;  // the incarnation's liveness
  ResourceBugs bugs;
  Micros op_min = 20;   // virtual time a local operation takes
  Micros op_max = 150;
};

class BankResource : public participant::ResourceManager {
 public:
  // `durable` outlives the resource (it is the node's disk image).
  BankResource(std::string name, BankImage* durable, ResourceEnv env);

  const std::string& name() const override { return name_; }
  Result<std::vector<participant::RecoveredBranch>> Recover() override;
  void Execute(const TxId& txid, std::vector<proto::Statement> statements,
               Callback<participant::ExecuteResult> done) override;
  void Prepare(const TxId& txid, const participant::PrepareInfo& info,
               Callback<Status> done) override;
  void ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                         const participant::PrepareInfo& info,
                         Callback<participant::ExecuteResult> done) override;
  void Commit(const TxId& txid, Callback<Status> done) override;
  void Rollback(const TxId& txid, Callback<Status> done) override;

  const BankImage& live() const { return live_; }
  size_t locks_held() const { return locks_.size(); }

 private:
  Status DoExecute(const TxId& txid, const std::vector<proto::Statement>& statements,
                   participant::ExecuteResult* out);
  Status DoPrepare(const TxId& txid, const participant::PrepareInfo& info);
  Status DoCommit(const TxId& txid);
  Status DoRollback(const TxId& txid);
  Status Err(Status::Code code, const std::string& msg) const {
    return Status(code, name_ + ": " + msg);
  }
  void SetState(const TxId& txid, BankBranch& b, participant::BranchState s);
  // Writes the branch record (and the given account rows) to the disk.
  void Journal(const TxId& txid, const std::vector<int64_t>& rows);
  void ReleaseLocks(const TxId& txid, const BankBranch& b);
  // Runs `fn` later; after a disk sync when `durable`.
  void Complete(bool durable, std::function<void()> fn);

  std::string name_;
  BankImage* durable_;
  ResourceEnv env_;
  BankImage live_;
  std::map<int64_t, TxId> locks_;  // account id -> holder
};

}  // namespace txc::sim
