#include "participant/sqlite_resource.h"

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <map>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/codec.h"
#include "common/log.h"
#include "participant/lock_table.h"
#include "wal/sqlite.h"

namespace txc::participant {

namespace {

// Final branch rows (COMMITTED, ABORTED tombstones) are kept this long so a
// late or duplicated request still finds them, then purged by the worker.
constexpr int64_t kFinalRetentionMs = 10 * 60 * 1000;
constexpr Micros kPurgeInterval = 30 * kSeconds;
constexpr int kPurgeBatch = 10000;  // rows per purge, to bound one group's time
constexpr size_t kMaxCachedStatements = 256;

Micros SystemNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool HasPrefixNoCase(const char* s, const char* prefix) {
  return s != nullptr && strncasecmp(s, prefix, std::strlen(prefix)) == 0;
}

// Tables the resource keeps for itself, never captured nor locked.
bool IsInternalTable(const char* t) {
  return HasPrefixNoCase(t, "txc_") || HasPrefixNoCase(t, "sqlite_");
}

bool IsStorageRc(int rc) {
  switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_NOMEM:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

std::string Snippet(const std::string& sql) {
  constexpr size_t kMax = 120;
  if (sql.size() <= kMax) return sql;
  return sql.substr(0, kMax) + "...";
}

// ------------------------------------------------------- on-disk encodings
// txc_branches.participants and txc_changes.keys hold proto::PreparedRecord
// and proto::ChangeKeysRecord (protocol/txcoord.thrift) through the codec of
// every persisted record (common/codec.h).
//
// Files written before that hold a legacy layout, still read (never
// rewritten): a u32 little-endian count, then per item a u32 little-endian
// length and the bytes; participants flattened as resource, address pairs,
// without their incarnation. A record starts with its field 1 header
// (T_LIST, id 1: 0f 00 01) and the list's element type (0c struct, 0b
// binary). Read as a legacy count those four bytes claim 0x0c01000f or
// 0x0b01000f items: an odd number of participant strings (never written) or
// over 184M lock keys of at least 7 bytes each, more than one SQLite blob can
// hold. So the first four bytes tell the layouts apart.

bool IsRecord(std::string_view in, char elem_type) {
  return in.size() >= 4 && in[0] == '\x0f' && in[1] == '\x00' && in[2] == '\x01' &&
         in[3] == elem_type;
}
constexpr char kStructType = '\x0c';  // T_STRUCT
constexpr char kBinaryType = '\x0b';  // T_STRING

// u32 little-endian lengths and counts: the lock keys' layout (below) and
// the legacy one.
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(static_cast<uint8_t>((*in)[i])) << (8 * i);
  in->remove_prefix(4);
  return true;
}

void PutBytes(std::string* out, std::string_view b) {
  PutU32(out, static_cast<uint32_t>(b.size()));
  out->append(b);
}

bool GetBytes(std::string_view* in, std::string_view* b) {
  uint32_t n = 0;
  if (!GetU32(in, &n) || in->size() < n) return false;
  *b = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

bool DecodeLegacyList(std::string_view in, std::vector<std::string>* items) {
  uint32_t n = 0;
  if (!GetU32(&in, &n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view b;
    if (!GetBytes(&in, &b)) return false;
    items->emplace_back(b);
  }
  return in.empty();
}

// Empty if the record could not be encoded (a record is never empty).
std::string EncodeKeys(const std::vector<std::string>& keys) {
  proto::ChangeKeysRecord r;
  r.keys = keys;
  return codec::Encode(r);
}

bool DecodeKeys(std::string_view in, std::vector<std::string>* keys) {
  if (!IsRecord(in, kBinaryType)) return DecodeLegacyList(in, keys);
  proto::ChangeKeysRecord r;
  if (!codec::Decode(in, &r)) return false;
  *keys = std::move(r.keys);
  return true;
}

std::string EncodeParticipants(const std::vector<proto::Participant>& ps) {
  proto::PreparedRecord r;
  r.participants = ps;
  return codec::Encode(r);
}

bool DecodeParticipants(std::string_view in, std::vector<proto::Participant>* ps) {
  if (IsRecord(in, kStructType)) {
    proto::PreparedRecord r;
    if (!codec::Decode(in, &r)) return false;
    *ps = std::move(r.participants);
    return true;
  }
  std::vector<std::string> flat;
  if (!DecodeLegacyList(in, &flat) || flat.size() % 2 != 0) return false;
  for (size_t i = 0; i < flat.size(); i += 2) {
    proto::Participant p;
    p.resource = flat[i];
    p.address = flat[i + 1];
    ps->push_back(std::move(p));
  }
  return true;
}

// A row lock key: table name, NUL, then each primary-key value (column order)
// as a tag byte and its bytes: 'i' int64 big-endian, 'f' double bits, 't'
// text, 'b' blob (both length-prefixed), 'n' NULL. A unique-key lock key:
// table name, NUL, 'u', the count and the (lower-case, sorted) names of the
// key's columns, then their values as above.
// How a key column's text compares: byte for byte, or folded as its
// collation folds it (so 'X' and 'x' are one key under NOCASE).
enum class Fold : char { kNone, kNoCase, kRtrim };

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
    uint32_t n = 0;
    if (!GetU32(&key, &n)) return false;
    for (uint32_t i = 0; i < n; ++i) {
      std::string_view c;
      if (!GetBytes(&key, &c)) return false;
      columns->emplace_back(c);
    }
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

// The lock keys of one table beyond its row keys: a group per UNIQUE index
// and per FOREIGN KEY. A group's key is `prefix` followed by the values of
// `cols` (change set column positions, in key order).
struct KeyGroup {
  std::string prefix;
  std::vector<int> cols;
  std::vector<Fold> folds;  // per column of cols
  // For a UNIQUE index of the table itself: finds the rows holding a value
  // (primary-key columns), to name the row an undo collides with.
  std::string holders_sql;
};
struct TableKeys {
  std::vector<KeyGroup> groups;
  std::string row_sql;  // reads the current row by primary key
  std::unique_ptr<wal::Stmt> row_stmt;
};

struct ValueDeleter {
  void operator()(sqlite3_value* v) const { sqlite3_value_free(v); }
};
using OwnedValue = std::unique_ptr<sqlite3_value, ValueDeleter>;

// Binding helpers for internal statements.
struct Blob {
  std::string_view data;
};
Status BindOne(wal::Stmt& s, int i, int64_t v) { return s.BindInt(i, v); }
Status BindOne(wal::Stmt& s, int i, int v) { return s.BindInt(i, v); }
Status BindOne(wal::Stmt& s, int i, const std::string& v) { return s.BindText(i, v); }
Status BindOne(wal::Stmt& s, int i, Blob v) { return s.BindBlob(i, v.data); }

template <typename... Args>
Status BindAll(wal::Stmt& s, const Args&... args) {
  s.Reset();
  int i = 0;
  Status st;
  ((st.ok() ? (void)(st = BindOne(s, ++i, args)) : (void)0), ...);
  return st;
}

// Resets the statement when leaving scope, so no read stays open.
struct ResetOnExit {
  wal::Stmt& s;
  ~ResetOnExit() { s.Reset(); }
};

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using UserStmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

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

// One queued operation and, once run, its outcome.
struct Op {
  enum Kind { kExecute, kPrepare, kExecuteAndPrepare, kCommit, kRollback };
  Kind kind = kExecute;
  TxId txid;
  std::vector<proto::Statement> statements;
  PrepareInfo info;
  ResourceManager::Callback<ExecuteResult> exec_done;
  ResourceManager::Callback<Status> status_done;

  ExecuteResult result;    // result.status is the outcome for every kind
  bool finalized = false;  // outcome fixed even if the group is re-run

  bool NeedsSync() const { return kind == kPrepare || kind == kExecuteAndPrepare || kind == kCommit; }
};

// Change capture for one Execute: a session on "main" that records every
// table except ours, remembering which tables it was asked about.
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

// A buffer allocated by SQLite.
struct SqliteBuffer {
  void* p = nullptr;
  int n = 0;
  ~SqliteBuffer() { sqlite3_free(p); }
};

}  // namespace

// ------------------------------------------------------------------ Impl

class SqliteResource::Impl {
 public:
  Impl(std::string name, SqliteResourceOptions options, std::unique_ptr<wal::Db> db)
      : name_(std::move(name)), options_(options), db_(std::move(db)) {}

  ~Impl() {
    *alive_ = false;  // a drain task or barrier still queued finds us gone
    if (options_.executor != nullptr) {
      // A crashed (simulated) node runs nothing further: queued operations
      // are dropped, their callbacks never called.
      std::lock_guard<std::mutex> l(mu_);
      queue_.clear();
    } else {
      {
        std::lock_guard<std::mutex> l(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      if (thread_.joinable()) thread_.join();
    }
    user_stmts_.clear();  // before the Db closes
    table_keys_.clear();
  }

  Status Init();
  Result<std::vector<RecoveredBranch>> Recover();
  void Enqueue(std::unique_ptr<Op> op);

  const std::string name_;
  const SqliteResourceOptions options_;
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<size_t> locks_count{0};
  std::atomic<bool> inject_failure{false};

 private:
  // Worker: the thread's loop, or the executor's drain task.
  void Run();
  void PostDrain();
  void Drain();
  void TakeBatch(std::vector<std::unique_ptr<Op>>* ops);  // under mu_
  void WaitForBarrier();
  // True when the group committed and needs durability before its callbacks.
  bool RunGroup(std::vector<std::unique_ptr<Op>>& ops);
  Status RunOp(Op& op);
  bool FailGroup(std::vector<std::unique_ptr<Op>>& ops, const Status& why);
  int64_t WallMs() const { return wall_clock_() / kMillis; }
  void Fail(const Status& why);
  Status Sticky() const;
  void MaybePurge();
  static void Deliver(Op& op);

  // Branch operations, inside the group transaction and the op's savepoint.
  Status DoExecute(const TxId& txid, const std::vector<proto::Statement>& statements,
                   ExecuteResult* out);
  Status DoPrepare(const TxId& txid, const PrepareInfo& info);
  Status DoCommit(const TxId& txid);
  Status DoRollback(const TxId& txid);

  Status RunStatement(size_t index, const proto::Statement& st, proto::ResultSet* rs);
  Result<sqlite3_stmt*> PrepareUser(const std::string& sql);
  Status CheckHasPrimaryKey(const std::string& table, size_t index, const std::string& sql);
  Result<std::vector<std::string>> PrimaryKeyColumns(const std::string& table);
  std::string Describe(const std::string& key);
  Status ApplyUndo(const TxId& txid, const std::string& undo);
  Status RefreshTableKeys();
  Result<TableKeys*> KeysOfTable(const std::string& table);
  Result<TableKeys> LoadTableKeys(const std::string& table);
  Status AddKeyLocks(sqlite3_changeset_iter* it, const std::string& table, int n_cols, int op,
                     std::vector<std::string>* keys);
  Status ReadRow(TableKeys& t, sqlite3_changeset_iter* it, int n_cols,
                 std::vector<OwnedValue>* row);
  std::string UniqueCollision(const std::string& table, sqlite3_changeset_iter* it, int n_cols,
                              int op, const std::string& own_key);
  std::string ForeignKeyViolation();

  Result<std::optional<BranchState>> LoadState(const std::string& txid);
  Result<bool> HasChanges(const std::string& txid);
  Status SetState(const std::string& txid, BranchState s);
  Status InsertBranch(const TxId& txid, BranchState s);
  Status Err(Status::Code code, const std::string& msg) const { return Status(code, name_ + ": " + msg); }
  Status Internal(const Status& s) const {
    // An internal statement failed: storage failures stay storage failures,
    // a busy database stays transient.
    if (s.ok() || s.code() == Status::kStorageFailed || s.code() == Status::kUnavailable) return s;
    return Status(Status::kInternal, name_ + ": " + s.message());
  }

  static int Authorize(void* ctx, int action, const char* a1, const char* a2, const char* db,
                       const char* trigger);
  static int OnUndoConflict(void* ctx, int type, sqlite3_changeset_iter* it);
  static int OnProgress(void* ctx);

  std::unique_ptr<wal::Db> db_;
  // Internal statements, prepared once.
  std::unique_ptr<wal::Stmt> begin_, commit_, rollback_, savepoint_, release_, rollback_to_,
      get_state_, insert_branch_, set_state_, set_prepared_, next_seq_, insert_change_,
      has_changes_, list_undo_, delete_changes_, recover_branches_, change_keys_, purge_, pk_info_,
      schema_version_;
  std::unordered_map<std::string, UserStmt> user_stmts_;  // by SQL text
  std::string auth_denied_;  // why the authorizer refused, for the error message

  LockTable locks_;                 // worker (or Recover) under db_mu_
  bool sync_full_ = true;           // current PRAGMA synchronous (Db::Open sets FULL)
  std::string fail_reason_;         // set once, under db_mu_
  std::atomic<bool> failed_{false};
  // clock_ time of the next purge; the first group purges.
  Micros next_purge_ = std::numeric_limits<Micros>::min();
  const TxId* undo_txid_ = nullptr;  // for conflict logs during ApplyUndo
  std::string undo_conflict_;        // why ApplyUndo abandoned the undo

  // Key locks: per table, recomputed when the schema changes.
  std::unordered_map<std::string, TableKeys> table_keys_;
  int64_t table_keys_version_ = -1;

  // Clocks (options', or the real ones).
  std::function<Micros()> clock_;       // monotonic
  std::function<Micros()> wall_clock_;  // Unix micros
  // Execute deadline (clock_ time, 0 = none), checked by OnProgress.
  Micros execute_deadline_ = 0;
  bool execute_timed_out_ = false;

  std::mutex db_mu_;  // the worker's group vs. Recover on the caller's thread

  std::mutex mu_;  // guards queue_, stop_, drain_pending_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Op>> queue_;
  bool stop_ = false;
  std::thread thread_;  // without an executor
  // With an executor: a drain task is posted, running, or waiting for its
  // group's durability barrier. At most one at a time.
  bool drain_pending_ = false;
  // False once destroyed; shared with posted tasks and barrier continuations.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

Status SqliteResource::Impl::Init() {
  TXC_RETURN_IF_ERROR(db_->Exec(
      "CREATE TABLE IF NOT EXISTS txc_branches("
      "  txid TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,"
      "  state INTEGER NOT NULL, participants BLOB, protocol INTEGER,"
      "  updated INTEGER NOT NULL);"
      "CREATE INDEX IF NOT EXISTS txc_branches_by_state ON txc_branches(state, updated);"
      "CREATE TABLE IF NOT EXISTS txc_changes("
      "  txid TEXT NOT NULL, seq INTEGER NOT NULL, redo BLOB NOT NULL, undo BLOB NOT NULL,"
      "  keys BLOB NOT NULL, PRIMARY KEY(txid, seq));"));
  if (options_.unsafe_no_sync) {
    Logger("wal")->warn("sqlite resource opened with unsafe_no_sync: prepares and commits are "
                        "NOT durable resource={} path={}", name_, db_->path());
    TXC_RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=OFF"));
  }
  auto prep = [this](std::unique_ptr<wal::Stmt>* out, std::string_view sql) -> Status {
    auto s = db_->Prepare(sql);
    if (!s.ok()) return s.status();
    *out = std::move(*s);
    return Status::Ok();
  };
  TXC_RETURN_IF_ERROR(prep(&begin_, "BEGIN IMMEDIATE"));
  TXC_RETURN_IF_ERROR(prep(&commit_, "COMMIT"));
  TXC_RETURN_IF_ERROR(prep(&rollback_, "ROLLBACK"));
  TXC_RETURN_IF_ERROR(prep(&savepoint_, "SAVEPOINT txc_op"));
  TXC_RETURN_IF_ERROR(prep(&release_, "RELEASE txc_op"));
  TXC_RETURN_IF_ERROR(prep(&rollback_to_, "ROLLBACK TO txc_op"));
  TXC_RETURN_IF_ERROR(prep(&get_state_, "SELECT state FROM txc_branches WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&insert_branch_,
                           "INSERT INTO txc_branches(txid, epoch, seq, state, updated) "
                           "VALUES(?1, ?2, ?3, ?4, ?5)"));
  TXC_RETURN_IF_ERROR(
      prep(&set_state_, "UPDATE txc_branches SET state = ?2, updated = ?3 WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&set_prepared_,
                           "UPDATE txc_branches SET state = ?2, participants = ?3, protocol = ?4, "
                           "updated = ?5 WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(
      prep(&next_seq_, "SELECT COALESCE(MAX(seq), 0) + 1 FROM txc_changes WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&insert_change_,
                           "INSERT INTO txc_changes(txid, seq, redo, undo, keys) "
                           "VALUES(?1, ?2, ?3, ?4, ?5)"));
  TXC_RETURN_IF_ERROR(
      prep(&has_changes_, "SELECT EXISTS(SELECT 1 FROM txc_changes WHERE txid = ?1)"));
  TXC_RETURN_IF_ERROR(
      prep(&list_undo_, "SELECT undo FROM txc_changes WHERE txid = ?1 ORDER BY seq DESC"));
  TXC_RETURN_IF_ERROR(prep(&delete_changes_, "DELETE FROM txc_changes WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&recover_branches_,
                           "SELECT txid, state, participants, protocol FROM txc_branches "
                           "WHERE state IN (1, 2, 3) ORDER BY epoch, seq"));
  TXC_RETURN_IF_ERROR(
      prep(&change_keys_, "SELECT keys FROM txc_changes WHERE txid = ?1 ORDER BY seq"));
  TXC_RETURN_IF_ERROR(prep(&purge_,
                           "DELETE FROM txc_branches WHERE rowid IN (SELECT rowid FROM "
                           "txc_branches WHERE state IN (4, 5) AND updated < ?1 LIMIT ?2)"));
  TXC_RETURN_IF_ERROR(
      prep(&pk_info_, "SELECT name, pk FROM pragma_table_info(?1, 'main') ORDER BY cid"));
  TXC_RETURN_IF_ERROR(prep(&schema_version_, "PRAGMA main.schema_version"));
  if (options_.busy_timeout >= 0) {
    sqlite3_busy_timeout(db_->raw(),
                         static_cast<int>(std::min<Micros>(options_.busy_timeout / kMillis,
                                                           std::numeric_limits<int>::max())));
  }
  clock_ = options_.clock ? options_.clock : std::function<Micros()>(&SteadyNowMicros);
  wall_clock_ =
      options_.wall_clock ? options_.wall_clock : std::function<Micros()>(&SystemNowMicros);
  if (options_.max_execute_time > 0) {
    // Checked every few thousand virtual machine steps: cheap next to the work.
    sqlite3_progress_handler(db_->raw(), 4000, &Impl::OnProgress, this);
  }
  if (options_.executor == nullptr) thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

// ------------------------------------------------------------- recovery

Result<std::vector<RecoveredBranch>> SqliteResource::Impl::Recover() {
  std::lock_guard<std::mutex> l(db_mu_);
  std::vector<RecoveredBranch> out;
  {
    wal::Stmt& s = *recover_branches_;
    s.Reset();
    ResetOnExit reset{s};
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      if (!*row) break;
      std::string txid_text = s.ColumnText(0);
      auto txid = ParseTxId(txid_text);
      if (!txid) {
        return Err(Status::kInternal, "txc_branches holds a malformed txid \"" + txid_text + "\"");
      }
      RecoveredBranch b;
      b.txid = *txid;
      b.state = static_cast<BranchState>(s.ColumnInt(1));
      if (!s.ColumnIsNull(2) &&
          !DecodeParticipants(s.ColumnBlob(2), &b.info.participants)) {
        return Err(Status::kInternal, "branch " + txid_text + " has malformed participants");
      }
      if (!s.ColumnIsNull(3)) b.info.protocol = static_cast<proto::Protocol::type>(s.ColumnInt(3));
      out.push_back(std::move(b));
    }
  }
  for (const RecoveredBranch& b : out) {
    std::string txid_text = ToString(b.txid);
    wal::Stmt& s = *change_keys_;
    TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid_text)));
    ResetOnExit reset{s};
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      if (!*row) break;
      std::vector<std::string> keys;
      if (!DecodeKeys(s.ColumnBlob(0), &keys)) {
        return Err(Status::kInternal, "branch " + txid_text + " has malformed lock keys");
      }
      for (const std::string& k : keys) {
        auto holder = locks_.Holder(k);
        if (holder && !(*holder == b.txid)) {
          // Cannot happen unless the file was edited: two live branches changed one row.
          Logger("wal")->error("recovered branches share a row lock resource={} row=\"{}\" "
                               "txid={} other={}", name_, Describe(k), txid_text,
                               ToString(*holder));
          continue;
        }
        locks_.Acquire(k, b.txid);
      }
    }
  }
  locks_.Forget();
  locks_count.store(locks_.size());
  Logger("wal")->info("sqlite resource recovered resource={} branches={} locks={}", name_,
                      out.size(), locks_.size());
  return out;
}

// ---------------------------------------------------------------- worker

void SqliteResource::Impl::Enqueue(std::unique_ptr<Op> op) {
  if (options_.executor != nullptr) {
    bool post = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(std::move(op));
      post = !std::exchange(drain_pending_, true);
    }
    if (post) PostDrain();
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(op));
  }
  cv_.notify_one();
}

void SqliteResource::Impl::TakeBatch(std::vector<std::unique_ptr<Op>>* ops) {
  size_t max = std::max<size_t>(options_.max_group_ops, 1);
  while (!queue_.empty() && ops->size() < max) {
    ops->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
}

void SqliteResource::Impl::Run() {
  for (;;) {
    std::vector<std::unique_ptr<Op>> ops;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and drained
      TakeBatch(&ops);
    }
    bool durable;
    {
      std::lock_guard<std::mutex> l(db_mu_);
      durable = RunGroup(ops);
    }
    if (durable && options_.durability_barrier) WaitForBarrier();
    for (auto& op : ops) Deliver(*op);
  }
}

void SqliteResource::Impl::WaitForBarrier() {
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
  };
  auto gate = std::make_shared<Gate>();
  options_.durability_barrier([gate] {
    std::lock_guard<std::mutex> l(gate->mu);
    gate->open = true;
    gate->cv.notify_all();
  });
  std::unique_lock<std::mutex> l(gate->mu);
  gate->cv.wait(l, [&gate] { return gate->open; });
}

void SqliteResource::Impl::PostDrain() {
  options_.executor->Post([this, alive = alive_] {
    if (*alive) Drain();
  });
}

// One batch of the worker loop, as an executor task: the group, then (past
// the durability barrier) its callbacks, then the next drain if work queued
// meanwhile, callbacks' new operations included.
void SqliteResource::Impl::Drain() {
  auto ops = std::make_shared<std::vector<std::unique_ptr<Op>>>();
  {
    std::lock_guard<std::mutex> l(mu_);
    TakeBatch(ops.get());
    if (ops->empty()) {
      drain_pending_ = false;
      return;
    }
  }
  bool durable;
  {
    std::lock_guard<std::mutex> l(db_mu_);
    durable = RunGroup(*ops);
  }
  auto finish = [this, alive = alive_, ops, done = std::make_shared<bool>(false)] {
    if (!*alive || std::exchange(*done, true)) return;
    for (auto& op : *ops) {
      Deliver(*op);
      if (!*alive) return;  // a callback destroyed the resource
    }
    bool more;
    {
      std::lock_guard<std::mutex> l(mu_);
      more = !queue_.empty();
      drain_pending_ = more;
    }
    if (more) PostDrain();
  };
  if (durable && options_.durability_barrier) {
    options_.durability_barrier(std::move(finish));
  } else {
    finish();
  }
}

void SqliteResource::Impl::Deliver(Op& op) {
  if (op.kind == Op::kExecute || op.kind == Op::kExecuteAndPrepare) {
    if (!op.result.status.ok()) op.result.results.clear();
    if (op.exec_done) op.exec_done(std::move(op.result));
  } else {
    if (op.status_done) op.status_done(std::move(op.result.status));
  }
}

Status SqliteResource::Impl::Sticky() const {
  return Err(Status::kStorageFailed, "a local commit failed earlier (" + fail_reason_ +
                                         "); the resource refuses every operation until restarted");
}

void SqliteResource::Impl::Fail(const Status& why) {
  if (failed_.load()) return;
  fail_reason_ = why.message();
  failed_.store(true);
  Logger("wal")->error("sqlite resource storage failure, refusing every later operation until "
                       "restart resource={} path={} error=\"{}\"",
                       name_, db_->path(), why.ToString());
}

bool SqliteResource::Impl::FailGroup(std::vector<std::unique_ptr<Op>>& ops, const Status& why) {
  if (!sqlite3_get_autocommit(db_->raw())) {
    rollback_->Reset();
    (void)rollback_->Run();
    rollback_->Reset();
  }
  locks_.RevertTo(0);
  locks_count.store(locks_.size());
  Fail(why);
  for (auto& op : ops) {
    if (op->finalized) continue;  // failed on its own, nothing of it applied
    op->result = ExecuteResult{};
    op->result.status = Err(Status::kStorageFailed, "local commit failed: " + why.message());
    op->finalized = true;
  }
  return false;
}

bool SqliteResource::Impl::RunGroup(std::vector<std::unique_ptr<Op>>& ops) {
  if (failed_.load()) {
    for (auto& op : ops) op->result.status = Sticky();
    return false;
  }
  bool need_sync = false;
  for (auto& op : ops) need_sync |= op->NeedsSync();
  bool want_full = need_sync && !options_.unsafe_no_sync;
  if (!options_.unsafe_no_sync && want_full != sync_full_) {
    // Between transactions only: SQLite applies it to the next commit.
    Status s = db_->SetSynchronousFull(want_full);
    if (!s.ok()) return FailGroup(ops, s);
    sync_full_ = want_full;
  }

  for (;;) {
    begin_->Reset();
    Status b = begin_->Run();
    begin_->Reset();
    if (!b.ok()) {
      if (b.code() == Status::kStorageFailed) return FailGroup(ops, b);
      // Busy (another process holds the file): transient, not sticky.
      for (auto& op : ops) {
        if (!op->finalized) op->result.status = Err(Status::kUnavailable, b.message());
      }
      return false;
    }
    locks_.Forget();
    bool restart = false;
    for (auto& op : ops) {
      if (op->finalized) continue;
      op->result = ExecuteResult{};
      savepoint_->Reset();
      Status sp = savepoint_->Run();
      savepoint_->Reset();
      if (!sp.ok()) return FailGroup(ops, sp);
      size_t mark = locks_.Mark();
      Status s = RunOp(*op);
      if (sqlite3_get_autocommit(db_->raw())) {
        // A statement rolled back the whole transaction (an I/O error, or
        // "OR ROLLBACK"/RAISE(ROLLBACK) in user SQL): the ops before it in
        // this group are gone too. Fail this op and run the others again.
        locks_.RevertTo(0);
        if (s.code() == Status::kStorageFailed) return FailGroup(ops, s);
        if (s.ok()) s = Err(Status::kInternal, "the local transaction was rolled back");
        op->result.status = std::move(s);
        op->finalized = true;
        Logger("wal")->warn("statement rolled back the group transaction, re-running the group "
                            "resource={} txid={} error=\"{}\"", name_, ToString(op->txid),
                            op->result.status.ToString());
        restart = true;
        break;
      }
      if (s.code() == Status::kStorageFailed) return FailGroup(ops, s);
      if (!s.ok()) {
        rollback_to_->Reset();
        Status r = rollback_to_->Run();
        rollback_to_->Reset();
        if (!r.ok()) return FailGroup(ops, r);
        locks_.RevertTo(mark);
      }
      release_->Reset();
      Status rel = release_->Run();
      release_->Reset();
      if (!rel.ok()) return FailGroup(ops, rel);
      op->result.status = std::move(s);
    }
    if (restart) continue;

    MaybePurge();
    if (need_sync && inject_failure.exchange(false)) {
      return FailGroup(ops, Err(Status::kStorageFailed, "injected failure (test): disk full"));
    }
    commit_->Reset();
    Status c = commit_->Run();
    commit_->Reset();
    if (!c.ok()) return FailGroup(ops, c);
    locks_.Forget();
    locks_count.store(locks_.size());
    groups.fetch_add(1);
    if (want_full) syncs.fetch_add(1);
    for (auto& op : ops) op->finalized = true;
    return need_sync;
  }
}

void SqliteResource::Impl::MaybePurge() {
  Micros now = clock_();
  if (now < next_purge_) return;
  next_purge_ = now + kPurgeInterval;
  wal::Stmt& s = *purge_;
  Status st = BindAll(s, WallMs() - kFinalRetentionMs, kPurgeBatch);
  if (st.ok()) st = s.Run();
  s.Reset();
  if (!st.ok()) {
    Logger("wal")->warn("purge of final branch rows failed resource={} error=\"{}\"", name_,
                        st.ToString());
    return;
  }
  int64_t n = db_->changes();
  if (n >= kPurgeBatch) next_purge_ = now;  // more to do: again next group
  if (n > 0) {
    Logger("wal")->debug("purged final branch rows resource={} rows={}", name_, n);
  }
}

Status SqliteResource::Impl::RunOp(Op& op) {
  switch (op.kind) {
    case Op::kExecute:
      return DoExecute(op.txid, op.statements, &op.result);
    case Op::kExecuteAndPrepare: {
      Status s = DoExecute(op.txid, op.statements, &op.result);
      if (!s.ok()) return s;
      return DoPrepare(op.txid, op.info);
    }
    case Op::kPrepare:
      return DoPrepare(op.txid, op.info);
    case Op::kCommit:
      return DoCommit(op.txid);
    case Op::kRollback:
      return DoRollback(op.txid);
  }
  return Status::Internal("unknown op");
}

// ------------------------------------------------------ branch log rows

Result<std::optional<BranchState>> SqliteResource::Impl::LoadState(const std::string& txid) {
  wal::Stmt& s = *get_state_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  auto row = s.Step();
  if (!row.ok()) return Internal(row.status());
  if (!*row) return std::optional<BranchState>();
  return std::optional<BranchState>(static_cast<BranchState>(s.ColumnInt(0)));
}

Result<bool> SqliteResource::Impl::HasChanges(const std::string& txid) {
  wal::Stmt& s = *has_changes_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  auto row = s.Step();
  if (!row.ok()) return Internal(row.status());
  return *row && s.ColumnInt(0) != 0;
}

Status SqliteResource::Impl::SetState(const std::string& txid, BranchState st) {
  wal::Stmt& s = *set_state_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid, static_cast<int>(st), WallMs())));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Status SqliteResource::Impl::InsertBranch(const TxId& txid, BranchState st) {
  wal::Stmt& s = *insert_branch_;
  TXC_RETURN_IF_ERROR(Internal(
      BindAll(s, ToString(txid), txid.epoch, txid.seq, static_cast<int>(st), WallMs())));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

// --------------------------------------------------------------- Execute

int SqliteResource::Impl::Authorize(void* ctx, int action, const char* a1, const char* a2,
                                    const char* /*db*/, const char* /*trigger*/) {
  auto* self = static_cast<Impl*>(ctx);
  auto deny = [&](std::string why) {
    self->auth_denied_ = std::move(why);
    return SQLITE_DENY;
  };
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
      if (a2 == nullptr) return SQLITE_OK;  // a query
      static const char* kReadOnly[] = {"table_info",  "table_xinfo",       "index_list",
                                        "index_info",  "index_xinfo",       "foreign_key_list",
                                        "foreign_key_check", "integrity_check", "quick_check"};
      for (const char* p : kReadOnly) {
        if (a1 != nullptr && strcasecmp(a1, p) == 0) return SQLITE_OK;
      }
      return deny(std::string("PRAGMA ") + (a1 != nullptr ? a1 : "") +
                  " cannot be set from a transaction branch");
    }
    default:
      return SQLITE_OK;
  }
}

Result<sqlite3_stmt*> SqliteResource::Impl::PrepareUser(const std::string& sql) {
  auto it = user_stmts_.find(sql);
  if (it != user_stmts_.end()) return it->second.get();
  sqlite3* db = db_->raw();
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  auth_denied_.clear();
  sqlite3_set_authorizer(db, &Impl::Authorize, this);
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, &tail);
  sqlite3_set_authorizer(db, nullptr, nullptr);
  UserStmt stmt(raw);
  if (rc != SQLITE_OK) {
    std::string msg = (rc & 0xff) == SQLITE_AUTH && !auth_denied_.empty()
                          ? auth_denied_
                          : std::string(sqlite3_errmsg(db));
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

Status SqliteResource::Impl::RunStatement(size_t index, const proto::Statement& st,
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
      for (int c = 0; c < n_cols; ++c) row.values.push_back(ColumnValue(s, c));
      rs->rows.push_back(std::move(row));
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

Result<std::vector<std::string>> SqliteResource::Impl::PrimaryKeyColumns(const std::string& table) {
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

Status SqliteResource::Impl::CheckHasPrimaryKey(const std::string& table, size_t index,
                                                const std::string& sql) {
  auto cols = PrimaryKeyColumns(table);
  if (!cols.ok()) return cols.status();
  if (!cols->empty()) return Status::Ok();
  return Err(Status::kSqlError,
             "table " + table + " has no PRIMARY KEY; txcoord can only undo and lock rows of "
             "tables with a PRIMARY KEY (statement " + std::to_string(index + 1) + ": " +
                 Snippet(sql) + ")");
}

std::string SqliteResource::Impl::Describe(const std::string& key) {
  std::string table;
  std::vector<std::string> unique_cols, values;
  if (!DecodeKey(key, &table, &unique_cols, &values)) return name_ + ".<malformed lock key>";
  auto cols = unique_cols.empty() ? PrimaryKeyColumns(table)
                                  : Result<std::vector<std::string>>(unique_cols);
  std::string out = name_ + "." + table;
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

Result<TableKeys> SqliteResource::Impl::LoadTableKeys(const std::string& table) {
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

Status SqliteResource::Impl::RefreshTableKeys() {
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
    table_keys_version_ = version;
  }
  return Status::Ok();
}

// REQUIRES: RefreshTableKeys() since the schema last changed.
Result<TableKeys*> SqliteResource::Impl::KeysOfTable(const std::string& table) {
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
Status SqliteResource::Impl::ReadRow(TableKeys& t, sqlite3_changeset_iter* it, int n_cols,
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
std::string SqliteResource::Impl::UniqueCollision(const std::string& table,
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
      return "restoring it would break the UNIQUE key " + held.substr(name_.size() + 1) +
             ", which " + Describe(key) + " holds";
    }
  }
  return "";
}

// Appends the unique-key and parent-key locks of the change `it` points at.
Status SqliteResource::Impl::AddKeyLocks(sqlite3_changeset_iter* it, const std::string& table,
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

// ------------------------------------------------------------- Execute

Status SqliteResource::Impl::DoExecute(const TxId& txid,
                                       const std::vector<proto::Statement>& statements,
                                       ExecuteResult* out) {
  const std::string id = ToString(txid);
  auto state = LoadState(id);
  if (!state.ok()) return state.status();
  if (state->has_value()) {
    switch (**state) {
      case BranchState::kActive:
        break;
      case BranchState::kAborted:
        return Err(Status::kAborted, "branch " + id + " is already aborted");
      case BranchState::kCommitted:
        return Err(Status::kInvalidArgument, "branch " + id + " is already committed");
      case BranchState::kPrepared:
      case BranchState::kPreCommitted:
        return Err(Status::kInvalidArgument,
                   "branch " + id + " is already " + BranchStateName(**state) +
                       "; it takes no more statements");
    }
  }
  auto had_changes = HasChanges(id);
  if (!had_changes.ok()) return had_changes.status();
  out->wrote = *had_changes;

  Capture capture;
  if (int rc = capture.Start(db_->raw()); rc != SQLITE_OK) {
    return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kInternal,
               std::string("cannot start change capture: ") + sqlite3_errstr(rc));
  }
  std::vector<proto::ResultSet> results(statements.size());
  {
    // The statements of this call run against one deadline (OnProgress).
    struct Deadline {
      Impl* self;
      ~Deadline() { self->execute_deadline_ = 0; }
    } deadline{this};
    execute_timed_out_ = false;
    if (options_.max_execute_time > 0) execute_deadline_ = clock_() + options_.max_execute_time;
    auto timed_out = [&](size_t i) {
      return Err(Status::kTimeout,
                 "statement " + std::to_string(i + 1) + " (" + Snippet(statements[i].sql) +
                     ") was interrupted: the call ran past the resource's limit of " +
                     std::to_string(options_.max_execute_time / kMillis) +
                     " ms per Execute; nothing of this call is applied");
    };
    for (size_t i = 0; i < statements.size(); ++i) {
      Status s = RunStatement(i, statements[i], &results[i]);
      for (const std::string& table : capture.TakeNewTables()) {
        if (s.ok()) s = CheckHasPrimaryKey(table, i, statements[i].sql);
      }
      if (!s.ok() && execute_timed_out_) return timed_out(i);
      TXC_RETURN_IF_ERROR(s);
    }
  }

  SqliteBuffer redo;
  if (int rc = sqlite3session_changeset(capture.session(), &redo.n, &redo.p); rc != SQLITE_OK) {
    return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kInternal,
               std::string("cannot read the change set: ") + sqlite3_errstr(rc));
  }
  std::vector<std::string> keys;
  if (redo.n > 0) {
    TXC_RETURN_IF_ERROR(RefreshTableKeys());  // this call's own DDL included
    sqlite3_changeset_iter* it = nullptr;
    int rc = sqlite3changeset_start(&it, redo.n, redo.p);
    while (rc == SQLITE_OK && sqlite3changeset_next(it) == SQLITE_ROW) {
      const char* table = nullptr;
      int n_cols = 0, op = 0, indirect = 0;
      sqlite3changeset_op(it, &table, &n_cols, &op, &indirect);
      std::string key = RowKeyOf(it, table);
      keys.push_back(std::move(key));
      Status ks = options_.test_only_skip_undo_on_conflict  // injected bug: no key locks
                      ? Status::Ok()
                      : AddKeyLocks(it, table, n_cols, op, &keys);
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
    for (std::string& k : keys) {
      if (seen.insert(k).second) unique.push_back(std::move(k));
    }
    keys = std::move(unique);
  }

  for (const std::string& key : keys) {
    auto holder = locks_.Holder(key);
    if (holder && !(*holder == txid)) {
      out->holder = *holder;
      out->conflict = Describe(key);
      return Status::Conflict(out->conflict + " is held by txn " + ToString(*holder));
    }
  }

  if (redo.n > 0) {
    SqliteBuffer undo;
    if (int rc = sqlite3changeset_invert(redo.n, redo.p, &undo.n, &undo.p); rc != SQLITE_OK) {
      return Err(IsStorageRc(rc) ? Status::kStorageFailed : Status::kInternal,
                 std::string("cannot invert the change set: ") + sqlite3_errstr(rc));
    }
    int64_t seq = 1;
    {
      wal::Stmt& s = *next_seq_;
      TXC_RETURN_IF_ERROR(Internal(BindAll(s, id)));
      ResetOnExit reset{s};
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      if (*row) seq = s.ColumnInt(0);
    }
    {
      wal::Stmt& s = *insert_change_;
      std::string key_blob = EncodeKeys(keys);
      if (key_blob.empty()) return Err(Status::kInternal, "cannot encode the lock keys of " + id);
      TXC_RETURN_IF_ERROR(Internal(BindAll(
          s, id, seq, Blob{std::string_view(static_cast<const char*>(redo.p), redo.n)},
          Blob{std::string_view(static_cast<const char*>(undo.p), undo.n)}, Blob{key_blob})));
      ResetOnExit reset{s};
      TXC_RETURN_IF_ERROR(Internal(s.Run()));
    }
    for (const std::string& key : keys) locks_.Acquire(key, txid);
    out->wrote = true;
  }
  if (!state->has_value()) TXC_RETURN_IF_ERROR(InsertBranch(txid, BranchState::kActive));
  out->results = std::move(results);
  return Status::Ok();
}

// ------------------------------------------------ Prepare, Commit, Rollback

Status SqliteResource::Impl::DoPrepare(const TxId& txid, const PrepareInfo& info) {
  const std::string id = ToString(txid);
  auto state = LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return Err(Status::kNotFound, "no branch " + id + " to prepare");
  switch (**state) {
    case BranchState::kActive:
      break;
    case BranchState::kPrepared:
    case BranchState::kPreCommitted:
      return Status::Ok();  // already durable
    case BranchState::kAborted:
      return Err(Status::kAborted, "branch " + id + " is already aborted");
    case BranchState::kCommitted:
      return Err(Status::kInvalidArgument, "branch " + id + " is already committed");
  }
  wal::Stmt& s = *set_prepared_;
  std::string participants = EncodeParticipants(info.participants);
  if (participants.empty()) {
    return Err(Status::kInternal, "cannot encode the participants of " + id);
  }
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, id, static_cast<int>(BranchState::kPrepared),
                                       Blob{participants}, static_cast<int>(info.protocol),
                                       WallMs())));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Status SqliteResource::Impl::DoCommit(const TxId& txid) {
  const std::string id = ToString(txid);
  auto state = LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return Err(Status::kNotFound, "no branch " + id + " to commit");
  switch (**state) {
    case BranchState::kCommitted:
      return Status::Ok();
    case BranchState::kAborted:
      return Err(Status::kAborted, "branch " + id + " is already aborted; cannot commit it");
    default:
      break;
  }
  TXC_RETURN_IF_ERROR(SetState(id, BranchState::kCommitted));
  {
    wal::Stmt& s = *delete_changes_;
    TXC_RETURN_IF_ERROR(Internal(BindAll(s, id)));
    ResetOnExit reset{s};
    TXC_RETURN_IF_ERROR(Internal(s.Run()));
  }
  locks_.ReleaseAll(txid);
  return Status::Ok();
}

int SqliteResource::Impl::OnProgress(void* ctx) {
  auto* self = static_cast<Impl*>(ctx);
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
int SqliteResource::Impl::OnUndoConflict(void* ctx, int type, sqlite3_changeset_iter* it) {
  auto* self = static_cast<Impl*>(ctx);
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
        what = "row the branch inserted was deleted outside it";
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
      // Injected bug skip-undo-on-conflict: the row is dropped, the undo "succeeds".
      if (self->options_.test_only_skip_undo_on_conflict) decision = SQLITE_CHANGESET_OMIT;
      break;
    case SQLITE_CHANGESET_FOREIGN_KEY:  // once, for the whole change set
      what = "restoring the rows would break a FOREIGN KEY: " + self->ForeignKeyViolation();
      break;
  }
  const char* action = decision == SQLITE_CHANGESET_REPLACE ? "overwrite"
                       : decision == SQLITE_CHANGESET_OMIT  ? "skip"
                                                            : "abandon the undo";
  Logger("wal")->error("rollback found a conflicting row resource={} txid={} row=\"{}\" "
                       "problem=\"{}\" action=\"{}\"",
                       self->name_, self->undo_txid_ != nullptr ? ToString(*self->undo_txid_) : "?",
                       row.empty() ? "-" : row, what, action);
  if (decision == SQLITE_CHANGESET_ABORT && self->undo_conflict_.empty()) {
    self->undo_conflict_ = row.empty() ? what : row + ": " + what;
  }
  return decision;
}

// Names one row that breaks a foreign key, for the error message.
std::string SqliteResource::Impl::ForeignKeyViolation() {
  auto st = db_->Prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT 1");
  if (!st.ok()) return "(cannot tell which: " + st.status().message() + ")";
  wal::Stmt& s = **st;
  auto row = s.Step();
  if (!row.ok() || !*row) return "(cannot tell which)";
  std::string out = "a row of " + name_ + "." + s.ColumnText(0);
  if (!s.ColumnIsNull(1)) out += " (rowid " + std::to_string(s.ColumnInt(1)) + ")";
  return out + " would refer to a missing row of " + name_ + "." + s.ColumnText(2);
}

Status SqliteResource::Impl::ApplyUndo(const TxId& txid, const std::string& undo) {
  undo_txid_ = &txid;
  undo_conflict_.clear();
  int rc = sqlite3changeset_apply(db_->raw(), static_cast<int>(undo.size()),
                                  const_cast<char*>(undo.data()), nullptr, &Impl::OnUndoConflict,
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

Status SqliteResource::Impl::DoRollback(const TxId& txid) {
  const std::string id = ToString(txid);
  auto state = LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return InsertBranch(txid, BranchState::kAborted);  // tombstone
  switch (**state) {
    case BranchState::kAborted:
      return Status::Ok();
    case BranchState::kCommitted:
      return Err(Status::kInvalidArgument, "branch " + id + " is already committed; cannot roll it back");
    default:
      break;
  }
  std::vector<std::string> undos;
  {
    wal::Stmt& s = *list_undo_;
    TXC_RETURN_IF_ERROR(Internal(BindAll(s, id)));
    ResetOnExit reset{s};
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      if (!*row) break;
      undos.push_back(s.ColumnBlob(0));
    }
  }
  if (!options_.test_only_forget_undo) {  // the injected bug skips the undo
    for (const std::string& undo : undos) TXC_RETURN_IF_ERROR(ApplyUndo(txid, undo));
  }
  TXC_RETURN_IF_ERROR(SetState(id, BranchState::kAborted));
  {
    wal::Stmt& s = *delete_changes_;
    TXC_RETURN_IF_ERROR(Internal(BindAll(s, id)));
    ResetOnExit reset{s};
    TXC_RETURN_IF_ERROR(Internal(s.Run()));
  }
  locks_.ReleaseAll(txid);
  return Status::Ok();
}

// ------------------------------------------------------------ public API

Result<std::unique_ptr<SqliteResource>> SqliteResource::Open(const std::string& name,
                                                             const std::string& path,
                                                             SqliteResourceOptions options) {
  auto db = wal::Db::Open(path);
  if (!db.ok()) return Status(db.status().code(), name + ": " + db.status().message());
  auto impl = std::make_unique<Impl>(name, options, std::move(*db));
  Status s = impl->Init();
  if (!s.ok()) return Status(s.code(), name + ": " + s.message());
  Logger("wal")->info("sqlite resource opened resource={} path={}", name, path);
  return std::unique_ptr<SqliteResource>(new SqliteResource(std::move(impl)));
}

SqliteResource::SqliteResource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteResource::~SqliteResource() = default;

const std::string& SqliteResource::name() const { return impl_->name_; }

Result<std::vector<RecoveredBranch>> SqliteResource::Recover() { return impl_->Recover(); }

void SqliteResource::Execute(const TxId& txid, std::vector<proto::Statement> statements,
                             Callback<ExecuteResult> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kExecute;
  op->txid = txid;
  op->statements = std::move(statements);
  op->exec_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void SqliteResource::Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kPrepare;
  op->txid = txid;
  op->info = info;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void SqliteResource::ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                                       const PrepareInfo& info, Callback<ExecuteResult> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kExecuteAndPrepare;
  op->txid = txid;
  op->statements = std::move(statements);
  op->info = info;
  op->exec_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void SqliteResource::Commit(const TxId& txid, Callback<Status> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kCommit;
  op->txid = txid;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void SqliteResource::Rollback(const TxId& txid, Callback<Status> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kRollback;
  op->txid = txid;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

uint64_t SqliteResource::groups_committed() const { return impl_->groups.load(); }
uint64_t SqliteResource::syncs() const { return impl_->syncs.load(); }
size_t SqliteResource::locks_held() const { return impl_->locks_count.load(); }
void SqliteResource::InjectFailureForTest() { impl_->inject_failure.store(true); }

}  // namespace txc::participant
