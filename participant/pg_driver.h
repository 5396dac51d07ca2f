// xa::Driver for PostgreSQL (libpq): prepared transactions with PREPARE
// TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED.
//
// Sessions:
//   - Every connection sets lock_timeout (PostgresOptions::lock_timeout), so a
//     row lock that is not granted in time fails the statement with SQLSTATE
//     55P03, reported as LOCK_TIMEOUT; the branch stays usable.
//   - Begin starts BEGIN ISOLATION LEVEL REPEATABLE READ.
//   - Run wraps each call in a savepoint: a failing statement rolls back to it,
//     so nothing of that call stays and the branch keeps earlier calls' work.
//     A deadlock victim (40P01) or a serialization failure (40001) is ABORTED:
//     PostgreSQL keeps the branch after the rollback to the savepoint, but it
//     cannot make progress (a REPEATABLE READ snapshot fails the same update
//     again; the deadlock victim still holds the locks of the cycle), so the
//     caller should roll the branch back and vote NO.
//   - Transaction control inside Run (BEGIN, COMMIT, ROLLBACK, SAVEPOINT,
//     PREPARE TRANSACTION, ...) is refused with INVALID_ARGUMENT; a statement
//     that still ends the transaction is reported so too.
//   - Parameters are sent with PQexecParams in text format (bytea as binary),
//     never spliced into the SQL. Result values: int2/int4/int8 -> i;
//     float4/float8 -> d; numeric -> s (its exact decimal text: a double would
//     round it); bytea -> b; NULL -> unset; everything else -> s (PostgreSQL's
//     text output: bool is "t"/"f").
//   - rows_changed is PQcmdTuples, except 0 for a SELECT (which changes
//     nothing; as the sqlite resource reports it).
//   - PreparedStaysOnSession is false: any session of the same database may
//     COMMIT PREPARED or ROLLBACK PREPARED a branch (as its owner or a
//     superuser).
//
// Passwords: given separately, sent as libpq's "password" keyword; never in a
// message or a log. PGPASSWORD / PGPASSFILE / ~/.pgpass keep working when none
// is given.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "common/time.h"
#include "participant/xa_driver.h"

namespace txc::participant::xa {

struct PostgresOptions {
  // lock_timeout of every session; 0 waits forever (PostgreSQL's default).
  Micros lock_timeout = 2 * kSeconds;
  // libpq's connect_timeout when the connection string sets none (seconds).
  int connect_timeout_s = 10;
};

// `conninfo` is a libpq connection string ("host=127.0.0.1 port=5432
// dbname=bank user=txc") or URI. INVALID_ARGUMENT if libpq cannot parse it.
// Errors of the driver and its sessions read "postgres resource <name>
// (<host>:<port>/<dbname>): <what went wrong>".
Result<std::unique_ptr<Driver>> MakePostgresDriver(const std::string& resource_name,
                                                   const std::string& conninfo,
                                                   std::optional<std::string> password,
                                                   PostgresOptions options = {});

}  // namespace txc::participant::xa
