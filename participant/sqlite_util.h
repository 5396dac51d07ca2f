// Internal to SqliteResource (sqlite_resource.cc, sqlite_branch_log.cc,
// sqlite_changes.cc): small helpers they share. Not an interface.
#pragma once

#include <strings.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sqlite3.h>

#include "common/status.h"
#include "txcoord_types.h"
#include "wal/sqlite.h"

namespace txc::participant::internal {

// What a result value weighs in a reply, for the per-call result limits: its
// bytes, 8 for a number, and a little for the field itself.
inline size_t ResultBytes(const proto::Value& v) {
  return 8 + (v.__isset.s ? v.s.size() : 0) + (v.__isset.b ? v.b.size() : 0);
}

inline bool HasPrefixNoCase(const char* s, const char* prefix) {
  return s != nullptr && strncasecmp(s, prefix, std::strlen(prefix)) == 0;
}

// Tables the resource keeps for itself, never captured nor locked.
inline bool IsInternalTable(const char* t) {
  return HasPrefixNoCase(t, "txc_") || HasPrefixNoCase(t, "sqlite_");
}

inline bool IsStorageRc(int rc) {
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

inline std::string Snippet(const std::string& sql) {
  constexpr size_t kMax = 120;
  if (sql.size() <= kMax) return sql;
  return sql.substr(0, kMax) + "...";
}

// Errors named after the resource: "<resource>: <message>".
class Named {
 public:
  explicit Named(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  Status Err(Status::Code code, const std::string& msg) const {
    return Status(code, name_ + ": " + msg);
  }
  // An internal statement failed: storage failures stay storage failures,
  // a busy database stays transient.
  Status Internal(const Status& s) const {
    if (s.ok() || s.code() == Status::kStorageFailed || s.code() == Status::kUnavailable) return s;
    return Status(Status::kInternal, name_ + ": " + s.message());
  }

 private:
  std::string name_;
};

// u32 little-endian lengths and counts: the lock keys' layout and the branch
// log's legacy one.
inline void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

inline bool GetU32(std::string_view* in, uint32_t* v) {
  if (in->size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(static_cast<uint8_t>((*in)[i])) << (8 * i);
  in->remove_prefix(4);
  return true;
}

inline void PutBytes(std::string* out, std::string_view b) {
  PutU32(out, static_cast<uint32_t>(b.size()));
  out->append(b);
}

inline bool GetBytes(std::string_view* in, std::string_view* b) {
  uint32_t n = 0;
  if (!GetU32(in, &n) || in->size() < n) return false;
  *b = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

// A u32 count, then that many length-prefixed byte strings.
inline bool GetByteList(std::string_view* in, std::vector<std::string>* items) {
  uint32_t n = 0;
  if (!GetU32(in, &n)) return false;
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view b;
    if (!GetBytes(in, &b)) return false;
    items->emplace_back(b);
  }
  return true;
}

// Binding helpers for internal statements.
struct Blob {
  std::string_view data;
};
inline Status BindOne(wal::Stmt& s, int i, int64_t v) { return s.BindInt(i, v); }
inline Status BindOne(wal::Stmt& s, int i, int v) { return s.BindInt(i, v); }
inline Status BindOne(wal::Stmt& s, int i, const std::string& v) { return s.BindText(i, v); }
inline Status BindOne(wal::Stmt& s, int i, Blob v) { return s.BindBlob(i, v.data); }
// A blob, or NULL when absent.
inline Status BindOne(wal::Stmt& s, int i, const std::optional<Blob>& v) {
  return v ? s.BindBlob(i, v->data) : s.BindNull(i);
}

template <typename... Args>
Status BindAll(wal::Stmt& s, const Args&... args) {
  s.Reset();
  int i = 0;
  Status st;
  ((st.ok() ? (void)(st = BindOne(s, ++i, args)) : (void)0), ...);
  return st;
}

// Prepares an internal statement once, at open.
inline Status PrepareInto(wal::Db& db, std::unique_ptr<wal::Stmt>* out, std::string_view sql) {
  auto s = db.Prepare(sql);
  if (!s.ok()) return s.status();
  *out = std::move(*s);
  return Status::Ok();
}

// Resets the statement when leaving scope, so no read stays open.
struct ResetOnExit {
  wal::Stmt& s;
  ~ResetOnExit() { s.Reset(); }
};

// A buffer allocated by SQLite.
struct SqliteBuffer {
  SqliteBuffer() = default;
  SqliteBuffer(const SqliteBuffer&) = delete;
  SqliteBuffer& operator=(const SqliteBuffer&) = delete;
  ~SqliteBuffer() { sqlite3_free(p); }
  std::string_view view() const { return std::string_view(static_cast<const char*>(p), n); }
  void* p = nullptr;
  int n = 0;
};

}  // namespace txc::participant::internal
