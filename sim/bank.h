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
#include <string>
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

// Members: members(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE), whose
// emails come from email_pool(email TEXT PRIMARY KEY), one email more than
// there are members: in committed state exactly one is free. A rename (both
// statements in one Execute call, so a branch never changes the count)
// claims the free email for a new row ?1, then deletes another row (the
// ?2-th by id): it frees that row's email for the next rename, which takes it
// while this branch is still open. If this branch then rolls back, its undo
// must re-insert the deleted row with that email: what the unique-key locks
// of SqliteResource keep possible (bug skip-undo-on-conflict loses the row).
inline constexpr int kMembers = 4;
inline constexpr const char* kClaimEmailSql =
    "INSERT INTO members(id, email) SELECT ?1, email FROM email_pool "
    "WHERE email NOT IN (SELECT email FROM members) ORDER BY email LIMIT 1";
inline constexpr const char* kReleaseEmailSql =
    "DELETE FROM members WHERE id = "
    "(SELECT id FROM members WHERE id <> ?1 ORDER BY id LIMIT 1 OFFSET ?2)";
// The i-th email of the pool (1-based).
inline std::string MemberEmail(int i) { return "m" + std::to_string(i); }

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
  // Rows of `members` this branch inserted minus those it deleted.
  int64_t member_delta = 0;
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

// A resource's state: the tables `accounts` and `members`, and the branch log.
struct BankImage {
  std::map<int64_t, int64_t> accounts;
  std::map<int64_t, std::string> members;  // id -> email
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
