// coordinator/decision_log.h's PaxosLog, the replica's durable acceptor
// state in a wal::LogStore: a failed write of any kind (a Persist, the
// leader's snapshot kept on install, a compaction) is the log's sticky
// failure, reported to the node; and what it wrote is read back on restart.
#include "coordinator/decision_log.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "protocol/rpc.h"
#include "tests/support/process.h"

namespace txc::coord {
namespace {

class PaxosLogTest : public ::testing::Test {
 protected:
  PaxosLogOptions Options() const {
    PaxosLogOptions o;
    o.self_id = 1;
    o.peers = {{1, "127.0.0.1:1"}, {2, "127.0.0.1:2"}, {3, "127.0.0.1:3"}};
    o.path = dir_.path + "/paxos.db";
    return o;
  }
  std::unique_ptr<PaxosLog> Open() {
    auto log = std::make_unique<PaxosLog>(io_, &server_, Options());
    auto recovered = log->Recover();
    EXPECT_TRUE(recovered.ok()) << recovered.status().ToString();
    if (recovered.ok()) recovered_ = *recovered;
    PaxosLog::Hooks h;
    h.persisted = [this](uint64_t token) { persisted_.push_back(token); };
    h.message = [](const paxos::Message&) {};
    h.failed = [this](const Status& s) { failures_.push_back(s); };
    EXPECT_TRUE(log->Start(std::move(h)).ok());
    return log;
  }
  // Runs the io_context until `done`, for at most `ms`.
  template <class F>
  void RunUntil(F done, int ms = 5000) {
    // The store completes on its own thread and posts here: keep run_for
    // waiting for that instead of returning at once.
    auto busy = boost::asio::make_work_guard(io_);
    for (int i = 0; i < ms / 10 && !done(); ++i) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(10));
    }
  }

  testing::TempDir dir_;
  boost::asio::io_context io_;
  rpc::RpcServer server_{io_};
  paxos::DurableState recovered_;
  std::vector<uint64_t> persisted_;
  std::vector<Status> failures_;
};

TEST_F(PaxosLogTest, AKeptSnapshotIsReadBackOnRestart) {
  {
    auto log = Open();
    EXPECT_TRUE(recovered_.joining);  // a new, empty log
    log->KeepSnapshot(7, "image-7");
    paxos::Persist p;
    p.token = 1;
    p.joined = true;
    log->Persist(p);  // behind the image: durable once both are
    RunUntil([&] { return !persisted_.empty(); });
    ASSERT_EQ(persisted_, std::vector<uint64_t>{1});
    EXPECT_TRUE(failures_.empty());
    log->Stop();
  }
  PaxosLog log(io_, &server_, Options());  // a restart: recovered, not started
  auto r = log.Recover();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->snapshot_index, 7);
  EXPECT_EQ(r->snapshot, "image-7");
  EXPECT_FALSE(r->joining);
}

// The installed image's write fails: the node hears of it at once, and the
// log takes no more writes (the joined record behind it never completes).
TEST_F(PaxosLogTest, AFailedSnapshotWriteFailsTheLog) {
  auto log = Open();
  log->InjectStoreFailureForTest();
  log->KeepSnapshot(7, "image-7");
  RunUntil([&] { return !failures_.empty(); });
  ASSERT_FALSE(failures_.empty()) << "a failed snapshot write went unreported";
  EXPECT_EQ(failures_[0].code(), Status::kStorageFailed);
  EXPECT_TRUE(log->failed());
  paxos::Persist p;
  p.token = 1;
  p.joined = true;
  log->Persist(p);
  RunUntil([] { return false; }, 200);
  EXPECT_TRUE(persisted_.empty());
}

TEST_F(PaxosLogTest, AFailedCompactionFailsTheLog) {
  auto log = Open();
  log->InjectStoreFailureForTest();
  log->Compact(3, std::make_shared<const std::string>("image-3"));
  RunUntil([&] { return !failures_.empty(); });
  ASSERT_FALSE(failures_.empty()) << "a failed compaction went unreported";
  EXPECT_TRUE(log->failed());
}

// A follower answers the leader's calls in their replies, so it sends
// nothing on its own connection to the leader; yet the early election needs
// that connection's end of stream when the leader's process dies
// (on_closed_by_peer: every follower that hears it runs and grants the
// pre-vote at once). Replica 2 hears from 1 and opens its own connection
// to 1; when 1's server goes away, 2's log reports replica 1 gone.
TEST(PaxosLogPeerTest, AReplicaKeepsAConnectionToWhoeverCallsItAndHearsWhenItCloses) {
  testing::TempDir dir;
  boost::asio::io_context io;
  rpc::RpcServer server1(io), server2(io);
  std::vector<int> gone;  // replica 2's peer_gone reports
  int heard = 0;          // messages replica 2 took
  auto open = [&](int id, rpc::RpcServer* server, const std::map<int, std::string>& peers) {
    PaxosLogOptions o;
    o.self_id = id;
    o.peers = peers;
    o.path = dir.path + "/paxos" + std::to_string(id) + ".db";
    auto log = std::make_unique<PaxosLog>(io, server, o);
    EXPECT_TRUE(log->Recover().ok());
    PaxosLog::Hooks h;
    h.persisted = [](uint64_t) {};
    h.failed = [](const Status&) {};
    h.message = [&heard, id](const paxos::Message&) { heard += id == 2 ? 1 : 0; };
    h.peer_gone = [&gone, id](int peer) {
      if (id == 2) gone.push_back(peer);
    };
    EXPECT_TRUE(log->Start(std::move(h)).ok());
    return log;
  };
  // The handlers (Start) before Listen, so the ports are chosen first.
  const int port1 = testing::FreePort(), port2 = testing::FreePort();
  const std::map<int, std::string> peers = {{1, "127.0.0.1:" + std::to_string(port1)},
                                            {2, "127.0.0.1:" + std::to_string(port2)},
                                            {3, "127.0.0.1:1"}};
  auto log1 = open(1, &server1, peers);
  auto log2 = open(2, &server2, peers);
  ASSERT_TRUE(server1.Listen(peers.at(1)).ok());
  ASSERT_TRUE(server2.Listen(peers.at(2)).ok());
  auto run_until = [&](const std::function<bool()>& done) {
    auto busy = boost::asio::make_work_guard(io);
    for (int i = 0; i < 500 && !done(); ++i) {
      io.restart();
      io.run_for(std::chrono::milliseconds(10));
    }
  };
  paxos::Outgoing o;
  o.to = 2;
  o.msg.type = paxos::wire::Type::HEARTBEAT;
  o.msg.sender = 1;
  o.msg.receiver = 2;
  log1->Send(o);
  run_until([&] { return heard > 0 && server1.open_connections() > 0; });
  ASSERT_EQ(heard, 1);
  EXPECT_EQ(server1.open_connections(), 1u) << "replica 2 opened its own connection to 1";
  EXPECT_TRUE(gone.empty());
  // Replica 1's process "dies": its server closes every connection.
  log1->Stop();
  server1.Stop();
  run_until([&] { return !gone.empty(); });
  ASSERT_EQ(gone, std::vector<int>{1});
  log2->Stop();
}

}  // namespace
}  // namespace txc::coord
