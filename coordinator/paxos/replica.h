// paxos::Replica: one member of the coordinator group's Multi-Paxos, as a
// deterministic core (acceptor, proposer and learner in one object).
//
// DESIGN.md, "Multi-Paxos for the coordinator group": ballots (round,
// replica id); pre-vote and randomized election timeouts; phase 1 over every
// slot above the applied index on a leadership change (adopt the
// highest-ballot value of each slot, fill gaps with no-ops); steady-state
// phase 2 with a window of slots in flight; the commit index carried on
// accepts and heartbeats; in-order apply; catch-up of missing slots;
// snapshot install for a replica that is too far behind (the image travels
// in chunks of Options::snapshot_chunk; see replica.cc, "Snapshot transfer").
//
// Values are opaque bytes (the shell's encoded command batches); the empty
// string is a no-op.
//
// Epochs: a PREPARE is granted only for a round strictly above the promised
// round, so no two leaders ever own the same round: the round is the epoch
// of the txids its leader allocates.
//
// Durability: a promise is persisted before the PROMISE leaves, an accepted
// value before the ACCEPTED leaves, and the leader counts its own vote only
// once its own write is durable. The core emits Persist effects with a token
// and holds every dependent message until OnPersisted(token).
//
// Rejoining: a replica whose disk lost its log (an empty data directory under
// an old id) may have promised or accepted things it no longer remembers, so
// it must not vote at once. Started with DurableState::joining, it promises
// and accepts nothing until it has fenced every other replica with a PREPARE
// of a round above any they know (which ends every older ballot its lost
// promises could have served), adopted their highest-ballot accepted values,
// and caught up to the highest commit index they reported; then it persists
// that promise, those values and Persist::joined, and votes from then on.
// Another replica that is itself joining answers with ballot round 0 and
// counts as empty (a brand-new group: every replica starts joining).
//
// Storage failure: after OnStorageFailed() the replica is silent: no
// heartbeats, promises, accepts, proposals or elections, so the healthy
// replicas elect a leader among themselves.
//
// Not thread-safe; owned by the node's io thread (or the simulator).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/time.h"
#include "paxos_types.h"

namespace txc::paxos {

using wire::Ballot;
using wire::Entry;
using wire::Message;

bool operator<(const Ballot& a, const Ballot& b);  // lexicographic (round, replica)

struct Options {
  // Leader heartbeat (carries the commit index). Default: 50 ms.
  Micros heartbeat = 50 * kMillis;
  // A follower that hears no leader for a random time in [min, max] runs a
  // pre-vote. Failover takes about this long. Default: 300..600 ms.
  Micros election_min = 300 * kMillis;
  Micros election_max = 600 * kMillis;
  // Slots proposed but not yet chosen, at most. Default: 64.
  size_t max_inflight = 64;
  // Entries per CATCHUP_REPLY. Default: 256.
  size_t catchup_batch = 256;
  // Bytes of snapshot image per CATCHUP_REPLY; also the byte budget of the
  // entries one CATCHUP_REPLY carries (it carries at least one). Keep it well
  // under the RPC frame limit (16 MiB). Default: 4 MiB.
  size_t snapshot_chunk = size_t{4} << 20;
  // Seed of the core's own deterministic jitter generator (the shell picks it:
  // e.g. from the replica id and the time in the real shell, from the world's
  // RNG in the simulator).
  uint64_t seed = 1;
};

// What an acceptor keeps on disk; handed back to the constructor at restart.
struct DurableState {
  Ballot promised;                   // round 0 = none
  std::map<int64_t, Entry> accepted;  // slots above snapshot_index
  int64_t snapshot_index = 0;         // slots <= this live only in `snapshot`
  std::string snapshot;               // the shell's state-machine image at snapshot_index
  // The disk holds no proof that this replica rejoined since its log was
  // lost (or first created): see "Rejoining" above. The shell sets it for an
  // empty data directory and keeps it until it persists Persist::joined.
  bool joining = false;
};

struct Persist {
  uint64_t token = 0;
  std::optional<Ballot> promised;  // write the promised ballot
  std::vector<Entry> entries;      // write (replace) these accepted values
  bool joined = false;             // record that this replica rejoined (clear `joining`)
};

struct Outgoing {
  int to = 0;
  Message msg;
};

// A line for the operator's log: the core writes no log itself; the shell
// sends these where it logs (the real node) or to the trace (txsim).
struct LogLine {
  enum Level { kDebug, kInfo, kWarn, kError };
  Level level = kInfo;
  std::string text;
};

struct Effects {
  std::vector<Persist> persists;  // make durable, then call OnPersisted(token)
  std::vector<Outgoing> sends;
  // Chosen values, in slot order, each slot once (slots above the snapshot).
  std::vector<std::pair<int64_t, std::string>> applies;
  // Replace the state machine with this image (it is at `snapshot_index`);
  // applies that follow continue from there. The shell writes it to the log
  // before this batch's `persists`, in the same order of durability: a
  // persist made durable before the image could outlive it in a crash (the
  // joined record of a replica that rejoined by installing this image would
  // then vouch for values the disk no longer holds).
  std::optional<std::pair<int64_t, std::string>> install;
  // This replica won phase 1 for `epoch` and has applied every recovered slot:
  // the shell proposes its epoch marker and serves once that is applied.
  std::optional<int64_t> leader_recovered;
  // This replica stopped leading (it saw a higher ballot, or lost its majority).
  bool stepped_down = false;
  std::vector<LogLine> logs;
  bool empty() const {
    return persists.empty() && sends.empty() && applies.empty() && !install &&
           !leader_recovered && !stepped_down && logs.empty();
  }
};

class Replica {
 public:
  // `members`: every replica id of the group, including `id`. `applied_index`:
  // what the shell's state machine already holds (its snapshot's index).
  Replica(int id, std::vector<int> members, Options options, DurableState recovered,
          int64_t applied_index);
  ~Replica();

  void OnMessage(const Message& m, Micros now);
  void OnPersisted(uint64_t token, Micros now);
  void Tick(Micros now);
  // The shell's log refused a write: this replica can keep no promise from
  // now on. It steps down (Effects::stepped_down if it led) and stays silent
  // until the process restarts. Persists not yet acknowledged never will be.
  void OnStorageFailed(Micros now);
  // A hint from the transport: the process of replica `peer` went away (the
  // connection to it was closed by its side, as the kernel does for a killed
  // process). A follower whose leader that is runs for election within a
  // heartbeat instead of a whole election timeout, and grants pre-votes at
  // once. Only a hint: the election still needs a majority's pre-votes and
  // promises, so a wrong one (a leader that is alive) costs at most a refused
  // pre-vote, or one election if every follower hears it. A machine that
  // dies or a partition sends nothing; the election timeout covers those.
  void OnPeerGone(int peer, Micros now);

  // Proposes `value` for the next slot. REQUIRES: is_leader(). Values queue
  // while the window is full. Returns false when not the leader.
  bool Propose(std::string value, Micros now);

  // The shell's state machine holds everything through `index` in `image`:
  // slots <= index may be forgotten; `image` is sent to replicas behind it,
  // in chunks sliced from this one copy (the shell builds it once, and may
  // write the same copy to its log: the replica never changes it).
  void Compacted(int64_t index, std::shared_ptr<const std::string> image);

  Effects TakeEffects();

  int id() const;
  bool is_leader() const;     // won phase 1 and has not stepped down
  bool joining() const;       // not voting yet: see "Rejoining" above
  bool storage_failed() const;
  int leader_id() const;      // 0 when unknown
  int64_t epoch() const;      // round of the leader this replica follows (or is)
  int64_t commit_index() const;
  int64_t applied_index() const;
  // As the leader knows them: each member's highest applied slot.
  std::map<int, int64_t> progress() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace txc::paxos
