// Client: how the application library reports what the coordinator group
// answers, against a scripted coordinator on a loopback port.
#include "client/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>

#include "client/async_client.h"
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
        "Begin", [this](proto::BeginRequest req, rpc::RpcServer::Reply<proto::BeginResponse> reply) {
          proto::BeginResponse r;
          std::lock_guard<std::mutex> l(mu);
          begin_counts.push_back(req.__isset.count ? req.count : 0);
          if (!reserve) {  // as a coordinator that predates BeginRequest.count
            r.txid = MakeTxId(3, 1);
            return reply(r);
          }
          r.txid = MakeTxId(epoch, next_seq);
          int32_t n = req.__isset.count ? req.count : 1;
          next_seq += n;
          if (req.__isset.count) {
            r.__set_count(n);
            r.__set_reserved_ms(reserved_ms);
          }
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
          std::lock_guard<std::mutex> l(mu);
          submitted.push_back(req.txid);
          proto::CommitResponse r = commit;
          if (!submit_answers.empty()) {
            r = submit_answers.front();
            submit_answers.erase(submit_answers.begin());
          }
          r.txid = req.txid;
          reply(r);
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

  // Txid reservations (BeginRequest.count), under mu: when `reserve`, Begin
  // hands out txids from (epoch, next_seq) on, `count` of them when asked.
  // What was asked and submitted is recorded (count 0: unset).
  std::mutex mu;
  bool reserve = false;
  int64_t epoch = 3;
  int64_t next_seq = 1;
  int64_t reserved_ms = 10000;
  std::vector<int32_t> begin_counts;
  std::vector<TxId> submitted;
  std::vector<proto::CommitResponse> submit_answers;  // the next Submits' answers, then `commit`

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

// ---------------------------------------------- txids reserved for Submit

using Work = std::map<std::string, std::vector<proto::Statement>>;
const Work kWork{{"bank_a", {Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 1")}}};

std::vector<TxId> Seqs(int64_t epoch, int64_t from, int64_t to) {
  std::vector<TxId> out;
  for (int64_t s = from; s <= to; ++s) out.push_back(MakeTxId(epoch, s));
  return out;
}

// Submits through the blocking Client or the AsyncClient (on its own io
// thread, one at a time): both keep the same reserve.
class ReserveTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    coord_.commit = Answer(proto::Outcome::COMMITTED);
    std::lock_guard<std::mutex> l(coord_.mu);
    coord_.reserve = true;
  }
  void TearDown() override {
    // The AsyncClient belongs to its io thread: stopped first, then the
    // client goes (as with no thread running its io_context).
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    async_.reset();
  }
  Status Connect(int32_t reserve_txids) {
    ClientOptions o;
    o.coordinators = {coord_.address()};
    o.agents = {{"bank_a", "127.0.0.1:7101"}};
    o.commit_timeout = 5 * kSeconds;
    o.reserve_txids = reserve_txids;
    if (!GetParam()) {
      auto c = Client::Connect(o);
      if (!c.ok()) return c.status();
      client_ = std::move(*c);
      return Status::Ok();
    }
    auto c = AsyncClient::Connect(io_, o);
    if (!c.ok()) return c.status();
    async_ = std::move(*c);
    thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }
  Result<TxId> Submit() {
    if (!GetParam()) return client_->Submit(kWork);
    return async_->async_submit(kWork, {}, boost::asio::use_future).get();
  }
  // Several Submits at once (the AsyncClient's all wait for one Begin).
  std::vector<Result<TxId>> SubmitMany(int n) {
    std::vector<std::future<Result<TxId>>> fs;
    for (int i = 0; i < n; ++i) {
      if (GetParam()) {
        fs.push_back(async_->async_submit(kWork, {}, boost::asio::use_future));
      } else {
        fs.push_back(std::async(std::launch::async, [this] { return client_->Submit(kWork); }));
      }
    }
    std::vector<Result<TxId>> out;
    for (auto& f : fs) out.push_back(f.get());
    return out;
  }
  std::vector<int32_t> BeginCounts() {
    std::lock_guard<std::mutex> l(coord_.mu);
    return coord_.begin_counts;
  }
  std::vector<TxId> Submitted() {
    std::lock_guard<std::mutex> l(coord_.mu);
    return coord_.submitted;
  }

  ScriptedCoordinator coord_;
  std::unique_ptr<Client> client_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      boost::asio::make_work_guard(io_)};
  std::thread thread_;
  std::unique_ptr<AsyncClient> async_;
};

TEST_P(ReserveTest, OneBeginServesSixteenSubmitsInTxidOrder) {
  ASSERT_OK(Connect(16));
  for (int i = 1; i <= 20; ++i) {
    auto id = Submit();
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(*id, MakeTxId(3, i));
  }
  EXPECT_EQ(BeginCounts(), (std::vector<int32_t>{16, 16}));
  EXPECT_EQ(Submitted(), Seqs(3, 1, 20));
}

TEST_P(ReserveTest, ReservationOffIsABeginPerSubmitWithoutACount) {
  ASSERT_OK(Connect(1));
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(Submit().ok());
  EXPECT_EQ(BeginCounts(), (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(Submitted(), Seqs(3, 1, 3));
}

TEST_P(ReserveTest, ACoordinatorWithoutCountsGetsABeginPerSubmit) {
  {
    std::lock_guard<std::mutex> l(coord_.mu);
    coord_.reserve = false;  // answers one txid, count unset
  }
  ASSERT_OK(Connect(16));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Submit().ok());
  EXPECT_EQ(BeginCounts(), (std::vector<int32_t>{16, 16, 16}));
  EXPECT_EQ(Submitted(), (std::vector<TxId>(3, MakeTxId(3, 1))));
}

// A kept txid is used only in the first half of the time the leader keeps
// it (from the Begin's send): later, a new Begin.
TEST_P(ReserveTest, AStaleReservationIsNotUsed) {
  {
    std::lock_guard<std::mutex> l(coord_.mu);
    coord_.reserved_ms = 100;
  }
  ASSERT_OK(Connect(8));
  ASSERT_TRUE(Submit().ok());
  ASSERT_TRUE(Submit().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // past 50 ms
  ASSERT_TRUE(Submit().ok());
  EXPECT_EQ(BeginCounts(), (std::vector<int32_t>{8, 8}));
  EXPECT_EQ(Submitted(), (std::vector<TxId>{MakeTxId(3, 1), MakeTxId(3, 2), MakeTxId(3, 9)}));
}

// After a leader change the new leader presumes a kept txid of the old one
// aborted (it never ran): the client drops the block and submits once more
// under a new txid, and the application hears the second answer.
TEST_P(ReserveTest, AKeptTxidOfAGoneLeaderIsReplacedOnce) {
  ASSERT_OK(Connect(4));
  ASSERT_TRUE(Submit().ok());  // 3.1; 3.2-3.4 kept
  proto::CommitResponse gone = Answer(proto::Outcome::ABORTED);
  gone.reason = std::string(kPresumedAbortLeaderChanged);
  {
    std::lock_guard<std::mutex> l(coord_.mu);
    coord_.submit_answers = {gone};
    coord_.epoch = 4;  // the new leader's txids
    coord_.next_seq = 1;
  }
  auto id = Submit();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, MakeTxId(4, 1));
  EXPECT_EQ(Submitted(), (std::vector<TxId>{MakeTxId(3, 1), MakeTxId(3, 2), MakeTxId(4, 1)}));
  EXPECT_EQ(BeginCounts(), (std::vector<int32_t>{4, 4}));  // 3.3 and 3.4 were dropped

  // Once only: a second such answer reaches the caller as the abort it is.
  {
    std::lock_guard<std::mutex> l(coord_.mu);
    coord_.submit_answers = {gone, gone};
  }
  id = Submit();
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), Status::kAborted) << id.status().ToString();
  // Any other abort is the application's, with the block kept: the next
  // Submit takes the next txid of it.
  proto::CommitResponse no = Answer(proto::Outcome::ABORTED);
  no.reason = "bank_a voted no";
  {
    std::lock_guard<std::mutex> l(coord_.mu);
    coord_.submit_answers = {no};
  }
  id = Submit();
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("bank_a voted no"), std::string::npos);
  size_t begins = BeginCounts().size();
  TxId refused = Submitted().back();
  auto next = Submit();
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(*next, MakeTxId(refused.epoch, refused.seq + 1));
  EXPECT_EQ(BeginCounts().size(), begins);
}

TEST_P(ReserveTest, ConcurrentSubmitsShareReservations) {
  ASSERT_OK(Connect(16));
  auto results = SubmitMany(40);
  std::set<TxId, TxIdLess> ids;
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ids.insert(*r);
  }
  EXPECT_EQ(ids.size(), 40u);  // every Submit its own txid
  // The AsyncClient's waiting Submits share one Begin's block, which
  // reserves as many as wait (at least 16): 40 txids in at most 3 Begins, 16
  // or more each; the blocking client's threads may each start one at the
  // same moment.
  auto counts = BeginCounts();
  if (GetParam()) {
    EXPECT_LE(counts.size(), 3u);
    int32_t reserved = 0;
    for (int32_t n : counts) {
      EXPECT_GE(n, 16);
      reserved += n;
    }
    EXPECT_GE(reserved, 40);
  }
  EXPECT_LE(counts.size(), 40u);
}

TEST_P(ReserveTest, AReservationSizeOutOfRangeIsRefusedAtConnect) {
  for (int32_t n : {0, -1, 257}) {
    Status s = Connect(n);
    EXPECT_EQ(s.code(), Status::kInvalidArgument) << n << ": " << s.ToString();
    EXPECT_NE(s.message().find("reserve_txids is " + std::to_string(n)), std::string::npos) << s.ToString();
  }
}

INSTANTIATE_TEST_SUITE_P(BlockingAndAsync, ReserveTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Async" : "Blocking";
                         });

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
