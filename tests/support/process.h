// Test support: real txcoord/txagent processes on loopback, started and
// stopped by pid. Every process a test starts is killed when its Process
// object is destroyed.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace txc::testing {

// A free TCP port on 127.0.0.1 (bound, then released).
int FreePort();
// True once something accepts on 127.0.0.1:port, polling up to `ms`.
bool WaitPort(int port, int ms);
// A fresh temporary directory under /tmp; removed by the caller's TempDir.
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
};

class Process {
 public:
  Process(std::string name, std::vector<std::string> argv, std::string log_path,
          std::map<std::string, std::string> env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts it; if `port` > 0, waits until it listens there (false on timeout
  // or if it exited).
  bool Start(int port = 0, int wait_ms = 10000);
  // Sends `sig` and reaps it.
  void Kill(int sig);
  // True if it exited by itself; its status goes to *status.
  bool Exited(int* status = nullptr);
  // Waits up to `ms` for it to exit by itself.
  bool WaitExit(int ms, int* status = nullptr);
  pid_t pid() const { return pid_; }
  void set_env(std::map<std::string, std::string> env) { env_ = std::move(env); }
  std::string LogTail(size_t bytes = 4000) const;

 private:
  std::string name_;
  std::vector<std::string> argv_;
  std::string log_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
};

// Writes `bytes` to 127.0.0.1:port and closes (for malformed-input tests).
void SendRaw(int port, const std::string& bytes);

}  // namespace txc::testing
