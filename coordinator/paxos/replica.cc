// paxos::Replica: see replica.h. The whole protocol lives in this file, one
// handler per message type, in the order a leadership change runs them:
// PREVOTE, PREPARE/PROMISE, ACCEPT/ACCEPTED, HEARTBEAT, CATCHUP.
//
// How the Message fields are used, per type (fields not listed are unused):
//   PREVOTE          ballot = (round it would use, candidate), applied_index
//   PREVOTE_REPLY    ballot = the PREVOTE's ballot (echoed), ok = granted
//   PREPARE          ballot, from_slot
//   PROMISE          ok: ballot = the PREPARE's, entries = accepted >= from_slot,
//                        commit_index, applied_index, and snapshot_index +
//                        snapshot_size (no image) when from_slot <= the
//                        acceptor's snapshot index
//                    refused: ballot = the acceptor's promised ballot
//   ACCEPT           ballot, entries (value-bearing), commit_index
//   ACCEPTED         ok: ballot = the ACCEPT's, entries = the slots (no values),
//                        applied_index;  refused: ballot = promised ballot
//   HEARTBEAT        ballot, commit_index
//   HEARTBEAT_REPLY  ok: ballot = the HEARTBEAT's, applied_index, commit_index
//                    refused: ballot = promised ballot
//   CATCHUP_REQUEST  ballot = requester's promised ballot, from_slot, applied_index,
//                        snapshot_index + snapshot_offset = the image being
//                        assembled from this responder and the offset wanted
//                        (0 + 0: none)
//   CATCHUP_REPLY    ballot = responder's (leader or promised) ballot, commit_index,
//                        applied_index; either entries = chosen values from
//                        from_slot on (at most catchup_batch, and about
//                        snapshot_chunk bytes), or, when compacted past
//                        from_slot, one chunk: snapshot_index, snapshot_size,
//                        snapshot_offset, snapshot_chunk
//   (Field `snapshot`, a whole image, is no longer sent; one from an older
//   sender is still installed.)
//
// Snapshot transfer: the image is the one Compacted() handed over (or the one
// installed last); a responder slices a chunk of it per request and never
// copies it whole. The requester assembles one image at a time, from one
// responder (images of one index may differ in bytes between replicas),
// asks that responder for the next offset as soon as a chunk arrives, and
// installs only once every byte is there. It switches to another image when
// one of a higher index arrives (the responder compacted again: it starts
// over at offset 0) or when its stream made no progress for election_max
// (the responder died). A lost chunk is asked for again at the next
// heartbeat. A PROMISE names the promiser's snapshot without carrying it; a
// candidate fetches it this way and wins only once it applied through every
// promiser's snapshot index: the promisers forgot the accepted values of
// those slots, so only the image tells what was chosen there.
//
// A joining replica (replica.h, "Rejoining") sends PREPAREs of its own ballot
// like a candidate, but never leads: it only collects the PROMISEs. While
// joining it answers a PREPARE with a refused PROMISE of ballot round 0 (no
// voting replica ever refuses with round 0), and ACCEPTs and HEARTBEATs not
// at all (it still learns their commit index).
//
// Durability: every Persist gets a token; a message that depends on a record
// waits until that token AND every earlier one is durable (the shell's log is
// written in order, so "durable up to token t" is the natural watermark).
//
// What the shell may rely on, and must provide:
// - Propose() only queues: queued values leave (one ACCEPT and one Persist
//   per batch) when TakeEffects() is called, so propose many, then take.
// - Persists are written to disk in the order they were emitted (a later
//   promised ballot must not be overwritten by an earlier one).
// - On stepped_down, queued and in-flight proposals are dropped: fail their
//   callers (a value may still be chosen later, by the next leader).
// - On install, keep the image as the new snapshot if it should survive a
//   restart; accepted entries at or below its index may be deleted.
// - At restart, `applied_index` is normally the snapshot's index; if higher,
//   the accepted entries in between must be the values the shell applied.
// - Compacted() regularly: applied values are kept in memory for catch-up
//   until then.

#include "coordinator/paxos/replica.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <limits>
#include <set>
#include <utility>

#include <sstream>

namespace txc::paxos {

// Thrift declares a member operator< on every struct without defining it;
// define Ballot's so std::map<Ballot, ...> and `a < b` outside this namespace
// work. Inside txc::paxos, `a < b` is ambiguous between the member and the
// free function the header declares, so this file calls Less().
bool wire::Ballot::operator<(const wire::Ballot& rhs) const {
  return round != rhs.round ? round < rhs.round : replica < rhs.replica;
}

bool operator<(const Ballot& a, const Ballot& b) { return a.Ballot::operator<(b); }

namespace {

bool Less(const Ballot& a, const Ballot& b) { return a.Ballot::operator<(b); }
bool Same(const Ballot& a, const Ballot& b) { return a.round == b.round && a.replica == b.replica; }

Ballot MakeBallot(int64_t round, int replica) {
  Ballot b;
  b.round = round;
  b.replica = replica;
  return b;
}

Entry MakeEntry(int64_t slot, const Ballot& ballot, std::string value) {
  Entry e;
  e.slot = slot;
  e.ballot = ballot;
  e.value = std::move(value);
  return e;
}

Message MakeMessage(wire::Type::type type, const Ballot& ballot) {
  Message m;
  m.type = type;
  m.ballot = ballot;
  return m;
}

std::string Str(const Ballot& b) { return std::to_string(b.round) + "." + std::to_string(b.replica); }

}  // namespace

class Replica::Impl {
 public:
  Impl(int id, std::vector<int> members, Options options, DurableState recovered,
       int64_t applied_index);

  void OnMessage(const Message& m, Micros now);
  void OnPersisted(uint64_t token, Micros now);
  void Tick(Micros now);
  void OnPeerGone(int peer, Micros now);
  void OnStorageFailed(Micros now);
  bool Propose(std::string value, Micros now);
  void Compacted(int64_t index, std::shared_ptr<const std::string> image);
  Effects TakeEffects();

  int id() const { return id_; }
  bool is_leader() const { return role_ == Role::kLeader; }
  bool joining() const { return joining_; }
  bool storage_failed() const { return failed_; }
  int leader_id() const { return leader_id_; }
  int64_t epoch() const { return epoch_; }
  int64_t commit_index() const { return commit_index_; }
  int64_t applied_index() const { return applied_; }
  std::map<int, int64_t> progress() const;

 private:
  enum class Role { kFollower, kCandidate, kLeader };

  struct Waiting {
    bool done = false;
    std::vector<std::function<void()>> actions;
  };

  // --- plumbing
  void Start(Micros now);
  Micros RandomElectionTimeout();
  // After a split vote: a random wait in [0, election_min / 2].
  Micros RandomRetryBackoff();
  uint64_t NextRandom();
  void Send(int to, Message m);
  uint64_t NewPersist(std::optional<Ballot> promised, std::vector<Entry> entries);
  void AfterDurable(std::function<void()> fn);
  size_t Majority() const { return members_.size() / 2 + 1; }

  // --- roles
  void StartPreVote();
  void StartPhase1();
  void MaybeWin();
  void BecomeLeader();
  void StepDown(const char* why);
  void FollowLeader(const Ballot& b);

  // --- handlers
  void HandlePreVote(const Message& m);
  void HandlePreVoteReply(const Message& m);
  void HandlePrepare(const Message& m);
  void SendPromise(int to, const Ballot& b, int64_t from_slot);
  void HandlePromise(const Message& m);
  void Report(const Entry& e);
  void HandleAccept(const Message& m);
  void HandleAccepted(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleHeartbeatReply(const Message& m);
  void HandleCatchupRequest(const Message& m);
  void HandleCatchupReply(const Message& m);

  // --- rejoining (replica.h)
  void StartJoinRound();
  void SendJoinPrepares();
  void HandleJoinPromise(const Message& m);
  void JoinProgress();

  // --- leader
  void Dispatch();
  void SendAccepts(std::vector<Entry> batch);  // one ACCEPT to each peer, one Persist
  // An ACCEPT carries at most snapshot_chunk bytes of values, and at least
  // one value: true if a value of `next` bytes must start another.
  bool StartsNewAccept(size_t used, size_t next, bool empty) const {
    return !empty && used + next > opt_.snapshot_chunk;
  }
  void AdvanceCommit();
  void SendHeartbeats();
  void ResendAccepts();
  void CheckRecovered();

  // --- learner
  void TryApply(const Ballot& b, int64_t commit);
  void Apply(int64_t slot, const std::string& value);
  // Every write of accepted_ goes through here (see chosen_).
  void SetAccepted(int64_t slot, Entry e);
  const std::string& ChosenValue(
      std::map<int64_t, std::optional<std::string>>::const_iterator it) const;
  void Install(int64_t index, std::string image);
  void MaybeCatchup(int to, int64_t target);
  bool ReceiveChunk(const Message& m);
  void DropAssembly();
  bool AssemblyStalled() const;

  const int id_;
  std::vector<int> members_;
  std::vector<int> peers_;
  const Options opt_;
  uint64_t rng_;

  bool started_ = false;
  Micros now_ = 0;
  Effects fx_;

  template <class... A>
  void Log(LogLine::Level level, const A&... parts) {
    std::ostringstream text;
    (text << ... << parts);
    fx_.logs.push_back(LogLine{level, text.str()});
  }

  // Acceptor. promised_ and accepted_ are the in-memory view: a change is
  // visible to later decisions at once, and to peers only once durable.
  Ballot promised_;
  std::map<int64_t, Entry> accepted_;  // slots above snapshot_index_
  int64_t snapshot_index_ = 0;
  // The image at snapshot_index_, shared with the shell's log write of it
  // (never null; empty before the first snapshot).
  std::shared_ptr<const std::string> snapshot_ = std::make_shared<const std::string>();
  uint64_t next_token_ = 1;
  std::map<uint64_t, Waiting> waiting_;  // tokens not yet known durable

  // Learner.
  int64_t applied_ = 0;
  int64_t commit_index_ = 0;              // highest slot known chosen
  // Applied values above snapshot_index_, for catch-up. nullopt: the same
  // bytes as accepted_'s entry for the slot, so most values are held once, not
  // twice; SetAccepted copies such a value here before it replaces the entry,
  // and both maps are cut at the same index.
  std::map<int64_t, std::optional<std::string>> chosen_;
  int64_t max_round_seen_ = 0;
  Micros last_catchup_at_ = std::numeric_limits<Micros>::min() / 2;
  int64_t last_catchup_from_ = 0;
  int64_t last_catchup_index_ = 0;   // the assembly the last request named
  int64_t last_catchup_offset_ = 0;

  // Snapshot being received: one image at most (see "Snapshot transfer").
  int64_t asm_index_ = 0;  // 0: none
  int64_t asm_size_ = 0;
  int asm_from_ = 0;       // the responder it comes from
  std::string asm_bytes_;  // bytes [0, size) received so far
  Micros asm_progress_at_ = 0;

  // Roles.
  Role role_ = Role::kFollower;
  Ballot ballot_;  // own ballot while candidate or leader
  int leader_id_ = 0;
  int64_t epoch_ = 0;
  Micros last_heard_leader_ = 0;
  // The transport reported this leader's process gone (OnPeerGone); 0: none.
  // Cleared by hearing a leader.
  int gone_leader_ = 0;
  Micros election_deadline_ = 0;

  // Pre-vote.
  bool prevoting_ = false;
  Ballot prevote_ballot_;
  std::set<int> prevote_grants_;

  // Candidate (phase 1).
  bool self_promised_ = false;
  int64_t from_slot_ = 0;
  std::set<int> promisers_;
  std::map<int64_t, Entry> reported_;  // highest-ballot value per slot from promises
  int64_t phase1_snapshot_ = 0;        // highest snapshot index a promiser reported
  int phase1_snapshot_from_ = 0;       // ... and who
  Micros phase1_deadline_ = 0;
  Micros last_prepare_at_ = 0;

  // Leader (phase 2).
  std::deque<std::string> queue_;  // values waiting for a slot (recovered ones first)
  int64_t next_slot_ = 1;          // slot the next dispatched value gets
  int64_t leader_commit_ = 0;      // chosen in this reign (or applied before it)
  // An in-flight slot: the acceptors that have it (self once durable) and
  // when its ACCEPT last went out.
  struct InFlight {
    std::set<int> who;
    Micros sent = 0;
  };
  std::map<int64_t, InFlight> acks_;
  int64_t recovery_end_ = 0;
  bool recovered_emitted_ = false;
  std::map<int, Micros> last_heard_;  // peer -> last message while leading
  std::map<int, int64_t> progress_;
  Micros last_heartbeat_ = 0;

  // Storage failed: silent until restarted.
  bool failed_ = false;

  // Rejoining.
  bool joining_ = false;
  Ballot join_ballot_;               // round 0 until the first join round
  int64_t join_from_slot_ = 1;
  std::set<int> join_answered_;      // peers that promised join_ballot_ (or are joining too)
  std::map<int64_t, Entry> join_reported_;  // highest-ballot accepted value per slot
  int64_t join_target_ = 0;          // highest commit index the promisers reported
  bool join_fenced_ = false;         // every peer answered: now catching up
  bool join_finishing_ = false;      // the joined record is being written
  std::vector<Entry> join_writes_;   // adopted values to persist with the joined record
  Micros last_join_at_ = 0;
  size_t join_turn_ = 0;             // round-robin over peers for catch-up
};

// ---------------------------------------------------------------- plumbing

Replica::Impl::Impl(int id, std::vector<int> members, Options options, DurableState recovered,
                    int64_t applied_index)
    : id_(id), opt_(options) {
  members.push_back(id);
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  members_ = std::move(members);
  for (int m : members_) {
    if (m != id_) peers_.push_back(m);
  }
  // The shell may hand every replica the same seed: mix in the id so their
  // election timeouts still differ.
  rng_ = opt_.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(id_ + 1));

  promised_ = recovered.promised;
  snapshot_index_ = std::max<int64_t>(recovered.snapshot_index, 0);
  snapshot_ = std::make_shared<const std::string>(std::move(recovered.snapshot));
  max_round_seen_ = promised_.round;
  for (auto& [slot, e] : recovered.accepted) {
    if (slot <= snapshot_index_) continue;  // the snapshot covers it
    Entry entry = e;
    entry.slot = slot;
    max_round_seen_ = std::max(max_round_seen_, entry.ballot.round);
    SetAccepted(slot, std::move(entry));
  }
  applied_ = std::max<int64_t>(applied_index, 0);
  if (applied_ < snapshot_index_) {
    // The state machine is older than the durable snapshot: load the image.
    applied_ = snapshot_index_;
    fx_.install = std::make_pair(snapshot_index_, *snapshot_);
  }
  // Slots the shell says it applied above its snapshot: their accepted values
  // are the ones it applied (it applies only chosen values).
  for (auto it = accepted_.upper_bound(snapshot_index_);
       it != accepted_.end() && it->first <= applied_; ++it) {
    chosen_[it->first] = std::nullopt;  // the accepted value it applied
  }
  commit_index_ = applied_;
  joining_ = recovered.joining;
  if (joining_) {
    Log(LogLine::kWarn, "replica id=", id_, " starts joining: it votes only once it has learned the group's state from every other replica");
  }
}

void Replica::Impl::Start(Micros now) {
  now_ = now;
  if (started_) return;
  started_ = true;
  // Count start-up as having heard a leader: a restarted replica does not
  // hand a pre-vote to a candidate before it had a chance to hear the leader.
  last_heard_leader_ = now;
  election_deadline_ = now + RandomElectionTimeout();
}

uint64_t Replica::Impl::NextRandom() {  // splitmix64
  uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Micros Replica::Impl::RandomElectionTimeout() {
  const Micros lo = opt_.election_min;
  const Micros hi = std::max(opt_.election_max, lo);
  return lo + static_cast<Micros>(NextRandom() % static_cast<uint64_t>(hi - lo + 1));
}

Micros Replica::Impl::RandomRetryBackoff() {
  const uint64_t span = static_cast<uint64_t>(std::max<Micros>(opt_.election_min / 2, 1));
  return static_cast<Micros>(NextRandom() % (span + 1));
}

void Replica::Impl::OnPeerGone(int peer, Micros now) {
  Start(now);
  if (failed_ || joining_ || role_ != Role::kFollower || peer == id_ || peer != leader_id_) return;
  gone_leader_ = peer;
  // Both followers hear of it at about the same moment: a random wait of up
  // to a heartbeat keeps them from splitting the vote (and RandomRetryBackoff
  // settles it if they still do).
  const Micros wait = static_cast<Micros>(
      NextRandom() % (static_cast<uint64_t>(std::max<Micros>(opt_.heartbeat, 1)) + 1));
  election_deadline_ = std::min(election_deadline_, now_ + wait);
  Log(LogLine::kInfo, "the connection to leader id=", peer,
      " was closed by its side: running for election early");
}

void Replica::Impl::Send(int to, Message m) {
  m.sender = id_;
  m.receiver = to;
  fx_.sends.push_back(Outgoing{to, std::move(m)});
}

uint64_t Replica::Impl::NewPersist(std::optional<Ballot> promised, std::vector<Entry> entries) {
  Persist p;
  p.token = next_token_++;
  p.promised = std::move(promised);
  p.entries = std::move(entries);
  waiting_.emplace(p.token, Waiting{});
  const uint64_t token = p.token;
  fx_.persists.push_back(std::move(p));
  return token;
}

// Runs `fn` once everything persisted so far is durable.
void Replica::Impl::AfterDurable(std::function<void()> fn) {
  if (waiting_.empty()) {
    fn();
  } else {
    waiting_.rbegin()->second.actions.push_back(std::move(fn));
  }
}

void Replica::Impl::OnPersisted(uint64_t token, Micros now) {
  Start(now);
  if (failed_) return;  // a failed store may not have kept what it acknowledges
  auto it = waiting_.find(token);
  if (it == waiting_.end()) return;
  it->second.done = true;
  while (!waiting_.empty() && waiting_.begin()->second.done) {
    std::vector<std::function<void()>> actions = std::move(waiting_.begin()->second.actions);
    waiting_.erase(waiting_.begin());
    for (auto& a : actions) a();
  }
}

Effects Replica::Impl::TakeEffects() {
  Dispatch();  // everything Propose()d since the last call goes out as one batch
  return std::exchange(fx_, Effects{});
}

std::map<int, int64_t> Replica::Impl::progress() const {
  std::map<int, int64_t> p;
  if (role_ == Role::kLeader) p = progress_;
  p[id_] = applied_;
  return p;
}

// ---------------------------------------------------------------- inputs

void Replica::Impl::OnMessage(const Message& m, Micros now) {
  Start(now);
  if (failed_) return;
  const int from = m.sender;
  if (from == id_ || !std::binary_search(peers_.begin(), peers_.end(), from)) return;
  if (m.receiver != 0 && m.receiver != id_) return;
  if (role_ == Role::kLeader) last_heard_[from] = now;

  // Every ballot except a pre-vote's is one some replica really holds: it
  // raises the rounds this replica knows of, and a higher one ends our bid.
  // (A PREPARE does so only if we grant it, in HandlePrepare: one of the
  // same round can never win, so it must not depose a working leader.)
  if (m.type != wire::Type::PREVOTE && m.type != wire::Type::PREVOTE_REPLY) {
    max_round_seen_ = std::max(max_round_seen_, m.ballot.round);
    if (m.type != wire::Type::PREPARE && role_ != Role::kFollower && Less(ballot_, m.ballot)) {
      StepDown("higher ballot");
    }
  }

  switch (m.type) {
    case wire::Type::PREVOTE: HandlePreVote(m); break;
    case wire::Type::PREVOTE_REPLY: HandlePreVoteReply(m); break;
    case wire::Type::PREPARE: HandlePrepare(m); break;
    case wire::Type::PROMISE: HandlePromise(m); break;
    case wire::Type::ACCEPT: HandleAccept(m); break;
    case wire::Type::ACCEPTED: HandleAccepted(m); break;
    case wire::Type::HEARTBEAT: HandleHeartbeat(m); break;
    case wire::Type::HEARTBEAT_REPLY: HandleHeartbeatReply(m); break;
    case wire::Type::CATCHUP_REQUEST: HandleCatchupRequest(m); break;
    case wire::Type::CATCHUP_REPLY: HandleCatchupReply(m); break;
    default: break;  // unknown type: ignore
  }
  if (joining_) JoinProgress();
}

void Replica::Impl::Tick(Micros now) {
  Start(now);
  if (failed_) return;
  if (joining_) {
    if (join_ballot_.round == 0) {
      StartJoinRound();
    } else if (!join_fenced_ && now - last_join_at_ >= opt_.heartbeat) {
      SendJoinPrepares();
    } else if (join_fenced_ && !join_finishing_ && applied_ < join_target_ && !peers_.empty()) {
      // Ask the peers in turn: any of them answers from what it applied.
      MaybeCatchup(peers_[join_turn_++ % peers_.size()], join_target_);
    }
    JoinProgress();
    return;
  }
  switch (role_) {
    case Role::kLeader: {
      // A leader cut off from its majority stops serving: it may already
      // have been replaced, and its clients should find the new one.
      size_t live = 1;
      for (int p : peers_) {
        auto it = last_heard_.find(p);
        if (it != last_heard_.end() && now - it->second <= opt_.election_max) ++live;
      }
      if (live < Majority()) {
        StepDown("lost contact with a majority");
        break;
      }
      if (now - last_heartbeat_ >= opt_.heartbeat) {
        SendHeartbeats();
        ResendAccepts();
      }
      break;
    }
    case Role::kCandidate:
      if (now >= phase1_deadline_) {
        StepDown("phase 1 timed out");
        break;
      }
      // Still fetching a promiser's snapshot: ask again if a chunk was lost.
      MaybeCatchup(phase1_snapshot_from_, phase1_snapshot_);
      if (self_promised_ && now - last_prepare_at_ >= opt_.heartbeat) {
        last_prepare_at_ = now;
        for (int p : peers_) {
          if (promisers_.count(p)) continue;
          Message m = MakeMessage(wire::Type::PREPARE, ballot_);
          m.from_slot = from_slot_;
          Send(p, std::move(m));
        }
      }
      break;
    case Role::kFollower:
      if (now >= election_deadline_) StartPreVote();
      break;
  }
}

bool Replica::Impl::Propose(std::string value, Micros now) {
  Start(now);
  if (role_ != Role::kLeader || failed_) return false;
  queue_.push_back(std::move(value));
  return true;
}

void Replica::Impl::Compacted(int64_t index, std::shared_ptr<const std::string> image) {
  index = std::min(index, applied_);
  if (index <= snapshot_index_ || image == nullptr) return;
  snapshot_index_ = index;
  snapshot_ = std::move(image);
  accepted_.erase(accepted_.begin(), accepted_.upper_bound(index));
  chosen_.erase(chosen_.begin(), chosen_.upper_bound(index));
}

// ---------------------------------------------------------------- roles

void Replica::Impl::StartPreVote() {
  election_deadline_ = now_ + RandomElectionTimeout();
  leader_id_ = 0;
  prevoting_ = true;
  prevote_ballot_ = MakeBallot(max_round_seen_ + 1, id_);
  prevote_grants_ = {id_};
  if (prevote_grants_.size() >= Majority()) {
    StartPhase1();
    return;
  }
  for (int p : peers_) {
    Message m = MakeMessage(wire::Type::PREVOTE, prevote_ballot_);
    m.applied_index = applied_;
    Send(p, std::move(m));
  }
}

void Replica::Impl::StartPhase1() {
  prevoting_ = false;
  role_ = Role::kCandidate;
  leader_id_ = 0;
  ballot_ = MakeBallot(max_round_seen_ + 1, id_);
  max_round_seen_ = ballot_.round;
  promised_ = ballot_;
  self_promised_ = false;
  from_slot_ = applied_ + 1;
  promisers_.clear();
  reported_.clear();
  phase1_snapshot_ = 0;
  phase1_snapshot_from_ = 0;
  phase1_deadline_ = now_ + RandomElectionTimeout();
  last_prepare_at_ = now_;
  Log(LogLine::kInfo, "phase 1 id=", id_, " ballot=", Str(ballot_), " from_slot=", from_slot_);

  // Our own promise counts only once it is durable, and no PREPARE leaves
  // before it is: a candidate that crashed with its ballot only in memory
  // may pick the same ballot again after a restart, and a promise made to
  // the first incarnation by a replica that later lost its disk could then
  // count for the second (a rejoining replica cannot fence a ballot nobody
  // durable knows of).
  NewPersist(promised_, {});
  const Ballot b = ballot_;
  AfterDurable([this, b] {
    if (role_ != Role::kCandidate || !Same(ballot_, b)) return;
    self_promised_ = true;
    for (auto it = accepted_.lower_bound(from_slot_); it != accepted_.end(); ++it) {
      Report(it->second);
    }
    for (int p : peers_) {
      Message m = MakeMessage(wire::Type::PREPARE, ballot_);
      m.from_slot = from_slot_;
      Send(p, std::move(m));
    }
    last_prepare_at_ = now_;
    MaybeWin();
  });
}

void Replica::Impl::MaybeWin() {
  if (role_ == Role::kCandidate && self_promised_ && promisers_.size() + 1 >= Majority() &&
      applied_ >= phase1_snapshot_) {
    BecomeLeader();
  }
}

void Replica::Impl::BecomeLeader() {
  role_ = Role::kLeader;
  leader_id_ = id_;
  epoch_ = ballot_.round;
  // Re-propose every slot above what we applied: the highest-ballot value any
  // promiser (ourselves included) accepted, a no-op where nobody did.
  const int64_t start = applied_ + 1;
  reported_.erase(reported_.begin(), reported_.lower_bound(start));
  recovery_end_ = reported_.empty() ? applied_ : reported_.rbegin()->first;
  queue_.clear();
  for (int64_t s = start; s <= recovery_end_; ++s) {
    auto r = reported_.find(s);
    queue_.push_back(r == reported_.end() ? std::string() : r->second.value);
  }
  reported_.clear();
  promisers_.clear();
  next_slot_ = start;
  leader_commit_ = applied_;
  acks_.clear();
  recovered_emitted_ = false;
  last_heard_.clear();
  progress_.clear();
  for (int p : peers_) last_heard_[p] = now_;
  Log(LogLine::kInfo, "leader id=", id_, " ballot=", Str(ballot_), " recovering slots ", start, "..", recovery_end_);
  SendHeartbeats();
  CheckRecovered();
}

void Replica::Impl::StepDown(const char* why) {
  if (role_ == Role::kLeader) {
    fx_.stepped_down = true;
    Log(LogLine::kInfo, "step down id=", id_, " ballot=", Str(ballot_), ": ", why);
  } else if (role_ == Role::kCandidate) {
    Log(LogLine::kInfo, "candidate id=", id_, " ballot=", Str(ballot_), " gives up: ", why);
  }
  role_ = Role::kFollower;
  if (leader_id_ == id_) leader_id_ = 0;
  queue_.clear();
  acks_.clear();
  promisers_.clear();
  reported_.clear();
  prevoting_ = false;
  election_deadline_ = now_ + RandomElectionTimeout();
}

// `b` is the ballot of a live leader at least as high as our promise.
void Replica::Impl::FollowLeader(const Ballot& b) {
  if (role_ != Role::kFollower) return;  // our own ballot; higher ones stepped us down
  leader_id_ = b.replica;
  epoch_ = b.round;
  last_heard_leader_ = now_;
  gone_leader_ = 0;
  election_deadline_ = now_ + RandomElectionTimeout();
  prevoting_ = false;
}

// ---------------------------------------------------------------- pre-vote

void Replica::Impl::HandlePreVote(const Message& m) {
  // Grant only while no live leader is heard: a replica that merely cannot
  // hear a healthy leader then cannot push the group into a new round.
  // (Or once the transport reported our leader's process gone.)
  const bool grant = role_ != Role::kLeader && !joining_ &&
                     (now_ - last_heard_leader_ >= opt_.election_min || gone_leader_ != 0) &&
                     m.applied_index >= snapshot_index_;
  Message r = MakeMessage(wire::Type::PREVOTE_REPLY, m.ballot);
  r.ok = grant;
  Send(m.sender, std::move(r));
}

void Replica::Impl::HandlePreVoteReply(const Message& m) {
  if (!prevoting_ || role_ != Role::kFollower || !m.ok || !Same(m.ballot, prevote_ballot_)) return;
  prevote_grants_.insert(m.sender);
  if (prevote_grants_.size() >= Majority()) StartPhase1();
}

// ---------------------------------------------------------------- phase 1

void Replica::Impl::HandlePrepare(const Message& m) {
  if (joining_) {
    // No promise until rejoined; round 0 tells a joining peer we hold nothing.
    Message r = MakeMessage(wire::Type::PROMISE, Ballot());
    r.ok = false;
    Send(m.sender, std::move(r));
    return;
  }
  if (Same(m.ballot, promised_)) {
    // A duplicate (or a retransmission): answer again once the promise is durable.
    const Ballot b = m.ballot;
    const int to = m.sender;
    const int64_t from_slot = m.from_slot;
    AfterDurable([this, to, b, from_slot] { SendPromise(to, b, from_slot); });
    return;
  }
  // Strict on rounds: each round is granted to one candidate only, so the
  // round is an epoch no two leaders share (DESIGN.md, txids).
  if (m.ballot.round <= promised_.round) {
    Message r = MakeMessage(wire::Type::PROMISE, promised_);
    r.ok = false;
    Send(m.sender, std::move(r));
    return;
  }
  if (role_ != Role::kFollower) StepDown("promised a higher round");
  promised_ = m.ballot;
  leader_id_ = 0;
  // Our own pre-vote, if one is out, is moot: its grants must not start a
  // phase 1 that would preempt the candidate just promised. And a hint that
  // the old leader is gone has served: if this candidate fails too, the
  // election timeout applies.
  prevoting_ = false;
  gone_leader_ = 0;
  // Give the candidate time to finish before we run for office ourselves.
  election_deadline_ = now_ + RandomElectionTimeout();
  NewPersist(promised_, {});
  const Ballot b = m.ballot;
  const int to = m.sender;
  const int64_t from_slot = m.from_slot;
  AfterDurable([this, to, b, from_slot] { SendPromise(to, b, from_slot); });
}

void Replica::Impl::SendPromise(int to, const Ballot& b, int64_t from_slot) {
  if (!Same(promised_, b)) {
    // Promised a higher ballot since: the entries below would not be this
    // promise's, so refuse instead.
    Message r = MakeMessage(wire::Type::PROMISE, promised_);
    r.ok = false;
    Send(to, std::move(r));
    return;
  }
  Message r = MakeMessage(wire::Type::PROMISE, b);
  r.ok = true;
  r.from_slot = from_slot;
  r.commit_index = commit_index_;
  r.applied_index = applied_;
  for (auto it = accepted_.lower_bound(from_slot); it != accepted_.end(); ++it) {
    r.entries.push_back(it->second);
  }
  if (from_slot <= snapshot_index_) {
    // We forgot slots the candidate lacks: they are chosen, and the image
    // holds them. The candidate fetches it by catch-up, in chunks.
    r.snapshot_index = snapshot_index_;
    r.snapshot_size = static_cast<int64_t>(snapshot_->size());
  }
  Send(to, std::move(r));
}

void Replica::Impl::HandlePromise(const Message& m) {
  if (joining_) return HandleJoinPromise(m);
  if (role_ != Role::kCandidate) return;
  if (!m.ok) {
    // The round is taken (by an equal or higher ballot): try again later,
    // with a higher round. Usually another candidate took it at the same
    // moment (a split vote: each refuses the other's round, and neither wins
    // it). Waiting a whole election timeout again would double the failover,
    // so retry after a shorter random wait: the two candidates' waits differ,
    // and the later one finds the earlier one's PREPARE first. If the taker
    // is a leader, its heartbeat arrives first and the pre-vote is refused
    // by every replica that hears it.
    if (m.ballot.round >= ballot_.round && !Same(m.ballot, ballot_)) {
      StepDown("round taken");
      election_deadline_ = now_ + RandomRetryBackoff();
    }
    return;
  }
  if (!Same(m.ballot, ballot_) || promisers_.count(m.sender)) return;
  promisers_.insert(m.sender);
  if (m.__isset.snapshot && m.snapshot_index > applied_) {
    Install(m.snapshot_index, m.snapshot);  // an older sender's whole image
  } else if (m.snapshot_index > applied_) {
    // It forgot the values of slots through its snapshot: learn them from
    // the image before leading (MaybeWin waits for it).
    if (m.snapshot_index > phase1_snapshot_) {
      phase1_snapshot_ = m.snapshot_index;
      phase1_snapshot_from_ = m.sender;
    }
    MaybeCatchup(m.sender, m.snapshot_index);
  }
  for (const Entry& e : m.entries) Report(e);
  MaybeWin();
}

// Phase 1 keeps, per slot, the value of the highest ballot any promiser
// accepted: if a value was chosen, that is it (Paxos's P2c).
void Replica::Impl::Report(const Entry& e) {
  if (e.slot < from_slot_) return;
  auto it = reported_.find(e.slot);
  if (it == reported_.end() || Less(it->second.ballot, e.ballot)) reported_[e.slot] = e;
}

// ---------------------------------------------------------------- phase 2

void Replica::Impl::Dispatch() {
  if (role_ != Role::kLeader || queue_.empty()) return;
  const int64_t window = static_cast<int64_t>(std::max<size_t>(opt_.max_inflight, 1));
  const int64_t inflight = next_slot_ - 1 - leader_commit_;
  // Under load, wait until half the window is free: otherwise each chosen
  // slot would free one place and the pipeline would go one value per ACCEPT.
  if (inflight > 0 && window - inflight < std::max<int64_t>(window / 2, 1)) return;
  // One ACCEPT (and one write) per snapshot_chunk bytes of values, at least
  // one value each: a window of large values stays under the frame limit.
  while (!queue_.empty() && next_slot_ - 1 - leader_commit_ < window) {
    std::vector<Entry> batch;
    size_t bytes = 0;
    while (!queue_.empty() && next_slot_ - 1 - leader_commit_ < window) {
      const size_t n = queue_.front().size();
      if (StartsNewAccept(bytes, n, batch.empty())) break;
      bytes += n;
      Entry e = MakeEntry(next_slot_++, ballot_, std::move(queue_.front()));
      queue_.pop_front();
      SetAccepted(e.slot, e);
      acks_[e.slot].sent = now_;
      batch.push_back(std::move(e));
    }
    SendAccepts(std::move(batch));
  }
}

void Replica::Impl::SendAccepts(std::vector<Entry> batch) {
  std::vector<int64_t> slots;
  for (const Entry& e : batch) slots.push_back(e.slot);
  for (int p : peers_) {
    Message m = MakeMessage(wire::Type::ACCEPT, ballot_);
    m.entries = batch;
    m.commit_index = leader_commit_;
    Send(p, std::move(m));
  }
  NewPersist(std::nullopt, std::move(batch));
  const Ballot b = ballot_;
  AfterDurable([this, b, slots = std::move(slots)] {
    if (role_ != Role::kLeader || !Same(ballot_, b)) return;
    for (int64_t s : slots) {
      auto it = acks_.find(s);
      if (it != acks_.end()) it->second.who.insert(id_);
    }
    AdvanceCommit();
  });
}

void Replica::Impl::HandleAccept(const Message& m) {
  if (joining_) {
    // Accept nothing, but learn what its leader says is chosen.
    TryApply(m.ballot, m.commit_index);
    MaybeCatchup(m.sender, m.commit_index);
    return;
  }
  if (Less(m.ballot, promised_)) {
    Message r = MakeMessage(wire::Type::ACCEPTED, promised_);
    r.ok = false;
    Send(m.sender, std::move(r));
    TryApply(m.ballot, m.commit_index);  // what it says is chosen still is
    return;
  }
  const bool new_promise = Less(promised_, m.ballot);
  if (new_promise) promised_ = m.ballot;
  FollowLeader(m.ballot);
  std::vector<Entry> writes;
  Message r = MakeMessage(wire::Type::ACCEPTED, m.ballot);
  r.ok = true;
  for (const Entry& e : m.entries) {
    if (e.slot <= 0) continue;
    r.entries.push_back(MakeEntry(e.slot, m.ballot, {}));
    // A slot inside our snapshot is chosen and applied here; acknowledging
    // it without a record is safe (we promised nothing above m.ballot before
    // learning it, so no phase 1 relied on us forgetting it).
    if (e.slot <= snapshot_index_) continue;
    auto it = accepted_.find(e.slot);
    if (it != accepted_.end() && Same(it->second.ballot, m.ballot)) continue;  // have it
    Entry ne = MakeEntry(e.slot, m.ballot, e.value);
    SetAccepted(e.slot, ne);
    writes.push_back(std::move(ne));
  }
  if (new_promise || !writes.empty()) {
    NewPersist(new_promise ? std::optional<Ballot>(promised_) : std::nullopt, std::move(writes));
  }
  const int to = m.sender;
  AfterDurable([this, to, r = std::move(r)]() mutable {
    r.applied_index = applied_;
    Send(to, std::move(r));
  });
  TryApply(m.ballot, m.commit_index);
  MaybeCatchup(m.sender, m.commit_index);
}

void Replica::Impl::HandleAccepted(const Message& m) {
  if (role_ != Role::kLeader || !m.ok || !Same(m.ballot, ballot_)) return;
  for (const Entry& e : m.entries) {
    auto it = acks_.find(e.slot);
    if (it != acks_.end()) it->second.who.insert(m.sender);
  }
  progress_[m.sender] = std::max(progress_[m.sender], m.applied_index);
  AdvanceCommit();
}

void Replica::Impl::AdvanceCommit() {
  while (true) {
    auto it = acks_.find(leader_commit_ + 1);
    if (it == acks_.end() || it->second.who.size() < Majority()) break;
    ++leader_commit_;
    acks_.erase(it);
  }
  commit_index_ = std::max(commit_index_, leader_commit_);
  TryApply(ballot_, leader_commit_);
}

void Replica::Impl::SendHeartbeats() {
  last_heartbeat_ = now_;
  for (int p : peers_) {
    Message m = MakeMessage(wire::Type::HEARTBEAT, ballot_);
    m.commit_index = leader_commit_;
    Send(p, std::move(m));
  }
}

// Messages get lost: re-send each in-flight slot to the acceptors that have
// not acknowledged it yet, once its last ACCEPT is a heartbeat old. A younger
// one is most likely still on its way, or its acknowledgement is (a follower
// acknowledges once the value is on its disk): under load about one slot in
// six was still unacknowledged at a tick, and re-sending those doubled what
// a slow follower had to read, which made it slower still.
void Replica::Impl::ResendAccepts() {
  const auto due = [this](const InFlight& f) { return now_ - f.sent >= opt_.heartbeat; };
  // Split as Dispatch splits: snapshot_chunk bytes of values per ACCEPT.
  for (int p : peers_) {
    Message m = MakeMessage(wire::Type::ACCEPT, ballot_);
    m.commit_index = leader_commit_;
    size_t bytes = 0;
    for (const auto& [slot, f] : acks_) {
      if (f.who.count(p) || !due(f)) continue;
      auto it = accepted_.find(slot);
      if (it == accepted_.end()) continue;
      const size_t n = it->second.value.size();
      if (StartsNewAccept(bytes, n, m.entries.empty())) {
        Message next = MakeMessage(wire::Type::ACCEPT, ballot_);
        next.commit_index = leader_commit_;
        Send(p, std::exchange(m, std::move(next)));
        bytes = 0;
      }
      bytes += n;
      m.entries.push_back(it->second);
    }
    if (!m.entries.empty()) Send(p, std::move(m));
  }
  for (auto& [slot, f] : acks_) {
    if (due(f)) f.sent = now_;
  }
}

void Replica::Impl::CheckRecovered() {
  if (role_ == Role::kLeader && !recovered_emitted_ && applied_ >= recovery_end_) {
    recovered_emitted_ = true;
    fx_.leader_recovered = ballot_.round;
    Log(LogLine::kInfo, "leader id=", id_, " epoch=", ballot_.round, " recovered through slot ", applied_);
  }
}

// ---------------------------------------------------------------- learning

void Replica::Impl::HandleHeartbeat(const Message& m) {
  if (joining_) {
    // Learn what is chosen; no reply: not a member the leader may count on yet.
    TryApply(m.ballot, m.commit_index);
    MaybeCatchup(m.sender, m.commit_index);
    return;
  }
  if (Less(m.ballot, promised_)) {
    Message r = MakeMessage(wire::Type::HEARTBEAT_REPLY, promised_);
    r.ok = false;
    Send(m.sender, std::move(r));
    TryApply(m.ballot, m.commit_index);
    return;
  }
  FollowLeader(m.ballot);
  TryApply(m.ballot, m.commit_index);
  MaybeCatchup(m.sender, m.commit_index);
  Message r = MakeMessage(wire::Type::HEARTBEAT_REPLY, m.ballot);
  r.ok = true;
  r.applied_index = applied_;
  r.commit_index = commit_index_;
  Send(m.sender, std::move(r));
}

void Replica::Impl::HandleHeartbeatReply(const Message& m) {
  if (role_ != Role::kLeader || !m.ok || !Same(m.ballot, ballot_)) return;
  progress_[m.sender] = std::max(progress_[m.sender], m.applied_index);
}

// Applies slots up to `commit` that hold ballot `b`'s value. The leader of
// `b` said those slots are chosen; a value of another ballot there may not be
// the chosen one, so the walk stops at it (catch-up fills the rest).
void Replica::Impl::TryApply(const Ballot& b, int64_t commit) {
  commit_index_ = std::max(commit_index_, commit);
  while (applied_ < commit) {
    auto it = accepted_.find(applied_ + 1);
    if (it == accepted_.end() || !Same(it->second.ballot, b)) break;
    Apply(it->first, it->second.value);
  }
}

void Replica::Impl::Apply(int64_t slot, const std::string& value) {
  applied_ = slot;
  commit_index_ = std::max(commit_index_, slot);
  auto a = accepted_.find(slot);
  if (a != accepted_.end() && a->second.value == value) {
    chosen_[slot] = std::nullopt;  // held once, in accepted_
  } else {
    chosen_[slot] = value;
  }
  fx_.applies.emplace_back(slot, value);
  CheckRecovered();
}

void Replica::Impl::SetAccepted(int64_t slot, Entry e) {
  auto c = chosen_.find(slot);
  if (c != chosen_.end() && !c->second) c->second = accepted_.at(slot).value;
  accepted_[slot] = std::move(e);
}

const std::string& Replica::Impl::ChosenValue(
    std::map<int64_t, std::optional<std::string>>::const_iterator it) const {
  return it->second ? *it->second : accepted_.at(it->first).value;
}

void Replica::Impl::Install(int64_t index, std::string image) {
  Log(LogLine::kInfo, "install snapshot id=", id_, " index=", index, " bytes=", image.size(), " (applied ", applied_, ")");
  applied_ = index;
  commit_index_ = std::max(commit_index_, index);
  snapshot_index_ = index;
  snapshot_ = std::make_shared<const std::string>(std::move(image));
  accepted_.erase(accepted_.begin(), accepted_.upper_bound(index));
  chosen_.erase(chosen_.begin(), chosen_.upper_bound(index));
  if (asm_index_ != 0 && asm_index_ <= index) DropAssembly();
  fx_.applies.clear();  // all at or below `index`: the image supersedes them
  fx_.install = std::make_pair(index, *snapshot_);
}

// Asks `to` for chosen slots after our applied index when we know of chosen
// slots beyond it; at most once per heartbeat unless we progressed. While an
// image is being assembled, asks its responder for the next chunk instead
// (anyone, once that stream stalled).
void Replica::Impl::MaybeCatchup(int to, int64_t target) {
  if (asm_index_ != 0 && !AssemblyStalled()) to = asm_from_;
  if (role_ == Role::kLeader || applied_ >= target || to == id_ || to == 0) return;
  const int64_t from = applied_ + 1;
  // Name the image only to the responder it comes from.
  const bool resume = asm_index_ != 0 && to == asm_from_;
  const int64_t index = resume ? asm_index_ : 0;
  const int64_t offset = resume ? static_cast<int64_t>(asm_bytes_.size()) : 0;
  if (from == last_catchup_from_ && index == last_catchup_index_ &&
      offset == last_catchup_offset_ && now_ - last_catchup_at_ < opt_.heartbeat) {
    return;
  }
  last_catchup_from_ = from;
  last_catchup_index_ = index;
  last_catchup_offset_ = offset;
  last_catchup_at_ = now_;
  Message m = MakeMessage(wire::Type::CATCHUP_REQUEST, promised_);
  m.from_slot = from;
  m.applied_index = applied_;
  m.snapshot_index = index;
  m.snapshot_offset = offset;
  Send(to, std::move(m));
}

void Replica::Impl::HandleCatchupRequest(const Message& m) {
  // Any replica may answer from what it applied: applied values are chosen.
  Message r = MakeMessage(wire::Type::CATCHUP_REPLY,
                          role_ == Role::kLeader ? ballot_ : promised_);
  r.commit_index = role_ == Role::kLeader ? leader_commit_ : commit_index_;
  r.applied_index = applied_;
  const size_t chunk = std::max<size_t>(opt_.snapshot_chunk, 1);
  const int64_t from = std::max<int64_t>(m.from_slot, 1);
  if (from <= snapshot_index_) {
    // One chunk of our image: where the requester left off if it is
    // assembling this very image (from us), else from the start.
    const int64_t size = static_cast<int64_t>(snapshot_->size());
    int64_t offset = 0;
    if (m.snapshot_index == snapshot_index_ && m.snapshot_offset > 0 && m.snapshot_offset < size) {
      offset = m.snapshot_offset;
    }
    r.snapshot_index = snapshot_index_;
    r.snapshot_size = size;
    r.snapshot_offset = offset;
    r.__set_snapshot_chunk(snapshot_->substr(static_cast<size_t>(offset), chunk));
    Send(m.sender, std::move(r));
    return;
  }
  const size_t batch = std::max<size_t>(opt_.catchup_batch, 1);
  size_t bytes = 0;
  for (int64_t s = from; s <= applied_ && r.entries.size() < batch; ++s) {
    auto it = chosen_.find(s);
    if (it == chosen_.end()) break;
    const std::string& value = ChosenValue(it);
    if (!r.entries.empty() && bytes + value.size() > chunk) break;
    bytes += value.size();
    r.entries.push_back(MakeEntry(s, r.ballot, value));
  }
  if (r.entries.empty()) return;
  Send(m.sender, std::move(r));
}

bool Replica::Impl::AssemblyStalled() const {
  return now_ - asm_progress_at_ >= opt_.election_max;
}

void Replica::Impl::DropAssembly() {
  asm_index_ = 0;
  asm_size_ = 0;
  asm_from_ = 0;
  std::string().swap(asm_bytes_);  // give the memory back
}

// Takes one chunk of a CATCHUP_REPLY; true if it moved the assembly (so the
// next chunk is due). Installs the image once complete.
bool Replica::Impl::ReceiveChunk(const Message& m) {
  const std::string& data = m.snapshot_chunk;
  const int64_t index = m.snapshot_index;
  const int64_t size = m.snapshot_size;
  const int64_t offset = m.snapshot_offset;
  if (index <= applied_ || size < 0 || offset < 0 || offset > size ||
      static_cast<int64_t>(data.size()) > size - offset) {
    return false;
  }
  bool moved = false;
  if (index != asm_index_ || m.sender != asm_from_ || size != asm_size_) {
    // Another image: take it if it is newer than ours, or ours stalled.
    if (asm_index_ != 0 && index <= asm_index_ && !AssemblyStalled()) return false;
    if (asm_index_ != 0) {
      Log(LogLine::kInfo, "snapshot id=", id_, ": drops image ", asm_index_, " at ", asm_bytes_.size(), "/", asm_size_, " bytes for image ", index, " from replica ", m.sender);
    }
    DropAssembly();
    asm_index_ = index;
    asm_size_ = size;
    asm_from_ = m.sender;
    asm_progress_at_ = now_;
    moved = true;  // if this chunk is not the first, ask for offset 0
  }
  // A duplicate or a chunk after a lost one: the next request asks again.
  if (offset != static_cast<int64_t>(asm_bytes_.size())) return moved;
  asm_bytes_.append(data);
  asm_progress_at_ = now_;
  if (static_cast<int64_t>(asm_bytes_.size()) == asm_size_) {
    std::string image = std::move(asm_bytes_);
    DropAssembly();
    Install(index, std::move(image));
  }
  return true;
}

void Replica::Impl::HandleCatchupReply(const Message& m) {
  if (role_ == Role::kLeader) return;
  const int64_t before = applied_;
  bool moved = false;
  if (m.__isset.snapshot_chunk) {
    moved = ReceiveChunk(m);
  } else if (m.__isset.snapshot && m.snapshot_index > applied_) {
    Install(m.snapshot_index, m.snapshot);  // an older sender's whole image
  }
  std::vector<Entry> writes;
  for (const Entry& e : m.entries) {
    if (e.slot <= applied_) continue;
    if (e.slot != applied_ + 1) break;
    // Keep the chosen value as an accepted one so a restart still has it;
    // never lower a ballot we hold (a phase 1 may rely on it).
    auto it = accepted_.find(e.slot);
    if (it == accepted_.end() || Less(it->second.ballot, m.ballot)) {
      Entry ne = MakeEntry(e.slot, m.ballot, e.value);
      SetAccepted(e.slot, ne);
      writes.push_back(std::move(ne));
    }
    Apply(e.slot, e.value);
  }
  if (!writes.empty()) NewPersist(std::nullopt, std::move(writes));
  if (asm_index_ != 0 && asm_index_ <= applied_) DropAssembly();  // the entries got there first
  if (role_ == Role::kCandidate) MaybeWin();
  // m.commit_index is only a hint here (the responder may not lead): use it
  // to decide whether to ask again, never to apply our own entries.
  if (applied_ > before || moved) {
    MaybeCatchup(m.sender, std::max({commit_index_, m.commit_index, asm_index_, phase1_snapshot_}));
  }
}

// ---------------------------------------------------------------- storage failure

void Replica::Impl::OnStorageFailed(Micros now) {
  Start(now);
  if (failed_) return;
  failed_ = true;
  StepDown("the log storage failed");
  leader_id_ = 0;
  // Nothing that waits for a write may leave now: the write may be lost.
  waiting_.clear();
  Log(LogLine::kError, "replica id=", id_, " stops voting and leading: its log storage failed");
}

// ---------------------------------------------------------------- rejoining
//
// Why every other replica, and a PREPARE rather than a question: the lost log
// may hold a promise of some round R to a live candidate, or an accepted value
// of a slot chosen without any healthy replica knowing yet. Each replica that
// promises the join ballot J refuses every ballot below J from then on, and
// its PROMISE reports what it accepted; a candidate of round R learns of J
// (from its own promise to J, which steps it down) or told us of R (we then
// retry above it). So once every other replica promised J, no ballot below J
// can gather a majority without us, no value of a ballot below J can be chosen
// that is not among the adopted ones, and our promise of J is above every
// ballot the lost log could have promised: voting from J on keeps every promise
// it made. A majority would not do: a candidate outside it could complete the
// phase 1 of a round above J with the lost promise after we rejoined.

void Replica::Impl::StartJoinRound() {
  join_ballot_ = MakeBallot(max_round_seen_ + 1, id_);
  max_round_seen_ = join_ballot_.round;
  join_from_slot_ = applied_ + 1;
  join_answered_.clear();
  join_reported_.clear();
  join_target_ = 0;
  Log(LogLine::kInfo, "joining id=", id_, ": fencing the others with ballot ", Str(join_ballot_), " from slot ", join_from_slot_);
  SendJoinPrepares();
}

void Replica::Impl::SendJoinPrepares() {
  last_join_at_ = now_;
  for (int p : peers_) {
    if (join_answered_.count(p)) continue;
    Message m = MakeMessage(wire::Type::PREPARE, join_ballot_);
    m.from_slot = join_from_slot_;
    Send(p, std::move(m));
  }
}

void Replica::Impl::HandleJoinPromise(const Message& m) {
  if (join_fenced_ || join_ballot_.round == 0) return;
  if (!m.ok) {
    if (m.ballot.round == 0) {
      join_answered_.insert(m.sender);  // joining too: it holds nothing we need
    } else if (m.ballot.round >= join_ballot_.round && !Same(m.ballot, join_ballot_)) {
      StartJoinRound();  // it promised a round at least ours: go above it
    }  // (a refusal naming our own ballot answers an older one: its promise follows)
    return;
  }
  if (!Same(m.ballot, join_ballot_) || join_answered_.count(m.sender)) return;
  join_answered_.insert(m.sender);
  if (m.__isset.snapshot && m.snapshot_index > applied_) {
    Install(m.snapshot_index, m.snapshot);  // an older sender's whole image
  } else if (m.snapshot_index > applied_) {
    // Its image holds slots it forgot: fetch it (catching up to join_target_
    // waits for it).
    join_target_ = std::max(join_target_, m.snapshot_index);
    MaybeCatchup(m.sender, m.snapshot_index);
  }
  for (const Entry& e : m.entries) {
    if (e.slot < join_from_slot_) continue;
    auto it = join_reported_.find(e.slot);
    if (it == join_reported_.end() || Less(it->second.ballot, e.ballot)) join_reported_[e.slot] = e;
  }
  join_target_ = std::max(join_target_, m.commit_index);
}

// Called after every input while joining.
void Replica::Impl::JoinProgress() {
  if (!joining_ || join_finishing_ || join_ballot_.round == 0) return;
  if (!join_fenced_) {
    if (join_answered_.size() < peers_.size()) return;
    join_fenced_ = true;
    // Adopt, per slot, the value of the highest ballot reported: any value
    // chosen below our ballot is it (as in a leader's phase 1).
    for (auto& [slot, e] : join_reported_) {
      if (slot <= snapshot_index_) continue;
      auto it = accepted_.find(slot);
      if (it != accepted_.end() && !Less(it->second.ballot, e.ballot)) continue;
      SetAccepted(slot, e);
      join_writes_.push_back(e);
    }
    join_reported_.clear();
    Log(LogLine::kInfo, "joining id=", id_, ": every other replica promised ", Str(join_ballot_), "; catching up to slot ", join_target_, " (applied ", applied_, ")");
  }
  if (applied_ < join_target_) return;  // Tick asks for catch-up
  join_finishing_ = true;
  if (Less(promised_, join_ballot_)) promised_ = join_ballot_;
  // Write what we hold now for the adopted slots: an image installed since
  // covers some, and catch-up may have replaced others by the chosen value.
  std::vector<Entry> writes;
  for (const Entry& e : join_writes_) {
    auto it = accepted_.find(e.slot);
    if (e.slot > snapshot_index_ && it != accepted_.end()) writes.push_back(it->second);
  }
  NewPersist(promised_, std::move(writes));
  fx_.persists.back().joined = true;
  join_writes_.clear();
  AfterDurable([this] {
    joining_ = false;
    join_finishing_ = false;
    join_fenced_ = false;
    election_deadline_ = now_ + RandomElectionTimeout();
    Log(LogLine::kInfo, "replica id=", id_, " rejoined with promise ", Str(promised_), " at applied slot ", applied_, ": voting");
  });
}

// ---------------------------------------------------------------- Replica

Replica::Replica(int id, std::vector<int> members, Options options, DurableState recovered,
                 int64_t applied_index)
    : impl_(std::make_unique<Impl>(id, std::move(members), options, std::move(recovered),
                                   applied_index)) {}
Replica::~Replica() = default;

void Replica::OnMessage(const Message& m, Micros now) { impl_->OnMessage(m, now); }
void Replica::OnPersisted(uint64_t token, Micros now) { impl_->OnPersisted(token, now); }
void Replica::Tick(Micros now) { impl_->Tick(now); }
void Replica::OnPeerGone(int peer, Micros now) { impl_->OnPeerGone(peer, now); }
void Replica::OnStorageFailed(Micros now) { impl_->OnStorageFailed(now); }
bool Replica::Propose(std::string value, Micros now) { return impl_->Propose(std::move(value), now); }
void Replica::Compacted(int64_t index, std::shared_ptr<const std::string> image) {
  impl_->Compacted(index, std::move(image));
}

Effects Replica::TakeEffects() { return impl_->TakeEffects(); }
int Replica::id() const { return impl_->id(); }
bool Replica::is_leader() const { return impl_->is_leader(); }
bool Replica::joining() const { return impl_->joining(); }
bool Replica::storage_failed() const { return impl_->storage_failed(); }
int Replica::leader_id() const { return impl_->leader_id(); }
int64_t Replica::epoch() const { return impl_->epoch(); }
int64_t Replica::commit_index() const { return impl_->commit_index(); }
int64_t Replica::applied_index() const { return impl_->applied_index(); }
std::map<int, int64_t> Replica::progress() const { return impl_->progress(); }

}  // namespace txc::paxos
