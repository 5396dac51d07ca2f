#include "participant/branch_core.h"

#include "common/status_proto.h"

#include <algorithm>
#include <initializer_list>

namespace txc::participant {

namespace {

// The state a heuristic record shows. UNKNOWN: the branch ended outside
// txcoord with no known outcome (a database's prepared transaction gone).
const char* HeuristicStateName(proto::Outcome::type o) {
  return o == proto::Outcome::COMMITTED ? "committed"
         : o == proto::Outcome::ABORTED ? "aborted"
                                        : "unknown";
}


std::string Name(const std::string& resource, const TxId& txid) {
  return "branch " + ToString(txid) + " on " + resource;
}

}  // namespace

BranchCore::BranchCore(std::vector<std::string> resources, AgentOptions options)
    : resources_(resources.begin(), resources.end()), options_(options) {}

const char* BranchCore::StName(St s) {
  switch (s) {
    case St::kNone: return "none";
    case St::kActive: return "active";
    case St::kPrepared: return "prepared";
    case St::kPreCommitted: return "precommitted";
    case St::kAborting: return "aborting";
    case St::kCommitted: return "committed";
    case St::kAborted: return "aborted";
  }
  return "?";
}

BranchCore::Branch& BranchCore::Get(const std::string& resource, const TxId& txid, Micros now) {
  auto [it, inserted] = branches_.try_emplace(Key{resource, txid});
  if (inserted) it->second.since = now;
  return it->second;
}

void BranchCore::SetState(const Key& key, Branch& b, St st, Micros now) {
  b.state = st;
  b.since = now;
  if (Live(st)) {
    live_.insert(key);
  } else if (!b.parked) {
    live_.erase(key);
  }
  if (st == St::kCommitted || st == St::kAborted) {
    finals_.emplace_back(now, key);
    // What only a branch in doubt reads (recovery's and 3PC termination's
    // participant list), freed while the ended branch is remembered for
    // final_retention.
    b.info = PrepareInfo{};
    b.termination_answers.clear();
  }
}

// ------------------------------------------------------------------ requests

void BranchCore::OnRecovered(const std::string& resource, const std::vector<RecoveredBranch>& rs,
                             Micros now) {
  for (const RecoveredBranch& r : rs) {
    Key key{resource, r.txid};
    Branch& b = Get(resource, r.txid, now);
    b.info = r.info;
    b.wrote = true;
    if (r.state == BranchState::kActive) {
      // Its client's connection died with the old process: roll it back.
      SetState(key, b, St::kActive, now);
      proto::DecideRequest d;
      d.txid = r.txid;
      d.resource = resource;
      d.outcome = proto::Outcome::ABORTED;
      Enqueue(key, Pending{0, false, d, /*active_only=*/true}, now);
    } else {
      // PREPARED or PRECOMMITTED: in doubt, locks held; ask at once.
      SetState(key, b, r.state == BranchState::kPreCommitted ? St::kPreCommitted : St::kPrepared,
               now);
      b.deadline = now;
      b.query_backoff = options_.in_doubt_after;
    }
  }
}

void BranchCore::OnExecute(uint64_t token, const proto::ExecuteRequest& req, Micros now) {
  if (!KnownResource(req.resource)) {
    return ReplyExecute(Pending{token, true, req},
                        Status::InvalidArgument("this agent hosts no resource named '" +
                                                req.resource + "'"));
  }
  Enqueue(Key{req.resource, req.txid}, Pending{token, true, req}, now);
}

void BranchCore::OnPrepare(uint64_t token, const proto::PrepareRequest& req, Micros now) {
  if (!KnownResource(req.resource)) {
    return ReplyVote(Pending{token, true, req}, proto::Vote::NO,
                     "this agent hosts no resource named '" + req.resource + "'");
  }
  HeardFromGroup(Key{req.resource, req.txid});
  Enqueue(Key{req.resource, req.txid}, Pending{token, true, req}, now);
}

void BranchCore::HeardFromGroup(const Key& key) {
  auto it = branches_.find(key);
  if (it == branches_.end()) return;
  it->second.silent_since.reset();
  it->second.failed_queries = 0;
}

void BranchCore::OnDecide(uint64_t token, const proto::DecideRequest& req, Micros now,
                          bool from_group) {
  if (!KnownResource(req.resource)) {
    return ReplyDecide(Pending{token, true, req},
                       Status::InvalidArgument("this agent hosts no resource named '" +
                                               req.resource + "'"));
  }
  Key key{req.resource, req.txid};
  HeardFromGroup(key);
  if (req.outcome == proto::Outcome::ABORTED) CancelLockWait(key, now);
  Pending p{token, true, req};
  p.unconfirmed = options_.confirm_decisions && !from_group;
  // Signed under this run's key, which only parties this agent dialed learned.
  p.signature_checked = p.unconfirmed && req.__isset.decision_mac && signs_decisions() &&
                        (static_cast<uint64_t>(req.decision_mac) ==
                             DecisionMac(options_.decision_key, req) ||
                         options_.testing_trust_any_mac);  // BUG trust-any-mac
  Enqueue(key, std::move(p), now);
}

proto::OutcomeRequest BranchCore::OutcomeQuery(const TxId& txid) const {
  proto::OutcomeRequest req;
  req.txid = txid;
  if (signs_decisions()) {
    proto::DecisionKey k;
    k.agent_address = options_.decision_key_address;
    k.k0 = static_cast<int64_t>(options_.decision_key[0]);
    k.k1 = static_cast<int64_t>(options_.decision_key[1]);
    req.__set_decision_key(std::move(k));
  }
  return req;
}

// An unconfirmed COMMITTED or ABORTED for a branch in doubt: park it as the
// branch's current request and ask the group (OnOutcome settles it).
bool BranchCore::ConfirmFirst(const Key& key, Branch& b, Pending& p) {
  if (!p.unconfirmed || !InDoubt(b.state)) return false;
  const auto& d = std::get<proto::DecideRequest>(p.req);
  if (d.__isset.precommit && d.precommit) return false;
  if (d.outcome != proto::Outcome::COMMITTED && d.outcome != proto::Outcome::ABORTED) return false;
  if (p.signature_checked) {
    ++counters_.decisions_signed;
    return false;
  }
  b.current = std::move(p);
  b.confirming = true;
  effects_.queries.push_back(key.second);
  return true;
}

// The group's answer to the outcome query of an unconfirmed decision: apply
// it if the group decided the same, refuse it otherwise (nothing changed;
// the caller may resend), and let the answer settle the branch as any
// outcome answer does.
void BranchCore::SettleConfirmation(const Key& key, Branch& b, const Status& status,
                                    proto::Outcome::type outcome, Micros now) {
  Pending p = std::move(*b.current);
  b.current.reset();
  b.confirming = false;
  const auto wanted = std::get<proto::DecideRequest>(p.req).outcome;
  const std::string what = std::string(OutcomeName(wanted)) + " for " + Name(key.first, key.second);
  if (!status.ok()) {
    ++counters_.decisions_unconfirmed;
    ReplyDecide(p, Status::Unavailable("cannot confirm " + what +
                                       " with the coordinator group (" + status.ToString() +
                                       "); a decision from a caller that is not authenticated "
                                       "as the group is applied only once the group confirms it"));
    return Pump(key, now);
  }
  if (outcome == wanted) {
    ++counters_.decisions_confirmed;
    p.unconfirmed = false;
    Start(key, b, std::move(p), now);
    return Pump(key, now);
  }
  if (outcome == proto::Outcome::UNKNOWN) {
    // The group never allocated this txid (a definite answer: see
    // CommitDriver::AwaitEpochBarrier): the branch is no transaction of the
    // group's, so no decision of the group's can be contradicted; whoever
    // prepared it decides it (a conformance kit playing the coordinator, a
    // coordinator of another group). A transaction the group did allocate is
    // never answered UNKNOWN.
    ++counters_.decisions_foreign;
    Log(AgentLogLine::kInfo, "applying " + what + " from a caller not authenticated as the "
                             "coordinator group: the group never allocated this txid");
    p.unconfirmed = false;
    Start(key, b, std::move(p), now);
    return Pump(key, now);
  }
  if (outcome != proto::Outcome::COMMITTED && outcome != proto::Outcome::ABORTED) {
    // Not decided yet as far as the group says (PENDING: a coordinator
    // delivers an abort of a transaction it is still driving before it
    // stops answering PENDING; UNKNOWN; FORGOTTEN). Nothing is applied and
    // nothing refused for good: a real decision is sent again, and the branch
    // keeps asking about itself.
    ++counters_.decisions_unconfirmed;
    ReplyDecide(p, Status::Unavailable("cannot apply " + what + " yet: the coordinator group says " +
                                       OutcomeName(outcome) + "; a decision from a caller that is "
                                       "not authenticated as the group is applied only once the "
                                       "group confirms it"));
    return Pump(key, now);
  }
  ++counters_.decisions_refused;
  Log(AgentLogLine::kError, "refused " + what + " from a caller not authenticated as the "
                            "coordinator group: the group says " + OutcomeName(outcome) +
                            " (a forged or stale decision); the branch follows the group");
  ReplyDecide(p, Status::Internal("refusing " + what + ": the coordinator group says " +
                                  OutcomeName(outcome)),
              /*refused=*/true);
  Pump(key, now);
}

// An abort does not wait behind a statement that waits for a lock.
void BranchCore::CancelLockWait(const Key& key, Micros now) {
  auto it = branches_.find(key);
  if (it == branches_.end() || !it->second.parked) return;
  Branch& b = it->second;
  Unpark(key, b, /*retry=*/false, now);
  Pending p = std::move(*b.current);
  b.current.reset();
  Status s = Status::Aborted("transaction " + ToString(key.second) +
                             " was aborted while waiting for a lock");
  if (std::holds_alternative<proto::ExecuteRequest>(p.req)) {
    ReplyExecute(p, s);
  } else {
    ReplyVote(p, proto::Vote::NO, s.message());
  }
}

void BranchCore::Enqueue(const Key& key, Pending p, Micros now) {
  Branch& b = Get(key.first, key.second, now);
  b.queue.push_back(std::move(p));
  Pump(key, now);
}

void BranchCore::Pump(const Key& key, Micros now) {
  auto it = branches_.find(key);
  if (it == branches_.end()) return;
  Branch& b = it->second;
  while (!b.in_flight && !b.parked && !b.confirming && !b.queue.empty()) {
    Pending p = std::move(b.queue.front());
    b.queue.pop_front();
    Start(key, b, std::move(p), now);
  }
  // A request that created no branch (a COMMIT for a forgotten one, a
  // refused execute) leaves nothing to remember.
  if (b.state == St::kNone && !b.in_flight && !b.parked && b.queue.empty() && !b.current) {
    live_.erase(key);
    branches_.erase(it);
  }
}

void BranchCore::Start(const Key& key, Branch& b, Pending p, Micros now) {
  const std::string& resource = key.first;
  const TxId& txid = key.second;

  if (auto* e = std::get_if<proto::ExecuteRequest>(&p.req)) {
    switch (b.state) {
      case St::kNone:
      case St::kActive: {
        if (b.doomed) {
          return ReplyExecute(p, Status::Aborted(Name(resource, txid) + " will vote NO: " +
                                                 *b.doomed + "; roll the transaction back"));
        }
        if (Status over = CheckStatementBudget(key, b, e->statements.size()); !over.ok()) {
          // Nothing of this call runs; earlier work stays (like a statement
          // error, the caller decides whether to go on or roll back).
          return ReplyExecute(p, over);
        }
        Micros timeout = e->__isset.timeout_ms && e->timeout_ms > 0 ? e->timeout_ms * kMillis
                                                                    : options_.active_timeout;
        b.deadline = now + timeout;
        b.wait_until = now + options_.lock_timeout;
        b.waited = false;
        std::vector<proto::Statement> stmts = e->statements;
        b.current = std::move(p);
        return IssueOp(key, b, ResourceOp::kExecute, std::move(stmts), now);
      }
      case St::kAborting:
      case St::kAborted:
        return ReplyExecute(p, Status::Aborted("transaction " + ToString(txid) +
                                               " is already aborted on " + resource +
                                               "; begin a new transaction"));
      case St::kPrepared:
      case St::kPreCommitted:
      case St::kCommitted:
        return ReplyExecute(p, Status::InvalidArgument(Name(resource, txid) + " is " +
                                                       StName(b.state) +
                                                       "; it takes no more statements"));
    }
  }

  if (auto* pr = std::get_if<proto::PrepareRequest>(&p.req)) {
    if (b.state == St::kNone || b.state == St::kActive) {
      b.info.participants = pr->participants;
      b.info.protocol = pr->protocol;
    }
    switch (b.state) {
      case St::kPrepared:
      case St::kPreCommitted:
        return ReplyVote(p, proto::Vote::YES, "");  // a duplicate PREPARE
      case St::kCommitted:
        // A duplicate PREPARE gets the same vote: a branch that only read
        // voted READ_ONLY (and was released), not YES.
        return ReplyVote(p, b.wrote ? proto::Vote::YES : proto::Vote::READ_ONLY, "");
      case St::kAborting:
      case St::kAborted:
        return ReplyVote(p, proto::Vote::NO, "transaction " + ToString(txid) +
                                                 " is already aborted on " + resource);
      case St::kNone:
      case St::kActive:
        break;
    }
    if (b.doomed) {
      // A statement of this branch failed in a way that leaves it unable to
      // commit what the client asked for (README.md: SqlExpect).
      ReplyVote(p, proto::Vote::NO, *b.doomed);
      return StartRollback(key, b, std::nullopt, now);
    }
    if (pr->__isset.work) {
      if (Status over = CheckStatementBudget(key, b, pr->work.size()); !over.ok()) {
        // A one-shot that cannot run: NO, and a tombstone (as any failed one).
        ReplyVote(p, proto::Vote::NO, over.message());
        return StartRollback(key, b, std::nullopt, now);
      }
      b.wait_until = now + options_.lock_timeout;
      b.waited = false;
      std::vector<proto::Statement> stmts = pr->work;
      b.current = std::move(p);
      return IssueOp(key, b, ResourceOp::kExecuteAndPrepare, std::move(stmts), now);
    }
    std::optional<int64_t> seen;
    for (const auto& part : pr->participants) {
      if (part.resource == resource && part.__isset.incarnation) seen = part.incarnation;
    }
    if (seen && options_.incarnation != 0 && *seen != options_.incarnation) {
      ReplyVote(p, proto::Vote::NO,
                "the agent for " + resource + " restarted since this transaction's work was done "
                "(incarnation " + std::to_string(*seen) + " -> " +
                    std::to_string(options_.incarnation) + "); that work may be lost");
      return StartRollback(key, b, std::nullopt, now);
    }
    if (b.state == St::kNone) {
      // Nothing was executed here (or it was rolled back in a restart): NO,
      // and a tombstone so a late execute is refused.
      ReplyVote(p, proto::Vote::NO,
                "no work was done for " + ToString(txid) + " on " + resource +
                    " (never executed, or rolled back when the agent restarted)");
      return StartRollback(key, b, std::nullopt, now);
    }
    if (!b.wrote) {
      // Only read: release and take no part in phase 2.
      ReplyVote(p, proto::Vote::READ_ONLY, "");
      SetState(key, b, St::kCommitted, now);
      return IssueOp(key, b, ResourceOp::kCommit, {}, now);
    }
    b.current = std::move(p);
    return IssueOp(key, b, ResourceOp::kPrepare, {}, now);
  }

  const auto& d = std::get<proto::DecideRequest>(p.req);
  if (auto h = heuristics_.find(key); p.has_token && h != heuristics_.end()) {
    // Decided heuristically here: the group's decision is compared, never applied.
    NoteGroupOutcome(key, h->second, d.outcome, "the coordinator's decision");
    if (d.outcome == h->second.record.outcome) return ReplyDecide(p, Status::Ok());
    h->second.refused_decision = true;
    return ReplyDecide(p, Status::Internal(Name(resource, txid) + " was decided " +
                                           OutcomeName(h->second.record.outcome) +
                                           " heuristically here by " + h->second.record.who +
                                           "; refusing " + OutcomeName(d.outcome)),
                       /*refused=*/true);
  }
  if (ConfirmFirst(key, b, p)) return;
  if (d.__isset.precommit && d.precommit) {
    // 3PC's PRE_COMMIT: the group chose PRECOMMIT; record PRECOMMITTED, ack.
    switch (b.state) {
      case St::kPrepared:
        if (no_precommit_.count(resource)) {
          // Nothing recorded: acknowledged so the commit is not held up; the
          // branch stays PREPARED (and says so to autonomous termination).
          return ReplyDecide(p, Status::Ok());
        }
        b.current = std::move(p);
        return IssueOp(key, b, ResourceOp::kPreCommit, {}, now);
      case St::kNone:  // committed and forgotten
      case St::kPreCommitted:
      case St::kCommitted:
        return ReplyDecide(p, Status::Ok());
      case St::kActive:
        return ReplyDecide(p, Status::InvalidArgument(Name(resource, txid) +
                                                      " was never prepared; it cannot precommit"));
      case St::kAborting:
      case St::kAborted:
        return ReplyDecide(p, Status::Internal(Name(resource, txid) +
                                               " is aborted here; refusing to precommit it"),
                           /*refused=*/true);
    }
  }
  if (d.outcome == proto::Outcome::COMMITTED) {
    switch (b.state) {
      case St::kPrepared:
      case St::kPreCommitted:
        b.current = std::move(p);
        return IssueOp(key, b, ResourceOp::kCommit, {}, now);
      case St::kNone:  // committed and forgotten, or read-only
      case St::kCommitted:
        return ReplyDecide(p, Status::Ok());
      case St::kActive:
        return ReplyDecide(p, Status::InvalidArgument(Name(resource, txid) +
                                                      " was never prepared; it cannot commit"));
      case St::kAborting:
      case St::kAborted:
        return ReplyDecide(p, Status::Internal(Name(resource, txid) +
                                               " is aborted here; refusing to commit it"),
                           /*refused=*/true);
    }
  }
  if (d.outcome == proto::Outcome::ABORTED) {
    // The agent's own abort of a branch that seemed abandoned applies only if
    // the branch is still ACTIVE: if it voted YES meanwhile, only the group's
    // decision may settle it (a deposed leader's UNKNOWN is no decision).
    if (p.active_only && b.state != St::kActive && !options_.testing_ignore_active_only) return;
    switch (b.state) {
      case St::kPreCommitted:
        // The group chose PRECOMMIT, which decides a commit: an ABORTED from
        // the group means the group is broken. It is still the authority.
        Log(AgentLogLine::kError, Name(resource, txid) +
                                      " is PRECOMMITTED and the group says ABORTED: 3PC's "
                                      "PRECOMMIT should have decided a commit; rolling back");
        return StartRollback(key, b, std::move(p), now);
      case St::kNone:
      case St::kActive:
      case St::kPrepared:
      case St::kAborting:  // failing: the coordinator's resend is another attempt
        return StartRollback(key, b, std::move(p), now);
      case St::kAborted:
        return ReplyDecide(p, Status::Ok());
      case St::kCommitted:
        // A read-only branch has nothing to undo (e.g. its READ_ONLY vote was
        // lost and counted as NO): acknowledge.
        if (!b.wrote) return ReplyDecide(p, Status::Ok());
        return ReplyDecide(p, Status::Internal(Name(resource, txid) +
                                               " is committed here; refusing to abort it"),
                           /*refused=*/true);
    }
  }
  ReplyDecide(p, Status::InvalidArgument("a decision must be COMMITTED or ABORTED"));
}

void BranchCore::IssueOp(const Key& key, Branch& b, ResourceOp::Kind kind,
                         std::vector<proto::Statement> stmts, Micros now) {
  ResourceOp op;
  op.id = next_op_++;
  op.kind = kind;
  op.resource = key.first;
  op.txid = key.second;
  op.statements = std::move(stmts);
  // Only a PREPARE records the participants (with the branch, for recovery);
  // commits, rollbacks and executes carry none.
  if (kind == ResourceOp::kPrepare || kind == ResourceOp::kExecuteAndPrepare) op.info = b.info;
  ops_.emplace(op.id, std::make_pair(key, kind));
  b.in_flight = true;
  effects_.ops.push_back(std::move(op));
}

// ---------------------------------------------------------------- completions

void BranchCore::OnExecuteDone(uint64_t op, const ExecuteResult& r, Micros now) {
  auto oit = ops_.find(op);
  if (oit == ops_.end()) return;
  Key key = oit->second.first;
  ops_.erase(oit);
  Branch& b = branches_[key];
  b.in_flight = false;
  if (!b.current) return Pump(key, now);
  const TxId& txid = key.second;
  bool oneshot = std::holds_alternative<proto::PrepareRequest>(b.current->req);

  if (r.status.ok()) {
    b.wrote = r.wrote;
    if (const auto* e = std::get_if<proto::ExecuteRequest>(&b.current->req)) {
      b.statements += e->statements.size();
    } else if (const auto* pr = std::get_if<proto::PrepareRequest>(&b.current->req)) {
      b.statements += pr->work.size();
    }
    Pending p = std::move(*b.current);
    b.current.reset();
    if (!oneshot) {
      if (b.state == St::kNone) SetState(key, b, St::kActive, now);
      ReplyExecute(p, Status::Ok(), r.results);
    } else if (r.wrote) {
      SetState(key, b, St::kPrepared, now);
      b.deadline = now + options_.in_doubt_after;
      b.query_backoff = options_.in_doubt_after;
      ReplyVote(p, proto::Vote::YES, "");
    } else {
      ReplyVote(p, proto::Vote::READ_ONLY, "");
      SetState(key, b, St::kCommitted, now);
      IssueOp(key, b, ResourceOp::kCommit, {}, now);
    }
    return Pump(key, now);
  }

  if (r.status.code() == Status::kTimeout) ++counters_.statement_timeouts;
  if (r.status.code() == Status::kConflict) {
    bool younger = r.holder && Older(*r.holder, txid);
    if (younger && !HolderDecided(key.first, *r.holder)) {
      // Wait-die, by txid age, on every agent alike: a younger transaction
      // never waits for an older one, so every wait goes from older to
      // younger and no cycle (a deadlock across agents) can form. Behind a
      // holder whose decision has reached this agent it waits (bounded by
      // lock_timeout): a decided transaction waits for no lock anywhere, so
      // no cycle can go through it, and the client that just heard the
      // holder commit may well be the one asking for its rows again. Behind
      // a holder that is only prepared it dies: that transaction's other
      // branches may still be waiting for locks.
      ++counters_.wait_die_refusals;
      std::string why = "lock conflict on " + r.conflict + " held by older transaction " +
                        ToString(*r.holder) + " (wait-die)";
      if (oneshot) return FailCurrent(key, b, Status::Conflict(why), now);
      // Interactive: the whole branch dies here, releasing its locks at
      // once (waiting for its client's Rollback could keep an older
      // transaction waiting for them), and the client is told to retry.
      Pending p = std::move(*b.current);
      b.current.reset();
      ReplyExecute(p, Status::Aborted(why + "; " + Name(key.first, txid) +
                                      " is rolled back: roll the transaction back and retry it"));
      return StartRollback(key, b, std::nullopt, now);
    }
    if (now < b.wait_until) return Park(key, b, r, now);
    ++counters_.lock_timeouts;
    return FailCurrent(key, b, LockTimeoutStatus(r.conflict, r.holder), now);
  }
  FailCurrent(key, b, r.status, now);
}

bool BranchCore::HolderDecided(const std::string& resource, const TxId& holder) const {
  auto it = branches_.find(Key{resource, holder});
  if (it == branches_.end()) return false;
  const Branch& b = it->second;
  if (b.state == St::kCommitted || b.state == St::kAborting) return true;
  // A decision parked while the group confirms it (confirm_decisions), or
  // queued behind the branch's current operation.
  auto is_decision = [](const Pending& p) {
    const auto* d = std::get_if<proto::DecideRequest>(&p.req);
    return d != nullptr && !(d->__isset.precommit && d->precommit) &&
           (d->outcome == proto::Outcome::COMMITTED || d->outcome == proto::Outcome::ABORTED);
  };
  if (b.current && is_decision(*b.current)) return true;
  return std::any_of(b.queue.begin(), b.queue.end(), is_decision);
}

Status BranchCore::CheckStatementBudget(const Key& key, const Branch& b, size_t more) const {
  if (b.statements + more <= options_.max_branch_statements) return Status::Ok();
  return Status::InvalidArgument(
      Name(key.first, key.second) + " has run " + std::to_string(b.statements) +
      " statements; this call's " + std::to_string(more) + " would make " +
      std::to_string(b.statements + more) + ", past the limit of " +
      std::to_string(options_.max_branch_statements) +
      " statements per branch (txagent --max-branch-statements); none of them ran: commit this "
      "transaction and do the rest in another, or roll it back");
}

Status BranchCore::LockTimeoutStatus(const std::string& conflict,
                                     const std::optional<TxId>& holder) const {
  return Status::LockTimeout("lock timeout after " +
                             std::to_string(options_.lock_timeout / kMillis) + " ms on " +
                             conflict + " held by txn " +
                             (holder ? ToString(*holder) : std::string("?")));
}

void BranchCore::FailCurrent(const Key& key, Branch& b, const Status& s, Micros now) {
  Pending p = std::move(*b.current);
  b.current.reset();
  if (std::holds_alternative<proto::ExecuteRequest>(p.req)) {
    if (s.code() == Status::kExpectationFailed || s.code() == Status::kTimeout) {
      // The resource undid just this statement, but the branch can no longer
      // do what the client asked (a checked debit that found no row, a
      // statement interrupted past its deadline): it votes NO, naming why,
      // even if it has no earlier work.
      if (!b.doomed) b.doomed = s.message();
      if (b.state == St::kNone) SetState(key, b, St::kActive, now);
      ReplyExecute(p, s);
      return Pump(key, now);
    }
    // The branch keeps what earlier statements did; the caller decides.
    ReplyExecute(p, s);
    if (b.state == St::kNone && b.queue.empty()) {
      live_.erase(key);
      branches_.erase(key);
      return;
    }
    return Pump(key, now);
  }
  // One-shot: vote NO and leave a tombstone (undoing anything earlier).
  ReplyVote(p, proto::Vote::NO, s.message(), Status::Ok());
  StartRollback(key, b, std::nullopt, now);
}

void BranchCore::StartRollback(const Key& key, Branch& b, std::optional<Pending> p, Micros now) {
  if (b.state != St::kAborting) SetState(key, b, St::kAborting, now);
  b.current = std::move(p);
  IssueOp(key, b, ResourceOp::kRollback, {}, now);
}

void BranchCore::OnRollbackDone(const Key& key, Branch& b, std::optional<Pending> p,
                                const Status& s, Micros now) {
  const std::string who = "txid=" + ToString(key.second) + " resource=" + key.first;
  if (s.ok()) {
    if (b.rollback_failures > 0) {
      Log(AgentLogLine::kInfo, "rollback succeeded " + who + " after_failed_attempts=" +
                                   std::to_string(b.rollback_failures));
    }
    b.rollback_failures = 0;
    b.rollback_error.clear();
    b.rollback_backoff = 0;
    ++counters_.rollbacks;
    SetState(key, b, St::kAborted, now);
    WakeWaitersOf(key, now);
    if (p) ReplyDecide(*p, s);
    return;
  }
  if (s.code() == Status::kInvalidArgument) {
    // Final (ResourceManager::Rollback): the branch committed here with
    // changes, and an ABORT reached it (typically once this agent had
    // forgotten it). Retrying cannot help: record it as committed and refuse,
    // which the coordinator reports as a heuristic hazard.
    b.rollback_failures = 0;
    b.rollback_error.clear();
    b.rollback_backoff = 0;
    b.wrote = true;
    SetState(key, b, St::kCommitted, now);
    WakeWaitersOf(key, now);
    Log(AgentLogLine::kError, "heuristic hazard " + who +
                                  ": told to abort a branch committed here; refusing (" +
                                  s.message() + ")");
    if (p) {
      ReplyDecide(*p, Status::Internal(Name(key.first, key.second) +
                                       " is committed here; refusing to abort it"),
                  /*refused=*/true);
    }
    return;
  }
  // Still ABORTING, locks held: try again later. Only a successful rollback
  // makes the branch ABORTED, so a coordinator's ABORT is never acked early.
  ++b.rollback_failures;
  ++counters_.rollback_failures;
  b.rollback_error = s.ToString();
  b.rollback_backoff = b.rollback_backoff == 0
                           ? options_.rollback_retry
                           : std::min(b.rollback_backoff * 2, options_.rollback_retry_max);
  b.deadline = now + b.rollback_backoff;
  Log(AgentLogLine::kWarn, "rollback failed " + who + " attempt=" +
                               std::to_string(b.rollback_failures) + " retry_in_ms=" +
                               std::to_string(b.rollback_backoff / kMillis) +
                               " error=" + b.rollback_error);
  if (p) {
    ReplyDecide(*p, Status(s.code(), "rolling back " + Name(key.first, key.second) +
                                         " failed (attempt " +
                                         std::to_string(b.rollback_failures) +
                                         ", the agent retries): " + s.message()));
  }
}

void BranchCore::Log(AgentLogLine::Level level, std::string message) {
  effects_.logs.push_back(AgentLogLine{level, std::move(message)});
}

void BranchCore::OnOpDone(uint64_t op, const Status& status, Micros now) {
  auto oit = ops_.find(op);
  if (oit == ops_.end()) return;
  Key key = oit->second.first;
  ResourceOp::Kind kind = oit->second.second;
  ops_.erase(oit);
  if (auto jit = job_of_op_.find(op); jit != job_of_op_.end()) {
    uint64_t job = jit->second;
    job_of_op_.erase(jit);
    return OnOperatorOpDone(job, key, kind, status, now);
  }
  Branch& b = branches_[key];
  b.in_flight = false;
  std::optional<Pending> p = std::move(b.current);
  b.current.reset();

  switch (kind) {
    case ResourceOp::kPrepare:
      if (status.ok()) {
        SetState(key, b, St::kPrepared, now);
        b.deadline = now + options_.in_doubt_after;
        b.query_backoff = options_.in_doubt_after;
        if (p) ReplyVote(*p, proto::Vote::YES, "");
      } else {
        if (p) ReplyVote(*p, proto::Vote::NO, "could not prepare: " + status.ToString());
        StartRollback(key, b, std::nullopt, now);
        return;
      }
      break;
    case ResourceOp::kPreCommit:
      if (status.ok() && b.state == St::kPrepared) {
        SetState(key, b, St::kPreCommitted, now);
        b.deadline = now + options_.in_doubt_after;
        b.query_backoff = options_.in_doubt_after;
      }
      if (p) ReplyDecide(*p, status);
      break;
    case ResourceOp::kCommit:
      if (status.ok()) {
        ++counters_.commits;
        if (b.state != St::kCommitted) SetState(key, b, St::kCommitted, now);
        WakeWaitersOf(key, now);
      }
      if (p) ReplyDecide(*p, status);
      break;
    case ResourceOp::kRollback:
      OnRollbackDone(key, b, std::move(p), status, now);
      break;
    default:
      break;
  }
  Pump(key, now);
}

// ------------------------------------------------------------------ lock waits

void BranchCore::Park(const Key& key, Branch& b, const ExecuteResult& r, Micros now) {
  if (!b.waited) ++counters_.lock_waits;
  b.waited = true;
  b.parked = true;
  b.holder = r.holder;
  b.conflict = r.conflict;
  b.next_retry = now + options_.lock_retry;
  live_.insert(key);
  parked_.insert(key);
  if (r.holder) waiters_[Key{key.first, *r.holder}].insert(key);
}

void BranchCore::Unpark(const Key& key, Branch& b, bool retry, Micros now) {
  b.parked = false;
  parked_.erase(key);
  if (b.holder) {
    auto it = waiters_.find(Key{key.first, *b.holder});
    if (it != waiters_.end()) {
      it->second.erase(key);
      if (it->second.empty()) waiters_.erase(it);
    }
  }
  if (!Live(b.state)) live_.erase(key);
  if (!retry || !b.current) return;
  if (auto* e = std::get_if<proto::ExecuteRequest>(&b.current->req)) {
    IssueOp(key, b, ResourceOp::kExecute, e->statements, now);
  } else if (auto* pr = std::get_if<proto::PrepareRequest>(&b.current->req)) {
    IssueOp(key, b, ResourceOp::kExecuteAndPrepare, pr->work, now);
  }
}

void BranchCore::WakeWaitersOf(const Key& holder, Micros now) {
  auto it = waiters_.find(holder);
  if (it == waiters_.end()) return;
  std::set<Key, KeyLess> keys = std::move(it->second);
  waiters_.erase(it);
  for (const Key& k : keys) {
    auto bit = branches_.find(k);
    if (bit == branches_.end() || !bit->second.parked) continue;
    bit->second.holder.reset();  // already removed from waiters_
    Unpark(k, bit->second, /*retry=*/true, now);
  }
}

// -------------------------------------------------------------------- outcomes

void BranchCore::OnOutcome(const TxId& txid, const Status& status, proto::Outcome::type outcome,
                           Micros now) {
  // Decisions waiting for this answer to be confirmed first.
  for (const std::string& resource : resources_) {
    Key key{resource, txid};
    auto it = branches_.find(key);
    if (it != branches_.end() && it->second.confirming) {
      SettleConfirmation(key, it->second, status, outcome, now);
    }
  }
  if (!status.ok()) {
    // Asked again when the branch's deadline passes; autonomous termination
    // counts how long the group has been silent about each branch.
    for (const std::string& resource : resources_) {
      auto it = branches_.find(Key{resource, txid});
      if (it == branches_.end()) continue;
      if (!it->second.silent_since) it->second.silent_since = now;
      ++it->second.failed_queries;
    }
    return;
  }
  for (const std::string& resource : resources_) HeardFromGroup(Key{resource, txid});
  if (outcome == proto::Outcome::COMMITTED || outcome == proto::Outcome::ABORTED) {
    for (const std::string& resource : resources_) {
      Key key{resource, txid};
      if (auto h = heuristics_.find(key); h != heuristics_.end()) {
        NoteGroupOutcome(key, h->second, outcome, "an outcome query");
      }
    }
  }
  for (const std::string& resource : resources_) {
    Key key{resource, txid};
    auto it = branches_.find(key);
    if (it == branches_.end()) continue;
    Branch& b = it->second;
    proto::DecideRequest d;
    d.txid = txid;
    d.resource = resource;
    if (InDoubt(b.state)) {
      // In doubt: only the group's decision settles it.
      if (outcome != proto::Outcome::COMMITTED && outcome != proto::Outcome::ABORTED) continue;
      if (!HolderDecided(resource, txid)) {
        Log(AgentLogLine::kInfo, "in-doubt branch resolved by query " + Name(resource, txid) +
                                     " outcome=" + OutcomeName(outcome));
      }
      d.outcome = outcome;
      if (outcome == proto::Outcome::ABORTED) CancelLockWait(key, now);
      Enqueue(key, Pending{0, false, d}, now);
    } else if (b.state == St::kActive) {
      if (outcome == proto::Outcome::PENDING) {
        b.deadline = now + options_.active_timeout;
        continue;
      }
      // Not prepared and its transaction is not open any more (aborted,
      // committed without this branch, or never allocated): roll it back.
      d.outcome = proto::Outcome::ABORTED;
      CancelLockWait(key, now);
      Enqueue(key, Pending{0, false, d, /*active_only=*/true}, now);
    }
  }
}

void BranchCore::Tick(Micros now) {
  // Every live branch at most every deadline_scan; the parked ones always.
  const bool scan = now >= next_scan_;
  if (scan) next_scan_ = now + options_.deadline_scan;
  std::vector<Key> keys = scan ? std::vector<Key>(live_.begin(), live_.end())
                               : std::vector<Key>(parked_.begin(), parked_.end());
  std::set<TxId, TxIdLess> asked;
  for (const Key& key : keys) {
    auto it = branches_.find(key);
    if (it == branches_.end()) {
      live_.erase(key);
      parked_.erase(key);
      continue;
    }
    Branch& b = it->second;
    if (!scan && !b.parked) {
      parked_.erase(key);
      continue;
    }
    if (b.parked) {
      if (now >= b.wait_until) {
        std::string conflict = b.conflict;
        std::optional<TxId> holder = b.holder;
        Unpark(key, b, /*retry=*/false, now);
        ++counters_.lock_timeouts;
        FailCurrent(key, b, LockTimeoutStatus(conflict, holder), now);
      } else if (now >= b.next_retry) {
        Unpark(key, b, /*retry=*/true, now);
      }
      continue;
    }
    if (InDoubt(b.state) && !b.in_flight && b.queue.empty()) MaybeTerminate(key, b, now);
    if (b.in_flight || !b.queue.empty() || now < b.deadline) continue;
    if (b.state == St::kAborting) {
      // A failed rollback: try again (OnRollbackDone sets the next deadline).
      StartRollback(key, b, std::nullopt, now);
      continue;
    }
    if (b.state == St::kActive) {
      // A client that went quiet: is its transaction still alive?
      b.deadline = now + options_.in_doubt_after;
    } else if (InDoubt(b.state)) {
      b.deadline = now + b.query_backoff;
      b.query_backoff = std::min(b.query_backoff * 2, options_.query_max);
    } else {
      continue;
    }
    if (asked.insert(key.second).second) effects_.queries.push_back(key.second);
  }
  // Heuristic decisions not yet reconciled: ask the group, with backoff.
  for (auto& [key, h] : heuristics_) {
    if (h.group || now < h.next_query) continue;
    h.next_query = now + h.query_backoff;
    h.query_backoff = std::min(h.query_backoff * 2, options_.query_max);
    if (asked.insert(key.second).second) effects_.queries.push_back(key.second);
  }
  // Forget finished branches after the retention; the resource's own log
  // keeps tombstones for late executes.
  // A finished branch still busy (its commit or rollback running, a
  // duplicate queued) is looked at again later: once its finals_ entry is
  // gone nothing else would ever forget it.
  std::vector<Key> busy;
  while (!finals_.empty()) {
    const bool over_cap = finals_.size() + busy.size() > options_.max_finals_remembered;
    if (!over_cap && finals_.front().first + options_.final_retention > now) break;
    Key key = finals_.front().second;
    finals_.pop_front();
    auto it = branches_.find(key);
    if (it == branches_.end()) continue;
    Branch& b = it->second;
    if (b.state != St::kCommitted && b.state != St::kAborted) continue;  // not final any more
    // Over the cap, a finished branch goes however young it is.
    if (!b.in_flight && !b.parked && b.queue.empty() &&
        (over_cap || b.since + options_.final_retention <= now)) {
      branches_.erase(it);
    } else {
      busy.push_back(std::move(key));
    }
  }
  for (Key& k : busy) finals_.emplace_back(now, std::move(k));
}

AgentEffects BranchCore::TakeEffects() {
  AgentEffects out = std::move(effects_);
  effects_ = AgentEffects();
  return out;
}

std::vector<BranchCore::BranchView> BranchCore::Branches() const {
  std::vector<BranchView> out;
  for (const auto& [key, b] : branches_) {
    if (b.state == St::kNone) continue;
    BranchView v{key.second, key.first, StName(b.state), b.since,
                 b.rollback_failures, b.rollback_error, std::nullopt, std::nullopt};
    if (auto h = heuristics_.find(key); h != heuristics_.end()) {
      v.heuristic = h->second.record;
      v.group_outcome = h->second.group;
    }
    out.push_back(std::move(v));
  }
  // Heuristic decisions whose branch this core no longer holds (forgotten
  // after the retention, or finished before a restart).
  for (const auto& [key, h] : heuristics_) {
    auto it = branches_.find(key);
    if (it != branches_.end() && it->second.state != St::kNone) continue;
    BranchView v;
    v.txid = key.second;
    v.resource = key.first;
    v.state = HeuristicStateName(h.record.outcome);
    v.since = h.decided;
    v.heuristic = h.record;
    v.group_outcome = h.group;
    out.push_back(std::move(v));
  }
  return out;
}

size_t BranchCore::heuristic_hazard_count() const {
  size_t n = 0;
  for (const auto& [key, h] : heuristics_) {
    if (h.group && *h.group != h.record.outcome) ++n;
  }
  return n;
}

// ------------------------------------------------------------ heuristics

void BranchCore::OnRecoveredHeuristics(const std::string& resource,
                                       const std::vector<HeuristicRecord>& records, Micros now) {
  for (const HeuristicRecord& r : records) {
    Heuristic& h = heuristics_[Key{resource, r.txid}];
    h.record = r;
    h.decided = now;
    h.next_query = now;  // reconcile with the group at the first tick
    h.query_backoff = options_.in_doubt_after;
  }
}

void BranchCore::OnResourceHeuristic(const std::string& resource, const HeuristicRecord& record,
                                      Micros now) {
  Key key{resource, record.txid};
  if (auto it = branches_.find(key); it != branches_.end()) {
    if (it->second.in_flight) return;
    WakeWaitersOf(key, now);
    live_.erase(key);
    branches_.erase(it);
  }
  OnRecoveredHeuristics(resource, {record}, now);
  Log(AgentLogLine::kError, "heuristic hazard txid=" + ToString(record.txid) + " resource=" + resource +
                                " recorded by the resource: " + record.reason);
}

void BranchCore::OnResolve(uint64_t token, const proto::AgentResolveRequest& req, Micros now) {
  auto refuse = [&](const Status& why) {
    proto::AgentResolveResponse r;
    r.status = ToProto(why);
    effects_.replies.push_back({token, std::move(r)});
  };
  if (!req.resource.empty() && !KnownResource(req.resource)) {
    return refuse(Status::InvalidArgument("this agent hosts no resource named '" + req.resource + "'"));
  }
  std::vector<Key> targets;
  std::string others;  // the branches of txid here that are not in doubt
  for (const std::string& r : resources_) {
    if (!req.resource.empty() && r != req.resource) continue;
    Key key{r, req.txid};
    if (auto h = heuristics_.find(key); h != heuristics_.end()) {
      others += " " + Name(r, req.txid) + " was already decided heuristically (" +
                OutcomeName(h->second.record.outcome) + " by " + h->second.record.who + ");";
      continue;
    }
    auto it = branches_.find(key);
    if (it == branches_.end() || it->second.state == St::kNone) continue;
    Branch& b = it->second;
    if (!InDoubt(b.state)) {
      others += " " + Name(r, req.txid) + " is " + StName(b.state) + ";";
      continue;
    }
    if (b.state == St::kPreCommitted && req.outcome != proto::Outcome::COMMITTED) {
      return refuse(Status::InvalidArgument(
          Name(r, req.txid) + " is PRECOMMITTED: the coordinator group chose PRECOMMIT (3PC), "
                              "so the transaction commits; an abort here is certain to disagree "
                              "with the group. Resolve it --commit, or wait for the group"));
    }
    if (b.in_flight || !b.queue.empty() || b.parked) {
      return refuse(Status::Unavailable(Name(r, req.txid) + " is applying a decision right now: "
                                        "list the branches again, it is probably no longer in doubt"));
    }
    targets.push_back(key);
  }
  if (targets.empty()) {
    if (others.empty()) {
      return refuse(Status::NotFound("no branch of " + ToString(req.txid) +
                                     " here: txadmin agent HOST:PORT branches --in-doubt lists "
                                     "the branches in doubt"));
    }
    return refuse(Status::InvalidArgument("no branch of " + ToString(req.txid) +
                                          " is in doubt here:" + others +
                                          " only a PREPARED branch is decided heuristically"));
  }
  StartHeuristicJob(token, /*reply=*/true, targets, req.outcome, req.reason, req.who);
}

void BranchCore::StartHeuristicJob(uint64_t token, bool reply, const std::vector<Key>& targets,
                                       proto::Outcome::type outcome, const std::string& reason,
                                       const std::string& who) {
  uint64_t job_id = next_job_++;
  OperatorJob& job = jobs_[job_id];
  job.token = token;
  job.reply = reply;
  job.pending = targets.size();
  for (const Key& key : targets) {
    Branch& b = branches_[key];
    ResourceOp op;
    op.id = next_op_++;
    op.kind = ResourceOp::kHeuristic;
    op.resource = key.first;
    op.txid = key.second;
    op.info = b.info;
    op.heuristic.txid = key.second;
    op.heuristic.outcome = outcome;
    op.heuristic.reason = reason;
    op.heuristic.who = who;
    job.records[key] = op.heuristic;
    ops_.emplace(op.id, std::make_pair(key, ResourceOp::kHeuristic));
    job_of_op_[op.id] = job_id;
    b.in_flight = true;
    Log(AgentLogLine::kWarn, "heuristic decision requested txid=" + ToString(key.second) +
                                 " resource=" + key.first + " outcome=" + OutcomeName(outcome) +
                                 " who=\"" + who + "\" reason=\"" + reason + "\"");
    effects_.ops.push_back(std::move(op));
  }
}

// ------------------------------------------------- autonomous termination

TerminationDecision SkeenTermination(const std::vector<std::string>& states) {
  auto any = [&](std::initializer_list<const char*> names) {
    for (const std::string& s : states) {
      for (const char* n : names) {
        if (s == n) return true;
      }
    }
    return false;
  };
  if (any({"committed"})) return {proto::Outcome::COMMITTED, "a participant committed"};
  if (any({"aborted", "aborting"})) return {proto::Outcome::ABORTED, "a participant aborted"};
  if (any({"active"})) {
    return {proto::Outcome::ABORTED, "a participant had not voted (ACTIVE)"};
  }
  if (any({"precommitted"})) {
    return {proto::Outcome::COMMITTED, "a participant was PRECOMMITTED and none aborted"};
  }
  return {proto::Outcome::ABORTED, "every participant that answered was merely PREPARED"};
}

std::string BranchCore::StateName(const Key& key) const {
  auto it = branches_.find(key);
  if (it != branches_.end() && it->second.state != St::kNone) {
    // A READ_ONLY voter left the transaction: it knows nothing of the outcome.
    if (it->second.state == St::kCommitted && !it->second.wrote) return "read-only";
    return StName(it->second.state);
  }
  if (auto h = heuristics_.find(key); h != heuristics_.end()) {
    return h->second.record.outcome == proto::Outcome::COMMITTED ? "committed" : "aborted";
  }
  return "none";
}

void BranchCore::OnBranchState(uint64_t token, const proto::BranchStateRequest& req) {
  proto::BranchStateResponse r;
  if (!KnownResource(req.resource)) {
    r.status = ToProto(Status::InvalidArgument("this agent hosts no resource named '" +
                                               req.resource + "'"));
  } else {
    r.state = StateName(Key{req.resource, req.txid});
  }
  effects_.replies.push_back({token, std::move(r)});
}

void BranchCore::MaybeTerminate(const Key& key, Branch& b, Micros now) {
  const Micros d = options_.autonomous_termination_timeout;
  if (d <= 0 || b.terminating || b.info.protocol != proto::Protocol::THREE_PC) return;
  // The group silent about this branch for d: at least two outcome queries
  // in a row failed, the first d ago, and no request came from it since.
  if (!b.silent_since || b.failed_queries < 2 || now - *b.silent_since < d || now - b.since < d ||
      now < b.termination_next) {
    return;
  }
  if (heuristics_.count(key)) return;
  b.terminating = true;
  b.termination_next = now + options_.query_max;  // at most one round per query_max
  b.termination_answers.clear();
  b.termination_pending = 0;
  b.termination_answers[key.first] = StName(b.state);
  for (const proto::Participant& p : b.info.participants) {
    if (p.resource == key.first) continue;
    if (KnownResource(p.resource)) {
      b.termination_answers[p.resource] = StateName(Key{p.resource, key.second});
      continue;
    }
    ++b.termination_pending;
    effects_.peer_queries.push_back(PeerQuery{key.second, key.first, p});
  }
  Log(AgentLogLine::kWarn, "autonomous termination txid=" + ToString(key.second) + " resource=" +
                               key.first + ": the coordinator group has been unreachable for " +
                               std::to_string((now - *b.silent_since) / kMillis) +
                               " ms; asking " + std::to_string(b.termination_pending) +
                               " other participant(s)");
  if (b.termination_pending == 0) FinishTermination(key, b, now);
}

void BranchCore::OnPeerState(const PeerQuery& q, const Status& call,
                             const proto::BranchStateResponse& resp, Micros now) {
  Key key{q.resource, q.txid};
  auto it = branches_.find(key);
  if (it == branches_.end() || !it->second.terminating || it->second.termination_pending == 0) {
    return;
  }
  Branch& b = it->second;
  std::string state = "unreachable";
  if (call.ok() && resp.status.code == proto::Code::OK) state = resp.state;
  b.termination_answers[q.to.resource] = state;
  if (--b.termination_pending == 0) FinishTermination(key, b, now);
}

void BranchCore::FinishTermination(const Key& key, Branch& b, Micros now) {
  b.terminating = false;
  std::vector<std::string> states;
  std::string seen;
  for (const auto& [resource, state] : b.termination_answers) {
    seen += (seen.empty() ? "" : ", ") + resource + "=" + state;
    if (state != "none" && state != "unreachable" && state != "read-only") states.push_back(state);
  }
  // Still in doubt, idle, and the group still silent (an answer may have come).
  if (!InDoubt(b.state) || b.in_flight || !b.queue.empty() || !b.silent_since ||
      heuristics_.count(key)) {
    b.termination_next = now + options_.query_max;
    return;
  }
  if (std::any_of(b.termination_answers.begin(), b.termination_answers.end(),
                  [](const auto& a) { return a.second == "none"; })) {
    // A peer with no record of its branch: it may never have voted, or have
    // finished and forgotten it (committed, possibly). No rule applies
    // safely; ask again later.
    b.termination_next = now + options_.query_max;
    Log(AgentLogLine::kWarn, "autonomous termination txid=" + ToString(key.second) + " resource=" +
                                 key.first + ": no decision, a participant has no record of its "
                                 "branch (" + seen + "); asking again later");
    return;
  }
  TerminationDecision d = SkeenTermination(states);
  StartHeuristicJob(0, /*reply=*/false, {key}, d.outcome,
                    "3PC autonomous termination: " + d.rule + " (" + seen + ")",
                    "autonomous-termination");
}

void BranchCore::OnForget(uint64_t token, const proto::AgentForgetRequest& req, Micros now) {
  (void)now;
  std::vector<Key> targets;
  for (const auto& [key, h] : heuristics_) {
    if (!(key.second == req.txid)) continue;
    if (!req.resource.empty() && key.first != req.resource) continue;
    targets.push_back(key);
  }
  if (!targets.empty() && !(req.__isset.force && req.force)) {
    for (const Key& key : targets) {
      const Heuristic& h = heuristics_.at(key);
      std::string why;
      if (!h.group) {
        why = "the group's outcome of " + ToString(req.txid) + " at " + key.first +
              " is not known yet (the agent keeps asking): once forgotten, a decision arriving "
              "later would be acknowledged without comparison; wait until branches --heuristic "
              "shows agreed or hazard, or forget with --force if the group is gone for good";
      } else if (*h.group != h.record.outcome && !h.refused_decision) {
        why = "the hazard of " + ToString(req.txid) + " at " + key.first +
              " is known here only (from an outcome query): the coordinator has not delivered "
              "its decision yet, and once forgotten this agent would acknowledge it without "
              "comparison; wait until txns --state heuristic lists it at the coordinator, or "
              "forget with --force";
      }
      if (why.empty()) continue;
      proto::AgentForgetResponse r;
      r.status = ToProto(Status::InvalidArgument(why));
      effects_.replies.push_back({token, std::move(r)});
      return;
    }
  }
  if (targets.empty()) {
    proto::AgentForgetResponse r;
    r.status = ToProto(Status::NotFound(
        "no heuristic decision recorded for " + ToString(req.txid) +
        (req.resource.empty() ? "" : " at " + req.resource) +
        " here: txadmin agent HOST:PORT branches --heuristic lists them"));
    effects_.replies.push_back({token, std::move(r)});
    return;
  }
  uint64_t job_id = next_job_++;
  OperatorJob& job = jobs_[job_id];
  job.token = token;
  job.forget = true;
  job.pending = targets.size();
  for (const Key& key : targets) {
    ResourceOp op;
    op.id = next_op_++;
    op.kind = ResourceOp::kForgetHeuristic;
    op.resource = key.first;
    op.txid = key.second;
    ops_.emplace(op.id, std::make_pair(key, ResourceOp::kForgetHeuristic));
    job_of_op_[op.id] = job_id;
    Log(AgentLogLine::kInfo, "heuristic record forget requested txid=" + ToString(key.second) +
                                 " resource=" + key.first + " who=\"" + req.who +
                                 "\" reason=\"" + req.reason + "\"");
    effects_.ops.push_back(std::move(op));
  }
}

void BranchCore::OnOperatorOpDone(uint64_t job_id, const Key& key, ResourceOp::Kind kind,
                                  const Status& s, Micros now) {
  auto jit = jobs_.find(job_id);
  if (jit == jobs_.end()) return;
  OperatorJob& job = jit->second;
  const std::string who = "txid=" + ToString(key.second) + " resource=" + key.first;
  if (!s.ok() && job.first_error.ok()) job.first_error = s;
  if (kind == ResourceOp::kHeuristic) {
    auto it = branches_.find(key);
    if (it != branches_.end()) {
      Branch& b = it->second;
      b.in_flight = false;
      if (s.ok()) {
        const HeuristicRecord& rec = job.records[key];
        bool commit = rec.outcome == proto::Outcome::COMMITTED;
        ++(commit ? counters_.commits : counters_.rollbacks);
        SetState(key, b, commit ? St::kCommitted : St::kAborted, now);
        WakeWaitersOf(key, now);
        Heuristic& h = heuristics_[key];
        h.record = rec;
        h.decided = now;
        h.next_query = now;  // ask the group: agreed or a hazard
        h.query_backoff = options_.in_doubt_after;
        job.decided.push_back(HeuristicInfo(key, h));
        Log(AgentLogLine::kWarn, "heuristic decision applied " + who + " outcome=" +
                                     OutcomeName(rec.outcome) +
                                     "; it is reconciled with the group once the group answers");
      } else {
        Log(AgentLogLine::kError, "heuristic decision failed " + who + " error=" + s.ToString() +
                                      "; the branch stays in doubt");
      }
      Pump(key, now);
    }
  } else if (s.ok()) {
    heuristics_.erase(key);
    ++job.forgotten;
    Log(AgentLogLine::kInfo, "heuristic record forgotten " + who);
  }
  if (--job.pending == 0) FinishJob(job_id);
}

void BranchCore::FinishJob(uint64_t job_id) {
  auto jit = jobs_.find(job_id);
  if (jit == jobs_.end()) return;
  OperatorJob job = std::move(jit->second);
  jobs_.erase(jit);
  if (!job.reply) return;
  if (job.forget) {
    proto::AgentForgetResponse r;
    r.status = ToProto(job.first_error);
    r.forgotten = job.forgotten;
    effects_.replies.push_back({job.token, std::move(r)});
  } else {
    proto::AgentResolveResponse r;
    r.status = ToProto(job.first_error);
    r.branches = std::move(job.decided);
    effects_.replies.push_back({job.token, std::move(r)});
  }
}

void BranchCore::NoteGroupOutcome(const Key& key, Heuristic& h, proto::Outcome::type outcome,
                                  const char* how) {
  if (h.group) return;
  h.group = outcome;
  const std::string who = "txid=" + ToString(key.second) + " resource=" + key.first;
  if (outcome == h.record.outcome) {
    Log(AgentLogLine::kInfo, "heuristic decision agrees with the group " + who + " outcome=" +
                                 OutcomeName(outcome) + " (heard from " + how + ")");
  } else {
    Log(AgentLogLine::kError,
        "heuristic hazard " + who + ": decided " + OutcomeName(h.record.outcome) + " here by " +
            h.record.who + " (" + h.record.reason + "), the group decided " +
            OutcomeName(outcome) + " (heard from " + how +
            "); repair the data by hand, then: txadmin agent HOST:PORT forget " +
            ToString(key.second) + " --reason TEXT");
  }
}

proto::BranchInfo BranchCore::HeuristicInfo(const Key& key, const Heuristic& h) const {
  proto::BranchInfo i;
  i.txid = key.second;
  i.resource = key.first;
  i.state = HeuristicStateName(h.record.outcome);
  i.__set_heuristic_outcome(h.record.outcome);
  i.__set_heuristic_reason(h.record.reason);
  i.__set_heuristic_who(h.record.who);
  if (h.record.at_ms > 0) i.__set_heuristic_at_ms(h.record.at_ms);
  if (h.group) i.__set_group_outcome(*h.group);
  return i;
}

size_t BranchCore::in_doubt_count() const {
  size_t n = 0;
  for (const Key& k : live_) {
    auto it = branches_.find(k);
    if (it != branches_.end() && InDoubt(it->second.state)) ++n;
  }
  return n;
}

// -------------------------------------------------------------------- replies

void BranchCore::ReplyExecute(const Pending& p, const Status& s,
                              std::vector<proto::ResultSet> results) {
  if (!p.has_token) return;
  proto::ExecuteResponse r;
  r.status = ToProto(s);
  r.results = std::move(results);
  r.incarnation = options_.incarnation;
  effects_.replies.push_back({p.token, std::move(r)});
}

void BranchCore::ReplyVote(const Pending& p, proto::Vote::type vote, const std::string& reason,
                           const Status& s) {
  if (!p.has_token) return;
  ++(vote == proto::Vote::YES         ? counters_.votes_yes
     : vote == proto::Vote::READ_ONLY ? counters_.votes_read_only
                                      : counters_.votes_no);
  proto::PrepareResponse r;
  r.status = ToProto(s);
  r.vote = vote;
  r.reason = reason;
  effects_.replies.push_back({p.token, std::move(r)});
}

void BranchCore::ReplyDecide(const Pending& p, const Status& s, bool refused) {
  if (!p.has_token) return;
  proto::DecideResponse r;
  r.status = ToProto(s);
  if (refused) r.__set_refused(true);
  effects_.replies.push_back({p.token, std::move(r)});
}

}  // namespace txc::participant
