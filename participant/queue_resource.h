// QueueResource: a durable transactional message queue, a ResourceManager
// that is not SQL (txagent --resource NAME=queue:PATH).
//
// A branch enqueues and dequeues messages on named queues; what it does takes
// effect only if its transaction commits:
//   ENQUEUE [Text queue, Text|Blob payload] -> columns [id], one row [Int id],
//       rows_changed 1. The message is invisible to every branch (its own
//       too, and COUNT) until the branch commits; dropped if it rolls back.
//   DEQUEUE [Text queue] -> columns [id, payload]: no row when the queue has
//       no committed, unclaimed message (rows_changed 0); else the oldest one
//       (rows_changed 1), which the branch claims: no other branch gets it.
//       Deleted when the branch commits; unclaimed, in its old place, when
//       it rolls back.
//   COUNT [Text queue] -> columns [n], one row [Int n]: the committed
//       messages no open branch has claimed. rows_changed 0.
// The command word (Statement.sql) is case-insensitive; params positional.
// Anything else fails with SQL_ERROR naming the statement and what the
// command takes, like an SQL error of the SQLite resource: nothing of that
// Execute call is applied and the branch keeps its earlier calls' work.
// expect_rows is checked against rows_changed (EXPECTATION_FAILED), so
// DEQUEUE with expect_rows 1 fails a branch that finds the queue empty.
//
// Order: a queue is FIFO in commit order. A message gets its place when the
// branch that enqueued it commits (a branch's own messages keep the order it
// enqueued them in), so a consumer never finds a message placed before one
// it already took. Message ids come from enqueue and are never reused.
//
// Storage: one SQLite file (WAL mode) holds the messages and the branch log
// (the SQLite resource's txc_branches/txc_heuristics tables, see
// sqlite_branch_log.h):
//   txc_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT, payload,
//                pos INTEGER, enqueued_by TEXT, claimed_by TEXT)
// pos is the delivery order, NULL until the enqueuing branch commits
// (enqueued_by names that branch meanwhile); claimed_by names the open branch
// that dequeued the message. A branch's pending work is these rows, so it is
// written by the same local transaction as its log record.
//
// Durability: Execute is not synced (an ACTIVE branch is rolled back after a
// crash). Prepare answers OK only once the PREPARED record, with the
// participants, is fsync'd (synchronous=FULL), and with it every row of the
// branch's pending enqueues and claims, written by earlier (WAL-ordered)
// transactions. Commit answers OK once durable. Rollback is not synced
// (presumed abort), and leaves an ABORTED tombstone, also for a txid it has
// never seen.
//
// Recovery: Recover() returns every ACTIVE, PREPARED and PRECOMMITTED branch.
// Their claims are still in the file, so they are held again at once (no
// other branch can dequeue those messages) and their enqueues stay invisible
// until Commit; the agent rolls the ACTIVE ones back (which releases their
// claims and drops their enqueues) and asks the coordinator about the rest.
//
// Group commit: as the SQLite resource (wal/group_committer.h), one worker
// thread takes every queued operation, runs them in one BEGIN IMMEDIATE ...
// COMMIT, each in its own SAVEPOINT, and syncs once if any needs durability.
// Operations run one at a time on that thread: that, not locks, is why two
// branches never claim the same message. A failed local COMMIT or sync makes
// the resource refuse every later operation with STORAGE_FAILED until
// restarted.
//
// Threading: public methods may be called from any thread; callbacks run on
// the worker thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/time.h"
#include "participant/resource_manager.h"

namespace txc::participant {

struct QueueResourceOptions {
  // Most operations one group commit takes. Default: 512.
  size_t max_group_ops = 512;
  // Largest payload ENQUEUE takes; a larger one fails with SQL_ERROR naming
  // both sizes. Bounds the memory of one statement and of one DEQUEUE reply.
  // Default: 1 MiB.
  size_t max_payload_bytes = 1 << 20;
  // Most bytes the rows of one Execute call may hold (DEQUEUE returns a
  // whole payload; ten thousand of them in one call would be 10 GB). Past it
  // the call fails with INVALID_ARGUMENT naming the limit, nothing of it
  // applied (no message claimed). 0: no limit. Default: 32 MiB.
  size_t max_result_bytes = 32u << 20;
  // How long a group waits for another process that holds the file's write
  // lock; then its operations fail with UNAVAILABLE, nothing applied, and can
  // be retried. Default: 5 s.
  Micros busy_timeout = 5 * kSeconds;
};

class QueueResource : public ResourceManager {
 public:
  // Queue names are 1-128 bytes.
  static constexpr size_t kMaxQueueNameBytes = 128;

  // Opens (creating if needed) the queue file at `path`.
  static Result<std::unique_ptr<QueueResource>> Open(const std::string& name,
                                                     const std::string& path,
                                                     QueueResourceOptions options = {});
  // Runs every queued operation, then stops the worker.
  ~QueueResource() override;

  const std::string& name() const override;
  Result<std::vector<RecoveredBranch>> Recover() override;
  void Execute(const TxId& txid, std::vector<proto::Statement> statements,
               Callback<ExecuteResult> done) override;
  void Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) override;
  // Both in one local transaction and one sync.
  void ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                         const PrepareInfo& info, Callback<ExecuteResult> done) override;
  void PreCommit(const TxId& txid, Callback<Status> done) override;
  bool SupportsPreCommit() const override { return true; }
  void Commit(const TxId& txid, Callback<Status> done) override;
  void Rollback(const TxId& txid, Callback<Status> done) override;
  void HeuristicDecide(const HeuristicRecord& record, Callback<Status> done) override;
  void ForgetHeuristic(const TxId& txid, Callback<Status> done) override;
  Result<std::vector<HeuristicRecord>> Heuristics() override;

  // Counters for tests and benchmarks.
  uint64_t groups_committed() const;
  uint64_t syncs() const;

  // Test-only: the next durable group fails as a full disk would (sticky).
  void InjectFailureForTest();

 private:
  class Impl;
  explicit QueueResource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace txc::participant
