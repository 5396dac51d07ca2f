// The test harness's PostgreSQL (tests/support/pg_server.h): it runs
// unprivileged, restarts with its data, and leaves nothing behind.
#include "tests/support/pg_server.h"

#include <signal.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace txc::testing {
namespace {

using ::testing::HasSubstr;

// The System V segment id in a postmaster.pid (its 7th line), -1 if none.
int ShmIdOf(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  std::string line;
  for (int i = 0; i < 7 && std::getline(in, line); ++i) {
  }
  long key = 0, id = -1;
  std::istringstream(line) >> key >> id;
  return static_cast<int>(id);
}

bool Alive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

TEST(PgServerHarness, RunsAsNobodyAndKeepsDataAcrossStopAndCrash) {
  PgServer pg;
  Status s = pg.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(pg.running());
  EXPECT_THAT(pg.conninfo(), HasSubstr("host=127.0.0.1 port=" + std::to_string(pg.port())));
  struct stat st {};
  ASSERT_EQ(stat(("/proc/" + std::to_string(pg.pid())).c_str(), &st), 0);
  EXPECT_NE(st.st_uid, 0u) << "the postmaster must not run as root";
  auto r = pg.Sql("SELECT current_setting('max_prepared_transactions'), current_setting('fsync'), "
                  "current_setting('listen_addresses');");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "64|on|127.0.0.1\n");
  ASSERT_TRUE(pg.Sql("SET ROLE txc; CREATE TABLE t (x int); INSERT INTO t VALUES (1);").ok());

  ASSERT_TRUE(pg.Stop().ok());
  EXPECT_FALSE(pg.running());
  EXPECT_FALSE(pg.Sql("SELECT 1").ok());
  s = pg.Restart();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(pg.Sql("INSERT INTO t VALUES (2);").ok());
  pid_t old = pg.pid();
  ASSERT_TRUE(pg.Crash().ok());
  EXPECT_FALSE(Alive(old));
  s = pg.Restart();
  ASSERT_TRUE(s.ok()) << s.ToString();
  r = pg.Sql("SELECT x FROM t ORDER BY x;");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "1\n2\n");
  EXPECT_THAT(pg.LogTail(), HasSubstr("not properly shut down"));

  r = pg.Sql("SELEC 1;");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("syntax error"));
}

TEST(PgServerHarness, CrashedAndDestroyedLeavesNoProcessSegmentOrDirectory) {
  std::string dir;
  pid_t pid = -1;
  int shm = -1;
  {
    PgServer pg;
    ASSERT_TRUE(pg.Start().ok());
    dir = pg.dir();
    pid = pg.pid();
    shm = ShmIdOf(dir + "/data");
    ASSERT_GE(shm, 0);
    ASSERT_TRUE(pg.Crash().ok());
    EXPECT_FALSE(Alive(pid));
  }
  shmid_ds ds{};
  EXPECT_NE(shmctl(shm, IPC_STAT, &ds), 0) << "the postmaster's segment is left";
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(PgServerHarness, MaxPreparedTransactionsIsConfigurable) {
  PgServerOptions o;
  o.max_prepared_transactions = 0;
  PgServer pg(o);
  ASSERT_TRUE(pg.Start().ok());
  auto r = pg.Sql("SHOW max_prepared_transactions;");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "0\n");
}

}  // namespace
}  // namespace txc::testing
