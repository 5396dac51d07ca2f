// The bank of the simulated agents kept in real SQLite databases on a node's
// SimVfs, as the production SqliteResource stores it: creating it at set-up,
// and reading it back as a BankImage for the checker (sim/checker.h).
//
// The schema is the workload's: accounts(id INTEGER PRIMARY KEY, balance
// INTEGER NOT NULL), members and email_pool (sim/bank.h), plus
// SqliteResource's own log tables (txc_branches, txc_changes). A branch's
// changes in the image are read from its redo changesets (in its txc_branches
// row for a one-shot, in txc_changes otherwise), so
// an open branch's Delta() is exactly what its work added to the balances
// (and its member_delta the rows it added to members).
//
// Internal to sim/. Not thread-safe; one World thread.
#pragma once

#include <string>

#include "common/status.h"
#include "sim/bank.h"
#include "sim/sim_vfs.h"

struct sqlite3;

namespace txc::sim {

// The database file of resource `name` on its node ("/bank_a.db"), and the
// URI SqliteResource opens it with.
std::string BankDbPath(const std::string& name);
std::string BankDbUri(const SimVfs& vfs, const std::string& name);

// Creates the resource's database (journal_mode=WAL, synchronous=FULL) with
// the accounts and members of `initial` and the email pool MemberEmail(1)..
// MemberEmail(n + 1) for its n members (their emails come from it), through
// a plain connection that is closed again.
// The caller waits for vfs.WhenDurable before relying on it.
Status CreateBankDb(SimVfs& vfs, const std::string& name, const BankImage& initial);

// Reads the accounts, the members and the branch log (every branch row, the changes of
// every open branch) through `db`, a connection with no transaction open.
Status ReadBankImage(sqlite3* db, BankImage* out);

// The resource's durable image (what a power loss now would leave), read
// exactly: the durable bytes of its database and WAL are copied into a
// private scratch VFS and opened there, as a restarted node would open them.
// Touches nothing of `vfs`.
Status ReadDurableBankImage(const SimVfs& vfs, const std::string& name, BankImage* out);

}  // namespace txc::sim
