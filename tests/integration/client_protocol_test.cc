// The commit protocol an application chooses (TxnOptions.protocol) reaches a
// real txcoord, for an interactive Commit and for a one-shot Submit.
//
// How it is observed: bank_b's agent is stopped (SIGSTOP) while the commit
// runs, so the transaction stays live, waiting for bank_b's vote, and the
// leader's ListTxns (what `txadmin txns --json` prints) shows the protocol it
// runs: TWO_PC by default, THREE_PC when chosen; once bank_b runs again the
// commit succeeds either way.
#include <signal.h>

#include <chrono>
#include <functional>
#include <future>
#include <iostream>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "tests/support/process.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

class ClientProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cport_ = FreePort();
    aport_ = FreePort();
    bport_ = FreePort();
    // A long vote timeout: bank_b is stopped for up to ~10 s while a
    // transaction waits for its vote, and that must not abort it.
    coord_ = std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord", "--vote-timeout-ms", "60000"},
        dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    agent_a_ = MakeAgent("bank_a", aport_);
    agent_b_ = MakeAgent("bank_b", bport_);
    ASSERT_TRUE(agent_a_->Start(aport_)) << agent_a_->LogTail();
    ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(bport_)}};
    o.call_timeout = 5 * kSeconds;
    o.commit_timeout = 20 * kSeconds;
    // admin: WatchCommit reads the leader's ListTxns, an operator command.
    o.tls = testing::TestTls(authz::Role::kAdmin);
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
    for (const char* bank : {"bank_a", "bank_b"}) {
      auto tx = client_->Begin();
      ASSERT_TRUE(tx.ok()) << tx.status().ToString();
      auto r = tx->Execute(bank, {Sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"),
                                  Sql("INSERT INTO accounts VALUES (1, 1000), (2, 1000), (3, 1000)")});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_TRUE(tx->Commit().ok());
      // The set-up's COMMIT reaches the agent asynchronously: wait until it
      // ended there, so that its locks are gone and it is no longer listed
      // as being delivered.
      ASSERT_TRUE(WaitBranchCommitted(bank == std::string("bank_a") ? aport_ : bport_, tx->id()))
          << (bank == std::string("bank_a") ? agent_a_ : agent_b_)->LogTail();
    }
  }

  std::unique_ptr<Process> MakeAgent(const std::string& bank, int port) {
    return std::make_unique<Process>(
        "txagent " + bank,
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                 dir_.path + "/" + bank, "--coordinator", Addr(cport_), "--resource",
                                 bank + "=sqlite:" + dir_.path + "/" + bank + ".db", "--lock-timeout-ms",
                                 "300"},
        dir_.path + "/" + bank + ".log");
  }

  static bool WaitBranchCommitted(int port, const TxId& txid) {
    for (int waited = 0; waited <= 20000; waited += 20) {
      auto r = testing::CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
          port, "ListBranches", proto::ListBranchesRequest());
      if (r.ok()) {
        for (const auto& b : r->branches) {
          if (b.txid == txid && b.state == "committed") return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // What a commit did while bank_b was stopped.
  struct Watched {
    Status status;                     // the commit's answer (after bank_b ran again)
    bool answered_while_stopped = false;
    std::optional<proto::TxnInfo> live;  // the transaction as the leader showed it, waiting
  };

  // Stops bank_b's agent, runs `commit` on another thread and, until it
  // answers or the leader shows a transaction past "active" and undecided
  // (the one committing: `txid` if known, else the only such one), polls
  // ListTxns for up to 10 s. Then lets bank_b run again and waits for the
  // answer.
  Watched WatchCommit(const std::function<Status()>& commit, std::optional<TxId> txid) {
    Watched w;
    EXPECT_EQ(::kill(agent_b_->pid(), SIGSTOP), 0);
    auto answer = std::async(std::launch::async, commit);
    for (int waited = 0; waited <= 10000; waited += 20) {
      if (answer.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
        w.answered_while_stopped = true;
        break;
      }
      auto txns = client_->ListTxns("");
      if (txns.ok()) {
        for (const auto& t : *txns) {
          if (txid && t.txid != *txid) continue;
          if (t.state != "active" && t.outcome == proto::Outcome::PENDING) w.live = t;
        }
      }
      if (w.live) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(::kill(agent_b_->pid(), SIGCONT), 0);
    w.status = answer.get();
    return w;
  }

  // An interactive transfer on rows `id` of both banks, committed with `options`.
  Watched Interactive(TxnOptions options, int id) {
    auto tx = client_->Begin(options);
    EXPECT_TRUE(tx.ok()) << tx.status().ToString();
    if (!tx.ok()) {
      Watched failed;
      failed.status = tx.status();
      return failed;
    }
    EXPECT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 5 WHERE id = ?", {Int(id)})).ok());
    EXPECT_TRUE(tx->Execute("bank_b", Sql("UPDATE accounts SET balance = balance + 5 WHERE id = ?", {Int(id)})).ok());
    Transaction* t = &*tx;
    return WatchCommit([t] { return t->Commit(); }, tx->id());
  }

  // A one-shot transfer on rows `id` of both banks, submitted with `options`;
  // its txid (when it committed) in *committed.
  Watched OneShot(TxnOptions options, int id, std::optional<TxId>* committed) {
    std::map<std::string, std::vector<proto::Statement>> work{
        {"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - 5 WHERE id = ?", {Int(id)}, 1)}},
        {"bank_b", {SqlExpect("UPDATE accounts SET balance = balance + 5 WHERE id = ?", {Int(id)}, 1)}}};
    return WatchCommit(
        [&, options] {
          auto r = client_->Submit(work, options);
          if (r.ok()) *committed = *r;
          return r.ok() ? Status::Ok() : r.status();
        },
        std::nullopt);
  }

  // The 3PC verdict shared by both tests: seen live as THREE_PC, committed.
  void ExpectThreePhaseRequested(const Watched& w, const std::optional<TxId>& txid) {
    EXPECT_FALSE(w.answered_while_stopped) << w.status.ToString();
    ASSERT_TRUE(w.live.has_value())
        << "the 3PC commit did not show up live within 10 s; " << coord_->LogTail();
    EXPECT_EQ(w.live->protocol, proto::Protocol::THREE_PC) << w.live->state;
    EXPECT_TRUE(w.status.ok()) << w.status.ToString();
    if (txid) {
      EXPECT_EQ(w.live->txid, *txid);
    }
  }

  TempDir dir_;
  int cport_ = 0, aport_ = 0, bport_ = 0;
  std::unique_ptr<Process> coord_, agent_a_, agent_b_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientProtocolTest, InteractiveCommitCarriesTheChosenProtocol) {
  // The default, seen live: 2PC, and it commits once bank_b votes.
  Watched two = Interactive({}, 1);
  EXPECT_FALSE(two.answered_while_stopped) << two.status.ToString();
  ASSERT_TRUE(two.live.has_value()) << coord_->LogTail();
  EXPECT_EQ(two.live->protocol, proto::Protocol::TWO_PC);
  EXPECT_TRUE(two.status.ok()) << two.status.ToString();

  Watched three = Interactive({.protocol = proto::Protocol::THREE_PC}, 2);
  ExpectThreePhaseRequested(three, std::nullopt);  // (Interactive watched only its own txid)
}

TEST_F(ClientProtocolTest, OneShotSubmitCarriesTheChosenProtocol) {
  std::optional<TxId> id;
  Watched two = OneShot({}, 1, &id);
  EXPECT_FALSE(two.answered_while_stopped) << two.status.ToString();
  ASSERT_TRUE(two.live.has_value()) << coord_->LogTail();
  EXPECT_EQ(two.live->protocol, proto::Protocol::TWO_PC);
  EXPECT_TRUE(two.status.ok()) << two.status.ToString();
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(two.live->txid, *id);

  id.reset();
  Watched three = OneShot({.protocol = proto::Protocol::THREE_PC}, 2, &id);
  ExpectThreePhaseRequested(three, id);
}

}  // namespace
}  // namespace txc
