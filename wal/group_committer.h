// GroupCommitter: the group commit shared by the coordinator's LogStore and
// the participant's SqliteResource.
//
// Writers queue operations; one worker takes every queued operation (up to
// max_weight, an operation never split across groups, a group never empty)
// and hands them to the owner's RunGroup, which writes them in one local
// transaction with a single sync and fixes each operation's outcome. Then the
// worker passes every operation, in submission order, to the owner's Deliver
// (which runs or posts its completion), except those held for a later sync
// (deferred durability, below), which come after.
//
// The worker is the committer's own thread, or (Options::executor) a drain
// task posted to an executor when an operation is queued and none is
// pending: the simulator runs the same group commit as its own events.
//
// Durability barrier: when RunGroup answers that its group needs durability
// and Options::durability_barrier is set, the completions are delivered only
// once the barrier calls `deliver`, and no later group starts before that.
//
// Deferred durability (Options::sync): RunGroup may write a group without a
// sync while some of its operations must not complete before one (it marks
// them GroupOp::needs_durability). Those completions are held, and
// delivered, after the others of their group, once a later group is synced
// or once `sync` has made the written groups durable: with the thread after
// no operation arrived for Options::sync_delay, with an executor at the end
// of a drain that finds nothing queued; and in both, before the next group
// once they have waited through kMaxHeldGroups unsynced groups (or, with the
// thread, for sync_delay), so a stream of operations that never sync cannot
// hold them for long. A synced group delivers the held completions first
// (they are earlier in the log file), then its own.
//
// Sticky failure: Fail() records the first reason a group could not be
// written; from then on failed() is true and the owner refuses every write,
// naming fail_reason(), until the process restarts.
//
// Threading: Enqueue, failed() may be called from any thread. Without an
// executor the destructor runs every queued operation, then stops the thread;
// with one it must be called on the executor's thread (or while none of its
// tasks runs) and drops queued operations and undelivered completions (a
// crashed node runs nothing further).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace txc::wal {

// Where a group committer's work runs instead of its own thread.
class Executor {
 public:
  virtual ~Executor() = default;
  // Runs `task` later: never inside this call. Tasks run one at a time.
  virtual void Post(std::function<void()> task) = 0;
};

// One queued operation; owners derive their own.
class GroupOp {
 public:
  virtual ~GroupOp() = default;
  // What the operation counts for against Options::max_weight.
  virtual size_t weight() const { return 1; }
  // Set by RunGroup on an operation of a group it did not sync: its
  // completion waits for a later sync (deferred durability, above).
  bool needs_durability = false;
};

class GroupCommitter {
 public:
  using Group = std::vector<std::unique_ptr<GroupOp>>;

  struct Options {
    // Most weight one group takes (at least one operation). Minimum 1.
    size_t max_weight = 512;
    // Runs the drains as tasks instead of on a thread; must outlive the committer.
    Executor* executor = nullptr;
    // Called after a group that needs durability, with `deliver`, which runs
    // the group's completions: call it once the group is on stable storage.
    // With the thread it must be called (the thread waits for it); with an
    // executor it may be called from any task of that executor. Empty:
    // deliver at once.
    std::function<void(std::function<void()> deliver)> durability_barrier;
    // Deferred durability: makes every group written so far durable (the
    // log file's fsync) for `held`, the operations waiting for it; true
    // when it synced (the durability barrier applies), false when it could
    // not, having set each held operation's outcome (a storage failure).
    // Required when RunGroup may set GroupOp::needs_durability.
    std::function<bool(Group& held)> sync;
    // With the thread: how long held completions wait for another group to
    // sync them before `sync` runs. Default: 2 ms.
    std::chrono::microseconds sync_delay{2000};
  };

  // Writes one group in one transaction and one sync, fixing every
  // operation's outcome; true when the completions must wait for durability.
  using RunGroupFn = std::function<bool(Group& group)>;
  // Delivers one operation's outcome (runs or posts its completion).
  using DeliverFn = std::function<void(GroupOp& op)>;

  GroupCommitter(Options options, RunGroupFn run_group, DeliverFn deliver);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Starts the worker thread (without an executor). Call once, after the
  // owner is ready to run groups.
  void Start();

  void Enqueue(std::unique_ptr<GroupOp> op);

  // What the destructor does, for an owner whose groups need members it
  // destroys first: without an executor runs every queued operation, then
  // stops the thread; with one drops queued operations and undelivered
  // completions. Then nothing runs any more. Idempotent.
  void Stop();

  // Sticky failure. Fail() is for RunGroup; true when this call failed the
  // committer (the first reason sticks: log it then).
  bool Fail(const Status& why);
  bool failed() const { return failed_.load(); }
  // Set once, before failed() turns true: read it on the worker, or after failed().
  const std::string& fail_reason() const { return fail_reason_; }

 private:
  void Run();  // the thread's loop
  void PostDrain();
  void Drain();  // one executor task
  void TakeGroup(Group* group);  // under mu_
  void WaitForBarrier();
  void DeliverAll(Group& group);
  // After RunGroup: a synced group takes the held operations in front of its
  // own; an unsynced one moves its needs_durability operations to held_.
  void Settle(Group* group, bool durable);

  const Options options_;
  const RunGroupFn run_group_;
  const std::shared_ptr<const DeliverFn> deliver_;

  std::mutex mu_;  // guards queue_, stop_, drain_pending_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<GroupOp>> queue_;
  bool stop_ = false;
  std::thread thread_;  // without an executor
  // With an executor: a drain task is posted, running, or waiting for its
  // group's durability barrier. At most one at a time.
  bool drain_pending_ = false;
  // Written, waiting for a sync before their completions (the worker's own):
  // since when, and through how many unsynced groups.
  Group held_;
  std::chrono::steady_clock::time_point held_since_;
  int held_groups_ = 0;
  // Bound on held_groups_ before the held operations are synced anyway.
  static constexpr int kMaxHeldGroups = 8;
  // True when the held operations have waited long enough (see above).
  bool HeldTooLong() const;
  // False once destroyed; shared with posted tasks and barrier continuations.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  std::atomic<bool> failed_{false};
  std::string fail_reason_;
};

}  // namespace txc::wal
