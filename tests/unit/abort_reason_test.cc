// txbench's abort reasons (tools/abort_reason.h), from the messages the
// coordinator and the agents really send.
#include "tools/abort_reason.h"

#include <gtest/gtest.h>

namespace txc::bench {
namespace {

TEST(AbortReasonTest, NamesWhyFromTheCodeOrTheMessage) {
  // A one-shot branch's NO vote, as the coordinator reports it.
  EXPECT_EQ(AbortReason(Status::Aborted("bank_a@127.0.0.1:1 voted no: lock conflict on "
                                        "bank_a.accounts id=7 held by older transaction 3.9 "
                                        "(wait-die)")),
            "wait_die");
  // An interactive statement that died (the agent's own answer).
  EXPECT_EQ(AbortReason(Status::Aborted("lock conflict on bank_a.accounts id=7 held by older "
                                        "transaction 3.9 (wait-die); bank_a/3.12 is rolled "
                                        "back: roll the transaction back and retry it")),
            "wait_die");
  EXPECT_EQ(AbortReason(Status::LockTimeout("lock timeout after 2000 ms on bank_a.accounts id=7")),
            "lock_timeout");
  EXPECT_EQ(AbortReason(Status::Aborted("bank_b@x voted no: lock timeout after 2000 ms on ...")),
            "lock_timeout");
  EXPECT_EQ(AbortReason(Status(Status::kExpectationFailed, "statement 1 changed 0 rows, expected 1")),
            "insufficient_funds");
  EXPECT_EQ(AbortReason(Status::Aborted("bank_a@x voted no: statement 1 (UPDATE ...) changed 0 "
                                        "rows, expected 1")),
            "insufficient_funds");
  EXPECT_EQ(AbortReason(Status::Aborted("vote timeout: no vote from bank_b@127.0.0.1:2")),
            "vote_timeout");
  EXPECT_EQ(AbortReason(Status::Aborted("bank_b@x did not vote: UNAVAILABLE: connection refused")),
            "vote_timeout");
  EXPECT_EQ(AbortReason(Status::Aborted("bank_a@x voted no: the agent restarted")), "voted_no");
  EXPECT_EQ(AbortReason(Status::Conflict("row changed")), "conflict");
  EXPECT_EQ(AbortReason(Status::Aborted("aborted by the client")), "other");
}

}  // namespace
}  // namespace txc::bench
