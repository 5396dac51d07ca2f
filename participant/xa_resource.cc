#include "participant/xa_resource.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/codec.h"
#include "common/log.h"
#include "participant/layout_stamp.h"
#include "wal/group_committer.h"
#include "wal/sqlite.h"

namespace txc::participant {

namespace {

// xa_branches.state. BranchState's values, plus the intents written before
// the database is asked to finish a prepared branch.
// on-disk format: do not renumber
enum XaState : int {
  kNone = 0,  // in memory only: no row
  kActive = 1,
  kPrepared = 2,
  kCommitted = 4,
  kAborted = 5,
  kCommitting = 6,
  kRollingBack = 7,
  kGone = 8,  // PREPARED here, ended in the database by someone else
};

const char* XaStateName(int s) {
  switch (s) {
    case kNone: return "NONE";
    case kActive: return "ACTIVE";
    case kPrepared: return "PREPARED";
    case kCommitted: return "COMMITTED";
    case kAborted: return "ABORTED";
    case kCommitting: return "COMMITTING";
    case kRollingBack: return "ROLLING_BACK";
    case kGone: return "GONE";
  }
  return "UNKNOWN";
}

bool Final(int s) { return s == kCommitted || s == kAborted || s == kGone; }

Micros WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One write to the WAL, through the group committer.
struct WalOp : wal::GroupOp {
  enum Kind { kState, kStatements, kHeuristic, kForget, kPurge } kind = kState;
  TxId txid;
  int state = kNone;
  std::string gid;
  std::string info;  // PreparedRecord bytes, for PREPARED
  int protocol = 0;
  std::string statements;  // ExecuteRequest bytes, for kStatements
  int64_t seq = 0;
  HeuristicRecord heuristic;
  Micros purge_before = 0;
  bool sync = false;
  Status result;
  std::function<void(Status)> done;  // may be empty
};

}  // namespace

class XaResource::Impl {
 public:
  struct Branch {
    int state = kNone;
    std::string gid;
    std::unique_ptr<xa::Session> session;  // ACTIVE (and PREPARED when kept on it)
    bool wrote = false;
    std::string dead;  // why the database lost the ACTIVE branch, if it did
    bool busy = false;  // an operation runs on it
    uint64_t prepared_gen = 0;  // reconcile generation when it became PREPARED
    int64_t statement_seq = 0;
    PrepareInfo info;
    Micros final_at = 0;  // wall time it became final (purged from memory later)
  };

  Impl(std::string name, std::unique_ptr<xa::Driver> driver, XaResourceOptions options,
       std::unique_ptr<wal::Db> db)
      : name_(std::move(name)),
        driver_(std::move(driver)),
        options_(std::move(options)),
        db_(std::move(db)),
        pool_(std::max<size_t>(1, options_.max_connections + options_.max_connections / 4 + 2)) {}

  ~Impl() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (reconciler_.joinable()) reconciler_.join();
    pool_.join();
    if (committer_) committer_->Stop();
  }

  Status Init() {
    TXC_RETURN_IF_ERROR(db_->Exec(
        "CREATE TABLE IF NOT EXISTS xa_branches(txid TEXT PRIMARY KEY, gid TEXT NOT NULL, "
        "state INTEGER NOT NULL, info BLOB, protocol INTEGER NOT NULL DEFAULT 0, "
        "updated INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS xa_statements(txid TEXT NOT NULL, seq INTEGER NOT NULL, "
        "statements BLOB NOT NULL, PRIMARY KEY(txid, seq));"
        "CREATE TABLE IF NOT EXISTS xa_heuristics(txid TEXT PRIMARY KEY, outcome INTEGER NOT "
        "NULL, reason TEXT NOT NULL, who TEXT NOT NULL, at_ms INTEGER NOT NULL);"));
    TXC_RETURN_IF_ERROR(CheckLayout());
    auto s = driver_->Connect();
    if (!s.ok()) return s.status();
    TXC_RETURN_IF_ERROR(driver_->CheckServer(**s));
    idle_.push_back(std::move(*s));
    open_ = 1;
    wal::GroupCommitter::Options co;
    co.max_weight = 512;
    committer_ = std::make_unique<wal::GroupCommitter>(
        co, [this](wal::GroupCommitter::Group& g) { return RunGroup(g); },
        [](wal::GroupOp& op) {
          auto& w = static_cast<WalOp&>(op);
          if (w.done) w.done(w.result);
        });
    committer_->Start();
    return Status::Ok();
  }

  const std::string& name() const { return name_; }

  // ---- the WAL -------------------------------------------------------------

  // XaResource::kXaWalLayout: a newer layout is used only with no live branch.
  Status CheckLayout() {
    const std::string file = "its WAL " + db_->path();
    auto found = internal::CheckLayoutStamp(
        *db_, {.table = "xa_meta",
               .key = "xa_wal_layout",
               .layout = kXaWalLayout,
               .file = file,
               .live_sql = "SELECT COUNT(*) FROM xa_branches WHERE state NOT IN (4, 5, 8)"});
    if (!found.ok()) {
      return Status(found.status().code(), "resource " + name_ + ": " + found.status().message());
    }
    if (*found > kXaWalLayout) {
      Logger("xa")->warn("resource {}: {} was laid out by a newer version (xa_wal_layout {}), with "
                         "no live branch: used as layout {}",
                         name_, file, *found, kXaWalLayout);
    }
    return Status::Ok();
  }

  bool RunGroup(wal::GroupCommitter::Group& group) {
    bool sync = false;
    for (auto& op : group) sync = sync || static_cast<WalOp&>(*op).sync;
    Status s = committer_->failed() ? Status::StorageFailed("resource " + name_ + ": WAL failed earlier: " +
                                                            committer_->fail_reason())
                                    : Status::Ok();
    if (s.ok()) s = db_->SetSynchronousFull(sync);
    if (s.ok()) s = db_->Exec("BEGIN IMMEDIATE");
    if (s.ok()) {
      for (auto& op : group) {
        s = Write(static_cast<WalOp&>(*op));
        if (!s.ok()) break;
      }
      if (s.ok()) {
        s = db_->Exec("COMMIT");
      } else {
        (void)db_->Exec("ROLLBACK");
      }
    }
    if (!s.ok()) {
      s = Status::StorageFailed("resource " + name_ + ": writing its WAL " + db_->path() + ": " +
                                s.message());
      if (committer_->Fail(s)) Logger("xa")->error("{}", s.message());
    }
    for (auto& op : group) static_cast<WalOp&>(*op).result = s;
    return sync;
  }

  Status Write(const WalOp& w) {
    std::string txid = ToString(w.txid);
    switch (w.kind) {
      case WalOp::kState: {
        auto st = db_->Prepare(
            "INSERT INTO xa_branches(txid, gid, state, info, protocol, updated) VALUES(?1,?2,?3,?4,?5,?6) "
            "ON CONFLICT(txid) DO UPDATE SET state=excluded.state, updated=excluded.updated, "
            "info=COALESCE(excluded.info, xa_branches.info), "
            "protocol=CASE WHEN excluded.info IS NULL THEN xa_branches.protocol ELSE excluded.protocol END");
        if (!st.ok()) return st.status();
        TXC_RETURN_IF_ERROR((*st)->BindText(1, txid));
        TXC_RETURN_IF_ERROR((*st)->BindText(2, w.gid));
        TXC_RETURN_IF_ERROR((*st)->BindInt(3, w.state));
        if (w.info.empty()) {
          TXC_RETURN_IF_ERROR((*st)->BindNull(4));
        } else {
          TXC_RETURN_IF_ERROR((*st)->BindBlob(4, w.info));
        }
        TXC_RETURN_IF_ERROR((*st)->BindInt(5, w.protocol));
        TXC_RETURN_IF_ERROR((*st)->BindInt(6, WallMicros()));
        return (*st)->Run();
      }
      case WalOp::kStatements: {
        auto st = db_->Prepare("INSERT OR REPLACE INTO xa_statements(txid, seq, statements) VALUES(?1,?2,?3)");
        if (!st.ok()) return st.status();
        TXC_RETURN_IF_ERROR((*st)->BindText(1, txid));
        TXC_RETURN_IF_ERROR((*st)->BindInt(2, w.seq));
        TXC_RETURN_IF_ERROR((*st)->BindBlob(3, w.statements));
        return (*st)->Run();
      }
      case WalOp::kHeuristic: {
        if (w.state != kNone) {
          // The decision's intent in the same local transaction as its record.
          WalOp intent = w;
          intent.kind = WalOp::kState;
          TXC_RETURN_IF_ERROR(Write(intent));
        }
        auto st = db_->Prepare(
            "INSERT OR REPLACE INTO xa_heuristics(txid, outcome, reason, who, at_ms) VALUES(?1,?2,?3,?4,?5)");
        if (!st.ok()) return st.status();
        TXC_RETURN_IF_ERROR((*st)->BindText(1, txid));
        TXC_RETURN_IF_ERROR((*st)->BindInt(2, w.heuristic.outcome));
        TXC_RETURN_IF_ERROR((*st)->BindText(3, w.heuristic.reason));
        TXC_RETURN_IF_ERROR((*st)->BindText(4, w.heuristic.who));
        TXC_RETURN_IF_ERROR((*st)->BindInt(5, w.heuristic.at_ms));
        return (*st)->Run();
      }
      case WalOp::kForget: {
        auto st = db_->Prepare("DELETE FROM xa_heuristics WHERE txid = ?1");
        if (!st.ok()) return st.status();
        TXC_RETURN_IF_ERROR((*st)->BindText(1, txid));
        return (*st)->Run();
      }
      case WalOp::kPurge: {
        // Final rows (and their statements) old enough that no late message
        // about them can matter; heuristic records stay until forgotten.
        auto st = db_->Prepare(
            "DELETE FROM xa_statements WHERE txid IN (SELECT txid FROM xa_branches WHERE "
            "state IN (4,5) AND updated < ?1)");
        if (!st.ok()) return st.status();
        TXC_RETURN_IF_ERROR((*st)->BindInt(1, w.purge_before));
        TXC_RETURN_IF_ERROR((*st)->Run());
        auto st2 = db_->Prepare("DELETE FROM xa_branches WHERE state IN (4,5) AND updated < ?1");
        if (!st2.ok()) return st2.status();
        TXC_RETURN_IF_ERROR((*st2)->BindInt(1, w.purge_before));
        return (*st2)->Run();
      }
    }
    return Status::Internal("unknown WAL op");
  }

  // Queues a state change; `done` (optional) runs once it is written (and
  // synced, if `sync`).
  void WriteState(const TxId& txid, const std::string& gid, int state, bool sync,
                  std::function<void(Status)> done, const PrepareInfo* info = nullptr) {
    auto op = std::make_unique<WalOp>();
    op->kind = WalOp::kState;
    op->txid = txid;
    op->gid = gid;
    op->state = state;
    op->sync = sync;
    if (info != nullptr) {
      proto::PreparedRecord rec;
      rec.participants = info->participants;
      op->info = codec::Encode(rec);
      op->protocol = static_cast<int>(info->protocol);
    }
    op->done = std::move(done);
    committer_->Enqueue(std::move(op));
  }

  // Writes and waits (on a worker thread): the durability points.
  Status WriteStateAndWait(const TxId& txid, const std::string& gid, int state,
                           const PrepareInfo* info = nullptr) {
    std::mutex m;
    std::condition_variable cv;
    bool ready = false;
    Status result;
    WriteState(txid, gid, state, /*sync=*/true,
               [&](Status s) {
                 std::lock_guard<std::mutex> l(m);
                 result = std::move(s);
                 ready = true;
                 cv.notify_one();
               },
               info);
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return ready; });
    return result;
  }

  // `intent` (optional): the branch's state written in the same transaction.
  Status WriteHeuristicAndWait(const HeuristicRecord& rec, int intent = kNone, const std::string& gid = "") {
    std::mutex m;
    std::condition_variable cv;
    bool ready = false;
    Status result;
    auto op = std::make_unique<WalOp>();
    op->kind = WalOp::kHeuristic;
    op->txid = rec.txid;
    op->heuristic = rec;
    op->state = intent;
    op->gid = gid;
    op->sync = true;
    op->done = [&](Status s) {
      std::lock_guard<std::mutex> l(m);
      result = std::move(s);
      ready = true;
      cv.notify_one();
    };
    committer_->Enqueue(std::move(op));
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return ready; });
    return result;
  }

  // ---- connections ---------------------------------------------------------

  // A connection: an idle one, or a new one while under the limit. With
  // `full` set, a caller that may wait learns the pool is full (it parks its
  // operation, Park). `finishing` (committing or rolling back a prepared
  // branch, which frees what the branch holds) may go a quarter over the
  // limit, so commits never starve behind branches waiting for connections.
  Result<std::unique_ptr<xa::Session>> Acquire(bool* full = nullptr, bool finishing = false) {
    {
      std::lock_guard<std::mutex> l(mu_);
      while (!idle_.empty()) {
        auto s = std::move(idle_.back());
        idle_.pop_back();
        if (s->Healthy()) return s;
        --open_;
      }
      size_t limit = options_.max_connections + (finishing ? options_.max_connections / 4 + 1 : 0);
      if (open_ >= limit) {
        if (full != nullptr) *full = true;
        return Status::Unavailable("resource " + name_ + ": all " +
                                   std::to_string(options_.max_connections) +
                                   " database connections are held by other branches (txagent "
                                   "--db-pool-size)");
      }
      ++open_;
    }
    auto s = driver_->Connect();
    if (!s.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      --open_;
      WakeParked();
    }
    return s;
  }

  void Release(std::unique_ptr<xa::Session> s) {
    if (!s) return;
    std::lock_guard<std::mutex> l(mu_);
    if (s->Healthy()) {
      idle_.push_back(std::move(s));
    } else {
      --open_;
    }
    WakeParked();
  }

  // Closes a connection that may still hold a transaction (it must not go
  // back to the pool).
  void Discard(std::unique_ptr<xa::Session> s) {
    if (!s) return;
    s.reset();
    std::lock_guard<std::mutex> l(mu_);
    --open_;
    WakeParked();
  }

  // Under mu_: a connection may be free now: run the oldest parked operation.
  void WakeParked() {
    if (parked_.empty()) return;
    auto fn = std::move(parked_.front().run);
    parked_.pop_front();
    boost::asio::post(pool_, std::move(fn));
  }

  // An operation that found the pool full runs again once a connection is
  // released (or at its deadline, to fail). Never blocks a worker.
  void Park(std::function<void()> run, Micros deadline, bool again) {
    std::lock_guard<std::mutex> l(mu_);
    if (!idle_.empty() || open_ < options_.max_connections) {
      boost::asio::post(pool_, std::move(run));  // released meanwhile
      return;
    }
    if (again) {
      parked_.push_front({std::move(run), deadline});
    } else {
      parked_.push_back({std::move(run), deadline});
    }
    cv_.notify_all();  // the timer loop watches the deadlines
  }

  // Under mu_: posts the parked operations whose deadline passed (they fail).
  void ExpireParked(Micros now) {
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (it->deadline <= now) {
        boost::asio::post(pool_, std::move(it->run));
        it = parked_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ---- operations ----------------------------------------------------------

  // Runs `fn` on a worker with the branch marked busy.
  void OnWorker(std::function<void()> fn) { boost::asio::post(pool_, std::move(fn)); }

  Branch& BranchOf(const TxId& txid) {  // under mu_
    Branch& b = branches_[txid];
    if (b.gid.empty()) b.gid = xa::MakeGid(txid, name_);
    return b;
  }

  void SetFinal(Branch& b, int state) {  // under mu_
    b.state = state;
    b.final_at = WallMicros();
    b.session.reset();
  }

  std::string Who(const TxId& txid) const { return "resource " + name_ + " branch " + ToString(txid); }

  void Execute(const TxId& txid, std::vector<proto::Statement> statements,
               Callback<ExecuteResult> done) {
    Micros deadline = SteadyNowMicros() + options_.acquire_timeout;
    OnWorker([this, txid, statements = std::move(statements), done = std::move(done), deadline]() mutable {
      RunExecute(txid, std::move(statements), std::move(done), deadline, false);
    });
  }

  void RunExecute(const TxId& txid, std::vector<proto::Statement> statements, Callback<ExecuteResult> done,
                  Micros deadline, bool again) {
    ExecuteResult r;
    bool full = false;
    r.status = DoExecute(txid, statements, &r, &full);
    if (full && SteadyNowMicros() < deadline) {
      Park([this, txid, statements = std::move(statements), done = std::move(done), deadline]() mutable {
        RunExecute(txid, std::move(statements), std::move(done), deadline, true);
      }, deadline, again);
      return;
    }
    done(std::move(r));
  }

  Status DoExecute(const TxId& txid, const std::vector<proto::Statement>& statements,
                   ExecuteResult* out, bool* full) {
    xa::Session* session = nullptr;
    std::string gid;
    bool first = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(txid);
      gid = b.gid;
      if (b.state != kNone && b.state != kActive) {
        return Status::InvalidArgument(Who(txid) + " is " + XaStateName(b.state) +
                                       ": no more statements may run in it");
      }
      if (!b.dead.empty()) return Status::Aborted(Who(txid) + " was lost by the database: " + b.dead);
      session = b.session.get();
    }
    if (session == nullptr) {
      auto forget = [&] {  // nothing began: no branch to keep
        std::lock_guard<std::mutex> l(mu_);
        auto it = branches_.find(txid);
        if (it != branches_.end() && it->second.state == kNone) branches_.erase(it);
      };
      auto s = Acquire(full);
      if (!s.ok()) {
        forget();
        return s.status();
      }
      Status begun = (*s)->Begin(gid);
      if (begun.code() == Status::kUnavailable) {
        // A pooled connection that died idle (the server restarted, or
        // closed it): once more on a fresh one.
        Discard(std::move(*s));
        s = Acquire(full);
        if (!s.ok()) {
          forget();
          return s.status();
        }
        begun = (*s)->Begin(gid);
      }
      if (!begun.ok()) {
        Discard(std::move(*s));  // whatever it holds goes with the connection
        forget();
        return begun;
      }
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(txid);
      b.state = kActive;
      b.session = std::move(*s);
      session = b.session.get();
      first = true;
      WriteState(txid, gid, kActive, /*sync=*/false, nullptr);
    }
    auto r = session->Run(statements);
    if (!r.ok() && first) {
      // The agent keeps no branch after a failed first call: neither do we
      // (else the database transaction and its connection would leak).
      std::unique_ptr<xa::Session> mine;
      {
        std::lock_guard<std::mutex> l(mu_);
        mine = std::move(BranchOf(txid).session);
        branches_.erase(txid);
      }
      Status rb = mine->RollbackActive(gid);
      if (rb.ok()) {
        Release(std::move(mine));
      } else {
        Discard(std::move(mine));
      }
      WriteState(txid, gid, kAborted, /*sync=*/false, nullptr);
      return r.status();
    }
    std::lock_guard<std::mutex> l(mu_);
    Branch& b = BranchOf(txid);
    if (!r.ok()) {
      if (r.status().code() == Status::kAborted || r.status().code() == Status::kUnavailable) {
        b.dead = r.status().message();
      }
      out->wrote = b.wrote;
      return r.status();
    }
    // A database branch always counts as written: from the statement text
    // alone the agent cannot tell a read from a SELECT that calls a function
    // that writes (or SELECT ... INTO), and a READ_ONLY vote would end such a
    // branch with a rollback of its writes. So every branch prepares.
    (void)statements;
    b.wrote = true;
    out->wrote = b.wrote;
    out->results = std::move(*r);
    // For diagnosis (txadmin wal dump): what ran, unsynced.
    auto op = std::make_unique<WalOp>();
    op->kind = WalOp::kStatements;
    op->txid = txid;
    op->seq = ++b.statement_seq;
    proto::ExecuteRequest req;
    req.statements = statements;
    op->statements = codec::Encode(req);
    committer_->Enqueue(std::move(op));
    return Status::Ok();
  }

  void Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) {
    OnWorker([this, txid, info, done = std::move(done)]() { done(DoPrepare(txid, info)); });
  }

  Status DoPrepare(const TxId& txid, const PrepareInfo& info) {
    std::string gid;
    xa::Session* session = nullptr;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = branches_.find(txid);
      if (it == branches_.end()) {
        return Status::InvalidArgument(Who(txid) + " ran no statement here: nothing to prepare");
      }
      Branch& b = it->second;
      gid = b.gid;
      if (b.state == kPrepared && b.dead.empty()) return Status::Ok();
      if (b.state != kActive) {
        return Status::InvalidArgument(Who(txid) + " is " + XaStateName(b.state) + ", not ACTIVE: cannot prepare");
      }
      if (!b.dead.empty()) return Status::Aborted(Who(txid) + " was lost by the database: " + b.dead);
      session = b.session.get();
      b.busy = true;
    }
    Status s = session->Prepare(gid);
    if (!s.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(txid);
      b.busy = false;
      b.dead = s.message();
      return s;
    }
    // The database holds it durably; now the WAL, synced, before the vote.
    Status w = WriteStateAndWait(txid, gid, kPrepared, &info);
    std::unique_ptr<xa::Session> release;
    {
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(txid);
      b.busy = false;
      if (!w.ok()) {
        // Not recorded: vote NO (never OK again); the agent's rollback finds
        // it prepared in the database and rolls it back.
        b.state = kPrepared;
        b.info = info;
        b.dead = w.message();
        return w;
      }
      b.state = kPrepared;
      b.info = info;
      b.prepared_gen = reconcile_gen_;
      if (!driver_->PreparedStaysOnSession()) release = std::move(b.session);
    }
    Release(std::move(release));
    return Status::Ok();
  }

  void Commit(const TxId& txid, Callback<Status> done) {
    OnWorker([this, txid, done = std::move(done)]() { done(DoCommit(txid)); });
  }

  // Finishes a prepared branch in the database: `commit` or roll back. The
  // caller marked the branch busy (Claim), so the reconciler keeps off it.
  // `intent_before` is true when the intent was durable before this attempt
  // (a retry, or after a crash), so "not found" means an earlier attempt
  // finished it.
  Status FinishPrepared(const TxId& txid, bool commit, bool intent_before) {
    std::string gid;
    std::unique_ptr<xa::Session> session;
    {
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(txid);
      gid = b.gid;
      session = std::move(b.session);
    }
    if (!intent_before) {
      Status w = WriteStateAndWait(txid, gid, commit ? kCommitting : kRollingBack);
      if (!w.ok()) {
        std::lock_guard<std::mutex> l(mu_);
        Branch& b = BranchOf(txid);
        b.busy = false;
        b.session = std::move(session);
        return w;
      }
      std::lock_guard<std::mutex> l(mu_);
      BranchOf(txid).state = commit ? kCommitting : kRollingBack;
    }
    if (!session || !session->Healthy()) {
      if (session) Release(std::move(session));
      auto s = Acquire(nullptr, /*finishing=*/true);
      if (!s.ok()) {
        std::lock_guard<std::mutex> l(mu_);
        BranchOf(txid).busy = false;
        return s.status();
      }
      session = std::move(*s);
    }
    Status s = commit ? session->CommitPrepared(gid) : session->RollbackPrepared(gid);
    if (s.code() == Status::kUnavailable && !session->Healthy()) {
      // The connection died (a server restart, a killed session): once more
      // on a fresh one, which sees the prepared transaction now that its
      // session is gone.
      Release(std::move(session));
      auto fresh = Acquire(nullptr, /*finishing=*/true);
      if (fresh.ok()) {
        session = std::move(*fresh);
        s = commit ? session->CommitPrepared(gid) : session->RollbackPrepared(gid);
      }
    }
    // NOT_FOUND with no earlier attempt of ours: ended outside txcoord.
    // After a first attempt on a connection that died, NOT_FOUND is
    // ambiguous (the attempt may have finished it before the connection
    // went): recorded as a heuristic too, a false alarm at worst, never a
    // silent guess (the database kept no record of how it ended).
    if (s.code() == Status::kNotFound && !intent_before) {
      Release(std::move(session));
      return RecordGone(txid, gid, commit);
    }
    const bool failed = !s.ok() && s.code() != Status::kNotFound;
    if (failed && driver_->PreparedStaysOnSession() && session && session->Healthy()) {
      // It still holds the prepared branch: it stays with the branch.
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(txid);
      b.busy = false;
      b.session = std::move(session);
      return s;
    }
    if (failed) {
      Discard(std::move(session));  // a connection that failed mid-finish is not reused
    } else {
      Release(std::move(session));
    }
    std::lock_guard<std::mutex> l(mu_);
    Branch& b = BranchOf(txid);
    b.busy = false;
    if (failed) return s;
    SetFinal(b, commit ? kCommitted : kAborted);
    WriteState(txid, gid, commit ? kCommitted : kAborted, /*sync=*/false, nullptr);
    return Status::Ok();
  }

  // PREPARED here, gone from the database, and not by this agent's hand.
  HeuristicRecord GoneRecord(const TxId& txid, const std::string& gid) const {
    HeuristicRecord rec;
    rec.txid = txid;
    rec.outcome = proto::Outcome::UNKNOWN;
    rec.who = "database";
    rec.reason = "prepared transaction " + gid + " is gone from the " + driver_->kind() +
                 " database: someone committed or rolled it back outside txcoord (outcome unknown)";
    rec.at_ms = WallMicros() / 1000;
    return rec;
  }

  Status RecordGone(const TxId& txid, const std::string& gid, bool group_commit) {
    HeuristicRecord rec = GoneRecord(txid, gid);
    Status w = WriteHeuristicAndWait(rec);
    if (w.ok()) w = WriteStateAndWait(txid, gid, kGone);
    std::lock_guard<std::mutex> l(mu_);
    Branch& b = BranchOf(txid);
    b.busy = false;
    if (!w.ok()) return w;
    SetFinal(b, kGone);
    ++stats_.gone;
    gone_[txid] = rec;
    Logger("xa")->error("heuristic hazard resource={} txid={} gid={}: PREPARED in the agent's WAL but "
                      "gone from the database when the group's decision ({}) came; recorded, never "
                      "guessed: check the database and `txadmin agent ... branches --heuristic`",
                      name_, ToString(txid), gid, group_commit ? "COMMITTED" : "ABORTED");
    return GoneStatus(txid, gid);
  }

  Status BusyStatus(const TxId& txid) const {
    return Status::Unavailable(Who(txid) + " is being reconciled with the database; retry");
  }

  Status GoneStatus(const TxId& txid, const std::string& gid) const {
    return Status::Internal(Who(txid) + ": prepared transaction " + gid +
                            " is gone from the database (ended outside txcoord); recorded as a "
                            "heuristic with an unknown outcome");
  }

  // An operator's decision on an in-doubt branch: the record and the intent
  // are durable before the database is asked.
  void HeuristicDecide(const HeuristicRecord& rec, Callback<Status> done) {
    OnWorker([this, rec, done = std::move(done)]() {
      bool commit = rec.outcome == proto::Outcome::COMMITTED;
      std::string gid;
      {
        std::lock_guard<std::mutex> l(mu_);
        auto it = branches_.find(rec.txid);
        int state = it == branches_.end() ? kNone : it->second.state;
        if (state != kPrepared) {
          return done(Status::InvalidArgument(Who(rec.txid) + " is " + XaStateName(state) +
                                              ", not in doubt: no heuristic decision"));
        }
        if (it->second.busy) return done(BusyStatus(rec.txid));
        it->second.busy = true;
        gid = it->second.gid;
      }
      int intent = commit ? kCommitting : kRollingBack;
      Status w = WriteHeuristicAndWait(rec, intent, gid);
      if (!w.ok()) {
        std::lock_guard<std::mutex> l(mu_);
        BranchOf(rec.txid).busy = false;
        return done(w);
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        gone_[rec.txid] = rec;
        BranchOf(rec.txid).state = intent;
      }
      done(FinishPrepared(rec.txid, commit, /*intent_before=*/true));
    });
  }

  Status DoCommit(const TxId& txid) {
    int state;
    std::string gid;
    bool wrote;
    std::unique_ptr<xa::Session> active;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = branches_.find(txid);
      if (it == branches_.end()) {
        return Status::InvalidArgument(Who(txid) + " is unknown here: nothing to commit");
      }
      Branch& b = it->second;
      if (b.busy) return BusyStatus(txid);
      state = b.state;
      gid = b.gid;
      wrote = b.wrote;
      if (state == kActive) active = std::move(b.session);
      if (state == kPrepared || state == kCommitting) b.busy = true;
    }
    switch (state) {
      case kCommitted: return Status::Ok();
      case kGone: return GoneStatus(txid, gid);
      case kActive: {
        if (wrote) {
          // Put it back: a written branch commits only once prepared.
          std::lock_guard<std::mutex> l(mu_);
          BranchOf(txid).session = std::move(active);
          return Status::InvalidArgument(Who(txid) + " changed data and is not prepared: cannot commit");
        }
        // Read-only: its reads are done; end the database transaction.
        if (active) {
          if (active->RollbackActive(gid).ok()) {
            Release(std::move(active));
          } else {
            Discard(std::move(active));
          }
        }
        std::lock_guard<std::mutex> l(mu_);
        SetFinal(BranchOf(txid), kCommitted);
        WriteState(txid, gid, kCommitted, false, nullptr);
        return Status::Ok();
      }
      case kPrepared: return FinishPrepared(txid, /*commit=*/true, /*intent_before=*/false);
      case kCommitting: return FinishPrepared(txid, /*commit=*/true, /*intent_before=*/true);
      default:
        return Status::InvalidArgument(Who(txid) + " is " + XaStateName(state) + ": cannot commit");
    }
  }

  void Rollback(const TxId& txid, Callback<Status> done) {
    OnWorker([this, txid, done = std::move(done)]() { done(DoRollback(txid)); });
  }

  Status DoRollback(const TxId& txid) {
    int state;
    std::string gid;
    bool wrote;
    std::unique_ptr<xa::Session> active;
    {
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(txid);
      if (b.busy) return BusyStatus(txid);
      state = b.state;
      gid = b.gid;
      wrote = b.wrote;
      if (state == kActive) active = std::move(b.session);
      if (state == kPrepared || state == kRollingBack) b.busy = true;
    }
    switch (state) {
      case kAborted: return Status::Ok();
      case kGone: return GoneStatus(txid, gid);
      case kCommitted:
        if (!wrote) return Status::Ok();
        return Status::InvalidArgument(Who(txid) + " committed here: it cannot be rolled back");
      case kCommitting:
        return Status::InvalidArgument(Who(txid) + " is being committed: it cannot be rolled back");
      case kNone:
      case kActive: {
        if (active) {
          Status s = active->RollbackActive(gid);
          if (!s.ok() && active->Healthy()) {
            // The database still has the branch and refused: keep it, retry later.
            std::lock_guard<std::mutex> l(mu_);
            BranchOf(txid).session = std::move(active);
            return s;
          }
          Release(std::move(active));  // a broken connection took the branch with it
        }
        std::lock_guard<std::mutex> l(mu_);
        SetFinal(BranchOf(txid), kAborted);
        WriteState(txid, gid, kAborted, false, nullptr);  // a tombstone; presumed abort
        return Status::Ok();
      }
      case kPrepared: return FinishPrepared(txid, /*commit=*/false, /*intent_before=*/false);
      case kRollingBack: return FinishPrepared(txid, /*commit=*/false, /*intent_before=*/true);
    }
    return Status::Internal(Who(txid) + ": unknown state " + std::to_string(state));
  }

  // ---- recovery and reconciliation -----------------------------------------

  struct WalRow {
    TxId txid;
    std::string gid;
    int state = kNone;
    PrepareInfo info;
  };

  Result<std::vector<WalRow>> ReadWal() {
    std::vector<WalRow> rows;
    auto st = db_->Prepare("SELECT txid, gid, state, info, protocol FROM xa_branches");
    if (!st.ok()) return st.status();
    for (;;) {
      auto more = (*st)->Step();
      if (!more.ok()) return more.status();
      if (!*more) break;
      WalRow r;
      auto t = ParseTxId((*st)->ColumnText(0));
      if (!t) return Status::StorageFailed("resource " + name_ + ": malformed txid in " + db_->path());
      r.txid = *t;
      r.gid = (*st)->ColumnText(1);
      r.state = static_cast<int>((*st)->ColumnInt(2));
      if (!(*st)->ColumnIsNull(3)) {
        proto::PreparedRecord rec;
        if (codec::Decode((*st)->ColumnBlob(3), &rec)) r.info.participants = rec.participants;
      }
      r.info.protocol = static_cast<proto::Protocol::type>((*st)->ColumnInt(4));
      rows.push_back(std::move(r));
    }
    return rows;
  }

  Result<std::vector<HeuristicRecord>> ReadHeuristics() {
    std::vector<HeuristicRecord> out;
    auto st = db_->Prepare("SELECT txid, outcome, reason, who, at_ms FROM xa_heuristics");
    if (!st.ok()) return st.status();
    for (;;) {
      auto more = (*st)->Step();
      if (!more.ok()) return more.status();
      if (!*more) break;
      auto t = ParseTxId((*st)->ColumnText(0));
      if (!t) continue;
      HeuristicRecord h;
      h.txid = *t;
      h.outcome = static_cast<proto::Outcome::type>((*st)->ColumnInt(1));
      h.reason = (*st)->ColumnText(2);
      h.who = (*st)->ColumnText(3);
      h.at_ms = (*st)->ColumnInt(4);
      out.push_back(std::move(h));
    }
    return out;
  }

  // Splits the database's prepared list into ours (by txid) and foreign.
  void Classify(const std::vector<xa::PreparedXact>& list, std::map<TxId, std::string, TxIdLess>* ours,
                std::vector<std::string>* foreign) {
    for (const auto& x : list) {
      auto p = xa::ParseGid(x.gid);
      if (p && p->resource == name_) {
        (*ours)[p->txid] = x.gid;
      } else {
        foreign->push_back(x.gid + (x.owner.empty() ? "" : " (owner " + x.owner + ")"));
      }
    }
  }

  void NoteForeign(std::vector<std::string> foreign) {  // under mu_
    if (foreign != stats_.foreign && !foreign.empty()) {
      for (const auto& f : foreign) {
        Logger("xa")->warn("resource={} foreign prepared transaction {}: not txcoord's (or another "
                         "resource's); listed, never touched", name_, f);
      }
    }
    stats_.foreign = std::move(foreign);
  }

  Result<std::vector<RecoveredBranch>> Recover() {
    auto rows = ReadWal();
    if (!rows.ok()) return rows.status();
    auto hs = ReadHeuristics();
    if (!hs.ok()) return hs.status();
    auto session = Acquire();
    if (!session.ok()) return session.status();
    auto list = (*session)->ListPrepared();
    if (!list.ok()) {
      Release(std::move(*session));
      return list.status();
    }
    std::map<TxId, std::string, TxIdLess> ours;
    std::vector<std::string> foreign;
    Classify(*list, &ours, &foreign);
    std::vector<RecoveredBranch> out;
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& h : *hs) gone_[h.txid] = h;
    ++stats_.runs;
    NoteForeign(std::move(foreign));
    for (WalRow& r : *rows) {
      Branch& b = BranchOf(r.txid);
      b.gid = r.gid;
      b.info = r.info;
      b.wrote = true;
      bool in_db = ours.erase(r.txid) > 0;
      switch (r.state) {
        case kActive:
          if (in_db) {
            // Prepared in the database, the WAL's PREPARED lost in a crash:
            // no vote left, the group will abort it.
            b.state = kPrepared;
            out.push_back({r.txid, BranchState::kPrepared, r.info});
            ++stats_.in_doubt;
          } else {
            SetFinal(b, kAborted);  // the database rolled it back with its connection
            WriteState(r.txid, r.gid, kAborted, false, nullptr);
          }
          break;
        case kPrepared:
          if (in_db) {
            b.state = kPrepared;
            out.push_back({r.txid, BranchState::kPrepared, r.info});
            ++stats_.in_doubt;
          } else if (!gone_.count(r.txid)) {
            SetFinal(b, kGone);
            HeuristicRecord rec = GoneRecord(r.txid, r.gid);
            gone_[r.txid] = rec;
            ++stats_.gone;
            auto op = std::make_unique<WalOp>();
            op->kind = WalOp::kHeuristic;
            op->txid = r.txid;
            op->heuristic = rec;
            op->sync = true;
            committer_->Enqueue(std::move(op));
            WriteState(r.txid, r.gid, kGone, true, nullptr);
            Logger("xa")->error("heuristic hazard resource={} txid={}: PREPARED in the agent's WAL but "
                              "gone from the database; recorded, never guessed", name_, ToString(r.txid));
          } else {
            SetFinal(b, kGone);
            WriteState(r.txid, r.gid, kGone, false, nullptr);
          }
          break;
        case kCommitting:
        case kRollingBack: {
          bool commit = r.state == kCommitting;
          if (in_db) {
            Status s = commit ? (*session)->CommitPrepared(r.gid) : (*session)->RollbackPrepared(r.gid);
            if (!s.ok() && s.code() != Status::kNotFound) {
              // Cannot finish now: leave the intent; the decision is in the WAL,
              // the next reconciliation finishes it.
              b.state = r.state;
              Logger("xa")->warn("resource={} txid={} finishing ({}) failed: {}", name_,
                               ToString(r.txid), XaStateName(r.state), s.ToString());
              break;
            }
            ++(commit ? stats_.committed : stats_.rolled_back);
          }
          SetFinal(b, commit ? kCommitted : kAborted);
          WriteState(r.txid, r.gid, b.state, false, nullptr);
          break;
        }
        case kCommitted:
        case kAborted:
          if (in_db) {
            Status s = r.state == kCommitted ? (*session)->CommitPrepared(r.gid)
                                             : (*session)->RollbackPrepared(r.gid);
            if (s.ok()) ++(r.state == kCommitted ? stats_.committed : stats_.rolled_back);
          }
          SetFinal(b, r.state);
          break;
        case kGone:
          SetFinal(b, kGone);
          break;
        default:
          break;
      }
    }
    // Prepared in the database, no row at all: the crash came before the
    // ACTIVE row was written. In doubt, with no participants: the group
    // never heard a vote, so it aborts.
    for (const auto& [txid, gid] : ours) {
      Branch& b = BranchOf(txid);
      b.gid = gid;
      b.state = kPrepared;
      b.wrote = true;
      out.push_back({txid, BranchState::kPrepared, PrepareInfo{}});
      ++stats_.in_doubt;
    }
    // Drop the branches that are final from memory's view of in-flight work,
    // keeping them as tombstones.
    recovered_ = true;
    idle_.push_back(std::move(*session));
    if (!reconciler_.joinable()) reconciler_ = std::thread([this] { TimerLoop(); });
    return out;
  }

  Result<std::vector<HeuristicRecord>> Heuristics() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<HeuristicRecord> out;
    for (const auto& [t, h] : gone_) out.push_back(h);
    return out;
  }

  std::optional<HeuristicRecord> HeuristicOf(const TxId& txid) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = gone_.find(txid);
    if (it == gone_.end() || it->second.who != "database") return std::nullopt;
    return it->second;
  }

  void ForgetHeuristic(const TxId& txid, Callback<Status> done) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!gone_.count(txid)) {
        done(Status::NotFound(Who(txid) + " has no heuristic record"));
        return;
      }
    }
    auto op = std::make_unique<WalOp>();
    op->kind = WalOp::kForget;
    op->txid = txid;
    op->sync = true;
    op->done = [this, txid, done = std::move(done)](Status s) {
      if (s.ok()) {
        std::lock_guard<std::mutex> l(mu_);
        gone_.erase(txid);
      }
      done(s);
    };
    committer_->Enqueue(std::move(op));
  }

  Status ReconcileNow() {
    uint64_t gen;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!recovered_) return Status::InvalidArgument("resource " + name_ + ": not recovered yet");
      gen = ++reconcile_gen_;
    }
    auto session = Acquire();
    if (!session.ok()) return session.status();
    auto list = (*session)->ListPrepared();
    if (!list.ok()) {
      Release(std::move(*session));
      return list.status();
    }
    std::map<TxId, std::string, TxIdLess> ours;
    std::vector<std::string> foreign;
    Classify(*list, &ours, &foreign);
    struct Todo {
      TxId txid;
      std::string gid;
      bool commit;
    };
    std::vector<Todo> finish;
    std::vector<TxId> gone;
    {
      std::lock_guard<std::mutex> l(mu_);
      ++stats_.runs;
      NoteForeign(std::move(foreign));
      for (const auto& [txid, gid] : ours) {
        auto it = branches_.find(txid);
        if (it == branches_.end() || it->second.state == kNone) {
          ++stats_.unknown;
          Logger("xa")->warn("resource={} prepared transaction {} is txcoord's but unknown to this "
                           "agent's WAL: left as it is until the agent restarts and asks the group",
                           name_, gid);
          continue;
        }
        Branch& b = it->second;
        if (b.busy) continue;
        bool commit = b.state == kCommitted || b.state == kCommitting;
        if (!commit && b.state != kAborted && b.state != kRollingBack) continue;
        b.busy = true;
        finish.push_back({txid, gid, commit});
      }
      for (auto& [txid, b] : branches_) {
        // Only branches already PREPARED before this list was read.
        if (b.state == kPrepared && !b.busy && b.prepared_gen < gen && !ours.count(txid)) {
          gone.push_back(txid);
          b.busy = true;
        }
      }
      // Forget final branches long over (the WAL keeps them a day).
      Micros cutoff = WallMicros() - 10 * 60 * kSeconds;
      for (auto it = branches_.begin(); it != branches_.end();) {
        if (Final(it->second.state) && !it->second.busy && it->second.final_at > 0 &&
            it->second.final_at < cutoff && !ours.count(it->first)) {
          it = branches_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const Todo& t : finish) {
      Status s = t.commit ? (*session)->CommitPrepared(t.gid) : (*session)->RollbackPrepared(t.gid);
      std::lock_guard<std::mutex> l(mu_);
      Branch& b = BranchOf(t.txid);
      b.busy = false;
      if (s.ok() || s.code() == Status::kNotFound) {
        // The decision is carried out: the branch is final.
        if (!Final(b.state)) {
          SetFinal(b, t.commit ? kCommitted : kAborted);
          WriteState(t.txid, t.gid, b.state, false, nullptr);
        }
      }
      if (s.ok()) {
        ++(t.commit ? stats_.committed : stats_.rolled_back);
        Logger("xa")->info("resource={} reconciliation {} prepared transaction {}", name_,
                         t.commit ? "committed" : "rolled back", t.gid);
      }
    }
    Release(std::move(*session));
    for (const TxId& txid : gone) {
      std::string gid;
      {
        std::lock_guard<std::mutex> l(mu_);
        gid = BranchOf(txid).gid;
      }
      (void)RecordGone(txid, gid, /*group_commit=*/false);
    }
    auto purge = std::make_unique<WalOp>();
    purge->kind = WalOp::kPurge;
    purge->purge_before = WallMicros() - 24LL * 3600 * kSeconds;
    committer_->Enqueue(std::move(purge));
    return Status::Ok();
  }

  // The resource's timer thread: parked operations' deadlines and the
  // periodic reconciliation.
  void TimerLoop() {
    std::unique_lock<std::mutex> l(mu_);
    Micros next_reconcile = SteadyNowMicros() + options_.reconcile_interval;
    while (!stop_) {
      Micros wait = parked_.empty() ? 1 * kSeconds : 50 * kMillis;
      cv_.wait_for(l, std::chrono::microseconds(wait));
      if (stop_) break;
      Micros now = SteadyNowMicros();
      ExpireParked(now);
      if (options_.reconcile_interval > 0 && now >= next_reconcile && !reconciling_) {
        // On a worker: a hung database call must not stop the deadlines here.
        reconciling_ = true;
        boost::asio::post(pool_, [this] {
          Status s = ReconcileNow();
          if (!s.ok()) Logger("xa")->warn("resource={} reconciliation failed: {}", name_, s.ToString());
          std::lock_guard<std::mutex> g(mu_);
          reconciling_ = false;
        });
        next_reconcile = now + options_.reconcile_interval;
      }
    }
  }

  XaReconcileStats stats() const {
    std::lock_guard<std::mutex> l(mu_);
    return stats_;
  }
  size_t open() const {
    std::lock_guard<std::mutex> l(mu_);
    return open_;
  }

 private:
  const std::string name_;
  std::unique_ptr<xa::Driver> driver_;
  const XaResourceOptions options_;
  std::unique_ptr<wal::Db> db_;  // used only by the committer's thread after Init (and Recover)
  std::unique_ptr<wal::GroupCommitter> committer_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool stop_ = false;
  bool recovered_ = false;
  std::map<TxId, Branch, TxIdLess> branches_;
  std::map<TxId, HeuristicRecord, TxIdLess> gone_;
  std::vector<std::unique_ptr<xa::Session>> idle_;
  size_t open_ = 0;
  struct Parked {
    std::function<void()> run;
    Micros deadline;
  };
  std::deque<Parked> parked_;
  bool reconciling_ = false;  // a periodic reconciliation is queued or running
  uint64_t reconcile_gen_ = 0;
  XaReconcileStats stats_;
  std::thread reconciler_;
  boost::asio::thread_pool pool_;
};

XaResource::XaResource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
XaResource::~XaResource() = default;

Result<std::unique_ptr<XaResource>> XaResource::Open(const std::string& name,
                                                     std::unique_ptr<xa::Driver> driver,
                                                     XaResourceOptions options) {
  auto db = wal::Db::Open(options.wal_path);
  if (!db.ok()) {
    return Status(db.status().code(), "resource " + name + ": opening its WAL " + options.wal_path +
                                          ": " + db.status().message());
  }
  auto impl = std::make_unique<Impl>(name, std::move(driver), std::move(options), std::move(*db));
  Status s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<XaResource>(new XaResource(std::move(impl)));
}

const std::string& XaResource::name() const { return impl_->name(); }
Result<std::vector<RecoveredBranch>> XaResource::Recover() { return impl_->Recover(); }
void XaResource::Execute(const TxId& txid, std::vector<proto::Statement> statements,
                         Callback<ExecuteResult> done) {
  impl_->Execute(txid, std::move(statements), std::move(done));
}
void XaResource::Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) {
  impl_->Prepare(txid, info, std::move(done));
}
void XaResource::Commit(const TxId& txid, Callback<Status> done) { impl_->Commit(txid, std::move(done)); }
void XaResource::Rollback(const TxId& txid, Callback<Status> done) {
  impl_->Rollback(txid, std::move(done));
}
Result<std::vector<HeuristicRecord>> XaResource::Heuristics() { return impl_->Heuristics(); }
std::optional<HeuristicRecord> XaResource::HeuristicOf(const TxId& txid) const {
  return impl_->HeuristicOf(txid);
}
void XaResource::HeuristicDecide(const HeuristicRecord& record, Callback<Status> done) {
  impl_->HeuristicDecide(record, std::move(done));
}
void XaResource::ForgetHeuristic(const TxId& txid, Callback<Status> done) {
  impl_->ForgetHeuristic(txid, std::move(done));
}
std::vector<std::pair<std::string, uint64_t>> XaResource::Counters() const {
  XaReconcileStats s = impl_->stats();
  return {{"reconcile_runs", s.runs},
          {"reconcile_committed", s.committed},
          {"reconcile_rolled_back", s.rolled_back},
          {"recovered_in_doubt", s.in_doubt},
          {"gone_from_database", s.gone},
          {"unknown_to_wal", s.unknown},
          {"foreign_prepared", s.foreign.size()}};
}
Status XaResource::ReconcileNow() { return impl_->ReconcileNow(); }
XaReconcileStats XaResource::reconcile_stats() const { return impl_->stats(); }
size_t XaResource::connections_open() const { return impl_->open(); }

}  // namespace txc::participant
