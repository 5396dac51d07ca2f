#include "tests/support/process.h"

#include "common/proc_stats.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace txc::testing {

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

// The registry of reserved ports: one file per port; a process holds a port
// while it holds an exclusive flock on its file. The kernel drops the lock
// when the holder exits, however it exits, so no reservation outlives it.
constexpr char kPortDir[] = "/tmp/txc-test-ports";

std::mutex port_mu;
// Descriptors of the lock files this process holds; never closed, so each
// reservation lasts as long as the process.
std::vector<int>* held_ports = new std::vector<int>;

// True if nothing is bound to 127.0.0.1:port now (no SO_REUSEADDR, so a port
// with connections still in TIME_WAIT is passed over too).
bool Bindable(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a = Loopback(port);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// Ports the kernel never picks for an outgoing connection: below its
// ephemeral range (above it, if the range starts too low).
std::pair<int, int> TestPortRange() {
  int lo = 32768, hi = 60999;
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  in >> lo >> hi;
  if (lo > 21000) return {20000, lo - 1};
  if (hi < 64535) return {hi + 1, 65535};
  return {10000, 65535};
}


}  // namespace

int ReservePort(int lo, int hi) {
  std::lock_guard<std::mutex> guard(port_mu);
  if (mkdir(kPortDir, 0777) == 0) chmod(kPortDir, 0777);  // shared by every user's tests
  int n = hi - lo + 1;
  if (n <= 0) return 0;
  // Processes start at different places in the range, so they seldom contend.
  int start = static_cast<int>((static_cast<unsigned>(getpid()) * 2654435761u) % static_cast<unsigned>(n));
  for (int i = 0; i < n; ++i) {
    int port = lo + (start + i) % n;
    std::string path = std::string(kPortDir) + "/" + std::to_string(port);
    int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) continue;
    // Fails if any open of this file, in this or another process, holds it.
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || !Bindable(port)) {
      close(fd);  // releases the lock if we took it
      continue;
    }
    held_ports->push_back(fd);
    return port;
  }
  return 0;
}

int FreePort() {
  auto [lo, hi] = TestPortRange();
  int port = ReservePort(lo, hi);
  if (port == 0) {
    std::fprintf(stderr, "FreePort: every port in %d..%d is reserved or bound\n", lo, hi);
    std::abort();
  }
  return port;
}

bool WaitPort(int port, int ms) {
  for (int waited = 0; waited <= ms; waited += 20) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = Loopback(port);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/txc-test.XXXXXX";
  path = mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  if (std::getenv("TXC_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(path, ec);
}

Process::Process(std::string name, std::vector<std::string> argv, std::string log_path,
                 std::map<std::string, std::string> env)
    : name_(std::move(name)), argv_(std::move(argv)), log_(std::move(log_path)), env_(std::move(env)) {}

Process::~Process() { Kill(SIGKILL); }

bool Process::Start(int port, int wait_ms) {
  // Before the fork: the first call makes the certificates (std::system).
  std::vector<std::string> argv = WithTestTls(argv_);
  pid_ = fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    unsetenv("TXC_CRASH_AT");
    for (const auto& [k, v] : env_) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (port <= 0) return true;
  for (int waited = 0; waited <= wait_ms; waited += 20) {
    if (Exited()) return false;
    if (TcpPortListening(port)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void Process::Kill(int sig) {
  if (pid_ <= 0) return;
  kill(pid_, sig);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool Process::Exited(int* status) {
  if (pid_ <= 0) return true;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    if (status) *status = st;
    return true;
  }
  return false;
}

bool Process::WaitExit(int ms, int* status) {
  for (int waited = 0; waited <= ms; waited += 10) {
    if (Exited(status)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string Process::LogTail(size_t bytes) const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

void SendRaw(int port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    (void)n;
  }
  close(fd);
}

}  // namespace txc::testing
