// The PostgreSQL XA driver against a real PostgreSQL 15 of each test's own
// (tests/support/pg_server.h): bound parameters, all-or-nothing Run calls,
// prepared transactions across sessions and a server crash, the server check
// and the connection errors.
#include "participant/pg_driver.h"

#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <future>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace txc::participant::xa {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using txc::testing::PgServer;
using txc::testing::PgServerOptions;

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

proto::Statement St(std::string sql, std::vector<proto::Value> params = {},
                    std::optional<int64_t> expect_rows = std::nullopt) {
  proto::Statement s;
  s.sql = std::move(sql);
  s.params = std::move(params);
  if (expect_rows) s.__set_expect_rows(*expect_rows);
  return s;
}

PgServerOptions ServerOptions(int max_prepared, std::optional<std::string> password = std::nullopt,
                              std::string auth = "scram-sha-256") {
  PgServerOptions o;
  o.max_prepared_transactions = max_prepared;
  o.password = std::move(password);
  o.auth_method = std::move(auth);
  return o;
}

PostgresOptions LockTimeout(Micros t) {
  PostgresOptions o;
  o.lock_timeout = t;
  return o;
}

std::string Gid(int64_t seq) { return MakeGid(MakeTxId(1, seq), "orders"); }

// Tables are created as the test user (not the superuser psql runs as), so
// the driver's sessions own them.
constexpr char kSchema[] =
    "SET ROLE txc;\n"
    "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);\n"
    "INSERT INTO acct VALUES (1, 100), (2, 200);\n"
    "CREATE TABLE kinds (id int2 PRIMARY KEY, i8 int8, i4 int4, f4 real, f8 float8,\n"
    "                    n numeric(12,2), t text, b bytea, flag bool, day date);\n";

class PgDriverTest : public ::testing::Test {
 protected:
  void StartServer(PgServerOptions options = {}) {
    server_ = std::make_unique<PgServer>(options);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto r = server_->Sql(kSchema);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartServer());
    driver_ = Driver(PostgresOptions{});
  }

  std::unique_ptr<xa::Driver> Driver(PostgresOptions options,
                                     std::optional<std::string> password = std::nullopt) {
    auto d = MakePostgresDriver("orders", server_->conninfo(), std::move(password), options);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(d).value() : nullptr;
  }

  std::unique_ptr<Session> Connect(xa::Driver* driver = nullptr) {
    auto s = (driver != nullptr ? driver : driver_.get())->Connect();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  std::string Sql(const std::string& sql) {
    auto r = server_->Sql(sql);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : "";
  }

  std::unique_ptr<PgServer> server_;
  std::unique_ptr<xa::Driver> driver_;
};

TEST_F(PgDriverTest, BasicsKindAndServerCheck) {
  ASSERT_NE(driver_, nullptr);
  EXPECT_STREQ(driver_->kind(), "postgres");
  EXPECT_FALSE(driver_->PreparedStaysOnSession());
  auto s = Connect();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->Healthy());
  Status c = driver_->CheckServer(*s);
  EXPECT_TRUE(c.ok()) << c.ToString();
}

TEST_F(PgDriverTest, BoundParamsRoundTripEveryType) {
  auto s = Connect();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Begin(Gid(1)).ok());
  const std::string nasty = "Robert'); DROP TABLE acct; -- \"x\" $1 \\ \xc3\xa9";
  const std::string bytes("\x00\x01'\\\xff;", 6);
  const double tenth = 0.1, big = 1.2345678901234567e300, tiny = -4.9406564584124654e-324;

  // Straight back out: the declared types of i, d and b come back as such.
  auto r = s->Run({St("SELECT $1 AS i, $2 AS d, $3 AS s, $4 AS b, $5 AS n, $6 AS lo, $7 AS big, "
                      "$8 AS tiny, $9 AS empty",
                      {I(std::numeric_limits<int64_t>::max()), D(tenth), S(nasty), B(bytes), Null(),
                       I(std::numeric_limits<int64_t>::min()), D(big), D(tiny), B("")})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  const proto::ResultSet& rs = (*r)[0];
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"i", "d", "s", "b", "n", "lo", "big", "tiny", "empty"}));
  ASSERT_EQ(rs.rows.size(), 1u);
  const auto& v = rs.rows[0].values;
  ASSERT_EQ(v.size(), 9u);
  ASSERT_TRUE(v[0].__isset.i);
  EXPECT_EQ(v[0].i, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(v[1].__isset.d);
  EXPECT_EQ(v[1].d, tenth);  // exactly: full precision both ways
  ASSERT_TRUE(v[2].__isset.s);
  EXPECT_EQ(v[2].s, nasty);
  ASSERT_TRUE(v[3].__isset.b);
  EXPECT_EQ(v[3].b, bytes);
  EXPECT_FALSE(v[4].__isset.i || v[4].__isset.d || v[4].__isset.s || v[4].__isset.b);
  EXPECT_EQ(v[5].i, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(v[6].d, big);
  EXPECT_EQ(v[7].d, tiny);
  ASSERT_TRUE(v[8].__isset.b);
  EXPECT_EQ(v[8].b, "");
  EXPECT_EQ(rs.rows_changed, 0);  // a SELECT changes nothing

  // Through a table of every column type the mapping names.
  r = s->Run({St("INSERT INTO kinds VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                 {I(7), I(-5), I(123456), D(1.5), D(-2.25), S("12.5"), S(nasty), B(bytes), S("true"),
                  S("2024-02-29")},
                 1),
              St("INSERT INTO kinds (id, t) VALUES ($1, $2)", {I(8), Null()}, 1),
              St("SELECT id, i8, i4, f4, f8, n, t, b, flag, day FROM kinds ORDER BY id")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].rows_changed, 1);
  EXPECT_TRUE((*r)[0].columns.empty());
  const auto& rows = (*r)[2].rows;
  ASSERT_EQ(rows.size(), 2u);
  const auto& k = rows[0].values;
  EXPECT_EQ(k[0].i, 7);
  EXPECT_EQ(k[1].i, -5);
  EXPECT_EQ(k[2].i, 123456);
  ASSERT_TRUE(k[3].__isset.d);
  EXPECT_EQ(k[3].d, 1.5);
  EXPECT_EQ(k[4].d, -2.25);
  ASSERT_TRUE(k[5].__isset.s) << "numeric is its exact text";
  EXPECT_EQ(k[5].s, "12.50");
  EXPECT_EQ(k[6].s, nasty);
  EXPECT_EQ(k[7].b, bytes);
  EXPECT_EQ(k[8].s, "t");
  EXPECT_EQ(k[9].s, "2024-02-29");
  for (size_t c = 1; c < rows[1].values.size(); ++c) {
    const proto::Value& n = rows[1].values[c];
    EXPECT_FALSE(n.__isset.i || n.__isset.d || n.__isset.s || n.__isset.b) << "column " << c;
  }

  // The injection attempt stayed data: acct is still there, and a lookup by
  // it finds exactly the row that holds it.
  r = s->Run({St("SELECT count(*) AS n FROM acct"), St("SELECT id FROM kinds WHERE t = $1", {S(nasty)})});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].rows[0].values[0].i, 2);
  ASSERT_EQ((*r)[1].rows.size(), 1u);
  EXPECT_EQ((*r)[1].rows[0].values[0].i, 7);
  EXPECT_TRUE(s->RollbackActive(Gid(1)).ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM kinds"), "0\n");
}

TEST_F(PgDriverTest, RunIsAllOrNothingAndTheBranchGoesOn) {
  auto s = Connect();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Begin(Gid(2)).ok());
  auto r = s->Run({St("INSERT INTO acct VALUES ($1, $2)", {I(10), I(1)}, 1)});
  ASSERT_TRUE(r.ok()) << r.status().ToString();

  // The second statement fails (duplicate key): the first is undone.
  r = s->Run({St("INSERT INTO acct VALUES ($1, $2)", {I(11), I(1)}, 1),
              St("INSERT INTO acct VALUES ($1, $2)", {I(10), I(2)}, 1)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kSqlError) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("postgres resource orders"));
  EXPECT_THAT(r.status().message(), HasSubstr("statement 2"));
  EXPECT_THAT(r.status().message(), HasSubstr("23505"));

  // expect_rows: the second UPDATE matches nothing; the first is undone too.
  r = s->Run({St("UPDATE acct SET balance = balance + 1 WHERE id = $1", {I(1)}, 1),
              St("UPDATE acct SET balance = balance + 1 WHERE id = $1", {I(99)}, 1)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kExpectationFailed) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("statement 2 (UPDATE acct"));
  EXPECT_THAT(r.status().message(), HasSubstr("changed 0 rows, expected 1"));

  // Ending the transaction from inside is refused, the branch untouched.
  for (const char* sql : {"COMMIT", "  /* x */ -- y\n rollback", "PREPARE TRANSACTION 'x'",
                          "SAVEPOINT txc_run", "release savepoint txc_run", "BEGIN", "END"}) {
    r = s->Run({St("INSERT INTO acct VALUES (12, 1)"), St(sql)});
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), Status::kInvalidArgument) << sql << ": " << r.status().ToString();
  }
  // Two statements in one string are refused by the server, too.
  r = s->Run({St("INSERT INTO acct VALUES (13, 1); COMMIT")});
  ASSERT_FALSE(r.ok());

  // Still usable, and it holds exactly the first call's work.
  r = s->Run({St("UPDATE acct SET balance = balance + 5 WHERE id = 1", {}, 1),
              St("SELECT id, balance FROM acct ORDER BY id")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)[0].rows_changed, 1);
  const auto& rows = (*r)[1].rows;
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].values[1].i, 105);
  EXPECT_EQ(rows[1].values[0].i, 2);
  EXPECT_EQ(rows[2].values[0].i, 10);

  ASSERT_TRUE(s->Prepare(Gid(2)).ok());
  Status c = s->CommitPrepared(Gid(2));
  ASSERT_TRUE(c.ok()) << c.ToString();
  EXPECT_EQ(Sql("SELECT id, balance FROM acct ORDER BY id"), "1|105\n2|200\n10|1\n");
}

TEST_F(PgDriverTest, PreparedSurvivesSessionCloseAndServerCrash) {
  {
    auto s = Connect();
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(s->Begin(Gid(3)).ok());
    auto r = s->Run({St("UPDATE acct SET balance = balance - 30 WHERE id = 1", {}, 1),
                     St("UPDATE acct SET balance = balance + 30 WHERE id = 2", {}, 1)});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    Status p = s->Prepare(Gid(3));
    ASSERT_TRUE(p.ok()) << p.ToString();
  }  // the preparing session is gone
  EXPECT_EQ(Sql("SELECT gid FROM pg_prepared_xacts"), Gid(3) + "\n");

  pid_t before = server_->pid();
  ASSERT_TRUE(server_->Crash().ok());
  EXPECT_EQ(server_->pid(), -1);
  Status rs = server_->Restart();
  ASSERT_TRUE(rs.ok()) << rs.ToString();
  EXPECT_NE(server_->pid(), before);

  auto s = Connect();
  ASSERT_NE(s, nullptr);
  auto list = s->ListPrepared();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].gid, Gid(3));
  EXPECT_EQ((*list)[0].owner, "txc");
  // Not applied yet, and its row locks survived the crash too.
  EXPECT_EQ(Sql("SELECT balance FROM acct ORDER BY id"), "100\n200\n");
  auto other = Connect();
  ASSERT_TRUE(other->Begin(Gid(4)).ok());
  auto blocked = other->Run({St("UPDATE acct SET balance = 0 WHERE id = 1")});
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), Status::kLockTimeout) << blocked.status().ToString();
  ASSERT_TRUE(other->RollbackActive(Gid(4)).ok());

  Status c = s->CommitPrepared(Gid(3));
  ASSERT_TRUE(c.ok()) << c.ToString();
  EXPECT_EQ(Sql("SELECT balance FROM acct ORDER BY id"), "70\n230\n");
  c = s->CommitPrepared(Gid(3));
  EXPECT_EQ(c.code(), Status::kNotFound) << c.ToString();
  list = s->ListPrepared();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(PgDriverTest, RollbackPreparedFromAnotherSession) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Begin(Gid(5)).ok());
  ASSERT_TRUE(a->Run({St("INSERT INTO acct VALUES (50, 5)", {}, 1)}).ok());
  ASSERT_TRUE(a->Prepare(Gid(5)).ok());
  // The preparing session is free again: a new branch may start on it.
  ASSERT_TRUE(a->Begin(Gid(6)).ok());
  ASSERT_TRUE(a->RollbackActive(Gid(6)).ok());

  Status r = b->RollbackPrepared(Gid(5));
  ASSERT_TRUE(r.ok()) << r.ToString();
  EXPECT_EQ(Sql("SELECT count(*) FROM acct WHERE id = 50"), "0\n");
  EXPECT_EQ(Sql("SELECT count(*) FROM pg_prepared_xacts"), "0\n");
  r = b->RollbackPrepared(Gid(5));
  EXPECT_EQ(r.code(), Status::kNotFound) << r.ToString();
}

TEST_F(PgDriverTest, UnknownGidIsNotFound) {
  auto s = Connect();
  ASSERT_NE(s, nullptr);
  Status c = s->CommitPrepared(Gid(77));
  EXPECT_EQ(c.code(), Status::kNotFound) << c.ToString();
  EXPECT_THAT(c.message(), HasSubstr("postgres resource orders"));
  EXPECT_THAT(c.message(), HasSubstr(Gid(77)));
  Status r = s->RollbackPrepared(Gid(77));
  EXPECT_EQ(r.code(), Status::kNotFound) << r.ToString();
  // A gid with a quote is quoted, not spliced.
  r = s->RollbackPrepared("x'; DROP TABLE acct; --");
  EXPECT_EQ(r.code(), Status::kNotFound) << r.ToString();
  EXPECT_EQ(Sql("SELECT count(*) FROM acct"), "2\n");
  EXPECT_TRUE(s->Healthy());
}

TEST_F(PgDriverTest, ListPreparedShowsOursAndForeignOfThisDatabaseOnly) {
  auto s = Connect();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Begin(Gid(8)).ok());
  ASSERT_TRUE(s->Run({St("UPDATE acct SET balance = 1 WHERE id = 1", {}, 1)}).ok());
  ASSERT_TRUE(s->Prepare(Gid(8)).ok());
  // Someone else's, in this database and in another one.
  Sql("BEGIN;\nUPDATE acct SET balance = 2 WHERE id = 2;\nPREPARE TRANSACTION 'foreign-1';\n");
  Sql("CREATE DATABASE other;");
  auto o = server_->Sql("CREATE TABLE t (x int);\nBEGIN;\nINSERT INTO t VALUES (1);\n"
                        "PREPARE TRANSACTION 'elsewhere';\n",
                        "other");
  ASSERT_TRUE(o.ok()) << o.status().ToString();

  auto list = s->ListPrepared();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 2u);
  std::map<std::string, PreparedXact> by_gid;
  for (const auto& x : *list) by_gid[x.gid] = x;
  ASSERT_TRUE(by_gid.count(Gid(8)));
  ASSERT_TRUE(by_gid.count("foreign-1"));
  EXPECT_EQ(by_gid[Gid(8)].owner, "txc");
  EXPECT_EQ(by_gid["foreign-1"].owner, "postgres");
  EXPECT_THAT(by_gid[Gid(8)].prepared_at, HasSubstr("-"));  // a timestamp
  auto parsed = ParseGid(by_gid[Gid(8)].gid);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->resource, "orders");
  EXPECT_EQ(parsed->txid.seq, 8);
  EXPECT_FALSE(ParseGid(by_gid["foreign-1"].gid).has_value());

  ASSERT_TRUE(s->RollbackPrepared(Gid(8)).ok());
  Sql("ROLLBACK PREPARED 'foreign-1';");
  ASSERT_TRUE(server_->Sql("ROLLBACK PREPARED 'elsewhere';", "other").ok());
}

TEST_F(PgDriverTest, CheckServerNamesMaxPreparedTransactionsWhenZero) {
  ASSERT_NO_FATAL_FAILURE(StartServer(ServerOptions(0)));
  driver_ = Driver(PostgresOptions{});
  auto s = Connect();
  ASSERT_NE(s, nullptr);
  Status c = driver_->CheckServer(*s);
  ASSERT_EQ(c.code(), Status::kInvalidArgument) << c.ToString();
  EXPECT_THAT(c.message(), HasSubstr("postgres resource orders (127.0.0.1:" +
                                     std::to_string(server_->port()) + "/txc)"));
  EXPECT_THAT(c.message(), HasSubstr("max_prepared_transactions is 0"));
  EXPECT_THAT(c.message(), HasSubstr("postgresql.conf"));
  EXPECT_THAT(c.message(), HasSubstr("restart"));
  // What it saves the user from: PREPARE TRANSACTION fails on such a server.
  ASSERT_TRUE(s->Begin(Gid(9)).ok());
  Status p = s->Prepare(Gid(9));
  EXPECT_FALSE(p.ok());
  EXPECT_THAT(p.ToString(), HasSubstr("prepared transactions are disabled"));
}

TEST_F(PgDriverTest, WrongPasswordIsUnavailableAndNeverShown) {
  const std::string right = "s3cret-Pw'x";
  const std::string wrong = "wr0ng-Pa55-zq";
  ASSERT_NO_FATAL_FAILURE(StartServer(ServerOptions(64, right)));
  std::string server = "postgres resource orders (127.0.0.1:" + std::to_string(server_->port()) + "/txc)";

  auto d = Driver(PostgresOptions{}, wrong);
  auto s = d->Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Status::kUnavailable);
  EXPECT_THAT(s.status().message(), HasSubstr(server));
  EXPECT_THAT(s.status().message(), HasSubstr("password authentication failed for user \"txc\""));
  EXPECT_THAT(s.status().message(), Not(HasSubstr(wrong)));
  EXPECT_THAT(s.status().message(), Not(HasSubstr(right)));

  // No password at all.
  d = Driver(PostgresOptions{});
  s = d->Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Status::kUnavailable);
  EXPECT_THAT(s.status().message(), HasSubstr(server));

  // libpq's own PGPASSWORD keeps working when none is given.
  setenv("PGPASSWORD", right.c_str(), 1);
  s = d->Connect();
  unsetenv("PGPASSWORD");
  EXPECT_TRUE(s.ok()) << s.status().ToString();

  // The right one, given apart, overrides one in the connection string.
  auto d2 = MakePostgresDriver("orders", server_->conninfo() + " password=" + wrong, right);
  ASSERT_TRUE(d2.ok());
  s = (*d2)->Connect();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto r = (*s)->Run({St("SELECT current_user")});
  EXPECT_FALSE(r.ok()) << "no branch yet";
  ASSERT_TRUE((*s)->Begin(Gid(10)).ok());
  r = (*s)->Run({St("SELECT current_user AS u")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].rows[0].values[0].s, "txc");
}

TEST_F(PgDriverTest, Md5PasswordAuthWorks) {
  ASSERT_NO_FATAL_FAILURE(StartServer(ServerOptions(64, "pw-md5", "md5")));
  auto s = Driver(PostgresOptions{}, std::string("pw-md5"))->Connect();
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  s = Driver(PostgresOptions{}, std::string("nope"))->Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("password authentication failed"));
}

TEST(PgDriver, UnreachableServerAndBadConnectionString) {
  int port = txc::testing::FreePort();  // reserved, nothing listens on it
  auto d = MakePostgresDriver("orders",
                              "host=127.0.0.1 port=" + std::to_string(port) + " dbname=shop user=txc",
                              std::string("hunter2-secret"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto s = (*d)->Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Status::kUnavailable);
  EXPECT_THAT(s.status().message(),
              HasSubstr("postgres resource orders (127.0.0.1:" + std::to_string(port) + "/shop)"));
  EXPECT_THAT(s.status().message(), HasSubstr("Connection refused"));
  EXPECT_THAT(s.status().message(), Not(HasSubstr("hunter2")));

  auto bad = MakePostgresDriver("orders", "host=127.0.0.1 bogus_option=1", std::nullopt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("postgres resource orders"));
  EXPECT_THAT(bad.status().message(), HasSubstr("bogus_option"));
}

TEST_F(PgDriverTest, RowLockWaitEndsInLockTimeout) {
  auto a = Connect();
  auto b = Connect();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Begin(Gid(11)).ok());
  ASSERT_TRUE(a->Run({St("UPDATE acct SET balance = 0 WHERE id = 1", {}, 1)}).ok());
  ASSERT_TRUE(b->Begin(Gid(12)).ok());
  ASSERT_TRUE(b->Run({St("UPDATE acct SET balance = 7 WHERE id = 2", {}, 1)}).ok());

  auto start = std::chrono::steady_clock::now();
  auto r = b->Run({St("UPDATE acct SET balance = 8 WHERE id = 2"),
                   St("UPDATE acct SET balance = 9 WHERE id = 1")});
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kLockTimeout) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("statement 2"));
  EXPECT_GE(waited, 1.5);  // the default: 2 s
  EXPECT_LT(waited, 10.0);
  // b goes on with its earlier work (balance 7, not 8) and can prepare.
  r = b->Run({St("SELECT balance FROM acct WHERE id = 2")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].rows[0].values[0].i, 7);
  ASSERT_TRUE(b->Prepare(Gid(12)).ok());
  ASSERT_TRUE(a->RollbackActive(Gid(11)).ok());
  ASSERT_TRUE(a->CommitPrepared(Gid(12)).ok());
  EXPECT_EQ(Sql("SELECT balance FROM acct ORDER BY id"), "100\n7\n");

  // A shorter lock_timeout is an option of the driver.
  auto quick = Driver(LockTimeout(200 * kMillis));
  auto c = Connect(quick.get());
  ASSERT_TRUE(a->Begin(Gid(13)).ok());
  ASSERT_TRUE(a->Run({St("SELECT * FROM acct WHERE id = 1 FOR UPDATE")}).ok());
  ASSERT_TRUE(c->Begin(Gid(14)).ok());
  start = std::chrono::steady_clock::now();
  r = c->Run({St("UPDATE acct SET balance = 1 WHERE id = 1")});
  waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status().code(), Status::kLockTimeout) << r.status().ToString();
  EXPECT_LT(waited, 1.5);
}

TEST_F(PgDriverTest, SerializationFailureAndDeadlockAreAborted) {
  auto a = Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->Begin(Gid(15)).ok());
  ASSERT_TRUE(a->Run({St("SELECT balance FROM acct WHERE id = 1")}).ok());  // the snapshot
  Sql("UPDATE acct SET balance = 1 WHERE id = 1;");  // commits after a's snapshot
  auto r = a->Run({St("UPDATE acct SET balance = 2 WHERE id = 1")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kAborted) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("40001"));
  EXPECT_TRUE(a->RollbackActive(Gid(15)).ok());

  // A deadlock: each holds one row and wants the other's.
  auto x = Driver(LockTimeout(20 * kSeconds));
  auto s1 = Connect(x.get());
  auto s2 = Connect(x.get());
  ASSERT_TRUE(s1 && s2);
  ASSERT_TRUE(s1->Begin(Gid(16)).ok());
  ASSERT_TRUE(s2->Begin(Gid(17)).ok());
  ASSERT_TRUE(s1->Run({St("UPDATE acct SET balance = 10 WHERE id = 1")}).ok());
  ASSERT_TRUE(s2->Run({St("UPDATE acct SET balance = 20 WHERE id = 2")}).ok());
  // The victim keeps its earlier row lock (PostgreSQL only undoes the failed
  // statement), so the other waits until the victim is rolled back: that is
  // what ABORTED asks of the caller.
  auto run = [](Session* s, std::string gid, int64_t id) {
    auto r = s->Run({St("UPDATE acct SET balance = balance + 1 WHERE id = $1", {I(id)})});
    if (!r.ok()) {
      EXPECT_TRUE(s->RollbackActive(gid).ok());
    }
    return r.status();
  };
  auto f1 = std::async(std::launch::async, run, s1.get(), Gid(16), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto f2 = std::async(std::launch::async, run, s2.get(), Gid(17), 1);
  Status r1 = f1.get(), r2 = f2.get();
  int aborted = 0;
  for (const Status* st : {&r1, &r2}) {
    if (!st->ok()) {
      EXPECT_EQ(st->code(), Status::kAborted) << st->ToString();
      EXPECT_THAT(st->message(), HasSubstr("40P01"));
      ++aborted;
    }
  }
  EXPECT_EQ(aborted, 1) << r1.ToString() << " / " << r2.ToString();
  EXPECT_TRUE(s1->RollbackActive(Gid(16)).ok());
  EXPECT_TRUE(s2->RollbackActive(Gid(17)).ok());
}

TEST_F(PgDriverTest, BrokenConnectionIsUnavailableAndUnhealthy) {
  auto s = Connect();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Begin(Gid(18)).ok());
  auto r = s->Run({St("SELECT pg_backend_pid() AS pid")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  int64_t pid = (*r)[0].rows[0].values[0].i;
  EXPECT_EQ(Sql("SELECT pg_terminate_backend(" + std::to_string(pid) + ", 5000);"), "t\n");
  r = s->Run({St("SELECT 1")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kUnavailable) << r.status().ToString();
  EXPECT_THAT(r.status().message(), HasSubstr("postgres resource orders"));
  EXPECT_FALSE(s->Healthy());
  Status p = s->Prepare(Gid(18));
  EXPECT_EQ(p.code(), Status::kUnavailable) << p.ToString();
}

}  // namespace
}  // namespace txc::participant::xa
