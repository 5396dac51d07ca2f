// txbench setup-db and txbench transfer --direct against throwaway PostgreSQL
// and MariaDB servers (tests/support): the table is made and filled over the
// drivers, the direct 2PC transfers commit, keep the money and leave no
// prepared branch behind; the option checks refuse what --direct excludes.
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/support/mariadb_server.h"
#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace txc {
namespace {

using testing::MariaDbServer;
using testing::PgServer;
using testing::Process;
using testing::TempDir;

struct Outcome {
  int exit_code = -1;
  std::string output;
};

// Runs txbench with `args` to its end (60 s at most), stdout and stderr together.
Outcome Txbench(const TempDir& dir, const std::string& name, std::vector<std::string> args,
            std::map<std::string, std::string> env = {}) {
  std::string log = dir.path + "/" + name + ".out";
  args.insert(args.begin(), TXC_BIN_DIR "/txbench");
  Process p("txbench", args, log, std::move(env));
  Outcome r;
  int status = 0;
  if (!p.Start() || !p.WaitExit(60000, &status)) {
    p.Kill(SIGKILL);
    r.output = "txbench did not finish: " + p.LogTail();
    return r;
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

// The JSON line of a --json run ("" when none).
std::string JsonLine(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') return line;
  }
  return "";
}

// The number after "\"key\":" in a flat JSON line; -1 when absent.
double Field(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::stod(json.substr(at + key.size() + 3));
}

class TxbenchDirectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = pg_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = maria_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    dbs_ = {"--db", "bank-my=mariadb:" + maria_.conninfo(MariaDbServer::kPasswordUser), "--db",
            "bank_pg=postgres:" + pg_.conninfo()};
    // The MariaDB user needs its password: TXC_PASSWORD_BANK_MY, as txagent reads it.
    env_ = {{"TXC_PASSWORD_BANK_MY", MariaDbServer::kPassword}};
  }
  std::vector<std::string> With(std::vector<std::string> args) const {
    args.insert(args.end(), dbs_.begin(), dbs_.end());
    return args;
  }

  TempDir dir_;
  PgServer pg_;
  MariaDbServer maria_;
  std::vector<std::string> dbs_;
  std::map<std::string, std::string> env_;
};

TEST_F(TxbenchDirectTest, SetupThenDirectTransfersKeepTheMoney) {
  Outcome setup = Txbench(dir_, "setup", With({"setup-db", "--accounts", "40", "--balance", "500"}), env_);
  ASSERT_EQ(setup.exit_code, 0) << setup.output;
  auto pg_rows = pg_.Sql("SELECT COUNT(*), SUM(balance) FROM accounts");
  ASSERT_TRUE(pg_rows.ok()) << pg_rows.status().ToString();
  EXPECT_EQ(pg_rows->substr(0, pg_rows->find('\n')), "40|20000");
  auto my_rows = maria_.Sql("SELECT COUNT(*), SUM(balance) FROM txc_test.accounts");
  ASSERT_TRUE(my_rows.ok()) << my_rows.status().ToString();
  EXPECT_EQ(my_rows->substr(0, my_rows->find('\n')), "40\t20000");

  // Again over changed balances: set back to exactly 1..N with the balance.
  ASSERT_TRUE(pg_.Sql("UPDATE accounts SET balance = 7 WHERE id = 3").ok());
  setup = Txbench(dir_, "setup2", With({"setup-db", "--accounts", "30", "--balance", "500"}), env_);
  ASSERT_EQ(setup.exit_code, 0) << setup.output;
  pg_rows = pg_.Sql("SELECT COUNT(*), SUM(balance) FROM accounts");
  ASSERT_TRUE(pg_rows.ok());
  EXPECT_EQ(pg_rows->substr(0, pg_rows->find('\n')), "30|15000");

  // Few accounts and 4 workers: some transfers meet a held row (lock waits).
  Outcome run = Txbench(dir_, "direct",
                    With({"transfer", "--direct", "--accounts", "30", "--concurrency", "4", "--duration",
                          "2s", "--json"}),
                    env_);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  std::string json = JsonLine(run.output);
  ASSERT_FALSE(json.empty()) << run.output;
  EXPECT_NE(json.find("\"mode\":\"direct\""), std::string::npos) << json;
  EXPECT_GT(Field(json, "committed"), 10) << json;
  EXPECT_EQ(Field(json, "errors"), 0) << json << "\n" << run.output;
  EXPECT_EQ(Field(json, "money_before"), 30000) << json;
  EXPECT_EQ(Field(json, "money_after"), 30000) << json;
  EXPECT_EQ(Field(json, "leftover_prepared"), 0) << json;
  EXPECT_NE(json.find("\"money_ok\":true"), std::string::npos) << json;
  EXPECT_GT(Field(json, "p50_ms"), 0) << json;

  // The databases agree: the money moved (some balance differs from 500),
  // the sum did not, and nothing stays prepared.
  pg_rows = pg_.Sql("SELECT COUNT(*) FROM accounts WHERE balance <> 500");
  my_rows = maria_.Sql("SELECT COUNT(*) FROM txc_test.accounts WHERE balance <> 500");
  ASSERT_TRUE(pg_rows.ok() && my_rows.ok());
  EXPECT_GT(std::stoi(*pg_rows) + std::stoi(*my_rows), 0);
  auto pg_sum = pg_.Sql("SELECT SUM(balance) FROM accounts");
  auto my_sum = maria_.Sql("SELECT SUM(balance) FROM txc_test.accounts");
  ASSERT_TRUE(pg_sum.ok() && my_sum.ok());
  EXPECT_EQ(std::stoll(*pg_sum) + std::stoll(*my_sum), 30000);
  auto pg_prepared = pg_.Sql("SELECT COUNT(*) FROM pg_prepared_xacts");
  ASSERT_TRUE(pg_prepared.ok());
  EXPECT_EQ(std::stoi(*pg_prepared), 0);
  auto my_prepared = maria_.Sql("XA RECOVER");
  ASSERT_TRUE(my_prepared.ok());
  EXPECT_EQ(*my_prepared, "");
}

TEST_F(TxbenchDirectTest, DirectRefusesATableThatDoesNotHoldTheAccounts) {
  Outcome setup = Txbench(dir_, "setup", With({"setup-db", "--accounts", "20"}), env_);
  ASSERT_EQ(setup.exit_code, 0) << setup.output;
  Outcome run = Txbench(dir_, "direct",
                    With({"transfer", "--direct", "--accounts", "25", "--duration", "1s", "--json"}), env_);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("holds 20 accounts, not --accounts 25"), std::string::npos) << run.output;
}

TEST_F(TxbenchDirectTest, WrongPasswordIsReportedWithoutIt) {
  Outcome run = Txbench(dir_, "setup", With({"setup-db", "--accounts", "5"}),
                    {{"TXC_PASSWORD_BANK_MY", "not-the-password"}});
  EXPECT_NE(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("bank-my"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("not-the-password"), std::string::npos) << run.output;
}

// No servers needed: the option checks.
TEST(TxbenchDirectOptions, DirectExcludesTheCoordinatorAndNeedsTwoDatabases) {
  TempDir dir;
  Outcome both = Txbench(dir, "both",
                     {"transfer", "--direct", "--coordinator", "127.0.0.1:1", "--db",
                      "a=postgres:host=127.0.0.1", "--db", "b=mariadb:host=127.0.0.1"});
  EXPECT_EQ(both.exit_code, 2) << both.output;
  EXPECT_NE(both.output.find("--direct excludes --coordinator"), std::string::npos) << both.output;
  Outcome one = Txbench(dir, "one", {"transfer", "--direct", "--db", "a=postgres:host=127.0.0.1"});
  EXPECT_EQ(one.exit_code, 2) << one.output;
  EXPECT_NE(one.output.find("at least two --db"), std::string::npos) << one.output;
  Outcome kind = Txbench(dir, "kind", {"setup-db", "--db", "a=sqlite:/tmp/x.db"});
  EXPECT_EQ(kind.exit_code, 2) << kind.output;
  Outcome db_without_direct = Txbench(dir, "nodirect",
                                  {"transfer", "--coordinator", "127.0.0.1:1", "--agent", "a=127.0.0.1:2",
                                   "--db", "a=postgres:host=127.0.0.1"});
  EXPECT_EQ(db_without_direct.exit_code, 2) << db_without_direct.output;
}

// An unreachable group: txbench says what it waits for, then gives up at
// --connect-timeout with UNAVAILABLE naming the address and what went wrong
// there (before, it retried silently for minutes). Txbench() kills a run
// still going at 60 s.
TEST(TxbenchSetupTimeout, UnreachableGroupFailsAtTheConnectTimeoutNamingTheAddress) {
  TempDir dir;
  const std::string nobody = "127.0.0.1:" + std::to_string(testing::FreePort());  // nothing listens
  Outcome r = Txbench(dir, "unreachable",
                      {"transfer", "--coordinator", nobody, "--agent", "a=" + nobody, "--accounts", "5",
                       "--concurrency", "1", "--duration", "1s", "--connect-timeout", "2s"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("waiting for the coordinator group " + nobody + " to answer (up to --connect-timeout 2s)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("UNAVAILABLE: no coordinator replica answered within 2 s: tried " + nobody +
                          " (UNAVAILABLE"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("setting up accounts"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace txc
