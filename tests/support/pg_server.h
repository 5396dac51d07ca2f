// Test support: a throwaway PostgreSQL 15 server of a test's own, in a
// temporary directory, listening on 127.0.0.1 only.
//
// The tests run as root and initdb/postgres refuse root, so every server
// process runs as nobody:nogroup (no supplementary groups). The postmaster is
// a child of the test process (forked here, not daemonized by pg_ctl), so it
// is stopped and reaped by pid; it also gets SIGKILL if the thread that
// started it exits (PR_SET_PDEATHSIG), so a test that dies leaves no server.
// fsync stays on (only initdb's own writes skip the sync).
//
// Not thread-safe: one thread drives a PgServer. Start/Stop/Crash/Restart from
// the thread that lives as long as the server (the test's main thread).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/status.h"

namespace txc::testing {

struct PgServerOptions {
  // postgresql.conf's max_prepared_transactions (0 is PostgreSQL's default,
  // which disables PREPARE TRANSACTION).
  int max_prepared_transactions = 64;
  // A database and a login role (not a superuser) that owns it.
  std::string database = "txc";
  std::string user = "txc";
  // If set, `user` gets this password and must give it over TCP
  // (auth_method); otherwise every TCP login is trusted.
  std::optional<std::string> password;
  std::string auth_method = "scram-sha-256";  // or "md5"
};

class PgServer {
 public:
  explicit PgServer(PgServerOptions options = {});
  // Stops the server (fast shutdown, SIGKILL after 30 s) and removes its
  // directory (kept if TXC_KEEP_TEST_DIRS is set).
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // initdb, configure, start, wait until it accepts queries, then create
  // the role and the database. Once only.
  Status Start();
  // Kills the postmaster and every backend with SIGKILL (as a power cut
  // would: no checkpoint, no shutdown record) and waits until all are gone.
  Status Crash();
  // Starts the server again on the same directory and port (after Crash or
  // Stop), waiting through crash recovery until it accepts queries.
  Status Restart();
  // Fast shutdown (SIGINT), waiting for the postmaster to exit; SIGKILL of
  // everything if it has not after 30 s. No-op if not running.
  Status Stop();

  // "host=127.0.0.1 port=N dbname=<database> user=<user>" (no password).
  std::string conninfo() const;
  int port() const { return port_; }
  // The postmaster's pid, -1 when not running.
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& dir() const { return dir_; }

  // Runs `sql` (one or more statements, each sent on its own, stopping at the
  // first error) with psql as the superuser "postgres" over the server's unix
  // socket, in `database` (default: the test database). The output is
  // unaligned and tuples-only: one row a line, columns separated by '|'.
  // A failed statement gives INTERNAL with psql's output.
  Result<std::string> Sql(const std::string& sql, const std::string& database = "") const;

  // The end of the server's log (for failure messages).
  std::string LogTail(size_t bytes = 4000) const;

 private:
  Status Launch();
  Status WaitReady(int timeout_ms);
  void KillAll();
  void RemoveLeftoverShm();

  PgServerOptions options_;
  std::string dir_;   // the temporary directory (0755)
  std::string data_;  // dir_/data, owned by nobody
  std::string sock_;  // dir_/sock: unix_socket_directories
  std::string log_;   // dir_/postgres.log
  int port_ = 0;
  pid_t pid_ = -1;
  bool started_ = false;
};

}  // namespace txc::testing
