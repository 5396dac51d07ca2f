// Internal to SqliteResource: the branch log, in the resource's own database
// file (see sqlite_resource.h for the tables):
//   txc_branches: one row per branch, its state, and once PREPARED its
//                 participants and protocol (proto::PreparedRecord); the
//                 change set of the call that created the branch (a
//                 one-shot's only one, an interactive branch's first
//                 Execute) is kept in the row (redo, undo, keys) until the
//                 branch ends: it is the branch's change seq 1;
//   txc_changes:  per later Execute call that changed rows, its redo and
//                 undo change sets and its lock keys (proto::ChangeKeysRecord),
//                 from seq 2 (or 1 when the first call changed nothing).
// Readers take the union of the two, by seq. Logs written before
// 2026-12-05 kept an interactive branch's changes in txc_changes only
// (from seq 1); they read the same way.
// Files of the older, legacy layout of both records still recover.
//   txc_meta:     'branch_log_layout', the layout that last wrote the log
//                 (kBranchLogLayout).
// Final rows (COMMITTED, ABORTED tombstones) are purged after a retention.
//
// Every write runs inside the caller's group transaction: the branch log
// neither begins nor commits. Worker thread (or Recover) only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"
#include "participant/resource_manager.h"
#include "participant/sqlite_util.h"
#include "wal/sqlite.h"

namespace txc::participant::internal {

// The decoders of txc_branches.participants and txc_changes.keys (either
// layout), also for offline readers (txadmin wal dump). False if malformed.
bool DecodeParticipants(std::string_view in, std::vector<proto::Participant>* ps);
bool DecodeKeys(std::string_view in, std::vector<std::string>* keys);

class BranchLog : private Named {
 public:
  // `db` and `wall_clock` (Unix micros: the `updated` column) outlive the log.
  BranchLog(std::string name, wal::Db* db, std::function<Micros()> wall_clock);

  // Creates the tables if needed and prepares the statements. Refuses a
  // log that a newer version laid out differently while it has branches
  // that have not ended (kBranchLogLayout).
  Status Init();

  // The layout of the branch log this code writes, stamped in
  // txc_meta('branch_log_layout'): raised by every change to how a
  // branch's rows are kept that an older version would misread. 2: a
  // branch's change set in its own row and the live-rows index (2026-12-04
  // and -05). Logs from before the stamp have none; this code reads them
  // all. A log stamped higher is used only when it has no live branch
  // (`txc_branches.state < 4`, which later layouts must keep meaning
  // "live"): its stamp is then lowered to this one.
  static constexpr int64_t kBranchLogLayout = 2;

  // The branch's state; nullopt when it has no row.
  Result<std::optional<BranchState>> LoadState(const std::string& txid);
  struct Loaded {
    BranchState state;
    bool changes_inline;  // its change set is in its own row (InsertPrepared)
  };
  Result<std::optional<Loaded>> Load(const std::string& txid);
  // True when an Execute of the branch changed rows.
  Result<bool> HasChanges(const std::string& txid);
  // False only for a branch recorded COMMITTED with no changes (a read-only
  // branch released at PREPARE); true otherwise, and for old logs' rows.
  Result<bool> Changed(const std::string& txid);
  // -> COMMITTED; `changed`: the branch had changes to commit. Drops the
  // change set kept in the row, if any.
  Status SetCommitted(const std::string& txid, bool changed);
  // -> COMMITTED in one statement for a live branch whose changes are all
  // in its row (a one-shot's, an interactive branch's with one writing
  // Execute); false, and nothing written, for any other.
  Result<bool> CommitInline(const std::string& txid);
  // One Execute call's change sets and lock keys.
  struct Change {
    std::string_view redo, undo;
    const std::vector<std::string>* keys = nullptr;
  };
  // A new branch's row; with the change set of the call that creates it,
  // if that call changed rows (kept in the row, as seq 1).
  Status InsertBranch(const TxId& txid, BranchState s,
                      const std::optional<Change>& change = std::nullopt);
  // A new branch's row, PREPARED at once with the participants and protocol
  // to recover with (a one-shot's Execute and Prepare in one operation),
  // and its change set if it changed rows (kept in the row, not in
  // txc_changes).
  Status InsertPrepared(const TxId& txid, const PrepareInfo& info,
                        const std::optional<Change>& change = std::nullopt);
  Status SetState(const std::string& txid, BranchState s);
  // ACTIVE -> PREPARED, with the participants and protocol to recover with
  // (the caller found it ACTIVE).
  Status SetPrepared(const std::string& txid, const PrepareInfo& info);
  // The same in one statement if the branch is ACTIVE; false, and nothing
  // written, otherwise (Prepare says why).
  Result<bool> PrepareIfActive(const std::string& txid, const PrepareInfo& info);
  // A resource's Prepare over this log: ACTIVE -> PREPARED (SetPrepared); OK
  // again for a PREPARED or PRECOMMITTED branch (already durable); NOT_FOUND,
  // ABORTED or INVALID_ARGUMENT naming the branch otherwise.
  Status Prepare(const TxId& txid, const PrepareInfo& info);
  // A resource's PreCommit: PREPARED -> PRECOMMITTED; OK for a branch
  // PRECOMMITTED or COMMITTED already; refused otherwise, naming the branch.
  Status PreCommit(const TxId& txid);
  // Appends one Execute call's change sets and lock keys to a branch that
  // has a row (after its row's change set and its earlier ones).
  Status AppendChange(const std::string& txid, std::string_view redo, std::string_view undo,
                      const std::vector<std::string>& keys);
  // The undo change sets, newest first.
  Result<std::vector<std::string>> Undos(const std::string& txid);
  // Drops the branch's change rows and the change set in its row (it
  // rolled back).
  Status DeleteChanges(const std::string& txid);
  // Drops the branch's rows of txc_changes only, and says whether there
  // were any (the branch changed rows).
  Result<bool> DeleteChangeRowsIfAny(const std::string& txid);

  // Recovery: the branches not yet final (ACTIVE, PREPARED, PRE_COMMITTED),
  // oldest first, and the lock keys of one of them.
  Result<std::vector<RecoveredBranch>> LiveBranches();
  Result<std::vector<std::string>> LockKeys(const std::string& txid);

  // Heuristic decisions (txc_heuristics), kept until deleted.
  Status InsertHeuristic(const HeuristicRecord& r);
  Result<bool> DeleteHeuristic(const std::string& txid);  // false: there was none
  Result<std::vector<HeuristicRecord>> Heuristics();
  int64_t wall_ms() const { return WallMs(); }

  // Purges final rows older than the retention, at most once per interval
  // of `now` (the monotonic clock); the first call purges. One call scans
  // at most a window of rows; while windows come back full, the next call
  // goes on at once.
  void MaybePurge(Micros now);

 private:
  // See kBranchLogLayout: refuses a newer layout with live branches, else
  // stamps this one.
  Status CheckLayout();
  int64_t WallMs() const { return wall_clock_() / kMillis; }
  // Runs `each` on every row of `s` queried for `txid`; stops at its first error.
  Status EachRow(wal::Stmt& s, const std::string& txid,
                 const std::function<Status(wal::Stmt&)>& each);

  wal::Db* const db_;
  const std::function<Micros()> wall_clock_;
  std::unique_ptr<wal::Stmt> get_state_, changed_, clear_inline_, set_committed_, insert_heuristic_,
      delete_heuristic_, list_heuristics_, insert_branch_, insert_prepared_, set_state_, set_prepared_, next_seq_,
      insert_change_, has_changes_, list_undo_, delete_changes_, recover_branches_, change_keys_,
      commit_inline_, purge_scan_, purge_;
  Micros next_purge_;
  int64_t purge_from_ = 0;  // the rowid after which the next purge scans
};

}  // namespace txc::participant::internal
