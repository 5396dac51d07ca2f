// The Python route (examples/python, docs/sdk.md, "Python") against real
// processes on loopback: client.py drives a txcoord and txagents; a
// transaction spans a C++ txagent and participant.py and ends the same way on
// both; participant.py killed after its YES vote recovers the branch and
// commits it as the group decided; and participant.py keeps the agent
// contract (duplicates, tombstones, refusals) a coordinator relies on.
//
// The Python side runs as /usr/bin/python3 (Debian's python3-thrift) on the
// code the build generated (TXC_GEN_PY_DIR, the txc_gen_py target).
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "tests/support/process.h"

namespace txc {
namespace {

using testing::CallOnce;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }
std::string Script(const std::string& name) {
  return std::string(TXC_SOURCE_DIR) + "/examples/python/" + name;
}
const std::map<std::string, std::string> kPyEnv = {{"TXC_GEN_PY", TXC_GEN_PY_DIR}};

// Plaintext, whatever TXC_TEST_TLS says: client.py and participant.py speak
// plaintext Thrift only, and the txcoord and txagents here talk to them.
const testing::ScopedPlaintext kPythonSpeaksPlaintext;

// The value of "key": "..." in client.py's --json line ("" when absent).
std::string JsonString(const std::string& out, const std::string& key) {
  std::string needle = "\"" + key + "\": \"";
  size_t at = out.find(needle);
  if (at == std::string::npos) return "";
  at += needle.size();
  return out.substr(at, out.find('"', at) - at);
}

std::optional<TxId> ParseId(const std::string& text) { return ParseTxId(text); }

class PythonSdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cport_ = FreePort();
    // A long vote timeout: the recovery test stops an agent for a while
    // during a commit, and that must not abort it.
    coord_ = std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord", "--vote-timeout-ms", "60000"},
        dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
  }

  std::unique_ptr<Process> Txagent(const std::string& bank, int port,
                                   const std::string& coordinators = "") {
    auto p = std::make_unique<Process>(
        "txagent " + bank,
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                 dir_.path + "/" + bank, "--coordinator",
                                 coordinators.empty() ? Addr(cport_) : coordinators, "--resource",
                                 bank + "=sqlite:" + dir_.path + "/" + bank + ".db"},
        dir_.path + "/" + bank + ".log");
    EXPECT_TRUE(p->Start(port)) << p->LogTail();
    return p;
  }

  std::unique_ptr<Process> PyAgent(const std::string& bank, int port,
                                   const std::string& script = "participant.py",
                                   const std::string& coordinators = "") {
    auto p = std::make_unique<Process>(
        script + " " + bank,
        std::vector<std::string>{"/usr/bin/python3", Script(script), "--listen", Addr(port),
                                 "--data", dir_.path + "/" + bank, "--coordinator",
                                 coordinators.empty() ? Addr(cport_) : coordinators,
                                 "--resource", bank},
        dir_.path + "/" + bank + ".log", kPyEnv);
    EXPECT_TRUE(p->Start(port)) << p->LogTail();
    return p;
  }

  struct Run {
    int status = -1;  // exit code
    std::string out;
  };
  // Runs client.py with `args` (after the coordinator and agent flags) and
  // waits up to 60 s for it.
  Run ClientPy(const std::vector<std::string>& args, const std::string& coordinators = "") {
    std::string log = dir_.path + "/client" + std::to_string(++runs_) + ".out";
    std::vector<std::string> argv{"/usr/bin/python3", Script("client.py"), "--coordinator",
                                  coordinators.empty() ? Addr(cport_) : coordinators, "--timeout",
                                  "5", "--commit-timeout", "10", "--json"};
    for (const auto& [name, addr] : agents_) argv.push_back("--agent=" + name + "=" + addr);
    argv.insert(argv.end(), args.begin(), args.end());
    Process p("client.py", argv, log, kPyEnv);
    Run r;
    if (!p.Start() || !p.WaitExit(60000, &r.status)) {
      ADD_FAILURE() << "client.py did not finish";
      return r;
    }
    r.status = WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    r.out = ss.str();
    return r;
  }

  void Connect() {
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = agents_;
    o.call_timeout = 10 * kSeconds;
    o.commit_timeout = 30 * kSeconds;
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
  }

  // accounts(id, balance) with rows 1..3 at 1000 on every bank.
  void CreateAccounts() {
    for (const auto& [bank, addr] : agents_) {
      auto tx = client_->Begin();
      ASSERT_TRUE(tx.ok()) << tx.status().ToString();
      auto r = tx->Execute(bank, {Sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"),
                                  Sql("INSERT INTO accounts VALUES (1, 1000), (2, 1000), (3, 1000)")});
      ASSERT_TRUE(r.ok()) << bank << ": " << r.status().ToString();
      ASSERT_TRUE(tx->Commit().ok());
      ASSERT_TRUE(WaitBranch(Port(bank), tx->id(), "committed")) << bank;
    }
  }

  int Port(const std::string& bank) const {
    const std::string& a = agents_.at(bank);
    return std::stoi(a.substr(a.rfind(':') + 1));
  }

  // The balance of row `id` at `bank`, read in a transaction of its own.
  // Retried for up to 20 s: a write lock the previous transaction holds
  // until its decision arrives (participant.py) refuses the read meanwhile.
  std::optional<int64_t> Balance(const std::string& bank, int id) {
    for (int attempt = 0; attempt < 40; ++attempt) {
      auto tx = client_->Begin();
      if (!tx.ok()) return std::nullopt;
      auto r = tx->Execute(bank, Sql("SELECT balance FROM accounts WHERE id = ?", {Int(id)}));
      if (r.ok() && r->rows.size() == 1) {
        EXPECT_TRUE(tx->Commit().ok());
        return r->rows[0].values.at(0).i;
      }
      (void)tx->Rollback();
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return std::nullopt;
  }

  // Polls the agent's ListBranches until txid is listed in `state`.
  static bool WaitBranch(int port, const TxId& txid, const std::string& state, int ms = 20000) {
    for (int waited = 0; waited <= ms; waited += 50) {
      auto r = CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
          port, "ListBranches", proto::ListBranchesRequest(), 2 * kSeconds);
      if (r.ok()) {
        for (const auto& b : r->branches) {
          if (b.txid == txid && b.state == state) return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Polls until the agent lists no branch that still holds its write lock
  // (active or prepared): the decision of the last transaction arrived.
  static bool WaitSettled(int port, int ms = 20000) {
    for (int waited = 0; waited <= ms; waited += 50) {
      auto r = CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
          port, "ListBranches", proto::ListBranchesRequest(), 2 * kSeconds);
      if (r.ok() && std::none_of(r->branches.begin(), r->branches.end(), [](const auto& b) {
            return b.state == "active" || b.state == "prepared";
          })) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  TempDir dir_;
  int cport_ = 0;
  int runs_ = 0;
  std::unique_ptr<Process> coord_;
  std::map<std::string, std::string> agents_;
  std::unique_ptr<Client> client_;
};

// (a) client.py's interactive run, one-shot transfer and outcome against a
// txcoord and two txagents; the balances prove what committed.
TEST_F(PythonSdkTest, ClientPyCommitsAndAbortsAgainstTxagents) {
  int aport = FreePort(), bport = FreePort();
  auto a = Txagent("bank_a", aport);
  auto b = Txagent("bank_b", bport);
  agents_ = {{"bank_a", Addr(aport)}, {"bank_b", Addr(bport)}};
  Connect();
  CreateAccounts();

  // Interactive: Begin, Execute on each agent, Commit. The first coordinator
  // address is dead: the client moves on to the next.
  int dead = FreePort();
  Run run = ClientPy({"run", "bank_a!1:UPDATE accounts SET balance = balance - 10 WHERE id = 1",
                      "bank_b!1:UPDATE accounts SET balance = balance + 10 WHERE id = 1"},
                     Addr(dead) + "," + Addr(cport_));
  EXPECT_EQ(run.status, 0) << run.out;
  EXPECT_EQ(JsonString(run.out, "outcome"), "committed") << run.out;

  // One-shot, then its outcome asked separately.
  Run submit = ClientPy({"--one-shot", "transfer", "bank_a:2", "bank_b:2", "25"});
  EXPECT_EQ(submit.status, 0) << submit.out;
  std::string txid = JsonString(submit.out, "txid");
  ASSERT_TRUE(ParseId(txid).has_value()) << submit.out;
  Run outcome = ClientPy({"outcome", txid});
  EXPECT_EQ(outcome.status, 0) << outcome.out;
  EXPECT_EQ(JsonString(outcome.out, "outcome"), "committed") << outcome.out;

  // A transfer the source cannot cover: its checked debit changes no row, the
  // branch votes NO, nothing moves.
  Run refused = ClientPy({"--one-shot", "transfer", "bank_a:3", "bank_b:3", "5000"});
  EXPECT_EQ(refused.status, 1) << refused.out;
  EXPECT_EQ(JsonString(refused.out, "outcome"), "aborted") << refused.out;
  std::string refused_id = JsonString(refused.out, "txid");
  ASSERT_TRUE(ParseId(refused_id).has_value()) << refused.out;
  Run refused_outcome = ClientPy({"outcome", refused_id});
  EXPECT_EQ(JsonString(refused_outcome.out, "outcome"), "aborted") << refused_outcome.out;

  // An interactive statement that fails rolls the transaction back.
  Run failed = ClientPy({"run", "bank_a:UPDATE accounts SET balance = 0 WHERE id = 3",
                         "bank_b:UPDATE no_such_table SET x = 1"});
  EXPECT_EQ(failed.status, 1) << failed.out;

  // query reads through an agent.
  Run query = ClientPy({"query", "bank_a", "SELECT balance FROM accounts WHERE id = 1"});
  EXPECT_EQ(query.status, 0) << query.out;
  EXPECT_NE(query.out.find("[[990]]"), std::string::npos) << query.out;

  EXPECT_EQ(Balance("bank_a", 1), 990);
  EXPECT_EQ(Balance("bank_b", 1), 1010);
  EXPECT_EQ(Balance("bank_a", 2), 975);
  EXPECT_EQ(Balance("bank_b", 2), 1025);
  EXPECT_EQ(Balance("bank_a", 3), 1000);
  EXPECT_EQ(Balance("bank_b", 3), 1000);

  // No coordinator answers: the failure names every address tried.
  int dead2 = FreePort();
  Run down = ClientPy({"--commit-timeout", "2", "outcome", txid}, Addr(dead) + "," + Addr(dead2));
  EXPECT_EQ(down.status, 3) << down.out;
  EXPECT_NE(down.out.find(Addr(dead)), std::string::npos) << down.out;
  EXPECT_NE(down.out.find(Addr(dead2)), std::string::npos) << down.out;
}

// (b) One transaction over a C++ txagent (SQLite) and participant.py commits
// on both; when either side votes NO it aborts on both.
TEST_F(PythonSdkTest, TransactionsSpanTxagentAndParticipantPy) {
  int aport = FreePort(), pport = FreePort();
  auto a = Txagent("bank_a", aport);
  auto py = PyAgent("bank_py", pport);
  agents_ = {{"bank_a", Addr(aport)}, {"bank_py", Addr(pport)}};
  Connect();
  CreateAccounts();

  // Interactive, committed on both.
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_a", SqlExpect("UPDATE accounts SET balance = balance - 7 WHERE id = 1", {}, 1)).ok());
  auto r = tx->Execute("bank_py", SqlExpect("UPDATE accounts SET balance = balance + 7 WHERE id = 1", {}, 1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows_changed, 1);
  ASSERT_TRUE(tx->Commit().ok()) << py->LogTail();
  EXPECT_TRUE(WaitBranch(pport, tx->id(), "committed")) << py->LogTail();

  // One-shot: the C++ side's checked statement finds no row and votes NO.
  auto no_a = client_->Submit(
      {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - 100 WHERE id = 99", {}, 1)}},
       {"bank_py", {SqlExpect("UPDATE accounts SET balance = balance + 100 WHERE id = 1", {}, 1)}}});
  EXPECT_EQ(no_a.status().code(), Status::kAborted) << no_a.status().ToString();
  ASSERT_TRUE(WaitSettled(pport)) << py->LogTail();

  // Interactive: the C++ branch is doomed by a failed expectation, so its
  // PREPARE votes NO; participant.py's work is rolled back.
  auto tx2 = client_->Begin();
  ASSERT_TRUE(tx2.ok());
  auto doomed = tx2->Execute("bank_a", SqlExpect("UPDATE accounts SET balance = 0 WHERE id = 42", {}, 1));
  EXPECT_EQ(doomed.status().code(), Status::kExpectationFailed) << doomed.status().ToString();
  ASSERT_TRUE(tx2->Execute("bank_py", Sql("UPDATE accounts SET balance = balance + 50 WHERE id = 2")).ok());
  Status s2 = tx2->Commit();
  EXPECT_EQ(s2.code(), Status::kAborted) << s2.ToString();
  EXPECT_TRUE(WaitBranch(pport, tx2->id(), "aborted")) << py->LogTail();

  // One-shot: participant.py's checked statement fails and it votes NO.
  auto no_py = client_->Submit(
      {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - 1 WHERE id = 3", {}, 1)}},
       {"bank_py", {SqlExpect("UPDATE accounts SET balance = balance + 1 WHERE id = 77", {}, 1)}}});
  EXPECT_EQ(no_py.status().code(), Status::kAborted) << no_py.status().ToString();

  EXPECT_EQ(Balance("bank_a", 1), 993);
  EXPECT_EQ(Balance("bank_py", 1), 1007);
  EXPECT_EQ(Balance("bank_py", 2), 1000);
  EXPECT_EQ(Balance("bank_a", 3), 1000);
  EXPECT_EQ(Balance("bank_py", 3), 1000);
}

// (c) participant.py killed (SIGKILL) after its YES vote, while the other
// participant has not voted yet; the group commits; the restarted
// participant.py redoes its prepared branch and commits it.
TEST_F(PythonSdkTest, ParticipantPyRecoversAPreparedBranchAfterSigkill) {
  int aport = FreePort(), pport = FreePort();
  auto a = Txagent("bank_a", aport);
  auto py = PyAgent("bank_py", pport);
  agents_ = {{"bank_a", Addr(aport)}, {"bank_py", Addr(pport)}};
  Connect();
  CreateAccounts();

  // bank_a stopped: the transaction waits for its vote.
  ASSERT_EQ(::kill(a->pid(), SIGSTOP), 0);
  auto submitted = std::async(std::launch::async, [&] {
    return client_->Submit(
        {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - 5 WHERE id = 1", {}, 1)}},
         {"bank_py", {SqlExpect("UPDATE accounts SET balance = balance + 5 WHERE id = 1", {}, 1)}}});
  });
  // Killed once the coordinator holds participant.py's YES vote (the leader
  // shows the votes it collected), so the vote surely left before the kill.
  // Undecided transactions only: the accounts' set-up transaction, decided,
  // may still be listed (its END not chosen yet) with a YES of bank_py's.
  std::optional<TxId> prepared;
  for (int waited = 0; waited <= 15000 && !prepared; waited += 50) {
    auto txns = client_->ListTxns("");
    if (txns.ok()) {
      for (const auto& t : *txns) {
        if (t.outcome != proto::Outcome::PENDING) continue;
        for (const auto& p : t.progress) {
          if (p.resource == "bank_py" && p.__isset.vote && p.vote == proto::Vote::YES) {
            prepared = t.txid;
          }
        }
      }
    }
    if (!prepared) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(prepared.has_value()) << py->LogTail();
  ASSERT_TRUE(WaitBranch(pport, *prepared, "prepared", 1000)) << py->LogTail();
  py->Kill(SIGKILL);
  ASSERT_EQ(::kill(a->pid(), SIGCONT), 0);

  auto id = submitted.get();
  ASSERT_TRUE(id.ok()) << id.status().ToString() << "\n" << coord_->LogTail();
  EXPECT_EQ(*id, *prepared);

  py = PyAgent("bank_py", pport);
  EXPECT_TRUE(WaitBranch(pport, *id, "committed", 30000)) << py->LogTail();
  EXPECT_NE(py->LogTail(20000).find("recovered txid=" + ToString(*id)), std::string::npos)
      << py->LogTail();
  EXPECT_EQ(Balance("bank_a", 1), 995);
  EXPECT_EQ(Balance("bank_py", 1), 1005);
  // A duplicate of the decision, after all that, is answered the same.
  proto::DecideRequest d;
  d.txid = *id;
  d.resource = "bank_py";
  d.outcome = proto::Outcome::COMMITTED;
  auto again = CallOnce<proto::DecideRequest, proto::DecideResponse>(pport, "Decide", d);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->status.code, proto::Code::OK) << again->status.message;
}

// The agent contract a coordinator relies on, asked of participant.py
// directly: duplicates answered the same, an ABORT of an unknown txid leaves
// a tombstone, a commit of an unprepared branch is refused, bad input gets a
// clear refusal and an oversized frame only closes its connection.
TEST_F(PythonSdkTest, ParticipantPyKeepsTheAgentContract) {
  int pport = FreePort();
  auto py = PyAgent("bank_py", pport);
  auto exec = [&](int64_t seq, const std::string& sql) {
    proto::ExecuteRequest e;
    e.txid = MakeTxId(1, seq);
    e.resource = "bank_py";
    e.statements = {Sql(sql)};
    return CallOnce<proto::ExecuteRequest, proto::ExecuteResponse>(pport, "Execute", e);
  };
  auto prepare = [&](int64_t seq, std::optional<std::string> work) {
    proto::PrepareRequest p;
    p.txid = MakeTxId(1, seq);
    p.resource = "bank_py";
    if (work) p.__set_work({Sql(*work)});
    return CallOnce<proto::PrepareRequest, proto::PrepareResponse>(pport, "Prepare", p);
  };
  auto decide = [&](int64_t seq, proto::Outcome::type outcome) {
    proto::DecideRequest d;
    d.txid = MakeTxId(1, seq);
    d.resource = "bank_py";
    d.outcome = outcome;
    return CallOnce<proto::DecideRequest, proto::DecideResponse>(pport, "Decide", d);
  };

  auto e1 = exec(1, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)");
  ASSERT_TRUE(e1.ok() && e1->status.code == proto::Code::OK) << py->LogTail();
  EXPECT_GT(e1->incarnation, 0);
  for (int i = 0; i < 2; ++i) {  // PREPARE and its duplicate
    auto p = prepare(1, std::nullopt);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->vote, proto::Vote::YES) << p->reason;
  }
  for (int i = 0; i < 2; ++i) {  // COMMIT and its duplicate
    auto d = decide(1, proto::Outcome::COMMITTED);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->status.code, proto::Code::OK) << d->status.message;
  }

  // An ABORT before anything arrived: OK, and the late one-shot PREPARE votes NO.
  auto d2 = decide(2, proto::Outcome::ABORTED);
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(d2->status.code, proto::Code::OK);
  auto p2 = prepare(2, "INSERT INTO t VALUES (2, 2)");
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->vote, proto::Vote::NO);
  auto e2 = exec(2, "INSERT INTO t VALUES (2, 2)");
  ASSERT_TRUE(e2.ok());
  EXPECT_EQ(e2->status.code, proto::Code::ABORTED) << e2->status.message;

  // A COMMIT for a branch that executed but never prepared is refused.
  auto e3 = exec(3, "INSERT INTO t VALUES (3, 3)");
  ASSERT_TRUE(e3.ok() && e3->status.code == proto::Code::OK);
  auto d3 = decide(3, proto::Outcome::COMMITTED);
  ASSERT_TRUE(d3.ok());
  EXPECT_EQ(d3->status.code, proto::Code::INVALID_ARGUMENT) << d3->status.message;
  // Another branch wanting the same table waits, then is refused: one writer.
  auto e4 = exec(4, "UPDATE t SET v = 9 WHERE id = 3");
  ASSERT_TRUE(e4.ok());
  EXPECT_EQ(e4->status.code, proto::Code::LOCK_TIMEOUT) << e4->status.message;
  EXPECT_NE(e4->status.message.find("1.3"), std::string::npos) << e4->status.message;
  EXPECT_EQ(decide(3, proto::Outcome::ABORTED)->status.code, proto::Code::OK);

  // Bad input: refused, naming the problem.
  proto::ExecuteRequest bad;
  bad.txid = MakeTxId(1, -3);
  bad.resource = "bank_py";
  bad.statements = {Sql("SELECT 1")};
  auto b1 = CallOnce<proto::ExecuteRequest, proto::ExecuteResponse>(pport, "Execute", bad);
  ASSERT_TRUE(b1.ok());
  EXPECT_EQ(b1->status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(b1->status.message.find("txid.seq = -3"), std::string::npos) << b1->status.message;
  bad.txid = MakeTxId(1, 5);
  bad.resource = "elsewhere";
  auto b2 = CallOnce<proto::ExecuteRequest, proto::ExecuteResponse>(pport, "Execute", bad);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(b2->status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(b2->status.message.find("elsewhere"), std::string::npos) << b2->status.message;
  auto b3 = exec(6, "COMMIT");
  ASSERT_TRUE(b3.ok());
  EXPECT_EQ(b3->status.code, proto::Code::SQL_ERROR) << b3->status.message;

  // A frame longer than the limit closes that connection only.
  testing::SendRaw(pport, std::string("\x7f\xff\xff\xff", 4) + "garbage");
  auto alive = CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
      pport, "ListBranches", proto::ListBranchesRequest());
  ASSERT_TRUE(alive.ok()) << py->LogTail();
  EXPECT_EQ(alive->status.code, proto::Code::OK);
}

// A three-replica coordinator group: client.py given only a follower's
// address follows NOT_LEADER's hint to the leader, for a transaction over a
// txagent and participant.py, and for its outcome.
TEST_F(PythonSdkTest, ClientPyFollowsTheLeaderOfAGroup) {
  std::vector<int> ports{FreePort(), FreePort(), FreePort()};
  std::string peers, all;
  for (size_t i = 0; i < ports.size(); ++i) {
    peers += (i ? "," : "") + std::to_string(i + 1) + "=" + Addr(ports[i]);
    all += (i ? "," : "") + Addr(ports[i]);
  }
  std::vector<std::unique_ptr<Process>> replicas;
  for (size_t i = 0; i < ports.size(); ++i) {
    std::string id = std::to_string(i + 1);
    replicas.push_back(std::make_unique<Process>(
        "txcoord " + id,
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--id", id, "--listen", Addr(ports[i]),
                                 "--peers", peers, "--data", dir_.path + "/g" + id},
        dir_.path + "/g" + id + ".log"));
    ASSERT_TRUE(replicas.back()->Start(ports[i])) << replicas.back()->LogTail();
  }
  int leader = 0;  // the index of the replica that says it leads
  for (int waited = 0; waited <= 20000 && leader == 0; waited += 100) {
    for (size_t i = 0; i < ports.size(); ++i) {
      auto s = CallOnce<proto::StatusRequest, proto::StatusResponse>(ports[i], "Status",
                                                                     proto::StatusRequest());
      if (s.ok() && s->leader_id != 0 && s->leader_id == s->replica_id) leader = s->replica_id;
    }
    if (leader == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(leader, 0) << replicas[0]->LogTail();
  std::string follower = Addr(ports[leader % ports.size()]);  // the next one

  int aport = FreePort(), pport = FreePort();
  auto a = Txagent("bank_a", aport, all);
  auto py = PyAgent("bank_py", pport, "participant.py", all);
  agents_ = {{"bank_a", Addr(aport)}, {"bank_py", Addr(pport)}};
  Run created = ClientPy({"run", "bank_a:CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER)",
                          "bank_a:INSERT INTO accounts VALUES (1, 1000)",
                          "bank_py:CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER)",
                          "bank_py:INSERT INTO accounts VALUES (1, 1000)"},
                         follower);
  ASSERT_EQ(created.status, 0) << created.out;
  Run moved = ClientPy({"--one-shot", "transfer", "bank_a:1", "bank_py:1", "30"}, follower);
  ASSERT_EQ(moved.status, 0) << moved.out;
  Run outcome = ClientPy({"outcome", JsonString(moved.out, "txid")}, follower);
  EXPECT_EQ(JsonString(outcome.out, "outcome"), "committed") << outcome.out;
  Run a1 = ClientPy({"query", "bank_a", "SELECT balance FROM accounts WHERE id = 1"}, follower);
  EXPECT_NE(a1.out.find("[[970]]"), std::string::npos) << a1.out;
  Run p1;
  for (int attempt = 0; attempt < 20; ++attempt) {  // until the commit reached participant.py
    p1 = ClientPy({"query", "bank_py", "SELECT balance FROM accounts WHERE id = 1"}, follower);
    if (p1.status == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_NE(p1.out.find("[[1030]]"), std::string::npos) << p1.out;
}

// broken_participant.py has the two bugs a conformance kit must catch: a
// YES vote that a crash forgets, and no tombstone for an early ABORT.
TEST_F(PythonSdkTest, BrokenParticipantPyHasItsBugs) {
  int pport = FreePort();
  auto py = PyAgent("bank_py", pport, "broken_participant.py");
  auto prepare = [&](int64_t seq, const std::string& work) {
    proto::PrepareRequest p;
    p.txid = MakeTxId(1, seq);
    p.resource = "bank_py";
    p.__set_work({Sql(work)});
    return CallOnce<proto::PrepareRequest, proto::PrepareResponse>(pport, "Prepare", p);
  };
  proto::DecideRequest d;
  d.txid = MakeTxId(1, 1);
  d.resource = "bank_py";
  d.outcome = proto::Outcome::ABORTED;
  auto aborted = CallOnce<proto::DecideRequest, proto::DecideResponse>(pport, "Decide", d);
  ASSERT_TRUE(aborted.ok() && aborted->status.code == proto::Code::OK) << py->LogTail();
  auto late = prepare(1, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->vote, proto::Vote::YES) << "the tombstone bug is gone: " << late->reason;

  // Its YES vote does not survive a crash: the COMMIT finds nothing.
  py->Kill(SIGKILL);
  py = PyAgent("bank_py", pport, "broken_participant.py");
  d.outcome = proto::Outcome::COMMITTED;
  auto commit = CallOnce<proto::DecideRequest, proto::DecideResponse>(pport, "Decide", d);
  ASSERT_TRUE(commit.ok()) << py->LogTail();
  EXPECT_EQ(commit->status.code, proto::Code::NOT_FOUND) << commit->status.message;
}

}  // namespace
}  // namespace txc
