#include "sim/bank_resource.h"

#include "sim/checker.h"

namespace txc::sim {

using participant::BranchState;
using participant::ExecuteResult;
using participant::PrepareInfo;
using participant::RecoveredBranch;

int64_t BankBranch::Delta() const {
  int64_t d = 0;
  for (const auto& call : changes) {
    for (const RowChange& c : call) d += c.after - c.before;
  }
  return d;
}

void BankImage::PutBranch(const TxId& txid, const BankBranch& b) {
  branches[txid] = b;
  if (b.state == BranchState::kActive || b.state == BranchState::kPrepared ||
      b.state == BranchState::kPreCommitted) {
    open.insert(txid);
  } else {
    open.erase(txid);
  }
}

int64_t BankImage::Sum() const {
  int64_t s = 0;
  for (const auto& [id, balance] : accounts) s += balance;
  return s;
}

namespace {

std::string Snippet(const std::string& sql) {
  return sql.size() <= 120 ? sql : sql.substr(0, 120) + "...";
}

bool IntParam(const proto::Statement& st, size_t i, int64_t* v) {
  if (i >= st.params.size() || !st.params[i].__isset.i) return false;
  *v = st.params[i].i;
  return true;
}

proto::Value IntValue(int64_t v) {
  proto::Value x;
  x.__set_i(v);
  return x;
}

}  // namespace

BankResource::BankResource(std::string name, BankImage* durable, ResourceEnv env)
    : name_(std::move(name)), durable_(durable), env_(std::move(env)), live_(*durable) {}

void BankResource::Complete(bool durable, std::function<void()> fn) {
  auto alive = env_.alive;
  World* world = env_.world;
  Micros delay = world->rng().Uniform(env_.op_min, env_.op_max);
  if (!durable) {
    world->After(delay, [alive, fn = std::move(fn)] {
      if (*alive) fn();
    });
    return;
  }
  env_.disk->Sync([world, alive, delay, fn = std::move(fn)] {
    world->After(delay / 4, [alive, fn] {
      if (*alive) fn();
    });
  });
}

void BankResource::Journal(const TxId& txid, const std::vector<int64_t>& rows) {
  std::vector<std::pair<int64_t, int64_t>> values;
  values.reserve(rows.size());
  for (int64_t id : rows) values.emplace_back(id, live_.accounts[id]);
  bool has_branch = live_.branches.count(txid) > 0;
  BankBranch b = has_branch ? live_.branches[txid] : BankBranch();
  BankImage* image = durable_;
  env_.disk->Write([image, txid, has_branch, b = std::move(b), values = std::move(values)] {
    for (const auto& [id, v] : values) image->accounts[id] = v;
    if (has_branch) image->PutBranch(txid, b);
  });
}

void BankResource::SetState(const TxId& txid, BankBranch& b, BranchState s) {
  b.state = s;
  if (s == BranchState::kActive || s == BranchState::kPrepared || s == BranchState::kPreCommitted) {
    live_.open.insert(txid);
  } else {
    live_.open.erase(txid);
  }
}

void BankResource::ReleaseLocks(const TxId& txid, const BankBranch& b) {
  for (const auto& call : b.changes) {
    for (const RowChange& c : call) {
      auto it = locks_.find(c.id);
      if (it != locks_.end() && it->second == txid) locks_.erase(it);
    }
  }
}

// ------------------------------------------------------------------ recovery

Result<std::vector<RecoveredBranch>> BankResource::Recover() {
  std::vector<RecoveredBranch> out;
  locks_.clear();
  for (const TxId& txid : live_.open) {  // ordered by (epoch, seq), as SQLite's
    const BankBranch& b = live_.branches.at(txid);
    RecoveredBranch r;
    r.txid = txid;
    r.state = b.state;
    r.info = b.info;
    out.push_back(std::move(r));
    for (const auto& call : b.changes) {
      for (const RowChange& c : call) locks_[c.id] = txid;
    }
  }
  return out;
}

// ------------------------------------------------------------------- execute

Status BankResource::DoExecute(const TxId& txid, const std::vector<proto::Statement>& statements,
                               ExecuteResult* out) {
  const std::string id = ToString(txid);
  auto it = live_.branches.find(txid);
  bool exists = it != live_.branches.end();
  if (exists) {
    switch (it->second.state) {
      case BranchState::kActive:
        break;
      case BranchState::kAborted:
        return Err(Status::kAborted, "branch " + id + " is already aborted");
      case BranchState::kCommitted:
        return Err(Status::kInvalidArgument, "branch " + id + " is already committed");
      case BranchState::kPrepared:
      case BranchState::kPreCommitted:
        return Err(Status::kInvalidArgument,
                   "branch " + id + " is already " + participant::BranchStateName(it->second.state) +
                       "; it takes no more statements");
    }
  }
  out->wrote = exists && it->second.HasChanges();

  // Run every statement against an overlay (the SAVEPOINT of the real one).
  std::map<int64_t, int64_t> overlay;  // id -> new balance
  std::vector<int64_t> order;          // changed rows, first change first
  auto read = [&](int64_t row, int64_t* v) {
    auto o = overlay.find(row);
    if (o != overlay.end()) {
      *v = o->second;
      return true;
    }
    auto a = live_.accounts.find(row);
    if (a == live_.accounts.end()) return false;
    *v = a->second;
    return true;
  };
  auto write = [&](int64_t row, int64_t v) {
    if (overlay.emplace(row, v).second) {
      order.push_back(row);
    } else {
      overlay[row] = v;
    }
  };
  std::vector<proto::ResultSet> results(statements.size());
  for (size_t i = 0; i < statements.size(); ++i) {
    const proto::Statement& st = statements[i];
    proto::ResultSet& rs = results[i];
    auto where = [&] { return " (statement " + std::to_string(i + 1) + ": " + Snippet(st.sql) + ")"; };
    auto params = [&](size_t n) -> Status {
      if (st.params.size() != n) {
        return Err(Status::kSqlError, "expected " + std::to_string(n) + " parameters, got " +
                                          std::to_string(st.params.size()) + where());
      }
      for (size_t p = 0; p < n; ++p) {
        if (!st.params[p].__isset.i) {
          return Err(Status::kSqlError, "parameter " + std::to_string(p + 1) +
                                            " must be an integer in the simulated bank" + where());
        }
      }
      return Status::Ok();
    };
    if (st.sql == kDebitSql) {
      if (Status s = params(3); !s.ok()) return s;
      int64_t amount = 0, row = 0, min = 0, bal = 0;
      (void)IntParam(st, 0, &amount);
      (void)IntParam(st, 1, &row);
      (void)IntParam(st, 2, &min);
      rs.rows_changed = 0;
      if (read(row, &bal) && bal >= min) {
        write(row, bal - amount);
        rs.rows_changed = 1;
      }
    } else if (st.sql == kCreditSql) {
      if (Status s = params(2); !s.ok()) return s;
      int64_t amount = 0, row = 0, bal = 0;
      (void)IntParam(st, 0, &amount);
      (void)IntParam(st, 1, &row);
      rs.rows_changed = 0;
      if (read(row, &bal)) {
        write(row, bal + amount);
        rs.rows_changed = 1;
      }
    } else if (st.sql == kSumSql) {
      if (Status s = params(0); !s.ok()) return s;
      int64_t sum = 0;
      for (const auto& [row, bal] : live_.accounts) {
        auto o = overlay.find(row);
        sum += o != overlay.end() ? o->second : bal;
      }
      rs.columns = {"SUM(balance)"};
      proto::Row r;
      r.values.push_back(IntValue(sum));
      rs.rows.push_back(std::move(r));
      rs.rows_changed = 0;
    } else if (st.sql == kBalanceSql) {
      if (Status s = params(1); !s.ok()) return s;
      int64_t row = 0, bal = 0;
      (void)IntParam(st, 0, &row);
      rs.columns = {"balance"};
      if (read(row, &bal)) {
        proto::Row r;
        r.values.push_back(IntValue(bal));
        rs.rows.push_back(std::move(r));
      }
      rs.rows_changed = 0;
    } else {
      return Err(Status::kSqlError,
                 "the simulated bank resource does not understand this statement" + where());
    }
    if (st.__isset.expect_rows && st.expect_rows != rs.rows_changed) {
      return Err(Status::kExpectationFailed,
                 "statement " + std::to_string(i + 1) + " (" + Snippet(st.sql) + ") changed " +
                     std::to_string(rs.rows_changed) + " rows, expected " +
                     std::to_string(st.expect_rows));
    }
  }

  for (int64_t row : order) {
    auto l = locks_.find(row);
    if (l != locks_.end() && !(l->second == txid)) {
      out->holder = l->second;
      out->conflict = name_ + ".accounts id=" + std::to_string(row);
      return Status::Conflict(out->conflict + " is held by txn " + ToString(l->second));
    }
  }

  if (!exists) {
    BankBranch b;
    live_.branches.emplace(txid, b);
    live_.open.insert(txid);
  }
  BankBranch& b = live_.branches[txid];
  if (!order.empty()) {
    std::vector<RowChange> call;
    for (int64_t row : order) {
      RowChange c;
      c.id = row;
      c.before = live_.accounts[row];
      c.after = overlay[row];
      live_.accounts[row] = c.after;
      locks_[row] = txid;
      call.push_back(c);
    }
    b.changes.push_back(std::move(call));
    out->wrote = true;
  }
  Journal(txid, order);
  out->results = std::move(results);
  return Status::Ok();
}

void BankResource::Execute(const TxId& txid, std::vector<proto::Statement> statements,
                           Callback<ExecuteResult> done) {
  ExecuteResult r;
  r.status = DoExecute(txid, statements, &r);
  if (!r.status.ok()) r.results.clear();
  Complete(false, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
}

// ------------------------------------------------------------------- prepare

Status BankResource::DoPrepare(const TxId& txid, const PrepareInfo& info) {
  const std::string id = ToString(txid);
  auto it = live_.branches.find(txid);
  if (it == live_.branches.end()) return Err(Status::kNotFound, "no branch " + id + " to prepare");
  BankBranch& b = it->second;
  switch (b.state) {
    case BranchState::kActive:
      break;
    case BranchState::kPrepared:
    case BranchState::kPreCommitted:
      return Status::Ok();
    case BranchState::kAborted:
      return Err(Status::kAborted, "branch " + id + " is already aborted");
    case BranchState::kCommitted:
      return Err(Status::kInvalidArgument, "branch " + id + " is already committed");
  }
  SetState(txid, b, BranchState::kPrepared);
  b.info = info;
  Journal(txid, {});
  return Status::Ok();
}

void BankResource::Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) {
  Status s = DoPrepare(txid, info);
  if (env_.bugs.vote_before_durable) {
    // BUG: answers before the PREPARED record is on disk; the sync follows.
    env_.disk->Sync([] {});
    return Complete(false, [done = std::move(done), s]() mutable { done(s); });
  }
  Complete(true, [done = std::move(done), s]() mutable { done(s); });
}

void BankResource::ExecuteAndPrepare(const TxId& txid, std::vector<proto::Statement> statements,
                                     const PrepareInfo& info, Callback<ExecuteResult> done) {
  // One local transaction: on failure nothing of it stays (SAVEPOINT).
  ExecuteResult r;
  auto it = live_.branches.find(txid);
  bool existed = it != live_.branches.end();
  if (existed && it->second.state != BranchState::kActive) {
    // Prepared/committed/aborted: the same answer DoExecute gives.
    r.status = DoExecute(txid, statements, &r);
  } else {
    r.status = DoExecute(txid, statements, &r);
    if (r.status.ok()) r.status = DoPrepare(txid, info);
  }
  if (!r.status.ok()) r.results.clear();
  bool durable = !env_.bugs.vote_before_durable;
  if (!durable) env_.disk->Sync([] {});
  Complete(durable, [done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
}

// ------------------------------------------------------------ commit/rollback

Status BankResource::DoCommit(const TxId& txid) {
  const std::string id = ToString(txid);
  auto it = live_.branches.find(txid);
  if (it == live_.branches.end()) return Err(Status::kNotFound, "no branch " + id + " to commit");
  BankBranch& b = it->second;
  switch (b.state) {
    case BranchState::kCommitted:
      return Status::Ok();
    case BranchState::kAborted:
      return Err(Status::kAborted, "branch " + id + " is already aborted; cannot commit it");
    default:
      break;
  }
  bool wrote = b.HasChanges();
  ReleaseLocks(txid, b);
  SetState(txid, b, BranchState::kCommitted);
  b.changes.clear();  // the undo is dropped
  Journal(txid, {});
  if (env_.checker != nullptr) env_.checker->OnBranchCommitted(env_.node, name_, txid, wrote);
  return Status::Ok();
}

void BankResource::Commit(const TxId& txid, Callback<Status> done) {
  Status s = DoCommit(txid);
  Complete(true, [done = std::move(done), s]() mutable { done(s); });
}

Status BankResource::DoRollback(const TxId& txid) {
  const std::string id = ToString(txid);
  auto it = live_.branches.find(txid);
  if (it == live_.branches.end()) {
    BankBranch tomb;
    tomb.state = BranchState::kAborted;
    live_.branches.emplace(txid, tomb);
    Journal(txid, {});
    if (env_.checker != nullptr) env_.checker->OnBranchAborted(env_.node, name_, txid, false);
    return Status::Ok();
  }
  BankBranch& b = it->second;
  switch (b.state) {
    case BranchState::kAborted:
      return Status::Ok();
    case BranchState::kCommitted:
      return Err(Status::kInvalidArgument,
                 "branch " + id + " is already committed; cannot roll it back");
    default:
      break;
  }
  bool had_changes = b.HasChanges();
  std::vector<int64_t> rows;
  if (!env_.bugs.forget_undo) {
    for (auto call = b.changes.rbegin(); call != b.changes.rend(); ++call) {
      for (auto c = call->rbegin(); c != call->rend(); ++c) {
        live_.accounts[c->id] = c->before;
        rows.push_back(c->id);
      }
    }
  }
  // BUG forget-undo: the changes stay, only the state says ABORTED.
  ReleaseLocks(txid, b);
  SetState(txid, b, BranchState::kAborted);
  b.changes.clear();
  Journal(txid, rows);
  if (env_.checker != nullptr) env_.checker->OnBranchAborted(env_.node, name_, txid, had_changes);
  return Status::Ok();
}

void BankResource::Rollback(const TxId& txid, Callback<Status> done) {
  Status s = DoRollback(txid);
  Complete(false, [done = std::move(done), s]() mutable { done(s); });
}

}  // namespace txc::sim
