#include "protocol/rpc.h"

#include <gtest/gtest.h>

#include "tests/support/core_harness.h"
#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "Coordinator.h"
#include "Replica.h"
#include "common/log.h"
#include "txcoord_types.h"

#ifndef ASSERT_OK
#endif

namespace txc::rpc {
namespace {

namespace asio = boost::asio;
using apache::thrift::TApplicationException;
using asio::ip::tcp;
using std::chrono::milliseconds;

using BeginReply = RpcServer::Reply<proto::BeginResponse>;

proto::BeginRequest MakeBegin(int64_t value) {
  proto::BeginRequest req;
  req.__set_timeout_ms(value);
  return req;
}

// A Begin response that echoes the request, so a caller can tell replies apart.
proto::BeginResponse EchoBegin(const proto::BeginRequest& req) {
  proto::BeginResponse resp;
  resp.status.code = proto::Code::OK;
  resp.txid.epoch = 7;
  resp.txid.seq = req.timeout_ms;
  return resp;
}

std::string Frame(const std::string& body) {
  std::string out(4, '\0');
  const auto n = static_cast<uint32_t>(body.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  return out + body;
}

// A framed call written by Thrift's own protocol code, independent of rpc.cc.
std::string EncodeBeginCall(const std::string& method, int64_t value, int32_t seqid) {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  apache::thrift::protocol::TBinaryProtocol protocol(buffer);
  protocol.writeMessageBegin(method, apache::thrift::protocol::T_CALL, seqid);
  proto::Coordinator_Begin_args args;
  args.req = MakeBegin(value);
  args.write(&protocol);
  protocol.writeMessageEnd();
  return Frame(buffer->getBufferAsString());
}

struct DecodedReply {
  std::string name;
  apache::thrift::protocol::TMessageType type = apache::thrift::protocol::T_CALL;
  int32_t seqid = 0;
  proto::BeginResponse begin;
  TApplicationException exception;
};

// Parses a reply frame body (without its length prefix) with Thrift's code.
DecodedReply DecodeBeginReply(const std::string& body) {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(body.data())),
      static_cast<uint32_t>(body.size()), apache::thrift::transport::TMemoryBuffer::COPY);
  apache::thrift::protocol::TBinaryProtocol protocol(buffer);
  DecodedReply out;
  protocol.readMessageBegin(out.name, out.type, out.seqid);
  if (out.type == apache::thrift::protocol::T_EXCEPTION) {
    out.exception.read(&protocol);
  } else {
    proto::Coordinator_Begin_presult result;
    result.success = &out.begin;
    result.read(&protocol);
  }
  return out;
}

class RpcTest : public ::testing::Test {
 protected:
  struct Outcome {
    bool done = false;
    int runs = 0;
    Status status;
    proto::BeginResponse resp;
  };

  // Runs the io_context until pred() holds or `timeout` passes. Wakes up
  // every few ms, so pred() may also watch another thread.
  bool RunUntil(const std::function<bool()>& pred, milliseconds timeout = milliseconds(3000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      io_.run_one_until(std::min(deadline, now + milliseconds(2)));
    }
    return true;
  }
  void RunFor(milliseconds d) { io_.run_for(d); }

  // A channel to `address` that appends each on_closed_by_peer report to `closed`.
  std::shared_ptr<RpcChannel> ReportingChannel(const std::string& address,
                                               std::vector<std::string>* closed) {
    ChannelOptions o;
    o.on_closed_by_peer = [closed](const std::string& a) { closed->push_back(a); };
    return std::make_shared<RpcChannel>(io_, address, o);
  }

  // Registers Begin as an echo and listens on a free loopback port.
  void StartEchoServer(RpcServer* server) {
    server->Handle<proto::BeginRequest, proto::BeginResponse>(
        "Begin", [](proto::BeginRequest req, BeginReply reply) { reply(EchoBegin(req)); });
    ASSERT_OK(server->Listen("127.0.0.1:0"));
    ASSERT_NE(server->port(), 0);
  }

  static std::string Address(const RpcServer& server) {
    return "127.0.0.1:" + std::to_string(server.port());
  }

  std::shared_ptr<Outcome> StartBegin(RpcChannel& channel, int64_t value,
                                      Micros timeout = 3 * kSeconds,
                                      const std::string& method = "Begin") {
    auto out = std::make_shared<Outcome>();
    channel.Call<proto::BeginRequest, proto::BeginResponse>(
        method, MakeBegin(value), timeout, [out](Status status, proto::BeginResponse resp) {
          ++out->runs;
          out->done = true;
          out->status = std::move(status);
          out->resp = std::move(resp);
        });
    return out;
  }

  Outcome Begin(RpcChannel& channel, int64_t value, Micros timeout = 3 * kSeconds,
                const std::string& method = "Begin") {
    auto out = StartBegin(channel, value, timeout, method);
    EXPECT_TRUE(RunUntil([&] { return out->done; })) << "call did not complete";
    return *out;
  }

  // Reads one frame body from a raw socket, or nullopt on close / timeout.
  std::optional<std::string> ReadFrame(tcp::socket& socket) {
    struct State {
      std::array<char, 4> header{};
      std::string body;
      bool done = false;
      bool ok = false;
    };
    auto st = std::make_shared<State>();
    asio::async_read(socket, asio::buffer(st->header), [&socket, st](auto ec, size_t) {
      if (ec) {
        st->done = true;
        return;
      }
      const auto* h = reinterpret_cast<const uint8_t*>(st->header.data());
      st->body.resize((uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) |
                      h[3]);
      asio::async_read(socket, asio::buffer(st->body), [st](auto ec2, size_t) {
        st->ok = !ec2;
        st->done = true;
      });
    });
    if (!RunUntil([&] { return st->done; })) {
      socket.close();
      RunUntil([&] { return st->done; });
      return std::nullopt;
    }
    if (!st->ok) return std::nullopt;
    return st->body;
  }

  // True if the peer closes `socket` within the timeout (data is discarded).
  bool WaitClosed(tcp::socket& socket, milliseconds timeout = milliseconds(3000)) {
    struct State {
      std::array<char, 4096> buf;
      bool closed = false;
    };
    auto st = std::make_shared<State>();
    std::function<void()> read_more;
    read_more = [&socket, st, &read_more] {
      socket.async_read_some(asio::buffer(st->buf), [st, &read_more](auto ec, size_t) {
        if (ec) {
          st->closed = true;
        } else {
          read_more();
        }
      });
    };
    read_more();
    const bool closed = RunUntil([&] { return st->closed; }, timeout);
    if (!closed) {
      socket.close();
      RunUntil([&] { return st->closed; });
    }
    return closed;
  }

  tcp::socket Connect(uint16_t port) {
    tcp::socket socket(io_);
    socket.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
    return socket;
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
};

// ---------------------------------------------------------------- ParseEndpoint

TEST(ParseEndpointTest, AcceptsDottedQuadAndLocalhost) {
  auto a = ParseEndpoint("127.0.0.1:5000");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->address().to_string(), "127.0.0.1");
  EXPECT_EQ(a->port(), 5000);

  auto b = ParseEndpoint("localhost:5000");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->address().to_string(), "127.0.0.1");
  EXPECT_EQ(b->port(), 5000);

  auto c = ParseEndpoint("10.1.2.3:0");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port(), 0);
  EXPECT_TRUE(ParseEndpoint("1.2.3.4:65535").ok());
}

TEST(ParseEndpointTest, RejectsMalformedAddressesWithInvalidArgument) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not HOST:PORT"},
      {"abc", "not HOST:PORT"},
      {"1.2.3.4:notaport", "is not a number"},
      {":80", "has no host"},
      {"host:70000", "out of range"},
      {"1.2.3.4:", "is not a number"},
      {"1.2.3.4:-1", "is not a number"},
      {"1.2.3.4:99999999999", "is not a number"},
      {"example.com:80", "not an IPv4 address or localhost"},
      {"1.2.3:80", "not an IPv4 address or localhost"},
  };
  for (const auto& [input, why] : cases) {
    auto r = ParseEndpoint(input);
    ASSERT_FALSE(r.ok()) << "'" << input << "' parsed";
    EXPECT_EQ(r.status().code(), Status::kInvalidArgument) << input;
    EXPECT_NE(r.status().message().find(why), std::string::npos)
        << input << ": " << r.status().message();
  }
}

// ---------------------------------------------------------------- Serialize

TEST(SerializeTest, RoundTripsStructsAndRejectsForgedSizes) {
  proto::StatusResponse in;
  in.status.code = proto::Code::NOT_LEADER;
  in.status.__set_leader_hint("127.0.0.1:7001");
  in.leader_address = std::string(5000, 'x');
  in.replicas.resize(3);
  in.replicas[2].address = "10.0.0.3:7000";
  const detail::Bytes bytes = detail::Serialize(in);
  ASSERT_FALSE(bytes.empty());
  proto::StatusResponse out;
  ASSERT_TRUE(detail::Deserialize(bytes, &out));
  EXPECT_EQ(out, in);

  EXPECT_FALSE(detail::Deserialize(detail::Bytes(), &out));
  EXPECT_FALSE(detail::Deserialize(bytes.substr(0, bytes.size() / 2), &out));
  // Field 4 (string) claiming 2 GiB: refused without allocating it.
  EXPECT_FALSE(detail::Deserialize(detail::Bytes("\x0b\x00\x04\x7f\xff\xff\xff", 7), &out));
  // Field 8 (list<ReplicaInfo>) claiming 2^31-1 elements.
  EXPECT_FALSE(detail::Deserialize(detail::Bytes("\x0f\x00\x08\x0c\x7f\xff\xff\xff\x00", 9), &out));
  // list<Statement> whose wire element type is byte: the generated reader
  // reads the byte 0x63 as a field type; refused, not cast to TType.
  proto::ExecuteRequest exec;
  EXPECT_FALSE(
      detail::Deserialize(detail::Bytes("\x0f\x00\x03\x03\x00\x00\x00\x01\x63\x00", 10), &exec));
  // list<Statement> claiming a million (empty) structs in 9 bytes.
  EXPECT_FALSE(
      detail::Deserialize(detail::Bytes("\x0f\x00\x03\x0c\x00\x0f\x42\x40\x00", 9), &exec));
  // The scratch buffers are still usable after failures.
  proto::StatusResponse again;
  ASSERT_TRUE(detail::Deserialize(bytes, &again));
  EXPECT_EQ(again, in);
}

// ---------------------------------------------------------------- round trips

TEST_F(RpcTest, RoundTripReturnsHandlerResponse) {
  RpcServer server(io_);
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  EXPECT_EQ(channel->address(), Address(server));

  Outcome r = Begin(*channel, 42);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.runs, 1);
  EXPECT_EQ(r.resp.txid.epoch, 7);
  EXPECT_EQ(r.resp.txid.seq, 42);
  EXPECT_EQ(server.calls_served(), 1u);

  // A second call reuses the connection.
  r = Begin(*channel, 43);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.resp.txid.seq, 43);
}

TEST_F(RpcTest, ThousandConcurrentCallsMatchRepliesSentOutOfOrder) {
  constexpr int kCalls = 1000;
  RpcServer server(io_);
  std::vector<std::pair<proto::BeginRequest, BeginReply>> held;
  server.Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [&](proto::BeginRequest req, BeginReply reply) {
        held.emplace_back(std::move(req), std::move(reply));
      });
  ASSERT_OK(server.Listen("127.0.0.1:0"));
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));

  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < kCalls; ++i) outcomes.push_back(StartBegin(*channel, 1000 + i));
  ASSERT_TRUE(RunUntil([&] { return held.size() == kCalls; }));
  for (const auto& o : outcomes) EXPECT_FALSE(o->done);

  // Reply in a shuffled order, in several bursts.
  std::mt19937 rng(7);
  std::shuffle(held.begin(), held.end(), rng);
  for (size_t i = 0; i < held.size(); ++i) {
    held[i].second(EchoBegin(held[i].first));
    if (i % 97 == 0) io_.poll();
  }
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(outcomes.begin(), outcomes.end(), [](auto& o) { return o->done; });
  }));
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_OK(outcomes[i]->status);
    EXPECT_EQ(outcomes[i]->runs, 1);
    EXPECT_EQ(outcomes[i]->resp.txid.seq, 1000 + i) << "reply matched to the wrong call";
  }
  EXPECT_EQ(server.calls_served(), static_cast<uint64_t>(kCalls));
}

TEST_F(RpcTest, LargeRequestAndResponseCrossTheWireIntact) {
  RpcServer server(io_);
  server.Handle<proto::PeerMessage, proto::PeerAck>(
      "Deliver", [](proto::PeerMessage msg, RpcServer::Reply<proto::PeerAck> reply) {
        proto::PeerAck ack;
        ack.status.message = msg.payload;
        std::reverse(ack.status.message.begin(), ack.status.message.end());
        reply(ack);
      });
  ASSERT_OK(server.Listen("127.0.0.1:0"));
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));

  proto::PeerMessage msg;
  msg.sender = 1;
  msg.payload.resize(3u << 20);
  for (size_t i = 0; i < msg.payload.size(); ++i) msg.payload[i] = static_cast<char>(i * 31);
  int done = 0;
  for (int i = 0; i < 2; ++i) {
    channel->Call<proto::PeerMessage, proto::PeerAck>(
        "Deliver", msg, 5 * kSeconds, [&](Status status, proto::PeerAck ack) {
          EXPECT_TRUE(status.ok()) << status.ToString();
          std::string expect = msg.payload;
          std::reverse(expect.begin(), expect.end());
          EXPECT_TRUE(ack.status.message == expect);
          ++done;
        });
  }
  ASSERT_TRUE(RunUntil([&] { return done == 2; }, milliseconds(10000)));
}

TEST_F(RpcTest, ServerAnswersFramesSplitAcrossWritesAndBatchedInOneWrite) {
  RpcServer server(io_);
  StartEchoServer(&server);
  tcp::socket socket = Connect(server.port());

  const std::string a = EncodeBeginCall("Begin", 5, 100);
  asio::write(socket, asio::buffer(a.data(), 3));
  RunFor(milliseconds(5));
  asio::write(socket, asio::buffer(a.data() + 3, 9));
  RunFor(milliseconds(5));
  asio::write(socket, asio::buffer(a.data() + 12, a.size() - 12));
  auto reply = ReadFrame(socket);
  ASSERT_TRUE(reply.has_value());
  DecodedReply d = DecodeBeginReply(*reply);
  EXPECT_EQ(d.type, apache::thrift::protocol::T_REPLY);
  EXPECT_EQ(d.name, "Begin");
  EXPECT_EQ(d.seqid, 100);
  EXPECT_EQ(d.begin.txid.seq, 5);

  const std::string batch = EncodeBeginCall("Begin", 6, 101) + EncodeBeginCall("Begin", 7, 102) +
                            EncodeBeginCall("Begin", 8, 103);
  asio::write(socket, asio::buffer(batch));
  for (int i = 0; i < 3; ++i) {
    reply = ReadFrame(socket);
    ASSERT_TRUE(reply.has_value());
    d = DecodeBeginReply(*reply);
    EXPECT_EQ(d.seqid, 101 + i);
    EXPECT_EQ(d.begin.txid.seq, 6 + i);
  }
  EXPECT_EQ(server.malformed_frames(), 0u);
}

// ---------------------------------------------------------------- deadlines

TEST_F(RpcTest, CallTimesOutWhenHandlerNeverRepliesAndLateReplyIsDropped) {
  RpcServer server(io_);
  std::vector<std::pair<proto::BeginRequest, BeginReply>> held;
  server.Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [&](proto::BeginRequest req, BeginReply reply) {
        if (req.timeout_ms == 1) {
          held.emplace_back(std::move(req), std::move(reply));  // never answered in time
        } else {
          reply(EchoBegin(req));
        }
      });
  ASSERT_OK(server.Listen("127.0.0.1:0"));
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));

  const auto start = std::chrono::steady_clock::now();
  Outcome r = Begin(*channel, 1, 50 * kMillis);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status.code(), Status::kTimeout) << r.status.ToString();
  EXPECT_NE(r.status.message().find("Begin"), std::string::npos) << r.status.message();
  EXPECT_GE(took, milliseconds(45));
  EXPECT_LT(took, milliseconds(1000));
  ASSERT_EQ(held.size(), 1u);

  // The late reply reaches the channel and is dropped; the call ran once.
  held[0].second(EchoBegin(held[0].first));
  RunFor(milliseconds(20));
  EXPECT_EQ(r.runs, 1);

  // The connection is still good.
  Outcome ok = Begin(*channel, 2);
  ASSERT_OK(ok.status);
  EXPECT_EQ(ok.resp.txid.seq, 2);
}

TEST_F(RpcTest, NonPositiveTimeoutFailsAtOnceWithTimeout) {
  RpcServer server(io_);
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  Outcome r = Begin(*channel, 1, 0);
  EXPECT_EQ(r.status.code(), Status::kTimeout) << r.status.ToString();
}

// ---------------------------------------------------------------- failures

TEST_F(RpcTest, PendingCallFailsUnavailableWhenServerStops) {
  auto server = std::make_unique<RpcServer>(io_);
  std::vector<BeginReply> held;
  server->Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [&](proto::BeginRequest, BeginReply reply) { held.push_back(std::move(reply)); });
  ASSERT_OK(server->Listen("127.0.0.1:0"));
  auto channel = std::make_shared<RpcChannel>(io_, Address(*server));

  auto pending = StartBegin(*channel, 1);
  auto pending2 = StartBegin(*channel, 2);
  ASSERT_TRUE(RunUntil([&] { return held.size() == 2; }));
  server->Stop();
  ASSERT_TRUE(RunUntil([&] { return pending->done && pending2->done; }));
  EXPECT_EQ(pending->status.code(), Status::kUnavailable) << pending->status.ToString();
  EXPECT_EQ(pending2->status.code(), Status::kUnavailable) << pending2->status.ToString();

  // Replying after the connection closed is harmless, and so is replying
  // after the server and its connections are gone.
  held[0](proto::BeginResponse());
  EXPECT_EQ(server->calls_served(), 0u);
  server.reset();
  RunFor(milliseconds(5));
  held[1](proto::BeginResponse());
  RunFor(milliseconds(5));
  EXPECT_EQ(pending->runs, 1);
  EXPECT_EQ(pending2->runs, 1);

  // Nobody listens now: the next call cannot connect.
  Outcome r = Begin(*channel, 2);
  EXPECT_EQ(r.status.code(), Status::kUnavailable) << r.status.ToString();
}

TEST_F(RpcTest, CallsDuringConnectBackoffFailFastWithUnavailable) {
  // Find a port nobody listens on.
  uint16_t port;
  {
    RpcServer probe(io_);
    ASSERT_OK(probe.Listen("127.0.0.1:0"));
    port = probe.port();
  }
  ChannelOptions options;
  options.backoff_initial = 200 * kMillis;
  options.backoff_max = 400 * kMillis;
  auto channel = std::make_shared<RpcChannel>(io_, "127.0.0.1:" + std::to_string(port), options);

  Outcome first = Begin(*channel, 1);
  EXPECT_EQ(first.status.code(), Status::kUnavailable) << first.status.ToString();
  EXPECT_NE(first.status.message().find("connect"), std::string::npos);

  const auto start = std::chrono::steady_clock::now();
  Outcome second = Begin(*channel, 2);
  EXPECT_EQ(second.status.code(), Status::kUnavailable) << second.status.ToString();
  EXPECT_NE(second.status.message().find("next connect attempt"), std::string::npos)
      << second.status.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(100));
}

TEST_F(RpcTest, ChannelReconnectsAfterServerRestartsOnSamePort) {
  auto server = std::make_unique<RpcServer>(io_);
  StartEchoServer(server.get());
  const uint16_t port = server->port();
  auto channel = std::make_shared<RpcChannel>(io_, Address(*server));
  ASSERT_OK(Begin(*channel, 1).status);

  server.reset();  // stops it
  Outcome down = Begin(*channel, 2);
  EXPECT_EQ(down.status.code(), Status::kUnavailable) << down.status.ToString();

  server = std::make_unique<RpcServer>(io_);
  server->Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [](proto::BeginRequest req, BeginReply reply) { reply(EchoBegin(req)); });
  ASSERT_OK(server->Listen("127.0.0.1:" + std::to_string(port)));

  // Calls fail fast while the channel backs off, then go through.
  Outcome up;
  for (int attempt = 0; attempt < 200; ++attempt) {
    up = Begin(*channel, 3);
    if (up.status.ok()) break;
    EXPECT_EQ(up.status.code(), Status::kUnavailable) << up.status.ToString();
    RunFor(milliseconds(5));
  }
  ASSERT_OK(up.status);
  EXPECT_EQ(up.resp.txid.seq, 3);
}

// A connection closed by the server's side (as its kernel does when the
// process dies) is reported through on_closed_by_peer, with the address, even
// with no call pending; a timed-out call or the caller's own Close() is not.
TEST_F(RpcTest, ConnectionClosedByTheServerIsReportedOnceWithItsAddress) {
  auto server = std::make_unique<RpcServer>(io_);
  std::vector<std::pair<proto::BeginRequest, BeginReply>> held;
  server->Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [&](proto::BeginRequest req, BeginReply reply) {
        if (req.timeout_ms == 1) {
          held.emplace_back(std::move(req), std::move(reply));
        } else {
          reply(EchoBegin(req));
        }
      });
  ASSERT_OK(server->Listen("127.0.0.1:0"));
  const std::string address = Address(*server);
  std::vector<std::string> closed;
  auto channel = ReportingChannel(address, &closed);
  ASSERT_OK(Begin(*channel, 2).status);
  // A call that times out leaves the connection open: nothing reported.
  EXPECT_EQ(Begin(*channel, 1, 20 * kMillis).status.code(), Status::kTimeout);
  RunFor(milliseconds(20));
  EXPECT_TRUE(closed.empty());

  held.clear();
  server.reset();  // closes every connection; the channel is idle
  ASSERT_TRUE(RunUntil([&] { return !closed.empty(); }));
  RunFor(milliseconds(20));
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0], address);

  // Our own Close() is not the server's doing.
  auto server2 = std::make_unique<RpcServer>(io_);
  StartEchoServer(server2.get());
  std::vector<std::string> closed2;
  auto channel2 = ReportingChannel(Address(*server2), &closed2);
  ASSERT_OK(Begin(*channel2, 3).status);
  channel2->Close();
  RunFor(milliseconds(50));
  EXPECT_TRUE(closed2.empty());
}

// A pending call fails when the server's process dies, and its completion
// retries at once (as CoordinatorSet does): that retry's connect, refused,
// is what reports the close.
TEST_F(RpcTest, AServerThatDiesIsReportedEvenWhenACompletionRetriesFirst) {
  auto server = std::make_unique<RpcServer>(io_);
  std::vector<BeginReply> held;
  server->Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [&](proto::BeginRequest, BeginReply reply) { held.push_back(std::move(reply)); });
  ASSERT_OK(server->Listen("127.0.0.1:0"));
  const std::string address = Address(*server);
  std::vector<std::string> closed;
  auto channel = ReportingChannel(address, &closed);
  Status first, retry;
  bool retried = false;
  channel->Call<proto::BeginRequest, proto::BeginResponse>(
      "Begin", MakeBegin(1), 3 * kSeconds, [&](Status s, proto::BeginResponse) {
        first = s;
        channel->Call<proto::BeginRequest, proto::BeginResponse>(
            "Begin", MakeBegin(2), 3 * kSeconds, [&](Status s2, proto::BeginResponse) {
              retry = s2;
              retried = true;
            });
      });
  ASSERT_TRUE(RunUntil([&] { return held.size() == 1; }));
  held.clear();
  server.reset();  // the process "dies": its connections close, its port refuses
  ASSERT_TRUE(RunUntil([&] { return retried && !closed.empty(); }));
  EXPECT_EQ(first.code(), Status::kUnavailable);
  EXPECT_EQ(retry.code(), Status::kUnavailable);
  EXPECT_EQ(closed, std::vector<std::string>{address});
}

TEST_F(RpcTest, CloseFailsPendingCallsAndLaterCallsWithUnavailable) {
  RpcServer server(io_);
  std::vector<BeginReply> held;
  server.Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [&](proto::BeginRequest, BeginReply reply) { held.push_back(std::move(reply)); });
  ASSERT_OK(server.Listen("127.0.0.1:0"));
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));

  auto a = StartBegin(*channel, 1);
  auto b = StartBegin(*channel, 2);
  ASSERT_TRUE(RunUntil([&] { return held.size() == 2; }));
  channel->Close();
  EXPECT_FALSE(a->done) << "completions must not run inside Close()";
  ASSERT_TRUE(RunUntil([&] { return a->done && b->done; }));
  EXPECT_EQ(a->status.code(), Status::kUnavailable);
  EXPECT_EQ(b->status.code(), Status::kUnavailable);

  Outcome later = Begin(*channel, 3);
  EXPECT_EQ(later.status.code(), Status::kUnavailable);
  EXPECT_NE(later.status.message().find("closed"), std::string::npos);

  // The server notices the close; late replies are dropped.
  RunFor(milliseconds(10));
  for (auto& reply : held) reply(proto::BeginResponse());
  RunFor(milliseconds(10));
  EXPECT_EQ(a->runs, 1);
  EXPECT_EQ(b->runs, 1);
}

TEST_F(RpcTest, ChannelDroppedByCallerStillCompletesItsCalls) {
  RpcServer server(io_);
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  auto out = StartBegin(*channel, 9);
  channel.reset();
  ASSERT_TRUE(RunUntil([&] { return out->done; }));
  ASSERT_OK(out->status);
  EXPECT_EQ(out->resp.txid.seq, 9);
}

TEST_F(RpcTest, OversizedResponseClosesConnectionAndNextCallReconnects) {
  RpcServer server(io_);
  StartEchoServer(&server);
  server.Handle<proto::StatusRequest, proto::StatusResponse>(
      "Status", [](proto::StatusRequest, RpcServer::Reply<proto::StatusResponse> reply) {
        proto::StatusResponse resp;
        resp.leader_address = std::string(8192, 'a');
        reply(resp);
      });
  ChannelOptions options;
  options.max_frame_bytes = 4096;
  auto channel = std::make_shared<RpcChannel>(io_, Address(server), options);
  ASSERT_OK(Begin(*channel, 1).status);

  bool done = false;
  Status status;
  channel->Call<proto::StatusRequest, proto::StatusResponse>(
      "Status", proto::StatusRequest(), kSeconds, [&](Status s, proto::StatusResponse) {
        status = s;
        done = true;
      });
  ASSERT_TRUE(RunUntil([&] { return done; }));
  EXPECT_EQ(status.code(), Status::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("out of range"), std::string::npos) << status.message();

  Outcome r = Begin(*channel, 2);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.resp.txid.seq, 2);
}

TEST_F(RpcTest, HandlerExceptionBecomesInternalAndServerKeepsServing) {
  RpcServer server(io_);
  server.Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [](proto::BeginRequest req, BeginReply reply) {
        if (req.timeout_ms == 13) throw std::runtime_error("unlucky");
        reply(EchoBegin(req));
      });
  ASSERT_OK(server.Listen("127.0.0.1:0"));
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  Outcome bad = Begin(*channel, 13);
  EXPECT_EQ(bad.status.code(), Status::kInternal) << bad.status.ToString();
  EXPECT_NE(bad.status.message().find("unlucky"), std::string::npos);
  ASSERT_OK(Begin(*channel, 14).status);
}

// ---------------------------------------------------------------- bad input

TEST_F(RpcTest, UnknownMethodFailsInternalAndConnectionKeepsWorking) {
  RpcServer server(io_);
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));

  Outcome r = Begin(*channel, 1, kSeconds, "NoSuchMethod");
  EXPECT_EQ(r.status.code(), Status::kInternal) << r.status.ToString();
  EXPECT_NE(r.status.message().find("Invalid method name: 'NoSuchMethod'"), std::string::npos)
      << r.status.message();
  ASSERT_OK(Begin(*channel, 2).status);
  EXPECT_EQ(server.malformed_frames(), 0u);
}

TEST_F(RpcTest, UnknownMethodRepliesApplicationExceptionOnTheSameConnection) {
  RpcServer server(io_);
  StartEchoServer(&server);
  tcp::socket socket = Connect(server.port());

  asio::write(socket, asio::buffer(EncodeBeginCall("Frobnicate", 1, 5)));
  auto reply = ReadFrame(socket);
  ASSERT_TRUE(reply.has_value());
  DecodedReply d = DecodeBeginReply(*reply);
  EXPECT_EQ(d.type, apache::thrift::protocol::T_EXCEPTION);
  EXPECT_EQ(d.name, "Frobnicate");
  EXPECT_EQ(d.seqid, 5);
  EXPECT_EQ(d.exception.getType(), TApplicationException::UNKNOWN_METHOD);

  asio::write(socket, asio::buffer(EncodeBeginCall("Begin", 77, 6)));
  reply = ReadFrame(socket);
  ASSERT_TRUE(reply.has_value());
  d = DecodeBeginReply(*reply);
  EXPECT_EQ(d.type, apache::thrift::protocol::T_REPLY);
  EXPECT_EQ(d.seqid, 6);
  EXPECT_EQ(d.begin.txid.seq, 77);
}

TEST_F(RpcTest, MalformedInputClosesThatConnectionAndServerKeepsServing) {
  RpcServer server(io_);
  bool executed = false;
  server.Handle<proto::ExecuteRequest, proto::ExecuteResponse>(
      "Execute",
      [&](proto::ExecuteRequest, RpcServer::Reply<proto::ExecuteResponse>) { executed = true; });
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  ASSERT_OK(Begin(*channel, 1).status);

  std::mt19937 rng(12345);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  const std::string valid = EncodeBeginCall("Begin", 5, 1);
  std::string bad_version = valid;
  bad_version[5] = 0x02;  // 0x8002...: not TBinaryProtocol version 1
  std::string reply_type = valid;
  reply_type[7] = 0x02;  // a T_REPLY sent to the server
  // Header fine, args struct holding a field of type 99.
  std::string bad_struct = valid.substr(4, 4 + 4 + 5 + 4);
  bad_struct += std::string("\x63\x00\x01\x00", 4);
  bad_struct = Frame(bad_struct);
  // Well-formed Thrift, but field 3 (list<Statement>) holds a list of bytes:
  // the generated ExecuteRequest reader fails on it.
  const std::string bad_request =
      Frame(std::string("\x80\x01\x00\x01\x00\x00\x00\x07"
                        "Execute"
                        "\x00\x00\x00\x01"
                        "\x0c\x00\x01"
                        "\x0f\x00\x03\x03\x00\x00\x00\x01\x63\x00\x00",
                        8 + 7 + 4 + 3 + 11));
  std::string random_payload = random_bytes(60);
  random_payload[0] = 0x12;  // keep the version word wrong whatever the seed

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"oversized length prefix", std::string("\x7f\xff\xff\xff", 4) + "abcd"},
      {"length just over max_frame_bytes", std::string("\x01\x00\x00\x01", 4) + "abcd"},
      {"zero length", std::string(4, '\0') + valid},
      {"HTTP request", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"},
      {"random bytes", std::string("\xc3", 1) + random_bytes(63)},
      {"random payload in a valid frame", Frame(random_payload)},
      {"bad protocol version", bad_version},
      {"reply sent as a call", reply_type},
      {"bad struct", bad_struct},
      {"request struct that does not parse", bad_request},
      {"truncated header", Frame(std::string("\x80\x01\x00\x01\x00\x00\x00\x09"
                                             "Be",
                                             10))},
  };
  uint64_t malformed = 0;
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    tcp::socket socket = Connect(server.port());
    asio::write(socket, asio::buffer(bytes));
    EXPECT_TRUE(WaitClosed(socket)) << "server kept the connection open";
    EXPECT_EQ(server.malformed_frames(), ++malformed);
    // Everyone else is still served, on their existing connection.
    Outcome r = Begin(*channel, 2);
    ASSERT_OK(r.status);
  }
  EXPECT_FALSE(executed);
}

TEST_F(RpcTest, FuzzedFramesNeverBringTheServerDown) {
  RpcServer server(io_);
  StartEchoServer(&server);
  const std::string valid = EncodeBeginCall("Begin", 5, 1);
  std::mt19937 rng(2024);
  SetLogLevel("error");  // hundreds of expected warnings
  for (int i = 0; i < 300; ++i) {
    std::string bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % bytes.size();
      switch (rng() % 4) {
        case 0:
          bytes[pos] = static_cast<char>(rng());
          break;
        case 1:
          bytes[pos] ^= static_cast<char>(1u << (rng() % 8));
          break;
        case 2:
          bytes.resize(pos + 1);
          break;
        default:
          bytes.insert(pos, 1 + rng() % 8, static_cast<char>(rng()));
          break;
      }
    }
    tcp::socket socket = Connect(server.port());
    asio::write(socket, asio::buffer(bytes));
    socket.shutdown(tcp::socket::shutdown_send);
    ASSERT_TRUE(WaitClosed(socket)) << "case " << i;
  }
  SetLogLevel("info");
  EXPECT_GT(server.malformed_frames(), 100u);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  ASSERT_OK(Begin(*channel, 3).status);
}

// ---------------------------------------------------------------- interop

TEST_F(RpcTest, StockThriftClientInteroperates) {
  RpcServer server(io_);
  StartEchoServer(&server);
  const int port = server.port();

  std::atomic<bool> finished{false};
  std::vector<int64_t> seqs;
  int unknown_method_type = -1;
  std::string error;
  std::thread client([&] {
    try {
      auto socket = std::make_shared<apache::thrift::transport::TSocket>("127.0.0.1", port);
      socket->setRecvTimeout(5000);
      socket->setSendTimeout(5000);
      auto transport = std::make_shared<apache::thrift::transport::TFramedTransport>(socket);
      auto protocol = std::make_shared<apache::thrift::protocol::TBinaryProtocol>(transport);
      proto::CoordinatorClient coordinator(protocol);
      transport->open();
      for (int i = 0; i < 20; ++i) {
        proto::BeginResponse resp;
        coordinator.Begin(resp, MakeBegin(500 + i));
        seqs.push_back(resp.txid.seq);
      }
      // Commit is not registered: a stock client sees TApplicationException...
      try {
        proto::CommitResponse resp;
        coordinator.Commit(resp, proto::CommitRequest());
      } catch (const TApplicationException& e) {
        unknown_method_type = e.getType();
      }
      // ...and the same connection keeps working.
      proto::BeginResponse resp;
      coordinator.Begin(resp, MakeBegin(999));
      seqs.push_back(resp.txid.seq);
      transport->close();
    } catch (const std::exception& e) {
      error = e.what();
    }
    finished = true;
  });
  const bool ok = RunUntil([&] { return finished.load(); }, milliseconds(10000));
  if (!ok) server.Stop();  // unblock the client before joining
  client.join();
  ASSERT_TRUE(ok);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_EQ(seqs.size(), 21u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(seqs[i], 500 + i);
  EXPECT_EQ(seqs[20], 999);
  EXPECT_EQ(unknown_method_type, TApplicationException::UNKNOWN_METHOD);
  EXPECT_EQ(server.malformed_frames(), 0u);
}

// ---------------------------------------------------------------- pool, throughput

TEST_F(RpcTest, ChannelPoolCreatesOneChannelPerAddressAndClosesThem) {
  RpcServer server(io_);
  StartEchoServer(&server);
  ChannelPool pool(io_);
  auto a = pool.Get(Address(server));
  auto b = pool.Get(Address(server));
  auto c = pool.Get("127.0.0.1:1");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_OK(Begin(*a, 1).status);
  pool.CloseAll();
  Outcome r = Begin(*a, 2);
  EXPECT_EQ(r.status.code(), Status::kUnavailable);
  EXPECT_NE(pool.Get(Address(server)), a) << "CloseAll forgets closed channels";
}

TEST_F(RpcTest, BadChannelAddressFailsCallsWithInvalidArgument) {
  auto channel = std::make_shared<RpcChannel>(io_, "nonsense");
  Outcome r = Begin(*channel, 1);
  EXPECT_EQ(r.status.code(), Status::kInvalidArgument) << r.status.ToString();
}

TEST_F(RpcTest, PipelinedCallsKeepManyInFlight) {
  constexpr int kTotal = 20000;
  constexpr int kWindow = 256;
  RpcServer server(io_);
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  int issued = 0, completed = 0, failed = 0;
  std::function<void()> issue = [&] {
    const int i = issued++;
    channel->Call<proto::BeginRequest, proto::BeginResponse>(
        "Begin", MakeBegin(i), 5 * kSeconds, [&, i](Status s, proto::BeginResponse resp) {
          if (!s.ok() || resp.txid.seq != i) ++failed;
          ++completed;
          if (issued < kTotal) issue();
        });
  };
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kWindow; ++i) issue();
  ASSERT_TRUE(RunUntil([&] { return completed == kTotal; }, milliseconds(15000)));
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(failed, 0);
  std::printf("[ info     ] %d calls, %d in flight, one io thread: %.0f calls/s\n", kTotal, kWindow,
              kTotal / secs);
}

// ---------------------------------------------------------------- enum values

// Thrift binary by hand, for messages no generated writer sends: an enum
// field holding a value its enum does not have.
std::string BE(uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}
std::string I32Field(int16_t id, int32_t v) {
  return "\x08" + BE(static_cast<uint16_t>(id), 2) + BE(static_cast<uint32_t>(v), 4);
}
std::string I64Field(int16_t id, int64_t v) {
  return "\x0a" + BE(static_cast<uint16_t>(id), 2) + BE(static_cast<uint64_t>(v), 8);
}
std::string StructField(int16_t id, const std::string& fields) {
  return "\x0c" + BE(static_cast<uint16_t>(id), 2) + fields + std::string(1, '\0');
}
// A framed message (strict header) whose args or result struct holds
// `fields` as field `field_id` (1: a call's request, 0: a reply's response).
std::string FramedMessage(const std::string& method, apache::thrift::protocol::TMessageType type,
                          int32_t seqid, int16_t field_id, const std::string& fields) {
  const std::string header = BE(0x80010000u | static_cast<uint32_t>(type), 4) +
                             BE(method.size(), 4) + method + BE(static_cast<uint32_t>(seqid), 4);
  return Frame(header + StructField(field_id, fields) + std::string(1, '\0'));
}

// A reply frame's body read with Thrift's own code: its seqid and response.
template <class Resp>
Resp DecodeResult(const std::string& body, int32_t* seqid_out = nullptr) {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(body.data())),
      static_cast<uint32_t>(body.size()), apache::thrift::transport::TMemoryBuffer::COPY);
  apache::thrift::protocol::TBinaryProtocol protocol(buffer);
  std::string name;
  apache::thrift::protocol::TMessageType type;
  int32_t seqid = 0;
  protocol.readMessageBegin(name, type, seqid);
  if (seqid_out != nullptr) *seqid_out = seqid;
  std::string ignored;
  protocol.readStructBegin(ignored);
  apache::thrift::protocol::TType field_type;
  int16_t field_id = -1;
  protocol.readFieldBegin(ignored, field_type, field_id);
  EXPECT_EQ(field_id, 0);
  Resp resp;
  resp.read(&protocol);
  return resp;
}

TEST_F(RpcTest, RequestWithAnEnumOutOfRangeIsRefusedNamingFieldAndValue) {
  RpcServer server(io_);
  int runs = 0;
  server.Handle<proto::CommitRequest, proto::CommitResponse>(
      "Commit", [&](proto::CommitRequest, RpcServer::Reply<proto::CommitResponse> reply) {
        ++runs;
        proto::CommitResponse r;
        r.outcome = proto::Outcome::COMMITTED;
        reply(r);
      });
  ASSERT_OK(server.Listen("127.0.0.1:0"));
  tcp::socket socket = Connect(server.port());
  const std::string txid = StructField(1, I64Field(1, 4) + I64Field(2, 2));
  asio::write(socket, asio::buffer(FramedMessage("Commit", apache::thrift::protocol::T_CALL, 3, 1,
                                                 txid + I32Field(3, 9))));
  auto reply = ReadFrame(socket);
  ASSERT_TRUE(reply.has_value());
  proto::CommitResponse resp = DecodeResult<proto::CommitResponse>(*reply);
  EXPECT_EQ(resp.status.code, proto::Code::INVALID_ARGUMENT);
  EXPECT_NE(resp.status.message.find("CommitRequest.protocol = 9: Protocol has no such value"),
            std::string::npos)
      << resp.status.message;
  EXPECT_EQ(runs, 0) << "the handler saw the value";
  // The request parsed: the connection stays usable, and a valid one runs.
  asio::write(socket, asio::buffer(FramedMessage("Commit", apache::thrift::protocol::T_CALL, 4, 1,
                                                 txid + I32Field(3, proto::Protocol::THREE_PC))));
  reply = ReadFrame(socket);
  ASSERT_TRUE(reply.has_value());
  resp = DecodeResult<proto::CommitResponse>(*reply);
  EXPECT_EQ(resp.status.code, proto::Code::OK) << resp.status.message;
  EXPECT_EQ(resp.outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(server.malformed_frames(), 0u);
}

// A server that accepts and then never reads (a stopped process keeps its
// connections open): calls to it must not pile their bytes up in the channel
// for as long as the caller keeps calling. Above max_queued_bytes the channel
// drops the connection, fails what was pending on it with UNAVAILABLE naming
// the cause, and reconnects.
TEST_F(RpcTest, CallsToAServerThatStoppedReadingDoNotPileUpWithoutBound) {
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  std::vector<std::unique_ptr<tcp::socket>> peers;  // accepted, never read
  std::function<void()> accept_next = [&] {
    auto sock = std::make_unique<tcp::socket>(io_);
    tcp::socket* raw = sock.get();
    peers.push_back(std::move(sock));
    acceptor.async_accept(*raw, [&](const boost::system::error_code& ec) {
      if (!ec) accept_next();
    });
  };
  accept_next();
  ChannelOptions options;
  options.max_queued_bytes = 1u << 20;
  auto channel = std::make_shared<RpcChannel>(
      io_, "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()), options);

  proto::PeerMessage m;
  m.sender = 1;
  m.receiver = 2;
  m.payload.assign(256u << 10, 'x');
  constexpr int kCalls = 200;  // 50 MiB: far more than the kernel's socket buffers hold
  int completed = 0;
  std::vector<Status> failures;
  size_t most_queued = 0;
  for (int i = 0; i < kCalls; ++i) {
    channel->Call<proto::PeerMessage, proto::PeerAck>(
        "Deliver", m, 60 * kSeconds, [&](Status s, proto::PeerAck) {
          ++completed;
          failures.push_back(std::move(s));
        });
    most_queued = std::max(most_queued, channel->queued_bytes());
    RunFor(milliseconds(1));  // lets the writes go as far as the kernel takes them
    most_queued = std::max(most_queued, channel->queued_bytes());
  }
  // Never more than the bound plus the one call that found it full.
  EXPECT_LE(most_queued, options.max_queued_bytes + m.payload.size() + 1024);
  EXPECT_GT(most_queued, 0u);
  ASSERT_TRUE(RunUntil([&] { return completed > 0; }));
  for (const Status& s : failures) {
    EXPECT_EQ(s.code(), Status::kUnavailable) << s.ToString();
    EXPECT_NE(s.message().find("the server is not reading"), std::string::npos) << s.ToString();
  }
  // It reconnected after dropping: the acceptor saw more than one connection.
  EXPECT_TRUE(RunUntil([&] { return peers.size() > 2; }));
  channel->Close();
  RunFor(milliseconds(10));
}

// A peer (a test acceptor here) answers with an enum value out of range: the
// call fails as unreadable, naming the field; the caller never sees it.
TEST_F(RpcTest, ResponseWithAnEnumOutOfRangeFailsTheCallAsUnreadable) {
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  auto channel = std::make_shared<RpcChannel>(
      io_, "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()));
  tcp::socket peer(io_);
  bool accepted = false;
  acceptor.async_accept(peer, [&](const boost::system::error_code& ec) { accepted = !ec; });

  struct Answer {
    std::string result_fields;  // the CommitResponse the peer sends
    std::string field;          // what the failure must name, or empty: OK
  };
  const std::string ok_status = StructField(1, I32Field(1, 0));
  const Answer answers[] = {
      {ok_status + I32Field(3, 77), "CommitResponse.outcome = 77"},
      {StructField(1, I32Field(1, 1024)), "CommitResponse.status.code = 1024"},
      {StructField(1, I32Field(1, -1)) + I32Field(3, 2), "CommitResponse.status.code = -1"},
      {ok_status + I32Field(3, proto::Outcome::ABORTED), ""},
  };
  for (const Answer& a : answers) {
    SCOPED_TRACE(a.field);
    bool done = false;
    Status status;
    proto::CommitResponse resp;
    proto::CommitRequest req;
    req.txid.epoch = 1;
    req.txid.seq = 1;
    channel->Call<proto::CommitRequest, proto::CommitResponse>(
        "Commit", req, 3 * kSeconds, [&](Status s, proto::CommitResponse r) {
          status = std::move(s);
          resp = std::move(r);
          done = true;
        });
    ASSERT_TRUE(RunUntil([&] { return accepted; }));
    auto call = ReadFrame(peer);
    ASSERT_TRUE(call.has_value());
    int32_t seqid = 0;
    {
      auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
          reinterpret_cast<uint8_t*>(call->data()), static_cast<uint32_t>(call->size()));
      apache::thrift::protocol::TBinaryProtocol protocol(buffer);
      std::string name;
      apache::thrift::protocol::TMessageType type;
      protocol.readMessageBegin(name, type, seqid);
      EXPECT_EQ(name, "Commit");
    }
    asio::write(peer, asio::buffer(FramedMessage("Commit", apache::thrift::protocol::T_REPLY,
                                                 seqid, 0, a.result_fields)));
    ASSERT_TRUE(RunUntil([&] { return done; }));
    if (a.field.empty()) {
      ASSERT_OK(status);
      EXPECT_EQ(resp.outcome, proto::Outcome::ABORTED);
      continue;
    }
    EXPECT_EQ(status.code(), Status::kInternal) << status.ToString();
    EXPECT_NE(status.message().find("unreadable response to Commit: " + a.field),
              std::string::npos)
        << status.message();
    EXPECT_EQ(resp.outcome, proto::Outcome::UNKNOWN) << "the caller got the decoded value";
  }
  channel->Close();
}

TEST_F(RpcTest, ConnectOpensTheConnectionWithoutACallAndItsEndIsReported) {
  RpcServer server(io_);
  StartEchoServer(&server);
  std::vector<std::string> closed;
  auto channel = ReportingChannel(Address(server), &closed);
  channel->Connect();
  ASSERT_TRUE(RunUntil([&] { return server.open_connections() == 1; }));
  EXPECT_EQ(server.calls_served(), 0u);
  channel->Connect();  // open already: nothing more
  RunFor(milliseconds(20));
  EXPECT_EQ(server.open_connections(), 1u);
  server.Stop();  // as the server's process dying: its end of every connection closes
  ASSERT_TRUE(RunUntil([&] { return !closed.empty(); }));
  EXPECT_EQ(closed, std::vector<std::string>{Address(server)});
  channel->Close();
  channel->Connect();  // closed: stays closed
  RunFor(milliseconds(20));
  EXPECT_EQ(closed.size(), 1u);
}

// A server that closes a connection on purpose (here its idle timeout) is
// still running: the channel's reconnect succeeds, nothing is reported, and
// the channel is connected again. (The report when the process is gone:
// ConnectionClosedByTheServerIsReportedOnceWithItsAddress.)
TEST_F(RpcTest, AServerThatClosesAnIdleConnectionIsNotReportedGone) {
  ServerOptions so;
  so.idle_timeout = 150 * kMillis;
  RpcServer server(io_, so);
  StartEchoServer(&server);
  std::vector<std::string> closed;
  auto channel = ReportingChannel(Address(server), &closed);
  channel->Connect();
  ASSERT_TRUE(RunUntil([&] { return server.open_connections() == 1; }));
  ASSERT_TRUE(RunUntil([&] { return server.idle_closed() >= 1; }));
  ASSERT_TRUE(RunUntil([&] { return server.open_connections() == 1; }))
      << "the channel did not reconnect";
  RunFor(milliseconds(50));
  EXPECT_TRUE(closed.empty()) << "an idle close was reported as the server's death";
  EXPECT_OK(Begin(*channel, 5).status);
}

// A server at its connection limit accepts and closes at once; it is
// running, so that is not reported, and the channel's confirming reconnect
// must not turn into a loop of accepts and closes: it waits, doubling.
TEST_F(RpcTest, AServerThatClosesAtAcceptIsNotReconnectedToInALoop) {
  ServerOptions so;
  so.max_connections = 1;
  RpcServer server(io_, so);
  StartEchoServer(&server);
  auto first = std::make_shared<RpcChannel>(io_, Address(server));
  first->Connect();
  ASSERT_TRUE(RunUntil([&] { return server.open_connections() == 1; }));
  std::vector<std::string> closed;
  auto second = ReportingChannel(Address(server), &closed);
  second->Connect();
  ASSERT_TRUE(RunUntil([&] { return server.connections_refused() >= 1; }));
  RunFor(milliseconds(500));
  // Waits of 10, 20, 40, ... ms: about six more in 500 ms (a loop: thousands).
  EXPECT_LE(server.connections_refused(), 12u);
  EXPECT_GE(server.connections_refused(), 3u);
  EXPECT_TRUE(closed.empty()) << "a running server was reported gone";
  second->Close();
  first->Close();
}

// A handler registered with HandleHeld is told the call's connection: open
// while the caller's end is, and no longer once it has closed, after which a
// late reply is dropped. One registered with Handle is unaffected.
TEST_F(RpcTest, AHeldCallsConnectionSaysWhetherItIsStillOpen) {
  RpcServer server(io_);
  std::vector<std::pair<RpcServer::Reply<proto::PeerAck>, CallConnection>> held;
  server.HandleHeld<proto::PeerMessage, proto::PeerAck>(
      "Deliver", [&held](proto::PeerMessage, RpcServer::Reply<proto::PeerAck> reply,
                         CallConnection connection) {
        held.emplace_back(std::move(reply), std::move(connection));
      });
  ASSERT_OK(server.Listen("127.0.0.1:0"));
  EXPECT_FALSE(CallConnection().open());
  auto first = std::make_shared<RpcChannel>(io_, Address(server));
  auto second = std::make_shared<RpcChannel>(io_, Address(server));
  std::vector<Status> results(2);
  int done = 0;
  for (int i = 0; i < 2; ++i) {
    (i == 0 ? first : second)
        ->Call<proto::PeerMessage, proto::PeerAck>(
            "Deliver", proto::PeerMessage(), 5 * kSeconds,
            [&results, &done, i](Status s, proto::PeerAck) {
              results[i] = s;
              ++done;
            });
  }
  ASSERT_TRUE(RunUntil([&] { return held.size() == 2; }));
  EXPECT_TRUE(held[0].second.open());
  EXPECT_TRUE(held[1].second.open());
  first->Close();  // the caller gives up on its connection
  ASSERT_TRUE(RunUntil([&] { return server.open_connections() == 1; }));
  EXPECT_FALSE(held[0].second.open());
  EXPECT_TRUE(held[1].second.open());
  held[1].first(proto::PeerAck());
  ASSERT_TRUE(RunUntil([&] { return done == 2; }));
  EXPECT_EQ(results[0].code(), Status::kUnavailable);
  EXPECT_OK(results[1]);
  server.Stop();
  EXPECT_FALSE(held[1].second.open());
}

// ------------------------------------------------------- Unix-domain socket

// Whether this process runs with the Unix-domain path allowed (the .tcp copy
// of this suite runs with TXC_RPC_UNIX=0).
bool UnixPathAllowed() {
  const char* v = std::getenv("TXC_RPC_UNIX");
  return v == nullptr || std::string(v) != "0";
}

// In both copies of the suite: a loopback channel's connection is counted
// under the transport it took (the .tcp copy's under TCP only).
TEST_F(RpcTest, EachAcceptedConnectionIsCountedUnderItsTransport) {
  RpcServer server(io_);
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  ASSERT_OK(Begin(*channel, 1).status);
  const uint64_t expect_unix = UnixPathAllowed() ? 1 : 0;
  EXPECT_EQ(server.unix_connections(), expect_unix);
  EXPECT_EQ(server.tcp_connections(), 1 - expect_unix);
  channel->Close();
}

TEST_F(RpcTest, ALoopbackChannelTalksOverTheServersUnixSocketUnlessEitherSideSaysNo) {
  if (!UnixPathAllowed()) GTEST_SKIP() << "TXC_RPC_UNIX=0: this copy of the suite runs over TCP";
  RpcServer server(io_);
  StartEchoServer(&server);
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  Outcome r = Begin(*channel, 1);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.resp.txid.seq, 1);
  EXPECT_EQ(server.unix_connections(), 1u);
  EXPECT_EQ(server.tcp_connections(), 0u);
  EXPECT_EQ(server.open_connections(), 1u);

  // A channel told not to dials TCP to the same server.
  ChannelOptions tcp_only;
  tcp_only.unix_socket = false;
  auto over_tcp = std::make_shared<RpcChannel>(io_, Address(server), tcp_only);
  r = Begin(*over_tcp, 2);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.resp.txid.seq, 2);
  EXPECT_EQ(server.unix_connections(), 1u);
  EXPECT_EQ(server.tcp_connections(), 1u);
  EXPECT_EQ(server.open_connections(), 2u);

  // A server without the socket: the channel finds none and dials TCP.
  ServerOptions no_unix;
  no_unix.unix_socket = false;
  RpcServer plain(io_, no_unix);
  StartEchoServer(&plain);
  auto to_plain = std::make_shared<RpcChannel>(io_, Address(plain));
  r = Begin(*to_plain, 3);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.resp.txid.seq, 3);
  EXPECT_EQ(plain.unix_connections(), 0u);
  EXPECT_EQ(plain.tcp_connections(), 1u);
  channel->Close();
  over_tcp->Close();
  to_plain->Close();
}

TEST_F(RpcTest, AServerThatStopsListeningGivesUpItsUnixSocketAndAChannelReconnects) {
  if (!UnixPathAllowed()) GTEST_SKIP() << "TXC_RPC_UNIX=0: this copy of the suite runs over TCP";
  auto server = std::make_unique<RpcServer>(io_);
  StartEchoServer(server.get());
  const uint16_t port = server->port();
  auto channel = std::make_shared<RpcChannel>(io_, Address(*server));
  ASSERT_OK(Begin(*channel, 1).status);
  server.reset();  // as a server process that exits: its connections end
  Outcome lost = Begin(*channel, 2, 500 * kMillis);
  EXPECT_FALSE(lost.status.ok());
  // A new server on the same port takes the same name (nothing to clean up)
  // and the channel's next call finds it.
  server = std::make_unique<RpcServer>(io_);
  server->Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [](proto::BeginRequest req, BeginReply reply) { reply(EchoBegin(req)); });
  ASSERT_OK(server->Listen("127.0.0.1:" + std::to_string(port)));
  Outcome r;
  for (int i = 0; i < 50; ++i) {  // past the channel's backoff, if it took one
    r = Begin(*channel, 3);
    if (r.status.ok()) break;
    RunFor(milliseconds(20));
  }
  ASSERT_OK(r.status);
  EXPECT_EQ(server->unix_connections(), 1u);
  channel->Close();
}

TEST_F(RpcTest, AUnixSocketHeldByAnotherUsersProcessIsNotTrusted) {
  if (!UnixPathAllowed()) GTEST_SKIP() << "TXC_RPC_UNIX=0: this copy of the suite runs over TCP";
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root, to run the squatter under another user id (CI runs as root)";
  }
  // A free port, then a process of user 65534 takes the Unix-domain name of
  // 127.0.0.1:port before the real server starts there: it accepts
  // connections and never answers.
  uint16_t port = 0;
  {
    tcp::acceptor probe(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = probe.local_endpoint().port();
  }
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t squatter = fork();
  ASSERT_GE(squatter, 0);
  if (squatter == 0) {
    close(ready[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string name = "txcoord-rpc/127.0.0.1:" + std::to_string(port);
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 16) != 0) {
      _exit(4);
    }
    (void)!write(ready[1], "r", 1);
    for (int i = 0; i < 300; ++i) usleep(100 * 1000);  // at most 30 s; killed sooner
    _exit(0);
  }
  close(ready[1]);
  char byte = 0;
  const bool squatting = read(ready[0], &byte, 1) == 1;
  close(ready[0]);
  auto stop_squatter = [&] {
    kill(squatter, SIGKILL);
    int st = 0;
    waitpid(squatter, &st, 0);
  };
  if (!squatting) {
    stop_squatter();
    FAIL() << "the squatter could not take the name";
  }
  RpcServer server(io_);
  server.Handle<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [](proto::BeginRequest req, BeginReply reply) { reply(EchoBegin(req)); });
  ASSERT_OK(server.Listen("127.0.0.1:" + std::to_string(port)));  // TCP only: the name is taken
  auto channel = std::make_shared<RpcChannel>(io_, Address(server));
  Outcome r = Begin(*channel, 5, 2 * kSeconds);
  stop_squatter();
  // Answered by the real server over TCP; the squatter never answers, so a
  // channel that had used its socket would have timed out.
  ASSERT_OK(r.status);
  EXPECT_EQ(r.resp.txid.seq, 5);
  EXPECT_EQ(server.unix_connections(), 0u);
  EXPECT_EQ(server.tcp_connections(), 1u);
  EXPECT_EQ(server.open_connections(), 1u);
  channel->Close();
}

}  // namespace
}  // namespace txc::rpc
