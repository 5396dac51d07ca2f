// Test support: a throwaway MariaDB server (mariadbd 10.11) in a temporary
// directory, for the "mariadb:" resource tests.
//
// The server runs as the unprivileged user nobody (tests run as root, and
// mariadbd refuses root): mariadb-install-db and mariadbd are started in a
// child that drops to nobody/nogroup (what `setpriv --reuid=nobody
// --regid=nogroup --clear-groups` does) and only then sets its parent-death
// signal, so the server dies with the test process however that ends (a
// signal set before the uid change would be cleared by it). The data
// directory is owned by nobody; the server listens on 127.0.0.1:port() (a
// txc::testing::FreePort()) and on its own socket in the directory, reads no
// option file (--no-defaults) and syncs its redo log at every commit.
//
// Start creates database kDatabase, user kUser (no password) and user
// kPasswordUser (password kPassword), both with every privilege on kDatabase
// and nothing else (MariaDB 10.11's XA RECOVER needs no extra privilege and
// lists every user's prepared branches). Every server is stopped in the destructor (clean
// shutdown, SIGKILL after 60 s), and reaped.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"
#include "tests/support/process.h"

namespace txc::testing {

class MariaDbServer {
 public:
  static constexpr char kDatabase[] = "txc_test";
  static constexpr char kUser[] = "txc";
  static constexpr char kPasswordUser[] = "txc_pw";
  static constexpr char kPassword[] = "pw-S3cret-7x";

  MariaDbServer();
  ~MariaDbServer();
  MariaDbServer(const MariaDbServer&) = delete;
  MariaDbServer& operator=(const MariaDbServer&) = delete;

  // Creates the data directory, starts the server and creates the database
  // and users. Fails with the server's log tail.
  Status Start();
  // "host=127.0.0.1 port=<port> database=txc_test user=<user>".
  std::string conninfo(const std::string& user = kUser) const;
  int port() const { return port_; }
  // The mariadbd process; -1 when none runs.
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_.path; }
  // SIGKILL of mariadbd, reaped.
  void Crash();
  // Starts mariadbd again on the same directory and port (after Crash or Stop).
  Status Restart();
  // Clean shutdown (SIGTERM to the pid, waiting for it to exit; SIGKILL
  // after 60 s), reaped. OK when none runs.
  Status Stop();
  // Runs `sql` (one or more statements) with the mariadb client as the
  // server's root over its socket; the output in batch form (tab-separated,
  // no column names). An error carries the client's output.
  Result<std::string> Sql(const std::string& sql);
  // The end of the server's error log.
  std::string LogTail(size_t bytes = 4000) const;

 private:
  Status Launch();

  TempDir dir_;
  std::string data_, socket_, log_;
  int port_ = 0;
  pid_t pid_ = -1;
  int sql_counter_ = 0;
};

}  // namespace txc::testing
