// A decision nobody can attribute to the coordinator group: in plaintext
// mode anyone who reaches an agent's port can send Agent.Decide. A real
// txcoord and txagent: a branch prepared outside the group's knowledge, then
// a forged COMMIT and a forged ABORT, each refused with the group's answer
// named, the balances unchanged, and the transactions the group decides
// still ending as decided. The agent runs with its defaults: plaintext, so it
// confirms every decision with the group (txagent --confirm-decisions auto,
// BranchCore's AgentOptions::confirm_decisions), unless it is signed under
// the key the agent registered with its outcome queries (--sign-decisions
// on): the group's decisions after the first are; a forger's MAC is not.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <thread>

#include "client/client.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace txc {
namespace {

using testing::CallOnce;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

// Plaintext, whatever TXC_TEST_TLS says: the forgery this file shows is the
// plaintext mode's (anyone reaching the port may call Decide). With TLS on
// the authorization table refuses it first (tls_test.cc,
// ClientCannotDecideAPreparedBranch).
const testing::ScopedPlaintext kPlaintextForging;

class ForgedDecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cport_ = FreePort();
    aport_ = FreePort();
    mport_ = FreePort();
    coord_ = std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord"},
        dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    agent_ = std::make_unique<Process>(
        "txagent",
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(aport_), "--data",
                                 dir_.path + "/agent", "--coordinator", Addr(cport_), "--resource",
                                 "bank_a=sqlite:" + dir_.path + "/bank_a.db", "--metrics-listen",
                                 Addr(mport_)},
        dir_.path + "/agent.log");
    ASSERT_TRUE(agent_->Start(aport_)) << agent_->LogTail();
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = {{"bank_a", Addr(aport_)}};
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
    auto tx = client_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE(tx->Execute("bank_a", {Sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"),
                                       Sql("INSERT INTO accounts VALUES (1, 100), (2, 100)")})
                    .ok());
    ASSERT_TRUE(tx->Commit().ok());
  }

  int64_t Balance(int64_t id) {
    for (int attempt = 0; attempt < 50; ++attempt) {  // a read may meet a lock being released
      auto tx = client_->Begin();
      if (!tx.ok()) continue;
      auto r = tx->Execute("bank_a", Sql("SELECT balance FROM accounts WHERE id = ?", {Int(id)}));
      (void)tx->Rollback();
      if (r.ok() && !r->rows.empty()) return r->rows[0].values[0].i;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }

  // Reads take no locks (README: a read may see another transaction's
  // uncommitted change), and a plaintext agent applies even the group's ABORT
  // only after confirming it, a round trip after the client's Rollback
  // returned. So a rolled-back change is read until then: wait (10 s at
  // most) for the balance to be `want`; a committed change never goes back.
  int64_t BalanceOnceSettled(int64_t id, int64_t want) {
    int64_t b = Balance(id);
    for (int i = 0; i < 100 && b != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      b = Balance(id);
    }
    return b;
  }

  // Someone votes the client's branch YES behind the coordinator's back:
  // Agent.Prepare straight to the agent. True when it voted YES.
  bool PrepareBehindTheGroup(const TxId& txid) {
    proto::PrepareRequest p;
    p.txid = txid;
    p.resource = "bank_a";
    auto vote = CallOnce<proto::PrepareRequest, proto::PrepareResponse>(aport_, "Prepare", p);
    EXPECT_TRUE(vote.ok()) << vote.status().ToString();
    if (vote.ok() && vote->vote != proto::Vote::YES) ADD_FAILURE() << vote->reason;
    return vote.ok() && vote->vote == proto::Vote::YES;
  }

  // The agent's counter `name` (its /metrics page); NaN when unreadable.
  double Counter(const std::string& name) {
    auto r = testing::HttpGet(mport_, "/metrics");
    if (!r.ok()) return std::nan("");
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.compare(0, name.size() + 1, name + " ") == 0) return std::stod(line.substr(name.size() + 1));
    }
    return std::nan("");
  }

  // Counter(name) once it is at least `want` (polled for up to 5 s): decisions
  // reach the agent after the client's Commit returned.
  double WaitCounterAtLeast(const std::string& name, double want) {
    double v = Counter(name);
    for (int i = 0; i < 100 && !(v >= want); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      v = Counter(name);
    }
    return v;
  }

  proto::DecideResponse Decide(const TxId& txid, proto::Outcome::type outcome,
                               std::optional<int64_t> mac = std::nullopt) {
    proto::DecideRequest d;
    d.txid = txid;
    d.resource = "bank_a";
    d.outcome = outcome;
    if (mac) d.__set_decision_mac(*mac);
    auto r = CallOnce<proto::DecideRequest, proto::DecideResponse>(aport_, "Decide", d, 10 * kSeconds);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : proto::DecideResponse();
  }

  TempDir dir_;
  int cport_ = 0, aport_ = 0, mport_ = 0;
  std::unique_ptr<Process> coord_, agent_;
  std::unique_ptr<Client> client_;
};

// A transaction the client is still running: someone prepares its branch
// behind the coordinator's back and sends COMMIT. The group says PENDING:
// not applied (UNAVAILABLE); the client's rollback then ends it, nothing
// applied.
TEST_F(ForgedDecisionTest, AForgedCommitOfAnUndecidedTransactionIsRefused) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance + 1000 WHERE id = 1")).ok());
  ASSERT_TRUE(PrepareBehindTheGroup(tx->id()));

  proto::DecideResponse forged = Decide(tx->id(), proto::Outcome::COMMITTED);
  EXPECT_EQ(forged.status.code, proto::Code::UNAVAILABLE) << forged.status.message;
  EXPECT_NE(forged.status.message.find("the coordinator group says pending"), std::string::npos)
      << forged.status.message;

  Status rb = tx->Rollback();
  EXPECT_TRUE(rb.ok()) << rb.ToString();
  EXPECT_EQ(BalanceOnceSettled(1, 100), 100);
}

// A transaction the group aborted (the client rolled it back) after someone
// prepared its branch: the group's ABORT (from a plaintext caller too) is
// confirmed and applied, and a forged COMMIT afterwards is refused.
TEST_F(ForgedDecisionTest, AForgedCommitOfAnAbortedTransactionIsRefused) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 60 WHERE id = 2")).ok());
  ASSERT_TRUE(PrepareBehindTheGroup(tx->id()));
  TxId id = tx->id();
  Status rb = tx->Rollback();
  ASSERT_TRUE(rb.ok()) << rb.ToString();
  proto::DecideResponse forged = Decide(id, proto::Outcome::COMMITTED);
  EXPECT_NE(forged.status.code, proto::Code::OK) << forged.status.message;
  EXPECT_TRUE(forged.__isset.refused && forged.refused) << forged.status.message;
  EXPECT_EQ(BalanceOnceSettled(2, 100), 100);
}

// The decisions the group really makes still apply (each confirmed).
TEST_F(ForgedDecisionTest, TheGroupsOwnDecisionsStillApply) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 30 WHERE id = 1")).ok());
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance + 30 WHERE id = 2")).ok());
  Status c = tx->Commit();
  ASSERT_TRUE(c.ok()) << c.ToString();
  EXPECT_EQ(Balance(1), 70);
  EXPECT_EQ(Balance(2), 130);
}

// The set-up's transaction was confirmed (the group held no key yet); that
// query registered the agent's key, so the group's later decisions are
// signed and applied without asking.
TEST_F(ForgedDecisionTest, TheGroupsDecisionsAfterTheFirstAreSigned) {
  // The set-up's Commit returned once DECIDE was chosen; its COMMIT is
  // delivered and confirmed after that.
  const double confirmed = WaitCounterAtLeast("txagent_decisions_confirmed_total", 1);
  ASSERT_EQ(confirmed, 1) << "the set-up's COMMIT was not confirmed";
  for (int i = 0; i < 3; ++i) {
    auto tx = client_->Begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 1")).ok());
    Status c = tx->Commit();
    ASSERT_TRUE(c.ok()) << c.ToString();
  }
  EXPECT_EQ(Balance(1), 103);
  EXPECT_EQ(WaitCounterAtLeast("txagent_decisions_signed_total", 3), 3);
  EXPECT_EQ(Counter("txagent_decisions_confirmed_total"), confirmed);
}

// A forger who reaches the port but never saw the key, on a branch it
// prepared behind the group's back: whatever MAC it puts on a COMMIT, the
// decision is confirmed with the group (which says pending) and not applied.
TEST_F(ForgedDecisionTest, AForgedCommitWithAMacOfItsOwnIsConfirmedNotApplied) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 60 WHERE id = 2")).ok());
  ASSERT_TRUE(PrepareBehindTheGroup(tx->id()));
  const double signed_before = Counter("txagent_decisions_signed_total");
  for (int64_t mac : {int64_t{1}, int64_t{0x5eed5eed5eed5eed}, int64_t{-1}}) {
    proto::DecideResponse forged = Decide(tx->id(), proto::Outcome::COMMITTED, mac);
    EXPECT_EQ(forged.status.code, proto::Code::UNAVAILABLE) << forged.status.message;
    EXPECT_NE(forged.status.message.find("the coordinator group says pending"), std::string::npos)
        << forged.status.message;
  }
  EXPECT_EQ(Counter("txagent_decisions_signed_total"), signed_before);
  Status rb = tx->Rollback();
  EXPECT_TRUE(rb.ok()) << rb.ToString();
  EXPECT_EQ(BalanceOnceSettled(2, 100), 100);
}

// A typo in a decision flag is refused (exit 2, naming the flag) before the
// agent opens a resource or makes its data directory. An --advertise longer
// than the group accepts in an outcome query's key (validate.h) would cost
// the agent every outcome answer: refused too. So are the other flags that
// were checked only after the resources were opened (and the incarnation
// bumped) before 2026-12-06.
TEST_F(ForgedDecisionTest, ABadFlagIsRefusedBeforeAnythingIsOpened) {
  const std::string too_long = std::string(300, 'h') + ":7101";
  for (const auto& [flag, value] : {std::pair<std::string, std::string>{"--confirm-decisions", "maybe"},
                                    {"--sign-decisions", "maybe"},
                                    {"--advertise", too_long},
                                    {"--advertise", "no-port"},
                                    {"--rpc-unix-socket", "maybe"},
                                    {"--rpc-idle-timeout", "0s"},
                                    {"--max-branch-statements", "0"},
                                    {"--db-pool-size", "0"},
                                    {"--autonomous-termination-timeout", "soon"}}) {
    const std::string data = dir_.path + "/typo-data", db = dir_.path + "/typo.db";
    Process bad("txagent",
                {TXC_BIN_DIR "/txagent", "--listen", Addr(FreePort()), "--data", data,
                 "--coordinator", Addr(cport_), "--resource", "typo=sqlite:" + db, flag, value},
                dir_.path + "/typo.log");
    ASSERT_TRUE(bad.Start());
    int status = 0;
    ASSERT_TRUE(bad.WaitExit(10000, &status)) << bad.LogTail();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << bad.LogTail();
    EXPECT_NE(bad.LogTail().find(flag + " wants"), std::string::npos) << bad.LogTail();
    EXPECT_FALSE(std::filesystem::exists(db)) << flag;
    EXPECT_FALSE(std::filesystem::exists(data)) << flag;
  }
}

}  // namespace
}  // namespace txc
