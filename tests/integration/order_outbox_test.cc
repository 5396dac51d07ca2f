// The order + outbox example (examples/order_outbox) end to end: a txcoord,
// an agent hosting an SQLite shop and one hosting a queue resource, real
// processes on loopback; the outbox agent is killed with SIGKILL mid-run. The
// example checks its own invariant (every committed order's event consumed
// exactly once, none of an aborted one) and exits 0 only when it held.
#include <sys/wait.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace txc {
namespace {

using ::testing::HasSubstr;
using testing::Process;
using testing::TempDir;

TEST(OrderOutboxTest, EveryCommittedOrderHasExactlyOneEventConsumed) {
  TempDir dir;
  const std::string log = dir.path + "/order_outbox.log";
  Process demo("order_outbox",
               {std::string(TXC_BIN_DIR) + "/order_outbox", "--bin", TXC_BIN_DIR, "--orders", "60",
                "--dir", dir.path + "/run"},
               log);
  ASSERT_TRUE(demo.Start());
  int status = 0;
  ASSERT_TRUE(demo.WaitExit(240 * 1000, &status)) << "order_outbox did not finish\n"
                                                 << demo.LogTail();
  ASSERT_TRUE(WIFEXITED(status)) << demo.LogTail();
  EXPECT_EQ(WEXITSTATUS(status), 0) << demo.LogTail();
  std::string tail = demo.LogTail();
  EXPECT_THAT(tail, HasSubstr("invariant=held"));
  EXPECT_THAT(tail, HasSubstr("*** restarted txagent outbox"));
  EXPECT_THAT(tail, ::testing::Not(HasSubstr("MISMATCH")));
}

}  // namespace
}  // namespace txc
