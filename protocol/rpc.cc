// The RPC layer: framed strict TBinaryProtocol over Boost.Asio.
//
// Message envelopes (header, args/result wrapper structs, exceptions) are read
// and written here by hand: they are a few fixed bytes, and doing it directly
// on the frame buffer keeps the hot path free of Thrift transport objects and
// allocations. Only the request/response structs themselves go through the
// generated Thrift code (rpc_inl.h). Nothing in this file throws.
#include "protocol/rpc.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"
#include "protocol/tls.h"
#include "protocol/wire.h"

namespace txc::rpc {

namespace asio = boost::asio;
using asio::ip::tcp;
using local_stream = asio::local::stream_protocol;
using detail::Bytes;
// A connection's socket: TCP, or a Unix-domain stream socket between two
// processes of one host (ServerOptions::unix_socket).
using Socket = asio::generic::stream_protocol::socket;

namespace {

// ------------------------------------------------------------ wire helpers

// The wire's type ids, message types and version word, and its readers.
using namespace wire;  // NOLINT: the wire format's constants, read and written here

// TApplicationException types (thrift/TApplicationException.h).
constexpr int32_t kUnknownMethod = 1;
constexpr int32_t kInternalError = 6;

// Read and write buffers that grew past this are given back once idle.
constexpr size_t kKeepBufferBytes = 1u << 20;
constexpr size_t kInitialReadBytes = 16u << 10;
constexpr size_t kMinReadBytes = 4u << 10;

// The server stops reading a connection while this much reply data waits for
// the peer to read it (a client that pipelines and never reads).
constexpr size_t kMaxQueuedReplyBytes = 8u << 20;

// Requests above the server's default frame limit are refused by the channel
// up front, instead of making the server close a connection other calls share.
constexpr size_t kMaxRequestFrameBytes = ServerOptions{}.max_frame_bytes;

const std::shared_ptr<spdlog::logger>& Log() {
  static const std::shared_ptr<spdlog::logger> log = txc::Logger("rpc");
  return log;
}

const Bytes& EmptyBytes() {
  static const Bytes empty;
  return empty;
}

inline char* StoreBE32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
  return p + 4;
}

// Appends one frame: length prefix, strict message header, then either the
// body wrapped as field `field_id` (a struct) of an args/result struct, or,
// with field_id < 0, the body as the message struct itself.
void AppendFrame(std::string* out, uint8_t type, std::string_view name, int32_t seqid, int field_id,
                 std::string_view body) {
  const size_t wrap = field_id >= 0 ? 4 : 0;  // field header (3) + stop (1)
  const size_t payload = 4 + 4 + name.size() + 4 + wrap + body.size();
  const size_t start = out->size();
  out->resize(start + 4 + payload);
  char* p = out->data() + start;
  p = StoreBE32(p, static_cast<uint32_t>(payload));
  p = StoreBE32(p, kVersion1 | type);
  p = StoreBE32(p, static_cast<uint32_t>(name.size()));
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  p = StoreBE32(p, static_cast<uint32_t>(seqid));
  if (field_id >= 0) {
    *p++ = static_cast<char>(kTStruct);
    *p++ = static_cast<char>(field_id >> 8);
    *p++ = static_cast<char>(field_id & 0xff);
  }
  std::memcpy(p, body.data(), body.size());
  p += body.size();
  if (field_id >= 0) *p++ = static_cast<char>(kTStop);
}

// A TApplicationException struct: 1: string message, 2: i32 type.
std::string EncodeApplicationException(std::string_view message, int32_t type) {
  std::string s;
  s.resize(3 + 4 + message.size() + 3 + 4 + 1);
  char* p = s.data();
  *p++ = static_cast<char>(kTString);
  *p++ = 0;
  *p++ = 1;
  p = StoreBE32(p, static_cast<uint32_t>(message.size()));
  std::memcpy(p, message.data(), message.size());
  p += message.size();
  *p++ = static_cast<char>(kTI32);
  *p++ = 0;
  *p++ = 2;
  p = StoreBE32(p, static_cast<uint32_t>(type));
  *p = static_cast<char>(kTStop);
  return s;
}

// ------------------------------------------------------------ frame buffer

// The read side of a connection: bytes received, not yet consumed as frames.
class FrameBuffer {
 public:
  size_t size() const { return end_ - begin_; }
  const char* data() const { return buf_.get() + begin_; }

  // Free space for the next read (at least kMinReadBytes), compacting or
  // growing as needed.
  asio::mutable_buffer Prepare() {
    if (!buf_) Allocate(kInitialReadBytes);
    if (cap_ - end_ < kMinReadBytes && begin_ > 0) Compact();
    if (cap_ - end_ < kMinReadBytes) Reallocate(cap_ * 2);
    return asio::buffer(buf_.get() + end_, cap_ - end_);
  }
  void Commit(size_t n) { end_ += n; }

  void Consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
      if (cap_ > kKeepBufferBytes) {
        buf_.reset();
        cap_ = 0;
      }
    }
  }

  // Makes room for a frame of `total` bytes starting at data().
  void Reserve(size_t total) {
    if (cap_ - begin_ >= total) return;
    if (cap_ >= total) {
      Compact();
    } else {
      Reallocate(total);
    }
  }

 private:
  void Allocate(size_t cap) {
    buf_ = std::make_unique_for_overwrite<char[]>(cap);
    cap_ = cap;
    begin_ = end_ = 0;
  }
  void Compact() {
    std::memmove(buf_.get(), buf_.get() + begin_, size());
    end_ -= begin_;
    begin_ = 0;
  }
  void Reallocate(size_t cap) {
    auto fresh = std::make_unique_for_overwrite<char[]>(cap);
    std::memcpy(fresh.get(), data(), size());
    end_ = size();
    begin_ = 0;
    buf_ = std::move(fresh);
    cap_ = cap;
  }

  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

void ReleaseIfHuge(std::string* s) {
  s->clear();
  if (s->capacity() > kKeepBufferBytes) std::string().swap(*s);
}

std::string PeerName(const Socket& socket) {
  boost::system::error_code ec;
  const Socket::endpoint_type ep = socket.remote_endpoint(ec);
  if (ec) return "?";
  if (ep.protocol().family() == AF_UNIX) return "local";
  if (ep.protocol().family() != AF_INET || ep.size() > sizeof(sockaddr_in)) return "?";
  tcp::endpoint ip;
  std::memcpy(ip.data(), ep.data(), ep.size());
  return ip.address().to_string() + ":" + std::to_string(ip.port());
}

std::atomic<bool> unix_sockets_disabled{false};  // DisableUnixSockets()

// False when the environment turns the Unix-domain path off (TXC_RPC_UNIX=0),
// e.g. to measure loopback TCP, or the process did (--rpc-unix-socket off).
bool UnixSocketsAllowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("TXC_RPC_UNIX");
    return v == nullptr || std::string_view(v) != "0";
  }();
  return allowed && !unix_sockets_disabled.load(std::memory_order_relaxed);
}

// The abstract-namespace name a server listening on `ep` (a loopback
// address) accepts on, and a channel dialling `ep` tries first.
local_stream::endpoint UnixName(const tcp::endpoint& ep) {
  std::string name(1, '\0');
  name += "txcoord-rpc/" + ep.address().to_string() + ":" + std::to_string(ep.port());
  return local_stream::endpoint(name);
}

bool IsQuietDisconnect(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::operation_aborted || ec == asio::error::broken_pipe;
}

using RawHandlerFn =
    std::function<void(const Bytes&, std::function<void(Bytes)>, const CallConnection&)>;
using RawRefusalFn = std::function<Bytes(int, const std::string&)>;

// A connection's byte stream: a socket, or a TLS session over one. Both
// allow one read and one write outstanding at a time, which is how the
// server and the channel use them.
class Transport {
 public:
  using TlsStream = asio::ssl::stream<Socket>;

  // TLS when `ctx` is set, plaintext otherwise. Built in place (never moved).
  Transport(Socket socket, std::shared_ptr<asio::ssl::context> ctx) : ctx_(std::move(ctx)) {
    if (ctx_) {
      tls_.emplace(std::move(socket), *ctx_);
    } else {
      plain_.emplace(std::move(socket));
    }
  }
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  bool tls() const { return tls_.has_value(); }
  Socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }
  const Socket& socket() const { return tls_ ? tls_->next_layer() : *plain_; }
  TlsStream& tls_stream() { return *tls_; }
  SSL* ssl() { return tls_ ? tls_->native_handle() : nullptr; }

  template <class Buffer, class Handler>
  void ReadSome(const Buffer& buffer, Handler&& handler) {
    if (tls_) {
      tls_->async_read_some(buffer, std::forward<Handler>(handler));
    } else {
      plain_->async_read_some(buffer, std::forward<Handler>(handler));
    }
  }
  template <class Buffer, class Handler>
  void Write(const Buffer& buffer, Handler&& handler) {
    if (tls_) {
      asio::async_write(*tls_, buffer, std::forward<Handler>(handler));
    } else {
      asio::async_write(*plain_, buffer, std::forward<Handler>(handler));
    }
  }

 private:
  std::shared_ptr<asio::ssl::context> ctx_;  // declared first: outlives the stream
  std::optional<Socket> plain_;
  std::optional<TlsStream> tls_;
};

// " (N similar lines suppressed)", or nothing when none were.
std::string Suppressed(uint64_t n) {
  return n == 0 ? std::string() : fmt::format(" ({} similar lines suppressed)", n);
}

// Logs at most one line a second for a kind of event a hostile or broken
// peer can repeat at will (refused calls, failed handshakes); the lines
// skipped are counted into the next one.
class LogLimiter {
 public:
  // True when a line may be logged now; *suppressed is how many were skipped.
  bool Allow(uint64_t* suppressed) {
    const Micros now = SteadyNowMicros();
    if (now - last_ < kSeconds && last_ != 0) {
      ++skipped_;
      return false;
    }
    last_ = now;
    *suppressed = skipped_;
    skipped_ = 0;
    return true;
  }

 private:
  Micros last_ = 0;
  uint64_t skipped_ = 0;
};

}  // namespace

// ------------------------------------------------------------ ParseEndpoint

Result<tcp::endpoint> ParseEndpoint(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("address '" + host_port + "' is not HOST:PORT");
  }
  const std::string host = host_port.substr(0, colon);
  const std::string port = host_port.substr(colon + 1);
  if (host.empty()) {
    return Status::InvalidArgument("address '" + host_port + "' has no host");
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Status::InvalidArgument("address '" + host_port + "': port '" + port +
                                   "' is not a number");
  }
  const unsigned long port_number = std::stoul(port);
  if (port_number > 65535) {
    return Status::InvalidArgument("address '" + host_port + "': port " + port +
                                   " is out of range (0..65535)");
  }
  asio::ip::address_v4 address;
  if (host == "localhost") {
    address = asio::ip::address_v4::loopback();
  } else {
    boost::system::error_code ec;
    address = asio::ip::make_address_v4(host, ec);
    if (ec) {
      return Status::InvalidArgument("address '" + host_port + "': host '" + host +
                                     "' is not an IPv4 address or localhost");
    }
  }
  return tcp::endpoint(address, static_cast<uint16_t>(port_number));
}

// ------------------------------------------------------------ server

namespace {

class ServerConn;

// Server state shared with its connections, so a connection that outlives
// the RpcServer (a handler still holds its reply) never dangles.
struct ServerCore {
  ServerCore(asio::io_context& io, ServerOptions opts)
      : io(io), options(opts), acceptor(io), retry_timer(io) {}

  void Stop();
  bool Admit(const Socket& socket, const asio::ip::address& peer);

  asio::io_context& io;
  ServerOptions options;
  tcp::acceptor acceptor;
  // The Unix-domain socket beside a loopback port (ServerOptions::unix_socket).
  local_stream::acceptor unix_acceptor{io};
  asio::steady_timer unix_retry_timer{io};  // its own: two loops must not cancel each other
  uint64_t unix_connections = 0;
  uint64_t tcp_connections = 0;
  asio::steady_timer retry_timer;  // re-accept after an accept error (e.g. EMFILE)
  bool listening = false;
  uint64_t generation = 0;  // bumped by Stop(): accepts of an older Listen() are stale
  uint16_t port = 0;
  struct Handler {
    RawHandlerFn fn;
    RawRefusalFn refusal;
    bool wants_connection = false;  // RpcServer::HandleHeld
  };
  // std::less<> for lookup by string_view; keys are stable (replies point at them).
  std::map<std::string, Handler, std::less<>> handlers;
  std::unordered_map<ServerConn*, std::weak_ptr<ServerConn>> conns;
  // Connections open per peer address (max_connections_per_peer); an address
  // leaves the map with its last connection.
  std::map<asio::ip::address, size_t> per_peer;
  uint64_t calls_served = 0;
  uint64_t malformed_frames = 0;
  uint64_t permission_denied = 0;
  uint64_t tls_handshake_failures = 0;
  uint64_t idle_closed = 0;
  uint64_t slow_frames_closed = 0;
  uint64_t in_flight_refused = 0;
  uint64_t connections_refused = 0;
  uint64_t peer_connections_refused = 0;
  LogLimiter denied_log;
  LogLimiter handshake_log;
  LogLimiter limits_log;
  LogLimiter accept_log;  // refused connections: a peer can open them at will
};

// One accepted connection. Alive while a read or write is outstanding;
// replies hold only a weak_ptr.
class ServerConn : public std::enable_shared_from_this<ServerConn> {
 public:
  // Takes the slots ServerCore::Admit counted for `address`; gives them
  // back when closed (or destroyed, should it be without Close()).
  ServerConn(std::shared_ptr<ServerCore> core, Socket socket,
             std::shared_ptr<asio::ssl::context> tls_ctx, asio::ip::address address)
      : core_(std::move(core)),
        transport_(std::move(socket), std::move(tls_ctx)),
        handshake_timer_(core_->io),
        deadline_timer_(core_->io),
        peer_(PeerName(transport_.socket())),
        address_(std::move(address)) {}
  ~ServerConn() { ReleaseSlots(); }

  void Start() {
    last_activity_ = SteadyNowMicros();
    if (!transport_.tls()) {
      StartRead();
      ArmDeadline();
      return;
    }
    // The role comes from the certificate, so nothing is read before the
    // handshake; a peer that stalls it is cut off at handshake_timeout.
    handshake_timer_.expires_after(std::chrono::microseconds(core_->options.handshake_timeout));
    handshake_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->closed_ || self->handshaken_) return;
      self->handshake_timed_out_ = true;
      boost::system::error_code ignored;
      self->transport_.socket().close(ignored);  // the handshake completes with an error
    });
    transport_.tls_stream().async_handshake(
        asio::ssl::stream_base::server,
        [self = shared_from_this()](const boost::system::error_code& ec) { self->OnHandshake(ec); });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    handshake_timer_.cancel();
    deadline_timer_.cancel();
    transport_.socket().close(ec);
    ReleaseSlots();
    out_.clear();
    Log()->debug("connection from {} closed", peer_);
  }

  void SendReply(const std::string& method, int32_t seqid, const Bytes& result) {
    if (closed_) return;   // the peer is gone: drop the reply
    if (result.empty()) {  // see RpcServer::Handle in rpc_inl.h
      Malformed(fmt::format("arguments of '{}' do not parse as its request struct", method));
      return;
    }
    AppendFrame(&out_, kReply, method, seqid, 0, result);
    ++core_->calls_served;
    if (in_flight_ > 0) --in_flight_;
    if (!in_dispatch_) Flush();
    if (in_flight_ == 0) {
      last_activity_ = SteadyNowMicros();
      ArmDeadline();
    }
  }

 private:
  static constexpr Micros kNever = std::numeric_limits<Micros>::max();

  void ReleaseSlots() {
    if (released_) return;
    released_ = true;
    core_->conns.erase(this);
    auto it = core_->per_peer.find(address_);
    if (it != core_->per_peer.end() && --it->second == 0) core_->per_peer.erase(it);
  }

  // When this connection is to be closed if nothing changes: a frame begun
  // must be complete by frame_timeout; a connection with nothing in flight
  // is idle after idle_timeout; one waiting on its handlers has no deadline.
  Micros Deadline() const {
    if (in_.size() > 0 && reading_) return frame_started_ + core_->options.frame_timeout;
    if (in_flight_ == 0 && in_.size() == 0) return last_activity_ + core_->options.idle_timeout;
    return kNever;
  }

  // One timer per connection, armed lazily: when it fires it looks at the
  // deadline as it is now and re-arms for a later one. It is re-armed early
  // only when the deadline moved earlier (a frame began on an idle connection).
  void ArmDeadline() {
    if (closed_) return;
    const Micros d = Deadline();
    if (d == kNever || d >= armed_at_) return;
    armed_at_ = d;
    deadline_timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::microseconds(d)));
    deadline_timer_.async_wait(
        [weak = weak_from_this(), gen = ++timer_generation_](const boost::system::error_code&) {
          if (auto self = weak.lock()) self->OnDeadline(gen);
        });
  }

  void OnDeadline(uint64_t gen) {
    if (closed_ || gen != timer_generation_) return;
    armed_at_ = kNever;
    const Micros d = Deadline();
    if (d > SteadyNowMicros()) return ArmDeadline();
    const bool slow = in_.size() > 0;
    ++(slow ? core_->slow_frames_closed : core_->idle_closed);
    uint64_t suppressed = 0;
    if (slow && core_->limits_log.Allow(&suppressed)) {
      Log()->warn("closing connection from {}: a frame begun {} ms ago is still incomplete "
                  "({} bytes so far; frame_timeout){}",
                  peer_, (SteadyNowMicros() - frame_started_) / kMillis, in_.size(),
                  Suppressed(suppressed));
    } else if (!slow) {
      Log()->debug("closing connection from {}: idle for {} s (idle_timeout)", peer_,
                   core_->options.idle_timeout / kSeconds);
    }
    Close();
  }

  void OnHandshake(const boost::system::error_code& ec) {
    handshake_timer_.cancel();
    if (closed_) return;
    if (ec) {
      ++core_->tls_handshake_failures;
      const std::string why = handshake_timed_out_
                                  ? fmt::format("not finished within {} ms",
                                                core_->options.handshake_timeout / kMillis)
                                  : tls::HandshakeError(transport_.ssl(), ec);
      uint64_t suppressed = 0;
      if (core_->handshake_log.Allow(&suppressed)) {
        Log()->warn("TLS handshake with {} failed: {}{}", peer_, why,
                    Suppressed(suppressed));
      }
      Close();
      return;
    }
    handshaken_ = true;
    tls::PeerIdentity id = tls::PeerOf(transport_.ssl());
    role_ = id.role;
    Log()->debug("TLS connection from {} role={} cn='{}'", peer_, authz::RoleName(role_),
                 Printable(id.common_name));
    last_activity_ = SteadyNowMicros();
    StartRead();
    ArmDeadline();
  }

  // With TLS, the one place where a call is checked against the table: a
  // refused call never reaches its handler.
  // `handler` is null for a method this server does not serve.
  bool Authorized(std::string_view method, const ServerCore::Handler* handler, int32_t seqid) {
    if (!transport_.tls()) return true;  // no role without TLS: loopback dev mode
    const authz::Table* table = core_->options.authz;
    if (table != nullptr && table->Allows(role_, method)) return true;
    ++core_->permission_denied;
    std::string why = table != nullptr
                          ? table->Refusal(role_, Printable(method))
                          : fmt::format("role {} may not call {} (this server has no "
                                        "authorization table)",
                                        authz::RoleName(role_), Printable(method));
    uint64_t suppressed = 0;
    if (core_->denied_log.Allow(&suppressed)) {
      Log()->warn("PERMISSION_DENIED from {}: {}{}", peer_, why,
                  Suppressed(suppressed));
    }
    Refuse(method, handler, seqid, Status::kPermissionDenied, why);
    return false;
  }

  // Answers a call without running its handler: its response with `code`
  // and `why` in the status, or a Thrift exception if it has no status (or
  // no handler).
  void Refuse(std::string_view method, const ServerCore::Handler* handler, int32_t seqid,
              Status::Code code, const std::string& why) {
    Bytes refusal = handler && handler->refusal ? handler->refusal(code, why) : Bytes();
    if (refusal.empty()) {
      SendException(method, seqid, kInternalError,
                    std::string(Status::CodeName(code)) + ": " + why);
    } else {
      AppendFrame(&out_, kReply, method, seqid, 0, refusal);
      if (!in_dispatch_) Flush();
    }
  }

  void StartRead() {
    if (closed_ || reading_) return;
    reading_ = true;
    transport_.ReadSome(
        in_.Prepare(), [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
          self->OnRead(ec, n);
        });
  }

  void OnRead(const boost::system::error_code& ec, size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
      if (!IsQuietDisconnect(ec)) Log()->debug("read from {}: {}", peer_, ec.message());
      Close();
      return;
    }
    in_.Commit(n);
    const Micros now = SteadyNowMicros();
    last_activity_ = now;
    bool consumed = false;
    const uint32_t max = core_->options.max_frame_bytes;
    in_dispatch_ = true;
    for (;;) {
      const FrameHead head = PeekFrame(std::string_view(in_.data(), in_.size()), max);
      const uint32_t len = head.length;
      if (head.kind == FrameHead::kBadLength) {
        Malformed(fmt::format("frame length {} out of range (1..{})", len, max));
        return;
      }
      if (head.kind == FrameHead::kNeedMore) {
        if (len > 0) in_.Reserve(size_t{len} + 4);
        break;
      }
      Dispatch(in_.data() + 4, len);
      if (closed_) return;
      in_.Consume(size_t{len} + 4);
      consumed = true;
    }
    in_dispatch_ = false;
    // The bytes left are the start of the next frame: its clock starts with
    // the read that completed the previous one, or with its first bytes.
    if (in_.size() == 0) {
      frame_started_ = 0;
    } else if (consumed || frame_started_ == 0) {
      frame_started_ = now;
    }
    Flush();
    if (out_.size() + wbuf_.size() <= kMaxQueuedReplyBytes) StartRead();
    ArmDeadline();
  }

  void Dispatch(const char* frame, uint32_t len) {
    Call env;
    std::string error;
    if (!DecodeCall(std::string_view(frame, len), &env, &error)) {
      Malformed(error);
      return;
    }
    auto it = core_->handlers.find(env.name);
    // Before the method is looked up: a caller learns nothing of what a
    // server serves beyond what its role may call.
    if (!Authorized(env.name, it == core_->handlers.end() ? nullptr : &it->second, env.seqid)) {
      return;
    }
    if (it == core_->handlers.end()) {
      // As a stock Thrift processor does; the connection stays usable.
      Log()->warn("unknown method '{}' from {}; replied UNKNOWN_METHOD", Printable(env.name),
                  peer_);
      SendException(env.name, env.seqid, kUnknownMethod,
                    fmt::format("Invalid method name: '{}'", env.name));
      return;
    }
    if (in_flight_ >= core_->options.max_in_flight) {
      ++core_->in_flight_refused;
      uint64_t suppressed = 0;
      if (core_->limits_log.Allow(&suppressed)) {
        Log()->warn("refusing a call of {} from {}: {} calls in flight on its connection "
                    "(max_in_flight){}",
                    Printable(env.name), peer_, in_flight_, Suppressed(suppressed));
      }
      Refuse(env.name, &it->second, env.seqid, Status::kUnavailable,
             fmt::format("{} calls are in flight on this connection (the server's limit); "
                         "retry once some are answered",
                         in_flight_));
      return;
    }
    ++in_flight_;
    Log()->trace("call {} seqid={} from {}", env.name, env.seqid, peer_);
    // A call without field 1 gets a default request, as in stock Thrift.
    Bytes arg_bytes = env.has_args ? Bytes(env.args) : Bytes(1, static_cast<char>(kTStop));
    const std::string* method = &it->first;
    const int32_t seqid = env.seqid;
    try {
      CallConnection connection;
      if (it->second.wants_connection) {
        connection = CallConnection(std::shared_ptr<const bool>(shared_from_this(), &closed_));
      }
      it->second.fn(
          arg_bytes,
          [weak = weak_from_this(), method, seqid](Bytes result) {
            if (auto self = weak.lock()) self->SendReply(*method, seqid, result);
          },
          connection);
    } catch (const std::exception& e) {
      if (in_flight_ > 0) --in_flight_;
      Log()->error("handler of '{}' threw: {}", *method, e.what());
      SendException(*method, seqid, kInternalError,
                    fmt::format("handler of '{}' failed: {}", *method, e.what()));
    }
  }

  void SendException(std::string_view method, int32_t seqid, int32_t type,
                     std::string_view message) {
    if (closed_) return;
    AppendFrame(&out_, kException, method, seqid, -1, EncodeApplicationException(message, type));
    if (!in_dispatch_) Flush();
  }

  void Malformed(const std::string& why) {
    ++core_->malformed_frames;
    Log()->warn("closing connection from {}: {}", peer_, why);
    Close();
  }

  void Flush() {
    if (closed_ || writing_ || out_.empty()) return;
    std::swap(out_, wbuf_);
    writing_ = true;
    transport_.Write(asio::buffer(wbuf_),
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                       self->OnWritten(ec);
                     });
  }

  void OnWritten(const boost::system::error_code& ec) {
    writing_ = false;
    if (closed_) return;
    if (ec) {
      if (!IsQuietDisconnect(ec)) Log()->debug("write to {}: {}", peer_, ec.message());
      Close();
      return;
    }
    ReleaseIfHuge(&wbuf_);
    Flush();
    if (!reading_ && !in_dispatch_ && out_.size() + wbuf_.size() <= kMaxQueuedReplyBytes) {
      StartRead();
    }
  }

  std::shared_ptr<ServerCore> core_;
  Transport transport_;
  asio::steady_timer handshake_timer_;
  asio::steady_timer deadline_timer_;  // idle_timeout and frame_timeout
  Micros armed_at_ = kNever;
  uint64_t timer_generation_ = 0;
  Micros last_activity_ = 0;
  Micros frame_started_ = 0;  // first bytes of the frame being received; 0: none
  size_t in_flight_ = 0;      // calls handed to handlers, not yet answered
  std::string peer_;
  asio::ip::address address_;  // the peer's, the key of its per_peer slot
  bool released_ = false;      // its slots given back (ReleaseSlots)
  authz::Role role_ = authz::Role::kNone;
  bool handshaken_ = false;
  bool handshake_timed_out_ = false;
  FrameBuffer in_;
  std::string out_;   // replies queued behind the write in flight
  std::string wbuf_;  // the write in flight
  bool reading_ = false;
  bool writing_ = false;
  bool in_dispatch_ = false;  // replies made inside a read batch go out in one write
  bool closed_ = false;
};

}  // namespace

class RpcServer::Impl {
 public:
  Impl(asio::io_context& io, ServerOptions options)
      : core_(std::make_shared<ServerCore>(io, options)) {}
  std::shared_ptr<ServerCore> core_;
};

namespace {

// A connection accepted from `address` (127.0.0.1 for the Unix-domain
// socket): admitted and started, or closed.
void Accepted(const std::shared_ptr<ServerCore>& core, Socket socket,
              const asio::ip::address& address) {
  boost::system::error_code ignored;
  if (!core->Admit(socket, address)) {
    socket.close(ignored);
    return;
  }
  std::shared_ptr<asio::ssl::context> tls_ctx;
  if (core->options.tls.enabled()) {
    // The cached context, or a fresh one after a reload (SIGHUP);
    // Listen() loaded it once, so this does not fail.
    auto ctx = tls::ServerContext(core->options.tls);
    if (ctx.ok()) tls_ctx = *ctx;
    if (!tls_ctx) {
      socket.close(ignored);
      return;
    }
  }
  auto conn = std::make_shared<ServerConn>(core, std::move(socket), std::move(tls_ctx), address);
  core->conns.emplace(conn.get(), conn);
  ++core->per_peer[address];
  Log()->debug("connection accepted on port {}", core->port);
  conn->Start();
}

// After an accept error (e.g. EMFILE): `again` in 100 ms on `timer` (the
// accept loop's own), unless stopped.
void RetryAccept(const std::shared_ptr<ServerCore>& core, uint64_t gen,
                 const boost::system::error_code& ec, asio::steady_timer& timer,
                 void (*again)(const std::shared_ptr<ServerCore>&)) {
  Log()->warn("accept on port {}: {}; retrying in 100 ms", core->port, ec.message());
  timer.expires_after(std::chrono::milliseconds(100));
  timer.async_wait([core, gen, again](const boost::system::error_code& tec) {
    if (!tec && core->listening && gen == core->generation) again(core);
  });
}

// One accept at a time; the handler holds the core, Stop() aborts it.
void AcceptNext(const std::shared_ptr<ServerCore>& core) {
  core->acceptor.async_accept(
      [core, gen = core->generation](const boost::system::error_code& ec, tcp::socket socket) {
        // Stopped: the socket closes as it goes out of scope.
        if (!core->listening || gen != core->generation) return;
        if (ec) {
          if (ec != asio::error::operation_aborted) {
            RetryAccept(core, gen, ec, core->retry_timer, &AcceptNext);
          }
          return;
        }
        boost::system::error_code peer_ec;
        const asio::ip::address address = socket.remote_endpoint(peer_ec).address();
        if (peer_ec) {
          // Gone already (reset before it was accepted).
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          boost::system::error_code ignored;
          socket.set_option(tcp::no_delay(true), ignored);
          ++core->tcp_connections;
          Accepted(core, Socket(std::move(socket)), address);
        }
        AcceptNext(core);
      });
}

// The same for the Unix-domain socket: every peer is a process of this host.
void AcceptNextUnix(const std::shared_ptr<ServerCore>& core) {
  core->unix_acceptor.async_accept(
      [core, gen = core->generation](const boost::system::error_code& ec,
                                     local_stream::socket socket) {
        if (!core->listening || gen != core->generation) return;
        if (ec) {
          if (ec != asio::error::operation_aborted) {
            RetryAccept(core, gen, ec, core->unix_retry_timer, &AcceptNextUnix);
          }
          return;
        }
        ++core->unix_connections;
        Accepted(core, Socket(std::move(socket)), asio::ip::address_v4::loopback());
        AcceptNextUnix(core);
      });
}

// One peer must not take every slot: a client that opens connections in a
// loop would otherwise lock every other client out until idle_timeout. The
// listener's own cap bounds descriptors and memory over all peers.
bool ServerCore::Admit(const Socket& socket, const asio::ip::address& peer) {
  const auto it = per_peer.find(peer);
  const size_t from_peer = it == per_peer.end() ? 0 : it->second;
  const bool listener_full = conns.size() >= options.max_connections;
  if (!listener_full && from_peer < options.max_connections_per_peer) return true;
  ++(listener_full ? connections_refused : peer_connections_refused);
  uint64_t suppressed = 0;
  if (!accept_log.Allow(&suppressed)) return false;
  if (listener_full) {
    Log()->warn("refusing connection from {}: {} connections open on port {} "
                "(max_connections){}",
                PeerName(socket), conns.size(), port, Suppressed(suppressed));
  } else {
    Log()->warn("refusing connection from {}: {} connections open from {} "
                "(max_connections_per_peer); other addresses are still served{}",
                PeerName(socket), from_peer, peer.to_string(), Suppressed(suppressed));
  }
  return false;
}

void ServerCore::Stop() {
  boost::system::error_code ignored;
  if (listening) Log()->info("stopped listening on port {}", port);
  listening = false;
  ++generation;
  acceptor.close(ignored);
  unix_acceptor.close(ignored);
  retry_timer.cancel();
  unix_retry_timer.cancel();
  auto open = std::move(conns);
  conns.clear();
  for (auto& [ptr, weak] : open) {
    if (auto conn = weak.lock()) conn->Close();
  }
}

}  // namespace

void DisableUnixSockets() { unix_sockets_disabled.store(true, std::memory_order_relaxed); }

RpcServer::RpcServer(asio::io_context& io, ServerOptions options)
    : impl_(std::make_unique<Impl>(io, options)) {}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::HandleRaw(const std::string& method, RawHandler handler, RawRefusal refusal,
                          bool wants_connection) {
  impl_->core_->handlers[method] =
      ServerCore::Handler{std::move(handler), std::move(refusal), wants_connection};
}

Status RpcServer::Listen(const std::string& host_port) {
  auto endpoint = ParseEndpoint(host_port);
  if (!endpoint.ok()) return endpoint.status();
  ServerCore& core = *impl_->core_;
  if (core.listening) {
    return Status::InvalidArgument(fmt::format(
        "server already listening on port {}; cannot listen on {}", core.port, host_port));
  }
  if (core.options.tls.enabled()) {
    auto ctx = tls::ServerContext(core.options.tls);
    if (!ctx.ok()) return ctx.status();
    // Every method served must have a row in the table: one left out would
    // be refused to every role, which a test finds sooner than an operator.
    if (core.options.authz != nullptr) {
      for (const auto& [method, handler] : core.handlers) {
        if (!core.options.authz->Contains(method)) {
          return Status::Internal("method " + method +
                                  " is served but missing from the authorization table "
                                  "(protocol/authz.cc)");
        }
      }
    }
  }
  boost::system::error_code ec;
  core.acceptor.open(endpoint->protocol(), ec);
  if (!ec) core.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) core.acceptor.bind(*endpoint, ec);
  if (!ec) core.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  tcp::endpoint local;
  if (!ec) local = core.acceptor.local_endpoint(ec);
  if (ec) {
    boost::system::error_code ignored;
    core.acceptor.close(ignored);
    return Status::Unavailable(fmt::format("cannot listen on {}: {}", host_port, ec.message()));
  }
  core.port = local.port();
  core.listening = true;
  Log()->info("listening on {}:{}{}", local.address().to_string(), core.port,
              core.options.tls.enabled() ? " (mutual TLS)" : "");
  AcceptNext(impl_->core_);
  if (core.options.unix_socket && UnixSocketsAllowed() &&
      (local.address().is_loopback() || local.address().is_unspecified())) {
    // Channels dial the address they were given: the any-address is reached
    // as 127.0.0.1.
    const tcp::endpoint named(local.address().is_unspecified()
                                  ? asio::ip::address(asio::ip::address_v4::loopback())
                                  : local.address(),
                              core.port);
    core.unix_acceptor.open(local_stream(), ec);
    if (!ec) core.unix_acceptor.bind(UnixName(named), ec);
    if (!ec) core.unix_acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      // Another process holds the name (or the kernel refused): TCP only.
      boost::system::error_code ignored;
      core.unix_acceptor.close(ignored);
      Log()->info("no Unix-domain socket beside port {} (TCP only): {}", core.port, ec.message());
    } else {
      AcceptNextUnix(impl_->core_);
    }
  }
  return Status::Ok();
}

uint16_t RpcServer::port() const { return impl_->core_->port; }

void RpcServer::Stop() { impl_->core_->Stop(); }

uint64_t RpcServer::calls_served() const { return impl_->core_->calls_served; }

uint64_t RpcServer::unix_connections() const { return impl_->core_->unix_connections; }
uint64_t RpcServer::tcp_connections() const { return impl_->core_->tcp_connections; }

uint64_t RpcServer::malformed_frames() const { return impl_->core_->malformed_frames; }

uint64_t RpcServer::permission_denied() const { return impl_->core_->permission_denied; }

uint64_t RpcServer::tls_handshake_failures() const {
  return impl_->core_->tls_handshake_failures;
}

uint64_t RpcServer::idle_closed() const { return impl_->core_->idle_closed; }

uint64_t RpcServer::slow_frames_closed() const { return impl_->core_->slow_frames_closed; }

uint64_t RpcServer::in_flight_refused() const { return impl_->core_->in_flight_refused; }

size_t RpcServer::open_connections() const { return impl_->core_->conns.size(); }

uint64_t RpcServer::connections_refused() const { return impl_->core_->connections_refused; }

uint64_t RpcServer::peer_connections_refused() const {
  return impl_->core_->peer_connections_refused;
}

// ------------------------------------------------------------ channel

namespace {

// One connection of a channel; a reconnect makes a new one, so handlers
// of an old connection can tell they are stale.
struct ClientConn {
  ClientConn(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls_ctx)
      : transport(Socket(io), std::move(tls_ctx)),
        socket(transport.socket()),
        connect_timer(io) {}
  Transport transport;
  Socket& socket;  // the TCP or Unix-domain socket under the transport
  asio::steady_timer connect_timer;
  FrameBuffer in;
  std::string out;   // requests queued behind the write in flight
  std::string wbuf;  // the write in flight
  bool writing = false;
  bool connect_timed_out = false;
  bool answered = false;  // a reply arrived on this connection
  Micros ready_at = 0;    // when it was up (OnReady)
};

}  // namespace

// The channel's state machine. What callers see:
// - The first call connects (no background connecting, ever).
// - A failed connect fails every pending call with UNAVAILABLE and starts a
//   backoff (backoff_initial, doubling up to backoff_max). Calls made while
//   backing off fail at once with UNAVAILABLE ("next connect attempt in N
//   ms"), as gRPC does without wait-for-ready; the first call after the
//   backoff expires makes the next attempt. Callers retry with their own pace.
// - A connection lost after it was up fails the pending calls with
//   UNAVAILABLE; the next call reconnects at once (no backoff).
// - A non-positive timeout gives TIMEOUT; an unparsable address gives
//   INVALID_ARGUMENT to every call; a request above 16 MiB gives
//   INVALID_ARGUMENT without being sent.
// - Completions decided inside Call() or Close() are posted to the io_context,
//   never run inside them; those decided by I/O or the timer run directly.
// Deadlines: one steady_timer per channel, armed for the earliest deadline of
// a min-heap of (deadline, seqid), rather than a timer per call.
class RpcChannel::Impl : public std::enable_shared_from_this<RpcChannel::Impl> {
 public:
  Impl(asio::io_context& io, std::string host_port, ChannelOptions options)
      : io_(io),
        address_(std::move(host_port)),
        options_(options),
        deadline_timer_(io),
        backoff_(options.backoff_initial),
        confirm_timer_(io) {
    auto ep = ParseEndpoint(address_);
    if (ep.ok()) {
      endpoint_ = *ep;
      host_ = address_.substr(0, address_.rfind(':'));
    } else {
      bad_address_ = ep.status();
    }
    if (bad_address_.ok() && options_.tls.enabled()) {
      // Files that do not load fail every call with the reason, as a bad
      // address does: a channel has no other way to report.
      auto ctx = tls::ClientContext(options_.tls);
      if (!ctx.ok()) bad_address_ = ctx.status();
    }
  }

  ~Impl() { Close(); }

  const std::string& address() const { return address_; }
  size_t queued_bytes() const {
    return conn_ ? conn_->out.size() + (conn_->writing ? conn_->wbuf.size() : 0) : 0;
  }

  void Call(const std::string& method, Bytes args, Micros timeout, RawDone done) {
    if (state_ == State::kClosed) {
      return PostDone(std::move(done),
                      Status::Unavailable("channel to " + address_ + " is closed"));
    }
    if (!bad_address_.ok()) return PostDone(std::move(done), bad_address_);
    if (args.empty()) {
      return PostDone(std::move(done),
                      Status::Internal("could not serialise the request of " + method));
    }
    if (args.size() + method.size() + 64 > kMaxRequestFrameBytes) {
      return PostDone(std::move(done), Status::InvalidArgument(fmt::format(
                                           "request of {} is {} bytes; the limit is {}", method,
                                           args.size(), kMaxRequestFrameBytes)));
    }
    if (timeout <= 0) {
      return PostDone(std::move(done), Status::Timeout(fmt::format(
                                           "{} to {}: timeout {} us is not positive", method,
                                           address_, timeout)));
    }
    if (conn_ && queued_bytes() + args.size() > options_.max_queued_bytes) {
      // The server has not read what is queued: its bytes and these would
      // pile up without bound (ChannelOptions::max_queued_bytes). Completions
      // are posted: the caller is inside Call.
      const std::string why = fmt::format(
          "{} bytes of requests not taken by the kernel: the server is not reading",
          queued_bytes());
      Log()->warn("dropping the connection to {} with {} calls pending: {}", address_,
                  pending_.size(), why);
      DropConnection();
      state_ = State::kIdle;
      FailAll(Status::Unavailable(fmt::format("connection to {} dropped: {}", address_, why)),
              /*post=*/true);
    }
    const Micros now = SteadyNowMicros();
    if (BackingOff(now)) {
      return PostDone(std::move(done),
                      Status::Unavailable(fmt::format(
                          "{} is unreachable ({}); next connect attempt in {} ms", address_,
                          last_error_, (next_attempt_ - now + 999) / 1000)));
    }
    if (state_ == State::kIdle) StartConnect();

    const int32_t seqid = next_seqid_;
    next_seqid_ = next_seqid_ == std::numeric_limits<int32_t>::max() ? 1 : next_seqid_ + 1;
    // Clamped so the timer's nanosecond arithmetic cannot overflow.
    const Micros deadline = now + std::min(timeout, kMaxTimeout);
    auto [it, inserted] =
        pending_.try_emplace(seqid, Pending{RawDone(), method, deadline, timeout});
    if (!inserted) {  // 2^31 calls later, one still pending: refuse rather than mix them up
      return PostDone(std::move(done), Status::Internal("seqid wrapped onto a pending call"));
    }
    it->second.done = std::move(done);
    AppendFrame(&conn_->out, kCall, method, seqid, 1, args);
    deadlines_.emplace_back(deadline, seqid);
    std::push_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
    if (deadline < armed_) ArmTimer();
    if (state_ == State::kConnected) Flush(conn_);
  }

  void Connect() {
    if (state_ == State::kClosed || !bad_address_.ok()) return;
    if (BackingOff(SteadyNowMicros())) return;
    if (state_ == State::kIdle) StartConnect();
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    confirming_close_ = false;
    confirm_timer_.cancel();
    DropConnection();
    FailAll(Status::Unavailable("channel to " + address_ + " closed"), /*post=*/true);
  }

 private:
  enum class State { kIdle, kConnecting, kConnected, kBackoff, kClosed };

  // True while a failed connect's back-off runs; once it is over the
  // channel is idle again (the caller then starts a connect).
  bool BackingOff(Micros now) {
    if (state_ != State::kBackoff) return false;
    if (now < next_attempt_) return true;
    state_ = State::kIdle;
    return false;
  }

  struct Pending {
    RawDone done;
    std::string method;  // short names fit the small-string buffer: no allocation
    Micros deadline;
    Micros timeout;
  };

  void PostDone(RawDone done, Status status) {
    asio::post(io_, [done = std::move(done), status = std::move(status)]() {
      RunDone(done, status, EmptyBytes());
    });
  }

  static void RunDone(const RawDone& done, const Status& status, const Bytes& result) {
    try {
      done(status, result);
    } catch (const std::exception& e) {
      Log()->error("rpc completion threw: {}", e.what());
    }
  }

  void StartConnect() {
    std::shared_ptr<asio::ssl::context> tls_ctx;
    if (options_.tls.enabled()) {
      auto ctx = tls::ClientContext(options_.tls);  // cached; reloaded after SIGHUP
      if (ctx.ok()) tls_ctx = *ctx;
    }
    auto conn = std::make_shared<ClientConn>(io_, std::move(tls_ctx));
    conn_ = conn;
    state_ = State::kConnecting;
    auto self = shared_from_this();
    if (ConnectUnix(*conn)) {
      asio::post(io_, [self, conn] { self->OnConnected(conn, {}); });
    } else {
      conn->socket.async_connect(endpoint_, [self, conn](const boost::system::error_code& ec) {
        self->OnConnected(conn, ec);
      });
    }
    conn->connect_timer.expires_after(std::chrono::microseconds(options_.connect_timeout));
    conn->connect_timer.async_wait([self, conn](const boost::system::error_code& ec) {
      if (ec || conn != self->conn_ || self->state_ != State::kConnecting) return;
      conn->connect_timed_out = true;
      boost::system::error_code ignored;
      conn->socket.close(ignored);  // the connect completes with operation_aborted
    });
  }

  // A loopback address: connects `conn` to the server's Unix-domain socket
  // if there is one and its process runs under our user id. A connect to a
  // Unix-domain socket completes or fails at once (non-blocking: a full
  // backlog fails too), so this does not block the io thread.
  bool ConnectUnix(ClientConn& conn) {
    if (!options_.unix_socket || !UnixSocketsAllowed() || !endpoint_.address().is_loopback()) {
      return false;
    }
    local_stream::socket s(io_);
    boost::system::error_code ec;
    s.open(local_stream(), ec);
    if (!ec) s.non_blocking(true, ec);
    if (!ec) s.connect(UnixName(endpoint_), ec);
    if (ec) return false;  // none (a server without it, or not ours): TCP
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        cred.uid != geteuid()) {
      Log()->warn("not using the Unix-domain socket of {}: its process runs as user {}, not {}; "
                  "dialling TCP", address_, cred.uid, geteuid());
      return false;
    }
    s.non_blocking(false, ec);
    conn.socket = Socket(std::move(s));
    return true;
  }

  void OnConnected(const std::shared_ptr<ClientConn>& conn, const boost::system::error_code& ec) {
    if (conn != conn_) {  // closed or replaced meanwhile
      conn->connect_timer.cancel();
      return;
    }
    if (ec) {
      conn->connect_timer.cancel();
      const std::string why =
          conn->connect_timed_out
              ? fmt::format("connect timed out after {} ms", options_.connect_timeout / kMillis)
              : ec.message();
      return ConnectFailed(why);
    }
    if (!conn->transport.tls()) {
      conn->connect_timer.cancel();
      return OnReady(conn);
    }
    // The handshake shares the connect deadline (the timer still runs): one
    // per connection, which then carries every call of this channel.
    tls::VerifyPeerName(conn->transport.ssl(), host_);
    conn->transport.tls_stream().async_handshake(
        asio::ssl::stream_base::client,
        [self = shared_from_this(), conn](const boost::system::error_code& hec) {
          conn->connect_timer.cancel();
          if (conn != self->conn_) return;
          if (hec) {
            std::string why = conn->connect_timed_out
                                  ? fmt::format("TLS handshake timed out after {} ms",
                                                self->options_.connect_timeout / kMillis)
                                  : "TLS handshake failed: " +
                                        tls::HandshakeError(conn->transport.ssl(), hec);
            return self->ConnectFailed(why);
          }
          self->OnReady(conn);
        });
  }

  // The confirming reconnect after a close by the server: at once, unless the
  // connection was closed within a second of opening, as a server at its
  // connection limit does at accept (it would accept the reconnect and close
  // it again, for ever): then after a wait that doubles from backoff_initial
  // to backoff_max while that goes on.
  void ConfirmClose(Micros lived) {
    if (lived >= kSeconds) {
      confirm_wait_ = 0;
      return StartConnect();
    }
    confirm_wait_ = confirm_wait_ == 0 ? options_.backoff_initial
                                       : std::min(confirm_wait_ * 2, options_.backoff_max);
    confirm_timer_.expires_after(std::chrono::microseconds(confirm_wait_));
    confirm_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      // A call may have reconnected meanwhile: its connect decides.
      if (self->confirming_close_ && self->state_ == State::kIdle) self->StartConnect();
    });
  }

  void ConnectFailed(const std::string& why) {
    if (confirming_close_) {
      confirming_close_ = false;
      asio::post(io_, [cb = options_.on_closed_by_peer, address = address_] { cb(address); });
    }
    {
      const Micros wait = backoff_;
      next_attempt_ = SteadyNowMicros() + wait;
      backoff_ = std::min(backoff_ * 2, options_.backoff_max);
      if (failures_++ == 0) {
        Log()->warn("connect to {} failed: {}; backing off {} ms", address_, why, wait / kMillis);
      } else {
        Log()->debug("connect to {} failed again: {}; backing off {} ms", address_, why,
                     wait / kMillis);
      }
      last_error_ = why;
      DropConnection();
      state_ = State::kBackoff;
      FailAll(Status::Unavailable(fmt::format("connect to {} failed: {}", address_, why)),
              /*post=*/false);
      return;
    }
  }

  void OnReady(const std::shared_ptr<ClientConn>& conn) {
    boost::system::error_code ignored;
    conn->socket.set_option(tcp::no_delay(true), ignored);
    if (failures_ > 0) {
      Log()->info("connected to {} after {} failed attempts", address_, failures_);
    } else {
      Log()->debug("connected to {}", address_);
    }
    if (confirming_close_) {
      confirming_close_ = false;
      Log()->debug("{} closed our connection but accepted a new one: running, not reported",
                   address_);
    }
    failures_ = 0;
    backoff_ = options_.backoff_initial;
    conn->ready_at = SteadyNowMicros();
    state_ = State::kConnected;
    StartRead(conn);
    Flush(conn);
  }

  void StartRead(const std::shared_ptr<ClientConn>& conn) {
    conn->transport.ReadSome(conn->in.Prepare(), [self = shared_from_this(), conn](
                                                         const boost::system::error_code& ec,
                                                         size_t n) { self->OnRead(conn, ec, n); });
  }

  void OnRead(const std::shared_ptr<ClientConn>& conn, const boost::system::error_code& ec,
              size_t n) {
    if (conn != conn_) return;
    if (ec) {
      std::string why = ec == asio::error::eof ? std::string("closed by the server") : ec.message();
      if (ec == asio::error::eof && !conn->answered && !conn->transport.tls()) {
        why += " before any reply (a server with TLS closes plaintext connections: give this "
               "client a certificate, --tls-cert/--tls-key/--tls-ca)";
      }
      const bool by_peer = ec == asio::error::eof || ec == asio::error::connection_reset;
      ConnectionLost(why);
      if (by_peer && options_.on_closed_by_peer && state_ != State::kClosed) {
        // A server that closed on purpose (its idle timeout, a limit) still
        // accepts; one whose process died does not. Only a reconnect that
        // fails is reported (ConnectFailed). A failed call's completion may
        // have started one already (a retry): its outcome decides.
        confirming_close_ = true;
        if (state_ == State::kIdle) ConfirmClose(SteadyNowMicros() - conn->ready_at);
      }
      return;
    }
    conn->in.Commit(n);
    for (;;) {
      const FrameHead head =
          PeekFrame(std::string_view(conn->in.data(), conn->in.size()), options_.max_frame_bytes);
      const uint32_t len = head.length;
      if (head.kind == FrameHead::kBadLength) {
        return ConnectionLost(fmt::format("response frame length {} out of range (1..{})", len,
                                          options_.max_frame_bytes),
                              /*malformed=*/true);
      }
      if (head.kind == FrameHead::kNeedMore) {
        if (len > 0) conn->in.Reserve(size_t{len} + 4);
        break;
      }
      std::string error;
      conn->answered = true;
      if (!HandleFrame(conn->in.data() + 4, len, &error)) {
        return ConnectionLost(error, /*malformed=*/true);
      }
      if (conn != conn_) return;  // a completion closed the channel or the connection
      conn->in.Consume(size_t{len} + 4);
    }
    StartRead(conn);
  }

  // Completes the call a reply belongs to. False when the frame cannot be
  // tied to a call (the stream is then not trustworthy: close it).
  bool HandleFrame(const char* frame, uint32_t len, std::string* error) {
    Reply env;
    if (!DecodeReply(std::string_view(frame, len), &env, error)) return false;
    auto it = pending_.find(env.seqid);
    if (it == pending_.end()) {
      Log()->debug("dropping reply seqid={} from {}: its call already completed", env.seqid,
                   address_);
      return true;
    }
    const std::string& method = it->second.method;
    Status status;
    Bytes result;
    switch (env.body) {
      case Reply::kResult:
        result.assign(env.result.data(), env.result.size());
        break;
      case Reply::kUnreadableResult:
        status = Status::Internal(fmt::format("unreadable reply to {} from {}", method, address_));
        break;
      case Reply::kNoResult:
        status = Status::Internal(
            fmt::format("reply to {} from {} carries no result", method, address_));
        break;
      case Reply::kApplicationError:
        status = Status::Internal(
            fmt::format("{} on {}: server raised TApplicationException "
                        "type={}: {}",
                        method, address_, env.error_type, env.error_message));
        break;
      case Reply::kUnreadableException:
        status = Status::Internal(
            fmt::format("{} on {}: unreadable exception reply", method, address_));
        break;
      case Reply::kOtherType:
        status = Status::Internal(fmt::format("reply to {} from {} has message type {}", method,
                                              address_, env.type));
        break;
    }
    RawDone done = std::move(it->second.done);
    pending_.erase(it);
    MaybeCompactDeadlines();
    RunDone(done, status, result);
    return true;
  }

  void Flush(const std::shared_ptr<ClientConn>& conn) {
    if (conn->writing || conn->out.empty()) return;
    std::swap(conn->out, conn->wbuf);
    conn->writing = true;
    conn->transport.Write(asio::buffer(conn->wbuf),
                          [self = shared_from_this(), conn](const boost::system::error_code& ec,
                                                            size_t) { self->OnWritten(conn, ec); });
  }

  void OnWritten(const std::shared_ptr<ClientConn>& conn, const boost::system::error_code& ec) {
    conn->writing = false;
    if (conn != conn_) return;
    if (ec) return ConnectionLost("write failed: " + ec.message());
    ReleaseIfHuge(&conn->wbuf);
    Flush(conn);
  }

  void ConnectionLost(const std::string& why, bool malformed = false) {
    if (malformed) {
      Log()->warn("closing connection to {}: {}", address_, why);
    } else if (pending_.empty()) {
      // Losing an idle connection (a server restart, an idle close) is routine.
      Log()->debug("connection to {} lost: {}", address_, why);
    } else {
      Log()->warn("connection to {} lost with {} calls pending: {}", address_, pending_.size(),
                  why);
    }
    DropConnection();
    state_ = State::kIdle;  // reconnect on the next call
    FailAll(Status::Unavailable(fmt::format("connection to {} lost: {}", address_, why)),
            /*post=*/false);
  }

  void DropConnection() {
    if (!conn_) return;
    boost::system::error_code ignored;
    conn_->connect_timer.cancel();
    conn_->socket.close(ignored);
    conn_.reset();
  }

  // Completes every pending call with `status`. Inline from io handlers; from
  // Close() it is posted, so a caller never sees its completions re-enter it.
  void FailAll(const Status& status, bool post) {
    deadlines_.clear();
    armed_ = kNever;
    deadline_timer_.cancel();
    if (pending_.empty()) return;
    std::vector<std::pair<int32_t, RawDone>> failed;
    failed.reserve(pending_.size());
    for (auto& [seqid, p] : pending_) failed.emplace_back(seqid, std::move(p.done));
    pending_.clear();
    std::sort(failed.begin(), failed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    if (post) {
      asio::post(io_, [failed = std::move(failed), status]() {
        for (auto& f : failed) RunDone(f.second, status, EmptyBytes());
      });
    } else {
      for (auto& f : failed) RunDone(f.second, status, EmptyBytes());
    }
  }

  // Deadlines live in a min-heap; completed calls leave stale entries behind,
  // skipped on expiry and purged when they outnumber live calls.
  void MaybeCompactDeadlines() {
    if (deadlines_.size() <= 2 * pending_.size() + 64) return;
    deadlines_.clear();
    for (const auto& [seqid, p] : pending_) deadlines_.emplace_back(p.deadline, seqid);
    std::make_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
  }

  void ArmTimer() {
    if (deadlines_.empty()) return;
    armed_ = deadlines_.front().first;
    deadline_timer_.expires_at(
        std::chrono::steady_clock::time_point(std::chrono::microseconds(armed_)));
    deadline_timer_.async_wait(
        [self = shared_from_this()](const boost::system::error_code& ec) { self->OnTimer(ec); });
  }

  void OnTimer(const boost::system::error_code& ec) {
    if (ec) return;  // re-armed or closed: whoever did that owns the timer now
    armed_ = kNever;
    const Micros now = SteadyNowMicros();
    while (!deadlines_.empty() && deadlines_.front().first <= now) {
      const auto [deadline, seqid] = deadlines_.front();
      std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
      deadlines_.pop_back();
      auto it = pending_.find(seqid);
      if (it == pending_.end() || it->second.deadline != deadline) continue;
      Status status =
          Status::Timeout(fmt::format("{} to {} timed out after {} ms", it->second.method, address_,
                                      it->second.timeout / kMillis));
      RawDone done = std::move(it->second.done);
      pending_.erase(it);
      RunDone(done, status, EmptyBytes());
    }
    if (armed_ == kNever) ArmTimer();
  }

  static constexpr Micros kNever = std::numeric_limits<Micros>::max();
  static constexpr Micros kMaxTimeout = 365LL * 24 * 3600 * kSeconds;

  asio::io_context& io_;
  const std::string address_;
  const ChannelOptions options_;
  tcp::endpoint endpoint_;
  std::string host_;     // the host part of address_: what the server's certificate must name
  Status bad_address_;   // or certificate files that do not load

  State state_ = State::kIdle;
  std::shared_ptr<ClientConn> conn_;  // set while connecting or connected
  int32_t next_seqid_ = 1;
  std::unordered_map<int32_t, Pending> pending_;

  std::vector<std::pair<Micros, int32_t>> deadlines_;  // min-heap of (deadline, seqid)
  asio::steady_timer deadline_timer_;
  Micros armed_ = kNever;  // deadline the timer waits for

  Micros backoff_;
  Micros next_attempt_ = 0;
  int failures_ = 0;  // consecutive failed connects
  // The server closed the connection and the reconnect that tells whether it
  // is still running is under way (ChannelOptions::on_closed_by_peer).
  bool confirming_close_ = false;
  asio::steady_timer confirm_timer_;  // ConfirmClose's wait
  Micros confirm_wait_ = 0;           // its last wait; 0 after a connection that lived
  std::string last_error_;
};

RpcChannel::RpcChannel(asio::io_context& io, std::string host_port, ChannelOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(host_port), options)) {}

RpcChannel::~RpcChannel() { impl_->Close(); }

void RpcChannel::CallRaw(const std::string& method, Bytes args, Micros timeout, RawDone done) {
  impl_->Call(method, std::move(args), timeout, std::move(done));
}

void RpcChannel::Close() { impl_->Close(); }

void RpcChannel::Connect() { impl_->Connect(); }

const std::string& RpcChannel::address() const { return impl_->address(); }
size_t RpcChannel::queued_bytes() const { return impl_->queued_bytes(); }

// ------------------------------------------------------------ pool

ChannelPool::~ChannelPool() { CloseAll(); }

std::shared_ptr<RpcChannel> ChannelPool::Get(const std::string& host_port) {
  auto& channel = channels_[host_port];
  if (!channel) channel = std::make_shared<RpcChannel>(io_, host_port, options_);
  return channel;
}

void ChannelPool::CloseAll() {
  auto channels = std::move(channels_);
  channels_.clear();
  for (auto& [address, channel] : channels) channel->Close();
}

}  // namespace txc::rpc
