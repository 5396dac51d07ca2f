// The wire range checks: every numeric field of every request is checked, a
// refusal names the field and the value, and what honest clients send passes.
#include "protocol/validate.h"

#include <cstring>
#include <limits>
#include <optional>

#include <gtest/gtest.h>

#include "common/txid.h"

namespace txc::validate {
namespace {

constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();

// A refusal: INVALID_ARGUMENT whose message names `field` and `value`.
void ExpectRefused(const Status& s, const std::string& field, const std::string& value) {
  EXPECT_EQ(s.code(), Status::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(field + " = " + value), std::string::npos) << s.message();
}

proto::Participant Part(const std::string& resource) {
  proto::Participant p;
  p.resource = resource;
  p.address = "127.0.0.1:7101";
  p.__set_incarnation(3);
  return p;
}

proto::Statement Stmt(std::optional<int64_t> expect) {
  proto::Statement s;
  s.sql = "UPDATE accounts SET balance = balance - 1 WHERE id = 1";
  if (expect) s.__set_expect_rows(*expect);
  return s;
}

TEST(ValidateTest, TxIdNeedsPositiveEpochAndSeq) {
  EXPECT_TRUE(CheckTxId(MakeTxId(1, 1), "T").ok());
  EXPECT_TRUE(CheckTxId(MakeTxId(kMax64, kMax64), "T").ok());
  ExpectRefused(CheckTxId(MakeTxId(0, 5), "T"), "T.epoch", "0");
  ExpectRefused(CheckTxId(MakeTxId(-1, 5), "T"), "T.epoch", "-1");
  ExpectRefused(CheckTxId(MakeTxId(kMin64, 5), "T"), "T.epoch", std::to_string(kMin64));
  ExpectRefused(CheckTxId(MakeTxId(2, 0), "T"), "T.seq", "0");
  ExpectRefused(CheckTxId(MakeTxId(2, -7), "T"), "T.seq", "-7");
}

TEST(ValidateTest, TimeoutIsZeroForDefaultOrAtMostADay) {
  EXPECT_TRUE(CheckTimeoutMs(0, "T").ok());
  EXPECT_TRUE(CheckTimeoutMs(1, "T").ok());
  EXPECT_TRUE(CheckTimeoutMs(kMaxTimeoutMs, "T").ok());
  ExpectRefused(CheckTimeoutMs(-1, "T"), "T", "-1");
  ExpectRefused(CheckTimeoutMs(kMaxTimeoutMs + 1, "T"), "T", std::to_string(kMaxTimeoutMs + 1));
  // The value that made timeout_ms * kMillis overflow.
  ExpectRefused(CheckTimeoutMs(kMax64, "T"), "T", std::to_string(kMax64));
}

TEST(ValidateTest, BeginChecksATimeoutOnlyWhenSet) {
  proto::BeginRequest r;
  r.timeout_ms = -5;  // not set: ignored, as the server ignores it
  EXPECT_TRUE(Check(r).ok());
  r.__set_timeout_ms(30000);
  EXPECT_TRUE(Check(r).ok());
  r.__set_timeout_ms(kMax64);
  ExpectRefused(Check(r), "BeginRequest.timeout_ms", std::to_string(kMax64));
}

TEST(ValidateTest, BeginReservesOneTo256Txids) {
  proto::BeginRequest r;
  r.count = 0;  // not set: one txid
  EXPECT_TRUE(Check(r).ok());
  r.__set_count(1);
  EXPECT_TRUE(Check(r).ok());
  r.__set_count(kMaxBeginCount);
  EXPECT_TRUE(Check(r).ok());
  r.__set_count(0);
  ExpectRefused(Check(r), "BeginRequest.count", "0");
  r.__set_count(-3);
  ExpectRefused(Check(r), "BeginRequest.count", "-3");
  r.__set_count(kMaxBeginCount + 1);
  ExpectRefused(Check(r), "BeginRequest.count", std::to_string(kMaxBeginCount + 1));
}

TEST(ValidateTest, CommitChecksTxIdIncarnationsAndProtocol) {
  proto::CommitRequest r;
  r.txid = MakeTxId(3, 9);
  r.participants = {Part("bank_a"), Part("bank_b")};
  EXPECT_TRUE(Check(r).ok());
  r.participants[1].__set_incarnation(0);  // not known: allowed
  EXPECT_TRUE(Check(r).ok());
  r.participants[1].__set_incarnation(-2);
  ExpectRefused(Check(r), "CommitRequest.participants[1].incarnation", "-2");
  r.participants[1].__set_incarnation(1);
  r.protocol = static_cast<proto::Protocol::type>(77);
  ExpectRefused(Check(r), "CommitRequest.protocol", "77");
  r.protocol = proto::Protocol::TWO_PC;
  r.txid = MakeTxId(3, -9);
  ExpectRefused(Check(r), "CommitRequest.txid.seq", "-9");
}

TEST(ValidateTest, SubmitChecksEveryBranch) {
  proto::SubmitRequest r;
  r.txid = MakeTxId(1, 1);
  proto::Branch a, b;
  a.participant = Part("bank_a");
  a.statements = {Stmt(1), Stmt(std::nullopt)};
  b.participant = Part("bank_b");
  b.statements = {Stmt(0)};
  r.branches = {a, b};
  EXPECT_TRUE(Check(r).ok());
  r.branches[1].statements.push_back(Stmt(-1));
  ExpectRefused(Check(r), "SubmitRequest.branches[1].statements[1].expect_rows", "-1");
  r.branches[1].statements.pop_back();
  r.branches[0].participant.__set_incarnation(-4);
  ExpectRefused(Check(r), "SubmitRequest.branches[0].participant.incarnation", "-4");
  r.branches[0].participant.__set_incarnation(4);
  r.protocol = static_cast<proto::Protocol::type>(0);
  ExpectRefused(Check(r), "SubmitRequest.protocol", "0");
  r.protocol = proto::Protocol::THREE_PC;  // a protocol; the driver says whether it runs it
  EXPECT_TRUE(Check(r).ok());
  r.txid = MakeTxId(0, 1);
  ExpectRefused(Check(r), "SubmitRequest.txid.epoch", "0");
}

TEST(ValidateTest, AbortAndOutcomeCheckTheirTxId) {
  proto::AbortRequest a;
  a.txid = MakeTxId(2, 2);
  a.participants = {Part("bank_a")};
  EXPECT_TRUE(Check(a).ok());
  a.participants[0].__set_incarnation(kMin64);
  ExpectRefused(Check(a), "AbortRequest.participants[0].incarnation", std::to_string(kMin64));
  a.participants[0].__set_incarnation(1);
  a.txid = MakeTxId(-2, 2);
  ExpectRefused(Check(a), "AbortRequest.txid.epoch", "-2");

  proto::OutcomeRequest o;
  o.txid = MakeTxId(5, 6);
  EXPECT_TRUE(Check(o).ok());
  o.txid = MakeTxId(5, -6);
  ExpectRefused(Check(o), "OutcomeRequest.txid.seq", "-6");
  // An agent's key for signed decisions names the agent it is for.
  o.txid = MakeTxId(5, 6);
  proto::DecisionKey k;
  k.agent_address = "127.0.0.1:7101";
  k.k0 = 1;
  o.__set_decision_key(k);
  EXPECT_TRUE(Check(o).ok());
  o.decision_key.agent_address.clear();
  Status empty = Check(o);
  EXPECT_EQ(empty.code(), Status::kInvalidArgument);
  EXPECT_NE(empty.message().find("OutcomeRequest.decision_key.agent_address is empty"),
            std::string::npos)
      << empty.message();
  o.decision_key.agent_address.assign(5000, 'a');
  Status longer = Check(o);
  EXPECT_EQ(longer.code(), Status::kInvalidArgument);
  EXPECT_NE(longer.message().find("is 5000 bytes long"), std::string::npos) << longer.message();
}

TEST(ValidateTest, RequestsWithoutNumbersPass) {
  EXPECT_TRUE(Check(proto::StatusRequest()).ok());
  proto::ListTxnsRequest l;
  l.__set_state("in-doubt");
  EXPECT_TRUE(Check(l).ok());
  EXPECT_TRUE(Check(proto::ListBranchesRequest()).ok());
  EXPECT_TRUE(Check(proto::RetryTxnsRequest()).ok());  // every undelivered transaction
}

TEST(ValidateTest, OperatorRequestsCheckATxIdOnlyWhenSet) {
  proto::ListTxnsRequest l;
  l.__set_txid(MakeTxId(3, 4));
  EXPECT_TRUE(Check(l).ok());
  l.__set_txid(MakeTxId(-3, 4));
  ExpectRefused(Check(l), "ListTxnsRequest.txid.epoch", "-3");
  proto::RetryTxnsRequest r;
  r.__set_txid(MakeTxId(3, 4));
  EXPECT_TRUE(Check(r).ok());
  r.__set_txid(MakeTxId(3, 0));
  ExpectRefused(Check(r), "RetryTxnsRequest.txid.seq", "0");
}

TEST(ValidateTest, ExecuteChecksTxIdStatementsAndTimeout) {
  proto::ExecuteRequest r;
  r.txid = MakeTxId(1, 42);
  r.resource = "bank_a";
  r.statements = {Stmt(1), Stmt(std::nullopt)};
  EXPECT_TRUE(Check(r).ok());
  r.__set_timeout_ms(kMaxTimeoutMs);
  EXPECT_TRUE(Check(r).ok());
  r.__set_timeout_ms(kMax64 / 100);
  ExpectRefused(Check(r), "ExecuteRequest.timeout_ms", std::to_string(kMax64 / 100));
  r.__set_timeout_ms(-1);
  ExpectRefused(Check(r), "ExecuteRequest.timeout_ms", "-1");
  r.__set_timeout_ms(1000);
  r.statements.push_back(Stmt(kMin64));
  ExpectRefused(Check(r), "ExecuteRequest.statements[2].expect_rows", std::to_string(kMin64));
  r.statements.pop_back();
  // The request that used to brick the agent's recovery.
  r.txid = MakeTxId(1, -42);
  ExpectRefused(Check(r), "ExecuteRequest.txid.seq", "-42");
}

// 100k small statements fit in a frame; one request carries at most
// kMaxStatements of them, in Execute, in a one-shot PREPARE and in Submit.
TEST(ValidateTest, OneRequestCarriesAtMostMaxStatements) {
  std::vector<proto::Statement> most(kMaxStatements, Stmt(std::nullopt));
  std::vector<proto::Statement> more(kMaxStatements + 1, Stmt(std::nullopt));
  proto::ExecuteRequest e;
  e.txid = MakeTxId(1, 1);
  e.resource = "bank_a";
  e.statements = most;
  EXPECT_TRUE(Check(e).ok());
  e.statements = more;
  Status s = Check(e);
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find("ExecuteRequest.statements holds " + std::to_string(kMaxStatements + 1)),
            std::string::npos)
      << s.message();
  proto::PrepareRequest p;
  p.txid = MakeTxId(1, 1);
  p.resource = "bank_a";
  p.__set_work(most);
  EXPECT_TRUE(Check(p).ok());
  p.__set_work(more);
  EXPECT_NE(Check(p).message().find("PrepareRequest.work holds"), std::string::npos);
  proto::SubmitRequest r;
  r.txid = MakeTxId(1, 1);
  proto::Branch b;
  b.participant = Part("bank_a");
  b.statements = more;
  r.branches = {b};
  EXPECT_NE(Check(r).message().find("SubmitRequest.branches[0].statements holds"), std::string::npos);
}

bool Says(const Status& s, const std::string& text) {
  EXPECT_EQ(s.code(), Status::kInvalidArgument) << s.ToString();
  return s.message().find(text) != std::string::npos;
}

// Parameters: per statement and per request; SQL text per statement. At the
// limit passes; one past it is refused naming the field, the size and the
// limit.
TEST(ValidateTest, ParametersAndSqlLengthAreBoundedNamingFieldSizeAndLimit) {
  proto::ExecuteRequest e;
  e.txid = MakeTxId(1, 1);
  e.resource = "bank_a";
  e.statements = {Stmt(std::nullopt)};
  e.statements[0].params.resize(kMaxParamsPerStatement);
  EXPECT_TRUE(Check(e).ok());
  e.statements[0].params.resize(kMaxParamsPerStatement + 1);
  Status s = Check(e);
  EXPECT_TRUE(Says(s, "ExecuteRequest.statements[0].params holds 32767 parameters; at most 32766 "
                      "bind to one statement"))
      << s.message();

  // Four statements of 25,000 are exactly the request limit; one more is over.
  e.statements.assign(4, Stmt(std::nullopt));
  for (auto& st : e.statements) st.params.resize(25000);
  EXPECT_TRUE(Check(e).ok());
  e.statements.push_back(Stmt(std::nullopt));
  e.statements.back().params.resize(1);
  s = Check(e);
  EXPECT_TRUE(Says(s, "ExecuteRequest.statements holds 100001 parameters in all; at most 100000 "
                      "travel in one request"))
      << s.message();

  e.statements = {Stmt(std::nullopt)};
  e.statements[0].sql = std::string(kMaxSqlBytes, 'x');
  EXPECT_TRUE(Check(e).ok());
  e.statements[0].sql.push_back(' ');
  s = Check(e);
  EXPECT_TRUE(Says(s, "ExecuteRequest.statements[0].sql is 1048577 bytes long; a statement's SQL "
                      "is at most 1048576 bytes"))
      << s.message();

  // The same checks in a one-shot PREPARE's work and in Submit.
  proto::PrepareRequest p;
  p.txid = MakeTxId(1, 1);
  p.resource = "bank_a";
  p.__set_work(e.statements);
  EXPECT_TRUE(Says(Check(p), "PrepareRequest.work[0].sql is 1048577 bytes long"));
  proto::SubmitRequest r;
  r.txid = MakeTxId(1, 1);
  proto::Branch b;
  b.participant = Part("bank_a");
  b.statements = {Stmt(std::nullopt)};
  b.statements[0].params.resize(kMaxParamsPerStatement + 1);
  r.branches = {b};
  EXPECT_TRUE(Says(Check(r), "SubmitRequest.branches[0].statements[0].params holds 32767"));
  // Over the whole Submit: each branch is within the limits, the sum is not.
  b.statements.assign(kMaxStatements / 2 + 1, Stmt(std::nullopt));
  r.branches = {b, b};
  r.branches[1].participant = Part("bank_b");
  s = Check(r);
  EXPECT_TRUE(Says(s, "SubmitRequest.branches holds 10002 statements in all; at most 10000"))
      << s.message();
  b.statements.assign(4, Stmt(std::nullopt));
  for (auto& st : b.statements) st.params.resize(12501);
  r.branches = {b, b};
  s = Check(r);
  EXPECT_TRUE(Says(s, "SubmitRequest.branches holds 100008 parameters in all; at most 100000"))
      << s.message();
}

// Participants per transaction, wherever a list of them arrives.
TEST(ValidateTest, ParticipantsPerTransactionAreBounded) {
  std::vector<proto::Participant> most, more;
  for (size_t i = 0; i < kMaxParticipants; ++i) most.push_back(Part("r" + std::to_string(i)));
  more = most;
  more.push_back(Part("one_more"));

  proto::CommitRequest c;
  c.txid = MakeTxId(1, 1);
  c.participants = most;
  EXPECT_TRUE(Check(c).ok());
  c.participants = more;
  Status s = Check(c);
  EXPECT_TRUE(Says(s, "CommitRequest.participants holds 1001 participants; at most 1000"))
      << s.message();

  proto::AbortRequest a;
  a.txid = MakeTxId(1, 1);
  a.participants = more;
  EXPECT_TRUE(Says(Check(a), "AbortRequest.participants holds 1001 participants"));

  proto::PrepareRequest p;
  p.txid = MakeTxId(1, 1);
  p.resource = "r0";
  p.participants = more;
  EXPECT_TRUE(Says(Check(p), "PrepareRequest.participants holds 1001 participants"));

  proto::SubmitRequest r;
  r.txid = MakeTxId(1, 1);
  for (const auto& part : more) {
    proto::Branch b;
    b.participant = part;
    r.branches.push_back(b);
  }
  s = Check(r);
  EXPECT_TRUE(Says(s, "SubmitRequest.branches holds 1001 branches; at most 1000")) << s.message();
  r.branches.pop_back();
  EXPECT_TRUE(Check(r).ok());
}

// Names and reasons that are echoed in errors and kept in logs.
TEST(ValidateTest, NamesAddressesAndReasonsAreBounded) {
  proto::CommitRequest c;
  c.txid = MakeTxId(1, 1);
  c.participants = {Part(std::string(kMaxNameBytes, 'r'))};
  EXPECT_TRUE(Check(c).ok());
  c.participants = {Part(std::string(kMaxNameBytes + 1, 'r'))};
  Status s = Check(c);
  EXPECT_TRUE(Says(s, "CommitRequest.participants[0].resource is 257 bytes long; a resource name "
                      "is at most 256 bytes"))
      << s.message();
  c.participants = {Part("bank_a")};
  c.participants[0].address = std::string(300, 'h');
  EXPECT_TRUE(Says(Check(c), "CommitRequest.participants[0].address is 300 bytes long"));

  proto::ExecuteRequest e;
  e.txid = MakeTxId(1, 1);
  e.resource = std::string(1000, 'r');
  EXPECT_TRUE(Says(Check(e), "ExecuteRequest.resource is 1000 bytes long"));
  proto::DecideRequest d;
  d.txid = MakeTxId(1, 1);
  d.outcome = proto::Outcome::ABORTED;
  d.resource = std::string(257, 'r');
  EXPECT_TRUE(Says(Check(d), "DecideRequest.resource is 257 bytes long"));

  proto::AbortRequest a;
  a.txid = MakeTxId(1, 1);
  a.reason = std::string(kMaxReasonBytes, 'w');
  EXPECT_TRUE(Check(a).ok());
  a.reason.push_back('!');
  EXPECT_TRUE(Says(Check(a), "AbortRequest.reason is 1025 bytes long; at most 1024 bytes"));
}

TEST(ValidateTest, PrepareChecksParticipantsProtocolAndWork) {
  proto::PrepareRequest r;
  r.txid = MakeTxId(4, 1);
  r.resource = "bank_a";
  r.participants = {Part("bank_a"), Part("bank_b")};
  EXPECT_TRUE(Check(r).ok());
  r.__set_work({Stmt(1)});
  EXPECT_TRUE(Check(r).ok());
  r.__set_work({Stmt(1), Stmt(-3)});
  ExpectRefused(Check(r), "PrepareRequest.work[1].expect_rows", "-3");
  r.work.clear();
  r.participants[0].__set_incarnation(-1);
  ExpectRefused(Check(r), "PrepareRequest.participants[0].incarnation", "-1");
  r.participants[0].__set_incarnation(1);
  r.protocol = static_cast<proto::Protocol::type>(-1);
  ExpectRefused(Check(r), "PrepareRequest.protocol", "-1");
  r.protocol = proto::Protocol::TWO_PC;
  r.txid = MakeTxId(0, 0);
  ExpectRefused(Check(r), "PrepareRequest.txid.epoch", "0");
}

TEST(ValidateTest, DecideIsCommittedOrAborted) {
  proto::DecideRequest r;
  r.txid = MakeTxId(1, 1);
  r.resource = "bank_a";
  r.outcome = proto::Outcome::COMMITTED;
  EXPECT_TRUE(Check(r).ok());
  r.outcome = proto::Outcome::ABORTED;
  EXPECT_TRUE(Check(r).ok());
  r.outcome = proto::Outcome::PENDING;
  ExpectRefused(Check(r), "DecideRequest.outcome", "1");
  r.outcome = static_cast<proto::Outcome::type>(12345);
  ExpectRefused(Check(r), "DecideRequest.outcome", "12345");
  r.outcome = proto::Outcome::ABORTED;
  r.txid = MakeTxId(1, -1);
  ExpectRefused(Check(r), "DecideRequest.txid.seq", "-1");
}

TEST(ValidateTest, AgentOperatorRequestsNeedADecisionAReasonAndAName) {
  proto::AgentResolveRequest r;
  r.txid = MakeTxId(2, 5);
  r.outcome = proto::Outcome::ABORTED;
  r.reason = "group unreachable";
  r.who = "alice";
  EXPECT_TRUE(Check(r).ok());
  r.outcome = proto::Outcome::PENDING;
  ExpectRefused(Check(r), "AgentResolveRequest.outcome", "1");
  r.outcome = proto::Outcome::COMMITTED;
  r.reason.clear();
  EXPECT_EQ(Check(r).code(), Status::kInvalidArgument);
  EXPECT_NE(Check(r).message().find("AgentResolveRequest.reason: say why"), std::string::npos);
  r.reason = "x";
  r.who = std::string(300, 'a');
  EXPECT_EQ(Check(r).code(), Status::kInvalidArgument);
  EXPECT_NE(Check(r).message().find("AgentResolveRequest.who: name the operator"), std::string::npos);
  proto::AgentForgetRequest f;
  f.txid = MakeTxId(0, 5);
  f.reason = "repaired";
  f.who = "alice";
  ExpectRefused(Check(f), "AgentForgetRequest.txid.epoch", "0");
  f.txid = MakeTxId(2, 5);
  EXPECT_TRUE(Check(f).ok());
}

TEST(ValidateTest, PeerMessageNamesRealReplicas) {
  proto::PeerMessage m;
  m.sender = 1;
  m.receiver = 3;
  EXPECT_TRUE(Check(m).ok());
  m.sender = -8;
  ExpectRefused(Check(m), "PeerMessage.sender", "-8");
  m.sender = 2;
  m.receiver = 0;
  ExpectRefused(Check(m), "PeerMessage.receiver", "0");
}

TEST(ValidateTest, RefusalCarriesOnlyTheStatus) {
  Status why = Check(proto::OutcomeRequest());  // a default txid is 0.0
  ASSERT_FALSE(why.ok());
  auto r = Refusal<proto::ExecuteResponse>(why);
  EXPECT_EQ(r.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.message, why.message());
  EXPECT_TRUE(r.results.empty());
  auto c = Refusal<proto::CommitResponse>(why);
  EXPECT_EQ(c.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_EQ(c.outcome, proto::Outcome::UNKNOWN);  // nothing is claimed about the transaction
}

// ------------------------------------------------------------ enum fields

// Stores `v` in an enum field as the generated reader does, without a cast
// to the enum (a value outside its range is not one of its values).
template <class E>
void SetRaw(E* field, int32_t v) {
  static_assert(sizeof(E) == sizeof(v));
  std::memcpy(field, &v, sizeof v);
}

// Every response's status.code: 0..13 pass, anything else is refused naming
// "TYPE.status.code" and the value.
template <class Resp>
void ExpectStatusCodeChecked(const std::string& type) {
  SCOPED_TRACE(type);
  Resp r;
  EXPECT_TRUE(CheckEnums(r).ok());
  for (int32_t code : {0, 5, 13}) {
    SetRaw(&r.status.code, code);
    EXPECT_TRUE(CheckEnums(r).ok()) << code;
  }
  for (int32_t code : {14, 1024, -1, std::numeric_limits<int32_t>::min()}) {
    SetRaw(&r.status.code, code);
    ExpectRefused(CheckEnums(r), type + ".status.code", std::to_string(code));
  }
}

TEST(ValidateEnumsTest, EveryResponseStatusCodeIsChecked) {
  ExpectStatusCodeChecked<proto::BeginResponse>("BeginResponse");
  ExpectStatusCodeChecked<proto::CommitResponse>("CommitResponse");
  ExpectStatusCodeChecked<proto::OutcomeResponse>("OutcomeResponse");
  ExpectStatusCodeChecked<proto::StatusResponse>("StatusResponse");
  ExpectStatusCodeChecked<proto::ListTxnsResponse>("ListTxnsResponse");
  ExpectStatusCodeChecked<proto::RetryTxnsResponse>("RetryTxnsResponse");
  ExpectStatusCodeChecked<proto::ExecuteResponse>("ExecuteResponse");
  ExpectStatusCodeChecked<proto::PrepareResponse>("PrepareResponse");
  ExpectStatusCodeChecked<proto::DecideResponse>("DecideResponse");
  ExpectStatusCodeChecked<proto::ListBranchesResponse>("ListBranchesResponse");
  ExpectStatusCodeChecked<proto::AgentResolveResponse>("AgentResolveResponse");
  ExpectStatusCodeChecked<proto::AgentForgetResponse>("AgentForgetResponse");
  ExpectStatusCodeChecked<proto::BranchStateResponse>("BranchStateResponse");
  ExpectStatusCodeChecked<proto::PeerAck>("PeerAck");
  ExpectStatusCodeChecked<proto::LogBenchAppendResponse>("LogBenchAppendResponse");
}

TEST(ValidateEnumsTest, RequestEnumsAreCheckedAndTheMessageNamesTheValues) {
  proto::CommitRequest c;
  EXPECT_TRUE(CheckEnums(c).ok());
  SetRaw(&c.protocol, 7);
  Status s = CheckEnums(c);
  ExpectRefused(s, "CommitRequest.protocol", "7");
  // The message says what the values are: 0 is not a Protocol, but passes
  // here as "unset" (Check() refuses it for a request).
  EXPECT_NE(s.message().find("Protocol has no such value (1 TWO_PC to 2 THREE_PC, or 0: unset)"),
            std::string::npos)
      << s.message();
  SetRaw(&c.protocol, 0);
  EXPECT_TRUE(CheckEnums(c).ok());

  proto::SubmitRequest sub;
  SetRaw(&sub.protocol, -3);
  ExpectRefused(CheckEnums(sub), "SubmitRequest.protocol", "-3");
  proto::PrepareRequest p;
  SetRaw(&p.protocol, 3);
  ExpectRefused(CheckEnums(p), "PrepareRequest.protocol", "3");
  proto::DecideRequest d;
  SetRaw(&d.outcome, 5);
  s = CheckEnums(d);
  ExpectRefused(s, "DecideRequest.outcome", "5");
  EXPECT_NE(s.message().find("Outcome has no such value (0 UNKNOWN to 4 FORGOTTEN)"),
            std::string::npos)
      << s.message();
  SetRaw(&d.outcome, proto::Outcome::FORGOTTEN);
  EXPECT_TRUE(CheckEnums(d).ok());  // an Outcome; Check() judges what it means
  proto::ResolveRequest r;
  SetRaw(&r.outcome, 99);
  ExpectRefused(CheckEnums(r), "ResolveRequest.outcome", "99");
  proto::AgentResolveRequest ar;
  SetRaw(&ar.outcome, 1 << 20);
  ExpectRefused(CheckEnums(ar), "AgentResolveRequest.outcome", std::to_string(1 << 20));
}

TEST(ValidateEnumsTest, ResponseOutcomesAndVotesAreChecked) {
  proto::CommitResponse c;
  SetRaw(&c.outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(CheckEnums(c).ok());
  SetRaw(&c.outcome, 77);
  ExpectRefused(CheckEnums(c), "CommitResponse.outcome", "77");
  proto::OutcomeResponse o;
  SetRaw(&o.outcome, 5);
  ExpectRefused(CheckEnums(o), "OutcomeResponse.outcome", "5");
  proto::PrepareResponse p;
  EXPECT_TRUE(CheckEnums(p).ok());  // vote 0: a refused Prepare's answer
  for (int32_t v : {1, 2, 3}) {
    SetRaw(&p.vote, v);
    EXPECT_TRUE(CheckEnums(p).ok()) << v;
  }
  SetRaw(&p.vote, 4);
  ExpectRefused(CheckEnums(p), "PrepareResponse.vote", "4");
  // A bad status is named before the field that follows it.
  SetRaw(&p.status.code, 40);
  ExpectRefused(CheckEnums(p), "PrepareResponse.status.code", "40");
}

TEST(ValidateEnumsTest, EnumsInsideListsAreNamedWithTheirIndex) {
  proto::ListTxnsResponse l;
  l.txns.resize(3);
  l.txns[2].progress.resize(2);
  EXPECT_TRUE(CheckEnums(l).ok());
  SetRaw(&l.txns[1].outcome, 9);
  ExpectRefused(CheckEnums(l), "ListTxnsResponse.txns[1].outcome", "9");
  SetRaw(&l.txns[1].outcome, proto::Outcome::ABORTED);
  SetRaw(&l.txns[2].protocol, 8);
  ExpectRefused(CheckEnums(l), "ListTxnsResponse.txns[2].protocol", "8");
  SetRaw(&l.txns[2].protocol, proto::Protocol::THREE_PC);
  SetRaw(&l.txns[2].progress[1].vote, -7);
  ExpectRefused(CheckEnums(l), "ListTxnsResponse.txns[2].progress[1].vote", "-7");
  SetRaw(&l.txns[2].progress[1].vote, proto::Vote::READ_ONLY);
  EXPECT_TRUE(CheckEnums(l).ok());

  proto::ListBranchesResponse b;
  b.branches.resize(2);
  SetRaw(&b.branches[1].heuristic_outcome, 6);
  ExpectRefused(CheckEnums(b), "ListBranchesResponse.branches[1].heuristic_outcome", "6");
  SetRaw(&b.branches[1].heuristic_outcome, proto::Outcome::COMMITTED);
  SetRaw(&b.branches[0].group_outcome, 1000);
  ExpectRefused(CheckEnums(b), "ListBranchesResponse.branches[0].group_outcome", "1000");
  proto::AgentResolveResponse ar;
  ar.branches.resize(1);
  SetRaw(&ar.branches[0].group_outcome, 12);
  ExpectRefused(CheckEnums(ar), "AgentResolveResponse.branches[0].group_outcome", "12");
}

TEST(ValidateEnumsTest, MessagesWithoutEnumFieldsPass) {
  EXPECT_TRUE(CheckEnums(proto::BeginRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::AbortRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::OutcomeRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::StatusRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::ListTxnsRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::RetryTxnsRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::ForgetParticipantRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::ExecuteRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::ListBranchesRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::AgentForgetRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::BranchStateRequest()).ok());
  EXPECT_TRUE(CheckEnums(proto::PeerMessage()).ok());
  EXPECT_TRUE(CheckEnums(proto::LogBenchAppendRequest()).ok());
}

}  // namespace
}  // namespace txc::validate
