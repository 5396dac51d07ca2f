// GroupCommitter on its own: grouping by weight, completions in submission
// order, the executor's drain tasks, the durability barrier, what Stop does in
// either mode, and the sticky failure.
#include "wal/group_committer.h"

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace txc::wal {
namespace {

struct TestOp : GroupOp {
  TestOp(int id, size_t w) : id(id), w(w) {}
  size_t weight() const override { return w; }
  int id;
  size_t w;
};

class ManualExecutor : public Executor {
 public:
  void Post(std::function<void()> task) override { tasks.push_back(std::move(task)); }
  // Runs one task; false when none is queued.
  bool RunOne() {
    if (tasks.empty()) return false;
    auto t = std::move(tasks.front());
    tasks.pop_front();
    t();
    return true;
  }
  std::deque<std::function<void()>> tasks;
};

// Records every group (the ids in it) and every delivery, in order.
struct Recorder {
  std::mutex mu;
  std::vector<std::vector<int>> groups;
  std::vector<int> delivered;
  bool durable = false;  // what RunGroup answers

  GroupCommitter::RunGroupFn Run() {
    return [this](GroupCommitter::Group& g) {
      std::lock_guard<std::mutex> l(mu);
      std::vector<int> ids;
      for (auto& op : g) ids.push_back(static_cast<TestOp&>(*op).id);
      groups.push_back(ids);
      return durable;
    };
  }
  GroupCommitter::DeliverFn Deliver() {
    return [this](GroupOp& op) {
      std::lock_guard<std::mutex> l(mu);
      delivered.push_back(static_cast<TestOp&>(op).id);
    };
  }
};

using Groups = std::vector<std::vector<int>>;

// Options for groups of one op on `ex`, whose barriers land in `barriers`.
GroupCommitter::Options BarrierOptions(ManualExecutor* ex,
                                       std::vector<std::function<void()>>* barriers) {
  GroupCommitter::Options o;
  o.executor = ex;
  o.max_weight = 1;
  o.durability_barrier = [barriers](std::function<void()> deliver) {
    barriers->push_back(std::move(deliver));
  };
  return o;
}

TEST(GroupCommitterTest, ExecutorDrainsGroupsByWeightNeverSplittingAnOp) {
  ManualExecutor ex;
  Recorder rec;
  GroupCommitter::Options o;
  o.executor = &ex;
  o.max_weight = 3;
  GroupCommitter c(o, rec.Run(), rec.Deliver());
  c.Start();  // no thread with an executor
  c.Enqueue(std::make_unique<TestOp>(1, 1));
  c.Enqueue(std::make_unique<TestOp>(2, 2));
  c.Enqueue(std::make_unique<TestOp>(3, 5));  // heavier than a group: alone
  c.Enqueue(std::make_unique<TestOp>(4, 1));
  EXPECT_EQ(ex.tasks.size(), 1u);  // one drain pending at a time
  EXPECT_TRUE(rec.groups.empty());  // never inside the call
  while (ex.RunOne()) {
  }
  EXPECT_EQ(rec.groups, (Groups{{1, 2}, {3}, {4}}));
  EXPECT_EQ(rec.delivered, (std::vector<int>{1, 2, 3, 4}));
  c.Enqueue(std::make_unique<TestOp>(5, 1));
  EXPECT_EQ(ex.tasks.size(), 1u);  // a new drain once the last one ended
  while (ex.RunOne()) {
  }
  EXPECT_EQ(rec.delivered.back(), 5);
}

TEST(GroupCommitterTest, DurableGroupDeliversOnlyPastTheBarrierAndHoldsTheNext) {
  ManualExecutor ex;
  Recorder rec;
  rec.durable = true;
  std::vector<std::function<void()>> barriers;
  GroupCommitter::Options o = BarrierOptions(&ex, &barriers);
  GroupCommitter c(o, rec.Run(), rec.Deliver());
  c.Enqueue(std::make_unique<TestOp>(1, 1));
  c.Enqueue(std::make_unique<TestOp>(2, 1));
  while (ex.RunOne()) {
  }
  EXPECT_EQ(rec.groups, (Groups{{1}}));  // the second group waits for the first's barrier
  EXPECT_TRUE(rec.delivered.empty());
  ASSERT_EQ(barriers.size(), 1u);
  barriers[0]();
  barriers[0]();  // a second call delivers nothing again
  EXPECT_EQ(rec.delivered, (std::vector<int>{1}));
  while (ex.RunOne()) {
  }
  EXPECT_EQ(rec.groups, (Groups{{1}, {2}}));
  ASSERT_EQ(barriers.size(), 2u);
  barriers[1]();
  EXPECT_EQ(rec.delivered, (std::vector<int>{1, 2}));
}

TEST(GroupCommitterTest, StopWithAnExecutorDropsQueuedOpsAndUndeliveredCompletions) {
  ManualExecutor ex;
  Recorder rec;
  rec.durable = true;
  std::vector<std::function<void()>> barriers;
  GroupCommitter::Options o = BarrierOptions(&ex, &barriers);
  {
    GroupCommitter c(o, rec.Run(), rec.Deliver());
    c.Enqueue(std::make_unique<TestOp>(1, 1));
    c.Enqueue(std::make_unique<TestOp>(2, 1));
    ASSERT_TRUE(ex.RunOne());
  }
  ASSERT_EQ(barriers.size(), 1u);
  barriers[0]();  // the committer is gone: nothing runs
  while (ex.RunOne()) {
  }
  EXPECT_EQ(rec.groups, (Groups{{1}}));
  EXPECT_TRUE(rec.delivered.empty());
}

TEST(GroupCommitterTest, ThreadRunsEveryQueuedOpBeforeStoppingAndDeliversInOrder) {
  Recorder rec;
  rec.durable = true;
  GroupCommitter::Options o;
  o.max_weight = 4;
  o.durability_barrier = [](std::function<void()> deliver) { deliver(); };
  {
    GroupCommitter c(o, rec.Run(), rec.Deliver());
    c.Start();
    for (int i = 1; i <= 50; ++i) c.Enqueue(std::make_unique<TestOp>(i, 1));
  }
  std::vector<int> want, grouped;
  for (int i = 1; i <= 50; ++i) want.push_back(i);
  for (const auto& g : rec.groups) {
    EXPECT_LE(g.size(), 4u);
    grouped.insert(grouped.end(), g.begin(), g.end());
  }
  EXPECT_EQ(grouped, want);
  EXPECT_EQ(rec.delivered, want);
}

// Deferred durability: even ops (the "commits") are held when their group
// is not synced; odd ones complete at once. The owner's sync answers durable.
struct Deferring : Recorder {
  int syncs = 0;
  std::vector<std::vector<int>> synced;  // the held ids each sync was for
  GroupCommitter::RunGroupFn RunDeferring() {
    return [this](GroupCommitter::Group& g) {
      bool d = Run()(g);
      for (auto& op : g) op->needs_durability = static_cast<TestOp&>(*op).id % 2 == 0;
      return d;
    };
  }
  std::function<bool(GroupCommitter::Group&)> Sync() {
    return [this](GroupCommitter::Group& held) {
      std::lock_guard<std::mutex> l(mu);
      ++syncs;
      std::vector<int> ids;
      for (auto& op : held) ids.push_back(static_cast<TestOp&>(*op).id);
      synced.push_back(ids);
      return true;
    };
  }
};

TEST(GroupCommitterTest, HeldOpsCompleteWithTheNextSyncedGroupFirst) {
  ManualExecutor ex;
  Deferring rec;
  GroupCommitter::Options o;
  o.executor = &ex;
  o.max_weight = 2;
  o.sync = rec.Sync();
  GroupCommitter c(o, rec.RunDeferring(), rec.Deliver());
  for (int i = 1; i <= 2; ++i) c.Enqueue(std::make_unique<TestOp>(i, 1));
  ASSERT_TRUE(ex.RunOne());  // group {1, 2}, not synced: 2 is held
  EXPECT_EQ(rec.delivered, (std::vector<int>{1}));
  c.Enqueue(std::make_unique<TestOp>(3, 1));
  rec.durable = true;  // the next group syncs
  while (ex.RunOne()) {
  }
  EXPECT_EQ(rec.delivered, (std::vector<int>{1, 2, 3}));  // the held one first
  EXPECT_EQ(rec.syncs, 0);  // the group's own sync covered it
}

TEST(GroupCommitterTest, HeldOpsAreSyncedWhenNothingElseComesOrAfterManyUnsyncedGroups) {
  ManualExecutor ex;
  Deferring rec;
  GroupCommitter::Options o;
  o.executor = &ex;
  o.max_weight = 1;
  o.sync = rec.Sync();
  {
    GroupCommitter c(o, rec.RunDeferring(), rec.Deliver());
    c.Enqueue(std::make_unique<TestOp>(2, 1));
    while (ex.RunOne()) {
    }
    EXPECT_EQ(rec.delivered, (std::vector<int>{2}));  // synced once nothing was queued
    EXPECT_EQ(rec.synced, (std::vector<std::vector<int>>{{2}}));
  }
  // A stream of unsynced groups: the held ops wait through at most 8 of them.
  Deferring rec2;
  o.sync = rec2.Sync();
  GroupCommitter c(o, rec2.RunDeferring(), rec2.Deliver());
  for (int i = 1; i <= 40; ++i) c.Enqueue(std::make_unique<TestOp>(i, 1));
  while (ex.RunOne()) {
  }
  ASSERT_GE(rec2.synced.size(), 2u);
  // Held from group {2} through {9}: 8 unsynced groups, then the sync.
  EXPECT_EQ(rec2.synced[0], (std::vector<int>{2, 4, 6, 8}));
  EXPECT_EQ(rec2.delivered.size(), 40u);
}

TEST(GroupCommitterTest, ThreadSyncsHeldOpsOnceIdleAndBeforeStopping) {
  Deferring rec;
  GroupCommitter::Options o;
  o.sync = rec.Sync();
  o.sync_delay = std::chrono::microseconds(1000);
  {
    GroupCommitter c(o, rec.RunDeferring(), rec.Deliver());
    c.Start();
    c.Enqueue(std::make_unique<TestOp>(2, 1));
    // Bounded wait for the idle sync (the delay is 1 ms).
    for (int i = 0; i < 5000; ++i) {
      {
        std::lock_guard<std::mutex> l(rec.mu);
        if (!rec.delivered.empty()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::lock_guard<std::mutex> l(rec.mu);
    EXPECT_EQ(rec.delivered, (std::vector<int>{2}));
    EXPECT_EQ(rec.syncs, 1);
  }
  Deferring rec2;
  o.sync = rec2.Sync();
  o.sync_delay = std::chrono::microseconds(60LL * 1000 * 1000);  // never idle long enough
  {
    GroupCommitter c(o, rec2.RunDeferring(), rec2.Deliver());
    c.Start();
    c.Enqueue(std::make_unique<TestOp>(4, 1));
  }  // Stop syncs what it holds before the thread ends
  EXPECT_EQ(rec2.delivered, (std::vector<int>{4}));
  EXPECT_EQ(rec2.syncs, 1);
}

TEST(GroupCommitterTest, FirstFailureSticks) {
  Recorder rec;
  GroupCommitter c({}, rec.Run(), rec.Deliver());
  EXPECT_FALSE(c.failed());
  EXPECT_TRUE(c.Fail(Status::StorageFailed("disk full")));
  EXPECT_FALSE(c.Fail(Status::StorageFailed("later")));
  EXPECT_TRUE(c.failed());
  EXPECT_EQ(c.fail_reason(), "disk full");
}

}  // namespace
}  // namespace txc::wal
