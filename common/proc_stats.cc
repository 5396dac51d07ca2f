#include "common/proc_stats.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace txc {

namespace {

Result<std::string> Slurp(const std::string& path, pid_t pid) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("process " + std::to_string(pid) + " is gone (" + path + ")");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "VmHWM:     1234 kB" -> 1234.
uint64_t StatusField(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + ":");
  if (at == std::string::npos) return 0;
  return std::strtoull(text.c_str() + at + name.size() + 2, nullptr, 10);
}

}  // namespace

Result<ProcSample> ReadProcSample(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  auto stat = Slurp(dir + "/stat", pid);
  if (!stat.ok()) return stat.status();
  // The command name (field 2) is in parentheses and may hold spaces: the
  // fields after it start past the last ')'.
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return Status::Internal(dir + "/stat: no ')' in '" + *stat + "'");
  std::istringstream rest(stat->substr(close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // After ')': field 3 (state) ... field 14 utime, field 15 stime.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  if (!rest) return Status::Internal(dir + "/stat: fewer than 15 fields");
  long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) ticks = 100;
  ProcSample s;
  s.pid = pid;
  s.cpu_micros = (utime + stime) * 1000000ULL / static_cast<uint64_t>(ticks);
  auto status = Slurp(dir + "/status", pid);
  if (!status.ok()) return status.status();
  std::string text = "\n" + *status;
  s.rss_kb = StatusField(text, "VmRSS");
  s.rss_peak_kb = StatusField(text, "VmHWM");
  return s;
}

bool TcpPortListening(int port) {
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // "  0: 0100007F:4E20 00000000:0000 0A ...": local address:port, remote, state.
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const size_t colon = local.rfind(':');
      if (colon == std::string::npos || state != "0A") continue;  // 0A: LISTEN
      if (std::strtol(local.c_str() + colon + 1, nullptr, 16) == port) return true;
    }
  }
  return false;
}

Result<std::vector<pid_t>> ParsePidList(const std::string& s) {
  std::vector<pid_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || end == nullptr || *end != '\0' || v <= 0 || v > 4194304) {
      return Status::InvalidArgument("'" + item + "' in '" + s + "' is not a process id");
    }
    out.push_back(static_cast<pid_t>(v));
  }
  if (out.empty()) return Status::InvalidArgument("no process id in '" + s + "'");
  return out;
}

Status ProcStatsWindow::Start() {
  first_.clear();
  for (pid_t p : pids_) {
    auto s = ReadProcSample(p);
    if (!s.ok()) return s.status();
    first_.push_back(*s);
  }
  return Status::Ok();
}

void ProcStatsWindow::Finish() {
  last_.clear();
  gone_.clear();
  cpu_micros_ = 0;
  for (const ProcSample& f : first_) {
    auto s = ReadProcSample(f.pid);
    if (!s.ok()) {
      gone_.push_back(f.pid);
      continue;
    }
    cpu_micros_ += s->cpu_micros - std::min(s->cpu_micros, f.cpu_micros);
    last_.push_back(*s);
  }
}

}  // namespace txc
