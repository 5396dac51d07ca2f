// Connection limits of the RPC server (issue 12, item 7): idle connections
// are closed, a frame that trickles in is closed at its deadline, calls in
// flight per connection are bounded, and so are connections per listener and
// per peer address.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/rpc.h"
#include "txcoord_types.h"

namespace txc::rpc {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

class RpcLimitsTest : public ::testing::Test {
 protected:
  // A server whose "Begin" keeps its replies until the test releases them.
  std::unique_ptr<RpcServer> Serve(ServerOptions o) {
    auto server = std::make_unique<RpcServer>(io_, o);
    server->Handle<proto::BeginRequest, proto::BeginResponse>(
        "Begin", [this](proto::BeginRequest, RpcServer::Reply<proto::BeginResponse> reply) {
          held_.push_back(std::move(reply));
        });
    Status s = server->Listen("127.0.0.1:0");
    EXPECT_TRUE(s.ok()) << s.ToString();
    return server;
  }

  void ReleaseAll() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& reply : held) {
      proto::BeginResponse r;
      r.status.code = proto::Code::OK;
      reply(r);
    }
  }

  // Runs the io_context until `pred` holds, up to `ms`.
  template <class Pred>
  bool RunUntil(Pred pred, int ms = 10000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!pred() && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  // A raw TCP connection to the server, and a flag set when the server
  // closes it (a read that completes with an error).
  std::unique_ptr<tcp::socket> RawConnect(uint16_t port, bool* closed) {
    auto socket = std::make_unique<tcp::socket>(io_);
    socket->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    socket->async_read_some(asio::buffer(sink_),
                            [closed](const boost::system::error_code& ec, size_t) {
                              if (ec) *closed = true;
                            });
    return socket;
  }

  asio::io_context io_;
  std::vector<RpcServer::Reply<proto::BeginResponse>> held_;
  char sink_[64];
};

TEST_F(RpcLimitsTest, IdleConnectionIsClosed) {
  ServerOptions o;
  o.idle_timeout = 200 * kMillis;
  auto server = Serve(o);
  bool closed = false;
  auto socket = RawConnect(server->port(), &closed);
  EXPECT_TRUE(RunUntil([&] { return closed; }));
  EXPECT_EQ(server->idle_closed(), 1u);
  EXPECT_EQ(server->slow_frames_closed(), 0u);
}

TEST_F(RpcLimitsTest, ConnectionWaitingForItsReplyIsNotIdle) {
  ServerOptions o;
  o.idle_timeout = 100 * kMillis;
  auto server = Serve(o);
  auto channel = std::make_shared<RpcChannel>(io_, "127.0.0.1:" + std::to_string(server->port()));
  bool done = false;
  Status status;
  channel->Call<proto::BeginRequest, proto::BeginResponse>(
      "Begin", proto::BeginRequest(), 10 * kSeconds, [&](Status s, proto::BeginResponse) {
        status = s;
        done = true;
      });
  ASSERT_TRUE(RunUntil([&] { return held_.size() == 1; }));
  // Several idle timeouts pass while the handler holds the reply.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  RunUntil([&] { return std::chrono::steady_clock::now() >= until; }, 1000);
  EXPECT_EQ(server->idle_closed(), 0u);
  ReleaseAll();
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_TRUE(status.ok()) << status.ToString();
  // Answered, the connection is idle again, and closed in time.
  EXPECT_TRUE(RunUntil([&] { return server->idle_closed() == 1u; }));
}

TEST_F(RpcLimitsTest, FrameThatTricklesInIsClosedAtItsDeadline) {
  ServerOptions o;
  o.frame_timeout = 300 * kMillis;
  o.idle_timeout = 60 * kSeconds;
  auto server = Serve(o);
  bool closed = false;
  auto socket = RawConnect(server->port(), &closed);
  // A 1000-byte frame, sent a byte every 20 ms: the bytes keep coming, but
  // the frame would take 20 s.
  static const char kLength[4] = {0, 0, 0x03, static_cast<char>(0xe8)};
  asio::write(*socket, asio::buffer(kLength, 4));
  asio::steady_timer timer(io_);
  int sent = 0;
  std::function<void()> trickle = [&] {
    timer.expires_after(std::chrono::milliseconds(20));
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec || closed || ++sent > 200) return;
      boost::system::error_code ignored;
      asio::write(*socket, asio::buffer("x", 1), ignored);
      trickle();
    });
  };
  trickle();
  EXPECT_TRUE(RunUntil([&] { return closed; }, 5000));
  EXPECT_LT(sent, 100) << "closed only after the trickle";
  EXPECT_EQ(server->slow_frames_closed(), 1u);
  timer.cancel();
}

TEST_F(RpcLimitsTest, CallsInFlightPerConnectionAreBounded) {
  ServerOptions o;
  o.max_in_flight = 2;
  auto server = Serve(o);
  auto channel = std::make_shared<RpcChannel>(io_, "127.0.0.1:" + std::to_string(server->port()));
  std::vector<std::pair<Status, proto::BeginResponse>> results;
  for (int i = 0; i < 3; ++i) {
    channel->Call<proto::BeginRequest, proto::BeginResponse>(
        "Begin", proto::BeginRequest(), 10 * kSeconds,
        [&](Status s, proto::BeginResponse r) { results.emplace_back(s, r); });
  }
  // The third is answered at once, without its handler running.
  ASSERT_TRUE(RunUntil([&] { return results.size() == 1 && held_.size() == 2; }));
  ASSERT_TRUE(results[0].first.ok()) << results[0].first.ToString();
  EXPECT_EQ(results[0].second.status.code, proto::Code::UNAVAILABLE);
  EXPECT_NE(results[0].second.status.message.find("in flight"), std::string::npos);
  EXPECT_EQ(server->in_flight_refused(), 1u);
  ReleaseAll();
  ASSERT_TRUE(RunUntil([&] { return results.size() == 3; }));
  EXPECT_EQ(results[1].second.status.code, proto::Code::OK);
  EXPECT_EQ(results[2].second.status.code, proto::Code::OK);
  // With room again, a new call runs.
  bool done = false;
  channel->Call<proto::BeginRequest, proto::BeginResponse>(
      "Begin", proto::BeginRequest(), 10 * kSeconds,
      [&](Status, proto::BeginResponse) { done = true; });
  ASSERT_TRUE(RunUntil([&] { return held_.size() == 1; }));
  ReleaseAll();
  EXPECT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(server->in_flight_refused(), 1u);
}

// Every client of this test is 127.0.0.1, so they all share one address's
// slots: a cap of 3 refuses the fourth connection.
TEST_F(RpcLimitsTest, ConnectionsFromOnePeerAddressAreBounded) {
  ServerOptions o;
  o.max_connections_per_peer = 3;
  auto server = Serve(o);
  bool closed[4] = {};
  std::vector<std::unique_ptr<tcp::socket>> sockets;
  for (int i = 0; i < 3; ++i) sockets.push_back(RawConnect(server->port(), &closed[i]));
  ASSERT_TRUE(RunUntil([&] { return server->open_connections() == 3; }));
  sockets.push_back(RawConnect(server->port(), &closed[3]));
  EXPECT_TRUE(RunUntil([&] { return closed[3]; })) << "the fourth was not refused";
  EXPECT_EQ(server->peer_connections_refused(), 1u);
  EXPECT_EQ(server->connections_refused(), 0u) << "refused by the listener's cap instead";
  EXPECT_EQ(server->open_connections(), 3u);
  EXPECT_FALSE(closed[0] || closed[1] || closed[2]);
  // Once the server has seen one of the three close, the address has a slot
  // again: a new connection is served.
  sockets[0]->close();
  ASSERT_TRUE(RunUntil([&] { return server->open_connections() == 2; }));
  auto channel = std::make_shared<RpcChannel>(io_, "127.0.0.1:" + std::to_string(server->port()));
  Status status = Status::Internal("no answer");
  bool done = false;
  channel->Call<proto::BeginRequest, proto::BeginResponse>(
      "Begin", proto::BeginRequest(), 10 * kSeconds, [&](Status s, proto::BeginResponse) {
        status = s;
        done = true;
      });
  ASSERT_TRUE(RunUntil([&] { return held_.size() == 1; })) << "the new connection was not served";
  ReleaseAll();
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(server->open_connections(), 3u);
  EXPECT_EQ(server->peer_connections_refused(), 1u);
  // Full again: the next one is refused.
  bool refused = false;
  auto extra = RawConnect(server->port(), &refused);
  EXPECT_TRUE(RunUntil([&] { return refused; }));
  EXPECT_EQ(server->peer_connections_refused(), 2u);
  channel->Close();
}

TEST_F(RpcLimitsTest, ListenerCapIsCountedApartFromThePerPeerCap) {
  ServerOptions o;
  o.max_connections = 2;
  auto server = Serve(o);
  bool closed[3] = {};
  auto a = RawConnect(server->port(), &closed[0]);
  auto b = RawConnect(server->port(), &closed[1]);
  ASSERT_TRUE(RunUntil([&] { return server->open_connections() == 2; }));
  auto c = RawConnect(server->port(), &closed[2]);
  EXPECT_TRUE(RunUntil([&] { return closed[2]; }));
  EXPECT_EQ(server->connections_refused(), 1u);
  EXPECT_EQ(server->peer_connections_refused(), 0u);
  EXPECT_FALSE(closed[0] || closed[1]);
}

}  // namespace
}  // namespace txc::rpc
