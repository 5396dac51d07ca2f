// The pre-update hook capture against the SQLite session extension: the same
// random Executes run on two identical databases, one captured each way; the
// change sets must hold the same changes and lock keys, and the hook's undo
// must bring its database back exactly.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "client/client.h"
#include "participant/sqlite_changes.h"
#include "wal/sqlite.h"

namespace txc::participant::internal {
namespace {

constexpr const char* kSchema =
    "CREATE TABLE acc(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL, name TEXT UNIQUE);"
    "CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB, f REAL) WITHOUT ROWID;"
    "CREATE TABLE comp(a INTEGER, b TEXT, c, PRIMARY KEY(a, b));"
    "CREATE TABLE audit(n INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);"
    "CREATE TABLE nopk(x);"
        "CREATE TRIGGER acc_audit AFTER UPDATE OF bal ON acc WHEN new.bal < 0 "
    "BEGIN INSERT INTO audit(what) VALUES ('negative ' || new.id); END;";

struct Side {
  std::unique_ptr<wal::Db> db;
  std::unique_ptr<SqliteChanges> changes;
};

Side Open(bool session) {
  Side s;
  auto db = wal::Db::Open(":memory:");
  EXPECT_TRUE(db.ok());
  s.db = std::move(*db);
  EXPECT_TRUE(s.db->Exec(kSchema).ok());
  s.changes = std::make_unique<SqliteChanges>("bank", s.db.get(), 0,
                                              [] { return Micros{0}; }, false, true, 0, session);
  EXPECT_TRUE(s.changes->Init().ok());
  return s;
}

std::string ValueText(sqlite3_value* v) {
  if (v == nullptr) return "-";
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: return "i" + std::to_string(sqlite3_value_int64(v));
    case SQLITE_FLOAT: {
      double d = sqlite3_value_double(v);
      uint64_t x;
      std::memcpy(&x, &d, sizeof x);
      return "f" + std::to_string(x);
    }
    case SQLITE_TEXT:
      return "t'" + std::string(reinterpret_cast<const char*>(sqlite3_value_text(v)),
                               sqlite3_value_bytes(v)) + "'";
    case SQLITE_BLOB: {
      const auto* p = static_cast<const unsigned char*>(sqlite3_value_blob(v));
      std::string h = "x";
      for (int i = 0; i < sqlite3_value_bytes(v); ++i) h += std::to_string(p[i]) + ".";
      return h;
    }
    default: return "null";
  }
}

// Each change of a change set as text (table, op, indirect, old and new
// values), sorted: the two captures may order rows differently.
std::vector<std::string> Changes(const SqliteBuffer& cs) {
  std::vector<std::string> out;
  if (cs.n == 0) return out;
  sqlite3_changeset_iter* it = nullptr;
  EXPECT_EQ(sqlite3changeset_start(&it, cs.n, cs.p), SQLITE_OK);
  while (sqlite3changeset_next(it) == SQLITE_ROW) {
    const char* table = nullptr;
    int n = 0, op = 0, indirect = 0;
    sqlite3changeset_op(it, &table, &n, &op, &indirect);
    unsigned char* pk = nullptr;
    int pk_cols = 0;
    sqlite3changeset_pk(it, &pk, &pk_cols);
    std::string line = std::string(table) + " pk";
    for (int c = 0; c < pk_cols; ++c) line += std::to_string(pk[c]);
    line += " op" + std::to_string(op) + " ind" + std::to_string(indirect) + " old:";
    for (int c = 0; c < n; ++c) {
      sqlite3_value* v = nullptr;
      if (op != SQLITE_INSERT) sqlite3changeset_old(it, c, &v);
      line += " " + ValueText(v);
    }
    line += " new:";
    for (int c = 0; c < n; ++c) {
      sqlite3_value* v = nullptr;
      if (op != SQLITE_DELETE) sqlite3changeset_new(it, c, &v);
      line += " " + ValueText(v);
    }
    out.push_back(line);
  }
  EXPECT_EQ(sqlite3changeset_finalize(it), SQLITE_OK);
  std::sort(out.begin(), out.end());
  return out;
}

// Every row of the user tables, in primary-key order.
std::string Dump(wal::Db& db) {
  std::string out;
  for (const char* q : {"SELECT id, bal, name FROM acc ORDER BY id", "SELECT k, v, f FROM kv ORDER BY k",
                        "SELECT a, b, c FROM comp ORDER BY a, b, rowid",
                        "SELECT n, what FROM audit ORDER BY n"}) {
    auto st = db.Prepare(q);
    EXPECT_TRUE(st.ok());
    out += q;
    while (true) {
      auto row = (*st)->Step();
      EXPECT_TRUE(row.ok());
      if (!row.ok() || !*row) break;
      out += "\n ";
      for (int c = 0; c < sqlite3_column_count((*st)->raw()); ++c) {
        out += ValueText(sqlite3_column_value((*st)->raw(), c)) + " ";
      }
    }
    out += "\n";
  }
  return out;
}

// One random statement over a few keys, so rows are hit again and again
// within a call: inserts, upserts, updates that move primary keys, deletes
// and re-inserts, updates that change nothing,
// a trigger's writes, -0.0 against 0.0.
proto::Statement RandomStatement(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  int id = 1 + pick(8), id2 = 1 + pick(8);
  std::string key = std::string(1, static_cast<char>('a' + pick(5)));
  switch (pick(16)) {
    case 0: return Sql("INSERT INTO acc(id, bal, name) VALUES (?1, ?2, ?3)",
                        {Int(id), Int(pick(100)), pick(3) == 0 ? Null() : Text("n" + std::to_string(pick(6)))});
    case 1: return Sql("INSERT OR REPLACE INTO acc(id, bal, name) VALUES (?1, ?2, ?3)",
                        {Int(id), Int(pick(100)), Text("n" + std::to_string(pick(6)))});
    case 2: return Sql("UPDATE acc SET bal = bal + ?2 WHERE id = ?1", {Int(id), Int(pick(21) - 10)});
    case 3: return Sql("UPDATE acc SET bal = bal - 200 WHERE id = ?1", {Int(id)});  // fires the trigger
    case 4: return Sql("UPDATE acc SET id = ?2 WHERE id = ?1", {Int(id), Int(id2)});
    case 5: return Sql("DELETE FROM acc WHERE id = ?1", {Int(id)});
    case 6: return Sql("UPDATE acc SET bal = bal WHERE id = ?1", {Int(id)});
    case 7: return Sql("INSERT INTO kv(k, v, f) VALUES (?1, ?2, ?3) ON CONFLICT(k) DO UPDATE SET v = excluded.v, f = excluded.f",
                        {Text(key), txc::Blob(std::string(static_cast<size_t>(pick(3)), '\x01')),
                         pick(2) == 0 ? Real(0.0) : Real(-0.0)});
    case 8: return Sql("UPDATE kv SET k = ?2 WHERE k = ?1", {Text(key), Text(key + "x")});
    case 9: return Sql("DELETE FROM kv WHERE k = ?1", {Text(key)});
    case 10: return Sql("INSERT OR IGNORE INTO comp(a, b, c) VALUES (?1, ?2, ?3)",
                         {Int(id % 3), Text(key), Int(pick(5))});
    case 11: return Sql("UPDATE comp SET b = ?2 WHERE a = ?1", {Int(id % 3), Text(key)});
    case 12: return Sql("UPDATE comp SET c = ?2 WHERE a = ?1", {Int(id % 3), pick(2) == 0 ? Null() : txc::Blob("z")});
    case 13: return Sql("DELETE FROM comp WHERE a = ?1 AND b IS ?2", {Int(id % 3), Text(key)});
    case 14: return Sql("DELETE FROM acc WHERE id > ?1", {Int(id)});
    default: return Sql("UPDATE acc SET name = ?2 WHERE id = ?1",
                         {Int(id), pick(2) == 0 ? Null() : Text("n" + std::to_string(pick(6)))});
  }
}

TEST(SqliteCaptureTest, HookWritesTheChangesTheSessionWritesAndItsUndoRestoresTheRows) {
  Side session = Open(true), hook = Open(false);
  std::mt19937 rng(20261204);
  int compared = 0, failed_both = 0, with_changes = 0;
  for (int call = 0; call < 1500; ++call) {
    std::vector<proto::Statement> statements;
    int n = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) statements.push_back(RandomStatement(rng));
    std::string before = Dump(*hook.db);
    ASSERT_EQ(before, Dump(*session.db));
    CapturedChanges a, b;
    ASSERT_TRUE(session.db->Exec("SAVEPOINT call").ok());
    ASSERT_TRUE(hook.db->Exec("SAVEPOINT call").ok());
    Status sa = session.changes->Execute(statements, &a);
    Status sb = hook.changes->Execute(statements, &b);
    ASSERT_EQ(sa.ok(), sb.ok()) << "call " << call << ": " << sa.ToString() << " vs " << sb.ToString();
    if (!sa.ok()) {
      ++failed_both;
      ASSERT_EQ(sa.ToString(), sb.ToString());
      for (Side* s : {&session, &hook}) {
        ASSERT_TRUE(s->db->Exec("ROLLBACK TO call").ok());
        ASSERT_TRUE(s->db->Exec("RELEASE call").ok());
      }
      continue;
    }
    ++compared;
    ASSERT_EQ(Changes(a.redo), Changes(b.redo)) << "call " << call << ": " << statements[0].sql;
    std::vector<std::string> ka = a.keys, kb = b.keys;
    std::sort(ka.begin(), ka.end());
    std::sort(kb.begin(), kb.end());
    ASSERT_EQ(ka, kb) << "call " << call;
    if (b.redo.n > 0) {
      ++with_changes;
      // The hook's undo, applied, gives back the rows as they were.
      SqliteBuffer undo;
      ASSERT_TRUE(hook.changes->Invert(b.redo, &undo).ok());
      ASSERT_TRUE(hook.db->Exec("SAVEPOINT undo").ok());
      TxId txid;
      ASSERT_TRUE(hook.changes->ApplyUndo(txid, std::string(undo.view())).ok()) << "call " << call;
      std::string program;
      for (const auto& st : statements) {
        program += st.sql + " [";
        for (const auto& v : st.params) program += (v.__isset.i ? std::to_string(v.i) : v.__isset.s ? v.s : v.__isset.b ? "blob" : v.__isset.d ? "real" : "null") + ",";
        program += "]\n";
      }
      std::string got;
      for (const auto& c : Changes(b.redo)) got += c + "\n";
      ASSERT_EQ(Dump(*hook.db), before) << "call " << call << "\n" << program << got;
      ASSERT_TRUE(hook.db->Exec("ROLLBACK TO undo").ok());
      ASSERT_TRUE(hook.db->Exec("RELEASE undo").ok());
    }
    for (Side* s : {&session, &hook}) ASSERT_TRUE(s->db->Exec("RELEASE call").ok());
  }
  // The program reached every path: calls that failed, that changed rows
  // and that ended as they began.
  EXPECT_GT(compared, 1000);
  EXPECT_GT(failed_both, 20);
  EXPECT_GT(with_changes, 600);
  std::printf("%d calls compared (%d with changes), %d failed on both\n", compared, with_changes, failed_both);
}

TEST(SqliteCaptureTest, HookRefusesAWriteToATableWithoutPrimaryKeyAsTheSessionDoes) {
  for (bool with_session : {true, false}) {
    Side s = Open(with_session);
    CapturedChanges out;
    Status st = s.changes->Execute({Sql("INSERT INTO nopk(x) VALUES (1)")}, &out);
    EXPECT_EQ(st.code(), Status::kSqlError) << st.ToString();
    EXPECT_NE(st.message().find("nopk has no PRIMARY KEY"), std::string::npos) << st.ToString();
  }
}

// A session skips such a row silently: no undo and no lock for it.
TEST(SqliteCaptureTest, HookRefusesARowWhosePrimaryKeyHoldsNull) {
  Side s = Open(false);
  ASSERT_TRUE(s.db->Exec("INSERT INTO comp(a, b, c) VALUES (7, NULL, 1)").ok());  // not by a branch
  for (const char* sql : {"INSERT INTO comp(a, b, c) VALUES (1, NULL, 2)",
                          "UPDATE comp SET c = 5 WHERE a = 7", "DELETE FROM comp WHERE a = 7"}) {
    CapturedChanges out;
    ASSERT_TRUE(s.db->Exec("SAVEPOINT call").ok());
    Status st = s.changes->Execute({Sql("INSERT INTO acc(id, bal) VALUES (1, 5)"), Sql(sql)}, &out);
    ASSERT_TRUE(s.db->Exec("ROLLBACK TO call").ok());
    ASSERT_TRUE(s.db->Exec("RELEASE call").ok());
    EXPECT_EQ(st.code(), Status::kSqlError) << sql;
    EXPECT_NE(st.message().find("statement 2"), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("comp whose PRIMARY KEY holds NULL"), std::string::npos)
        << st.ToString();
    // The next call is captured as usual.
    CapturedChanges next;
    ASSERT_TRUE(s.changes->Execute({Sql("UPDATE kv SET v = x'01'")}, &next).ok());
  }
}

TEST(SqliteCaptureTest, HookFollowsAColumnAddedByAnEarlierCall) {
  Side s = Open(false);
  CapturedChanges first;
  ASSERT_TRUE(s.changes->Execute({Sql("INSERT INTO acc(id, bal) VALUES (1, 5)")}, &first).ok());
  CapturedChanges second;
  ASSERT_TRUE(s.changes
                  ->Execute({Sql("ALTER TABLE acc ADD COLUMN note TEXT"),
                             Sql("UPDATE acc SET note = 'x', bal = 6 WHERE id = 1")},
                            &second)
                  .ok());
  std::vector<std::string> got = Changes(second.redo);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "acc pk1000 op23 ind0 old: i1 i5 - null new: - i6 - t'x'");
}

}  // namespace
}  // namespace txc::participant::internal
