// MetricsServer: serves a metrics::Registry as `GET /metrics` over HTTP/1.1
// (Boost.Beast), for a Prometheus server to scrape. Any other path is 404,
// any other method on /metrics 405. Requests are bounded (header size, no
// body) and connections are closed when idle, when a request is malformed,
// and at Stop().
//
// Threading: runs on the given io_context (the node's own: no thread of its
// own), so the registry is rendered on that thread and its function
// families may read the node's cores directly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/metrics.h"
#include "common/status.h"
#include "common/time.h"

namespace txc::metrics {

struct MetricsServerOptions {
  // A connection with no complete request (or no next request) for this
  // long is closed. Default: 10 s.
  Micros idle_timeout = 10 * kSeconds;
  // Largest request line plus headers; a larger request gets 431 and the
  // connection is closed. A request with a body gets 400. Default: 8 KiB.
  uint32_t max_header_bytes = 8 * 1024;
  // Connections served at once; one more is closed as soon as it is
  // accepted. Default: 16.
  size_t max_connections = 16;
};

class MetricsServer {
 public:
  // `registry` is borrowed and must outlive the server's use of it (until
  // Stop() or destruction).
  MetricsServer(boost::asio::io_context& io, const Registry* registry,
                MetricsServerOptions options = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds HOST:PORT (port 0: any free port, see port()) and starts accepting.
  Status Listen(const std::string& host_port);
  uint16_t port() const;
  // Stops accepting and closes every connection; idempotent.
  void Stop();
  // Scrapes answered with 200 so far (any thread may ask).
  uint64_t scrapes() const;

  struct State;  // internal: shared with the connections, which may outlive the server

 private:
  std::shared_ptr<State> state_;
};

}  // namespace txc::metrics
