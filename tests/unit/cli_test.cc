// The command-line helpers shared by the binaries.
#include "common/cli.h"

#include <gtest/gtest.h>

namespace txc::cli {
namespace {

TEST(ParseDurationTest, AcceptsSecondsMillisecondsMinutesAndFractions) {
  EXPECT_EQ(ParseDuration("10s"), 10 * kSeconds);
  EXPECT_EQ(ParseDuration("500ms"), 500 * kMillis);
  EXPECT_EQ(ParseDuration("2m"), 120 * kSeconds);
  EXPECT_EQ(ParseDuration("1h"), 3600 * kSeconds);
  EXPECT_EQ(ParseDuration("1.5s"), 1500 * kMillis);
  EXPECT_EQ(ParseDuration("30"), 30 * kSeconds);  // plain seconds
  EXPECT_EQ(ParseDuration("0s"), 0);
}

TEST(ParseDurationTest, RefusesAnythingElse) {
  for (const char* bad : {"", "s", "ms", ".", "-1s", "10 s", "10d", "1.2.3s", "abc", "1e3s",
                          "99999999999999999999s"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace txc::cli
