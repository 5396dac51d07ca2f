// EmbeddedAgent: resource managers hosted in the test's own process (a
// resource of the test's making and a built-in one) take part in
// transactions of a real txcoord, on the agent's own thread and on an
// io_context the caller runs; and bad set-ups are refused with the reason.
#include "participant/embedded_agent.h"

#include <atomic>
#include <thread>

#include <boost/asio.hpp>
#include <gtest/gtest.h>

#include "client/client.h"
#include "tests/support/process.h"

namespace txc {
namespace {

using participant::EmbeddedAgent;
using participant::EmbeddedAgentOptions;
using participant::ResourceManager;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

// A resource of the application's own: here it forwards to a SQLite resource
// and counts what the agent asked of it, so the test sees that the embedded
// agent drives a ResourceManager it did not build.
class CountingResource : public ResourceManager {
 public:
  explicit CountingResource(std::unique_ptr<ResourceManager> inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  Result<std::vector<participant::RecoveredBranch>> Recover() override { return inner_->Recover(); }
  void Execute(const TxId& txid, std::vector<proto::Statement> statements,
               Callback<participant::ExecuteResult> done) override {
    inner_->Execute(txid, std::move(statements), std::move(done));
  }
  void Prepare(const TxId& txid, const participant::PrepareInfo& info, Callback<Status> done) override {
    ++prepares;
    inner_->Prepare(txid, info, std::move(done));
  }
  void ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                         const participant::PrepareInfo& info,
                         Callback<participant::ExecuteResult> done) override {
    ++prepares;
    inner_->ExecuteAndPrepare(txid, std::move(statements), info, std::move(done));
  }
  void Commit(const TxId& txid, Callback<Status> done) override {
    ++commits;
    inner_->Commit(txid, std::move(done));
  }
  void Rollback(const TxId& txid, Callback<Status> done) override {
    ++rollbacks;
    inner_->Rollback(txid, std::move(done));
  }
  // Counted on the resource's thread and read by the test's.
  static inline std::atomic<int> prepares{0}, commits{0}, rollbacks{0};

 private:
  std::unique_ptr<ResourceManager> inner_;
};

class EmbeddedAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cport_ = FreePort();
    coord_ = std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord"},
        dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    CountingResource::prepares = CountingResource::commits = CountingResource::rollbacks = 0;
  }

  EmbeddedAgentOptions Options(int port) {
    EmbeddedAgentOptions o;
    o.listen = Addr(port);
    o.coordinators = {Addr(cport_)};
    o.data_dir = dir_.path + "/agent";
    o.tls = testing::TestTls(authz::Role::kAgent);
    return o;
  }

  Status AddResources(EmbeddedAgent& agent) {
    auto inner = participant::MakeResource("ledger=sqlite:" + dir_.path + "/ledger.db");
    if (!inner.ok()) return inner.status();
    TXC_RETURN_IF_ERROR(agent.AddResource(std::make_unique<CountingResource>(std::move(*inner))));
    return agent.AddResource("books=sqlite:" + dir_.path + "/books.db");
  }

  std::unique_ptr<Client> Connect(const std::string& agent) {
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = {{"ledger", agent}, {"books", agent}};
    o.call_timeout = 5 * kSeconds;
    o.commit_timeout = 10 * kSeconds;
    o.tls = testing::TestTls(authz::Role::kClient);
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // The sum of `table`'s column v on `resource`, read in a transaction that is rolled back.
  static int64_t Sum(Client& client, const std::string& resource) {
    auto tx = client.Begin();
    EXPECT_TRUE(tx.ok()) << tx.status().ToString();
    if (!tx.ok()) return -1;
    auto r = tx->Execute(resource, Sql("SELECT COALESCE(SUM(v), 0) FROM t"));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(tx->Rollback().ok());
    if (!r.ok() || r->rows.empty()) return -1;
    return r->rows[0].values[0].i;
  }

  TempDir dir_;
  int cport_ = 0;
  std::unique_ptr<Process> coord_;
};

TEST_F(EmbeddedAgentTest, OwnThreadCommitsAndRollsBackAcrossTwoResourcesAndSurvivesARestart) {
  int port = FreePort();
  {
    EmbeddedAgent agent(Options(port));
    ASSERT_TRUE(AddResources(agent).ok());
    Status s = agent.StartThread();
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(agent.port(), port);
    EXPECT_EQ(agent.address(), Addr(port));
    EXPECT_EQ(agent.incarnation(), 1);
    auto client = Connect(agent.address());
    ASSERT_NE(client, nullptr);
    for (const char* r : {"ledger", "books"}) {
      auto tx = client->Begin();
      ASSERT_TRUE(tx.ok());
      ASSERT_TRUE(tx->Execute(r, Sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")).ok());
      ASSERT_TRUE(tx->Commit().ok());
    }
    auto tx = client->Begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(tx->Execute("ledger", Sql("INSERT INTO t VALUES (1, 30)")).ok());
    ASSERT_TRUE(tx->Execute("books", Sql("INSERT INTO t VALUES (1, 12)")).ok());
    Status c = tx->Commit();
    ASSERT_TRUE(c.ok()) << c.ToString();
    auto rb = client->Begin();
    ASSERT_TRUE(rb.ok());
    ASSERT_TRUE(rb->Execute("ledger", Sql("INSERT INTO t VALUES (2, 1000)")).ok());
    ASSERT_TRUE(rb->Execute("books", Sql("INSERT INTO t VALUES (2, 1000)")).ok());
    ASSERT_TRUE(rb->Rollback().ok());
    // The commit's delivery is asynchronous: a read may meet its locks, so
    // read until the committed values show (bounded).
    int64_t ledger = -1, books = -1;
    for (int i = 0; i < 100 && (ledger != 30 || books != 12); ++i) {
      ledger = Sum(*client, "ledger");
      books = Sum(*client, "books");
      if (ledger != 30 || books != 12) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(ledger, 30);
    EXPECT_EQ(books, 12);
    // The application's own resource was driven through the protocol.
    // The CREATE had one participant and committed in one phase; the
    // transfer was prepared, then committed.
    EXPECT_GE(CountingResource::prepares.load(), 1);
    EXPECT_GE(CountingResource::commits.load(), 2);
    EXPECT_GE(CountingResource::rollbacks.load(), 1);
    agent.Stop();
    EXPECT_FALSE(agent.running());
    agent.Stop();  // harmless twice
  }
  // Same data directory: the next incarnation, the data still there.
  EmbeddedAgent again(Options(port));
  ASSERT_TRUE(AddResources(again).ok());
  ASSERT_TRUE(again.StartThread().ok());
  EXPECT_EQ(again.incarnation(), 2);
  auto client = Connect(again.address());
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(Sum(*client, "ledger"), 30);
  EXPECT_EQ(Sum(*client, "books"), 12);
}

TEST_F(EmbeddedAgentTest, RunsOnTheCallersIoContext) {
  boost::asio::io_context io;
  EmbeddedAgent agent(Options(0));  // port 0: a free one
  ASSERT_TRUE(AddResources(agent).ok());
  Status s = agent.Start(io);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_GT(agent.port(), 0);
  std::thread runner([&] {
    auto guard = boost::asio::make_work_guard(io);
    io.run();
  });
  auto client = Connect(agent.address());
  ASSERT_NE(client, nullptr);
  auto id = client->Submit({{"ledger", {Sql("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"),
                                        Sql("INSERT INTO t VALUES (7, 5)")}}});
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  client.reset();
  // Stop runs on the io thread, as the header asks.
  boost::asio::post(io, [&] {
    agent.Stop();
    io.stop();
  });
  runner.join();
  EXPECT_FALSE(agent.running());
  EXPECT_GE(CountingResource::prepares.load(), 1);
}

TEST_F(EmbeddedAgentTest, RefusesBadSetUpsWithTheReason) {
  EmbeddedAgentOptions o = Options(FreePort());
  {
    EmbeddedAgent agent(o);
    Status s = agent.StartThread();
    EXPECT_EQ(s.code(), Status::kInvalidArgument);
    EXPECT_NE(s.message().find("no resource"), std::string::npos) << s.ToString();
  }
  {
    EmbeddedAgent agent(o);
    EXPECT_EQ(agent.AddResource("bad name!=sqlite:" + dir_.path + "/x.db").code(), Status::kInvalidArgument);
    EXPECT_EQ(agent.AddResource("x=nosuchkind:" + dir_.path + "/x.db").code(), Status::kInvalidArgument);
    EXPECT_EQ(agent.AddResource(std::unique_ptr<ResourceManager>()).code(), Status::kInvalidArgument);
    ASSERT_TRUE(agent.AddResource("x=sqlite:" + dir_.path + "/x.db").ok());
    Status dup = agent.AddResource("x=sqlite:" + dir_.path + "/x2.db");
    EXPECT_EQ(dup.code(), Status::kInvalidArgument);
    EXPECT_NE(dup.message().find("added already"), std::string::npos) << dup.ToString();
  }
  {
    EmbeddedAgentOptions no_coord = o;
    no_coord.coordinators.clear();
    EmbeddedAgent agent(no_coord);
    ASSERT_TRUE(agent.AddResource("x=sqlite:" + dir_.path + "/x.db").ok());
    Status s = agent.StartThread();
    EXPECT_EQ(s.code(), Status::kInvalidArgument);
    EXPECT_NE(s.message().find("coordinators"), std::string::npos) << s.ToString();
  }
  {
    EmbeddedAgentOptions no_dir = o;
    no_dir.data_dir.clear();
    EmbeddedAgent agent(no_dir);
    ASSERT_TRUE(agent.AddResource("x=sqlite:" + dir_.path + "/x.db").ok());
    Status s = agent.StartThread();
    EXPECT_EQ(s.code(), Status::kInvalidArgument);
    EXPECT_NE(s.message().find("data_dir"), std::string::npos) << s.ToString();
  }
  {
    // The port is taken: Start fails and the agent serves nothing.
    EmbeddedAgent first(o);
    ASSERT_TRUE(first.AddResource("x=sqlite:" + dir_.path + "/x.db").ok());
    ASSERT_TRUE(first.StartThread().ok());
    EmbeddedAgentOptions o2 = o;
    o2.data_dir = dir_.path + "/agent2";
    EmbeddedAgent second(o2);
    ASSERT_TRUE(second.AddResource("y=sqlite:" + dir_.path + "/y.db").ok());
    EXPECT_FALSE(second.StartThread().ok());
    EXPECT_FALSE(second.running());
    EXPECT_EQ(first.AddResource("z=sqlite:" + dir_.path + "/z.db").code(), Status::kInvalidArgument);
  }
}

}  // namespace
}  // namespace txc
