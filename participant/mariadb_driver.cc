#include "participant/mariadb_driver.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace txc::participant::xa {

namespace {

constexpr size_t kMaxXidPart = 64;
constexpr char kRunSavepoint[] = "txc_run";

// Server error numbers the driver treats specially (mysqld_error.h names).
constexpr unsigned kErLockWaitTimeout = ER_LOCK_WAIT_TIMEOUT;  // 1205
constexpr unsigned kErDeadlock = ER_LOCK_DEADLOCK;             // 1213
constexpr unsigned kErXaNota = ER_XAER_NOTA;                   // 1397
constexpr unsigned kErXaRmfail = ER_XAER_RMFAIL;               // 1399
constexpr unsigned kErXaOutside = ER_XAER_OUTSIDE;             // 1400
constexpr unsigned kErSpDoesNotExist = ER_SP_DOES_NOT_EXIST;   // 1305: SAVEPOINT ... does not exist
constexpr unsigned kErXaRbRollback = 1612;                     // XA_RBROLLBACK
constexpr unsigned kErXaRbTimeout = 1613;                      // XA_RBTIMEOUT
constexpr unsigned kErXaRbDeadlock = 1614;                     // XA_RBDEADLOCK
constexpr unsigned kErConnectionKilled = 1927;                 // ER_CONNECTION_KILLED

bool IsConnectionError(unsigned err) {
  return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST || err == CR_SERVER_LOST_EXTENDED ||
         err == CR_CONNECTION_ERROR || err == CR_CONN_HOST_ERROR || err == CR_COMMANDS_OUT_OF_SYNC ||
         err == kErConnectionKilled || err == ER_SERVER_SHUTDOWN;
}

bool IsXaRollbackOnly(unsigned err) {
  return err == kErXaRbRollback || err == kErXaRbTimeout || err == kErXaRbDeadlock;
}

std::string Hex(const std::string& bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string h;
  h.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    h.push_back(kHex[c >> 4]);
    h.push_back(kHex[c & 15]);
  }
  return h;
}

std::string Snippet(const std::string& sql) {
  std::string s = sql.substr(0, 60);
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return sql.size() > 60 ? s + "..." : s;
}

struct ConnParams {
  std::optional<std::string> host, database, user, socket;
  unsigned port = 0;
  unsigned connect_timeout_s = 10;
};

// Splits "k=v k='v w'" into its pairs.
Status ParseConninfo(const std::string& text, std::map<std::string, std::string>* out) {
  size_t i = 0;
  const size_t n = text.size();
  while (true) {
    while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i >= n) break;
    size_t k0 = i;
    while (i < n && text[i] != '=' && text[i] != ' ' && text[i] != '\t') ++i;
    std::string key = text.substr(k0, i - k0);
    while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i >= n || text[i] != '=' || key.empty()) {
      // Never echo the text: it may hold a password.
      return Status::InvalidArgument("mariadb connection string: expected key=value at character " +
                                     std::to_string(k0 + 1) + " (key \"" + key.substr(0, 32) + "\")");
    }
    ++i;
    while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
    std::string value;
    if (i < n && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < n) {
        char c = text[i++];
        if (c == '\\' && i < n) {
          value.push_back(text[i++]);
        } else if (c == '\'') {
          closed = true;
          break;
        } else {
          value.push_back(c);
        }
      }
      if (!closed) {
        return Status::InvalidArgument("mariadb connection string: unterminated quote in the value of " + key);
      }
    } else {
      while (i < n && text[i] != ' ' && text[i] != '\t') value.push_back(text[i++]);
    }
    if (out->count(key) != 0) {
      return Status::InvalidArgument("mariadb connection string: " + key + " given twice");
    }
    (*out)[key] = value;
  }
  return Status::Ok();
}

bool ParseUnsigned(const std::string& s, unsigned long max, unsigned* out) {
  if (s.empty() || s.size() > 10) return false;
  unsigned long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (v > max) return false;
  *out = static_cast<unsigned>(v);
  return true;
}

Result<ConnParams> ParseParams(const std::string& conninfo) {
  std::map<std::string, std::string> kv;
  TXC_RETURN_IF_ERROR(ParseConninfo(conninfo, &kv));
  ConnParams p;
  std::string unknown;
  for (const auto& [k, v] : kv) {
    if (k == "host") {
      p.host = v;
    } else if (k == "database") {
      p.database = v;
    } else if (k == "user") {
      p.user = v;
    } else if (k == "socket") {
      p.socket = v;
    } else if (k == "port") {
      if (!ParseUnsigned(v, 65535, &p.port) || p.port == 0) {
        return Status::InvalidArgument("mariadb connection string: port=" + v + " is not a port number");
      }
    } else if (k == "connect_timeout") {
      if (!ParseUnsigned(v, 3600, &p.connect_timeout_s)) {
        return Status::InvalidArgument("mariadb connection string: connect_timeout=" + v +
                                       " is not a number of seconds (0..3600)");
      }
    } else {
      unknown += (unknown.empty() ? "" : ", ") + k;
    }
  }
  if (!unknown.empty()) {
    return Status::InvalidArgument("mariadb connection string: unknown key(s) " + unknown +
                                   " (known: host, port, database, user, socket, connect_timeout)");
  }
  return p;
}

// "host:port/database" (or "socket <path>/database") for messages.
std::string ServerName(const ConnParams& p) {
  std::string s;
  if (p.socket && (!p.host || *p.host == "localhost")) {
    s = "socket " + *p.socket;
  } else {
    s = (p.host ? *p.host : std::string("localhost")) + ":" + std::to_string(p.port != 0 ? p.port : 3306);
  }
  return s + "/" + (p.database ? *p.database : std::string());
}

std::once_flag library_once;

class MariaDbSession;

class MariaDbDriver final : public Driver {
 public:
  MariaDbDriver(std::string resource, ConnParams params, std::optional<std::string> password,
                MariaDbOptions options)
      : resource_(std::move(resource)),
        params_(std::move(params)),
        password_(std::move(password)),
        options_(options),
        where_("mariadb resource " + resource_ + " (" + ServerName(params_) + ")") {}

  const char* kind() const override { return "mariadb"; }
  Result<std::unique_ptr<Session>> Connect() override;
  Status CheckServer(Session& session) override;
  bool PreparedStaysOnSession() const override { return true; }

  const std::string& where() const { return where_; }
  const MariaDbOptions& options() const { return options_; }

 private:
  std::string resource_;
  ConnParams params_;
  std::optional<std::string> password_;
  MariaDbOptions options_;
  std::string where_;
};

class MariaDbSession final : public Session {
 public:
  MariaDbSession(const MariaDbDriver& driver, MYSQL* conn) : driver_(driver), conn_(conn) {}
  ~MariaDbSession() override { mysql_close(conn_); }

  Status Begin(const std::string& gid) override;
  Result<std::vector<proto::ResultSet>> Run(const std::vector<proto::Statement>& statements) override;
  Status Prepare(const std::string& gid) override;
  Status RollbackActive(const std::string& gid) override;
  Status CommitPrepared(const std::string& gid) override;
  Status RollbackPrepared(const std::string& gid) override;
  Result<std::vector<PreparedXact>> ListPrepared() override;
  bool Healthy() const override { return healthy_; }

  // Runs a text query (no result wanted); on failure *err gets the server's
  // error number.
  Status Exec(const std::string& sql, const std::string& what, unsigned* err = nullptr);
  // Runs a query with a result; every value as text (nullopt for NULL).
  Result<std::vector<std::vector<std::optional<std::string>>>> Query(const std::string& sql,
                                                                      const std::string& what);

 private:
  // The status for the server error `err` while doing `what`.
  Status ErrorStatus(unsigned err, const std::string& what, const std::string& msg, const char* sqlstate);
  Status LastError(const std::string& what) {
    return ErrorStatus(mysql_errno(conn_), what, mysql_error(conn_), mysql_sqlstate(conn_));
  }
  Status RunOne(const proto::Statement& st, size_t index, proto::ResultSet* rs);
  // After a failed statement: undoes the call's work back to the savepoint.
  // Returns `failure`, or ABORTED when the branch turned out to be gone.
  Status UndoRun(Status failure);
  // XA COMMIT or XA ROLLBACK (`verb`) of a prepared branch.
  Status FinishPrepared(const std::string& gid, const char* verb);

  const MariaDbDriver& driver_;
  MYSQL* conn_;
  bool healthy_ = true;
};

Status MariaDbSession::ErrorStatus(unsigned err, const std::string& what, const std::string& msg,
                                   const char* sqlstate) {
  std::string text = driver_.where() + ": " + what + ": [" + std::to_string(err) +
                     (sqlstate != nullptr && *sqlstate != '\0' ? std::string(" ") + sqlstate : "") + "] " +
                     msg;
  if (IsConnectionError(err)) {
    healthy_ = false;
    return Status::Unavailable(text + " (the connection is lost, and any active branch with it)");
  }
  if (err == kErLockWaitTimeout) return Status::LockTimeout(text);
  if (err == kErDeadlock) {
    return Status::Aborted(text + " (MariaDB rolled back the whole branch)");
  }
  if (IsXaRollbackOnly(err)) return Status::Aborted(text + " (the branch was rolled back)");
  if (err == kErXaNota) return Status::NotFound(text);
  if (err == kErXaRmfail || err == kErXaOutside) {
    return Status::InvalidArgument(
        text + " (DDL and transaction-control statements are not allowed inside a txcoord "
               "transaction on MariaDB: MariaDB refuses them inside an XA branch)");
  }
  return Status::SqlError(text);
}

Status MariaDbSession::Exec(const std::string& sql, const std::string& what, unsigned* err) {
  if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) {
    if (err != nullptr) *err = mysql_errno(conn_);
    return LastError(what);
  }
  // Drain any result (there should be none).
  if (MYSQL_RES* res = mysql_store_result(conn_)) mysql_free_result(res);
  if (err != nullptr) *err = 0;
  return Status::Ok();
}

Result<std::vector<std::vector<std::optional<std::string>>>> MariaDbSession::Query(const std::string& sql,
                                                                                   const std::string& what) {
  if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return LastError(what);
  MYSQL_RES* res = mysql_store_result(conn_);
  if (res == nullptr) {
    if (mysql_errno(conn_) != 0) return LastError(what);
    return std::vector<std::vector<std::optional<std::string>>>{};
  }
  std::vector<std::vector<std::optional<std::string>>> rows;
  unsigned n = mysql_num_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    unsigned long* len = mysql_fetch_lengths(res);
    std::vector<std::optional<std::string>> r;
    for (unsigned c = 0; c < n; ++c) {
      if (row[c] == nullptr) {
        r.emplace_back(std::nullopt);
      } else {
        r.emplace_back(std::string(row[c], len[c]));
      }
    }
    rows.push_back(std::move(r));
  }
  mysql_free_result(res);
  return rows;
}

Status MariaDbSession::Begin(const std::string& gid) {
  auto xid = mariadb_internal::SplitGid(gid);
  if (!xid.ok()) return xid.status();
  // One round trip for both settings; tx_isolation is MariaDB 10.x's name
  // (transaction_isolation only from 11.1).
  TXC_RETURN_IF_ERROR(Exec("SET SESSION tx_isolation='REPEATABLE-READ', SESSION innodb_lock_wait_timeout=" +
                               std::to_string(driver_.options().lock_wait_timeout_s),
                           "setting the isolation level and lock wait timeout"));
  return Exec("XA START " + mariadb_internal::XidLiteral(*xid), "XA START of " + gid);
}

Status MariaDbSession::UndoRun(Status failure) {
  if (failure.code() == Status::kAborted || failure.code() == Status::kUnavailable) return failure;
  unsigned err = 0;
  Status undo = Exec(std::string("ROLLBACK TO SAVEPOINT ") + kRunSavepoint, "undoing the call", &err);
  if (undo.ok()) return failure;
  if (err == kErSpDoesNotExist) {
    // The server rolled back the whole transaction (and its savepoints).
    return Status::Aborted(failure.message() + "; the branch was rolled back by the server");
  }
  if (undo.code() == Status::kUnavailable) return undo;
  // Nothing known to be undone: the branch cannot be trusted.
  return Status::Aborted(failure.message() + "; " + undo.message());
}

Result<std::vector<proto::ResultSet>> MariaDbSession::Run(const std::vector<proto::Statement>& statements) {
  TXC_RETURN_IF_ERROR(Exec(std::string("SAVEPOINT ") + kRunSavepoint, "SAVEPOINT"));
  std::vector<proto::ResultSet> out;
  out.reserve(statements.size());
  for (size_t i = 0; i < statements.size(); ++i) {
    proto::ResultSet rs;
    Status s = RunOne(statements[i], i, &rs);
    if (!s.ok()) return UndoRun(std::move(s));
    out.push_back(std::move(rs));
  }
  TXC_RETURN_IF_ERROR(Exec(std::string("RELEASE SAVEPOINT ") + kRunSavepoint, "RELEASE SAVEPOINT"));
  return out;
}

// Frees a statement handle on every path.
struct StmtCloser {
  MYSQL_STMT* s;
  ~StmtCloser() {
    if (s != nullptr) mysql_stmt_close(s);
  }
};

enum class OutKind { kInt, kDouble, kDecimal, kBytes, kText };

OutKind KindOf(const MYSQL_FIELD& f) {
  bool binary = f.charsetnr == 63;
  switch (f.type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
      return OutKind::kInt;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
      return OutKind::kDouble;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
      return OutKind::kDecimal;
    case MYSQL_TYPE_BIT:
    case MYSQL_TYPE_GEOMETRY:
      return OutKind::kBytes;
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
      return binary ? OutKind::kBytes : OutKind::kText;
    default:
      return OutKind::kText;
  }
}

Status MariaDbSession::RunOne(const proto::Statement& st, size_t index, proto::ResultSet* rs) {
  const std::string what = "statement " + std::to_string(index + 1) + " (" + Snippet(st.sql) + ")";
  MYSQL_STMT* stmt = mysql_stmt_init(conn_);
  if (stmt == nullptr) return LastError(what);
  StmtCloser closer{stmt};
  auto stmt_error = [&]() {
    return ErrorStatus(mysql_stmt_errno(stmt), what, mysql_stmt_error(stmt), mysql_stmt_sqlstate(stmt));
  };
  if (mysql_stmt_prepare(stmt, st.sql.data(), st.sql.size()) != 0) return stmt_error();

  unsigned long n_params = mysql_stmt_param_count(stmt);
  if (n_params != st.params.size()) {
    return Status::SqlError(driver_.where() + ": " + what + ": takes " + std::to_string(n_params) +
                            " parameters, " + std::to_string(st.params.size()) + " given");
  }
  std::vector<MYSQL_BIND> binds(n_params);
  std::vector<unsigned long> lengths(n_params);
  for (unsigned long i = 0; i < n_params; ++i) {
    const proto::Value& v = st.params[i];
    MYSQL_BIND& b = binds[i];
    std::memset(&b, 0, sizeof b);
    if (v.__isset.i) {
      b.buffer_type = MYSQL_TYPE_LONGLONG;
      b.buffer = const_cast<int64_t*>(&v.i);
    } else if (v.__isset.d) {
      b.buffer_type = MYSQL_TYPE_DOUBLE;
      b.buffer = const_cast<double*>(&v.d);
    } else if (v.__isset.s || v.__isset.b) {
      const std::string& bytes = v.__isset.s ? v.s : v.b;
      b.buffer_type = v.__isset.s ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
      b.buffer = const_cast<char*>(bytes.data());
      b.buffer_length = bytes.size();
      lengths[i] = bytes.size();
      b.length = &lengths[i];
    } else {
      b.buffer_type = MYSQL_TYPE_NULL;
    }
  }
  if (n_params > 0 && mysql_stmt_bind_param(stmt, binds.data()) != 0) return stmt_error();
  if (mysql_stmt_execute(stmt) != 0) return stmt_error();

  MYSQL_RES* meta = mysql_stmt_result_metadata(stmt);
  if (meta != nullptr) {
    struct MetaCloser {
      MYSQL_RES* m;
      ~MetaCloser() { mysql_free_result(m); }
    } meta_closer{meta};
    if (mysql_stmt_store_result(stmt) != 0) return stmt_error();
    unsigned n_cols = mysql_num_fields(meta);
    MYSQL_FIELD* fields = mysql_fetch_fields(meta);
    std::vector<OutKind> kinds(n_cols);
    std::vector<MYSQL_BIND> out(n_cols);
    std::vector<int64_t> ints(n_cols);
    std::vector<double> doubles(n_cols);
    std::vector<unsigned long> out_len(n_cols);
    std::vector<my_bool> is_null(n_cols), err(n_cols);
    for (unsigned c = 0; c < n_cols; ++c) {
      rs->columns.emplace_back(fields[c].name, fields[c].name_length);
      kinds[c] = KindOf(fields[c]);
      MYSQL_BIND& b = out[c];
      std::memset(&b, 0, sizeof b);
      b.is_null = &is_null[c];
      b.error = &err[c];
      b.length = &out_len[c];
      if (kinds[c] == OutKind::kInt) {
        b.buffer_type = MYSQL_TYPE_LONGLONG;
        b.buffer = &ints[c];
        b.is_unsigned = (fields[c].flags & UNSIGNED_FLAG) != 0;
      } else if (kinds[c] == OutKind::kDouble) {
        b.buffer_type = MYSQL_TYPE_DOUBLE;
        b.buffer = &doubles[c];
      } else {
        // Fetched in a second step once the length is known.
        b.buffer_type = kinds[c] == OutKind::kBytes ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING;
        b.buffer = nullptr;
        b.buffer_length = 0;
      }
    }
    if (n_cols > 0 && mysql_stmt_bind_result(stmt, out.data()) != 0) return stmt_error();
    for (;;) {
      int rc = mysql_stmt_fetch(stmt);
      if (rc == MYSQL_NO_DATA) break;
      if (rc == 1) return stmt_error();
      proto::Row row;
      row.values.resize(n_cols);
      for (unsigned c = 0; c < n_cols; ++c) {
        proto::Value& v = row.values[c];
        if (is_null[c]) continue;
        switch (kinds[c]) {
          case OutKind::kInt:
            if (out[c].is_unsigned && static_cast<uint64_t>(ints[c]) > static_cast<uint64_t>(INT64_MAX)) {
              v.__set_s(std::to_string(static_cast<uint64_t>(ints[c])));
            } else {
              v.__set_i(ints[c]);
            }
            break;
          case OutKind::kDouble:
            v.__set_d(doubles[c]);
            break;
          default: {
            std::string bytes(out_len[c], '\0');
            if (out_len[c] > 0) {
              MYSQL_BIND one;
              std::memset(&one, 0, sizeof one);
              unsigned long got = 0;
              one.buffer_type = out[c].buffer_type;
              one.buffer = bytes.data();
              one.buffer_length = bytes.size();
              one.length = &got;
              if (mysql_stmt_fetch_column(stmt, &one, c, 0) != 0) return stmt_error();
              bytes.resize(std::min<unsigned long>(got, bytes.size()));
            }
            if (kinds[c] == OutKind::kBytes) {
              v.__set_b(std::move(bytes));
            } else if (kinds[c] == OutKind::kDecimal) {
              v.__set_d(std::strtod(bytes.c_str(), nullptr));
            } else {
              v.__set_s(std::move(bytes));
            }
          }
        }
      }
      rs->rows.push_back(std::move(row));
    }
    rs->rows_changed = 0;
  } else {
    if (mysql_stmt_field_count(stmt) != 0) return stmt_error();
    my_ulonglong changed = mysql_stmt_affected_rows(stmt);
    rs->rows_changed = changed == static_cast<my_ulonglong>(-1) ? 0 : static_cast<int64_t>(changed);
  }
  if (st.__isset.expect_rows && st.expect_rows != rs->rows_changed) {
    return Status::ExpectationFailed(driver_.where() + ": " + what + " changed " +
                                     std::to_string(rs->rows_changed) + " rows, expected " +
                                     std::to_string(st.expect_rows));
  }
  return Status::Ok();
}

Status MariaDbSession::Prepare(const std::string& gid) {
  auto xid = mariadb_internal::SplitGid(gid);
  if (!xid.ok()) return xid.status();
  std::string lit = mariadb_internal::XidLiteral(*xid);
  TXC_RETURN_IF_ERROR(Exec("XA END " + lit, "XA END of " + gid));
  return Exec("XA PREPARE " + lit, "XA PREPARE of " + gid);
}

Status MariaDbSession::RollbackActive(const std::string& gid) {
  auto xid = mariadb_internal::SplitGid(gid);
  if (!xid.ok()) return xid.status();
  std::string lit = mariadb_internal::XidLiteral(*xid);
  unsigned err = 0;
  Status end = Exec("XA END " + lit, "XA END of " + gid, &err);
  // Already ended (IDLE: 1399), or rolled back by the server (XA_RB*): the
  // XA ROLLBACK below still clears it.
  if (!end.ok() && err != kErXaRmfail && !IsXaRollbackOnly(err) && err != kErDeadlock) return end;
  return Exec("XA ROLLBACK " + lit, "XA ROLLBACK of " + gid);
}

Status MariaDbSession::FinishPrepared(const std::string& gid, const char* verb) {
  auto xid = mariadb_internal::SplitGid(gid);
  if (!xid.ok()) return xid.status();
  unsigned err = 0;
  Status s = Exec(std::string(verb) + " " + mariadb_internal::XidLiteral(*xid), std::string(verb) + " of " + gid, &err);
  if (s.ok() || err != kErXaNota) return s;
  // XAER_NOTA also when another session that is still connected (or whose
  // disconnect the server has not finished) holds the prepared branch: XA
  // RECOVER lists it then. That is no NOT_FOUND: the branch is there.
  auto listed = ListPrepared();
  if (!listed.ok()) return listed.status();
  for (const auto& x : *listed) {
    if (x.gid == gid) {
      return Status::Unavailable(s.message() +
                                 " (the branch is prepared but held by another session that is still connected; "
                                 "MariaDB lets only that session finish it until it disconnects)");
    }
  }
  return s;
}

Status MariaDbSession::CommitPrepared(const std::string& gid) { return FinishPrepared(gid, "XA COMMIT"); }

Status MariaDbSession::RollbackPrepared(const std::string& gid) { return FinishPrepared(gid, "XA ROLLBACK"); }

Result<std::vector<PreparedXact>> MariaDbSession::ListPrepared() {
  // Plain XA RECOVER: formatID, gtrid_length, bqual_length, data (the raw
  // gtrid then the raw bqual).
  auto rows = Query("XA RECOVER", "XA RECOVER");
  if (!rows.ok()) return rows.status();
  std::vector<PreparedXact> out;
  for (const auto& r : *rows) {
    if (r.size() < 4 || !r[0] || !r[1] || !r[2] || !r[3]) {
      return Status::Internal(driver_.where() + ": XA RECOVER gave an unexpected row");
    }
    int64_t format = std::strtoll(r[0]->c_str(), nullptr, 10);
    size_t glen = std::strtoul(r[1]->c_str(), nullptr, 10);
    size_t blen = std::strtoul(r[2]->c_str(), nullptr, 10);
    const std::string& data = *r[3];
    if (glen + blen > data.size()) {
      return Status::Internal(driver_.where() + ": XA RECOVER row shorter than its lengths");
    }
    std::string gtrid = data.substr(0, glen), bqual = data.substr(glen, blen);
    PreparedXact x;
    if (format == kXaFormatId) {
      x.gid = gtrid + ":" + bqual;
    } else {
      x.gid = "format=" + std::to_string(format) + " gtrid=" + Hex(gtrid) + " bqual=" + Hex(bqual);
    }
    out.push_back(std::move(x));
  }
  return out;
}

Result<std::unique_ptr<Session>> MariaDbDriver::Connect() {
  std::call_once(library_once, [] { mysql_library_init(0, nullptr, nullptr); });
  MYSQL* conn = mysql_init(nullptr);
  if (conn == nullptr) return Status::Internal(where_ + ": mysql_init failed (out of memory)");
  unsigned timeout = params_.connect_timeout_s;
  my_bool no = 0;
  mysql_options(conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  // Never reconnect behind our back: the XA branch dies with the connection.
  mysql_options(conn, MYSQL_OPT_RECONNECT, &no);
  mysql_options(conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  // No option files: the connection string says everything.
  const char* host = params_.host ? params_.host->c_str() : nullptr;
  const char* user = params_.user ? params_.user->c_str() : nullptr;
  const char* db = params_.database ? params_.database->c_str() : nullptr;
  const char* sock = params_.socket ? params_.socket->c_str() : nullptr;
  const char* pw = password_ ? password_->c_str() : nullptr;
  if (mysql_real_connect(conn, host, user, pw, db, params_.port, sock, CLIENT_FOUND_ROWS) == nullptr) {
    std::string msg = where_ + ": cannot connect: [" + std::to_string(mysql_errno(conn)) + "] " + mysql_error(conn);
    mysql_close(conn);
    return Status::Unavailable(std::move(msg));
  }
  return std::unique_ptr<Session>(new MariaDbSession(*this, conn));
}

Status MariaDbDriver::CheckServer(Session& session) {
  auto& s = dynamic_cast<MariaDbSession&>(session);
  auto rows = s.Query(
      "SELECT @@version, @@default_storage_engine, @@innodb_rollback_on_timeout, "
      "(SELECT CONCAT(SUPPORT, '/', IFNULL(XA, 'NO')) FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB'), "
      "@@innodb_flush_log_at_trx_commit",
      "checking the server");
  if (!rows.ok()) return rows.status();
  if (rows->size() != 1 || rows->at(0).size() != 5) {
    return Status::Internal(where_ + ": unexpected answer checking the server");
  }
  const auto& r = rows->at(0);
  std::string version = r[0].value_or("");
  int major = std::atoi(version.c_str());
  int minor = 0;
  if (auto dot = version.find('.'); dot != std::string::npos) minor = std::atoi(version.c_str() + dot + 1);
  if (version.find("MariaDB") == std::string::npos || major < 10 || (major == 10 && minor < 5)) {
    return Status::InvalidArgument(where_ + ": server version " + version +
                                   " is not MariaDB 10.5 or later (before 10.5 a prepared XA branch "
                                   "does not survive its session's disconnect)");
  }
  std::string innodb = r[3].value_or("NO/NO");
  if (innodb.rfind("YES/", 0) != 0 && innodb.rfind("DEFAULT/", 0) != 0) {
    return Status::InvalidArgument(where_ + ": the InnoDB engine is not available (information_schema.ENGINES "
                                   "SUPPORT/XA = " + innodb + "); XA needs it");
  }
  if (innodb.substr(innodb.find('/') + 1) != "YES") {
    return Status::InvalidArgument(where_ + ": InnoDB does not support XA on this server (ENGINES.XA = " +
                                   innodb.substr(innodb.find('/') + 1) + ")");
  }
  std::string engine = r[1].value_or("");
  if (strcasecmp(engine.c_str(), "InnoDB") != 0) {
    return Status::InvalidArgument(where_ + ": default_storage_engine is " + engine +
                                   "; set default_storage_engine=InnoDB (other engines do not take part "
                                   "in XA transactions)");
  }
  if (r[2].value_or("0") != "0") {
    return Status::InvalidArgument(where_ + ": innodb_rollback_on_timeout is ON; set it OFF (a lock wait "
                                   "timeout would otherwise roll back the whole branch)");
  }
  if (r[4].value_or("1") != "1") {
    return Status::InvalidArgument(where_ + ": innodb_flush_log_at_trx_commit is " + r[4].value_or("?") +
                                   "; set it to 1 (otherwise an XA PREPARE the agent votes on may be lost "
                                   "in a power cut)");
  }
  return Status::Ok();
}

}  // namespace

namespace mariadb_internal {

Result<XidParts> SplitGid(const std::string& gid) {
  auto colon = gid.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == gid.size()) {
    return Status::InvalidArgument("gid \"" + gid + "\" has no <gtrid>:<bqual> form");
  }
  XidParts x{gid.substr(0, colon), gid.substr(colon + 1)};
  if (x.gtrid.size() > kMaxXidPart || x.bqual.size() > kMaxXidPart) {
    return Status::InvalidArgument("gid \"" + gid + "\": MariaDB takes at most 64 bytes of gtrid (\"" +
                                   x.gtrid + "\") and of bqual (\"" + x.bqual + "\")");
  }
  return x;
}

std::string XidLiteral(const XidParts& xid) {
  return "X'" + Hex(xid.gtrid) + "',X'" + Hex(xid.bqual) + "'," + std::to_string(kXaFormatId);
}

}  // namespace mariadb_internal

Result<std::unique_ptr<Driver>> MakeMariaDbDriver(const std::string& resource_name, const std::string& conninfo,
                                                  std::optional<std::string> password, MariaDbOptions options) {
  auto params = ParseParams(conninfo);
  if (!params.ok()) {
    return Status::InvalidArgument("mariadb resource " + resource_name + ": " + params.status().message());
  }
  if (options.lock_wait_timeout_s < 1) {
    return Status::InvalidArgument("mariadb resource " + resource_name + ": lock wait timeout must be at least 1 s");
  }
  return std::unique_ptr<Driver>(
      new MariaDbDriver(resource_name, std::move(*params), std::move(password), options));
}

}  // namespace txc::participant::xa
