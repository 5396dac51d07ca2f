// The simulated world of one seed: a virtual clock and event queue, the one
// seeded RNG everything draws from, a network that delays, drops, duplicates,
// reorders and partitions, and a disk per node that loses every unsynced
// write when its node crashes (DESIGN.md: "the simulated shell").
//
// Determinism: events run in (time, insertion order); every random choice
// comes from World::rng(), whose helpers are written here (not std
// distributions, whose output differs between library versions), so a seed
// replays byte for byte.
//
// Not thread-safe; one World per seed, run by one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "common/txid.h"

namespace txc::sim {

// The seed's only source of randomness.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t Next() { return gen_(); }
  // Uniform in [lo, hi] (inclusive); lo when hi <= lo.
  int64_t Uniform(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    return lo + static_cast<int64_t>(Next() % span);
  }
  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  bool Bernoulli(double p) { return p > 0 && Unit() < p; }
  size_t Index(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }

 private:
  std::mt19937_64 gen_;
};

// One line of the seed's history: what happened, where, to which txid.
struct TraceEvent {
  Micros t = 0;
  int node = -1;  // -1: the world itself (faults, phases)
  int64_t epoch = 0, seq = 0;  // the txid it touches; seq 0: none
  bool fault = false;          // a crash, restart, partition or heal
  std::string text;
};

class World {
 public:
  World(uint64_t seed, std::ostream* trace_out, bool keep_hash);

  Micros now() const { return now_; }
  Rng& rng() { return rng_; }
  uint64_t seed() const { return seed_; }

  // Runs `fn` at virtual time `when` (>= now), after every event already
  // scheduled for that time.
  void At(Micros when, std::function<void()> fn);
  void After(Micros delay, std::function<void()> fn) { At(now_ + delay, std::move(fn)); }
  // Runs events up to and including time `until`; the clock ends at `until`.
  // Stops early (returning false) once `stop()` says so after an event.
  bool RunUntil(Micros until, const std::function<bool()>& stop = nullptr);
  uint64_t events_run() const { return events_run_; }

  // Keeps `p` alive until the current event has finished (a node that crashes
  // in the middle of its own handler is destroyed only after it returns).
  void Bury(std::shared_ptr<void> p) { graveyard_.push_back(std::move(p)); }

  // Nodes are named for traces.
  int AddNode(std::string name);
  const std::string& NodeName(int node) const;
  size_t node_count() const { return names_.size(); }

  // History. `txid` may be null. With a trace stream, every line is printed.
  void Log(int node, const TxId* txid, std::string text);
  void Log(int node, std::string text) { Log(node, nullptr, std::move(text)); }
  // A fault (crash, restart, partition, heal): shown with any txid's history.
  void LogFault(int node, std::string text);
  std::string Format(const TraceEvent& e) const;
  // The last `n` events touching txid, oldest first, with the faults that
  // happened meanwhile.
  std::vector<std::string> History(const TxId& txid, size_t n) const;
  std::vector<std::string> Tail(size_t n) const;
  // FNV-1a of every formatted line (when keep_hash), to compare two runs.
  uint64_t trace_hash() const { return hash_; }

 private:
  struct Ev {
    Micros t;
    uint64_t seq;
    std::function<void()> fn;
  };
  struct Later {
    bool operator()(const Ev& a, const Ev& b) const {
      return a.t != b.t ? a.t > b.t : a.seq > b.seq;
    }
  };

  uint64_t seed_;
  Rng rng_;
  Micros now_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t events_run_ = 0;
  std::vector<Ev> heap_;
  std::vector<std::shared_ptr<void>> graveyard_;
  std::vector<std::string> names_;
  std::vector<TraceEvent> history_;
  std::ostream* trace_out_;
  bool keep_hash_;
  uint64_t hash_ = 1469598103934665603ULL;
};

std::string FormatTime(Micros t);  // "12.345678s"

// ------------------------------------------------------------------ network

struct NetOptions {
  Micros base_min = 50;    // per-link base one-way latency, drawn once per link
  Micros base_max = 400;
  Micros jitter = 300;     // added uniformly per message (reorders messages)
  double spike_p = 0;      // a message is delayed by up to spike_max (heavy reordering)
  Micros spike_max = 0;
  double stale_p = 0;      // a message is held up to stale_max: it arrives after
  Micros stale_max = 0;    //   its sender timed out, restarted or moved on
  double drop_p = 0;       // a message is lost
  double dup_p = 0;        // a message (of an idempotent call) arrives twice
};

// Nodes, links and RPC. A node is up or down; each restart is a new
// incarnation, and a reply is only delivered to the incarnation that called.
// A call to a node that is down is refused (UNAVAILABLE); a lost request or
// reply, or a partition, shows up as the caller's timeout.
class Network {
 public:
  Network(World* world, NetOptions options);

  int AddNode(std::string name);  // starts up
  // Draws every link's base latency; call once all nodes are added.
  void Finalize();
  void SetOptions(const NetOptions& o);
  const NetOptions& options() const { return options_; }

  bool up(int node) const { return nodes_[node].up; }
  uint64_t incarnation(int node) const { return nodes_[node].incarnation; }
  void Down(int node);  // crash: in-flight replies to it are lost
  void Up(int node);    // a new incarnation

  // Blocks messages from `a` to `b` (and b to a when `both`); returns an id for Heal.
  int Partition(int a, int b, bool both);
  int Isolate(int a);  // every link of a, both ways
  void Heal(int id);
  void HealAll();
  // The directed links (from, to) that cut `id` (made by Partition) blocks.
  std::vector<std::pair<int, int>> PartitionLinks(int id) const;
  bool Blocked(int from, int to) const;

  // One-way message: `deliver` runs at `to` unless it is lost. `dup_ok`: the
  // message may be delivered twice.
  void Send(int from, int to, bool dup_ok, std::function<void()> deliver);

  // A request/response call. `serve` runs at `to` (if up) with a function to
  // reply through; `done` runs at `from` exactly once, with OK and the reply,
  // or UNAVAILABLE / TIMEOUT, unless `from` crashed meanwhile.
  template <class Resp>
  void Call(int from, int to, Micros timeout, bool dup_ok,
            std::function<void(std::function<void(Resp)>)> serve,
            std::function<void(Status, Resp)> done);

  uint64_t messages_sent() const { return sent_; }
  // Messages sent from `from` to `to` so far (lost ones included), counted
  // once Finalize() ran (txsim --measure splits them by kind of link).
  uint64_t sent(int from, int to) const {
    size_t n = nodes_.size();
    return sent_by_link_.empty() ? 0 : sent_by_link_[static_cast<size_t>(from) * n + to];
  }
  // Messages the network lost at random (drop_p); partitions not counted.
  uint64_t messages_lost() const { return lost_; }
  // The longest a message can be under way with the current options.
  Micros max_delay() const { return max_delay_; }

 private:
  template <class Resp>
  struct CallState {
    int from = 0;
    uint64_t inc = 0;
    bool finished = false;
    std::function<void(Status, Resp)> done;
  };
  template <class Resp>
  void Finish(const std::shared_ptr<CallState<Resp>>& st, Status s, Resp r);

  Micros Delay(int from, int to);

  struct NodeState {
    std::string name;
    bool up = true;
    uint64_t incarnation = 1;
  };
  struct Cut {
    int id;
    int a, b;  // b == -1: every link of a
    bool both;
  };

  World* world_;
  NetOptions options_;
  std::vector<NodeState> nodes_;
  std::vector<Micros> base_;  // n*n
  std::vector<uint64_t> sent_by_link_;  // n*n, from Finalize()
  std::vector<Cut> cuts_;
  int next_cut_ = 1;
  uint64_t sent_ = 0;
  uint64_t lost_ = 0;
  Micros max_delay_ = 0;  // over every options ever set
};

template <class Resp>
void Network::Finish(const std::shared_ptr<CallState<Resp>>& st, Status s, Resp r) {
  if (st->finished) return;
  st->finished = true;
  if (!up(st->from) || incarnation(st->from) != st->inc) return;
  auto done = std::move(st->done);
  done(std::move(s), std::move(r));
}

template <class Resp>
void Network::Call(int from, int to, Micros timeout, bool dup_ok,
                   std::function<void(std::function<void(Resp)>)> serve,
                   std::function<void(Status, Resp)> done) {
  auto st = std::make_shared<CallState<Resp>>();
  st->from = from;
  st->inc = incarnation(from);
  st->done = std::move(done);
  world_->After(timeout, [this, st, to] {
    if (st->finished) return;
    Finish(st, Status::Timeout("no answer from " + world_->NodeName(to) + " in time"), Resp());
  });
  Send(from, to, dup_ok, [this, st, from, to, serve = std::move(serve)] {
    if (st->finished) return;  // the caller gave up (or died) already
    if (!up(to)) {
      // Connection refused: the caller hears it after a trip back.
      Send(to, from, false, [this, st, to] {
        Finish(st, Status::Unavailable(world_->NodeName(to) + " refused the connection (down)"),
               Resp());
      });
      return;
    }
    uint64_t to_inc = incarnation(to);
    serve([this, st, from, to, to_inc](Resp r) {
      if (!up(to) || incarnation(to) != to_inc) return;  // died before answering
      Send(to, from, true, [this, st, r = std::move(r)]() mutable {
        Finish(st, Status::Ok(), std::move(r));
      });
    });
  });
}

// --------------------------------------------------------------------- disk

struct DiskOptions {
  Micros sync_min = 100;  // one sync (fsync) takes this long
  Micros sync_max = 800;
  double slow_p = 0;      // a sync is slow (a busy disk)
  Micros slow_max = 0;
  // BUG lying-disk: a sync is acknowledged at once but makes nothing durable;
  // the drive flushes its cache only every lying_flush.
  bool lying = false;
  Micros lying_flush = 300 * kMillis;
};

// A node's disk. Writes are records applied to the node's durable image once
// a sync that started after them completes (group commit: one sync in flight,
// every sync requested meanwhile shares the next one). A crash discards every
// write not yet durable. Completions run as events, never inside Sync().
class Disk {
 public:
  Disk(World* world, DiskOptions options);

  // Records a write; `apply` updates the durable image when it becomes durable.
  void Write(std::function<void()> apply);
  // `done` runs once every write made before this call is durable. A sync
  // of a broken disk (Break) calls `failed` instead (nothing, without one).
  void Sync(std::function<void()> done, std::function<void(const Status&)> failed = nullptr);
  // Fault injection (txsim's disk_error and disk_full): the next sync to
  // complete fails with `why`. `partial`: an unknown prefix of the writes it
  // covered reached the disk anyway (EIO from fsync); else none did (the
  // write itself was refused: ENOSPC, or EIO from write). From then on every
  // sync fails, until Crash() (the operator restarts the node, the disk
  // repaired or space freed); the writes not durable by then are lost.
  void Break(Status why, bool partial);
  // Break was called and the failure has surfaced, or is about to.
  bool broken() const { return armed_ || broken_; }
  // Power loss: unsynced writes and pending syncs vanish.
  void Crash();
  void SetOptions(const DiskOptions& o) { options_ = o; }
  // Fault injection (txsim's disk_stall): the next sync to start takes
  // `latency` (a disk that hangs for seconds: a cloud volume's hiccup, a
  // controller reset). Writes and syncs requested meanwhile queue behind it.
  void Stall(Micros latency) { stall_ = latency; }

  uint64_t syncs() const { return syncs_; }
  size_t unsynced() const { return pending_.size(); }
  // How many times Crash() ran: a user that keeps a volatile view of its
  // durable image (sim/sim_vfs.h) compares it to notice a power loss.
  uint64_t crashes() const { return epoch_; }

 private:
  void StartSync();
  void Complete(uint64_t epoch, uint64_t target);
  void Promote(uint64_t target);
  void LyingFlush(uint64_t epoch);

  World* world_;
  DiskOptions options_;
  std::deque<std::function<void()>> pending_;  // writes durable_+1 .. written_
  uint64_t written_ = 0;
  uint64_t durable_ = 0;
  struct Waiter {
    uint64_t target;
    std::function<void()> done;
    std::function<void(const Status&)> failed;
  };
  void FailAll(uint64_t epoch);
  std::deque<Waiter> waiters_;
  bool in_flight_ = false;
  bool flush_scheduled_ = false;
  uint64_t epoch_ = 0;  // bumped by Crash: stale completions are ignored
  bool armed_ = false;   // Break: the next completion fails
  bool partial_ = false;
  bool broken_ = false;  // a sync failed: every later one fails too
  Status why_;
  uint64_t syncs_ = 0;
  Micros stall_ = 0;  // Stall: the next sync's latency
};

}  // namespace txc::sim
