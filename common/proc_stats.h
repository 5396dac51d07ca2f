// ProcStats: what a load generator reads of the server processes it loads,
// from /proc (Linux): the CPU time they used (user + system, every thread)
// and their resident memory, so a benchmark can print CPU per committed
// transaction, the steadier number on a shared machine (docs/benchmarks.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace txc {

struct ProcSample {
  pid_t pid = 0;
  uint64_t cpu_micros = 0;  // user + system since the process started
  uint64_t rss_kb = 0;      // VmRSS now
  uint64_t rss_peak_kb = 0;  // VmHWM: the peak since the process started
};

// Reads /proc/PID/stat and /proc/PID/status. NOT_FOUND when the process is
// gone; INTERNAL naming the file when it cannot be read as expected.
Result<ProcSample> ReadProcSample(pid_t pid);

// True when some socket listens on TCP `port` (any address, IPv4 or IPv6),
// from /proc/net/tcp and /proc/net/tcp6: how a launcher waits for a child
// it started to open its port. Unlike a probe connection, it leaves no
// failed TLS handshake in the child's log and counters.
bool TcpPortListening(int port);

// "12,345,7": the pids of a --server-pids value. INVALID_ARGUMENT naming the
// bad item otherwise.
Result<std::vector<pid_t>> ParsePidList(const std::string& s);

// CPU and memory of a set of processes over a run: Start() before the load,
// Finish() after it. A process that exits meanwhile is left out of the CPU
// sum (and named in `gone`).
class ProcStatsWindow {
 public:
  explicit ProcStatsWindow(std::vector<pid_t> pids) : pids_(std::move(pids)) {}
  Status Start();  // fails when a pid cannot be read now
  void Finish();

  uint64_t cpu_micros() const { return cpu_micros_; }  // summed over the processes still there
  const std::vector<ProcSample>& last() const { return last_; }
  const std::vector<pid_t>& gone() const { return gone_; }

 private:
  std::vector<pid_t> pids_;
  std::vector<ProcSample> first_;
  std::vector<ProcSample> last_;
  std::vector<pid_t> gone_;
  uint64_t cpu_micros_ = 0;
};

}  // namespace txc
