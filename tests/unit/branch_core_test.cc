// BranchCore: the participant's branch state machine, driven message by
// message. The test plays the resource: it answers each ResourceOp the core
// emits by hand (DESIGN.md, "Transactions and the commit protocols",
// "Timeouts and termination", idempotency).
#include "participant/branch_core.h"

#include <optional>
#include <ostream>

#include <gtest/gtest.h>

#include "tests/support/core_harness.h"

namespace txc::participant {
namespace {

using txc::testing::Participant;
using txc::testing::Rows;
using txc::testing::Sql;

constexpr Micros kT0 = 1000 * kSeconds;
const std::string kRes = "bank_a";
const std::string kOther = "bank_b";
const std::string kRow = "bank_a.accounts id=7";
const std::vector<proto::Participant> kParticipants = {Participant("bank_a", "10.0.0.1:7100"),
                                                       Participant("bank_b", "10.0.0.2:7100")};

AgentOptions TestOptions() {
  AgentOptions o;
  o.lock_timeout = 2 * kSeconds;
  o.active_timeout = 60 * kSeconds;
  o.in_doubt_after = 1 * kSeconds;
  o.query_max = 5 * kSeconds;
  o.final_retention = 30 * kSeconds;
  o.lock_retry = 20 * kMillis;
  o.rollback_retry = 100 * kMillis;
  o.rollback_retry_max = 1 * kSeconds;
  // These tests place ticks a microsecond either side of each deadline; the
  // scan's own spacing is tested by DeadlineScanLooksAtIdleBranchesAtMostEvery.
  o.deadline_scan = 0;
  return o;
}

ExecuteResult Done(bool wrote = true, std::vector<proto::ResultSet> results = {}) {
  ExecuteResult r;
  r.wrote = wrote;
  r.results = std::move(results);
  return r;
}
ExecuteResult Failed(Status s) {
  ExecuteResult r;
  r.status = std::move(s);
  return r;
}
ExecuteResult ConflictWith(const TxId& holder, const std::string& row = kRow) {
  ExecuteResult r;
  r.status = Status::Conflict("row locked");
  r.holder = holder;
  r.conflict = row;
  return r;
}

template <class T>
std::optional<T> FindReply(const AgentEffects& fx, uint64_t token) {
  std::optional<T> found;
  int n = 0;
  for (const auto& r : fx.replies) {
    if (r.token != token) continue;
    ++n;
    if (const T* t = std::get_if<T>(&r.response)) found = *t;
  }
  EXPECT_LE(n, 1) << "more than one reply to token " << token;
  return found;
}
template <class T>
T ReplyTo(const AgentEffects& fx, uint64_t token) {
  std::optional<T> r = FindReply<T>(fx, token);
  if (!r) {
    ADD_FAILURE() << "no reply of the expected type to token " << token;
    return T();
  }
  return *r;
}
proto::ExecuteResponse ExecReply(const AgentEffects& fx, uint64_t token) {
  return ReplyTo<proto::ExecuteResponse>(fx, token);
}
proto::PrepareResponse VoteReply(const AgentEffects& fx, uint64_t token) {
  return ReplyTo<proto::PrepareResponse>(fx, token);
}
proto::DecideResponse DecideReply(const AgentEffects& fx, uint64_t token) {
  return ReplyTo<proto::DecideResponse>(fx, token);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class BranchCoreTest : public ::testing::Test {
 protected:
  BranchCoreTest() : core_({kRes, kOther}, TestOptions()) {}
  explicit BranchCoreTest(AgentOptions options) : core_({kRes, kOther}, options) {}

  AgentEffects Take() { return core_.TakeEffects(); }

  // The single op of `fx`, which must be of `kind` for `txid`.
  ResourceOp OnlyOp(const AgentEffects& fx, ResourceOp::Kind kind, const TxId& txid,
                    const std::string& resource = kRes) {
    EXPECT_EQ(fx.ops.size(), 1u);
    if (fx.ops.size() != 1) return ResourceOp();
    const ResourceOp& op = fx.ops[0];
    EXPECT_EQ(op.kind, kind);
    EXPECT_EQ(op.txid, txid);
    EXPECT_EQ(op.resource, resource);
    return op;
  }

  void Execute(uint64_t token, const TxId& txid, std::vector<proto::Statement> stmts = {Sql("UPDATE accounts SET balance = balance - 5 WHERE id = 7")},
               const std::string& resource = kRes) {
    proto::ExecuteRequest req;
    req.txid = txid;
    req.resource = resource;
    req.statements = std::move(stmts);
    core_.OnExecute(token, req, now_);
  }
  void Prepare(uint64_t token, const TxId& txid, const std::string& resource = kRes) {
    proto::PrepareRequest req;
    req.txid = txid;
    req.resource = resource;
    req.participants = kParticipants;
    core_.OnPrepare(token, req, now_);
  }
  void PrepareWithWork(uint64_t token, const TxId& txid, std::vector<proto::Statement> work,
                       const std::string& resource = kRes) {
    proto::PrepareRequest req;
    req.txid = txid;
    req.resource = resource;
    req.participants = kParticipants;
    req.__set_work(std::move(work));
    core_.OnPrepare(token, req, now_);
  }
  void Decide(uint64_t token, const TxId& txid, proto::Outcome::type outcome,
              const std::string& resource = kRes) {
    proto::DecideRequest req;
    req.txid = txid;
    req.resource = resource;
    req.outcome = outcome;
    core_.OnDecide(token, req, now_);
  }
  void OpDone(const ResourceOp& op, const Status& s = Status::Ok()) { core_.OnOpDone(op.id, s, now_); }
  void ExecDone(const ResourceOp& op, const ExecuteResult& r) { core_.OnExecuteDone(op.id, r, now_); }

  // An ACTIVE branch that has (or has not) written.
  void MakeActive(const TxId& txid, bool wrote = true, const std::string& resource = kRes) {
    Execute(900, txid, {Sql("UPDATE accounts SET balance = 0")}, resource);
    ResourceOp op = OnlyOp(Take(), ResourceOp::kExecute, txid, resource);
    ExecDone(op, Done(wrote));
    ASSERT_EQ(ExecReply(Take(), 900).status.code, proto::Code::OK);
  }
  // A PREPARED branch (YES voted).
  void MakePrepared(const TxId& txid, const std::string& resource = kRes) {
    MakeActive(txid, true, resource);
    Prepare(901, txid, resource);
    ResourceOp op = OnlyOp(Take(), ResourceOp::kPrepare, txid, resource);
    OpDone(op);
    ASSERT_EQ(VoteReply(Take(), 901).vote, proto::Vote::YES);
  }

  // The state the core reports for a branch, "" when it lists none.
  std::string StateOf(const TxId& txid, const std::string& resource = kRes) const {
    for (const auto& b : core_.Branches()) {
      if (b.txid == txid && b.resource == resource) return b.state;
    }
    return "";
  }

  BranchCore core_;
  Micros now_ = kT0;
};

const TxId kT1 = MakeTxId(7, 1);
const TxId kT2 = MakeTxId(7, 2);
const TxId kT5 = MakeTxId(7, 5);
// Older than every 7.x: an interactive statement waits for a lock only
// behind a younger holder (wait-die).
const TxId kW = MakeTxId(6, 2);

// ----------------------------------------------------------------- execute

TEST_F(BranchCoreTest, RequestsForAnUnknownResourceAreRefused) {
  Execute(1, kT1, {Sql("SELECT 1")}, "bank_z");
  Prepare(2, kT1, "bank_z");
  Decide(3, kT1, proto::Outcome::COMMITTED, "bank_z");
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty());
  auto e = ExecReply(fx, 1);
  EXPECT_EQ(e.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(e.status.message, "bank_z")) << e.status.message;
  EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::NO);
  EXPECT_EQ(DecideReply(fx, 3).status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(core_.Branches().empty());
}

TEST_F(BranchCoreTest, ExecuteRunsAnOpAndRepliesWithItsResults) {
  Execute(1, kT1, {Sql("SELECT balance FROM accounts WHERE id = 7"), Sql("UPDATE accounts SET balance = 1")});
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.replies.empty());
  ResourceOp op = OnlyOp(fx, ResourceOp::kExecute, kT1);
  ASSERT_EQ(op.statements.size(), 2u);
  EXPECT_EQ(op.statements[0].sql, "SELECT balance FROM accounts WHERE id = 7");

  ExecDone(op, Done(true, {Rows({"balance"}, 0), Rows({}, 1)}));
  fx = Take();
  auto r = ExecReply(fx, 1);
  EXPECT_EQ(r.status.code, proto::Code::OK);
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[0].columns, std::vector<std::string>{"balance"});
  EXPECT_EQ(r.results[1].rows_changed, 1);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "active");
}

TEST_F(BranchCoreTest, FailedFirstStatementLeavesNoBranchSoPrepareVotesNo) {
  Execute(1, kT1, {Sql("UPDATE acounts SET x = 1")});
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecute, kT1);
  ExecDone(op, Failed(Status::SqlError("bank_a: no such table: acounts")));
  AgentEffects fx = Take();
  auto r = ExecReply(fx, 1);
  EXPECT_EQ(r.status.code, proto::Code::SQL_ERROR);
  EXPECT_TRUE(Contains(r.status.message, "no such table")) << r.status.message;
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "");
  Prepare(2, kT1);
  EXPECT_EQ(VoteReply(Take(), 2).vote, proto::Vote::NO);
}

TEST_F(BranchCoreTest, FailedLaterStatementKeepsEarlierWork) {
  MakeActive(kT1);
  Execute(1, kT1, {Sql("UPDATE acounts SET balance = -1")});
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecute, kT1);
  ExecDone(op, Failed(Status::SqlError("bank_a: no such table: acounts")));
  EXPECT_EQ(ExecReply(Take(), 1).status.code, proto::Code::SQL_ERROR);
  EXPECT_EQ(StateOf(kT1), "active");
  Prepare(2, kT1);
  OnlyOp(Take(), ResourceOp::kPrepare, kT1);
}

// max_branch_statements counts every statement a branch ran, over all its
// Execute calls: a call that would pass it runs nothing, is refused naming
// the count and the limit, and leaves the branch as it was (it still
// prepares and commits what it did).
class BranchStatementLimitTest : public BranchCoreTest {
 protected:
  static AgentOptions WithLimit() {
    AgentOptions o = TestOptions();
    o.max_branch_statements = 5;
    return o;
  }
  BranchStatementLimitTest() : BranchCoreTest(WithLimit()) {}
  static std::vector<proto::Statement> Stmts(size_t n) {
    return std::vector<proto::Statement>(n, Sql("UPDATE accounts SET balance = balance + 1"));
  }
};

TEST_F(BranchStatementLimitTest, ExecutePastTheBranchLimitRunsNothingAndTheBranchStillCommits) {
  Execute(1, kT1, Stmts(3));
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT1), Done(true));
  ASSERT_EQ(ExecReply(Take(), 1).status.code, proto::Code::OK);

  Execute(2, kT1, Stmts(3));
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty()) << "a refused call reached the resource";
  auto r = ExecReply(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(r.status.message, "branch 7.1 on bank_a has run 3 statements; this call's 3 "
                                         "would make 6, past the limit of 5 statements per branch"))
      << r.status.message;
  EXPECT_EQ(StateOf(kT1), "active");

  // Up to the limit still runs; a failed call does not count.
  Execute(3, kT1, Stmts(1));
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT1), Failed(Status::SqlError("bank_a: boom")));
  EXPECT_EQ(ExecReply(Take(), 3).status.code, proto::Code::SQL_ERROR);
  Execute(4, kT1, Stmts(2));
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT1), Done(true));
  EXPECT_EQ(ExecReply(Take(), 4).status.code, proto::Code::OK);
  Execute(5, kT1, Stmts(1));
  EXPECT_EQ(ExecReply(Take(), 5).status.code, proto::Code::INVALID_ARGUMENT);

  Prepare(6, kT1);
  OpDone(OnlyOp(Take(), ResourceOp::kPrepare, kT1));
  EXPECT_EQ(VoteReply(Take(), 6).vote, proto::Vote::YES);
}

TEST_F(BranchStatementLimitTest, RefusedFirstExecuteLeavesNoBranch) {
  Execute(1, kT1, Stmts(6));
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(ExecReply(fx, 1).status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_EQ(StateOf(kT1), "");
}

TEST_F(BranchStatementLimitTest, OneShotPastTheLimitVotesNoWithoutRunningItsWork) {
  PrepareWithWork(1, kT1, Stmts(6));
  AgentEffects fx = Take();
  auto v = VoteReply(fx, 1);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, "past the limit of 5 statements per branch")) << v.reason;
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));  // a tombstone, no kExecuteAndPrepare
  Execute(2, kT1, Stmts(1));
  EXPECT_EQ(ExecReply(Take(), 2).status.code, proto::Code::ABORTED);
}

// A statement that changed another number of rows than it expected, or that
// was interrupted past its deadline, is undone by the resource; its branch
// then votes NO naming why (README.md: SqlExpect), whether or not it did
// earlier work.
struct DoomCase {
  const char* name;
  Status failure;
  friend void PrintTo(const DoomCase& c, std::ostream* os) { *os << c.failure.ToString(); }
};
class BranchDoomTest : public BranchCoreTest, public ::testing::WithParamInterface<DoomCase> {};

TEST_P(BranchDoomTest, FailedStatementAfterEarlierWorkMakesTheBranchVoteNo) {
  const Status failure = GetParam().failure;
  MakeActive(kT1);
  Execute(1, kT1, {Sql("UPDATE accounts SET balance = balance - 5 WHERE id = 7 AND balance >= 5")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT1), Failed(failure));
  EXPECT_EQ(ExecReply(Take(), 1).status.code, txc::testing::CodeOf(failure));
  EXPECT_EQ(StateOf(kT1), "active");  // the client decides when to roll back
  // A further statement is refused: the branch can no longer commit.
  Execute(2, kT1);
  AgentEffects fx = Take();
  auto e = ExecReply(fx, 2);
  EXPECT_EQ(e.status.code, proto::Code::ABORTED);
  EXPECT_TRUE(Contains(e.status.message, failure.message())) << e.status.message;
  EXPECT_TRUE(fx.ops.empty());

  Prepare(3, kT1);
  fx = Take();
  auto v = VoteReply(fx, 3);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, failure.message())) << v.reason;
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));  // the earlier work is undone
  Take();
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_P(BranchDoomTest, FailedFirstStatementMakesTheBranchVoteNoNamingIt) {
  const Status failure = GetParam().failure;
  Execute(1, kT1, {Sql("UPDATE accounts SET balance = balance - 5 WHERE id = 7 AND balance >= 5")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT1), Failed(failure));
  EXPECT_EQ(ExecReply(Take(), 1).status.code, txc::testing::CodeOf(failure));
  Prepare(2, kT1);
  AgentEffects fx = Take();
  auto v = VoteReply(fx, 2);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, failure.message())) << v.reason;
  EXPECT_FALSE(Contains(v.reason, "never executed")) << v.reason;
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));  // the tombstone
  Take();
  EXPECT_EQ(StateOf(kT1), "aborted");
}

INSTANTIATE_TEST_SUITE_P(
    ExpectationOrDeadline, BranchDoomTest,
    ::testing::Values(
        DoomCase{"Expectation",
                 Status::ExpectationFailed("statement 1 (UPDATE accounts SET balance = balance - 5 "
                                           "WHERE id = 7 AND ...) changed 0 rows, expected 1")},
        DoomCase{"Deadline",
                 Status::Timeout("statement 1 (UPDATE accounts SET balance = balance - 5 WHERE "
                                 "id = 7 AND ...) interrupted: it ran past the branch deadline")}),
    [](const ::testing::TestParamInfo<DoomCase>& info) { return std::string(info.param.name); });

TEST_F(BranchCoreTest, RequestsArrivingWhileAnOpIsInFlightRunInOrder) {
  Execute(1, kT1, {Sql("UPDATE a SET x = 1")});
  ResourceOp op1 = OnlyOp(Take(), ResourceOp::kExecute, kT1);
  Execute(2, kT1, {Sql("UPDATE a SET x = 2")});
  Prepare(3, kT1);
  Decide(4, kT1, proto::Outcome::COMMITTED);
  EXPECT_TRUE(Take().empty());  // all three wait for op1

  ExecDone(op1, Done());
  AgentEffects fx = Take();
  EXPECT_EQ(ExecReply(fx, 1).status.code, proto::Code::OK);
  ResourceOp op2 = OnlyOp(fx, ResourceOp::kExecute, kT1);
  ASSERT_EQ(op2.statements.size(), 1u);
  EXPECT_EQ(op2.statements[0].sql, "UPDATE a SET x = 2");
  EXPECT_EQ(fx.replies.size(), 1u);

  ExecDone(op2, Done());
  fx = Take();
  EXPECT_EQ(ExecReply(fx, 2).status.code, proto::Code::OK);
  ResourceOp op3 = OnlyOp(fx, ResourceOp::kPrepare, kT1);

  OpDone(op3);
  fx = Take();
  EXPECT_EQ(VoteReply(fx, 3).vote, proto::Vote::YES);
  ResourceOp op4 = OnlyOp(fx, ResourceOp::kCommit, kT1);
  EXPECT_FALSE(FindReply<proto::DecideResponse>(fx, 4).has_value());

  OpDone(op4);
  EXPECT_EQ(DecideReply(Take(), 4).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "committed");
}

TEST_F(BranchCoreTest, LateCompletionsAndUnknownOpIdsAreIgnored) {
  MakeActive(kT1);
  core_.OnOpDone(12345, Status::Ok(), now_);
  core_.OnExecuteDone(12345, Done(), now_);
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(StateOf(kT1), "active");
}

// ------------------------------------------------------------------- votes

TEST_F(BranchCoreTest, InteractivePrepareVotesYesOnlyOncePreparedIsDurable) {
  MakeActive(kT1);
  Prepare(2, kT1);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.replies.empty());  // not before the PREPARED record is on disk
  ResourceOp op = OnlyOp(fx, ResourceOp::kPrepare, kT1);
  EXPECT_EQ(op.info.participants, kParticipants);
  EXPECT_EQ(op.info.protocol, proto::Protocol::TWO_PC);
  core_.Tick(now_ + 10 * kSeconds);  // nothing else happens meanwhile
  EXPECT_TRUE(Take().empty());

  OpDone(op);
  fx = Take();
  auto v = VoteReply(fx, 2);
  EXPECT_EQ(v.status.code, proto::Code::OK);
  EXPECT_EQ(v.vote, proto::Vote::YES);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "prepared");
  EXPECT_EQ(core_.in_doubt_count(), 1u);
}

TEST_F(BranchCoreTest, FailedPrepareVotesNoAndRollsBack) {
  MakeActive(kT1);
  Prepare(2, kT1);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kPrepare, kT1);
  OpDone(op, Status::StorageFailed("fsync: I/O error"));
  AgentEffects fx = Take();
  auto v = VoteReply(fx, 2);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, "fsync: I/O error")) << v.reason;
  ResourceOp rb = OnlyOp(fx, ResourceOp::kRollback, kT1);
  OpDone(rb);
  Take();
  EXPECT_EQ(StateOf(kT1), "aborted");
  Execute(3, kT1);
  EXPECT_EQ(ExecReply(Take(), 3).status.code, proto::Code::ABORTED);
}

TEST_F(BranchCoreTest, PrepareWithoutABranchVotesNoAndLeavesATombstone) {
  Prepare(1, kT1);
  AgentEffects fx = Take();
  auto v = VoteReply(fx, 1);
  EXPECT_EQ(v.status.code, proto::Code::OK);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, "7.1")) << v.reason;
  ResourceOp rb = OnlyOp(fx, ResourceOp::kRollback, kT1);  // the resource's tombstone
  EXPECT_EQ(StateOf(kT1), "aborting");  // aborted once the tombstone is written

  // A late execute (the client's request overtaken by the PREPARE) is refused.
  Execute(2, kT1);
  OpDone(rb);
  fx = Take();
  auto e = ExecReply(fx, 2);
  EXPECT_EQ(e.status.code, proto::Code::ABORTED);
  EXPECT_TRUE(Contains(e.status.message, "already aborted")) << e.status.message;
  EXPECT_TRUE(fx.ops.empty());
  // PREPARE again: the same vote.
  Prepare(3, kT1);
  fx = Take();
  EXPECT_EQ(VoteReply(fx, 3).vote, proto::Vote::NO);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, ReadOnlyBranchVotesReadOnlyAndReleasesAtOnce) {
  MakeActive(kT1, /*wrote=*/false);
  Prepare(2, kT1);
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::READ_ONLY);
  OnlyOp(fx, ResourceOp::kCommit, kT1);  // releases its locks
  EXPECT_EQ(core_.in_doubt_count(), 0u);
  core_.Tick(now_ + 20 * kSeconds);
  EXPECT_TRUE(Take().queries.empty());  // it takes no part in phase 2: nothing to ask
}

TEST_F(BranchCoreTest, DuplicatePrepareOfAReadOnlyBranchVotesReadOnlyAgain) {
  MakeActive(kT1, /*wrote=*/false);
  Prepare(2, kT1);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kCommit, kT1);
  Prepare(3, kT1);  // queued behind the release
  OpDone(op);
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 3).vote, proto::Vote::READ_ONLY);
  EXPECT_TRUE(fx.ops.empty());
  Prepare(4, kT1);
  EXPECT_EQ(VoteReply(Take(), 4).vote, proto::Vote::READ_ONLY);
}

TEST_F(BranchCoreTest, DuplicatePrepareOfAPreparedBranchVotesYesAgain) {
  MakePrepared(kT1);
  Prepare(2, kT1);
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::YES);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, ExecuteOnAPreparedBranchIsRefused) {
  MakePrepared(kT1);
  Execute(2, kT1);
  AgentEffects fx = Take();
  EXPECT_EQ(ExecReply(fx, 2).status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "prepared");
}

TEST_F(BranchCoreTest, ExecuteOnACommittedBranchIsRefused) {
  MakePrepared(kT1);
  Decide(1, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  Take();
  Execute(2, kT1);
  AgentEffects fx = Take();
  EXPECT_EQ(ExecReply(fx, 2).status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(fx.ops.empty());
}

// ---------------------------------------------------------------- one-shot

TEST_F(BranchCoreTest, OneShotPrepareExecutesAndPreparesInOneOp) {
  PrepareWithWork(1, kT1, {Sql("UPDATE accounts SET balance = balance + 5 WHERE id = 7")});
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.replies.empty());
  ResourceOp op = OnlyOp(fx, ResourceOp::kExecuteAndPrepare, kT1);
  ASSERT_EQ(op.statements.size(), 1u);
  EXPECT_EQ(op.info.participants, kParticipants);
  ExecDone(op, Done(true));
  fx = Take();
  EXPECT_EQ(VoteReply(fx, 1).vote, proto::Vote::YES);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "prepared");
  Decide(2, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
}

TEST_F(BranchCoreTest, OneShotThatOnlyReadVotesReadOnly) {
  PrepareWithWork(1, kT1, {Sql("SELECT 1")});
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT1);
  ExecDone(op, Done(false));
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 1).vote, proto::Vote::READ_ONLY);
  OnlyOp(fx, ResourceOp::kCommit, kT1);
  EXPECT_EQ(core_.in_doubt_count(), 0u);
}

TEST_F(BranchCoreTest, FailedOneShotVotesNoAndLeavesATombstone) {
  PrepareWithWork(1, kT1, {Sql("UPDATE accounts SET balance = -1")});
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT1);
  ExecDone(op, Failed(Status::SqlError("CHECK constraint failed: balance >= 0")));
  AgentEffects fx = Take();
  auto v = VoteReply(fx, 1);
  EXPECT_EQ(v.status.code, proto::Code::OK);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, "CHECK constraint failed")) << v.reason;
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  Execute(2, kT1);
  EXPECT_EQ(ExecReply(Take(), 2).status.code, proto::Code::ABORTED);
}

TEST_F(BranchCoreTest, OneShotPrepareOfAnAbortedBranchVotesNoWithoutRunningTheWork) {
  Decide(1, kT1, proto::Outcome::ABORTED);  // the ABORT overtook the PREPARE
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  Take();
  PrepareWithWork(2, kT1, {Sql("UPDATE accounts SET balance = 1")});
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::NO);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, DuplicateOneShotPrepareOfAPreparedBranchDoesNotRunTheWorkTwice) {
  PrepareWithWork(1, kT1, {Sql("UPDATE accounts SET balance = balance + 5")});
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT1);
  PrepareWithWork(2, kT1, {Sql("UPDATE accounts SET balance = balance + 5")});
  EXPECT_TRUE(Take().empty());
  ExecDone(op, Done(true));
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 1).vote, proto::Vote::YES);
  EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::YES);
  EXPECT_TRUE(fx.ops.empty());
}

// -------------------------------------------------------------- lock waits

TEST_F(BranchCoreTest, ConflictingExecuteWaitsAndRetriesWhenTheHolderCommits) {
  MakePrepared(kT1);
  Execute(10, kW, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ResourceOp w1 = OnlyOp(Take(), ResourceOp::kExecute, kW);
  ExecDone(w1, ConflictWith(kT1));
  EXPECT_TRUE(Take().empty());  // parked: no reply, no op

  Decide(11, kT1, proto::Outcome::COMMITTED);
  ResourceOp h = OnlyOp(Take(), ResourceOp::kCommit, kT1);
  OpDone(h);
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 11).status.code, proto::Code::OK);
  ResourceOp w2 = OnlyOp(fx, ResourceOp::kExecute, kW);  // woken at once
  EXPECT_NE(w2.id, w1.id);
  ASSERT_EQ(w2.statements.size(), 1u);
  EXPECT_EQ(w2.statements[0].sql, "UPDATE accounts SET balance = 1 WHERE id = 7");
  EXPECT_FALSE(FindReply<proto::ExecuteResponse>(fx, 10).has_value());

  ExecDone(w2, Done());
  fx = Take();
  EXPECT_EQ(ExecReply(fx, 10).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kW), "active");
}

// Wait-die for interactive statements: a younger transaction meeting an
// older, undecided holder does not wait (a cycle across agents could form);
// its branch here is rolled back at once, releasing its locks, and the
// client is told to retry.
TEST_F(BranchCoreTest, YoungerInteractiveStatementDiesAtOnceBehindAnOlderHolder) {
  MakeActive(kT2);
  Execute(10, kT2, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT2), ConflictWith(kT1));
  AgentEffects fx = Take();
  auto r = ExecReply(fx, 10);
  EXPECT_EQ(r.status.code, proto::Code::ABORTED);
  EXPECT_TRUE(Contains(r.status.message, "held by older transaction 7.1 (wait-die)")) << r.status.message;
  EXPECT_TRUE(Contains(r.status.message, "retry")) << r.status.message;
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT2));  // its earlier work undone, locks released
  Take();
  EXPECT_EQ(StateOf(kT2), "aborted");
  EXPECT_EQ(core_.counters().wait_die_refusals, 1u);
  EXPECT_EQ(core_.counters().lock_waits, 0u);
  Prepare(11, kT2);
  EXPECT_EQ(VoteReply(Take(), 11).vote, proto::Vote::NO);
}

// ...but behind an older holder whose decision has reached this agent it
// waits: that transaction waits for nothing, so no cycle goes through it.
TEST_F(BranchCoreTest, YoungerInteractiveStatementWaitsBehindADecidedOlderHolder) {
  MakePrepared(kT1);
  Decide(11, kT1, proto::Outcome::COMMITTED);
  ResourceOp commit = OnlyOp(Take(), ResourceOp::kCommit, kT1);
  Execute(10, kT2, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT2), ConflictWith(kT1));
  EXPECT_TRUE(Take().empty());  // parked
  OpDone(commit);
  AgentEffects fx = Take();
  OnlyOp(fx, ResourceOp::kExecute, kT2);  // woken
  EXPECT_EQ(core_.counters().wait_die_refusals, 0u);
}

TEST_F(BranchCoreTest, ConflictingExecuteRetriesWhenTheHolderRollsBack) {
  MakeActive(kT1);
  Execute(10, kW);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kW), ConflictWith(kT1));
  Decide(11, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 11).status.code, proto::Code::OK);
  OnlyOp(fx, ResourceOp::kExecute, kW);
}

TEST_F(BranchCoreTest, WakingTheWaitersOfOneResourceLeavesTheOthersParked) {
  MakePrepared(kT1, kOther);
  Execute(10, kW);  // on bank_a, blocked by 7.1 there (a branch this agent does not know)
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kW), ConflictWith(kT1));
  Decide(11, kT1, proto::Outcome::COMMITTED, kOther);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1, kOther));
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 11).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, ParkedExecuteRetriesAfterLockRetryWithoutAWakeUp) {
  Execute(10, kT2);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT2), ConflictWith(kT5));
  core_.Tick(now_ + 20 * kMillis - 1);
  EXPECT_TRUE(Take().empty());
  core_.Tick(now_ + 20 * kMillis);
  ResourceOp retry = OnlyOp(Take(), ResourceOp::kExecute, kT2);
  ExecDone(retry, Done());
  EXPECT_EQ(ExecReply(Take(), 10).status.code, proto::Code::OK);
}

TEST_F(BranchCoreTest, ParkedExecuteFailsWithLockTimeoutNamingHolderAndRow) {
  Execute(10, kW);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kW), ConflictWith(kT1));
  // Retries keep finding the row locked.
  now_ += 2 * kSeconds - 1;
  core_.Tick(now_);
  ResourceOp retry = OnlyOp(Take(), ResourceOp::kExecute, kW);
  ExecDone(retry, ConflictWith(kT1));
  EXPECT_TRUE(Take().empty());
  now_ += 1;
  core_.Tick(now_);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty());
  auto r = ExecReply(fx, 10);
  EXPECT_EQ(r.status.code, proto::Code::LOCK_TIMEOUT);
  EXPECT_TRUE(Contains(r.status.message, kRow)) << r.status.message;
  EXPECT_TRUE(Contains(r.status.message, "held by txn 7.1")) << r.status.message;
  EXPECT_TRUE(Contains(r.status.message, "2000 ms")) << r.status.message;
  // Nothing was done for 7.2 here: it leaves no branch behind.
  EXPECT_EQ(StateOf(kW), "");
  core_.Tick(now_ + 1 * kSeconds);
  EXPECT_TRUE(Take().empty());
}

TEST_F(BranchCoreTest, ConflictReportedAfterTheLockTimeoutFailsAtOnce) {
  Execute(10, kW);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecute, kW);
  now_ += 2 * kSeconds;  // a slow resource answers late
  ExecDone(op, ConflictWith(kT1));
  auto r = ExecReply(Take(), 10);
  EXPECT_EQ(r.status.code, proto::Code::LOCK_TIMEOUT);
  EXPECT_TRUE(Contains(r.status.message, "7.1")) << r.status.message;
}

TEST_F(BranchCoreTest, LockTimeoutOfALaterStatementKeepsTheBranchActive) {
  MakeActive(kW);
  Execute(10, kW);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kW), ConflictWith(kT1));
  Prepare(11, kW);  // waits behind the parked statement
  EXPECT_TRUE(Take().empty());
  now_ += 2 * kSeconds;
  core_.Tick(now_);
  AgentEffects fx = Take();
  EXPECT_EQ(ExecReply(fx, 10).status.code, proto::Code::LOCK_TIMEOUT);
  OnlyOp(fx, ResourceOp::kPrepare, kW);  // the earlier work can still commit
  EXPECT_FALSE(FindReply<proto::PrepareResponse>(fx, 11).has_value());
}

TEST_F(BranchCoreTest, YoungerOneShotDiesAtOnceOnConflict) {
  PrepareWithWork(1, kT2, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT2);
  ExecDone(op, ConflictWith(kT1));  // held by an older txn
  AgentEffects fx = Take();
  auto v = VoteReply(fx, 1);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, "wait-die")) << v.reason;
  EXPECT_TRUE(Contains(v.reason, "7.1")) << v.reason;
  EXPECT_TRUE(Contains(v.reason, kRow)) << v.reason;
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT2));
  EXPECT_EQ(StateOf(kT2), "aborted");
}

TEST_F(BranchCoreTest, OlderOneShotWaitsForAYoungerHolder) {
  MakePrepared(kT5);
  PrepareWithWork(1, kT2, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ResourceOp op = OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT2);
  ExecDone(op, ConflictWith(kT5));
  EXPECT_TRUE(Take().empty());  // waits
  Decide(2, kT5, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT5));
  AgentEffects fx = Take();
  ResourceOp retry = OnlyOp(fx, ResourceOp::kExecuteAndPrepare, kT2);
  ASSERT_EQ(retry.statements.size(), 1u);
  EXPECT_EQ(retry.statements[0].sql, "UPDATE accounts SET balance = 1 WHERE id = 7");
  ExecDone(retry, Done(true));
  EXPECT_EQ(VoteReply(Take(), 1).vote, proto::Vote::YES);
  EXPECT_EQ(StateOf(kT2), "prepared");
}

TEST_F(BranchCoreTest, OlderOneShotVotesNoWhenTheLockTimesOut) {
  PrepareWithWork(1, kT2, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT2), ConflictWith(kT5));
  now_ += 2 * kSeconds;
  core_.Tick(now_);
  AgentEffects fx = Take();
  auto v = VoteReply(fx, 1);
  EXPECT_EQ(v.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(v.reason, "lock timeout")) << v.reason;
  OnlyOp(fx, ResourceOp::kRollback, kT2);
}

TEST_F(BranchCoreTest, CountersCountWaitsOncePerRequestAndEveryRefusalAndTimeout) {
  // A statement parks, retries twice into the same lock, then times out:
  // one wait, one timeout.
  Execute(10, kW);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kW), ConflictWith(kT1));
  for (int i = 0; i < 2; ++i) {
    now_ += 20 * kMillis;
    core_.Tick(now_);
    ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kW), ConflictWith(kT1));
  }
  EXPECT_EQ(core_.counters().lock_waits, 1u);
  EXPECT_EQ(core_.counters().lock_timeouts, 0u);
  now_ += 2 * kSeconds;
  core_.Tick(now_);
  EXPECT_EQ(ExecReply(Take(), 10).status.code, proto::Code::LOCK_TIMEOUT);
  EXPECT_EQ(core_.counters().lock_waits, 1u);
  EXPECT_EQ(core_.counters().lock_timeouts, 1u);

  // A younger one-shot dies at once: a wait-die refusal and a NO vote, no wait.
  PrepareWithWork(11, kT5, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT5), ConflictWith(kT1));
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 11).vote, proto::Vote::NO);
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT5));
  Take();
  EXPECT_EQ(core_.counters().wait_die_refusals, 1u);
  EXPECT_EQ(core_.counters().lock_waits, 1u);
  EXPECT_EQ(core_.counters().votes_no, 1u);
  EXPECT_EQ(core_.counters().rollbacks, 1u);

  // A statement the resource interrupted.
  const TxId t8 = MakeTxId(7, 8);
  Execute(12, t8);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, t8), Failed(Status::Timeout("interrupted")));
  EXPECT_EQ(ExecReply(Take(), 12).status.code, proto::Code::TIMEOUT);
  EXPECT_EQ(core_.counters().statement_timeouts, 1u);

  // A YES vote (a duplicate PREPARE is answered, and counted, again), a
  // commit, a failed rollback attempt then a good one.
  const TxId t9 = MakeTxId(7, 9);
  MakePrepared(t9);
  Prepare(13, t9);
  EXPECT_EQ(VoteReply(Take(), 13).vote, proto::Vote::YES);
  EXPECT_EQ(core_.counters().votes_yes, 2u);
  Decide(14, t9, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, t9));
  Take();
  EXPECT_EQ(core_.counters().commits, 1u);
  const TxId t10 = MakeTxId(7, 10);
  MakeActive(t10);
  Decide(15, t10, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, t10), Status::Unavailable("database is locked"));
  Take();
  EXPECT_EQ(core_.counters().rollback_failures, 1u);
  now_ += 100 * kMillis;
  core_.Tick(now_);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, t10));
  Take();
  EXPECT_EQ(core_.counters().rollback_failures, 1u);
  EXPECT_EQ(core_.counters().rollbacks, 2u);
}

TEST_F(BranchCoreTest, AbortWhileParkedCancelsTheWait) {
  MakePrepared(kT1);
  Execute(10, kT2);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT2), ConflictWith(kT1));
  Decide(11, kT2, proto::Outcome::ABORTED);
  AgentEffects fx = Take();
  auto e = ExecReply(fx, 10);  // answered at once, not after the lock timeout
  EXPECT_EQ(e.status.code, proto::Code::ABORTED);
  ResourceOp rb = OnlyOp(fx, ResourceOp::kRollback, kT2);
  EXPECT_FALSE(FindReply<proto::DecideResponse>(fx, 11).has_value());
  OpDone(rb);
  EXPECT_EQ(DecideReply(Take(), 11).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT2), "aborted");

  // The holder finishing, or the clock, wakes nothing any more.
  Decide(12, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 12).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
  core_.Tick(now_ + 3 * kSeconds);
  EXPECT_TRUE(Take().empty());
}

TEST_F(BranchCoreTest, AbortWhileAOneShotIsParkedVotesNo) {
  PrepareWithWork(1, kT2, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT2), ConflictWith(kT5));
  Decide(2, kT2, proto::Outcome::ABORTED);
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 1).vote, proto::Vote::NO);
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT2));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
}

// -------------------------------------------------------------- decisions

TEST_F(BranchCoreTest, CommitOfAPreparedBranchIsAckedOnlyOnceDurable) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.replies.empty());
  ResourceOp op = OnlyOp(fx, ResourceOp::kCommit, kT1);
  OpDone(op);
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "committed");
  EXPECT_EQ(core_.in_doubt_count(), 0u);
}

TEST_F(BranchCoreTest, FailedCommitIsReportedAndTheBranchStaysInDoubt) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1), Status::StorageFailed("disk gone"));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::STORAGE_FAILED);
  EXPECT_EQ(StateOf(kT1), "prepared");
  Decide(3, kT1, proto::Outcome::COMMITTED);  // the coordinator resends
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(DecideReply(Take(), 3).status.code, proto::Code::OK);
}

TEST_F(BranchCoreTest, DuplicateCommitIsAcked) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kCommit, kT1);
  Decide(3, kT1, proto::Outcome::COMMITTED);  // while the first is in flight
  EXPECT_TRUE(Take().empty());
  OpDone(op);
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::OK);
  EXPECT_EQ(DecideReply(fx, 3).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
  Decide(4, kT1, proto::Outcome::COMMITTED);
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 4).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, AbortRollsBackAndDuplicateAbortIsAcked) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::ABORTED);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.replies.empty());
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "aborted");
  Decide(3, kT1, proto::Outcome::ABORTED);
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 3).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, AbortOfAnActiveBranchRollsItBack) {
  MakeActive(kT1);
  Decide(2, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
  Prepare(3, kT1);
  EXPECT_EQ(VoteReply(Take(), 3).vote, proto::Vote::NO);
}

TEST_F(BranchCoreTest, AbortBeforeAnyWorkLeavesATombstone) {
  Decide(1, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(DecideReply(Take(), 1).status.code, proto::Code::OK);
  Execute(2, kT1);
  AgentEffects fx = Take();
  EXPECT_EQ(ExecReply(fx, 2).status.code, proto::Code::ABORTED);
  EXPECT_TRUE(fx.ops.empty());
  Prepare(3, kT1);
  EXPECT_EQ(VoteReply(Take(), 3).vote, proto::Vote::NO);
}

TEST_F(BranchCoreTest, CommitOfAnAbortedBranchIsRefused) {
  MakeActive(kT1);
  Decide(1, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  Take();
  Decide(2, kT1, proto::Outcome::COMMITTED);
  AgentEffects fx = Take();
  auto r = DecideReply(fx, 2);
  EXPECT_NE(r.status.code, proto::Code::OK);
  EXPECT_TRUE(Contains(r.status.message, "aborted")) << r.status.message;
  // Marked as a refusal, so the coordinator records a heuristic hazard.
  EXPECT_TRUE(r.__isset.refused && r.refused);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, AbortOfACommittedBranchIsRefused) {
  MakePrepared(kT1);
  Decide(1, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  Take();
  Decide(2, kT1, proto::Outcome::ABORTED);
  AgentEffects fx = Take();
  auto r = DecideReply(fx, 2);
  EXPECT_NE(r.status.code, proto::Code::OK);
  EXPECT_TRUE(r.__isset.refused && r.refused);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "committed");
}

TEST_F(BranchCoreTest, AbortOfAReadOnlyBranchIsAcknowledged) {
  // A read-only voter has nothing to undo; an ABORT that reaches it anyway
  // (e.g. its vote was lost and counted as NO) is simply acknowledged.
  MakeActive(kT1, /*wrote=*/false);
  Prepare(1, kT1);
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 1).vote, proto::Vote::READ_ONLY);
  OpDone(OnlyOp(fx, ResourceOp::kCommit, kT1));
  Take();
  Decide(2, kT1, proto::Outcome::ABORTED);
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, CommitOfABranchNeverPreparedIsRefused) {
  MakeActive(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::INVALID_ARGUMENT);
  // Not (yet) a disagreement: the coordinator retries; the branch times out
  // and aborts, and the next COMMIT is then refused as a hazard.
  EXPECT_FALSE(DecideReply(fx, 2).__isset.refused);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "active");
}

TEST_F(BranchCoreTest, DecisionOtherThanCommitOrAbortIsRefused) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::PENDING);
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "prepared");
}

// -------------------------------------------------------- failed rollbacks

TEST_F(BranchCoreTest, FailedRollbackOfAnAbortIsRetriedWithBackoffUntilItSucceeds) {
  MakePrepared(kT1);
  const Micros t0 = now_;
  Decide(2, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
  AgentEffects fx = Take();
  auto r = DecideReply(fx, 2);
  EXPECT_NE(r.status.code, proto::Code::OK);  // the coordinator keeps delivering
  EXPECT_TRUE(Contains(r.status.message, "database is locked")) << r.status.message;
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(StateOf(kT1), "aborting");
  EXPECT_EQ(core_.in_doubt_count(), 0u);  // decided: nothing to ask

  // Retries after 100 ms, 200 ms, 400 ms, 800 ms, then every 1 s (the cap).
  Micros at = t0;
  for (Micros wait : {100 * kMillis, 200 * kMillis, 400 * kMillis, 800 * kMillis, 1 * kSeconds,
                      1 * kSeconds}) {
    core_.Tick(at + wait - 1);
    EXPECT_TRUE(Take().empty()) << wait;
    at += wait;
    now_ = at;
    core_.Tick(at);
    OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
    fx = Take();
    EXPECT_TRUE(fx.replies.empty());
    EXPECT_EQ(StateOf(kT1), "aborting");
  }
  now_ = at + 1 * kSeconds;
  core_.Tick(now_);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
  core_.Tick(now_ + 5 * kSeconds);
  EXPECT_TRUE(Take().ops.empty());
  // The coordinator's resent ABORT is acknowledged now.
  Decide(3, kT1, proto::Outcome::ABORTED);
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 3).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
}

TEST_F(BranchCoreTest, ResentAbortDuringFailingRollbackTriesAgainAndIsAckedOnlyOnSuccess) {
  MakeActive(kT1);
  Decide(1, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
  EXPECT_NE(DecideReply(Take(), 1).status.code, proto::Code::OK);
  Decide(2, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
  EXPECT_NE(DecideReply(Take(), 2).status.code, proto::Code::OK);
  // Meanwhile the branch is refused as aborted, and cannot be committed.
  Execute(3, kT1);
  EXPECT_EQ(ExecReply(Take(), 3).status.code, proto::Code::ABORTED);
  Prepare(4, kT1);
  EXPECT_EQ(VoteReply(Take(), 4).vote, proto::Vote::NO);
  Decide(5, kT1, proto::Outcome::COMMITTED);
  EXPECT_NE(DecideReply(Take(), 5).status.code, proto::Code::OK);
  Decide(6, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(DecideReply(Take(), 6).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, FailedRollbackAfterANoVoteIsRetried) {
  // The one-shot NO vote path: the branch is not ABORTED until its undo ran.
  PrepareWithWork(1, kT1, {Sql("UPDATE accounts SET balance = -1")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT1),
           Failed(Status::SqlError("CHECK constraint failed: balance >= 0")));
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 1).vote, proto::Vote::NO);
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
  Take();
  EXPECT_EQ(StateOf(kT1), "aborting");
  core_.Tick(now_ + 100 * kMillis);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, FailedRollbackAfterAFailedPrepareIsRetried) {
  MakeActive(kT1);
  Prepare(1, kT1);
  OpDone(OnlyOp(Take(), ResourceOp::kPrepare, kT1), Status::StorageFailed("fsync: I/O error"));
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 1).vote, proto::Vote::NO);
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1), Status::StorageFailed("fsync: I/O error"));
  Take();
  EXPECT_EQ(StateOf(kT1), "aborting");
  core_.Tick(now_ + 100 * kMillis);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, FailedRollbackOfARecoveredActiveBranchIsRetried) {
  RecoveredBranch r;
  r.txid = kT1;
  r.state = BranchState::kActive;
  core_.OnRecovered(kRes, {r}, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
  EXPECT_EQ(StateOf(kT1), "aborting");
  core_.Tick(now_ + 100 * kMillis);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.queries.empty());  // it is not asking: it already decided
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, LockWaitersOfAFailingRollbackWakeOnlyWhenItSucceeds) {
  MakeActive(kT1);
  Execute(10, kW);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kW), ConflictWith(kT1));
  Decide(11, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
  AgentEffects fx = Take();
  for (const auto& op : fx.ops) EXPECT_NE(op.txid, kW) << "woken while the locks are held";
  now_ += 100 * kMillis;
  core_.Tick(now_);
  fx = Take();
  ResourceOp rb;
  for (const auto& op : fx.ops) {
    if (op.txid == kT1) rb = op;
  }
  ASSERT_EQ(rb.kind, ResourceOp::kRollback);
  // Let the waiter's own lock_retry attempts settle first.
  for (const auto& op : fx.ops) {
    if (op.txid == kW) ExecDone(op, ConflictWith(kT1));
  }
  Take();
  OpDone(rb);
  fx = Take();
  bool woken = false;
  for (const auto& op : fx.ops) woken = woken || (op.txid == kW && op.kind == ResourceOp::kExecute);
  EXPECT_TRUE(woken);
}

TEST_F(BranchCoreTest, FailingRollbackIsShownAndLogged) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1),
         Status::Internal("undo of bank_a.users id=1 would break UNIQUE(email)"));
  AgentEffects fx = Take();
  ASSERT_EQ(fx.logs.size(), 1u);
  EXPECT_EQ(fx.logs[0].level, AgentLogLine::kWarn);
  EXPECT_TRUE(Contains(fx.logs[0].message, "txid=7.1")) << fx.logs[0].message;
  EXPECT_TRUE(Contains(fx.logs[0].message, "UNIQUE(email)")) << fx.logs[0].message;
  EXPECT_TRUE(Contains(fx.logs[0].message, "attempt=1")) << fx.logs[0].message;
  auto view = core_.Branches();
  ASSERT_EQ(view.size(), 1u);
  EXPECT_EQ(view[0].state, "aborting");
  EXPECT_EQ(view[0].rollback_failures, 1);
  EXPECT_TRUE(Contains(view[0].rollback_error, "UNIQUE(email)")) << view[0].rollback_error;

  core_.Tick(now_ + 100 * kMillis);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1), Status::Unavailable("database is locked"));
  view = core_.Branches();
  EXPECT_EQ(view[0].rollback_failures, 2);
  EXPECT_TRUE(Contains(view[0].rollback_error, "database is locked")) << view[0].rollback_error;
  Take();
  core_.Tick(now_ + 300 * kMillis);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  fx = Take();
  ASSERT_EQ(fx.logs.size(), 1u);
  EXPECT_EQ(fx.logs[0].level, AgentLogLine::kInfo);
  EXPECT_TRUE(Contains(fx.logs[0].message, "rollback succeeded")) << fx.logs[0].message;
  view = core_.Branches();
  EXPECT_EQ(view[0].state, "aborted");
  EXPECT_EQ(view[0].rollback_failures, 0);
}

// ---------------------------------------------------------------- recovery

TEST_F(BranchCoreTest, RecoveryRollsBackActiveBranches) {
  RecoveredBranch r;
  r.txid = kT1;
  r.state = BranchState::kActive;
  core_.OnRecovered(kRes, {r}, now_);
  AgentEffects fx = Take();
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  EXPECT_TRUE(fx.queries.empty());
  EXPECT_TRUE(Take().replies.empty());  // internal work: nobody to answer
  EXPECT_EQ(StateOf(kT1), "aborted");
  Execute(2, kT1);  // the client's next statement learns it is gone
  EXPECT_EQ(ExecReply(Take(), 2).status.code, proto::Code::ABORTED);
  Prepare(3, kT1);
  EXPECT_EQ(VoteReply(Take(), 3).vote, proto::Vote::NO);
}

TEST_F(BranchCoreTest, RecoveredPreparedBranchAsksAtOnceThenWithBackoff) {
  RecoveredBranch r;
  r.txid = kT1;
  r.state = BranchState::kPrepared;
  r.info.participants = kParticipants;
  core_.OnRecovered(kRes, {r}, now_);
  EXPECT_TRUE(Take().ops.empty());  // in doubt: locks held, nothing undone
  EXPECT_EQ(StateOf(kT1), "prepared");
  EXPECT_EQ(core_.in_doubt_count(), 1u);

  const Micros t0 = now_;
  core_.Tick(t0);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
  // Then after 1 s, 2 s, 4 s, and every 5 s (query_max) after that.
  struct Step { Micros at; bool asks; };
  for (Step s : {Step{t0 + 1 * kSeconds - 1, false}, Step{t0 + 1 * kSeconds, true},
                 Step{t0 + 3 * kSeconds - 1, false}, Step{t0 + 3 * kSeconds, true},
                 Step{t0 + 7 * kSeconds - 1, false}, Step{t0 + 7 * kSeconds, true},
                 Step{t0 + 12 * kSeconds - 1, false}, Step{t0 + 12 * kSeconds, true},
                 Step{t0 + 17 * kSeconds, true}}) {
    core_.Tick(s.at);
    EXPECT_EQ(Take().queries.size(), s.asks ? 1u : 0u) << (s.at - t0);
  }
}

// The product's setting: Tick looks at every live branch at most every
// deadline_scan (a deadline is served up to that late), and at parked
// branches on every tick.
TEST_F(BranchCoreTest, DeadlineScanLooksAtIdleBranchesAtMostEvery) {
  AgentOptions o = TestOptions();
  o.deadline_scan = 50 * kMillis;
  BranchCore core({kRes, kOther}, o);
  RecoveredBranch r;
  r.txid = kT1;
  r.state = BranchState::kPrepared;
  r.info.participants = kParticipants;
  core.OnRecovered(kRes, {r}, now_);
  (void)core.TakeEffects();
  const Micros t0 = now_;
  core.Tick(t0);  // the first tick scans: a recovered in-doubt branch asks at once
  EXPECT_EQ(core.TakeEffects().queries, std::vector<TxId>{kT1});
  // Its next query is due at t0 + 1 s. Ticks every 5 ms scan only every 50 ms:
  // the scan at t0 + 1 s - 10 ms finds it not due, the next one (t0 + 1.04 s)
  // asks, 40 ms late.
  Micros asked_at = 0;
  for (Micros t = t0 + 5 * kMillis; t <= t0 + 1200 * kMillis && asked_at == 0; t += 5 * kMillis) {
    core.Tick(t);
    if (!core.TakeEffects().queries.empty()) asked_at = t;
  }
  ASSERT_NE(asked_at, 0);
  EXPECT_GE(asked_at, t0 + 1 * kSeconds);
  EXPECT_LE(asked_at, t0 + 1 * kSeconds + 50 * kMillis);
}

TEST_F(BranchCoreTest, InDoubtBranchCommitsWhenTheGroupSaysCommitted) {
  RecoveredBranch r;
  r.txid = kT1;
  r.state = BranchState::kPrepared;
  r.info.participants = kParticipants;
  core_.OnRecovered(kRes, {r}, now_);
  core_.Tick(now_);
  ASSERT_EQ(Take().queries.size(), 1u);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kCommit, kT1);
  // Only a PREPARE records the participants; a commit carries none.
  EXPECT_TRUE(op.info.participants.empty());
  OpDone(op);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.replies.empty());
  EXPECT_EQ(StateOf(kT1), "committed");
  EXPECT_EQ(core_.in_doubt_count(), 0u);
  core_.Tick(now_ + 20 * kSeconds);
  EXPECT_TRUE(Take().queries.empty());
  // The coordinator's COMMIT arriving after that is acknowledged.
  Decide(2, kT1, proto::Outcome::COMMITTED);
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
}

TEST_F(BranchCoreTest, InDoubtBranchRollsBackWhenTheGroupSaysAborted) {
  RecoveredBranch r;
  r.txid = kT1;
  r.state = BranchState::kPrepared;
  core_.OnRecovered(kRes, {r}, now_);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::ABORTED, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  Take();
  EXPECT_EQ(StateOf(kT1), "aborted");
  EXPECT_EQ(core_.in_doubt_count(), 0u);
}

TEST_F(BranchCoreTest, InDoubtBranchKeepsAskingWhileTheGroupCannotSay) {
  MakePrepared(kT1);
  core_.Tick(now_ + 1 * kSeconds);
  ASSERT_EQ(Take().queries.size(), 1u);
  core_.OnOutcome(kT1, Status::Unavailable("no leader"), proto::Outcome::UNKNOWN, now_ + 1 * kSeconds);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::PENDING, now_ + 1 * kSeconds);
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(StateOf(kT1), "prepared");
  core_.Tick(now_ + 3 * kSeconds);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
}

TEST_F(BranchCoreTest, OutcomeForATxidWithNoBranchHereChangesNothing) {
  MakePrepared(kT1);
  core_.OnOutcome(kT2, Status::Ok(), proto::Outcome::ABORTED, now_);
  core_.OnOutcome(kT2, Status::Ok(), proto::Outcome::COMMITTED, now_);
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(StateOf(kT2), "");
  EXPECT_EQ(StateOf(kT1), "prepared");
}

TEST_F(BranchCoreTest, OneQueryServesEveryResourceOfATxid) {
  MakePrepared(kT1, kRes);
  MakePrepared(kT1, kOther);
  core_.Tick(now_ + 1 * kSeconds);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_ + 1 * kSeconds);
  AgentEffects fx = Take();
  ASSERT_EQ(fx.ops.size(), 2u);
  for (const auto& op : fx.ops) {
    EXPECT_EQ(op.kind, ResourceOp::kCommit);
    EXPECT_EQ(op.txid, kT1);
  }
  EXPECT_NE(fx.ops[0].resource, fx.ops[1].resource);
}

TEST_F(BranchCoreTest, PreparedBranchAsksOnceInDoubtLongEnough) {
  MakePrepared(kT1);
  core_.Tick(now_ + 1 * kSeconds - 1);
  EXPECT_TRUE(Take().queries.empty());
  core_.Tick(now_ + 1 * kSeconds);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
}

// ----------------------------------------------------------- active deadline

TEST_F(BranchCoreTest, ActiveBranchPastItsDeadlineAsksAndPendingExtendsIt) {
  MakeActive(kT1);
  const Micros t0 = now_;
  core_.Tick(t0 + 60 * kSeconds - 1);
  EXPECT_TRUE(Take().queries.empty());
  core_.Tick(t0 + 60 * kSeconds);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::PENDING, t0 + 60 * kSeconds);
  EXPECT_TRUE(Take().empty());
  core_.Tick(t0 + 61 * kSeconds);  // without PENDING it would ask again now
  EXPECT_TRUE(Take().queries.empty());
  core_.Tick(t0 + 120 * kSeconds - 1);
  EXPECT_TRUE(Take().queries.empty());
  core_.Tick(t0 + 120 * kSeconds);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
  EXPECT_EQ(StateOf(kT1), "active");
}

TEST_F(BranchCoreTest, ActiveBranchAsksAgainWhenTheGroupDoesNotAnswer) {
  MakeActive(kT1);
  const Micros t0 = now_;
  core_.Tick(t0 + 60 * kSeconds);
  EXPECT_EQ(Take().queries.size(), 1u);
  core_.Tick(t0 + 61 * kSeconds);
  EXPECT_EQ(Take().queries.size(), 1u);
}

TEST_F(BranchCoreTest, ActiveBranchOfAnAbortedTxnIsRolledBack) {
  MakeActive(kT1);
  core_.Tick(now_ + 60 * kSeconds);
  EXPECT_EQ(Take().queries.size(), 1u);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::ABORTED, now_ + 60 * kSeconds);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
  Execute(2, kT1);
  EXPECT_EQ(ExecReply(Take(), 2).status.code, proto::Code::ABORTED);
}

TEST_F(BranchCoreTest, ActiveBranchOfATxidTheGroupNeverAllocatedIsRolledBack) {
  // The agent hands UNKNOWN to the core when the group says "never allocated".
  MakeActive(kT1);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::UNKNOWN, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, ActiveBranchLeftOutOfACommittedTxnIsRolledBack) {
  // COMMITTED for a branch that was never prepared: the client committed
  // without this participant, so this branch's work is not part of it.
  MakeActive(kT1);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, PreparedBranchIgnoresAnythingButADecision) {
  MakePrepared(kT1);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::UNKNOWN, now_);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::PENDING, now_);
  EXPECT_TRUE(Take().ops.empty());
  EXPECT_EQ(StateOf(kT1), "prepared");
}

TEST_F(BranchCoreTest, UnknownOutcomeAskedWhileActiveDoesNotUndoALaterYesVote) {
  // The branch asks while ACTIVE (its client was quiet), then the client
  // prepares; the answer, UNKNOWN from a deposed leader, arrives while the
  // PREPARED record is being written. Once YES is voted, only the group's
  // decision may settle the branch.
  MakeActive(kT1);
  now_ += 60 * kSeconds;
  core_.Tick(now_);
  ASSERT_EQ(Take().queries, std::vector<TxId>{kT1});
  Prepare(2, kT1);
  ResourceOp prep = OnlyOp(Take(), ResourceOp::kPrepare, kT1);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::UNKNOWN, now_);
  EXPECT_TRUE(Take().ops.empty());
  OpDone(prep);
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::YES);
  EXPECT_TRUE(fx.ops.empty()) << "a branch that voted YES was rolled back";
  EXPECT_EQ(StateOf(kT1), "prepared");
  EXPECT_EQ(core_.in_doubt_count(), 1u);
  // The group's decision settles it.
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(StateOf(kT1), "committed");
}

TEST_F(BranchCoreTest, AbortAnswerForAnActiveBranchQueuedBehindItsPrepareDoesNotUndoTheYesVote) {
  // Same race with the answer queued behind the PREPARE before it started
  // (an execute was still in flight): the PREPARE runs first and votes YES.
  MakeActive(kT1);
  Execute(1, kT1);
  ResourceOp exec = OnlyOp(Take(), ResourceOp::kExecute, kT1);
  Prepare(2, kT1);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::UNKNOWN, now_);
  EXPECT_TRUE(Take().empty());
  ExecDone(exec, Done());
  ResourceOp prep = OnlyOp(Take(), ResourceOp::kPrepare, kT1);
  OpDone(prep);
  AgentEffects fx = Take();
  EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::YES);
  EXPECT_TRUE(fx.ops.empty()) << "a branch that voted YES was rolled back";
  EXPECT_EQ(StateOf(kT1), "prepared");
}

// The seam txsim's abort-after-prepared bug sets: with it, the same race
// rolls back a branch that voted YES on a word that was no decision (the rule
// the fix enforces, broken); without it, that branch is kept, in doubt.
TEST_F(BranchCoreTest, IgnoringActiveOnlyLetsAnAnswerHeardWhileActiveUndoAYesVote) {
  for (bool seam : {false, true}) {
    SCOPED_TRACE(seam ? "testing_ignore_active_only" : "as shipped");
    AgentOptions o = TestOptions();
    o.testing_ignore_active_only = seam;
    core_ = BranchCore({kRes, kOther}, o);
    MakeActive(kT1);
    now_ += 60 * kSeconds;
    core_.Tick(now_);
    ASSERT_EQ(Take().queries, std::vector<TxId>{kT1});
    Prepare(2, kT1);
    ResourceOp prep = OnlyOp(Take(), ResourceOp::kPrepare, kT1);
    core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::UNKNOWN, now_);
    EXPECT_TRUE(Take().ops.empty());  // queued behind the PREPARE
    OpDone(prep);
    AgentEffects fx = Take();
    EXPECT_EQ(VoteReply(fx, 2).vote, proto::Vote::YES);
    if (!seam) {
      EXPECT_TRUE(fx.ops.empty());
      EXPECT_EQ(StateOf(kT1), "prepared");
      continue;
    }
    // The YES vote has left, and the agent's own abort runs anyway.
    OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
    EXPECT_EQ(StateOf(kT1), "aborted");
    EXPECT_EQ(core_.in_doubt_count(), 0u);
  }
}

TEST_F(BranchCoreTest, AbortedOutcomeCancelsALockWaitAtOnce) {
  MakeActive(kT1);
  Execute(5, kT1);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT1), ConflictWith(kT2));
  EXPECT_TRUE(Take().replies.empty());  // parked, waiting for kT2's row
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::ABORTED, now_);
  AgentEffects fx = Take();
  EXPECT_EQ(ExecReply(fx, 5).status.code, proto::Code::ABORTED);
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
}

TEST_F(BranchCoreTest, CommitForAForgottenBranchLeavesNothingBehind) {
  Decide(1, kT5, proto::Outcome::COMMITTED);
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 1).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_TRUE(core_.Branches().empty());
  EXPECT_EQ(StateOf(kT5), "");
}

TEST(BranchCoreIncarnationTest, PrepareFromAnEarlierIncarnationVotesNoAndExecuteRepliesCarryIt) {
  AgentOptions o = TestOptions();
  o.incarnation = 8;
  BranchCore core({kRes}, o);
  proto::ExecuteRequest e;
  e.txid = kT1;
  e.resource = kRes;
  e.statements = {Sql("UPDATE accounts SET balance = 0")};
  core.OnExecute(1, e, kT0);
  AgentEffects fx = core.TakeEffects();
  ASSERT_EQ(fx.ops.size(), 1u);
  ExecuteResult done;
  done.wrote = true;
  core.OnExecuteDone(fx.ops[0].id, done, kT0);
  EXPECT_EQ(ExecReply(core.TakeEffects(), 1).incarnation, 8);
  // The client saw incarnation 7: this agent restarted since, and an ACTIVE
  // branch's work is not synced, so it may be gone.
  proto::PrepareRequest p;
  p.txid = kT1;
  p.resource = kRes;
  p.participants = {Participant(kRes, "10.0.0.1:7100")};
  p.participants[0].__set_incarnation(7);
  core.OnPrepare(2, p, kT0);
  fx = core.TakeEffects();
  auto vote = VoteReply(fx, 2);
  EXPECT_EQ(vote.vote, proto::Vote::NO);
  EXPECT_TRUE(Contains(vote.reason, "restarted")) << vote.reason;
  ASSERT_EQ(fx.ops.size(), 1u);
  EXPECT_EQ(fx.ops[0].kind, ResourceOp::kRollback);
  // The same incarnation prepares normally.
  BranchCore same({kRes}, o);
  same.OnExecute(3, e, kT0);
  fx = same.TakeEffects();
  same.OnExecuteDone(fx.ops[0].id, done, kT0);
  (void)same.TakeEffects();
  p.participants[0].__set_incarnation(8);
  same.OnPrepare(4, p, kT0);
  fx = same.TakeEffects();
  ASSERT_EQ(fx.ops.size(), 1u);
  EXPECT_EQ(fx.ops[0].kind, ResourceOp::kPrepare);
}

TEST_F(BranchCoreTest, ExecuteTimeoutSetsTheBranchDeadline) {
  proto::ExecuteRequest req;
  req.txid = kT1;
  req.resource = kRes;
  req.statements = {Sql("UPDATE accounts SET balance = 1")};
  req.__set_timeout_ms(500);
  core_.OnExecute(1, req, now_);
  ExecDone(OnlyOp(Take(), ResourceOp::kExecute, kT1), Done());
  Take();
  core_.Tick(now_ + 500 * kMillis - 1);
  EXPECT_TRUE(Take().queries.empty());
  core_.Tick(now_ + 500 * kMillis);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
}

TEST_F(BranchCoreTest, EachExecuteRestartsTheActiveDeadline) {
  MakeActive(kT1);
  now_ += 50 * kSeconds;
  MakeActive(kT1);
  core_.Tick(now_ + 59 * kSeconds);
  EXPECT_TRUE(Take().queries.empty());
  core_.Tick(now_ + 60 * kSeconds);
  EXPECT_EQ(Take().queries.size(), 1u);
}

// --------------------------------------------------------------- retention

TEST_F(BranchCoreTest, FinishedBranchesAreForgottenAfterFinalRetention) {
  MakePrepared(kT1);
  Decide(1, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  Take();
  Decide(2, kT2, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT2));
  Take();
  ASSERT_EQ(core_.Branches().size(), 2u);

  core_.Tick(now_ + 30 * kSeconds - 1);
  EXPECT_EQ(StateOf(kT1), "committed");
  EXPECT_EQ(StateOf(kT2), "aborted");
  Decide(3, kT1, proto::Outcome::COMMITTED);  // remembered: acked without the resource
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 3).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());

  core_.Tick(now_ + 30 * kSeconds);
  EXPECT_TRUE(core_.Branches().empty());
  // A duplicate COMMIT after that is still acknowledged.
  Decide(4, kT1, proto::Outcome::COMMITTED);
  EXPECT_EQ(DecideReply(Take(), 4).status.code, proto::Code::OK);
}

// At most max_finals_remembered finished branches stay in memory, however
// young (a busy agent commits more in the retention than memory should hold),
// and one that got a duplicate message after it finished is still forgotten
// in the end (before, popping its entry early left it in memory for ever).
TEST_F(BranchCoreTest, FinishedBranchesAreCappedAndNoneIsKeptForEver) {
  AgentOptions o = TestOptions();
  o.max_finals_remembered = 2;
  core_ = BranchCore({kRes, kOther}, o);
  std::vector<TxId> ids;
  for (int64_t seq = 11; seq <= 14; ++seq) {
    const TxId t = MakeTxId(7, seq);
    ids.push_back(t);
    MakePrepared(t);
    Decide(100 + static_cast<uint64_t>(seq), t, proto::Outcome::COMMITTED);
    OpDone(OnlyOp(Take(), ResourceOp::kCommit, t));
    Take();
  }
  core_.Tick(now_);
  EXPECT_EQ(core_.Branches().size(), 2u);
  EXPECT_EQ(StateOf(ids[3]), "committed");
  // A duplicate COMMIT of a remembered one: acknowledged from memory.
  Decide(200, ids[3], proto::Outcome::COMMITTED);
  EXPECT_EQ(DecideReply(Take(), 200).status.code, proto::Code::OK);
  core_.Tick(now_ + 30 * kSeconds);
  EXPECT_TRUE(core_.Branches().empty());
}

// An ABORT after the agent forgot a branch asks the resource, whose answer
// is final either way: a released read-only branch rolls back as a no-op (OK),
// one that committed changes refuses (INVALID_ARGUMENT): the agent reports the
// disagreement once and never retries it (before, it retried forever, and an
// operator's acked abort never ended).
TEST_F(BranchCoreTest, AbortOfAForgottenCommittedBranchIsRefusedOnceAndNeverRetried) {
  MakePrepared(kT1);
  Decide(1, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  Take();
  now_ += 30 * kSeconds;
  core_.Tick(now_);
  ASSERT_TRUE(core_.Branches().empty());

  Decide(2, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1),
         Status::InvalidArgument("branch 1.1 is committed here; it cannot be rolled back"));
  AgentEffects fx = Take();
  auto r = DecideReply(fx, 2);
  EXPECT_NE(r.status.code, proto::Code::OK);
  EXPECT_TRUE(r.__isset.refused && r.refused);
  ASSERT_FALSE(fx.logs.empty());
  EXPECT_TRUE(Contains(fx.logs.back().message, "heuristic hazard")) << fx.logs.back().message;
  EXPECT_EQ(StateOf(kT1), "committed");
  // A resent ABORT is refused from memory, without the resource.
  Decide(3, kT1, proto::Outcome::ABORTED);
  fx = Take();
  EXPECT_TRUE(DecideReply(fx, 3).__isset.refused);
  EXPECT_TRUE(fx.ops.empty());
  for (int i = 1; i <= 5; ++i) {  // no retry of its own
    core_.Tick(now_ + i * 5 * kSeconds);
    EXPECT_TRUE(Take().ops.empty()) << i;
  }
}

TEST_F(BranchCoreTest, AbortOfAForgottenReadOnlyBranchIsAcknowledged) {
  MakeActive(kT1, /*wrote=*/false);
  Prepare(1, kT1);
  AgentEffects fx = Take();
  ASSERT_EQ(VoteReply(fx, 1).vote, proto::Vote::READ_ONLY);
  OpDone(OnlyOp(fx, ResourceOp::kCommit, kT1));
  Take();
  now_ += 30 * kSeconds;
  core_.Tick(now_);
  ASSERT_TRUE(core_.Branches().empty());
  Decide(2, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));  // SqliteResource: a no-op, OK
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "aborted");
}

// ------------------------------------------------------------ heuristics

proto::AgentResolveRequest ResolveReq(const TxId& txid, proto::Outcome::type outcome) {
  proto::AgentResolveRequest r;
  r.txid = txid;
  r.outcome = outcome;
  r.reason = "group unreachable";
  r.who = "alice";
  return r;
}

TEST_F(BranchCoreTest, HeuristicAbortRollsBackRecordsAndReportsAHazardWhenTheGroupCommitted) {
  MakePrepared(kT1);
  core_.OnResolve(7, ResolveReq(kT1, proto::Outcome::ABORTED), now_);
  AgentEffects fx = Take();
  ResourceOp op = OnlyOp(fx, ResourceOp::kHeuristic, kT1);
  EXPECT_EQ(op.heuristic.outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(op.heuristic.who, "alice");
  EXPECT_FALSE(FindReply<proto::AgentResolveResponse>(fx, 7));  // not before it is recorded
  OpDone(op);
  fx = Take();
  auto r = ReplyTo<proto::AgentResolveResponse>(fx, 7);
  EXPECT_EQ(r.status.code, proto::Code::OK) << r.status.message;
  ASSERT_EQ(r.branches.size(), 1u);
  EXPECT_EQ(r.branches[0].state, "aborted");
  EXPECT_EQ(StateOf(kT1), "aborted");
  EXPECT_EQ(core_.heuristic_count(), 1u);
  EXPECT_EQ(core_.in_doubt_count(), 0u);

  // Reconciled: the agent asks the group; COMMITTED there is a hazard.
  core_.Tick(now_);
  fx = Take();
  ASSERT_EQ(fx.queries.size(), 1u);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  fx = Take();
  ASSERT_FALSE(fx.logs.empty());
  EXPECT_TRUE(Contains(fx.logs.back().message, "heuristic hazard")) << fx.logs.back().message;
  EXPECT_EQ(core_.heuristic_hazard_count(), 1u);
  // Known from the query only: the coordinator has not heard the refusal, so
  // forgetting now is refused.
  proto::AgentForgetRequest early;
  early.txid = kT1;
  early.reason = "r";
  early.who = "alice";
  core_.OnForget(20, early, now_);
  auto er = ReplyTo<proto::AgentForgetResponse>(Take(), 20);
  EXPECT_EQ(er.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(er.status.message, "known here only")) << er.status.message;
  // The coordinator's COMMIT is refused, never applied; an ABORT would be acked.
  Decide(8, kT1, proto::Outcome::COMMITTED);
  fx = Take();
  EXPECT_TRUE(DecideReply(fx, 8).__isset.refused);
  EXPECT_TRUE(fx.ops.empty());
  // Listed (after the branch itself is forgotten too) until the operator forgets it.
  now_ += 60 * kSeconds;
  core_.Tick(now_);
  Take();
  auto view = core_.Branches();
  ASSERT_EQ(view.size(), 1u);
  ASSERT_TRUE(view[0].heuristic.has_value());
  EXPECT_EQ(*view[0].group_outcome, proto::Outcome::COMMITTED);
  Decide(9, kT1, proto::Outcome::COMMITTED);  // still refused once the branch is forgotten
  EXPECT_TRUE(DecideReply(Take(), 9).__isset.refused);

  proto::AgentForgetRequest f;
  f.txid = kT1;
  f.reason = "repaired";
  f.who = "alice";
  core_.OnForget(10, f, now_);
  fx = Take();
  ResourceOp fop = OnlyOp(fx, ResourceOp::kForgetHeuristic, kT1);
  OpDone(fop);
  auto fr = ReplyTo<proto::AgentForgetResponse>(Take(), 10);
  EXPECT_EQ(fr.status.code, proto::Code::OK);
  EXPECT_EQ(fr.forgotten, 1);
  EXPECT_EQ(core_.heuristic_count(), 0u);
  core_.OnForget(11, f, now_);
  EXPECT_EQ(ReplyTo<proto::AgentForgetResponse>(Take(), 11).status.code, proto::Code::NOT_FOUND);
}

TEST_F(BranchCoreTest, HeuristicDecisionIsRefusedForABranchNotInDoubt) {
  MakeActive(kT1);
  core_.OnResolve(1, ResolveReq(kT1, proto::Outcome::COMMITTED), now_);
  AgentEffects fx = Take();
  auto r = ReplyTo<proto::AgentResolveResponse>(fx, 1);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(r.status.message, "is active")) << r.status.message;
  EXPECT_TRUE(fx.ops.empty());
  core_.OnResolve(2, ResolveReq(kT2, proto::Outcome::ABORTED), now_);
  EXPECT_EQ(ReplyTo<proto::AgentResolveResponse>(Take(), 2).status.code, proto::Code::NOT_FOUND);
}

TEST_F(BranchCoreTest, FailedHeuristicDecisionLeavesTheBranchInDoubt) {
  MakePrepared(kT1);
  core_.OnResolve(1, ResolveReq(kT1, proto::Outcome::COMMITTED), now_);
  OpDone(OnlyOp(Take(), ResourceOp::kHeuristic, kT1), Status::StorageFailed("EIO"));
  auto r = ReplyTo<proto::AgentResolveResponse>(Take(), 1);
  EXPECT_EQ(r.status.code, proto::Code::STORAGE_FAILED);
  EXPECT_EQ(StateOf(kT1), "prepared");
  EXPECT_EQ(core_.heuristic_count(), 0u);
  // The group's decision still applies normally.
  Decide(2, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
}

TEST_F(BranchCoreTest, HeuristicRecordIsKeptWhileTheGroupsOutcomeIsUnknownUnlessForced) {
  MakePrepared(kT1);
  core_.OnResolve(1, ResolveReq(kT1, proto::Outcome::ABORTED), now_);
  OpDone(OnlyOp(Take(), ResourceOp::kHeuristic, kT1));
  Take();
  proto::AgentForgetRequest f;
  f.txid = kT1;
  f.reason = "r";
  f.who = "alice";
  core_.OnForget(2, f, now_);
  AgentEffects fx = Take();
  auto r = ReplyTo<proto::AgentForgetResponse>(fx, 2);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(r.status.message, "not known yet")) << r.status.message;
  EXPECT_TRUE(fx.ops.empty());
  f.__set_force(true);
  core_.OnForget(3, f, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kForgetHeuristic, kT1));
  EXPECT_EQ(ReplyTo<proto::AgentForgetResponse>(Take(), 3).forgotten, 1);
}

TEST_F(BranchCoreTest, RecoveredHeuristicIsReconciledAndAgreementAcked) {
  HeuristicRecord rec;
  rec.txid = kT1;
  rec.outcome = proto::Outcome::COMMITTED;
  rec.reason = "r";
  rec.who = "bob";
  rec.at_ms = 1700000000000;
  core_.OnRecoveredHeuristics(kRes, {rec}, now_);
  core_.Tick(now_);
  ASSERT_EQ(Take().queries.size(), 1u);
  Decide(1, kT1, proto::Outcome::COMMITTED);
  AgentEffects fx = Take();
  EXPECT_EQ(DecideReply(fx, 1).status.code, proto::Code::OK);
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(core_.heuristic_hazard_count(), 0u);
  auto view = core_.Branches();
  ASSERT_EQ(view.size(), 1u);
  EXPECT_EQ(view[0].state, "committed");
  EXPECT_EQ(view[0].heuristic->at_ms, 1700000000000);
  core_.Tick(now_ + 10 * kSeconds);  // agreed: no more questions
  EXPECT_TRUE(Take().queries.empty());
}

TEST_F(BranchCoreTest, BranchesViewReportsStates) {
  MakeActive(kT1);
  MakePrepared(kT2, kOther);
  auto view = core_.Branches();
  ASSERT_EQ(view.size(), 2u);
  EXPECT_EQ(StateOf(kT1), "active");
  EXPECT_EQ(StateOf(kT2, kOther), "prepared");
  EXPECT_EQ(core_.in_doubt_count(), 1u);
}

// ---------------------------------------------------------------------- 3PC

class ThreePhaseBranchTest : public BranchCoreTest {
 protected:
  void PreCommit(uint64_t token, const TxId& txid, const std::string& resource = kRes) {
    proto::DecideRequest req;
    req.txid = txid;
    req.resource = resource;
    req.outcome = proto::Outcome::COMMITTED;
    req.__set_precommit(true);
    core_.OnDecide(token, req, now_);
  }
};

TEST_F(ThreePhaseBranchTest, PreCommitIsAckedOnlyOnceDurableAndCommitFollows) {
  MakePrepared(kT1);
  PreCommit(2, kT1);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.replies.empty());
  ResourceOp op = OnlyOp(fx, ResourceOp::kPreCommit, kT1);
  OpDone(op);
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "precommitted");
  EXPECT_EQ(core_.in_doubt_count(), 1u);  // still in doubt: not committed yet
  PreCommit(3, kT1);                      // a duplicate: acked, no op
  fx = Take();
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(DecideReply(fx, 3).status.code, proto::Code::OK);
  Execute(4, kT1);
  EXPECT_EQ(ExecReply(Take(), 4).status.code, proto::Code::INVALID_ARGUMENT);
  Decide(5, kT1, proto::Outcome::COMMITTED);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(DecideReply(Take(), 5).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "committed");
  PreCommit(6, kT1);  // late: the branch is past it
  EXPECT_EQ(DecideReply(Take(), 6).status.code, proto::Code::OK);
}

TEST_F(ThreePhaseBranchTest, FailedPreCommitLeavesThePreparedBranchForTheResend) {
  MakePrepared(kT1);
  PreCommit(2, kT1);
  OpDone(OnlyOp(Take(), ResourceOp::kPreCommit, kT1), Status::StorageFailed("disk gone"));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::STORAGE_FAILED);
  EXPECT_EQ(StateOf(kT1), "prepared");
}

TEST_F(ThreePhaseBranchTest, PreCommitOfAnAbortedBranchIsRefusedAndOfAnActiveOneIsAnError) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::ABORTED);
  OpDone(OnlyOp(Take(), ResourceOp::kRollback, kT1));
  Take();
  PreCommit(3, kT1);
  proto::DecideResponse r = DecideReply(Take(), 3);
  EXPECT_NE(r.status.code, proto::Code::OK);
  EXPECT_TRUE(r.__isset.refused && r.refused);
  MakeActive(kT2);
  PreCommit(4, kT2);
  r = DecideReply(Take(), 4);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_FALSE(r.__isset.refused && r.refused);
  EXPECT_EQ(StateOf(kT2), "active");
}

TEST_F(ThreePhaseBranchTest, RecoveredPrecommittedBranchStaysInDoubtAndAsksTheGroup) {
  RecoveredBranch r;
  r.txid = kT1;
  r.state = BranchState::kPreCommitted;
  r.info.participants = kParticipants;
  r.info.protocol = proto::Protocol::THREE_PC;
  core_.OnRecovered(kRes, {r}, now_);
  EXPECT_TRUE(Take().ops.empty());
  EXPECT_EQ(StateOf(kT1), "precommitted");
  core_.Tick(now_);
  EXPECT_EQ(Take().queries, std::vector<TxId>{kT1});
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::PENDING, now_);  // the group is committing
  EXPECT_TRUE(Take().ops.empty());
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(StateOf(kT1), "committed");
}

// ------------------------------------------------- autonomous termination

TEST(SkeenTerminationTest, EachRuleInItsOrder) {
  EXPECT_EQ(SkeenTermination({"prepared", "committed", "aborted"}).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(SkeenTermination({"precommitted", "aborting"}).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(SkeenTermination({"precommitted", "active"}).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(SkeenTermination({"prepared", "precommitted"}).outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(SkeenTermination({"prepared", "prepared"}).outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(SkeenTermination({"prepared"}).outcome, proto::Outcome::ABORTED);
  EXPECT_NE(SkeenTermination({"prepared"}).rule.find("PREPARED"), std::string::npos);
}

class AutonomousTerminationTest : public BranchCoreTest {
 protected:
  AutonomousTerminationTest() {
    AgentOptions o = TestOptions();
    o.autonomous_termination_timeout = 3 * kSeconds;
    core_ = BranchCore({kRes}, o);  // bank_b is on another agent
  }
  // A PREPARED 3PC branch of kT1 on bank_a, asking the group from now.
  void Prepared3pc() {
    RecoveredBranch r;
    r.txid = kT1;
    r.state = BranchState::kPrepared;
    r.info.participants = kParticipants;
    r.info.protocol = proto::Protocol::THREE_PC;
    core_.OnRecovered(kRes, {r}, now_);
    Take();
  }
  // Ticks every 100 ms until `until`, the group failing every query.
  AgentEffects SilentGroupUntil(Micros until) {
    AgentEffects all;
    for (; now_ <= until; now_ += 100 * kMillis) {
      core_.Tick(now_);
      AgentEffects fx = Take();
      for (const TxId& q : fx.queries) core_.OnOutcome(q, Status::Unavailable("no leader"), proto::Outcome::UNKNOWN, now_);
      for (auto& q : fx.peer_queries) all.peer_queries.push_back(q);
      for (auto& op : fx.ops) all.ops.push_back(op);
      AgentEffects more = Take();
      for (auto& op : more.ops) all.ops.push_back(op);
      if (!all.peer_queries.empty()) break;
    }
    return all;
  }
};

TEST_F(AutonomousTerminationTest, AfterTheTimeoutWithoutTheGroupItAsksThePeersAndAppliesTheRule) {
  Prepared3pc();
  const Micros t0 = now_;
  AgentEffects fx = SilentGroupUntil(t0 + 10 * kSeconds);
  ASSERT_EQ(fx.peer_queries.size(), 1u);
  EXPECT_EQ(fx.peer_queries[0].to.resource, kOther);
  EXPECT_EQ(fx.peer_queries[0].resource, kRes);
  EXPECT_GE(now_ - t0, 3 * kSeconds);  // not before the timeout
  EXPECT_EQ(StateOf(kT1), "prepared");
  proto::BranchStateResponse peer;
  peer.state = "precommitted";
  core_.OnPeerState(fx.peer_queries[0], Status::Ok(), peer, now_);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kHeuristic, kT1);
  EXPECT_EQ(op.heuristic.outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(op.heuristic.who, "autonomous-termination");
  EXPECT_NE(op.heuristic.reason.find("bank_b=precommitted"), std::string::npos) << op.heuristic.reason;
  OpDone(op);
  EXPECT_EQ(StateOf(kT1), "committed");
  // The group's decision later: ABORTED disagrees, refused as a hazard.
  Decide(5, kT1, proto::Outcome::ABORTED);
  proto::DecideResponse r = DecideReply(Take(), 5);
  EXPECT_TRUE(r.__isset.refused && r.refused);
  EXPECT_EQ(core_.heuristic_hazard_count(), 1u);
}

TEST_F(AutonomousTerminationTest, AnUnreachablePeerLeavesOnlyPreparedSoItAborts) {
  Prepared3pc();
  AgentEffects fx = SilentGroupUntil(now_ + 10 * kSeconds);
  ASSERT_EQ(fx.peer_queries.size(), 1u);
  core_.OnPeerState(fx.peer_queries[0], Status::Timeout("partitioned"), proto::BranchStateResponse(), now_);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kHeuristic, kT1);
  EXPECT_EQ(op.heuristic.outcome, proto::Outcome::ABORTED);
}

TEST_F(AutonomousTerminationTest, AGroupThatAnswersOrA2pcBranchNeverTerminatesAlone) {
  Prepared3pc();
  // The group answers PENDING: it is reachable; nothing autonomous happens.
  for (Micros end = now_ + 10 * kSeconds; now_ <= end; now_ += 100 * kMillis) {
    core_.Tick(now_);
    AgentEffects fx = Take();
    for (const TxId& q : fx.queries) core_.OnOutcome(q, Status::Ok(), proto::Outcome::PENDING, now_);
    EXPECT_TRUE(fx.peer_queries.empty());
    EXPECT_TRUE(Take().peer_queries.empty());
  }
  // A 2PC branch with the group silent: blocked, never decided alone.
  BranchCore two({kRes}, [] {
    AgentOptions o = TestOptions();
    o.autonomous_termination_timeout = 3 * kSeconds;
    return o;
  }());
  RecoveredBranch r;
  r.txid = kT2;
  r.state = BranchState::kPrepared;
  r.info.participants = kParticipants;
  two.OnRecovered(kRes, {r}, now_);
  for (Micros end = now_ + 10 * kSeconds; now_ <= end; now_ += 100 * kMillis) {
    two.Tick(now_);
    AgentEffects fx = two.TakeEffects();
    for (const TxId& q : fx.queries) two.OnOutcome(q, Status::Unavailable("no leader"), proto::Outcome::UNKNOWN, now_);
    EXPECT_TRUE(fx.peer_queries.empty());
    EXPECT_TRUE(fx.ops.empty());
  }
}

// Review findings (issue 9): a peer with no record blocks the decision; a
// READ_ONLY voter's "committed" says nothing of the outcome; a request from
// the coordinator ends the group's silence.
TEST_F(AutonomousTerminationTest, APeerWithNoRecordBlocksTheDecisionAndAReadOnlyPeerIsLeftOut) {
  Prepared3pc();
  AgentEffects fx = SilentGroupUntil(now_ + 10 * kSeconds);
  ASSERT_EQ(fx.peer_queries.size(), 1u);
  proto::BranchStateResponse none;
  none.state = "none";  // maybe committed and forgotten
  core_.OnPeerState(fx.peer_queries[0], Status::Ok(), none, now_);
  AgentEffects after = Take();
  EXPECT_TRUE(after.ops.empty());
  EXPECT_EQ(StateOf(kT1), "prepared");
  // The next round (query_max later) hears a read-only peer: left out, so
  // only PREPARED remains and the rule aborts; never "a participant committed".
  fx = SilentGroupUntil(now_ + 10 * kSeconds);
  ASSERT_EQ(fx.peer_queries.size(), 1u);
  proto::BranchStateResponse ro;
  ro.state = "read-only";
  core_.OnPeerState(fx.peer_queries[0], Status::Ok(), ro, now_);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kHeuristic, kT1);
  EXPECT_EQ(op.heuristic.outcome, proto::Outcome::ABORTED);
}

TEST_F(AutonomousTerminationTest, ARequestFromTheCoordinatorEndsTheSilence) {
  Prepared3pc();
  const Micros t0 = now_;
  // Two failed queries, then (before D) a duplicate PREPARE from the group.
  for (; now_ < t0 + 2500 * kMillis; now_ += 100 * kMillis) {
    core_.Tick(now_);
    for (const TxId& q : Take().queries) {
      core_.OnOutcome(q, Status::Unavailable("no leader"), proto::Outcome::UNKNOWN, now_);
    }
  }
  Prepare(3, kT1);
  EXPECT_EQ(VoteReply(Take(), 3).vote, proto::Vote::YES);
  // At t0 + 3.5 s the first failure is 3.5 s old, but the group spoke at 2.5 s.
  for (; now_ < t0 + 4 * kSeconds; now_ += 100 * kMillis) {
    core_.Tick(now_);
    AgentEffects fx = Take();
    EXPECT_TRUE(fx.peer_queries.empty()) << (now_ - t0);
    for (const TxId& q : fx.queries) {
      core_.OnOutcome(q, Status::Unavailable("no leader"), proto::Outcome::UNKNOWN, now_);
    }
  }
}

TEST_F(BranchCoreTest, ReadOnlyBranchAnswersReadOnlyNotCommitted) {
  MakeActive(kT1, /*wrote=*/false);
  Prepare(2, kT1);
  EXPECT_EQ(VoteReply(Take(), 2).vote, proto::Vote::READ_ONLY);
  proto::BranchStateRequest req;
  req.txid = kT1;
  req.resource = kRes;
  core_.OnBranchState(3, req);
  EXPECT_EQ(ReplyTo<proto::BranchStateResponse>(Take(), 3).state, "read-only");
}

TEST_F(ThreePhaseBranchTest, OperatorCannotAbortAPrecommittedBranchButCanCommitIt) {
  MakePrepared(kT1);
  PreCommit(2, kT1);
  OpDone(OnlyOp(Take(), ResourceOp::kPreCommit, kT1));
  Take();
  proto::AgentResolveRequest req;
  req.txid = kT1;
  req.outcome = proto::Outcome::ABORTED;
  req.reason = "group down";
  req.who = "ops";
  core_.OnResolve(4, req, now_);
  auto r = ReplyTo<proto::AgentResolveResponse>(Take(), 4);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(r.status.message.find("PRECOMMITTED"), std::string::npos) << r.status.message;
  req.outcome = proto::Outcome::COMMITTED;
  core_.OnResolve(5, req, now_);
  EXPECT_EQ(OnlyOp(Take(), ResourceOp::kHeuristic, kT1).heuristic.outcome, proto::Outcome::COMMITTED);
}

TEST_F(ThreePhaseBranchTest, AResourceThatCannotPrecommitAcksAtOnceAndStaysPrepared) {
  core_.SetPreCommitUnsupported(kRes);
  MakePrepared(kT1);
  PreCommit(2, kT1);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "prepared");
}

TEST_F(BranchCoreTest, BranchStateAnswersTheStateOfTheBranchHere) {
  MakePrepared(kT1);
  proto::BranchStateRequest req;
  req.txid = kT1;
  req.resource = kRes;
  core_.OnBranchState(7, req);
  EXPECT_EQ(ReplyTo<proto::BranchStateResponse>(Take(), 7).state, "prepared");
  req.txid = kT2;
  core_.OnBranchState(8, req);
  EXPECT_EQ(ReplyTo<proto::BranchStateResponse>(Take(), 8).state, "none");
  req.resource = "nope";
  core_.OnBranchState(9, req);
  EXPECT_EQ(ReplyTo<proto::BranchStateResponse>(Take(), 9).status.code, proto::Code::INVALID_ARGUMENT);
}

// ------------------------------------------- decisions confirmed with the group
// AgentOptions::confirm_decisions: a decision for a branch in doubt from a
// caller the shell cannot attribute to the coordinator group (plaintext) is
// applied only once the group's outcome answer says the same.
class ConfirmedDecisionTest : public BranchCoreTest {
 protected:
  ConfirmedDecisionTest() {
    AgentOptions o = TestOptions();
    o.confirm_decisions = true;
    core_ = BranchCore({kRes, kOther}, o);
  }
};

TEST_F(ConfirmedDecisionTest, ACommitTheGroupConfirmsIsApplied) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty());  // nothing applied before the group answers
  EXPECT_FALSE(FindReply<proto::DecideResponse>(fx, 2).has_value());
  ASSERT_EQ(fx.queries.size(), 1u);
  EXPECT_EQ(fx.queries[0], kT1);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  ResourceOp op = OnlyOp(Take(), ResourceOp::kCommit, kT1);
  OpDone(op);
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "committed");
  EXPECT_EQ(core_.counters().decisions_confirmed, 1u);
}

// A txid the group never allocated (it answers UNKNOWN, a definite answer
// after an epoch barrier): no transaction of the group's, so whoever
// prepared the branch decides it (txconform plays the coordinator so).
TEST_F(ConfirmedDecisionTest, ADecisionForATxidTheGroupNeverAllocatedIsApplied) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  ASSERT_EQ(Take().queries.size(), 1u);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::UNKNOWN, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "committed");
  EXPECT_EQ(core_.counters().decisions_foreign, 1u);
  EXPECT_EQ(core_.counters().decisions_confirmed, 0u);
}

// The client heard kT1 commit and sends its next one-shot transaction on the
// same row while the agent still confirms kT1's COMMIT: the younger one waits
// behind the decided holder (it waits for no lock anywhere) instead of dying.
TEST_F(ConfirmedDecisionTest, AYoungerOneShotWaitsBehindAHolderWhoseDecisionIsHere) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  ASSERT_EQ(Take().queries.size(), 1u);
  PrepareWithWork(3, kT5, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT5), ConflictWith(kT1));
  AgentEffects fx = Take();
  EXPECT_FALSE(FindReply<proto::PrepareResponse>(fx, 3).has_value()) << "died at once";
  EXPECT_EQ(core_.counters().wait_die_refusals, 0u);
  EXPECT_EQ(core_.counters().lock_waits, 1u);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::OK);
  ExecDone(OnlyOp(fx, ResourceOp::kExecuteAndPrepare, kT5), Done(true));
  EXPECT_EQ(VoteReply(Take(), 3).vote, proto::Vote::YES);
}

// Behind a holder that is only prepared (its transaction may still wait for
// a lock at another agent) a younger one-shot still dies at once.
TEST_F(ConfirmedDecisionTest, AYoungerOneShotStillDiesBehindAnUndecidedPreparedHolder) {
  MakePrepared(kT1);
  Take();
  PrepareWithWork(3, kT5, {Sql("UPDATE accounts SET balance = 1 WHERE id = 7")});
  ExecDone(OnlyOp(Take(), ResourceOp::kExecuteAndPrepare, kT5), ConflictWith(kT1));
  EXPECT_EQ(VoteReply(Take(), 3).vote, proto::Vote::NO);
  EXPECT_EQ(core_.counters().wait_die_refusals, 1u);
}

// The atomicity break from outside: anyone reaching the port sends COMMIT
// for a branch whose transaction the group aborted (or has not decided).
TEST_F(ConfirmedDecisionTest, AForgedCommitIsRefusedAndTheBranchFollowsTheGroup) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  ASSERT_EQ(Take().queries.size(), 1u);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::ABORTED, now_);
  AgentEffects fx = Take();
  proto::DecideResponse r = DecideReply(fx, 2);
  EXPECT_NE(r.status.code, proto::Code::OK);
  EXPECT_TRUE(r.__isset.refused && r.refused);
  EXPECT_NE(r.status.message.find("the coordinator group says aborted"), std::string::npos)
      << r.status.message;
  // The group's answer settles the branch: rolled back, never committed.
  ResourceOp op = OnlyOp(fx, ResourceOp::kRollback, kT1);
  OpDone(op);
  Take();
  EXPECT_EQ(StateOf(kT1), "aborted");
  EXPECT_EQ(core_.counters().decisions_refused, 1u);
  EXPECT_EQ(core_.counters().commits, 0u);
}

// Undecided as far as the group says: not applied, not refused for good
// (UNAVAILABLE; a coordinator delivers an ABORT while it still answers
// PENDING, and a refusal would be reported as a heuristic hazard: txsim,
// light faults, seed 39). The branch stays in doubt.
TEST_F(ConfirmedDecisionTest, ADecisionForAnUndecidedTransactionIsNotAppliedAndStaysInDoubt) {
  MakePrepared(kT1);
  for (auto [token, wanted] : {std::pair{2, proto::Outcome::COMMITTED}, std::pair{3, proto::Outcome::ABORTED}}) {
    Decide(token, kT1, wanted);
    Take();
    core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::PENDING, now_);
    AgentEffects fx = Take();
    EXPECT_TRUE(fx.ops.empty());
    proto::DecideResponse r = DecideReply(fx, token);
    EXPECT_EQ(r.status.code, proto::Code::UNAVAILABLE);
    EXPECT_FALSE(r.__isset.refused && r.refused);
    EXPECT_NE(r.status.message.find("the coordinator group says pending"), std::string::npos)
        << r.status.message;
    EXPECT_EQ(StateOf(kT1), "prepared");
  }
  EXPECT_EQ(core_.counters().decisions_unconfirmed, 2u);
}

// A forged ABORT for a branch the group committed is as bad: refused, and
// the group's answer commits it.
TEST_F(ConfirmedDecisionTest, AForgedAbortOfACommittedTransactionIsRefused) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::ABORTED);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty());
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  fx = Take();
  EXPECT_TRUE(DecideReply(fx, 2).refused);
  ResourceOp op = OnlyOp(fx, ResourceOp::kCommit, kT1);
  OpDone(op);
  Take();
  EXPECT_EQ(StateOf(kT1), "committed");
}

// The group cannot be asked: UNAVAILABLE (the sender resends), nothing
// applied, and the next copy asks again.
TEST_F(ConfirmedDecisionTest, AnUnreachableGroupLeavesTheDecisionUnappliedAndAskedAgain) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  Take();
  core_.OnOutcome(kT1, Status::Unavailable("no leader"), proto::Outcome::UNKNOWN, now_);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.ops.empty());
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::UNAVAILABLE);
  EXPECT_EQ(StateOf(kT1), "prepared");
  EXPECT_EQ(core_.counters().decisions_unconfirmed, 1u);
  Decide(3, kT1, proto::Outcome::COMMITTED);
  EXPECT_EQ(Take().queries.size(), 1u);
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  EXPECT_EQ(DecideReply(Take(), 3).status.code, proto::Code::OK);
}

// Only decisions for branches in doubt need the group: aborting an ACTIVE
// branch is every participant's right, and an attributable caller (TLS,
// replica role) is the group.
TEST_F(ConfirmedDecisionTest, ActiveAbortsAndDecisionsFromTheGroupNeedNoConfirmation) {
  MakeActive(kT1);
  Decide(2, kT1, proto::Outcome::ABORTED);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.queries.empty());
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);

  MakePrepared(kT2);
  proto::DecideRequest req;
  req.txid = kT2;
  req.resource = kRes;
  req.outcome = proto::Outcome::COMMITTED;
  core_.OnDecide(3, req, now_, /*from_group=*/true);
  fx = Take();
  EXPECT_TRUE(fx.queries.empty());
  OpDone(OnlyOp(fx, ResourceOp::kCommit, kT2));
  EXPECT_EQ(DecideReply(Take(), 3).status.code, proto::Code::OK);
}

// A request behind an unconfirmed decision waits for it: a duplicate COMMIT
// is answered once the first one is settled.
TEST_F(ConfirmedDecisionTest, ADuplicateDecisionWaitsBehindTheOneBeingConfirmed) {
  MakePrepared(kT1);
  Decide(2, kT1, proto::Outcome::COMMITTED);
  Decide(3, kT1, proto::Outcome::COMMITTED);
  AgentEffects fx = Take();
  EXPECT_EQ(fx.queries.size(), 1u);
  EXPECT_TRUE(fx.replies.empty());
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::COMMITTED, now_);
  OpDone(OnlyOp(Take(), ResourceOp::kCommit, kT1));
  fx = Take();
  EXPECT_EQ(DecideReply(fx, 2).status.code, proto::Code::OK);
  EXPECT_EQ(DecideReply(fx, 3).status.code, proto::Code::OK);
}

// ------------------------------------------------------------ signed decisions
// AgentOptions::decision_key: the agent registers a key with its outcome
// queries; a decision whose MAC checks under it is applied without asking,
// anything else is confirmed as before.
class SignedDecisionTest : public ConfirmedDecisionTest {
 protected:
  static constexpr SipKey kKey = {0x1234567890abcdefULL, 0x0fedcba987654321ULL};
  SignedDecisionTest() {
    AgentOptions o = TestOptions();
    o.confirm_decisions = true;
    o.decision_key = kKey;
    o.decision_key_address = "127.0.0.1:7101";
    core_ = BranchCore({kRes, kOther}, o);
  }
  proto::DecideRequest Signed(const TxId& txid, proto::Outcome::type outcome,
                              const SipKey& key = kKey) {
    proto::DecideRequest req;
    req.txid = txid;
    req.resource = kRes;
    req.outcome = outcome;
    req.__set_decision_mac(static_cast<int64_t>(DecisionMac(key, req)));
    return req;
  }
};

TEST_F(SignedDecisionTest, OutcomeQueriesCarryTheKeyAndTheAddress) {
  proto::OutcomeRequest q = core_.OutcomeQuery(kT1);
  EXPECT_EQ(q.txid, kT1);
  ASSERT_TRUE(q.__isset.decision_key);
  EXPECT_EQ(q.decision_key.agent_address, "127.0.0.1:7101");
  EXPECT_EQ(static_cast<uint64_t>(q.decision_key.k0), kKey[0]);
  EXPECT_EQ(static_cast<uint64_t>(q.decision_key.k1), kKey[1]);
}

TEST_F(SignedDecisionTest, ASignedCommitIsAppliedWithoutAsking) {
  MakePrepared(kT1);
  core_.OnDecide(2, Signed(kT1, proto::Outcome::COMMITTED), now_);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.queries.empty());
  OpDone(OnlyOp(fx, ResourceOp::kCommit, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "committed");
  EXPECT_EQ(core_.counters().decisions_signed, 1u);
  EXPECT_EQ(core_.counters().decisions_confirmed, 0u);
}

TEST_F(SignedDecisionTest, ASignedAbortIsAppliedWithoutAsking) {
  MakePrepared(kT1);
  core_.OnDecide(2, Signed(kT1, proto::Outcome::ABORTED), now_);
  AgentEffects fx = Take();
  EXPECT_TRUE(fx.queries.empty());
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  EXPECT_EQ(DecideReply(Take(), 2).status.code, proto::Code::OK);
  EXPECT_EQ(StateOf(kT1), "aborted");
  EXPECT_EQ(core_.counters().decisions_signed, 1u);
}

// A MAC that does not check (another key, another txid's, the outcome or
// the PRE_COMMIT flag changed after signing, none at all) is no signature:
// the decision is confirmed, and a forged one refused, as without keys.
TEST_F(SignedDecisionTest, AnythingButTheRightMacIsConfirmedAndAForgeryRefused) {
  const SipKey other = {kKey[0], kKey[1] ^ 1};
  std::vector<proto::DecideRequest> forged;
  forged.push_back(Signed(kT1, proto::Outcome::COMMITTED, other));
  {
    proto::DecideRequest d = Signed(kT2, proto::Outcome::COMMITTED);  // kT2's MAC on kT1
    d.txid = kT1;
    forged.push_back(d);
  }
  {
    proto::DecideRequest d = Signed(kT1, proto::Outcome::ABORTED);  // outcome swapped
    d.outcome = proto::Outcome::COMMITTED;
    forged.push_back(d);
  }
  {
    proto::DecideRequest d;  // a PRE_COMMIT's MAC with its flag stripped
    d.txid = kT1;
    d.resource = kRes;
    d.outcome = proto::Outcome::COMMITTED;
    d.__set_precommit(true);
    d.__set_decision_mac(static_cast<int64_t>(DecisionMac(kKey, d)));
    d.__isset.precommit = false;
    d.precommit = false;
    forged.push_back(d);
  }
  {
    proto::DecideRequest d = Signed(kT1, proto::Outcome::COMMITTED);
    d.__isset.decision_mac = false;
    forged.push_back(d);
  }
  MakePrepared(kT1);
  Take();
  uint64_t token = 10;
  for (const proto::DecideRequest& d : forged) {
    core_.OnDecide(token, d, now_);
    AgentEffects fx = Take();
    EXPECT_TRUE(fx.ops.empty()) << "applied without asking, token " << token;
    ASSERT_EQ(fx.queries.size(), 1u) << "token " << token;
    core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::PENDING, now_);
    EXPECT_EQ(DecideReply(Take(), token).status.code, proto::Code::UNAVAILABLE);
    EXPECT_EQ(StateOf(kT1), "prepared");
    ++token;
  }
  EXPECT_EQ(core_.counters().decisions_signed, 0u);
  // The group aborted it: the last forgery is refused, the branch rolls back.
  core_.OnDecide(token, forged[0], now_);
  Take();
  core_.OnOutcome(kT1, Status::Ok(), proto::Outcome::ABORTED, now_);
  AgentEffects fx = Take();
  EXPECT_TRUE(DecideReply(fx, token).refused);
  OpDone(OnlyOp(fx, ResourceOp::kRollback, kT1));
  EXPECT_EQ(StateOf(kT1), "aborted");
  EXPECT_EQ(core_.counters().commits, 0u);
}

// A run of the agent with a new key (a restart) does not honour the last
// run's signatures; without confirmation there is no key to register.
TEST_F(SignedDecisionTest, ASignatureUnderAnotherRunsKeyOrWithoutConfirmationMeansNothing) {
  AgentOptions o = TestOptions();
  o.confirm_decisions = true;
  o.decision_key = {kKey[0] + 1, kKey[1]};
  o.decision_key_address = "127.0.0.1:7101";
  core_ = BranchCore({kRes, kOther}, o);
  MakePrepared(kT1);
  Take();
  core_.OnDecide(2, Signed(kT1, proto::Outcome::COMMITTED), now_);
  EXPECT_EQ(Take().queries.size(), 1u);

  o.confirm_decisions = false;
  BranchCore unconfirmed({kRes}, o);
  EXPECT_FALSE(unconfirmed.signs_decisions());
  EXPECT_FALSE(unconfirmed.OutcomeQuery(kT1).__isset.decision_key);
  o.confirm_decisions = true;
  o.decision_key_address.clear();
  EXPECT_FALSE(BranchCore({kRes}, o).signs_decisions());
}

}  // namespace
}  // namespace txc::participant
