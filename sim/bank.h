// The bank the simulated workload runs and the checker audits: its statements
// and the image of one resource's state (the accounts and the branch log) as
// the checker sees it. The agents keep the bank in the production
// SqliteResource; sim/sqlite_bank.h reads a resource's database into a
// BankImage.
//
// Internal to sim/.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "common/txid.h"
#include "participant/resource_manager.h"

namespace txc::sim {

// The workload's statements, on accounts(id INTEGER PRIMARY KEY, balance
// INTEGER NOT NULL).
inline constexpr const char* kDebitSql =
    "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?";
inline constexpr const char* kCreditSql = "UPDATE accounts SET balance = balance + ? WHERE id = ?";
inline constexpr const char* kSumSql = "SELECT SUM(balance) FROM accounts";
inline constexpr const char* kBalanceSql = "SELECT balance FROM accounts WHERE id = ?";
// A runaway statement (a recursive CTE counting to 20 million: seconds of
// real CPU, if nothing stopped it). The workload sends it now and then in an
// interactive branch; the agent's shell charges simulated CPU time for every
// progress-handler tick it takes (SimAgent), so the resource's statement time
// limit interrupts it and the branch is doomed (it votes NO).
inline constexpr const char* kSlowSql =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) "
    "SELECT count(*) FROM c";

// One row an Execute call changed (an inserted row has before 0, a deleted
// one after 0).
struct RowChange {
  int64_t id = 0;
  int64_t before = 0;
  int64_t after = 0;
};

struct BankBranch {
  participant::BranchState state = participant::BranchState::kActive;
  // One entry per Execute call that changed rows (redo = after, undo = before).
  std::vector<std::vector<RowChange>> changes;
  bool HasChanges() const { return !changes.empty(); }
  // Net change of the sum of balances this branch made.
  int64_t Delta() const {
    int64_t d = 0;
    for (const auto& call : changes) {
      for (const RowChange& c : call) d += c.after - c.before;
    }
    return d;
  }
};

// A resource's state: the table `accounts` and the branch log.
struct BankImage {
  std::map<int64_t, int64_t> accounts;
  std::map<TxId, BankBranch, TxIdLess> branches;
  std::set<TxId, TxIdLess> open;  // ACTIVE or PREPARED branches

  void PutBranch(const TxId& txid, const BankBranch& b) {
    branches[txid] = b;
    if (b.state == participant::BranchState::kActive ||
        b.state == participant::BranchState::kPrepared ||
        b.state == participant::BranchState::kPreCommitted) {
      open.insert(txid);
    } else {
      open.erase(txid);
    }
  }
  int64_t Sum() const {
    int64_t s = 0;
    for (const auto& [id, balance] : accounts) s += balance;
    return s;
  }
};

}  // namespace txc::sim
