#include "wal/sqlite.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "common/log.h"

namespace txc::wal {

namespace {

// Maps an SQLite result code to the Status code a caller can act on: a disk
// that fails or fills is a storage failure, a busy database is transient,
// everything else is an error in the SQL itself.
Status::Code CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return Status::kStorageFailed;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::kUnavailable;
    case SQLITE_MISUSE:
    case SQLITE_INTERNAL:
      return Status::kInternal;
    default:
      return Status::kSqlError;
  }
}

Status MakeError(int rc, const std::string& path, std::string_view what, const char* msg) {
  std::string m = path;
  m += ": ";
  m += what;
  m += ": ";
  m += msg != nullptr ? msg : sqlite3_errstr(rc);
  m += " (";
  m += sqlite3_errstr(rc);
  m += ")";
  return Status(CodeFor(rc), std::move(m));
}

// Short text of a statement for error messages.
std::string Snippet(std::string_view sql) {
  constexpr size_t kMax = 120;
  std::string s(sql.substr(0, kMax));
  if (sql.size() > kMax) s += "...";
  return s;
}

bool OnlyWhitespace(const char* p, const char* end) {
  for (; p < end; ++p) {
    if (!std::isspace(static_cast<unsigned char>(*p)) && *p != ';') return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, bool caller_serializes) {
  // Before SQLite initializes (its first open, or a VFS registered first,
  // which initializes it: then this is refused with SQLITE_MISUSE and the
  // statistics stay on, which costs time only).
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus_off;
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (caller_serializes) flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = MakeError(rc, path, "open", raw != nullptr ? sqlite3_errmsg(raw) : nullptr);
    sqlite3_close_v2(raw);  // harmless on nullptr
    return s;
  }
  sqlite3_extended_result_codes(raw, 1);
  std::unique_ptr<Db> db(new Db(raw, path));
  TXC_RETURN_IF_ERROR(db->Exec(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; "
      "PRAGMA foreign_keys=ON;"));
  // journal_mode=WAL silently stays "delete" where WAL is impossible (no shared
  // memory); group commit still works, but readers then block writers.
  if (path != ":memory:" && !path.empty()) {
    auto q = db->Prepare("PRAGMA journal_mode");
    if (q.ok() && (*q)->Step().ok() && (*q)->ColumnText(0) != "wal") {
      Logger("wal")->warn("journal_mode=WAL refused path={} mode={}", path, (*q)->ColumnText(0));
    }
  }
  return db;
}

Db::~Db() { sqlite3_close_v2(db_); }

Status Db::Exec(std::string_view sql) {
  std::string s(sql);  // sqlite3_exec wants a NUL-terminated string
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  Status st = MakeError(rc, path_, Snippet(sql), err != nullptr ? err : sqlite3_errmsg(db_));
  sqlite3_free(err);
  return st;
}

Result<std::unique_ptr<Stmt>> Db::Prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return MakeError(rc, path_, "prepare \"" + Snippet(sql) + "\"", sqlite3_errmsg(db_));
  }
  if (raw == nullptr) {
    return Status::InvalidArgument(path_ + ": prepare: empty statement \"" + Snippet(sql) + "\"");
  }
  std::unique_ptr<Stmt> stmt(new Stmt(raw, this));
  if (tail != nullptr && !OnlyWhitespace(tail, sql.data() + sql.size())) {
    return Status::InvalidArgument(path_ + ": prepare: more than one statement in \"" +
                                   Snippet(sql) + "\"");
  }
  return stmt;
}

Status Db::SetSynchronousFull(bool full) {
  return Exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

int64_t Db::changes() const { return sqlite3_changes64(db_); }

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

Status Db::WriteBlob(const char* table, const char* column, int64_t rowid,
                     std::string_view data) {
  const std::string what = std::string("write blob ") + table + "." + column + " of row " +
                           std::to_string(rowid);
  sqlite3_blob* blob = nullptr;
  int rc = sqlite3_blob_open(db_, "main", table, column, rowid, /*flags=*/1, &blob);
  if (rc != SQLITE_OK) {
    Status s = MakeError(rc, path_, what, sqlite3_errmsg(db_));
    sqlite3_blob_close(blob);  // null-safe
    return s;
  }
  const int held = sqlite3_blob_bytes(blob);
  if (held < 0 || static_cast<size_t>(held) != data.size()) {
    sqlite3_blob_close(blob);
    return Status::Internal(path_ + ": " + what + ": the row holds " + std::to_string(held) +
                            " bytes, not " + std::to_string(data.size()));
  }
  constexpr size_t kChunk = size_t{1} << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    const size_t n = std::min(kChunk, data.size() - off);
    rc = sqlite3_blob_write(blob, data.data() + off, static_cast<int>(n), static_cast<int>(off));
    if (rc != SQLITE_OK) {
      Status s = MakeError(rc, path_, what, sqlite3_errmsg(db_));
      sqlite3_blob_close(blob);
      return s;
    }
  }
  rc = sqlite3_blob_close(blob);
  if (rc != SQLITE_OK) return MakeError(rc, path_, what, sqlite3_errmsg(db_));
  return Status::Ok();
}

Status Db::Error(std::string_view what) const {
  int rc = sqlite3_extended_errcode(db_);
  if (rc == SQLITE_OK) rc = SQLITE_ERROR;  // asked for an error: never return OK
  return MakeError(rc, path_, what, sqlite3_errmsg(db_));
}

// --------------------------------------------------------------------- Stmt

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

namespace {
Status BindStatus(int rc, Db* db, sqlite3_stmt* s, int i) {
  if (rc == SQLITE_OK) return Status::Ok();
  const char* sql = sqlite3_sql(s);
  return MakeError(rc, db->path(),
                   "bind parameter " + std::to_string(i) + " of \"" +
                       Snippet(sql != nullptr ? sql : "") + "\"",
                   sqlite3_errmsg(db->raw()));
}
}  // namespace

Status Stmt::BindInt(int i, int64_t v) {
  return BindStatus(sqlite3_bind_int64(stmt_, i, v), db_, stmt_, i);
}
Status Stmt::BindDouble(int i, double v) {
  return BindStatus(sqlite3_bind_double(stmt_, i, v), db_, stmt_, i);
}
Status Stmt::BindText(int i, std::string_view v) {
  return BindStatus(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
                    db_, stmt_, i);
}
Status Stmt::BindBlob(int i, std::string_view v) {
  // A zero-length blob, not NULL, when v is empty.
  int rc = v.empty() ? sqlite3_bind_zeroblob(stmt_, i, 0)
                     : sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT);
  return BindStatus(rc, db_, stmt_, i);
}
Status Stmt::BindBlobNoCopy(int i, std::string_view v) {
  int rc = v.empty() ? sqlite3_bind_zeroblob(stmt_, i, 0)
                     : sqlite3_bind_blob64(stmt_, i, v.data(), v.size(), SQLITE_STATIC);
  return BindStatus(rc, db_, stmt_, i);
}
Status Stmt::BindNull(int i) { return BindStatus(sqlite3_bind_null(stmt_, i), db_, stmt_, i); }

Result<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* sql = sqlite3_sql(stmt_);
  return MakeError(rc, db_->path(), Snippet(sql != nullptr ? sql : ""), sqlite3_errmsg(db_->raw()));
}

Status Stmt::Run() {
  for (;;) {
    Result<bool> r = Step();
    if (!r.ok()) return r.status();
    if (!*r) return Status::Ok();
  }
}

void Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int Stmt::column_count() const { return sqlite3_column_count(stmt_); }
int Stmt::column_type(int i) const { return sqlite3_column_type(stmt_, i); }
std::string Stmt::column_name(int i) const {
  const char* n = sqlite3_column_name(stmt_, i);
  return n != nullptr ? n : "";
}
int64_t Stmt::ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
double Stmt::ColumnDouble(int i) const { return sqlite3_column_double(stmt_, i); }
std::string Stmt::ColumnText(int i) const {
  const unsigned char* p = sqlite3_column_text(stmt_, i);
  int n = sqlite3_column_bytes(stmt_, i);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}
std::string Stmt::ColumnBlob(int i) const {
  const void* p = sqlite3_column_blob(stmt_, i);
  int n = sqlite3_column_bytes(stmt_, i);
  return p != nullptr ? std::string(static_cast<const char*>(p), n) : std::string();
}
bool Stmt::ColumnIsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

Result<std::optional<int64_t>> ReadLayoutStamp(Db& db, std::string_view table,
                                               std::string_view key) {
  const std::string t(table);
  TXC_RETURN_IF_ERROR(db.Exec("CREATE TABLE IF NOT EXISTS " + t +
                              "(key TEXT PRIMARY KEY, value INTEGER NOT NULL)"));
  auto q = db.Prepare("SELECT typeof(value), value FROM " + t + " WHERE key = ?1");
  if (!q.ok()) return q.status();
  TXC_RETURN_IF_ERROR((*q)->BindText(1, key));
  auto row = (*q)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<int64_t>();
  if ((*q)->ColumnText(0) != "integer") {
    return Status::InvalidArgument(
        t + "'s " + std::string(key) + " in " + db.path() +
        " is not a layout number (the file was damaged, or written by another program): "
        "restore it from a backup, or delete that row if the file is known to be of this "
        "version");
  }
  return std::optional<int64_t>((*q)->ColumnInt(1));
}

Status WriteLayoutStamp(Db& db, std::string_view table, std::string_view key, int64_t layout) {
  auto q = db.Prepare("INSERT OR REPLACE INTO " + std::string(table) + "(key, value) VALUES(?1, ?2)");
  if (!q.ok()) return q.status();
  TXC_RETURN_IF_ERROR((*q)->BindText(1, key));
  TXC_RETURN_IF_ERROR((*q)->BindInt(2, layout));
  return (*q)->Run();
}

}  // namespace txc::wal
