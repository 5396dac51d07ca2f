// txbench's direct side: the transfer workload driven straight over the
// databases' own prepared transactions (participant/xa_driver.h), with no
// coordinator and no agent, as a hand-written 2PC client would; and the
// accounts table's set-up over a driver session (txbench setup-db).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/txid.h"
#include "participant/xa_driver.h"

namespace txc::bench {

namespace xa = participant::xa;

// One --db NAME=KIND:CONNINFO (KIND: postgres or mariadb). The password is
// TXC_PASSWORD_<NAME> from the environment (upper-case, '-' -> '_'), as
// txagent reads it.
struct DbSpec {
  std::string name;
  std::string kind;
  std::string conninfo;
  std::optional<std::string> password;
};
Result<DbSpec> ParseDbSpec(const std::string& spec);
Result<std::unique_ptr<xa::Driver>> MakeDriver(const DbSpec& db);

// Local transaction ids for direct-mode gids: epoch fixed per run (random,
// 31 bits, never 0), seq counting up. Thread-safe.
class TxIdSource {
 public:
  TxIdSource();
  TxId Next();
  int64_t epoch() const { return epoch_; }

 private:
  int64_t epoch_;
  std::atomic<int64_t> seq_{0};
};

// The row count and the sum of balance of `accounts`, read in a branch that
// is rolled back.
struct Money {
  int64_t rows = 0;
  int64_t total = 0;
};
Result<Money> ReadMoney(xa::Session& s, const std::string& gid);

// The prepared transactions of this run (gid epoch == `epoch`) still in the
// database: each one is a branch the run left behind.
Result<std::vector<std::string>> LeftoverPrepared(xa::Session& s, int64_t epoch);

// One worker's two-phase transfers: a session per database (its own
// connections) and a helper thread, so that the two branches of a transfer
// run in parallel. Used by one thread at a time.
class DirectWorker {
 public:
  DirectWorker(std::vector<xa::Driver*> drivers, std::vector<std::string> names, TxIdSource* ids);
  ~DirectWorker();
  DirectWorker(const DirectWorker&) = delete;
  DirectWorker& operator=(const DirectWorker&) = delete;

  // Opens the sessions that are missing or broken.
  Status Connect();
  // One transfer of `amount` from account `a` of database `from` to account
  // `b` of database `to` (from != to): each database's branch does
  // Begin + its UPDATE + Prepare, both at once; when both prepared,
  // CommitPrepared on both at once. Otherwise every branch is rolled back
  // (RollbackActive / RollbackPrepared) and the first failure is returned.
  // An error after both prepared (a commit that failed) is returned as is:
  // the transfer's outcome is then in doubt.
  Status Transfer(size_t from, int64_t a, size_t to, int64_t b, int64_t amount);

 private:
  class Helper;
  struct Branch;
  void Phase1(Branch& br);
  void Commit(Branch& br);
  void Abort(Branch& br);

  std::vector<xa::Driver*> drivers_;
  std::vector<std::string> names_;
  TxIdSource* ids_;
  std::vector<std::unique_ptr<xa::Session>> sessions_;
  std::unique_ptr<Helper> helper_;
};

// txbench setup-db: creates accounts(id INTEGER PRIMARY KEY, balance INTEGER
// NOT NULL) when missing and makes it hold exactly ids 1..accounts with
// `balance` each, over one session (DDL in a prepared branch where the
// database allows it, else outside any branch). Prints what it did.
Status SetupDb(const DbSpec& db, int64_t accounts, int64_t balance);

}  // namespace txc::bench
