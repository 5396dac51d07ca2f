// SimClient: the bank workload, doing what client/client.cc does for an
// application: Begin; Execute on the agents that host the resources (the
// participant is recorded before the call, so a rollback reaches it even if
// the call failed); Commit, or Submit for one-shot; Rollback when a statement
// fails. Coordinator calls retry with the same txid (CoordinatorCall). Some
// write transactions also rename a member (sim/bank.h's members table).
#include <algorithm>

#include "sim/cluster.h"

namespace txc::sim {

namespace {

proto::Value Int(int64_t v) {
  proto::Value x;
  x.__set_i(v);
  return x;
}

proto::Statement Debit(int64_t amount, int64_t account) {
  proto::Statement s;
  s.sql = kDebitSql;
  s.params = {Int(amount), Int(account), Int(amount)};
  s.__set_expect_rows(1);
  return s;
}

proto::Statement Credit(int64_t amount, int64_t account) {
  proto::Statement s;
  s.sql = kCreditSql;
  s.params = {Int(amount), Int(account)};
  s.__set_expect_rows(1);
  return s;
}

// A rename on `members` (sim/bank.h): claim the free email for the new row
// `id`, then delete the `nth` other row, freeing its email.
proto::Statement ClaimEmail(int64_t id) {
  proto::Statement s;
  s.sql = kClaimEmailSql;
  s.params = {Int(id)};
  s.__set_expect_rows(1);
  return s;
}

proto::Statement ReleaseEmail(int64_t id, int64_t nth) {
  proto::Statement s;
  s.sql = kReleaseEmailSql;
  s.params = {Int(id), Int(nth)};
  s.__set_expect_rows(1);
  return s;
}

// The share of write transactions that also rename a member.
constexpr double kRenameP = 0.15;

proto::Statement Sum() {
  proto::Statement s;
  s.sql = kSumSql;
  return s;
}

proto::Statement Slow() {
  proto::Statement s;
  s.sql = kSlowSql;
  return s;
}

}  // namespace

SimClient::SimClient(Cluster* cluster, int node, int index)
    : c_(cluster), node_(node), index_(index) {}

bool SimClient::Alive(uint64_t inc) const {
  return c_->net().up(node_) && c_->net().incarnation(node_) == inc;
}

void SimClient::Later(Micros delay, std::function<void()> fn) {
  uint64_t inc = c_->net().incarnation(node_);
  c_->world().After(delay, [this, inc, fn = std::move(fn)] {
    if (Alive(inc)) fn();
  });
}

void SimClient::Start() { Later(c_->world().rng().Uniform(0, 2 * kMillis), [this] { Next(); }); }

void SimClient::Next() {
  // Now and then, before its next transaction, a client asks about one that
  // ended long ago (at least 12 transactions back: past the table's
  // retention of ended transactions, Timing's driver.table).
  if (c_->faults() != FaultLevel::kNone && c_->finished().size() > 12 &&
      c_->world().rng().Bernoulli(0.12)) {
    return LateQuery();
  }
  if (!c_->TakeTicket()) {
    done_ = true;
    return;
  }
  Plan();
  Begin();
}

// Picks the next transaction: which kind, which resources and accounts.
void SimClient::Plan() {
  Rng& rng = c_->world().rng();
  txn_ = Txn();
  int r = static_cast<int>(rng.Uniform(0, 99));
  txn_.kind = r < 45 ? Kind::kTransfer : r < 88 ? Kind::kOneShot : r < 94 ? Kind::kAudit : Kind::kRollback;
  const bool scenario = c_->scenario_abort_pending();
  if (scenario) txn_.kind = Kind::kTransfer;
  std::vector<std::string> names = c_->resource_names();
  // A random order of distinct resources (Fisher-Yates with our RNG).
  for (size_t i = names.size(); i > 1; --i) std::swap(names[i - 1], names[rng.Index(i)]);
  size_t n = names.size() >= 3 && (scenario || rng.Bernoulli(0.3)) ? 3 : 2;
  auto account = [&](const std::string& res) {
    return rng.Uniform(1, c_->accounts_per_resource(res));
  };
  if (txn_.kind == Kind::kAudit) {
    for (size_t i = 0; i < n; ++i) txn_.steps.push_back(Step{names[i], {Sum()}, false});
  } else {
    // names[0] pays every other resource. Every branch is one Execute call (a
    // second call on the same branch is not idempotent under agent restarts).
    int64_t total = 0;
    for (size_t i = 1; i < n; ++i) {
      int64_t amount = rng.Uniform(1, 40);
      total += amount;
      txn_.steps.push_back(Step{names[i], {Credit(amount, account(names[i]))}, true});
    }
    int64_t payer = account(names[0]);
    if (c_->split_execute() && txn_.kind == Kind::kTransfer && total > 1) {
      // The payer's branch gets two Execute calls, before and after the others.
      int64_t first = rng.Uniform(1, total - 1);
      txn_.steps.insert(txn_.steps.begin(), Step{names[0], {Debit(first, payer)}, true});
      txn_.steps.push_back(Step{names[0], {Debit(total - first, payer)}, true});
    } else {
      txn_.steps.insert(txn_.steps.begin(), Step{names[0], {Debit(total, payer)}, true});
    }
    if (rng.Bernoulli(0.5)) std::reverse(txn_.steps.begin(), txn_.steps.end());
    // Some also rename a member on one of their resources, in that branch's
    // Execute call: concurrent renames on a resource free and claim the same
    // emails, and those branches that then roll back must restore their rows.
    if (rng.Bernoulli(kRenameP)) {
      Step& step = txn_.steps[rng.Index(txn_.steps.size())];
      int64_t id = c_->NextMemberId(step.resource);
      step.statements.push_back(ClaimEmail(id));
      step.statements.push_back(ReleaseEmail(id, rng.Uniform(0, kMembers - 1)));
    }
    // Heavy faults: now and then an interactive transfer runs a runaway
    // statement on a branch right after that branch's write, in its own
    // Execute call. The resource interrupts it (TIMEOUT) and the branch is
    // doomed; the client rolls back, or ignores the failure and commits,
    // and must be told ABORTED.
    if (txn_.kind == Kind::kTransfer && c_->faults() == FaultLevel::kHeavy &&
        rng.Bernoulli(0.05)) {
      size_t after = rng.Index(txn_.steps.size());
      Step slow{txn_.steps[after].resource, {Slow()}, false, true};
      txn_.steps.insert(txn_.steps.begin() + static_cast<std::ptrdiff_t>(after) + 1, slow);
      txn_.ignore_failure = rng.Bernoulli(0.5);
    }
  }
  if (rng.Bernoulli(c_->client_crash_p())) txn_.crash_stage = static_cast<int>(rng.Uniform(1, 3));
  if (scenario) txn_.crash_stage = 3;  // gone once its Commit is sent
}

void SimClient::Begin() {
  // A one-shot takes a reserved txid while one is fresh, as client/ does;
  // otherwise its Begin reserves a few.
  const bool one_shot = txn_.kind == Kind::kOneShot;
  if (one_shot) {
    if (auto id = reserve_.Take(c_->world().now())) {
      txn_.txid = *id;
      txn_.kept = true;
      c_->world().Log(node_, &txn_.txid, "client: takes a reserved txid");
      if (txn_.crash_stage == 1) return Vanish();
      return SendSubmit();
    }
  }
  proto::BeginRequest req;
  if (one_shot) req.__set_count(kReserveTxids);
  const Micros sent = c_->world().now();
  c_->CoordinatorCall<proto::BeginRequest, proto::BeginResponse>(
      node_, req, c_->timing().begin_deadline, c_->timing().coord_attempt, &SimCoordinator::Begin,
      [this, one_shot, sent](Status s, proto::BeginResponse r) {
        if (!s.ok() || r.status.code != proto::Code::OK) {
          return Finish(1, "begin failed: " + (s.ok() ? r.status.message : s.ToString()));
        }
        txn_.txid = r.txid;
        if (one_shot) {
          reserve_.Keep(r, sent);
          txn_.kept = true;
        }
        c_->world().Log(node_, &txn_.txid, "client: begun");
        if (txn_.crash_stage == 1) return Vanish();
        if (txn_.kind == Kind::kOneShot) return SendSubmit();
        ExecuteNext();
      });
}

void SimClient::ExecuteNext() {
  if (txn_.next == txn_.steps.size()) {
    if (txn_.kind == Kind::kRollback) return Rollback("the application changed its mind");
    return SendCommit();
  }
  const Step& step = txn_.steps[txn_.next];
  std::string address = c_->AddressOf(step.resource);
  proto::Participant p;
  p.resource = step.resource;
  p.address = address;
  if (std::none_of(txn_.participants.begin(), txn_.participants.end(), [&](const proto::Participant& q) {
        return q.resource == p.resource && q.address == p.address;
      })) {
    txn_.participants.push_back(p);
  }
  SimAgent* agent = c_->AgentAt(address);
  proto::ExecuteRequest req;
  req.txid = txn_.txid;
  req.resource = step.resource;
  req.statements = step.statements;
  c_->world().Log(node_, &txn_.txid, "client: execute on " + step.resource);
  // Execute is not idempotent (a duplicate would run the statements twice);
  // over TCP a request is never duplicated, so neither is it here.
  c_->net().Call<proto::ExecuteResponse>(
      node_, agent->node(), c_->timing().exec_timeout, false,
      [agent, req](std::function<void(proto::ExecuteResponse)> reply) {
        agent->Execute(req, std::move(reply));
      },
      [this](Status s, proto::ExecuteResponse r) {
        if (!s.ok()) return Rollback("execute failed: " + s.ToString());
        const Step& done = txn_.steps[txn_.next];
        // As client.cc: remember the agent's incarnation; a change between two
        // calls means the earlier work may be gone.
        for (auto& part : txn_.participants) {
          if (part.resource != done.resource || r.incarnation == 0) continue;
          if (part.__isset.incarnation && part.incarnation != r.incarnation) {
            return Rollback("the agent restarted during the transaction");
          }
          part.__set_incarnation(r.incarnation);
        }
        if (r.status.code == proto::Code::TIMEOUT && done.slow && txn_.ignore_failure) {
          // The application carries on regardless: its branch there votes NO.
          c_->world().Log(node_, &txn_.txid,
                          "client: ignores the interrupted statement and goes on to commit");
          ++txn_.next;
          return ExecuteNext();
        }
        if (r.status.code != proto::Code::OK) return Rollback("execute failed: " + r.status.message);
        if (done.writes &&
            std::find(txn_.wrote.begin(), txn_.wrote.end(), done.resource) == txn_.wrote.end()) {
          txn_.wrote.push_back(done.resource);
        }
        ++txn_.next;
        if (txn_.crash_stage == 2 && txn_.next == 1) return Vanish();
        ExecuteNext();
      });
}

void SimClient::SendCommit() {
  proto::CommitRequest req;
  req.txid = txn_.txid;
  req.participants = txn_.participants;
  req.protocol = c_->protocol();
  c_->checker().OnCommitRequested(txn_.txid);
  txn_.commit_requested = true;
  c_->world().Log(node_, &txn_.txid, "client: commit");
  c_->CoordinatorCall<proto::CommitRequest, proto::CommitResponse>(
      node_, req, c_->timing().commit_deadline, c_->timing().coord_attempt, &SimCoordinator::Commit,
      [this](Status s, proto::CommitResponse r) { OnCommitAnswer(s, r); });
  if (txn_.crash_stage == 3) Vanish();
}

void SimClient::SendSubmit() {
  proto::SubmitRequest req;
  req.txid = txn_.txid;
  req.protocol = c_->protocol();
  for (const Step& step : txn_.steps) {
    proto::Branch b;
    b.participant.resource = step.resource;
    b.participant.address = c_->AddressOf(step.resource);
    b.statements = step.statements;
    req.branches.push_back(std::move(b));
    if (step.writes) txn_.wrote.push_back(step.resource);
  }
  for (const proto::Branch& b : req.branches) txn_.participants.push_back(b.participant);
  c_->checker().OnCommitRequested(txn_.txid);
  txn_.commit_requested = true;
  c_->world().Log(node_, &txn_.txid, "client: submit");
  c_->CoordinatorCall<proto::SubmitRequest, proto::CommitResponse>(
      node_, req, c_->timing().commit_deadline, c_->timing().coord_attempt, &SimCoordinator::Submit,
      [this](Status s, proto::CommitResponse r) { OnCommitAnswer(s, r); });
  if (txn_.crash_stage == 3) Vanish();
}

void SimClient::OnCommitAnswer(const Status& s, const proto::CommitResponse& r) {
  if (!s.ok()) return Finish(2, "commit outcome unknown: " + s.ToString());
  if (r.status.code != proto::Code::OK) return Finish(2, "commit failed: " + r.status.message);
  switch (r.outcome) {
    case proto::Outcome::COMMITTED:
      c_->checker().OnToldCommitted(txn_.txid, txn_.wrote);
      return Finish(0, "committed");
    case proto::Outcome::ABORTED:
      c_->checker().OnToldAborted(txn_.txid);
      if (txn_.kept && TxidReserve::LeaderGone(r)) {
        // As client/: its leader is gone, so is the rest of its block; the
        // same work once more under a new txid.
        reserve_.Clear();
        if (!txn_.resubmitted) {
          c_->world().Log(node_, &txn_.txid, "client: reserved txid of a gone leader; submits again");
          txn_.resubmitted = true;
          txn_.kept = false;
          return Begin();
        }
      }
      return Finish(1, "aborted: " + r.reason);
    default:
      return Finish(2, std::string("outcome ") + OutcomeName(r.outcome));
  }
}

void SimClient::Rollback(const std::string& why) {
  c_->world().Log(node_, &txn_.txid, "client: rollback (" + why + ")");
  proto::AbortRequest req;
  req.txid = txn_.txid;
  req.participants = txn_.participants;
  req.reason = why;
  c_->CoordinatorCall<proto::AbortRequest, proto::CommitResponse>(
      node_, req, c_->timing().abort_deadline, c_->timing().coord_attempt, &SimCoordinator::Abort,
      [this, why](Status s, proto::CommitResponse r) {
        if (s.ok() && r.status.code == proto::Code::OK && r.outcome == proto::Outcome::ABORTED) {
          c_->checker().OnToldAborted(txn_.txid);
        }
        // Never asked to commit: it cannot commit, whatever the answer.
        Finish(1, why);
      });
}

void SimClient::LateQuery() {
  Rng& rng = c_->world().rng();
  const std::vector<Finished>& pool = c_->finished();
  Finished f = pool[rng.Index(pool.size() - 12)];
  bool retry_commit = f.commit_requested && rng.Bernoulli(0.5);
  c_->world().Log(node_, &f.txid, retry_commit ? "client: late outcome query and commit retry"
                                               : "client: late outcome query");
  proto::OutcomeRequest req;
  req.txid = f.txid;
  c_->CoordinatorCall<proto::OutcomeRequest, proto::OutcomeResponse>(
      node_, req, c_->timing().begin_deadline, c_->timing().coord_attempt, &SimCoordinator::Outcome,
      [this, f, retry_commit](Status s, proto::OutcomeResponse r) {
        if (s.ok() && r.status.code == proto::Code::OK) {
          c_->world().Log(node_, &f.txid, std::string("client: late outcome ") + OutcomeName(r.outcome));
          c_->checker().OnLateAnswer(f.txid, r.outcome, f.wrote);
        }
        if (!retry_commit) return Later(c_->world().rng().Uniform(0, 5 * kMillis), [this] { Next(); });
        proto::CommitRequest creq;
        creq.txid = f.txid;
        creq.participants = f.participants;
        creq.protocol = c_->protocol();
        c_->CoordinatorCall<proto::CommitRequest, proto::CommitResponse>(
            node_, creq, c_->timing().commit_deadline, c_->timing().coord_attempt,
            &SimCoordinator::Commit, [this, f](Status s, proto::CommitResponse r) {
              if (s.ok() && (r.status.code == proto::Code::OK ||
                             r.status.code == proto::Code::INVALID_ARGUMENT)) {
                c_->world().Log(node_, &f.txid,
                                std::string("client: late commit answered ") + OutcomeName(r.outcome));
                c_->checker().OnLateAnswer(f.txid, r.outcome, f.wrote);
              }
              Later(c_->world().rng().Uniform(0, 5 * kMillis), [this] { Next(); });
            });
      });
}

void SimClient::Finish(int outcome, const std::string& why) {
  static const char* kNames[] = {"COMMITTED", "ABORTED", "UNKNOWN"};
  Remember();
  if (txn_.txid.seq != 0) {
    c_->world().Log(node_, &txn_.txid, std::string("client: ") + kNames[outcome] + " (" + why + ")");
  } else {
    c_->world().Log(node_, std::string("client: ") + kNames[outcome] + " (" + why + ")");
  }
  c_->Count(outcome);
  // An application backs off a little after a failure before its next try.
  Rng& rng = c_->world().rng();
  Micros think = outcome == 0 ? rng.Uniform(0, 3 * kMillis) : rng.Uniform(5 * kMillis, 50 * kMillis);
  Later(think, [this] { Next(); });
}

void SimClient::Remember() {
  if (txn_.txid.seq == 0) return;
  Finished f;
  f.txid = txn_.txid;
  f.participants = txn_.participants;
  f.wrote = txn_.wrote;
  f.commit_requested = txn_.commit_requested;
  c_->finished().push_back(std::move(f));
}

void SimClient::Vanish() {
  World& w = c_->world();
  reserve_.Clear();  // the process's memory
  Remember();
  w.Log(node_, &txn_.txid, "client: crashes mid-transaction");
  c_->Count(2);
  ++c_->injected().crash;
  c_->net().Down(node_);
  w.After(w.rng().Uniform(5 * kMillis, 200 * kMillis), [this] {
    c_->net().Up(node_);
    Next();
  });
}

}  // namespace txc::sim
