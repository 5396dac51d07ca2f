// End-to-end 2PC over real processes on loopback: a txcoord and two txagents,
// each agent holding one SQLite database.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
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
      // Commit answers once COMMIT is durably decided; its delivery to the
      // agent is asynchronous. Every test kills processes or takes rows 1-3,
      // so wait until the agent has committed the set-up branch and released
      // its locks.
      ASSERT_TRUE(WaitBranch(PortOf(bank), tx->id(), "committed")) << AgentLog(bank);
    }
  }

  int PortOf(const std::string& bank) const { return bank == "bank_a" ? aport_ : bport_; }
  std::string AgentLog(const std::string& bank) const {
    return (bank == "bank_a" ? agent_a_ : agent_b_)->LogTail();
  }

  // The agent's branches now (ListBranches); empty on error.
  static std::vector<proto::BranchInfo> Branches(int port) {
    auto r = testing::CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
        port, "ListBranches", proto::ListBranchesRequest());
    return r.ok() ? r->branches : std::vector<proto::BranchInfo>{};
  }
  // Polls the agent at `port` until `pred` holds for its branches, up to `ms`.
  static bool WaitBranches(int port, const std::function<bool(const std::vector<proto::BranchInfo>&)>& pred,
                           int ms = 20000) {
    for (int waited = 0; waited <= ms; waited += 20) {
      auto r = testing::CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
          port, "ListBranches", proto::ListBranchesRequest());
      if (r.ok() && pred(r->branches)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Until the agent lists txid's branch in `state` (committed or aborted are
  // set only once the resource finished the commit or the rollback).
  static bool WaitBranch(int port, const TxId& txid, const std::string& state, int ms = 20000) {
    return WaitBranches(
        port,
        [&](const std::vector<proto::BranchInfo>& bs) {
          for (const auto& b : bs) {
            if (b.txid == txid) return b.state == state;
          }
          return false;
        },
        ms);
  }

  std::unique_ptr<Process> MakeCoordinator(std::map<std::string, std::string> env,
                                           std::vector<std::string> extra = {}) {
    std::vector<std::string> args{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                  dir_.path + "/coord"};
    if (std::find(extra.begin(), extra.end(), "--vote-timeout-ms") == extra.end()) {
      extra.insert(extra.begin(), {"--vote-timeout-ms", "2000"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Process>("txcoord", args, dir_.path + "/coord.log", env);
  }

  std::unique_ptr<Process> MakeAgent(const std::string& bank, int port,
                                     std::map<std::string, std::string> env,
                                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                  dir_.path + "/" + bank, "--coordinator", Addr(cport_), "--resource",
                                  bank + "=sqlite:" + DbPath(bank), "--lock-timeout-ms", "300"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Process>("txagent " + bank, args, dir_.path + "/" + bank + ".log", env);
  }

  std::unique_ptr<Client> Connect(Micros commit_timeout = 10 * kSeconds) {
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(bport_)}};
    o.call_timeout = 5 * kSeconds;
    o.commit_timeout = commit_timeout;
    // admin: the tests run operator commands through it too (ListTxns,
    // ShowTxn, RetryTxns, Resolve).
    o.tls = testing::TestTls(authz::Role::kAdmin);
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

  // Sends malformed frames (and an HTTP request) to every port; the servers
  // keep serving.
  void ExpectGarbageLeavesServersServing() {
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
  // abort), so its PREPARE and its rollback may still be running: once the
  // agent lists that branch aborted (the only one there: the set-up branch is
  // committed) and none live, the lock is gone and another transfer to
  // account 2 commits at the first try.
  EXPECT_EQ(Balance("bank_a", 1), 1000);
  ASSERT_TRUE(WaitBranches(bport_, [](const std::vector<proto::BranchInfo>& bs) {
    bool aborted = false;
    for (const auto& b : bs) {
      if (b.state == "active" || b.state == "prepared") return false;
      aborted = aborted || b.state == "aborted";
    }
    return aborted;
  })) << agent_b_->LogTail();
  EXPECT_EQ(Balance("bank_b", 2), 1000);
  auto again = client_->Submit(Transfer(10, 1, 2));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
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

// Wait-die by txid age: an older transaction waits for a younger one's lock
// (up to the lock timeout); a younger one meeting an older one's lock dies at
// once. Both answers name the row and the holder.
TEST_F(SliceTest, LockConflictTimesOutForTheOlderAndKillsTheYoungerNamingRowAndHolder) {
  auto waiter = client_->Begin();  // the oldest
  ASSERT_TRUE(waiter.ok());
  auto holder = client_->Begin();
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE(holder->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 1 WHERE id = 2")).ok());
  auto r = waiter->Execute("bank_a", Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 2"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kLockTimeout) << r.status().ToString();
  EXPECT_NE(r.status().message().find("accounts"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(ToString(holder->id())), std::string::npos) << r.status().message();
  auto younger = client_->Begin();
  ASSERT_TRUE(younger.ok());
  auto died = younger->Execute("bank_a", Sql("UPDATE accounts SET balance = balance + 5 WHERE id = 2"));
  ASSERT_FALSE(died.ok());
  EXPECT_EQ(died.status().code(), Status::kAborted) << died.status().ToString();
  EXPECT_NE(died.status().message().find("wait-die"), std::string::npos) << died.status().message();
  EXPECT_NE(died.status().message().find("accounts"), std::string::npos) << died.status().message();
  EXPECT_NE(died.status().message().find(ToString(holder->id())), std::string::npos) << died.status().message();
  EXPECT_FALSE(younger->Commit().ok());  // its branch was rolled back at bank_a
  ASSERT_TRUE(holder->Commit().ok());
  // Once the holder's branch committed at bank_a, the row is free again.
  ASSERT_TRUE(WaitBranch(aport_, holder->id(), "committed")) << agent_a_->LogTail();
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

TEST_F(SliceTest, UndeliveredCommitIsFlaggedStuckWithItsErrorAndRetriedOnRequest) {
  // The coordinator dies once COMMIT is durably decided, before sending it;
  // meanwhile bank_b's agent dies too. The restarted coordinator (which calls
  // a transaction stuck after 1 s) cannot deliver COMMIT to bank_b.
  coord_->Kill(SIGKILL);
  coord_ = MakeCoordinator({{"TXC_CRASH_AT", "coord.after_decide"}});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  auto lost = Connect(2 * kSeconds)->Submit(Transfer(40, 1, 1));
  EXPECT_FALSE(lost.ok());  // the coordinator died before answering
  ASSERT_TRUE(coord_->WaitExit(5000, nullptr)) << "the crash point was not reached";
  agent_b_->Kill(SIGKILL);
  coord_ = MakeCoordinator({}, {"--stuck-after", "1s"});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();

  // Listed under "stuck" once 1 s has passed since it took the decision over.
  std::optional<TxId> txid;
  for (int waited = 0; waited <= 10000 && !txid; waited += 50) {
    auto stuck = client_->ListTxns("stuck");
    if (stuck.ok() && !stuck->empty()) {
      EXPECT_EQ(stuck->size(), 1u);
      txid = stuck->front().txid;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_TRUE(txid.has_value()) << coord_->LogTail();
  auto shown = client_->ShowTxn(*txid);
  ASSERT_TRUE(shown.ok()) << shown.status().ToString();
  EXPECT_TRUE(shown->__isset.stuck && shown->stuck);
  EXPECT_EQ(shown->outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(shown->__isset.decided_age_ms && shown->decided_age_ms >= 1000);
  ASSERT_TRUE(shown->__isset.progress);
  ASSERT_EQ(shown->progress.size(), 2u);
  for (const auto& p : shown->progress) {
    EXPECT_GE(p.attempts, 1) << p.resource;
    if (p.resource == "bank_a") {
      EXPECT_TRUE(p.acked);
    } else {
      EXPECT_FALSE(p.acked);
      EXPECT_TRUE(p.__isset.last_error) << "no last error for " << p.resource;
    }
  }
  // The coordinator warned about it.
  bool warned = false;
  for (int waited = 0; waited <= 5000 && !warned; waited += 50) {
    warned = coord_->LogTail(1 << 20).find("is stuck") != std::string::npos;
    if (!warned) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(warned) << coord_->LogTail();

  // Retry now: the decision is resent at once (and fails again: bank_b is down).
  auto retried = client_->RetryTxns(*txid);
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(*retried, 1);
  auto none = client_->RetryTxns(MakeTxId(txid->epoch, txid->seq + 1000));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
  EXPECT_EQ(client_->ShowTxn(MakeTxId(txid->epoch, txid->seq + 1000)).status().code(),
            Status::kNotFound);

  // bank_b back: the transaction completes, and is neither stuck nor shown.
  agent_b_ = MakeAgent("bank_b", bport_, {});
  ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
  auto all = client_->RetryTxns(std::nullopt);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(EventuallyBalance("bank_b", 1, 1040, 10000)) << agent_b_->LogTail();
  EXPECT_TRUE(EventuallyBalance("bank_a", 1, 960, 5000));
  bool ended = false;
  for (int waited = 0; waited <= 10000 && !ended; waited += 50) {
    auto s = client_->ShowTxn(*txid);
    ended = !s.ok() && s.status().code() == Status::kNotFound;
    if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(ended) << coord_->LogTail();
  auto stuck = client_->ListTxns("stuck");
  ASSERT_TRUE(stuck.ok());
  EXPECT_TRUE(stuck->empty());
}

TEST_F(SliceTest, OperatorAbortsATransactionWaitingForAVoteAndIsRefusedOnADecidedOne) {
  // A decided transaction cannot be resolved the other way.
  auto done = client_->Submit(Transfer(10, 1, 2));
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  auto refused = client_->Resolve(*done, proto::Outcome::ABORTED, "test", "alice");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("already decided: committed"), std::string::npos)
      << refused.status().message();

  // A transaction stuck waiting for bank_b's vote (its agent is stopped; the
  // vote timeout is long) is aborted by the operator.
  coord_->Kill(SIGKILL);
  coord_ = MakeCoordinator({}, {"--vote-timeout-ms", "60000"});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_a", {Sql("UPDATE accounts SET balance = balance - 5 WHERE id = 3")}).ok());
  ASSERT_TRUE(tx->Execute("bank_b", {Sql("UPDATE accounts SET balance = balance + 5 WHERE id = 3")}).ok());
  const TxId txid = tx->id();
  ASSERT_EQ(::kill(agent_b_->pid(), SIGSTOP), 0);
  auto commit = std::async(std::launch::async, [&] { return tx->Commit(); });
  bool voting = false;
  for (int waited = 0; waited <= 10000 && !voting; waited += 20) {
    auto shown = client_->ShowTxn(txid);
    // Voting, with bank_a's YES in (a slow machine, e.g. under TSan, may
    // still be waiting for it).
    voting = shown.ok() && shown->state == "voting" && shown->__isset.progress &&
             !shown->progress.empty() && shown->progress[0].__isset.vote;
    if (!voting) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(voting) << coord_->LogTail();
  auto resolved = client_->Resolve(txid, proto::Outcome::COMMITTED, "test", "alice");
  ASSERT_FALSE(resolved.ok());  // a commit is never forced
  EXPECT_NE(resolved.status().message().find("no vote yet from bank_b"), std::string::npos)
      << resolved.status().message();
  resolved = client_->Resolve(txid, proto::Outcome::ABORTED, "bank_b hangs", "alice");
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->outcome, proto::Outcome::ABORTED);
  EXPECT_NE(resolved->reason.find("alice"), std::string::npos) << resolved->reason;
  auto c = commit.get();
  EXPECT_FALSE(c.ok());  // the client hears its transaction aborted
  EXPECT_NE(c.ToString().find("alice"), std::string::npos) << c.ToString();
  ASSERT_EQ(::kill(agent_b_->pid(), SIGCONT), 0);
  EXPECT_TRUE(WaitBranch(bport_, txid, "aborted")) << agent_b_->LogTail();
  EXPECT_TRUE(WaitBranch(aport_, txid, "aborted")) << agent_a_->LogTail();
  EXPECT_EQ(Balance("bank_a", 3), 1000);
  EXPECT_EQ(Balance("bank_b", 3), 1000);
  auto outcome = client_->Outcome(txid);
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(*outcome, proto::Outcome::ABORTED);
  EXPECT_NE(coord_->LogTail(1 << 20).find("operator alice asks to resolve"), std::string::npos);
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

// ---------------------------------------------------------------------- 3PC

const TxnOptions k3pc{.protocol = proto::Protocol::THREE_PC};

TEST_F(SliceTest, ThreePhaseTransfersCommitOnBothOneShotAndInteractive) {
  auto r = client_->Submit(Transfer(250, 3, 1), k3pc);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*client_->Outcome(*r), proto::Outcome::COMMITTED);
  EXPECT_TRUE(EventuallyBalance("bank_a", 3, 750, 5000));
  EXPECT_TRUE(EventuallyBalance("bank_b", 1, 1250, 5000));
  auto tx = client_->Begin(k3pc);
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 5 WHERE id = 2")).ok());
  ASSERT_TRUE(tx->Execute("bank_b", Sql("UPDATE accounts SET balance = balance + 5 WHERE id = 2")).ok());
  ASSERT_TRUE(tx->Commit().ok());
  EXPECT_TRUE(EventuallyBalance("bank_a", 2, 995, 5000));
  EXPECT_TRUE(EventuallyBalance("bank_b", 2, 1005, 5000));
}

TEST_F(SliceTest, ThreePhaseNoVoteAbortsBoth) {
  auto r = client_->Submit(Transfer(5000, 1, 2), k3pc);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kAborted) << r.status().ToString();
  EXPECT_NE(r.status().message().find("bank_a"), std::string::npos) << r.status().message();
  EXPECT_EQ(Balance("bank_a", 1), 1000);
  ASSERT_TRUE(WaitBranches(bport_, [](const std::vector<proto::BranchInfo>& bs) {
    bool aborted = false;
    for (const auto& b : bs) {
      if (b.state == "active" || b.state == "prepared" || b.state == "precommitted") return false;
      aborted = aborted || b.state == "aborted";
    }
    return aborted;
  })) << agent_b_->LogTail();
  EXPECT_EQ(Balance("bank_b", 2), 1000);
}

TEST_F(SliceTest, ThreePhaseCoordinatorKilledAfterPrecommitIsChosenCommitsEverywhere) {
  coord_->Kill(SIGKILL);
  coord_ = MakeCoordinator({{"TXC_CRASH_AT", "coord.after_precommit"}});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  auto client = Connect(/*commit_timeout=*/20 * kSeconds);
  auto commit = std::async(std::launch::async, [&] { return client->Submit(Transfer(30, 2, 3), k3pc); });
  // The coordinator dies once PRECOMMIT is durable, before any PRE_COMMIT left:
  // both branches are merely PREPARED.
  ASSERT_TRUE(coord_->WaitExit(10000)) << "the crash point was not reached";
  for (int port : {aport_, bport_}) {
    bool prepared = false;
    for (const auto& b : Branches(port)) prepared = prepared || b.state == "prepared";
    EXPECT_TRUE(prepared) << "port " << port;
  }
  coord_ = MakeCoordinator({});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  // The new leadership finds PRECOMMIT in the log and commits (a 2PC
  // transaction in the same place, without its DECIDE, would be aborted).
  auto r = commit.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(EventuallyBalance("bank_a", 2, 970, 10000)) << agent_a_->LogTail();
  EXPECT_TRUE(EventuallyBalance("bank_b", 3, 1030, 10000)) << agent_b_->LogTail();
  EXPECT_EQ(*client->Outcome(*r), proto::Outcome::COMMITTED);
}

TEST_F(SliceTest, ThreePhaseAgentKilledInPrecommittedRecoversAndCommits) {
  agent_b_->Kill(SIGKILL);
  agent_b_ = MakeAgent("bank_b", bport_, {{"TXC_CRASH_AT", "agent.after_precommitted"}});
  ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
  auto client = Connect(/*commit_timeout=*/20 * kSeconds);
  auto commit = std::async(std::launch::async, [&] { return client->Submit(Transfer(60, 1, 1), k3pc); });
  int status = 0;
  ASSERT_TRUE(agent_b_->WaitExit(10000, &status)) << "the crash point was not reached";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 137);
  // Restarted: the branch comes back PRECOMMITTED (locks held) and commits.
  agent_b_ = MakeAgent("bank_b", bport_, {});
  ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
  auto r = commit.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(EventuallyBalance("bank_b", 1, 1060, 10000)) << agent_b_->LogTail();
  EXPECT_TRUE(EventuallyBalance("bank_a", 1, 940, 10000));
  EXPECT_NE(agent_b_->LogTail(1 << 20).find("PRECOMMITTED"), std::string::npos) << agent_b_->LogTail();
}

// Textbook 3PC's termination with real processes: the coordinator dies once
// PRECOMMIT is durable, before any PRE_COMMIT; the agents, allowed to
// terminate on their own after 1 s, find each other merely PREPARED and
// abort. The restarted coordinator commits (PRECOMMIT is chosen): both agents
// refuse it, and the disagreement is reported at both ends as a heuristic
// hazard, never hidden.
TEST_F(SliceTest, ThreePhaseAutonomousTerminationDisagreeingWithTheGroupIsAReportedHazard) {
  coord_->Kill(SIGKILL);
  coord_ = MakeCoordinator({{"TXC_CRASH_AT", "coord.after_precommit"}});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  for (const char* bank : {"bank_a", "bank_b"}) {
    auto& agent = std::string(bank) == "bank_a" ? agent_a_ : agent_b_;
    agent->Kill(SIGKILL);
    agent = MakeAgent(bank, PortOf(bank), {}, {"--autonomous-termination-timeout", "1s"});
    ASSERT_TRUE(agent->Start(PortOf(bank))) << agent->LogTail();
  }
  auto client = Connect(/*commit_timeout=*/3 * kSeconds);
  auto r = client->Submit(Transfer(30, 2, 3), k3pc);
  EXPECT_FALSE(r.ok());  // the coordinator died before answering
  ASSERT_TRUE(coord_->WaitExit(10000)) << "the crash point was not reached";
  // Both decide ABORTED by themselves: the first to ask finds only PREPARED
  // branches, the other then finds an aborted one.
  for (int port : {aport_, bport_}) {
    EXPECT_TRUE(WaitBranches(port, [](const std::vector<proto::BranchInfo>& bs) {
      for (const auto& b : bs) {
        if (b.__isset.heuristic_who && b.heuristic_who == "autonomous-termination") {
          return b.state == "aborted" && b.heuristic_outcome == proto::Outcome::ABORTED &&
                 b.heuristic_reason.find("3PC autonomous termination") != std::string::npos;
        }
      }
      return false;
    }, 15000)) << "port " << port << "\n" << AgentLog(port == aport_ ? "bank_a" : "bank_b");
  }
  EXPECT_EQ(Balance("bank_a", 2), 1000);
  EXPECT_EQ(Balance("bank_b", 3), 1000);
  EXPECT_NE(agent_a_->LogTail(1 << 20).find("autonomous termination"), std::string::npos);
  // The group comes back and commits: a hazard at the agents and at the group.
  coord_ = MakeCoordinator({});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  for (int port : {aport_, bport_}) {
    EXPECT_TRUE(WaitBranches(port, [](const std::vector<proto::BranchInfo>& bs) {
      for (const auto& b : bs) {
        if (b.__isset.heuristic_who && b.__isset.group_outcome) {
          return b.group_outcome == proto::Outcome::COMMITTED;
        }
      }
      return false;
    }, 15000)) << "port " << port;
  }
  bool reported = false;
  for (int waited = 0; waited <= 15000 && !reported; waited += 100) {
    auto hazards = client_->ListTxns("hazard");
    reported = hazards.ok() && !hazards->empty();
    if (!reported) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(reported) << coord_->LogTail();
  EXPECT_NE(agent_b_->LogTail(1 << 20).find("heuristic hazard"), std::string::npos)
      << agent_b_->LogTail();
}

// Plaintext, whatever TXC_TEST_TLS says: raw bytes reach the frame reader
// only on a plaintext port; on a TLS port the handshake meets them first
// (SliceTest.MalformedBytesBeforeTheTlsHandshakeLeaveServersServing).
class SlicePlaintextTest : public SliceTest {
  testing::ScopedPlaintext plaintext_;
};

TEST_F(SlicePlaintextTest, MalformedBytesOnEveryPortLeaveServersServing) {
  ExpectGarbageLeavesServersServing();
}

// With TXC_TEST_TLS=0 this repeats the plaintext case.
TEST_F(SliceTest, MalformedBytesBeforeTheTlsHandshakeLeaveServersServing) {
  ExpectGarbageLeavesServersServing();
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

TEST_F(SliceTest, OutOfRangeNumbersAreRefusedAndNeverReachTheBranchLog) {
  // An Execute with a negative txid used to run and be written to the
  // branch log; the agent's next start then failed ("txc_branches holds a
  // malformed txid") and it never served again.
  proto::ExecuteRequest bad;
  bad.txid = MakeTxId(1, -5);
  bad.resource = "bank_a";
  bad.statements = {Sql("UPDATE accounts SET balance = 0 WHERE id = 1")};
  auto r = testing::CallOnce<proto::ExecuteRequest, proto::ExecuteResponse>(aport_, "Execute", bad);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, proto::Code::INVALID_ARGUMENT) << r->status.message;
  EXPECT_NE(r->status.message.find("ExecuteRequest.txid.seq = -5"), std::string::npos) << r->status.message;
  // A timeout whose microseconds overflow int64.
  bad.txid = MakeTxId(1, 1000000);
  bad.__set_timeout_ms(std::numeric_limits<int64_t>::max());
  r = testing::CallOnce<proto::ExecuteRequest, proto::ExecuteResponse>(aport_, "Execute", bad);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, proto::Code::INVALID_ARGUMENT) << r->status.message;
  EXPECT_NE(r->status.message.find("ExecuteRequest.timeout_ms"), std::string::npos) << r->status.message;
  proto::DecideRequest decide;
  decide.txid = MakeTxId(-3, 1);
  decide.resource = "bank_a";
  decide.outcome = proto::Outcome::ABORTED;
  auto d = testing::CallOnce<proto::DecideRequest, proto::DecideResponse>(aport_, "Decide", decide);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->status.code, proto::Code::INVALID_ARGUMENT) << d->status.message;
  for (const auto& b : Branches(aport_)) EXPECT_GE(b.txid.seq, 1) << ToString(b.txid);
  EXPECT_EQ(Balance("bank_a", 1), 1000);

  // The coordinator refuses them too, before anything is logged or decided.
  auto outcome = client_->Outcome(MakeTxId(-1, 3));
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), Status::kInvalidArgument);
  EXPECT_NE(outcome.status().message().find("OutcomeRequest.txid.epoch = -1"), std::string::npos)
      << outcome.status().message();
  ClientOptions o = client_->options();
  o.txn_timeout_ms = std::numeric_limits<int64_t>::max();
  auto greedy = Client::Connect(o);
  ASSERT_TRUE(greedy.ok());
  auto tx = (*greedy)->Begin();
  ASSERT_FALSE(tx.ok());
  EXPECT_EQ(tx.status().code(), Status::kInvalidArgument);
  EXPECT_NE(tx.status().message().find("BeginRequest.timeout_ms"), std::string::npos) << tx.status().message();

  // The agent restarts, recovers and serves.
  agent_a_->Kill(SIGKILL);
  agent_a_ = MakeAgent("bank_a", aport_, {});
  ASSERT_TRUE(agent_a_->Start(aport_)) << agent_a_->LogTail();
  auto t = client_->Submit(Transfer(5, 2, 2));
  ASSERT_TRUE(t.ok()) << t.status().ToString() << agent_a_->LogTail();
  EXPECT_TRUE(EventuallyBalance("bank_a", 2, 995, 5000));
  // Neither server wrote the bad values to its log.
  EXPECT_EQ(agent_a_->LogTail(1 << 20).find("1.-5"), std::string::npos) << agent_a_->LogTail();
  EXPECT_EQ(coord_->LogTail(1 << 20).find("-1.3"), std::string::npos) << coord_->LogTail();
}

// The SQL authorizer through the whole path: a client's ATTACH (which would
// let a branch write a database the agent cannot undo) and a PRAGMA write
// are refused with SQL_ERROR, the branch keeps its earlier work and still
// commits, and the database holds exactly what the committed work did.
TEST_F(SliceTest, AttachAndPragmaWritesAreRefusedThroughTheClientAndDataStaysIntact) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 7 WHERE id = 1")).ok());
  const std::string other = dir_.path + "/elsewhere.db";
  auto attach = tx->Execute("bank_a", {Sql("UPDATE accounts SET balance = 0 WHERE id = 2"),
                                       Sql("ATTACH DATABASE '" + other + "' AS other")});
  ASSERT_FALSE(attach.ok());
  EXPECT_EQ(attach.status().code(), Status::kSqlError) << attach.status().ToString();
  EXPECT_NE(attach.status().message().find("ATTACH/DETACH is not allowed"), std::string::npos)
      << attach.status().message();
  auto pragma = tx->Execute("bank_a", Sql("PRAGMA journal_mode=DELETE"));
  ASSERT_FALSE(pragma.ok());
  EXPECT_NE(pragma.status().message().find("PRAGMA journal_mode with a value is not allowed"),
            std::string::npos)
      << pragma.status().message();
  auto read = tx->Execute("bank_a", Sql("PRAGMA journal_mode"));  // a read passes
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->rows.size(), 1u);
  EXPECT_EQ(read->rows[0].values[0].s, "wal");
  Status s = tx->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Balance("bank_a", 1), 993);
  EXPECT_EQ(Balance("bank_a", 2), 1000);  // the refused call's UPDATE never applied
  EXPECT_FALSE(std::filesystem::exists(other)) << "ATTACH created " << other;
}

// Limits on what one request carries: refused at the wire with
// INVALID_ARGUMENT naming the field, the value and the limit; nothing runs.
TEST_F(SliceTest, OversizedStatementsAreRefusedNamingTheLimit) {
  proto::ExecuteRequest big;
  big.txid = MakeTxId(1, 2000000);
  big.resource = "bank_a";
  big.statements = {Sql("UPDATE accounts SET balance = 0 WHERE id = 1 OR id = ?")};
  big.statements[0].sql += std::string(1 << 20, ' ');
  big.statements[0].params = {Int(3)};
  auto r = testing::CallOnce<proto::ExecuteRequest, proto::ExecuteResponse>(aport_, "Execute", big);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, proto::Code::INVALID_ARGUMENT) << r->status.message;
  EXPECT_NE(r->status.message.find("ExecuteRequest.statements[0].sql is " +
                                   std::to_string(big.statements[0].sql.size()) +
                                   " bytes long; a statement's SQL is at most 1048576"),
            std::string::npos)
      << r->status.message;
  EXPECT_EQ(Balance("bank_a", 1), 1000);
  EXPECT_EQ(Balance("bank_a", 3), 1000);
  for (const auto& b : Branches(aport_)) EXPECT_NE(b.txid, big.txid) << "a branch was created";
}

// LogBench.Append writes client records into the decision log: a replica
// serves it only when started with --serve-log-bench, and refuses it
// otherwise, naming the flag.
TEST_F(SliceTest, LogBenchAppendIsServedOnlyWithItsFlag) {
  proto::LogBenchAppendRequest req;
  req.payload = "benchmark record";
  auto refused = testing::CallOnce<proto::LogBenchAppendRequest, proto::LogBenchAppendResponse>(
      cport_, "Append", req);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_EQ(refused->status.code, proto::Code::INVALID_ARGUMENT) << refused->status.message;
  EXPECT_NE(refused->status.message.find("--serve-log-bench"), std::string::npos)
      << refused->status.message;

  coord_->Kill(SIGTERM);
  coord_ = MakeCoordinator({}, {"--serve-log-bench"});
  ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  // The restarted replica serves once its new epoch is durable.
  Result<proto::LogBenchAppendResponse> served = Status::Unavailable("not called");
  for (int waited = 0; waited <= 10000; waited += 50) {
    served = testing::CallOnce<proto::LogBenchAppendRequest, proto::LogBenchAppendResponse>(
        cport_, "Append", req);
    if (served.ok() && served->status.code == proto::Code::OK) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  EXPECT_EQ(served->status.code, proto::Code::OK) << served->status.message;
  EXPECT_GT(served->slot, 0);
}

TEST_F(SliceTest, TxadminReadsItsOptionsFromAConfigFile) {
  auto run = [&](const std::string& name, std::vector<std::string> args, int* status) {
    args.insert(args.begin(), TXC_BIN_DIR "/txadmin");
    Process p("txadmin", args, dir_.path + "/" + name + ".out");
    EXPECT_TRUE(p.Start());
    EXPECT_TRUE(p.WaitExit(20000, status)) << "txadmin did not finish";
    return p.LogTail();
  };
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir_.path + "/" + name) << text;
    return dir_.path + "/" + name;
  };
  int status = -1;
  std::string conf = write("txadmin.conf", "# the group\ncoordinator = " + Addr(cport_) + "\n");
  std::string out = run("status", {"--config", conf, "status", "--json"}, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("\"replicas\":[{\"id\":1"), std::string::npos) << out;
  // The command line wins over the file.
  std::string wrong = write("wrong.conf", "coordinator = 127.0.0.1:1\n");
  out = run("override", {"--config", wrong, "--coordinator", Addr(cport_), "txns"}, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("transactions)"), std::string::npos) << out;
  // A misspelt key is an error, not silently ignored.
  std::string typo = write("typo.conf", "coordinater = " + Addr(cport_) + "\n");
  out = run("typo", {"--config", typo, "status"}, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << out;
  EXPECT_NE(out.find("coordinater"), std::string::npos) << out;
  out = run("missing", {"--config", dir_.path + "/no-such.conf", "status"}, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << out;
  EXPECT_NE(out.find("no-such.conf"), std::string::npos) << out;
}

TEST(TxagentFlagsTest, UnsafeNoSyncIsRefusedNotSilentlyIgnored) {
  // The flag was accepted and did nothing; it is gone, and saying so beats
  // letting an operator believe it took effect.
  TempDir dir;
  int port = FreePort();
  Process p("txagent", {TXC_BIN_DIR "/txagent", "--listen", "127.0.0.1:" + std::to_string(port), "--data",
                        dir.path + "/agent", "--coordinator", "127.0.0.1:1", "--resource",
                        "bank=sqlite:" + dir.path + "/bank.db", "--unsafe-no-sync"},
            dir.path + "/agent.log");
  ASSERT_TRUE(p.Start());
  int status = -1;
  ASSERT_TRUE(p.WaitExit(20000, &status)) << p.LogTail();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << p.LogTail();
  EXPECT_NE(p.LogTail().find("unsafe-no-sync"), std::string::npos) << p.LogTail();
}

TEST(TestPortTest, AReservedPortIsNeverHandedOutByAnotherProcess) {
  int port = FreePort();
  ASSERT_GT(port, 0);
  EXPECT_NE(FreePort(), port);
  EXPECT_EQ(testing::ReservePort(port, port), 0) << "reserved twice in one process";
  // Another test process, running in parallel, must not get it even though
  // nothing listens on it yet.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(testing::ReservePort(port, port) == 0 ? 0 : 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "port " << port << " handed out twice";
}

TEST(TestPortTest, AReservationEndsWithItsProcess) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int p = FreePort();
    _exit(write(pipefd[1], &p, sizeof p) == sizeof p ? 0 : 1);
  }
  int port = 0;
  ASSERT_EQ(read(pipefd[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  close(pipefd[0]);
  close(pipefd[1]);
  // Its holder exited (as a crashed test would): the port is free again.
  EXPECT_EQ(testing::ReservePort(port, port), port);
}

// tests/support/test_tls.h: which command gets which certificate, and where.
TEST(TestTlsTest, EachProgramGetsItsRolesFlagsUnlessItChose) {
  using authz::Role;
  const std::string bin = TXC_BIN_DIR;
  EXPECT_EQ(testing::RoleOfCommand({bin + "/txcoord", "--listen", "x"}), Role::kReplica);
  EXPECT_EQ(testing::RoleOfCommand({bin + "/txagent"}), Role::kAgent);
  EXPECT_EQ(testing::RoleOfCommand({bin + "/txadmin", "status"}), Role::kAdmin);
  EXPECT_EQ(testing::RoleOfCommand({bin + "/txbench", "transfer", "--coordinator", "c"}), Role::kClient);
  EXPECT_EQ(testing::RoleOfCommand({bin + "/txbench", "log", "--coordinator", "c"}), Role::kAdmin);
  EXPECT_EQ(testing::RoleOfCommand({bin + "/txbench", "transfer", "--direct"}), Role::kNone);
  EXPECT_EQ(testing::RoleOfCommand({"/bin/sh", "x"}), Role::kNone);
  EXPECT_EQ(testing::DefaultRoleFor("ListBranches"), Role::kAdmin);
  EXPECT_EQ(testing::DefaultRoleFor("Decide"), Role::kReplica);
  EXPECT_EQ(testing::DefaultRoleFor("Execute"), Role::kClient);
  EXPECT_EQ(testing::DefaultRoleFor("BranchState"), Role::kAgent);

  const std::vector<std::string> insecure{bin + "/txcoord", "--insecure"};
  EXPECT_EQ(testing::WithTestTls(insecure), insecure);
  {
    testing::ScopedPlaintext plaintext;
    EXPECT_FALSE(testing::TestTlsOn());
    EXPECT_FALSE(testing::TestTls(Role::kClient).enabled());
    EXPECT_EQ(testing::WithTestTls({bin + "/txagent"}), std::vector<std::string>{bin + "/txagent"});
  }
  if (!testing::TestTlsOn()) GTEST_SKIP() << "TXC_TEST_TLS=0";
  // txadmin's global options go before its command.
  auto admin = testing::WithTestTls({bin + "/txadmin", "status"});
  ASSERT_EQ(admin.size(), 8u);
  EXPECT_EQ(admin[1], "--tls-cert");
  EXPECT_EQ(admin[2], testing::TestCertDir() + "/admin.crt");
  EXPECT_EQ(admin.back(), "status");
  auto agent = testing::WithTestTls({bin + "/txagent", "--listen", "x"});
  ASSERT_EQ(agent.size(), 9u);
  EXPECT_EQ(agent[3], "--tls-cert");
  EXPECT_EQ(agent[4], testing::TestCertDir() + "/agent.crt");
  EXPECT_TRUE(std::filesystem::exists(testing::TestCertDir() + "/agent.key"));
}

TEST(TestPortTest, PortsComeFromOutsideTheEphemeralRange) {
  int lo = 32768, hi = 60999;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo >> hi;
  for (int i = 0; i < 5; ++i) {
    int port = FreePort();
    EXPECT_TRUE(port < lo || port > hi) << port << " is in " << lo << ".." << hi;
  }
}

}  // namespace
}  // namespace txc
