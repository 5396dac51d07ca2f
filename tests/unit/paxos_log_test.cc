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

#include "common/codec.h"
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

// Two real PaxosLogs (replicas 1 and 2; 3 is an address nobody serves) on
// their own RpcServers, one io_context. Replica 2's peer_gone reports and the
// messages it takes are counted.
struct PeerPair {
  explicit PeerPair(rpc::ServerOptions server1_options = {}, PaxosLogOptions base = {})
      : server1(io, server1_options), server2(io) {
    const int port1 = testing::FreePort(), port2 = testing::FreePort();
    peers = {{1, "127.0.0.1:" + std::to_string(port1)},
             {2, "127.0.0.1:" + std::to_string(port2)},
             {3, "127.0.0.1:1"}};
    // The handlers (Start) before Listen, so the ports are chosen first.
    log1 = Open(1, &server1, base);
    log2 = Open(2, &server2, base);
    EXPECT_TRUE(server1.Listen(peers.at(1)).ok());
    EXPECT_TRUE(server2.Listen(peers.at(2)).ok());
  }
  std::unique_ptr<PaxosLog> Open(int id, rpc::RpcServer* server, PaxosLogOptions o) {
    o.self_id = id;
    o.peers = peers;
    o.path = dir.path + "/paxos" + std::to_string(id) + ".db";
    auto log = std::make_unique<PaxosLog>(io, server, o);
    EXPECT_TRUE(log->Recover().ok());
    PaxosLog::Hooks h;
    h.persisted = [](uint64_t) {};
    h.failed = [](const Status&) {};
    h.message = [this, id](const paxos::Message&) { (id == 2 ? heard : heard_by_1) += 1; };
    h.peer_gone = [this, id](int peer) {
      if (id == 2) gone.push_back(peer);
    };
    EXPECT_TRUE(log->Start(std::move(h)).ok());
    return log;
  }
  // A heartbeat from replica `from` to `to`.
  static paxos::Outgoing Heartbeat(int from, int to) {
    paxos::Outgoing o;
    o.to = to;
    o.msg.type = paxos::wire::Type::HEARTBEAT;
    o.msg.sender = from;
    o.msg.receiver = to;
    return o;
  }
  void RunUntil(const std::function<bool()>& done, int max_ms = 5000) {
    auto busy = boost::asio::make_work_guard(io);
    for (int i = 0; i < max_ms && !done(); ++i) {
      io.restart();
      io.run_for(std::chrono::milliseconds(1));
    }
  }

  testing::TempDir dir;
  boost::asio::io_context io;
  rpc::RpcServer server1, server2;
  std::map<int, std::string> peers;
  std::vector<int> gone;  // replica 2's peer_gone reports
  int heard = 0;          // messages replica 2 took
  int heard_by_1 = 0;     // and replica 1
  std::unique_ptr<PaxosLog> log1, log2;
};

// A follower answers the leader's calls in their replies, so it sends
// nothing on its own connection to the leader; yet the early election needs
// that connection's end of stream when the leader's process dies
// (on_closed_by_peer: every follower that hears it runs and grants the
// pre-vote at once). Replica 2 hears from 1 and opens its own connection
// to 1; when 1's server goes away, 2's log reports replica 1 gone.
TEST(PaxosLogPeerTest, AReplicaKeepsAConnectionToWhoeverCallsItAndHearsWhenItCloses) {
  PeerPair p;
  p.log1->Send(PeerPair::Heartbeat(1, 2));
  p.RunUntil([&] { return p.heard > 0 && p.server1.open_connections() > 0; });
  ASSERT_EQ(p.heard, 1);
  EXPECT_EQ(p.server1.open_connections(), 1u) << "replica 2 opened its own connection to 1";
  EXPECT_TRUE(p.gone.empty());
  // Replica 1's process "dies": its server closes every connection.
  p.log1->Stop();
  p.server1.Stop();
  p.RunUntil([&] { return !p.gone.empty(); });
  ASSERT_EQ(p.gone, std::vector<int>{1});
  p.log2->Stop();
}

// A follower answers the leader in the replies to the leader's calls, so
// its own connection to the leader (kept open to hear the leader's death,
// above) carries nothing; the leader's server would close it at its idle
// timeout, and the follower would take that for the leader's death. Its
// messages go as calls of their own often enough to keep it open.
TEST(PaxosLogPeerTest, AReplicaThatAnswersInRepliesStillCallsOftenEnoughToStayConnected) {
  rpc::ServerOptions short_idle;
  short_idle.idle_timeout = 600 * kMillis;
  PaxosLogOptions o;
  o.call_at_least_every = 200 * kMillis;  // a third of server1's idle timeout
  PeerPair p(short_idle, o);
  // 2 s of a heartbeat from 1 every 50 ms, each answered by 2 (in the reply
  // to 1's call, unless a call of 2's own is due): more than three of
  // server1's idle timeouts.
  for (int i = 0; i < 40; ++i) {
    const int before = p.heard;
    p.log1->Send(PeerPair::Heartbeat(1, 2));
    p.RunUntil([&] { return p.heard > before; }, 50);
    p.log2->Send(PeerPair::Heartbeat(2, 1));
    p.RunUntil([] { return false; }, 50);
  }
  EXPECT_EQ(p.heard, 40);
  EXPECT_TRUE(p.gone.empty()) << "replica 2's connection to 1 was closed as idle";
  EXPECT_EQ(p.server1.idle_closed(), 0u);
  EXPECT_GT(p.log2->sent_in_reply(), p.log2->sent_as_call());
  EXPECT_GE(p.log2->sent_as_call(), 5u);
  p.log1->Stop();
  p.log2->Stop();
}

// The keep-alive above assumes the peers share an idle timeout. One that
// closes our connection sooner (a shorter --rpc-idle-timeout) is still
// running: its close must not be taken for its death (an early election,
// every idle timeout, by every follower at once).
TEST(PaxosLogPeerTest, AnIdleCloseByAPeerWithAShorterIdleTimeoutIsNotTakenForItsDeath) {
  rpc::ServerOptions short_idle;
  short_idle.idle_timeout = 200 * kMillis;
  PeerPair p(short_idle);  // replica 2 calls at least every 60 s only
  p.log1->Send(PeerPair::Heartbeat(1, 2));
  p.RunUntil([&] { return p.heard > 0 && p.server1.open_connections() > 0; });
  ASSERT_EQ(p.heard, 1);
  p.RunUntil([&] { return p.server1.idle_closed() >= 2; }, 3000);
  EXPECT_GE(p.server1.idle_closed(), 2u);
  EXPECT_TRUE(p.gone.empty()) << "replica 1's idle close was taken for its death";
  // And its death still is reported.
  p.log1->Stop();
  p.server1.Stop();
  p.RunUntil([&] { return !p.gone.empty(); });
  EXPECT_EQ(p.gone, std::vector<int>{1});
  p.log2->Stop();
}

// Replica 2 holds the reply of a call from 1 to carry its next message to 1;
// if that call's connection closes first (1 gave up on it, or restarted), the
// reply would be dropped and the message lost with it, until a retransmission
// much later. The message must reach 1 another way: here as a call of its own.
TEST(PaxosLogPeerTest, AMessageIsNotPutInAHeldReplyWhoseConnectionHasClosed) {
  PeerPair p;
  // Replica 1's call, on a connection of the test's own that it closes after.
  auto channel = std::make_shared<rpc::RpcChannel>(p.io, p.peers.at(2));
  proto::PeerMessage m;
  m.sender = 1;
  m.receiver = 2;
  m.payload = codec::Encode(PeerPair::Heartbeat(1, 2).msg);
  m.__set_answer_in_reply(true);
  int answered = 0;
  channel->Call<proto::PeerMessage, proto::PeerAck>(
      "Deliver", m, 5 * kSeconds, [&](Status, proto::PeerAck) { ++answered; });
  p.RunUntil([&] { return p.heard > 0; });
  ASSERT_EQ(p.heard, 1);
  EXPECT_EQ(answered, 0) << "replica 2 holds the reply for its next message to 1";
  channel->Close();
  p.RunUntil([&] { return p.server2.open_connections() == 0; });
  ASSERT_EQ(p.server2.open_connections(), 0u);

  p.log2->Send(PeerPair::Heartbeat(2, 1));
  p.RunUntil([&] { return p.heard_by_1 > 0; }, 3000);
  EXPECT_EQ(p.heard_by_1, 1) << "the message went into the reply on the closed connection";
  EXPECT_EQ(p.log2->held_on_closed(), 1u);
  EXPECT_EQ(p.log2->sent_in_reply(), 0u);
  EXPECT_EQ(p.log2->sent_as_call(), 1u);
  p.log1->Stop();
  p.log2->Stop();
}

}  // namespace
}  // namespace txc::coord
