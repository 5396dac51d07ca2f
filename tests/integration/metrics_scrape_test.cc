// --metrics-listen on real processes: a txcoord (the flag) and a txagent (the
// same option in its --config file) run transactions, /metrics is scraped
// over HTTP, the counters must have moved by exactly what was done, and
// promtool must accept both pages. A group of three replicas exports one
// leader, the same epoch everywhere and the leader's view of its followers.
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/test_tls.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

// The page at 127.0.0.1:port/metrics; "" (and a test failure) if none.
std::string Scrape(int port) {
  auto r = testing::HttpGet(port, "/metrics");
  EXPECT_TRUE(r.ok()) << "scraping port " << port << ": " << r.status().ToString();
  if (!r.ok()) return "";
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  return r->body;
}

// The value of the sample `series` (exactly as printed: name{labels}) in a
// page; NaN when the page has no such line.
// False in the run with the Unix-domain path off (the .tcp copy, TXC_RPC_UNIX=0).
bool UnixAllowedHere() {
  const char* v = std::getenv("TXC_RPC_UNIX");
  return v == nullptr || std::string(v) != "0";
}

double Value(const std::string& page, const std::string& series) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nan("");
}

// Scrapes until `series` has the value `want`, up to `ms`; the last page.
std::string WaitValue(int port, const std::string& series, double want, int ms = 20000) {
  std::string page;
  for (int waited = 0; waited <= ms; waited += 50) {
    page = Scrape(port);
    if (Value(page, series) == want) return page;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << series << " never became " << want << "; last page:\n" << page;
  return page;
}

// `promtool check metrics` on a page: "" when it passes, else what it said.
std::string Promtool(const std::string& page, const std::string& dir) {
  if (std::system("command -v promtool > /dev/null 2>&1") != 0) {
    return "promtool is not installed (Debian package prometheus; scripts/install-deps.sh installs it)";
  }
  std::string in = dir + "/page.txt", out = dir + "/promtool.out";
  std::ofstream(in) << page;
  int rc = std::system(("promtool check metrics < " + in + " > " + out + " 2>&1").c_str());
  std::ifstream said(out);
  std::string text((std::istreambuf_iterator<char>(said)), std::istreambuf_iterator<char>());
  if (rc == 0) return "";
  return "promtool exit " + std::to_string(WEXITSTATUS(rc)) + ": " + text;
}

class MetricsScrapeTest : public ::testing::Test {
 protected:
  virtual std::vector<std::string> AgentFlags() const { return {}; }
  virtual std::vector<std::string> CoordFlags() const { return {}; }
  void SetUp() override {
    cport_ = FreePort();
    cmetrics_ = FreePort();
    aport_ = FreePort();
    ametrics_ = FreePort();
    std::vector<std::string> coord_args{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_),
                                        "--data", dir_.path + "/coord", "--metrics-listen",
                                        Addr(cmetrics_)};
    for (const std::string& flag : CoordFlags()) coord_args.push_back(flag);
    coord_ = std::make_unique<Process>("txcoord", coord_args, dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    // The agent takes the option from its config file, under the same name.
    std::string config = dir_.path + "/agent.conf";
    std::ofstream(config) << "# txagent\nmetrics-listen = " << Addr(ametrics_)
                          << "\nlock-timeout-ms = 10000\n";
    std::vector<std::string> agent_args{TXC_BIN_DIR "/txagent", "--config", config, "--listen",
                                        Addr(aport_), "--data", dir_.path + "/bank_a",
                                        "--coordinator", Addr(cport_), "--resource",
                                        "bank_a=sqlite:" + dir_.path + "/bank_a.db"};
    for (const std::string& flag : AgentFlags()) agent_args.push_back(flag);
    agent_ = std::make_unique<Process>("txagent", agent_args, dir_.path + "/bank_a.log");
    ASSERT_TRUE(agent_->Start(aport_)) << agent_->LogTail();
    ASSERT_TRUE(testing::WaitPort(cmetrics_, 10000)) << coord_->LogTail();
    ASSERT_TRUE(testing::WaitPort(ametrics_, 10000)) << agent_->LogTail();
    client_ = Connect();
    other_ = Connect();
  }

  std::unique_ptr<Client> Connect() {
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(aport_)}};
    o.call_timeout = 20 * kSeconds;
    o.tls = testing::TestTls(authz::Role::kClient);  // RPC only: the /metrics pages stay HTTP
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c.value()) : nullptr;
  }

  TempDir dir_;
  int cport_ = 0, cmetrics_ = 0, aport_ = 0, ametrics_ = 0;
  std::unique_ptr<Process> coord_, agent_;
  std::unique_ptr<Client> client_, other_;
};

TEST_F(MetricsScrapeTest, CountersMoveWithTransactionsAndPromtoolAcceptsBothPages) {
  ASSERT_TRUE(client_ && other_);
  // Before any transaction: the series exist, at zero.
  std::string page = Scrape(cmetrics_);
  EXPECT_EQ(Value(page, "txcoord_transactions_total{outcome=\"committed\",protocol=\"2pc\"}"), 0);
  EXPECT_EQ(Value(page, "txcoord_paxos_role{role=\"leader\"}"), 1) << page;
  EXPECT_EQ(Value(Scrape(ametrics_), "txagent_commits_total"), 0);

  // 1 interactive commit (the schema), 3 one-shot commits.
  {
    auto tx = client_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE(tx->Execute("bank_a", {Sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER)"),
                                       Sql("INSERT INTO accounts VALUES (1, 100), (2, 100)")})
                    .ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  for (int i = 0; i < 3; ++i) {
    auto r = client_->Submit({{"bank_a", {Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 1")}}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  // A lock wait: an older transaction's statement on row 1 waits for tx1's lock (the agent's
  // metrics show the wait), then goes on once tx1 commits. 2 more commits.
  // (A one-shot above may have waited too, behind the previous one's commit
  // still being confirmed at the agent: BranchCore::HolderDecided.)
  const double waits_before = Value(Scrape(ametrics_), "txagent_lock_waits_total");
  {
    auto tx2 = other_->Begin();  // older than tx1: it may wait (wait-die)
    ASSERT_TRUE(tx2.ok());
    auto tx1 = client_->Begin();
    ASSERT_TRUE(tx1.ok());
    ASSERT_TRUE(tx1->Execute("bank_a", Sql("UPDATE accounts SET balance = 0 WHERE id = 1")).ok());
    auto waiting = std::async(std::launch::async, [&] {
      return tx2->Execute("bank_a", Sql("UPDATE accounts SET balance = 5 WHERE id = 1"));
    });
    WaitValue(ametrics_, "txagent_lock_waits_total", waits_before + 1);
    ASSERT_TRUE(tx1->Commit().ok());
    auto r = waiting.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(tx2->Commit().ok());
  }
  // A wait-die refusal: a one-shot (younger) meets the lock of an older,
  // open transaction on row 2 and votes NO at once; then the older one is
  // rolled back. 2 aborts.
  {
    auto older = client_->Begin();
    ASSERT_TRUE(older.ok());
    ASSERT_TRUE(older->Execute("bank_a", Sql("UPDATE accounts SET balance = 1 WHERE id = 2")).ok());
    auto r = other_->Submit({{"bank_a", {Sql("UPDATE accounts SET balance = 2 WHERE id = 2")}}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::kAborted) << r.status().ToString();
    ASSERT_TRUE(older->Rollback().ok());
  }

  // The coordinator: 6 committed, 2 aborted, each once; latencies of every
  // decided Commit/Submit answer (the rollback is an Abort, not timed).
  page = WaitValue(cmetrics_, "txcoord_decided_unended_transactions", 0);
  EXPECT_EQ(Value(page, "txcoord_transactions_total{outcome=\"committed\",protocol=\"2pc\"}"), 6) << page;
  EXPECT_EQ(Value(page, "txcoord_transactions_total{outcome=\"aborted\",protocol=\"2pc\"}"), 2) << page;
  // 4 interactive Begins, and one reservation of 16 txids (ClientOptions.
  // reserve_txids) by each client for its Submits (3 and 1); the other 28
  // stay reserved until the leader drops them, unused, 10 s later.
  EXPECT_EQ(Value(page, "txcoord_transactions_begun_total"), 4 + 2 * 16) << page;
  EXPECT_EQ(Value(page, "txcoord_txid_reservations_expired_total"), 0) << page;
  EXPECT_EQ(Value(page, "txcoord_commit_latency_seconds_count{outcome=\"committed\"}"), 6) << page;
  EXPECT_EQ(Value(page, "txcoord_commit_latency_seconds_bucket{outcome=\"committed\",le=\"+Inf\"}"), 6);
  EXPECT_EQ(Value(page, "txcoord_commit_latency_seconds_count{outcome=\"aborted\"}"), 1) << page;
  EXPECT_GT(Value(page, "txcoord_commit_latency_seconds_sum{outcome=\"committed\"}"), 0);
  // The epoch marker and the 6 DECIDEs (one after the other) went through
  // the log, in 7 writes at least (an END may share a write).
  EXPECT_GE(Value(page, "txcoord_log_write_latency_seconds_count"), 7) << page;
  EXPECT_EQ(Value(page, "txcoord_in_doubt_transactions"), 0);
  EXPECT_EQ(Value(page, "txcoord_stuck_transactions"), 0);
  // The RPC server's refusal counters (rpc::AddServerMetrics): none here.
  EXPECT_EQ(Value(page, "txcoord_rpc_connections_refused_total{limit=\"per_peer\"}"), 0) << page;
  EXPECT_EQ(Value(page, "txcoord_rpc_connections_refused_total{limit=\"max_connections\"}"), 0);
  EXPECT_EQ(Value(page, "txcoord_oldest_stuck_age_seconds"), 0);
  EXPECT_EQ(Value(page, "txcoord_active_transactions"), 0);
  EXPECT_EQ(Value(page, "txcoord_storage_failed"), 0);
  EXPECT_EQ(Value(page, "txcoord_epoch"), 1);
  EXPECT_EQ(Value(page, "txcoord_leader_id"), 1);
  EXPECT_EQ(Value(page, "txcoord_heuristic_hazards_total"), 0);
  EXPECT_EQ(Value(page, "txcoord_heuristic_hazard_transactions"), 0);
  EXPECT_GE(Value(page, "txcoord_log_records_written_total"), 7);
  EXPECT_GE(Value(page, "txcoord_log_groups_written_total"), 1);
  EXPECT_GE(Value(page, "txcoord_applied_index"), 7);
  EXPECT_EQ(Value(page, "txcoord_applied_index"), Value(page, "txcoord_commit_index"));
  EXPECT_GT(Value(page, "txcoord_rpc_calls_total"), 0);
  // The client and the agent run on this host: their connections came in on
  // the Unix-domain socket, unless this run turned that path off.
  if (UnixAllowedHere()) {
    EXPECT_GT(Value(page, "txcoord_rpc_connections_accepted_total{transport=\"unix\"}"), 0) << page;
  } else {
    EXPECT_EQ(Value(page, "txcoord_rpc_connections_accepted_total{transport=\"unix\"}"), 0) << page;
    EXPECT_GT(Value(page, "txcoord_rpc_connections_accepted_total{transport=\"tcp\"}"), 0) << page;
  }
  EXPECT_EQ(Promtool(page, dir_.path), "") << page;

  // The agent: its commits finish after the client heard COMMITTED.
  page = WaitValue(ametrics_, "txagent_commits_total", 6);
  page = WaitValue(ametrics_, "txagent_rollbacks_total", 2);
  EXPECT_EQ(Value(page, "txagent_prepares_total{vote=\"yes\"}"), 6) << page;
  EXPECT_EQ(Value(page, "txagent_prepares_total{vote=\"no\"}"), 1) << page;
  EXPECT_EQ(Value(page, "txagent_prepares_total{vote=\"read_only\"}"), 0) << page;
  EXPECT_EQ(Value(page, "txagent_lock_waits_total"), waits_before + 1) << page;
  EXPECT_EQ(Value(page, "txagent_rpc_connections_refused_total{limit=\"per_peer\"}"), 0) << page;
  // Plaintext: each COMMIT of a prepared branch was confirmed with the group
  // before it was applied; with TLS only replicas reach Agent.Decide and
  // nothing is confirmed (--confirm-decisions auto). None refused either way.
  EXPECT_EQ(Value(page, "txagent_decisions_confirmed_total"), testing::TestTlsOn() ? 0 : 6)
      << page;
  EXPECT_EQ(Value(page, "txagent_decisions_refused_total"), 0) << page;
  EXPECT_EQ(Value(page, "txagent_lock_conflicts_total"), 1) << page;
  EXPECT_EQ(Value(page, "txagent_lock_timeouts_total"), 0) << page;
  EXPECT_EQ(Value(page, "txagent_statement_timeouts_total"), 0);
  EXPECT_EQ(Value(page, "txagent_rollback_failures_total"), 0);
  EXPECT_EQ(Value(page, "txagent_failing_rollbacks"), 0);
  EXPECT_EQ(Value(page, "txagent_wal_write_latency_seconds_count{op=\"prepare\"}"), 3) << page;
  EXPECT_EQ(Value(page, "txagent_wal_write_latency_seconds_count{op=\"execute_prepare\"}"), 3) << page;
  EXPECT_EQ(Value(page, "txagent_wal_write_latency_seconds_count{op=\"commit\"}"), 6) << page;
  EXPECT_EQ(Value(page, "txagent_branches{state=\"prepared\"}"), 0) << page;
  EXPECT_EQ(Value(page, "txagent_branches{state=\"active\"}"), 0) << page;
  EXPECT_EQ(Value(page, "txagent_oldest_in_doubt_age_seconds"), 0);
  EXPECT_EQ(Value(page, "txagent_heuristic_decisions{agreement=\"hazard\"}"), 0) << page;
  EXPECT_EQ(Value(page, "txagent_heuristic_decisions{agreement=\"agreed\"}"), 0) << page;
  EXPECT_EQ(Promtool(page, dir_.path), "") << page;
}

TEST_F(MetricsScrapeTest, OnlyGetMetricsIsServed) {
  auto other = testing::HttpGet(cmetrics_, "/");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(other->status, 404);
  auto post = testing::HttpExchange(
      ametrics_, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(post.ok()) << post.status().ToString();
  EXPECT_EQ(post->status, 405);
  // The nodes keep serving.
  EXPECT_EQ(Value(Scrape(cmetrics_), "txcoord_storage_failed"), 0);
  EXPECT_FALSE(std::isnan(Value(Scrape(ametrics_), "txagent_commits_total")));
}

// --rpc-unix-socket off (txcoord, txagent): the process's server keeps no
// Unix-domain socket, so the clients of this host reach it over TCP, and it
// dials the others over TCP though they keep one. Each process counts the
// connections it accepted by transport.
class UnixSocketOffTest : public MetricsScrapeTest {
 protected:
  std::vector<std::string> AgentFlags() const override {
    if (!agent_off_) return {};
    return {"--rpc-unix-socket", "off"};
  }
  std::vector<std::string> CoordFlags() const override {
    if (!coord_off_) return {};
    return {"--rpc-unix-socket", "off"};
  }
  void Transact() {
    ASSERT_TRUE(client_);
    auto tx = client_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE(tx->Execute("bank_a", {Sql("CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER)"),
                                       Sql("INSERT INTO t VALUES (1, 0)")})
                    .ok());
    ASSERT_TRUE(tx->Commit().ok());
    auto r = client_->Submit({{"bank_a", {Sql("UPDATE t SET n = n + 1 WHERE id = 1")}}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    WaitValue(ametrics_, "txagent_commits_total", 2);
  }
  static double Accepted(const std::string& page, const std::string& prefix,
                         const std::string& transport) {
    return Value(page, prefix + "_rpc_connections_accepted_total{transport=\"" + transport + "\"}");
  }
  bool agent_off_ = false, coord_off_ = false;
};

// In plaintext, where the agent confirms its first decision with the group
// on a connection of its own (with TLS it confirms none, and dials none).
class AgentUnixSocketOffTest : public UnixSocketOffTest {
 protected:
  AgentUnixSocketOffTest() { agent_off_ = true; }
  testing::ScopedPlaintext plaintext_;
};
class CoordUnixSocketOffTest : public UnixSocketOffTest {
 protected:
  CoordUnixSocketOffTest() { coord_off_ = true; }
};

TEST_F(AgentUnixSocketOffTest, TheAgentAcceptsAndDialsOverTcpOnly) {
  Transact();
  const std::string apage = Scrape(ametrics_);
  EXPECT_EQ(Accepted(apage, "txagent", "unix"), 0) << apage;  // the coordinator's, the client's
  EXPECT_EQ(Accepted(apage, "txagent", "tcp"), 2) << apage;
  // The coordinator: the clients' connections over its Unix-domain socket,
  // and the agent's, made to confirm its first decision, over TCP.
  EXPECT_GT(Value(apage, "txagent_decisions_confirmed_total"), 0) << apage;
  const std::string cpage = Scrape(cmetrics_);
  if (UnixAllowedHere()) {
    EXPECT_EQ(Accepted(cpage, "txcoord", "unix"), 2) << cpage;
  }
  EXPECT_GE(Accepted(cpage, "txcoord", "tcp"), 1) << cpage;
}

TEST_F(CoordUnixSocketOffTest, TheCoordinatorAcceptsAndDialsOverTcpOnly) {
  Transact();
  const std::string cpage = Scrape(cmetrics_);
  EXPECT_EQ(Accepted(cpage, "txcoord", "unix"), 0) << cpage;  // the client's
  EXPECT_GT(Accepted(cpage, "txcoord", "tcp"), 0) << cpage;
  // The agent: the coordinator's connection over TCP though the agent keeps
  // a socket; the client's (its interactive statements) over that socket.
  const std::string apage = Scrape(ametrics_);
  EXPECT_EQ(Accepted(apage, "txagent", "tcp"), UnixAllowedHere() ? 1 : 2) << apage;
  EXPECT_EQ(Accepted(apage, "txagent", "unix"), UnixAllowedHere() ? 1 : 0) << apage;
}

TEST(MetricsGroupTest, OneLeaderOneEpochAndTheLeadersViewOfItsFollowers) {
  TempDir dir;
  std::vector<int> ports, mports;
  std::string peers;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(FreePort());
    mports.push_back(FreePort());
    peers += (i ? "," : "") + std::to_string(i + 1) + "=" + Addr(ports[i]);
  }
  std::vector<std::unique_ptr<Process>> replicas;
  for (int i = 0; i < 3; ++i) {
    std::string id = std::to_string(i + 1);
    replicas.push_back(std::make_unique<Process>(
        "txcoord " + id,
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--id", id, "--listen", Addr(ports[i]),
                                 "--peers", peers, "--data", dir.path + "/c" + id,
                                 "--metrics-listen", Addr(mports[i])},
        dir.path + "/c" + id + ".log"));
    ASSERT_TRUE(replicas.back()->Start(ports[i])) << replicas.back()->LogTail();
  }
  for (int p : mports) ASSERT_TRUE(testing::WaitPort(p, 10000));

  // Until one replica leads and every replica follows it in one epoch.
  int leader = -1;
  std::vector<std::string> pages(3);
  for (int waited = 0; waited <= 30000 && leader < 0; waited += 100) {
    for (int i = 0; i < 3; ++i) pages[i] = Scrape(mports[i]);
    int leaders = 0, at = -1;
    for (int i = 0; i < 3; ++i) {
      if (Value(pages[i], "txcoord_paxos_role{role=\"leader\"}") == 1) {
        ++leaders;
        at = i;
      }
    }
    bool agreed = leaders == 1;
    for (int i = 0; i < 3 && agreed; ++i) {
      agreed = Value(pages[i], "txcoord_leader_id") == at + 1 &&
               Value(pages[i], "txcoord_epoch") == Value(pages[at], "txcoord_epoch") &&
               (i == at || Value(pages[i], "txcoord_paxos_role{role=\"follower\"}") == 1);
    }
    if (agreed) leader = at;
    if (leader < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(leader, 0) << pages[0] << pages[1] << pages[2];
  EXPECT_GE(Value(pages[leader], "txcoord_epoch"), 1);
  // Only the leader reports lag, one series per other replica. The leader
  // hears both followers, and each follower hears the leader (followers need
  // not hear each other).
  std::string leader_id = std::to_string(leader + 1);
  for (int i = 0; i < 3; ++i) {
    std::string id = std::to_string(i + 1);
    if (i != leader) {
      EXPECT_FALSE(std::isnan(Value(pages[leader], "txcoord_follower_lag_slots{replica=\"" + id + "\"}")))
          << pages[leader];
      EXPECT_TRUE(std::isnan(
          Value(pages[i], "txcoord_follower_lag_slots{replica=\"" + leader_id + "\"}")));
      EXPECT_EQ(Value(pages[leader], "txcoord_peer_reachable{replica=\"" + id + "\"}"), 1)
          << pages[leader];
      EXPECT_EQ(Value(pages[i], "txcoord_peer_reachable{replica=\"" + leader_id + "\"}"), 1)
          << pages[i];
    }
    EXPECT_EQ(Promtool(pages[i], dir.path), "") << pages[i];
  }
  // The leader's calls ask for the answer in their reply, and a follower
  // answers there: over a second of heartbeats, each follower's replies
  // carry its messages to the leader and it makes no calls of its own.
  auto sent = [](const std::string& page, const char* as) {
    return Value(page, std::string("txcoord_peer_messages_sent_total{as=\"") + as + "\"}");
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::vector<std::string> later(3);
  for (int i = 0; i < 3; ++i) later[i] = Scrape(mports[i]);
  for (int i = 0; i < 3; ++i) {
    if (i == leader) {
      EXPECT_GT(sent(later[i], "call"), sent(pages[i], "call")) << later[i];
      continue;
    }
    EXPECT_GE(sent(later[i], "reply") - sent(pages[i], "reply"), 3) << later[i];
    EXPECT_EQ(sent(later[i], "call"), sent(pages[i], "call")) << later[i];
  }
}

}  // namespace
}  // namespace txc
