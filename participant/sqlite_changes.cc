#include "participant/sqlite_changes.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "common/log.h"

namespace txc::participant::internal {

namespace {

constexpr size_t kMaxCachedStatements = 256;

// A row lock key: table name, NUL, then each primary-key value (column order)
// as a tag byte and its bytes: 'i' int64 big-endian, 'f' double bits, 't'
// text, 'b' blob (both length-prefixed), 'n' NULL. A unique-key lock key:
// table name, NUL, 'u', the count and the (lower-case, sorted) names of the
// key's columns, then their values as above.

void AppendKeyValue(std::string* key, sqlite3_value* v, Fold fold = Fold::kNone) {
  if (fold != Fold::kNone && v != nullptr && sqlite3_value_type(v) == SQLITE_TEXT) {
    const char* p = reinterpret_cast<const char*>(sqlite3_value_text(v));
    std::string t(p != nullptr ? p : "", sqlite3_value_bytes(v));
    if (fold == Fold::kNoCase) {
      for (char& c : t) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
    } else {
      while (!t.empty() && t.back() == ' ') t.pop_back();
    }
    key->push_back('t');
    PutBytes(key, t);
    return;
  }
  switch (v == nullptr ? SQLITE_NULL : sqlite3_value_type(v)) {
    case SQLITE_INTEGER: {
      key->push_back('i');
      uint64_t x = static_cast<uint64_t>(sqlite3_value_int64(v));
      for (int i = 7; i >= 0; --i) key->push_back(static_cast<char>((x >> (8 * i)) & 0xff));
      break;
    }
    case SQLITE_FLOAT: {
      key->push_back('f');
      double d = sqlite3_value_double(v);
      uint64_t x;
      std::memcpy(&x, &d, sizeof x);
      for (int i = 7; i >= 0; --i) key->push_back(static_cast<char>((x >> (8 * i)) & 0xff));
      break;
    }
    case SQLITE_TEXT: {
      key->push_back('t');
      const char* p = reinterpret_cast<const char*>(sqlite3_value_text(v));
      PutBytes(key, std::string_view(p != nullptr ? p : "", sqlite3_value_bytes(v)));
      break;
    }
    case SQLITE_BLOB: {
      key->push_back('b');
      const char* p = static_cast<const char*>(sqlite3_value_blob(v));
      PutBytes(key, std::string_view(p != nullptr ? p : "", sqlite3_value_bytes(v)));
      break;
    }
    default:
      key->push_back('n');
  }
}

// The row lock key of the change under `it`: the table, then its primary key
// values (the new row's for an INSERT, the old row's otherwise).
std::string RowKeyOf(sqlite3_changeset_iter* it, const char* table) {
  const char* name = nullptr;
  int n_cols = 0, op = 0, indirect = 0;
  unsigned char* pk = nullptr;
  sqlite3changeset_op(it, &name, &n_cols, &op, &indirect);
  sqlite3changeset_pk(it, &pk, &n_cols);
  std::string key = table;
  key.push_back('\0');
  for (int c = 0; c < n_cols; ++c) {
    if (!pk[c]) continue;
    sqlite3_value* v = nullptr;
    if (op == SQLITE_INSERT) {
      sqlite3changeset_new(it, c, &v);
    } else {
      sqlite3changeset_old(it, c, &v);
    }
    AppendKeyValue(&key, v);
  }
  return key;
}

// The start of a unique-key lock key, before the values.
std::string UniqueKeyPrefix(const std::string& table, const std::vector<std::string>& columns) {
  std::string key = table;
  key.push_back('\0');
  key.push_back('u');
  PutU32(&key, static_cast<uint32_t>(columns.size()));
  for (const std::string& c : columns) PutBytes(&key, c);
  return key;
}

// Decodes a lock key into its table, the names of a unique key's columns
// (empty for a row key) and printable values.
bool DecodeKey(std::string_view key, std::string* table, std::vector<std::string>* columns,
               std::vector<std::string>* values) {
  auto nul = key.find('\0');
  if (nul == std::string_view::npos) return false;
  *table = std::string(key.substr(0, nul));
  key.remove_prefix(nul + 1);
  if (!key.empty() && key[0] == 'u') {
    key.remove_prefix(1);
    if (!GetByteList(&key, columns)) return false;
  }
  while (!key.empty()) {
    char tag = key[0];
    key.remove_prefix(1);
    if (tag == 'i' || tag == 'f') {
      if (key.size() < 8) return false;
      uint64_t x = 0;
      for (int i = 0; i < 8; ++i) x = (x << 8) | static_cast<uint8_t>(key[i]);
      key.remove_prefix(8);
      if (tag == 'i') {
        values->push_back(std::to_string(static_cast<int64_t>(x)));
      } else {
        double d;
        std::memcpy(&d, &x, sizeof d);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", d);
        values->push_back(buf);
      }
    } else if (tag == 't' || tag == 'b') {
      std::string_view b;
      if (!GetBytes(&key, &b)) return false;
      if (tag == 't') {
        values->push_back("'" + std::string(b) + "'");
      } else {
        static const char* kHex = "0123456789abcdef";
        std::string h = "x'";
        for (unsigned char c : b) {
          h.push_back(kHex[c >> 4]);
          h.push_back(kHex[c & 15]);
        }
        values->push_back(h + "'");
      }
    } else if (tag == 'n') {
      values->push_back("NULL");
    } else {
      return false;
    }
  }
  return columns->empty() || columns->size() == values->size();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string QuoteId(const std::string& id) {
  std::string out = "\"";
  for (char c : id) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

proto::Value ColumnValue(sqlite3_stmt* s, int i) {
  proto::Value v;
  switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER:
      v.__set_i(sqlite3_column_int64(s, i));
      break;
    case SQLITE_FLOAT:
      v.__set_d(sqlite3_column_double(s, i));
      break;
    case SQLITE_TEXT: {
      const char* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
      v.__set_s(std::string(p != nullptr ? p : "", sqlite3_column_bytes(s, i)));
      break;
    }
    case SQLITE_BLOB: {
      const char* p = static_cast<const char*>(sqlite3_column_blob(s, i));
      v.__set_b(std::string(p != nullptr ? p : "", sqlite3_column_bytes(s, i)));
      break;
    }
    default:
      break;  // NULL: no field set
  }
  return v;
}

int BindValue(sqlite3_stmt* s, int i, const proto::Value& v) {
  if (v.__isset.i) return sqlite3_bind_int64(s, i, v.i);
  if (v.__isset.d) return sqlite3_bind_double(s, i, v.d);
  if (v.__isset.s) return sqlite3_bind_text64(s, i, v.s.data(), v.s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (v.__isset.b) {
    return v.b.empty() ? sqlite3_bind_zeroblob(s, i, 0)
                       : sqlite3_bind_blob64(s, i, v.b.data(), v.b.size(), SQLITE_TRANSIENT);
  }
  return sqlite3_bind_null(s, i);
}


// ------------------------------------------------ change set values
// A change set value: a type byte (0 undefined, SQLITE_INTEGER, FLOAT,
// TEXT, BLOB, NULL), then 8 bytes big-endian for a number, or a varint
// length and the bytes for text and blobs (the session extension's format,
// which sqlite3changeset_* read).

void PutChangeVarint(std::string* out, uint64_t v) {
  char buf[10];
  int n = 0;
  do {
    buf[n++] = static_cast<char>(v & 0x7f);
    v >>= 7;
  } while (v != 0);
  while (n > 0) {
    char c = buf[--n];
    out->push_back(n > 0 ? static_cast<char>(c | 0x80) : c);
  }
}

bool GetChangeVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int i = 0; i < 9 && !in->empty(); ++i) {
    auto c = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v = (*v << 7) | (c & 0x7f);
    if ((c & 0x80) == 0) return true;
  }
  return false;
}

void PutChangeU64(std::string* out, uint64_t x) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

uint64_t GetChangeU64(std::string_view b) {
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | static_cast<uint8_t>(b[i]);
  return x;
}

// `v` == nullptr: undefined.
void PutChangeValue(std::string* out, sqlite3_value* v) {
  if (v == nullptr) {
    out->push_back('\0');
    return;
  }
  int type = sqlite3_value_type(v);
  switch (type) {
    case SQLITE_INTEGER:
      out->push_back(static_cast<char>(type));
      PutChangeU64(out, static_cast<uint64_t>(sqlite3_value_int64(v)));
      break;
    case SQLITE_FLOAT: {
      out->push_back(static_cast<char>(type));
      double d = sqlite3_value_double(v);
      uint64_t x;
      std::memcpy(&x, &d, sizeof x);
      PutChangeU64(out, x);
      break;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      out->push_back(static_cast<char>(type));
      const void* p = type == SQLITE_TEXT ? static_cast<const void*>(sqlite3_value_text(v))
                                          : sqlite3_value_blob(v);
      int n = sqlite3_value_bytes(v);
      PutChangeVarint(out, static_cast<uint64_t>(n));
      if (n > 0 && p != nullptr) out->append(static_cast<const char*>(p), static_cast<size_t>(n));
      break;
    }
    default:
      out->push_back(static_cast<char>(SQLITE_NULL));
  }
}

// Column `i` of the row under `s`, as PutChangeValue writes a value. The
// column's value is unprotected, which only matters to a connection shared
// by threads; this one is the worker's alone.
void PutChangeColumn(std::string* out, sqlite3_stmt* s, int i) {
  PutChangeValue(out, sqlite3_column_value(s, i));
}

// Splits the next value (type byte and payload) off `rec`.
bool NextChangeValue(std::string_view* rec, std::string_view* value) {
  if (rec->empty()) return false;
  std::string_view start = *rec;
  auto type = static_cast<uint8_t>(rec->front());
  rec->remove_prefix(1);
  if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) {
    if (rec->size() < 8) return false;
    rec->remove_prefix(8);
  } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
    uint64_t n = 0;
    if (!GetChangeVarint(rec, &n) || rec->size() < n) return false;
    rec->remove_prefix(n);
  } else if (type > SQLITE_NULL) {
    return false;
  }
  *value = start.substr(0, start.size() - rec->size());
  return true;
}

int BindChangeValue(sqlite3_stmt* s, int i, std::string_view v) {
  auto type = static_cast<uint8_t>(v[0]);
  v.remove_prefix(1);
  switch (type) {
    case SQLITE_INTEGER:
      return sqlite3_bind_int64(s, i, static_cast<sqlite3_int64>(GetChangeU64(v)));
    case SQLITE_FLOAT: {
      uint64_t x = GetChangeU64(v);
      double d;
      std::memcpy(&d, &x, sizeof d);
      return sqlite3_bind_double(s, i, d);
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      uint64_t n = 0;
      GetChangeVarint(&v, &n);
      return type == SQLITE_TEXT
                 ? sqlite3_bind_text64(s, i, v.data(), n, SQLITE_TRANSIENT, SQLITE_UTF8)
                 : sqlite3_bind_blob64(s, i, v.data(), n, SQLITE_TRANSIENT);
    }
    default:
      return sqlite3_bind_null(s, i);
  }
}

// Whether column `i` of the row under `s` differs from the old value `old`
// (as the session extension compares: by type, then value).
bool ColumnChanged(sqlite3_stmt* s, int i, std::string_view old) {
  auto type = static_cast<uint8_t>(old[0]);
  int now = sqlite3_column_type(s, i);
  if (type == SQLITE_NULL) return now != SQLITE_NULL;
  if (type != now) return true;
  std::string_view payload = old.substr(1);
  if (type == SQLITE_INTEGER) {
    return static_cast<sqlite3_int64>(GetChangeU64(payload)) != sqlite3_column_int64(s, i);
  }
  if (type == SQLITE_FLOAT) {
    uint64_t x = GetChangeU64(payload);
    double d;
    std::memcpy(&d, &x, sizeof d);
    return d != sqlite3_column_double(s, i);
  }
  uint64_t n = 0;
  GetChangeVarint(&payload, &n);
  const void* p = sqlite3_column_blob(s, i);
  return n != static_cast<uint64_t>(sqlite3_column_bytes(s, i)) ||
         (n > 0 && std::memcmp(payload.data(), p, n) != 0);
}

// Change capture for one Execute through the session extension (only with
// capture_with_session, the reference the pre-update hook is tested
// against): a session on "main" that records every table except ours,
// remembering which tables it was asked about.
class Capture {
 public:
  ~Capture() {
    if (session_ != nullptr) sqlite3session_delete(session_);
  }
  int Start(sqlite3* db) {
    int rc = sqlite3session_create(db, "main", &session_);
    if (rc != SQLITE_OK) return rc;
    sqlite3session_table_filter(session_, &Capture::Filter, this);
    return sqlite3session_attach(session_, nullptr);
  }
  sqlite3_session* session() { return session_; }
  // Tables first written since the last call.
  std::vector<std::string> TakeNewTables() { return std::exchange(new_tables_, {}); }

 private:
  static int Filter(void* ctx, const char* table) {
    if (IsInternalTable(table)) return 0;
    static_cast<Capture*>(ctx)->new_tables_.emplace_back(table);
    return 1;
  }
  sqlite3_session* session_ = nullptr;
  std::vector<std::string> new_tables_;
};

}  // namespace

SqliteChanges::SqliteChanges(std::string name, wal::Db* db, Micros max_execute_time,
                             std::function<Micros()> clock, bool test_only_skip_undo_on_conflict,
                             bool allow_ddl, size_t max_result_bytes, bool capture_with_session)
    : Named(std::move(name)),
      db_(db),
      max_execute_time_(max_execute_time),
      clock_(std::move(clock)),
      test_only_skip_undo_on_conflict_(test_only_skip_undo_on_conflict),
      allow_ddl_(allow_ddl),
      max_result_bytes_(max_result_bytes),
      capture_with_session_(capture_with_session) {}

Status SqliteChanges::Init() {
  // No statement may load code into the agent: off for the SQL function and
  // the C API alike (SQLite's default, made explicit so a build or a library
  // that turns it on does not open the door).
  int loading = -1;
  if (sqlite3_db_config(db_->raw(), SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &loading) !=
          SQLITE_OK ||
      loading != 0) {
    return Err(Status::kInternal, "cannot turn extension loading off on the connection");
  }
  auto prep = [this](std::unique_ptr<wal::Stmt>* out, std::string_view sql) {
    return PrepareInto(*db_, out, sql);
  };
  TXC_RETURN_IF_ERROR(
      prep(&pk_info_, "SELECT name, pk FROM pragma_table_info(?1, 'main') ORDER BY cid"));
  TXC_RETURN_IF_ERROR(prep(&schema_version_, "PRAGMA main.schema_version"));
  // One hook per connection: a session installs its own while it lives.
  if (!capture_with_session_) sqlite3_preupdate_hook(db_->raw(), &SqliteChanges::OnPreupdate, this);
  if (max_execute_time_ > 0) {
    // Checked every few thousand virtual machine steps: cheap next to the work.
    sqlite3_progress_handler(db_->raw(), 4000, &SqliteChanges::OnProgress, this);
  }
  return Status::Ok();
}

// --------------------------------------------------------------- Execute

Status SqliteChanges::Execute(const std::vector<proto::Statement>& statements,
                              CapturedChanges* out) {
  std::optional<Capture> session;
  if (capture_with_session_) {
    session.emplace();
    if (int rc = session->Start(db_->raw()); rc != SQLITE_OK) {
      return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kInternal,
                 std::string("cannot start change capture: ") + sqlite3_errstr(rc));
    }
  } else {
    TXC_RETURN_IF_ERROR(RefreshTableKeys());  // the shapes the hook reads are this version's
    captured_.clear();
    capture_new_tables_.clear();
    capture_null_key_.clear();
    capture_rc_ = SQLITE_OK;
    capturing_ = true;
  }
  struct StopCapture {
    bool* on;
    ~StopCapture() { *on = false; }
  } stop_capture{&capturing_};
  auto new_tables = [&] {
    return session ? session->TakeNewTables() : std::exchange(capture_new_tables_, {});
  };
  std::vector<proto::ResultSet>& results = out->results;
  results.assign(statements.size(), proto::ResultSet());
  result_bytes_ = 0;
  {
    // The statements of this call run against one deadline (OnProgress).
    struct Deadline {
      SqliteChanges* self;
      ~Deadline() { self->execute_deadline_ = 0; }
    } deadline{this};
    execute_timed_out_ = false;
    if (max_execute_time_ > 0) execute_deadline_ = clock_() + max_execute_time_;
    auto timed_out = [&](size_t i) {
      return Err(Status::kTimeout,
                 "statement " + std::to_string(i + 1) + " (" + Snippet(statements[i].sql) +
                     ") was interrupted: the call ran past the resource's limit of " +
                     std::to_string(max_execute_time_ / kMillis) +
                     " ms per Execute; nothing of this call is applied");
    };
    for (size_t i = 0; i < statements.size(); ++i) {
      Status s = RunStatement(i, statements[i], &results[i]);
      for (const std::string& table : new_tables()) {
        if (s.ok()) s = CheckHasPrimaryKey(table, i, statements[i].sql);
      }
      if (s.ok() && !capture_null_key_.empty()) {
        s = Err(Status::kSqlError,
                "statement " + std::to_string(i + 1) + " (" + Snippet(statements[i].sql) +
                    ") writes a row of " + capture_null_key_ +
                    " whose PRIMARY KEY holds NULL; txcoord can only undo and lock rows whose "
                    "primary key has no NULL");
      }
      if (!s.ok() && execute_timed_out_) return timed_out(i);
      TXC_RETURN_IF_ERROR(s);
    }
  }

  SqliteBuffer& redo = out->redo;
  if (session) {
    if (int rc = sqlite3session_changeset(session->session(), &redo.n, &redo.p); rc != SQLITE_OK) {
      return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kInternal,
                 std::string("cannot read the change set: ") + sqlite3_errstr(rc));
    }
  } else {
    capturing_ = false;
    TXC_RETURN_IF_ERROR(WriteChangeSet(&redo));
  }
  out->keys.clear();
  if (redo.n > 0) TXC_RETURN_IF_ERROR(CollectKeys(redo, &out->keys));
  return Status::Ok();
}


// ------------------------------------------------- pre-update capture

void SqliteChanges::OnPreupdate(void* ctx, sqlite3* /*db*/, int op, const char* db_name,
                                const char* table, sqlite3_int64 /*key1*/,
                                sqlite3_int64 /*key2*/) {
  auto* self = static_cast<SqliteChanges*>(ctx);
  if (!self->capturing_ || self->capture_rc_ != SQLITE_OK) return;
  if (db_name == nullptr || sqlite3_stricmp(db_name, "main") != 0) return;
  if (table == nullptr || IsInternalTable(table)) return;
  self->RecordChange(op, table);
}

Result<SqliteChanges::CaptureShape*> SqliteChanges::ShapeOf(const std::string& table) {
  auto it = capture_shapes_.find(table);
  if (it != capture_shapes_.end()) return &it->second;
  CaptureShape shape;
  std::vector<std::string> names;
  {
    wal::Stmt& s = *pk_info_;
    TXC_RETURN_IF_ERROR(Internal(BindAll(s, table)));
    ResetOnExit reset{s};
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      if (!*row) break;
      names.push_back(s.ColumnText(0));
      // The column's position in the primary key (1-based; 0: not in it),
      // as a change set's table header holds it: sqlite3changeset_apply
      // skips a table whose header differs from the table.
      shape.pk.push_back(static_cast<unsigned char>(s.ColumnInt(1)));
      shape.has_pk = shape.has_pk || shape.pk.back() != 0;
    }
  }
  shape.n_cols = static_cast<int>(names.size());
  if (shape.has_pk) {
    std::string select, where;
    for (size_t i = 0; i < names.size(); ++i) {
      select += (i == 0 ? "" : ", ") + QuoteId(names[i]);
      if (shape.pk[i] == 0) continue;
      where += (where.empty() ? " WHERE " : " AND ") + QuoteId(names[i]) + " IS ?" +
               std::to_string(i + 1);
    }
    auto st = db_->Prepare("SELECT " + select + " FROM main." + QuoteId(table) + where);
    if (!st.ok()) return Internal(st.status());
    shape.row = std::move(*st);
  }
  return &capture_shapes_.emplace(table, std::move(shape)).first->second;
}

// Called by the hook for a change to `table` in "main" (not ours).
void SqliteChanges::RecordChange(int op, const char* table) {
  sqlite3* db = db_->raw();
  TableCapture* t = nullptr;
  for (TableCapture& c : captured_) {
    if (c.name == table) t = &c;
  }
  if (t == nullptr) {
    capture_new_tables_.emplace_back(table);
    auto shape = ShapeOf(table);
    if (!shape.ok()) {
      capture_rc_ = SQLITE_ERROR;
      return;
    }
    if ((*shape)->n_cols != sqlite3_preupdate_count(db)) {
      // A statement of this call changed the table's columns: read them again.
      capture_shapes_.erase(table);
      shape = ShapeOf(table);
      if (!shape.ok()) {
        capture_rc_ = SQLITE_ERROR;
        return;
      }
    }
    TableCapture c;
    c.name = table;
    c.n_cols = (*shape)->n_cols;
    c.pk = (*shape)->pk;
    c.has_pk = (*shape)->has_pk;
    captured_.push_back(std::move(c));
    t = &captured_.back();
  }
  // No primary key: nothing is recorded (as a session records nothing);
  // CheckHasPrimaryKey refuses the statement.
  if (!t->has_pk) return;
  if (t->n_cols != sqlite3_preupdate_count(db)) {
    capture_rc_ = SQLITE_SCHEMA;
    return;
  }
  RecordRow(*t, op);
  // An UPDATE that moves a row to another primary key leaves the old key
  // (recorded above) and arrives at the new one.
  if (op == SQLITE_UPDATE) RecordRow(*t, SQLITE_INSERT);
}

void SqliteChanges::RecordRow(TableCapture& t, int op) {
  sqlite3* db = db_->raw();
  bool insert = op == SQLITE_INSERT;
  auto value = [&](int i, sqlite3_value** v) {
    *v = nullptr;
    int rc = insert ? sqlite3_preupdate_new(db, i, v) : sqlite3_preupdate_old(db, i, v);
    if (rc != SQLITE_OK && capture_rc_ == SQLITE_OK) capture_rc_ = rc;
    return rc == SQLITE_OK;
  };
  std::string key;
  for (int i = 0; i < t.n_cols; ++i) {
    if (t.pk[i] == 0) continue;
    sqlite3_value* v = nullptr;
    if (!value(i, &v)) return;
    // A NULL in the primary key (a rowid table allows it): such a row can
    // be neither locked nor undone, so the statement is refused (Execute).
    if (v == nullptr || sqlite3_value_type(v) == SQLITE_NULL) {
      if (capture_null_key_.empty()) capture_null_key_ = t.name;
      return;
    }
    PutChangeValue(&key, v);
  }
  bool indirect = sqlite3_preupdate_depth(db) > 0;
  auto [it, fresh] = t.by_key.emplace(std::move(key), t.rows.size());
  if (!fresh) {
    RowChange& r = t.rows[it->second];
    if (!indirect) r.indirect = false;
    return;
  }
  RowChange r;
  r.op = op;
  r.indirect = indirect;
  for (int i = 0; i < t.n_cols; ++i) {
    sqlite3_value* v = nullptr;
    if ((!insert || t.pk[i] != 0) && !value(i, &v)) return;
    PutChangeValue(&r.record, v);
  }
  t.rows.push_back(std::move(r));
}

// The change set of what the call's recorded rows became.
Status SqliteChanges::WriteChangeSet(SqliteBuffer* redo) {
  auto fail = [this](int rc, const std::string& why) {
    return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kInternal,
               "cannot read the change set: " + why);
  };
  if (capture_rc_ != SQLITE_OK) return fail(capture_rc_, sqlite3_errstr(capture_rc_));
  TXC_RETURN_IF_ERROR(RefreshTableKeys());
  std::string out;
  for (TableCapture& t : captured_) {
    if (t.rows.empty()) continue;
    auto shape = ShapeOf(t.name);
    if (!shape.ok()) return shape.status();
    if ((*shape)->n_cols != t.n_cols || (*shape)->pk != t.pk) {
      return fail(SQLITE_SCHEMA, "table " + t.name + " changed shape during the call");
    }
    wal::Stmt& st = *(*shape)->row;
    sqlite3_stmt* s = st.raw();
    size_t rewind = out.size();
    out.push_back('T');
    PutChangeVarint(&out, static_cast<uint64_t>(t.n_cols));
    out.append(reinterpret_cast<const char*>(t.pk.data()), t.pk.size());
    out.append(t.name);
    out.push_back('\0');
    size_t header_end = out.size();
    for (const RowChange& r : t.rows) {
      st.Reset();
      ResetOnExit reset{st};
      std::vector<std::string_view> old;
      std::string_view rec = r.record;
      for (int i = 0; i < t.n_cols; ++i) {
        std::string_view v;
        if (!NextChangeValue(&rec, &v)) return fail(SQLITE_CORRUPT, "a recorded row is malformed");
        old.push_back(v);
        if (t.pk[i] != 0) {
          if (int rc = BindChangeValue(s, i + 1, v); rc != SQLITE_OK) return fail(rc, sqlite3_errstr(rc));
        }
      }
      auto found = st.Step();
      if (!found.ok()) return Internal(found.status());
      if (*found && r.op == SQLITE_INSERT) {
        out.push_back(static_cast<char>(SQLITE_INSERT));
        out.push_back(r.indirect ? 1 : 0);
        for (int i = 0; i < t.n_cols; ++i) PutChangeColumn(&out, s, i);
      } else if (*found) {
        // old.*: the key and the changed columns' old values; new.*: the
        // changed columns' new values; nothing when no column changed.
        std::string olds, news;
        bool changed_any = false;
        for (int i = 0; i < t.n_cols; ++i) {
          bool changed = ColumnChanged(s, i, old[i]);
          changed_any = changed_any || changed;
          if (changed || t.pk[i] != 0) {
            olds.append(old[i]);
          } else {
            olds.push_back('\0');
          }
          if (changed) {
            PutChangeColumn(&news, s, i);
          } else {
            news.push_back('\0');
          }
        }
        if (changed_any) {
          out.push_back(static_cast<char>(SQLITE_UPDATE));
          out.push_back(r.indirect ? 1 : 0);
          out.append(olds);
          out.append(news);
        }
      } else if (r.op != SQLITE_INSERT) {
        out.push_back(static_cast<char>(SQLITE_DELETE));
        out.push_back(r.indirect ? 1 : 0);
        out.append(r.record);
      }
    }
    if (out.size() == header_end) out.resize(rewind);
  }
  captured_.clear();
  if (out.empty()) return Status::Ok();
  redo->p = sqlite3_malloc64(out.size());
  if (redo->p == nullptr) return fail(SQLITE_NOMEM, "out of memory");
  std::memcpy(redo->p, out.data(), out.size());
  redo->n = static_cast<int>(out.size());
  return Status::Ok();
}

// The row, unique-key and parent-key locks of every change in `redo`, each once.
Status SqliteChanges::CollectKeys(const SqliteBuffer& redo, std::vector<std::string>* keys) {
  TXC_RETURN_IF_ERROR(RefreshTableKeys());  // this call's own DDL included
  sqlite3_changeset_iter* it = nullptr;
  int rc = sqlite3changeset_start(&it, redo.n, redo.p);
  while (rc == SQLITE_OK && sqlite3changeset_next(it) == SQLITE_ROW) {
    const char* table = nullptr;
    int n_cols = 0, op = 0, indirect = 0;
    sqlite3changeset_op(it, &table, &n_cols, &op, &indirect);
    std::string key = RowKeyOf(it, table);
    keys->push_back(std::move(key));
    // The injected bug takes no unique-key or parent-key locks.
    Status ks = test_only_skip_undo_on_conflict_ ? Status::Ok() : AddKeyLocks(it, table, n_cols, op, keys);
    if (!ks.ok()) {
      sqlite3changeset_finalize(it);
      return ks;
    }
  }
  int frc = it != nullptr ? sqlite3changeset_finalize(it) : rc;
  if (rc == SQLITE_OK) rc = frc;
  if (rc != SQLITE_OK) {
    return Err(Status::kInternal, std::string("cannot read the change set: ") + sqlite3_errstr(rc));
  }
  // A key can come from several rows (a parent two rows refer to).
  std::vector<std::string> unique;
  std::unordered_set<std::string> seen;
  for (std::string& k : *keys) {
    if (seen.insert(k).second) unique.push_back(std::move(k));
  }
  *keys = std::move(unique);
  return Status::Ok();
}

Status SqliteChanges::Invert(const SqliteBuffer& redo, SqliteBuffer* undo) {
  if (int rc = sqlite3changeset_invert(redo.n, redo.p, &undo->n, &undo->p); rc != SQLITE_OK) {
    return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kInternal,
               std::string("cannot invert the change set: ") + sqlite3_errstr(rc));
  }
  return Status::Ok();
}

// The pragmas a branch may read without an argument: they report settings
// or the schema and change nothing. Anything else without an argument may
// act (wal_checkpoint, optimize, shrink_memory, incremental_vacuum) and is
// refused, as is every pragma given a value.
static bool HarmlessPragmaRead(const char* name) {
  static const char* kReads[] = {
      "application_id", "auto_vacuum",    "busy_timeout",   "cache_size",   "collation_list",
      "compile_options", "data_version",  "database_list",  "encoding",     "foreign_key_check",
      "foreign_keys",   "freelist_count", "function_list",  "integrity_check", "journal_mode",
      "module_list",    "page_count",     "page_size",      "pragma_list",  "quick_check",
      "schema_version", "synchronous",    "table_list",     "user_version"};
  for (const char* p : kReads) {
    if (name != nullptr && strcasecmp(name, p) == 0) return true;
  }
  return false;
}

// The pragmas that take a table or index name as their argument and only
// describe it: PRAGMA table_info(accounts) is a read.
static bool IntrospectionPragma(const char* name) {
  static const char* kReadOnly[] = {"table_info",  "table_xinfo",       "index_list",
                                    "index_info",  "index_xinfo",       "foreign_key_list",
                                    "foreign_key_check", "integrity_check", "quick_check"};
  for (const char* p : kReadOnly) {
    if (name != nullptr && strcasecmp(name, p) == 0) return true;
  }
  return false;
}

// Schema changes, by authorizer action: what ddl=deny refuses.
static const char* DdlAction(int action) {
  switch (action) {
    case SQLITE_CREATE_INDEX: return "CREATE INDEX";
    case SQLITE_CREATE_TABLE: return "CREATE TABLE";
    case SQLITE_CREATE_TEMP_INDEX: return "CREATE TEMP INDEX";
    case SQLITE_CREATE_TEMP_TABLE: return "CREATE TEMP TABLE";
    case SQLITE_CREATE_TEMP_TRIGGER: return "CREATE TEMP TRIGGER";
    case SQLITE_CREATE_TEMP_VIEW: return "CREATE TEMP VIEW";
    case SQLITE_CREATE_TRIGGER: return "CREATE TRIGGER";
    case SQLITE_CREATE_VIEW: return "CREATE VIEW";
    case SQLITE_CREATE_VTABLE: return "CREATE VIRTUAL TABLE";
    case SQLITE_DROP_INDEX: return "DROP INDEX";
    case SQLITE_DROP_TABLE: return "DROP TABLE";
    case SQLITE_DROP_TEMP_INDEX: return "DROP INDEX";
    case SQLITE_DROP_TEMP_TABLE: return "DROP TABLE";
    case SQLITE_DROP_TEMP_TRIGGER: return "DROP TRIGGER";
    case SQLITE_DROP_TEMP_VIEW: return "DROP VIEW";
    case SQLITE_DROP_TRIGGER: return "DROP TRIGGER";
    case SQLITE_DROP_VIEW: return "DROP VIEW";
    case SQLITE_DROP_VTABLE: return "DROP VIRTUAL TABLE";
    case SQLITE_ALTER_TABLE: return "ALTER TABLE";
    case SQLITE_REINDEX: return "REINDEX";
    case SQLITE_ANALYZE: return "ANALYZE";
    default: return nullptr;
  }
}

// Runs while a user statement is compiled (PrepareUser), for every action
// it would take, including those of the triggers it fires; the resource's
// own statements are compiled without it.
int SqliteChanges::Authorize(void* ctx, int action, const char* a1, const char* a2,
                                    const char* /*db*/, const char* /*trigger*/) {
  auto* self = static_cast<SqliteChanges*>(ctx);
  auto deny = [&](std::string why) {
    self->auth_denied_ = std::move(why);
    return SQLITE_DENY;
  };
  if (!self->allow_ddl_) {
    if (const char* ddl = DdlAction(action)) {
      return deny(std::string(ddl) + " is not allowed: resource " + self->name() +
                  " is configured with ddl=deny (change its schema outside transactions, or "
                  "drop the option)");
    }
  }
  switch (action) {
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      return deny("transaction control is not allowed in a statement: the resource runs each "
                  "branch inside its own local transaction");
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      return deny("ATTACH/DETACH is not allowed: changes to other databases cannot be undone");
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
    case SQLITE_DROP_TABLE:
    case SQLITE_CREATE_TABLE:
      if (HasPrefixNoCase(a1, "txc_")) {
        return deny(std::string("table ") + a1 + " belongs to txcoord's branch log");
      }
      return SQLITE_OK;
    case SQLITE_ALTER_TABLE:
      if (HasPrefixNoCase(a2, "txc_")) {
        return deny(std::string("table ") + a2 + " belongs to txcoord's branch log");
      }
      return SQLITE_OK;
    case SQLITE_PRAGMA: {
      // a1 is the pragma, a2 its argument (null when it has none).
      if (a2 == nullptr ? HarmlessPragmaRead(a1) : IntrospectionPragma(a1)) return SQLITE_OK;
      return deny(std::string("PRAGMA ") + (a1 != nullptr ? a1 : "") +
                  (a2 != nullptr ? " with a value" : "") +
                  " is not allowed in a transaction branch: only reads of settings and of "
                  "the schema are (e.g. PRAGMA user_version, PRAGMA table_info(t))");
    }
    case SQLITE_FUNCTION:
      // a2 is the function's name. Extension loading is also off on the
      // connection (Init); refusing it here names the reason.
      if (a2 != nullptr && strcasecmp(a2, "load_extension") == 0) {
        return deny("load_extension() is not allowed: a branch cannot load code into the agent");
      }
      return SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

Result<sqlite3_stmt*> SqliteChanges::PrepareUser(const std::string& sql) {
  auto it = user_stmts_.find(sql);
  if (it != user_stmts_.end()) return it->second.get();
  sqlite3* db = db_->raw();
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  auth_denied_.clear();
  sqlite3_set_authorizer(db, &SqliteChanges::Authorize, this);
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, &tail);
  sqlite3_set_authorizer(db, nullptr, nullptr);
  UserStmt stmt(raw);
  if (rc != SQLITE_OK) {
    // A refusal of the authorizer comes back as SQLITE_AUTH, or, for a
    // function, as a plain error ("not authorized to use function"): either
    // way our reason says more.
    std::string msg = !auth_denied_.empty() ? auth_denied_ : std::string(sqlite3_errmsg(db));
    if (IsStorageRc(rc)) return Err(Status::kStorageFailed, msg);
    return Err(Status::kSqlError, msg);
  }
  if (stmt == nullptr) return Err(Status::kSqlError, "empty statement");
  for (const char* p = tail; p != nullptr && *p != '\0'; ++p) {
    if (!std::isspace(static_cast<unsigned char>(*p)) && *p != ';') {
      return Err(Status::kSqlError, "more than one SQL statement in one Statement; send them as "
                                    "separate statements");
    }
  }
  if (user_stmts_.size() >= kMaxCachedStatements) user_stmts_.clear();
  sqlite3_stmt* out = stmt.get();
  user_stmts_.emplace(sql, std::move(stmt));
  return out;
}

Status SqliteChanges::RunStatement(size_t index, const proto::Statement& st,
                                          proto::ResultSet* rs) {
  auto where = [&] {
    return " (statement " + std::to_string(index + 1) + ": " + Snippet(st.sql) + ")";
  };
  auto prepared = PrepareUser(st.sql);
  if (!prepared.ok()) {
    return Status(prepared.status().code(), prepared.status().message() + where());
  }
  sqlite3_stmt* s = *prepared;
  sqlite3* db = db_->raw();
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  int n_params = sqlite3_bind_parameter_count(s);
  if (static_cast<size_t>(n_params) != st.params.size()) {
    return Err(Status::kSqlError, "expected " + std::to_string(n_params) + " parameters, got " +
                                      std::to_string(st.params.size()) + where());
  }
  for (int i = 0; i < n_params; ++i) {
    int rc = BindValue(s, i + 1, st.params[i]);
    if (rc != SQLITE_OK) {
      return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kSqlError,
                 std::string("parameter ") + std::to_string(i + 1) + ": " + sqlite3_errmsg(db) +
                     where());
    }
  }
  int n_cols = sqlite3_column_count(s);
  for (int c = 0; c < n_cols; ++c) {
    const char* name = sqlite3_column_name(s, c);
    rs->columns.push_back(name != nullptr ? name : "");
  }
  int64_t total_before = sqlite3_total_changes64(db);
  for (;;) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
      proto::Row row;
      row.values.reserve(n_cols);
      for (int c = 0; c < n_cols; ++c) {
        row.values.push_back(ColumnValue(s, c));
        result_bytes_ += ResultBytes(row.values.back());
      }
      rs->rows.push_back(std::move(row));
      if (max_result_bytes_ > 0 && result_bytes_ > max_result_bytes_) {
        // Reading on would hold the whole result in the agent's memory (and
        // the reply could not reach the client anyway).
        sqlite3_reset(s);
        return Err(Status::kInvalidArgument,
                   "the results of this Execute call passed " + std::to_string(max_result_bytes_) +
                       " bytes (the resource's limit per call) at row " +
                       std::to_string(rs->rows.size()) + where() +
                       "; nothing of this call is applied: select fewer rows (LIMIT, a narrower "
                       "WHERE) or page through them");
      }
      continue;
    }
    if (rc == SQLITE_DONE) break;
    std::string msg = sqlite3_errmsg(db);
    sqlite3_reset(s);
    return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kSqlError, msg + where());
  }
  // sqlite3_changes() keeps the count of the last INSERT/UPDATE/DELETE: only
  // believe it when this statement changed something.
  rs->rows_changed = sqlite3_total_changes64(db) != total_before ? sqlite3_changes64(db) : 0;
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  if (st.__isset.expect_rows && st.expect_rows != rs->rows_changed) {
    return Err(Status::kExpectationFailed,
               "statement " + std::to_string(index + 1) + " (" + Snippet(st.sql) + ") changed " +
                   std::to_string(rs->rows_changed) + " rows, expected " +
                   std::to_string(st.expect_rows));
  }
  return Status::Ok();
}

Result<std::vector<std::string>> SqliteChanges::PrimaryKeyColumns(const std::string& table) {
  wal::Stmt& s = *pk_info_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, table)));
  ResetOnExit reset{s};
  std::vector<std::string> cols;
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Internal(row.status());
    if (!*row) break;
    if (s.ColumnInt(1) > 0) cols.push_back(s.ColumnText(0));
  }
  return cols;
}

Status SqliteChanges::CheckHasPrimaryKey(const std::string& table, size_t index,
                                                const std::string& sql) {
  TXC_RETURN_IF_ERROR(RefreshTableKeys());  // a statement of this call may have changed it
  auto shape = ShapeOf(table);
  if (!shape.ok()) return shape.status();
  if ((*shape)->has_pk) return Status::Ok();
  return Err(Status::kSqlError,
             "table " + table + " has no PRIMARY KEY; txcoord can only undo and lock rows of "
             "tables with a PRIMARY KEY (statement " + std::to_string(index + 1) + ": " +
                 Snippet(sql) + ")");
}

std::string SqliteChanges::Describe(const std::string& key) {
  std::string table;
  std::vector<std::string> unique_cols, values;
  if (!DecodeKey(key, &table, &unique_cols, &values)) return name() + ".<malformed lock key>";
  auto cols = unique_cols.empty() ? PrimaryKeyColumns(table)
                                  : Result<std::vector<std::string>>(unique_cols);
  std::string out = name() + "." + table;
  for (size_t i = 0; i < values.size(); ++i) {
    out += i == 0 ? " " : ",";
    if (cols.ok() && cols->size() == values.size()) {
      out += (*cols)[i];
    } else {
      out += "pk" + std::to_string(i + 1);
    }
    out += "=" + values[i];
  }
  return out;
}

// ------------------------------------------------------------- key locks

Result<TableKeys> SqliteChanges::LoadTableKeys(const std::string& table) {
  auto query = [this](const std::string& sql, const std::string& arg,
                      const std::function<void(wal::Stmt&)>& each) -> Status {
    auto st = db_->Prepare(sql);
    if (!st.ok()) return Internal(st.status());
    wal::Stmt& s = **st;
    TXC_RETURN_IF_ERROR(Internal(s.BindText(1, arg)));
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      if (!*row) return Status::Ok();
      each(s);
    }
  };
  struct Column {
    std::string name;  // lower case
    int pk = 0;        // position in the primary key, 1-based; 0: not in it
  };
  // Columns in change set order (what pragma table_info lists, as the session does).
  auto columns_of = [&](const std::string& t, std::vector<Column>* out) {
    return query("SELECT name, pk FROM pragma_table_info(?1, 'main') ORDER BY cid", t,
                 [&](wal::Stmt& s) {
                   out->push_back(
                       Column{Lower(s.ColumnText(0)), static_cast<int>(s.ColumnInt(1))});
                 });
  };
  auto position = [](const std::vector<Column>& cols, const std::string& name) {
    for (size_t i = 0; i < cols.size(); ++i) {
      if (cols[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };

  // A UNIQUE index's key columns: lower-case name and collation.
  struct Unique {
    std::string origin;
    std::vector<std::pair<std::string, std::string>> cols;
    bool usable = true;  // false: a column is an expression
  };
  auto uniques_of = [&](const std::string& t, std::vector<Unique>* out) -> Status {
    std::vector<std::pair<std::string, std::string>> names;  // index name, origin
    TXC_RETURN_IF_ERROR(query("SELECT name, origin FROM pragma_index_list(?1, 'main') "
                              "WHERE \"unique\" ORDER BY name",
                              t, [&](wal::Stmt& s) {
                                names.emplace_back(s.ColumnText(0), s.ColumnText(1));
                              }));
    for (const auto& [index, origin] : names) {
      Unique u;
      u.origin = origin;
      TXC_RETURN_IF_ERROR(query(
          "SELECT name, coll FROM pragma_index_xinfo(?1, 'main') WHERE key ORDER BY seqno", index,
          [&](wal::Stmt& s) {
            if (s.ColumnIsNull(0)) {
              u.usable = false;
            } else {
              u.cols.emplace_back(Lower(s.ColumnText(0)),
                                  s.ColumnIsNull(1) ? "binary" : Lower(s.ColumnText(1)));
            }
          }));
      out->push_back(std::move(u));
    }
    return Status::Ok();
  };
  auto fold_of = [](const std::string& coll) {
    return coll == "nocase" ? Fold::kNoCase : coll == "rtrim" ? Fold::kRtrim : Fold::kNone;
  };
  // The name a key column goes by in a lock key: its collation is part of it.
  auto key_name = [](const std::string& name, Fold fold) {
    return fold == Fold::kNoCase ? name + " collate nocase"
           : fold == Fold::kRtrim ? name + " collate rtrim"
                                  : name;
  };

  TableKeys out;
  std::vector<Column> cols;
  TXC_RETURN_IF_ERROR(columns_of(table, &cols));

  // UNIQUE indexes other than the primary key (its rows are locked already).
  std::vector<Unique> uniques;
  TXC_RETURN_IF_ERROR(uniques_of(table, &uniques));
  std::string pk_cols;
  for (const Column& c : cols) {
    if (c.pk > 0) pk_cols += (pk_cols.empty() ? "" : ", ") + QuoteId(c.name);
  }
  for (const Unique& u : uniques) {
    if (u.origin == "pk" || !u.usable || u.cols.empty()) continue;
    // (key name, position, fold, collation), sorted by key name.
    std::vector<std::tuple<std::string, int, Fold, std::string>> key;
    for (const auto& [name, coll] : u.cols) {
      int pos = position(cols, name);
      if (pos < 0) break;
      key.emplace_back(key_name(name, fold_of(coll)), pos, fold_of(coll), coll);
    }
    if (key.size() != u.cols.size()) continue;
    std::sort(key.begin(), key.end());
    KeyGroup g;
    std::vector<std::string> names;
    std::string where;
    for (const auto& [name, pos, fold, coll] : key) {
      names.push_back(name);
      g.cols.push_back(pos);
      g.folds.push_back(fold);
      where += (where.empty() ? " WHERE " : " AND ") + QuoteId(cols[pos].name) + " = ?" +
               std::to_string(names.size()) + " COLLATE " + QuoteId(coll);
    }
    g.prefix = UniqueKeyPrefix(table, names);
    if (!pk_cols.empty()) {
      g.holders_sql = "SELECT " + pk_cols + " FROM main." + QuoteId(table) + where + " LIMIT 2";
    }
    out.groups.push_back(std::move(g));
  }

  // FOREIGN KEYs: the parent key each row refers to, as the parent's lock key.
  struct Ref {
    std::string parent;
    std::vector<std::string> from, to;  // to: empty names when the parent's primary key
  };
  std::map<int64_t, Ref> refs;
  TXC_RETURN_IF_ERROR(query("SELECT id, \"table\", \"from\", \"to\" FROM "
                            "pragma_foreign_key_list(?1, 'main') ORDER BY id, seq",
                            table, [&](wal::Stmt& s) {
                              Ref& r = refs[s.ColumnInt(0)];
                              r.parent = s.ColumnText(1);
                              r.from.push_back(Lower(s.ColumnText(2)));
                              r.to.push_back(s.ColumnIsNull(3) ? "" : Lower(s.ColumnText(3)));
                            }));
  for (const auto& [id, ref] : refs) {
    std::string parent;
    TXC_RETURN_IF_ERROR(query("SELECT name FROM main.sqlite_schema WHERE type = 'table' AND "
                              "name = ?1 COLLATE NOCASE",
                              ref.parent, [&](wal::Stmt& s) { parent = s.ColumnText(0); }));
    if (parent.empty()) continue;  // refers to no table: nothing to protect
    std::vector<Column> pcols;
    TXC_RETURN_IF_ERROR(columns_of(parent, &pcols));
    std::vector<int> ppk;  // parent primary key, by position in the key
    for (size_t i = 0; i < pcols.size(); ++i) {
      if (pcols[i].pk > 0) {
        if (ppk.size() < static_cast<size_t>(pcols[i].pk)) ppk.resize(pcols[i].pk, -1);
        ppk[pcols[i].pk - 1] = static_cast<int>(i);
      }
    }
    // (parent column name, parent position, child position) per column.
    std::vector<std::tuple<std::string, int, int>> pairs;
    bool usable = true;
    for (size_t i = 0; i < ref.from.size(); ++i) {
      int child = position(cols, ref.from[i]);
      int par = ref.to[i].empty() ? (i < ppk.size() ? ppk[i] : -1) : position(pcols, ref.to[i]);
      if (child < 0 || par < 0) {
        usable = false;
        break;
      }
      pairs.emplace_back(pcols[par].name, par, child);
    }
    if (!usable || pairs.empty()) continue;
    bool is_pk = pairs.size() == ppk.size();
    for (const auto& p : pairs) is_pk = is_pk && pcols[std::get<1>(p)].pk > 0;
    KeyGroup g;
    if (is_pk) {
      // The parent's row key: primary-key values in the parent's column order.
      std::sort(pairs.begin(), pairs.end(),
                [](const auto& a, const auto& b) { return std::get<1>(a) < std::get<1>(b); });
      g.prefix = parent;
      g.prefix.push_back('\0');
      for (const auto& p : pairs) {
        g.cols.push_back(std::get<2>(p));
        g.folds.push_back(Fold::kNone);
      }
    } else {
      // The parent's unique key, folded as the parent's index on it (which
      // SQLite requires) compares.
      std::vector<Unique> puniques;
      TXC_RETURN_IF_ERROR(uniques_of(parent, &puniques));
      const Unique* match = nullptr;
      for (const Unique& u : puniques) {
        if (!u.usable || u.cols.size() != pairs.size()) continue;
        bool all = true;
        for (const auto& p : pairs) {
          bool found = false;
          for (const auto& c : u.cols) found = found || c.first == std::get<0>(p);
          all = all && found;
        }
        if (all) {
          match = &u;
          break;
        }
      }
      if (match == nullptr) continue;  // no parent key: SQLite refuses these rows itself
      std::vector<std::tuple<std::string, int, Fold>> key;  // key name, child position, fold
      for (const auto& p : pairs) {
        Fold fold = Fold::kNone;
        for (const auto& c : match->cols) {
          if (c.first == std::get<0>(p)) fold = fold_of(c.second);
        }
        key.emplace_back(key_name(std::get<0>(p), fold), std::get<2>(p), fold);
      }
      std::sort(key.begin(), key.end());
      std::vector<std::string> names;
      for (const auto& [name, child, fold] : key) {
        names.push_back(name);
        g.cols.push_back(child);
        g.folds.push_back(fold);
      }
      g.prefix = UniqueKeyPrefix(parent, names);
    }
    out.groups.push_back(std::move(g));
  }

  if (!out.groups.empty()) {
    std::string where;
    for (size_t i = 0; i < cols.size(); ++i) {
      if (cols[i].pk == 0) continue;
      where += where.empty() ? " WHERE " : " AND ";
      where += QuoteId(cols[i].name) + " IS ?" + std::to_string(i + 1);
    }
    if (where.empty()) where = " WHERE rowid IS ?1";  // never used: no primary key, no capture
    std::string select;
    for (const Column& c : cols) select += (select.empty() ? "" : ", ") + QuoteId(c.name);
    out.row_sql = "SELECT " + select + " FROM main." + QuoteId(table) + where;
  }
  return out;
}

Status SqliteChanges::RefreshTableKeys() {
  int64_t version = 0;
  {
    wal::Stmt& s = *schema_version_;
    s.Reset();
    ResetOnExit reset{s};
    auto row = s.Step();
    if (!row.ok()) return Internal(row.status());
    if (*row) version = s.ColumnInt(0);
  }
  if (version != table_keys_version_) {
    table_keys_.clear();
    capture_shapes_.clear();
    table_keys_version_ = version;
  }
  return Status::Ok();
}

// REQUIRES: RefreshTableKeys() since the schema last changed.
Result<TableKeys*> SqliteChanges::KeysOfTable(const std::string& table) {
  auto it = table_keys_.find(table);
  if (it == table_keys_.end()) {
    auto keys = LoadTableKeys(table);
    if (!keys.ok()) return keys.status();
    it = table_keys_.emplace(table, std::move(*keys)).first;
  }
  return &it->second;
}

// Reads the current values of the row the change `it` points at (found by
// the primary key of its old values), in change set column order; `row`
// stays empty when there is no such row.
Status SqliteChanges::ReadRow(TableKeys& t, sqlite3_changeset_iter* it, int n_cols,
                                     std::vector<OwnedValue>* row) {
  row->clear();
  if (t.row_sql.empty()) return Status::Ok();
  if (!t.row_stmt) {
    auto st = db_->Prepare(t.row_sql);
    if (!st.ok()) return Internal(st.status());
    t.row_stmt = std::move(*st);
  }
  wal::Stmt& s = *t.row_stmt;
  s.Reset();
  ResetOnExit reset{s};
  unsigned char* pk = nullptr;
  int pk_cols = 0;
  sqlite3changeset_pk(it, &pk, &pk_cols);
  for (int c = 0; c < n_cols && c < pk_cols; ++c) {
    if (!pk[c]) continue;
    sqlite3_value* v = nullptr;
    sqlite3changeset_old(it, c, &v);
    if (v == nullptr || sqlite3_bind_value(s.raw(), c + 1, v) != SQLITE_OK) {
      return Err(Status::kInternal, "cannot look up a changed row by its primary key");
    }
  }
  auto found = s.Step();
  if (!found.ok()) return Internal(found.status());
  if (!*found) return Status::Ok();
  for (int c = 0; c < n_cols && c < sqlite3_column_count(s.raw()); ++c) {
    row->emplace_back(sqlite3_value_dup(sqlite3_column_value(s.raw(), c)));
  }
  return Status::Ok();
}

// Names the row that holds a UNIQUE value the change `it` (of an undo, about
// to insert or update a row of `table`) wants, or "" if none is found.
std::string SqliteChanges::UniqueCollision(const std::string& table,
                                                  sqlite3_changeset_iter* it, int n_cols, int op,
                                                  const std::string& own_key) {
  if (!RefreshTableKeys().ok()) return "";
  auto tk = KeysOfTable(table);
  if (!tk.ok()) return "";
  TableKeys& t = **tk;
  std::vector<sqlite3_value*> vals(n_cols, nullptr);
  for (int c = 0; c < n_cols; ++c) sqlite3changeset_new(it, c, &vals[c]);
  std::vector<OwnedValue> current;
  if (op == SQLITE_UPDATE && ReadRow(t, it, n_cols, &current).ok()) {
    for (int c = 0; c < n_cols && c < static_cast<int>(current.size()); ++c) {
      if (vals[c] == nullptr) vals[c] = current[c].get();
    }
  }
  for (const KeyGroup& g : t.groups) {
    if (g.holders_sql.empty()) continue;
    auto st = db_->Prepare(g.holders_sql);
    if (!st.ok()) continue;
    wal::Stmt& s = **st;
    std::string unique_key = g.prefix;
    bool complete = true;
    for (size_t i = 0; i < g.cols.size(); ++i) {
      sqlite3_value* v = g.cols[i] < n_cols ? vals[g.cols[i]] : nullptr;
      if (v == nullptr || sqlite3_value_type(v) == SQLITE_NULL) {
        complete = false;
        break;
      }
      AppendKeyValue(&unique_key, v, g.folds[i]);
      sqlite3_bind_value(s.raw(), static_cast<int>(i) + 1, v);
    }
    if (!complete) continue;
    for (;;) {
      auto row = s.Step();
      if (!row.ok() || !*row) break;
      std::string key = table;
      key.push_back('\0');
      for (int c = 0; c < sqlite3_column_count(s.raw()); ++c) {
        AppendKeyValue(&key, sqlite3_column_value(s.raw(), c));
      }
      if (key == own_key) continue;
      std::string held = Describe(unique_key);
      return "restoring it would break the UNIQUE key " + held.substr(name().size() + 1) +
             ", which " + Describe(key) + " holds";
    }
  }
  return "";
}

// Appends the unique-key and parent-key locks of the change `it` points at.
Status SqliteChanges::AddKeyLocks(sqlite3_changeset_iter* it, const std::string& table,
                                         int n_cols, int op, std::vector<std::string>* keys) {
  auto tk = KeysOfTable(table);
  if (!tk.ok()) return tk.status();
  TableKeys& t = **tk;
  if (t.groups.empty()) return Status::Ok();
  std::vector<sqlite3_value*> before(n_cols, nullptr), after(n_cols, nullptr);
  std::vector<bool> changed_col(n_cols, false);
  for (int c = 0; c < n_cols; ++c) {
    if (op != SQLITE_INSERT) sqlite3changeset_old(it, c, &before[c]);
    if (op != SQLITE_DELETE) sqlite3changeset_new(it, c, &after[c]);
    changed_col[c] = after[c] != nullptr;
  }
  // An UPDATE carries only the columns it changed (and the primary key): a
  // key that is partly changed needs its unchanged columns from the row.
  std::vector<OwnedValue> owned;
  bool read_row = false;
  auto add = [&](const KeyGroup& g, const std::vector<sqlite3_value*>& vals) {
    std::string key = g.prefix;
    for (size_t i = 0; i < g.cols.size(); ++i) {
      int c = g.cols[i];
      sqlite3_value* v = c < n_cols ? vals[c] : nullptr;
      // No value: the column is not captured. NULL: never collides, refers to nothing.
      if (v == nullptr || sqlite3_value_type(v) == SQLITE_NULL) return;
      AppendKeyValue(&key, v, g.folds[i]);
    }
    keys->push_back(std::move(key));
  };
  for (const KeyGroup& g : t.groups) {
    if (op == SQLITE_INSERT) {
      add(g, after);
      continue;
    }
    if (op == SQLITE_DELETE) {
      add(g, before);
      continue;
    }
    bool changed = false, partial = false;
    for (int c : g.cols) {
      if (c < n_cols && changed_col[c]) {
        changed = true;
      } else {
        partial = true;
      }
    }
    if (!changed) continue;  // the key stays as it was, under the row's lock
    if (partial && !read_row) {
      read_row = true;
      TXC_RETURN_IF_ERROR(ReadRow(t, it, n_cols, &owned));
      for (int c = 0; c < n_cols && c < static_cast<int>(owned.size()); ++c) {
        if (!changed_col[c]) before[c] = after[c] = owned[c].get();
      }
    }
    add(g, before);
    add(g, after);
  }
  return Status::Ok();
}

int SqliteChanges::OnProgress(void* ctx) {
  auto* self = static_cast<SqliteChanges*>(ctx);
  if (self->execute_deadline_ == 0 || self->clock_() < self->execute_deadline_) return 0;
  self->execute_timed_out_ = true;
  return 1;  // interrupts the statement: SQLITE_INTERRUPT
}

// The undo restores a branch's before-image, or nothing: the rows it must
// restore are locked by the branch, so a conflict means someone wrote the
// file behind txcoord's back. A row merely changed (or re-inserted with the
// same key) is overwritten with the before-image; anything that would leave
// the before-image unrestored (a UNIQUE or FOREIGN KEY constraint, a row to
// restore that is gone) abandons the whole undo, so the branch keeps it and
// a later Rollback, once the row is fixed, restores everything.
int SqliteChanges::OnUndoConflict(void* ctx, int type, sqlite3_changeset_iter* it) {
  auto* self = static_cast<SqliteChanges*>(ctx);
  std::string row, key;
  const char* table = nullptr;
  int op = 0, n_cols = 0;
  if (type != SQLITE_CHANGESET_FOREIGN_KEY) {
    int indirect = 0;
    sqlite3changeset_op(it, &table, &n_cols, &op, &indirect);
    key = RowKeyOf(it, table != nullptr ? table : "?");
    row = self->Describe(key);
  }
  std::string what = "?";
  int decision = SQLITE_CHANGESET_ABORT;
  switch (type) {
    case SQLITE_CHANGESET_DATA:
      what = "row changed outside its branch";
      decision = SQLITE_CHANGESET_REPLACE;
      break;
    case SQLITE_CHANGESET_CONFLICT:
      what = "row re-inserted outside its branch";
      decision = SQLITE_CHANGESET_REPLACE;
      break;
    case SQLITE_CHANGESET_NOTFOUND:
      if (op == SQLITE_DELETE) {
        what = "row the branch inserted is gone already (deleted outside the branch, or by an "
               "ON DELETE CASCADE of this undo)";
        decision = SQLITE_CHANGESET_OMIT;  // the before-image has no such row either
      } else {
        what = "row deleted outside its branch, so it cannot be restored";
      }
      break;
    case SQLITE_CHANGESET_CONSTRAINT:
      what = table != nullptr ? self->UniqueCollision(table, it, n_cols, op, key) : "";
      if (what.empty()) {
        what = "restoring it would break a NOT NULL, CHECK or UNIQUE constraint";
      }
      if (self->test_only_skip_undo_on_conflict_) decision = SQLITE_CHANGESET_OMIT;  // the injected bug
      break;
    case SQLITE_CHANGESET_FOREIGN_KEY:  // once, for the whole change set
      what = "restoring the rows would break a FOREIGN KEY: " + self->ForeignKeyViolation();
      break;
  }
  const char* action = decision == SQLITE_CHANGESET_REPLACE ? "overwrite"
                       : decision == SQLITE_CHANGESET_OMIT  ? "skip"
                                                            : "abandon the undo";
  // A row already as the before-image wants it (absent) is worth a warning,
  // not an error: nothing of the undo is lost.
  Logger("wal")->log(decision == SQLITE_CHANGESET_OMIT && !self->test_only_skip_undo_on_conflict_
                         ? spdlog::level::warn
                         : spdlog::level::err,
                     "rollback found a conflicting row resource={} txid={} row=\"{}\" "
                     "problem=\"{}\" action=\"{}\"",
                     self->name(), self->undo_txid_ != nullptr ? ToString(*self->undo_txid_) : "?",
                     row.empty() ? "-" : row, what, action);
  if (decision == SQLITE_CHANGESET_ABORT && self->undo_conflict_.empty()) {
    self->undo_conflict_ = row.empty() ? what : row + ": " + what;
  }
  return decision;
}

// Names one row that breaks a foreign key, for the error message.
std::string SqliteChanges::ForeignKeyViolation() {
  auto st = db_->Prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT 1");
  if (!st.ok()) return "(cannot tell which: " + st.status().message() + ")";
  wal::Stmt& s = **st;
  auto row = s.Step();
  if (!row.ok() || !*row) return "(cannot tell which)";
  std::string out = "a row of " + name() + "." + s.ColumnText(0);
  if (!s.ColumnIsNull(1)) out += " (rowid " + std::to_string(s.ColumnInt(1)) + ")";
  return out + " would refer to a missing row of " + name() + "." + s.ColumnText(2);
}

// sqlite3changeset_apply passes over, and reports success for, the changes
// of a table that lost columns or whose primary key changed since the change
// set was written: such an undo would end a rollback with the branch's rows
// still in place. Names the first such table.
Status SqliteChanges::CheckUndoShapes(const TxId& txid, const std::string& undo) {
  sqlite3_changeset_iter* it = nullptr;
  int rc = sqlite3changeset_start(&it, static_cast<int>(undo.size()), const_cast<char*>(undo.data()));
  std::unordered_set<std::string> checked;
  Status out = RefreshTableKeys();  // the shapes read below are the table's now
  while (rc == SQLITE_OK && out.ok() && sqlite3changeset_next(it) == SQLITE_ROW) {
    const char* table = nullptr;
    int n_cols = 0, op = 0, indirect = 0;
    sqlite3changeset_op(it, &table, &n_cols, &op, &indirect);
    if (table == nullptr || !checked.insert(table).second) continue;
    unsigned char* pk = nullptr;
    int pk_cols = 0;
    sqlite3changeset_pk(it, &pk, &pk_cols);
    auto shape = ShapeOf(table);
    if (!shape.ok()) {
      out = shape.status();
      break;
    }
    const std::vector<unsigned char>& now = (*shape)->pk;  // per column: its key position
    bool same = static_cast<int>(now.size()) >= n_cols;
    for (int c = 0; same && c < n_cols && c < pk_cols; ++c) same = now[c] == pk[c];
    if (!same) {
      out = Err(Status::kConflict,
                "cannot roll back branch " + ToString(txid) + ": table " + table +
                    (now.empty() ? " no longer exists"
                                 : " no longer has the columns and PRIMARY KEY the branch "
                                   "wrote it with (" + std::to_string(n_cols) + " columns then, " +
                                   std::to_string(now.size()) + " now)") +
                    ". Nothing was undone: the branch keeps its changes, undo and locks; give "
                    "the table back its shape and roll back again");
    }
  }
  int frc = it != nullptr ? sqlite3changeset_finalize(it) : rc;
  if (out.ok() && (rc != SQLITE_OK || frc != SQLITE_OK)) {
    return Err(Status::kInternal, "cannot read the undo of branch " + ToString(txid));
  }
  return out;
}

Status SqliteChanges::ApplyUndo(const TxId& txid, const std::string& undo) {
  TXC_RETURN_IF_ERROR(CheckUndoShapes(txid, undo));
  undo_txid_ = &txid;
  undo_conflict_.clear();
  // The undo holds the inverse of every change the branch made, its
  // triggers' changes included (captured as indirect): a trigger fired by
  // the undo would write again what the undo takes back.
  sqlite3* db = db_->raw();
  int triggers = 0;
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, -1, &triggers);
  if (triggers != 0) sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
  struct Restore {
    sqlite3* db;
    int on;
    ~Restore() {
      if (on != 0) sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, nullptr);
    }
  } restore{db, triggers};
  int rc = sqlite3changeset_apply(db_->raw(), static_cast<int>(undo.size()),
                                  const_cast<char*>(undo.data()), nullptr, &SqliteChanges::OnUndoConflict,
                                  this);
  undo_txid_ = nullptr;
  if (rc == SQLITE_OK) return Status::Ok();
  std::string what = "cannot roll back branch " + ToString(txid) + ": ";
  if (!undo_conflict_.empty()) {
    return Err(Status::kConflict,
               what + undo_conflict_ + ". Nothing was undone: the branch keeps its changes, undo "
                   "and locks; fix that row (it was written outside txcoord) and roll back again");
  }
  std::string msg = sqlite3_errmsg(db_->raw());
  if (IsStorageRc(rc)) return Err(Status::kStorageFailed, what + msg);
  if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
    return Err(Status::kUnavailable, what + "the database is busy (" + msg +
                                         "); nothing was undone, retry");
  }
  return Err(Status::kInternal, what + msg);
}

}  // namespace txc::participant::internal
