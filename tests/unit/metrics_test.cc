// The metrics registry, its text rendering (Prometheus exposition format
// 0.0.4) and the HTTP server that serves it.
#include "common/metrics.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <thread>

#include <boost/asio.hpp>
#include <gtest/gtest.h>

#include "common/metrics_http.h"
#include "tests/support/http_client.h"

namespace txc::metrics {
namespace {

TEST(MetricsTest, RendersASmallRegistryExactly) {
  Registry r;
  r.AddCounter("app_requests_total", "Requests served.", {{"code", "200"}}).Inc(3);
  r.AddCounter("app_requests_total", "ignored: the first help stays", {{"code", "500"}}).Inc();
  r.AddGauge("app_temperature_celsius", "A gauge.\nSecond line, a \\ backslash.").Set(-1.5);
  Histogram& h = r.AddHistogram("app_latency_seconds", "Latency.", {0.125, 1});
  h.Observe(0.0625);
  h.Observe(0.125);  // on a bound: counted in that bucket (le)
  h.Observe(0.5);
  h.Observe(7);
  r.AddGaugeFunc("app_role", "Read at render time.", [] {
    return std::vector<Sample>{{{{"role", "leader"}}, 1}, {{{"role", "follower"}}, 0}};
  });
  r.AddCounterFunc("app_events_total", "Escaped label values.", [] {
    return std::vector<Sample>{{{{"what", "a \"quoted\"\nline \\"}}, 2}};
  });

  EXPECT_EQ(r.Render(),
            "# HELP app_events_total Escaped label values.\n"
            "# TYPE app_events_total counter\n"
            "app_events_total{what=\"a \\\"quoted\\\"\\nline \\\\\"} 2\n"
            "# HELP app_latency_seconds Latency.\n"
            "# TYPE app_latency_seconds histogram\n"
            "app_latency_seconds_bucket{le=\"0.125\"} 2\n"
            "app_latency_seconds_bucket{le=\"1\"} 3\n"
            "app_latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "app_latency_seconds_sum 7.6875\n"
            "app_latency_seconds_count 4\n"
            "# HELP app_requests_total Requests served.\n"
            "# TYPE app_requests_total counter\n"
            "app_requests_total{code=\"200\"} 3\n"
            "app_requests_total{code=\"500\"} 1\n"
            "# HELP app_role Read at render time.\n"
            "# TYPE app_role gauge\n"
            "app_role{role=\"follower\"} 0\n"
            "app_role{role=\"leader\"} 1\n"
            "# HELP app_temperature_celsius A gauge.\\nSecond line, a \\\\ backslash.\n"
            "# TYPE app_temperature_celsius gauge\n"
            "app_temperature_celsius -1.5\n");
}

TEST(MetricsTest, SameNameAndLabelsIsTheSameMetric) {
  Registry r;
  Counter& a = r.AddCounter("x_total", "x", {{"k", "v"}});
  Counter& b = r.AddCounter("x_total", "x", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  a.Inc(2);
  EXPECT_EQ(b.value(), 2u);
}

TEST(MetricsTest, LabelledHistogramKeepsItsLabelsOnEverySeries) {
  Registry r;
  r.AddHistogram("op_seconds", "h", {1}, {{"op", "commit"}}).Observe(2);
  EXPECT_EQ(r.Render(),
            "# HELP op_seconds h\n"
            "# TYPE op_seconds histogram\n"
            "op_seconds_bucket{op=\"commit\",le=\"1\"} 0\n"
            "op_seconds_bucket{op=\"commit\",le=\"+Inf\"} 1\n"
            "op_seconds_sum{op=\"commit\"} 2\n"
            "op_seconds_count{op=\"commit\"} 1\n");
}

TEST(MetricsTest, FormatsValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.0001), "0.0001");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(0.000001), "0.000001");
  EXPECT_EQ(FormatValue(1e-7), "1e-07");
  EXPECT_EQ(FormatValue(18446744073709551615.0), "18446744073709551616");
  EXPECT_EQ(FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatValue(NAN), "NaN");
}

TEST(MetricsTest, LatencyBucketsIncrease) {
  std::vector<double> b = LatencyBuckets();
  ASSERT_FALSE(b.empty());
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
  Histogram h(b);  // accepted as bounds
  h.Observe(100);
  EXPECT_EQ(h.BucketCounts().back(), 1u);
}

TEST(MetricsDeathTest, ATypeClashIsAProgrammingError) {
  Registry r;
  r.AddCounter("x_total", "x");
  EXPECT_DEATH(r.AddGauge("x_total", "x"), "registered as counter and as gauge");
  EXPECT_DEATH(r.AddCounter("bad name", "x"), "bad metric name");
  EXPECT_DEATH(r.AddCounter("y_total", "x", {{"le", "1"}}), "bad label name");
}

// ------------------------------------------------------------------- HTTP

class MetricsServerTest : public ::testing::Test {
 protected:
  void StartServer(MetricsServerOptions o = {}) {
    registry_.AddCounter("t_scrapes_total", "Test counter.").Inc(7);
    server_ = std::make_unique<MetricsServer>(io_, &registry_, o);
    Status s = server_->Listen("127.0.0.1:0");
    ASSERT_TRUE(s.ok()) << s.ToString();
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) boost::asio::post(io_, [this] { server_->Stop(); });
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  Registry registry_;
  std::unique_ptr<MetricsServer> server_;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(MetricsServerTest, ServesTheRegistryOnGetMetrics) {
  StartServer();
  auto r = testing::HttpGet(port_, "/metrics");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r->body, registry_.Render());
  EXPECT_NE(r->body.find("t_scrapes_total 7\n"), std::string::npos);
  // A query string does not change the path.
  auto q = testing::HttpGet(port_, "/metrics?x=1");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->status, 200);
}

TEST_F(MetricsServerTest, OtherPathsAre404AndOtherMethods405) {
  StartServer();
  for (const char* path : {"/", "/metric", "/metrics/", "/admin"}) {
    auto r = testing::HttpGet(port_, path);
    ASSERT_TRUE(r.ok()) << path << ": " << r.status().ToString();
    EXPECT_EQ(r->status, 404) << path;
  }
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD"}) {
    auto r = testing::HttpExchange(
        port_, std::string(method) + " /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(r.ok()) << method << ": " << r.status().ToString();
    EXPECT_EQ(r->status, 405) << method;
    EXPECT_EQ(r->headers["allow"], "GET") << method;
  }
}

TEST_F(MetricsServerTest, KeepsAConnectionAliveForTheNextScrape) {
  StartServer();
  std::string one = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string last = "GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  auto r = testing::HttpExchange(port_, one + one + last);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // The first answer parses; the rest of the bytes hold the other two.
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("t_scrapes_total"), std::string::npos);
  EXPECT_EQ(server_->scrapes(), 2u);
}

TEST_F(MetricsServerTest, RefusesAnOversizedHeaderAndARequestBody) {
  MetricsServerOptions o;
  o.max_header_bytes = 1024;
  StartServer(o);
  auto big = testing::HttpExchange(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                                              std::string(4000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->status, 431);
  auto body = testing::HttpExchange(
      port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(body->status, 400);
  auto junk = testing::HttpExchange(port_, "NOT HTTP AT ALL\r\n\r\n");
  ASSERT_TRUE(junk.ok()) << junk.status().ToString();
  EXPECT_EQ(junk->status, 400);
  EXPECT_EQ(server_->scrapes(), 0u);
}

// Reads from `fd` until the peer closes it (true) or `ms` pass (false).
bool ClosedWithin(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

TEST_F(MetricsServerTest, ClosesAnIdleConnection) {
  MetricsServerOptions o;
  o.idle_timeout = 200 * kMillis;
  StartServer(o);
  int fd = Connect(port_);
  std::string partial = "GET /metrics HTTP/1.1\r\n";  // and nothing more
  ASSERT_EQ(send(fd, partial.data(), partial.size(), 0), static_cast<ssize_t>(partial.size()));
  EXPECT_TRUE(ClosedWithin(fd, 10000));
  close(fd);
}

TEST_F(MetricsServerTest, StopClosesOpenConnectionsAndTheListener) {
  StartServer();  // idle timeout 10 s: only Stop can close it sooner
  int fd = Connect(port_);
  auto first = testing::HttpGet(port_, "/metrics");
  ASSERT_TRUE(first.ok());
  boost::asio::post(io_, [this] { server_->Stop(); });
  EXPECT_TRUE(ClosedWithin(fd, 5000));
  close(fd);
  EXPECT_FALSE(testing::HttpGet(port_, "/metrics", 1000).ok());
}

TEST_F(MetricsServerTest, RefusesConnectionsPastTheLimit) {
  MetricsServerOptions o;
  o.max_connections = 1;
  StartServer(o);
  int held = Connect(port_);
  int fd = Connect(port_);  // accepted after `held` (the backlog is in order): one too many
  EXPECT_TRUE(ClosedWithin(fd, 5000));
  close(fd);
  close(held);
  // Once the first is gone, scrapes are served again.
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    auto r = testing::HttpGet(port_, "/metrics", 1000);
    served = r.ok() && r->status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(served);
}

}  // namespace
}  // namespace txc::metrics
