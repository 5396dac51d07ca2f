#include "tools/txbench_xa.h"

#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "client/client.h"
#include "participant/mariadb_driver.h"
#include "participant/pg_driver.h"

namespace txc::bench {

namespace {

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// A number from a result cell, whatever type the database sent it as
// (PostgreSQL's SUM of integers is bigint, MariaDB's a DECIMAL).
std::optional<int64_t> AsInt(const proto::Value& v) {
  if (v.__isset.i) return v.i;
  if (v.__isset.d) return static_cast<int64_t>(v.d);
  if (v.__isset.s) {
    char* end = nullptr;
    long long x = std::strtoll(v.s.c_str(), &end, 10);
    if (end != v.s.c_str() && (*end == '\0' || *end == '.')) return x;
  }
  return std::nullopt;
}

}  // namespace

Result<DbSpec> ParseDbSpec(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument("--db wants NAME=postgres:CONNINFO or NAME=mariadb:CONNINFO");
  }
  DbSpec db;
  db.name = spec.substr(0, eq);
  if (!ValidName(db.name)) {
    return Status::InvalidArgument("--db name \"" + db.name + "\" must be 1-64 characters of A-Z a-z 0-9 _ -");
  }
  std::string rest = spec.substr(eq + 1);
  auto colon = rest.find(':');
  db.kind = rest.substr(0, colon);
  if (colon == std::string::npos || (db.kind != "postgres" && db.kind != "mariadb")) {
    return Status::InvalidArgument("--db " + db.name + ": expected postgres:CONNINFO or mariadb:CONNINFO after '='");
  }
  db.conninfo = rest.substr(colon + 1);
  std::string env = "TXC_PASSWORD_";
  for (char c : db.name) env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (const char* p = std::getenv(env.c_str())) db.password = p;
  return db;
}

Result<std::unique_ptr<xa::Driver>> MakeDriver(const DbSpec& db) {
  return db.kind == "postgres" ? xa::MakePostgresDriver(db.name, db.conninfo, db.password)
                               : xa::MakeMariaDbDriver(db.name, db.conninfo, db.password);
}

TxIdSource::TxIdSource() {
  std::random_device rd;
  epoch_ = 1 + static_cast<int64_t>(rd() % 0x7ffffffeU);
}

TxId TxIdSource::Next() { return MakeTxId(epoch_, ++seq_); }

Result<Money> ReadMoney(xa::Session& s, const std::string& gid) {
  TXC_RETURN_IF_ERROR(s.Begin(gid));
  auto r = s.Run({Sql("SELECT COUNT(*), COALESCE(SUM(balance), 0) FROM accounts")});
  Status rb = s.RollbackActive(gid);
  if (!r.ok()) return r.status();
  if (!rb.ok()) return rb;
  if (r->size() != 1 || (*r)[0].rows.size() != 1 || (*r)[0].rows[0].values.size() != 2) {
    return Status::Internal("SELECT COUNT(*), SUM(balance) did not return one row of two values");
  }
  auto rows = AsInt((*r)[0].rows[0].values[0]);
  auto total = AsInt((*r)[0].rows[0].values[1]);
  if (!rows || !total) return Status::Internal("COUNT(*) or SUM(balance) is not a number");
  return Money{*rows, *total};
}

Result<std::vector<std::string>> LeftoverPrepared(xa::Session& s, int64_t epoch) {
  auto list = s.ListPrepared();
  if (!list.ok()) return list.status();
  std::vector<std::string> mine;
  for (const xa::PreparedXact& p : *list) {
    auto g = xa::ParseGid(p.gid);
    if (g && g->txid.epoch == epoch) mine.push_back(p.gid);
  }
  return mine;
}

// --------------------------------------------------------------- DirectWorker

// One thread that runs one job at a time for its worker (the second branch
// of each phase).
class DirectWorker::Helper {
 public:
  Helper() : thread_([this] { Loop(); }) {}
  ~Helper() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Start(std::function<void()> job) {
    std::lock_guard<std::mutex> l(mu_);
    job_ = std::move(job);
    done_ = false;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return done_; });
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [this] { return stop_ || job_; });
      if (!job_) return;
      auto job = std::move(job_);
      job_ = nullptr;
      l.unlock();
      job();
      l.lock();
      done_ = true;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool done_ = true, stop_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

struct DirectWorker::Branch {
  size_t db = 0;
  std::string gid;
  proto::Statement statement;
  enum { kNone, kActive, kPrepared, kDone } state = kNone;
  Status status;
};

DirectWorker::DirectWorker(std::vector<xa::Driver*> drivers, std::vector<std::string> names, TxIdSource* ids)
    : drivers_(std::move(drivers)), names_(std::move(names)), ids_(ids), sessions_(drivers_.size()),
      helper_(std::make_unique<Helper>()) {}

DirectWorker::~DirectWorker() = default;

Status DirectWorker::Connect() {
  for (size_t i = 0; i < drivers_.size(); ++i) {
    if (sessions_[i] && sessions_[i]->Healthy()) continue;
    sessions_[i].reset();
    auto s = drivers_[i]->Connect();
    if (!s.ok()) return s.status();
    sessions_[i] = std::move(*s);
  }
  return Status::Ok();
}

void DirectWorker::Phase1(Branch& br) {
  xa::Session& s = *sessions_[br.db];
  br.status = s.Begin(br.gid);
  if (!br.status.ok()) return;
  br.state = Branch::kActive;
  auto r = s.Run({br.statement});
  if (!r.ok()) {
    br.status = r.status();
    return;
  }
  br.status = s.Prepare(br.gid);
  if (br.status.ok()) br.state = Branch::kPrepared;
}

void DirectWorker::Commit(Branch& br) {
  br.status = sessions_[br.db]->CommitPrepared(br.gid);
  if (br.status.ok()) br.state = Branch::kDone;
}

void DirectWorker::Abort(Branch& br) {
  xa::Session& s = *sessions_[br.db];
  if (br.state == Branch::kActive) {
    // A failed Prepare may have ended the branch already: the rollback's own
    // error is not the transfer's.
    (void)s.RollbackActive(br.gid);
  } else if (br.state == Branch::kPrepared) {
    Status st = s.RollbackPrepared(br.gid);
    if (!st.ok() && st.code() != Status::kNotFound) br.status = st;
  }
  br.state = Branch::kDone;
}

Status DirectWorker::Transfer(size_t from, int64_t a, size_t to, int64_t b, int64_t amount) {
  TXC_RETURN_IF_ERROR(Connect());
  TxId txid = ids_->Next();
  Branch debit, credit;
  debit.db = from;
  debit.gid = xa::MakeGid(txid, names_[from]);
  debit.statement = SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                              {Int(amount), Int(a), Int(amount)}, 1);
  credit.db = to;
  credit.gid = xa::MakeGid(txid, names_[to]);
  credit.statement = SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?", {Int(amount), Int(b)}, 1);

  helper_->Start([&] { Phase1(credit); });
  Phase1(debit);
  helper_->Wait();

  if (debit.state == Branch::kPrepared && credit.state == Branch::kPrepared) {
    helper_->Start([&] { Commit(credit); });
    Commit(debit);
    helper_->Wait();
    if (debit.status.ok() && credit.status.ok()) return Status::Ok();
    // Decided commit, not finished: one more try on a fresh session each
    // (PostgreSQL finishes a prepared transaction from any session).
    for (Branch* br : {&debit, &credit}) {
      if (br->state == Branch::kDone) continue;
      if (!sessions_[br->db]->Healthy()) {
        if (!Connect().ok()) continue;
      }
      Commit(*br);
    }
    if (debit.status.ok() && credit.status.ok()) return Status::Ok();
    const Status& bad = debit.status.ok() ? credit.status : debit.status;
    return Status(bad.code(), "commit of a prepared branch failed (outcome in doubt there): " + bad.message());
  }
  Status first = !debit.status.ok() ? debit.status : credit.status;
  for (Branch* br : {&debit, &credit}) {
    if (!sessions_[br->db]->Healthy()) {
      // An ACTIVE branch ended with its connection; a prepared one did not.
      if (br->state != Branch::kPrepared || !Connect().ok()) continue;
    }
    Abort(*br);
  }
  return first;
}

// ----------------------------------------------------------------- setup-db

Status SetupDb(const DbSpec& db, int64_t accounts, int64_t balance) {
  auto driver = MakeDriver(db);
  if (!driver.ok()) return driver.status();
  auto session = (*driver)->Connect();
  if (!session.ok()) return session.status();
  xa::Session& s = **session;
  TXC_RETURN_IF_ERROR((*driver)->CheckServer(s));
  TxIdSource ids;
  const proto::Statement create =
      Sql("CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");

  // The table: in a prepared branch where the database allows DDL there
  // (PostgreSQL), else outside any branch (MariaDB refuses DDL inside XA).
  std::string gid = xa::MakeGid(ids.Next(), db.name);
  TXC_RETURN_IF_ERROR(s.Begin(gid));
  auto r = s.Run({create});
  if (r.ok()) {
    TXC_RETURN_IF_ERROR(s.Prepare(gid));
    TXC_RETURN_IF_ERROR(s.CommitPrepared(gid));
  } else {
    (void)s.RollbackActive(gid);
    if (r.status().code() != Status::kInvalidArgument) return r.status();
    // The interface has no statement outside a branch, but a driver may run
    // one: MariaDB's runs the DDL (which commits at once) and then fails to
    // release the savepoint the DDL ended. What counts is whether the table
    // is there afterwards, read in a branch.
    auto outside = s.Run({create});
    if (!outside.ok()) {
      if (!s.Healthy()) return outside.status();
      std::string probe = xa::MakeGid(ids.Next(), db.name);
      TXC_RETURN_IF_ERROR(s.Begin(probe));
      auto there = s.Run({Sql("SELECT COUNT(*) FROM accounts")});
      (void)s.RollbackActive(probe);
      if (!there.ok()) {
        return Status(outside.status().code(),
                      "cannot create the accounts table over the driver (inside a branch: " + r.status().message() +
                          "; outside one: " + outside.status().message() +
                          "); create it with the database's own client: CREATE TABLE accounts(id INTEGER "
                          "PRIMARY KEY, balance INTEGER NOT NULL)");
      }
      std::fprintf(stderr, "setup-db %s: created the accounts table outside a branch (the driver then said: %s)\n",
                   db.name.c_str(), outside.status().message().c_str());
    }
  }

  // The rows: all replaced, in one prepared branch, 500 per INSERT.
  gid = xa::MakeGid(ids.Next(), db.name);
  TXC_RETURN_IF_ERROR(s.Begin(gid));
  std::vector<proto::Statement> fill{Sql("DELETE FROM accounts")};
  for (int64_t first = 1; first <= accounts; first += 500) {
    int64_t last = std::min(accounts, first + 499);
    std::string sql = "INSERT INTO accounts(id, balance) VALUES ";
    std::vector<proto::Value> params;
    for (int64_t id = first; id <= last; ++id) {
      sql += id == first ? "(?, ?)" : ", (?, ?)";
      params.push_back(Int(id));
      params.push_back(Int(balance));
    }
    fill.push_back(Sql(std::move(sql), std::move(params)));
  }
  auto f = s.Run(fill);
  if (!f.ok()) {
    (void)s.RollbackActive(gid);
    return f.status();
  }
  TXC_RETURN_IF_ERROR(s.Prepare(gid));
  TXC_RETURN_IF_ERROR(s.CommitPrepared(gid));

  auto money = ReadMoney(s, xa::MakeGid(ids.Next(), db.name));
  if (!money.ok()) return money.status();
  if (money->rows != accounts || money->total != accounts * balance) {
    return Status::Internal("after the set-up " + db.name + " holds " + std::to_string(money->rows) +
                            " accounts and " + std::to_string(money->total) + " in all, not " +
                            std::to_string(accounts) + " and " + std::to_string(accounts * balance));
  }
  std::printf("setup-db %s (%s): accounts 1..%ld, %ld each, %ld in all\n", db.name.c_str(), db.kind.c_str(),
              static_cast<long>(accounts), static_cast<long>(balance), static_cast<long>(money->total));
  return Status::Ok();
}

}  // namespace txc::bench
