// AgentCore: the agent's node core, which both participant/agent.cc and the
// simulator's agent shell run. The test plays the shells: it answers each
// ResourceOp and outcome query the core emits by hand, and fires the tick
// timer at the time the core asked for. The branch state machine itself is
// BranchCore's and has its own tests (branch_core_test.cc); these cover what
// the shells used to decide around it.
#include "participant/agent_core.h"

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/core_harness.h"

namespace txc::participant {
namespace {

using txc::testing::Participant;
using txc::testing::Sql;

constexpr Micros kT0 = 1000 * kSeconds;
constexpr Micros kTick = 5 * kMillis;
const std::string kRes = "bank_a";
const std::string kOther = "bank_b";
const TxId kT1 = MakeTxId(3, 1);
const TxId kT2 = MakeTxId(3, 2);

AgentOptions TestOptions() {
  AgentOptions o;
  o.lock_timeout = 2 * kSeconds;
  o.active_timeout = 60 * kSeconds;
  o.in_doubt_after = 1 * kSeconds;
  o.query_max = 5 * kSeconds;
  o.final_retention = 30 * kSeconds;
  o.lock_retry = 20 * kMillis;
  return o;
}

proto::OutcomeResponse Answer(proto::Outcome::type outcome) {
  proto::OutcomeResponse r;
  r.outcome = outcome;
  return r;
}

// What the coordinator's CommitDriver answers for a txid it never allocated.
proto::OutcomeResponse NeverAllocated() {
  proto::OutcomeResponse r;
  r.status.code = proto::Code::INVALID_ARGUMENT;
  r.status.message = "txid 3.1 was never allocated by this coordinator group";
  r.outcome = proto::Outcome::UNKNOWN;
  return r;
}

proto::OutcomeResponse Refused(proto::Code::type code) {
  proto::OutcomeResponse r;
  r.status.code = code;
  r.status.message = "cannot say";
  r.outcome = proto::Outcome::UNKNOWN;
  return r;
}

bool Has(const std::vector<TxId>& v, const TxId& t) {
  for (const TxId& x : v) {
    if (x == t) return true;
  }
  return false;
}

class AgentCoreTest : public ::testing::Test {
 protected:
  AgentCoreTest() : core_({kRes, kOther}, TestOptions(), kTick) {}

  void Boot() {
    AgentCoreEffects fx = core_.Start(now_);
    ASSERT_TRUE(fx.wake_at.has_value());
    wake_ = *fx.wake_at;
  }

  // Fires the tick timer (and every one after it) until `until`, as a shell
  // does; returns everything the ticks emitted.
  AgentCoreEffects RunUntil(Micros until) {
    AgentCoreEffects all;
    while (wake_ <= until) {
      now_ = wake_;
      AgentCoreEffects fx = core_.Tick(now_);
      EXPECT_TRUE(fx.wake_at.has_value()) << "the core stopped ticking at " << now_;
      if (!fx.wake_at) break;
      EXPECT_GT(*fx.wake_at, now_);
      wake_ = *fx.wake_at;
      for (auto& r : fx.replies) all.replies.push_back(std::move(r));
      for (auto& o : fx.ops) all.ops.push_back(std::move(o));
      for (auto& q : fx.queries) all.queries.push_back(q);
    }
    now_ = until;
    return all;
  }

  // An ACTIVE branch of `txid` on kRes that changed a row.
  void MakeActive(const TxId& txid) {
    proto::ExecuteRequest req;
    req.txid = txid;
    req.resource = kRes;
    req.statements = {Sql("UPDATE accounts SET balance = balance - 5 WHERE id = 7")};
    AgentCoreEffects fx = core_.OnExecute(next_token_++, req, now_);
    ASSERT_EQ(fx.ops.size(), 1u);
    ASSERT_EQ(fx.ops[0].kind, ResourceOp::kExecute);
    ExecuteResult done;
    done.wrote = true;
    fx = core_.OnExecuteDone(fx.ops[0].id, done, now_);
    ASSERT_EQ(fx.replies.size(), 1u);
    ASSERT_TRUE(fx.ops.empty());
  }

  // A PREPARED branch of `txid` on kRes (it voted YES).
  void MakePrepared(const TxId& txid) {
    MakeActive(txid);
    proto::PrepareRequest req;
    req.txid = txid;
    req.resource = kRes;
    req.participants = {Participant(kRes, "10.0.0.1:7100")};
    AgentCoreEffects fx = core_.OnPrepare(next_token_++, req, now_);
    ASSERT_EQ(fx.ops.size(), 1u);
    ASSERT_EQ(fx.ops[0].kind, ResourceOp::kPrepare);
    fx = core_.OnOpDone(fx.ops[0].id, Status::Ok(), now_);
    ASSERT_EQ(fx.replies.size(), 1u);
    const auto* vote = std::get_if<proto::PrepareResponse>(&fx.replies[0].response);
    ASSERT_NE(vote, nullptr);
    ASSERT_EQ(vote->vote, proto::Vote::YES);
  }

  std::string StateOf(const TxId& txid, const std::string& resource = kRes) const {
    for (const auto& b : core_.Branches()) {
      if (b.txid == txid && b.resource == resource) return b.state;
    }
    return "";
  }

  AgentCore core_;
  Micros now_ = kT0;
  Micros wake_ = 0;
  uint64_t next_token_ = 1;
};

// ------------------------------------------------------- reading the answers

TEST(ReadOutcomeAnswerTest, ReadsEachKindOfAnswer) {
  OutcomeAnswer a = ReadOutcomeAnswer(Status::Ok(), Answer(proto::Outcome::COMMITTED));
  EXPECT_OK(a.status);
  EXPECT_EQ(a.outcome, proto::Outcome::COMMITTED);

  a = ReadOutcomeAnswer(Status::Ok(), Answer(proto::Outcome::PENDING));
  EXPECT_OK(a.status);
  EXPECT_EQ(a.outcome, proto::Outcome::PENDING);

  // "Never allocated" is the group's definite word, not a failure to answer.
  a = ReadOutcomeAnswer(Status::Ok(), NeverAllocated());
  EXPECT_OK(a.status);
  EXPECT_EQ(a.outcome, proto::Outcome::UNKNOWN);

  for (auto code : {proto::Code::NOT_LEADER, proto::Code::UNAVAILABLE, proto::Code::STORAGE_FAILED,
                    proto::Code::INTERNAL}) {
    a = ReadOutcomeAnswer(Status::Ok(), Refused(code));
    EXPECT_EQ(static_cast<int>(a.status.code()), static_cast<int>(code));
    EXPECT_EQ(a.status.message(), "cannot say");
  }

  // The call failed: whatever the (empty) response says does not count.
  a = ReadOutcomeAnswer(Status::Timeout("no answer"), Answer(proto::Outcome::ABORTED));
  EXPECT_EQ(a.status.code(), Status::kTimeout);
}

// ------------------------------------------------- the two shells disagreed

// The real agent rolled such a branch back; the simulated one kept asking,
// holding the branch's row locks for as long as the agent ran. A branch that
// has not voted may always abort, and no coordinator will ever ask it to
// commit a txid the group never allocated.
TEST_F(AgentCoreTest, ActiveBranchOfATxidTheGroupNeverAllocatedIsRolledBack) {
  Boot();
  MakeActive(kT1);
  AgentCoreEffects fx = RunUntil(now_ + 60 * kSeconds + kTick);
  ASSERT_TRUE(Has(fx.queries, kT1));
  fx = core_.OnOutcomeReply(kT1, Status::Ok(), NeverAllocated(), now_);
  ASSERT_EQ(fx.ops.size(), 1u);
  EXPECT_EQ(fx.ops[0].kind, ResourceOp::kRollback);
  EXPECT_EQ(fx.ops[0].txid, kT1);
  EXPECT_EQ(fx.ops[0].resource, kRes);
  core_.OnOpDone(fx.ops[0].id, Status::Ok(), now_);
  EXPECT_EQ(StateOf(kT1), "aborted");
  fx = RunUntil(now_ + 10 * kSeconds);
  EXPECT_FALSE(Has(fx.queries, kT1));
}

TEST_F(AgentCoreTest, PreparedBranchNeverGivesUpAsking) {
  Boot();
  MakePrepared(kT1);
  // An hour of every answer that is not a decision: "never allocated" (a
  // coordinator that lost its state must not talk a YES voter into aborting),
  // no leader, a group that cannot be reached, PENDING.
  const std::vector<std::pair<Status, proto::OutcomeResponse>> answers = {
      {Status::Ok(), NeverAllocated()},
      {Status::Ok(), Refused(proto::Code::NOT_LEADER)},
      {Status::Ok(), Refused(proto::Code::UNAVAILABLE)},
      {Status::Timeout("no answer"), proto::OutcomeResponse()},
      {Status::Ok(), Answer(proto::Outcome::PENDING)},
      {Status::Ok(), Answer(proto::Outcome::UNKNOWN)},
  };
  int asked = 0;
  const Micros end = now_ + 3600 * kSeconds;
  while (now_ < end) {
    AgentCoreEffects fx = RunUntil(now_ + 1 * kSeconds);
    EXPECT_TRUE(fx.ops.empty());
    if (!Has(fx.queries, kT1)) continue;
    const auto& [call, response] = answers[asked % answers.size()];
    ++asked;
    fx = core_.OnOutcomeReply(kT1, call, response, now_);
    EXPECT_TRUE(fx.ops.empty()) << "answer " << asked << " moved a prepared branch";
    ASSERT_EQ(StateOf(kT1), "prepared");
  }
  // Backoff caps at query_max (5 s): an hour is at least 720 questions.
  EXPECT_GE(asked, 700);
  EXPECT_EQ(core_.in_doubt_count(), 1u);
  // Then the decision, which is all that moves it.
  AgentCoreEffects fx = core_.OnOutcomeReply(kT1, Status::Ok(), Answer(proto::Outcome::COMMITTED), now_);
  ASSERT_EQ(fx.ops.size(), 1u);
  EXPECT_EQ(fx.ops[0].kind, ResourceOp::kCommit);
}

TEST_F(AgentCoreTest, ActiveBranchKeepsAskingWhileNobodyCanSay) {
  Boot();
  MakeActive(kT1);
  const Micros t0 = now_;
  AgentCoreEffects fx = RunUntil(t0 + 60 * kSeconds + kTick);
  ASSERT_TRUE(Has(fx.queries, kT1));
  fx = core_.OnOutcomeReply(kT1, Status::Ok(), Refused(proto::Code::NOT_LEADER), now_);
  EXPECT_TRUE(fx.ops.empty());
  fx = core_.OnOutcomeReply(kT1, Status::Unavailable("coordinator group unreachable"),
                            proto::OutcomeResponse(), now_);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "active");
  fx = RunUntil(now_ + 2 * kSeconds);
  EXPECT_TRUE(Has(fx.queries, kT1));
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(AgentCoreTest, ActiveBranchOfAnAbortedTxnIsRolledBack) {
  Boot();
  MakeActive(kT1);
  AgentCoreEffects fx = core_.OnOutcomeReply(kT1, Status::Ok(), Answer(proto::Outcome::ABORTED), now_);
  ASSERT_EQ(fx.ops.size(), 1u);
  EXPECT_EQ(fx.ops[0].kind, ResourceOp::kRollback);
}

// ------------------------------------------------------------ start and tick

TEST_F(AgentCoreTest, RecoveryWorkLeavesAtStartAndTheFirstTickAsksAboutInDoubtBranches) {
  RecoveredBranch active;
  active.txid = kT1;
  active.state = BranchState::kActive;
  RecoveredBranch prepared;
  prepared.txid = kT2;
  prepared.state = BranchState::kPrepared;
  core_.OnRecovered(kRes, {active, prepared}, now_);

  AgentCoreEffects fx = core_.Start(now_);
  ASSERT_TRUE(fx.wake_at.has_value());
  EXPECT_EQ(*fx.wake_at, now_ + kTick);
  ASSERT_EQ(fx.ops.size(), 1u);
  EXPECT_EQ(fx.ops[0].kind, ResourceOp::kRollback);
  EXPECT_EQ(fx.ops[0].txid, kT1);
  EXPECT_TRUE(fx.queries.empty());
  EXPECT_TRUE(fx.replies.empty());
  wake_ = *fx.wake_at;

  fx = RunUntil(wake_);
  EXPECT_EQ(fx.queries, std::vector<TxId>{kT2});
}

TEST_F(AgentCoreTest, OnlyStartAndTickArmTheTimer) {
  Boot();
  proto::ExecuteRequest req;
  req.txid = kT1;
  req.resource = kRes;
  req.statements = {Sql("SELECT 1")};
  AgentCoreEffects fx = core_.OnExecute(1, req, now_);
  EXPECT_FALSE(fx.wake_at.has_value());
  ASSERT_EQ(fx.ops.size(), 1u);
  fx = core_.OnExecuteDone(fx.ops[0].id, ExecuteResult(), now_);
  EXPECT_FALSE(fx.wake_at.has_value());
  fx = core_.OnOutcomeReply(kT2, Status::Ok(), Answer(proto::Outcome::ABORTED), now_);
  EXPECT_FALSE(fx.wake_at.has_value());
  fx = core_.Tick(now_ + 7 * kMillis);
  ASSERT_TRUE(fx.wake_at.has_value());
  EXPECT_EQ(*fx.wake_at, now_ + 7 * kMillis + kTick);
}

// ------------------------------------------------ a resource that is missing

TEST_F(AgentCoreTest, AResourceThatDidNotRecoverFailsItsWorkInsideTheCore) {
  core_.OnRecovered(kRes, {}, now_);
  core_.OnRecoveryFailed(kOther, Status::StorageFailed("bank_b: disk I/O error"));
  Boot();

  proto::ExecuteRequest exec;
  exec.txid = kT1;
  exec.resource = kOther;
  exec.statements = {Sql("UPDATE accounts SET balance = balance + 5 WHERE id = 1")};
  AgentCoreEffects fx = core_.OnExecute(1, exec, now_);
  EXPECT_TRUE(fx.ops.empty());
  ASSERT_EQ(fx.replies.size(), 1u);
  const auto* e = std::get_if<proto::ExecuteResponse>(&fx.replies[0].response);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->status.code, proto::Code::STORAGE_FAILED);

  proto::PrepareRequest oneshot;
  oneshot.txid = kT2;
  oneshot.resource = kOther;
  oneshot.__set_work(exec.statements);
  fx = core_.OnPrepare(2, oneshot, now_);
  EXPECT_TRUE(fx.ops.empty());
  ASSERT_EQ(fx.replies.size(), 1u);
  const auto* v = std::get_if<proto::PrepareResponse>(&fx.replies[0].response);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->vote, proto::Vote::NO);

  // The healthy resource works as before.
  exec.resource = kRes;
  fx = core_.OnExecute(3, exec, now_);
  ASSERT_EQ(fx.ops.size(), 1u);
  EXPECT_EQ(fx.ops[0].resource, kRes);
}

// ------------------------------------------------------------ RunResourceOp

class RecordingResource : public ResourceManager {
 public:
  const std::string& name() const override { return name_; }
  Result<std::vector<RecoveredBranch>> Recover() override { return std::vector<RecoveredBranch>(); }
  void Execute(const TxId& txid, std::vector<proto::Statement> statements,
               Callback<ExecuteResult> done) override {
    calls.push_back("execute " + ToString(txid) + " " + std::to_string(statements.size()));
    done(ExecuteResult());
  }
  void Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) override {
    calls.push_back("prepare " + ToString(txid) + " " + std::to_string(info.participants.size()));
    done(Status::Ok());
  }
  void ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                         const PrepareInfo& info, Callback<ExecuteResult> done) override {
    calls.push_back("execute+prepare " + ToString(txid) + " " + std::to_string(statements.size()) +
                    " " + std::to_string(info.participants.size()));
    done(ExecuteResult());
  }
  void Commit(const TxId& txid, Callback<Status> done) override {
    calls.push_back("commit " + ToString(txid));
    done(Status::Ok());
  }
  void Rollback(const TxId& txid, Callback<Status> done) override {
    calls.push_back("rollback " + ToString(txid));
    done(Status::Ok());
  }
  std::vector<std::string> calls;

 private:
  std::string name_ = "bank_a";
};

TEST(RunResourceOpTest, EachKindRunsItsMethodAndReportsThroughItsCallback) {
  RecordingResource rm;
  std::vector<std::string> done;
  auto exec_done = [&](ExecuteResult) { done.push_back("result"); };
  auto status_done = [&](Status) { done.push_back("status"); };
  for (auto kind : {ResourceOp::kExecute, ResourceOp::kExecuteAndPrepare, ResourceOp::kPrepare,
                    ResourceOp::kCommit, ResourceOp::kRollback}) {
    ResourceOp op;
    op.kind = kind;
    op.resource = "bank_a";
    op.txid = kT1;
    op.statements = {Sql("SELECT 1"), Sql("SELECT 2")};
    op.info.participants = {Participant("bank_a", "a:1"), Participant("bank_b", "b:1"),
                            Participant("bank_c", "c:1")};
    RunResourceOp(rm, op, exec_done, status_done);
  }
  EXPECT_EQ(rm.calls, (std::vector<std::string>{"execute 3.1 2", "execute+prepare 3.1 2 3",
                                                "prepare 3.1 3", "commit 3.1", "rollback 3.1"}));
  EXPECT_EQ(done, (std::vector<std::string>{"result", "result", "status", "status", "status"}));
}

}  // namespace
}  // namespace txc::participant
