#include "wal/group_committer.h"

#include <algorithm>
#include <utility>

namespace txc::wal {

GroupCommitter::GroupCommitter(Options options, RunGroupFn run_group, DeliverFn deliver)
    : options_(std::move(options)), run_group_(std::move(run_group)),
      deliver_(std::make_shared<const DeliverFn>(std::move(deliver))) {}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Stop() {
  *alive_ = false;  // a drain task or barrier still queued finds us gone
  if (options_.executor != nullptr) {
    // A crashed (simulated) node runs nothing further: queued operations
    // are dropped, their completions never called.
    std::lock_guard<std::mutex> l(mu_);
    queue_.clear();
    held_.clear();
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GroupCommitter::Start() {
  if (options_.executor == nullptr && !thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void GroupCommitter::Enqueue(std::unique_ptr<GroupOp> op) {
  if (options_.executor != nullptr) {
    bool post = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(std::move(op));
      post = !std::exchange(drain_pending_, true);
    }
    if (post) PostDrain();
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(op));
  }
  cv_.notify_one();
}

bool GroupCommitter::Fail(const Status& why) {
  if (failed_.load()) return false;
  fail_reason_ = why.message();
  failed_.store(true);
  return true;
}

void GroupCommitter::TakeGroup(Group* group) {
  size_t max = std::max<size_t>(options_.max_weight, 1);
  size_t weight = 0;
  while (!queue_.empty()) {
    size_t w = queue_.front()->weight();
    if (!group->empty() && weight + w > max) break;
    weight += w;
    group->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
}

void GroupCommitter::DeliverAll(Group& group) {
  for (auto& op : group) (*deliver_)(*op);
}

void GroupCommitter::Settle(Group* group, bool durable) {
  if (durable) {
    if (held_.empty()) return;
    for (auto& op : *group) held_.push_back(std::move(op));
    *group = std::exchange(held_, {});
    held_groups_ = 0;
    return;
  }
  if (!options_.sync) return;  // no deferred durability: nothing is held
  const bool was_empty = held_.empty();
  Group now;
  for (auto& op : *group) {
    (op->needs_durability ? held_ : now).push_back(std::move(op));
  }
  *group = std::move(now);
  if (held_.empty()) return;
  if (was_empty) {
    held_since_ = std::chrono::steady_clock::now();
    held_groups_ = 0;
  }
  ++held_groups_;
}

bool GroupCommitter::HeldTooLong() const {
  if (held_.empty()) return false;
  if (held_groups_ >= kMaxHeldGroups) return true;
  return options_.executor == nullptr &&
         std::chrono::steady_clock::now() - held_since_ >= options_.sync_delay;
}

void GroupCommitter::Run() {
  for (;;) {
    Group group;
    bool sync_only = false;
    {
      std::unique_lock<std::mutex> l(mu_);
      auto ready = [this] { return stop_ || !queue_.empty(); };
      if (held_.empty()) {
        cv_.wait(l, ready);
      } else {
        cv_.wait_for(l, options_.sync_delay, ready);
      }
      if (queue_.empty()) {
        if (held_.empty()) return;  // stopping, and drained
        sync_only = true;           // idle for sync_delay (or stopping)
      } else if (HeldTooLong()) {
        sync_only = true;  // the queue waits for the next turn
      } else {
        TakeGroup(&group);
      }
    }
    bool durable;
    if (sync_only) {
      group = std::exchange(held_, {});
      held_groups_ = 0;
      durable = options_.sync(group);
    } else {
      durable = run_group_(group);
      Settle(&group, durable);
    }
    if (durable && options_.durability_barrier) WaitForBarrier();
    DeliverAll(group);
  }
}

void GroupCommitter::WaitForBarrier() {
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
  };
  auto gate = std::make_shared<Gate>();
  options_.durability_barrier([gate] {
    std::lock_guard<std::mutex> l(gate->mu);
    gate->open = true;
    gate->cv.notify_all();
  });
  std::unique_lock<std::mutex> l(gate->mu);
  gate->cv.wait(l, [&gate] { return gate->open; });
}

void GroupCommitter::PostDrain() {
  options_.executor->Post([this, alive = alive_] {
    if (*alive) Drain();
  });
}

// One group of the worker loop, as an executor task: the group, then (past
// the durability barrier) its completions, then the next drain if work
// queued meanwhile, completions' new operations included.
void GroupCommitter::Drain() {
  auto group = std::make_shared<Group>();
  bool sync_only = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (HeldTooLong()) {
      sync_only = true;  // the queue waits for the next drain
    } else {
      TakeGroup(group.get());
      if (group->empty()) {
        if (held_.empty()) {
          drain_pending_ = false;
          return;
        }
        sync_only = true;  // nothing queued: make the held operations durable now
      }
    }
  }
  bool durable;
  if (sync_only) {
    *group = std::exchange(held_, {});
    held_groups_ = 0;
    durable = options_.sync(*group);
  } else {
    durable = run_group_(*group);
    Settle(group.get(), durable);
  }
  // Holds its own reference to the deliver function: a completion may
  // destroy the committer while that function runs.
  auto finish = [this, alive = alive_, deliver = deliver_, group,
                 done = std::make_shared<bool>(false)] {
    if (!*alive || std::exchange(*done, true)) return;
    for (auto& op : *group) {
      (*deliver)(*op);
      if (!*alive) return;  // a completion destroyed the committer's owner
    }
    bool more;
    {
      std::lock_guard<std::mutex> l(mu_);
      more = !queue_.empty() || !held_.empty();
      drain_pending_ = more;
    }
    if (more) PostDrain();
  };
  if (durable && options_.durability_barrier) {
    options_.durability_barrier(std::move(finish));
  } else {
    finish();
  }
}

}  // namespace txc::wal
