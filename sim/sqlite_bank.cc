// The simulated agents' bank in SQLite on a SimVfs (see sqlite_bank.h).
#include "sim/sqlite_bank.h"

#include <sqlite3.h>

#include <cstdlib>
#include <memory>

namespace txc::sim {

namespace {

// A connection, closed on destruction.
struct Conn {
  sqlite3* db = nullptr;
  ~Conn() { sqlite3_close_v2(db); }
};

Status SqlError(sqlite3* db, const std::string& what) {
  return Status::Internal(what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "no connection"));
}

Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err != nullptr ? err : "";
  sqlite3_free(err);
  if (rc != SQLITE_OK) return Status::Internal(sql.substr(0, 60) + ": " + msg);
  return Status::Ok();
}

// Runs `sql`, calling `row` for each result row.
template <class Fn>
Status Query(sqlite3* db, const char* sql, Fn row) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) return SqlError(db, sql);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return SqlError(db, sql);
  return Status::Ok();
}

int64_t IntOf(sqlite3_value* v) { return v != nullptr ? sqlite3_value_int64(v) : 0; }

// The row changes of one redo changeset on `accounts`, and the rows it
// added to `members` (inserts minus deletes).
Status ParseRedo(const void* data, int n, std::vector<RowChange>* out, int64_t* member_delta) {
  sqlite3_changeset_iter* it = nullptr;
  if (sqlite3changeset_start(&it, n, const_cast<void*>(data)) != SQLITE_OK) {
    return Status::Internal("malformed redo changeset");
  }
  while (sqlite3changeset_next(it) == SQLITE_ROW) {
    const char* table = nullptr;
    int cols = 0, op = 0, indirect = 0;
    sqlite3changeset_op(it, &table, &cols, &op, &indirect);
    if (std::string(table) == "members") {
      *member_delta += op == SQLITE_INSERT ? 1 : op == SQLITE_DELETE ? -1 : 0;
      continue;
    }
    if (std::string(table) != "accounts" || cols < 2) continue;
    RowChange c;
    sqlite3_value* v = nullptr;
    if (op == SQLITE_INSERT) {
      sqlite3changeset_new(it, 0, &v);
      c.id = IntOf(v);
      sqlite3changeset_new(it, 1, &v);
      c.after = IntOf(v);
    } else if (op == SQLITE_DELETE) {
      sqlite3changeset_old(it, 0, &v);
      c.id = IntOf(v);
      sqlite3changeset_old(it, 1, &v);
      c.before = IntOf(v);
    } else {
      sqlite3changeset_old(it, 0, &v);
      c.id = IntOf(v);
      v = nullptr;
      sqlite3changeset_old(it, 1, &v);
      c.before = IntOf(v);
      v = nullptr;
      sqlite3changeset_new(it, 1, &v);
      // An UPDATE that left the balance alone records no new value for it.
      c.after = v != nullptr ? IntOf(v) : c.before;
    }
    out->push_back(c);
  }
  if (sqlite3changeset_finalize(it) != SQLITE_OK) return Status::Internal("malformed redo changeset");
  return Status::Ok();
}

// Puts `bytes` into `path` on `vfs` through its own methods.
Status PutFile(sqlite3_vfs* vfs, const std::string& path, int kind, const std::string& bytes) {
  std::unique_ptr<char[]> mem(new char[vfs->szOsFile]());
  auto* f = reinterpret_cast<sqlite3_file*>(mem.get());
  int out = 0;
  int rc = vfs->xOpen(vfs, path.c_str(), f, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | kind, &out);
  if (rc != SQLITE_OK) return Status::Internal("scratch open of " + path + " failed");
  if (!bytes.empty()) {
    rc = f->pMethods->xWrite(f, bytes.data(), static_cast<int>(bytes.size()), 0);
  }
  f->pMethods->xClose(f);
  if (rc != SQLITE_OK) return Status::Internal("scratch write of " + path + " failed");
  return Status::Ok();
}

}  // namespace

std::string BankDbPath(const std::string& name) { return "/" + name + ".db"; }

std::string BankDbUri(const SimVfs& vfs, const std::string& name) {
  return "file:" + BankDbPath(name) + "?vfs=" + vfs.name();
}

Status CreateBankDb(SimVfs& vfs, const std::string& name, const BankImage& initial) {
  Conn c;
  if (sqlite3_open_v2(BankDbPath(name).c_str(), &c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      vfs.name()) != SQLITE_OK) {
    return SqlError(c.db, "open " + name);
  }
  std::string sql =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
      "CREATE TABLE members(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);"
      "CREATE TABLE email_pool(email TEXT PRIMARY KEY);"
      "BEGIN;";
  for (const auto& [id, balance] : initial.accounts) {
    sql += "INSERT INTO accounts VALUES(" + std::to_string(id) + ", " + std::to_string(balance) + ");";
  }
  for (const auto& [id, email] : initial.members) {
    sql += "INSERT INTO members VALUES(" + std::to_string(id) + ", '" + email + "');";
  }
  for (size_t i = 1; i <= initial.members.size() + 1; ++i) {
    sql += "INSERT OR IGNORE INTO email_pool VALUES('" + MemberEmail(static_cast<int>(i)) + "');";
  }
  sql += "COMMIT;";
  return Exec(c.db, sql);
}

Status ReadBankImage(sqlite3* db, BankImage* out) {
  *out = BankImage();
  Status s = Query(db, "SELECT id, balance FROM accounts", [&](sqlite3_stmt* st) {
    out->accounts[sqlite3_column_int64(st, 0)] = sqlite3_column_int64(st, 1);
  });
  if (!s.ok()) return s;
  s = Query(db, "SELECT id, email FROM members", [&](sqlite3_stmt* st) {
    const unsigned char* email = sqlite3_column_text(st, 1);
    out->members[sqlite3_column_int64(st, 0)] = email != nullptr ? reinterpret_cast<const char*>(email) : "";
  });
  if (!s.ok()) return s;
  // The log tables exist once the resource has opened the database.
  bool has_log = false;
  s = Query(db, "SELECT 1 FROM sqlite_schema WHERE name = 'txc_branches'",
            [&](sqlite3_stmt*) { has_log = true; });
  if (!s.ok() || !has_log) return s;
  std::map<TxId, BankBranch, TxIdLess> branches;
  s = Query(db, "SELECT txid, state FROM txc_branches", [&](sqlite3_stmt* st) {
    auto txid = ParseTxId(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    if (!txid) return;
    branches[*txid].state = static_cast<participant::BranchState>(sqlite3_column_int(st, 1));
  });
  if (!s.ok()) return s;
  Status parse = Status::Ok();
  // A branch's first change set is in its branch row (seq 1), any later one in txc_changes.
  s = Query(db,
            "SELECT txid, redo FROM (SELECT txid, 1 AS seq, redo FROM txc_branches WHERE redo IS "
            "NOT NULL UNION ALL SELECT txid, seq, redo FROM txc_changes) ORDER BY txid, seq",
            [&](sqlite3_stmt* st) {
    auto txid = ParseTxId(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    if (!txid) return;
    std::vector<RowChange> call;
    int64_t member_delta = 0;
    Status p = ParseRedo(sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1), &call, &member_delta);
    if (!p.ok()) parse = p;
    if (!call.empty()) branches[*txid].changes.push_back(std::move(call));
    if (member_delta != 0) branches[*txid].member_delta += member_delta;
  });
  if (!s.ok()) return s;
  if (!parse.ok()) return parse;
  for (const auto& [txid, b] : branches) out->PutBranch(txid, b);
  return Status::Ok();
}

Status ReadDurableBankImage(const SimVfs& vfs, const std::string& name, BankImage* out) {
  const std::string path = BankDbPath(name);
  auto db = vfs.DurableBytes(path);
  if (!db) return Status::NotFound(name + ": no durable database file");
  auto wal = vfs.DurableBytes(path + "-wal");
  World world(1, nullptr, false);
  Disk disk(&world, DiskOptions{});
  SimVfs scratch(&world, &disk, "scratch-" + name);
  TXC_RETURN_IF_ERROR(PutFile(scratch.vfs(), path, SQLITE_OPEN_MAIN_DB, *db));
  if (wal) TXC_RETURN_IF_ERROR(PutFile(scratch.vfs(), path + "-wal", SQLITE_OPEN_WAL, *wal));
  Conn c;
  if (sqlite3_open_v2(path.c_str(), &c.db, SQLITE_OPEN_READWRITE, scratch.name()) != SQLITE_OK) {
    return SqlError(c.db, "scratch open of " + name);
  }
  return ReadBankImage(c.db, out);
}

}  // namespace txc::sim
