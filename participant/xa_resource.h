// XaResource: a ResourceManager over a database that keeps prepared
// transactions itself (PostgreSQL's PREPARE TRANSACTION, MariaDB's XA), as
// txagent's "postgres:" and "mariadb:" resources. The dialect is an
// xa::Driver (participant/xa_driver.h); everything else is here.
//
// Where things live. A branch's data lives in the database's own transaction,
// named by a deterministic gid (xa::MakeGid: "txc:<epoch>.<seq>:<resource>"),
// so the agent recognises its own prepared transactions after any crash. The
// agent's own SQLite file (the resource's WAL, `wal_path`) keeps each branch's
// state, gid, participants and the statements it ran (for `txadmin wal dump`
// and diagnosis), plus heuristic records:
//   xa_branches(txid TEXT PRIMARY KEY, gid TEXT, state INTEGER, info BLOB,
//               protocol INTEGER, updated INTEGER)
//   xa_statements(txid TEXT, seq INTEGER, statements BLOB, PRIMARY KEY(txid, seq))
//   xa_heuristics(txid TEXT PRIMARY KEY, outcome INTEGER, reason TEXT, who TEXT, at_ms INTEGER)
//   xa_meta(key TEXT PRIMARY KEY, value INTEGER): 'xa_wal_layout' (kXaWalLayout)
// info holds proto::PreparedRecord, statements a proto::ExecuteRequest (only
// its statements set), both through common/codec.h. States: ACTIVE 1,
// PREPARED 2, COMMITTED 4, ABORTED 5 (as BranchState), and COMMITTING 6,
// ROLLING_BACK 7 (a decision being carried out), GONE 8 (see below).
//
// Durability points (DESIGN.md), per branch:
//   Prepare   the database's PREPARE (durable there), then the WAL's PREPARED
//             row, synced; only then OK (the agent's YES vote). A crash in
//             between leaves a prepared transaction the WAL calls ACTIVE or
//             does not know: Recover hands it to the agent as in doubt, and
//             the group (which never heard a YES) aborts it.
//   Commit    the WAL's COMMITTING intent, synced, then COMMIT PREPARED; then
//             OK. COMMITTED is written unsynced: COMMITTING plus "gone from
//             the database" means this agent committed it.
//   Rollback  of a prepared branch: ROLLING_BACK synced, then ROLLBACK
//             PREPARED. Of an ACTIVE branch: the database's ROLLBACK, then
//             ABORTED unsynced (presumed abort).
// So "PREPARED in the WAL, gone from the database" always means someone
// outside txcoord ended it: never guessed, it is recorded as a heuristic
// (outcome UNKNOWN, who "database") and reported.
//
// Reconciliation, at Recover and every reconcile_interval: the database's
// prepared list against the WAL.
//   ours, WAL COMMITTING/COMMITTED          -> COMMIT PREPARED (finishing)
//   ours, WAL ROLLING_BACK/ABORTED          -> ROLLBACK PREPARED (finishing)
//   ours, WAL PREPARED                      -> in doubt: the agent asks the group
//   ours, WAL ACTIVE or no row (at Recover) -> in doubt with no participants:
//                                              the group aborts (never voted)
//   WAL PREPARED, not in the database       -> heuristic "gone", reported
//   not ours (another gid, or another resource's) -> foreign: listed, logged,
//                                              never touched
// Between starts, a prepared transaction of ours that the WAL does not know
// is logged and left for the next start (only the agent can ask the group).
//
// Threading: each operation runs on one of the resource's worker threads
// (one per connection of the pool, max_connections), never on the caller's;
// callbacks run on a worker or on the WAL's group-commit thread. A branch
// keeps its connection from its first Execute until Prepare (and, for a
// driver whose prepared branches stay on their session, until Commit or
// Rollback). Recover runs on the caller's thread (at start, before the agent
// serves). Row locks are the database's: a statement waits for a held row up
// to the driver's lock timeout, on its worker, then fails LOCK_TIMEOUT.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/time.h"
#include "participant/resource_manager.h"
#include "participant/xa_driver.h"

namespace txc::participant {

struct XaResourceOptions {
  // The resource's SQLite WAL file (created if needed).
  std::string wal_path;
  // Most database connections (and worker threads) for branches. A new
  // branch that finds them all taken waits (without holding a worker) until
  // one is released, up to acquire_timeout, then fails UNAVAILABLE (its
  // transaction aborts). Committing or rolling back a prepared branch may
  // open a quarter more, so decisions never wait behind new work.
  // Default: 32.
  size_t max_connections = 32;
  Micros acquire_timeout = 5 * kSeconds;
  // How often the database's prepared list is reconciled with the WAL.
  // 0: only at Recover. Default: 10 s.
  Micros reconcile_interval = 10 * kSeconds;
};

// What reconciliation found, for logs, tests and metrics.
struct XaReconcileStats {
  uint64_t runs = 0;
  uint64_t committed = 0;     // finished with COMMIT PREPARED
  uint64_t rolled_back = 0;   // finished with ROLLBACK PREPARED
  uint64_t in_doubt = 0;      // handed to the agent at Recover
  uint64_t gone = 0;          // PREPARED in the WAL, gone from the database
  uint64_t unknown = 0;       // ours in the database, unknown to the WAL, between starts
  std::vector<std::string> foreign;  // the last run's foreign prepared transactions
};

class XaResource : public ResourceManager {
 public:
  // Opens the WAL, connects once and checks the server (xa::Driver::CheckServer):
  // a resource that cannot work fails here, at agent start, naming itself.
  // A WAL that a newer version laid out (a higher xa_wal_layout) is refused
  // while it holds a branch that has not ended (any state but COMMITTED,
  // ABORTED and GONE), before the database is dialled.
  static Result<std::unique_ptr<XaResource>> Open(const std::string& name,
                                                  std::unique_ptr<xa::Driver> driver,
                                                  XaResourceOptions options);
  ~XaResource() override;

  // The layout of the WAL this code writes, stamped in xa_meta('xa_wal_layout')
  // at open: raised by every change to the xa_* tables that an older version
  // would misread. WALs from before the stamp (2026-12-06) have none; this
  // code reads them. A WAL stamped higher is used only when no branch in it
  // is live (its stamp is then lowered to this one): later layouts must keep
  // xa_branches.state's final values 4, 5 and 8.
  static constexpr int64_t kXaWalLayout = 1;

  const std::string& name() const override;
  Result<std::vector<RecoveredBranch>> Recover() override;
  void Execute(const TxId& txid, std::vector<proto::Statement> statements,
               Callback<ExecuteResult> done) override;
  void Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) override;
  void Commit(const TxId& txid, Callback<Status> done) override;
  void Rollback(const TxId& txid, Callback<Status> done) override;
  void HeuristicDecide(const HeuristicRecord& record, Callback<Status> done) override;
  Result<std::vector<HeuristicRecord>> Heuristics() override;
  std::optional<HeuristicRecord> HeuristicOf(const TxId& txid) const override;
  void ForgetHeuristic(const TxId& txid, Callback<Status> done) override;
  std::vector<std::pair<std::string, uint64_t>> Counters() const override;

  // Runs one reconciliation now, on the caller's thread (tests; the periodic
  // one runs on its own thread).
  Status ReconcileNow();
  XaReconcileStats reconcile_stats() const;
  size_t connections_open() const;

 private:
  class Impl;
  explicit XaResource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace txc::participant
