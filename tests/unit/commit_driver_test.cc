// CommitDriver: the leader's 2PC with presumed abort, driven message by
// message (DESIGN.md, "Transactions and the commit protocols" and "Who may
// answer aborted"). The test plays the log: a proposal is chosen when the test
// applies it to the TxnTable and calls OnApplied, and not before.
#include "coordinator/commit_driver.h"

#include <cstring>

#include <gtest/gtest.h>

#include "protocol/validate.h"
#include "tests/support/core_harness.h"

namespace txc::coord {
namespace {

using txc::testing::Participant;
using txc::testing::Sql;

const proto::Participant kA = Participant("bank_a", "10.0.0.1:7100");
const proto::Participant kB = Participant("bank_b", "10.0.0.2:7100");
const proto::Participant kC = Participant("bank_c", "10.0.0.1:7100");  // kA's agent, another resource
using Participants = std::vector<proto::Participant>;

constexpr int64_t kEpoch = 7;
constexpr Micros kT0 = 1000 * kSeconds;

proto::PrepareResponse VoteOf(proto::Vote::type v, std::string reason = "") {
  proto::PrepareResponse r;
  r.vote = v;
  r.reason = std::move(reason);
  return r;
}
const proto::PrepareResponse kYes = VoteOf(proto::Vote::YES);
const proto::PrepareResponse kReadOnly = VoteOf(proto::Vote::READ_ONLY);

DriverOptions TestOptions() {
  DriverOptions o;
  o.vote_timeout = 5 * kSeconds;
  o.txn_timeout = 60 * kSeconds;
  o.resend_initial = 50 * kMillis;
  o.resend_max = 400 * kMillis;
  o.call_timeout = 5 * kSeconds;
  o.reserve_ttl = 2 * kSeconds;  // shorter than the vote timeout
  return o;
}

// Calls of one kind in an effects batch.
std::vector<ParticipantCall> Prepares(const DriverEffects& fx) {
  std::vector<ParticipantCall> out;
  for (const auto& c : fx.calls) {
    if (c.prepare) out.push_back(c);
  }
  return out;
}
std::vector<ParticipantCall> Decisions(const DriverEffects& fx, proto::Outcome::type outcome) {
  std::vector<ParticipantCall> out;
  for (const auto& c : fx.calls) {
    if (c.decide && c.decide->outcome == outcome) out.push_back(c);
  }
  return out;
}
std::vector<proto::Participant> Targets(const std::vector<ParticipantCall>& calls) {
  std::vector<proto::Participant> out;
  for (const auto& c : calls) out.push_back(c.to);
  return out;
}

class CommitDriverTest : public ::testing::Test {
 protected:
  CommitDriverTest() : driver_(&table_, TestOptions()) {}

  void SetUp() override { BecomeLeader(kEpoch); }

  // The log chose this node's EPOCH: it serves as leader of `epoch`.
  void BecomeLeader(int64_t epoch) {
    table_.Apply(++index_, MakeEpoch(epoch));
    driver_.BecomeLeader(epoch, now_);
  }

  DriverEffects Take() { return driver_.TakeEffects(); }

  // The log chooses `cmd`: it is applied to the table at the next index, then
  // the driver hears of it.
  void Choose(const proto::Command& cmd) {
    table_.Apply(++index_, cmd);
    driver_.OnApplied(cmd, now_);
  }
  // Takes the effects, chooses every proposal among them in order, and
  // returns what was taken (effects of the choices wait for the next Take).
  DriverEffects TakeAndChoose() {
    DriverEffects fx = Take();
    for (const auto& cmd : fx.proposals) Choose(cmd);
    return fx;
  }

  TxId Begin(uint64_t token = 1) {
    driver_.OnBegin(token, proto::BeginRequest(), now_);
    DriverEffects fx = Take();
    EXPECT_EQ(fx.replies.size(), 1u);
    if (fx.replies.empty()) return TxId();
    const auto& r = std::get<proto::BeginResponse>(fx.replies[0].response);
    EXPECT_EQ(r.status.code, proto::Code::OK) << r.status.message;
    return r.txid;
  }
  void Commit(uint64_t token, const TxId& txid, Participants ps) {
    proto::CommitRequest req;
    req.txid = txid;
    req.participants = std::move(ps);
    driver_.OnCommit(token, req, now_);
  }
  void Abort(uint64_t token, const TxId& txid, Participants ps = {}, std::string reason = "") {
    proto::AbortRequest req;
    req.txid = txid;
    req.participants = std::move(ps);
    req.reason = std::move(reason);
    driver_.OnAbort(token, req, now_);
  }
  proto::OutcomeResponse Outcome(const TxId& txid, uint64_t token = 99) {
    proto::OutcomeRequest req;
    req.txid = txid;
    driver_.OnOutcome(token, req, now_);
    DriverEffects fx = Take();
    EXPECT_EQ(fx.replies.size(), 1u);
    if (fx.replies.empty()) return proto::OutcomeResponse();
    EXPECT_EQ(fx.replies[0].token, token);
    return std::get<proto::OutcomeResponse>(fx.replies[0].response);
  }
  void Vote(const TxId& txid, size_t index, const proto::PrepareResponse& resp) {
    driver_.OnVote(txid, index, Status::Ok(), resp, now_);
  }
  void Ack(const TxId& txid, size_t index, const Status& s = Status::Ok()) {
    driver_.OnAck(txid, index, s, now_);
  }

  // Begins a txn over `ps`, commits it and collects every YES: returns it in
  // "deciding" with the DECIDE(COMMIT) proposal taken into `decide`.
  TxId BeginAndVoteYes(const Participants& ps, uint64_t token, proto::Command* decide) {
    TxId t = Begin();
    Commit(token, t, ps);
    DriverEffects fx = Take();
    EXPECT_EQ(Prepares(fx).size(), ps.size());
    for (size_t i = 0; i < ps.size(); ++i) Vote(t, i, kYes);
    fx = Take();
    EXPECT_EQ(fx.proposals.size(), 1u);
    if (!fx.proposals.empty()) *decide = fx.proposals[0];
    return t;
  }

  TxnTable table_;
  CommitDriver driver_;
  uint64_t index_ = 0;
  Micros now_ = kT0;
};

// Exactly one reply to `token`, of type T.
template <class T>
T ReplyTo(const DriverEffects& fx, uint64_t token) {
  const T* found = nullptr;
  int n = 0;
  for (const auto& r : fx.replies) {
    if (r.token != token) continue;
    ++n;
    found = std::get_if<T>(&r.response);
  }
  EXPECT_EQ(n, 1) << "replies to token " << token;
  if (found == nullptr) {
    ADD_FAILURE() << "no reply of the expected type to token " << token;
    return T();
  }
  return *found;
}
proto::CommitResponse CommitReply(const DriverEffects& fx, uint64_t token) {
  return ReplyTo<proto::CommitResponse>(fx, token);
}

// ------------------------------------------------------------------- begin

TEST_F(CommitDriverTest, BeginAllocatesIncreasingTxidsInTheLeadersEpoch) {
  EXPECT_EQ(Begin(), MakeTxId(kEpoch, 1));
  EXPECT_EQ(Begin(), MakeTxId(kEpoch, 2));
  EXPECT_EQ(Begin(), MakeTxId(kEpoch, 3));
  EXPECT_EQ(driver_.next_seq(), 4);
  EXPECT_EQ(driver_.active_count(), 3u);
  // Nothing is logged and nobody is called for a begin.
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.empty());
}

TEST_F(CommitDriverTest, NewLeadershipAllocatesInItsOwnEpoch) {
  Begin();
  driver_.StepDown("");
  BecomeLeader(kEpoch + 1);
  EXPECT_EQ(Begin(), MakeTxId(kEpoch + 1, 1));
}

// BeginRequest.count: consecutive txids, each a begun transaction that a
// Submit may use; the ones nothing used are dropped after reserve_ttl,
// silently (no participant knows them), and not counted as aborts.
TEST_F(CommitDriverTest, ABeginWithACountReservesConsecutiveTxidsForAWhile) {
  proto::BeginRequest req;
  req.__set_count(4);
  driver_.OnBegin(1, req, now_);
  DriverEffects fx = Take();
  auto r = ReplyTo<proto::BeginResponse>(fx, 1);
  ASSERT_EQ(r.status.code, proto::Code::OK);
  EXPECT_EQ(r.txid, MakeTxId(kEpoch, 1));
  EXPECT_EQ(r.count, 4);
  EXPECT_EQ(r.reserved_ms, TestOptions().reserve_ttl / kMillis);
  EXPECT_EQ(driver_.next_seq(), 5);
  EXPECT_EQ(driver_.counters().begun, 4u);
  EXPECT_EQ(Begin(2), MakeTxId(kEpoch, 5));  // a plain Begin comes after them

  auto views = driver_.ActiveTxns(now_);
  ASSERT_EQ(views.size(), 5u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(views[i].state, "reserved") << i;
  EXPECT_EQ(views[4].state, "active");

  // Two of them are used: a Submit and a Commit.
  proto::SubmitRequest submit;
  submit.txid = MakeTxId(kEpoch, 2);
  proto::Branch b;
  b.participant = kA;
  b.statements = {Sql("UPDATE t SET v = 1")};
  submit.branches = {b};
  driver_.OnSubmit(3, submit, now_);
  ASSERT_EQ(Prepares(Take()).size(), 1u);
  Commit(4, MakeTxId(kEpoch, 3), {kB});
  ASSERT_EQ(Prepares(Take()).size(), 1u);

  // The reservation lasts reserve_ttl; the plain Begin, txn_timeout.
  driver_.Tick(now_ + TestOptions().reserve_ttl - 1);
  EXPECT_EQ(driver_.active_count(), 5u);
  now_ += TestOptions().reserve_ttl;
  driver_.Tick(now_);  // (the two used ones are voting: the vote timeout is theirs)
  fx = Take();
  EXPECT_TRUE(fx.calls.empty());    // nobody to tell about the unused two
  EXPECT_TRUE(fx.replies.empty());  // nobody waits on them
  std::vector<TxId> left;
  for (const auto& v : driver_.ActiveTxns(now_)) left.push_back(v.txid);
  EXPECT_EQ(left, (std::vector<TxId>{MakeTxId(kEpoch, 2), MakeTxId(kEpoch, 3), MakeTxId(kEpoch, 5)}));
  EXPECT_EQ(driver_.counters().reservations_expired, 2u);
  EXPECT_EQ(driver_.counters().aborted, 0u);
  // Too late for a Submit: the txid answers as a timed-out one does.
  submit.txid = MakeTxId(kEpoch, 4);
  driver_.OnSubmit(5, submit, now_);
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 5).outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(Prepares(fx).empty());
}

// The shells refuse a count out of range before the core sees it; the core
// bounds it anyway (a caller without the check, e.g. a harness).
TEST_F(CommitDriverTest, AReservationCountOutOfRangeIsBoundedByTheCore) {
  for (auto [asked, got] : {std::pair<int32_t, int32_t>{0, 1}, {-7, 1}, {100000, 256}}) {
    proto::BeginRequest req;
    req.__set_count(asked);
    int64_t first = driver_.next_seq();
    driver_.OnBegin(1, req, now_);
    auto r = ReplyTo<proto::BeginResponse>(Take(), 1);
    ASSERT_EQ(r.status.code, proto::Code::OK);
    EXPECT_EQ(r.count, got) << asked;
    EXPECT_EQ(r.txid, MakeTxId(kEpoch, first)) << asked;
    EXPECT_EQ(driver_.next_seq(), first + got) << asked;
  }
}

TEST_F(CommitDriverTest, AReservationLastsNoLongerThanTheTransactionTimeoutItAsks) {
  proto::BeginRequest req;
  req.__set_count(2);
  req.__set_timeout_ms(1500);
  driver_.OnBegin(1, req, now_);
  auto r = ReplyTo<proto::BeginResponse>(Take(), 1);
  EXPECT_EQ(r.reserved_ms, 1500);
  driver_.Tick(now_ + 1500 * kMillis);
  EXPECT_EQ(driver_.active_count(), 0u);
  EXPECT_EQ(driver_.counters().reservations_expired, 2u);
}

TEST_F(CommitDriverTest, BeginBeforeServingIsUnavailableWithoutHint) {
  TxnTable table;
  CommitDriver fresh(&table, TestOptions());
  EXPECT_FALSE(fresh.serving());
  fresh.OnBegin(5, proto::BeginRequest(), now_);
  DriverEffects fx = fresh.TakeEffects();
  auto r = ReplyTo<proto::BeginResponse>(fx, 5);
  EXPECT_EQ(r.status.code, proto::Code::UNAVAILABLE);
  EXPECT_FALSE(r.status.__isset.leader_hint);
  EXPECT_EQ(fresh.next_seq(), 1);
}

TEST_F(CommitDriverTest, EveryRequestAfterStepDownGetsNotLeaderWithHint) {
  TxId t = Begin();
  driver_.StepDown("10.0.0.9:7000");
  EXPECT_FALSE(driver_.serving());
  EXPECT_EQ(driver_.active_count(), 0u);

  driver_.OnBegin(1, proto::BeginRequest(), now_);
  Commit(2, t, {kA});
  proto::SubmitRequest submit;
  submit.txid = t;
  driver_.OnSubmit(3, submit, now_);
  Abort(4, t, {kA});
  proto::OutcomeRequest oq;
  oq.txid = t;
  driver_.OnOutcome(5, oq, now_);
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_TRUE(fx.proposals.empty());

  auto b = ReplyTo<proto::BeginResponse>(fx, 1);
  EXPECT_EQ(b.status.code, proto::Code::NOT_LEADER);
  EXPECT_EQ(b.status.leader_hint, "10.0.0.9:7000");
  for (uint64_t token : {2, 3, 4}) {
    auto c = CommitReply(fx, token);
    EXPECT_EQ(c.status.code, proto::Code::NOT_LEADER) << token;
    EXPECT_EQ(c.status.leader_hint, "10.0.0.9:7000") << token;
    EXPECT_EQ(c.outcome, proto::Outcome::UNKNOWN) << token;
  }
  auto o = ReplyTo<proto::OutcomeResponse>(fx, 5);
  EXPECT_EQ(o.status.code, proto::Code::NOT_LEADER);
  EXPECT_EQ(o.status.leader_hint, "10.0.0.9:7000");
  EXPECT_EQ(o.outcome, proto::Outcome::UNKNOWN);
}

TEST_F(CommitDriverTest, StepDownAnswersWaitingCommitsAndIgnoresLateVotes) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  driver_.StepDown("10.0.0.9:7000");
  DriverEffects fx = Take();
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::NOT_LEADER);
  EXPECT_EQ(r.outcome, proto::Outcome::UNKNOWN);

  Vote(t, 1, kYes);
  driver_.Tick(now_ + 10 * kSeconds);
  EXPECT_TRUE(Take().empty());
}

// ------------------------------------------------------------------ commit

TEST_F(CommitDriverTest, CommitSendsOnePrepareToEachDistinctParticipant) {
  TxId t = Begin();
  Commit(2, t, {kA, kB, kA, kC});
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());
  EXPECT_TRUE(fx.replies.empty());
  auto prepares = Prepares(fx);
  ASSERT_EQ(prepares.size(), 3u);
  EXPECT_EQ(Targets(prepares), (Participants{kA, kB, kC}));
  for (size_t i = 0; i < prepares.size(); ++i) {
    const ParticipantCall& c = prepares[i];
    EXPECT_EQ(c.txid, t);
    EXPECT_EQ(c.index, i);
    EXPECT_FALSE(c.decide.has_value());
    EXPECT_EQ(c.prepare->txid, t);
    EXPECT_EQ(c.prepare->resource, c.to.resource);
    EXPECT_EQ(c.prepare->participants, (Participants{kA, kB, kC}));
    EXPECT_EQ(c.prepare->protocol, proto::Protocol::TWO_PC);
    EXPECT_FALSE(c.prepare->__isset.work);
  }
  auto view = driver_.ActiveTxns(now_);
  ASSERT_EQ(view.size(), 1u);
  EXPECT_EQ(view[0].state, "voting");
}

TEST_F(CommitDriverTest, CommittedIsAnsweredOnlyAfterTheDecisionIsChosen) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  EXPECT_TRUE(Take().empty());  // still waiting for bank_b
  Vote(t, 1, kYes);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  const proto::Command& decide = fx.proposals[0];
  EXPECT_EQ(decide.type, proto::CommandType::DECIDE);
  EXPECT_EQ(decide.txid, t);
  EXPECT_EQ(decide.outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(decide.participants, (Participants{kA, kB}));
  // Proposed is not chosen: no reply, no COMMIT yet, and the outcome is pending.
  EXPECT_TRUE(fx.replies.empty());
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].state, "deciding");
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);
  driver_.Tick(now_ + 30 * kSeconds);  // the log may take its time: no timeout applies
  EXPECT_TRUE(Take().empty());

  Choose(decide);
  fx = Take();
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::OK);
  EXPECT_EQ(r.txid, t);
  EXPECT_EQ(r.outcome, proto::Outcome::COMMITTED);
  auto commits = Decisions(fx, proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 2u);
  EXPECT_EQ(Targets(commits), (Participants{kA, kB}));
  for (const auto& c : commits) {
    EXPECT_TRUE(c.want_ack);
    EXPECT_EQ(c.decide->txid, t);
    EXPECT_EQ(c.decide->resource, c.to.resource);
  }
  EXPECT_TRUE(fx.proposals.empty());  // END waits for the acks
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::COMMITTED);
}

TEST_F(CommitDriverTest, EndIsProposedOnlyAfterEveryAckAndThenTheTxnIsForgotten) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  Take();
  Ack(t, 1);
  Ack(t, 1);  // duplicate ack
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].state, "completing");
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].acked, (std::vector<bool>{false, true}));
  Ack(t, 0);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  EXPECT_EQ(fx.proposals[0].txid, t);
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].state, "ending");
  Ack(t, 0);  // a late duplicate ack proposes nothing more
  EXPECT_TRUE(Take().empty());

  Choose(fx.proposals[0]);
  EXPECT_EQ(driver_.active_count(), 0u);
  EXPECT_TRUE(Take().empty());
  ASSERT_NE(table_.Find(t), nullptr);
  EXPECT_TRUE(table_.Find(t)->ended);
}

// DriverOptions::lazy_end (the real node's and txsim's setting): an END
// waits for the next proposal, which it joins in one slot, or for the next
// Tick; a full batch goes at once; a lost leadership drops the pending ones.
class LazyEndTest : public CommitDriverTest {
 protected:
  static DriverOptions Lazy(size_t batch) {
    DriverOptions o = TestOptions();
    o.lazy_end = true;
    o.lazy_end_batch = batch;
    return o;
  }
  void UseLazy(size_t batch = 256) {
    driver_ = CommitDriver(&table_, Lazy(batch));
    BecomeLeader(kEpoch + 1);
  }
  // A transaction decided COMMITTED and acknowledged by both participants.
  TxId Acked(uint64_t token) {
    proto::Command decide;
    TxId t = BeginAndVoteYes({kA, kB}, token, &decide);
    Choose(decide);
    Take();
    Ack(t, 0);
    Ack(t, 1);
    return t;
  }
  static size_t Ends(const DriverEffects& fx) {
    return std::count_if(fx.proposals.begin(), fx.proposals.end(), [](const proto::Command& c) {
      return c.type == proto::CommandType::END_TXN;
    });
  }
};

TEST_F(LazyEndTest, EndWaitsForTheNextTickAndTheTxnEndsThen) {
  UseLazy();
  TxId t = Acked(2);
  EXPECT_TRUE(Take().proposals.empty());
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].state, "ending");
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::COMMITTED);  // from the table meanwhile
  Take();
  driver_.Tick(now_);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  EXPECT_EQ(fx.proposals[0].txid, t);
  Choose(fx.proposals[0]);
  EXPECT_EQ(driver_.active_count(), 0u);
  driver_.Tick(now_);
  EXPECT_TRUE(Take().proposals.empty());  // nothing proposed twice
}

TEST_F(LazyEndTest, EndJoinsTheNextDecideInOneBatch) {
  UseLazy();
  TxId first = Acked(2);
  TxId second = Begin(3);
  Commit(4, second, {kA, kB});
  Take();
  Vote(second, 0, kYes);
  Vote(second, 1, kYes);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 2u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::DECIDE);  // the DECIDE first
  EXPECT_EQ(fx.proposals[0].txid, second);
  EXPECT_EQ(fx.proposals[1].type, proto::CommandType::END_TXN);
  EXPECT_EQ(fx.proposals[1].txid, first);
}

TEST_F(LazyEndTest, AFullBatchIsProposedWithoutWaiting) {
  UseLazy(/*batch=*/3);
  std::vector<TxId> ts;
  for (uint64_t token : {10, 20, 30}) {
    proto::Command decide;
    ts.push_back(BeginAndVoteYes({kA, kB}, token, &decide));
    Choose(decide);
    Take();
  }
  for (size_t i = 0; i < 2; ++i) {
    Ack(ts[i], 0);
    Ack(ts[i], 1);
  }
  EXPECT_EQ(Ends(Take()), 0u);
  Ack(ts[2], 0);
  Ack(ts[2], 1);
  EXPECT_EQ(Ends(Take()), 3u);
}

TEST_F(LazyEndTest, ALostLeadershipDropsPendingEndsAndTheNextOneEndsTheTxnAgain) {
  UseLazy();
  TxId t = Acked(2);
  driver_.StepDown("elsewhere:1");
  EXPECT_EQ(Ends(Take()), 0u);
  // Leading again, the driver re-drives the unended decided transaction:
  // the decision is resent, and its END comes only after the new acks.
  BecomeLeader(kEpoch + 2);
  DriverEffects fx = Take();
  EXPECT_EQ(Ends(fx), 0u);
  EXPECT_EQ(Decisions(fx, proto::Outcome::COMMITTED).size(), 2u);
  Ack(t, 0);
  Ack(t, 1);
  driver_.Tick(now_);
  fx = Take();
  ASSERT_EQ(Ends(fx), 1u);
  EXPECT_EQ(fx.proposals.back().txid, t);
}

TEST_F(CommitDriverTest, CommitGoesOnlyToYesVotersNotReadOnlyOnes) {
  TxId t = Begin();
  Commit(2, t, {kA, kB, kC});
  Take();
  Vote(t, 0, kYes);
  Vote(t, 1, kReadOnly);
  Vote(t, 2, kYes);
  DriverEffects fx = TakeAndChoose();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].participants, (Participants{kA, kC}));
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  auto commits = Decisions(fx, proto::Outcome::COMMITTED);
  EXPECT_EQ(Targets(commits), (Participants{kA, kC}));
  // Acks are indexed in the phase-2 list: bank_a is 0, bank_c is 1.
  EXPECT_EQ(commits[1].index, 1u);
  Ack(t, 0);
  Ack(t, 1);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
}

TEST_F(CommitDriverTest, AllReadOnlyCommitIsDecidedAndEndedWithoutPhaseTwo) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kReadOnly);
  Vote(t, 1, kReadOnly);
  DriverEffects fx = TakeAndChoose();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::DECIDE);
  EXPECT_TRUE(fx.proposals[0].participants.empty());
  EXPECT_TRUE(fx.replies.empty());
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(fx.calls.empty());
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  Choose(fx.proposals[0]);
  EXPECT_EQ(driver_.active_count(), 0u);
}

TEST_F(CommitDriverTest, CommitWithNoParticipantsCommitsTrivially) {
  TxId t = Begin();
  Commit(2, t, {});
  DriverEffects fx = TakeAndChoose();
  EXPECT_TRUE(fx.calls.empty());
  ASSERT_EQ(fx.proposals.size(), 1u);
  fx = TakeAndChoose();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(driver_.active_count(), 0u);
  EXPECT_TRUE(table_.Find(t)->ended);
}

TEST_F(CommitDriverTest, AnyNoAbortsWithReasonAndNothingIsLogged) {
  TxId t = Begin();
  Commit(2, t, {kA, kB, kC});
  Take();
  Vote(t, 0, kYes);
  Vote(t, 1, VoteOf(proto::Vote::NO, "CHECK constraint failed: balance >= 0"));
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());  // presumed abort: no record
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::OK);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_NE(r.reason.find("bank_b"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("CHECK constraint failed"), std::string::npos) << r.reason;
  // Every participant is told, including the one that has not voted yet;
  // fire and forget.
  auto aborts = Decisions(fx, proto::Outcome::ABORTED);
  EXPECT_EQ(Targets(aborts), (Participants{kA, kB, kC}));
  for (const auto& c : aborts) EXPECT_FALSE(c.want_ack);
  EXPECT_EQ(driver_.active_count(), 0u);
  EXPECT_EQ(table_.Find(t), nullptr);
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::ABORTED);

  // The vote still out arrives late: ignored.
  Vote(t, 2, kYes);
  EXPECT_TRUE(Take().empty());
}

TEST_F(CommitDriverTest, AbortIsNotSentToReadOnlyVoters) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kReadOnly);
  Vote(t, 1, VoteOf(proto::Vote::NO, "no branch"));
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), Participants{kB});
}

TEST_F(CommitDriverTest, VoteTransportFailureCountsAsNo) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  driver_.OnVote(t, 1, Status::Unavailable("connection refused"), proto::PrepareResponse(), now_);
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_NE(r.reason.find("bank_b"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("connection refused"), std::string::npos) << r.reason;
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), (Participants{kA, kB}));
}

TEST_F(CommitDriverTest, YesVoteWithAnErrorStatusCountsAsNo) {
  TxId t = Begin();
  Commit(2, t, {kA});
  Take();
  proto::PrepareResponse resp = kYes;
  resp.status.code = proto::Code::STORAGE_FAILED;
  resp.status.message = "disk full";
  Vote(t, 0, resp);
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_NE(r.reason.find("disk full"), std::string::npos) << r.reason;
}

TEST_F(CommitDriverTest, UnrecognisedVoteCountsAsNo) {
  // A participant (in any language) that answers OK but leaves `vote` unset
  // must not be taken for READ_ONLY, which would commit without it.
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  proto::PrepareResponse unset;  // vote == 0: no such Vote
  Vote(t, 1, unset);
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::ABORTED);
}

TEST_F(CommitDriverTest, MessagesThatDoNotFitTheStateAreIgnored) {
  TxId t = Begin();
  Vote(t, 0, kYes);  // a vote before any PREPARE
  Ack(t, 0);         // an ack before any decision
  EXPECT_TRUE(Take().empty());
  Commit(2, t, {kA});
  Take();
  Ack(t, 0);  // an ack while voting
  EXPECT_TRUE(Take().empty());
  Vote(t, 0, kYes);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  Ack(t, 0);  // an ack while deciding
  driver_.OnAck(MakeTxId(kEpoch, 99), 0, Status::Ok(), now_);
  proto::Command noop;
  noop.type = proto::CommandType::NOOP;
  Choose(noop);
  Choose(MakeEnd(MakeTxId(kEpoch, 99)));
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].state, "deciding");
  Choose(fx.proposals[0]);
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(Decisions(fx, proto::Outcome::COMMITTED).size(), 1u);
  EXPECT_TRUE(fx.proposals.empty());  // the early acks did not count
}

TEST_F(CommitDriverTest, VoteTimeoutAbortsNamingTheMissingParticipant) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  driver_.Tick(now_ + 5 * kSeconds - 1);
  EXPECT_TRUE(Take().empty());
  driver_.Tick(now_ + 5 * kSeconds);
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_NE(r.reason.find("vote timeout"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("bank_b at 10.0.0.2:7100"), std::string::npos) << r.reason;
  EXPECT_EQ(r.reason.find("bank_a"), std::string::npos) << r.reason;
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), (Participants{kA, kB}));
  // The missing vote turns up after all: ignored.
  Vote(t, 1, kYes);
  EXPECT_TRUE(Take().empty());
}

TEST_F(CommitDriverTest, DuplicateOutOfRangeAndLateVotesAreIgnored) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  Vote(t, 0, VoteOf(proto::Vote::NO, "changed its mind"));  // duplicate: the first vote counts
  Vote(t, 7, VoteOf(proto::Vote::NO, "who?"));              // no such participant
  Vote(MakeTxId(kEpoch, 42), 0, VoteOf(proto::Vote::NO));   // no such txn
  EXPECT_TRUE(Take().empty());
  Vote(t, 1, kYes);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  Vote(t, 1, kYes);  // duplicate after the decision was proposed
  Vote(t, 1, VoteOf(proto::Vote::NO, "late"));
  EXPECT_TRUE(Take().empty());
  Choose(fx.proposals[0]);
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  Vote(t, 0, VoteOf(proto::Vote::NO, "very late"));
  EXPECT_TRUE(Take().empty());
}

TEST_F(CommitDriverTest, DuplicateCommitWhileVotingOrDecidingGetsTheSameAnswer) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  EXPECT_EQ(Prepares(Take()).size(), 2u);
  Commit(3, t, {kA, kB});  // retry while voting: no second round of PREPARE
  EXPECT_TRUE(Take().empty());
  Vote(t, 0, kYes);
  Vote(t, 1, kYes);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  Commit(4, t, {kA, kB});  // retry while deciding
  EXPECT_TRUE(Take().empty());
  Choose(fx.proposals[0]);
  fx = Take();
  EXPECT_EQ(fx.replies.size(), 3u);
  for (uint64_t token : {2, 3, 4}) {
    auto r = CommitReply(fx, token);
    EXPECT_EQ(r.status.code, proto::Code::OK);
    EXPECT_EQ(r.outcome, proto::Outcome::COMMITTED) << token;
  }
  EXPECT_EQ(Decisions(fx, proto::Outcome::COMMITTED).size(), 2u);  // sent once, not per caller
}

TEST_F(CommitDriverTest, DuplicateCommitWhileVotingIsAbortedWithTheFirst) {
  TxId t = Begin();
  Commit(2, t, {kA});
  Take();
  Commit(3, t, {kA});
  Vote(t, 0, VoteOf(proto::Vote::NO, "no branch"));
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::ABORTED);
}

TEST_F(CommitDriverTest, CommitRetriedAfterDecisionOrEndStillAnswersCommitted) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  Choose(decide);
  Take();
  Commit(3, t, {kA});  // completing: answered at once
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(fx.calls.empty());
  Ack(t, 0);
  fx = TakeAndChoose();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(driver_.active_count(), 0u);

  // After END the driver forgot the txn; the table remembers.
  Commit(4, t, {kA});
  proto::SubmitRequest submit;
  submit.txid = t;
  driver_.OnSubmit(5, submit, now_);
  fx = Take();
  for (uint64_t token : {4, 5}) {
    auto r = CommitReply(fx, token);
    EXPECT_EQ(r.status.code, proto::Code::OK) << token;
    EXPECT_EQ(r.outcome, proto::Outcome::COMMITTED) << token;
  }
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_TRUE(fx.proposals.empty());
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::COMMITTED);
}

TEST_F(CommitDriverTest, CommitRetriedAfterAbortAnswersAborted) {
  TxId t = Begin();
  Commit(2, t, {kA});
  Take();
  Vote(t, 0, VoteOf(proto::Vote::NO, "no branch"));
  Take();
  Commit(3, t, {kA});
  DriverEffects fx = Take();
  auto r = CommitReply(fx, 3);
  EXPECT_EQ(r.status.code, proto::Code::OK);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_FALSE(r.reason.empty());
  EXPECT_TRUE(Prepares(fx).empty());  // no second round
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), Participants{kA});  // told again
}

TEST_F(CommitDriverTest, CommitOfATxidNeverBegunIsInvalidArgument) {
  Begin();
  Commit(2, MakeTxId(kEpoch, 2), {kA});
  DriverEffects fx = Take();
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_EQ(r.outcome, proto::Outcome::UNKNOWN);
  EXPECT_TRUE(fx.calls.empty());
}

// A newer leader allocated it: this leader was deposed without knowing yet,
// and the client must go to the newer one.
TEST_F(CommitDriverTest, CommitOrAbortOfANewerEpochsTxidIsNotLeader) {
  Begin();
  Commit(2, MakeTxId(kEpoch + 1, 1), {kA});
  Abort(3, MakeTxId(kEpoch + 1, 1), {kA});
  proto::SubmitRequest submit;
  submit.txid = MakeTxId(kEpoch + 2, 4);
  driver_.OnSubmit(4, submit, now_);
  DriverEffects fx = Take();
  for (uint64_t token : {2, 3, 4}) {
    auto r = CommitReply(fx, token);
    EXPECT_EQ(r.status.code, proto::Code::NOT_LEADER) << token;
    EXPECT_EQ(r.outcome, proto::Outcome::UNKNOWN) << token;
  }
  EXPECT_TRUE(fx.calls.empty());
}

TEST_F(CommitDriverTest, CommitWithAnInvalidParticipantIsRefusedAndTheTxnStaysOpen) {
  TxId t = Begin();
  Commit(2, t, {kA, Participant("bank_b", "")});
  DriverEffects fx = Take();
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_EQ(r.outcome, proto::Outcome::PENDING);
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);
  Commit(3, t, {kA});
  EXPECT_EQ(Prepares(Take()).size(), 1u);
}

// max_participants: a Commit or Submit naming more distinct participants is
// refused before any PREPARE goes out, naming the count and the limit; the
// transaction stays open (a shorter Commit, or an Abort, still works).
// Repeated participants count once.
TEST(CommitDriverLimitTest, CommitOrSubmitWithTooManyParticipantsIsRefusedAndChangesNothing) {
  DriverOptions o = TestOptions();
  o.max_participants = 2;
  TxnTable table;
  CommitDriver driver(&table, o);
  table.Apply(1, MakeEpoch(kEpoch));
  driver.BecomeLeader(kEpoch, kT0);
  auto begin = [&](uint64_t token) {
    driver.OnBegin(token, proto::BeginRequest(), kT0);
    return std::get<proto::BeginResponse>(driver.TakeEffects().replies.at(0).response).txid;
  };
  TxId t = begin(1);
  proto::CommitRequest commit;
  commit.txid = t;
  commit.participants = {kA, kB, kC};
  driver.OnCommit(2, commit, kT0);
  DriverEffects fx = driver.TakeEffects();
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(r.status.message.find("CommitRequest.participants names 3 distinct participants; at "
                                  "most 2 take part in one transaction"),
            std::string::npos)
      << r.status.message;
  EXPECT_EQ(r.outcome, proto::Outcome::PENDING);
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_TRUE(fx.proposals.empty());

  proto::SubmitRequest submit;
  submit.txid = begin(3);
  for (const auto& p : {kA, kB, kC}) {
    proto::Branch b;
    b.participant = p;
    b.statements = {Sql("UPDATE accounts SET balance = 0")};
    submit.branches.push_back(b);
  }
  driver.OnSubmit(4, submit, kT0);
  fx = driver.TakeEffects();
  r = CommitReply(fx, 4);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(r.status.message.find("SubmitRequest.branches names 3 distinct participants"),
            std::string::npos)
      << r.status.message;
  EXPECT_TRUE(fx.calls.empty());

  // The refused transaction still commits with fewer; duplicates count once.
  commit.participants = {kA, kB, kA};
  driver.OnCommit(5, commit, kT0);
  EXPECT_EQ(Prepares(driver.TakeEffects()).size(), 2u);
}

TEST(CommitDriverLimitTest, DefaultMatchesTheWireLimit) {
  EXPECT_EQ(DriverOptions().max_participants, validate::kMaxParticipants);
}

// ------------------------------------------------------- operator resolve

proto::ResolveRequest ResolveReq(const TxId& txid, proto::Outcome::type outcome) {
  proto::ResolveRequest r;
  r.txid = txid;
  r.outcome = outcome;
  r.reason = "bank_b's disk is gone";
  r.who = "alice";
  return r;
}

TEST_F(CommitDriverTest, OperatorAbortOfAVotingTransactionIsChosenAsResolveThenDelivered) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  driver_.OnResolve(5, ResolveReq(t, proto::Outcome::ABORTED), now_);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::RESOLVE);
  EXPECT_EQ(fx.proposals[0].outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(fx.proposals[0].who, "alice");
  EXPECT_NE(fx.proposals[0].reason.find("bank_b's disk is gone"), std::string::npos);
  EXPECT_TRUE(fx.replies.empty());  // nobody hears before it is chosen
  EXPECT_TRUE(fx.calls.empty());
  // A YES arriving meanwhile decides nothing, and no vote timeout fires.
  Vote(t, 1, kYes);
  driver_.Tick(now_ + 10 * kSeconds);
  EXPECT_TRUE(Take().proposals.empty());
  Choose(fx.proposals[0]);
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 5).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::ABORTED);  // the client's Commit too
  auto aborts = Decisions(fx, proto::Outcome::ABORTED);
  ASSERT_EQ(aborts.size(), 2u);
  for (const auto& a : aborts) EXPECT_TRUE(a.want_ack);  // durable decision: acked, then END
  Ack(t, 0);
  Ack(t, 1);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(table_.Find(t)->heuristic);  // recorded as the operator's
}

TEST_F(CommitDriverTest, OperatorAbortLeavesOutAReadOnlyVoter) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  proto::PrepareResponse ro;
  ro.vote = proto::Vote::READ_ONLY;
  Vote(t, 1, ro);  // bank_b only read: released, out of phase 2
  driver_.OnResolve(5, ResolveReq(t, proto::Outcome::ABORTED), now_);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].participants, (Participants{kA}));
  Choose(fx.proposals[0]);
  fx = Take();
  auto aborts = Decisions(fx, proto::Outcome::ABORTED);
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_EQ(aborts[0].to, kA);
  Ack(t, 0);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);  // END: the read-only voter is not waited for
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
}

TEST_F(CommitDriverTest, ResolveIsRefusedNamingTheDecisionOnceDecided) {
  auto refused = [&](const TxId& t, proto::Outcome::type want, const std::string& says) {
    driver_.OnResolve(9, ResolveReq(t, want), now_);
    DriverEffects fx = Take();
    EXPECT_TRUE(fx.proposals.empty());
    auto r = CommitReply(fx, 9);
    EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
    EXPECT_NE(r.status.message.find(says), std::string::npos) << r.status.message;
  };
  // Being decided committed (every YES in), then decided and delivering.
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  refused(t, proto::Outcome::ABORTED, "being decided committed");
  Choose(decide);
  Take();
  refused(t, proto::Outcome::ABORTED, "already decided: committed");
  // Ended and no longer driven: the table still knows.
  Ack(t, 0);
  Ack(t, 1);
  TakeAndChoose();
  refused(t, proto::Outcome::ABORTED, "already decided: committed");
  // Aborted by a NO vote (presumed abort: nothing logged).
  TxId no = Begin();
  Commit(3, no, {kA});
  Take();
  proto::PrepareResponse nay;
  nay.vote = proto::Vote::NO;
  Vote(no, 0, nay);
  Take();
  refused(no, proto::Outcome::ABORTED, "already decided: aborted");
  // A commit cannot be forced while votes are missing, nor before Commit.
  TxId voting = Begin();
  Commit(4, voting, {kA, kB});
  Take();
  Vote(voting, 0, kYes);
  refused(voting, proto::Outcome::COMMITTED, "no vote yet from bank_b");
  TxId active = Begin();
  refused(active, proto::Outcome::COMMITTED, "has not asked to commit");
  // Never allocated.
  refused(MakeTxId(kEpoch, 9999), proto::Outcome::ABORTED, "never allocated");
  // A follower sends the operator to the leader.
  driver_.StepDown("10.0.0.9:7000");
  driver_.OnResolve(9, ResolveReq(voting, proto::Outcome::ABORTED), now_);
  EXPECT_EQ(CommitReply(Take(), 9).status.code, proto::Code::NOT_LEADER);
}

// ------------------------------------------------------ stuck and retry now

TEST_F(CommitDriverTest, UndeliveredDecisionIsFlaggedStuckWithItsLastErrorAndReportedOncePerInterval) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  const Micros decided = now_;
  Take();
  Ack(t, 0);
  driver_.OnAck(t, 1, Status::Timeout("deadline exceeded calling bank_b"), decided + 5 * kSeconds);

  // Not yet: stuck_after (60 s) has not passed since the decision.
  driver_.Tick(decided + 60 * kSeconds - 1);
  EXPECT_TRUE(Take().stuck.empty());
  auto view = driver_.ActiveTxns(decided + 60 * kSeconds - 1);
  ASSERT_EQ(view.size(), 1u);
  EXPECT_FALSE(view[0].stuck);
  EXPECT_EQ(view[0].decided_at, decided);

  driver_.Tick(decided + 60 * kSeconds);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.stuck.size(), 1u);
  EXPECT_EQ(fx.stuck[0].txid, t);
  EXPECT_EQ(fx.stuck[0].outcome, proto::Outcome::COMMITTED);
  EXPECT_NE(fx.stuck[0].ToString().find("bank_b"), std::string::npos) << fx.stuck[0].ToString();
  EXPECT_NE(fx.stuck[0].ToString().find("deadline exceeded"), std::string::npos);
  EXPECT_EQ(fx.stuck[0].ToString().find("bank_a"), std::string::npos);  // bank_a acked
  view = driver_.ActiveTxns(decided + 60 * kSeconds);
  EXPECT_TRUE(view[0].stuck);
  ASSERT_EQ(view[0].attempts.size(), 2u);
  EXPECT_EQ(view[0].attempts[0], 1u);
  EXPECT_GE(view[0].attempts[1], 2u);  // the first send, and the resends since
  EXPECT_EQ(view[0].last_error[0], "");
  EXPECT_NE(view[0].last_error[1].find("deadline exceeded"), std::string::npos);
  ASSERT_EQ(view[0].votes.size(), 2u);
  EXPECT_EQ(view[0].votes[1], proto::Vote::YES);

  // Reported again only after another interval.
  driver_.Tick(decided + 119 * kSeconds);
  EXPECT_TRUE(Take().stuck.empty());
  driver_.Tick(decided + 120 * kSeconds);
  EXPECT_EQ(Take().stuck.size(), 1u);

  // Delivered: no longer stuck, and it ends.
  driver_.OnAck(t, 1, Status::Ok(), decided + 121 * kSeconds);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  EXPECT_FALSE(driver_.ActiveTxns(decided + 121 * kSeconds)[0].stuck);
}

TEST_F(CommitDriverTest, OnlyRefusalsLeftIsAHazardNotStuck) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  Take();
  Ack(t, 0);
  driver_.OnAck(t, 1, Status::Internal("branch 1.1 on bank_b is aborted here; refusing to commit it"),
                now_);
  EXPECT_EQ(driver_.hazard_count(), 1u);
  driver_.Tick(now_ + 61 * kSeconds);
  EXPECT_TRUE(Take().stuck.empty());
  EXPECT_FALSE(driver_.ActiveTxns(now_ + 61 * kSeconds)[0].stuck);
}

TEST_F(CommitDriverTest, RetryNowResendsAtOnceToWhoeverHasNotAckedAndResetsTheBackoff) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  Take();
  Ack(t, 0);
  // Many failures: bank_b's backoff is at resend_max, its next send far off.
  Micros at = now_;
  for (int i = 0; i < 6; ++i) {
    driver_.OnAck(t, 1, Status::Unavailable("down"), at);
    at += 10 * kMillis;
  }
  Take();
  EXPECT_EQ(driver_.RetryNow(t, at), 1u);
  DriverEffects fx = Take();
  auto commits = Decisions(fx, proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 1u);
  EXPECT_EQ(commits[0].to, kB);
  // The backoff started over: a failure now waits resend_initial (50 ms).
  driver_.OnAck(t, 1, Status::Unavailable("still down"), at);
  driver_.Tick(at + 50 * kMillis);
  EXPECT_EQ(Decisions(Take(), proto::Outcome::COMMITTED).size(), 1u);

  // Every transaction being delivered, or none: a txid not driven here, a
  // transaction still voting, and a follower retry nothing.
  TxId voting = Begin(7);
  Commit(8, voting, {kA});
  Take();
  EXPECT_EQ(driver_.RetryNow(std::nullopt, at), 1u);
  EXPECT_EQ(Decisions(Take(), proto::Outcome::COMMITTED).size(), 1u);
  EXPECT_EQ(driver_.RetryNow(MakeTxId(kEpoch, 999), at), 0u);
  EXPECT_EQ(driver_.RetryNow(voting, at), 0u);
  driver_.StepDown("");
  EXPECT_EQ(driver_.RetryNow(std::nullopt, at), 0u);
}

// --------------------------------------------------------- resending COMMIT

TEST_F(CommitDriverTest, CommitIsResentWithBackoffAfterFailedAcks) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  Take();
  Ack(t, 0);
  const Micros t1 = now_ + 10 * kMillis;
  driver_.OnAck(t, 1, Status::Unavailable("connection reset"), t1);
  driver_.Tick(t1 + 50 * kMillis - 1);
  EXPECT_TRUE(Take().empty());
  driver_.Tick(t1 + 50 * kMillis);
  DriverEffects fx = Take();
  auto commits = Decisions(fx, proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 1u);  // bank_a acked: not resent
  EXPECT_EQ(commits[0].to, kB);
  EXPECT_EQ(commits[0].index, 1u);
  EXPECT_TRUE(commits[0].want_ack);
  EXPECT_TRUE(fx.proposals.empty());

  // The second failure waits twice as long.
  const Micros t2 = t1 + 100 * kMillis;
  driver_.OnAck(t, 1, Status::Timeout("deadline exceeded"), t2);
  driver_.Tick(t2 + 100 * kMillis - 1);
  EXPECT_TRUE(Take().empty());
  driver_.Tick(t2 + 100 * kMillis);
  EXPECT_EQ(Decisions(Take(), proto::Outcome::COMMITTED).size(), 1u);

  // ... and the backoff stops growing at resend_max (400 ms here).
  Micros t3 = t2 + 200 * kMillis;
  for (int i = 0; i < 5; ++i) {
    driver_.OnAck(t, 1, Status::Unavailable("down"), t3);
    driver_.Tick(t3 + 400 * kMillis);
    EXPECT_EQ(Decisions(Take(), proto::Outcome::COMMITTED).size(), 1u) << i;
    t3 += 500 * kMillis;
  }
  driver_.OnAck(t, 1, Status::Unavailable("down"), t3);
  driver_.Tick(t3 + 400 * kMillis - 1);
  EXPECT_TRUE(Take().empty());

  // Delivered at last: END, and no more resends.
  Ack(t, 1);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  driver_.Tick(t3 + 10 * kSeconds);
  EXPECT_TRUE(Take().empty());
}

TEST_F(CommitDriverTest, CommitIsResentWhenNeitherAckNorFailureComesBack) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  Choose(decide);
  Take();
  // The shell's call deadline plus the first backoff.
  driver_.Tick(now_ + 5 * kSeconds + 50 * kMillis - 1);
  EXPECT_TRUE(Take().empty());
  driver_.Tick(now_ + 5 * kSeconds + 50 * kMillis);
  auto commits = Decisions(Take(), proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 1u);
  EXPECT_EQ(commits[0].txid, t);
}

// ---------------------------------------------------------------- outcomes

TEST_F(CommitDriverTest, OutcomeIsPendingUntilTheDecisionIsChosen) {
  TxId t = Begin();
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);  // begun
  Commit(2, t, {kA});
  Take();
  auto o = Outcome(t);
  EXPECT_EQ(o.status.code, proto::Code::OK);
  EXPECT_EQ(o.outcome, proto::Outcome::PENDING);  // voting
  Vote(t, 0, kYes);
  DriverEffects fx = Take();
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);  // deciding
  Choose(fx.proposals[0]);
  Take();
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::COMMITTED);  // completing
}

TEST_F(CommitDriverTest, OutcomeOfAnOlderEpochTxidUnknownToTheTableIsAborted) {
  auto o = Outcome(MakeTxId(kEpoch - 1, 12));
  EXPECT_EQ(o.status.code, proto::Code::OK);
  EXPECT_EQ(o.outcome, proto::Outcome::ABORTED);
}

TEST_F(CommitDriverTest, OutcomeOfAnOlderEpochTxidInTheTableIsItsDecision) {
  // Decided and ended in this epoch, before the next leader's marker...
  TxId old = MakeTxId(kEpoch, 12);
  Choose(MakeDecide(old, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Choose(MakeEnd(old));
  (void)Take();
  BecomeLeader(kEpoch + 1);  // ... and asked about under the next leadership.
  auto o = Outcome(old);
  EXPECT_EQ(o.status.code, proto::Code::OK);
  EXPECT_EQ(o.outcome, proto::Outcome::COMMITTED);
  // ... and a client retrying that commit hears the same.
  Commit(3, old, {kA});
  EXPECT_EQ(CommitReply(Take(), 3).outcome, proto::Outcome::COMMITTED);
}

TEST_F(CommitDriverTest, OutcomeOfAnAllocatedButAbortedTxidIsAborted) {
  TxId t = Begin();
  Abort(2, t);
  Take();
  auto o = Outcome(t);
  EXPECT_EQ(o.status.code, proto::Code::OK);
  EXPECT_EQ(o.outcome, proto::Outcome::ABORTED);
}

// Issue 8, 4d: "unknown" to a newer leader's txid made an agent roll back an
// ACTIVE branch the newer leader could still commit.
// An outcome query about a txid of a newer epoch waits for an epoch barrier
// (CommitDriver::AwaitEpochBarrier): no answer until a NOOP this leader
// proposed after the query is chosen; then "never allocated" if no newer
// EPOCH marker came before it in the log.
class EpochBarrierTest : public CommitDriverTest {
 protected:
  proto::OutcomeRequest Query(const TxId& t) {
    proto::OutcomeRequest req;
    req.txid = t;
    return req;
  }
  // The barrier among `fx`'s proposals (fails the test if there is none).
  proto::Command BarrierOf(const DriverEffects& fx) {
    for (const auto& c : fx.proposals) {
      if (IsEpochBarrier(c)) return c;
    }
    ADD_FAILURE() << "no epoch barrier proposed";
    return proto::Command();
  }
  void ChooseNoop(const proto::Command& cmd) {
    table_.Apply(++index_, cmd);
    driver_.OnNoopApplied(cmd, now_);
  }
  std::map<uint64_t, proto::OutcomeResponse> Replies(const DriverEffects& fx) {
    std::map<uint64_t, proto::OutcomeResponse> out;
    for (const auto& r : fx.replies) out[r.token] = std::get<proto::OutcomeResponse>(r.response);
    return out;
  }
};

TEST_F(EpochBarrierTest, ANewerEpochsTxidIsNeverAllocatedOnceABarrierOfThisEpochIsChosen) {
  Begin();
  for (TxId t : {MakeTxId(kEpoch + 1, 1), MakeTxId(kEpoch + 5, 9)}) {
    driver_.OnOutcome(11, Query(t), now_);
    DriverEffects fx = Take();
    EXPECT_TRUE(fx.replies.empty()) << "answered before the barrier was chosen";
    ASSERT_EQ(fx.proposals.size(), 1u);
    proto::Command barrier = BarrierOf(fx);
    EXPECT_EQ(barrier.epoch, kEpoch);
    EXPECT_EQ(table_.unended_count(), 0u);
    ChooseNoop(barrier);
    auto replies = Replies(Take());
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[11].status.code, proto::Code::INVALID_ARGUMENT) << ToString(t);
    EXPECT_EQ(replies[11].outcome, proto::Outcome::UNKNOWN) << ToString(t);
    EXPECT_NE(replies[11].status.message.find("never allocated"), std::string::npos);
  }
}

TEST_F(EpochBarrierTest, ANewerEpochMarkerBeforeTheBarrierMeansNotLeaderNeverUnknown) {
  driver_.OnOutcome(11, Query(MakeTxId(kEpoch + 1, 1)), now_);
  proto::Command barrier = BarrierOf(Take());
  // A newer leader's marker is chosen first: it may have allocated the txid.
  table_.Apply(++index_, MakeEpoch(kEpoch + 1));
  ChooseNoop(barrier);
  auto replies = Replies(Take());
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[11].status.code, proto::Code::NOT_LEADER);
  EXPECT_NE(replies[11].outcome, proto::Outcome::ABORTED);
}

TEST_F(EpochBarrierTest, AQueryAfterTheBarrierWasProposedWaitsForTheNextOne) {
  driver_.OnOutcome(11, Query(MakeTxId(kEpoch + 1, 1)), now_);
  proto::Command first = BarrierOf(Take());
  driver_.OnOutcome(12, Query(MakeTxId(kEpoch + 2, 1)), now_);
  EXPECT_TRUE(Take().proposals.empty()) << "one barrier in flight at a time";
  ChooseNoop(first);
  DriverEffects fx = Take();
  auto replies = Replies(fx);
  ASSERT_EQ(replies.size(), 1u) << "the later query is not covered by the first barrier";
  EXPECT_EQ(replies.count(11), 1u);
  proto::Command second = BarrierOf(fx);
  // Another NOOP (txbench's, or an older leadership's barrier) settles nothing.
  proto::Command other = MakeEpochBarrier(kEpoch - 1);
  ChooseNoop(other);
  EXPECT_TRUE(Take().replies.empty());
  ChooseNoop(second);
  replies = Replies(Take());
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[12].status.code, proto::Code::INVALID_ARGUMENT);
}

TEST_F(EpochBarrierTest, SteppingDownOrALogFailureAnswersTheWaitingQueries) {
  driver_.OnOutcome(11, Query(MakeTxId(kEpoch + 1, 1)), now_);
  proto::Command barrier = BarrierOf(Take());
  driver_.StepDown("10.0.0.9:7000");
  auto replies = Replies(Take());
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[11].status.code, proto::Code::NOT_LEADER);
  ChooseNoop(barrier);  // chosen after all: nobody is waiting any more
  EXPECT_TRUE(Take().replies.empty());

  BecomeLeader(kEpoch + 2);
  Take();
  driver_.OnOutcome(13, Query(MakeTxId(kEpoch + 3, 1)), now_);
  proto::Command b2 = BarrierOf(Take());
  driver_.OnProposalFailed(b2, Status::StorageFailed("EIO"), now_);
  replies = Replies(Take());
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[13].status.code, proto::Code::UNAVAILABLE);
  EXPECT_EQ(replies[13].outcome, proto::Outcome::UNKNOWN);
}

TEST_F(CommitDriverTest, OutcomeOfANeverAllocatedTxidIsUnknownAndInvalid) {
  Begin();
  for (TxId t : {MakeTxId(kEpoch, 2), MakeTxId(kEpoch, 0)}) {
    auto o = Outcome(t);
    EXPECT_EQ(o.status.code, proto::Code::INVALID_ARGUMENT) << ToString(t);
    EXPECT_EQ(o.outcome, proto::Outcome::UNKNOWN) << ToString(t);
  }
}

// ---------------------------------------------------------------- timeouts

TEST_F(CommitDriverTest, TxnTimeoutAbortsABegunButNeverCommittedTxn) {
  TxId t = Begin();
  driver_.Tick(now_ + 60 * kSeconds - 1);
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(driver_.active_count(), 1u);
  driver_.Tick(now_ + 60 * kSeconds);
  EXPECT_EQ(driver_.active_count(), 0u);
  EXPECT_TRUE(Take().proposals.empty());
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::ABORTED);
  Commit(2, t, {kA});
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(Prepares(fx).empty());
  // Its branch at kA may be ACTIVE still, holding locks: it is told.
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), Participants{kA});
}

TEST_F(CommitDriverTest, BeginTimeoutOverridesTheDefault) {
  proto::BeginRequest req;
  req.__set_timeout_ms(100);
  driver_.OnBegin(1, req, now_);
  TxId t = std::get<proto::BeginResponse>(Take().replies.at(0).response).txid;
  driver_.Tick(now_ + 100 * kMillis - 1);
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);
  driver_.Tick(now_ + 100 * kMillis);
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::ABORTED);
}

TEST_F(CommitDriverTest, CommittingInTimeStopsTheTxnTimeout) {
  TxId t = Begin();
  now_ += 59 * kSeconds;
  Commit(2, t, {kA});
  Take();
  Vote(t, 0, kYes);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  driver_.Tick(now_ + 2 * kSeconds);  // past the txn timeout, within the vote timeout
  EXPECT_TRUE(Take().empty());
  Choose(fx.proposals[0]);
  EXPECT_EQ(CommitReply(Take(), 2).outcome, proto::Outcome::COMMITTED);
}

// ------------------------------------------------------------ client abort

TEST_F(CommitDriverTest, ClientAbortOfAnActiveTxnTellsTheNamedParticipants) {
  TxId t = Begin();
  Abort(2, t, {kA, kB, kA});
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::OK);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(r.reason, "rolled back by the client");
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), (Participants{kA, kB}));
  EXPECT_EQ(driver_.active_count(), 0u);
  // A commit that comes after is too late.
  Commit(3, t, {kA, kB});
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(Prepares(fx).empty());
}

TEST_F(CommitDriverTest, ClientAbortCarriesItsReason) {
  TxId t = Begin();
  Abort(2, t, {kA}, "insufficient funds");
  EXPECT_EQ(CommitReply(Take(), 2).reason, "insufficient funds");
}

TEST_F(CommitDriverTest, ClientAbortWhileVotingAnswersBothCallers) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  Abort(3, t, {kC});
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.proposals.empty());
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), (Participants{kA, kB, kC}));
  Vote(t, 1, kYes);
  EXPECT_TRUE(Take().empty());
}

TEST_F(CommitDriverTest, ClientAbortWhileDecidingLearnsTheDecision) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  Abort(3, t, {kA});
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.empty());  // too late to abort, too early to tell
  Choose(decide);
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(Decisions(fx, proto::Outcome::ABORTED).empty());
}

TEST_F(CommitDriverTest, ClientAbortAfterCommitIsRefused) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  Choose(decide);
  Take();
  Abort(3, t, {kA});
  DriverEffects fx = Take();
  auto r = CommitReply(fx, 3);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_EQ(r.outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(Decisions(fx, proto::Outcome::ABORTED).empty());
  Ack(t, 0);
  TakeAndChoose();
  ASSERT_EQ(driver_.active_count(), 0u);
  Abort(4, t, {kA});  // after END: the table still says committed
  fx = Take();
  r = CommitReply(fx, 4);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_EQ(r.outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(fx.calls.empty());
}

TEST_F(CommitDriverTest, RepeatedClientAbortLeavesTombstonesAndAnswersAborted) {
  TxId t = Begin();
  Abort(2, t, {kA});
  Take();
  Abort(3, t, {kA, kB});
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), (Participants{kA, kB}));
  // An older epoch's undecided txid is aborted for good, too.
  Abort(4, MakeTxId(kEpoch - 1, 3), {kA});
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 4).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), Participants{kA});
}

TEST_F(CommitDriverTest, ClientAbortOfATxidNeverAllocatedHereSendsNoAbort) {
  // A leader that has not yet heard it was deposed (epoch 7) gets an abort
  // for a txid of the new leader (epoch 8), whose branches may already be
  // PREPARED: telling them ABORT could break atomicity if epoch 8 commits.
  Abort(2, MakeTxId(kEpoch + 1, 1), {kA, kB});
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.calls.empty());
  auto r = CommitReply(fx, 2);
  EXPECT_NE(r.status.code, proto::Code::OK);
  EXPECT_NE(r.outcome, proto::Outcome::ABORTED);
  // Nor for one of its own epoch not allocated yet.
  Abort(3, MakeTxId(kEpoch, 1), {kA});
  fx = Take();
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_NE(CommitReply(fx, 3).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(Begin(), MakeTxId(kEpoch, 1));
}

// ---------------------------------------------------------------- one-shot

TEST_F(CommitDriverTest, SubmitSendsTheWorkWithPrepareMergingBranchesOfOneParticipant) {
  TxId t = Begin();
  proto::SubmitRequest req;
  req.txid = t;
  auto branch = [](const proto::Participant& p, std::vector<proto::Statement> s) {
    proto::Branch b;
    b.participant = p;
    b.statements = std::move(s);
    return b;
  };
  req.branches = {branch(kA, {Sql("UPDATE a SET x = x - 1")}), branch(kB, {Sql("UPDATE b SET y = y + 1")}),
                  branch(kA, {Sql("INSERT INTO log VALUES (1)")})};
  driver_.OnSubmit(2, req, now_);
  DriverEffects fx = Take();
  auto prepares = Prepares(fx);
  ASSERT_EQ(prepares.size(), 2u);
  EXPECT_EQ(Targets(prepares), (Participants{kA, kB}));
  ASSERT_TRUE(prepares[0].prepare->__isset.work);
  ASSERT_EQ(prepares[0].prepare->work.size(), 2u);
  EXPECT_EQ(prepares[0].prepare->work[0].sql, "UPDATE a SET x = x - 1");
  EXPECT_EQ(prepares[0].prepare->work[1].sql, "INSERT INTO log VALUES (1)");
  ASSERT_EQ(prepares[1].prepare->work.size(), 1u);
  EXPECT_EQ(prepares[1].prepare->work[0].sql, "UPDATE b SET y = y + 1");
  EXPECT_EQ(prepares[1].prepare->participants, (Participants{kA, kB}));

  Vote(t, 0, kYes);
  Vote(t, 1, kYes);
  fx = TakeAndChoose();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].participants, (Participants{kA, kB}));
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(Decisions(fx, proto::Outcome::COMMITTED).size(), 2u);
}

TEST_F(CommitDriverTest, SubmitWithABranchWithoutAddressIsRefused) {
  TxId t = Begin();
  proto::SubmitRequest req;
  req.txid = t;
  proto::Branch b;
  b.participant = Participant("bank_a", "");
  req.branches = {b};
  driver_.OnSubmit(2, req, now_);
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);
}

TEST_F(CommitDriverTest, RetriedSubmitWaitsForTheSameDecision) {
  TxId t = Begin();
  proto::SubmitRequest req;
  req.txid = t;
  proto::Branch b;
  b.participant = kA;
  b.statements = {Sql("UPDATE a SET x = 1")};
  req.branches = {b};
  driver_.OnSubmit(2, req, now_);
  EXPECT_EQ(Prepares(Take()).size(), 1u);
  driver_.OnSubmit(3, req, now_);
  EXPECT_TRUE(Take().empty());  // the work is not sent twice
  Vote(t, 0, kYes);
  TakeAndChoose();
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::COMMITTED);
}

TEST_F(CommitDriverTest, SubmitOfATxidNeverBegunIsInvalidArgument) {
  proto::SubmitRequest req;
  req.txid = MakeTxId(kEpoch, 5);
  proto::Branch b;
  b.participant = kA;
  req.branches = {b};
  driver_.OnSubmit(2, req, now_);
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(fx.calls.empty());
}

// ---------------------------------------------------------- new leadership

// --------------------------------------------------------------- counters

TEST_F(CommitDriverTest, CountersCountEachSettledTransactionOnce) {
  // Committed: counted when the DECIDE is chosen, not when proposed, and a
  // retried commit or the END does not count it again.
  proto::Command decide;
  TxId c = BeginAndVoteYes({kA}, 1, &decide);
  EXPECT_EQ(driver_.counters().committed, 0u);
  Choose(decide);
  Take();
  EXPECT_EQ(driver_.counters().committed, 1u);
  Commit(2, c, {kA});
  Take();
  Ack(c, 0);
  TakeAndChoose();  // END
  EXPECT_EQ(driver_.counters().committed, 1u);

  // Aborted: a NO vote, a timeout, a client's rollback; each once.
  TxId no = Begin();
  Commit(3, no, {kA, kB});
  Take();
  Vote(no, 0, VoteOf(proto::Vote::NO, "constraint"));
  Vote(no, 1, kYes);  // late, ignored
  Take();
  TxId timed_out = Begin();
  driver_.Tick(now_ + 61 * kSeconds);
  Take();
  TxId rolled_back = Begin();
  Abort(4, rolled_back, {kA});
  Abort(5, rolled_back, {kA});  // already aborted: answered, not counted
  Take();
  EXPECT_EQ(driver_.counters().aborted, 3u);
  EXPECT_EQ(driver_.counters().committed, 1u);
  EXPECT_EQ(driver_.counters().begun, 4u);
  (void)timed_out;

  // An operator's RESOLVE of a transaction this leader drives counts by its outcome.
  TxId r = Begin();
  proto::Command resolve =
      MakeDecide(r, proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, "resolved by alice");
  resolve.type = proto::CommandType::RESOLVE;
  Choose(resolve);
  Take();
  EXPECT_EQ(driver_.counters().aborted, 4u);

  // A new leader finishing an earlier leader's decision does not count it.
  TxId old = MakeTxId(kEpoch, 90);
  Choose(MakeDecide(old, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  driver_.StepDown("");
  BecomeLeader(kEpoch + 1);
  Take();
  EXPECT_EQ(driver_.counters().committed, 1u);
}

TEST_F(CommitDriverTest, NewLeaderFinishesADecidedUnendedCommit) {
  // Epoch 7 decided 7.3 and died before END.
  TxId t = MakeTxId(kEpoch, 3);
  Choose(MakeDecide(t, proto::Outcome::COMMITTED, {kA, kB}, proto::Protocol::TWO_PC, ""));
  Choose(MakeDecide(MakeTxId(kEpoch, 4), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Choose(MakeEnd(MakeTxId(kEpoch, 4)));
  driver_.StepDown("");
  Take();

  BecomeLeader(kEpoch + 1);
  DriverEffects fx = Take();
  auto commits = Decisions(fx, proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 2u);  // the ended 7.4 is left alone
  EXPECT_EQ(Targets(commits), (Participants{kA, kB}));
  for (const auto& c : commits) {
    EXPECT_EQ(c.txid, t);
    EXPECT_TRUE(c.want_ack);
  }
  EXPECT_TRUE(fx.proposals.empty());
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::COMMITTED);

  driver_.OnAck(t, 0, Status::Unavailable("down"), now_);
  driver_.Tick(now_ + 50 * kMillis);
  EXPECT_EQ(Targets(Decisions(Take(), proto::Outcome::COMMITTED)), Participants{kA});
  Ack(t, 1);
  EXPECT_TRUE(Take().proposals.empty());
  Ack(t, 0);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  Choose(fx.proposals[0]);
  EXPECT_EQ(driver_.active_count(), 0u);
  EXPECT_EQ(table_.unended_count(), 0u);
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::COMMITTED);
}

TEST_F(CommitDriverTest, NewLeaderDeliversAnOperatorsAbortUntilAcked) {
  TxId t = MakeTxId(kEpoch, 2);
  proto::Command resolve =
      MakeDecide(t, proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, "resolved by alice");
  resolve.type = proto::CommandType::RESOLVE;
  Choose(resolve);
  driver_.StepDown("");
  BecomeLeader(kEpoch + 1);
  DriverEffects fx = Take();
  auto aborts = Decisions(fx, proto::Outcome::ABORTED);
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_TRUE(aborts[0].want_ack);  // decided, so delivered until acked
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::ABORTED);
  // The client's commit, retried meanwhile, names a branch the operator did
  // not: that one is told ABORTED too (kA is being told already).
  Commit(5, t, {kA, kB});
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 5).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), Participants{kB});
  Ack(t, 0);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
}

TEST_F(CommitDriverTest, OlderEpochsUndecidedTxidsAreAbortedForTheNewLeader) {
  TxId t = Begin();
  Commit(2, t, {kA});
  Take();
  driver_.StepDown("10.0.0.2:7000");
  Take();
  BecomeLeader(kEpoch + 1);
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::ABORTED);
  Commit(3, t, {kA});
  EXPECT_EQ(CommitReply(Take(), 3).outcome, proto::Outcome::ABORTED);
  Vote(t, 0, kYes);  // the old leadership's vote: nobody listens
  EXPECT_TRUE(Take().empty());
}

// --------------------------------------------------------- log failures

TEST_F(CommitDriverTest, ProposalFailureAnswersUnavailableAndStopsServing) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  Commit(3, t, {kA});
  driver_.OnProposalFailed(decide, Status::StorageFailed("fsync failed"), now_);
  DriverEffects fx = Take();
  for (uint64_t token : {2, 3}) {
    auto r = CommitReply(fx, token);
    EXPECT_EQ(r.status.code, proto::Code::UNAVAILABLE) << token;
    EXPECT_EQ(r.outcome, proto::Outcome::UNKNOWN) << token;
    EXPECT_NE(r.status.message.find("fsync failed"), std::string::npos) << r.status.message;
  }
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_FALSE(driver_.serving());
  EXPECT_EQ(driver_.active_count(), 0u);

  // It answers nothing any more: not even what it might know.
  driver_.OnBegin(4, proto::BeginRequest(), now_);
  EXPECT_EQ(ReplyTo<proto::BeginResponse>(Take(), 4).status.code, proto::Code::UNAVAILABLE);
  EXPECT_EQ(Outcome(t).status.code, proto::Code::UNAVAILABLE);
  // Even if the record turns out to have been chosen, COMMIT goes out only
  // from the next leadership.
  Choose(decide);
  driver_.Tick(now_ + 10 * kSeconds);
  EXPECT_TRUE(Take().empty());
}

// Every waiter is told about its own transaction, not about the record that
// happened to fail (txsim's operator heard "RESOLVE(5.4) not durable" for 5.5).
TEST_F(CommitDriverTest, ProposalFailureTellsEachWaiterAboutItsOwnTransaction) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  TxId other = Begin();
  Commit(3, other, {kB});  // voting: its client waits
  Take();
  driver_.OnProposalFailed(decide, Status::StorageFailed("fsync failed"), now_);
  DriverEffects fx = Take();
  std::string mine = CommitReply(fx, 2).status.message;
  std::string theirs = CommitReply(fx, 3).status.message;
  EXPECT_NE(mine.find("could not make DECIDE(" + ToString(t)), std::string::npos) << mine;
  EXPECT_NE(theirs.find("the outcome of " + ToString(other) + " is unknown"), std::string::npos)
      << theirs;
  EXPECT_NE(theirs.find("log failed"), std::string::npos) << theirs;
}

// txadmin txn forget: a decided transaction whose participant is lost for
// good. FORGET goes through the log; once chosen the participant counts as
// acknowledged, a hazard is recorded, the transaction ENDs, and a later
// leader (taking over from the table) never delivers to it again.
TEST_F(CommitDriverTest, ForgottenParticipantLetsTheTransactionEndAndIsAHazard) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  auto forget = [&](uint64_t token, const std::string& resource) {
    proto::ForgetParticipantRequest f;
    f.txid = t;
    f.resource = resource;
    f.reason = "machine lost";
    f.who = "alice";
    driver_.OnForgetParticipant(token, f, now_);
  };
  forget(3, "bank_b");  // not decided yet (deciding): refused
  EXPECT_EQ(CommitReply(Take(), 3).status.code, proto::Code::INVALID_ARGUMENT);
  Choose(decide);
  Take();
  Ack(t, 0);  // bank_a acknowledges; bank_b never will
  Take();
  forget(4, "bank_a");
  auto acked = CommitReply(Take(), 4);
  EXPECT_EQ(acked.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(acked.status.message.find("acknowledged"), std::string::npos) << acked.status.message;
  forget(5, "bank_z");
  EXPECT_NE(CommitReply(Take(), 5).status.message.find("has no participant 'bank_z'"),
            std::string::npos);

  forget(6, "bank_b");
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::FORGET);
  EXPECT_TRUE(fx.replies.empty());  // answered once chosen
  Choose(fx.proposals[0]);
  fx = Take();
  auto r = CommitReply(fx, 6);
  EXPECT_EQ(r.status.code, proto::Code::OK) << r.status.message;
  EXPECT_EQ(r.outcome, proto::Outcome::COMMITTED);
  EXPECT_NE(r.reason.find("bank_b"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("forgotten by operator alice"), std::string::npos) << r.reason;
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  // txn show's log: the decision and the operator's action, with who and when.
  auto views = driver_.ActiveTxns(now_);
  ASSERT_EQ(views.size(), 1u);
  ASSERT_EQ(views[0].log.size(), 2u);
  EXPECT_EQ(views[0].log[0].command.type, proto::CommandType::DECIDE);
  EXPECT_EQ(views[0].log[1].command.type, proto::CommandType::FORGET);
  EXPECT_EQ(views[0].log[1].command.who, "alice");
  EXPECT_EQ(views[0].log[1].at, now_);
  EXPECT_GT(views[0].log[1].index, views[0].log[0].index);
  ASSERT_EQ(driver_.hazards().count(t), 1u);
  EXPECT_NE(driver_.hazards().at(t)[0].message.find("forgotten by operator alice"), std::string::npos);
}

TEST_F(CommitDriverTest, ANewLeaderNeverDeliversToAForgottenParticipant) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  Take();
  proto::ForgetParticipantRequest f;
  f.txid = t;
  f.resource = "bank_b";
  f.reason = "machine lost";
  f.who = "alice";
  driver_.OnForgetParticipant(3, f, now_);
  Choose(Take().proposals.at(0));
  Take();
  BecomeLeader(kEpoch + 1);  // takes t over from the table: undelivered to bank_a only
  DriverEffects fx = Take();
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::COMMITTED)), Participants{kA});
  // The table keeps the FORGET in a snapshot, so a restored table agrees.
  TxnTable restored;
  ASSERT_TRUE(restored.Restore(table_.Snapshot()).ok());
  ASSERT_NE(restored.Find(t), nullptr);
  ASSERT_EQ(restored.Find(t)->forgotten.size(), 1u);
  EXPECT_EQ(restored.Find(t)->forgotten[0].who, "alice");
}

TEST_F(CommitDriverTest, ALeaderWhoseLogFailedDoesNotPointClientsAtAFormerLeader) {
  driver_.StepDown("10.0.0.9:7000");
  BecomeLeader(kEpoch + 1);  // this node leads again: the old hint is void
  proto::Command decide;
  BeginAndVoteYes({kA}, 2, &decide);
  driver_.OnProposalFailed(decide, Status::StorageFailed("fsync failed"), now_);
  Take();
  driver_.OnBegin(3, proto::BeginRequest(), now_);
  auto r = ReplyTo<proto::BeginResponse>(Take(), 3);
  EXPECT_EQ(r.status.code, proto::Code::UNAVAILABLE);
  EXPECT_FALSE(r.status.__isset.leader_hint);
}

TEST_F(CommitDriverTest, OperatorsResolveChosenFirstDecidesTheTxn) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  proto::Command resolve =
      MakeDecide(t, proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, "resolved by alice");
  resolve.type = proto::CommandType::RESOLVE;
  Choose(resolve);
  DriverEffects fx = Take();
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(r.reason, "resolved by alice");
  auto aborts = Decisions(fx, proto::Outcome::ABORTED);
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_TRUE(aborts[0].want_ack);
  // Our DECIDE is chosen after it: a no-op, nothing is said twice.
  Choose(decide);
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(table_.Find(t)->outcome, proto::Outcome::ABORTED);
  Ack(t, 0);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
}

}  // namespace
}  // namespace txc::coord

namespace txc::coord {
namespace {

}  // namespace
}  // namespace txc::coord

namespace txc::coord {
namespace {

// The leader of an older epoch proposed DECIDE(COMMIT) but only it accepted
// it; a newer leader serves and presumes the txid aborted; a later leader's
// phase 1 adopts the old value and gets it chosen after the newer marker. The
// table ignores it, so the answer given stays true (found by txsim, seed 38
// with 3 replicas).
TEST_F(CommitDriverTest, OldEpochDecideChosenAfterANewerLeaderServedStaysAborted) {
  TxId old = MakeTxId(kEpoch, 40);
  BecomeLeader(kEpoch + 1);
  EXPECT_EQ(Outcome(old).outcome, proto::Outcome::ABORTED);
  Choose(MakeDecide(old, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  EXPECT_EQ(table_.Find(old), nullptr);
  EXPECT_EQ(Outcome(old).outcome, proto::Outcome::ABORTED);
  BecomeLeader(kEpoch + 2);  // a later leader has nothing of it to finish
  DriverEffects fx = Take();
  EXPECT_TRUE(fx.calls.empty());
  EXPECT_EQ(Outcome(old).outcome, proto::Outcome::ABORTED);
}

}  // namespace
}  // namespace txc::coord

namespace txc::coord {
namespace {

// ------------------------------------------- forgotten txids (issue 8, 4a)

// Decides (COMMITTED, over kA) and ends `count` txids of `epoch` from seq 1
// straight in `table`, as the log of an earlier leadership would have.
void CommitAndEndMany(TxnTable* table, uint64_t* index, int64_t epoch, int64_t count) {
  for (int64_t seq = 1; seq <= count; ++seq) {
    TxId t = MakeTxId(epoch, seq);
    table->Apply(++*index, MakeDecide(t, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
    table->Apply(++*index, MakeEnd(t));
  }
}

// A client retrying a commit (or asking) long after the transaction ended,
// once the table no longer holds its entry, was told ABORTED: it would redo
// the work a second time. With the default retention.
TEST_F(CommitDriverTest, ACommittedTxidForgottenAfterEndIsStillAnsweredCommitted) {
  const int64_t n = static_cast<int64_t>(TxnTableOptions{}.ended_retained) + 5;
  CommitAndEndMany(&table_, &index_, kEpoch, n);
  TxId first = MakeTxId(kEpoch, 1);
  ASSERT_EQ(table_.Find(first), nullptr);  // forgotten
  BecomeLeader(kEpoch + 1);
  auto o = Outcome(first);
  EXPECT_EQ(o.status.code, proto::Code::OK);
  EXPECT_EQ(o.outcome, proto::Outcome::COMMITTED);
  Commit(2, first, {kA});
  DriverEffects fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(fx.calls.empty());
  Abort(3, first, {kA});
  fx = Take();
  EXPECT_NE(CommitReply(fx, 3).outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(fx.calls.empty());
  // Still presumed aborted: a txid of that epoch that was never decided.
  EXPECT_EQ(Outcome(MakeTxId(kEpoch, n + 1)).outcome, proto::Outcome::ABORTED);
}

// A driver over a table with a small retention, serving epoch 3.
class SmallRetentionTest : public ::testing::Test {
 protected:
  static TxnTableOptions Small() {
    TxnTableOptions o;
    o.ended_retained = 1;
    o.forgotten_runs_max = 2;
    return o;
  }
  SmallRetentionTest() : table_(Small()), driver_(&table_, TestOptions()) {
    table_.Apply(++index_, MakeEpoch(3));
    driver_.BecomeLeader(3, kT0);
  }
  // One transaction of this leadership over kA: begun, voted YES, decided,
  // acked and ended.
  TxId CommitOne() {
    driver_.OnBegin(1, proto::BeginRequest(), kT0);
    TxId t = std::get<proto::BeginResponse>(driver_.TakeEffects().replies.at(0).response).txid;
    proto::CommitRequest req;
    req.txid = t;
    req.participants = {kA};
    driver_.OnCommit(2, req, kT0);
    (void)driver_.TakeEffects();
    driver_.OnVote(t, 0, Status::Ok(), kYes, kT0);
    ChooseAll();
    driver_.OnAck(t, 0, Status::Ok(), kT0);
    ChooseAll();
    EXPECT_EQ(driver_.active_count(), 0u);
    return t;
  }
  void ChooseAll() {
    DriverEffects fx = driver_.TakeEffects();
    for (const auto& cmd : fx.proposals) {
      table_.Apply(++index_, cmd);
      driver_.OnApplied(cmd, kT0);
    }
  }
  template <class Req>
  proto::CommitResponse Ask(void (CommitDriver::*in)(uint64_t, const Req&, Micros), const Req& req,
                            std::vector<ParticipantCall>* calls = nullptr) {
    (driver_.*in)(7, req, kT0);
    DriverEffects fx = driver_.TakeEffects();
    if (calls != nullptr) *calls = fx.calls;
    return CommitReply(fx, 7);
  }
  proto::OutcomeResponse AskOutcome(const TxId& t) {
    proto::OutcomeRequest req;
    req.txid = t;
    driver_.OnOutcome(7, req, kT0);
    return ReplyTo<proto::OutcomeResponse>(driver_.TakeEffects(), 7);
  }

  TxnTable table_;
  CommitDriver driver_;
  uint64_t index_ = 0;
};

// In its own epoch the leader presumed "aborted" for any txid it allocated
// and no longer drives: a forgotten committed one included.
TEST_F(SmallRetentionTest, ThisLeadershipsForgottenCommitIsAnsweredCommitted) {
  TxId t1 = CommitOne();
  TxId t2 = CommitOne();
  CommitOne();
  ASSERT_EQ(table_.Find(t1), nullptr);
  ASSERT_EQ(table_.Find(t2), nullptr);
  for (const TxId& t : {t1, t2}) {
    EXPECT_EQ(AskOutcome(t).outcome, proto::Outcome::COMMITTED) << ToString(t);
    proto::CommitRequest c;
    c.txid = t;
    c.participants = {kA};
    std::vector<ParticipantCall> calls;
    EXPECT_EQ(Ask(&CommitDriver::OnCommit, c, &calls).outcome, proto::Outcome::COMMITTED);
    EXPECT_TRUE(calls.empty());
  }
}

// Past the bound on what it keeps, the group says it does not know: a
// distinct FORGOTTEN, never ABORTED, and nobody is told to abort.
TEST_F(SmallRetentionTest, PastTheBoundAForgottenTxidIsForgottenNeverAborted) {
  // Commits 3.1, 3.3, 3.5 and 3.7 (3.2, 3.4, 3.6 abort: separate runs).
  std::vector<TxId> committed;
  for (int i = 0; i < 4; ++i) {
    committed.push_back(CommitOne());
    driver_.OnBegin(1, proto::BeginRequest(), kT0);
    TxId aborted = std::get<proto::BeginResponse>(driver_.TakeEffects().replies.at(0).response).txid;
    proto::AbortRequest a;
    a.txid = aborted;
    (void)Ask(&CommitDriver::OnAbort, a);
  }
  committed.push_back(CommitOne());
  // 3.1 and 3.3 are beyond what the table keeps.
  ASSERT_EQ(table_.ForgottenOutcome(committed[0]), proto::Outcome::FORGOTTEN);
  for (TxId t : {committed[0], committed[1], MakeTxId(3, 2)}) {
    auto o = AskOutcome(t);
    EXPECT_EQ(o.status.code, proto::Code::OK) << ToString(t);
    EXPECT_EQ(o.outcome, proto::Outcome::FORGOTTEN) << ToString(t);

    proto::CommitRequest c;
    c.txid = t;
    c.participants = {kA};
    std::vector<ParticipantCall> calls;
    auto r = Ask(&CommitDriver::OnCommit, c, &calls);
    EXPECT_EQ(r.outcome, proto::Outcome::FORGOTTEN) << ToString(t);
    EXPECT_TRUE(calls.empty()) << ToString(t);

    proto::AbortRequest a;
    a.txid = t;
    a.participants = {kA};
    r = Ask(&CommitDriver::OnAbort, a, &calls);
    EXPECT_EQ(r.status.code, proto::Code::NOT_FOUND) << ToString(t);
    EXPECT_EQ(r.outcome, proto::Outcome::FORGOTTEN) << ToString(t);
    EXPECT_TRUE(calls.empty()) << ToString(t);
  }
  // Still exact above the bound.
  EXPECT_EQ(AskOutcome(committed[3]).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(AskOutcome(MakeTxId(3, 6)).outcome, proto::Outcome::ABORTED);
}

// ------------------------------- telling participants ABORTED (issue 8, 4j)

// Begin, Execute at kA and kB, the leader dies: the retried Commit on the new
// leader answers ABORTED ("leader changed before a decision"), and the
// branches, ACTIVE and holding locks, must hear it.
TEST_F(CommitDriverTest, CommitRetriedAfterALeaderChangeTellsTheParticipantsAborted) {
  TxId t = Begin();
  BecomeLeader(kEpoch + 1);
  Commit(2, t, {kA, kB, kA});
  DriverEffects fx = Take();
  auto r = CommitReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::OK);
  EXPECT_EQ(r.outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(Prepares(fx).empty());
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), (Participants{kA, kB}));
  for (const auto& c : Decisions(fx, proto::Outcome::ABORTED)) {
    EXPECT_EQ(c.txid, t);
    EXPECT_EQ(c.decide->txid, t);
    EXPECT_EQ(c.decide->resource, c.to.resource);
  }
  // A retried one-shot submit: its branches are told too.
  TxId s = MakeTxId(kEpoch, 2);
  proto::SubmitRequest submit;
  submit.txid = s;
  proto::Branch b;
  b.participant = kB;
  b.statements = {Sql("UPDATE t SET v = 1")};
  submit.branches = {b};
  driver_.OnSubmit(3, submit, now_);
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 3).outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(Prepares(fx).empty());
  EXPECT_EQ(Targets(Decisions(fx, proto::Outcome::ABORTED)), Participants{kB});
}

// --------------------------------------- heuristic hazards (issue 8, 4k)

proto::DecideResponse Refusal(const std::string& message, bool flag) {
  proto::DecideResponse r;
  r.status.code = proto::Code::INTERNAL;
  r.status.message = message;
  if (flag) r.__set_refused(true);
  return r;
}

// An abort sent to a branch that is committed there was fire and forget: the
// heuristic mix left no trace.
TEST_F(CommitDriverTest, AnAbortRefusedBecauseTheBranchCommittedIsAHeuristicHazard) {
  TxId t = Begin();
  Commit(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  Vote(t, 1, VoteOf(proto::Vote::NO, "constraint"));
  DriverEffects fx = Take();
  auto aborts = Decisions(fx, proto::Outcome::ABORTED);
  ASSERT_EQ(aborts.size(), 2u);
  EXPECT_FALSE(aborts[0].want_ack);
  EXPECT_EQ(driver_.hazard_count(), 0u);

  driver_.OnDecideAnswer(aborts[0], Status::Ok(),
                         Refusal("bank_a txn " + ToString(t) + " is committed here; refusing to abort it",
                                 false),
                         now_);
  fx = Take();
  ASSERT_EQ(fx.hazards.size(), 1u);
  EXPECT_EQ(fx.hazards[0].txid, t);
  EXPECT_EQ(fx.hazards[0].participant, kA);
  EXPECT_EQ(fx.hazards[0].decided, proto::Outcome::ABORTED);
  EXPECT_NE(fx.hazards[0].ToString().find("refusing to abort"), std::string::npos);
  EXPECT_EQ(driver_.hazard_count(), 1u);
  ASSERT_EQ(driver_.hazards().count(t), 1u);
  // The same refusal again is the same hazard; a plain ack or a lost call is none.
  driver_.OnDecideAnswer(aborts[0], Status::Ok(), Refusal("refusing to abort it", false), now_);
  driver_.OnDecideAnswer(aborts[1], Status::Ok(), proto::DecideResponse(), now_);
  driver_.OnDecideAnswer(aborts[1], Status::Unavailable("agent down"), proto::DecideResponse(), now_);
  driver_.OnDecideAnswer(aborts[1], Status::Ok(), Refusal("disk I/O error", false), now_);
  EXPECT_TRUE(Take().hazards.empty());
  EXPECT_EQ(driver_.hazard_count(), 1u);
  // An agent that marks its refusals is believed whatever its wording.
  driver_.OnDecideAnswer(aborts[1], Status::Ok(), Refusal("branch is final", true), now_);
  EXPECT_EQ(Take().hazards.size(), 1u);
  EXPECT_EQ(driver_.hazard_count(), 2u);
  EXPECT_EQ(driver_.hazards().at(t).size(), 2u);
}

// A COMMIT refused because the branch aborted was resent forever as if lost.
// It is a hazard: not resent, not acknowledged, so the transaction never ENDs
// as if all were well, and the listing shows why.
TEST_F(CommitDriverTest, ACommitRefusedBecauseTheBranchAbortedIsAHazardAndNeverEnds) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  DriverEffects fx = Take();
  auto commits = Decisions(fx, proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 2u);
  Ack(t, 0);
  Ack(t, 1, Status::Internal("bank_b txn " + ToString(t) + " is aborted here; refusing to commit it"));
  fx = Take();
  ASSERT_EQ(fx.hazards.size(), 1u);
  EXPECT_EQ(fx.hazards[0].participant, kB);
  EXPECT_EQ(fx.hazards[0].decided, proto::Outcome::COMMITTED);
  EXPECT_TRUE(fx.proposals.empty());  // no END
  for (Micros later : {10 * kSeconds, 60 * kSeconds}) {
    driver_.Tick(now_ + later);
    fx = Take();
    EXPECT_TRUE(Decisions(fx, proto::Outcome::COMMITTED).empty()) << later;
    EXPECT_TRUE(fx.proposals.empty()) << later;
  }
  ASSERT_EQ(driver_.active_count(), 1u);
  auto views = driver_.ActiveTxns(now_);
  ASSERT_EQ(views[0].hazards.size(), 1u);
  EXPECT_NE(views[0].hazards[0].find("bank_b"), std::string::npos);
  EXPECT_EQ(driver_.hazard_count(), 1u);

  // Through OnDecideAnswer (the shells' input) the same: a new leader drives
  // it again and hears the refusal again; it is counted once per node.
  BecomeLeader(kEpoch + 1);
  fx = Take();
  auto again = Decisions(fx, proto::Outcome::COMMITTED);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_TRUE(again[1].want_ack);
  driver_.OnDecideAnswer(again[0], Status::Ok(), proto::DecideResponse(), now_);
  driver_.OnDecideAnswer(again[1], Status::Ok(), Refusal("aborted here", true), now_);
  fx = Take();
  EXPECT_TRUE(fx.hazards.empty());
  EXPECT_TRUE(fx.proposals.empty());
  EXPECT_EQ(driver_.hazard_count(), 1u);
  driver_.Tick(now_ + 60 * kSeconds);
  EXPECT_TRUE(Decisions(Take(), proto::Outcome::COMMITTED).empty());
}

// A failed delivery is still retried through OnDecideAnswer, and an ack ends it.
TEST_F(CommitDriverTest, DecideAnswersAckAndRetryAsOnAckDoes) {
  proto::Command decide;
  TxId t = BeginAndVoteYes({kA}, 2, &decide);
  Choose(decide);
  auto commits = Decisions(Take(), proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 1u);
  driver_.OnDecideAnswer(commits[0], Status::Timeout("no answer"), proto::DecideResponse(), now_);
  EXPECT_TRUE(Take().empty());
  driver_.Tick(now_ + 50 * kMillis);
  commits = Decisions(Take(), proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 1u);
  driver_.OnDecideAnswer(commits[0], Status::Ok(), proto::DecideResponse(), now_);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::END_TXN);
  EXPECT_EQ(fx.proposals[0].txid, t);
  EXPECT_EQ(driver_.hazard_count(), 0u);
}

// ---------------------------------------------------------------------- 3PC

class ThreePhaseTest : public CommitDriverTest {
 protected:
  void Commit3(uint64_t token, const TxId& txid, Participants ps) {
    proto::CommitRequest req;
    req.txid = txid;
    req.participants = std::move(ps);
    req.protocol = proto::Protocol::THREE_PC;
    driver_.OnCommit(token, req, now_);
  }
  // Begins a 3PC txn over `ps` and collects every YES: returns it with the
  // PRECOMMIT proposal in `precommit`.
  TxId VoteYes3(const Participants& ps, uint64_t token, proto::Command* precommit) {
    TxId t = Begin();
    Commit3(token, t, ps);
    DriverEffects fx = Take();
    EXPECT_EQ(Prepares(fx).size(), ps.size());
    for (const auto& c : Prepares(fx)) EXPECT_EQ(c.prepare->protocol, proto::Protocol::THREE_PC);
    for (size_t i = 0; i < ps.size(); ++i) Vote(t, i, kYes);
    fx = Take();
    EXPECT_EQ(fx.proposals.size(), 1u);
    if (!fx.proposals.empty()) *precommit = fx.proposals[0];
    return t;
  }
  static std::vector<ParticipantCall> PreCommits(const DriverEffects& fx) {
    std::vector<ParticipantCall> out;
    for (const auto& c : fx.calls) {
      if (c.decide && c.decide->__isset.precommit && c.decide->precommit) out.push_back(c);
    }
    return out;
  }
  void Answer(const ParticipantCall& c, const Status& transport = Status::Ok()) {
    driver_.OnDecideAnswer(c, transport, proto::DecideResponse(), now_);
  }
};

TEST_F(ThreePhaseTest, PreCommitLeavesOnlyOnceChosenAndTheCommitOnlyAfterEveryAck) {
  proto::Command precommit;
  TxId t = VoteYes3({kA, kB}, 2, &precommit);
  EXPECT_EQ(precommit.type, proto::CommandType::PRECOMMIT);
  EXPECT_EQ(precommit.txid, t);
  EXPECT_EQ(precommit.participants, (Participants{kA, kB}));
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].state, "precommitting");
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);
  driver_.Tick(now_ + 30 * kSeconds);  // the log may take its time
  EXPECT_TRUE(Take().empty());

  Choose(precommit);
  DriverEffects fx = Take();
  auto pcs = PreCommits(fx);
  ASSERT_EQ(pcs.size(), 2u);
  EXPECT_EQ(Targets(pcs), (Participants{kA, kB}));
  for (const auto& c : pcs) {
    EXPECT_TRUE(c.want_ack);
    EXPECT_EQ(c.decide->outcome, proto::Outcome::COMMITTED);
  }
  EXPECT_TRUE(fx.replies.empty());
  EXPECT_TRUE(fx.proposals.empty());
  EXPECT_EQ(driver_.ActiveTxns(now_)[0].state, "precommitted");
  EXPECT_EQ(Outcome(t).outcome, proto::Outcome::PENDING);

  Answer(pcs[1]);
  EXPECT_TRUE(Take().empty());  // bank_a has not acked
  Answer(pcs[0]);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::DECIDE);
  EXPECT_EQ(fx.proposals[0].outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(fx.proposals[0].protocol, proto::Protocol::THREE_PC);
  EXPECT_TRUE(fx.replies.empty());

  Choose(fx.proposals[0]);
  fx = Take();
  EXPECT_EQ(CommitReply(fx, 2).outcome, proto::Outcome::COMMITTED);
  auto commits = Decisions(fx, proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 2u);
  EXPECT_TRUE(PreCommits(fx).empty());  // DO_COMMIT, not PRE_COMMIT again
  // Counted once, as a 3PC commit (the metrics' protocol label).
  EXPECT_EQ(driver_.counters().committed, 1u);
  EXPECT_EQ(driver_.counters().committed_3pc, 1u);
  TxId no = Begin(7);
  Commit3(8, no, {kA});
  Take();
  Vote(no, 0, VoteOf(proto::Vote::NO, "insufficient funds"));
  EXPECT_EQ(CommitReply(Take(), 8).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(driver_.counters().aborted_3pc, 1u);
}

TEST_F(ThreePhaseTest, PreCommitIsResentAndAfterItsTimeoutTheCommitIsProposedAnyway) {
  proto::Command precommit;
  TxId t = VoteYes3({kA, kB}, 2, &precommit);
  Choose(precommit);
  auto pcs = PreCommits(Take());
  ASSERT_EQ(pcs.size(), 2u);
  Answer(pcs[0]);
  Answer(pcs[1], Status::Unavailable("agent down"));
  EXPECT_TRUE(Take().empty());
  now_ += 50 * kMillis;  // resend_initial
  driver_.Tick(now_);
  auto again = PreCommits(Take());
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].to, kB);
  // No ack by precommit_ack_timeout (5 s after PRECOMMIT was chosen): the
  // commit is proposed; bank_b learns the outcome like any participant.
  now_ = kT0 + 5 * kSeconds;
  driver_.Tick(now_);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::DECIDE);
  EXPECT_EQ(fx.proposals[0].outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(fx.proposals[0].participants, (Participants{kA, kB}));
  (void)t;
}

TEST_F(ThreePhaseTest, ReadOnlyVotersLeaveAndAllReadOnlySkipsPreCommit) {
  TxId t = Begin();
  Commit3(2, t, {kA, kB});
  Take();
  Vote(t, 0, kYes);
  Vote(t, 1, kReadOnly);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::PRECOMMIT);
  EXPECT_EQ(fx.proposals[0].participants, (Participants{kA}));

  TxId r = Begin(3);
  Commit3(4, r, {kA, kB});
  Take();
  Vote(r, 0, kReadOnly);
  Vote(r, 1, kReadOnly);
  fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::DECIDE);
}

TEST_F(ThreePhaseTest, NewLeaderCommitsWhatIsPrecommittedAndPresumesTheRestAborted) {
  proto::Command precommit;
  TxId pre = VoteYes3({kA, kB}, 2, &precommit);
  Choose(precommit);
  Take();
  proto::Command lost;
  TxId voting = VoteYes3({kA}, 3, &lost);  // PRECOMMIT proposed, never chosen
  Take();

  // A new leader (epoch 8) takes over from the table alone.
  BecomeLeader(kEpoch + 1);
  DriverEffects fx = Take();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::DECIDE);
  EXPECT_EQ(fx.proposals[0].txid, pre);
  EXPECT_EQ(fx.proposals[0].outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(fx.proposals[0].participants, (Participants{kA, kB}));
  // Until the commit is chosen: pending, never presumed aborted.
  EXPECT_EQ(Outcome(pre).outcome, proto::Outcome::PENDING);
  EXPECT_EQ(Outcome(voting).outcome, proto::Outcome::ABORTED);
  Choose(fx.proposals[0]);
  fx = Take();
  EXPECT_EQ(Decisions(fx, proto::Outcome::COMMITTED).size(), 2u);
  EXPECT_EQ(Outcome(pre).outcome, proto::Outcome::COMMITTED);
}

TEST_F(ThreePhaseTest, OperatorAndClientCannotAbortOncePrecommitIsProposed) {
  proto::Command precommit;
  TxId t = VoteYes3({kA}, 2, &precommit);
  proto::ResolveRequest rr;
  rr.txid = t;
  rr.outcome = proto::Outcome::ABORTED;
  rr.reason = "stuck";
  rr.who = "ops";
  driver_.OnResolve(5, rr, now_);
  auto r = CommitReply(Take(), 5);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(r.status.message.find("3PC"), std::string::npos) << r.status.message;
  Abort(6, t);
  EXPECT_TRUE(Take().replies.empty());  // the client's rollback learns the outcome later
  Choose(precommit);
  driver_.OnResolve(7, rr, now_);
  EXPECT_EQ(CommitReply(Take(), 7).status.code, proto::Code::INVALID_ARGUMENT);
}

TEST_F(ThreePhaseTest, UnknownProtocolIsRefusedNamingIt) {
  TxId t = Begin();
  proto::CommitRequest req;
  req.txid = t;
  req.participants = {kA};
  const int32_t nine = 9;  // as a peer could send it (an enum holding 9 is not writable in C++)
  std::memcpy(&req.protocol, &nine, sizeof nine);
  driver_.OnCommit(2, req, now_);
  auto r = CommitReply(Take(), 2);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(r.status.message.find("protocol 9"), std::string::npos) << r.status.message;
}

// The seam behind txsim's 3pc-skip-precommit-choose bug does what it says.
TEST(ThreePhaseSeamTest, TestingSeamSendsPreCommitBeforePrecommitIsChosen) {
  TxnTable table;
  DriverOptions o = TestOptions();
  o.testing_precommit_before_chosen = true;
  CommitDriver d(&table, o);
  table.Apply(1, MakeEpoch(kEpoch));
  d.BecomeLeader(kEpoch, kT0);
  d.OnBegin(1, proto::BeginRequest(), kT0);
  TxId t = std::get<proto::BeginResponse>(d.TakeEffects().replies[0].response).txid;
  proto::CommitRequest req;
  req.txid = t;
  req.participants = {kA};
  req.protocol = proto::Protocol::THREE_PC;
  d.OnCommit(2, req, kT0);
  d.TakeEffects();
  d.OnVote(t, 0, Status::Ok(), kYes, kT0);
  DriverEffects fx = d.TakeEffects();
  ASSERT_EQ(fx.proposals.size(), 1u);
  EXPECT_EQ(fx.proposals[0].type, proto::CommandType::PRECOMMIT);
  ASSERT_EQ(fx.calls.size(), 1u);  // PRE_COMMIT already out: the bug
  EXPECT_TRUE(fx.calls[0].decide->precommit);
}

// ------------------------------------------------------------ signed decisions
// An agent registers its key with an outcome query; every decision for its
// address then carries the MAC under it, PRE_COMMIT included (with its flag
// in the MAC); other agents' decisions carry none.
class SignedDecisionTest : public CommitDriverTest {
 protected:
  static constexpr SipKey kKeyA = {0x1111222233334444ULL, 0x5555666677778888ULL};
  void Register(const proto::Participant& p, const SipKey& key, uint64_t token = 50) {
    proto::OutcomeRequest q;
    q.txid = MakeTxId(kEpoch, 1);
    proto::DecisionKey k;
    k.agent_address = p.address;
    k.k0 = static_cast<int64_t>(key[0]);
    k.k1 = static_cast<int64_t>(key[1]);
    q.__set_decision_key(k);
    driver_.OnOutcome(token, q, now_);
    Take();
  }
  // A transaction over `ps` whose last participant votes NO: the ABORTs sent.
  std::vector<ParticipantCall> AbortsOfAVotedDownTxn(const Participants& ps) {
    TxId t = Begin();
    Commit(2, t, ps);
    Take();
    Vote(t, ps.size() - 1, VoteOf(proto::Vote::NO, "no"));
    return Decisions(Take(), proto::Outcome::ABORTED);
  }
  static bool SignedFor(const ParticipantCall& c, const SipKey& key) {
    return c.decide->__isset.decision_mac &&
           static_cast<uint64_t>(c.decide->decision_mac) == DecisionMac(key, *c.decide);
  }
};

TEST_F(SignedDecisionTest, CommitsAndAbortsForARegisteredAgentAreSigned) {
  Register(kA, kKeyA);
  proto::Command decide;
  BeginAndVoteYes({kA, kB}, 2, &decide);
  Choose(decide);
  auto commits = Decisions(Take(), proto::Outcome::COMMITTED);
  ASSERT_EQ(commits.size(), 2u);
  EXPECT_TRUE(SignedFor(commits[0], kKeyA));
  EXPECT_FALSE(commits[1].decide->__isset.decision_mac) << "bank_b registered no key";
  // A resend is signed as well.
  driver_.Tick(now_ + 10 * kSeconds);
  int resent_to_a = 0;
  for (const auto& c : Decisions(Take(), proto::Outcome::COMMITTED)) {
    if (!(c.to == kA)) continue;
    ++resent_to_a;
    EXPECT_TRUE(SignedFor(c, kKeyA));
  }
  EXPECT_EQ(resent_to_a, 1);

  auto aborts = AbortsOfAVotedDownTxn({kA, kB});
  ASSERT_EQ(aborts.size(), 2u);
  EXPECT_TRUE(SignedFor(aborts[0], kKeyA));
  EXPECT_FALSE(aborts[1].decide->__isset.decision_mac);
}

// The last key registered for an address wins (the agent restarted, or
// someone registered a key of their own: the agent's check then fails and
// it confirms, registering its own again); a zero key unregisters.
TEST_F(SignedDecisionTest, TheLastKeyRegisteredForAnAddressIsUsedAndAZeroKeyRemovesIt) {
  const SipKey kNew = {kKeyA[0] ^ 7, kKeyA[1]};
  Register(kA, kKeyA);
  Register(kA, kNew);
  auto aborts = AbortsOfAVotedDownTxn({kA});
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_TRUE(SignedFor(aborts[0], kNew));
  EXPECT_FALSE(SignedFor(aborts[0], kKeyA));

  Register(kA, SipKey{0, 0});
  aborts = AbortsOfAVotedDownTxn({kA});
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_FALSE(aborts[0].decide->__isset.decision_mac);
}

// A key registered while this node did not lead (a query that got
// NOT_LEADER) is kept: it signs once the node leads.
TEST_F(SignedDecisionTest, AKeyRegisteredWhileNotLeadingIsKept) {
  driver_.StepDown("10.0.0.9:7000");
  Register(kA, kKeyA);
  BecomeLeader(kEpoch + 1);
  auto aborts = AbortsOfAVotedDownTxn({kA});
  ASSERT_EQ(aborts.size(), 1u);
  EXPECT_TRUE(SignedFor(aborts[0], kKeyA));
}

TEST_F(SignedDecisionTest, PreCommitIsSignedWithItsFlag) {
  Register(kA, kKeyA);
  TxId t = Begin();
  proto::CommitRequest req;
  req.txid = t;
  req.participants = {kA};
  req.protocol = proto::Protocol::THREE_PC;
  driver_.OnCommit(2, req, now_);
  Take();
  Vote(t, 0, kYes);
  TakeAndChoose();  // PRECOMMIT chosen
  DriverEffects fx = Take();
  ASSERT_EQ(fx.calls.size(), 1u);
  ASSERT_TRUE(fx.calls[0].decide->precommit);
  EXPECT_TRUE(SignedFor(fx.calls[0], kKeyA));
  proto::DecideRequest stripped = *fx.calls[0].decide;
  stripped.__isset.precommit = false;
  stripped.precommit = false;
  EXPECT_NE(static_cast<uint64_t>(stripped.decision_mac), DecisionMac(kKeyA, stripped));
}

}  // namespace
}  // namespace txc::coord
