// The MariaDB side of "mariadb:" resources: an xa::Driver speaking MariaDB's
// XA statements over MariaDB Connector/C (libmariadb).
//
// Connection string: "key=value" pairs separated by spaces (libpq's form;
// a value may be quoted with single quotes, \' and \\ inside them):
//   host, port, database, user, socket (a unix socket path),
//   connect_timeout (seconds).
// Any other key is an INVALID_ARGUMENT naming it. The password comes apart
// and appears in no message.
//
// Global ids: gid "txc:E.S:R" is sent as gtrid "txc:E.S" and bqual "R" (split
// at the last ':'), format id xa::kXaFormatId, both as hex literals; each part
// at most 64 bytes.
//
// What the driver relies on (checked on the MariaDB 10.11 server by
// tests/unit/mariadb_driver_test.cc):
//   - SAVEPOINT / ROLLBACK TO SAVEPOINT work inside an XA branch, so each Run
//     is all or nothing.
//   - DDL (and COMMIT, START TRANSACTION, ...) inside an ACTIVE branch fails
//     with 1399 XAER_RMFAIL and leaves the branch as it was: INVALID_ARGUMENT.
//   - A branch prepared by a session that is still connected is invisible to
//     every other session: XA COMMIT/ROLLBACK from another session gives 1397
//     XAER_NOTA. Once that session is gone (it disconnected, or the server
//     restarted) any session finds it in XA RECOVER and can finish it. Hence
//     PreparedStaysOnSession() is true. CommitPrepared/RollbackPrepared
//     of such a branch give UNAVAILABLE (retry later), not NOT_FOUND: the
//     driver tells the two apart with XA RECOVER, which lists the branch.
//     The server detaches a branch from a disconnecting session a little
//     after mysql_close returns, so a commit from another session right
//     after the preparer closed may see this UNAVAILABLE for a moment.
//   - A prepared branch survives a SIGKILL of the server; an ACTIVE one is
//     rolled back by it (and by its session's disconnect).
//   - XA RECOVER needs no privilege beyond the database's and lists every
//     user's prepared branches, including ones their preparing session still
//     holds.
//   - A deadlock victim (1213) loses its whole branch; XA END then XA ROLLBACK
//     on its session clears it and the session takes a new branch. A lock
//     wait timeout (1205) undoes only the statement (innodb_rollback_on_timeout
//     OFF, which CheckServer insists on).
// rows_changed counts matched rows (CLIENT_FOUND_ROWS), as PostgreSQL and
// SQLite do, so an UPDATE that writes the same value still counts.
// Result values: integer columns -> i, FLOAT/DOUBLE/DECIMAL -> d (DECIMAL goes
// through its text form into a double: digits beyond a double's ~16 are
// lost), binary strings/BLOB/BIT -> b, NULL -> unset, anything else
// (text, dates, times, JSON, ...) -> s as the server prints it. An unsigned
// BIGINT above INT64_MAX comes back as s.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "participant/xa_driver.h"

namespace txc::participant::xa {

struct MariaDbOptions {
  // innodb_lock_wait_timeout of every session, in seconds (MariaDB takes
  // whole seconds; at least 1).
  int lock_wait_timeout_s = 2;
};

// A driver for the MariaDB server `conninfo` names. Fails (INVALID_ARGUMENT)
// only on a malformed connection string; the server is not contacted here.
Result<std::unique_ptr<Driver>> MakeMariaDbDriver(const std::string& resource_name,
                                                  const std::string& conninfo,
                                                  std::optional<std::string> password,
                                                  MariaDbOptions options = {});

namespace mariadb_internal {
// The parts of a gid: gtrid and bqual (split at the last ':'). INVALID_ARGUMENT
// when there is no ':' or a part is empty or longer than 64 bytes.
struct XidParts {
  std::string gtrid;
  std::string bqual;
};
Result<XidParts> SplitGid(const std::string& gid);
// "X'<gtrid hex>',X'<bqual hex>',<format id>", for XA statements.
std::string XidLiteral(const XidParts& xid);
}  // namespace mariadb_internal

}  // namespace txc::participant::xa
