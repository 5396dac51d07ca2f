#include "sim/world.h"

#include <algorithm>
#include <cassert>
#include <cstdio>

namespace txc::sim {

std::string FormatTime(Micros t) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%06llds", static_cast<long long>(t / kSeconds),
                static_cast<long long>(t % kSeconds));
  return buf;
}

// -------------------------------------------------------------------- World

World::World(uint64_t seed, std::ostream* trace_out, bool keep_hash)
    : seed_(seed), rng_(seed), trace_out_(trace_out), keep_hash_(keep_hash) {
  heap_.reserve(4096);
  history_.reserve(8192);
}

void World::At(Micros when, std::function<void()> fn) {
  if (when < now_) when = now_;
  heap_.push_back(Ev{when, next_seq_++, std::move(fn)});
  std::push_heap(heap_.begin(), heap_.end(), Later());
}

bool World::RunUntil(Micros until, const std::function<bool()>& stop) {
  while (!heap_.empty() && heap_.front().t <= until) {
    std::pop_heap(heap_.begin(), heap_.end(), Later());
    Ev ev = std::move(heap_.back());
    heap_.pop_back();
    now_ = ev.t;
    ++events_run_;
    ev.fn();
    graveyard_.clear();
    if (stop && stop()) return false;
  }
  now_ = std::max(now_, until);
  return true;
}

int World::AddNode(std::string name) {
  names_.push_back(std::move(name));
  return static_cast<int>(names_.size()) - 1;
}

const std::string& World::NodeName(int node) const {
  static const std::string kWorld = "world";
  if (node < 0 || static_cast<size_t>(node) >= names_.size()) return kWorld;
  return names_[node];
}

std::string World::Format(const TraceEvent& e) const {
  char head[96];
  std::snprintf(head, sizeof head, "[%12s] %-8s ", FormatTime(e.t).c_str(),
                NodeName(e.node).c_str());
  std::string out = head;
  if (e.seq != 0) {
    out += "txid=";
    out += std::to_string(e.epoch);
    out += '.';
    out += std::to_string(e.seq);
    out += ' ';
  }
  out += e.text;
  return out;
}

void World::LogFault(int node, std::string text) {
  Log(node, nullptr, std::move(text));
  history_.back().fault = true;
}

void World::Log(int node, const TxId* txid, std::string text) {
  TraceEvent e;
  e.t = now_;
  e.node = node;
  if (txid != nullptr) {
    e.epoch = txid->epoch;
    e.seq = txid->seq;
  }
  e.text = std::move(text);
  if (trace_out_ != nullptr || keep_hash_) {
    std::string line = Format(e);
    if (keep_hash_) {
      for (unsigned char c : line) {
        hash_ ^= c;
        hash_ *= 1099511628211ULL;
      }
      hash_ ^= '\n';
      hash_ *= 1099511628211ULL;
    }
    if (trace_out_ != nullptr) *trace_out_ << line << '\n';
  }
  history_.push_back(std::move(e));
}

std::vector<std::string> World::History(const TxId& txid, size_t n) const {
  std::vector<std::string> out;
  size_t mine = 0;
  for (auto it = history_.rbegin(); it != history_.rend() && mine < n; ++it) {
    if (it->seq == txid.seq && it->epoch == txid.epoch) {
      out.push_back(Format(*it));
      ++mine;
    } else if (it->fault) {
      out.push_back(Format(*it));
    }
  }
  // Faults older than the txid's first shown event are noise.
  while (!out.empty() && mine > 0) {
    const std::string& last = out.back();
    if (last.find(" txid=" + ToString(txid) + " ") != std::string::npos) break;
    out.pop_back();
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> World::Tail(size_t n) const {
  std::vector<std::string> out;
  size_t start = history_.size() > n ? history_.size() - n : 0;
  for (size_t i = start; i < history_.size(); ++i) out.push_back(Format(history_[i]));
  return out;
}

// ------------------------------------------------------------------ Network

Network::Network(World* world, NetOptions options) : world_(world) { SetOptions(options); }

void Network::SetOptions(const NetOptions& o) {
  options_ = o;
  max_delay_ = std::max(max_delay_, o.base_max + o.jitter + o.spike_max + o.stale_max);
}

int Network::AddNode(std::string name) {
  int id = world_->AddNode(name);
  assert(static_cast<size_t>(id) == nodes_.size());
  NodeState n;
  n.name = std::move(name);
  nodes_.push_back(std::move(n));
  return id;
}

void Network::Finalize() {
  size_t n = nodes_.size();
  base_.assign(n * n, 0);
  sent_by_link_.assign(n * n, 0);
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b < n; ++b) {
      base_[a * n + b] = world_->rng().Uniform(options_.base_min, options_.base_max);
    }
  }
}

void Network::Down(int node) {
  nodes_[node].up = false;
  ++nodes_[node].incarnation;
}

void Network::Up(int node) {
  nodes_[node].up = true;
  ++nodes_[node].incarnation;
}

int Network::Partition(int a, int b, bool both) {
  int id = next_cut_++;
  cuts_.push_back(Cut{id, a, b, both});
  return id;
}

int Network::Isolate(int a) {
  int id = next_cut_++;
  cuts_.push_back(Cut{id, a, -1, true});
  return id;
}

void Network::Heal(int id) {
  cuts_.erase(std::remove_if(cuts_.begin(), cuts_.end(), [id](const Cut& c) { return c.id == id; }),
              cuts_.end());
}

void Network::HealAll() { cuts_.clear(); }

std::vector<std::pair<int, int>> Network::PartitionLinks(int id) const {
  std::vector<std::pair<int, int>> links;
  for (const Cut& c : cuts_) {
    if (c.id != id || c.b < 0) continue;
    links.emplace_back(c.a, c.b);
    if (c.both) links.emplace_back(c.b, c.a);
  }
  return links;
}

bool Network::Blocked(int from, int to) const {
  for (const Cut& c : cuts_) {
    if (c.b == -1) {
      if (from == c.a || to == c.a) return true;
      continue;
    }
    if (from == c.a && to == c.b) return true;
    if (c.both && from == c.b && to == c.a) return true;
  }
  return false;
}

Micros Network::Delay(int from, int to) {
  Rng& rng = world_->rng();
  size_t n = nodes_.size();
  Micros d = base_.empty() ? options_.base_min : base_[static_cast<size_t>(from) * n + to];
  d += rng.Uniform(0, options_.jitter);
  if (rng.Bernoulli(options_.spike_p)) d += rng.Uniform(0, options_.spike_max);
  if (rng.Bernoulli(options_.stale_p)) d += rng.Uniform(0, options_.stale_max);
  return d;
}

void Network::Send(int from, int to, bool dup_ok, std::function<void()> deliver) {
  ++sent_;
  if (!sent_by_link_.empty()) ++sent_by_link_[static_cast<size_t>(from) * nodes_.size() + to];
  Rng& rng = world_->rng();
  if (Blocked(from, to)) return;  // partitioned: lost
  if (rng.Bernoulli(options_.drop_p)) {
    ++lost_;
    return;
  }
  bool dup = dup_ok && rng.Bernoulli(options_.dup_p);
  if (dup) {
    world_->After(Delay(from, to), [this, from, to, deliver] {
      if (!Blocked(from, to)) deliver();
    });
  }
  world_->After(Delay(from, to), [this, from, to, deliver = std::move(deliver)] {
    if (!Blocked(from, to)) deliver();
  });
}

// --------------------------------------------------------------------- Disk

Disk::Disk(World* world, DiskOptions options) : world_(world), options_(options) {}

void Disk::Write(std::function<void()> apply) {
  pending_.push_back(std::move(apply));
  ++written_;
}

void Disk::Sync(std::function<void()> done, std::function<void(const Status&)> failed) {
  waiters_.push_back(Waiter{written_, std::move(done), std::move(failed)});
  if (!in_flight_) StartSync();
}

void Disk::Break(Status why, bool partial) {
  if (broken()) return;
  armed_ = true;
  partial_ = partial;
  why_ = std::move(why);
}

// Every waiter fails; the disk stays broken until Crash().
void Disk::FailAll(uint64_t epoch) {
  in_flight_ = false;
  std::vector<std::function<void(const Status&)>> failed;
  while (!waiters_.empty()) {
    if (waiters_.front().failed) failed.push_back(std::move(waiters_.front().failed));
    waiters_.pop_front();
  }
  for (auto& f : failed) {
    f(why_);
    if (epoch != epoch_) return;  // a callback crashed the node
  }
}

void Disk::StartSync() {
  in_flight_ = true;
  ++syncs_;
  Rng& rng = world_->rng();
  Micros latency = rng.Uniform(options_.sync_min, options_.sync_max);
  if (rng.Bernoulli(options_.slow_p)) latency += rng.Uniform(0, options_.slow_max);
  if (stall_ > 0) {
    latency = stall_;
    stall_ = 0;
  }
  uint64_t target = written_;
  uint64_t epoch = epoch_;
  if (options_.lying) {
    // The drive says "done" at once; the data sits in its volatile cache.
    latency = options_.sync_min;
    if (!flush_scheduled_) {
      flush_scheduled_ = true;
      world_->After(options_.lying_flush, [this, epoch] { LyingFlush(epoch); });
    }
  }
  world_->After(latency, [this, epoch, target] { Complete(epoch, target); });
}

void Disk::Promote(uint64_t target) {
  while (durable_ < target && !pending_.empty()) {
    auto apply = std::move(pending_.front());
    pending_.pop_front();
    ++durable_;
    apply();
  }
}

void Disk::LyingFlush(uint64_t epoch) {
  if (epoch != epoch_) return;
  flush_scheduled_ = false;
  Promote(written_);
}

void Disk::Complete(uint64_t epoch, uint64_t target) {
  if (epoch != epoch_) return;  // the node crashed meanwhile
  if (broken_) return FailAll(epoch);
  if (armed_) {
    armed_ = false;
    broken_ = true;
    if (partial_) {
      Promote(durable_ + static_cast<uint64_t>(world_->rng().Uniform(0, static_cast<int64_t>(target - durable_))));
    }
    return FailAll(epoch);
  }
  if (!options_.lying) Promote(target);
  in_flight_ = false;
  std::vector<std::function<void()>> ready;
  while (!waiters_.empty() && waiters_.front().target <= target) {
    ready.push_back(std::move(waiters_.front().done));
    waiters_.pop_front();
  }
  if (!waiters_.empty()) StartSync();
  for (auto& f : ready) {
    f();
    if (epoch != epoch_) return;  // a callback crashed the node
  }
}

void Disk::Crash() {
  armed_ = false;
  broken_ = false;
  pending_.clear();
  written_ = durable_;
  waiters_.clear();
  in_flight_ = false;
  flush_scheduled_ = false;
  ++epoch_;
}

}  // namespace txc::sim
