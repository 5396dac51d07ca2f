// XaResource against real PostgreSQL and MariaDB servers (throwaway, started
// by the test as nobody on loopback): the branch life cycle, recovery from
// the agent's WAL and the database's prepared list, every reconciliation
// case, and each database's traps. Every test runs on both kinds.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "participant/mariadb_driver.h"
#include "participant/pg_driver.h"
#include "participant/xa_resource.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "tools/admin/wal_dump.h"
#include "wal/sqlite.h"

namespace txc::participant {
namespace {

using testing::TempDir;

// What the tests need of a server, for either kind.
class Server {
 public:
  virtual ~Server() = default;
  virtual Status Start() = 0;
  virtual Result<std::unique_ptr<xa::Driver>> Driver(const std::string& resource) = 0;
  virtual Result<std::string> Sql(const std::string& sql) = 0;
  virtual Status Crash() = 0;
  virtual Status Restart() = 0;
  // Creates t(id, v) that the test user may write.
  virtual Status CreateTable() = 0;
  // Prepares a transaction that is not txcoord's (inserting id) by hand.
  virtual Status PrepareForeign(int id) = 0;
  virtual Status RollbackForeign() = 0;
  // How many prepared transactions the database holds.
  virtual Result<int> PreparedCount() = 0;
  // Ends txcoord's prepared transaction `gid` behind the agent's back.
  virtual Status RollbackBehindTheBack(const std::string& gid) = 0;
};

class Pg : public Server {
 public:
  explicit Pg(int max_prepared = 64) {
    testing::PgServerOptions o;
    o.max_prepared_transactions = max_prepared;
    server_ = std::make_unique<testing::PgServer>(o);
  }
  Status Start() override { return server_->Start(); }
  Result<std::unique_ptr<xa::Driver>> Driver(const std::string& resource) override {
    return xa::MakePostgresDriver(resource, server_->conninfo(), std::nullopt);
  }
  Result<std::string> Sql(const std::string& sql) override { return server_->Sql(sql); }
  Status Crash() override { return server_->Crash(); }
  Status Restart() override { return server_->Restart(); }
  Status CreateTable() override {
    return server_->Sql("CREATE TABLE t(id BIGINT PRIMARY KEY, v TEXT); GRANT ALL ON t TO txc").status();
  }
  Status PrepareForeign(int id) override {
    return server_
        ->Sql("BEGIN; INSERT INTO t VALUES (" + std::to_string(id) +
              ", 'foreign'); PREPARE TRANSACTION 'app-order-77'")
        .status();
  }
  Status RollbackForeign() override { return server_->Sql("ROLLBACK PREPARED 'app-order-77'").status(); }
  Result<int> PreparedCount() override {
    auto r = server_->Sql("SELECT count(*) FROM pg_prepared_xacts");
    if (!r.ok()) return r.status();
    return std::stoi(*r);
  }
  Status RollbackBehindTheBack(const std::string& gid) override {
    return server_->Sql("ROLLBACK PREPARED '" + gid + "'").status();
  }

 private:
  std::unique_ptr<testing::PgServer> server_;
};

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

class Maria : public Server {
 public:
  Status Start() override { return server_.Start(); }
  Result<std::unique_ptr<xa::Driver>> Driver(const std::string& resource) override {
    return xa::MakeMariaDbDriver(resource, server_.conninfo(), std::nullopt);
  }
  Result<std::string> Sql(const std::string& sql) override {
    return server_.Sql(std::string("USE ") + testing::MariaDbServer::kDatabase + "; " + sql);
  }
  Status Crash() override {
    server_.Crash();
    return Status::Ok();
  }
  Status Restart() override { return server_.Restart(); }
  Status CreateTable() override {
    return Sql("CREATE TABLE t(id BIGINT PRIMARY KEY, v TEXT) ENGINE=InnoDB").status();
  }
  Status PrepareForeign(int id) override {
    return Sql("XA START 'app-order-77'; INSERT INTO t VALUES (" + std::to_string(id) +
               ", 'foreign'); XA END 'app-order-77'; XA PREPARE 'app-order-77'")
        .status();
  }
  Status RollbackForeign() override { return Sql("XA ROLLBACK 'app-order-77'").status(); }
  Result<int> PreparedCount() override {
    auto r = Sql("XA RECOVER");
    if (!r.ok()) return r.status();
    int n = 0;
    for (char c : *r) n += c == '\n';
    return n;
  }
  Status RollbackBehindTheBack(const std::string& gid) override {
    // A prepared branch stays with its session while that lives: as a DBA
    // would, kill the agent's connections first.
    auto ids = Sql("SELECT id FROM information_schema.processlist WHERE user = '" +
                   std::string(testing::MariaDbServer::kUser) + "'");
    if (!ids.ok()) return ids.status();
    std::string kills;
    size_t at = 0;
    while (at < ids->size()) {
      size_t nl = ids->find('\n', at);
      if (nl == std::string::npos) nl = ids->size();
      std::string id = ids->substr(at, nl - at);
      if (!id.empty()) kills += "KILL " + id + "; ";
      at = nl + 1;
    }
    if (!kills.empty()) (void)Sql(kills);
    auto colon = gid.rfind(':');
    // The server detaches a killed session's branch shortly after: retry.
    Status s;
    for (int i = 0; i < 50; ++i) {
      s = Sql("XA ROLLBACK X'" + Hex(gid.substr(0, colon)) + "',X'" + Hex(gid.substr(colon + 1)) +
              "'," + std::to_string(xa::kXaFormatId))
              .status();
      if (s.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return s;
  }

 private:
  testing::MariaDbServer server_;
};

proto::Statement Sql(std::string sql, std::vector<proto::Value> params = {}) {
  proto::Statement s;
  s.sql = std::move(sql);
  s.params = std::move(params);
  return s;
}
proto::Value I(int64_t v) {
  proto::Value x;
  x.__set_i(v);
  return x;
}
proto::Value S(std::string v) {
  proto::Value x;
  x.__set_s(std::move(v));
  return x;
}

TxId Tx(int64_t seq) {
  TxId t;
  t.epoch = 7;
  t.seq = seq;
  return t;
}

PrepareInfo Info() {
  PrepareInfo info;
  proto::Participant p;
  p.resource = "res";
  p.address = "127.0.0.1:1";
  info.participants = {p};
  return info;
}

class XaResourceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "Postgres") {
      server_ = std::make_unique<Pg>();
    } else {
      server_ = std::make_unique<Maria>();
    }
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = server_->CreateTable();
    ASSERT_TRUE(s.ok()) << s.ToString();
    Open();
  }

  void Open(size_t max_connections = 32, Micros acquire_timeout = 5 * kSeconds) {
    auto d = server_->Driver("res");
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    XaResourceOptions o;
    o.wal_path = dir_.path + "/res.xa.db";
    o.reconcile_interval = 0;  // the tests reconcile by hand
    o.max_connections = max_connections;
    o.acquire_timeout = acquire_timeout;
    auto r = XaResource::Open("res", std::move(*d), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    res_ = std::move(*r);
  }
  // Closes and reopens the resource as an agent restart would (the server
  // keeps its prepared transactions), returning what Recover found.
  std::vector<RecoveredBranch> Reopen() {
    res_.reset();
    Open();
    auto r = res_->Recover();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<RecoveredBranch>{};
  }

  ExecuteResult Exec(const TxId& t, std::vector<proto::Statement> st) {
    std::promise<ExecuteResult> p;
    res_->Execute(t, std::move(st), [&](ExecuteResult r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  template <class Fn>
  Status Call(Fn fn) {
    std::promise<Status> p;
    fn([&](Status s) { p.set_value(std::move(s)); });
    return p.get_future().get();
  }
  Status Prepare(const TxId& t) {
    return Call([&](auto cb) { res_->Prepare(t, Info(), cb); });
  }
  Status Commit(const TxId& t) {
    return Call([&](auto cb) { res_->Commit(t, cb); });
  }
  Status Rollback(const TxId& t) {
    return Call([&](auto cb) { res_->Rollback(t, cb); });
  }
  // Inserts (id, v) in branch t and prepares it.
  void Prepared(const TxId& t, int id) {
    auto r = Exec(t, {Sql("INSERT INTO t VALUES (?, ?)", {I(id), S("v" + std::to_string(id))})});
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_TRUE(r.wrote);
    Status s = Prepare(t);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::string Rows() {
    auto r = server_->Sql("SELECT id FROM t ORDER BY id");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::string out;
    for (char c : r.ok() ? *r : "") out += c == '\n' ? ' ' : c;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }
  int Prepared() {
    auto n = server_->PreparedCount();
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }
  // Edits the resource's WAL as a crash at another line would have left it.
  void SetWalState(const TxId& t, int state) {
    res_.reset();
    auto db = wal::Db::Open(dir_.path + "/res.xa.db");
    ASSERT_TRUE(db.ok());
    std::string sql = state == 0 ? "DELETE FROM xa_branches WHERE txid = '" + ToString(t) + "'"
                                 : "UPDATE xa_branches SET state = " + std::to_string(state) +
                                       (state == 1 ? ", info = NULL" : "") + " WHERE txid = '" +
                                       ToString(t) + "'";
    ASSERT_TRUE((*db)->Exec(sql).ok());
    ASSERT_EQ((*db)->changes(), 1);
  }
  uint64_t Counter(const std::string& name) {
    for (const auto& [n, v] : res_->Counters()) {
      if (n == name) return v;
    }
    return 0;
  }

  TempDir dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<XaResource> res_;
};

TEST_P(XaResourceTest, CommitAndRollback) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  EXPECT_EQ(Rows(), "");  // prepared, not visible
  EXPECT_EQ(Prepared(), 1);
  ASSERT_TRUE(Commit(Tx(1)).ok());
  EXPECT_TRUE(Commit(Tx(1)).ok());  // idempotent
  EXPECT_EQ(Rows(), "1");

  Prepared(Tx(2), 2);
  ASSERT_TRUE(Rollback(Tx(2)).ok());
  EXPECT_TRUE(Rollback(Tx(2)).ok());

  auto r = Exec(Tx(3), {Sql("INSERT INTO t VALUES (?, ?)", {I(3), S("x")})});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_TRUE(Rollback(Tx(3)).ok());  // ACTIVE: the database's own rollback
  // A late statement for the rolled-back branch is refused.
  EXPECT_FALSE(Exec(Tx(3), {Sql("SELECT 1")}).status.ok());

  auto ro = Exec(Tx(4), {Sql("SELECT id, v FROM t WHERE id = ?", {I(1)})});
  ASSERT_TRUE(ro.status.ok()) << ro.status.ToString();
  ASSERT_EQ(ro.results.size(), 1u);
  ASSERT_EQ(ro.results[0].rows.size(), 1u);
  EXPECT_EQ(ro.results[0].rows[0].values[1].s, "v1");
  // A database branch never votes READ_ONLY (a SELECT may call a function
  // that writes): it prepares and commits like any other.
  EXPECT_TRUE(ro.wrote);
  EXPECT_EQ(Commit(Tx(4)).code(), Status::kInvalidArgument);  // not prepared
  ASSERT_TRUE(Prepare(Tx(4)).ok());
  ASSERT_TRUE(Commit(Tx(4)).ok());

  // A parameter is data, never SQL.
  auto inj = Exec(Tx(5), {Sql("INSERT INTO t VALUES (?, ?)", {I(5), S("x'); DROP TABLE t; --")})});
  ASSERT_TRUE(inj.status.ok()) << inj.status.ToString();
  ASSERT_TRUE(Prepare(Tx(5)).ok());
  ASSERT_TRUE(Commit(Tx(5)).ok());
  EXPECT_EQ(Rows(), "1 5");
  EXPECT_EQ(Prepared(), 0);
  EXPECT_EQ(res_->reconcile_stats().foreign.size(), 0u);
}

TEST_P(XaResourceTest, FailedCallUndone) {
  ASSERT_TRUE(res_->Recover().ok());
  ASSERT_TRUE(Exec(Tx(1), {Sql("INSERT INTO t VALUES (?, ?)", {I(1), S("a")})}).status.ok());
  auto bad = Exec(Tx(1), {Sql("INSERT INTO t VALUES (?, ?)", {I(2), S("b")}),
                          Sql("INSERT INTO t VALUES (?, ?)", {I(1), S("dup")})});
  EXPECT_FALSE(bad.status.ok());
  proto::Statement checked = Sql("UPDATE t SET v = ? WHERE id = ?", {S("z"), I(99)});
  checked.__set_expect_rows(1);
  EXPECT_EQ(Exec(Tx(1), {checked}).status.code(), Status::kExpectationFailed);
  ASSERT_TRUE(Prepare(Tx(1)).ok());
  ASSERT_TRUE(Commit(Tx(1)).ok());
  EXPECT_EQ(Rows(), "1");
}

TEST_P(XaResourceTest, RestartHandsOverPrepared) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  Prepared(Tx(2), 2);
  auto rec = Reopen();  // the agent died after voting
  ASSERT_EQ(rec.size(), 2u);
  for (const auto& b : rec) {
    EXPECT_EQ(b.state, BranchState::kPrepared);
    ASSERT_EQ(b.info.participants.size(), 1u);  // from the WAL
  }
  EXPECT_EQ(Prepared(), 2);  // the database kept them
  // The group's decisions, carried out on new connections.
  ASSERT_TRUE(Commit(Tx(1)).ok());
  ASSERT_TRUE(Rollback(Tx(2)).ok());
  EXPECT_EQ(Rows(), "1");
  EXPECT_EQ(Prepared(), 0);
}

TEST_P(XaResourceTest, PreparedNotInWalIsInDoubt) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  Prepared(Tx(2), 2);
  SetWalState(Tx(1), 0);  // a crash before the ACTIVE row was written
  SetWalState(Tx(2), 1);  // a crash between the database's PREPARE and the WAL's
  Open();
  auto rec = res_->Recover();
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  ASSERT_EQ(rec->size(), 2u);
  for (const auto& b : *rec) {
    EXPECT_EQ(b.state, BranchState::kPrepared);
    EXPECT_TRUE(b.info.participants.empty()) << ToString(b.txid);
  }
  EXPECT_EQ(Counter("recovered_in_doubt"), 2u);
  // No vote left: the group aborts both (presumed abort), and they go.
  ASSERT_TRUE(Rollback(Tx(1)).ok());
  ASSERT_TRUE(Rollback(Tx(2)).ok());
  EXPECT_EQ(Rows(), "");
  EXPECT_EQ(Prepared(), 0);
}

TEST_P(XaResourceTest, WalDecisionsFinishedAtRecover) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  Prepared(Tx(2), 2);
  Prepared(Tx(3), 3);
  SetWalState(Tx(1), 6);  // COMMITTING: crashed before COMMIT PREPARED
  Open();
  SetWalState(Tx(2), 7);  // ROLLING_BACK
  auto rec = Reopen();
  ASSERT_EQ(rec.size(), 1u);  // only 3 is in doubt
  EXPECT_EQ(rec[0].txid, Tx(3));
  EXPECT_EQ(Rows(), "1");
  EXPECT_EQ(Prepared(), 1);
  EXPECT_EQ(Counter("reconcile_committed"), 1u);
  EXPECT_EQ(Counter("reconcile_rolled_back"), 1u);
  EXPECT_TRUE(Commit(Tx(1)).ok());  // a late duplicate decision: OK
  ASSERT_TRUE(Commit(Tx(3)).ok());
  EXPECT_EQ(Rows(), "1 3");
  EXPECT_EQ(Prepared(), 0);
}

TEST_P(XaResourceTest, GoneFromDatabaseIsAHeuristic) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  res_.reset();
  ASSERT_TRUE(server_->RollbackBehindTheBack(xa::MakeGid(Tx(1), "res")).ok());
  auto rec = Reopen();
  EXPECT_TRUE(rec.empty());
  auto hs = res_->Heuristics();
  ASSERT_TRUE(hs.ok());
  ASSERT_EQ(hs->size(), 1u);
  EXPECT_EQ((*hs)[0].txid, Tx(1));
  EXPECT_EQ((*hs)[0].outcome, proto::Outcome::UNKNOWN);
  EXPECT_EQ((*hs)[0].who, "database");
  EXPECT_EQ(Counter("gone_from_database"), 1u);

  // While running: found by the periodic reconciliation.
  Prepared(Tx(2), 2);
  ASSERT_TRUE(server_->RollbackBehindTheBack(xa::MakeGid(Tx(2), "res")).ok());
  ASSERT_TRUE(res_->ReconcileNow().ok());
  EXPECT_EQ(Counter("gone_from_database"), 2u);
  Status c = Commit(Tx(2));  // the group's COMMIT arrives: refused, not guessed
  EXPECT_EQ(c.code(), Status::kInternal) << c.ToString();
  EXPECT_NE(c.message().find("gone from the database"), std::string::npos) << c.ToString();
  // Found at commit time too, without a reconciliation in between.
  Prepared(Tx(3), 3);
  ASSERT_TRUE(server_->RollbackBehindTheBack(xa::MakeGid(Tx(3), "res")).ok());
  EXPECT_EQ(Commit(Tx(3)).code(), Status::kInternal);
  // Kept across a restart, until forgotten.
  Reopen();
  hs = res_->Heuristics();
  ASSERT_TRUE(hs.ok());
  EXPECT_EQ(hs->size(), 3u);
  ASSERT_TRUE(Call([&](auto cb) { res_->ForgetHeuristic(Tx(1), cb); }).ok());
  EXPECT_EQ(res_->Heuristics()->size(), 2u);
}

TEST_P(XaResourceTest, ForeignPreparedLeftAlone) {
  ASSERT_TRUE(server_->PrepareForeign(50).ok());
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  ASSERT_TRUE(res_->ReconcileNow().ok());
  EXPECT_EQ(res_->reconcile_stats().foreign.size(), 1u);
  EXPECT_EQ(Counter("foreign_prepared"), 1u);
  ASSERT_TRUE(Commit(Tx(1)).ok());
  Reopen();
  ASSERT_TRUE(res_->ReconcileNow().ok());
  EXPECT_EQ(Prepared(), 1);  // still there, untouched
  EXPECT_EQ(Rows(), "1");
  ASSERT_TRUE(server_->RollbackForeign().ok());
  EXPECT_EQ(Prepared(), 0);
}

TEST_P(XaResourceTest, ServerCrashAfterPrepare) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  Prepared(Tx(2), 2);
  ASSERT_TRUE(server_->Crash().ok());
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_EQ(Prepared(), 2);  // the server's crash recovery kept them
  // The pooled connections died with the server: the first attempts may fail
  // UNAVAILABLE, and a retry (as the agent does) gets through.
  auto until_ok = [&](auto fn) {
    Status s;
    for (int i = 0; i < 5; ++i) {
      s = fn();
      if (s.ok()) break;
      EXPECT_EQ(s.code(), Status::kUnavailable) << s.ToString();
    }
    return s;
  };
  // A new branch gets through at once: its dead pooled connection is
  // replaced.
  auto fresh = Exec(Tx(3), {Sql("INSERT INTO t VALUES (?, ?)", {I(3), S("c")})});
  ASSERT_TRUE(fresh.status.ok()) << fresh.status.ToString();
  ASSERT_TRUE(Rollback(Tx(3)).ok());
  Status s = until_ok([&] { return Commit(Tx(1)); });
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = until_ok([&] { return Rollback(Tx(2)); });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Rows(), "1");
  EXPECT_EQ(Prepared(), 0);
}

TEST_P(XaResourceTest, BranchWaitsForConnection) {
  res_.reset();
  Open(/*max_connections=*/1, /*acquire_timeout=*/3 * kSeconds);
  ASSERT_TRUE(res_->Recover().ok());
  // A branch whose first statement fails keeps nothing, its connection
  // included (the agent forgets such a branch too).
  EXPECT_FALSE(Exec(Tx(9), {Sql("INSERT INTO no_such_table VALUES (1)")}).status.ok());
  EXPECT_EQ(res_->connections_open(), 1u);
  ASSERT_TRUE(Exec(Tx(1), {Sql("INSERT INTO t VALUES (?, ?)", {I(1), S("a")})}).status.ok());
  // The only connection is tx 1's: tx 2 waits (holding no worker) ...
  std::promise<ExecuteResult> second;
  res_->Execute(Tx(2), {Sql("INSERT INTO t VALUES (?, ?)", {I(2), S("b")})},
                [&](ExecuteResult r) { second.set_value(std::move(r)); });
  auto f = second.get_future();
  EXPECT_EQ(f.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  // ... until tx 1 is decided, which frees it.
  ASSERT_TRUE(Prepare(Tx(1)).ok());
  ASSERT_TRUE(Commit(Tx(1)).ok());
  ExecuteResult r = f.get();
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  // Nobody frees tx 2's connection: tx 3 fails at its deadline, clearly.
  res_.reset();
  Open(/*max_connections=*/1, /*acquire_timeout=*/300 * kMillis);
  ASSERT_TRUE(res_->Recover().ok());
  ASSERT_TRUE(Exec(Tx(4), {Sql("INSERT INTO t VALUES (?, ?)", {I(4), S("d")})}).status.ok());
  ExecuteResult late = Exec(Tx(5), {Sql("SELECT 1")});
  EXPECT_EQ(late.status.code(), Status::kUnavailable) << late.status.ToString();
  EXPECT_NE(late.status.message().find("connections"), std::string::npos) << late.status.ToString();
  ASSERT_TRUE(Rollback(Tx(4)).ok());
}

TEST_P(XaResourceTest, WalDumpShowsBranches) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  ASSERT_TRUE(Commit(Tx(1)).ok());
  Prepared(Tx(2), 2);
  res_.reset();  // everything written
  auto d = admin::ReadWal(dir_.path + "/res.xa.db", std::nullopt);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kind, admin::WalDump::kDatabaseBranchLog);
  std::string text = admin::WalText(*d);
  EXPECT_NE(text.find(xa::MakeGid(Tx(2), "res")), std::string::npos) << text;
  EXPECT_NE(text.find("PREPARED"), std::string::npos) << text;
  EXPECT_NE(text.find("COMMITTED"), std::string::npos) << text;
  EXPECT_NE(text.find("INSERT INTO t VALUES (?, ?)"), std::string::npos) << text;
  EXPECT_NE(text.find("meta xa_wal_layout = " + std::to_string(XaResource::kXaWalLayout) + "\n"),
            std::string::npos)
      << text;
}

// The WAL's layout is stamped at open; one that a newer version laid out is
// refused while a branch in it is live (before the database is dialled), and
// used, its stamp lowered, once none is.
TEST_P(XaResourceTest, ANewerWalLayoutIsRefusedWhileABranchIsLive) {
  ASSERT_TRUE(res_->Recover().ok());
  Prepared(Tx(1), 1);
  res_.reset();
  const std::string newer = std::to_string(XaResource::kXaWalLayout + 1);
  auto stamp = [&](const std::string& value) {
    auto db = wal::Db::Open(dir_.path + "/res.xa.db");
    EXPECT_TRUE(db.ok());
    if (!db.ok()) return std::string();
    if (!value.empty()) {
      EXPECT_TRUE((*db)->Exec("UPDATE xa_meta SET value = " + value + " WHERE key = 'xa_wal_layout'").ok());
      EXPECT_EQ((*db)->changes(), 1);
    }
    auto q = (*db)->Prepare("SELECT value FROM xa_meta WHERE key = 'xa_wal_layout'");
    EXPECT_TRUE(q.ok());
    auto row = (*q)->Step();
    return row.ok() && *row ? (*q)->ColumnText(0) : std::string();
  };
  EXPECT_EQ(stamp(""), std::to_string(XaResource::kXaWalLayout));
  stamp(newer);
  auto open = [&] {
    auto d = server_->Driver("res");
    EXPECT_TRUE(d.ok());
    XaResourceOptions o;
    o.wal_path = dir_.path + "/res.xa.db";
    o.reconcile_interval = 0;
    return XaResource::Open("res", std::move(*d), o);
  };
  auto refused = open();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("newer version (xa_wal_layout " + newer), std::string::npos)
      << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("1 branch(es) that have not ended"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(stamp(""), newer);  // nothing written
  EXPECT_EQ(Prepared(), 1);     // the database's prepared transaction untouched

  // The newer version ends the branch (here: this one, the stamp put back).
  stamp(std::to_string(XaResource::kXaWalLayout));
  Open();
  ASSERT_TRUE(res_->Recover().ok());
  ASSERT_TRUE(Commit(Tx(1)).ok());
  res_.reset();
  stamp(newer);
  auto used = open();
  ASSERT_TRUE(used.ok()) << used.status().ToString();
  used->reset();
  EXPECT_EQ(stamp(""), std::to_string(XaResource::kXaWalLayout));

  // A stamp that is not a number is refused, unread.
  stamp("'three'");
  auto damaged = open();
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.status().message().find("not a layout number"), std::string::npos)
      << damaged.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(Kinds, XaResourceTest, ::testing::Values("Postgres", "MariaDb"),
                         [](const auto& info) { return info.param; });

// PostgreSQL's default max_prepared_transactions = 0: refused at start,
// naming the setting, not at the first PREPARE.
TEST(XaResourcePostgresTrap, MaxPreparedTransactionsZeroFailsAtOpen) {
  Pg server(/*max_prepared=*/0);
  ASSERT_TRUE(server.Start().ok());
  TempDir dir;
  auto d = server.Driver("orders");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  XaResourceOptions o;
  o.wal_path = dir.path + "/orders.xa.db";
  auto r = XaResource::Open("orders", std::move(*d), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("max_prepared_transactions"), std::string::npos)
      << r.status().ToString();
}

// MariaDB refuses DDL inside an XA transaction: a clear error, the branch
// still usable.
TEST(XaResourceMariaDbTrap, DdlInsideABranchIsRefusedClearly) {
  Maria server;
  ASSERT_TRUE(server.Start().ok());
  ASSERT_TRUE(server.CreateTable().ok());
  TempDir dir;
  auto d = server.Driver("stock");
  ASSERT_TRUE(d.ok());
  XaResourceOptions o;
  o.wal_path = dir.path + "/stock.xa.db";
  o.reconcile_interval = 0;
  auto r = XaResource::Open("stock", std::move(*d), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE((*r)->Recover().ok());
  std::promise<ExecuteResult> p;
  (*r)->Execute(Tx(1), {Sql("CREATE TABLE u(id INT PRIMARY KEY)")},
                [&](ExecuteResult e) { p.set_value(std::move(e)); });
  ExecuteResult e = p.get_future().get();
  EXPECT_EQ(e.status.code(), Status::kInvalidArgument) << e.status.ToString();
  EXPECT_NE(e.status.message().find("DDL"), std::string::npos) << e.status.ToString();
}

}  // namespace
}  // namespace txc::participant
