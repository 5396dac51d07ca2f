// The replicated coordinator: groups of 3 and 5 txcoord replicas (Multi-Paxos)
// and two txagents, real processes on loopback, leaders killed with SIGKILL
// in the middle of a stream of transfers.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "client/client.h"
#include "common/codec.h"
#include "paxos_types.h"
#include "tests/support/process.h"
#include "wal/sqlite.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

constexpr int kAccounts = 20;

class ClusterTest : public ::testing::Test {
 protected:
  void Start(int replicas, std::vector<std::string> extra = {}) {
    extra_ = std::move(extra);
    for (int i = 0; i < replicas; ++i) ports_.push_back(FreePort());
    for (int i = 0; i < replicas; ++i) {
      peers_ += (i ? "," : "") + std::to_string(i + 1) + "=" + Addr(ports_[i]);
      coordinators_ += (i ? "," : "") + Addr(ports_[i]);
    }
    for (int i = 0; i < replicas; ++i) {
      replicas_.push_back(MakeReplica(i + 1));
      ASSERT_TRUE(replicas_.back()->Start(ports_[i])) << replicas_.back()->LogTail();
    }
    aport_ = FreePort();
    bport_ = FreePort();
    for (auto [bank, port] : {std::pair<std::string, int>{"bank_a", aport_}, {"bank_b", bport_}}) {
      agents_.push_back(std::make_unique<Process>(
          "txagent " + bank,
          std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                   dir_.path + "/" + bank, "--coordinator", coordinators_, "--resource",
                                   bank + "=sqlite:" + dir_.path + "/" + bank + ".db"},
          dir_.path + "/" + bank + ".log"));
      ASSERT_TRUE(agents_.back()->Start(port)) << agents_.back()->LogTail();
    }
    ClientOptions o;
    for (int p : ports_) o.coordinators.push_back(Addr(p));
    o.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(bport_)}};
    o.call_timeout = 5 * kSeconds;
    o.commit_timeout = 20 * kSeconds;
    // admin: ExpectSettledAndConserved reads ListTxns, an operator command.
    o.tls = testing::TestTls(authz::Role::kAdmin);
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(c.value());
    for (const char* bank : {"bank_a", "bank_b"}) {
      Status s;
      for (int attempt = 0; attempt < 100; ++attempt) {  // until a leader serves
        auto tx = client_->Begin();
        s = tx.status();
        if (tx.ok()) {
          auto r = tx->Execute(bank, {Sql("CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, "
                                          "balance INTEGER NOT NULL)"),
                                      Sql("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                                          "WHERE x < ?) INSERT INTO accounts SELECT x, 1000 FROM n "
                                          "WHERE NOT EXISTS (SELECT 1 FROM accounts)",
                                          {Int(kAccounts)})});
          s = r.ok() ? tx->Commit() : r.status();
        }
        if (s.ok()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  std::unique_ptr<Process> MakeReplica(int id) {
    std::vector<std::string> argv{TXC_BIN_DIR "/txcoord", "--id", std::to_string(id), "--listen",
                                  Addr(ports_[id - 1]), "--peers", peers_, "--data",
                                  dir_.path + "/c" + std::to_string(id)};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    return std::make_unique<Process>("txcoord " + std::to_string(id), argv,
                                     dir_.path + "/c" + std::to_string(id) + ".log");
  }
  void Restart(int id) {
    replicas_[id - 1] = MakeReplica(id);
    ASSERT_TRUE(replicas_[id - 1]->Start(ports_[id - 1])) << replicas_[id - 1]->LogTail();
  }

  static std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

  // The id of the replica that says it leads and serves, 0 if none does (yet).
  int Leader() {
    for (size_t i = 0; i < ports_.size(); ++i) {
      if (replicas_[i]->pid() <= 0) continue;
      auto s = client_->ClusterStatus(Addr(ports_[i]));
      if (s.ok() && s->leader_id != 0 && s->leader_id == s->replica_id) return s->replica_id;
    }
    return 0;
  }
  int WaitLeader(int ms) {
    for (int waited = 0; waited <= ms; waited += 50) {
      if (int l = Leader()) return l;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }

  // Transfers from `threads` clients until Stop(); counts commits.
  void StartLoad(int threads) {
    for (int w = 0; w < threads; ++w) {
      load_.emplace_back([this, w] {
        std::mt19937 rng(w + 17);
        while (!stop_) {
          int64_t amount = 1 + rng() % 30;
          int64_t x = 1 + rng() % kAccounts, y = 1 + rng() % kAccounts;
          bool a_to_b = rng() % 2;
          std::string from = a_to_b ? "bank_a" : "bank_b", to = a_to_b ? "bank_b" : "bank_a";
          auto r = client_->Submit(
              {{from, {SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                                 {Int(amount), Int(x), Int(amount)}, 1)}},
               {to, {SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?", {Int(amount), Int(y)}, 1)}}});
          if (r.ok()) {
            ++committed_;
          } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }
      });
    }
  }
  void StopLoad() {
    stop_ = true;
    for (auto& t : load_) t.join();
    load_.clear();
  }
  // Waits until `n` more transfers committed than at the call, up to `ms`.
  bool CommitsContinue(int64_t n, int ms) {
    int64_t start = committed_;
    for (int waited = 0; waited <= ms; waited += 20) {
      if (committed_ >= start + n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  int64_t Sum(const std::string& bank) {
    auto db = wal::Db::Open(dir_.path + "/" + bank + ".db");
    if (!db.ok()) return -1;
    auto st = (*db)->Prepare("SELECT SUM(balance) FROM accounts");
    if (!st.ok()) return -1;
    auto row = (*st)->Step();
    return row.ok() && *row ? (*st)->ColumnInt(0) : -1;
  }

  // The branches an agent holds that are still active or prepared (rows
  // changed and locked, outcome not applied); -1 if it does not answer.
  int LiveBranches(int port) {
    auto r = testing::CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
        port, "ListBranches", proto::ListBranchesRequest());
    if (!r.ok()) return -1;
    int live = 0;
    for (const auto& b : r->branches) live += b.state == "active" || b.state == "prepared";
    return live;
  }

  // After the faults: nothing in doubt at the coordinator, every branch at
  // both agents settled (committed or rolled back; an in-doubt branch asks
  // the coordinator with a growing backoff, so this can take a while), and
  // then money conserved.
  void ExpectSettledAndConserved() {
    bool settled = false;
    for (int waited = 0; waited <= 60000 && !settled; waited += 100) {
      auto doubt = client_->ListTxns("in-doubt");
      settled = doubt.ok() && doubt->empty();
      if (!settled) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(settled) << "transactions still in doubt after the faults stopped";
    int live_a = -1, live_b = -1;
    int64_t total = -1;
    for (int waited = 0; waited <= 60000; waited += 100) {
      live_a = LiveBranches(aport_);
      live_b = LiveBranches(bport_);
      total = Sum("bank_a") + Sum("bank_b");
      if (live_a == 0 && live_b == 0 && total == 2 * kAccounts * 1000) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(live_a, 0) << "bank_a still holds unsettled branches";
    EXPECT_EQ(live_b, 0) << "bank_b still holds unsettled branches";
    EXPECT_EQ(total, 2 * kAccounts * 1000) << "money created or lost";
  }

  bool LogContains(int id, const std::string& needle) {
    std::ifstream in(dir_.path + "/c" + std::to_string(id) + ".log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str().find(needle) != std::string::npos;
  }

  void TearDown() override {
    if (!load_.empty()) StopLoad();
  }

  TempDir dir_;
  std::vector<int> ports_;
  std::string peers_, coordinators_;
  std::vector<std::string> extra_;
  std::vector<std::unique_ptr<Process>> replicas_, agents_;
  int aport_ = 0, bport_ = 0;
  std::unique_ptr<Client> client_;
  std::vector<std::thread> load_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> committed_{0};
};

TEST_F(ClusterTest, ThreeReplicasElectOneLeaderAndReplicateEveryDecision) {
  Start(3);
  int leader = WaitLeader(15000);
  ASSERT_NE(leader, 0);
  StartLoad(4);
  ASSERT_TRUE(CommitsContinue(100, 30000));
  StopLoad();
  ExpectSettledAndConserved();
  // Every replica applies the same log: the followers reach the leader's index.
  auto ls = client_->ClusterStatus(Addr(ports_[leader - 1]));
  ASSERT_TRUE(ls.ok());
  for (size_t i = 0; i < ports_.size(); ++i) {
    bool caught_up = false;
    for (int w = 0; w < 600 && !caught_up; ++w) {
      auto s = client_->ClusterStatus(Addr(ports_[i]));
      caught_up = s.ok() && s->applied_index >= ls->applied_index;
      if (!caught_up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(caught_up) << "replica " << i + 1 << " did not apply up to " << ls->applied_index;
  }
}

TEST_F(ClusterTest, PeerMessageOfAnUnknownTypeIsDroppedAndTheLeaderStays) {
  Start(3);
  int leader = WaitLeader(15000);
  ASSERT_NE(leader, 0);
  auto before = client_->ClusterStatus(Addr(ports_[leader - 1]));
  ASSERT_TRUE(before.ok());
  // From a listed peer, with a far higher ballot, of a type no replica knows.
  int from = leader % 3 + 1;
  paxos::wire::Message msg;
  msg.type = paxos::wire::Type::PREVOTE;  // replaced by 77 on the wire below
  msg.sender = from;
  msg.receiver = leader;
  msg.ballot.round = before->epoch + 1000;
  msg.ballot.replica = from;
  proto::PeerMessage m;
  m.sender = from;
  m.receiver = leader;
  m.payload = codec::Encode(msg);
  // Strict binary protocol: field 1 (type) comes first as i32 (type byte 8,
  // id 0x0001, big-endian value). Patched in the bytes, because holding 77 in
  // the enum field to write it would be undefined behaviour in this test.
  ASSERT_GE(m.payload.size(), 7u);
  ASSERT_EQ(m.payload.substr(0, 7), std::string("\x08\x00\x01\x00\x00\x00\x01", 7));
  m.payload[6] = 77;
  auto ack = testing::CallOnce<proto::PeerMessage, proto::PeerAck>(ports_[leader - 1], "Deliver", m);
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto after = client_->ClusterStatus(Addr(ports_[leader - 1]));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->leader_id, leader);
  EXPECT_EQ(after->epoch, before->epoch);
  EXPECT_NE(replicas_[leader - 1]->LogTail().find("unknown type 77"), std::string::npos)
      << replicas_[leader - 1]->LogTail();
}

TEST_F(ClusterTest, AFollowerAnswersInTheReplyOnlyWhenTheCallAsks) {
  Start(3);
  int leader = WaitLeader(15000);
  ASSERT_NE(leader, 0);
  const int follower = leader % 3 + 1;
  // A HEARTBEAT "from the leader" with a ballot below the follower's promise:
  // it answers HEARTBEAT_REPLY (refused) at once, and changes nothing.
  auto heartbeat = [&](std::optional<bool> answer_in_reply) {
    paxos::wire::Message msg;
    msg.type = paxos::wire::Type::HEARTBEAT;
    msg.sender = leader;
    msg.receiver = follower;
    msg.ballot.round = 0;
    msg.ballot.replica = leader;
    proto::PeerMessage m;
    m.sender = leader;
    m.receiver = follower;
    m.payload = codec::Encode(msg);
    if (answer_in_reply) m.__set_answer_in_reply(*answer_in_reply);
    return m;
  };
  // As a replica before answer_in_reply calls: the ack at once, no payload
  // (the answer went to the leader as a call of its own).
  for (std::optional<bool> flag : {std::optional<bool>(), std::optional<bool>(false)}) {
    auto ack = testing::CallOnce<proto::PeerMessage, proto::PeerAck>(ports_[follower - 1], "Deliver",
                                                                     heartbeat(flag));
    ASSERT_TRUE(ack.ok()) << ack.status().ToString();
    EXPECT_FALSE(ack->__isset.payload);
  }
  // Asked for: the answer comes in the reply.
  auto ack = testing::CallOnce<proto::PeerMessage, proto::PeerAck>(ports_[follower - 1], "Deliver",
                                                                   heartbeat(true));
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  ASSERT_TRUE(ack->__isset.payload);
  paxos::wire::Message answer;
  ASSERT_TRUE(codec::Decode(ack->payload, &answer));
  EXPECT_EQ(answer.type, paxos::wire::Type::HEARTBEAT_REPLY);
  EXPECT_EQ(answer.sender, follower);
  EXPECT_FALSE(answer.ok);
  // A message the follower answers with nothing (ACCEPTED, to a replica that
  // does not lead): the held reply is still answered, empty or with the
  // follower's next message to the leader, long before the call's timeout.
  paxos::wire::Message accepted;
  accepted.type = paxos::wire::Type::ACCEPTED;
  accepted.sender = leader;
  accepted.receiver = follower;
  proto::PeerMessage m;
  m.sender = leader;
  m.receiver = follower;
  m.payload = codec::Encode(accepted);
  m.__set_answer_in_reply(true);
  auto started = std::chrono::steady_clock::now();
  auto late = testing::CallOnce<proto::PeerMessage, proto::PeerAck>(ports_[follower - 1], "Deliver", m,
                                                                    10 * kSeconds);
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  if (late->__isset.payload) {
    ASSERT_TRUE(codec::Decode(late->payload, &answer));
    EXPECT_EQ(answer.sender, follower);
  }
  // The group never noticed.
  auto s = client_->ClusterStatus(Addr(ports_[follower - 1]));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->leader_id, leader);
  StartLoad(2);
  EXPECT_TRUE(CommitsContinue(20, 20000));
  StopLoad();
}

TEST_F(ClusterTest, LeaderKilledDuringTransfersIsReplacedAndNothingIsLost) {
  Start(3);
  int leader = WaitLeader(15000);
  ASSERT_NE(leader, 0);
  StartLoad(6);
  ASSERT_TRUE(CommitsContinue(100, 30000));
  for (int round = 0; round < 2; ++round) {
    replicas_[leader - 1]->Kill(SIGKILL);
    int next = WaitLeader(15000);
    ASSERT_NE(next, 0) << "no new leader after killing replica " << leader;
    EXPECT_NE(next, leader);
    EXPECT_TRUE(CommitsContinue(100, 30000)) << "transfers stalled under the new leader " << next;
    Restart(leader);
    leader = next;
  }
  StopLoad();
  ExpectSettledAndConserved();
}

// The client keeps the txids one Begin reserved (ClientOptions.reserve_txids);
// after the leader's death the next Submit carries one of the dead leader's.
// The new leader presumes it aborted (it never ran), and the client submits
// the same work under a txid of the new leader: the application sees a commit.
TEST_F(ClusterTest, AReservedTxidOfAKilledLeaderIsReplacedByTheClient) {
  Start(3);
  int leader = WaitLeader(15000);
  ASSERT_NE(leader, 0);
  auto transfer = [this] {
    return client_->Submit(
        {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - 1 WHERE id = 1", {}, 1)}},
         {"bank_b", {SqlExpect("UPDATE accounts SET balance = balance + 1 WHERE id = 1", {}, 1)}}});
  };
  auto first = transfer();  // reserves a block of the current leader's txids
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  replicas_[leader - 1]->Kill(SIGKILL);
  int next = WaitLeader(15000);
  ASSERT_NE(next, 0);
  ASSERT_NE(next, leader);
  auto second = transfer();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_GT(second->epoch, first->epoch) << ToString(*first) << " then " << ToString(*second);
  auto o = client_->Outcome(*second);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(*o, proto::Outcome::COMMITTED);
  // The kept txid after the first: presumed aborted by the new leader.
  o = client_->Outcome(MakeTxId(first->epoch, first->seq + 1));
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(*o, proto::Outcome::ABORTED);
  Restart(leader);
  ExpectSettledAndConserved();
}

TEST_F(ClusterTest, FiveReplicasKeepCommittingWithTwoDown) {
  Start(5);
  int leader = WaitLeader(15000);
  ASSERT_NE(leader, 0);
  StartLoad(4);
  ASSERT_TRUE(CommitsContinue(50, 30000));
  int other = leader % 5 + 1;
  replicas_[other - 1]->Kill(SIGKILL);
  replicas_[leader - 1]->Kill(SIGKILL);
  int next = WaitLeader(15000);
  ASSERT_NE(next, 0);
  EXPECT_NE(next, leader);
  EXPECT_NE(next, other);
  EXPECT_TRUE(CommitsContinue(100, 30000)) << "a majority of 3 out of 5 must keep deciding";
  StopLoad();
  ExpectSettledAndConserved();
}

TEST_F(ClusterTest, ReplicaRestartedAfterCompactionCatchesUpBySnapshot) {
  Start(3, {"--snapshot-every", "50"});
  int leader = WaitLeader(15000);
  ASSERT_NE(leader, 0);
  int lagging = leader % 3 + 1;
  replicas_[lagging - 1]->Kill(SIGKILL);
  StartLoad(4);
  ASSERT_TRUE(CommitsContinue(300, 30000));  // far more slots than one snapshot interval
  StopLoad();
  auto ls = client_->ClusterStatus(Addr(ports_[leader - 1]));
  ASSERT_TRUE(ls.ok());
  Restart(lagging);
  bool caught_up = false;
  for (int w = 0; w < 600 && !caught_up; ++w) {
    auto s = client_->ClusterStatus(Addr(ports_[lagging - 1]));
    caught_up = s.ok() && s->applied_index >= ls->applied_index;
    if (!caught_up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(caught_up) << replicas_[lagging - 1]->LogTail();
  EXPECT_TRUE(LogContains(lagging, "installing the leader's snapshot")) << replicas_[lagging - 1]->LogTail();
  ExpectSettledAndConserved();
}

// Issue 8, 4c, the replacement procedure of docs/operations.md: a replica's
// machine is replaced (stopped, its data directory gone) and started under
// its old id on an empty directory. It must not vote before it rejoined; once
// it has, it is a full member: the group then survives losing another replica
// with it in the majority, and no decision is lost.
TEST_F(ClusterTest, ReplicaWithAWipedDataDirectoryRejoinsAndTheGroupKeepsEveryDecision) {
  Start(3, {"--snapshot-every", "50"});
  int leader = WaitLeader(5000);
  ASSERT_NE(leader, 0);
  StartLoad(4);
  ASSERT_TRUE(CommitsContinue(150, 20000));
  const int wiped = leader % 3 + 1;
  replicas_[wiped - 1]->Kill(SIGKILL);
  replicas_[wiped - 1]->WaitExit(5000);
  std::filesystem::remove_all(dir_.path + "/c" + std::to_string(wiped));
  ASSERT_TRUE(CommitsContinue(50, 20000)) << "the other two must keep deciding";
  Restart(wiped);
  EXPECT_TRUE(CommitsContinue(100, 20000)) << "transfers stalled while replica " << wiped << " rejoined";
  bool rejoined = false;
  for (int w = 0; w < 200 && !rejoined; ++w) {
    rejoined = LogContains(wiped, "rejoined with promise");
    if (!rejoined) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(rejoined) << replicas_[wiped - 1]->LogTail();

  // Now lose one of the two that kept the log: the rejoined replica's vote
  // is needed for every decision from here on.
  leader = WaitLeader(5000);
  ASSERT_NE(leader, 0);
  const int gone = leader != wiped ? leader : wiped % 3 + 1;
  replicas_[gone - 1]->Kill(SIGKILL);
  int next = WaitLeader(5000);
  ASSERT_NE(next, 0) << "no leader among the rejoined replica and the last original one";
  EXPECT_TRUE(CommitsContinue(100, 20000)) << "transfers stalled with the rejoined replica in the majority";
  StopLoad();
  ExpectSettledAndConserved();
  Restart(gone);
  auto ls = client_->ClusterStatus(Addr(ports_[next - 1]));
  ASSERT_TRUE(ls.ok());
  bool caught_up = false;
  for (int w = 0; w < 200 && !caught_up; ++w) {
    auto s = client_->ClusterStatus(Addr(ports_[wiped - 1]));
    caught_up = s.ok() && s->applied_index >= ls->applied_index;
    if (!caught_up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(caught_up) << replicas_[wiped - 1]->LogTail();
}

}  // namespace
}  // namespace txc
