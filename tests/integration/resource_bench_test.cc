// txbench-resource (tools/resource_bench_main.cc), run as a user would: the
// counts it prints are the branches its database holds afterwards, and bad
// arguments get a clear error.
#include <sys/wait.h>

#include <csignal>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "wal/sqlite.h"

namespace txc {
namespace {

using txc::testing::Process;
using txc::testing::TempDir;

struct Ran {
  int exit_code = -1;
  std::string output;
};

// Runs txbench-resource with `args`, bounded in time (killed after 60 s).
Ran RunBench(const TempDir& dir, std::vector<std::string> args) {
  const std::string log = dir.path + "/bench.out";
  args.insert(args.begin(), TXC_BIN_DIR "/txbench-resource");
  Process p("txbench-resource", args, log);
  Ran r;
  int status = 0;
  if (!p.Start() || !p.WaitExit(60000, &status)) {
    p.Kill(SIGKILL);
    r.output = "txbench-resource did not finish: " + p.LogTail();
    return r;
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = p.LogTail(100000);
  return r;
}

int64_t Count(wal::Db& db, const std::string& sql) {
  auto q = db.Prepare(sql);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  auto row = (*q)->Step();
  EXPECT_TRUE(row.ok() && *row);
  return (*q)->ColumnInt(0);
}

TEST(ResourceBenchTest, PrintsWhatItsDatabaseHolds) {
  TempDir dir;
  Ran r = RunBench(dir, {"--dir", dir.path + "/db", "--accounts", "50", "--concurrency", "8",
                         "--txns", "400"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m,
                                std::regex(R"((\d+) committed, (\d+) aborted in [0-9.]+ s: [0-9]+/s, )"
                                           R"([0-9.]+ us CPU per committed branch)")))
      << r.output;
  const int64_t committed = std::stoll(m[1]), aborted = std::stoll(m[2]);
  EXPECT_EQ(committed + aborted, 400);
  EXPECT_GT(committed, 0);

  auto db = wal::Db::Open(dir.path + "/db/bench.db");
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ(Count(**db, "SELECT COUNT(*) FROM txc_branches WHERE state = 4"), committed);
  EXPECT_EQ(Count(**db, "SELECT COUNT(*) FROM txc_branches WHERE state = 5"), aborted);
  EXPECT_EQ(Count(**db, "SELECT COUNT(*) FROM txc_branches WHERE state IN (1, 2, 3)"), 0);
  EXPECT_EQ(Count(**db, "SELECT COUNT(*) FROM txc_branches WHERE redo IS NOT NULL"), 0);
  // Each committed branch moved one account by 1; none moved more.
  EXPECT_LE(Count(**db, "SELECT SUM(ABS(balance - 1000000)) FROM accounts"), committed);
}

TEST(ResourceBenchTest, RefusesBadArguments) {
  TempDir dir;
  Ran r = RunBench(dir, {"--dir", dir.path, "--concurrency", "0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--concurrency wants a positive integer, not 0"), std::string::npos)
      << r.output;
  r = RunBench(dir, {"--txns", "10"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--dir DIR is required"), std::string::npos) << r.output;
  r = RunBench(dir, {"--dir", dir.path, "--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("bogus"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("usage: txbench-resource"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace txc
