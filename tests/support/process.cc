#include "tests/support/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace txc::testing {

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

}  // namespace

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = Loopback(0);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
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
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (port <= 0) return true;
  for (int waited = 0; waited <= wait_ms; waited += 20) {
    if (Exited()) return false;
    if (WaitPort(port, 0)) return true;
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
