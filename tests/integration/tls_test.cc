// Mutual TLS and roles over real processes on loopback: a txcoord and two
// txagents with certificates made by scripts/make-certs.sh, the client
// library and txbench over TLS, and callers that must be refused (no
// certificate, another CA, a role that may not call the method).
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "common/status_proto.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "wal/sqlite.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* set : {"ok", "other"}) {
      const std::string cmd = std::string(TXC_SOURCE_DIR) + "/scripts/make-certs.sh " + dir_.path +
                              "/" + set + " >/dev/null 2>&1";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
    cport_ = FreePort();
    aport_ = FreePort();
    bport_ = FreePort();
    cmetrics_ = FreePort();
    ametrics_ = FreePort();
    // The group aborts a begun transaction that is not committed within
    // 1.5 s: the refused-Decide test waits for that to end its branch.
    coord_ = std::make_unique<Process>(
        "txcoord",
        Args({TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data", dir_.path + "/coord",
              "--txn-timeout-ms", "1500", "--metrics-listen", Addr(cmetrics_)},
             "replica"),
        dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    agent_a_ = MakeAgent("bank_a", aport_, {"--metrics-listen", Addr(ametrics_)});
    agent_b_ = MakeAgent("bank_b", bport_, {});
    ASSERT_TRUE(agent_a_->Start(aport_)) << agent_a_->LogTail();
    ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
    auto c = Connect(Certs("client"));
    ASSERT_TRUE(c.ok()) << c.status().ToString() << "\n" << coord_->LogTail();
    client_ = std::move(*c);
    for (const char* bank : {"bank_a", "bank_b"}) {
      auto tx = client_->Begin();
      ASSERT_TRUE(tx.ok()) << tx.status().ToString();
      auto r = tx->Execute(bank, {Sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance "
                                      "INTEGER NOT NULL)"),
                                  Sql("INSERT INTO accounts VALUES (1, 1000), (2, 1000)")});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_TRUE(tx->Commit().ok());
      ASSERT_TRUE(EventuallyBalance(bank, 2, 1000)) << AgentLog(bank);
    }
  }

  TlsConfig Certs(const std::string& role, const std::string& set = "ok") const {
    const std::string d = dir_.path + "/" + set + "/";
    return TlsConfig{d + role + ".crt", d + role + ".key", d + "ca.crt"};
  }
  std::vector<std::string> Args(std::vector<std::string> args, const std::string& role) const {
    TlsConfig t = Certs(role);
    args.insert(args.end(), {"--tls-cert", t.cert, "--tls-key", t.key, "--tls-ca", t.ca});
    return args;
  }
  std::unique_ptr<Process> MakeAgent(const std::string& bank, int port,
                                     std::vector<std::string> extra) {
    std::vector<std::string> args{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                  dir_.path + "/" + bank, "--coordinator", Addr(cport_),
                                  "--resource", bank + "=sqlite:" + DbPath(bank)};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Process>("txagent " + bank, Args(args, "agent"),
                                     dir_.path + "/" + bank + ".log");
  }

  Result<std::unique_ptr<Client>> Connect(const TlsConfig& tls) {
    ClientOptions o;
    o.coordinators = {Addr(cport_)};
    o.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(bport_)}};
    o.connect_timeout = 2 * kSeconds;
    o.call_timeout = 5 * kSeconds;
    o.commit_timeout = 10 * kSeconds;
    o.tls = tls;
    return Client::Connect(o);
  }

  // One call as the holder of `tls`.
  template <class Req, class Resp>
  Result<Resp> CallAs(const TlsConfig& tls, int port, const std::string& method, const Req& req) {
    boost::asio::io_context io;
    rpc::ChannelOptions o;
    o.tls = tls;
    auto channel = std::make_shared<rpc::RpcChannel>(io, Addr(port), o);
    Status status = Status::Timeout("no answer from port " + std::to_string(port));
    Resp resp;
    channel->Call<Req, Resp>(method, req, 5 * kSeconds, [&](Status s, Resp r) {
      status = std::move(s);
      resp = std::move(r);
      channel->Close();
    });
    io.run_for(std::chrono::seconds(6));
    channel->Close();
    if (!status.ok()) return status;
    return resp;
  }

  // bank_a's branch of `txid` as ListBranches (admin) shows it; "" if none.
  std::string BranchState(const TxId& txid) {
    auto r = CallAs<proto::ListBranchesRequest, proto::ListBranchesResponse>(
        Certs("admin"), aport_, "ListBranches", proto::ListBranchesRequest());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    EXPECT_EQ(r->status.code, proto::Code::OK) << r->status.message;
    for (const auto& b : r->branches) {
      if (b.txid == txid && b.resource == "bank_a") return b.state;
    }
    return "";
  }

  static std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }
  std::string DbPath(const std::string& bank) const { return dir_.path + "/" + bank + ".db"; }
  std::string AgentLog(const std::string& bank) const {
    return (bank == "bank_a" ? agent_a_ : agent_b_)->LogTail();
  }

  int64_t Balance(const std::string& bank, int id) {
    auto db = wal::Db::Open(DbPath(bank));
    if (!db.ok()) return -2;
    auto st = (*db)->Prepare("SELECT balance FROM accounts WHERE id = ?");
    if (!st.ok() || !(*st)->BindInt(1, id).ok()) return -2;
    auto row = (*st)->Step();
    if (!row.ok() || !*row) return -1;
    return (*st)->ColumnInt(0);
  }
  bool EventuallyBalance(const std::string& bank, int id, int64_t want, int ms = 10000) {
    for (int waited = 0; waited <= ms; waited += 50) {
      if (Balance(bank, id) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // A counter on a node's /metrics page; -1 when absent.
  static double Metric(int port, const std::string& name) {
    auto page = testing::HttpGet(port, "/metrics");
    if (!page.ok()) return -1;
    std::istringstream in(page->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
  }

  std::map<std::string, std::vector<proto::Statement>> Transfer(int64_t amount) {
    return {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = 1",
                                  {Int(amount)}, 1)}},
            {"bank_b", {SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = 1",
                                  {Int(amount)}, 1)}}};
  }

  TempDir dir_;
  int cport_ = 0, aport_ = 0, bport_ = 0, cmetrics_ = 0, ametrics_ = 0;
  std::unique_ptr<Process> coord_, agent_a_, agent_b_;
  std::unique_ptr<Client> client_;
};

TEST_F(TlsTest, TransfersOverMutualTls) {
  for (int i = 0; i < 5; ++i) {
    auto r = client_->Submit(Transfer(10));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 50 WHERE id = 2")).ok());
  ASSERT_TRUE(tx->Execute("bank_b", Sql("UPDATE accounts SET balance = balance + 50 WHERE id = 2")).ok());
  ASSERT_TRUE(tx->Commit().ok());
  EXPECT_TRUE(EventuallyBalance("bank_a", 1, 950));
  EXPECT_TRUE(EventuallyBalance("bank_b", 1, 1050));
  EXPECT_TRUE(EventuallyBalance("bank_a", 2, 950));
  EXPECT_TRUE(EventuallyBalance("bank_b", 2, 1050));
  EXPECT_EQ(Metric(cmetrics_, "txcoord_rpc_permission_denied_total"), 0);
  EXPECT_EQ(Metric(ametrics_, "txagent_rpc_permission_denied_total"), 0);
}

TEST_F(TlsTest, TxbenchTransfersOverTlsAndFailsWithoutACertificate) {
  const TlsConfig c = Certs("client");
  const std::string common = std::string(TXC_BIN_DIR) + "/txbench transfer --coordinator " +
                             Addr(cport_) + " --agent bank_a=" + Addr(aport_) +
                             " --agent bank_b=" + Addr(bport_) +
                             " --accounts 2 --no-setup --concurrency 2 --duration 1s --quiet";
  const std::string log = dir_.path + "/bench.log";
  int rc = std::system((common + " --tls-cert " + c.cert + " --tls-key " + c.key + " --tls-ca " +
                        c.ca + " >" + log + " 2>&1")
                           .c_str());
  std::ifstream in(log);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("(^|\\n)committed=[1-9]"))) << out;
  EXPECT_EQ(Balance("bank_a", 1) + Balance("bank_a", 2) + Balance("bank_b", 1) + Balance("bank_b", 2),
            4000);

  rc = std::system((common + " --connect-timeout 2s >" + log + ".plain 2>&1").c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) != 0) << "txbench without a certificate exited 0";
}

TEST_F(TlsTest, PlaintextClientIsRefused) {
  auto c = Connect(TlsConfig{});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::kUnavailable) << c.status().ToString();
  // Straight to the agent too: no handshake, no call.
  auto r = testing::CallOnceWith<proto::ListBranchesRequest, proto::ListBranchesResponse>(
      TlsConfig{}, aport_, "ListBranches", proto::ListBranchesRequest(), 2 * kSeconds);
  EXPECT_FALSE(r.ok());
  EXPECT_GE(Metric(ametrics_, "txagent_rpc_tls_handshake_failures_total"), 1);
}

TEST_F(TlsTest, ClientOfAnotherCaIsRefused) {
  auto c = Connect(Certs("client", "other"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::kUnavailable) << c.status().ToString();
  auto r = CallAs<proto::ExecuteRequest, proto::ExecuteResponse>(
      Certs("client", "other"), aport_, "Execute", proto::ExecuteRequest());
  EXPECT_FALSE(r.ok());
  EXPECT_GE(Metric(cmetrics_, "txcoord_rpc_tls_handshake_failures_total"), 1);
  EXPECT_GE(Metric(ametrics_, "txagent_rpc_tls_handshake_failures_total"), 1);
}

// A client holding a prepared branch's txid cannot decide it: only the
// coordinator group (role replica) may. The group then aborts the
// transaction (never committed) and the money stays where it was.
TEST_F(TlsTest, ClientCannotDecideAPreparedBranch) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 300 WHERE id = 1")).ok());
  // The test plays the coordinator (a replica certificate) for PREPARE.
  proto::PrepareRequest prepare;
  prepare.txid = tx->id();
  prepare.resource = "bank_a";
  proto::Participant p;
  p.resource = "bank_a";
  p.address = Addr(aport_);
  prepare.participants = {p};
  auto voted = CallAs<proto::PrepareRequest, proto::PrepareResponse>(Certs("replica"), aport_,
                                                                      "Prepare", prepare);
  ASSERT_TRUE(voted.ok()) << voted.status().ToString();
  ASSERT_EQ(voted->status.code, proto::Code::OK) << voted->status.message;
  ASSERT_EQ(voted->vote, proto::Vote::YES) << voted->reason;
  ASSERT_EQ(BranchState(tx->id()), "prepared");

  proto::DecideRequest decide;
  decide.txid = tx->id();
  decide.resource = "bank_a";
  decide.outcome = proto::Outcome::COMMITTED;
  auto r = CallAs<proto::DecideRequest, proto::DecideResponse>(Certs("client"), aport_, "Decide",
                                                                decide);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, proto::Code::PERMISSION_DENIED);
  EXPECT_EQ(r->status.message, "role client may not call Agent.Decide");
  EXPECT_EQ(BranchState(tx->id()), "prepared");
  EXPECT_EQ(Metric(ametrics_, "txagent_rpc_permission_denied_total"), 1);
  EXPECT_NE(agent_a_->LogTail().find("PERMISSION_DENIED"), std::string::npos);

  // An agent certificate may not decide either.
  auto by_agent = CallAs<proto::DecideRequest, proto::DecideResponse>(Certs("agent"), aport_,
                                                                       "Decide", decide);
  ASSERT_TRUE(by_agent.ok()) << by_agent.status().ToString();
  EXPECT_EQ(by_agent->status.code, proto::Code::PERMISSION_DENIED);

  // The group aborts the uncommitted transaction (--txn-timeout-ms); the
  // in-doubt branch learns it and rolls back.
  bool aborted = false;
  for (int waited = 0; waited <= 30000 && !aborted; waited += 100) {
    aborted = BranchState(tx->id()) == "aborted";
    if (!aborted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(aborted) << AgentLog("bank_a");
  EXPECT_TRUE(EventuallyBalance("bank_a", 1, 1000)) << Balance("bank_a", 1);
  EXPECT_EQ(Balance("bank_a", 2), 1000);
}

TEST_F(TlsTest, AgentCannotDeliverPaxosMessages) {
  proto::PeerMessage m;
  m.sender = 1;
  m.payload = "forged";
  // A single replica serves no Replica.Deliver; the table refuses it before
  // the method is looked up (as a Thrift exception: there is no handler to
  // make a response).
  auto r = CallAs<proto::PeerMessage, proto::PeerAck>(Certs("agent"), cport_, "Deliver", m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("PERMISSION_DENIED: role agent may not call Replica.Deliver"),
            std::string::npos)
      << r.status().ToString();
  EXPECT_NE(coord_->LogTail().find("PERMISSION_DENIED"), std::string::npos);
  EXPECT_EQ(Metric(cmetrics_, "txcoord_rpc_permission_denied_total"), 1);
  // Nor may a client run operator commands.
  auto list = CallAs<proto::ListTxnsRequest, proto::ListTxnsResponse>(
      Certs("client"), cport_, "ListTxns", proto::ListTxnsRequest());
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->status.code, proto::Code::PERMISSION_DENIED);
  auto admin = CallAs<proto::ListTxnsRequest, proto::ListTxnsResponse>(
      Certs("admin"), cport_, "ListTxns", proto::ListTxnsRequest());
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  EXPECT_EQ(admin->status.code, proto::Code::OK) << admin->status.message;
  // The group still works.
  EXPECT_TRUE(client_->Submit(Transfer(1)).ok());
}

// A group of three replicas over mutual TLS: they elect a leader and commit
// through each other, while an agent certificate cannot send them Paxos
// messages (a forged ACCEPT to a follower).
TEST_F(TlsTest, ReplicaGroupTalksOverTlsAndRefusesForgedPeerMessages) {
  std::vector<int> ports{FreePort(), FreePort(), FreePort()};
  std::string peers;
  for (size_t i = 0; i < ports.size(); ++i) {
    peers += (i ? "," : "") + std::to_string(i + 1) + "=" + Addr(ports[i]);
  }
  std::vector<std::unique_ptr<Process>> group;
  for (int id = 1; id <= 3; ++id) {
    group.push_back(std::make_unique<Process>(
        "txcoord " + std::to_string(id),
        Args({TXC_BIN_DIR "/txcoord", "--id", std::to_string(id), "--listen", Addr(ports[id - 1]),
              "--peers", peers, "--data", dir_.path + "/group" + std::to_string(id)},
             "replica"),
        dir_.path + "/group" + std::to_string(id) + ".log"));
    ASSERT_TRUE(group.back()->Start(ports[id - 1])) << group.back()->LogTail();
  }
  ClientOptions o;
  o.coordinators = {Addr(ports[0]), Addr(ports[1]), Addr(ports[2])};
  o.connect_timeout = 5 * kSeconds;
  o.commit_timeout = 15 * kSeconds;
  o.tls = Certs("client");
  auto c = Client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  int leader = 0;
  for (int waited = 0; waited <= 15000 && leader == 0; waited += 50) {
    for (int i = 0; i < 3 && leader == 0; ++i) {
      auto st = (*c)->ClusterStatus(Addr(ports[i]));
      if (st.ok() && st->leader_id != 0 && st->leader_id == st->replica_id) leader = st->replica_id;
    }
    if (leader == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(leader, 0) << group[0]->LogTail();
  // A Begin is chosen through the group: the replicas reach each other.
  auto tx = (*c)->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();

  const int follower = leader % 3 + 1;
  proto::PeerMessage m;
  m.sender = leader;
  m.receiver = follower;
  m.payload = "forged";
  auto r = CallAs<proto::PeerMessage, proto::PeerAck>(Certs("agent"), ports[follower - 1],
                                                      "Deliver", m);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, proto::Code::PERMISSION_DENIED);
  EXPECT_EQ(r->status.message, "role agent may not call Replica.Deliver");
  auto as_client = CallAs<proto::PeerMessage, proto::PeerAck>(Certs("client"), ports[follower - 1],
                                                              "Deliver", m);
  ASSERT_TRUE(as_client.ok()) << as_client.status().ToString();
  EXPECT_EQ(as_client->status.code, proto::Code::PERMISSION_DENIED);
  EXPECT_NE(group[follower - 1]->LogTail().find("PERMISSION_DENIED"), std::string::npos);
  auto st = (*c)->ClusterStatus(Addr(ports[follower - 1]));
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->leader_id, leader);
}

// SIGHUP reloads the certificate files for new connections; a transaction
// open across it commits, and new clients connect.
TEST_F(TlsTest, SighupReloadsCertificatesWithoutDisturbingTransactions) {
  auto tx = client_->Begin();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  ASSERT_TRUE(tx->Execute("bank_a", Sql("UPDATE accounts SET balance = balance - 10 WHERE id = 2")).ok());
  ASSERT_EQ(::kill(coord_->pid(), SIGHUP), 0);
  ASSERT_EQ(::kill(agent_a_->pid(), SIGHUP), 0);
  bool seen = false;
  for (int waited = 0; waited <= 10000 && !seen; waited += 50) {
    seen = coord_->LogTail().find("SIGHUP") != std::string::npos &&
           agent_a_->LogTail().find("SIGHUP") != std::string::npos;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(seen) << coord_->LogTail();
  ASSERT_TRUE(tx->Execute("bank_b", Sql("UPDATE accounts SET balance = balance + 10 WHERE id = 2")).ok());
  ASSERT_TRUE(tx->Commit().ok());
  EXPECT_TRUE(EventuallyBalance("bank_a", 2, 990));
  EXPECT_TRUE(EventuallyBalance("bank_b", 2, 1010));
  // A new client makes new connections, with the files read again.
  auto fresh = Connect(Certs("client"));
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  ASSERT_TRUE((*fresh)->Submit(Transfer(5)).ok());
  EXPECT_NE(coord_->LogTail().find("TLS certificates reloaded"), std::string::npos)
      << coord_->LogTail();
  // Still running: a reload is not a restart.
  EXPECT_FALSE(coord_->Exited());
  EXPECT_FALSE(agent_a_->Exited());
}

TEST(TlsStartupTest, BadCertificateFileIsNamedAndExitsTwo) {
  TempDir dir;
  const std::string missing = dir.path + "/nope.crt";
  const std::string log = dir.path + "/out.log";
  const std::string cmd = std::string(TXC_BIN_DIR) + "/txcoord --listen 127.0.0.1:" +
                          std::to_string(FreePort()) + " --data " + dir.path +
                          "/c --tls-cert " + missing + " --tls-key " + missing + " --tls-ca " +
                          missing + " >" + log + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2) << out;
  EXPECT_NE(out.find(missing), std::string::npos) << out;
}

TEST(TlsStartupTest, PlaintextOnANonLoopbackAddressIsRefused) {
  TempDir dir;
  const std::string log = dir.path + "/out.log";
  // The agent dials a coordinator that is not on loopback: it refuses before
  // any connection is made.
  const std::string cmd = std::string(TXC_BIN_DIR) + "/txagent --listen 127.0.0.1:" +
                          std::to_string(FreePort()) + " --data " + dir.path +
                          "/a --coordinator 192.0.2.1:7000 --resource r=sqlite:" + dir.path +
                          "/r.db >" + log + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 2) << out;
  EXPECT_NE(out.find("192.0.2.1:7000"), std::string::npos) << out;
  EXPECT_NE(out.find("--insecure"), std::string::npos) << out;
}

}  // namespace
}  // namespace txc
