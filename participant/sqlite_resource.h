// SqliteResource: the built-in ResourceManager for an SQLite database file.
//
// Data and the branch log live in the same database file, so a data change
// and its undo/redo record commit atomically in one local transaction (as
// DESIGN.md, "Participant WAL"). Log tables (created on open, excluded from
// change capture):
//   txc_branches(txid TEXT PRIMARY KEY, epoch, seq, state INTEGER, participants BLOB,
//                protocol INTEGER, updated INTEGER, changed INTEGER,
//                redo BLOB, undo BLOB, keys BLOB)
//   txc_changes(txid TEXT, seq INTEGER, redo BLOB, undo BLOB, keys BLOB, PRIMARY KEY(txid, seq))
//   txc_meta(key TEXT PRIMARY KEY, value INTEGER): 'branch_log_layout'
//     (BranchLog::kBranchLogLayout; a newer layout with live branches is refused)
// The call that creates a branch (a one-shot's Execute and Prepare, or an
// interactive branch's first Execute) keeps its change set in the branch's
// txc_branches row until it ends (seq 1); each later Execute call that
// changed rows adds a txc_changes row.
// participants and keys hold proto::PreparedRecord and proto::ChangeKeysRecord
// (protocol/txcoord.thrift, through common/codec.h); files of the older
// layout still recover.
// Redo is the SQLite changeset of one Execute call (captured through the
// pre-update hook, or a session: capture_with_session); undo its inverse.
// A table without a PRIMARY KEY, or a row whose PRIMARY KEY holds NULL,
// cannot be captured: a statement that changes one fails with SQL_ERROR.
//
// Row locks: an exclusive lock per changed row (table + primary key), owned by
// the branch until Commit/Rollback. A statement runs inside a SAVEPOINT; if
// the rows it changed are locked by another branch, the savepoint is rolled
// back and Execute answers CONFLICT with the holder: waiting is the agent's
// decision. Reads take no locks (read-uncommitted across branches, as
// Seata's AT mode); for a checked read use an UPDATE that changes the row
// (a row left unchanged is not in the changeset, so it is not locked) or
// expect_rows. Inserting a key another open branch inserted fails with
// SQL_ERROR (UNIQUE constraint), not CONFLICT. DDL runs but is not undone.
//
// Key locks, so that an undo can always restore its before-image: besides its
// rows, a branch locks (1) the old and new values of every UNIQUE index it
// changes (table + index columns + values; a value with a NULL is not locked,
// NULLs never collide), and (2) for every FOREIGN KEY of a row it inserts,
// deletes or changes, the parent key that row refers to (before and after),
// under the parent's own row or unique-key lock. So another branch cannot
// take a unique value this branch freed, nor delete (or re-key) a parent this
// branch's rows referred to, nor refer to a parent row this branch inserted:
// it gets CONFLICT and waits. Unique indexes on expressions are not locked.
//
// Rollback applies the undo or nothing: if a row cannot be restored exactly
// (a UNIQUE or FOREIGN KEY constraint would break, or a row it must restore
// was deleted, because someone wrote the file behind txcoord's back), the
// whole undo is abandoned, the branch keeps its undo and locks, and Rollback
// fails with CONFLICT naming the table, the row and the constraint; once the
// conflicting row is fixed a retried Rollback succeeds. A row merely changed
// outside is overwritten with the before-image (logged).
//
// Runaway statements: the statements of one Execute call may run for
// max_execute_time; past it they are interrupted and the call fails with
// TIMEOUT, nothing of it applied, so the single worker serves the other
// branches again.
//
// Group commit (wal/group_committer.h, shared with the coordinator's
// LogStore): one worker takes every queued operation (up to
// max_group_ops), runs them in one BEGIN IMMEDIATE ... COMMIT (each in its own
// SAVEPOINT), syncs once if any of them needs durability (Prepare,
// ExecuteAndPrepare, PreCommit; a Commit's sync is deferred, see
// defer_commit_sync), passes the durability barrier, then runs the callbacks.
// The worker is the resource's own thread, or (options.executor) a drain task
// posted to an executor: the simulator runs the same group commit as events.
//
// Durability barrier: a group that needs durability delivers its callbacks
// only once options.durability_barrier says its COMMIT is durable, and no
// later group starts before that (as the worker thread is held in fsync). In
// production SQLite's fsync has returned inside COMMIT, so there is no
// barrier; under the simulator's VFS a sync completes later, as an event.
//
// Clocks: every clock the resource reads comes from its options (the steady
// clock for purges and the statement time limit, the wall clock for the
// `updated` column), so a simulated run is deterministic.
//
// Threading: without an executor, public methods may be called from any
// thread and callbacks run on the worker thread. With one, see Executor.
//
// Code, by job: sqlite_resource.cc the operations and the branch state
// machine (Execute, Prepare, Commit, Rollback) and the group transaction;
// sqlite_branch_log.h the branch log tables and records; sqlite_changes.h
// statement execution, change capture, key locks and the undo;
// wal/group_committer.h the queue and the worker.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/time.h"
#include "participant/resource_manager.h"
#include "wal/group_committer.h"

namespace txc::participant {

// Where the resource's group commits run instead of its own thread (Post
// runs a task later, never inside the call; tasks run one at a time).
using Executor = wal::Executor;

struct SqliteResourceOptions {
  // Most operations one group commit takes. Default: 512.
  size_t max_group_ops = 512;
  // Benchmark only: skip fsync. Never in production. Default: false.
  bool unsafe_no_sync = false;
  // Longest the statements of one Execute (or ExecuteAndPrepare) call may run
  // together. Past it the running statement is interrupted and the call fails
  // with TIMEOUT naming it; nothing of the call is applied (the branch keeps
  // earlier calls' work). Bounds how long one runaway statement (a recursive
  // CTE, a huge join) holds the resource's only worker, and with it every
  // other branch's prepare and commit. 0: no limit. Default: 10 s.
  Micros max_execute_time = 10 * kSeconds;
  // How long a group waits for another process that holds the database's
  // write lock; then its operations fail with UNAVAILABLE, nothing applied,
  // and can be retried. Default: 5 s.
  Micros busy_timeout = 5 * kSeconds;
  // Whether a branch's statements may change the schema (CREATE, DROP,
  // ALTER, REINDEX, ANALYZE, of tables, indexes, views, triggers and virtual
  // tables). Schema changes are not undone by a rollback and are not locked
  // against other branches, so a production resource whose schema is
  // managed outside txcoord should refuse them (txagent --resource
  // NAME=sqlite:PATH?ddl=deny); refused, the statement fails with SQL_ERROR
  // naming the option, and nothing of its Execute call is applied. Allowed
  // by default because set-up scripts and the demos create their tables
  // through transactions. Whatever this says, every branch is refused
  // ATTACH/DETACH, transaction control, writes to the branch log tables,
  // PRAGMAs other than reads of settings and of the schema, and
  // load_extension() (extension loading is off on the connection).
  // Default: true.
  bool allow_ddl = true;
  // Most bytes the rows of one Execute call may hold (text and blobs by
  // their size, numbers 8 bytes each, plus 8 per value). Past it the call
  // fails with INVALID_ARGUMENT naming the limit, nothing of it applied:
  // a SELECT over a large table would otherwise be held whole in the agent's
  // memory, and a reply over the client's 64 MiB frame limit never arrives.
  // 0: no limit. Default: 32 MiB.
  size_t max_result_bytes = 32u << 20;
  // The monotonic clock max_execute_time and the purge interval of final
  // branch rows are measured on (the simulator passes its virtual clock).
  // Default: empty, the steady clock.
  std::function<Micros()> clock;
  // Wall-clock time, microseconds since the Unix epoch: the `updated` column
  // of txc_branches, which decides when a final branch row is old enough to
  // purge. Default: empty, the system clock.
  std::function<Micros()> wall_clock;
  // Runs the group commits as tasks (a drain task posted when an operation is
  // queued and none is pending) instead of on a worker thread; must outlive
  // the resource. Then Execute..Rollback, Recover and the destructor must be
  // called on the executor's thread (or while none of its tasks runs), and
  // callbacks run in its tasks, never inside the call that queued them. The
  // destructor drops queued operations and callbacks not yet delivered (a
  // crashed node runs nothing further). Default: nullptr, a worker thread
  // (the destructor then runs every queued operation first).
  Executor* executor = nullptr;
  // Called, on the worker, after the COMMIT of a group that needs durability
  // (it holds a Prepare, Commit or ExecuteAndPrepare), with `deliver`, which
  // runs the group's callbacks: call it once the COMMIT is on stable storage.
  // No later group runs until it is called; if it never is (the power failed
  // first), neither are the callbacks. With the worker thread `deliver` must
  // be called (the thread waits for it); with an executor it may be called
  // from any task of that executor. Default: empty, deliver at once (SQLite's
  // fsync returned inside COMMIT). The simulator passes a hook that waits for
  // SimVfs::WhenDurable.
  std::function<void(std::function<void()> deliver)> durability_barrier;
  // Deferred commit sync. A group holding only Commits (and Executes and
  // Rollbacks) is written without a sync; each Commit's callback, the ack
  // the coordinator may END the transaction on, waits until a later group's
  // sync covers it (the WAL is written in order), or until the worker has
  // been idle for commit_sync_delay and syncs the WAL for it. So a COMMIT
  // costs no fsync of its own and the next PREPARE never waits behind one,
  // and still no ack leaves before its COMMITTED record is durable: after a
  // power loss a branch whose COMMIT was lost is PREPARED again, and the
  // coordinator, never acked, still knows its outcome. With an executor, a
  // drain that finds nothing queued syncs at once. Defaults: true, 2 ms.
  bool defer_commit_sync = true;
  Micros commit_sync_delay = 2 * kMillis;
  // Test-only, never in production: held Commits are acknowledged without
  // the sync (the simulator's injected bug ack-commit-before-sync; a power
  // loss before the next sync loses a COMMIT the coordinator forgot).
  // Default: false.
  bool test_only_ack_commit_before_sync = false;
  // Test-only, never in production: Rollback marks the branch ABORTED,
  // releases its locks and reports success WITHOUT applying its undo (the
  // simulator's injected bug forget-undo, which its checker must catch).
  // Default: false.
  bool test_only_forget_undo = false;
  // Test-only, never in production: the old undo that lost rows (the
  // simulator's injected bug skip-undo-on-conflict). A branch locks no
  // unique-key or parent-key values, only its rows, so another branch may
  // take a unique value this one freed; and Rollback skips (and reports
  // success for) an undo row that would break a constraint, so the row this
  // branch deleted is gone for good. Default: false.
  bool test_only_skip_undo_on_conflict = false;
  // Captures each Execute call's changes with the SQLite session extension
  // (a session per call) instead of the pre-update hook. Both write the same
  // change set; the session prepares statements on every call, so it costs
  // more. Kept as the reference the tests compare the hook against.
  // Default: false.
  bool capture_with_session = false;
};

class SqliteResource : public ResourceManager {
 public:
  // Opens (creating if needed) the database at `path`.
  static Result<std::unique_ptr<SqliteResource>> Open(const std::string& name,
                                                      const std::string& path,
                                                      SqliteResourceOptions options = {});
  // Without an executor: runs every queued operation, then stops the worker.
  // With one: drops queued operations and undelivered callbacks.
  ~SqliteResource() override;

  const std::string& name() const override;
  Result<std::vector<RecoveredBranch>> Recover() override;
  void Execute(const TxId& txid, std::vector<proto::Statement> statements,
               Callback<ExecuteResult> done) override;
  void Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) override;
  void ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                         const PrepareInfo& info, Callback<ExecuteResult> done) override;
  void Commit(const TxId& txid, Callback<Status> done) override;
  void PreCommit(const TxId& txid, Callback<Status> done) override;
  bool SupportsPreCommit() const override { return true; }
  void Rollback(const TxId& txid, Callback<Status> done) override;
  void HeuristicDecide(const HeuristicRecord& record, Callback<Status> done) override;
  void ForgetHeuristic(const TxId& txid, Callback<Status> done) override;
  Result<std::vector<HeuristicRecord>> Heuristics() override;

  // Counters for benchmarks and tests.
  uint64_t groups_committed() const;
  uint64_t syncs() const;
  size_t locks_held() const;

  // Test-only: the next durable group fails as a full disk would (sticky).
  void InjectFailureForTest();

 private:
  class Impl;
  explicit SqliteResource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace txc::participant
