#include "coordinator/commit_driver.h"

#include "common/status_proto.h"
#include "protocol/validate.h"

#include <algorithm>
#include <set>

namespace txc::coord {

namespace {

std::string Describe(const proto::Participant& p) { return p.resource + " at " + p.address; }

// An agent that does not set DecideResponse.refused words its refusals so.
bool LooksLikeRefusal(const Status& s) {
  return s.code() == Status::kInternal && s.message().find("refusing to") != std::string::npos;
}

// Read as it came off the wire: loading the enum when it holds a value the
// enum does not name would be undefined behaviour.
bool KnownProtocol(const proto::Protocol::type& p) {
  int32_t v = validate::WireEnumValue(p);
  return v == proto::Protocol::TWO_PC || v == proto::Protocol::THREE_PC;
}

bool SameParticipant(const proto::Participant& a, const proto::Participant& b) {
  return a.resource == b.resource && a.address == b.address;
}

}  // namespace

std::string HeuristicHazard::ToString() const {
  return Describe(participant) + " refused " + OutcomeName(decided) + ": " + message;
}

CommitDriver::CommitDriver(const TxnTable* table, DriverOptions options)
    : table_(table), options_(options) {}

const char* CommitDriver::StateName(State s) {
  switch (s) {
    case State::kActive: return "active";
    case State::kVoting: return "voting";
    case State::kPreCommitting: return "precommitting";
    case State::kPreCommitted: return "precommitted";
    case State::kDeciding: return "deciding";
    case State::kCompleting: return "completing";
    case State::kEnding: return "ending";
  }
  return "?";
}

void CommitDriver::BecomeLeader(int64_t epoch, Micros now) {
  FailBarrierWaiters(Status::NotLeader("this coordinator started a new leadership; ask again"));
  serving_ = true;
  leader_hint_.clear();  // this node leads now; a hint from an earlier StepDown is void
  epoch_ = epoch;
  next_seq_ = 1;
  txns_.clear();
  pending_ends_.clear();  // an earlier leadership's: its new driving ends them again
  // Finish what earlier leaders decided: resend the outcome until acked, then END.
  for (const TxnTable::Entry* e : table_->Unended()) {
    Txn& t = txns_[e->txid];
    t.txid = e->txid;
    t.protocol = e->protocol;
    t.outcome = e->outcome;
    t.began = now;
    t.participants = e->participants;
    t.taken_over = true;
    for (const proto::Command& f : e->forgotten) t.log.push_back(LogEntry{f, 0, 0});
    StartCompleting(&t, now, &e->forgotten);
  }
  // 3PC: PRECOMMIT chosen, no decision yet: it commits (DESIGN.md, "3PC").
  // Every participant voted YES and the group promised the commit; the
  // participants hear DO_COMMIT once the decision is chosen.
  for (const TxnTable::Entry* e : table_->PreCommittedUndecided()) {
    Txn& t = txns_[e->txid];
    t.txid = e->txid;
    t.protocol = proto::Protocol::THREE_PC;
    t.began = now;
    t.participants = e->participants;
    t.votes.assign(t.participants.size(), proto::Vote::YES);
    t.taken_over = true;
    ProposeCommit(&t);
  }
}

void CommitDriver::StepDown(const std::string& leader_hint) {
  leader_hint_ = leader_hint;
  if (!serving_) return;
  serving_ = false;
  for (auto* v : {&barrier_covered_, &barrier_next_}) {
    for (const BarrierWaiter& w : *v) ReplyNotServing(w.token, w.txid, true);
    v->clear();
  }
  barrier_in_flight_ = false;
  pending_ends_.clear();
  for (auto& [txid, t] : txns_) {
    for (uint64_t w : t.waiters) ReplyNotServing(w, txid, false);
    for (const auto& [w, p] : t.forget_waiters) ReplyNotServing(w, txid, false);
  }
  txns_.clear();
}

// ------------------------------------------------------------ client requests

void CommitDriver::OnBegin(uint64_t token, const proto::BeginRequest& req, Micros now) {
  proto::BeginResponse resp;
  if (!serving_) {
    resp.status = ToProto(leader_hint_.empty() ? Status::Unavailable("coordinator is not serving")
                                               : Status::NotLeader("ask the leader"));
    if (!leader_hint_.empty()) resp.status.__set_leader_hint(leader_hint_);
    effects_.replies.push_back({token, resp});
    return;
  }
  Micros timeout = options_.txn_timeout;
  if (req.__isset.timeout_ms && req.timeout_ms > 0) timeout = req.timeout_ms * kMillis;
  // A reservation (count set): consecutive txids, each usable for
  // reserve_ttl. (The shells refuse a count out of range, validate::Check;
  // bounded here too for any other caller.)
  const bool reserve = req.__isset.count;
  const int32_t count = reserve ? std::clamp(req.count, 1, validate::kMaxBeginCount) : 1;
  if (reserve) {
    timeout = std::min(timeout, options_.reserve_ttl);
    resp.__set_count(count);
    resp.__set_reserved_ms(timeout / kMillis);
  }
  for (int32_t i = 0; i < count; ++i) {
    Txn t;
    t.txid = MakeTxId(epoch_, next_seq_++);
    t.began = now;
    t.deadline = now + timeout;
    t.reserved = reserve;
    if (i == 0) resp.txid = t.txid;
    txns_.emplace_hint(txns_.end(), t.txid, std::move(t));
  }
  counters_.begun += count;
  effects_.replies.push_back({token, resp});
}

Status CommitDriver::ValidateParticipants(std::vector<proto::Participant>* ps) const {
  std::set<std::pair<std::string, std::string>> seen;
  std::vector<proto::Participant> out;
  for (auto& p : *ps) {
    if (p.resource.empty() || p.address.empty()) {
      return Status::InvalidArgument("a participant needs a resource name and an agent address");
    }
    if (seen.insert({p.resource, p.address}).second) out.push_back(p);
  }
  *ps = std::move(out);
  return Status::Ok();
}

Status CommitDriver::CheckParticipantCount(size_t n, const std::string& field) const {
  if (n <= options_.max_participants) return Status::Ok();
  return Status::InvalidArgument(field + " names " + std::to_string(n) +
                                 " distinct participants; at most " +
                                 std::to_string(options_.max_participants) +
                                 " take part in one transaction (txcoord --max-participants); "
                                 "nothing was sent to them: roll the transaction back");
}

void CommitDriver::OnCommit(uint64_t token, const proto::CommitRequest& req, Micros now) {
  if (!serving_) return ReplyNotServing(token, req.txid, false);
  auto it = txns_.find(req.txid);
  if (it == txns_.end()) {
    if (RefuseNewerEpoch(token, req.txid, false)) return;
    std::string reason;
    auto outcome = SettledOutcome(req.txid, &reason);
    if (outcome == proto::Outcome::UNKNOWN) {
      return ReplyCommit(token, req.txid, outcome,
                         Status::InvalidArgument("txid " + ToString(req.txid) +
                                                 " was not begun at this coordinator"),
                         "");
    }
    // Whoever answers ABORTED makes sure the participants it knows of hear
    // it (e.g. a commit retried after a leader change): their branches may
    // still be ACTIVE, holding locks until their timeout otherwise.
    if (outcome == proto::Outcome::ABORTED) TellAborted(req.txid, req.participants);
    return ReplyCommit(token, req.txid, outcome, Status::Ok(), reason);
  }
  Txn& t = it->second;
  if (t.state != State::kActive) {
    // A retried commit: answer with the outcome once it is known.
    if (t.state == State::kCompleting || t.state == State::kEnding) {
      // (An operator's abort: participants it did not name are told too.)
      if (t.outcome == proto::Outcome::ABORTED) TellAborted(t.txid, Unnamed(t, req.participants));
      return ReplyCommit(token, t.txid, t.outcome, Status::Ok(), "");
    }
    t.waiters.push_back(token);
    return;
  }
  if (!KnownProtocol(req.protocol)) {
    return ReplyCommit(token, t.txid, proto::Outcome::PENDING,
                       Status::InvalidArgument("unknown commit protocol " +
                                               std::to_string(validate::WireEnumValue(req.protocol)) +
                                               " (TWO_PC = 1, THREE_PC = 2)"),
                       "");
  }
  std::vector<proto::Participant> ps = req.participants;
  Status valid = ValidateParticipants(&ps);
  if (valid.ok()) valid = CheckParticipantCount(ps.size(), "CommitRequest.participants");
  if (!valid.ok()) return ReplyCommit(token, t.txid, proto::Outcome::PENDING, valid, "");
  t.participants = std::move(ps);
  t.protocol = req.protocol;
  t.waiters.push_back(token);
  StartVoting(&t, nullptr, now);
}

void CommitDriver::OnSubmit(uint64_t token, const proto::SubmitRequest& req, Micros now) {
  if (!serving_) return ReplyNotServing(token, req.txid, false);
  auto it = txns_.find(req.txid);
  if (it == txns_.end() || it->second.state != State::kActive) {
    // A retried submit behaves as a retried commit (its branches are the
    // participants to tell if it is aborted).
    proto::CommitRequest c;
    c.txid = req.txid;
    for (const auto& b : req.branches) c.participants.push_back(b.participant);
    return OnCommit(token, c, now);
  }
  Txn& t = it->second;
  if (!KnownProtocol(req.protocol)) {
    return ReplyCommit(token, t.txid, proto::Outcome::PENDING,
                       Status::InvalidArgument("unknown commit protocol " +
                                               std::to_string(validate::WireEnumValue(req.protocol)) +
                                               " (TWO_PC = 1, THREE_PC = 2)"),
                       "");
  }
  // One branch per (resource, agent); statements for the same one are joined.
  std::vector<proto::Participant> ps;
  std::vector<std::vector<proto::Statement>> work;
  for (const auto& b : req.branches) {
    if (b.participant.resource.empty() || b.participant.address.empty()) {
      return ReplyCommit(token, t.txid, proto::Outcome::PENDING,
                         Status::InvalidArgument("a branch needs a resource name and an agent address"),
                         "");
    }
    size_t i = 0;
    while (i < ps.size() && !(ps[i] == b.participant)) ++i;
    if (i == ps.size()) {
      ps.push_back(b.participant);
      work.emplace_back();
    }
    work[i].insert(work[i].end(), b.statements.begin(), b.statements.end());
  }
  if (Status many = CheckParticipantCount(ps.size(), "SubmitRequest.branches"); !many.ok()) {
    return ReplyCommit(token, t.txid, proto::Outcome::PENDING, many, "");
  }
  t.participants = std::move(ps);
  t.protocol = req.protocol;
  t.waiters.push_back(token);
  StartVoting(&t, &work, now);
}

void CommitDriver::OnAbort(uint64_t token, const proto::AbortRequest& req, Micros now) {
  if (!serving_) return ReplyNotServing(token, req.txid, false);
  auto it = txns_.find(req.txid);
  if (it == txns_.end()) {
    if (RefuseNewerEpoch(token, req.txid, false)) return;
    std::string reason;
    auto outcome = SettledOutcome(req.txid, &reason);
    if (outcome == proto::Outcome::FORGOTTEN) {
      // It may have committed: no ABORT goes out, and the caller hears that
      // the outcome is unknown.
      return ReplyCommit(token, req.txid, outcome,
                         Status::NotFound("transaction " + ToString(req.txid) +
                                          " ended long ago; its outcome is forgotten (it may have "
                                          "committed), so it cannot be rolled back"),
                         reason);
    }
    if (outcome == proto::Outcome::COMMITTED) {
      return ReplyCommit(token, req.txid, outcome,
                         Status::InvalidArgument("transaction " + ToString(req.txid) +
                                                 " is already committed"),
                         "");
    }
    if (outcome == proto::Outcome::PENDING) {
      return ReplyCommit(token, req.txid, outcome,
                         Status::Unavailable("transaction " + ToString(req.txid) +
                                             " is committing (3PC: PRECOMMIT is chosen); it cannot "
                                             "be rolled back"),
                         "");
    }
    if (outcome == proto::Outcome::UNKNOWN) {
      // Not allocated by this leadership: a later epoch's txid may be live at
      // a newer leader (this one may not know yet that it was deposed), and
      // an ABORT could undo branches that leader commits. Refuse, as Commit does.
      return ReplyCommit(token, req.txid, outcome,
                         Status::InvalidArgument("txid " + ToString(req.txid) +
                                                 " was not begun at this coordinator"),
                         "");
    }
    // Already aborted: tell the named participants anyway (a tombstone at
    // each keeps a late execute out), and answer ABORTED.
    TellAborted(req.txid, req.participants);
    return ReplyCommit(token, req.txid, proto::Outcome::ABORTED, Status::Ok(),
                       reason.empty() ? req.reason : reason);
  }
  Txn& t = it->second;
  if (t.state == State::kActive || t.state == State::kVoting) {
    std::vector<proto::Participant> ps = t.participants;
    ps.insert(ps.end(), req.participants.begin(), req.participants.end());
    (void)ValidateParticipants(&ps);
    t.participants = std::move(ps);
    t.votes.resize(t.participants.size());
    t.waiters.push_back(token);
    Abort(&t, req.reason.empty() ? "rolled back by the client" : req.reason);
    return;
  }
  // The commit is already being decided: the caller learns which way it went.
  if (t.state == State::kDeciding || t.state == State::kPreCommitting ||
      t.state == State::kPreCommitted) {
    t.waiters.push_back(token);
    return;
  }
  if (t.outcome == proto::Outcome::ABORTED) TellAborted(t.txid, Unnamed(t, req.participants));
  ReplyCommit(token, t.txid, t.outcome,
              t.outcome == proto::Outcome::COMMITTED
                  ? Status::InvalidArgument("transaction " + ToString(t.txid) + " is already committed")
                  : Status::Ok(),
              "");
}

void CommitDriver::OnResolve(uint64_t token, const proto::ResolveRequest& req, Micros now) {
  if (!serving_) return ReplyNotServing(token, req.txid, false);
  const std::string id = ToString(req.txid);
  auto refuse = [&](proto::Outcome::type outcome, const std::string& why) {
    ReplyCommit(token, req.txid, outcome, Status::InvalidArgument(why), "");
  };
  auto it = txns_.find(req.txid);
  if (it == txns_.end()) {
    if (RefuseNewerEpoch(token, req.txid, false)) return;
    std::string reason;
    auto outcome = SettledOutcome(req.txid, &reason);
    switch (outcome) {
      case proto::Outcome::COMMITTED:
      case proto::Outcome::ABORTED:
        return refuse(outcome, "transaction " + id + " is already decided: " + OutcomeName(outcome) +
                                   (reason.empty() ? "" : " (" + reason + ")") +
                                   "; an operator cannot change a decision");
      case proto::Outcome::FORGOTTEN:
        return refuse(outcome, "transaction " + id + " ended long ago and its outcome is forgotten "
                               "(it may have committed); there is nothing to resolve");
      case proto::Outcome::PENDING:
        return refuse(outcome, "transaction " + id + " is committing: the group chose its 3PC "
                               "PRECOMMIT, which decides a commit; an operator cannot change it");
      default:
        return refuse(proto::Outcome::UNKNOWN, "txid " + id + " was never allocated by this "
                                               "coordinator group; check it with txadmin txns");
    }
  }
  Txn& t = it->second;
  switch (t.state) {
    case State::kActive:
    case State::kVoting:
      break;
    case State::kDeciding:
      return refuse(proto::Outcome::PENDING,
                    "transaction " + id + " is being decided committed (every participant voted "
                    "YES); an operator cannot change a decision");
    case State::kPreCommitting:
    case State::kPreCommitted:
      return refuse(proto::Outcome::PENDING,
                    "transaction " + id + " is committing under 3PC (every participant voted YES "
                    "and PRECOMMIT is " +
                        (t.state == State::kPreCommitted ? std::string("chosen") : "being chosen") +
                        "); an operator cannot change a decision");
    case State::kCompleting:
    case State::kEnding:
      return refuse(t.outcome, "transaction " + id + " is already decided: " +
                                   OutcomeName(t.outcome) + "; an operator cannot change a decision");
  }
  if (req.outcome != proto::Outcome::ABORTED) {
    std::string missing;
    for (size_t i = 0; i < t.participants.size(); ++i) {
      if (i >= t.votes.size() || !t.votes[i]) {
        missing += (missing.empty() ? "" : ", ") + Describe(t.participants[i]);
      }
    }
    return refuse(proto::Outcome::PENDING,
                  "transaction " + id + " cannot be forced to commit: only every participant's YES "
                  "vote decides a commit (" +
                      (t.state == State::kActive ? std::string("it has not asked to commit")
                                                 : "no vote yet from " + missing) +
                      "); resolve it --abort, or wait for the votes");
  }
  // Chosen first, then delivered and ended like any decision (OnApplied).
  // No vote or timeout may decide it meanwhile.
  t.state = State::kDeciding;
  t.waiters.push_back(token);
  // A READ_ONLY voter has released its branch and takes no part in phase 2
  // (as in Abort): an ABORT it must acknowledge could never be applied there.
  std::vector<proto::Participant> phase2;
  for (size_t i = 0; i < t.participants.size(); ++i) {
    if (i < t.votes.size() && t.votes[i] == proto::Vote::READ_ONLY) continue;
    phase2.push_back(t.participants[i]);
  }
  proto::Command cmd = MakeDecide(t.txid, proto::Outcome::ABORTED, std::move(phase2), t.protocol,
                                  "resolved by operator " + req.who + ": " + req.reason);
  cmd.type = proto::CommandType::RESOLVE;
  cmd.who = req.who;
  effects_.proposals.push_back(std::move(cmd));
  (void)now;
}

void CommitDriver::OnForgetParticipant(uint64_t token, const proto::ForgetParticipantRequest& req,
                                       Micros now) {
  (void)now;
  if (!serving_) return ReplyNotServing(token, req.txid, false);
  const std::string id = ToString(req.txid);
  auto refuse = [&](proto::Outcome::type outcome, const std::string& why) {
    ReplyCommit(token, req.txid, outcome, Status::InvalidArgument(why), "");
  };
  auto it = txns_.find(req.txid);
  if (it == txns_.end()) {
    if (RefuseNewerEpoch(token, req.txid, false)) return;
    std::string reason;
    auto outcome = SettledOutcome(req.txid, &reason);
    return refuse(outcome, "transaction " + id + " is not being delivered (" +
                               OutcomeName(outcome) +
                               "): it ended, or was never decided; nothing to forget");
  }
  Txn& t = it->second;
  if (t.state != State::kCompleting) {
    return refuse(t.state == State::kEnding ? t.outcome : proto::Outcome::PENDING,
                  "transaction " + id + (t.state == State::kEnding
                                             ? " is ending: every participant acknowledged"
                                             : " is not decided yet: resolve it first "
                                               "(txadmin txn resolve " + id + " --abort)"));
  }
  for (size_t i = 0; i < t.participants.size(); ++i) {
    if (t.participants[i].resource != req.resource) continue;
    if (t.acked[i]) {
      return refuse(t.outcome, Describe(t.participants[i]) + " acknowledged " +
                                   OutcomeName(t.outcome) + " already; nothing to forget");
    }
    proto::Command cmd;
    cmd.type = proto::CommandType::FORGET;
    cmd.txid = t.txid;
    cmd.outcome = t.outcome;
    cmd.participants = {t.participants[i]};
    cmd.reason = req.reason;
    cmd.who = req.who;
    t.forget_waiters.emplace_back(token, t.participants[i]);
    effects_.proposals.push_back(std::move(cmd));
    return;
  }
  std::string names;
  for (const auto& p : t.participants) names += (names.empty() ? "" : ", ") + p.resource;
  refuse(t.outcome, "transaction " + id + " has no participant '" + req.resource + "' (it has: " +
                        names + ")");
}

void CommitDriver::OnOutcome(uint64_t token, const proto::OutcomeRequest& req, Micros now) {
  if (req.__isset.decision_key) RegisterDecisionKey(req.decision_key);
  if (!serving_) return ReplyNotServing(token, req.txid, true);
  auto it = txns_.find(req.txid);
  if (it != txns_.end()) {
    const Txn& t = it->second;
    bool decided = t.state == State::kCompleting || t.state == State::kEnding;
    return ReplyOutcome(token, decided ? t.outcome : proto::Outcome::PENDING, Status::Ok());
  }
  // Never "unknown" for a newer leader's txid (an agent would roll back an
  // ACTIVE branch that the newer leader may still commit), unless an epoch
  // barrier shows there is none.
  if (req.txid.epoch > epoch_) return AwaitEpochBarrier(token, req.txid);
  std::string reason;
  auto outcome = SettledOutcome(req.txid, &reason);
  if (outcome == proto::Outcome::UNKNOWN) {
    return ReplyOutcome(token, outcome,
                        Status::InvalidArgument("txid " + ToString(req.txid) +
                                                " was never allocated by this coordinator group"));
  }
  ReplyOutcome(token, outcome, Status::Ok());
}

namespace {
constexpr const char* kEpochBarrierReason = "epoch barrier";
// Outcome queries waiting for barriers, at most: beyond, UNAVAILABLE.
constexpr size_t kMaxBarrierWaiters = 10000;
}  // namespace

proto::Command MakeEpochBarrier(int64_t epoch) {
  proto::Command c;
  c.type = proto::CommandType::NOOP;
  c.epoch = epoch;
  c.reason = kEpochBarrierReason;
  return c;
}

bool IsEpochBarrier(const proto::Command& cmd) {
  return cmd.type == proto::CommandType::NOOP && cmd.who.empty() &&
         cmd.reason == kEpochBarrierReason;
}

void CommitDriver::AwaitEpochBarrier(uint64_t token, const TxId& txid) {
  if (barrier_covered_.size() + barrier_next_.size() >= kMaxBarrierWaiters) {
    return ReplyOutcome(token, proto::Outcome::UNKNOWN,
                        Status::Unavailable("too many outcome queries about txids of newer "
                                            "epochs are waiting; ask again"));
  }
  barrier_next_.push_back({token, txid});
  if (barrier_in_flight_) return;
  barrier_covered_ = std::move(barrier_next_);
  barrier_next_.clear();
  barrier_in_flight_ = true;
  effects_.proposals.push_back(MakeEpochBarrier(epoch_));
}

void CommitDriver::OnNoopApplied(const proto::Command& cmd, Micros now) {
  (void)now;
  if (!serving_ || !barrier_in_flight_ || !IsEpochBarrier(cmd) || cmd.epoch != epoch_) return;
  const bool still_newest = table_->marker_epoch() == epoch_;
  for (const BarrierWaiter& w : barrier_covered_) {
    if (still_newest) {
      ReplyOutcome(w.token, proto::Outcome::UNKNOWN,
                   Status::InvalidArgument("txid " + ToString(w.txid) +
                                           " was never allocated by this coordinator group (no "
                                           "leader of epoch " + std::to_string(w.txid.epoch) +
                                           " has served; this leader's epoch is " +
                                           std::to_string(epoch_) + ")"));
    } else {
      RefuseNewerEpoch(w.token, w.txid, true);
    }
  }
  barrier_covered_.clear();
  barrier_in_flight_ = false;
  if (!barrier_next_.empty()) {
    barrier_covered_ = std::move(barrier_next_);
    barrier_next_.clear();
    barrier_in_flight_ = true;
    effects_.proposals.push_back(MakeEpochBarrier(epoch_));
  }
}

void CommitDriver::FailBarrierWaiters(const Status& why) {
  for (auto* v : {&barrier_covered_, &barrier_next_}) {
    for (const BarrierWaiter& w : *v) ReplyOutcome(w.token, proto::Outcome::UNKNOWN, why);
    v->clear();
  }
  barrier_in_flight_ = false;
}

proto::Outcome::type CommitDriver::SettledOutcome(const TxId& txid, std::string* reason) const {
  if (const TxnTable::Entry* e = table_->Find(txid); e != nullptr) {
    if (e->outcome != proto::Outcome::UNKNOWN) {
      *reason = e->reason;
      return e->outcome;
    }
    if (e->precommitted) {
      // 3PC: PRECOMMIT chosen, the commit not yet: never presumed aborted.
      *reason = "committing (3PC: PRECOMMIT chosen)";
      return proto::Outcome::PENDING;
    }
  }
  switch (table_->ForgottenOutcome(txid)) {
    case proto::Outcome::COMMITTED:
      reason->clear();
      return proto::Outcome::COMMITTED;
    case proto::Outcome::ABORTED:
      *reason = "aborted by an operator (ended, and since forgotten but for its outcome)";
      return proto::Outcome::ABORTED;
    case proto::Outcome::FORGOTTEN:
      *reason = "ended long ago; the coordinator group no longer knows its outcome";
      return proto::Outcome::FORGOTTEN;
    default:
      break;  // never decided
  }
  // Presumed abort, made safe (DESIGN.md): a txid of an older epoch that no
  // leader decided is never decided now (an old leader's DECIDE that a later
  // phase 1 adopts is ignored by TxnTable::Apply once a newer EPOCH marker is
  // applied, which precedes this leader serving); one of ours that is no
  // longer being driven was aborted.
  if (txid.epoch < epoch_) {
    *reason = std::string(kPresumedAbortLeaderChanged);
    return proto::Outcome::ABORTED;
  }
  if (txid.epoch == epoch_ && txid.seq >= 1 && txid.seq < next_seq_) {
    *reason = "aborted (timed out, voted down or rolled back)";
    return proto::Outcome::ABORTED;
  }
  return proto::Outcome::UNKNOWN;
}

bool CommitDriver::RefuseNewerEpoch(uint64_t token, const TxId& txid, bool outcome_query) {
  if (txid.epoch <= epoch_) return false;
  Status s = Status::NotLeader("txid " + ToString(txid) + " belongs to epoch " +
                               std::to_string(txid.epoch) + ", newer than this leader's " +
                               std::to_string(epoch_) + ": ask the newer leader");
  if (outcome_query) {
    ReplyOutcome(token, proto::Outcome::UNKNOWN, s);
  } else {
    ReplyCommit(token, txid, proto::Outcome::UNKNOWN, s, "");
  }
  return true;
}

std::vector<proto::Participant> CommitDriver::Unnamed(const Txn& t,
                                                      const std::vector<proto::Participant>& ps) {
  std::vector<proto::Participant> out;
  for (const proto::Participant& p : ps) {
    if (std::none_of(t.participants.begin(), t.participants.end(),
                     [&](const auto& q) { return SameParticipant(p, q); })) {
      out.push_back(p);
    }
  }
  return out;
}

void CommitDriver::TellAborted(const TxId& txid, const std::vector<proto::Participant>& participants) {
  std::vector<proto::Participant> told;
  for (const proto::Participant& p : participants) {
    if (p.resource.empty() || p.address.empty()) continue;
    if (std::any_of(told.begin(), told.end(), [&](const auto& q) { return SameParticipant(p, q); })) {
      continue;
    }
    told.push_back(p);
    ParticipantCall call;
    call.txid = txid;
    call.index = told.size() - 1;
    call.to = p;
    proto::DecideRequest d;
    d.txid = txid;
    d.resource = p.resource;
    d.outcome = proto::Outcome::ABORTED;
    Sign(&d, p.address);
    call.decide = d;
    effects_.calls.push_back(std::move(call));
  }
}

// ----------------------------------------------------------------- protocol

void CommitDriver::StartVoting(Txn* t, const std::vector<std::vector<proto::Statement>>* work,
                               Micros now) {
  t->state = State::kVoting;
  t->deadline = now + options_.vote_timeout;
  t->votes.assign(t->participants.size(), std::nullopt);
  for (size_t i = 0; i < t->participants.size(); ++i) {
    ParticipantCall call;
    call.txid = t->txid;
    call.index = i;
    call.to = t->participants[i];
    proto::PrepareRequest p;
    p.txid = t->txid;
    p.resource = call.to.resource;
    p.participants = t->participants;
    p.protocol = t->protocol;
    if (work != nullptr) p.__set_work((*work)[i]);
    call.prepare = std::move(p);
    call.want_ack = true;
    effects_.calls.push_back(std::move(call));
  }
  MaybeDecide(t, now);
}

void CommitDriver::OnVote(const TxId& txid, size_t index, const Status& status,
                          const proto::PrepareResponse& resp, Micros now) {
  auto it = txns_.find(txid);
  if (it == txns_.end()) return;  // late vote for a finished transaction
  Txn& t = it->second;
  if (t.state != State::kVoting || index >= t.votes.size() || t.votes[index]) return;
  const proto::Participant& p = t.participants[index];
  if (!status.ok()) {
    t.votes[index] = proto::Vote::NO;
    return Abort(&t, Describe(p) + " did not vote: " + status.ToString());
  }
  // Anything but YES or READ_ONLY (NO, an unset or unknown value) is a NO:
  // never commit on a vote we do not understand.
  if (resp.status.code != proto::Code::OK ||
      (resp.vote != proto::Vote::YES && resp.vote != proto::Vote::READ_ONLY)) {
    t.votes[index] = proto::Vote::NO;
    std::string why = !resp.reason.empty() ? resp.reason : resp.status.message;
    return Abort(&t, Describe(p) + " voted no: " + why);
  }
  t.votes[index] = resp.vote;
  MaybeDecide(&t, now);
}

void CommitDriver::MaybeDecide(Txn* t, Micros now) {
  for (const auto& v : t->votes) {
    if (!v) return;
  }
  // Every vote is YES or READ_ONLY. Only YES voters take part in phase 2.
  std::vector<proto::Participant> phase2;
  for (size_t i = 0; i < t->participants.size(); ++i) {
    if (*t->votes[i] == proto::Vote::YES) phase2.push_back(t->participants[i]);
  }
  if (t->protocol == proto::Protocol::THREE_PC && !phase2.empty()) {
    // 3PC: the group chooses PRECOMMIT before any PRE_COMMIT leaves, so a
    // PRECOMMITTED participant can count on the commit (a new leader commits
    // it); the READ_ONLY voters have left the transaction.
    t->participants = std::move(phase2);
    t->votes.assign(t->participants.size(), proto::Vote::YES);
    t->state = State::kPreCommitting;
    proto::Command c;
    c.type = proto::CommandType::PRECOMMIT;
    c.txid = t->txid;
    c.participants = t->participants;
    c.protocol = proto::Protocol::THREE_PC;
    effects_.proposals.push_back(std::move(c));
    if (options_.testing_precommit_before_chosen) StartPreCommit(t, now);  // the bug
    return;
  }
  t->state = State::kDeciding;
  effects_.proposals.push_back(
      MakeDecide(t->txid, proto::Outcome::COMMITTED, std::move(phase2), t->protocol, ""));
}

bool CommitDriver::AllAnswered(const Txn& t) {
  for (size_t i = 0; i < t.acked.size(); ++i) {
    if (!t.acked[i] && !t.refused[i]) return false;
  }
  return true;
}

void CommitDriver::ProposeCommit(Txn* t) {
  t->state = State::kDeciding;
  effects_.proposals.push_back(
      MakeDecide(t->txid, proto::Outcome::COMMITTED, t->participants, t->protocol, ""));
}

void CommitDriver::ResetDelivery(Txn* t, Micros now) {
  size_t n = t->participants.size();
  t->acked.assign(n, false);
  t->refused.assign(n, false);
  t->backoff.assign(n, options_.resend_initial);
  t->next_send.assign(n, now);
  t->attempts.assign(n, 0);
  t->last_error.assign(n, "");
}

void CommitDriver::StartPreCommit(Txn* t, Micros now) {
  size_t n = t->participants.size();
  ResetDelivery(t, now);
  t->precommit_sent = true;
  for (size_t i = 0; i < n; ++i) SendDecision(t, i, now, /*precommit=*/true);
}

void CommitDriver::RetryLater(Txn* t, size_t i, const Status& failure, Micros now) {
  if (i < t->last_error.size()) t->last_error[i] = failure.ToString();
  t->next_send[i] = now + t->backoff[i];
  t->backoff[i] = std::min(t->backoff[i] * 2, options_.resend_max);
}

void CommitDriver::OnPreCommitAnswer(Txn* t, size_t i, const Status& status, Micros now) {
  if (t->acked[i] || t->refused[i]) return;
  if (!status.ok()) return RetryLater(t, i, status, now);
  t->acked[i] = true;
  // (With the testing seam PRECOMMIT may not be chosen yet: OnApplied goes on.)
  if (t->state == State::kPreCommitted && AllAnswered(*t)) ProposeCommit(t);
}

void CommitDriver::Abort(Txn* t, const std::string& reason) {
  // Presumed abort: nothing is logged; every participant is told once, and
  // one that misses it learns the outcome by asking.
  for (size_t i = 0; i < t->participants.size(); ++i) {
    if (i < t->votes.size() && t->votes[i] == proto::Vote::READ_ONLY) continue;
    ParticipantCall call;
    call.txid = t->txid;
    call.index = i;
    call.to = t->participants[i];
    proto::DecideRequest d;
    d.txid = t->txid;
    d.resource = call.to.resource;
    d.outcome = proto::Outcome::ABORTED;
    Sign(&d, call.to.address);
    call.decide = d;
    effects_.calls.push_back(std::move(call));
  }
  for (uint64_t w : t->waiters) {
    ReplyCommit(w, t->txid, proto::Outcome::ABORTED, Status::Ok(), reason);
  }
  ++counters_.aborted;
  if (t->protocol == proto::Protocol::THREE_PC) ++counters_.aborted_3pc;
  txns_.erase(t->txid);
}

void CommitDriver::OnApplied(const proto::Command& cmd, Micros now) {
  if (!serving_) return;
  auto it = txns_.find(cmd.txid);
  if (it == txns_.end()) return;
  Txn& t = it->second;
  switch (cmd.type) {
    case proto::CommandType::DECIDE:
    case proto::CommandType::RESOLVE: {
      const TxnTable::Entry* e = table_->Find(cmd.txid);
      if (e == nullptr || e->outcome == proto::Outcome::UNKNOWN || t.state == State::kCompleting ||
          t.state == State::kEnding) {
        return;  // (the table ignored it: see TxnTable::Apply)
      }
      t.outcome = e->outcome;  // the first decision chosen stands
      ++(t.outcome == proto::Outcome::COMMITTED ? counters_.committed : counters_.aborted);
      if (t.protocol == proto::Protocol::THREE_PC) {
        ++(t.outcome == proto::Outcome::COMMITTED ? counters_.committed_3pc : counters_.aborted_3pc);
      }
      t.participants = e->participants;
      for (uint64_t w : t.waiters) ReplyCommit(w, t.txid, t.outcome, Status::Ok(), e->reason);
      t.waiters.clear();
      StartCompleting(&t, now);
      return;
    }
    case proto::CommandType::PRECOMMIT: {
      const TxnTable::Entry* e = table_->Find(cmd.txid);
      if (t.state != State::kPreCommitting || e == nullptr || !e->precommitted ||
          e->outcome != proto::Outcome::UNKNOWN) {
        return;  // not this leader's, or the table ignored it
      }
      t.state = State::kPreCommitted;
      t.deadline = now + options_.precommit_ack_timeout;
      if (!t.precommit_sent) {
        StartPreCommit(&t, now);
        return;
      }
      // (The testing seam sent PRE_COMMIT already: acks may all be in.)
      if (AllAnswered(t)) ProposeCommit(&t);
      return;
    }
    case proto::CommandType::END_TXN:
      // A FORGET not chosen before END: its participant acknowledged meanwhile.
      for (const auto& [w, p] : t.forget_waiters) {
        ReplyCommit(w, t.txid, t.outcome, Status::Ok(),
                    Describe(p) + " acknowledged before it was forgotten; nothing was forgotten");
      }
      txns_.erase(it);
      return;
    case proto::CommandType::FORGET: {
      if (t.state != State::kCompleting || cmd.participants.size() != 1) return;
      t.log.push_back(LogEntry{cmd, table_->applied_index(), now});
      for (size_t i = 0; i < t.participants.size(); ++i) {
        if (!SameParticipant(t.participants[i], cmd.participants[0])) continue;
        MarkForgotten(&t, i, cmd, now);
      }
      for (auto w = t.forget_waiters.begin(); w != t.forget_waiters.end();) {
        if (!SameParticipant(w->second, cmd.participants[0])) {
          ++w;
          continue;
        }
        ReplyCommit(w->first, t.txid, t.outcome, Status::Ok(),
                    Describe(w->second) + " forgotten by operator " + cmd.who +
                        ": recorded as a heuristic hazard");
        w = t.forget_waiters.erase(w);
      }
      MaybeEnd(&t);
      return;
    }
    default:
      return;
  }
}

void CommitDriver::MarkForgotten(Txn* t, size_t i, const proto::Command& cmd, Micros now) {
  if (t->acked[i]) return;
  t->acked[i] = true;
  RecordHazard(t->txid, t->participants[i], t->outcome,
               "forgotten by operator " + cmd.who + " (" + cmd.reason + "): it may never apply " +
                   OutcomeName(t->outcome),
               now);
}

void CommitDriver::OnProposalFailed(const proto::Command& cmd, const Status& why, Micros now) {
  // The record may or may not be durable: this node can no longer say what
  // happened, so it stops answering anything until it restarts or a new
  // leadership starts from the log (STYLE.md: sticky storage failure).
  const bool about_txn = cmd.type == proto::CommandType::DECIDE ||
                         cmd.type == proto::CommandType::RESOLVE ||
                         cmd.type == proto::CommandType::PRECOMMIT;
  for (auto& [txid, t] : txns_) {
    // Each waiter hears about its own transaction: the failed record may be
    // another one's (the whole log failed).
    std::string what = about_txn && cmd.txid == txid
                           ? "could not make " + DescribeCommand(cmd) + " durable"
                           : "log failed (making " + DescribeCommand(cmd) + " durable)";
    for (const auto& [w, p] : t.forget_waiters) t.waiters.push_back(w);
    t.forget_waiters.clear();
    for (uint64_t w : t.waiters) {
      ReplyCommit(w, txid, proto::Outcome::UNKNOWN,
                  Status::Unavailable("the coordinator's " + what + ": " + why.ToString() +
                                      "; the outcome of " + ToString(txid) +
                                      " is unknown until it recovers, ask again"),
                  "");
    }
    t.waiters.clear();
  }
  txns_.clear();
  pending_ends_.clear();
  FailBarrierWaiters(Status::Unavailable("the coordinator's log failed (making " +
                                         DescribeCommand(cmd) + " durable): " + why.ToString() +
                                         "; ask again"));
  serving_ = false;
}

void CommitDriver::StartCompleting(Txn* t, Micros now, const std::vector<proto::Command>* forgotten) {
  t->state = State::kCompleting;
  size_t n = t->participants.size();
  ResetDelivery(t, now);
  t->decided_at = now;
  t->stuck_reported = 0;
  if (forgotten != nullptr) {
    for (const proto::Command& f : *forgotten) {
      for (size_t i = 0; i < n; ++i) {
        if (SameParticipant(t->participants[i], f.participants[0])) MarkForgotten(t, i, f, now);
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!t->acked[i]) SendDecision(t, i, now);
  }
  MaybeEnd(t);
}

void CommitDriver::SendDecision(Txn* t, size_t i, Micros now, bool precommit) {
  ParticipantCall call;
  call.txid = t->txid;
  call.index = i;
  call.to = t->participants[i];
  proto::DecideRequest d;
  d.txid = t->txid;
  d.resource = call.to.resource;
  d.outcome = precommit ? proto::Outcome::COMMITTED : t->outcome;
  if (precommit) d.__set_precommit(true);
  Sign(&d, call.to.address);
  call.decide = d;
  call.want_ack = true;
  effects_.calls.push_back(std::move(call));
  if (i < t->attempts.size()) ++t->attempts[i];
  // Resend only if neither an ack nor a failure comes back in time.
  t->next_send[i] = now + options_.call_timeout + t->backoff[i];
}

void CommitDriver::OnAck(const TxId& txid, size_t index, const Status& status, Micros now) {
  auto it = txns_.find(txid);
  if (it == txns_.end()) return;
  Txn& t = it->second;
  if (t.state != State::kCompleting || index >= t.acked.size() || t.acked[index] ||
      t.refused[index]) {
    return;
  }
  if (status.ok()) {
    t.acked[index] = true;
    return MaybeEnd(&t);
  }
  if (LooksLikeRefusal(status)) {
    // Its branch ended the other way: resending changes nothing, and the
    // transaction is not finished (it never ENDs without an operator).
    t.refused[index] = true;
    return RecordHazard(t.txid, t.participants[index], t.outcome, status.message(), now);
  }
  // Not delivered: try again after a backoff (a decided outcome is delivered,
  // whatever it takes).
  RetryLater(&t, index, status, now);
}

void CommitDriver::OnDecideAnswer(const ParticipantCall& call, const Status& transport,
                                  const proto::DecideResponse& reply, Micros now) {
  if (!call.decide) return;
  Status status = transport.ok() ? FromProto(reply.status) : transport;
  bool refused = transport.ok() && !status.ok() &&
                 (reply.__isset.refused ? reply.refused : LooksLikeRefusal(status));
  auto it = txns_.find(call.txid);
  if (call.decide->__isset.precommit && call.decide->precommit) {
    // 3PC's PRE_COMMIT. A refusal: the branch ended the other way although
    // the group chose PRECOMMIT (the commit stands): a heuristic hazard.
    if (refused) RecordHazard(call.txid, call.to, proto::Outcome::COMMITTED, status.message(), now);
    if (it == txns_.end()) return;
    Txn& t = it->second;
    size_t i = call.index;
    if ((t.state != State::kPreCommitted && t.state != State::kPreCommitting) ||
        !t.precommit_sent || i >= t.acked.size() || !SameParticipant(t.participants[i], call.to)) {
      return;
    }
    if (refused) {
      t.refused[i] = true;
      if (t.state == State::kPreCommitted && AllAnswered(t)) ProposeCommit(&t);
      return;
    }
    return OnPreCommitAnswer(&t, i, status, now);
  }
  if (call.want_ack && it != txns_.end()) {
    Txn& t = it->second;
    size_t i = call.index;
    bool current = t.state == State::kCompleting && i < t.acked.size() &&
                   SameParticipant(t.participants[i], call.to) && t.outcome == call.decide->outcome;
    if (current && refused) {
      if (t.acked[i] || t.refused[i]) return;
      t.refused[i] = true;
      return RecordHazard(t.txid, call.to, call.decide->outcome, status.message(), now);
    }
    if (current) {
      if (!status.ok() && LooksLikeRefusal(status)) {
        // The agent said it is not a refusal: a failure to retry.
        status = Status::Unavailable(status.message());
      }
      return OnAck(call.txid, i, status, now);
    }
  }
  // Fire and forget (an ABORT under presumed abort), or an answer for a
  // transaction no longer driven: only a refusal matters.
  if (refused) RecordHazard(call.txid, call.to, call.decide->outcome, status.message(), now);
}

void CommitDriver::RecordHazard(const TxId& txid, const proto::Participant& p,
                                proto::Outcome::type decided, const std::string& message, Micros now) {
  std::vector<HeuristicHazard>& list = hazards_[txid];
  if (list.empty()) hazard_order_.push_back(txid);
  for (const HeuristicHazard& h : list) {
    if (SameParticipant(h.participant, p) && h.decided == decided) return;  // known already
  }
  HeuristicHazard h;
  h.txid = txid;
  h.participant = p;
  h.decided = decided;
  h.message = message;
  h.at = now;
  list.push_back(h);
  ++hazard_count_;
  effects_.hazards.push_back(std::move(h));
  while (hazard_order_.size() > std::max<size_t>(1, options_.hazards_retained)) {
    hazards_.erase(hazard_order_.front());
    hazard_order_.pop_front();
  }
}

void CommitDriver::MaybeEnd(Txn* t) {
  if (t->state != State::kCompleting) return;
  for (bool a : t->acked) {
    if (!a) return;
  }
  t->state = State::kEnding;
  if (!options_.lazy_end) {
    effects_.proposals.push_back(MakeEnd(t->txid));
    return;
  }
  pending_ends_.push_back(MakeEnd(t->txid));
  if (pending_ends_.size() >= options_.lazy_end_batch) flush_ends_ = true;
}

void CommitDriver::Tick(Micros now) {
  if (!serving_) return;
  flush_ends_ = true;  // the ENDs of the last tick's interval
  std::vector<std::pair<TxId, std::string>> to_abort;
  for (auto& [txid, t] : txns_) {
    switch (t.state) {
      case State::kActive:
        if (now >= t.deadline) {
          to_abort.emplace_back(txid, "transaction timed out before commit");
        }
        break;
      case State::kVoting:
        if (now >= t.deadline) {
          std::string missing;
          for (size_t i = 0; i < t.votes.size(); ++i) {
            if (!t.votes[i]) missing += (missing.empty() ? "" : ", ") + Describe(t.participants[i]);
          }
          to_abort.emplace_back(txid, "vote timeout: no vote from " + missing);
        }
        break;
      case State::kPreCommitted:
        if (now >= t.deadline) {
          ProposeCommit(&t);  // PRE_COMMIT acks timed out: PRECOMMIT decides
          break;
        }
        for (size_t i = 0; i < t.acked.size(); ++i) {
          if (!t.acked[i] && !t.refused[i] && now >= t.next_send[i]) {
            SendDecision(&t, i, now, /*precommit=*/true);
          }
        }
        break;
      case State::kCompleting:
        for (size_t i = 0; i < t.acked.size(); ++i) {
          if (!t.acked[i] && !t.refused[i] && now >= t.next_send[i]) SendDecision(&t, i, now);
        }
        if (Stuck(t, now) &&
            (t.stuck_reported == 0 || now - t.stuck_reported >= options_.stuck_after)) {
          t.stuck_reported = now;
          effects_.stuck.push_back(MakeStuckNotice(t, now));
        }
        break;
      default:
        break;
    }
  }
  for (auto& [txid, reason] : to_abort) {
    auto it = txns_.find(txid);
    if (it == txns_.end()) continue;
    if (it->second.reserved) {
      // Unused: no participant, no waiter; nothing to tell anyone.
      ++counters_.reservations_expired;
      txns_.erase(it);
      continue;
    }
    Abort(&it->second, reason);
  }
}

bool CommitDriver::Stuck(const Txn& t, Micros now) const {
  if (t.state != State::kCompleting || now - t.decided_at < options_.stuck_after) return false;
  for (size_t i = 0; i < t.acked.size(); ++i) {
    if (!t.acked[i] && !t.refused[i]) return true;
  }
  return false;  // only refusals left: a heuristic hazard, reported as such
}

StuckNotice CommitDriver::MakeStuckNotice(const Txn& t, Micros now) const {
  StuckNotice n;
  n.txid = t.txid;
  n.outcome = t.outcome;
  n.decided_for = now - t.decided_at;
  for (size_t i = 0; i < t.acked.size(); ++i) {
    if (t.acked[i] || t.refused[i]) continue;
    if (!n.waiting.empty()) n.waiting += "; ";
    n.waiting += Describe(t.participants[i]) + " (" + std::to_string(t.attempts[i]) + " attempts";
    if (!t.last_error[i].empty()) n.waiting += ", last error: " + t.last_error[i];
    n.waiting += ")";
  }
  return n;
}

std::string StuckNotice::ToString() const {
  return "transaction " + txc::ToString(txid) + " decided " + OutcomeName(outcome) + " " +
         std::to_string(decided_for / kMillis) + " ms ago is stuck: not delivered to " + waiting +
         "; delivery goes on (txadmin txn retry to retry now)";
}

size_t CommitDriver::RetryNow(const std::optional<TxId>& txid, Micros now) {
  if (!serving_) return 0;
  size_t retried = 0;
  auto retry = [&](Txn& t) {
    if (t.state != State::kCompleting) return;
    bool any = false;
    for (size_t i = 0; i < t.acked.size(); ++i) {
      if (t.acked[i] || t.refused[i]) continue;
      t.backoff[i] = options_.resend_initial;
      SendDecision(&t, i, now);
      any = true;
    }
    if (any) ++retried;
  };
  if (txid) {
    if (auto it = txns_.find(*txid); it != txns_.end()) retry(it->second);
  } else {
    for (auto& [id, t] : txns_) retry(t);
  }
  return retried;
}

DriverEffects CommitDriver::TakeEffects() {
  // Pending ENDs ride with any other proposal (one slot), or go alone when
  // flushed (Tick, or a full batch). Each follows its own DECIDE, chosen
  // before its transaction reached kEnding.
  if (!pending_ends_.empty() && (flush_ends_ || !effects_.proposals.empty())) {
    for (proto::Command& c : pending_ends_) effects_.proposals.push_back(std::move(c));
    pending_ends_.clear();
  }
  flush_ends_ = false;
  DriverEffects out = std::move(effects_);
  effects_ = DriverEffects();
  return out;
}

std::vector<CommitDriver::TxnView> CommitDriver::ActiveTxns(Micros now) const {
  std::vector<TxnView> out;
  out.reserve(txns_.size());
  for (const auto& [txid, t] : txns_) {
    TxnView v;
    v.txid = txid;
    v.state = t.state == State::kActive && t.reserved ? "reserved" : StateName(t.state);
    v.participants = t.participants;
    v.acked = t.acked;
    v.protocol = t.protocol;
    v.began = t.began;
    v.votes = t.votes;
    v.attempts = t.attempts;
    v.last_error = t.last_error;
    v.refused = t.refused;
    v.decided_at = t.state == State::kCompleting ? t.decided_at : 0;
    v.stuck = Stuck(t, now);
    // The decision's record, from the table (not copied per transaction on
    // the commit path), then the operators' FORGETs.
    if (const TxnTable::Entry* e = table_->Find(txid);
        e != nullptr && e->outcome != proto::Outcome::UNKNOWN) {
      proto::Command d = MakeDecide(txid, e->outcome, {}, e->protocol, e->reason);
      if (e->heuristic) d.type = proto::CommandType::RESOLVE;
      v.log.push_back(LogEntry{std::move(d), e->decided_at, t.taken_over ? 0 : t.decided_at});
    }
    v.log.insert(v.log.end(), t.log.begin(), t.log.end());
    if (auto h = hazards_.find(txid); h != hazards_.end()) {
      for (const HeuristicHazard& x : h->second) v.hazards.push_back(x.ToString());
    }
    out.push_back(std::move(v));
  }
  return out;
}

// -------------------------------------------------------------------- replies

void CommitDriver::ReplyCommit(uint64_t token, const TxId& txid, proto::Outcome::type outcome,
                               const Status& status, const std::string& reason) {
  proto::CommitResponse r;
  r.status = ToProto(status);
  r.txid = txid;
  r.outcome = outcome;
  r.reason = reason;
  effects_.replies.push_back({token, r});
}

namespace {
// Agents' keys kept at most; a new address beyond this clears them all (the
// agents then confirm once more and register again).
constexpr size_t kMaxDecisionKeys = 4096;
}  // namespace

void CommitDriver::RegisterDecisionKey(const proto::DecisionKey& k) {
  SipKey key{static_cast<uint64_t>(k.k0), static_cast<uint64_t>(k.k1)};
  if (k.agent_address.empty() || k.agent_address.size() > 1024) return;
  if (!UsableKey(key)) {
    decision_keys_.erase(k.agent_address);
    return;
  }
  auto it = decision_keys_.find(k.agent_address);
  if (it != decision_keys_.end()) {
    it->second = key;
    return;
  }
  if (decision_keys_.size() >= kMaxDecisionKeys) decision_keys_.clear();
  decision_keys_.emplace(k.agent_address, key);
}

void CommitDriver::Sign(proto::DecideRequest* d, const std::string& address) const {
  if (decision_keys_.empty()) return;
  auto it = decision_keys_.find(address);
  if (it == decision_keys_.end()) return;
  d->__set_decision_mac(static_cast<int64_t>(DecisionMac(it->second, *d)));
}

void CommitDriver::ReplyOutcome(uint64_t token, proto::Outcome::type outcome, const Status& status) {
  proto::OutcomeResponse r;
  r.status = ToProto(status);
  r.outcome = outcome;
  effects_.replies.push_back({token, r});
}

void CommitDriver::ReplyNotServing(uint64_t token, const TxId& txid, bool outcome_query) {
  Status s = leader_hint_.empty()
                 ? Status::Unavailable("this coordinator is not serving (no leader, or recovering)")
                 : Status::NotLeader("not the leader; ask " + leader_hint_);
  proto::Status ps = ToProto(s);
  if (!leader_hint_.empty()) ps.__set_leader_hint(leader_hint_);
  if (outcome_query) {
    proto::OutcomeResponse r;
    r.status = ps;
    r.outcome = proto::Outcome::UNKNOWN;
    effects_.replies.push_back({token, r});
  } else {
    proto::CommitResponse r;
    r.status = ps;
    r.txid = txid;
    r.outcome = proto::Outcome::UNKNOWN;
    effects_.replies.push_back({token, r});
  }
}

}  // namespace txc::coord
