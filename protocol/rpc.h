// The RPC layer: framed Thrift over Boost.Asio.
//
// Wire format: a 4-byte big-endian length, then one TBinaryProtocol (strict)
// message. Every txcoord method takes exactly one argument struct (field id 1)
// and returns one result struct (field id 0 of the result), so a stock Thrift
// client using TFramedTransport + TBinaryProtocol and the generated
// Coordinator/Agent/Replica clients interoperates with these classes.
//
// Threading: RpcServer and RpcChannel are not thread-safe. Each is owned by
// one io_context that a single thread runs; every method, handler and
// completion runs on that thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <utility>  // Boost 1.74 Asio under C++20 uses std::exchange without it

#include <boost/asio.hpp>

#include "common/status.h"
#include "common/time.h"
#include "common/tls_config.h"
#include "protocol/authz.h"

namespace txc::rpc {

// Parses "HOST:PORT" (IPv4 dotted quad or "localhost").
Result<boost::asio::ip::tcp::endpoint> ParseEndpoint(const std::string& host_port);

// Type-erased serialisation hooks, so the channel and server are not templates.
// WriteFn writes a struct with Thrift's TProtocol; ReadFn reads one.
namespace detail {
using Bytes = std::string;
// Serialises `value` as a Thrift struct into bytes (TBinaryProtocol, no framing)
// through common/codec.h, the codec of every persisted record.
template <class T>
Bytes Serialize(const T& value);
// Parses bytes into `value`; false on malformed input.
template <class T>
bool Deserialize(const Bytes& bytes, T* value);
}  // namespace detail

struct ServerOptions {
  // Largest frame accepted; a larger length prefix closes the connection.
  // Default: 16 MiB.
  uint32_t max_frame_bytes = 16u << 20;
  // Connections above this are refused (accepted and closed at once).
  // Default: 4096.
  size_t max_connections = 4096;
  // Open connections from one peer address (IP, any port); one more from
  // that address is refused as above while other addresses still get in, so
  // one client cannot take every slot of max_connections. Counted per source
  // IP, not per client: every client of one host (all of them on loopback),
  // or behind one NAT or proxy, shares it. Client, AsyncClient and txbench at
  // any --concurrency hold one connection per server, a replica one per peer.
  // Default: 1024 (a quarter of max_connections).
  size_t max_connections_per_peer = 1024;
  // TLS: with files named, every connection is mutual TLS (the peer must
  // present a certificate signed by tls.ca) and every call is checked
  // against `authz` for the peer's role. Default: plaintext, no roles.
  TlsConfig tls;
  // Who may call which method, with TLS on (protocol/authz.h). With TLS on
  // and no table, every call is refused. Borrowed; must outlive the server.
  // Default: none.
  const authz::Table* authz = nullptr;
  // A TLS handshake not finished within this closes the connection (a peer
  // that connects and says nothing holds no slot for long). Default: 10 s.
  Micros handshake_timeout = 10 * kSeconds;
  // A connection with no call in flight and no byte received for this long
  // is closed (clients reconnect on their next call). Idle connections hold
  // a slot of max_connections. Default: 5 min.
  Micros idle_timeout = 5 * 60 * kSeconds;
  // A frame whose first bytes arrived must be complete within this, or the
  // connection is closed (a peer trickling one byte at a time holds a slot
  // and a buffer otherwise). Default: 30 s.
  Micros frame_timeout = 30 * kSeconds;
  // Calls of one connection handed to handlers and not yet answered; a call
  // above it is answered UNAVAILABLE at once without running (memory per
  // connection stays bounded). Default: 65,536 (AsyncClient runs 10,000 on
  // one connection).
  size_t max_in_flight = 65536;
  // Listening on a loopback or any-address port, also accept on a
  // Unix-domain socket named after it (Linux abstract namespace, e.g.
  // "@txcoord-rpc/127.0.0.1:7000"): channels of this host dial that first
  // (ChannelOptions::unix_socket), a cheaper path than loopback TCP. The
  // same frames, limits, TLS and roles; such a connection counts against
  // the per-peer limit of 127.0.0.1. Off when the environment has
  // TXC_RPC_UNIX=0. Default: on.
  bool unix_socket = true;
};

// The connection a call arrived on, for a handler that holds its reply for a
// while: open() turns false once the connection has closed (the caller's end
// went away, an idle or frame timeout, RpcServer::Stop()), after which a reply
// is dropped. Such a handler can give what it would have put in that reply to
// a call on an open connection instead. Copyable; io thread only. A default
// one is never open.
class CallConnection {
 public:
  CallConnection() = default;
  // Made by the server (from the connection's `closed` flag).
  explicit CallConnection(std::weak_ptr<const bool> closed) : closed_(std::move(closed)) {}
  bool open() const {
    std::shared_ptr<const bool> closed = closed_.lock();
    return closed != nullptr && !*closed;
  }

 private:
  std::weak_ptr<const bool> closed_;
};

// Process-wide, for good: no server accepts on a Unix-domain socket and no
// channel dials one, as with TXC_RPC_UNIX=0 in the environment (txcoord's
// and txagent's --rpc-unix-socket off). Call before any server listens.
void DisableUnixSockets();

class RpcServer {
 public:
  // Hands a reply back for one call. Call it exactly once, on the io thread;
  // calling it after the connection closed is harmless (the reply is dropped).
  template <class Resp>
  using Reply = std::function<void(Resp)>;

  RpcServer(boost::asio::io_context& io, ServerOptions options = {});
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Registers the handler of `method`. Req/Resp are generated Thrift structs
  // (e.g. proto::BeginRequest / proto::BeginResponse). The handler may reply
  // at once or later (after a durable write, a vote, ...).
  // REQUIRES: called before Listen().
  template <class Req, class Resp>
  void Handle(const std::string& method, std::function<void(Req, Reply<Resp>)> handler);
  // The same for a handler that may hold its reply (PaxosLog's Deliver): it
  // is also told the call's connection, to check before it answers late.
  template <class Req, class Resp>
  void HandleHeld(const std::string& method,
                  std::function<void(Req, Reply<Resp>, CallConnection)> handler);

  // Binds and starts accepting. host_port "127.0.0.1:0" picks a free port.
  // With TLS: INVALID_ARGUMENT naming a certificate file that does not load,
  // INTERNAL if a registered method is missing from the authorization table.
  Status Listen(const std::string& host_port);
  uint16_t port() const;

  // Closes the acceptor and every connection; pending replies are dropped.
  void Stop();

  // Connections accepted on the Unix-domain socket (ServerOptions::unix_socket)
  // and on the TCP port, those refused at once by a limit included.
  uint64_t unix_connections() const;
  uint64_t tcp_connections() const;

  // Number of calls answered and malformed frames seen (for status output
  // and tests).
  uint64_t calls_served() const;
  uint64_t malformed_frames() const;
  // Calls refused by the authorization table, and TLS handshakes that failed
  // (no certificate, another CA, a timeout).
  uint64_t permission_denied() const;
  uint64_t tls_handshake_failures() const;
  // Connections closed for idling past idle_timeout or for a frame not
  // complete within frame_timeout; calls refused by max_in_flight.
  uint64_t idle_closed() const;
  uint64_t slow_frames_closed() const;
  uint64_t in_flight_refused() const;
  // Connections open now; connections refused at accept by max_connections
  // and by max_connections_per_peer.
  size_t open_connections() const;
  uint64_t connections_refused() const;
  uint64_t peer_connections_refused() const;

 private:
  class Impl;
  // A raw handler: args bytes in (the struct at field id 1 of the call), a
  // function that takes the serialised result struct out, and the call's
  // connection (a default one unless registered with wants_connection: the
  // other calls pay nothing for it).
  using RawHandler = std::function<void(const detail::Bytes& args,
                                        std::function<void(detail::Bytes)> reply,
                                        const CallConnection& connection)>;
  // The serialised response to a refused call: a default response whose
  // status field has `code` (a Status::Code) and `message`; empty when the
  // response type has no status field (a Thrift exception is sent instead).
  using RawRefusal = std::function<detail::Bytes(int code, const std::string& message)>;
  void HandleRaw(const std::string& method, RawHandler handler, RawRefusal refusal,
                 bool wants_connection = false);
  template <class Req, class Resp, class Fn>
  void HandleTyped(const std::string& method, Fn handler, bool wants_connection);
  std::unique_ptr<Impl> impl_;
};

struct ChannelOptions {
  // Time allowed for a TCP connect before the attempt fails. Default: 1 s.
  Micros connect_timeout = 1 * kSeconds;
  // Reconnect backoff after a failed connect: doubles from initial up to max.
  // Default: 10 ms .. 1 s.
  Micros backoff_initial = 10 * kMillis;
  Micros backoff_max = 1 * kSeconds;
  // Largest response frame accepted. Default: 64 MiB.
  uint32_t max_frame_bytes = 64u << 20;
  // Most bytes of requests a connection may hold that the kernel has not
  // taken yet (the write in flight and the calls queued behind it). A server
  // that is alive but no longer reads (a stopped or hung process: its
  // connection stays open, its receive window full) would otherwise make
  // every call to it, timed out or not, pile its bytes up here for as long as
  // the caller keeps calling. A call that would go above it drops the
  // connection instead: the calls pending on it fail with UNAVAILABLE
  // ("... the server is not reading") and the call reconnects. Default:
  // 32 MiB, two of the largest requests a server accepts.
  size_t max_queued_bytes = 32u << 20;
  // TLS: with files named, every connection is mutual TLS; the server's
  // certificate must be signed by tls.ca and name the host dialled (SAN IP
  // or DNS). One handshake per connection, which lives for many calls.
  // Default: plaintext.
  TlsConfig tls;
  // Called (posted, on the io thread) with the channel's address when an
  // established connection is closed by the server's side (end of stream or
  // reset, as its kernel does when the server process dies) and a reconnect
  // made at once then fails (refused, or not done within connect_timeout). A
  // server that closed on purpose (its idle timeout, a connection limit) and
  // accepts the reconnect is running: nothing is reported, and the channel
  // stays connected. A connection closed within a second of opening (a server
  // at its connection limit closes at accept) is reconnected after a wait
  // instead, doubling from backoff_initial to backoff_max while that goes
  // on. Not for timeouts, malformed replies, other failed connects or
  // Close(). A hint: a process that died and is back before the reconnect is
  // not reported either. Default: none.
  std::function<void(const std::string& address)> on_closed_by_peer;
  // Dialling a loopback address, try the server's Unix-domain socket first
  // (ServerOptions::unix_socket), and use it only if the process listening
  // on it runs under this process's user id (a process of another user that
  // took the name first is not trusted: the channel dials TCP). Off when the
  // environment has TXC_RPC_UNIX=0. Default: on.
  bool unix_socket = true;
};

// An async client connection to one address: many calls in flight on one
// TCP connection (matched by Thrift seqid), a deadline per call, reconnect
// with backoff. Create with std::make_shared (callbacks keep it alive).
class RpcChannel : public std::enable_shared_from_this<RpcChannel> {
 public:
  template <class Resp>
  using Done = std::function<void(Status, Resp)>;

  RpcChannel(boost::asio::io_context& io, std::string host_port, ChannelOptions options = {});
  ~RpcChannel();

  // Calls `method` with `req`. `done` runs exactly once on the io thread:
  // OK with the response, UNAVAILABLE if the connection failed or closed
  // before the response arrived (the call may or may not have executed),
  // TIMEOUT if `timeout` passed first, INTERNAL if the server answered with a
  // Thrift exception (e.g. unknown method) or an unreadable reply.
  template <class Req, class Resp>
  void Call(const std::string& method, const Req& req, Micros timeout, Done<Resp> done);

  // Opens the connection if it is neither open nor opening (nor backing off
  // after a failed connect), without a call; a failed connect backs off as a
  // call's does. For a caller that makes no calls of its own for long but
  // wants ChannelOptions::on_closed_by_peer when the server's process dies.
  // (A server closes a connection idle for its idle_timeout: the channel
  // then reconnects, and reports nothing.)
  void Connect();

  // Fails every pending call with UNAVAILABLE and stops reconnecting.
  // (A failed TLS handshake fails the calls with UNAVAILABLE naming the
  // reason, e.g. "certificate verify failed", and backs off as a failed
  // connect does; certificate files that do not load give INVALID_ARGUMENT.)
  void Close();

  const std::string& address() const;
  // Bytes of requests on the connection that the kernel has not taken yet
  // (see ChannelOptions::max_queued_bytes).
  size_t queued_bytes() const;

 private:
  class Impl;
  using RawDone = std::function<void(Status, const detail::Bytes& result)>;
  void CallRaw(const std::string& method, detail::Bytes args, Micros timeout, RawDone done);
  std::shared_ptr<Impl> impl_;
};

// Channels by address, created on first use. Not thread-safe (io thread).
class ChannelPool {
 public:
  explicit ChannelPool(boost::asio::io_context& io, ChannelOptions options = {})
      : io_(io), options_(std::move(options)) {}
  ~ChannelPool();
  std::shared_ptr<RpcChannel> Get(const std::string& host_port);
  void CloseAll();

 private:
  boost::asio::io_context& io_;
  ChannelOptions options_;
  std::map<std::string, std::shared_ptr<RpcChannel>> channels_;
};

}  // namespace txc::rpc

#include "protocol/rpc_inl.h"  // template definitions
