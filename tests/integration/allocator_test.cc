// The servers' allocator (common/server_memory.h): this test binary links
// what txcoord and txagent link (CMake's TXC_ALLOCATOR), so it checks the
// functions under that allocator, then starts both servers and reads from
// their logs which allocator they really run.
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/server_memory.h"
#include "tests/support/process.h"
#include "tests/support/scattered_heap.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;

const std::string kExpected = TXC_SERVER_ALLOCATOR == std::string("tcmalloc") ? "tcmalloc" : "glibc";

// A sanitizer build links no tcmalloc (CMake sets the servers' allocator to
// `system` there), so kExpected is "glibc" and this holds in every build.
TEST(AllocatorTest, ThisProcessRunsTheServersAllocator) {
  EXPECT_EQ(AllocatorName(), kExpected);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // The start-up call succeeds under either allocator (a no-op under
  // tcmalloc); a sanitizer's own mallopt may refuse glibc's settings.
  EXPECT_TRUE(KeepLargeBuffersOutOfTheHeap());
#endif
}

// 64 MiB of 1 KiB blocks, all but one in 256 freed, then ReturnFreedMemory:
// what the replica does after a table snapshot. Both allocators must give
// most of it back to the system.
TEST(AllocatorTest, ReturnFreedMemoryGivesBackFreedBlocks) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's allocator quarantines freed memory";
#endif
  int mib = testing::ScatteredFreeGivenBackMiB();
  ASSERT_GE(mib, 0);
  EXPECT_GE(mib, 32);  // of about 63 MiB freed
}

TEST(AllocatorTest, TheServersLogTheAllocatorTheyRun) {
  testing::TempDir dir;
  int cport = FreePort();
  int aport = FreePort();
  std::string addr = "127.0.0.1:" + std::to_string(cport);
  Process coord("txcoord",
                {TXC_BIN_DIR "/txcoord", "--listen", addr, "--data", dir.path + "/coord"},
                dir.path + "/coord.log");
  ASSERT_TRUE(coord.Start(cport)) << coord.LogTail();
  Process agent("txagent",
                {TXC_BIN_DIR "/txagent", "--listen", "127.0.0.1:" + std::to_string(aport), "--data",
                 dir.path + "/a", "--coordinator", addr, "--resource",
                 "bank_a=sqlite:" + dir.path + "/a.db"},
                dir.path + "/a.log");
  ASSERT_TRUE(agent.Start(aport)) << agent.LogTail();
  const std::string want = "allocator=" + kExpected;
  EXPECT_NE(coord.LogTail(100000).find(want), std::string::npos) << coord.LogTail();
  EXPECT_NE(agent.LogTail(100000).find(want), std::string::npos) << agent.LogTail();
}

}  // namespace
}  // namespace txc
