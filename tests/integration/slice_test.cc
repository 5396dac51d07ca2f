// End-to-end 2PC over real processes on loopback: a txcoord and two txagents,
// each agent holding one SQLite database.
#include <signal.h>

#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "tests/support/process.h"
#include "wal/sqlite.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

class SliceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cport_ = FreePort();
    aport_ = FreePort();
    bport_ = FreePort();
    coord_ = MakeCoordinator({});
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    agent_a_ = MakeAgent("bank_a", aport_, {});
    agent_b_ = MakeAgent("bank_b", bport_, {});
    ASSERT_TRUE(agent_a_->Start(aport_)) << agent_a_->LogTail();
    ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
    client_ = Connect();
    for (const char* bank : {"bank_a", "bank_b"}) {
      auto tx = client_->Begin();
      ASSERT_TRUE(tx.ok()) << tx.status().ToString();
      auto r = tx->Execute(bank, {Sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"),
                                  Sql("INSERT INTO accounts VALUES (1, 1000), (2, 1000), (3, 1000)")});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_TRUE(tx->Commit().ok());
    }
  }

  std::unique_ptr<Process> MakeCoordinator(std::map<std::string, std::string> env) {
    return std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord", "--vote-timeout-ms", "2000"},
        dir_.path + "/coord.log", env);
  }

  std::unique_ptr<Process> MakeAgent(const std::string& bank, int port,
                                     std::map<std::string, std::string> env) {
    return std::make_unique<Process>(
        "txagent " + bank,
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                 dir_.path + "/" + bank, "--coordinator", Addr(cport_), "--resource",
                                 bank + "=sqlite:" + DbPath(bank), "--lock-timeout-ms", "300"},
        dir_.path + "/" + bank + ".log", env);
  }

  std::unique_ptr<Client> Connect(Micros commit_timeout = 10 * kSeconds) {
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(bport_)}};
    o.call_timeout = 5 * kSeconds;
    o.commit_timeout = commit_timeout;
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c.value());
  }

  static std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }
  std::string DbPath(const std::string& bank) const { return dir_.path + "/" + bank + ".db"; }

  // Reads a balance straight from the database file, as an auditor would;
  // -1 when the row does not exist.
  int64_t Balance(const std::string& bank, int id) {
    auto db = wal::Db::Open(DbPath(bank));
    EXPECT_TRUE(db.ok());
    if (!db.ok()) return -2;
    auto st = (*db)->Prepare("SELECT balance FROM accounts WHERE id = ?");
    EXPECT_TRUE(st.ok());
    if (!st.ok()) return -2;
    EXPECT_TRUE((*st)->BindInt(1, id).ok());
    auto row = (*st)->Step();
    EXPECT_TRUE(row.ok());
    if (!row.ok() || !*row) return -1;
    return (*st)->ColumnInt(0);
  }

  // Polls until bank's account `id` holds `want`, up to `ms`.
  bool EventuallyBalance(const std::string& bank, int id, int64_t want, int ms) {
    for (int waited = 0; waited <= ms; waited += 50) {
      if (Balance(bank, id) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  std::map<std::string, std::vector<proto::Statement>> Transfer(int64_t amount, int from, int to) {
    return {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                                  {Int(amount), Int(from), Int(amount)}, 1)}},
            {"bank_b", {SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                                  {Int(amount), Int(to)}, 1)}}};
  }

  TempDir dir_;
  int cport_ = 0, aport_ = 0, bport_ = 0;
  std::unique_ptr<Process> coord_, agent_a_, agent_b_;
  std::unique_ptr<Client> client_;
};

TEST_F(SliceTest, InteractiveTransferCommitsOnBoth) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  auto d = tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 100 WHERE id = 1"));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->rows_changed, 1);
  ASSERT_TRUE(tx->Execute("bank_b", Sql("UPDATE accounts SET balance = balance + 100 WHERE id = 2")).ok());
  auto read = tx->Execute("bank_a", Sql("SELECT balance FROM accounts WHERE id = 1"));
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->rows.size(), 1u);
  EXPECT_EQ(read->rows[0].values[0].i, 900);  // a transaction sees its own writes
  Status s = tx->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance("bank_a", 1), 900);
  EXPECT_TRUE(EventuallyBalance("bank_b", 2, 1100, 5000));
}

TEST_F(SliceTest, OneShotTransferCommitsOnBoth) {
  auto r = client_->Submit(Transfer(250, 3, 1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto outcome = client_->Outcome(*r);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(EventuallyBalance("bank_a", 3, 750, 5000));
  EXPECT_TRUE(EventuallyBalance("bank_b", 1, 1250, 5000));
}

TEST_F(SliceTest, NoVoteAbortsBoth) {
  // bank_a's account 1 cannot pay 5000: its branch votes NO, bank_b's is rolled back.
  auto r = client_->Submit(Transfer(5000, 1, 2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kAborted) << r.status().ToString();
  EXPECT_NE(r.status().message().find("bank_a"), std::string::npos) << r.status().message();
  // Nothing moved. ABORT reaches bank_b without being waited for (presumed
  // abort), so its rollback may still be running: once it has, the lock is
  // gone and another transfer to account 2 commits.
  EXPECT_EQ(Balance("bank_a", 1), 1000);
  EXPECT_TRUE(EventuallyBalance("bank_b", 2, 1000, 5000));
  Status last;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto again = client_->Submit(Transfer(10, 1, 2));
    last = again.ok() ? Status::Ok() : again.status();
    if (last.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(last.ok()) << last.ToString();
  EXPECT_TRUE(EventuallyBalance("bank_b", 2, 1010, 5000));
}

TEST_F(SliceTest, RollbackRestoresBothAndLateExecuteIsRefused) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = 0 WHERE id = 1")).ok());
  ASSERT_TRUE(tx->Execute("bank_b", Sql("DELETE FROM accounts WHERE id = 3")).ok());
  ASSERT_TRUE(tx->Rollback().ok());
  EXPECT_TRUE(EventuallyBalance("bank_a", 1, 1000, 5000));
  EXPECT_TRUE(EventuallyBalance("bank_b", 3, 1000, 5000));
}

TEST_F(SliceTest, LockConflictTimesOutNamingRowAndHolder) {
  auto holder = client_->Begin();
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE(holder->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 1 WHERE id = 2")).ok());
  auto waiter = client_->Begin();
  ASSERT_TRUE(waiter.ok());
  auto r = waiter->Execute("bank_a", Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kLockTimeout) << r.status().ToString();
  EXPECT_NE(r.status().message().find("accounts"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(ToString(holder->id())), std::string::npos) << r.status().message();
  ASSERT_TRUE(holder->Commit().ok());
  // Once the holder committed, the row is free again.
  auto after = waiter->Execute("bank_a", Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 2"));
  EXPECT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(waiter->Commit().ok());
  EXPECT_EQ(Balance("bank_a", 2), 1000);
}

TEST_F(SliceTest, AgentKilledAfterVotingRestartsInDoubtAndEndsCommitted) {
  // bank_b's agent dies (as kill -9) just after its YES vote left.
  agent_b_->Kill(SIGKILL);
  agent_b_ = MakeAgent("bank_b", bport_, {{"TXC_CRASH_AT", "agent.after_vote"}});
  ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
  auto r = client_->Submit(Transfer(40, 1, 1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // both voted YES: decided COMMIT
  int status = 0;
  ASSERT_TRUE(agent_b_->WaitExit(5000, &status)) << "the crash point was not reached";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137);
  // Restarted without the crash point: the branch is PREPARED, in doubt,
  // holding its lock, and ends COMMITTED (resent COMMIT or its own query).
  agent_b_ = MakeAgent("bank_b", bport_, {});
  ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
  EXPECT_TRUE(EventuallyBalance("bank_b", 1, 1040, 10000)) << agent_b_->LogTail();
  EXPECT_TRUE(EventuallyBalance("bank_a", 1, 960, 5000));
}

TEST_F(SliceTest, CoordinatorKilledAfterDecisionRestartsAndResendsCommit) {
  coord_->Kill(SIGKILL);
  coord_ = MakeCoordinator({{"TXC_CRASH_AT", "coord.after_decide"}});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  auto client = Connect(/*commit_timeout=*/20 * kSeconds);
  auto tx = client->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 7 WHERE id = 3")).ok());
  ASSERT_TRUE(tx->Execute("bank_b", Sql("UPDATE accounts SET balance = balance + 7 WHERE id = 3")).ok());
  auto commit = std::async(std::launch::async, [&] { return tx->Commit(); });
  // The coordinator dies right after DECIDE(COMMIT) is durable, before any COMMIT left.
  ASSERT_TRUE(coord_->WaitExit(10000)) << "the crash point was not reached";
  EXPECT_EQ(Balance("bank_a", 3), 993);  // applied locally, prepared, not yet committed
  coord_ = MakeCoordinator({});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  // The client retries the same txid on the restarted coordinator and learns
  // the durable decision; the participants get COMMIT resent.
  Status s = commit.get();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(EventuallyBalance("bank_b", 3, 1007, 10000));
  auto outcome = client->Outcome(tx->id());
  ASSERT_TRUE(outcome.ok()) << outcome.status().ToString();
  EXPECT_EQ(*outcome, proto::Outcome::COMMITTED);
  // A transaction of the old epoch that was never decided is now aborted for good.
  auto stale = client->Outcome(MakeTxId(tx->id().epoch, tx->id().seq + 1));
  ASSERT_TRUE(stale.ok()) << stale.status().ToString();
  EXPECT_EQ(*stale, proto::Outcome::ABORTED);
}

TEST_F(SliceTest, MalformedBytesOnEveryPortLeaveServersServing) {
  const std::vector<std::string> garbage = {
      std::string("\xff\xff\xff\xff", 4), std::string("\x00\x00\x00\x05hello", 9),
      "GET / HTTP/1.1\r\n\r\n", std::string("\x7f\xff\xff\xff\x80\x01\x00\x01", 8),
      std::string("\x00\x00\x00\x10\x80\x01\x00\x01\x00\x00\x00\x07Nothing", 19)};
  for (int port : {cport_, aport_, bport_}) {
    for (const auto& g : garbage) testing::SendRaw(port, g);
  }
  EXPECT_FALSE(coord_->Exited());
  EXPECT_FALSE(agent_a_->Exited());
  EXPECT_FALSE(agent_b_->Exited());
  auto r = client_->Submit(Transfer(1, 2, 2));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(SliceTest, UnknownResourceAndBadSqlGetClearErrors) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  auto bad = tx->Execute("bank_a", Sql("UPDATE acounts SET balance = 0"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::kSqlError);
  EXPECT_NE(bad.status().message().find("acounts"), std::string::npos) << bad.status().message();
  auto unknown = tx->Execute("bank_z", Sql("SELECT 1"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Status::kInvalidArgument);
  EXPECT_TRUE(tx->Rollback().ok());
}

}  // namespace
}  // namespace txc
