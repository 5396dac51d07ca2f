// txadmin against real processes: a group of three txcoord replicas and a
// txagent with two resources, on loopback, while transfers run. status with
// every replica up and with the leader killed (the followers still name it
// and its epoch; it is listed unreachable), agent branches (all and
// --in-doubt, with a branch held prepared), and wal dump of the agent's
// resource database and of a replica's Paxos log while both are written.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "client/client.h"
#include "common/txid.h"
#include "tests/support/process.h"

namespace txc {
namespace {

using nlohmann::json;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

constexpr int kAccounts = 20;
// Long enough that followers still name a killed leader while txadmin asks
// them (they elect another only after hearing nothing this long).
constexpr const char* kElectionTimeoutMs = "2000";

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Ran {
  int code = -1;
  std::string out, err;
};

class TxadminClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) ports_.push_back(FreePort());
    std::string peers;
    for (int i = 0; i < 3; ++i) {
      peers += (i ? "," : "") + std::to_string(i + 1) + "=" + Addr(ports_[i]);
      coordinators_ += (i ? "," : "") + Addr(ports_[i]);
    }
    for (int i = 0; i < 3; ++i) {
      std::string id = std::to_string(i + 1);
      replicas_.push_back(std::make_unique<Process>(
          "txcoord " + id,
          std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--id", id, "--listen", Addr(ports_[i]),
                                   "--peers", peers, "--data", dir_.path + "/c" + id,
                                   "--election-timeout-ms", kElectionTimeoutMs},
          dir_.path + "/c" + id + ".log"));
      ASSERT_TRUE(replicas_.back()->Start(ports_[i])) << replicas_.back()->LogTail();
    }
    aport_ = FreePort();
    agent_ = std::make_unique<Process>(
        "txagent",
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(aport_), "--data",
                                 dir_.path + "/agent", "--coordinator", coordinators_, "--resource",
                                 "bank_a=sqlite:" + dir_.path + "/bank_a.db", "--resource",
                                 "bank_b=sqlite:" + dir_.path + "/bank_b.db"},
        dir_.path + "/agent.log");
    ASSERT_TRUE(agent_->Start(aport_)) << agent_->LogTail();
    ClientOptions o;
    for (int p : ports_) o.coordinators.push_back(Addr(p));
    o.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(aport_)}};
    o.commit_timeout = 20 * kSeconds;
    o.tls = testing::TestTls(authz::Role::kClient);
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
    for (const char* bank : {"bank_a", "bank_b"}) {
      Status s;
      for (int attempt = 0; attempt < 200; ++attempt) {  // until a leader serves
        auto tx = client_->Begin();
        s = tx.status();
        if (tx.ok()) {
          auto r = tx->Execute(bank, {Sql("CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, "
                                          "balance INTEGER NOT NULL)"),
                                      Sql("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                                          "WHERE x < ?) INSERT INTO accounts SELECT x, 1000 FROM n",
                                          {Int(kAccounts)})});
          s = r.ok() ? tx->Commit() : r.status();
        }
        if (s.ok()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  void TearDown() override { StopLoad(); }

  Result<TxId> Transfer(int64_t amount, int64_t from, int64_t to) {
    return client_->Submit(
        {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ?", {Int(amount), Int(from)}, 1)}},
         {"bank_b", {SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?", {Int(amount), Int(to)}, 1)}}});
  }

  // Transfers in the background until StopLoad, so the logs are written
  // while txadmin reads them.
  void StartLoad() {
    load_ = std::thread([this] {
      std::mt19937 rng(7);
      while (!stop_) {
        // Accounts 11..20 only: the branch held prepared below locks account 1.
        (void)Transfer(1, 11 + rng() % 10, 11 + rng() % 10);
        ++load_done_;
      }
    });
  }
  void StopLoad() {
    stop_ = true;
    if (load_.joinable()) load_.join();
  }

  // Runs the txadmin binary; its stdout and stderr apart.
  Ran Txadmin(std::vector<std::string> args) {
    std::string out = dir_.path + "/txadmin.out", err = dir_.path + "/txadmin.err";
    args.insert(args.begin(), TXC_BIN_DIR "/txadmin");
    args = testing::WithTestTls(std::move(args));  // an admin certificate when TLS is on
    pid_t pid = fork();
    if (pid == 0) {
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(o, 1);
      dup2(e, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    Ran r;
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status)) r.code = WEXITSTATUS(status);
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }

  // Parses txadmin's --json output; a test failure (and null) if it is not JSON.
  static json Parse(const Ran& r) {
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
    return j;
  }

  // The replica that says it leads, by its own answer; 0 if none (yet).
  int WaitLeader(int ms) {
    for (int waited = 0; waited <= ms; waited += 50) {
      for (size_t i = 0; i < ports_.size(); ++i) {
        auto s = client_->ClusterStatus(Addr(ports_[i]));
        if (s.ok() && s->leader_id != 0 && s->leader_id == s->replica_id) return s->replica_id;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }

  TempDir dir_;
  std::vector<int> ports_;
  std::string coordinators_;
  std::vector<std::unique_ptr<Process>> replicas_;
  std::unique_ptr<Process> agent_;
  int aport_ = 0;
  std::unique_ptr<Client> client_;
  std::thread load_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> load_done_{0};
};

TEST_F(TxadminClusterTest, StatusBranchesAndWalDumpOnALiveGroup) {
  std::vector<TxId> committed;
  for (int i = 0; i < 3; ++i) {
    auto t = Transfer(5, 1 + i, 1 + i);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    committed.push_back(*t);
  }
  // A branch held prepared: work at bank_a, then PREPARE straight to the
  // agent (the group never hears a commit, so it waits in doubt).
  auto held = client_->Begin();
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_TRUE(held->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 1 WHERE id = 1")).ok());
  proto::PrepareRequest prep;
  prep.txid = held->id();
  prep.resource = "bank_a";
  proto::Participant pa;
  pa.resource = "bank_a";
  pa.address = Addr(aport_);
  prep.participants = {pa};
  auto vote = testing::CallOnce<proto::PrepareRequest, proto::PrepareResponse>(aport_, "Prepare", prep);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  ASSERT_EQ(vote->vote, proto::Vote::YES) << vote->reason;
  std::string held_id = ToString(held->id());

  int leader = WaitLeader(10000);
  ASSERT_NE(leader, 0);

  // status, every replica up.
  Ran st = Txadmin({"--coordinator", coordinators_, "status", "--json"});
  ASSERT_EQ(st.code, 0) << st.err;
  json s = Parse(st);
  EXPECT_EQ(s["leader"], leader);
  EXPECT_EQ(s["leader_reachable"], true);
  EXPECT_GE(s["epoch"].get<int64_t>(), 1);
  ASSERT_EQ(s["replicas"].size(), 3u);
  EXPECT_EQ(s["unreachable"].size(), 0u);
  for (const auto& r : s["replicas"]) {
    EXPECT_EQ(r["leader_id"], leader);
    EXPECT_EQ(r["role"], r["id"] == leader ? "leader" : "follower");
  }
  Ran table = Txadmin({"--coordinator", coordinators_, "status"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("leader: " + std::to_string(leader) + " ("), std::string::npos) << table.out;

  // agent branches: every branch, and only the one in doubt.
  Ran br = Txadmin({"agent", Addr(aport_), "branches", "--json"});
  ASSERT_EQ(br.code, 0) << br.err;
  json branches = Parse(br);
  ASSERT_TRUE(branches.is_array());
  auto find = [&](const json& list, const std::string& txid, const std::string& resource) {
    for (const auto& b : list) {
      if (b["txid"] == txid && b["resource"] == resource) return b;
    }
    return json();
  };
  for (const TxId& t : committed) {
    for (const char* resource : {"bank_a", "bank_b"}) {
      json b = find(branches, ToString(t), resource);
      ASSERT_FALSE(b.is_null()) << ToString(t) << " " << resource << ": " << br.out;
      EXPECT_EQ(b["state"], "committed");
      EXPECT_GE(b["age_ms"].get<int64_t>(), 0);
    }
  }
  EXPECT_EQ(find(branches, held_id, "bank_a")["state"], "prepared") << br.out;
  Ran doubt = Txadmin({"agent", Addr(aport_), "branches", "--in-doubt", "--json"});
  ASSERT_EQ(doubt.code, 0) << doubt.err;
  json in_doubt = Parse(doubt);
  ASSERT_EQ(in_doubt.size(), 1u) << doubt.out;
  EXPECT_EQ(in_doubt[0]["txid"], held_id);
  EXPECT_EQ(in_doubt[0]["resource"], "bank_a");
  EXPECT_EQ(in_doubt[0]["in_doubt"], true);
  Ran human = Txadmin({"agent", Addr(aport_), "branches", "--in-doubt"});
  EXPECT_NE(human.out.find(held_id), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("(1 branches)"), std::string::npos) << human.out;

  // wal dump of the agent's resource database, written by the load meanwhile.
  StartLoad();
  Ran wa = Txadmin({"wal", "dump", dir_.path + "/bank_a.db", "--json"});
  ASSERT_EQ(wa.code, 0) << wa.err;
  json dump = Parse(wa);
  EXPECT_EQ(dump["kind"], "agent-branch-log");
  json prepared;
  for (const auto& b : dump["branches"]) {
    if (b["txid"] == held_id) prepared = b;
  }
  ASSERT_FALSE(prepared.is_null()) << wa.out.substr(0, 2000);
  EXPECT_EQ(prepared["state"], "PREPARED");
  ASSERT_EQ(prepared["participants"].size(), 1u);
  EXPECT_EQ(prepared["participants"][0]["address"], Addr(aport_));
  ASSERT_EQ(prepared["changes"].size(), 1u);  // its undo, kept until the outcome
  EXPECT_EQ(prepared["changes"][0]["lock_keys"], 1);
  Ran one = Txadmin({"wal", "dump", dir_.path + "/bank_a.db", "--txid", ToString(committed[0]), "--json"});
  ASSERT_EQ(one.code, 0) << one.err;
  json only = Parse(one);
  ASSERT_EQ(only["branches"].size(), 1u) << one.out;
  EXPECT_EQ(only["branches"][0]["state"], "COMMITTED");
  EXPECT_FALSE(only["branches"][0]["updated"].is_null());

  // wal dump of the leader's Paxos log, by its data directory.
  std::string leader_dir = dir_.path + "/c" + std::to_string(leader);
  Ran wc = Txadmin({"wal", "dump", leader_dir, "--txid", ToString(committed[1]), "--json"});
  ASSERT_EQ(wc.code, 0) << wc.err;
  json log = Parse(wc);
  EXPECT_EQ(log["kind"], "coordinator-paxos-log");
  EXPECT_EQ(log["path"], leader_dir + "/paxos.log");
  bool decided = false;
  for (const auto& r : log["records"]) {
    EXPECT_TRUE(r.contains("ballot"));
    for (const auto& c : r["commands"]) {
      EXPECT_EQ(c["txid"], ToString(committed[1]));
      if (c["type"] == "DECIDE") {
        decided = true;
        EXPECT_EQ(c["outcome"], "committed");
        EXPECT_EQ(c["participants"].size(), 2u);
      }
    }
  }
  EXPECT_TRUE(decided) << wc.out;
  Ran text = Txadmin({"wal", "dump", leader_dir + "/paxos.log"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("DECIDE " + ToString(committed[0]) + " committed"), std::string::npos);
  StopLoad();
  EXPECT_GT(load_done_.load(), 0);

  // The leader dies: the followers still name it and its epoch, and status
  // lists it unreachable (until they elect another, an election timeout on).
  json before = Parse(Txadmin({"--coordinator", coordinators_, "status", "--json"}));
  ASSERT_EQ(before["leader_reachable"], true) << before.dump();
  leader = before["leader"].get<int>();
  int64_t epoch = before["epoch"].get<int64_t>();
  replicas_[leader - 1]->Kill(SIGKILL);
  Ran dead = Txadmin({"--coordinator", coordinators_, "status", "--json"});
  ASSERT_EQ(dead.code, 0) << dead.err;
  json d = Parse(dead);
  EXPECT_EQ(d["leader"], leader) << dead.out;
  EXPECT_EQ(d["epoch"], epoch) << dead.out;
  EXPECT_EQ(d["leader_reachable"], false);
  EXPECT_EQ(d["leader_address"], Addr(ports_[leader - 1]));
  ASSERT_EQ(d["replicas"].size(), 2u);
  // Each follower names it, or has just started an election (leader 0): a
  // follower that sees its connection to the leader closed campaigns after
  // at most a heartbeat, not an election timeout (seen once under ctest -j2).
  int naming = 0;
  for (const auto& r : d["replicas"]) {
    EXPECT_TRUE(r["leader_id"] == leader || r["leader_id"] == 0) << dead.out;
    naming += r["leader_id"] == leader ? 1 : 0;
  }
  EXPECT_GE(naming, 1) << dead.out;
  ASSERT_EQ(d["unreachable"].size(), 1u);
  EXPECT_EQ(d["unreachable"][0]["id"], leader);
  EXPECT_EQ(d["unreachable"][0]["leader"], true);
  EXPECT_EQ(d["unreachable"][0]["address"], Addr(ports_[leader - 1]));
  Ran dead_table = Txadmin({"--coordinator", coordinators_, "status"});
  EXPECT_EQ(dead_table.code, 0);
  EXPECT_NE(dead_table.out.find("UNREACHABLE"), std::string::npos) << dead_table.out;

  // A new leader: reachable, a newer epoch; the dead one still unreachable.
  int next = 0;
  for (int waited = 0; waited <= 20000 && next == 0; waited += 100) {
    json n = Parse(Txadmin({"--coordinator", coordinators_, "status", "--json"}));
    if (n["leader_reachable"] == true) {
      next = n["leader"].get<int>();
      EXPECT_GT(n["epoch"].get<int64_t>(), epoch);
      EXPECT_EQ(n["unreachable"].size(), 1u);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_NE(next, 0) << "no new leader within 20 s";
  EXPECT_NE(next, leader);

  // The whole group gone: an error (exit 1) that says what to check.
  for (auto& r : replicas_) r->Kill(SIGKILL);
  Ran none = Txadmin({"--coordinator", coordinators_, "status"});
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("no coordinator replica answered"), std::string::npos) << none.err;
}

// An operator's heuristic decision at the agent, end to end: a branch held
// prepared (the group has not decided) is rolled back with `agent resolve`,
// listed under `branches --heuristic` (group outcome unknown while the group
// says pending), refused a second time, reconciled once the group aborts the
// transaction (agreed), kept across an agent restart (it is in the resource's
// WAL, and `wal dump` shows it), and cleared by `agent forget`.
TEST_F(TxadminClusterTest, HeuristicAbortAtTheAgentIsRecordedReconciledAndForgotten) {
  auto held = client_->Begin();
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_TRUE(held->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 7 WHERE id = 2")).ok());
  proto::PrepareRequest prep;
  prep.txid = held->id();
  prep.resource = "bank_a";
  proto::Participant pa;
  pa.resource = "bank_a";
  pa.address = Addr(aport_);
  prep.participants = {pa};
  auto vote = testing::CallOnce<proto::PrepareRequest, proto::PrepareResponse>(aport_, "Prepare", prep);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  ASSERT_EQ(vote->vote, proto::Vote::YES) << vote->reason;
  const std::string id = ToString(held->id());

  // Usage errors change nothing.
  EXPECT_EQ(Txadmin({"agent", Addr(aport_), "resolve", id, "--abort", "--yes"}).code, 2);
  EXPECT_EQ(Txadmin({"agent", Addr(aport_), "resolve", id, "--abort", "--commit", "--reason", "x",
                     "--yes"}).code, 2);
  Ran unknown = Txadmin({"agent", Addr(aport_), "resolve", "9.99", "--abort", "--reason", "x", "--yes"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("no branch of 9.99"), std::string::npos) << unknown.err;

  Ran r = Txadmin({"agent", Addr(aport_), "resolve", id, "--abort", "--reason", "group unreachable",
                   "--who", "tester", "--yes", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json decided = Parse(r);
  ASSERT_EQ(decided.size(), 1u) << r.out;
  EXPECT_EQ(decided[0]["state"], "aborted");
  EXPECT_EQ(decided[0]["heuristic"]["outcome"], "aborted");
  EXPECT_EQ(decided[0]["heuristic"]["who"], "tester");

  auto heuristic = [&](const std::string& want_agreement, int wait_ms) {
    json row;
    for (int waited = 0; waited <= wait_ms; waited += 100) {
      Ran h = Txadmin({"agent", Addr(aport_), "branches", "--heuristic", "--json"});
      EXPECT_EQ(h.code, 0) << h.err;
      row = json();
      for (const auto& b : Parse(h)) {
        if (b["txid"] == id) row = b;
      }
      if (!row.is_null() && row["heuristic"]["agreement"] == want_agreement) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return row;
  };
  json row = heuristic("unknown", 0);
  ASSERT_FALSE(row.is_null());
  EXPECT_EQ(row["resource"], "bank_a");
  EXPECT_EQ(row["heuristic"]["reason"], "group unreachable");
  EXPECT_TRUE(row["heuristic"]["group_outcome"].is_null()) << row.dump();
  // The group still has it open: its word is PENDING, so nothing to compare yet.
  Ran again = Txadmin({"agent", Addr(aport_), "resolve", id, "--commit", "--reason", "x", "--yes"});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already decided heuristically"), std::string::npos) << again.err;

  // The application gives up: the group aborts, the agent hears it: agreed.
  (void)held->Rollback();
  row = heuristic("agreed", 10000);
  EXPECT_EQ(row["heuristic"]["agreement"], "agreed") << row.dump();
  EXPECT_EQ(row["heuristic"]["group_outcome"], "aborted");

  // In the resource's WAL: it survives a restart of the agent.
  Ran dump = Txadmin({"wal", "dump", dir_.path + "/bank_a.db", "--txid", id, "--json"});
  ASSERT_EQ(dump.code, 0) << dump.err;
  json d = Parse(dump);
  ASSERT_EQ(d["heuristics"].size(), 1u) << dump.out;
  EXPECT_EQ(d["heuristics"][0]["outcome"], "aborted");
  agent_->Kill(SIGKILL);
  ASSERT_TRUE(agent_->Start(aport_)) << agent_->LogTail();
  row = heuristic("agreed", 10000);
  EXPECT_EQ(row["heuristic"]["agreement"], "agreed") << row.dump();

  Ran forget = Txadmin({"agent", Addr(aport_), "forget", id, "--reason", "checked by hand", "--yes"});
  EXPECT_EQ(forget.code, 0) << forget.err;
  Ran listed = Txadmin({"agent", Addr(aport_), "branches", "--heuristic", "--json"});
  EXPECT_EQ(Parse(listed).size(), 0u) << listed.out;
  Ran twice = Txadmin({"agent", Addr(aport_), "forget", id, "--reason", "again", "--yes"});
  EXPECT_EQ(twice.code, 1);
  EXPECT_NE(twice.err.find("no heuristic decision"), std::string::npos) << twice.err;

  // The group saw no refusal (the agent agreed): nothing under --state heuristic.
  Ran hz = Txadmin({"--coordinator", coordinators_, "txns", "--state", "heuristic", "--json"});
  ASSERT_EQ(hz.code, 0) << hz.err;
  EXPECT_EQ(Parse(hz).size(), 0u) << hz.out;
  // --older-than filters on age: a transaction held open shows under 0s, not under 1h.
  auto open_txn = client_->Begin();
  ASSERT_TRUE(open_txn.ok());
  ASSERT_TRUE(open_txn->Execute("bank_b", Sql("UPDATE accounts SET balance = balance WHERE id = 3")).ok());
  Ran young = Txadmin({"--coordinator", coordinators_, "txns", "--older-than", "0s", "--json"});
  ASSERT_EQ(young.code, 0) << young.err;
  EXPECT_GE(Parse(young).size(), 1u) << young.out;
  Ran old = Txadmin({"--coordinator", coordinators_, "txns", "--older-than", "1h", "--json"});
  ASSERT_EQ(old.code, 0) << old.err;
  EXPECT_EQ(Parse(old).size(), 0u) << old.out;
  (void)open_txn->Rollback();
}

// A participant lost for good. A single coordinator dies right after its
// DECIDE(COMMIT) is durable (crash point coord.after_decide), before any
// COMMIT leaves; agent c, in doubt, is then lost for good. The restarted
// coordinator delivers to a and never can to c: `txn show` names the
// undelivered participant and the log's DECIDE; `txn forget` refuses a
// participant that acknowledged, then forgets c: the transaction ends, and
// the hazard is listed under --state heuristic.
TEST_F(TxadminClusterTest, TxnForgetEndsATransactionWhoseParticipantIsLost) {
  int kport = FreePort(), aport = FreePort(), cport = FreePort();
  const std::string coord = Addr(kport);
  Process single("txcoord single",
                 {TXC_BIN_DIR "/txcoord", "--listen", coord, "--data", dir_.path + "/single"},
                 dir_.path + "/single.log");
  ASSERT_TRUE(single.Start(kport)) << single.LogTail();
  auto agent = [&](const std::string& name, int port) {
    auto a = std::make_unique<Process>(
        "txagent " + name,
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                 dir_.path + "/agent_" + name, "--coordinator", coord, "--resource",
                                 name + "=sqlite:" + dir_.path + "/" + name + ".db"},
        dir_.path + "/agent_" + name + ".log");
    EXPECT_TRUE(a->Start(port)) << a->LogTail();
    return a;
  };
  auto a = agent("bank_x", aport);
  auto c = agent("bank_c", cport);
  ClientOptions o;
  o.coordinators = {coord};
  o.agents = {{"bank_x", Addr(aport)}, {"bank_c", Addr(cport)}};
  o.commit_timeout = 3 * kSeconds;
  o.tls = testing::TestTls(authz::Role::kClient);
  auto client = Client::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  {
    auto ddl = (*client)->Begin();
    ASSERT_TRUE(ddl.ok()) << ddl.status().ToString();
    ASSERT_TRUE(ddl->Execute("bank_x", Sql("CREATE TABLE t(id INTEGER PRIMARY KEY)")).ok());
    ASSERT_TRUE(ddl->Execute("bank_c", Sql("CREATE TABLE t(id INTEGER PRIMARY KEY)")).ok());
    Status committed = ddl->Commit();
    ASSERT_TRUE(committed.ok()) << committed.ToString();
  }
  single.Kill(SIGKILL);
  single.set_env({{"TXC_CRASH_AT", "coord.after_decide"}});
  ASSERT_TRUE(single.Start(kport)) << single.LogTail();
  auto tx = (*client)->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_x", Sql("INSERT INTO t VALUES(1)")).ok());
  ASSERT_TRUE(tx->Execute("bank_c", Sql("INSERT INTO t VALUES(1)")).ok());
  (void)tx->Commit();  // the coordinator dies once DECIDE is durable
  const std::string id = ToString(tx->id());
  ASSERT_TRUE(single.WaitExit(5000)) << single.LogTail();
  c->Kill(SIGKILL);  // in doubt, and lost for good
  single.set_env({});
  ASSERT_TRUE(single.Start(kport)) << single.LogTail();

  json shown;
  for (int waited = 0; waited <= 10000; waited += 100) {
    Ran show = Txadmin({"--coordinator", coord, "txn", "show", id, "--json"});
    if (show.code == 0) {
      shown = Parse(show);
      if (shown["acked"].size() == 1u) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(shown["outcome"], "committed") << shown.dump();
  ASSERT_EQ(shown["acked"], json::array({"bank_x"})) << shown.dump();
  ASSERT_GE(shown["log"].size(), 1u) << shown.dump();
  EXPECT_EQ(shown["log"][0]["command"], "DECIDE(" + id + ",committed)");
  EXPECT_TRUE(shown["log"][0]["age_ms"].is_null()) << "chosen before this leadership";

  Ran acked = Txadmin({"--coordinator", coord, "txn", "forget", id, "--participant", "bank_x",
                       "--reason", "x", "--yes"});
  EXPECT_EQ(acked.code, 1);
  EXPECT_NE(acked.err.find("acknowledged"), std::string::npos) << acked.err;

  Ran forget = Txadmin({"--coordinator", coord, "txn", "forget", id, "--participant", "bank_c",
                        "--reason", "machine lost", "--who", "tester", "--yes", "--json"});
  ASSERT_EQ(forget.code, 0) << forget.out << forget.err;
  EXPECT_EQ(Parse(forget)["outcome"], "committed");

  json hazard;
  for (int waited = 0; waited <= 10000 && hazard.is_null(); waited += 100) {
    Ran hz = Txadmin({"--coordinator", coord, "txns", "--state", "heuristic", "--json"});
    ASSERT_EQ(hz.code, 0) << hz.err;
    for (const auto& t : Parse(hz)) {
      if (t["txid"] == id && t["state"] == "hazard") hazard = t;  // ended: no longer driven
    }
    if (hazard.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(hazard.is_null()) << "no ended hazard for " << id;
  EXPECT_NE(hazard["hazards"][0].get<std::string>().find("forgotten by operator tester"),
            std::string::npos) << hazard.dump();
  single.Kill(SIGTERM);
  a->Kill(SIGTERM);
}

}  // namespace
}  // namespace txc
