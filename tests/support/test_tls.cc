#include "tests/support/test_tls.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace txc::testing {

namespace {

// ScopedPlaintext objects alive. Constant-initialised, so a namespace-scope
// ScopedPlaintext in a test file may count itself during static init.
std::atomic<int> plaintext_scopes{0};

std::once_flag certs_once;
std::string* cert_dir = nullptr;  // leaked on purpose: read until exit

// Younger certificates are reused; make-certs.sh's are valid 30 days.
constexpr auto kCertsReusedFor = std::chrono::hours(20 * 24);

bool FreshCerts(const std::string& dir) {
  std::error_code ec;
  for (const char* f : {"ca.crt", "replica.key", "agent.key", "client.key", "admin.key"}) {
    if (!std::filesystem::exists(dir + "/" + f, ec)) return false;
  }
  auto made = std::filesystem::last_write_time(dir + "/ca.crt", ec);
  return !ec && std::filesystem::file_time_type::clock::now() - made < kCertsReusedFor;
}

// The certificates live in the build tree and are shared by every test
// process of the build: ctest runs each test case as a process of its own,
// and make-certs.sh costs about half a second of openssl, which per case
// made the integration tests a fifth slower. The first process to need them
// makes them, under a lock the others wait on.
void MakeCerts() {
  const std::string dir = std::string(TXC_BUILD_DIR) + "/test-certs";
  const std::string lock_path = dir + ".lock";
  int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0 || flock(lock, LOCK_EX) != 0) {
    std::perror(("TestCertDir: cannot lock " + lock_path).c_str());
    std::abort();
  }
  if (!FreshCerts(dir)) {
    const std::string fresh = dir + ".new";
    std::error_code ec;
    std::filesystem::remove_all(fresh, ec);
    const std::string cmd = std::string("bash ") + TXC_SOURCE_DIR + "/scripts/make-certs.sh " +
                            fresh + " >" + dir + ".log 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr,
                   "TestCertDir: `%s` failed (is openssl installed?); its output is in %s.log. "
                   "TXC_TEST_TLS=0 runs the tests plaintext.\n",
                   cmd.c_str(), dir.c_str());
      std::abort();
    }
    std::filesystem::remove_all(dir, ec);
    std::filesystem::rename(fresh, dir, ec);
    if (ec) {
      std::fprintf(stderr, "TestCertDir: cannot rename %s to %s: %s\n", fresh.c_str(), dir.c_str(),
                   ec.message().c_str());
      std::abort();
    }
  }
  flock(lock, LOCK_UN);
  close(lock);
  cert_dir = new std::string(dir);
}

bool HasFlag(const std::vector<std::string>& argv, const std::string& flag) {
  for (const std::string& a : argv) {
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

}  // namespace

bool TestTlsOn() {
  static const bool env_on = [] {
    const char* v = std::getenv("TXC_TEST_TLS");
    return v == nullptr || (std::string(v) != "0" && std::string(v) != "off");
  }();
  return env_on && plaintext_scopes.load() == 0;
}

ScopedPlaintext::ScopedPlaintext() { ++plaintext_scopes; }
ScopedPlaintext::~ScopedPlaintext() { --plaintext_scopes; }

const std::string& TestCertDir() {
  std::call_once(certs_once, MakeCerts);
  return *cert_dir;
}

TlsConfig TestTls(authz::Role role) {
  if (!TestTlsOn() || role == authz::Role::kNone) return TlsConfig{};
  const std::string d = TestCertDir() + "/";
  const std::string name = authz::RoleName(role);
  return TlsConfig{d + name + ".crt", d + name + ".key", d + "ca.crt"};
}

std::vector<std::string> TestTlsFlags(authz::Role role) {
  TlsConfig t = TestTls(role);
  if (!t.enabled()) return {};
  return {"--tls-cert", t.cert, "--tls-key", t.key, "--tls-ca", t.ca};
}

authz::Role RoleOfCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return authz::Role::kNone;
  const std::string program = std::filesystem::path(argv[0]).filename().string();
  if (program == "txcoord") return authz::Role::kReplica;
  if (program == "txagent") return authz::Role::kAgent;
  if (program == "txadmin") return authz::Role::kAdmin;
  if (program == "txbench") {
    // Only a txbench given a coordinator dials one.
    if (!HasFlag(argv, "--coordinator")) return authz::Role::kNone;
    const std::string command = argv.size() > 1 ? argv[1] : "";
    return command == "log" || command == "probe" ? authz::Role::kAdmin : authz::Role::kClient;
  }
  return authz::Role::kNone;
}

std::vector<std::string> WithTestTls(std::vector<std::string> argv) {
  const authz::Role role = RoleOfCommand(argv);
  if (role == authz::Role::kNone || !TestTlsOn()) return argv;
  for (const char* chosen : {"--tls-cert", "--tls-key", "--tls-ca", "--insecure"}) {
    if (HasFlag(argv, chosen)) return argv;
  }
  std::vector<std::string> flags = TestTlsFlags(role);
  const bool before_command =
      std::filesystem::path(argv[0]).filename().string() == "txadmin";
  argv.insert(before_command ? argv.begin() + 1 : argv.end(), flags.begin(), flags.end());
  return argv;
}

authz::Role DefaultRoleFor(const std::string& method) {
  for (authz::Role r : {authz::Role::kClient, authz::Role::kAgent, authz::Role::kReplica,
                        authz::Role::kAdmin}) {
    if (authz::CoordinatorTable().Allows(r, method) || authz::AgentTable().Allows(r, method)) {
      return r;
    }
  }
  return authz::Role::kClient;
}

}  // namespace txc::testing
