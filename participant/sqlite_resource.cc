#include "participant/sqlite_resource.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <mutex>
#include <utility>

#include "common/log.h"
#include "participant/lock_table.h"
#include "participant/sqlite_branch_log.h"
#include "participant/sqlite_changes.h"
#include "wal/group_committer.h"
#include "wal/sqlite.h"

namespace txc::participant {

using internal::BranchLog;
using internal::CapturedChanges;
using internal::SqliteBuffer;
using internal::SqliteChanges;

namespace {

Micros SystemNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One queued operation and, once run, its outcome.
struct Op : wal::GroupOp {
  enum Kind { kExecute, kPrepare, kExecuteAndPrepare, kCommit, kRollback, kHeuristic, kForgetHeuristic, kPreCommit };
  Kind kind = kExecute;
  TxId txid;
  HeuristicRecord heuristic;  // kHeuristic
  std::vector<proto::Statement> statements;
  PrepareInfo info;
  ResourceManager::Callback<ExecuteResult> exec_done;
  ResourceManager::Callback<Status> status_done;

  ExecuteResult result;    // result.status is the outcome for every kind
  bool finalized = false;  // outcome fixed even if the group is re-run

  // `defer_commit`: a Commit does not sync its group; its callback waits
  // for a later sync instead (SqliteResourceOptions::defer_commit_sync).
  bool NeedsSync(bool defer_commit) const {
    return kind == kPrepare || kind == kExecuteAndPrepare || (kind == kCommit && !defer_commit) ||
           kind == kPreCommit || kind == kHeuristic || kind == kForgetHeuristic;
  }
};

}  // namespace

// ------------------------------------------------------------------ Impl

class SqliteResource::Impl {
 public:
  Impl(std::string name, SqliteResourceOptions options, std::unique_ptr<wal::Db> db)
      : name_(std::move(name)),
        options_(options),
        db_(std::move(db)),
        clock_(options_.clock ? options_.clock : std::function<Micros()>(&SteadyNowMicros)),
        wall_clock_(options_.wall_clock ? options_.wall_clock
                                        : std::function<Micros()>(&SystemNowMicros)),
        log_(name_, db_.get(), wall_clock_),
        changes_(name_, db_.get(), options_.max_execute_time, clock_,
                 options_.test_only_skip_undo_on_conflict, options_.allow_ddl,
                 options_.max_result_bytes, options_.capture_with_session) {
    wal::GroupCommitter::Options co;
    co.max_weight = options_.max_group_ops;
    co.executor = options_.executor;
    co.durability_barrier = options_.durability_barrier;
    co.sync_delay = std::chrono::microseconds(options_.commit_sync_delay);
    co.sync = [this](wal::GroupCommitter::Group& held) {
      std::lock_guard<std::mutex> l(db_mu_);
      return SyncHeld(held);
    };
    committer_ = std::make_unique<wal::GroupCommitter>(
        std::move(co),
        [this](wal::GroupCommitter::Group& group) {
          std::lock_guard<std::mutex> l(db_mu_);
          return RunGroup(group);
        },
        [](wal::GroupOp& op) { Deliver(static_cast<Op&>(op)); });
  }

  ~Impl() {
    // Without an executor runs every queued operation; with one (a crashed
    // simulated node runs nothing further) drops them and their callbacks.
    committer_->Stop();
  }

  Status Init();
  Result<std::vector<RecoveredBranch>> Recover();
  Result<std::vector<HeuristicRecord>> Heuristics();
  void Enqueue(std::unique_ptr<Op> op) { committer_->Enqueue(std::move(op)); }

  const std::string name_;
  const SqliteResourceOptions options_;
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<size_t> locks_count{0};
  std::atomic<bool> inject_failure{false};

 private:
  // The committer's worker, under db_mu_: true when the group committed and
  // needs durability before its callbacks.
  bool RunGroup(wal::GroupCommitter::Group& group);
  // Deferred commits: syncs the log file for the held Commits (true), or
  // fails them (false).
  bool SyncHeld(wal::GroupCommitter::Group& held);
  Status RunOp(Op& op);
  bool FailGroup(std::vector<Op*>& ops, const Status& why);
  void Fail(const Status& why);
  Status Sticky() const;
  static void Deliver(Op& op);

  // Branch operations, inside the group transaction and the op's savepoint.
  // `prepare`: a one-shot's ExecuteAndPrepare, which also makes the branch
  // PREPARED (and must find it ACTIVE or new: DoExecute refuses the rest).
  Status DoExecute(const TxId& txid, const std::vector<proto::Statement>& statements,
                   ExecuteResult* out, const PrepareInfo* prepare = nullptr);
  Status DoCommit(const TxId& txid);
  // Runs an op that is a single statement (a Prepare of an ACTIVE branch, a
  // Commit of a branch whose changes are all in its row) and gives
  // its status; nullopt, with nothing written, for any other op (run it
  // inside a savepoint with RunOp).
  std::optional<Status> RunSingleStatementOp(Op& op);
  Status DoRollback(const TxId& txid);
  Status DoHeuristic(HeuristicRecord record);
  Status DoForgetHeuristic(const TxId& txid);

  Status Err(Status::Code code, const std::string& msg) const { return errors_.Err(code, msg); }

  const internal::Named errors_{name_};
  std::unique_ptr<wal::Db> db_;
  // Clocks (options', or the real ones).
  const std::function<Micros()> clock_;       // monotonic
  const std::function<Micros()> wall_clock_;  // Unix micros
  // Destroyed before db_ (declared after it): they hold prepared statements.
  BranchLog log_;          // txc_branches, txc_changes
  SqliteChanges changes_;  // statements, change capture, key locks, undo
  // The group transaction's statements, prepared once.
  std::unique_ptr<wal::Stmt> begin_, commit_, rollback_, savepoint_, release_, rollback_to_;

  LockTable locks_;                 // worker (or Recover) under db_mu_
  bool sync_full_ = true;           // current PRAGMA synchronous (Db::Open sets FULL)

  std::mutex db_mu_;  // the worker's group vs. Recover on the caller's thread
  // Queue, worker (thread or executor), durability barrier, sticky failure.
  std::unique_ptr<wal::GroupCommitter> committer_;
};

Status SqliteResource::Impl::Init() {
  TXC_RETURN_IF_ERROR(log_.Init());
  if (options_.unsafe_no_sync) {
    Logger("wal")->warn("sqlite resource opened with unsafe_no_sync: prepares and commits are "
                        "NOT durable resource={} path={}", name_, db_->path());
    TXC_RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=OFF"));
  }
  auto prep = [this](std::unique_ptr<wal::Stmt>* out, std::string_view sql) {
    return internal::PrepareInto(*db_, out, sql);
  };
  TXC_RETURN_IF_ERROR(prep(&begin_, "BEGIN IMMEDIATE"));
  TXC_RETURN_IF_ERROR(prep(&commit_, "COMMIT"));
  TXC_RETURN_IF_ERROR(prep(&rollback_, "ROLLBACK"));
  TXC_RETURN_IF_ERROR(prep(&savepoint_, "SAVEPOINT txc_op"));
  TXC_RETURN_IF_ERROR(prep(&release_, "RELEASE txc_op"));
  TXC_RETURN_IF_ERROR(prep(&rollback_to_, "ROLLBACK TO txc_op"));
  TXC_RETURN_IF_ERROR(changes_.Init());
  if (options_.busy_timeout >= 0) {
    sqlite3_busy_timeout(db_->raw(),
                         static_cast<int>(std::min<Micros>(options_.busy_timeout / kMillis,
                                                           std::numeric_limits<int>::max())));
  }
  committer_->Start();
  return Status::Ok();
}

// ------------------------------------------------------------- recovery

Result<std::vector<RecoveredBranch>> SqliteResource::Impl::Recover() {
  std::lock_guard<std::mutex> l(db_mu_);
  auto out = log_.LiveBranches();
  if (!out.ok()) return out.status();
  for (const RecoveredBranch& b : *out) {
    std::string txid_text = ToString(b.txid);
    auto keys = log_.LockKeys(txid_text);
    if (!keys.ok()) return keys.status();
    for (const std::string& k : *keys) {
      auto holder = locks_.Holder(k);
      if (holder && !(*holder == b.txid)) {
        // Cannot happen unless the file was edited: two live branches changed one row.
        Logger("wal")->error("recovered branches share a row lock resource={} row=\"{}\" "
                             "txid={} other={}", name_, changes_.Describe(k), txid_text,
                             ToString(*holder));
        continue;
      }
      locks_.Acquire(k, b.txid);
    }
  }
  locks_.Forget();
  locks_count.store(locks_.size());
  Logger("wal")->info("sqlite resource recovered resource={} branches={} locks={}", name_,
                      out->size(), locks_.size());
  return std::move(*out);
}

// ---------------------------------------------------------------- worker

void SqliteResource::Impl::Deliver(Op& op) {
  if (op.kind == Op::kExecute || op.kind == Op::kExecuteAndPrepare) {
    if (!op.result.status.ok()) op.result.results.clear();
    if (op.exec_done) op.exec_done(std::move(op.result));
  } else {
    if (op.status_done) op.status_done(std::move(op.result.status));
  }
}

Status SqliteResource::Impl::Sticky() const {
  return Err(Status::kStorageFailed, "a local commit failed earlier (" +
                                         committer_->fail_reason() +
                                         "); the resource refuses every operation until restarted");
}

void SqliteResource::Impl::Fail(const Status& why) {
  if (!committer_->Fail(why)) return;
  Logger("wal")->error("sqlite resource storage failure, refusing every later operation until "
                       "restart resource={} path={} error=\"{}\"",
                       name_, db_->path(), why.ToString());
}

bool SqliteResource::Impl::FailGroup(std::vector<Op*>& ops, const Status& why) {
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

bool SqliteResource::Impl::RunGroup(wal::GroupCommitter::Group& group) {
  std::vector<Op*> ops;
  ops.reserve(group.size());
  for (auto& op : group) ops.push_back(static_cast<Op*>(op.get()));
  if (committer_->failed()) {
    for (auto& op : ops) op->result.status = Sticky();
    return false;
  }
  bool need_sync = false;
  for (auto& op : ops) need_sync |= op->NeedsSync(options_.defer_commit_sync);
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
      // An op that is one statement (a Prepare of an ACTIVE branch, a
      // one-shot's Commit) needs no savepoint: SQLite undoes a failed
      // statement by itself.
      std::optional<Status> single = RunSingleStatementOp(*op);
      bool use_savepoint = !single.has_value();
      if (use_savepoint) {
        savepoint_->Reset();
        Status sp = savepoint_->Run();
        savepoint_->Reset();
        if (!sp.ok()) return FailGroup(ops, sp);
      }
      size_t mark = locks_.Mark();
      Status s = use_savepoint ? RunOp(*op) : std::move(*single);
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
      if (use_savepoint) {
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
      }
      op->result.status = std::move(s);
    }
    if (restart) continue;

    log_.MaybePurge(clock_());
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
    for (auto& op : ops) {
      op->finalized = true;
      // Written but not synced: a successful Commit's callback (the ack a
      // coordinator may END on) waits for a later sync. Its locks are free
      // already: anything later that depends on it is later in the WAL, so
      // any sync that covers that covers this COMMIT too.
      op->needs_durability = !need_sync && op->kind == Op::kCommit && op->result.status.ok();
    }
    return need_sync;
  }
}

bool SqliteResource::Impl::SyncHeld(wal::GroupCommitter::Group& held) {
  // `reason` without the resource's name: Err adds it once.
  auto fail_all = [&](const std::string& reason) {
    for (auto& g : held) {
      Op& op = static_cast<Op&>(*g);
      op.result = ExecuteResult{};
      op.result.status = Err(Status::kStorageFailed, "the COMMIT of " + ToString(op.txid) +
                                                         " was written but could not be made "
                                                         "durable: " + reason);
    }
    return false;
  };
  auto fail_sticky = [&](const std::string& reason) {
    Fail(Err(Status::kStorageFailed, reason));
    return fail_all(reason);
  };
  if (committer_->failed()) {
    return fail_all("a local commit failed earlier (" + committer_->fail_reason() + ")");
  }
  if (options_.unsafe_no_sync) return false;  // delivered as they are
  if (options_.test_only_ack_commit_before_sync) return false;  // the injected bug: no sync
  if (inject_failure.exchange(false)) return fail_sticky("injected failure (test): disk full");
  // The write-ahead log holds every COMMIT since the last checkpoint (which
  // synced the database file); without an open log (another journal mode),
  // the database file itself.
  sqlite3_file* file = nullptr;
  int rc = sqlite3_file_control(db_->raw(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &file);
  if (rc == SQLITE_OK && (file == nullptr || file->pMethods == nullptr)) {
    rc = sqlite3_file_control(db_->raw(), "main", SQLITE_FCNTL_FILE_POINTER, &file);
  }
  if (rc == SQLITE_OK && file != nullptr && file->pMethods != nullptr) {
    rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
  } else if (rc == SQLITE_OK) {
    rc = SQLITE_IOERR;  // no open file, though a COMMIT was written
  }
  if (rc != SQLITE_OK) {
    return fail_sticky(std::string("cannot sync the write-ahead log: ") + sqlite3_errstr(rc));
  }
  syncs.fetch_add(1);
  return true;
}

Status SqliteResource::Impl::RunOp(Op& op) {
  switch (op.kind) {
    case Op::kExecute:
      return DoExecute(op.txid, op.statements, &op.result);
    case Op::kExecuteAndPrepare:
      return DoExecute(op.txid, op.statements, &op.result, &op.info);
    case Op::kPrepare:
      return log_.Prepare(op.txid, op.info);
    case Op::kCommit:
      return DoCommit(op.txid);
    case Op::kRollback:
      return DoRollback(op.txid);
    case Op::kHeuristic:
      return DoHeuristic(op.heuristic);
    case Op::kForgetHeuristic:
      return DoForgetHeuristic(op.txid);
    case Op::kPreCommit:
      return log_.PreCommit(op.txid);
  }
  return Status::Internal("unknown op");
}

// ------------------------------------------------------------- Execute

Status SqliteResource::Impl::DoExecute(const TxId& txid,
                                       const std::vector<proto::Statement>& statements,
                                       ExecuteResult* out, const PrepareInfo* prepare) {
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
        return Err(Status::kInvalidArgument,
                   "branch " + id + " is already " + BranchStateName(**state) +
                       "; it takes no more statements");
    }
  }
  // A branch with no row has no change rows either (they are written in
  // the same local transaction as its row).
  out->wrote = false;
  if (state->has_value()) {
    auto had_changes = log_.HasChanges(id);
    if (!had_changes.ok()) return had_changes.status();
    out->wrote = *had_changes;
  }

  CapturedChanges captured;
  TXC_RETURN_IF_ERROR(changes_.Execute(statements, &captured));
  const SqliteBuffer& redo = captured.redo;
  const std::vector<std::string>& keys = captured.keys;

  for (const std::string& key : keys) {
    auto holder = locks_.Holder(key);
    if (holder && !(*holder == txid)) {
      out->holder = *holder;
      out->conflict = changes_.Describe(key);
      return Status::Conflict(out->conflict + " is held by txn " + ToString(*holder));
    }
  }

  // The call that creates the branch (a one-shot's, or an interactive
  // branch's first Execute) keeps its change set in the branch's new row;
  // each later call appends a row to txc_changes.
  const bool new_row = !state->has_value();
  SqliteBuffer undo;
  if (redo.n > 0) {
    TXC_RETURN_IF_ERROR(changes_.Invert(redo, &undo));
    if (!new_row) TXC_RETURN_IF_ERROR(log_.AppendChange(id, redo.view(), undo.view(), keys));
    for (const std::string& key : keys) locks_.Acquire(key, txid);
    out->wrote = true;
  }
  if (new_row) {
    std::optional<BranchLog::Change> change;
    if (redo.n > 0) change = BranchLog::Change{redo.view(), undo.view(), &keys};
    if (prepare != nullptr) {
      TXC_RETURN_IF_ERROR(log_.InsertPrepared(txid, *prepare, change));
    } else {
      TXC_RETURN_IF_ERROR(log_.InsertBranch(txid, BranchState::kActive, change));
    }
  } else if (prepare != nullptr) {
    // The branch goes PREPARED in this same local transaction.
    TXC_RETURN_IF_ERROR(log_.SetPrepared(id, *prepare));
  }
  out->results = std::move(captured.results);
  return Status::Ok();
}

// ------------------------------------------------ Prepare, Commit, Rollback


std::optional<Status> SqliteResource::Impl::RunSingleStatementOp(Op& op) {
  if (op.kind == Op::kPrepare) {
    // An ACTIVE branch: one UPDATE. Any other goes the general way
    // (BranchLog::Prepare), which answers for it.
    auto done = log_.PrepareIfActive(ToString(op.txid), op.info);
    if (!done.ok()) return done.status();
    if (!*done) return std::nullopt;
    return Status::Ok();
  }
  if (op.kind != Op::kCommit) return std::nullopt;
  // A branch whose changes are all in its row (a one-shot's, an interactive
  // one's with a single writing Execute): one UPDATE. Any other (none
  // changed) goes the general way, DoCommit.
  auto done = log_.CommitInline(ToString(op.txid));
  if (!done.ok()) return done.status();
  if (!*done) return std::nullopt;
  locks_.ReleaseAll(op.txid);
  return Status::Ok();
}

Status SqliteResource::Impl::DoCommit(const TxId& txid) {
  const std::string id = ToString(txid);
  auto loaded = log_.Load(id);
  if (!loaded.ok()) return loaded.status();
  if (!loaded->has_value()) return Err(Status::kNotFound, "no branch " + id + " to commit");
  switch ((*loaded)->state) {
    case BranchState::kCommitted:
      return Status::Ok();
    case BranchState::kAborted:
      return Err(Status::kAborted, "branch " + id + " is already aborted; cannot commit it");
    default:
      break;
  }
  // Its change sets are in its row (dropped by SetCommitted), in
  // txc_changes, or both.
  auto rows = log_.DeleteChangeRowsIfAny(id);
  if (!rows.ok()) return rows.status();
  const bool changed = (*loaded)->changes_inline || *rows;
  TXC_RETURN_IF_ERROR(log_.SetCommitted(id, changed));
  locks_.ReleaseAll(txid);
  return Status::Ok();
}

Status SqliteResource::Impl::DoRollback(const TxId& txid) {
  const std::string id = ToString(txid);
  auto state = log_.LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return log_.InsertBranch(txid, BranchState::kAborted);  // tombstone
  switch (**state) {
    case BranchState::kAborted:
      return Status::Ok();
    case BranchState::kCommitted: {
      // A branch committed with no changes (released read-only at PREPARE):
      // rolling it back is a no-op (an ABORT may reach it once the agent
      // forgot it).
      auto changed = log_.Changed(id);
      if (!changed.ok()) return changed.status();
      if (!*changed) return Status::Ok();
      return Err(Status::kInvalidArgument,
                 "branch " + id + " is committed here; it cannot be rolled back");
    }
    default:
      break;
  }
  auto undos = log_.Undos(id);
  if (!undos.ok()) return undos.status();
  if (!options_.test_only_forget_undo) {  // the injected bug skips the undo
    for (const std::string& undo : *undos) TXC_RETURN_IF_ERROR(changes_.ApplyUndo(txid, undo));
  }
  TXC_RETURN_IF_ERROR(log_.SetState(id, BranchState::kAborted));
  TXC_RETURN_IF_ERROR(log_.DeleteChanges(id));
  locks_.ReleaseAll(txid);
  return Status::Ok();
}

// ----------------------------------------------------------- heuristics

Status SqliteResource::Impl::DoHeuristic(HeuristicRecord record) {
  const std::string id = ToString(record.txid);
  auto state = log_.LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) {
    return Err(Status::kNotFound, "no branch " + id + " here to decide");
  }
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

Status SqliteResource::Impl::DoForgetHeuristic(const TxId& txid) {
  auto deleted = log_.DeleteHeuristic(ToString(txid));
  if (!deleted.ok()) return deleted.status();
  if (!*deleted) return Err(Status::kNotFound, "no heuristic decision recorded for " + ToString(txid));
  return Status::Ok();
}

Result<std::vector<HeuristicRecord>> SqliteResource::Impl::Heuristics() {
  std::lock_guard<std::mutex> l(db_mu_);
  return log_.Heuristics();
}

// ------------------------------------------------------------ public API

Result<std::unique_ptr<SqliteResource>> SqliteResource::Open(const std::string& name,
                                                             const std::string& path,
                                                             SqliteResourceOptions options) {
  // Every use of the connection is under db_mu_ (the worker's group, or
  // Open and Recover on the caller's thread).
  auto db = wal::Db::Open(path, /*caller_serializes=*/true);
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

void SqliteResource::PreCommit(const TxId& txid, Callback<Status> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kPreCommit;
  op->txid = txid;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void SqliteResource::HeuristicDecide(const HeuristicRecord& record, Callback<Status> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kHeuristic;
  op->txid = record.txid;
  op->heuristic = record;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void SqliteResource::ForgetHeuristic(const TxId& txid, Callback<Status> done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kForgetHeuristic;
  op->txid = txid;
  op->status_done = std::move(done);
  impl_->Enqueue(std::move(op));
}

Result<std::vector<HeuristicRecord>> SqliteResource::Heuristics() { return impl_->Heuristics(); }

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
