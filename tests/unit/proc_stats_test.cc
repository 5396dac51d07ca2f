// ProcStats: CPU and memory of server processes from /proc, as txbench
// --server-pids reads them.
#include "common/proc_stats.h"

#include <signal.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

namespace txc {
namespace {

// Burns about `ms` of CPU on this thread.
void Spin(int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  volatile uint64_t x = 0;
  while (std::chrono::steady_clock::now() < until) x = x + 1;
}

TEST(ProcStatsTest, CpuOfThisProcessGrowsWithWorkAndRssIsReported) {
  ProcStatsWindow w({getpid()});
  ASSERT_TRUE(w.Start().ok());
  Spin(300);
  w.Finish();
  EXPECT_TRUE(w.gone().empty());
  // At least 100 ms of the 300 ms spun (clock ticks are 10 ms; the machine may be busy).
  EXPECT_GE(w.cpu_micros(), 100000u);
  ASSERT_EQ(w.last().size(), 1u);
  EXPECT_GT(w.last()[0].rss_kb, 0u);
  EXPECT_GE(w.last()[0].rss_peak_kb, w.last()[0].rss_kb);
}

TEST(ProcStatsTest, AProcessThatExitsIsNamedGoneAndLeftOutOfTheSum) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  ProcStatsWindow w({child, getpid()});
  ASSERT_TRUE(w.Start().ok());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  w.Finish();
  ASSERT_EQ(w.gone().size(), 1u);
  EXPECT_EQ(w.gone()[0], child);
  EXPECT_EQ(w.last().size(), 1u);
  EXPECT_EQ(ReadProcSample(child).status().code(), Status::kNotFound);
}

TEST(ProcStatsTest, PidListsAreParsedAndBadOnesNamed) {
  auto ok = ParsePidList("12,345,7");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (std::vector<pid_t>{12, 345, 7}));
  for (const char* bad : {"", "12,,3", "abc", "-4", "0", "12x", "99999999"}) {
    auto r = ParsePidList(bad);
    EXPECT_EQ(r.status().code(), Status::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParsePidList("12,abc").status().message().find("'abc'"), std::string::npos);
}

// A listening socket is seen (IPv4 and IPv6), a bound one that does not
// listen is not, and neither is a closed one.
TEST(ProcStatsTest, TcpPortListeningSeesOnlyListeningSockets) {
  for (int family : {AF_INET, AF_INET6}) {
    int fd = socket(family, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof(*a);
    }
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&ss), len), 0) << "family " << family;
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), 0);
    int port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    EXPECT_FALSE(TcpPortListening(port)) << "bound, not listening, family " << family;
    ASSERT_EQ(listen(fd, 1), 0);
    EXPECT_TRUE(TcpPortListening(port)) << "family " << family;
    close(fd);
    EXPECT_FALSE(TcpPortListening(port)) << "closed, family " << family;
  }
}

}  // namespace
}  // namespace txc
