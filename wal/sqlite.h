// A thin RAII wrapper over sqlite3: a connection (Db) and a prepared statement
// (Stmt). Every return code is checked and turned into a Status whose message
// names the database file and SQLite's own error text.
//
// Threading: a Db and its Stmts are used by one thread at a time (SQLite's
// default serialized mode makes misuse safe but slow; don't rely on it).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace txc::wal {

class Stmt;

class Db {
 public:
  // Opens (creating if needed) the database at `path` (":memory:" works) and
  // applies journal_mode=WAL, synchronous=FULL, busy_timeout=5000,
  // foreign_keys=ON. `caller_serializes`: every use of the connection and of
  // its statements is serialized by the caller (one thread at a time, under
  // the caller's mutex), so SQLite's own per-connection mutex is left out
  // (SQLITE_OPEN_NOMUTEX). The first Open of a process also turns SQLite's
  // memory statistics off (a global mutex around every allocation; nothing
  // here reads them).
  static Result<std::unique_ptr<Db>> Open(const std::string& path, bool caller_serializes = false);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements with no parameters and no result rows.
  Status Exec(std::string_view sql);
  // Compiles `sql` into a reusable statement.
  Result<std::unique_ptr<Stmt>> Prepare(std::string_view sql);

  // PRAGMA synchronous: true = FULL (every commit syncs the WAL), false = NORMAL.
  Status SetSynchronousFull(bool full);

  // Writes `data` into the BLOB at `table`.`column` of row `rowid`, which
  // must hold exactly data.size() bytes already (inserted as zeroblob(n)), a
  // chunk at a time: unlike a bound value, SQLite never holds the whole of it
  // in one buffer (a snapshot image of tens of MB). Inside the caller's
  // transaction; an error names the table and the row.
  Status WriteBlob(const char* table, const char* column, int64_t rowid, std::string_view data);

  int64_t changes() const;            // rows changed by the last statement
  int64_t last_insert_rowid() const;
  sqlite3* raw() { return db_; }
  const std::string& path() const { return path_; }
  // An error Status with this connection's current error text.
  Status Error(std::string_view what) const;

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

class Stmt {
 public:
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binding: 1-based indices, as SQLite.
  Status BindInt(int i, int64_t v);
  Status BindDouble(int i, double v);
  Status BindText(int i, std::string_view v);
  Status BindBlob(int i, std::string_view v);
  // Binds `v` without SQLite's copy of it: the bytes must stay valid and
  // unchanged until the next Reset (for large values, e.g. a snapshot image,
  // which SQLite would otherwise hold twice while it writes the row).
  Status BindBlobNoCopy(int i, std::string_view v);
  Status BindNull(int i);

  // Steps once: true = a row is ready, false = done. Errors as Status.
  Result<bool> Step();
  // Steps until done, for statements with no rows.
  Status Run();
  // Resets for re-use and clears bindings.
  void Reset();

  int column_count() const;
  int column_type(int i) const;  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL
  std::string column_name(int i) const;
  int64_t ColumnInt(int i) const;
  double ColumnDouble(int i) const;
  std::string ColumnText(int i) const;
  std::string ColumnBlob(int i) const;
  bool ColumnIsNull(int i) const;
  sqlite3_stmt* raw() { return stmt_; }

 private:
  friend class Db;
  Stmt(sqlite3_stmt* s, Db* db) : stmt_(s), db_(db) {}
  sqlite3_stmt* stmt_;
  Db* db_;
};

// A file's layout number, kept as an INTEGER row under `key` of `table`
// (key TEXT PRIMARY KEY, value INTEGER NOT NULL; created if missing).
// Read: nullopt for a file from before the stamp; INVALID_ARGUMENT if the
// row holds anything but an integer (a damaged file, or another program's:
// read as 0 it would let a newer layout through), naming the table and key.
Result<std::optional<int64_t>> ReadLayoutStamp(Db& db, std::string_view table,
                                               std::string_view key);
Status WriteLayoutStamp(Db& db, std::string_view table, std::string_view key, int64_t layout);

}  // namespace txc::wal
