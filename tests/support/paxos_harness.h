// A deterministic cluster of paxos::Replica cores for tests: a network queue
// the test delivers from in a chosen or seeded-random order, a disk per
// replica that holds only what was persisted (a crash drops unsynced writes,
// or keeps a prefix of them: written but never acknowledged), a state machine
// per replica (the applied log), and invariant checks after every step:
//   agreement  no two replicas apply different values at one slot
//   order      each incarnation applies slots in order, each once
//   validity   every applied value was proposed (or is a no-op), at one slot only
//   epochs     no two replicas lead the same round
// Violations are collected in violations(); tests assert it stays empty.
//
// Not thread-safe; one test thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/paxos/replica.h"

namespace txc::testing {

// The test state machine's image: its whole applied log, length-prefixed,
// after `padding` filler bytes ("#N:" and N bytes) that make an image large
// without making any value large.
inline std::string EncodeLog(const std::vector<std::string>& log, size_t padding = 0) {
  std::string out;
  if (padding > 0) {
    out = "#" + std::to_string(padding) + ":";
    out.append(padding, '.');
  }
  for (const std::string& v : log) out += std::to_string(v.size()) + ":" + v;
  return out;
}

inline std::vector<std::string> DecodeLog(const std::string& image) {
  std::vector<std::string> log;
  size_t pos = 0;
  if (!image.empty() && image[0] == '#') {
    const size_t colon = image.find(':');
    pos = colon + 1 + std::stoul(image.substr(1, colon - 1));
  }
  while (pos < image.size()) {
    const size_t colon = image.find(':', pos);
    const size_t len = std::stoul(image.substr(pos, colon - pos));
    log.push_back(image.substr(colon + 1, len));
    pos = colon + 1 + len;
  }
  return log;
}

struct PaxosEnvelope {
  int from = 0;
  int to = 0;
  paxos::Message msg;
};

class PaxosCluster {
 public:
  struct Node {
    int id = 0;
    std::unique_ptr<paxos::Replica> replica;  // null while crashed
    int incarnation = 0;
    // The disk: only what was made durable.
    paxos::Ballot promised;
    std::map<int64_t, paxos::Entry> accepted;
    int64_t snapshot_index = 0;
    std::string snapshot;
    bool joining = false;  // the shell's joining mark (set on a wiped disk)
    bool storage_failed = false;  // every write fails from now on (until Restart)
    std::deque<paxos::Persist> unsynced;  // emitted, not yet durable
    // The state machine: sm[i] is the value applied at slot i + 1.
    std::vector<std::string> sm;
    int64_t recovered_epoch = 0;  // last Effects.leader_recovered
    int stepped_down = 0;
    int installs = 0;
    bool up() const { return replica != nullptr; }
  };

  PaxosCluster(int n, paxos::Options options, uint64_t seed)
      : options_(options), seed_(seed), rng_(seed) {
    for (int i = 1; i <= n; ++i) members_.push_back(i);
    nodes_.resize(n + 1);
    for (int i = 1; i <= n; ++i) {
      nodes_[i].id = i;
      Restart(i);
    }
  }

  // --- observation
  Node& node(int id) { return nodes_[id]; }
  paxos::Replica& replica(int id) { return *nodes_[id].replica; }
  const std::vector<int>& members() const { return members_; }
  Micros now() const { return now_; }
  std::vector<PaxosEnvelope>& network() { return net_; }
  const std::vector<std::string>& violations() const { return violations_; }
  const std::map<int64_t, std::string>& chosen() const { return chosen_; }
  const std::map<int64_t, int>& round_leaders() const { return round_leader_; }
  // Messages of each type sent so far (by the cores, before any loss).
  int sent(paxos::wire::Type::type t) const {
    auto it = sent_.find(t);
    return it == sent_.end() ? 0 : it->second;
  }
  int sent_by(int id, paxos::wire::Type::type t) const {
    auto it = sent_by_.find({id, t});
    return it == sent_by_.end() ? 0 : it->second;
  }
  // Entries carried by ACCEPT messages so far.
  int accept_entries() const { return accept_entries_; }
  // The largest number of slots a leader had beyond its applied index in one ACCEPT.
  int64_t max_accept_lead() const { return max_accept_lead_; }
  // Images the state machines built (one per Compact).
  int images_built() const { return images_built_; }
  // Filler bytes every image built from now on carries (see EncodeLog).
  void set_image_padding(size_t bytes) { image_padding_ = bytes; }
  // Called with every message a core sends, before any loss.
  void set_send_observer(std::function<void(int from, const paxos::Message&)> fn) {
    send_observer_ = std::move(fn);
  }
  // The same, with the addressee.
  void set_outgoing_observer(std::function<void(int from, const paxos::Outgoing&)> fn) {
    outgoing_observer_ = std::move(fn);
  }

  // The live leader with the highest epoch, or 0.
  int Leader() const {
    int best = 0;
    for (int id : members_) {
      const Node& n = nodes_[id];
      if (n.up() && n.replica->is_leader() &&
          (best == 0 || n.replica->epoch() > nodes_[best].replica->epoch())) {
        best = id;
      }
    }
    return best;
  }
  // A live leader that has recovered its epoch (ready to serve), or 0.
  int ServingLeader() const {
    const int l = Leader();
    if (l == 0 || nodes_[l].recovered_epoch != nodes_[l].replica->epoch()) return 0;
    return l;
  }

  // --- network control
  void Block(int from, int to) { blocked_.insert({from, to}); }
  void Unblock(int from, int to) { blocked_.erase({from, to}); }
  void Isolate(int id) {
    for (int p : members_) {
      if (p == id) continue;
      Block(id, p);
      Block(p, id);
    }
  }
  void HealNetwork() { blocked_.clear(); }
  bool blocked(int from, int to) const { return blocked_.count({from, to}) > 0; }
  void DropIf(const std::function<bool(const PaxosEnvelope&)>& pred) {
    net_.erase(std::remove_if(net_.begin(), net_.end(), pred), net_.end());
  }

  // Delivers net_[i] (removing it) unless its link is blocked or its target is down.
  void DeliverAt(size_t i) {
    PaxosEnvelope env = std::move(net_[i]);
    net_.erase(net_.begin() + static_cast<std::ptrdiff_t>(i));
    Deliver(env);
  }
  void Deliver(const PaxosEnvelope& env) {
    Node& n = nodes_[env.to];
    if (!n.up() || blocked(env.from, env.to)) return;
    n.replica->OnMessage(env.msg, now_);
    Collect(env.to);
  }

  // --- disk control
  // Makes the oldest `count` unsynced writes of `id` durable and acknowledges them.
  void Sync(int id, size_t count = SIZE_MAX) {
    Node& n = nodes_[id];
    if (n.storage_failed) return;  // the writes never complete
    while (count-- > 0 && n.up() && !n.unsynced.empty()) {
      paxos::Persist p = std::move(n.unsynced.front());
      n.unsynced.pop_front();
      WriteToDisk(n, p);
      n.replica->OnPersisted(p.token, now_);
      Collect(id);
    }
  }
  void SyncAll() {
    for (int id : members_) Sync(id);
  }

  // --- process control
  // Destroys the replica; the first `keep_unsynced` pending writes reach the
  // disk (written, never acknowledged), the rest are lost.
  void Crash(int id, size_t keep_unsynced = 0) {
    Node& n = nodes_[id];
    if (!n.up()) return;
    for (size_t i = 0; i < keep_unsynced && i < n.unsynced.size(); ++i) WriteToDisk(n, n.unsynced[i]);
    n.unsynced.clear();
    n.replica.reset();
  }
  // Crashes the replica and empties its disk: a machine replaced under the
  // same id. Like the real shell on an empty data directory, the next
  // Restart starts it joining.
  void Wipe(int id) {
    Crash(id);
    Node& n = nodes_[id];
    n.promised = paxos::Ballot();
    n.accepted.clear();
    n.snapshot_index = 0;
    n.snapshot.clear();
    n.storage_failed = false;
    n.joining = true;
  }
  // The replica's log refuses every write from now on, as a failed disk
  // does: pending writes never complete; the shell tells the core.
  // The transport tells `id` that replica `gone`'s process went away.
  void PeerGone(int id, int gone) {
    Node& n = nodes_[id];
    if (!n.up()) return;
    n.replica->OnPeerGone(gone, now_);
    Collect(id);
  }
  void FailStorage(int id) {
    Node& n = nodes_[id];
    if (!n.up()) return;
    n.storage_failed = true;
    n.unsynced.clear();
    n.replica->OnStorageFailed(now_);
    Collect(id);
  }
  // Rebuilds the replica from its disk; the state machine restarts from the snapshot.
  void Restart(int id) {
    Node& n = nodes_[id];
    if (n.up()) return;
    n.storage_failed = false;  // the disk was fixed
    ++n.incarnation;
    n.sm = DecodeLog(n.snapshot);
    paxos::DurableState d;
    d.promised = n.promised;
    d.accepted = n.accepted;
    d.snapshot_index = n.snapshot_index;
    d.snapshot = n.snapshot;
    d.joining = n.joining;
    paxos::Options o = options_;
    o.seed = seed_ * 7919 + static_cast<uint64_t>(id) * 131 + static_cast<uint64_t>(n.incarnation);
    n.replica = std::make_unique<paxos::Replica>(id, members_, o, std::move(d), n.snapshot_index);
    n.recovered_epoch = 0;
    Collect(id);
  }

  // Proposes at `id`; returns what Propose returned.
  bool Propose(int id, const std::string& value) {
    Node& n = nodes_[id];
    if (!n.up()) return false;
    proposed_.insert(value);
    const bool ok = n.replica->Propose(value, now_);
    Collect(id);
    return ok;
  }

  // The state machine of `id` snapshots everything it applied.
  void Compact(int id) {
    Node& n = nodes_[id];
    if (!n.up()) return;
    const int64_t index = static_cast<int64_t>(n.sm.size());
    std::string image = EncodeLog(n.sm, image_padding_);
    ++images_built_;
    n.replica->Compacted(index, std::make_shared<const std::string>(image));
    n.snapshot = std::move(image);
    n.snapshot_index = index;
    n.accepted.erase(n.accepted.begin(), n.accepted.upper_bound(index));
  }

  // --- time
  void Tick() {
    for (int id : members_) {
      if (!nodes_[id].up()) continue;
      nodes_[id].replica->Tick(now_);
      Collect(id);
    }
  }
  void Advance(Micros d) {
    now_ += d;
    Tick();
  }
  // Delivers every message (FIFO) and syncs every write until nothing moves.
  void Settle(int max_events = 1000000) {
    while (max_events-- > 0) {
      if (!net_.empty()) {
        DeliverAt(0);
      } else {
        bool synced = false;
        for (int id : members_) {
          if (nodes_[id].up() && !nodes_[id].unsynced.empty()) {
            Sync(id, 1);
            synced = true;
          }
        }
        if (!synced) return;
      }
    }
  }
  // Ticks every `step` for `d`, settling in between (zero-latency network).
  void RunFor(Micros d, Micros step = 5 * kMillis) {
    for (Micros t = 0; t < d; t += step) {
      Advance(step);
      Settle();
    }
  }
  // Runs until a leader has recovered its epoch; returns it, or 0.
  int WaitLeader(Micros timeout = 10 * kSeconds, Micros step = 5 * kMillis) {
    for (Micros t = 0; t <= timeout; t += step) {
      if (int l = ServingLeader()) return l;
      Advance(step);
      Settle();
    }
    return ServingLeader();
  }

  // --- chaos
  struct Faults {
    double drop = 0.05;        // per message and step
    double duplicate = 0.03;
    double delay = 0.3;        // held back a step (reordering)
    double crash = 0.01;       // per step
    double restart = 0.08;
    double partition = 0.02;   // block one random link
    double heal = 0.02;
    double propose = 0.3;
    int max_proposals = 1;     // values per proposing step, 1..this
    double compact = 0.02;
    double crash_leader = 0;   // per step: crash the current leader
    double isolate = 0;        // per step: cut one replica off both ways
    double wipe = 0;           // per step: replace one replica's disk by an empty
                               // one (only while no other wiped replica is still joining)
    Micros max_step = 20 * kMillis;
  };
  // One random step: time moves, messages are delivered, dropped, duplicated
  // and reordered, writes complete, replicas crash and restart, links break.
  void ChaosStep(const Faults& f) {
    Advance(1 * kMillis + static_cast<Micros>(Rand(static_cast<uint64_t>(f.max_step))));
    std::vector<PaxosEnvelope> now_net = std::move(net_);
    net_.clear();
    std::shuffle(now_net.begin(), now_net.end(), rng_);
    for (PaxosEnvelope& env : now_net) {
      if (Chance(f.drop)) continue;
      if (Chance(f.delay)) {
        net_.push_back(std::move(env));
        continue;
      }
      if (Chance(f.duplicate)) net_.push_back(env);
      Deliver(env);
    }
    for (int id : members_) {
      if (nodes_[id].up()) Sync(id, Rand(nodes_[id].unsynced.size() + 1));
    }
    if (Chance(f.crash)) {
      const int id = members_[Rand(members_.size())];
      Crash(id, Rand(nodes_[id].unsynced.size() + 1));
    }
    if (Chance(f.crash_leader)) {
      if (int l = Leader()) Crash(l, Rand(nodes_[l].unsynced.size() + 1));
    }
    if (Chance(f.wipe)) {
      bool rejoining = false;
      for (int id : members_) rejoining = rejoining || nodes_[id].joining;
      if (!rejoining) Wipe(members_[Rand(members_.size())]);
    }
    if (Chance(f.restart)) Restart(members_[Rand(members_.size())]);
    if (Chance(f.isolate)) Isolate(members_[Rand(members_.size())]);
    if (Chance(f.partition)) {
      const int a = members_[Rand(members_.size())];
      const int b = members_[Rand(members_.size())];
      if (a != b) Block(a, b);
    }
    if (Chance(f.heal)) HealNetwork();
    if (Chance(f.propose)) {
      for (int id : members_) {
        if (!nodes_[id].up() || !nodes_[id].replica->is_leader()) continue;
        const uint64_t k = 1 + Rand(static_cast<uint64_t>(std::max(f.max_proposals, 1)));
        for (uint64_t i = 0; i < k; ++i) {
          Propose(id, "v" + std::to_string(seed_) + "." + std::to_string(next_value_++));
        }
      }
    }
    if (Chance(f.compact)) Compact(members_[Rand(members_.size())]);
  }

  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  // Every live replica applied the same log (which holds at least `min` slots).
  bool Converged(int64_t min = 0) const {
    const std::vector<std::string>* first = nullptr;
    for (int id : members_) {
      const Node& n = nodes_[id];
      if (!n.up()) return false;
      if (static_cast<int64_t>(n.sm.size()) < min) return false;
      if (first == nullptr) {
        first = &n.sm;
      } else if (n.sm != *first) {
        return false;
      }
    }
    return true;
  }

 private:
  static void WriteToDisk(Node& n, const paxos::Persist& p) {
    if (p.promised) n.promised = *p.promised;
    if (p.joined) n.joining = false;
    for (const paxos::Entry& e : p.entries) n.accepted[e.slot] = e;
  }

  void Violation(std::string what) {
    violations_.push_back("t=" + std::to_string(now_) + " " + std::move(what));
  }

  void CheckApplied(int id, int64_t slot, const std::string& value) {
    auto [it, fresh] = chosen_.emplace(slot, value);
    if (!fresh && it->second != value) {
      Violation("agreement: replica " + std::to_string(id) + " applied '" + value + "' at slot " +
                std::to_string(slot) + ", another applied '" + it->second + "'");
    }
    if (value.empty()) return;
    if (!proposed_.count(value)) Violation("validity: '" + value + "' was never proposed");
    auto [vit, vfresh] = value_slot_.emplace(value, slot);
    if (!vfresh && vit->second != slot) {
      Violation("validity: '" + value + "' chosen at slots " + std::to_string(vit->second) +
                " and " + std::to_string(slot));
    }
  }

  void Collect(int id) {
    Node& n = nodes_[id];
    if (!n.up()) return;
    paxos::Effects fx = n.replica->TakeEffects();
    if (fx.install) {
      ++n.installs;
      const auto& [index, image] = *fx.install;
      n.sm = DecodeLog(image);
      if (static_cast<int64_t>(n.sm.size()) != index) {
        Violation("install: image of " + std::to_string(n.sm.size()) + " slots at index " +
                  std::to_string(index));
      }
      for (size_t i = 0; i < n.sm.size(); ++i) CheckApplied(id, static_cast<int64_t>(i + 1), n.sm[i]);
      // The shell keeps the installed image as its snapshot.
      n.snapshot = image;
      n.snapshot_index = index;
      n.accepted.erase(n.accepted.begin(), n.accepted.upper_bound(index));
    }
    for (const auto& [slot, value] : fx.applies) {
      if (slot != static_cast<int64_t>(n.sm.size()) + 1) {
        Violation("order: replica " + std::to_string(id) + " applied slot " + std::to_string(slot) +
                  " after " + std::to_string(n.sm.size()));
      }
      n.sm.resize(static_cast<size_t>(std::max<int64_t>(slot - 1, 0)));
      n.sm.push_back(value);
      CheckApplied(id, slot, value);
    }
    if (n.replica->applied_index() != static_cast<int64_t>(n.sm.size())) {
      Violation("replica " + std::to_string(id) + " applied_index " +
                std::to_string(n.replica->applied_index()) + " but its state machine holds " +
                std::to_string(n.sm.size()));
    }
    for (paxos::Persist& p : fx.persists) {
      if (!n.storage_failed) n.unsynced.push_back(std::move(p));
    }
    for (paxos::Outgoing& o : fx.sends) {
      if (send_observer_) send_observer_(id, o.msg);
      if (outgoing_observer_) outgoing_observer_(id, o);
      ++sent_[o.msg.type];
      ++sent_by_[{id, o.msg.type}];
      if (o.msg.type == paxos::wire::Type::ACCEPT) {
        accept_entries_ += static_cast<int>(o.msg.entries.size());
        for (const paxos::Entry& e : o.msg.entries) {
          max_accept_lead_ = std::max(max_accept_lead_, e.slot - n.replica->applied_index());
        }
      }
      net_.push_back(PaxosEnvelope{id, o.to, std::move(o.msg)});
    }
    if (fx.leader_recovered) {
      n.recovered_epoch = *fx.leader_recovered;
      if (!n.replica->is_leader() || n.replica->epoch() != *fx.leader_recovered) {
        Violation("leader_recovered from a replica that does not lead that epoch");
      }
    }
    if (fx.stepped_down) ++n.stepped_down;
    if (n.replica->is_leader()) {
      auto [it, fresh] = round_leader_.emplace(n.replica->epoch(), id);
      if (!fresh && it->second != id) {
        Violation("epochs: replicas " + std::to_string(it->second) + " and " + std::to_string(id) +
                  " both lead round " + std::to_string(n.replica->epoch()));
      }
    }
  }

  paxos::Options options_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::vector<int> members_;
  std::vector<Node> nodes_;  // indexed by id (0 unused)
  Micros now_ = 0;
  std::vector<PaxosEnvelope> net_;
  std::set<std::pair<int, int>> blocked_;
  std::map<int64_t, std::string> chosen_;
  std::map<std::string, int64_t> value_slot_;
  std::set<std::string> proposed_;
  std::map<int64_t, int> round_leader_;
  std::vector<std::string> violations_;
  std::map<paxos::wire::Type::type, int> sent_;
  std::map<std::pair<int, paxos::wire::Type::type>, int> sent_by_;
  int accept_entries_ = 0;
  int64_t max_accept_lead_ = 0;
  int images_built_ = 0;
  size_t image_padding_ = 0;
  std::function<void(int, const paxos::Message&)> send_observer_;
  std::function<void(int, const paxos::Outgoing&)> outgoing_observer_;
  uint64_t next_value_ = 1;
};

}  // namespace txc::testing
