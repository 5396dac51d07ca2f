#include "common/metrics_http.h"

#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <string_view>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/log.h"
#include "protocol/rpc.h"

namespace txc::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

class Session;

}  // namespace

struct MetricsServer::State {
  State(asio::io_context& io, const Registry* r, MetricsServerOptions o)
      : io(io), acceptor(io), retry(io), registry(r), options(o) {}
  asio::io_context& io;
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // after a failed accept (e.g. out of descriptors)
  const Registry* registry;
  MetricsServerOptions options;
  std::set<Session*> sessions;
  uint16_t port = 0;
  std::atomic<uint64_t> scrapes{0};  // read from any thread
  bool stopped = false;
};

namespace {

using State = MetricsServer::State;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<State> state)
      : stream_(std::move(socket)), state_(std::move(state)) {
    state_->sessions.insert(this);
  }
  ~Session() { state_->sessions.erase(this); }

  void Read() {
    parser_.emplace();
    parser_->header_limit(state_->options.max_header_bytes);
    parser_->body_limit(0);
    stream_.expires_after(std::chrono::microseconds(state_->options.idle_timeout));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  // Stop(): every pending operation ends with an error and the session goes.
  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  void OnRead(beast::error_code ec) {
    if (state_->stopped) return;
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      return Close();
    }
    if (ec) {
      // Malformed, too large, or with a body: say so and close.
      bool too_large = ec == http::error::header_limit;
      return Respond(too_large ? http::status::request_header_fields_too_large
                               : http::status::bad_request,
                     too_large ? "request header too large\n"
                               : "bad request: " + ec.message() + "\n",
                     11, /*keep_alive=*/false);
    }
    const auto& req = parser_->get();
    std::string_view target(req.target().data(), req.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics") {
      return Respond(http::status::not_found, "not found: this server serves only GET /metrics\n",
                     req.version(), req.keep_alive());
    }
    if (req.method() != http::verb::get) {
      return Respond(http::status::method_not_allowed, "method not allowed: use GET /metrics\n",
                     req.version(), req.keep_alive());
    }
    ++state_->scrapes;
    Respond(http::status::ok, state_->registry->Render(), req.version(), req.keep_alive());
  }

  void Respond(http::status status, std::string body, unsigned version, bool keep_alive) {
    res_ = {};
    res_.result(status);
    res_.version(version);
    res_.set(http::field::server, "txcoord");
    if (status == http::status::ok) {
      res_.set(http::field::content_type, kContentType);
    } else {
      res_.set(http::field::content_type, "text/plain; charset=utf-8");
    }
    if (status == http::status::method_not_allowed) res_.set(http::field::allow, "GET");
    res_.keep_alive(keep_alive);
    res_.body() = std::move(body);
    res_.prepare_payload();
    stream_.expires_after(std::chrono::microseconds(state_->options.idle_timeout));
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->state_->stopped) return;
      if (ec || !self->res_.keep_alive()) return self->Close();
      self->Read();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> res_;
  std::shared_ptr<State> state_;
};

void AcceptNext(const std::shared_ptr<State>& state) {
  state->acceptor.async_accept(state->io, [state](beast::error_code ec, tcp::socket socket) {
    if (state->stopped) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // Do not spin on the node's thread while the cause lasts.
      Logger("rpc")->warn("metrics: accept failed, retrying in 100 ms: {}", ec.message());
      state->retry.expires_after(std::chrono::milliseconds(100));
      state->retry.async_wait([state](beast::error_code e) {
        if (!e && !state->stopped) AcceptNext(state);
      });
      return;
    } else if (state->sessions.size() >= state->options.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(std::move(socket), state)->Read();
    }
    AcceptNext(state);
  });
}

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, const Registry* registry,
                             MetricsServerOptions options)
    : state_(std::make_shared<State>(io, registry, options)) {}

MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Listen(const std::string& host_port) {
  auto endpoint = rpc::ParseEndpoint(host_port);
  if (!endpoint.ok()) {
    return Status::InvalidArgument("--metrics-listen: " + endpoint.status().message());
  }
  beast::error_code ec;
  tcp::acceptor& a = state_->acceptor;
  a.open(endpoint->protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(*endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  tcp::endpoint local;
  if (!ec) local = a.local_endpoint(ec);
  if (ec) {
    beast::error_code ignored;
    a.close(ignored);
    return Status::Unavailable("cannot serve metrics on " + host_port + ": " + ec.message());
  }
  state_->port = local.port();
  Logger("rpc")->info("serving metrics on http://{}:{}/metrics", local.address().to_string(),
                      state_->port);
  AcceptNext(state_);
  return Status::Ok();
}

uint16_t MetricsServer::port() const { return state_->port; }

uint64_t MetricsServer::scrapes() const { return state_->scrapes.load(); }

void MetricsServer::Stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  beast::error_code ignored;
  state_->acceptor.close(ignored);
  state_->retry.cancel();
  // Close() makes each session's pending operation complete with an error;
  // the session is freed when that handler has run (or been destroyed with
  // the io_context).
  std::set<Session*> sessions = state_->sessions;
  for (Session* s : sessions) s->Close();
}

}  // namespace txc::metrics
