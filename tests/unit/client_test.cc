// Client: how the application library reports what the coordinator group
// answers, against a scripted coordinator on a loopback port.
#include "client/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <boost/asio.hpp>

#include "protocol/rpc.h"
#include "tests/support/core_harness.h"
#include "tests/support/process.h"

namespace txc {
namespace {

// A coordinator that answers every call with the response the test set.
class ScriptedCoordinator {
 public:
  ScriptedCoordinator() : work_(boost::asio::make_work_guard(io_)), server_(io_) {
    server_.Handle<proto::BeginRequest, proto::BeginResponse>(
        "Begin", [](proto::BeginRequest, rpc::RpcServer::Reply<proto::BeginResponse> reply) {
          proto::BeginResponse r;
          r.txid = MakeTxId(3, 1);
          reply(r);
        });
    server_.Handle<proto::CommitRequest, proto::CommitResponse>(
        "Commit", [this](proto::CommitRequest req, rpc::RpcServer::Reply<proto::CommitResponse> reply) {
          commit_protocol = req.protocol;
          reply(commit);
        });
    server_.Handle<proto::SubmitRequest, proto::CommitResponse>(
        "Submit", [this](proto::SubmitRequest req, rpc::RpcServer::Reply<proto::CommitResponse> reply) {
          submit_protocol = req.protocol;
          reply(commit);
        });
    server_.Handle<proto::AbortRequest, proto::CommitResponse>(
        "Abort", [this](proto::AbortRequest, rpc::RpcServer::Reply<proto::CommitResponse> reply) {
          reply(abort);
        });
    server_.Handle<proto::OutcomeRequest, proto::OutcomeResponse>(
        "Outcome", [this](proto::OutcomeRequest, rpc::RpcServer::Reply<proto::OutcomeResponse> reply) {
          reply(outcome);
        });
    Status s = server_.Listen("127.0.0.1:0");
    EXPECT_TRUE(s.ok()) << s.ToString();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ScriptedCoordinator() {
    boost::asio::post(io_, [this] { server_.Stop(); });
    work_.reset();
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_.port()); }

  // Set before the client calls (the io thread reads them after).
  proto::CommitResponse commit;
  proto::CommitResponse abort;
  proto::OutcomeResponse outcome;
  // The protocol of the last CommitRequest / SubmitRequest received (0: none
  // yet); written on the io thread before it replies.
  std::atomic<int> commit_protocol{0};
  std::atomic<int> submit_protocol{0};

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  rpc::RpcServer server_;
  std::thread thread_;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClientOptions o;
    o.coordinators = {coord_.address()};
    o.agents = {{"bank_a", "127.0.0.1:7101"}};  // named in a SubmitRequest, never called
    o.commit_timeout = 5 * kSeconds;
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
  }

  ScriptedCoordinator coord_;
  std::unique_ptr<Client> client_;
};

proto::CommitResponse Answer(proto::Outcome::type outcome, proto::Code::type code = proto::Code::OK) {
  proto::CommitResponse r;
  r.txid = MakeTxId(3, 1);
  r.outcome = outcome;
  r.status.code = code;
  r.status.message = code == proto::Code::OK ? "" : "ended long ago; outcome forgotten";
  return r;
}

TEST_F(ClientTest, ACommittedAnswerIsOkAndAnAbortedOneIsAborted) {
  coord_.commit = Answer(proto::Outcome::COMMITTED);
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_OK(tx->Commit());

  coord_.commit = Answer(proto::Outcome::ABORTED);
  coord_.commit.reason = "bank_b voted no";
  tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  Status s = tx->Commit();
  EXPECT_EQ(s.code(), Status::kAborted);
  EXPECT_NE(s.message().find("bank_b voted no"), std::string::npos);
}

// Issue 8, 4a: a commit retried long after its transaction ended, which the
// group no longer remembers, may have committed: the caller must hear
// "unknown", never "aborted" (it would redo the work).
TEST_F(ClientTest, AForgottenOutcomeIsUnknownNeverAborted) {
  coord_.commit = Answer(proto::Outcome::FORGOTTEN);
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  Status s = tx->Commit();
  EXPECT_EQ(s.code(), Status::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("no longer remembers"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("may have committed"), std::string::npos) << s.ToString();

  coord_.outcome.outcome = proto::Outcome::FORGOTTEN;
  auto o = client_->Outcome(MakeTxId(3, 1));
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(*o, proto::Outcome::FORGOTTEN);
}

// A rollback answered with anything but ABORTED or COMMITTED is neither
// "rolled back" nor "already committed".
TEST_F(ClientTest, ARollbackOfAForgottenTransactionIsNeitherRolledBackNorCommitted) {
  coord_.abort = Answer(proto::Outcome::FORGOTTEN);
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  Status s = tx->Rollback();
  EXPECT_EQ(s.code(), Status::kUnavailable) << s.ToString();
  EXPECT_EQ(s.message().find("already committed"), std::string::npos) << s.ToString();

  // As the coordinator answers it: NOT_FOUND with the outcome FORGOTTEN.
  coord_.abort = Answer(proto::Outcome::FORGOTTEN, proto::Code::NOT_FOUND);
  tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  s = tx->Rollback();
  EXPECT_EQ(s.code(), Status::kNotFound) << s.ToString();

  coord_.abort = Answer(proto::Outcome::ABORTED);
  tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  EXPECT_OK(tx->Rollback());
  coord_.abort = Answer(proto::Outcome::COMMITTED);
  tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  EXPECT_EQ(tx->Rollback().code(), Status::kInvalidArgument);
}

TEST(ParseProtocolTest, AcceptsTwoAndThreePhaseCommitInAnyCase) {
  for (const char* text : {"2pc", "2PC", "2Pc"}) {
    auto p = ParseProtocol(text);
    ASSERT_TRUE(p.ok()) << text << ": " << p.status().ToString();
    EXPECT_EQ(*p, proto::Protocol::TWO_PC) << text;
  }
  for (const char* text : {"3pc", "3PC"}) {
    auto p = ParseProtocol(text);
    ASSERT_TRUE(p.ok()) << text << ": " << p.status().ToString();
    EXPECT_EQ(*p, proto::Protocol::THREE_PC) << text;
  }
  // ProtocolFlag writes what ParseProtocol reads.
  for (auto p : {proto::Protocol::TWO_PC, proto::Protocol::THREE_PC}) {
    auto back = ParseProtocol(ProtocolFlag(p));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, p);
  }
  EXPECT_STREQ(ProtocolFlag(proto::Protocol::TWO_PC), "2pc");
  EXPECT_STREQ(ProtocolFlag(proto::Protocol::THREE_PC), "3pc");
}

TEST(ParseProtocolTest, RefusesAnythingElseNamingTheTextAndTheChoices) {
  for (const char* text : {"4pc", "", "2", "pc", " 2pc", "2pc ", "two_pc", "TWO_PC", "2pcx"}) {
    auto p = ParseProtocol(text);
    ASSERT_FALSE(p.ok()) << "'" << text << "' was accepted";
    EXPECT_EQ(p.status().code(), Status::kInvalidArgument) << text;
    const std::string& m = p.status().message();
    EXPECT_NE(m.find("'" + std::string(text) + "'"), std::string::npos) << m;
    EXPECT_NE(m.find("2pc or 3pc"), std::string::npos) << m;
  }
}

// The protocol chosen at Begin (or given to Submit) is the one the
// coordinator receives; 2PC when nothing is chosen.
TEST_F(ClientTest, TheChosenProtocolTravelsWithCommitAndSubmit) {
  coord_.commit = Answer(proto::Outcome::COMMITTED);

  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->protocol(), proto::Protocol::TWO_PC);
  EXPECT_OK(tx->Commit());
  EXPECT_EQ(coord_.commit_protocol.load(), proto::Protocol::TWO_PC);

  tx = client_->Begin({.protocol = proto::Protocol::THREE_PC});
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  EXPECT_EQ(tx->protocol(), proto::Protocol::THREE_PC);
  EXPECT_OK(tx->Commit());
  EXPECT_EQ(coord_.commit_protocol.load(), proto::Protocol::THREE_PC);

  std::map<std::string, std::vector<proto::Statement>> work{
      {"bank_a", {Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 1")}}};
  auto id = client_->Submit(work, {.protocol = proto::Protocol::THREE_PC});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(coord_.submit_protocol.load(), proto::Protocol::THREE_PC);
  id = client_->Submit(work);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(coord_.submit_protocol.load(), proto::Protocol::TWO_PC);
}

// A coordinator's refusal of the protocol reaches the caller as it was said.
TEST_F(ClientTest, ARefusedProtocolIsReportedAsTheCoordinatorSaysIt) {
  coord_.commit = Answer(proto::Outcome::PENDING, proto::Code::INVALID_ARGUMENT);
  coord_.commit.status.message = "unknown commit protocol 9 (TWO_PC = 1, THREE_PC = 2)";
  auto tx = client_->Begin({.protocol = proto::Protocol::THREE_PC});
  ASSERT_TRUE(tx.ok());
  Status s = tx->Commit();
  EXPECT_EQ(s.code(), Status::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("TWO_PC"), std::string::npos) << s.ToString();
}

// Connect probes the group: with nobody listening it fails at
// connect_timeout, UNAVAILABLE, naming every address tried and what went
// wrong there (a new user with a wrong address must not wait in silence).
// The bound on the elapsed time only tells "gave up" from "hangs".
TEST(ClientDeadlineTest, ConnectToAnUnreachableGroupFailsAtTheTimeoutNamingEveryAddress) {
  const std::string a = "127.0.0.1:" + std::to_string(testing::FreePort());
  const std::string b = "127.0.0.1:" + std::to_string(testing::FreePort());
  ClientOptions o;
  o.coordinators = {a, b};
  o.connect_timeout = 300 * kMillis;
  auto start = std::chrono::steady_clock::now();
  auto c = Client::Connect(o);
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::kUnavailable) << c.status().ToString();
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("within 300 ms"), std::string::npos) << m;
  EXPECT_NE(m.find(a + " (UNAVAILABLE"), std::string::npos) << m;
  EXPECT_NE(m.find(b + " (UNAVAILABLE"), std::string::npos) << m;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::seconds(20));
}

// Without the probe (connect_timeout 0), a call meets the same wall: the
// call's own deadline, then UNAVAILABLE naming what was tried.
TEST(ClientDeadlineTest, ABeginAgainstAnUnreachableGroupFailsAtTheCallTimeout) {
  const std::string a = "127.0.0.1:" + std::to_string(testing::FreePort());
  ClientOptions o;
  o.coordinators = {a};
  o.connect_timeout = 0;
  o.call_timeout = 300 * kMillis;
  auto c = Client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto tx = (*c)->Begin();
  ASSERT_FALSE(tx.ok());
  EXPECT_EQ(tx.status().code(), Status::kUnavailable) << tx.status().ToString();
  const std::string& m = tx.status().message();
  EXPECT_NE(m.find("unreachable within 300 ms: tried " + a), std::string::npos) << m;
  EXPECT_NE(m.find("last error: " + a + ": UNAVAILABLE"), std::string::npos) << m;
}

// A coordinator that answers Status with an error (here: a server that does
// not know the method) is reachable: Connect succeeds, as ClientTest's
// fixture shows for every test above.

}  // namespace
}  // namespace txc
