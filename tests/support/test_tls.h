// Test support: mutual TLS for the integration tests' real processes and
// in-process clients, on by default (docs/testing.md, "TLS in the suite").
//
// The certificates are made on first use by scripts/make-certs.sh into the
// build tree (BUILD/test-certs) and shared by every later test process of
// the build, until they are 20 days old. Process (process.h) gives txcoord, txagent, txadmin and
// txbench the --tls-* flags of their role; a test gives its clients
// TestTls(role), and CallOnce calls as a role the authorization table allows.
//
// TXC_TEST_TLS=0 in the environment runs everything plaintext (as the suite
// ran before TLS), to tell a TLS problem from another. A test whose peers
// speak plaintext (the Python participant, a recording proxy, raw bytes for
// the frame reader) holds a ScopedPlaintext and says why.
//
// Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/tls_config.h"
#include "protocol/authz.h"

namespace txc::testing {

// True when this test process runs TLS now: TXC_TEST_TLS is not "0" and no
// ScopedPlaintext is alive.
bool TestTlsOn();

// While one is alive, TestTlsOn() is false: processes started then get no
// TLS flags, and TestTls() gives empty (plaintext) configs. A test file whose
// peers speak plaintext declares one at namespace scope (for the whole
// binary); a fixture declares one as a member (for its tests).
class ScopedPlaintext {
 public:
  ScopedPlaintext();
  ~ScopedPlaintext();
  ScopedPlaintext(const ScopedPlaintext&) = delete;
  ScopedPlaintext& operator=(const ScopedPlaintext&) = delete;
};

// The directory holding ca.crt and ROLE.crt/ROLE.key for every role
// (BUILD/test-certs), made if missing or 20 days old (about half a second of
// openssl), under a lock other test processes wait on. Aborts the test
// process, naming the command, if scripts/make-certs.sh fails.
const std::string& TestCertDir();

// `role`'s certificate, key and the CA, for ClientOptions::tls or
// rpc::ChannelOptions::tls; an empty config (plaintext) when TLS is off.
TlsConfig TestTls(authz::Role role);

// --tls-cert F --tls-key F --tls-ca F for `role`; none when TLS is off.
std::vector<std::string> TestTlsFlags(authz::Role role);

// The role a test process of this program runs as, from argv's program name
// and arguments: txcoord replica, txagent agent, txadmin admin, txbench
// client (admin for `log` and `probe`, which write LogBench records);
// kNone for another program, and for a txbench that reaches no txcoord
// (--direct, setup-db).
authz::Role RoleOfCommand(const std::vector<std::string>& argv);

// argv with the TLS flags of RoleOfCommand(argv) added (after the program
// name for txadmin, whose global options come before its command; at the end
// otherwise). Unchanged when TLS is off, for another program, or when argv
// already chooses (--tls-* or --insecure).
std::vector<std::string> WithTestTls(std::vector<std::string> argv);

// The role CallOnce uses for `method` by default: the first of client,
// agent, replica, admin that the coordinator's or the agent's authorization
// table allows to call it (client for a method in neither).
authz::Role DefaultRoleFor(const std::string& method);

}  // namespace txc::testing
