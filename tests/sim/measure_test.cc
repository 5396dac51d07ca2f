// txsim --measure (sim/measure.cc): the costs it reports follow from the
// protocols, and the leader-crash runs end the way DESIGN.md says.
#include <gtest/gtest.h>

#include "common/time.h"
#include "sim/simulation.h"

namespace txc::sim {
namespace {

MeasureResult RunMeasure(const std::string& protocol, int participants, int replicas, bool blocking = false) {
  MeasureOptions o;
  o.protocol = protocol;
  o.participants = participants;
  o.replicas = replicas;
  o.txns = 4;
  o.blocking = blocking;
  MeasureResult r = Measure(o);
  EXPECT_EQ(r.violations, 0) << r.first_violation;
  EXPECT_EQ(r.costs.size(), 2u);
  for (const MeasureCost& c : r.costs) EXPECT_EQ(c.committed, c.txns) << c.mode;
  return r;
}

const MeasureCost& Mode(const MeasureResult& r, const std::string& mode) {
  for (const MeasureCost& c : r.costs) {
    if (c.mode == mode) return c;
  }
  ADD_FAILURE() << "no mode " << mode;
  return r.costs.front();
}

TEST(SimMeasureTest, TwoPhaseOneShotCostsWhatTheProtocolSays) {
  for (int n : {2, 3}) {
    SCOPED_TRACE("participants " + std::to_string(n));
    MeasureResult r = RunMeasure("2pc", n, 1);
    const MeasureCost& c = Mode(r, "one-shot");
    // Per participant: PREPARE (with its work), the vote, COMMIT, the ack.
    EXPECT_DOUBLE_EQ(c.coord_agents, 4.0 * n);
    // Begin and Submit, a request and a reply each; no replica, no Execute.
    EXPECT_DOUBLE_EQ(c.client_coord, 4);
    EXPECT_DOUBLE_EQ(c.client_agents, 0);
    EXPECT_DOUBLE_EQ(c.replicas, 0);
    // Submit -> PREPARE -> vote -> COMMITTED (and COMMIT) leave together.
    EXPECT_DOUBLE_EQ(c.client_delays, 4);
    EXPECT_DOUBLE_EQ(c.all_delays, 4);
    // Each agent forces PREPARED and COMMITTED.
    EXPECT_DOUBLE_EQ(c.agent_syncs, 2.0 * n);
    // Interactive: one Execute call (request + reply) per participant more.
    const MeasureCost& i = Mode(r, "interactive");
    EXPECT_DOUBLE_EQ(i.client_agents, 2.0 * n);
    EXPECT_DOUBLE_EQ(i.coord_agents, 4.0 * n);
  }
}

TEST(SimMeasureTest, ThreePhaseCostsMoreThanTwoPhase) {
  for (int replicas : {1, 3}) {
    SCOPED_TRACE("replicas " + std::to_string(replicas));
    MeasureResult two = RunMeasure("2pc", 3, replicas);
    MeasureResult three = RunMeasure("3pc", 3, replicas);
    for (const std::string mode : {"one-shot", "interactive"}) {
      SCOPED_TRACE(mode);
      const MeasureCost& a = Mode(two, mode);
      const MeasureCost& b = Mode(three, mode);
      // PRE_COMMIT and its ack per participant more.
      EXPECT_DOUBLE_EQ(b.coord_agents, a.coord_agents + 2 * 3);
      EXPECT_GT(b.total, a.total);
      // PRECOMMITTED forced at every agent, PRECOMMIT chosen by the group.
      EXPECT_DOUBLE_EQ(b.agent_syncs, a.agent_syncs + 3);
      EXPECT_GT(b.coord_syncs, a.coord_syncs);
      // A round trip to the agents (and a choice by the group) more.
      EXPECT_GE(b.client_delays, a.client_delays + 2);
    }
  }
}

TEST(SimMeasureTest, GroupAddsReplicaTrafficNotAgentTraffic) {
  MeasureResult one = RunMeasure("2pc", 2, 1);
  MeasureResult three = RunMeasure("2pc", 2, 3);
  const MeasureCost& a = Mode(one, "one-shot");
  const MeasureCost& b = Mode(three, "one-shot");
  EXPECT_DOUBLE_EQ(b.coord_agents, a.coord_agents);
  EXPECT_DOUBLE_EQ(b.client_coord, a.client_coord);
  EXPECT_GT(b.replicas, 0);
  EXPECT_GT(b.coord_syncs, a.coord_syncs);
  // DECIDE is chosen by a round trip to the followers before anyone hears it.
  EXPECT_GE(b.client_delays, a.client_delays + 2);
}

TEST(SimMeasureTest, LeaderCrashesBlockUntilARestartOrATakeover) {
  for (int replicas : {1, 3}) {
    SCOPED_TRACE("replicas " + std::to_string(replicas));
    MeasureResult r = RunMeasure("2pc", 2, replicas, true);
    ASSERT_EQ(r.blocking.size(), 3u);
    for (const MeasureBlocking& b : r.blocking) {
      SCOPED_TRACE(b.point);
      EXPECT_TRUE(b.crashed);
      EXPECT_TRUE(b.settled);
      // Presumed abort while votes are outstanding; commit once DECIDE is
      // durable; either way every participant ends the same.
      if (b.point == "coord.votes_outstanding") {
        EXPECT_EQ(b.outcome, "all aborted");
      }
      if (b.point == "coord.after_decide") {
        EXPECT_EQ(b.outcome, "all committed");
      }
      EXPECT_TRUE(b.outcome == "all aborted" || b.outcome == "all committed") << b.outcome;
      ASSERT_GE(b.longest_after_crash_micros, 0);
      if (replicas == 1) {
        // Nobody can answer until the coordinator is back, 5 s later.
        EXPECT_GE(b.longest_after_crash_micros, 5 * kSeconds);
      } else {
        // A follower takes over after an election timeout (150-300 ms here).
        EXPECT_LT(b.longest_after_crash_micros, 5 * kSeconds);
      }
    }
  }
}

}  // namespace
}  // namespace txc::sim
