// Test support: real txcoord/txagent processes on loopback, started and
// stopped by pid. Every process a test starts is killed when its Process
// object is destroyed. With TLS on (test_tls.h, the default) a txcoord,
// txagent, txadmin or txbench is started with its role's --tls-* flags.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "protocol/rpc.h"
#include "tests/support/test_tls.h"

namespace txc::testing {

// A TCP port on 127.0.0.1 for a test's daemon, race-free among test
// processes: besides being free to bind when picked, it is reserved in a
// registry every test process on the machine shares (an flock'ed file per
// port under /tmp/txc-test-ports, held until this process exits), so no other
// test process hands it out, even while a daemon restarts on it. It comes
// from below the kernel's ephemeral range, so no outgoing connection takes it
// either. A Paxos group needs its peers' ports before any replica starts,
// which is why ports are reserved here rather than bound by each daemon.
// Aborts the test process if no port is left.
int FreePort();
// The first port in [lo, hi] that no test process has reserved and nothing
// is bound to, now reserved for this process's lifetime; 0 if there is none.
int ReservePort(int lo, int hi);
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
  // or if it exited). The command line gets the TLS flags of its role
  // (WithTestTls) unless TLS is off at this moment or it chose already.
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

// Calls `method` on 127.0.0.1:port once, on a connection of its own, and
// waits for the answer: for requests no client library would send, and for
// the agent's ListBranches. `tls` empty: plaintext.
template <class Req, class Resp>
Result<Resp> CallOnceWith(const TlsConfig& tls, int port, const std::string& method,
                          const Req& req, Micros timeout = 5 * kSeconds) {
  boost::asio::io_context io;
  rpc::ChannelOptions options;
  options.tls = tls;
  auto channel =
      std::make_shared<rpc::RpcChannel>(io, "127.0.0.1:" + std::to_string(port), options);
  Status status = Status::Timeout("no answer from port " + std::to_string(port));
  Resp resp;
  channel->template Call<Req, Resp>(method, req, timeout, [&](Status s, Resp r) {
    status = std::move(s);
    resp = std::move(r);
    channel->Close();
  });
  io.run_for(std::chrono::microseconds(timeout + kSeconds));
  channel->Close();
  if (!status.ok()) return status;
  return resp;
}

// CallOnceWith as `role` (TestTls: plaintext when TLS is off).
template <class Req, class Resp>
Result<Resp> CallOnceAs(authz::Role role, int port, const std::string& method, const Req& req,
                        Micros timeout = 5 * kSeconds) {
  return CallOnceWith<Req, Resp>(TestTls(role), port, method, req, timeout);
}

// CallOnceAs a role the authorization table lets call `method`
// (DefaultRoleFor: ListBranches as admin, Prepare and Decide as the
// coordinator's replica, Execute as a client, ...).
template <class Req, class Resp>
Result<Resp> CallOnce(int port, const std::string& method, const Req& req,
                      Micros timeout = 5 * kSeconds) {
  return CallOnceAs<Req, Resp>(DefaultRoleFor(method), port, method, req, timeout);
}

}  // namespace txc::testing
