#include "participant/pg_driver.h"
#include "participant/sql_text.h"

#include <libpq-fe.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace txc::participant::xa {

namespace {

// Type OIDs (pg_type.oid, fixed in every PostgreSQL release).
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;

// The savepoint that makes each Run call all or nothing.
constexpr char kRunSavepoint[] = "txc_run";
// PostgreSQL's limit on a prepared transaction's gid (GIDSIZE - 1).
constexpr size_t kMaxGidBytes = 199;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;
struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, ConnDeleter>;

std::string Snippet(const std::string& sql) {
  constexpr size_t kMax = 120;
  return sql.size() <= kMax ? sql : sql.substr(0, kMax) + "...";
}

// libpq's messages end in a newline and may span lines: one line.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  std::string out;
  for (char c : s) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

std::string Field(const PGresult* r, int code) {
  const char* v = r != nullptr ? PQresultErrorField(r, code) : nullptr;
  return v != nullptr ? v : "";
}

// "<host>:<port>/<dbname>" of a connection (also of a failed one).
std::string ServerOf(const PGconn* conn) {
  auto str = [](const char* s) { return std::string(s != nullptr ? s : ""); };
  return str(PQhost(conn)) + ":" + str(PQport(conn)) + "/" + str(PQdb(conn));
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  // Shortest text that reads back as the same double.
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// The first keyword of `sql` (upper case) after blanks and comments, and the
// one after it.
std::pair<std::string, std::string> LeadingWords(std::string_view sql) {
  size_t i = 0;
  auto skip = [&] {
    for (;;) {
      while (i < sql.size() && (std::isspace(static_cast<unsigned char>(sql[i])) || sql[i] == '('))
        ++i;
      if (sql.substr(i, 2) == "--") {
        auto nl = sql.find('\n', i);
        i = nl == std::string_view::npos ? sql.size() : nl + 1;
      } else if (sql.substr(i, 2) == "/*") {
        int depth = 0;  // PostgreSQL's block comments nest
        while (i < sql.size()) {
          if (sql.substr(i, 2) == "/*") {
            ++depth;
            i += 2;
          } else if (sql.substr(i, 2) == "*/") {
            i += 2;
            if (--depth == 0) break;
          } else {
            ++i;
          }
        }
      } else {
        return;
      }
    }
  };
  auto word = [&] {
    std::string w;
    while (i < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[i])) || sql[i] == '_')) {
      w.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i]))));
      ++i;
    }
    return w;
  };
  skip();
  std::string first = word();
  skip();
  return {first, word()};
}

// Why `sql` may not run inside a branch, or "" if it may.
std::string TransactionControl(const std::string& sql) {
  auto [first, second] = LeadingWords(sql);
  static const char* kRefused[] = {"BEGIN", "START",    "COMMIT",  "END",
                                   "ABORT", "ROLLBACK", "SAVEPOINT", "RELEASE"};
  for (const char* k : kRefused) {
    if (first == k) return first;
  }
  if (first == "PREPARE" && second == "TRANSACTION") return "PREPARE TRANSACTION";
  return "";
}

bool ParseInt(const char* s, int64_t* out) {
  std::string_view v(s);
  auto r = std::from_chars(v.data(), v.data() + v.size(), *out);
  return r.ec == std::errc() && r.ptr == v.data() + v.size();
}

bool ParseDouble(const char* s, double* out) {
  std::string_view v(s);
  auto r = std::from_chars(v.data(), v.data() + v.size(), *out);
  return r.ec == std::errc() && r.ptr == v.data() + v.size();
}

proto::Value CellValue(const PGresult* r, int row, int col) {
  proto::Value v;
  if (PQgetisnull(r, row, col)) return v;
  const char* text = PQgetvalue(r, row, col);
  int len = PQgetlength(r, row, col);
  switch (PQftype(r, col)) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid: {
      int64_t i = 0;
      if (ParseInt(text, &i)) {
        v.__set_i(i);
        return v;
      }
      break;
    }
    case kFloat4Oid:
    case kFloat8Oid: {
      double d = 0;
      if (ParseDouble(text, &d)) {
        v.__set_d(d);
        return v;
      }
      break;
    }
    case kByteaOid: {
      size_t n = 0;
      unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &n);
      if (raw != nullptr) {
        v.__set_b(std::string(reinterpret_cast<const char*>(raw), n));
        PQfreemem(raw);
        return v;
      }
      break;
    }
    default:
      break;
  }
  v.__set_s(std::string(text, len));
  return v;
}

class PgSession : public Session {
 public:
  PgSession(std::string where, PgConn conn) : where_(std::move(where)), conn_(std::move(conn)) {}

  Status Begin(const std::string& gid) override {
    TXC_RETURN_IF_ERROR(Alive("Begin " + gid));
    if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      return Err(Status::kInvalidArgument, "Begin " + gid + ": a transaction is already open on this session");
    }
    return Command("BEGIN ISOLATION LEVEL REPEATABLE READ", "BEGIN").status();
  }

  Result<std::vector<proto::ResultSet>> Run(const std::vector<proto::Statement>& statements) override {
    PGconn* c = conn_.get();
    TXC_RETURN_IF_ERROR(Alive("Run"));
    if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
      return Err(Status::kInvalidArgument, "no branch is active on this session");
    }
    auto sp = Command(std::string("SAVEPOINT ") + kRunSavepoint, "SAVEPOINT");
    if (!sp.ok()) return sp.status();
    std::vector<proto::ResultSet> out;
    out.reserve(statements.size());
    for (size_t i = 0; i < statements.size(); ++i) {
      proto::ResultSet rs;
      Status s = RunStatement(i, statements[i], &rs);
      if (!s.ok()) return Undo(std::move(s));
      out.push_back(std::move(rs));
    }
    auto rel = Command(std::string("RELEASE SAVEPOINT ") + kRunSavepoint, "RELEASE");
    if (!rel.ok()) return rel.status();
    return out;
  }

  Status Prepare(const std::string& gid) override {
    auto lit = Literal(gid);
    if (!lit.ok()) return lit.status();
    TXC_RETURN_IF_ERROR(Alive("Prepare " + gid));
    if (PQtransactionStatus(conn_.get()) != PQTRANS_INTRANS) {
      return Err(Status::kInvalidArgument, "Prepare " + gid + ": no branch is active on this session");
    }
    auto r = Exec("PREPARE TRANSACTION " + *lit);
    if (!r.ok()) {
      std::string lost = PQtransactionStatus(conn_.get()) == PQTRANS_IDLE ? "; the branch is rolled back" : "";
      return Status(r.status().code(), r.status().message() + lost);
    }
    // A transaction PostgreSQL had already failed is rolled back, not
    // prepared, and says so only in the command tag.
    std::string tag = PQcmdStatus(r->get());
    if (tag != "PREPARE TRANSACTION") {
      return Err(Status::kAborted, "PREPARE TRANSACTION " + gid + " rolled the branch back (" + tag + ")");
    }
    return Status::Ok();
  }

  Status RollbackActive(const std::string& gid) override {
    return Command("ROLLBACK", "ROLLBACK").status();
  }

  Status CommitPrepared(const std::string& gid) override { return Finish("COMMIT PREPARED", gid); }
  Status RollbackPrepared(const std::string& gid) override { return Finish("ROLLBACK PREPARED", gid); }

  Result<std::vector<PreparedXact>> ListPrepared() override {
    auto r = Exec(
        "SELECT gid, owner, prepared FROM pg_prepared_xacts WHERE database = current_database() "
        "ORDER BY prepared, gid");
    if (!r.ok()) return r.status();
    std::vector<PreparedXact> out;
    const PGresult* res = r->get();
    for (int row = 0; row < PQntuples(res); ++row) {
      PreparedXact x;
      x.gid = PQgetvalue(res, row, 0);
      x.owner = PQgetvalue(res, row, 1);
      x.prepared_at = PQgetvalue(res, row, 2);
      out.push_back(std::move(x));
    }
    return out;
  }

  bool Healthy() const override { return PQstatus(conn_.get()) == CONNECTION_OK; }

  // Driver::CheckServer's work.
  Status CheckServer() {
    auto r = Exec("SHOW max_prepared_transactions");
    if (!r.ok()) return r.status();
    int64_t n = -1;
    if (PQntuples(r->get()) != 1 || !ParseInt(PQgetvalue(r->get(), 0, 0), &n)) {
      return Err(Status::kInternal, "SHOW max_prepared_transactions gave an unexpected answer");
    }
    if (n <= 0) {
      return Err(Status::kInvalidArgument,
                 "max_prepared_transactions is 0 (PostgreSQL's default), so the server refuses "
                 "PREPARE TRANSACTION; set max_prepared_transactions (at least max_connections, "
                 "and at least this resource's session pool) in postgresql.conf and restart "
                 "PostgreSQL");
    }
    return Status::Ok();
  }

  // Session set-up after connecting.
  Status Init(Micros lock_timeout) {
    int64_t ms = lock_timeout <= 0 ? 0 : (lock_timeout + kMillis - 1) / kMillis;
    TXC_RETURN_IF_ERROR(Command("SET lock_timeout = " + std::to_string(ms), "SET").status());
    // Floats as the shortest text that reads back exactly.
    return Command("SET extra_float_digits = 3", "SET").status();
  }

 private:
  Status Err(Status::Code code, const std::string& msg) const { return Status(code, where_ + ": " + msg); }

  Status Alive(const std::string& what) const {
    if (PQstatus(conn_.get()) == CONNECTION_OK) return Status::Ok();
    return Err(Status::kUnavailable, what + ": the connection is broken");
  }

  // The status of a failed command: the database's words, its SQLSTATE, and
  // the code callers act on.
  Status Failure(const PGresult* r, const std::string& context) const {
    PGconn* c = conn_.get();
    std::string state = Field(r, PG_DIAG_SQLSTATE);
    std::string msg = Field(r, PG_DIAG_MESSAGE_PRIMARY);
    if (msg.empty()) msg = OneLine(r != nullptr ? PQresultErrorMessage(r) : "");
    if (msg.empty()) msg = OneLine(PQerrorMessage(c));
    std::string detail = Field(r, PG_DIAG_MESSAGE_DETAIL);
    if (!detail.empty()) msg += " (" + OneLine(detail) + ")";
    if (!state.empty()) msg += " [SQLSTATE " + state + "]";
    if (!context.empty()) msg = context + ": " + msg;
    if (PQstatus(c) != CONNECTION_OK || state == "57P01" || state == "57P02" || state == "57P03") {
      return Err(Status::kUnavailable, "connection lost: " + msg);
    }
    if (state == "55P03") return Err(Status::kLockTimeout, msg);
    if (state == "40P01" || state == "40001") {
      return Err(Status::kAborted, msg + "; the branch cannot go on and must be rolled back");
    }
    if (state == "25001") return Err(Status::kInvalidArgument, msg);
    return Err(Status::kSqlError, msg);
  }

  // Runs `sql` (simple protocol, no parameters).
  Result<PgResult> Exec(const std::string& sql, const std::string& context = "") {
    PgResult r(PQexec(conn_.get(), sql.c_str()));
    ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      return Failure(r.get(), context.empty() ? Snippet(sql) : context);
    }
    return r;
  }

  // Runs a command whose tag must start with `tag`.
  Result<PgResult> Command(const std::string& sql, const std::string& tag) {
    auto r = Exec(sql);
    if (!r.ok()) return r;
    std::string got = PQcmdStatus(r->get());
    if (got.compare(0, tag.size(), tag) != 0) {
      return Err(Status::kInternal, sql + " answered " + got + ", expected " + tag);
    }
    return r;
  }

  Result<std::string> Literal(const std::string& gid) {
    if (gid.empty() || gid.size() > kMaxGidBytes || gid.find('\0') != std::string::npos) {
      return Err(Status::kInvalidArgument, "gid \"" + gid + "\" is empty, has a NUL or is over " +
                                               std::to_string(kMaxGidBytes) + " bytes");
    }
    char* lit = PQescapeLiteral(conn_.get(), gid.data(), gid.size());
    if (lit == nullptr) return Err(Status::kInvalidArgument, OneLine(PQerrorMessage(conn_.get())));
    std::string out = lit;
    PQfreemem(lit);
    return out;
  }

  Status Finish(const char* verb, const std::string& gid) {
    auto lit = Literal(gid);
    if (!lit.ok()) return lit.status();
    TXC_RETURN_IF_ERROR(Alive(std::string(verb) + " " + gid));
    if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      return Err(Status::kInvalidArgument, std::string(verb) + " " + gid +
                                               ": a transaction is open on this session");
    }
    std::string what = std::string(verb) + " " + gid;
    PgResult r(PQexec(conn_.get(), (std::string(verb) + " " + *lit).c_str()));
    if (r && PQresultStatus(r.get()) == PGRES_COMMAND_OK) return Status::Ok();
    Status s = Failure(r.get(), what);
    // undefined_object: no prepared transaction of that gid (here).
    if (Field(r.get(), PG_DIAG_SQLSTATE) == "42704") return Status::NotFound(s.message());
    return s;
  }

  // Rolls this Run call back to its savepoint and returns `why` (or
  // UNAVAILABLE if even that failed).
  Status Undo(Status why) {
    PGconn* c = conn_.get();
    if (PQstatus(c) != CONNECTION_OK) return why.code() == Status::kUnavailable ? why : Err(Status::kUnavailable, "connection lost: " + why.message());
    auto tx = PQtransactionStatus(c);
    if (tx != PQTRANS_INTRANS && tx != PQTRANS_INERROR) return why;  // no transaction left to undo in
    auto r = Exec(std::string("ROLLBACK TO SAVEPOINT ") + kRunSavepoint + "; RELEASE SAVEPOINT " + kRunSavepoint,
                  "undoing the statements of this call");
    if (!r.ok()) return Status(r.status().code() == Status::kUnavailable ? Status::kUnavailable : Status::kInternal,
                               why.message() + "; then " + r.status().message());
    return why;
  }

  Status RunStatement(size_t index, const proto::Statement& st, proto::ResultSet* rs) {
    PGconn* c = conn_.get();
    std::string where = "statement " + std::to_string(index + 1) + " (" + Snippet(st.sql) + ")";
    std::string control = TransactionControl(st.sql);
    if (!control.empty()) {
      return Err(Status::kInvalidArgument, where + ": " + control +
                                               " is not allowed inside a transaction branch; the "
                                               "coordinator ends the transaction");
    }
    if (st.params.size() > 65535) {
      return Err(Status::kSqlError, where + ": more than 65535 parameters");
    }
    size_t n = st.params.size();
    std::vector<std::string> text(n);
    std::vector<const char*> values(n, nullptr);
    std::vector<Oid> types(n, 0);  // 0: the server infers it from the statement
    std::vector<int> lengths(n, 0), formats(n, 0);
    for (size_t i = 0; i < n; ++i) {
      const proto::Value& v = st.params[i];
      if (v.__isset.i) {
        text[i] = std::to_string(v.i);
        types[i] = kInt8Oid;
      } else if (v.__isset.d) {
        text[i] = FormatDouble(v.d);
        types[i] = kFloat8Oid;
      } else if (v.__isset.s) {
        if (v.s.find('\0') != std::string::npos) {
          return Err(Status::kSqlError, where + ": parameter " + std::to_string(i + 1) +
                                            " is a string with a NUL byte (send it as bytes)");
        }
        text[i] = v.s;
      } else if (v.__isset.b) {
        text[i] = v.b;
        types[i] = kByteaOid;
        formats[i] = 1;
        lengths[i] = static_cast<int>(v.b.size());
      } else {
        continue;  // NULL
      }
      values[i] = text[i].data();
    }
    // `?` marks a parameter on every kind of resource; PostgreSQL wants $n.
    const std::string sql = NumberPlaceholders(st.sql);
    PgResult r(PQexecParams(c, sql.c_str(), static_cast<int>(n), types.data(), values.data(),
                            lengths.data(), formats.data(), 0));
    ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      DrainCopy(status);
      return Err(Status::kInvalidArgument, where + ": COPY to or from the client is not supported; "
                                               "use INSERT or SELECT");
    }
    if (status == PGRES_EMPTY_QUERY) return Err(Status::kSqlError, where + ": empty statement");
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return Failure(r.get(), where);
    if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
      return Err(Status::kInvalidArgument, where + " ended the transaction; the branch is lost");
    }
    if (status == PGRES_TUPLES_OK) {
      int cols = PQnfields(r.get());
      for (int col = 0; col < cols; ++col) rs->columns.push_back(PQfname(r.get(), col));
      int rows = PQntuples(r.get());
      rs->rows.reserve(rows);
      for (int row = 0; row < rows; ++row) {
        proto::Row out;
        out.values.reserve(cols);
        for (int col = 0; col < cols; ++col) out.values.push_back(CellValue(r.get(), row, col));
        rs->rows.push_back(std::move(out));
      }
    }
    std::string tag = PQcmdStatus(r.get());
    int64_t changed = 0;
    if (tag.compare(0, 7, "SELECT ") != 0 && !ParseInt(PQcmdTuples(r.get()), &changed)) changed = 0;
    rs->rows_changed = changed;
    if (st.__isset.expect_rows && st.expect_rows != rs->rows_changed) {
      return Err(Status::kExpectationFailed, where + " changed " + std::to_string(rs->rows_changed) +
                                                 " rows, expected " + std::to_string(st.expect_rows));
    }
    return Status::Ok();
  }

  // Ends a COPY the user's statement started, so the connection is usable.
  void DrainCopy(ExecStatusType status) {
    PGconn* c = conn_.get();
    if (status == PGRES_COPY_IN || status == PGRES_COPY_BOTH) {
      PQputCopyEnd(c, "COPY from the client is not supported by txcoord");
    }
    if (status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      char* buf = nullptr;
      while (PQgetCopyData(c, &buf, 0) > 0) PQfreemem(buf);
    }
    while (PGresult* r = PQgetResult(c)) PQclear(r);
  }

  std::string where_;
  PgConn conn_;
};

class PgDriver : public Driver {
 public:
  PgDriver(std::string name, std::string conninfo, std::optional<std::string> password,
           PostgresOptions options)
      : name_(std::move(name)),
        conninfo_(std::move(conninfo)),
        password_(std::move(password)),
        options_(options) {}

  const char* kind() const override { return "postgres"; }

  Result<std::unique_ptr<Session>> Connect() override {
    std::string timeout = std::to_string(options_.connect_timeout_s);
    // Later keywords win: the connection string may override the timeout and
    // the application name, not the encoding or the password given apart.
    std::vector<const char*> keys = {"connect_timeout", "fallback_application_name", "dbname",
                                     "client_encoding"};
    std::vector<const char*> values = {timeout.c_str(), "txcoord", conninfo_.c_str(), "UTF8"};
    if (password_) {
      keys.push_back("password");
      values.push_back(password_->c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    PgConn conn(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
    if (conn == nullptr) return Status::Internal(Where("?") + ": libpq could not allocate a connection");
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      return Status::Unavailable(Where(ServerOf(conn.get())) + ": " + OneLine(PQerrorMessage(conn.get())));
    }
    auto session = std::make_unique<PgSession>(Where(ServerOf(conn.get())), std::move(conn));
    TXC_RETURN_IF_ERROR(session->Init(options_.lock_timeout));
    return std::unique_ptr<Session>(std::move(session));
  }

  Status CheckServer(Session& session) override {
    auto* pg = dynamic_cast<PgSession*>(&session);
    if (pg == nullptr) return Status::InvalidArgument(Where("?") + ": CheckServer on a session of another driver");
    return pg->CheckServer();
  }

  bool PreparedStaysOnSession() const override { return false; }

 private:
  std::string Where(const std::string& server) const {
    return "postgres resource " + name_ + " (" + server + ")";
  }

  std::string name_;
  std::string conninfo_;
  std::optional<std::string> password_;
  PostgresOptions options_;
};

}  // namespace

Result<std::unique_ptr<Driver>> MakePostgresDriver(const std::string& resource_name,
                                                   const std::string& conninfo,
                                                   std::optional<std::string> password,
                                                   PostgresOptions options) {
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &err);
  if (parsed == nullptr) {
    std::string why = err != nullptr ? OneLine(err) : "out of memory";
    if (err != nullptr) PQfreemem(err);
    return Status::InvalidArgument("postgres resource " + resource_name +
                                   ": bad connection string: " + why);
  }
  PQconninfoFree(parsed);
  return std::unique_ptr<Driver>(
      std::make_unique<PgDriver>(resource_name, conninfo, std::move(password), options));
}

}  // namespace txc::participant::xa
