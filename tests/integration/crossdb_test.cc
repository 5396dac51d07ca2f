// One atomic transaction across PostgreSQL, MariaDB and SQLite, over real
// processes: a txcoord and three txagents on loopback, with throwaway
// database servers started by the test as nobody. Agents and database servers
// are killed with SIGKILL after prepare; nothing is lost or half-applied.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "wal/sqlite.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

// The text of `r`, or `otherwise` on error.
std::string Or(Result<std::string> r, const std::string& otherwise) { return r.ok() ? *r : otherwise; }

// The first line of `s`, trimmed ("" when none).
std::string FirstLine(const std::string& s) {
  std::string l = s.substr(0, s.find('\n'));
  while (!l.empty() && (l.back() == ' ' || l.back() == '\r')) l.pop_back();
  return l;
}

class CrossDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = pg_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = maria_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(pg_.Sql("CREATE TABLE orders(id BIGINT PRIMARY KEY, qty INTEGER NOT NULL); "
                        "GRANT ALL ON orders TO txc")
                    .ok());
    ASSERT_TRUE(MariaSql("CREATE TABLE stock(item INT PRIMARY KEY, qty INT NOT NULL) ENGINE=InnoDB; "
                         "INSERT INTO stock VALUES (1, 100), (2, 100)")
                    .ok());
    cport_ = FreePort();
    for (const char* r : {"orders", "stock", "ledger"}) port_[r] = FreePort();
    coord_ = MakeCoordinator();
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    for (const char* r : {"orders", "stock", "ledger"}) {
      agent_[r] = MakeAgent(r, {});
      ASSERT_TRUE(agent_[r]->Start(port_[r])) << agent_[r]->LogTail();
    }
    client_ = Connect();
    auto tx = client_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    auto e = tx->Execute("ledger", Sql("CREATE TABLE ledger(order_id INTEGER PRIMARY KEY, qty INTEGER NOT NULL)"));
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    ASSERT_TRUE(tx->Commit().ok());
  }

  void TearDown() override {
    client_.reset();
    agent_.clear();  // agents before their databases
    coord_.reset();
  }

  std::string Spec(const std::string& r) {
    if (r == "orders") return "orders=postgres:" + pg_.conninfo();
    if (r == "stock") return "stock=mariadb:" + maria_.conninfo();
    return "ledger=sqlite:" + dir_.path + "/ledger.db";
  }

  std::unique_ptr<Process> MakeCoordinator(std::map<std::string, std::string> env = {}) {
    return std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord", "--vote-timeout-ms", "5000"},
        dir_.path + "/coord.log", env);
  }

  std::unique_ptr<Process> MakeAgent(const std::string& r, std::map<std::string, std::string> env) {
    return std::make_unique<Process>(
        "txagent " + r,
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(port_[r]), "--data",
                                 dir_.path + "/agent-" + r, "--coordinator", Addr(cport_),
                                 "--resource", Spec(r)},
        dir_.path + "/agent-" + r + ".log", env);
  }

  std::unique_ptr<Client> Connect() {
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    for (const char* r : {"orders", "stock", "ledger"}) o.agents[r] = Addr(port_[r]);
    o.call_timeout = 10 * kSeconds;
    o.commit_timeout = 20 * kSeconds;
    o.tls = testing::TestTls(authz::Role::kClient);
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  Result<std::string> MariaSql(const std::string& sql) {
    return maria_.Sql(std::string("USE ") + testing::MariaDbServer::kDatabase + "; " + sql);
  }

  // One order: PostgreSQL, MariaDB and SQLite in one transaction.
  std::map<std::string, std::vector<proto::Statement>> Order(int64_t id, int64_t item, int64_t qty) {
    return {{"orders", {SqlExpect("INSERT INTO orders(id, qty) VALUES (?, ?)", {Int(id), Int(qty)}, 1)}},
            {"stock", {SqlExpect("UPDATE stock SET qty = qty - ? WHERE item = ? AND qty >= ?",
                                 {Int(qty), Int(item), Int(qty)}, 1)}},
            {"ledger", {SqlExpect("INSERT INTO ledger(order_id, qty) VALUES (?, ?)", {Int(id), Int(qty)}, 1)}}};
  }

  std::string Orders() { return Flat(pg_.Sql("SELECT id FROM orders ORDER BY id")); }
  std::string Stock(int item) {
    return FirstLine(Or(MariaSql("SELECT qty FROM stock WHERE item = " + std::to_string(item)), "?"));
  }
  std::string Ledger() {
    auto db = wal::Db::Open(dir_.path + "/ledger.db");
    if (!db.ok()) return "?";
    auto st = (*db)->Prepare("SELECT order_id FROM ledger ORDER BY order_id");
    if (!st.ok()) return "?";
    std::string out;
    for (;;) {
      auto row = (*st)->Step();
      if (!row.ok() || !*row) break;
      out += (out.empty() ? "" : " ") + std::to_string((*st)->ColumnInt(0));
    }
    return out;
  }
  static std::string Flat(Result<std::string> r) {
    if (!r.ok()) return "?";
    std::string out;
    for (char c : *r) out += c == '\n' ? ' ' : c;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }
  int PgPrepared() { return std::stoi(FirstLine(Or(pg_.Sql("SELECT count(*) FROM pg_prepared_xacts"), "-1"))); }
  int MariaPrepared() {
    auto r = maria_.Sql("XA RECOVER");
    if (!r.ok()) return -1;
    int n = 0;
    for (char c : *r) n += c == '\n';
    return n;
  }
  // Polls `pred` up to `ms`.
  template <class Pred>
  bool Eventually(Pred pred, int ms = 20000) {
    for (int waited = 0; waited <= ms; waited += 100) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string Logs() {
    std::string out;
    for (auto& [r, a] : agent_) out += "--- " + r + "\n" + a->LogTail(2000);
    return out + "--- coord\n" + coord_->LogTail(2000);
  }

  testing::PgServer pg_;
  testing::MariaDbServer maria_;
  TempDir dir_;
  int cport_ = 0;
  std::map<std::string, int> port_;
  std::unique_ptr<Process> coord_;
  std::map<std::string, std::unique_ptr<Process>> agent_;
  std::unique_ptr<Client> client_;
};

TEST_F(CrossDbTest, PostgresMariaDbAndSqliteCommitAndAbortAsOne) {
  // Interactive, committed.
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  for (auto& [r, st] : Order(1, 1, 5)) {
    auto e = tx->Execute(r, st);
    ASSERT_TRUE(e.ok()) << r << ": " << e.status().ToString();
  }
  Status s = tx->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString() << Logs();
  EXPECT_TRUE(Eventually([&] { return Orders() == "1" && Stock(1) == "95" && Ledger() == "1"; }))
      << Orders() << " / " << Stock(1) << " / " << Ledger() << Logs();

  // Interactive, rolled back by the client.
  auto tx2 = client_->Begin();
  ASSERT_TRUE(tx2.ok());
  for (auto& [r, st] : Order(2, 1, 5)) ASSERT_TRUE(tx2->Execute(r, st).ok()) << r;
  ASSERT_TRUE(tx2->Rollback().ok());

  // One-shot, one branch votes NO (not enough stock): aborted everywhere.
  auto no = client_->Submit(Order(3, 2, 1000));
  EXPECT_FALSE(no.ok());
  // One-shot, committed.
  auto yes = client_->Submit(Order(4, 2, 10));
  ASSERT_TRUE(yes.ok()) << yes.status().ToString() << Logs();

  EXPECT_TRUE(Eventually([&] {
    return Orders() == "1 4" && Stock(1) == "95" && Stock(2) == "90" && Ledger() == "1 4" &&
           PgPrepared() == 0 && MariaPrepared() == 0;
  })) << Orders() << " / " << Stock(1) << " " << Stock(2) << " / " << Ledger() << " prepared "
      << PgPrepared() << " " << MariaPrepared() << Logs();
}

TEST_F(CrossDbTest, PostgresAndMariaDbAgentsKilledAfterPrepareResolveOnRestart) {
  // Both database agents die (as kill -9) once their databases hold the
  // prepared transaction, before the YES vote leaves: the group aborts.
  for (const std::string r : {"orders", "stock"}) {
    agent_[r]->Kill(SIGKILL);
    agent_[r] = MakeAgent(r, {{"TXC_CRASH_AT", "agent.before_vote"}});
    ASSERT_TRUE(agent_[r]->Start(port_[r])) << agent_[r]->LogTail();
  }
  auto r = client_->Submit(Order(1, 1, 7));
  EXPECT_FALSE(r.ok());
  for (const std::string name : {"orders", "stock"}) {
    int status = 0;
    ASSERT_TRUE(agent_[name]->WaitExit(10000, &status)) << name << ": the crash point was not reached";
  }
  // The databases kept the prepared transactions the dead agents left.
  EXPECT_EQ(PgPrepared(), 1);
  EXPECT_EQ(MariaPrepared(), 1);
  for (const std::string name : {"orders", "stock"}) {
    agent_[name] = MakeAgent(name, {});
    ASSERT_TRUE(agent_[name]->Start(port_[name])) << agent_[name]->LogTail();
  }
  // Recovered in doubt, asked the group, rolled back in both databases.
  EXPECT_TRUE(Eventually([&] {
    return Orders() == "" && Stock(1) == "100" && Ledger() == "" && PgPrepared() == 0 &&
           MariaPrepared() == 0;
  })) << Orders() << " / " << Stock(1) << " / " << Ledger() << Logs();
  // And the databases take new transactions on the same rows.
  auto again = client_->Submit(Order(2, 1, 7));
  ASSERT_TRUE(again.ok()) << again.status().ToString() << Logs();
  EXPECT_TRUE(Eventually([&] { return Orders() == "2" && Stock(1) == "93" && Ledger() == "2"; }));
}

TEST_F(CrossDbTest, PostgresAndMariaDbServersKilledAfterPrepareCommitAfterRestart) {
  // The coordinator dies once COMMIT is durably decided, before sending it,
  // so every branch sits prepared; then both database servers die (SIGKILL:
  // no shutdown) and come back.
  coord_->Kill(SIGKILL);
  coord_ = MakeCoordinator({{"TXC_CRASH_AT", "coord.after_decide"}});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  auto lost = Connect()->Submit(Order(1, 1, 3));
  EXPECT_FALSE(lost.ok());
  ASSERT_TRUE(coord_->WaitExit(10000, nullptr)) << "the crash point was not reached";
  EXPECT_EQ(PgPrepared(), 1);
  EXPECT_EQ(MariaPrepared(), 1);
  ASSERT_TRUE(pg_.Crash().ok());
  maria_.Crash();
  ASSERT_TRUE(pg_.Restart().ok());
  ASSERT_TRUE(maria_.Restart().ok());
  EXPECT_EQ(PgPrepared(), 1);  // survived the servers' crash recovery
  EXPECT_EQ(MariaPrepared(), 1);
  coord_ = MakeCoordinator();
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  EXPECT_TRUE(Eventually([&] {
    return Orders() == "1" && Stock(1) == "97" && Ledger() == "1" && PgPrepared() == 0 &&
           MariaPrepared() == 0;
  }, 30000)) << Orders() << " / " << Stock(1) << " / " << Ledger() << Logs();
}

TEST_F(CrossDbTest, PostgresPreparedTransactionEndedOutsideTxcoordIsReportedNeverGuessed) {
  // Every branch prepared, the coordinator down before sending COMMIT; a DBA
  // then rolls back the PostgreSQL prepared transaction by hand.
  coord_->Kill(SIGKILL);
  coord_ = MakeCoordinator({{"TXC_CRASH_AT", "coord.after_decide"}});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  EXPECT_FALSE(Connect()->Submit(Order(1, 1, 3)).ok());
  ASSERT_TRUE(coord_->WaitExit(10000, nullptr)) << "the crash point was not reached";
  auto gid = pg_.Sql("SELECT gid FROM pg_prepared_xacts");
  ASSERT_TRUE(gid.ok());
  ASSERT_TRUE(pg_.Sql("ROLLBACK PREPARED '" + FirstLine(*gid) + "'").ok());
  coord_ = MakeCoordinator();
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  // The group's COMMIT reaches the other two; the orders agent finds its
  // prepared transaction gone: a heuristic of unknown outcome, listed.
  EXPECT_TRUE(Eventually([&] { return Stock(1) == "97" && Ledger() == "1" && MariaPrepared() == 0; }))
      << Logs();
  bool listed = Eventually([&] {
    auto r = testing::CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
        port_["orders"], "ListBranches", proto::ListBranchesRequest());
    if (!r.ok()) return false;
    for (const auto& b : r->branches) {
      if (b.__isset.heuristic_who && b.heuristic_who == "database" && b.state == "unknown") return true;
    }
    return false;
  });
  EXPECT_TRUE(listed) << Logs();
  EXPECT_EQ(Orders(), "");  // nothing guessed, nothing redone
  EXPECT_NE(agent_["orders"]->LogTail(20000).find("heuristic hazard"), std::string::npos);
}

// An agent whose database cannot be used does not start: a clear error
// naming the resource, at once, never echoing a password.
TEST(CrossDbStartTest, PostgresWrongPasswordAndUnreachableMariaDbFailAtStartNamingTheResource) {
  testing::PgServerOptions po;
  po.password = "right-horse-battery";
  testing::PgServer pg(po);
  ASSERT_TRUE(pg.Start().ok());
  TempDir dir;
  const std::string secret = dir.path + "/orders.secret";
  std::ofstream(secret) << "wrong-staple-42\n";
  auto run = [&](std::vector<std::string> extra, std::map<std::string, std::string> env, int* status) {
    int port = FreePort();
    std::vector<std::string> argv{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                  dir.path + "/agent", "--coordinator", Addr(FreePort())};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = std::make_unique<Process>("txagent", argv, dir.path + "/agent.log", env);
    bool listening = p->Start(port, 15000);
    if (!listening) {
      EXPECT_TRUE(p->WaitExit(15000, status));
    }
    std::string log = p->LogTail();
    return std::make_pair(listening, log);
  };
  int status = 0;
  auto [up, log] = run({"--resource", "orders=postgres:" + pg.conninfo(), "--secret-file", "orders=" + secret}, {},
                       &status);
  EXPECT_FALSE(up) << log;
  EXPECT_NE(log.find("orders"), std::string::npos) << log;
  EXPECT_NE(log.find("password authentication failed"), std::string::npos) << log;
  EXPECT_EQ(log.find("wrong-staple-42"), std::string::npos) << log;

  auto [up2, log2] = run({"--resource", "orders=postgres:" + pg.conninfo()},
                         {{"TXC_PASSWORD_ORDERS", "right-horse-battery"}}, &status);
  EXPECT_TRUE(up2) << log2;

  auto [up3, log3] = run({"--resource", "stock=mariadb:host=127.0.0.1 port=" + std::to_string(FreePort()) +
                                            " database=shop user=app connect_timeout=2"},
                         {}, &status);
  EXPECT_FALSE(up3) << log3;
  EXPECT_NE(log3.find("stock"), std::string::npos) << log3;
}

}  // namespace
}  // namespace txc
