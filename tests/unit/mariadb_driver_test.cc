// participant/mariadb_driver against a real, throwaway MariaDB server
// (tests/support/mariadb_server.h); nothing here is mocked.
#include "participant/mariadb_driver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/mariadb_server.h"

namespace txc::participant::xa {
namespace {

using testing::MariaDbServer;

proto::Value I(int64_t v) {
  proto::Value x;
  x.__set_i(v);
  return x;
}
proto::Value D(double v) {
  proto::Value x;
  x.__set_d(v);
  return x;
}
proto::Value S(std::string v) {
  proto::Value x;
  x.__set_s(std::move(v));
  return x;
}
proto::Value B(std::string v) {
  proto::Value x;
  x.__set_b(std::move(v));
  return x;
}
proto::Value Null() { return proto::Value(); }

proto::Statement St(std::string sql, std::vector<proto::Value> params = {}) {
  proto::Statement s;
  s.sql = std::move(sql);
  s.params = std::move(params);
  return s;
}
proto::Statement Expect(proto::Statement s, int64_t rows) {
  s.__set_expect_rows(rows);
  return s;
}

std::vector<std::string> Gids(const std::vector<PreparedXact>& xs) {
  std::vector<std::string> out;
  for (const auto& x : xs) out.push_back(x.gid);
  std::sort(out.begin(), out.end());
  return out;
}

class MariaDbDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = server_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto out = server_.Sql(
        "CREATE TABLE txc_test.stock (id BIGINT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(200), "
        "dbl DOUBLE, bin VARBINARY(200), price DECIMAL(10,2)) ENGINE=InnoDB;\n"
        "INSERT INTO txc_test.stock (id, qty) VALUES (1, 10), (2, 20);");
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    driver_ = MakeDriver(server_.conninfo(), std::nullopt);
    ASSERT_NE(driver_, nullptr);
  }

  std::unique_ptr<Driver> MakeDriver(const std::string& conninfo, std::optional<std::string> password,
                                     MariaDbOptions options = {}) {
    auto d = MakeMariaDbDriver("stock", conninfo, std::move(password), options);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(*d) : nullptr;
  }

  std::unique_ptr<Session> Connect(Driver& d) {
    auto s = d.Connect();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // The server's view, as root.
  std::string Root(const std::string& sql) {
    auto out = server_.Sql(sql);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : "";
  }

  MariaDbServer server_;
  std::unique_ptr<Driver> driver_;
};

TEST_F(MariaDbDriverTest, MariaDbBoundParamsRoundTrip) {
  ASSERT_TRUE(driver_->CheckServer(*Connect(*driver_)).ok());
  auto s = Connect(*driver_);
  ASSERT_NE(s, nullptr);
  const std::string gid = "txc:1.5:stock";
  ASSERT_TRUE(s->Begin(gid).ok());
  const std::string nasty = "it's; DROP TABLE stock; -- \"quoted\" \\ back";
  const std::string blob("\x00\x01'\xff;", 5);
  auto r = s->Run({Expect(St("INSERT INTO stock (id, qty, note, dbl, bin, price) VALUES (?, ?, ?, ?, ?, ?)",
                             {I(3), I(-7), S(nasty), D(2.5), B(blob), D(12.34)}),
                          1),
                   St("INSERT INTO stock (id, qty, note, bin) VALUES (?, ?, ?, ?)", {I(4), I(0), Null(), Null()}),
                   St("SELECT id, qty, note, dbl, bin, price, NULL AS n FROM stock WHERE id >= ? ORDER BY id",
                      {I(3)})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].rows_changed, 1);
  const proto::ResultSet& rs = (*r)[2];
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"id", "qty", "note", "dbl", "bin", "price", "n"}));
  ASSERT_EQ(rs.rows.size(), 2u);
  const auto& a = rs.rows[0].values;
  ASSERT_EQ(a.size(), 7u);
  EXPECT_TRUE(a[0].__isset.i);
  EXPECT_EQ(a[0].i, 3);
  EXPECT_EQ(a[1].i, -7);
  ASSERT_TRUE(a[2].__isset.s);
  EXPECT_EQ(a[2].s, nasty);
  ASSERT_TRUE(a[3].__isset.d);
  EXPECT_EQ(a[3].d, 2.5);
  ASSERT_TRUE(a[4].__isset.b);
  EXPECT_EQ(a[4].b, blob);
  ASSERT_TRUE(a[5].__isset.d);  // DECIMAL -> d
  EXPECT_DOUBLE_EQ(a[5].d, 12.34);
  EXPECT_FALSE(a[6].__isset.i || a[6].__isset.d || a[6].__isset.s || a[6].__isset.b);
  const auto& b = rs.rows[1].values;
  EXPECT_FALSE(b[2].__isset.s || b[2].__isset.b);  // NULL bound and read back
  EXPECT_FALSE(b[4].__isset.s || b[4].__isset.b);

  // An UPDATE writing the same value still counts (CLIENT_FOUND_ROWS).
  auto u = s->Run({Expect(St("UPDATE stock SET qty = qty WHERE id = ?", {I(1)}), 1)});
  EXPECT_TRUE(u.ok()) << u.status().ToString();

  ASSERT_TRUE(s->Prepare(gid).ok());
  ASSERT_TRUE(s->CommitPrepared(gid).ok());
  // The table is still there and the string is data.
  EXPECT_EQ(Root("SELECT note FROM txc_test.stock WHERE id = 3"),
            "it's; DROP TABLE stock; -- \"quoted\" \\\\ back\n");
  EXPECT_EQ(Root("SELECT COUNT(*) FROM txc_test.stock"), "4\n");
}

TEST_F(MariaDbDriverTest, MariaDbRunIsAllOrNothing) {
  auto s = Connect(*driver_);
  ASSERT_NE(s, nullptr);
  const std::string gid = "txc:1.6:stock";
  ASSERT_TRUE(s->Begin(gid).ok());
  ASSERT_TRUE(s->Run({St("UPDATE stock SET qty = 11 WHERE id = 1")}).ok());
  // The second statement fails (duplicate key): the first one of this call is undone.
  auto r = s->Run({St("UPDATE stock SET qty = 99 WHERE id = 2"), St("INSERT INTO stock (id, qty) VALUES (1, 0)")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kSqlError) << r.status().ToString();
  EXPECT_NE(r.status().message().find("1062"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("stock"), std::string::npos);
  // expect_rows mismatch: EXPECTATION_FAILED, and undone too.
  auto e = s->Run({St("UPDATE stock SET qty = 55 WHERE id = 2"), Expect(St("DELETE FROM stock WHERE id = 42"), 1)});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Status::kExpectationFailed) << e.status().ToString();
  // Wrong parameter count.
  auto p = s->Run({St("UPDATE stock SET qty = ? WHERE id = ?", {I(1)})});
  EXPECT_EQ(p.status().code(), Status::kSqlError);

  auto q = s->Run({St("SELECT id, qty FROM stock ORDER BY id")});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  ASSERT_EQ((*q)[0].rows.size(), 2u);
  EXPECT_EQ((*q)[0].rows[0].values[1].i, 11);  // the earlier call stays
  EXPECT_EQ((*q)[0].rows[1].values[1].i, 20);  // the failed calls left nothing
  ASSERT_TRUE(s->Prepare(gid).ok());
  ASSERT_TRUE(s->CommitPrepared(gid).ok());
  EXPECT_EQ(Root("SELECT qty FROM txc_test.stock ORDER BY id"), "11\n20\n");
}

TEST_F(MariaDbDriverTest, MariaDbPreparedSurvivesDisconnectAndCrash) {
  const std::string gid = "txc:1.5:stock";
  {
    auto s = Connect(*driver_);
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(s->Begin(gid).ok());
    ASSERT_TRUE(s->Run({St("UPDATE stock SET qty = qty - 3 WHERE id = 1")}).ok());
    ASSERT_TRUE(s->Prepare(gid).ok());
  }  // the preparing session disconnects
  {
    auto s = Connect(*driver_);
    auto l = s->ListPrepared();
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    EXPECT_EQ(Gids(*l), std::vector<std::string>{gid});
  }
  server_.Crash();
  ASSERT_TRUE(server_.Restart().ok()) << server_.LogTail();
  auto s = Connect(*driver_);
  ASSERT_NE(s, nullptr);
  auto l = s->ListPrepared();
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(Gids(*l), std::vector<std::string>{gid});
  EXPECT_EQ(Root("SELECT qty FROM txc_test.stock WHERE id = 2"), "20\n");  // row 2 not locked
  ASSERT_TRUE(s->CommitPrepared(gid).ok());
  EXPECT_EQ(Root("SELECT qty FROM txc_test.stock WHERE id = 1"), "7\n");
  auto after = s->ListPrepared();
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());
  EXPECT_EQ(s->CommitPrepared(gid).code(), Status::kNotFound);
}

// The trap: while the preparing session is connected, no other session can
// finish its branch (XAER_NOTA, though XA RECOVER elsewhere lists it).
TEST_F(MariaDbDriverTest, MariaDbPreparedBranchStaysOnItsSession) {
  EXPECT_TRUE(driver_->PreparedStaysOnSession());
  const std::string gid = "txc:2.1:stock";
  auto s1 = Connect(*driver_);
  auto s2 = Connect(*driver_);
  ASSERT_NE(s1, nullptr);
  ASSERT_NE(s2, nullptr);
  ASSERT_TRUE(s1->Begin(gid).ok());
  ASSERT_TRUE(s1->Run({St("UPDATE stock SET qty = 1 WHERE id = 1")}).ok());
  ASSERT_TRUE(s1->Prepare(gid).ok());
  auto l = s2->ListPrepared();
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(Gids(*l), std::vector<std::string>{gid});  // visible elsewhere...
  // ...but not finishable there: the server says XAER_NOTA (1397); the
  // driver sees it listed and answers UNAVAILABLE, not NOT_FOUND.
  Status other = s2->CommitPrepared(gid);
  EXPECT_EQ(other.code(), Status::kUnavailable) << other.ToString();
  EXPECT_NE(other.message().find("1397"), std::string::npos) << other.message();
  EXPECT_NE(other.message().find("held by another session"), std::string::npos) << other.message();
  EXPECT_EQ(s2->RollbackPrepared(gid).code(), Status::kUnavailable);
  EXPECT_TRUE(s2->Healthy());
  Status own = s1->CommitPrepared(gid);
  ASSERT_TRUE(own.ok()) << own.ToString();
  EXPECT_EQ(Root("SELECT qty FROM txc_test.stock WHERE id = 1"), "1\n");
  // The session is free for the next branch.
  ASSERT_TRUE(s1->Begin("txc:2.2:stock").ok());
  ASSERT_TRUE(s1->RollbackActive("txc:2.2:stock").ok());
}

TEST_F(MariaDbDriverTest, MariaDbRollbackPreparedAndUnknownGid) {
  const std::string gid = "txc:3.1:stock";
  auto s = Connect(*driver_);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Begin(gid).ok());
  ASSERT_TRUE(s->Run({St("DELETE FROM stock WHERE id = 2")}).ok());
  ASSERT_TRUE(s->Prepare(gid).ok());
  ASSERT_TRUE(s->RollbackPrepared(gid).ok());
  EXPECT_EQ(Root("SELECT COUNT(*) FROM txc_test.stock"), "2\n");
  EXPECT_EQ(s->RollbackPrepared(gid).code(), Status::kNotFound);
  EXPECT_EQ(s->CommitPrepared("txc:9.9:stock").code(), Status::kNotFound);
  EXPECT_EQ(s->RollbackPrepared("txc:9.9:stock").code(), Status::kNotFound);
  // Ids MariaDB cannot take.
  EXPECT_EQ(s->Begin("no-colon").code(), Status::kInvalidArgument);
  EXPECT_EQ(s->Begin("txc:1.1:" + std::string(65, 'r')).code(), Status::kInvalidArgument);
  EXPECT_TRUE(s->Begin("txc:1.1:" + std::string(64, 'r')).ok());
  EXPECT_TRUE(s->RollbackActive("txc:1.1:" + std::string(64, 'r')).ok());
  EXPECT_TRUE(s->Healthy());
}

TEST_F(MariaDbDriverTest, MariaDbListPreparedOursAndForeign) {
  // A foreign branch, prepared by the client as root; it stays prepared when
  // the client disconnects.
  Root("XA START 'foreign'; INSERT INTO txc_test.stock (id, qty) VALUES (50, 5); XA END 'foreign'; "
       "XA PREPARE 'foreign';");
  const std::string gid = "txc:4.2:stock";
  {
    auto s = Connect(*driver_);
    ASSERT_TRUE(s->Begin(gid).ok());
    ASSERT_TRUE(s->Run({St("INSERT INTO stock (id, qty) VALUES (51, 5)")}).ok());
    ASSERT_TRUE(s->Prepare(gid).ok());
  }
  auto s = Connect(*driver_);
  auto l = s->ListPrepared();
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(Gids(*l), (std::vector<std::string>{"format=1 gtrid=666f726569676e bqual=", gid}));
  // The server detaches the branch from the closed session a moment after
  // the close: until then it is held elsewhere (UNAVAILABLE).
  Status rb = s->RollbackPrepared(gid);
  for (int i = 0; i < 100 && rb.code() == Status::kUnavailable; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rb = s->RollbackPrepared(gid);
  }
  ASSERT_TRUE(rb.ok()) << rb.ToString();
  Root("XA ROLLBACK 'foreign';");
  EXPECT_EQ(Root("SELECT COUNT(*) FROM txc_test.stock"), "2\n");
}

TEST_F(MariaDbDriverTest, MariaDbDdlInsideBranchIsInvalidArgument) {
  const std::string gid = "txc:5.1:stock";
  auto s = Connect(*driver_);
  ASSERT_TRUE(s->Begin(gid).ok());
  ASSERT_TRUE(s->Run({St("UPDATE stock SET qty = 12 WHERE id = 1")}).ok());
  auto r = s->Run({St("UPDATE stock SET qty = 21 WHERE id = 2"), St("CREATE TABLE other (x INT)")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("1399"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("DDL"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("not allowed inside a txcoord transaction on MariaDB"), std::string::npos);
  // The branch lives on, without the failed call's update.
  auto q = s->Run({St("SELECT qty FROM stock ORDER BY id")});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ((*q)[0].rows[0].values[0].i, 12);
  EXPECT_EQ((*q)[0].rows[1].values[0].i, 20);
  ASSERT_TRUE(s->RollbackActive(gid).ok());
  EXPECT_EQ(Root("SELECT qty FROM txc_test.stock ORDER BY id"), "10\n20\n");
  EXPECT_EQ(Root("SHOW TABLES FROM txc_test"), "stock\n");
}

TEST_F(MariaDbDriverTest, MariaDbConnectErrorsNameResourceNotPassword) {
  const std::string wrong = "Wr0ng-Secret-99";
  auto d = MakeDriver(server_.conninfo(MariaDbServer::kPasswordUser), wrong);
  ASSERT_NE(d, nullptr);
  auto c = d->Connect();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::kUnavailable);
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("stock"), std::string::npos) << m;
  EXPECT_NE(m.find("127.0.0.1:" + std::to_string(server_.port()) + "/txc_test"), std::string::npos) << m;
  EXPECT_NE(m.find("Access denied"), std::string::npos) << m;
  EXPECT_EQ(m.find(wrong), std::string::npos) << m;
  // The right password works.
  auto good = MakeDriver(server_.conninfo(MariaDbServer::kPasswordUser), std::string(MariaDbServer::kPassword));
  EXPECT_TRUE(good->Connect().ok());

  // Nothing listens on this port.
  int dead_port = testing::FreePort();
  auto unreachable = MakeDriver("host=127.0.0.1 port=" + std::to_string(dead_port) +
                                    " database=txc_test user=txc connect_timeout=2",
                                wrong);
  auto u = unreachable->Connect();
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), Status::kUnavailable);
  EXPECT_NE(u.status().message().find("stock"), std::string::npos) << u.status().message();
  EXPECT_NE(u.status().message().find("127.0.0.1:" + std::to_string(dead_port)), std::string::npos)
      << u.status().message();
  EXPECT_EQ(u.status().message().find(wrong), std::string::npos);

  // Bad connection strings.
  auto bad = MakeMariaDbDriver("stock", "host=127.0.0.1 sslmode=require colour=blue", std::nullopt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("colour, sslmode"), std::string::npos) << bad.status().message();
  EXPECT_EQ(MakeMariaDbDriver("stock", "port=http", std::nullopt).status().code(), Status::kInvalidArgument);
  EXPECT_EQ(MakeMariaDbDriver("stock", "host", std::nullopt).status().code(), Status::kInvalidArgument);
  EXPECT_TRUE(MakeMariaDbDriver("stock", "host='127.0.0.1' user = txc", std::nullopt).ok());
}

TEST_F(MariaDbDriverTest, MariaDbLockWaitTimeout) {
  MariaDbOptions opts;
  opts.lock_wait_timeout_s = 1;
  auto d = MakeDriver(server_.conninfo(), std::nullopt, opts);
  auto s1 = Connect(*d);
  auto s2 = Connect(*d);
  ASSERT_TRUE(s1->Begin("txc:6.1:stock").ok());
  ASSERT_TRUE(s2->Begin("txc:6.2:stock").ok());
  ASSERT_TRUE(s1->Run({St("UPDATE stock SET qty = 1 WHERE id = 1")}).ok());
  auto t0 = std::chrono::steady_clock::now();
  auto r = s2->Run({St("UPDATE stock SET qty = 2 WHERE id = 2"), St("UPDATE stock SET qty = 3 WHERE id = 1")});
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kLockTimeout) << r.status().ToString();
  EXPECT_GE(waited, std::chrono::milliseconds(900));
  EXPECT_LT(waited, std::chrono::seconds(10));
  // s2's branch lives on without the call's first update.
  auto q = s2->Run({St("SELECT qty FROM stock WHERE id = 2")});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ((*q)[0].rows[0].values[0].i, 20);
  ASSERT_TRUE(s2->Prepare("txc:6.2:stock").ok());
  ASSERT_TRUE(s2->CommitPrepared("txc:6.2:stock").ok());
  ASSERT_TRUE(s1->RollbackActive("txc:6.1:stock").ok());
}

TEST_F(MariaDbDriverTest, MariaDbDeadlockVictimIsAborted) {
  auto s1 = Connect(*driver_);
  auto s2 = Connect(*driver_);
  ASSERT_TRUE(s1->Begin("txc:7.1:stock").ok());
  ASSERT_TRUE(s2->Begin("txc:7.2:stock").ok());
  ASSERT_TRUE(s1->Run({St("UPDATE stock SET qty = 1 WHERE id = 1")}).ok());
  ASSERT_TRUE(s2->Run({St("UPDATE stock SET qty = 2 WHERE id = 2")}).ok());
  auto f = std::async(std::launch::async, [&] { return s1->Run({St("UPDATE stock SET qty = 1 WHERE id = 2")}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto r2 = s2->Run({St("UPDATE stock SET qty = 2 WHERE id = 1")});
  auto r1 = f.get();
  // Exactly one is the victim; its branch is dead and rolls back cleanly.
  ASSERT_NE(r1.ok(), r2.ok()) << r1.status().ToString() << " / " << r2.status().ToString();
  Session* victim = r1.ok() ? s2.get() : s1.get();
  Session* winner = r1.ok() ? s1.get() : s2.get();
  const Status& vs = r1.ok() ? r2.status() : r1.status();
  EXPECT_EQ(vs.code(), Status::kAborted) << vs.ToString();
  EXPECT_NE(vs.message().find("1213"), std::string::npos) << vs.message();
  EXPECT_TRUE(victim->RollbackActive(r1.ok() ? "txc:7.2:stock" : "txc:7.1:stock").ok());
  const std::string wgid = r1.ok() ? "txc:7.1:stock" : "txc:7.2:stock";
  ASSERT_TRUE(winner->Prepare(wgid).ok());
  ASSERT_TRUE(winner->CommitPrepared(wgid).ok());
  EXPECT_EQ(Root("SELECT qty FROM txc_test.stock ORDER BY id"), r1.ok() ? "1\n1\n" : "2\n2\n");
  // Both sessions are usable for a new branch.
  EXPECT_TRUE(victim->Begin("txc:7.3:stock").ok());
  EXPECT_TRUE(victim->RollbackActive("txc:7.3:stock").ok());
}

TEST_F(MariaDbDriverTest, MariaDbLostConnectionIsUnavailable) {
  auto s = Connect(*driver_);
  ASSERT_TRUE(s->Begin("txc:8.1:stock").ok());
  ASSERT_TRUE(s->Run({St("UPDATE stock SET qty = 1 WHERE id = 1")}).ok());
  server_.Crash();
  auto r = s->Run({St("SELECT 1")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kUnavailable) << r.status().ToString();
  EXPECT_FALSE(s->Healthy());
  ASSERT_TRUE(server_.Restart().ok()) << server_.LogTail();
  EXPECT_EQ(Root("SELECT qty FROM txc_test.stock WHERE id = 1"), "10\n");  // the active branch is gone
}

TEST_F(MariaDbDriverTest, MariaDbCheckServerNamesTheSetting) {
  auto ok = Connect(*driver_);
  ASSERT_NE(ok, nullptr);
  EXPECT_TRUE(driver_->CheckServer(*ok).ok());
  Root("SET GLOBAL default_storage_engine = MyISAM;");
  auto s = Connect(*driver_);
  ASSERT_NE(s, nullptr);
  Status st = driver_->CheckServer(*s);
  EXPECT_EQ(st.code(), Status::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("default_storage_engine is MyISAM"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("stock"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace txc::participant::xa
