#include "tools/admin/wal_dump.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <tuple>

#include "common/codec.h"
#include "participant/resource_manager.h"
#include "participant/sqlite_branch_log.h"

namespace txc::admin {

namespace {

// How long a read waits for a writer's lock (a rollback-journal file being
// written, or WAL recovery) before giving up: short, this is an inspection.
constexpr int kBusyTimeoutMs = 1000;

// A read-only connection and a read transaction over it; closes both.
class Reader {
 public:
  ~Reader() {
    if (db_ == nullptr) return;
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close_v2(db_);
  }

  Status Open(const std::string& path) {
    path_ = path;
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr);
    if (rc != SQLITE_OK) return Error("cannot open it read-only");
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // Every read below sees one snapshot of the file, and the lock ends with it.
    if (sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) return Error("BEGIN");
    return Status::Ok();
  }

  // Runs `sql` with optional text parameter ?1, calling `row` per row.
  template <class F>
  Status Query(const char* sql, const std::optional<std::string>& param, F row) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) return Error("reading it");
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(s, sqlite3_finalize);
    if (param) sqlite3_bind_text(s, 1, param->data(), static_cast<int>(param->size()), SQLITE_TRANSIENT);
    for (;;) {
      int rc = sqlite3_step(s);
      if (rc == SQLITE_DONE) return Status::Ok();
      if (rc != SQLITE_ROW) return Error("reading it");
      row(s);
    }
  }

  Result<bool> HasColumn(const std::string& table, const std::string& column) {
    bool found = false;
    TXC_RETURN_IF_ERROR(Query(("SELECT 1 FROM pragma_table_info('" + table + "') WHERE name = ?1").c_str(),
                              column, [&](sqlite3_stmt*) { found = true; }));
    return found;
  }

  Result<bool> HasTable(const std::string& name) {
    bool found = false;
    TXC_RETURN_IF_ERROR(Query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", name,
                              [&](sqlite3_stmt*) { found = true; }));
    return found;
  }

 private:
  Status Error(const std::string& what) const {
    int code = db_ != nullptr ? sqlite3_errcode(db_) : SQLITE_CANTOPEN;
    std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    std::string hint;
    if (code == SQLITE_NOTADB) {
      hint = ": not an SQLite database; give an agent's resource database (--resource "
             "NAME=sqlite:PATH), an agent's DATA/NAME.xa.db (a postgres: or mariadb: resource) "
             "or a coordinator's DIR/paxos.log or DIR/coord.log";
    } else if (code == SQLITE_BUSY) {
      hint = ": the file is locked by a writer; try again";
    } else if (code == SQLITE_CANTOPEN) {
      hint = ": check the path and that you may read the file and its folder";
    }
    return Status::Unavailable(path_ + ": " + what + ": " + msg + hint);
  }

  sqlite3* db_ = nullptr;
  std::string path_;
};

std::string Column(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  int n = sqlite3_column_bytes(s, i);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}

bool Matches(const proto::Command& c, const std::optional<TxId>& txid) {
  if (!txid) return true;
  if (c.type == proto::CommandType::NOOP || c.type == proto::CommandType::EPOCH) return false;
  return c.txid == *txid;
}

std::string HeuristicOutcome(int outcome) {
  return outcome == proto::Outcome::COMMITTED ? "committed"
         : outcome == proto::Outcome::ABORTED ? "aborted"
         : outcome == proto::Outcome::UNKNOWN ? "unknown"
                                              : "unreadable (" + std::to_string(outcome) + ")";
}

// Branches in txid order (epoch, then seq); a txid that does not parse last,
// by its text.
void SortByTxid(std::vector<WalDump::Branch>* branches) {
  auto key = [](const std::string& s) {
    auto t = ParseTxId(s);
    return t ? std::make_tuple(0, t->epoch, t->seq, s) : std::make_tuple(1, int64_t{0}, int64_t{0}, s);
  };
  std::stable_sort(branches->begin(), branches->end(), [&](const auto& a, const auto& b) {
    return key(a.txid) < key(b.txid);
  });
}

// An agent file's layout stamp (wal::ReadLayoutStamp's table and key) as a
// meta row: "none" for a file from before the stamps.
Status AddLayoutMeta(Reader& r, const std::string& table, const std::string& key,
                       const std::string& file, WalDump* d) {
  auto stamped = r.HasTable(table);
  if (!stamped.ok()) return stamped.status();
  std::string layout = "none (a " + file + " written before 2026-12-06)";
  if (*stamped) {
    const std::string sql = "SELECT value FROM " + table + " WHERE key = ?1";
    TXC_RETURN_IF_ERROR(r.Query(sql.c_str(), key,
                                [&](sqlite3_stmt* s) { layout = Column(s, 0); }));
  }
  d->meta.emplace_back(key, layout);
  return Status::Ok();
}

Status ReadBranchLog(Reader& r, const std::optional<TxId>& txid, WalDump* d) {
  std::optional<std::string> key;
  if (txid) key = ToString(*txid);
  // The layout that last wrote it (participant::internal::BranchLog::kBranchLogLayout).
  TXC_RETURN_IF_ERROR(AddLayoutMeta(r, "txc_meta", "branch_log_layout", "log", d));
  const char* branches_sql =
      txid ? "SELECT txid, state, participants, protocol, updated FROM txc_branches WHERE txid = ?1"
           : "SELECT txid, state, participants, protocol, updated FROM txc_branches "
             "ORDER BY epoch, seq";
  TXC_RETURN_IF_ERROR(r.Query(branches_sql, key, [&](sqlite3_stmt* s) {
    WalDump::Branch b;
    b.txid = Column(s, 0);
    b.state = sqlite3_column_int(s, 1);
    if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
      b.participants_unreadable =
          !participant::internal::DecodeParticipants(Column(s, 2), &b.participants);
    }
    if (sqlite3_column_type(s, 3) != SQLITE_NULL) b.protocol = sqlite3_column_int(s, 3);
    b.updated_ms = sqlite3_column_int64(s, 4);
    d->branches.push_back(std::move(b));
  }));
  std::map<std::string, size_t> by_txid;  // -> index in d->branches
  for (size_t i = 0; i < d->branches.size(); ++i) by_txid.emplace(d->branches[i].txid, i);
  // Change rows; a branch with rows but no branch row (never written so) is
  // still shown. A branch's first change set is in its branch row (files
  // written before that have no such column), shown as its change 1.
  auto inline_changes = r.HasColumn("txc_branches", "redo");
  if (!inline_changes.ok()) return inline_changes.status();
  const std::string where = txid ? " WHERE txid = ?1" : "";
  std::string changes_sql = "SELECT txid, seq, length(redo), length(undo), keys FROM txc_changes" + where;
  if (*inline_changes) {
    changes_sql += " UNION ALL SELECT txid, 1, length(redo), length(undo), keys FROM txc_branches" +
                   (txid ? where + " AND" : std::string(" WHERE")) + " redo IS NOT NULL";
  }
  changes_sql += " ORDER BY 1, 2";
  TXC_RETURN_IF_ERROR(r.Query(changes_sql.c_str(), key, [&](sqlite3_stmt* s) {
    std::string id = Column(s, 0);
    WalDump::Change c;
    c.seq = sqlite3_column_int64(s, 1);
    c.redo_bytes = static_cast<size_t>(sqlite3_column_int64(s, 2));
    c.undo_bytes = static_cast<size_t>(sqlite3_column_int64(s, 3));
    std::vector<std::string> keys;
    c.keys = participant::internal::DecodeKeys(Column(s, 4), &keys) ? static_cast<int64_t>(keys.size()) : -1;
    auto [it, added] = by_txid.try_emplace(id, d->branches.size());
    if (added) {
      WalDump::Branch b;
      b.txid = id;
      d->branches.push_back(std::move(b));
    }
    d->branches[it->second].changes.push_back(c);
  }));
  auto heuristics = r.HasTable("txc_heuristics");
  if (!heuristics.ok()) return heuristics.status();
  if (!*heuristics) return Status::Ok();
  const char* heuristics_sql =
      txid ? "SELECT txid, outcome, reason, who, at FROM txc_heuristics WHERE txid = ?1"
           : "SELECT txid, outcome, reason, who, at FROM txc_heuristics ORDER BY at, txid";
  return r.Query(heuristics_sql, key, [&](sqlite3_stmt* s) {
    WalDump::Heuristic h;
    h.txid = Column(s, 0);
    h.outcome = HeuristicOutcome(sqlite3_column_int(s, 1));
    h.reason = Column(s, 2);
    h.who = Column(s, 3);
    h.at_ms = sqlite3_column_int64(s, 4);
    d->heuristics.push_back(std::move(h));
  });
}

// The WAL of a database resource (participant/xa_resource.h): xa_branches,
// xa_statements, xa_heuristics, written by xa_resource.cc.
Status ReadDatabaseBranchLog(Reader& r, const std::optional<TxId>& txid, WalDump* d) {
  std::optional<std::string> key;
  if (txid) key = ToString(*txid);
  // The layout that last wrote it (participant::XaResource::kXaWalLayout).
  TXC_RETURN_IF_ERROR(AddLayoutMeta(r, "xa_meta", "xa_wal_layout", "WAL", d));
  const char* branches_sql =
      txid ? "SELECT txid, gid, state, info, protocol, updated FROM xa_branches WHERE txid = ?1"
           : "SELECT txid, gid, state, info, protocol, updated FROM xa_branches";
  TXC_RETURN_IF_ERROR(r.Query(branches_sql, key, [&](sqlite3_stmt* s) {
    WalDump::Branch b;
    b.txid = Column(s, 0);
    b.gid = Column(s, 1);
    b.state = sqlite3_column_int(s, 2);
    // info (a PreparedRecord) and protocol are written together, at PREPARED.
    if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
      proto::PreparedRecord rec;
      if (codec::Decode(Column(s, 3), &rec)) {
        b.participants = std::move(rec.participants);
      } else {
        b.participants_unreadable = true;
      }
    }
    int protocol = sqlite3_column_int(s, 4);
    if (protocol != 0) b.protocol = protocol;
    b.updated_ms = sqlite3_column_int64(s, 5) / 1000;  // stored in Unix microseconds
    d->branches.push_back(std::move(b));
  }));
  SortByTxid(&d->branches);
  std::map<std::string, size_t> by_txid;  // -> index in d->branches
  for (size_t i = 0; i < d->branches.size(); ++i) by_txid.emplace(d->branches[i].txid, i);
  // Statement rows; a branch with rows but no branch row (its row purged
  // while the statements' delete had not run) is still shown.
  const char* statements_sql =
      txid ? "SELECT txid, seq, statements FROM xa_statements WHERE txid = ?1 ORDER BY seq"
           : "SELECT txid, seq, statements FROM xa_statements ORDER BY txid, seq";
  size_t known = d->branches.size();
  TXC_RETURN_IF_ERROR(r.Query(statements_sql, key, [&](sqlite3_stmt* s) {
    std::string id = Column(s, 0);
    int64_t seq = sqlite3_column_int64(s, 1);
    auto [it, added] = by_txid.try_emplace(id, d->branches.size());
    if (added) {
      WalDump::Branch b;
      b.txid = id;
      d->branches.push_back(std::move(b));
    }
    auto& out = d->branches[it->second].statements;
    proto::ExecuteRequest req;
    if (!codec::Decode(Column(s, 2), &req)) {
      WalDump::Statement st;
      st.seq = seq;
      st.error = "unreadable statements record";
      out.push_back(std::move(st));
      return;
    }
    for (auto& x : req.statements) {
      WalDump::Statement st;
      st.seq = seq;
      st.sql = std::move(x.sql);
      st.params = x.params.size();
      if (x.__isset.expect_rows) st.expect_rows = x.expect_rows;
      out.push_back(std::move(st));
    }
  }));
  if (d->branches.size() > known) {
    std::vector<WalDump::Branch> orphans(std::make_move_iterator(d->branches.begin() + known),
                                         std::make_move_iterator(d->branches.end()));
    d->branches.resize(known);
    SortByTxid(&orphans);
    for (auto& b : orphans) d->branches.push_back(std::move(b));
  }
  const char* heuristics_sql =
      txid ? "SELECT txid, outcome, reason, who, at_ms FROM xa_heuristics WHERE txid = ?1"
           : "SELECT txid, outcome, reason, who, at_ms FROM xa_heuristics ORDER BY at_ms, txid";
  auto heuristics = r.HasTable("xa_heuristics");
  if (!heuristics.ok()) return heuristics.status();
  if (!*heuristics) return Status::Ok();
  return r.Query(heuristics_sql, key, [&](sqlite3_stmt* s) {
    WalDump::Heuristic h;
    h.txid = Column(s, 0);
    h.outcome = HeuristicOutcome(sqlite3_column_int(s, 1));
    h.reason = Column(s, 2);
    h.who = Column(s, 3);
    h.at_ms = sqlite3_column_int64(s, 4);
    d->heuristics.push_back(std::move(h));
  });
}

WalDump::Snapshot ReadSnapshot(int64_t index, const std::string& image,
                               const std::optional<TxId>& txid) {
  WalDump::Snapshot snap;
  snap.index = index;
  proto::CommandBatch batch;
  if (!codec::Decode(image, &batch)) {
    snap.error = "unreadable snapshot image";
    return snap;
  }
  snap.version = batch.__isset.snapshot_version ? batch.snapshot_version : 1;
  snap.command_count = batch.commands.size();
  for (const auto& c : batch.commands) {
    if (txid && Matches(c, txid)) snap.commands.push_back(c);
  }
  snap.forgotten_epochs = batch.forgotten.size();
  if (batch.__isset.lost_through) snap.lost_through = ToString(batch.lost_through);
  if (txid) {
    // Runs of seqs, flattened first, last, first, last...
    auto in_runs = [&](const std::vector<int64_t>& runs) {
      for (size_t i = 0; i + 1 < runs.size(); i += 2) {
        if (txid->seq >= runs[i] && txid->seq <= runs[i + 1]) return true;
      }
      return false;
    };
    for (const auto& f : batch.forgotten) {
      if (f.epoch != txid->epoch) continue;
      if (in_runs(f.committed)) snap.forgotten_outcome = "committed";
      if (in_runs(f.aborted)) snap.forgotten_outcome = "aborted";
    }
  }
  return snap;
}

Status ReadCoordinatorLog(Reader& r, const std::string& path, const std::optional<TxId>& txid,
                          WalDump* d) {
  std::map<std::string, std::string> meta;
  TXC_RETURN_IF_ERROR(r.Query("SELECT key, value FROM meta", std::nullopt,
                              [&](sqlite3_stmt* s) { meta[Column(s, 0)] = Column(s, 1); }));
  std::vector<std::pair<uint64_t, std::string>> raw;
  TXC_RETURN_IF_ERROR(r.Query("SELECT idx, data FROM records ORDER BY idx", std::nullopt,
                              [&](sqlite3_stmt* s) {
                                raw.emplace_back(static_cast<uint64_t>(sqlite3_column_int64(s, 0)),
                                                 Column(s, 1));
                              }));
  // A Paxos acceptor's log has its promise or joining mark; otherwise a
  // record tells: an Entry starts with its i64 slot (field 1, type 0x0a), a
  // command batch with its list of commands (field 1, type 0x0f).
  bool paxos = meta.count("promised") || meta.count("joining");
  if (!paxos && !raw.empty() && !raw.front().second.empty()) paxos = raw.front().second[0] == '\x0a';
  if (!paxos && raw.empty()) paxos = std::filesystem::path(path).filename() == "paxos.log";
  d->kind = paxos ? WalDump::kPaxosLog : WalDump::kLocalLog;

  for (const auto& [key, value] : meta) {
    if (key == "snapshot") continue;
    if (key == "promised") {
      paxos::wire::Ballot b;
      d->meta.emplace_back(key, codec::Decode(value, &b)
                                    ? std::to_string(b.round) + "." + std::to_string(b.replica)
                                    : "(unreadable)");
    } else {
      d->meta.emplace_back(key, value);
    }
  }
  if (meta.count("snapshot")) {
    int64_t index = 0;
    try {
      index = meta.count("snapshot_index") ? std::stoll(meta["snapshot_index"]) : 0;
    } catch (const std::exception&) {
    }
    d->snapshot = ReadSnapshot(index, meta["snapshot"], txid);
  }
  for (const auto& [index, data] : raw) {
    WalDump::Record rec;
    rec.index = index;
    std::string batch_bytes = data;
    if (paxos) {
      paxos::wire::Entry e;
      if (!codec::Decode(data, &e)) {
        rec.error = "unreadable Paxos entry";
      } else {
        rec.ballot = e.ballot;
        batch_bytes = e.value;
      }
    }
    if (rec.error.empty()) {
      proto::CommandBatch batch;
      if (!codec::Decode(batch_bytes, &batch)) {
        rec.error = "unreadable command batch";
      } else {
        for (auto& c : batch.commands) {
          if (Matches(c, txid)) rec.commands.push_back(std::move(c));
        }
      }
    }
    if (txid && rec.commands.empty() && rec.error.empty()) continue;
    d->records.push_back(std::move(rec));
  }
  return Status::Ok();
}

const char* TypeName(proto::CommandType::type t) {
  switch (t) {
    case proto::CommandType::NOOP: return "NOOP";
    case proto::CommandType::DECIDE: return "DECIDE";
    case proto::CommandType::PRECOMMIT: return "PRECOMMIT";
    case proto::CommandType::END_TXN: return "END";
    case proto::CommandType::RESOLVE: return "RESOLVE";
    case proto::CommandType::EPOCH: return "EPOCH";
    case proto::CommandType::FORGET: return "FORGET";
  }
  return "?";
}

bool HasTxid(const proto::Command& c) {
  return c.type != proto::CommandType::NOOP && c.type != proto::CommandType::EPOCH;
}
bool HasOutcome(const proto::Command& c) {
  return c.type == proto::CommandType::DECIDE || c.type == proto::CommandType::RESOLVE;
}

std::string StateName(int state) {
  if (state < 1 || state > 5) return "UNKNOWN(" + std::to_string(state) + ")";
  return participant::BranchStateName(static_cast<participant::BranchState>(state));
}

// xa_branches.state (xa_resource.cc's XaState): BranchState's values without
// PRECOMMITTED, plus the intents before finishing and GONE.
std::string DatabaseStateName(int state) {
  switch (state) {
    case 1: return "ACTIVE";
    case 2: return "PREPARED";
    case 4: return "COMMITTED";
    case 5: return "ABORTED";
    case 6: return "COMMITTING";
    case 7: return "ROLLING_BACK";
    case 8: return "GONE";
  }
  return "UNKNOWN(" + std::to_string(state) + ")";
}

std::string BranchStateText(const WalDump& d, int state) {
  return d.kind == WalDump::kDatabaseBranchLog ? DatabaseStateName(state) : StateName(state);
}

// SQL on one line of text: line breaks and tabs become spaces.
std::string OneLine(std::string sql) {
  for (char& c : sql) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return sql;
}

std::string ProtocolName(int p) {
  return p == proto::Protocol::TWO_PC ? "2pc" : p == proto::Protocol::THREE_PC ? "3pc" : "?";
}

const char* KindName(WalDump::Kind k) {
  switch (k) {
    case WalDump::kBranchLog: return "agent-branch-log";
    case WalDump::kDatabaseBranchLog: return "database-branch-log";
    case WalDump::kPaxosLog: return "coordinator-paxos-log";
    case WalDump::kLocalLog: return "coordinator-local-log";
  }
  return "?";
}

}  // namespace

Result<WalDump> ReadWal(const std::string& path, const std::optional<TxId>& txid) {
  std::error_code ec;
  std::string file = path;
  if (std::filesystem::is_directory(path, ec)) {
    for (const char* name : {"paxos.log", "coord.log"}) {
      if (std::filesystem::exists(path + "/" + name, ec)) {
        file = path + "/" + name;
        break;
      }
    }
    if (file == path) {
      // An agent's --data directory: name the WALs of its database resources.
      std::vector<std::string> xa;
      for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
        std::string name = e.path().filename().string();
        if (name.size() > 6 && name.compare(name.size() - 6, 6, ".xa.db") == 0) xa.push_back(name);
      }
      std::sort(xa.begin(), xa.end());
      std::string found;
      for (const auto& name : xa) found += (found.empty() ? "" : ", ") + path + "/" + name;
      return Status::InvalidArgument(
          path + " is a directory without paxos.log or coord.log: give a coordinator's --data "
                 "directory, its log file, an agent's resource database (the PATH of its "
                 "--resource NAME=sqlite:PATH), or the WAL of an agent's database resource "
                 "(DATA/NAME.xa.db for --resource NAME=postgres:... or mariadb:...)" +
          (found.empty() ? std::string() : "; here: " + found));
    }
  } else if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound(path + " does not exist: give an agent's resource database, an "
                                   "agent's DATA/NAME.xa.db or a coordinator's DIR/paxos.log or "
                                   "DIR/coord.log");
  }
  WalDump d;
  d.path = file;
  Reader r;
  TXC_RETURN_IF_ERROR(r.Open(file));
  auto branches = r.HasTable("txc_branches");
  if (!branches.ok()) return branches.status();
  if (*branches) {
    d.kind = WalDump::kBranchLog;
    TXC_RETURN_IF_ERROR(ReadBranchLog(r, txid, &d));
    return d;
  }
  auto xa_branches = r.HasTable("xa_branches");
  if (!xa_branches.ok()) return xa_branches.status();
  if (*xa_branches) {
    d.kind = WalDump::kDatabaseBranchLog;
    TXC_RETURN_IF_ERROR(ReadDatabaseBranchLog(r, txid, &d));
    return d;
  }
  auto records = r.HasTable("records");
  if (!records.ok()) return records.status();
  auto meta = r.HasTable("meta");
  if (!meta.ok()) return meta.status();
  if (*records && *meta) {
    TXC_RETURN_IF_ERROR(ReadCoordinatorLog(r, file, txid, &d));
    return d;
  }
  return Status::InvalidArgument(
      file + " is an SQLite database but neither an agent's branch log (no txc_branches table), "
             "a database resource's WAL (no xa_branches table) nor a coordinator's log (no "
             "records and meta tables): give an agent's resource database, an agent's "
             "DATA/NAME.xa.db or a coordinator's DIR/paxos.log or DIR/coord.log");
}

Json CommandJson(const proto::Command& c) {
  Json o;
  o["type"] = TypeName(c.type);
  if (HasTxid(c)) o["txid"] = ToString(c.txid);
  if (HasOutcome(c)) o["outcome"] = OutcomeName(c.outcome);
  if (!c.participants.empty()) {
    o["participants"] = ParticipantsJson(c.participants);
    o["protocol"] = ProtocolName(c.protocol);
  }
  if (!c.reason.empty()) o["reason"] = c.reason;
  if (!c.who.empty()) o["who"] = c.who;
  if (c.type == proto::CommandType::EPOCH || c.epoch != 0) o["epoch"] = c.epoch;
  return o;
}

std::string CommandText(const proto::Command& c) {
  std::string s = TypeName(c.type);
  if (HasTxid(c)) s += " " + ToString(c.txid);
  if (HasOutcome(c)) s += std::string(" ") + OutcomeName(c.outcome);
  if (c.type == proto::CommandType::EPOCH || c.epoch != 0) s += " epoch=" + std::to_string(c.epoch);
  if (!c.participants.empty()) {
    s += " " + ProtocolName(c.protocol) + " participants=" + ParticipantsText(c.participants);
  }
  if (!c.reason.empty()) s += " reason=\"" + c.reason + "\"";
  if (!c.who.empty()) s += " who=\"" + c.who + "\"";
  return s;
}

Json WalJson(const WalDump& d) {
  Json j;
  j["path"] = d.path;
  j["kind"] = KindName(d.kind);
  if (d.kind == WalDump::kBranchLog || d.kind == WalDump::kDatabaseBranchLog) {
    bool database = d.kind == WalDump::kDatabaseBranchLog;
    Json branches = Json::array();
    for (const auto& b : d.branches) {
      Json o;
      o["txid"] = b.txid;
      if (database) o["gid"] = b.state != 0 ? Json(b.gid) : Json(nullptr);
      o["state"] = b.state != 0 ? Json(BranchStateText(d, b.state)) : Json(nullptr);
      o["protocol"] = b.protocol ? Json(ProtocolName(*b.protocol)) : Json(nullptr);
      o["participants"] = ParticipantsJson(b.participants);
      if (b.participants_unreadable) o["participants_error"] = "unreadable participants record";
      o["updated_ms"] = b.updated_ms;
      o["updated"] = b.updated_ms != 0 ? Json(IsoTime(b.updated_ms)) : Json(nullptr);
      if (database) {
        Json statements = Json::array();
        for (const auto& st : b.statements) {
          Json x;
          x["seq"] = st.seq;
          if (!st.error.empty()) {
            x["error"] = st.error;
          } else {
            x["sql"] = st.sql;
            x["params"] = st.params;
            if (st.expect_rows) x["expect_rows"] = *st.expect_rows;
          }
          statements.push_back(std::move(x));
        }
        o["statements"] = std::move(statements);
      } else {
        Json changes = Json::array();
        for (const auto& c : b.changes) {
          Json x;
          x["seq"] = c.seq;
          x["redo_bytes"] = c.redo_bytes;
          x["undo_bytes"] = c.undo_bytes;
          x["lock_keys"] = c.keys >= 0 ? Json(c.keys) : Json(nullptr);
          changes.push_back(std::move(x));
        }
        o["changes"] = std::move(changes);
      }
      branches.push_back(std::move(o));
    }
    j["branches"] = std::move(branches);
    Json heuristics = Json::array();
    for (const auto& h : d.heuristics) {
      Json o;
      o["txid"] = h.txid;
      o["outcome"] = h.outcome;
      o["reason"] = h.reason;
      o["who"] = h.who;
      o["at"] = h.at_ms != 0 ? Json(IsoTime(h.at_ms)) : Json(nullptr);
      heuristics.push_back(std::move(o));
    }
    j["heuristics"] = std::move(heuristics);
    if (d.meta.empty()) return j;
  }
  Json meta = Json::object();
  for (const auto& [k, v] : d.meta) meta[k] = v;
  j["meta"] = std::move(meta);
  if (d.kind == WalDump::kBranchLog || d.kind == WalDump::kDatabaseBranchLog) return j;
  if (d.snapshot) {
    const auto& s = *d.snapshot;
    Json o;
    o["index"] = s.index;
    if (!s.error.empty()) {
      o["error"] = s.error;
    } else {
      o["version"] = s.version;
      o["commands"] = s.command_count;
      o["forgotten_epochs"] = s.forgotten_epochs;
      o["lost_through"] = s.lost_through ? Json(*s.lost_through) : Json(nullptr);
      Json matching = Json::array();
      for (const auto& c : s.commands) matching.push_back(CommandJson(c));
      if (!s.commands.empty()) o["matching_commands"] = std::move(matching);
      if (!s.forgotten_outcome.empty()) o["forgotten_outcome"] = s.forgotten_outcome;
    }
    j["snapshot"] = std::move(o);
  } else {
    j["snapshot"] = nullptr;
  }
  Json records = Json::array();
  for (const auto& r : d.records) {
    Json o;
    o["index"] = r.index;
    if (r.ballot) o["ballot"] = std::to_string(r.ballot->round) + "." + std::to_string(r.ballot->replica);
    if (!r.error.empty()) o["error"] = r.error;
    Json cmds = Json::array();
    for (const auto& c : r.commands) cmds.push_back(CommandJson(c));
    o["commands"] = std::move(cmds);
    records.push_back(std::move(o));
  }
  j["records"] = std::move(records);
  return j;
}

std::string WalText(const WalDump& d) {
  std::ostringstream out;
  out << d.path << ": " << KindName(d.kind) << "\n";
  if (d.kind == WalDump::kBranchLog || d.kind == WalDump::kDatabaseBranchLog) {
    for (const auto& b : d.branches) {
      out << b.txid << "  " << (b.state != 0 ? BranchStateText(d, b.state) : "(no branch row)");
      if (!b.gid.empty()) out << "  gid " << b.gid;
      if (b.protocol) out << "  " << ProtocolName(*b.protocol);
      if (b.updated_ms != 0) out << "  updated " << IsoTime(b.updated_ms);
      if (!b.participants.empty()) out << "  participants=" << ParticipantsText(b.participants);
      if (b.participants_unreadable) out << "  participants UNREADABLE";
      out << "\n";
      for (const auto& c : b.changes) {
        out << "    change " << c.seq << ": redo " << c.redo_bytes << " B, undo " << c.undo_bytes
            << " B, lock keys " << (c.keys >= 0 ? std::to_string(c.keys) : "UNREADABLE") << "\n";
      }
      for (const auto& st : b.statements) {
        out << "    statement " << st.seq << ": ";
        if (!st.error.empty()) {
          out << "UNREADABLE (" << st.error << ")\n";
          continue;
        }
        out << OneLine(st.sql) << "  (" << st.params << (st.params == 1 ? " param" : " params");
        if (st.expect_rows) out << ", expect rows " << *st.expect_rows;
        out << ")\n";
      }
    }
    out << "(" << d.branches.size() << " branches)\n";
    for (const auto& h : d.heuristics) {
      out << "heuristic " << h.txid << "  " << h.outcome << " by " << h.who << " ("
          << h.reason << ")" << (h.at_ms != 0 ? "  at " + IsoTime(h.at_ms) : "") << "\n";
    }
    if (!d.heuristics.empty()) out << "(" << d.heuristics.size() << " heuristic decisions)\n";
  }
  for (const auto& [k, v] : d.meta) out << "meta " << k << " = " << v << "\n";
  if (d.kind == WalDump::kBranchLog || d.kind == WalDump::kDatabaseBranchLog) return out.str();
  if (d.snapshot) {
    const auto& s = *d.snapshot;
    out << "snapshot at index " << s.index << ": ";
    if (!s.error.empty()) {
      out << s.error << "\n";
    } else {
      out << "version " << s.version << ", " << s.command_count << " commands, "
          << s.forgotten_epochs << " epochs of forgotten runs"
          << (s.lost_through ? ", lost through " + *s.lost_through : "") << "\n";
      for (const auto& c : s.commands) out << "  " << CommandText(c) << "\n";
      if (!s.forgotten_outcome.empty()) out << "  forgotten: " << s.forgotten_outcome << "\n";
    }
  }
  for (const auto& r : d.records) {
    out << "index " << r.index;
    if (r.ballot) out << "  ballot " << r.ballot->round << "." << r.ballot->replica;
    if (!r.error.empty()) out << "  ERROR: " << r.error;
    out << "\n";
    for (const auto& c : r.commands) out << "  " << CommandText(c) << "\n";
  }
  out << "(" << d.records.size() << " records)\n";
  return out.str();
}

}  // namespace txc::admin
