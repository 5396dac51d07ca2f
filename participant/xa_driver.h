// The database side of an XA resource (participant/xa_resource.h): one
// connection to a server that keeps prepared transactions itself
// (PostgreSQL's PREPARE TRANSACTION, MariaDB's XA PREPARE). XaResource owns
// the protocol (branch states, its SQLite WAL, reconciliation, the pool);
// a Driver only speaks one database's dialect.
//
// Threading: a Session is used by one thread at a time (XaResource's
// workers); a Driver's Connect may be called from several workers at once.
// Every call may block on the network: never call one on the agent's io
// thread.
//
// Global ids: XaResource names the branch of txid E.S on resource R
// "txc:E.S:R" (MakeGid). A driver maps it to its database's own id form and
// back (MariaDB: gtrid "txc:E.S", bqual "R", format id kXaFormatId, sent as
// hex literals), so ListPrepared returns the same strings.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/txid.h"
#include "txcoord_types.h"

namespace txc::participant::xa {

// MariaDB XA format id of txcoord's branches ("txc1").
constexpr int64_t kXaFormatId = 0x74786331;

// "txc:<epoch>.<seq>:<resource>". Under 200 bytes (PostgreSQL's limit) for
// every valid resource name (at most 64 bytes).
std::string MakeGid(const TxId& txid, const std::string& resource);
// The txid and resource of a gid made by MakeGid; nullopt for any other.
struct ParsedGid {
  TxId txid;
  std::string resource;
};
std::optional<ParsedGid> ParseGid(const std::string& gid);

// One prepared transaction found in the database.
struct PreparedXact {
  // The gid as MakeGid spells it for txcoord's own; for a foreign one a
  // printable description (MariaDB: "format=<id> gtrid=<hex> bqual=<hex>"),
  // which ParseGid rejects.
  std::string gid;
  std::string owner;  // the database user that prepared it, when known
  std::string prepared_at;  // as the database prints it, when known
};

class Session {
 public:
  virtual ~Session() = default;

  // Starts a branch named `gid` at REPEATABLE READ or stronger.
  virtual Status Begin(const std::string& gid) = 0;

  // Runs the statements of one Execute call inside the branch, all or
  // nothing: on any failure, nothing of this call stays applied (the branch
  // keeps what earlier calls did), unless the database threw the whole branch
  // away (a deadlock victim in MariaDB): then the status is ABORTED and the
  // branch is dead (XaResource rolls it back and votes NO).
  // Parameters are bound, never spliced into the SQL text. Errors:
  //   SQL_ERROR with the database's message (and SQLSTATE where there is one);
  //   EXPECTATION_FAILED when a statement's expect_rows does not match;
  //   LOCK_TIMEOUT when a row lock was not granted in time;
  //   ABORTED as above (deadlock, serialization failure that lost the branch);
  //   INVALID_ARGUMENT for a statement the database cannot run inside a
  //     prepared-transaction branch (DDL in MariaDB XA), naming why;
  //   UNAVAILABLE when the connection broke (the branch is lost with it).
  virtual Result<std::vector<proto::ResultSet>> Run(const std::vector<proto::Statement>& statements) = 0;

  // Ends the branch's work and prepares it. OK means the database has made
  // it durable and it survives this connection and a server crash.
  virtual Status Prepare(const std::string& gid) = 0;
  // Rolls back an ACTIVE (not prepared) branch on this session.
  virtual Status RollbackActive(const std::string& gid) = 0;
  // Commits or rolls back a prepared branch. NOT_FOUND when the database has
  // no prepared transaction `gid` (never prepared, or finished already).
  virtual Status CommitPrepared(const std::string& gid) = 0;
  virtual Status RollbackPrepared(const std::string& gid) = 0;

  // Every prepared transaction of this database (PostgreSQL: of
  // current_database(); MariaDB: XA RECOVER).
  virtual Result<std::vector<PreparedXact>> ListPrepared() = 0;

  // False once the connection is known broken (the pool drops it).
  virtual bool Healthy() const = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;
  // "postgres" or "mariadb".
  virtual const char* kind() const = 0;
  // Opens a connection. A wrong password or an unreachable server gives
  // UNAVAILABLE (or INVALID_ARGUMENT for a bad connection string) whose
  // message names the server and the database's own words; never the
  // password.
  virtual Result<std::unique_ptr<Session>> Connect() = 0;
  // Checked once at start, on a fresh session: whatever the database needs
  // for prepared transactions, with a clear error naming the setting
  // (PostgreSQL: max_prepared_transactions > 0).
  virtual Status CheckServer(Session& session) = 0;
  // True when a prepared branch can be committed or rolled back only on the
  // session that prepared it while that session lives (MariaDB: XAER_NOTA
  // from any other); XaResource then keeps the session with the branch.
  virtual bool PreparedStaysOnSession() const = 0;
};

}  // namespace txc::participant::xa
