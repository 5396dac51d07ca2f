#include "participant/queue_resource.h"

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <limits>
#include <mutex>
#include <utility>

#include "common/log.h"
#include "participant/sqlite_branch_log.h"
#include "participant/sqlite_util.h"
#include "wal/group_committer.h"
#include "wal/sqlite.h"

namespace txc::participant {

using internal::BindAll;
using internal::Blob;
using internal::BranchLog;
using internal::ResetOnExit;

namespace {

Micros SystemNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One queued operation and, once run, its outcome.
struct Op : wal::GroupOp {
  enum Kind { kExecute, kPrepare, kExecuteAndPrepare, kPreCommit, kCommit, kRollback, kHeuristic,
              kForgetHeuristic };
  Kind kind = kExecute;
  TxId txid;
  std::vector<proto::Statement> statements;
  PrepareInfo info;
  HeuristicRecord heuristic;
  ResourceManager::Callback<ExecuteResult> exec_done;
  ResourceManager::Callback<Status> status_done;

  ExecuteResult result;    // result.status is the outcome for every kind
  bool finalized = false;  // outcome fixed even if the group is re-run

  bool NeedsSync() const { return kind != kExecute && kind != kRollback; }
};

enum class Command { kEnqueue, kDequeue, kCount };

const char* ValueTypeName(const proto::Value& v) {
  if (v.__isset.i) return "an integer";
  if (v.__isset.d) return "a real";
  if (v.__isset.s) return "text";
  if (v.__isset.b) return "a blob";
  return "NULL";
}

// The command word without surrounding blanks or a trailing ';'.
std::string CommandWord(const std::string& sql) {
  size_t b = 0, e = sql.size();
  while (b < e && std::isspace(static_cast<unsigned char>(sql[b]))) ++b;
  while (e > b && (std::isspace(static_cast<unsigned char>(sql[e - 1])) || sql[e - 1] == ';')) --e;
  return sql.substr(b, e - b);
}

constexpr const char* kUsage =
    "a queue resource takes ENQUEUE [queue, payload], DEQUEUE [queue] or COUNT [queue] "
    "(queue: text; payload: text or blob)";

}  // namespace

// ------------------------------------------------------------------ Impl

class QueueResource::Impl {
 public:
  Impl(std::string name, QueueResourceOptions options, std::unique_ptr<wal::Db> db)
      : name_(std::move(name)),
        options_(options),
        db_(std::move(db)),
        log_(name_, db_.get(), &SystemNowMicros) {
    wal::GroupCommitter::Options co;
    co.max_weight = options_.max_group_ops;
    committer_ = std::make_unique<wal::GroupCommitter>(
        std::move(co),
        [this](wal::GroupCommitter::Group& group) {
          std::lock_guard<std::mutex> l(db_mu_);
          return RunGroup(group);
        },
        [](wal::GroupOp& op) { Deliver(static_cast<Op&>(op)); });
  }

  // Runs every queued operation first: their callbacks still come.
  ~Impl() { committer_->Stop(); }

  Status Init();
  Result<std::vector<RecoveredBranch>> Recover();
  Result<std::vector<HeuristicRecord>> Heuristics();
  void Enqueue(std::unique_ptr<Op> op) { committer_->Enqueue(std::move(op)); }

  const std::string name_;
  const QueueResourceOptions options_;
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<bool> inject_failure{false};

 private:
  // The committer's worker, under db_mu_: true when the group committed and
  // needs durability before its callbacks.
  bool RunGroup(wal::GroupCommitter::Group& group);
  Status RunOp(Op& op);
  bool FailGroup(const std::vector<Op*>& ops, const Status& why);
  static void Deliver(Op& op);

  // Branch operations, inside the group transaction and the op's savepoint.
  Status DoExecute(const TxId& txid, const std::vector<proto::Statement>& statements,
                   ExecuteResult* out);
  Status DoStatement(const std::string& txid, size_t index, const proto::Statement& st,
                     proto::ResultSet* rs);
  Status DoCommit(const TxId& txid);
  Status DoRollback(const TxId& txid);
  Status DoHeuristic(HeuristicRecord record);
  Status DoForgetHeuristic(const TxId& txid);

  // True when the branch has pending enqueues or claims.
  Result<bool> HasWork(const std::string& txid);
  // Checks a statement's queue parameter.
  Status QueueParam(const proto::Statement& st, size_t index, const std::string& where,
                    std::string* queue) const;

  Status Err(Status::Code code, const std::string& msg) const { return errors_.Err(code, msg); }
  Status Internal(const Status& s) const { return errors_.Internal(s); }

  const internal::Named errors_{name_};
  std::unique_ptr<wal::Db> db_;
  BranchLog log_;  // destroyed before db_: it holds prepared statements
  std::unique_ptr<wal::Stmt> begin_, commit_, rollback_, savepoint_, release_, rollback_to_,
      enqueue_, dequeue_, claim_, count_, has_work_, delete_claimed_, enqueued_range_, place_,
      drop_enqueued_, unclaim_;
  bool sync_full_ = true;  // current PRAGMA synchronous (Db::Open sets FULL)
  // The next delivery position to hand out. Only grows: a group that fails
  // after taking positions leaves a gap, which orders nothing wrongly.
  int64_t next_pos_ = 1;

  std::mutex db_mu_;  // the worker's group vs. Recover and Heuristics on the caller's thread
  std::unique_ptr<wal::GroupCommitter> committer_;
};

Status QueueResource::Impl::Init() {
  TXC_RETURN_IF_ERROR(log_.Init());
  // payload has no declared type, so SQLite keeps text as text and a blob as
  // a blob, and DEQUEUE gives back what ENQUEUE got.
  TXC_RETURN_IF_ERROR(db_->Exec(
      "CREATE TABLE IF NOT EXISTS txc_messages("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, payload NOT NULL,"
      "  pos INTEGER, enqueued_by TEXT, claimed_by TEXT);"
      "CREATE INDEX IF NOT EXISTS txc_messages_ready ON txc_messages(queue, pos)"
      "  WHERE pos IS NOT NULL;"
      "CREATE INDEX IF NOT EXISTS txc_messages_enqueued ON txc_messages(enqueued_by)"
      "  WHERE enqueued_by IS NOT NULL;"
      "CREATE INDEX IF NOT EXISTS txc_messages_claimed ON txc_messages(claimed_by)"
      "  WHERE claimed_by IS NOT NULL;"));
  auto prep = [this](std::unique_ptr<wal::Stmt>* out, std::string_view sql) {
    return internal::PrepareInto(*db_, out, sql);
  };
  TXC_RETURN_IF_ERROR(prep(&begin_, "BEGIN IMMEDIATE"));
  TXC_RETURN_IF_ERROR(prep(&commit_, "COMMIT"));
  TXC_RETURN_IF_ERROR(prep(&rollback_, "ROLLBACK"));
  TXC_RETURN_IF_ERROR(prep(&savepoint_, "SAVEPOINT txc_op"));
  TXC_RETURN_IF_ERROR(prep(&release_, "RELEASE txc_op"));
  TXC_RETURN_IF_ERROR(prep(&rollback_to_, "ROLLBACK TO txc_op"));
  TXC_RETURN_IF_ERROR(prep(&enqueue_,
                           "INSERT INTO txc_messages(queue, payload, enqueued_by) "
                           "VALUES(?1, ?2, ?3)"));
  TXC_RETURN_IF_ERROR(prep(&dequeue_,
                           "SELECT id, payload FROM txc_messages WHERE queue = ?1 AND "
                           "pos IS NOT NULL AND claimed_by IS NULL ORDER BY pos LIMIT 1"));
  TXC_RETURN_IF_ERROR(prep(&claim_, "UPDATE txc_messages SET claimed_by = ?2 WHERE id = ?1"));
  TXC_RETURN_IF_ERROR(prep(&count_,
                           "SELECT COUNT(*) FROM txc_messages WHERE queue = ?1 AND "
                           "pos IS NOT NULL AND claimed_by IS NULL"));
  TXC_RETURN_IF_ERROR(prep(&has_work_,
                           "SELECT EXISTS(SELECT 1 FROM txc_messages WHERE enqueued_by = ?1) OR "
                           "EXISTS(SELECT 1 FROM txc_messages WHERE claimed_by = ?1)"));
  TXC_RETURN_IF_ERROR(prep(&delete_claimed_, "DELETE FROM txc_messages WHERE claimed_by = ?1"));
  TXC_RETURN_IF_ERROR(prep(&enqueued_range_,
                           "SELECT MIN(id), MAX(id) FROM txc_messages WHERE enqueued_by = ?1"));
  // pos = base + (id - first id): the branch's messages in enqueue order.
  TXC_RETURN_IF_ERROR(prep(&place_,
                           "UPDATE txc_messages SET pos = ?2 + id, enqueued_by = NULL "
                           "WHERE enqueued_by = ?1"));
  TXC_RETURN_IF_ERROR(prep(&drop_enqueued_, "DELETE FROM txc_messages WHERE enqueued_by = ?1"));
  TXC_RETURN_IF_ERROR(
      prep(&unclaim_, "UPDATE txc_messages SET claimed_by = NULL WHERE claimed_by = ?1"));
  {
    // Read once at open (a scan of the messages still queued).
    auto s = db_->Prepare("SELECT COALESCE(MAX(pos), 0) + 1 FROM txc_messages");
    if (!s.ok()) return Internal(s.status());
    auto row = (*s)->Step();
    if (!row.ok()) return Internal(row.status());
    if (*row) next_pos_ = (*s)->ColumnInt(0);
  }
  if (options_.busy_timeout >= 0) {
    sqlite3_busy_timeout(db_->raw(),
                         static_cast<int>(std::min<Micros>(options_.busy_timeout / kMillis,
                                                           std::numeric_limits<int>::max())));
  }
  committer_->Start();
  return Status::Ok();
}

// ------------------------------------------------------------- recovery

Result<std::vector<RecoveredBranch>> QueueResource::Impl::Recover() {
  std::lock_guard<std::mutex> l(db_mu_);
  auto out = log_.LiveBranches();
  if (!out.ok()) return out.status();
  // Every pending enqueue and claim belongs to a live branch: each is written
  // in the same local transaction as the branch's row, and Commit and
  // Rollback clear them with its final state. Rows of no live branch mean the
  // file was edited; release them so the messages are not stuck, and say so.
  // Each statement is its own (idempotent) transaction.
  int64_t before = sqlite3_total_changes64(db_->raw());
  TXC_RETURN_IF_ERROR(Internal(db_->Exec(
      "DELETE FROM txc_messages WHERE enqueued_by IS NOT NULL AND enqueued_by NOT IN "
      "  (SELECT txid FROM txc_branches WHERE state < 4);"
      "UPDATE txc_messages SET claimed_by = NULL WHERE claimed_by IS NOT NULL AND claimed_by "
      "  NOT IN (SELECT txid FROM txc_branches WHERE state < 4);")));
  int64_t orphans = sqlite3_total_changes64(db_->raw()) - before;
  if (orphans > 0) {
    Logger("wal")->warn("queue resource released messages held by no live branch resource={} "
                        "rows={} (the file was changed outside txcoord?)",
                        name_, orphans);
  }
  int64_t pending = 0;
  {
    auto s = db_->Prepare("SELECT COUNT(*) FROM txc_messages WHERE enqueued_by IS NOT NULL OR "
                          "claimed_by IS NOT NULL");
    if (!s.ok()) return Internal(s.status());
    auto row = (*s)->Step();
    if (!row.ok()) return Internal(row.status());
    if (*row) pending = (*s)->ColumnInt(0);
  }
  Logger("wal")->info("queue resource recovered resource={} branches={} pending_messages={}",
                      name_, out->size(), pending);
  return std::move(*out);
}

Result<std::vector<HeuristicRecord>> QueueResource::Impl::Heuristics() {
  std::lock_guard<std::mutex> l(db_mu_);
  return log_.Heuristics();
}

// ---------------------------------------------------------------- worker

void QueueResource::Impl::Deliver(Op& op) {
  if (op.kind == Op::kExecute || op.kind == Op::kExecuteAndPrepare) {
    if (!op.result.status.ok()) op.result.results.clear();
    if (op.exec_done) op.exec_done(std::move(op.result));
  } else if (op.status_done) {
    op.status_done(std::move(op.result.status));
  }
}

bool QueueResource::Impl::FailGroup(const std::vector<Op*>& ops, const Status& why) {
  if (!sqlite3_get_autocommit(db_->raw())) {
    rollback_->Reset();
    (void)rollback_->Run();
    rollback_->Reset();
  }
  if (committer_->Fail(why)) {
    Logger("wal")->error("queue resource storage failure, refusing every later operation until "
                         "restart resource={} path={} error=\"{}\"",
                         name_, db_->path(), why.ToString());
  }
  for (Op* op : ops) {
    if (op->finalized) continue;  // failed on its own, nothing of it applied
    op->result = ExecuteResult{};
    op->result.status = Err(Status::kStorageFailed, "local commit failed: " + why.message());
    op->finalized = true;
  }
  return false;
}

bool QueueResource::Impl::RunGroup(wal::GroupCommitter::Group& group) {
  std::vector<Op*> ops;
  ops.reserve(group.size());
  for (auto& op : group) ops.push_back(static_cast<Op*>(op.get()));
  if (committer_->failed()) {
    for (Op* op : ops) {
      op->result.status = Err(Status::kStorageFailed,
                              "a local commit failed earlier (" + committer_->fail_reason() +
                                  "); the resource refuses every operation until restarted");
    }
    return false;
  }
  bool need_sync = false;
  for (Op* op : ops) need_sync |= op->NeedsSync();
  if (need_sync != sync_full_) {
    // Between transactions only: SQLite applies it to the next COMMIT, which
    // with FULL syncs the WAL (and every earlier unsynced group with it).
    Status s = db_->SetSynchronousFull(need_sync);
    if (!s.ok()) return FailGroup(ops, s);
    sync_full_ = need_sync;
  }

  auto step = [](wal::Stmt& s) {
    s.Reset();
    Status st = s.Run();
    s.Reset();
    return st;
  };
  Status b = step(*begin_);
  if (!b.ok()) {
    if (b.code() == Status::kStorageFailed) return FailGroup(ops, b);
    // Busy (another process holds the file): transient, not sticky.
    for (Op* op : ops) op->result.status = Err(Status::kUnavailable, b.message());
    return false;
  }
  for (Op* op : ops) {
    op->result = ExecuteResult{};
    Status sp = step(*savepoint_);
    if (!sp.ok()) return FailGroup(ops, sp);
    Status s = RunOp(*op);
    if (sqlite3_get_autocommit(db_->raw())) {
      // SQLite rolled the whole transaction back (an I/O error, a full
      // disk): the ops before this one are gone too.
      return FailGroup(ops, s.ok() ? Err(Status::kStorageFailed,
                                         "the local transaction was rolled back")
                                   : s);
    }
    if (s.code() == Status::kStorageFailed) return FailGroup(ops, s);
    if (!s.ok()) {
      Status r = step(*rollback_to_);
      if (!r.ok()) return FailGroup(ops, r);
    }
    Status rel = step(*release_);
    if (!rel.ok()) return FailGroup(ops, rel);
    op->result.status = std::move(s);
  }
  log_.MaybePurge(SteadyNowMicros());
  if (need_sync && inject_failure.exchange(false)) {
    return FailGroup(ops, Err(Status::kStorageFailed, "injected failure (test): disk full"));
  }
  Status c = step(*commit_);
  if (!c.ok()) return FailGroup(ops, c);
  groups.fetch_add(1);
  if (need_sync) syncs.fetch_add(1);
  for (Op* op : ops) op->finalized = true;
  return need_sync;
}

Status QueueResource::Impl::RunOp(Op& op) {
  switch (op.kind) {
    case Op::kExecute:
      return DoExecute(op.txid, op.statements, &op.result);
    case Op::kExecuteAndPrepare: {
      TXC_RETURN_IF_ERROR(DoExecute(op.txid, op.statements, &op.result));
      return log_.Prepare(op.txid, op.info);
    }
    case Op::kPrepare:
      return log_.Prepare(op.txid, op.info);
    case Op::kPreCommit:
      return log_.PreCommit(op.txid);
    case Op::kCommit:
      return DoCommit(op.txid);
    case Op::kRollback:
      return DoRollback(op.txid);
    case Op::kHeuristic:
      return DoHeuristic(op.heuristic);
    case Op::kForgetHeuristic:
      return DoForgetHeuristic(op.txid);
  }
  return Status::Internal("unknown op");
}

Result<bool> QueueResource::Impl::HasWork(const std::string& txid) {
  wal::Stmt& s = *has_work_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  auto row = s.Step();
  if (!row.ok()) return Internal(row.status());
  return *row && s.ColumnInt(0) != 0;
}

// ------------------------------------------------------------- Execute

Status QueueResource::Impl::DoExecute(const TxId& txid,
                                      const std::vector<proto::Statement>& statements,
                                      ExecuteResult* out) {
  const std::string id = ToString(txid);
  auto state = log_.LoadState(id);
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
        return Err(Status::kInvalidArgument, "branch " + id + " is already " +
                                                 BranchStateName(**state) +
                                                 "; it takes no more statements");
    }
  }
  // The branch row first, so the messages it enqueues or claims always have
  // a live branch in the same local transaction.
  if (!state->has_value()) TXC_RETURN_IF_ERROR(log_.InsertBranch(txid, BranchState::kActive));
  std::vector<proto::ResultSet> results;
  results.reserve(statements.size());
  size_t result_bytes = 0;
  for (size_t i = 0; i < statements.size(); ++i) {
    proto::ResultSet rs;
    TXC_RETURN_IF_ERROR(DoStatement(id, i, statements[i], &rs));
    for (const auto& row : rs.rows) {
      for (const auto& v : row.values) result_bytes += internal::ResultBytes(v);
    }
    if (options_.max_result_bytes > 0 && result_bytes > options_.max_result_bytes) {
      return Err(Status::kInvalidArgument,
                 "the results of this Execute call passed " +
                     std::to_string(options_.max_result_bytes) +
                     " bytes (the resource's limit per call) at statement " + std::to_string(i + 1) +
                     "; nothing of this call is applied: dequeue fewer messages per call");
    }
    results.push_back(std::move(rs));
  }
  auto wrote = HasWork(id);
  if (!wrote.ok()) return wrote.status();
  out->wrote = *wrote;
  out->results = std::move(results);
  return Status::Ok();
}

Status QueueResource::Impl::QueueParam(const proto::Statement& st, size_t index,
                                       const std::string& where, std::string* queue) const {
  const proto::Value& v = st.params[index];
  if (!v.__isset.s) {
    return Err(Status::kSqlError, "parameter " + std::to_string(index + 1) +
                                      " (queue) must be text, got " + ValueTypeName(v) + where);
  }
  if (v.s.empty() || v.s.size() > kMaxQueueNameBytes) {
    return Err(Status::kSqlError, "queue name must be 1-" + std::to_string(kMaxQueueNameBytes) +
                                      " bytes, got " + std::to_string(v.s.size()) + where);
  }
  *queue = v.s;
  return Status::Ok();
}

Status QueueResource::Impl::DoStatement(const std::string& txid, size_t index,
                                        const proto::Statement& st, proto::ResultSet* rs) {
  const std::string word = CommandWord(st.sql);
  const std::string where =
      " (statement " + std::to_string(index + 1) + ": " + internal::Snippet(st.sql) + ")";
  Command cmd;
  size_t want_params;
  if (strcasecmp(word.c_str(), "ENQUEUE") == 0) {
    cmd = Command::kEnqueue;
    want_params = 2;
  } else if (strcasecmp(word.c_str(), "DEQUEUE") == 0) {
    cmd = Command::kDequeue;
    want_params = 1;
  } else if (strcasecmp(word.c_str(), "COUNT") == 0) {
    cmd = Command::kCount;
    want_params = 1;
  } else {
    return Err(Status::kSqlError, "unknown command \"" + internal::Snippet(word) + "\"" + where +
                                      "; " + kUsage);
  }
  if (st.params.size() != want_params) {
    static const char* const kWants[] = {"ENQUEUE takes 2 parameters [queue, payload]",
                                         "DEQUEUE takes 1 parameter [queue]",
                                         "COUNT takes 1 parameter [queue]"};
    return Err(Status::kSqlError, std::string(kWants[static_cast<int>(cmd)]) + ", got " +
                                      std::to_string(st.params.size()) + where);
  }
  std::string queue;
  TXC_RETURN_IF_ERROR(QueueParam(st, 0, where, &queue));

  switch (cmd) {
    case Command::kEnqueue: {
      const proto::Value& p = st.params[1];
      if (!p.__isset.s && !p.__isset.b) {
        return Err(Status::kSqlError,
                   "parameter 2 (payload) must be text or a blob, got " +
                       std::string(ValueTypeName(p)) + where);
      }
      const std::string& payload = p.__isset.s ? p.s : p.b;
      if (payload.size() > options_.max_payload_bytes) {
        return Err(Status::kSqlError, "payload is " + std::to_string(payload.size()) +
                                          " bytes; this queue resource takes at most " +
                                          std::to_string(options_.max_payload_bytes) + where);
      }
      wal::Stmt& s = *enqueue_;
      Status b = p.__isset.s ? BindAll(s, queue, payload, txid)
                             : BindAll(s, queue, Blob{payload}, txid);
      TXC_RETURN_IF_ERROR(Internal(b));
      ResetOnExit reset{s};
      TXC_RETURN_IF_ERROR(Internal(s.Run()));
      proto::Value v;
      v.__set_i(db_->last_insert_rowid());
      rs->columns = {"id"};
      rs->rows.resize(1);
      rs->rows[0].values = {v};
      rs->rows_changed = 1;
      break;
    }
    case Command::kDequeue: {
      rs->columns = {"id", "payload"};
      rs->rows_changed = 0;
      int64_t msg_id = 0;
      proto::Value payload;
      bool found = false;
      {
        wal::Stmt& s = *dequeue_;
        TXC_RETURN_IF_ERROR(Internal(BindAll(s, queue)));
        ResetOnExit reset{s};
        auto row = s.Step();
        if (!row.ok()) return Internal(row.status());
        if (*row) {
          found = true;
          msg_id = s.ColumnInt(0);
          if (s.column_type(1) == SQLITE_BLOB) {
            payload.__set_b(s.ColumnBlob(1));
          } else {
            payload.__set_s(s.ColumnText(1));
          }
        }
      }
      if (found) {
        wal::Stmt& s = *claim_;
        TXC_RETURN_IF_ERROR(Internal(BindAll(s, msg_id, txid)));
        ResetOnExit reset{s};
        TXC_RETURN_IF_ERROR(Internal(s.Run()));
        proto::Value idv;
        idv.__set_i(msg_id);
        rs->rows.resize(1);
        rs->rows[0].values = {idv, std::move(payload)};
        rs->rows_changed = 1;
      }
      break;
    }
    case Command::kCount: {
      wal::Stmt& s = *count_;
      TXC_RETURN_IF_ERROR(Internal(BindAll(s, queue)));
      ResetOnExit reset{s};
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      proto::Value n;
      n.__set_i(*row ? s.ColumnInt(0) : 0);
      rs->columns = {"n"};
      rs->rows.resize(1);
      rs->rows[0].values = {n};
      rs->rows_changed = 0;
      break;
    }
  }
  if (st.__isset.expect_rows && st.expect_rows != rs->rows_changed) {
    return Err(Status::kExpectationFailed,
               "statement " + std::to_string(index + 1) + " (" + word + " " + queue + ") changed " +
                   std::to_string(rs->rows_changed) + " rows, expected " +
                   std::to_string(st.expect_rows));
  }
  return Status::Ok();
}

// ------------------------------------------------ Prepare, Commit, Rollback


Status QueueResource::Impl::DoCommit(const TxId& txid) {
  const std::string id = ToString(txid);
  auto state = log_.LoadState(id);
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
  auto changed = HasWork(id);
  if (!changed.ok()) return changed.status();
  if (*changed) {
    {
      wal::Stmt& s = *delete_claimed_;
      TXC_RETURN_IF_ERROR(Internal(BindAll(s, id)));
      ResetOnExit reset{s};
      TXC_RETURN_IF_ERROR(Internal(s.Run()));
    }
    int64_t first = 0, last = -1;
    {
      wal::Stmt& s = *enqueued_range_;
      TXC_RETURN_IF_ERROR(Internal(BindAll(s, id)));
      ResetOnExit reset{s};
      auto row = s.Step();
      if (!row.ok()) return Internal(row.status());
      if (*row && !s.ColumnIsNull(0)) {
        first = s.ColumnInt(0);
        last = s.ColumnInt(1);
      }
    }
    if (last >= first) {
      // The branch's messages go after every message placed so far, in the
      // order it enqueued them: pos = next_pos_ + (id - first).
      wal::Stmt& s = *place_;
      TXC_RETURN_IF_ERROR(Internal(BindAll(s, id, next_pos_ - first)));
      ResetOnExit reset{s};
      TXC_RETURN_IF_ERROR(Internal(s.Run()));
      next_pos_ += last - first + 1;
    }
  }
  return log_.SetCommitted(id, *changed);
}

Status QueueResource::Impl::DoRollback(const TxId& txid) {
  const std::string id = ToString(txid);
  auto state = log_.LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return log_.InsertBranch(txid, BranchState::kAborted);  // tombstone
  switch (**state) {
    case BranchState::kAborted:
      return Status::Ok();
    case BranchState::kCommitted: {
      // Released read-only (it only counted, or found its queue empty): a
      // rollback is a no-op. One that enqueued or dequeued cannot be undone.
      auto changed = log_.Changed(id);
      if (!changed.ok()) return changed.status();
      if (!*changed) return Status::Ok();
      return Err(Status::kInvalidArgument,
                 "branch " + id + " is committed here; it cannot be rolled back");
    }
    default:
      break;
  }
  for (wal::Stmt* stmt : {drop_enqueued_.get(), unclaim_.get()}) {
    wal::Stmt& s = *stmt;
    TXC_RETURN_IF_ERROR(Internal(BindAll(s, id)));
    ResetOnExit reset{s};
    TXC_RETURN_IF_ERROR(Internal(s.Run()));
  }
  return log_.SetState(id, BranchState::kAborted);
}

// ----------------------------------------------------------- heuristics

Status QueueResource::Impl::DoHeuristic(HeuristicRecord record) {
  const std::string id = ToString(record.txid);
  auto state = log_.LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return Err(Status::kNotFound, "no branch " + id + " here to decide");
  if (**state != BranchState::kPrepared && **state != BranchState::kPreCommitted) {
    return Err(Status::kInvalidArgument, "branch " + id + " is " + BranchStateName(**state) +
                                             ", not in doubt: only a PREPARED branch is decided "
                                             "heuristically");
  }
  record.at_ms = log_.wall_ms();
  // The record and the decision commit together, in this op's savepoint.
  TXC_RETURN_IF_ERROR(log_.InsertHeuristic(record));
  return record.outcome == proto::Outcome::COMMITTED ? DoCommit(record.txid)
                                                     : DoRollback(record.txid);
}

Status QueueResource::Impl::DoForgetHeuristic(const TxId& txid) {
  auto deleted = log_.DeleteHeuristic(ToString(txid));
  if (!deleted.ok()) return deleted.status();
  if (!*deleted) {
    return Err(Status::kNotFound, "no heuristic decision recorded for " + ToString(txid));
  }
  return Status::Ok();
}

// ------------------------------------------------------------ public API

Result<std::unique_ptr<QueueResource>> QueueResource::Open(const std::string& name,
                                                           const std::string& path,
                                                           QueueResourceOptions options) {
  auto db = wal::Db::Open(path);
  if (!db.ok()) return Status(db.status().code(), name + ": " + db.status().message());
  auto impl = std::make_unique<Impl>(name, options, std::move(*db));
  Status s = impl->Init();
  if (!s.ok()) return Status(s.code(), name + ": " + s.message());
  Logger("wal")->info("queue resource opened resource={} path={}", name, path);
  return std::unique_ptr<QueueResource>(new QueueResource(std::move(impl)));
}

QueueResource::QueueResource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
QueueResource::~QueueResource() = default;

const std::string& QueueResource::name() const { return impl_->name_; }

Result<std::vector<RecoveredBranch>> QueueResource::Recover() { return impl_->Recover(); }

namespace {

std::unique_ptr<Op> MakeOp(Op::Kind kind, const TxId& txid) {
  auto op = std::make_unique<Op>();
  op->kind = kind;
  op->txid = txid;
  return op;
}

}  // namespace

void QueueResource::Execute(const TxId& txid, std::vector<proto::Statement> statements,
                            Callback<ExecuteResult> done) {
  auto op = MakeOp(Op::kExecute, txid);
  op->statements = std::move(statements);
  op->exec_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void QueueResource::Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) {
  auto op = MakeOp(Op::kPrepare, txid);
  op->info = info;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void QueueResource::ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                                      const PrepareInfo& info, Callback<ExecuteResult> done) {
  auto op = MakeOp(Op::kExecuteAndPrepare, txid);
  op->statements = std::move(statements);
  op->info = info;
  op->exec_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void QueueResource::PreCommit(const TxId& txid, Callback<Status> done) {
  auto op = MakeOp(Op::kPreCommit, txid);
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void QueueResource::Commit(const TxId& txid, Callback<Status> done) {
  auto op = MakeOp(Op::kCommit, txid);
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void QueueResource::Rollback(const TxId& txid, Callback<Status> done) {
  auto op = MakeOp(Op::kRollback, txid);
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void QueueResource::HeuristicDecide(const HeuristicRecord& record, Callback<Status> done) {
  auto op = MakeOp(Op::kHeuristic, record.txid);
  op->heuristic = record;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void QueueResource::ForgetHeuristic(const TxId& txid, Callback<Status> done) {
  auto op = MakeOp(Op::kForgetHeuristic, txid);
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

Result<std::vector<HeuristicRecord>> QueueResource::Heuristics() { return impl_->Heuristics(); }

uint64_t QueueResource::groups_committed() const { return impl_->groups.load(); }
uint64_t QueueResource::syncs() const { return impl_->syncs.load(); }
void QueueResource::InjectFailureForTest() { impl_->inject_failure.store(true); }

}  // namespace txc::participant
