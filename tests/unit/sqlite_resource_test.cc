#include "participant/sqlite_resource.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/codec.h"
#include "participant/sqlite_branch_log.h"
#include "tests/support/core_harness.h"

#include "wal/sqlite.h"

namespace txc::participant {
namespace {

using ::testing::HasSubstr;

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
proto::Value Null() { return proto::Value(); }

proto::Statement Sql(std::string sql, std::vector<proto::Value> params = {},
                     std::optional<int64_t> expect_rows = std::nullopt) {
  proto::Statement s;
  s.sql = std::move(sql);
  s.params = std::move(params);
  if (expect_rows) s.__set_expect_rows(*expect_rows);
  return s;
}

// Moves `delta` onto account `id`, which must exist.
proto::Statement Add(int64_t id, int64_t delta) {
  return Sql("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", {I(delta), I(id)}, 1);
}

// Waits for a callback's value.
template <typename T>
T Wait(std::future<T> f) {
  EXPECT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "no callback";
  return f.get();
}

class SqliteResourceTest : public ::testing::Test {
 protected:
  static constexpr int kAccounts = 1000;

  void SetUp() override {
    char tmpl[] = "/tmp/sqlite_resource_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/bank_a.db";
    auto db = wal::Db::Open(path_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    reader_ = std::move(*db);
    ASSERT_OK(reader_->Exec(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
        "CREATE TABLE audit(msg TEXT);"  // no primary key
        "CREATE TABLE kv(k TEXT, part INTEGER, v TEXT, PRIMARY KEY(k, part));"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
        "INSERT INTO accounts SELECT i, 100 FROM n;"));
    Open();
  }

  void TearDown() override {
    rm_.reset();
    reader_.reset();
    std::filesystem::remove_all(dir_);
  }

  // (Re)opens the resource, as an agent restart would, and runs Recover.
  std::vector<RecoveredBranch> Open(SqliteResourceOptions options = {}) {
    rm_.reset();
    auto r = SqliteResource::Open("bank_a", path_, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    rm_ = std::move(*r);
    auto rec = rm_->Recover();
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    return rec.ok() ? *rec : std::vector<RecoveredBranch>{};
  }

  ExecuteResult Execute(const TxId& t, std::vector<proto::Statement> stmts) {
    std::promise<ExecuteResult> p;
    auto f = p.get_future();
    rm_->Execute(t, std::move(stmts), [&p](ExecuteResult r) { p.set_value(std::move(r)); });
    return Wait(std::move(f));
  }
  ExecuteResult ExecuteAndPrepare(const TxId& t, std::vector<proto::Statement> stmts,
                                  const PrepareInfo& info = {}) {
    std::promise<ExecuteResult> p;
    auto f = p.get_future();
    rm_->ExecuteAndPrepare(t, std::move(stmts), info,
                           [&p](ExecuteResult r) { p.set_value(std::move(r)); });
    return Wait(std::move(f));
  }
  Status Prepare(const TxId& t, const PrepareInfo& info = {}) {
    std::promise<Status> p;
    auto f = p.get_future();
    rm_->Prepare(t, info, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  }
  Status Commit(const TxId& t) {
    std::promise<Status> p;
    auto f = p.get_future();
    rm_->Commit(t, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  }
  Status PreCommit(const TxId& t) {
    std::promise<Status> p;
    auto f = p.get_future();
    rm_->PreCommit(t, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  }
  Status Rollback(const TxId& t) {
    std::promise<Status> p;
    auto f = p.get_future();
    rm_->Rollback(t, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  }

  // Reads through a second connection, as any other reader of the file would.
  std::optional<int64_t> Balance(int64_t id) {
    auto q = reader_->Prepare("SELECT balance FROM accounts WHERE id = ?1");
    EXPECT_TRUE(q.ok());
    EXPECT_TRUE((*q)->BindInt(1, id).ok());
    auto row = (*q)->Step();
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    if (!row.ok() || !*row) return std::nullopt;
    return (*q)->ColumnInt(0);
  }
  std::map<int64_t, int64_t> Accounts() {
    std::map<int64_t, int64_t> out;
    auto q = reader_->Prepare("SELECT id, balance FROM accounts");
    EXPECT_TRUE(q.ok());
    while (true) {
      auto row = (*q)->Step();
      EXPECT_TRUE(row.ok());
      if (!row.ok() || !*row) break;
      out[(*q)->ColumnInt(0)] = (*q)->ColumnInt(1);
    }
    return out;
  }
  int64_t Count(const std::string& sql) {
    auto q = reader_->Prepare(sql);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    auto row = (*q)->Step();
    EXPECT_TRUE(row.ok() && *row);
    return (*q)->ColumnInt(0);
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<wal::Db> reader_;
  std::unique_ptr<SqliteResource> rm_;
  const TxId a_ = MakeTxId(1, 1);
  const TxId b_ = MakeTxId(1, 2);
};

TEST_F(SqliteResourceTest, ExecuteThenCommitKeepsTheData) {
  ExecuteResult r = Execute(a_, {Add(1, -30), Add(2, 30)});
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.wrote);
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[0].rows_changed, 1);
  EXPECT_EQ(rm_->locks_held(), 2u);
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(rm_->locks_held(), 0u);
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(Balance(2), 130);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes"), 0);
  EXPECT_EQ(Count("SELECT state FROM txc_branches WHERE txid = '1.1'"),
            static_cast<int>(BranchState::kCommitted));
  // Commit is idempotent.
  EXPECT_OK(Commit(a_));
}

// With the worker thread, a Commit's deferred sync runs once the worker is
// idle (commit_sync_delay): exactly one sync, then the callback.
TEST_F(SqliteResourceTest, ACommitAloneIsSyncedOnceAfterItsGroup) {
  ASSERT_OK(Execute(a_, {Add(1, -30)}).status);
  ASSERT_OK(Prepare(a_));
  uint64_t syncs = rm_->syncs();
  uint64_t groups = rm_->groups_committed();
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(rm_->groups_committed(), groups + 1);
  EXPECT_EQ(rm_->syncs(), syncs + 1);
  EXPECT_EQ(Count("SELECT state FROM txc_branches WHERE txid = '1.1'"),
            static_cast<int>(BranchState::kCommitted));
}

TEST_F(SqliteResourceTest, RollbackRestoresUpdatesInsertsAndDeletesExactly) {
  auto before = Accounts();
  ASSERT_OK(Execute(a_, {Add(1, -30), Sql("INSERT INTO accounts VALUES(?1, ?2)", {I(5000), I(7)})})
                .status);
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM accounts WHERE id IN (2, 3)", {}, 2), Add(1, -5),
                         Sql("UPDATE accounts SET balance = 0 WHERE id = 5000", {}, 1)})
                .status);
  EXPECT_EQ(Balance(1), 65);
  EXPECT_EQ(Balance(2), std::nullopt);
  EXPECT_EQ(Balance(5000), 0);
  EXPECT_EQ(rm_->locks_held(), 4u);
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Accounts(), before);
  EXPECT_EQ(rm_->locks_held(), 0u);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes"), 0);
  EXPECT_OK(Rollback(a_));  // idempotent
  EXPECT_EQ(Accounts(), before);
}

TEST_F(SqliteResourceTest, ConflictNamesHolderAndRowAndAppliesNothing) {
  ASSERT_OK(Execute(a_, {Add(7, -10)}).status);
  ExecuteResult r = Execute(b_, {Add(8, 1), Add(7, 1)});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  ASSERT_TRUE(r.holder.has_value());
  EXPECT_EQ(*r.holder, a_);
  EXPECT_EQ(r.conflict, "bank_a.accounts id=7");
  EXPECT_THAT(r.status.message(), HasSubstr("held by txn 1.1"));
  EXPECT_FALSE(r.wrote);
  EXPECT_TRUE(r.results.empty());
  EXPECT_EQ(Balance(8), 100);  // nothing of B applied
  EXPECT_EQ(Balance(7), 90);   // A's change untouched
  EXPECT_EQ(rm_->locks_held(), 1u);

  ASSERT_OK(Commit(a_));
  r = Execute(b_, {Add(8, 1), Add(7, 1)});
  ASSERT_OK(r.status);
  ASSERT_OK(Commit(b_));
  EXPECT_EQ(Balance(7), 91);
  EXPECT_EQ(Balance(8), 101);
}

TEST_F(SqliteResourceTest, ConflictOnCompositeTextKeyIsReadable) {
  ASSERT_OK(Execute(a_, {Sql("INSERT INTO kv VALUES('user', 3, 'x')")}).status);
  ExecuteResult r = Execute(b_, {Sql("DELETE FROM kv")});
  EXPECT_EQ(r.status.code(), Status::kConflict);
  EXPECT_EQ(r.conflict, "bank_a.kv k='user',part=3");
}

TEST_F(SqliteResourceTest, ReTakingOwnLockIsFine) {
  ASSERT_OK(Execute(a_, {Add(7, -10)}).status);
  ExecuteResult r = Execute(a_, {Add(7, -10)});
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.wrote);
  EXPECT_EQ(rm_->locks_held(), 1u);
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(7), 100);  // both calls undone, newest first
}

TEST_F(SqliteResourceTest, ExpectRowsMismatchFailsAndAppliesNothing) {
  ExecuteResult r = Execute(a_, {Add(1, -10), Add(99999, 10)});
  EXPECT_EQ(r.status.code(), Status::kExpectationFailed);
  EXPECT_THAT(r.status.message(), HasSubstr("statement 2"));
  EXPECT_THAT(r.status.message(), HasSubstr("changed 0 rows, expected 1"));
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(rm_->locks_held(), 0u);
}

TEST_F(SqliteResourceTest, SelectReturnsRowsAndColumnsAndReadOnlyBranchDidNotWrite) {
  ExecuteResult r = Execute(
      a_, {Sql("SELECT id, balance, 'x' AS s, NULL AS n, 2.5 AS d FROM accounts WHERE id <= ?1 "
               "ORDER BY id",
               {I(2)})});
  ASSERT_OK(r.status);
  EXPECT_FALSE(r.wrote);
  ASSERT_EQ(r.results.size(), 1u);
  const proto::ResultSet& rs = r.results[0];
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"id", "balance", "s", "n", "d"}));
  ASSERT_EQ(rs.rows.size(), 2u);
  EXPECT_EQ(rs.rows[1].values[0].i, 2);
  EXPECT_TRUE(rs.rows[1].values[0].__isset.i);
  EXPECT_EQ(rs.rows[1].values[1].i, 100);
  EXPECT_EQ(rs.rows[0].values[2].s, "x");
  EXPECT_FALSE(rs.rows[0].values[3].__isset.i || rs.rows[0].values[3].__isset.s ||
               rs.rows[0].values[3].__isset.d || rs.rows[0].values[3].__isset.b);
  EXPECT_DOUBLE_EQ(rs.rows[0].values[4].d, 2.5);
  EXPECT_EQ(rs.rows_changed, 0);
  EXPECT_EQ(rm_->locks_held(), 0u);
  // A later write makes the branch a writer.
  r = Execute(a_, {Add(1, 1)});
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.wrote);
  r = Execute(a_, {Sql("SELECT 1")});
  EXPECT_TRUE(r.wrote);
}

// An ABORT may reach a branch long after it ended (the agent forgot it): a
// branch released read-only rolls back as a no-op; one that committed changes
// answers INVALID_ARGUMENT, a final refusal, and keeps its data.
TEST_F(SqliteResourceTest, RollbackOfAReleasedReadOnlyBranchIsANoOpButOfACommittedWriterIsRefused) {
  ExecuteResult r = Execute(a_, {Sql("SELECT balance FROM accounts WHERE id = 1")});
  ASSERT_OK(r.status);
  ASSERT_FALSE(r.wrote);
  ASSERT_OK(Commit(a_));  // BranchCore releases a read-only branch this way
  EXPECT_OK(Rollback(a_));
  EXPECT_OK(Rollback(a_));

  ASSERT_OK(Execute(b_, {Add(1, -30)}).status);
  ASSERT_OK(Prepare(b_));
  ASSERT_OK(Commit(b_));
  Status s = Rollback(b_);
  EXPECT_EQ(s.code(), Status::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("committed here"), std::string::npos) << s.ToString();
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(Count("SELECT state FROM txc_branches WHERE txid = '1.2'"),
            static_cast<int>(BranchState::kCommitted));
}

// A log written before txc_branches had its `changed` column gains it on
// open; its committed rows count as having changed data, so a rollback of them
// is still refused (never a silent OK for data that stays committed).
TEST_F(SqliteResourceTest, OlderLogGainsTheChangedColumnAndItsCommittedBranchesStayRefused) {
  rm_.reset();
  ASSERT_OK(reader_->Exec(
      "DROP TABLE txc_branches;"
      "CREATE TABLE txc_branches(txid TEXT PRIMARY KEY, epoch INTEGER NOT NULL, "
      "  seq INTEGER NOT NULL, state INTEGER NOT NULL, participants BLOB, protocol INTEGER, "
      "  updated INTEGER NOT NULL);"
      "INSERT INTO txc_branches VALUES('1.1', 1, 1, 4, NULL, NULL, "
      "  CAST(strftime('%s', 'now') AS INTEGER) * 1000);"));
  Open();
  EXPECT_EQ(Rollback(a_).code(), Status::kInvalidArgument);
  EXPECT_EQ(Count("SELECT changed FROM txc_branches WHERE txid = '1.1'"), 1);
  // New read-only branches are recorded as having changed nothing.
  ASSERT_OK(Execute(b_, {Sql("SELECT 1")}).status);
  ASSERT_OK(Commit(b_));
  EXPECT_EQ(Count("SELECT changed FROM txc_branches WHERE txid = '1.2'"), 0);
  EXPECT_OK(Rollback(b_));
  // It gained the columns of a one-shot's change set too.
  const TxId c = MakeTxId(1, 3);
  ASSERT_OK(ExecuteAndPrepare(c, {Add(1, -5)}).status);
  EXPECT_EQ(Count("SELECT redo IS NOT NULL FROM txc_branches WHERE txid = '1.3'"), 1);
  ASSERT_OK(Rollback(c));
  EXPECT_EQ(Balance(1), 100);
}

// A heuristic decision commits or rolls back a PREPARED branch together with
// its record, which survives a restart until forgotten; any other branch is
// refused, changing nothing.
TEST_F(SqliteResourceTest, HeuristicDecisionAppliesAndRecordsAtomicallyUntilForgotten) {
  auto decide = [&](const TxId& t, proto::Outcome::type o) {
    HeuristicRecord r;
    r.txid = t;
    r.outcome = o;
    r.reason = "group unreachable";
    r.who = "alice";
    std::promise<Status> p;
    auto f = p.get_future();
    rm_->HeuristicDecide(r, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  };
  auto forget = [&](const TxId& t) {
    std::promise<Status> p;
    auto f = p.get_future();
    rm_->ForgetHeuristic(t, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  };
  ASSERT_OK(Execute(a_, {Add(1, -30)}).status);
  EXPECT_EQ(decide(a_, proto::Outcome::ABORTED).code(), Status::kInvalidArgument);  // ACTIVE
  EXPECT_EQ(Balance(1), 70);
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(decide(a_, proto::Outcome::ABORTED));
  EXPECT_EQ(Balance(1), 100);  // undone
  EXPECT_EQ(rm_->locks_held(), 0u);
  ASSERT_OK(Execute(b_, {Add(2, 5)}).status);
  ASSERT_OK(Prepare(b_));
  ASSERT_OK(decide(b_, proto::Outcome::COMMITTED));
  EXPECT_EQ(Balance(2), 105);
  EXPECT_EQ(decide(b_, proto::Outcome::ABORTED).code(), Status::kInvalidArgument);  // final now

  EXPECT_TRUE(Open().empty());  // restart: nothing in doubt, both records kept
  auto h = rm_->Heuristics();
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->size(), 2u);
  std::map<std::string, HeuristicRecord> by;
  for (const auto& r : *h) by[ToString(r.txid)] = r;
  EXPECT_EQ(by["1.1"].outcome, proto::Outcome::ABORTED);
  EXPECT_EQ(by["1.2"].outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(by["1.1"].who, "alice");
  EXPECT_GT(by["1.1"].at_ms, 0);
  ASSERT_OK(forget(a_));
  EXPECT_EQ(forget(a_).code(), Status::kNotFound);
  EXPECT_EQ(rm_->Heuristics()->size(), 1u);
}

TEST_F(SqliteResourceTest, SqlErrorNamesResourceAndKeepsEarlierWork) {
  ASSERT_OK(Execute(a_, {Add(1, -10)}).status);
  ExecuteResult r = Execute(a_, {Add(2, 10), Sql("UPDATE acounts SET balance = 0")});
  EXPECT_EQ(r.status.code(), Status::kSqlError);
  EXPECT_THAT(r.status.message(), HasSubstr("bank_a: no such table: acounts"));
  EXPECT_TRUE(r.wrote);  // the first call's change
  EXPECT_EQ(Balance(2), 100);
  EXPECT_EQ(Balance(1), 90);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(Balance(2), 100);
}

TEST_F(SqliteResourceTest, ParameterCountMismatchIsAnSqlError) {
  ExecuteResult r = Execute(a_, {Sql("UPDATE accounts SET balance = ?1 WHERE id = ?2", {I(1)})});
  EXPECT_EQ(r.status.code(), Status::kSqlError);
  EXPECT_THAT(r.status.message(), HasSubstr("expected 2 parameters, got 1"));
  r = Execute(a_, {Sql("INSERT INTO kv VALUES(?1, ?2, ?3)", {S("k"), I(1), Null()})});
  ASSERT_OK(r.status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv WHERE v IS NULL"), 1);
}

TEST_F(SqliteResourceTest, TableWithoutPrimaryKeyIsRefused) {
  ExecuteResult r = Execute(a_, {Add(1, 1), Sql("INSERT INTO audit VALUES('moved')")});
  EXPECT_EQ(r.status.code(), Status::kSqlError);
  EXPECT_THAT(r.status.message(), HasSubstr("PRIMARY KEY"));
  EXPECT_THAT(r.status.message(), HasSubstr("audit"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM audit"), 0);
  EXPECT_EQ(Balance(1), 100);
  // Reading it is fine.
  ASSERT_OK(Execute(a_, {Sql("SELECT * FROM audit")}).status);
}

// Whether a table has a primary key is remembered per schema version: a
// table rebuilt without one, by another connection, is refused again.
TEST_F(SqliteResourceTest, TableRebuiltWithoutPrimaryKeyIsRefusedAgain) {
  TxId t0 = MakeTxId(1, 1), t1 = MakeTxId(1, 2);
  ASSERT_OK(Execute(t0, {Add(1, 1)}).status);
  ASSERT_OK(Commit(t0));
  ASSERT_OK(Execute(t1, {Sql("INSERT INTO kv VALUES('a', 1, 'x')")}).status);
  ASSERT_OK(Commit(t1));
  ASSERT_OK(reader_->Exec("DROP TABLE kv; CREATE TABLE kv(k TEXT, part INTEGER, v TEXT);"));
  TxId t2 = MakeTxId(1, 3);
  ExecuteResult r = Execute(t2, {Sql("INSERT INTO kv VALUES('b', 1, 'y')")});
  EXPECT_EQ(r.status.code(), Status::kSqlError);
  EXPECT_THAT(r.status.message(), HasSubstr("kv has no PRIMARY KEY"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv"), 0);
}

TEST_F(SqliteResourceTest, TransactionControlAndLogTablesAreOffLimits) {
  for (const char* sql : {"COMMIT", "BEGIN", "SAVEPOINT x", "DELETE FROM txc_branches",
                          "PRAGMA synchronous=OFF", "SELECT 1; SELECT 2"}) {
    ExecuteResult r = Execute(a_, {Sql(sql)});
    EXPECT_EQ(r.status.code(), Status::kSqlError) << sql;
  }
  ASSERT_OK(Execute(a_, {Sql("SELECT COUNT(*) FROM txc_branches")}).status);
  ASSERT_OK(Execute(a_, {Add(3, 1)}).status);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(3), 101);
}

// The authorizer, for every branch: ATTACH/DETACH, PRAGMA writes, pragmas
// that act without a value, and load_extension() are refused with SQL_ERROR
// naming the reason; nothing of the call is applied (the UPDATE before the
// refused statement) and the branch goes on and commits.
TEST_F(SqliteResourceTest, AuthorizerRefusesAttachPragmaWritesAndExtensionsKeepingTheBranch) {
  ASSERT_OK(Execute(a_, {Add(1, 5)}).status);
  struct Case {
    std::string sql;
    std::string says;
  };
  const std::string other = dir_ + "/other.db";
  for (const Case& c : std::vector<Case>{
           {"ATTACH DATABASE '" + other + "' AS other", "ATTACH/DETACH is not allowed"},
           {"DETACH DATABASE main", "ATTACH/DETACH is not allowed"},
           {"PRAGMA foreign_keys=OFF", "PRAGMA foreign_keys with a value is not allowed"},
           {"PRAGMA writable_schema=ON", "PRAGMA writable_schema with a value is not allowed"},
           {"PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint is not allowed"},
           {"PRAGMA optimize", "PRAGMA optimize is not allowed"},
           {"SELECT load_extension('/tmp/nothing.so')", "load_extension() is not allowed"},
       }) {
    ExecuteResult r = Execute(a_, {Add(2, 7), Sql(c.sql)});
    EXPECT_EQ(r.status.code(), Status::kSqlError) << c.sql << ": " << r.status.ToString();
    EXPECT_THAT(r.status.message(), HasSubstr(c.says)) << c.sql;
    EXPECT_THAT(r.status.message(), HasSubstr("statement 2")) << c.sql;
  }
  EXPECT_EQ(Balance(2), 100);  // no refused call applied its UPDATE
  EXPECT_FALSE(std::filesystem::exists(other));
  // Reads of settings and of the schema pass.
  for (const char* sql : {"PRAGMA user_version", "PRAGMA journal_mode", "PRAGMA foreign_keys",
                          "PRAGMA table_info(accounts)", "PRAGMA index_list(kv)",
                          "SELECT name FROM pragma_table_info('accounts')"}) {
    ExecuteResult r = Execute(a_, {Sql(sql)});
    EXPECT_TRUE(r.status.ok()) << sql << ": " << r.status.ToString();
  }
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(1), 105);
  EXPECT_EQ(Balance(2), 100);
}

// DDL runs by default (set-up scripts create their tables through
// transactions); with allow_ddl false every kind of schema change is refused,
// naming the option, and the schema and data stay as they were.
TEST_F(SqliteResourceTest, DdlIsAllowedByDefaultAndRefusedWhenTheResourceDeniesIt) {
  ASSERT_OK(Execute(a_, {Sql("CREATE TABLE made(id INTEGER PRIMARY KEY)"),
                         Sql("INSERT INTO made VALUES(1)")})
                .status);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM made"), 1);

  SqliteResourceOptions o;
  o.allow_ddl = false;
  Open(o);
  const int64_t objects = Count("SELECT COUNT(*) FROM sqlite_master");
  for (const char* sql : {"CREATE TABLE t2(id INTEGER PRIMARY KEY)", "DROP TABLE made",
                          "ALTER TABLE accounts ADD COLUMN note TEXT",
                          "CREATE INDEX by_balance ON accounts(balance)",
                          "CREATE VIEW rich AS SELECT * FROM accounts WHERE balance > 100",
                          "CREATE TRIGGER t AFTER INSERT ON made BEGIN SELECT 1; END",
                          "CREATE TEMP TABLE scratch(x)", "ANALYZE", "REINDEX"}) {
    ExecuteResult r = Execute(b_, {Add(3, 1), Sql(sql)});
    EXPECT_EQ(r.status.code(), Status::kSqlError) << sql << ": " << r.status.ToString();
    EXPECT_THAT(r.status.message(), HasSubstr("is not allowed: resource bank_a is configured with "
                                              "ddl=deny"))
        << sql;
  }
  EXPECT_EQ(Count("SELECT COUNT(*) FROM sqlite_master"), objects);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM made"), 1);
  EXPECT_EQ(Balance(3), 100);
  // Data statements still run and commit.
  ASSERT_OK(Execute(b_, {Add(3, 1), Sql("INSERT INTO made VALUES(2)")}).status);
  ASSERT_OK(Commit(b_));
  EXPECT_EQ(Balance(3), 101);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM made"), 2);
}

// max_result_bytes bounds the rows one Execute call returns: a SELECT past
// it fails with INVALID_ARGUMENT naming the limit, nothing of the call is
// applied, and the branch goes on.
TEST_F(SqliteResourceTest, ResultsPastTheLimitAreRefusedAndNothingOfTheCallApplies) {
  SqliteResourceOptions o;
  o.max_result_bytes = 2000;  // 1,000 accounts of 2 integers (16 bytes) are 16,000
  Open(o);
  ExecuteResult r = Execute(a_, {Add(1, 5), Sql("SELECT id, balance FROM accounts")});
  EXPECT_EQ(r.status.code(), Status::kInvalidArgument) << r.status.ToString();
  EXPECT_THAT(r.status.message(), HasSubstr("the results of this Execute call passed 2000 bytes "
                                            "(the resource's limit per call) at row 126"));
  EXPECT_TRUE(r.results.empty());
  EXPECT_EQ(Balance(1), 100);
  r = Execute(a_, {Add(1, 5), Sql("SELECT id, balance FROM accounts ORDER BY id LIMIT 10")});
  ASSERT_OK(r.status);
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_EQ(r.results[1].rows.size(), 10u);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(1), 105);
}

TEST_F(SqliteResourceTest, StatementThatRollsBackTheTransactionKeepsEarlierWork) {
  ASSERT_OK(Execute(a_, {Add(1, -10)}).status);
  ExecuteResult r = Execute(a_, {Add(2, 5), Sql("INSERT OR ROLLBACK INTO accounts VALUES(1, 5)")});
  EXPECT_EQ(r.status.code(), Status::kSqlError);
  EXPECT_THAT(r.status.message(), HasSubstr("UNIQUE"));
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(Balance(2), 100);
  ASSERT_OK(Execute(b_, {Add(3, 1)}).status);
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(1), 100);
  ASSERT_OK(Commit(b_));
  EXPECT_EQ(Balance(3), 101);
}

TEST_F(SqliteResourceTest, PreparedBranchSurvivesRestartWithItsLocks) {
  PrepareInfo info;
  proto::Participant p1, p2;
  p1.resource = "bank_a";
  p1.address = "127.0.0.1:7001";
  p2.resource = "bank_b";
  p2.address = "127.0.0.1:7002";
  info.participants = {p1, p2};
  info.protocol = proto::Protocol::THREE_PC;
  ASSERT_OK(Execute(a_, {Add(7, -50)}).status);
  ASSERT_OK(Prepare(a_, info));
  EXPECT_OK(Prepare(a_, info));  // idempotent

  auto recovered = Open();  // restart
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].txid, a_);
  EXPECT_EQ(recovered[0].state, BranchState::kPrepared);
  EXPECT_EQ(recovered[0].info.participants, info.participants);
  EXPECT_EQ(recovered[0].info.protocol, proto::Protocol::THREE_PC);
  EXPECT_EQ(rm_->locks_held(), 1u);

  ExecuteResult r = Execute(b_, {Add(7, 1)});
  EXPECT_EQ(r.status.code(), Status::kConflict);
  EXPECT_EQ(r.conflict, "bank_a.accounts id=7");
  // A prepared branch takes no more statements.
  EXPECT_EQ(Execute(a_, {Add(1, 1)}).status.code(), Status::kInvalidArgument);

  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(7), 50);
  EXPECT_EQ(rm_->locks_held(), 0u);
  ASSERT_OK(Execute(b_, {Add(7, 1)}).status);
  EXPECT_TRUE(Open().size() == 1u);  // b is ACTIVE
}

TEST_F(SqliteResourceTest, PrecommittedBranchIsDurableKeepsItsLocksAndCommits) {
  PrepareInfo info;
  info.protocol = proto::Protocol::THREE_PC;
  ASSERT_OK(Execute(a_, {Add(7, -50)}).status);
  EXPECT_EQ(PreCommit(a_).code(), Status::kInvalidArgument);  // ACTIVE: not yet
  ASSERT_OK(Prepare(a_, info));
  uint64_t syncs = rm_->syncs();
  ASSERT_OK(PreCommit(a_));
  EXPECT_GT(rm_->syncs(), syncs);  // forced
  EXPECT_OK(PreCommit(a_));        // idempotent
  EXPECT_OK(Prepare(a_, info));    // a duplicate CAN_COMMIT is still YES

  auto recovered = Open();  // restart
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].state, BranchState::kPreCommitted);
  EXPECT_EQ(recovered[0].info.protocol, proto::Protocol::THREE_PC);
  EXPECT_EQ(rm_->locks_held(), 1u);
  EXPECT_EQ(Execute(b_, {Add(7, 1)}).status.code(), Status::kConflict);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(7), 50);
  EXPECT_OK(PreCommit(a_));  // late, after the commit
  // An aborted branch is never precommitted; an unknown one is not found.
  ASSERT_OK(Execute(b_, {Add(1, 1)}).status);
  ASSERT_OK(Rollback(b_));
  EXPECT_EQ(PreCommit(b_).code(), Status::kAborted);
  EXPECT_EQ(PreCommit(MakeTxId(9, 9)).code(), Status::kNotFound);
}

// ------------------------------------------------- the log's record layout

// Prepares a_ after changing accounts id=7 and inserting kv('x', 2), the
// branch whose log rows the old encoder wrote as kOldParticipantsHex and
// kOldKeysHex.
PrepareInfo TwoParticipants() {
  PrepareInfo info;
  proto::Participant p1, p2;
  p1.resource = "bank_a";
  p1.address = "127.0.0.1:7001";
  p1.__set_incarnation(5);
  p2.resource = "bank_b";
  p2.address = "127.0.0.1:7002";
  info.participants = {p1, p2};
  info.protocol = proto::Protocol::THREE_PC;
  return info;
}

std::string Blob(wal::Db* db, const std::string& sql) {
  auto q = db->Prepare(sql);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  if (!q.ok()) return "";
  auto row = (*q)->Step();
  EXPECT_TRUE(row.ok() && *row);
  return std::string((*q)->ColumnBlob(0));
}

TEST_F(SqliteResourceTest, PreparedParticipantsKeepTheirIncarnationAcrossRestart) {
  const PrepareInfo info = TwoParticipants();
  ASSERT_OK(Execute(a_, {Add(7, -50), Sql("INSERT INTO kv VALUES('x', 2, 'v')")}).status);
  ASSERT_OK(Prepare(a_, info));

  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].info.participants, info.participants);
  ASSERT_TRUE(recovered[0].info.participants[0].__isset.incarnation);
  EXPECT_EQ(recovered[0].info.participants[0].incarnation, 5);
  EXPECT_FALSE(recovered[0].info.participants[1].__isset.incarnation);
  EXPECT_EQ(rm_->locks_held(), 2u);
}

TEST_F(SqliteResourceTest, LogBlobsAreTheIdlRecords) {
  const PrepareInfo info = TwoParticipants();
  ASSERT_OK(Execute(a_, {Add(7, -50), Sql("INSERT INTO kv VALUES('x', 2, 'v')")}).status);
  ASSERT_OK(Execute(a_, {Add(8, 50)}).status);
  ASSERT_OK(Prepare(a_, info));

  proto::PreparedRecord prepared;
  ASSERT_TRUE(codec::Decode(Blob(reader_.get(), "SELECT participants FROM txc_branches"),
                            &prepared));
  EXPECT_EQ(prepared.participants, info.participants);
  proto::ChangeKeysRecord keys;  // the first Execute's, in the branch's row
  ASSERT_TRUE(codec::Decode(Blob(reader_.get(), "SELECT keys FROM txc_branches"), &keys));
  EXPECT_EQ(keys.keys.size(), 2u);
  proto::ChangeKeysRecord later;  // the second's, in txc_changes
  ASSERT_TRUE(codec::Decode(Blob(reader_.get(), "SELECT keys FROM txc_changes"), &later));
  EXPECT_EQ(later.keys.size(), 1u);
}

// Bytes the encoder before proto::PreparedRecord and proto::ChangeKeysRecord
// wrote for TwoParticipants() (incarnation dropped) and for the lock keys of
// accounts id=7 and kv('x', 2).
const char kOldParticipantsHex[] =
    "040000000600000062616E6B5F610E0000003132372E302E302E313A373030310600000062616E6B5F620E0000003132372E302E302E313A37303032";
const char kOldKeysHex[] =
    "02000000120000006163636F756E747300690000000000000007120000006B7600740100000078690000000000000002";

TEST_F(SqliteResourceTest, BranchesLoggedInTheOldLayoutRecover) {
  ASSERT_OK(Execute(a_, {Add(7, -50), Sql("INSERT INTO kv VALUES('x', 2, 'v')")}).status);
  ASSERT_OK(Prepare(a_, TwoParticipants()));
  rm_.reset();
  // The log rows as a file written by the old encoder holds them.
  ASSERT_OK(reader_->Exec(std::string("UPDATE txc_branches SET participants = X'") +
                          kOldParticipantsHex + "'; UPDATE txc_changes SET keys = X'" +
                          kOldKeysHex + "';"));

  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].state, BranchState::kPrepared);
  EXPECT_EQ(recovered[0].info.protocol, proto::Protocol::THREE_PC);
  std::vector<proto::Participant> expected = TwoParticipants().participants;
  expected[0].__isset.incarnation = false;  // the old layout did not keep it
  expected[0].incarnation = 0;
  EXPECT_EQ(recovered[0].info.participants, expected);
  EXPECT_EQ(rm_->locks_held(), 2u);
  ExecuteResult r = Execute(b_, {Add(7, 1)});
  EXPECT_EQ(r.status.code(), Status::kConflict);
  EXPECT_EQ(r.conflict, "bank_a.accounts id=7");
  EXPECT_EQ(Execute(b_, {Sql("UPDATE kv SET v = 'w' WHERE k = 'x' AND part = 2")}).status.code(),
            Status::kConflict);

  // Its outcome still applies as it would have.
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(7), 50);
  EXPECT_EQ(rm_->locks_held(), 0u);
}

TEST_F(SqliteResourceTest, MalformedLogBlobsFailRecovery) {
  ASSERT_OK(Execute(a_, {Add(7, -50)}).status);
  ASSERT_OK(Prepare(a_, TwoParticipants()));
  std::string good = Blob(reader_.get(), "SELECT hex(participants) FROM txc_branches");
  rm_.reset();
  // A record cut short, and a legacy list whose count runs past its end.
  for (const std::string& bad : {good.substr(0, good.size() - 6), std::string("0300000001000000")}) {
    ASSERT_OK(reader_->Exec("UPDATE txc_branches SET participants = X'" + bad + "'"));
    auto r = SqliteResource::Open("bank_a", path_, {});
    ASSERT_OK(r.status());
    auto rec = (*r)->Recover();
    EXPECT_EQ(rec.status().code(), Status::kInternal) << bad;
    EXPECT_THAT(rec.status().message(), HasSubstr("malformed participants")) << bad;
  }
}

TEST_F(SqliteResourceTest, ActiveBranchRecoveredAndRolledBackAfterRestart) {
  auto before = Accounts();
  ASSERT_OK(Execute(a_, {Add(1, -10), Sql("INSERT INTO accounts VALUES(7777, 1)")}).status);
  ASSERT_OK(Execute(b_, {Sql("SELECT 1")}).status);  // read-only: recovered, no locks
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 2u);
  EXPECT_EQ(recovered[0].txid, a_);
  EXPECT_EQ(recovered[0].state, BranchState::kActive);
  EXPECT_EQ(recovered[1].txid, b_);
  EXPECT_EQ(rm_->locks_held(), 2u);
  ASSERT_OK(Rollback(a_));
  ASSERT_OK(Rollback(b_));
  EXPECT_EQ(Accounts(), before);
  EXPECT_EQ(rm_->locks_held(), 0u);
  EXPECT_TRUE(Open().empty());
}

TEST_F(SqliteResourceTest, RollbackOfUnknownTxidLeavesATombstone) {
  ASSERT_OK(Rollback(a_));
  ExecuteResult r = Execute(a_, {Add(1, 1)});
  EXPECT_EQ(r.status.code(), Status::kAborted);
  EXPECT_THAT(r.status.message(), HasSubstr("branch 1.1 is already aborted"));
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Prepare(a_).code(), Status::kAborted);
  EXPECT_EQ(ExecuteAndPrepare(a_, {Add(1, 1)}).status.code(), Status::kAborted);
  EXPECT_EQ(Commit(a_).code(), Status::kAborted);
  EXPECT_OK(Rollback(a_));
  EXPECT_TRUE(Open().empty());  // a tombstone is final
  EXPECT_EQ(Execute(a_, {Add(1, 1)}).status.code(), Status::kAborted);
}

TEST_F(SqliteResourceTest, FinishedAndUnknownBranchesAnswerClearly) {
  EXPECT_EQ(Commit(a_).code(), Status::kNotFound);
  EXPECT_EQ(Prepare(a_).code(), Status::kNotFound);
  ASSERT_OK(Execute(a_, {Add(1, 1)}).status);
  ASSERT_OK(Commit(a_));
  ExecuteResult r = Execute(a_, {Add(1, 1)});
  EXPECT_EQ(r.status.code(), Status::kInvalidArgument);
  EXPECT_THAT(r.status.message(), HasSubstr("already committed"));
  EXPECT_EQ(Rollback(a_).code(), Status::kInvalidArgument);
  EXPECT_EQ(Balance(1), 101);
}

TEST_F(SqliteResourceTest, ExecuteAndPrepareIsOneDurableStep) {
  uint64_t syncs = rm_->syncs();
  ExecuteResult r = ExecuteAndPrepare(a_, {Add(1, -10), Add(2, 10)});
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.wrote);
  EXPECT_EQ(rm_->syncs(), syncs + 1);
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].state, BranchState::kPrepared);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(1), 90);
}

// A one-shot keeps its one change set in its own txc_branches row (no
// txc_changes row): a restart recovers its lock keys from there, a rollback
// its undo, and its end drops the change set from the row.
TEST_F(SqliteResourceTest, OneShotKeepsItsChangeSetInItsBranchRow) {
  const auto before = Accounts();
  ASSERT_OK(ExecuteAndPrepare(a_, {Add(1, -10), Sql("INSERT INTO kv VALUES('x', 1, 'v')")},
                              TwoParticipants())
                .status);
  ASSERT_OK(ExecuteAndPrepare(b_, {Add(2, -10)}).status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE redo IS NOT NULL AND undo IS NOT "
                  "NULL AND keys IS NOT NULL"),
            2);
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 2u);
  EXPECT_EQ(recovered[0].state, BranchState::kPrepared);
  EXPECT_EQ(recovered[0].info.participants, TwoParticipants().participants);
  EXPECT_EQ(rm_->locks_held(), 3u);  // accounts 1 and 2, kv ('x', 1)
  const TxId c = MakeTxId(1, 3);
  ExecuteResult r = Execute(c, {Add(1, 1)});
  EXPECT_EQ(r.status.code(), Status::kConflict);
  EXPECT_EQ(r.holder, a_);
  ASSERT_OK(Rollback(c));

  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv"), 0);
  EXPECT_EQ(Count("SELECT redo IS NULL AND undo IS NULL AND keys IS NULL FROM txc_branches "
                  "WHERE txid = '1.1'"),
            1);
  ASSERT_OK(Commit(b_));
  EXPECT_EQ(Count("SELECT redo IS NULL AND undo IS NULL AND keys IS NULL AND changed = 1 "
                  "FROM txc_branches WHERE txid = '1.2'"),
            1);
  EXPECT_EQ(Rollback(b_).code(), Status::kInvalidArgument);  // it changed rows: committed here
  EXPECT_EQ(rm_->locks_held(), 0u);
  auto after = before;
  after[2] = 90;
  EXPECT_EQ(Accounts(), after);
  EXPECT_TRUE(Open().empty());
  EXPECT_EQ(rm_->locks_held(), 0u);
}

// An interactive branch keeps its first Execute's change set in its own row
// (seq 1) and each later one in txc_changes (seq 2, 3...): a rollback undoes
// them newest first, a restart recovers the locks of both, and its commit
// drops both. A branch whose first Execute changed nothing has its first
// change set in txc_changes, at seq 1 (as logs of older versions have them).
TEST_F(SqliteResourceTest, AnInteractiveBranchKeepsItsFirstChangeSetInItsRow) {
  const auto before = Accounts();
  ASSERT_OK(Execute(a_, {Add(1, -10)}).status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE txid = '1.1' AND redo IS NOT NULL"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes"), 0);
  ASSERT_OK(Execute(a_, {Add(2, 10)}).status);
  ASSERT_OK(Execute(a_, {Add(1, -5)}).status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes WHERE txid = '1.1'"), 2);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes WHERE txid = '1.1' AND seq IN (2, 3)"), 2);

  ASSERT_OK(Execute(b_, {Sql("SELECT 1")}).status);  // changed nothing: no change set in the row
  ASSERT_OK(Execute(b_, {Add(3, 1)}).status);
  EXPECT_EQ(Count("SELECT seq FROM txc_changes WHERE txid = '1.2'"), 1);
  ASSERT_OK(Execute(b_, {Add(4, 1)}).status);

  auto recovered = Open();  // a restart: both ACTIVE, every lock back
  ASSERT_EQ(recovered.size(), 2u);
  EXPECT_EQ(rm_->locks_held(), 4u);  // accounts 1, 2 (a) and 3, 4 (b)
  const TxId c = MakeTxId(1, 3);
  EXPECT_EQ(Execute(c, {Add(1, 1)}).status.code(), Status::kConflict);  // the row's change set
  EXPECT_EQ(Execute(c, {Add(2, 1)}).status.code(), Status::kConflict);  // a later one
  ASSERT_OK(Rollback(c));

  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Accounts().at(1), 100);
  EXPECT_EQ(Accounts().at(2), 100);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes WHERE txid = '1.1'"), 0);
  EXPECT_EQ(Count("SELECT redo IS NULL FROM txc_branches WHERE txid = '1.1'"), 1);

  ASSERT_OK(Prepare(b_));
  ASSERT_OK(Commit(b_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes"), 0);
  EXPECT_EQ(Count("SELECT changed FROM txc_branches WHERE txid = '1.2'"), 1);
  EXPECT_EQ(Rollback(b_).code(), Status::kInvalidArgument);  // it changed rows

  const TxId d = MakeTxId(1, 4);  // one writing Execute, all in the row: the one-UPDATE commit
  ASSERT_OK(Execute(d, {Add(5, -1)}).status);
  ASSERT_OK(Prepare(d));
  ASSERT_OK(Commit(d));
  EXPECT_EQ(Count("SELECT state = 4 AND changed = 1 AND redo IS NULL AND undo IS NULL AND keys "
                  "IS NULL FROM txc_branches WHERE txid = '1.4'"),
            1);
  EXPECT_EQ(rm_->locks_held(), 0u);
  auto after = before;
  after[3] = 101;
  after[4] = 101;
  after[5] = 99;
  EXPECT_EQ(Accounts(), after);
  EXPECT_TRUE(Open().empty());
}

// A one-shot that changed nothing keeps no change set: its commit records it
// as read-only, and a rollback after that is a no-op.
TEST_F(SqliteResourceTest, ReadOnlyOneShotCommitsAsUnchanged) {
  ASSERT_OK(ExecuteAndPrepare(a_, {Sql("SELECT balance FROM accounts WHERE id = 1")}).status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE redo IS NULL"), 1);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Count("SELECT changed FROM txc_branches WHERE txid = '1.1'"), 0);
  EXPECT_OK(Rollback(a_));
}

TEST_F(SqliteResourceTest, FailedExecuteAndPrepareLeavesNoBranch) {
  ExecuteResult r = ExecuteAndPrepare(a_, {Add(1, -10), Add(424242, 10)});
  EXPECT_EQ(r.status.code(), Status::kExpectationFailed);
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches"), 0);
  EXPECT_EQ(rm_->locks_held(), 0u);
  // The agent then rolls it back: a tombstone.
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Count("SELECT state FROM txc_branches WHERE txid = '1.1'"),
            static_cast<int>(BranchState::kAborted));
}

TEST_F(SqliteResourceTest, UndoOverwritesARowChangedBehindTxcoordsBack) {
  ASSERT_OK(Execute(a_, {Add(1, -10), Sql("INSERT INTO accounts VALUES(9999, 1)")}).status);
  ASSERT_OK(reader_->Exec("UPDATE accounts SET balance = 5 WHERE id = 1; "
                          "DELETE FROM accounts WHERE id = 9999"));
  ASSERT_OK(Rollback(a_));  // logs the conflicts, restores the before-image
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Balance(9999), std::nullopt);
}

// SQLite's changeset_apply skips, and reports success for, a table whose
// primary key changed: the rollback must refuse instead of ending with the
// branch's rows in place.
TEST_F(SqliteResourceTest, RollbackRefusesATableRebuiltWithAnotherPrimaryKey) {
  ASSERT_OK(Execute(a_, {Add(1, -10)}).status);
  const char* rebuild =
      "CREATE TABLE t2(id INTEGER NOT NULL, balance INTEGER NOT NULL, PRIMARY KEY(balance, id));"
      "INSERT INTO t2 SELECT id, balance FROM accounts; DROP TABLE accounts;"
      "ALTER TABLE t2 RENAME TO accounts;";
  ASSERT_OK(reader_->Exec(rebuild));
  Status s = Rollback(a_);
  EXPECT_EQ(s.code(), Status::kConflict) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("table accounts no longer has the columns and PRIMARY KEY"));
  EXPECT_EQ(Balance(1), 90);  // nothing undone
  EXPECT_GT(rm_->locks_held(), 0u);
  // Given its shape back, the table is rolled back.
  ASSERT_OK(reader_->Exec(
      "CREATE TABLE t2(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
      "INSERT INTO t2 SELECT id, balance FROM accounts; DROP TABLE accounts;"
      "ALTER TABLE t2 RENAME TO accounts;"));
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(rm_->locks_held(), 0u);
}

TEST_F(SqliteResourceTest, ConcurrentExecuteAndPrepareAreGroupCommitted) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<ExecuteResult>> pending;
      std::vector<std::shared_ptr<std::promise<ExecuteResult>>> promises;
      for (int i = 0; i < kPerThread; ++i) {
        int64_t seq = t * kPerThread + i + 1;
        int64_t id = seq;  // a distinct row per transaction
        auto p = std::make_shared<std::promise<ExecuteResult>>();
        pending.push_back(p->get_future());
        rm_->ExecuteAndPrepare(MakeTxId(2, seq), {Add(id, -1)}, {},
                               [p](ExecuteResult r) { p->set_value(std::move(r)); });
      }
      for (auto& f : pending) {
        ExecuteResult r = Wait(std::move(f));
        if (!r.status.ok()) failures++;
      }
      std::vector<std::future<Status>> commits;
      for (int i = 0; i < kPerThread; ++i) {
        auto p = std::make_shared<std::promise<Status>>();
        commits.push_back(p->get_future());
        rm_->Commit(MakeTxId(2, t * kPerThread + i + 1), [p](Status s) { p->set_value(s); });
      }
      for (auto& f : commits) {
        if (!Wait(std::move(f)).ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t ops = 2 * kThreads * kPerThread;
  EXPECT_LT(rm_->syncs(), ops);
  std::printf("[ info     ] %llu durable ops in %llu syncs (%llu groups)\n",
              static_cast<unsigned long long>(ops),
              static_cast<unsigned long long>(rm_->syncs()),
              static_cast<unsigned long long>(rm_->groups_committed()));
  EXPECT_EQ(Count("SELECT SUM(balance) FROM accounts"), 100 * kAccounts - kThreads * kPerThread);
  EXPECT_EQ(rm_->locks_held(), 0u);
}

TEST_F(SqliteResourceTest, StorageFailureIsStickyAndUndoesTheGroupsLocks) {
  ASSERT_OK(Execute(a_, {Add(1, -10)}).status);
  rm_->InjectFailureForTest();
  ExecuteResult r = ExecuteAndPrepare(b_, {Add(2, 10)});
  EXPECT_EQ(r.status.code(), Status::kStorageFailed);
  EXPECT_EQ(rm_->locks_held(), 1u);  // a's lock only: b's lock went with its group
  EXPECT_EQ(Execute(MakeTxId(1, 3), {Sql("SELECT 1")}).status.code(), Status::kStorageFailed);
  Status c = Commit(a_);
  EXPECT_EQ(c.code(), Status::kStorageFailed);
  EXPECT_THAT(c.message(), HasSubstr("refuses every operation until restarted"));
  EXPECT_EQ(Rollback(a_).code(), Status::kStorageFailed);
  EXPECT_EQ(Balance(2), 100);

  auto recovered = Open();  // a restart clears it
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].txid, a_);
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(1), 100);
}

TEST_F(SqliteResourceTest, OldFinalRowsArePurgedAndLiveOnesKept) {
  ASSERT_OK(Rollback(a_));                       // tombstone
  ASSERT_OK(Execute(b_, {Add(1, 1)}).status);    // committed
  ASSERT_OK(Commit(b_));
  const TxId c = MakeTxId(1, 3);
  ASSERT_OK(Execute(c, {Add(2, 1)}).status);     // still active
  rm_.reset();
  ASSERT_OK(reader_->Exec("UPDATE txc_branches SET updated = 0"));  // long ago
  Open();
  ASSERT_OK(Execute(MakeTxId(1, 4), {Sql("SELECT 1")}).status);  // the first group purges
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE txid IN ('1.1', '1.2')"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE txid = '1.3'"), 1);
  ASSERT_OK(Rollback(c));
  EXPECT_EQ(Balance(2), 100);
}

TEST_F(SqliteResourceTest, UnsafeNoSyncNeverSyncs) {
  SqliteResourceOptions o;
  o.unsafe_no_sync = true;
  Open(o);
  ASSERT_OK(ExecuteAndPrepare(a_, {Add(1, 1)}).status);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(rm_->syncs(), 0u);
  EXPECT_GE(rm_->groups_committed(), 2u);
}

// The simulator measures the limit on its own clock: here one that moves a
// second each time it is read, so the interruption does not depend on speed.
TEST_F(SqliteResourceTest, ExecuteLimitIsMeasuredOnTheGivenClock) {
  auto reads = std::make_shared<std::atomic<int64_t>>(0);
  SqliteResourceOptions o;
  o.max_execute_time = 3 * kSeconds;
  o.clock = [reads] { return reads->fetch_add(1) * kSeconds; };
  Open(o);
  ExecuteResult r = Execute(
      a_, {Sql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
               "WHERE i < 100000000000) SELECT COUNT(*) FROM n")});
  EXPECT_EQ(r.status.code(), Status::kTimeout) << r.status.ToString();
  EXPECT_THAT(r.status.message(), HasSubstr("limit of 3000 ms"));
  // The start, then once per check until past it; then the group's purge check.
  EXPECT_EQ(reads->load(), 5);
  ASSERT_OK(Execute(a_, {Sql("SELECT COUNT(*) FROM accounts")}).status);  // a new deadline
}

// ------------------------------------- executor, barrier and clocks

// An executor the test runs by hand, on the test's thread.
class ManualExecutor : public Executor {
 public:
  void Post(std::function<void()> task) override {
    tasks_.push_back(std::move(task));
    ++posts;
  }
  // Runs tasks, and the tasks they post, until none is left; how many ran.
  int RunAll() {
    int n = 0;
    while (!tasks_.empty()) {
      auto t = std::move(tasks_.front());
      tasks_.pop_front();
      t();
      ++n;
    }
    return n;
  }
  int posts = 0;

 private:
  std::deque<std::function<void()>> tasks_;
};

class SqliteResourceExecutorTest : public SqliteResourceTest {
 protected:
  void OpenOnExecutor(bool with_barrier, size_t max_group_ops = 512) {
    SqliteResourceOptions o;
    o.executor = &exec_;
    o.max_group_ops = max_group_ops;
    if (with_barrier) {
      o.durability_barrier = [this](std::function<void()> deliver) {
        barriers_.push_back(std::move(deliver));
      };
    }
    Open(o);
  }
  // Queues an operation whose callback appends `what` (and its status) to `got_`.
  void Exec(const TxId& t, std::vector<proto::Statement> stmts, std::string what) {
    rm_->Execute(t, std::move(stmts), [this, what](ExecuteResult r) {
      got_.push_back(what + (r.status.ok() ? "" : " " + r.status.ToString()));
    });
  }
  ResourceManager::Callback<Status> Note(std::string what) {
    return [this, what](Status s) { got_.push_back(what + (s.ok() ? "" : " " + s.ToString())); };
  }
  int64_t State(const std::string& txid) {
    return Count("SELECT COALESCE((SELECT state FROM txc_branches WHERE txid = '" + txid +
                 "'), 0)");
  }
  ManualExecutor exec_;
  std::vector<std::function<void()>> barriers_;
  std::vector<std::string> got_;
};

TEST_F(SqliteResourceExecutorTest, GroupsRunAsExecutorTasksNeverInsideTheCall) {
  OpenOnExecutor(false);
  const auto me = std::this_thread::get_id();
  Exec(a_, {Add(1, -30)}, "exec a");
  rm_->Execute(b_, {Add(2, 30)}, [&](ExecuteResult r) {
    EXPECT_OK(r.status);
    EXPECT_EQ(std::this_thread::get_id(), me);  // in the executor's task, no thread of its own
    got_.push_back("exec b");
  });
  EXPECT_TRUE(got_.empty());  // nothing ran inside the calls
  EXPECT_EQ(exec_.posts, 1);  // one drain task for both
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(exec_.RunAll(), 1);
  EXPECT_EQ(got_, (std::vector<std::string>{"exec a", "exec b"}));
  EXPECT_EQ(rm_->groups_committed(), 1u);  // one group commit for both
  EXPECT_EQ(Balance(1), 70);

  // An operation queued by a callback runs in a later task, not inside it.
  rm_->Prepare(a_, {}, [&](Status s) {
    EXPECT_OK(s);
    got_.push_back("prepare a");
    rm_->Commit(a_, Note("commit a"));
    EXPECT_EQ(got_.back(), "prepare a");
  });
  // The Prepare's group, the Commit's (written, not synced), then the sync
  // of the WAL for the Commit's deferred callback.
  EXPECT_EQ(exec_.RunAll(), 3);
  EXPECT_EQ(got_.back(), "commit a");
  EXPECT_EQ(State("1.1"), static_cast<int>(BranchState::kCommitted));
}

// defer_commit_sync: a Commit's group is written without a sync and its
// callback waits for the next sync: a later group's (which delivers it
// first), or the WAL's own when nothing else came.
TEST_F(SqliteResourceExecutorTest, ACommitsCallbackWaitsForTheNextSync) {
  OpenOnExecutor(true);
  rm_->ExecuteAndPrepare(a_, {Add(1, -30)}, {}, [&](ExecuteResult r) {
    EXPECT_OK(r.status);
    got_.push_back("one-shot a");
  });
  exec_.RunAll();
  ASSERT_EQ(barriers_.size(), 1u);
  barriers_[0]();
  uint64_t syncs = rm_->syncs();

  // Commit a, and before its group runs, a one-shot b: b's synced group
  // covers a's COMMIT, which is delivered first.
  rm_->Commit(a_, Note("commit a"));
  rm_->ExecuteAndPrepare(b_, {Add(2, 30)}, {}, [&](ExecuteResult r) {
    EXPECT_OK(r.status);
    got_.push_back("one-shot b");
  });
  exec_.RunAll();
  EXPECT_EQ(rm_->syncs(), syncs + 1);  // one sync for both
  ASSERT_EQ(barriers_.size(), 2u);
  EXPECT_EQ(got_.back(), "one-shot a");
  barriers_[1]();
  EXPECT_EQ(got_, (std::vector<std::string>{"one-shot a", "commit a", "one-shot b"}));

  // Commit b alone: its group is written (the row is committed, the lock
  // free), but the callback waits for the WAL's sync and its barrier.
  rm_->Commit(b_, Note("commit b"));
  EXPECT_EQ(exec_.RunAll(), 2);  // the Commit's group, then the sync
  EXPECT_EQ(State("1.2"), static_cast<int>(BranchState::kCommitted));
  EXPECT_EQ(rm_->syncs(), syncs + 2);
  ASSERT_EQ(barriers_.size(), 3u);
  EXPECT_EQ(got_.back(), "one-shot b");  // not yet
  barriers_[2]();
  EXPECT_EQ(got_.back(), "commit b");
}

// The deferred sync fails: the held Commit hears a storage failure (its
// record may never reach the disk), and the resource refuses everything.
TEST_F(SqliteResourceExecutorTest, AFailedDeferredSyncFailsTheCommitAndSticks) {
  OpenOnExecutor(false);
  rm_->ExecuteAndPrepare(a_, {Add(1, -30)}, {}, [&](ExecuteResult r) { EXPECT_OK(r.status); });
  exec_.RunAll();
  rm_->InjectFailureForTest();
  rm_->Commit(a_, Note("commit a"));
  exec_.RunAll();
  ASSERT_EQ(got_.size(), 1u);
  EXPECT_THAT(got_[0], HasSubstr("could not be made durable"));
  EXPECT_THAT(got_[0], HasSubstr("injected failure"));
  EXPECT_EQ(got_[0].find("bank_a:"), got_[0].rfind("bank_a:"));  // the resource named once
  Exec(b_, {Add(2, 1)}, "exec b");
  exec_.RunAll();
  EXPECT_THAT(got_.back(), HasSubstr("refuses every operation until restarted"));
}

TEST_F(SqliteResourceExecutorTest, OneDrainTakesAtMostMaxGroupOps) {
  OpenOnExecutor(false, /*max_group_ops=*/2);
  for (int i = 1; i <= 5; ++i) Exec(MakeTxId(1, i), {Add(i, 1)}, "exec " + std::to_string(i));
  EXPECT_EQ(exec_.posts, 1);
  EXPECT_EQ(exec_.RunAll(), 3);  // 2 + 2 + 1, each drain posting the next
  EXPECT_EQ(rm_->groups_committed(), 3u);
  EXPECT_EQ(got_.size(), 5u);
  EXPECT_EQ(got_.back(), "exec 5");
}

// A group that must be durable delivers its callbacks only once the barrier
// lets it, and no later group starts meanwhile (as a worker held in fsync).
TEST_F(SqliteResourceExecutorTest, DurableGroupsDeliverOnlyPastTheBarrier) {
  OpenOnExecutor(true);
  Exec(a_, {Add(1, -30)}, "exec a");
  exec_.RunAll();
  EXPECT_TRUE(barriers_.empty());  // an ACTIVE branch need not be durable
  ASSERT_EQ(got_, (std::vector<std::string>{"exec a"}));

  rm_->Prepare(a_, {}, Note("prepare a"));
  exec_.RunAll();
  ASSERT_EQ(barriers_.size(), 1u);
  EXPECT_EQ(got_.size(), 1u);  // no vote yet
  EXPECT_EQ(State("1.1"), static_cast<int>(BranchState::kPrepared));  // committed locally
  Exec(b_, {Add(2, 5)}, "exec b");
  EXPECT_EQ(exec_.RunAll(), 0);  // waits behind the barrier
  EXPECT_EQ(Balance(2), 100);
  barriers_[0]();
  EXPECT_EQ(got_.back(), "prepare a");
  EXPECT_EQ(exec_.RunAll(), 1);
  EXPECT_EQ(got_.back(), "exec b");
  barriers_[0]();  // a second call changes nothing
  EXPECT_EQ(got_.size(), 3u);

  // Commit and ExecuteAndPrepare pass it too; Rollback (presumed abort) does not.
  rm_->Commit(a_, Note("commit a"));
  exec_.RunAll();
  ASSERT_EQ(barriers_.size(), 2u);
  EXPECT_EQ(got_.back(), "exec b");
  barriers_[1]();
  EXPECT_EQ(got_.back(), "commit a");
  const TxId c = MakeTxId(1, 3);
  rm_->ExecuteAndPrepare(c, {Add(3, 1)}, {}, [&](ExecuteResult r) {
    EXPECT_OK(r.status);
    got_.push_back("one-shot c");
  });
  exec_.RunAll();
  ASSERT_EQ(barriers_.size(), 3u);
  EXPECT_EQ(got_.back(), "commit a");
  barriers_[2]();
  EXPECT_EQ(got_.back(), "one-shot c");
  rm_->Rollback(b_, Note("rollback b"));
  exec_.RunAll();
  EXPECT_EQ(barriers_.size(), 3u);
  EXPECT_EQ(got_.back(), "rollback b");
  EXPECT_EQ(Balance(2), 100);
}

// A destroyed resource (a crashed simulated node) runs nothing further: its
// queued operations and callbacks held at the barrier are dropped.
TEST_F(SqliteResourceExecutorTest, DestroyingDropsQueuedOperations) {
  OpenOnExecutor(true);
  Exec(a_, {Add(1, -30)}, "exec a");
  exec_.RunAll();
  rm_->Prepare(a_, {}, Note("prepare a"));
  exec_.RunAll();
  ASSERT_EQ(barriers_.size(), 1u);
  Exec(b_, {Add(2, 5)}, "exec b");  // queued behind the barrier
  rm_.reset();
  barriers_[0]();  // the sync completes after the crash
  EXPECT_EQ(exec_.RunAll(), 0);
  EXPECT_EQ(got_, (std::vector<std::string>{"exec a"}));

  OpenOnExecutor(true);
  Exec(b_, {Add(2, 5)}, "exec b");
  rm_.reset();  // before its drain task runs
  EXPECT_EQ(exec_.RunAll(), 1);
  EXPECT_EQ(got_, (std::vector<std::string>{"exec a"}));

  // The PREPARED record was committed on this (real) disk before the crash;
  // b never ran.
  std::vector<RecoveredBranch> rec = Open();
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].txid, a_);
  EXPECT_EQ(rec[0].state, BranchState::kPrepared);
  EXPECT_EQ(Balance(2), 100);
}

// With the worker thread, a barrier holds the thread until it calls back.
TEST_F(SqliteResourceTest, WorkerThreadWaitsForTheBarrier) {
  std::promise<std::function<void()>> barrier;
  SqliteResourceOptions o;
  o.durability_barrier = [&barrier](std::function<void()> deliver) {
    barrier.set_value(std::move(deliver));
  };
  Open(o);
  ASSERT_OK(Execute(a_, {Add(1, -30)}).status);
  std::promise<Status> voted;
  auto vote = voted.get_future();
  rm_->Prepare(a_, {}, [&voted](Status s) { voted.set_value(s); });
  std::function<void()> deliver = Wait(barrier.get_future());
  // Called after the local COMMIT, before the callback.
  EXPECT_EQ(Count("SELECT state FROM txc_branches WHERE txid = '1.1'"),
            static_cast<int>(BranchState::kPrepared));
  EXPECT_EQ(vote.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  deliver();
  ASSERT_OK(Wait(std::move(vote)));
}

// Every clock comes from the options: the `updated` column is the given wall
// clock, and final rows are purged when the given steady clock says the purge
// interval (30 s) has passed and the wall clock that they are older than the
// retention (10 min).
TEST_F(SqliteResourceTest, ClocksComeFromTheOptions) {
  auto steady = std::make_shared<std::atomic<int64_t>>(5 * kSeconds);
  const Micros t0 = 1'700'000'000'000'000;  // 2023-11-14, microseconds
  auto wall = std::make_shared<std::atomic<int64_t>>(t0);
  SqliteResourceOptions o;
  o.clock = [steady] { return steady->load(); };
  o.wall_clock = [wall] { return wall->load(); };
  Open(o);
  ASSERT_OK(Execute(a_, {Add(1, -1)}).status);  // the first group purges (nothing yet)
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Count("SELECT updated FROM txc_branches WHERE txid = '1.1'"), t0 / kMillis);

  wall->store(t0 + 11 * 60 * kSeconds);  // old enough to purge
  ASSERT_OK(Execute(b_, {Add(2, 1)}).status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE txid = '1.1'"), 1);  // not yet due
  steady->store(5 * kSeconds + 30 * kSeconds);
  ASSERT_OK(Execute(b_, {Add(2, 1)}).status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE txid = '1.1'"), 0);
  EXPECT_EQ(Count("SELECT updated FROM txc_branches WHERE txid = '1.2'"),
            (t0 + 11 * 60 * kSeconds) / kMillis);
}

// The purge walks txc_branches in rowid order, a window of 10,000 rows per
// group while windows come back full, skipping live rows and stopping at the
// first final row still within the retention; the old rows behind that one
// wait for a later purge, which starts over from the first row.
TEST_F(SqliteResourceTest, PurgeWalksTheTableInWindowsPastLiveRows) {
  auto steady = std::make_shared<std::atomic<int64_t>>(0);
  const Micros t0 = 1'700'000'000'000'000;
  auto wall = std::make_shared<std::atomic<int64_t>>(t0);
  SqliteResourceOptions o;
  o.clock = [steady] { return steady->load(); };
  o.wall_clock = [wall] { return wall->load(); };
  ASSERT_OK(Execute(a_, {Add(1, -1)}).status);  // live: the first row
  rm_.reset();
  const int64_t recent = t0 / kMillis;
  ASSERT_OK(reader_->Exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000) "
      "INSERT INTO txc_branches(txid, epoch, seq, state, updated) "
      "SELECT '9.' || i, 9, i, 4 + i % 2, 0 FROM n;"  // old, committed and aborted
      "INSERT INTO txc_branches(txid, epoch, seq, state, updated) VALUES('9.25001', 9, 25001, 4, " +
      std::to_string(recent) + "), ('9.25002', 9, 25002, 4, 0);"));
  auto old_rows = [this] {
    return Count("SELECT COUNT(*) FROM txc_branches WHERE txid LIKE '9.%' AND updated = 0");
  };
  Open(o);
  int64_t seq = 100;
  auto group = [&] { ASSERT_OK(Execute(MakeTxId(2, ++seq), {Sql("SELECT 1")}).status); };
  group();  // rowids 1-10,000: the live row and 9,999 old ones
  EXPECT_EQ(old_rows(), 25001 - 9999);
  group();  // the next window, at once
  EXPECT_EQ(old_rows(), 25001 - 19999);
  group();  // up to the recent row
  EXPECT_EQ(old_rows(), 1);
  group();  // caught up: the next purge is 30 s later
  EXPECT_EQ(old_rows(), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE txid IN ('1.1', '9.25001')"), 2);

  steady->store(30 * kSeconds);
  wall->store(t0 + 11 * 60 * kSeconds);  // the recent row is old too now
  group();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_branches WHERE txid LIKE '9.%'"), 0);
  EXPECT_EQ(Count("SELECT state FROM txc_branches WHERE txid = '1.1'"), 1);  // still ACTIVE
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(1), 100);
}

// Logs of older versions indexed every branch row by (state, updated); the
// first open drops that index for one over the live rows only, which
// recovery uses.
TEST_F(SqliteResourceTest, TheOldStateIndexGivesWayToOneOverLiveRows) {
  ASSERT_OK(ExecuteAndPrepare(a_, {Add(1, -1)}).status);
  ASSERT_OK(ExecuteAndPrepare(b_, {Add(2, 1)}).status);
  ASSERT_OK(Commit(b_));
  rm_.reset();
  ASSERT_OK(reader_->Exec("DROP INDEX txc_branches_live;"
                          "CREATE INDEX txc_branches_by_state ON txc_branches(state, updated);"));
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].txid, a_);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'txc_branches_by_state'"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'txc_branches_live'"), 1);
  auto plan = reader_->Prepare(
      "EXPLAIN QUERY PLAN SELECT txid FROM txc_branches WHERE state < 4 ORDER BY epoch, seq");
  ASSERT_TRUE(plan.ok());
  std::string details;
  for (;;) {
    auto row = (*plan)->Step();
    ASSERT_TRUE(row.ok());
    if (!*row) break;
    details += (*plan)->ColumnText(3) + "\n";
  }
  EXPECT_THAT(details, HasSubstr("USING INDEX txc_branches_live"));
  ASSERT_OK(Commit(a_));
  EXPECT_TRUE(Open().empty());
}

// The branch log's layout is stamped; a log that a newer version laid out
// is refused while a branch in it is live (this version could recover it
// without its undo or its locks), and used, restamped, once none is.
TEST_F(SqliteResourceTest, ALogOfANewerLayoutIsRefusedWhileABranchInItIsLive) {
  const std::string stamp = "SELECT value FROM txc_meta WHERE key = 'branch_log_layout'";
  EXPECT_EQ(Count(stamp), internal::BranchLog::kBranchLogLayout);
  ASSERT_OK(ExecuteAndPrepare(a_, {Add(1, -1)}).status);
  rm_.reset();
  const std::string newer = std::to_string(internal::BranchLog::kBranchLogLayout + 1);
  ASSERT_OK(reader_->Exec("UPDATE txc_meta SET value = " + newer +
                          " WHERE key = 'branch_log_layout'"));
  auto refused = SqliteResource::Open("bank_a", path_, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::kInvalidArgument);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("the branch log was laid out by a newer version (branch_log_layout " + newer));
  EXPECT_THAT(refused.status().message(), HasSubstr("1 branch(es) that have not ended"));
  EXPECT_EQ(Count(stamp), internal::BranchLog::kBranchLogLayout + 1);  // nothing written
  EXPECT_EQ(Balance(1), 99);  // the branch's change is still there, undo kept
  // Once the newer version has ended it (here: by hand, as it would have),
  // this one opens the log and stamps its own layout.
  ASSERT_OK(reader_->Exec("UPDATE txc_meta SET value = " +
                          std::to_string(internal::BranchLog::kBranchLogLayout) +
                          " WHERE key = 'branch_log_layout'"));
  ASSERT_EQ(Open().size(), 1u);
  ASSERT_OK(Commit(a_));
  rm_.reset();
  ASSERT_OK(reader_->Exec("UPDATE txc_meta SET value = " + newer +
                          " WHERE key = 'branch_log_layout'"));
  EXPECT_TRUE(Open().empty());
  EXPECT_EQ(Count(stamp), internal::BranchLog::kBranchLogLayout);
  EXPECT_EQ(Balance(1), 99);
}

// A stamp that is not a number would read as 0 ("unstamped") and let a
// newer log through: refused, and left as it is.
TEST_F(SqliteResourceTest, ALayoutStampThatIsNotANumberIsRefused) {
  ASSERT_OK(ExecuteAndPrepare(a_, {Add(1, -1)}).status);
  rm_.reset();
  ASSERT_OK(reader_->Exec(
      "UPDATE txc_meta SET value = 'three' WHERE key = 'branch_log_layout'"));
  auto refused = SqliteResource::Open("bank_a", path_, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("not a layout number"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_meta WHERE value = 'three'"), 1);
  EXPECT_EQ(Balance(1), 99);
}

// A log from before the stamp (no txc_meta) is this layout's or older:
// opened as before, and stamped.
TEST_F(SqliteResourceTest, ALogFromBeforeTheStampIsStampedOnOpen) {
  ASSERT_OK(ExecuteAndPrepare(a_, {Add(1, -1)}).status);
  rm_.reset();
  ASSERT_OK(reader_->Exec("DROP TABLE txc_meta"));
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(Count("SELECT value FROM txc_meta WHERE key = 'branch_log_layout'"),
            internal::BranchLog::kBranchLogLayout);
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(1), 100);
}

// ------------------------------------------- key locks and exact undo

class SqliteResourceKeyTest : public SqliteResourceTest {
 protected:
  void SetUp() override {
    SqliteResourceTest::SetUp();
    ASSERT_OK(reader_->Exec(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE);"
        "CREATE TABLE slots(id INTEGER PRIMARY KEY, day TEXT, room INTEGER, who TEXT,"
        "                   UNIQUE(room, day));"
        "CREATE TABLE parent(id INTEGER PRIMARY KEY, code TEXT UNIQUE);"
        "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));"
        "CREATE TABLE tagged(id INTEGER PRIMARY KEY, code TEXT REFERENCES Parent(CODE));"
        "INSERT INTO users VALUES(1, 'x');"
        "INSERT INTO slots VALUES(1, 'mon', 1, 'ann');"
        "INSERT INTO parent VALUES(1, 'c1'), (2, 'c2');"
        "INSERT INTO child VALUES(10, 1);"
        "INSERT INTO tagged VALUES(20, 'c2');"));
  }
  std::optional<std::string> Email(int64_t id) {
    auto q = reader_->Prepare("SELECT email FROM users WHERE id = ?1");
    EXPECT_TRUE(q.ok());
    EXPECT_TRUE((*q)->BindInt(1, id).ok());
    auto row = (*q)->Step();
    EXPECT_TRUE(row.ok()) << row.status().ToString();
    if (!row.ok() || !*row) return std::nullopt;
    return (*q)->ColumnText(0);
  }
};

// Issue 8, 4b: B took the unique value A had freed and committed, so A's undo
// could not re-insert its row and silently skipped it.
TEST_F(SqliteResourceKeyTest, UniqueValueFreedByAnOpenBranchIsLockedSoItsUndoRestoresTheRow) {
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM users WHERE id = 1", {}, 1)}).status);
  ExecuteResult r = Execute(b_, {Sql("INSERT INTO users VALUES(2, 'x')")});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  ASSERT_TRUE(r.holder.has_value());
  EXPECT_EQ(*r.holder, a_);
  EXPECT_EQ(r.conflict, "bank_a.users email='x'");
  EXPECT_EQ(Email(2), std::nullopt);  // nothing of B applied
  // The key locks are part of the branch's log: a restart re-takes them.
  Open();
  r = Execute(b_, {Sql("INSERT INTO users VALUES(2, 'x')")});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  EXPECT_EQ(r.conflict, "bank_a.users email='x'");

  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Email(1), "x");
  EXPECT_EQ(rm_->locks_held(), 0u);
  // Now the value is taken again, and SQLite itself refuses B.
  r = Execute(b_, {Sql("INSERT INTO users VALUES(2, 'x')")});
  EXPECT_EQ(r.status.code(), Status::kSqlError);
  EXPECT_THAT(r.status.message(), HasSubstr("UNIQUE"));
}

// The simulator's injected bug skip-undo-on-conflict is the case above
// before the fix: with test_only_skip_undo_on_conflict B takes the freed
// value and commits, and A's rollback reports success having lost row 1.
TEST_F(SqliteResourceKeyTest, SkipUndoOnConflictOptionLosesTheRowItsBranchDeleted) {
  SqliteResourceOptions o;
  o.test_only_skip_undo_on_conflict = true;
  Open(o);
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM users WHERE id = 1", {}, 1)}).status);
  EXPECT_EQ(rm_->locks_held(), 1u);  // the row only, not email='x'
  ASSERT_OK(Execute(b_, {Sql("INSERT INTO users VALUES(2, 'x')")}).status);
  ASSERT_OK(Commit(b_));
  ASSERT_OK(Rollback(a_));  // "succeeds"
  EXPECT_EQ(Email(1), std::nullopt) << "the undo skipped the row it could not restore";
  EXPECT_EQ(Email(2), "x");
  EXPECT_EQ(Count("SELECT COUNT(*) FROM users"), 1);
  EXPECT_EQ(rm_->locks_held(), 0u);

  // Without the option, the same steps: the writer is refused and the row restored.
  Open();
  const TxId a2 = MakeTxId(1, 3), b2 = MakeTxId(1, 4);
  ASSERT_OK(Execute(a2, {Sql("DELETE FROM users WHERE id = 2", {}, 1)}).status);
  ExecuteResult r = Execute(b2, {Sql("INSERT INTO users VALUES(4, 'x')")});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  ASSERT_OK(Rollback(a2));
  EXPECT_EQ(Email(2), "x");
}

TEST_F(SqliteResourceKeyTest, UpdateLocksTheOldAndNewUniqueValuesOnlyWhenTheKeyChanges) {
  ASSERT_OK(Execute(a_, {Sql("UPDATE slots SET who = 'bob' WHERE id = 1", {}, 1)}).status);
  EXPECT_EQ(rm_->locks_held(), 1u);  // the row only: its unique key did not change
  // Half of the composite key changes: the unchanged half is read from the row.
  ASSERT_OK(Execute(a_, {Sql("UPDATE slots SET room = 2 WHERE id = 1", {}, 1)}).status);
  EXPECT_EQ(rm_->locks_held(), 3u);  // the row, (1,'mon') and (2,'mon')
  ExecuteResult r = Execute(b_, {Sql("INSERT INTO slots VALUES(5, 'mon', 1, 'cy')")});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  EXPECT_EQ(r.conflict, "bank_a.slots day='mon',room=1");
  ASSERT_OK(Execute(b_, {Sql("INSERT INTO slots VALUES(6, 'tue', 1, 'cy')")}).status);
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM slots WHERE id = 1 AND room = 1 AND who = 'ann'"), 1);
  ASSERT_OK(Commit(b_));
}

TEST_F(SqliteResourceKeyTest, UniqueKeysCompareAsTheirCollationDoes) {
  ASSERT_OK(reader_->Exec(
      "CREATE TABLE logins(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE);"
      "CREATE TABLE visits(id INTEGER PRIMARY KEY, who TEXT REFERENCES logins(name));"
      "INSERT INTO logins VALUES(1, 'Ann'), (2, 'Bob');"
      "INSERT INTO visits VALUES(7, 'BOB');"));
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM logins WHERE id = 1", {}, 1),
                         Sql("DELETE FROM visits WHERE id = 7", {}, 1)})
                .status);
  ExecuteResult r = Execute(b_, {Sql("INSERT INTO logins VALUES(3, 'ANN')")});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  EXPECT_EQ(r.conflict, "bank_a.logins name collate nocase='ann'");
  r = Execute(b_, {Sql("UPDATE logins SET name = 'Rob' WHERE id = 2", {}, 1)});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  EXPECT_EQ(r.conflict, "bank_a.logins name collate nocase='bob'");
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM logins WHERE id = 1 AND name = 'Ann'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM visits WHERE id = 7"), 1);
}

TEST_F(SqliteResourceKeyTest, ForeignKeyParentsAreLockedByTheRowsThatReferToThem) {
  // A deletes a child: nobody may delete its parent until A ends.
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM child WHERE id = 10", {}, 1)}).status);
  ExecuteResult r = Execute(b_, {Sql("DELETE FROM parent WHERE id = 1", {}, 1)});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  EXPECT_EQ(r.conflict, "bank_a.parent id=1");
  // A inserts a parent: nobody may refer to it until A ends.
  ASSERT_OK(Execute(a_, {Sql("INSERT INTO parent VALUES(3, 'c3')")}).status);
  r = Execute(b_, {Sql("INSERT INTO child VALUES(11, 3)")});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  EXPECT_EQ(r.conflict, "bank_a.parent id=3");
  // A reference to a UNIQUE column (named in another case) locks that key.
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM tagged WHERE id = 20", {}, 1)}).status);
  r = Execute(b_, {Sql("UPDATE parent SET code = 'c9' WHERE id = 2", {}, 1)});
  EXPECT_EQ(r.status.code(), Status::kConflict) << r.status.ToString();
  EXPECT_EQ(r.conflict, "bank_a.parent code='c2'");

  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM child WHERE id = 10 AND parent_id = 1"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM tagged WHERE id = 20 AND code = 'c2'"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM parent WHERE id = 3"), 0);
  ASSERT_OK(Execute(b_, {Sql("UPDATE parent SET code = 'c1' WHERE id = 1", {}, 1)}).status);
  ASSERT_OK(Commit(b_));
}

// Issue 8, 4b: an undo that cannot restore a row must fail, apply nothing and
// keep the branch, so it can be retried once the row is fixed.
TEST_F(SqliteResourceKeyTest, UndoBlockedByAUniqueRowWrittenOutsideFailsAndSucceedsOnRetry) {
  ASSERT_OK(Execute(a_, {Add(1, -10)}).status);
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM users WHERE id = 1", {}, 1), Add(2, 10)}).status);
  const size_t locks = rm_->locks_held();
  ASSERT_OK(reader_->Exec("INSERT INTO users VALUES(2, 'x')"));  // behind txcoord's back

  Status s = Rollback(a_);
  EXPECT_EQ(s.code(), Status::kConflict) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("bank_a.users id=1"));
  EXPECT_THAT(s.message(), HasSubstr("would break the UNIQUE key users email='x', which "
                                     "bank_a.users id=2 holds"));
  // Nothing undone, the branch intact.
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(Balance(2), 110);
  EXPECT_EQ(Email(1), std::nullopt);
  EXPECT_EQ(rm_->locks_held(), locks);
  // The first Execute's change set in the branch's row, the second's in txc_changes.
  EXPECT_EQ(Count("SELECT COUNT(*) FROM txc_changes WHERE txid = '1.1'"), 1);
  EXPECT_EQ(Count("SELECT state FROM txc_branches WHERE txid = '1.1' AND redo IS NOT NULL"),
            static_cast<int>(BranchState::kActive));
  EXPECT_EQ(Rollback(a_).code(), Status::kConflict);  // still

  ASSERT_OK(reader_->Exec("DELETE FROM users WHERE id = 2"));
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Email(1), "x");
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(Balance(2), 100);
  EXPECT_EQ(rm_->locks_held(), 0u);
}

TEST_F(SqliteResourceKeyTest, UndoBlockedByAForeignKeyFailsAndSucceedsOnRetry) {
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM child WHERE id = 10", {}, 1), Add(1, -10)}).status);
  ASSERT_OK(reader_->Exec("DELETE FROM parent WHERE id = 1"));  // behind txcoord's back
  Status s = Rollback(a_);
  EXPECT_EQ(s.code(), Status::kConflict) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("FOREIGN KEY"));
  EXPECT_THAT(s.message(), HasSubstr("bank_a.child"));
  EXPECT_THAT(s.message(), HasSubstr("missing row of bank_a.parent"));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM child"), 0);
  EXPECT_EQ(Balance(1), 90);

  ASSERT_OK(reader_->Exec("INSERT INTO parent VALUES(1, 'c1')"));
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM child WHERE id = 10 AND parent_id = 1"), 1);
  EXPECT_EQ(Balance(1), 100);
}

// ON DELETE CASCADE: the branch's own cascaded deletes are in its undo (as
// indirect changes), and an undo that deletes a parent the branch inserted
// must not trip over the child its cascade already took.
TEST_F(SqliteResourceKeyTest, UndoRestoresRowsACascadeTookAndRemovesCascadingRowsItAdded) {
  ASSERT_OK(reader_->Exec(
      "CREATE TABLE owner(id INTEGER PRIMARY KEY, name TEXT);"
      "CREATE TABLE pet(id INTEGER PRIMARY KEY, owner INTEGER REFERENCES owner(id) ON DELETE CASCADE);"
      "INSERT INTO owner VALUES(3, 'ann'); INSERT INTO pet VALUES(30, 3), (31, 3);"));
  ASSERT_OK(Execute(a_, {Sql("DELETE FROM owner WHERE id = 3", {}, 1)}).status);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM pet"), 0);  // the cascade took both pets
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM owner WHERE id = 3"), 1);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM pet WHERE owner = 3"), 2);

  ASSERT_OK(Execute(b_, {Sql("INSERT INTO owner VALUES(7, 'bo')"), Sql("INSERT INTO pet VALUES(70, 7)")}).status);
  ASSERT_OK(Rollback(b_));
  EXPECT_EQ(Count("SELECT COUNT(*) FROM owner WHERE id = 7"), 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM pet WHERE id = 70"), 0);
  EXPECT_EQ(rm_->locks_held(), 0u);
}

TEST_F(SqliteResourceKeyTest, UndoOfAnUpdatedRowDeletedOutsideFails) {
  ASSERT_OK(Execute(a_, {Add(5, -10)}).status);
  ASSERT_OK(reader_->Exec("DELETE FROM accounts WHERE id = 5"));
  Status s = Rollback(a_);
  EXPECT_EQ(s.code(), Status::kConflict) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("bank_a.accounts id=5"));
  ASSERT_OK(reader_->Exec("INSERT INTO accounts VALUES(5, 0)"));
  ASSERT_OK(Rollback(a_));  // overwrites the stand-in with the before-image
  EXPECT_EQ(Balance(5), 100);
}

TEST_F(SqliteResourceTest, RollbackWhileAnotherProcessWritesIsUnavailableAndRetried) {
  SqliteResourceOptions o;
  o.busy_timeout = 50 * kMillis;
  Open(o);
  ASSERT_OK(Execute(a_, {Add(1, -10)}).status);
  ASSERT_OK(reader_->Exec("BEGIN IMMEDIATE"));  // an outside writer holds the file
  Status s = Rollback(a_);
  EXPECT_EQ(s.code(), Status::kUnavailable) << s.ToString();
  ASSERT_OK(reader_->Exec("ROLLBACK"));
  EXPECT_EQ(Balance(1), 90);
  EXPECT_EQ(rm_->locks_held(), 1u);
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Balance(1), 100);
  EXPECT_EQ(rm_->locks_held(), 0u);
}

// Issue 8, 4h: a runaway statement held the only worker, so every other
// branch's prepare and commit waited behind it.
TEST_F(SqliteResourceTest, RunawayStatementIsInterruptedAndOtherBranchesAreServed) {
  SqliteResourceOptions o;
  o.max_execute_time = 300 * kMillis;
  Open(o);
  const std::string forever =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000000) "
      "SELECT COUNT(*) FROM n";
  std::promise<ExecuteResult> slow, other;
  std::promise<Status> commit;
  rm_->Execute(a_, {Add(1, 5), Sql(forever)},
               [&slow](ExecuteResult r) { slow.set_value(std::move(r)); });
  rm_->ExecuteAndPrepare(b_, {Add(2, 1)}, {},
                         [&other](ExecuteResult r) { other.set_value(std::move(r)); });
  rm_->Commit(b_, [&commit](Status s) { commit.set_value(std::move(s)); });
  ExecuteResult r = Wait(slow.get_future());
  EXPECT_EQ(r.status.code(), Status::kTimeout) << r.status.ToString();
  EXPECT_THAT(r.status.message(), HasSubstr("statement 2 (WITH RECURSIVE"));
  EXPECT_EQ(Balance(1), 100);  // the call's first statement undone too
  ASSERT_OK(Wait(other.get_future()).status);
  ASSERT_OK(Wait(commit.get_future()));
  EXPECT_EQ(Balance(2), 101);

  // A write that runs away: what it inserted so far goes with it.
  r = Execute(a_, {Sql("INSERT INTO kv WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                       "FROM n) SELECT 'k', i, 'v' FROM n")});
  EXPECT_EQ(r.status.code(), Status::kTimeout) << r.status.ToString();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM kv"), 0);
  EXPECT_EQ(rm_->locks_held(), 0u);
  // The branch goes on.
  ASSERT_OK(Execute(a_, {Add(3, 1)}).status);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Balance(3), 101);
}

// --------------------------------------------------------- the SDK itself

class ResourceManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/resource_manager_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ResourceManagerTest, MakeResourceOpensSqliteSpec) {
  auto r = MakeResource("bank_a=sqlite:" + dir_ + "/a.db");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->name(), "bank_a");
  auto rec = (*r)->Recover();
  ASSERT_TRUE(rec.ok());
  EXPECT_TRUE(rec->empty());
}

// ?ddl=deny in the spec refuses schema changes from branches; ?ddl=allow
// (the default) keeps them.
TEST_F(ResourceManagerTest, MakeResourceTakesTheDdlOption) {
  auto ddl = [](ResourceManager& rm, const TxId& t, const std::string& sql) {
    std::promise<ExecuteResult> p;
    auto f = p.get_future();
    rm.Execute(t, {Sql(sql)}, [&p](ExecuteResult r) { p.set_value(std::move(r)); });
    return Wait(std::move(f));
  };
  auto denied = MakeResource("bank_a=sqlite:" + dir_ + "/a.db?ddl=deny");
  ASSERT_TRUE(denied.ok()) << denied.status().ToString();
  ASSERT_TRUE((*denied)->Recover().ok());
  ExecuteResult r = ddl(**denied, MakeTxId(1, 1), "CREATE TABLE t(id INTEGER PRIMARY KEY)");
  EXPECT_EQ(r.status.code(), Status::kSqlError);
  EXPECT_THAT(r.status.message(), HasSubstr("ddl=deny"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/a.db?ddl=deny"));
  auto allowed = MakeResource("bank_b=sqlite:" + dir_ + "/b.db?ddl=allow");
  ASSERT_TRUE(allowed.ok()) << allowed.status().ToString();
  ASSERT_TRUE((*allowed)->Recover().ok());
  EXPECT_OK(ddl(**allowed, MakeTxId(1, 1), "CREATE TABLE t(id INTEGER PRIMARY KEY)").status);
}

TEST_F(ResourceManagerTest, MakeResourceExplainsBadSpecs) {
  struct Case {
    std::string spec;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"bank_a", "expected NAME=KIND:PATH"},
           {"=sqlite:/tmp/x.db", "name"},
           {"bank a=sqlite:/tmp/x.db", "name"},
           {"bank_a=/tmp/x.db", "KIND:PATH"},
           {"bank_a=oracle:host=db", "unknown resource kind \"oracle\" (supported: sqlite, postgres, mariadb, queue)"},
           {"bank_a=mariadb:host=db colour=blue", "colour"},
           {"bank_a=sqlite:", "empty database path"},
           {"bank_a=sqlite:/tmp/x.db?ddl=maybe", "unknown option \"ddl=maybe\""},
           {"bank_a=sqlite:/tmp/x.db?ddl=deny&colour=blue", "unknown option \"colour=blue\""},
           {"bank_a=sqlite:?ddl=deny", "empty database path"},
       }) {
    auto r = MakeResource(c.spec);
    ASSERT_FALSE(r.ok()) << c.spec;
    EXPECT_EQ(r.status().code(), Status::kInvalidArgument) << c.spec;
    EXPECT_THAT(r.status().message(), HasSubstr(c.says)) << c.spec;
  }
  auto r = MakeResource("bank_a=sqlite:" + dir_ + "/no/such/dir/a.db");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no/such/dir/a.db"));
}

TEST(BranchStateTest, NamesEveryState) {
  EXPECT_STREQ(BranchStateName(BranchState::kActive), "ACTIVE");
  EXPECT_STREQ(BranchStateName(BranchState::kPrepared), "PREPARED");
  EXPECT_STREQ(BranchStateName(BranchState::kPreCommitted), "PRECOMMITTED");
  EXPECT_STREQ(BranchStateName(BranchState::kCommitted), "COMMITTED");
  EXPECT_STREQ(BranchStateName(BranchState::kAborted), "ABORTED");
}

// A resource that only has Execute and Prepare, to test the default one-shot.
class FakeResource : public ResourceManager {
 public:
  const std::string& name() const override { return name_; }
  Result<std::vector<RecoveredBranch>> Recover() override { return std::vector<RecoveredBranch>{}; }
  void Execute(const TxId&, std::vector<proto::Statement> s, Callback<ExecuteResult> done) override {
    calls.push_back("execute");
    ExecuteResult r;
    r.status = execute_status;
    r.wrote = true;
    r.results.resize(s.size());
    done(std::move(r));
  }
  void Prepare(const TxId&, const PrepareInfo&, Callback<Status> done) override {
    calls.push_back("prepare");
    done(prepare_status);
  }
  void Commit(const TxId&, Callback<Status> done) override { done(Status::Ok()); }
  void Rollback(const TxId&, Callback<Status> done) override { done(Status::Ok()); }

  std::string name_ = "fake";
  std::vector<std::string> calls;
  Status execute_status;
  Status prepare_status;
};

TEST(DefaultExecuteAndPrepareTest, ExecutesThenPrepares) {
  FakeResource fake;
  std::optional<ExecuteResult> got;
  fake.ExecuteAndPrepare(MakeTxId(1, 1), {Sql("x"), Sql("y")}, {},
                         [&](ExecuteResult r) { got = std::move(r); });
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->status.ok());
  EXPECT_EQ(got->results.size(), 2u);
  EXPECT_EQ(fake.calls, (std::vector<std::string>{"execute", "prepare"}));
}

TEST(DefaultExecuteAndPrepareTest, StopsAtTheFirstFailure) {
  FakeResource fake;
  fake.execute_status = Status::SqlError("fake: boom");
  std::optional<ExecuteResult> got;
  fake.ExecuteAndPrepare(MakeTxId(1, 1), {Sql("x")}, {}, [&](ExecuteResult r) { got = std::move(r); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status.code(), Status::kSqlError);
  EXPECT_EQ(fake.calls, (std::vector<std::string>{"execute"}));

  FakeResource fake2;
  fake2.prepare_status = Status::StorageFailed("fake: disk full");
  fake2.ExecuteAndPrepare(MakeTxId(1, 1), {Sql("x")}, {}, [&](ExecuteResult r) { got = std::move(r); });
  EXPECT_EQ(got->status.code(), Status::kStorageFailed);
  EXPECT_EQ(fake2.calls, (std::vector<std::string>{"execute", "prepare"}));
}

}  // namespace
}  // namespace txc::participant
