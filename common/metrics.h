// A small metrics registry for the shells (txcoord, txagent), rendered in the
// Prometheus text exposition format, version 0.0.4 (docs/operations.md lists
// every metric).
//
// Two kinds of family:
//   owned: a Counter, Gauge or Histogram the shell updates as things happen
//   (a latency it measured). Updates are lock-free atomics, safe from any
//   thread; a scrape reads each atomic once, so a histogram scraped during
//   an Observe may show the bucket without the sum, never a count that
//   disagrees with its +Inf bucket (both come from the same bucket reads).
//   read at scrape time: a function the registry calls while rendering
//   (CounterFunc, GaugeFunc) that reads a value where it lives, e.g. a
//   core's counters or its state. It runs on the rendering thread: register
//   only functions that may run there (the node's io thread, which is where
//   MetricsServer renders).
//
// Rendering is deterministic: families sorted by name, samples by their
// label values.
//
// Registration is not thread-safe: register everything before serving.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace txc::metrics {

// Label name -> value, e.g. {{"outcome", "committed"}, {"protocol", "2pc"}}.
// Names must match [a-zA-Z_][a-zA-Z0-9_]*; values are escaped when rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Fixed buckets (upper bounds, strictly increasing; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts; the last one is the +Inf bucket.
  std::vector<uint64_t> BucketCounts() const;
  double sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Buckets for latencies of a local disk write or a commit, in seconds:
// 100 µs .. 10 s.
std::vector<double> LatencyBuckets();

// One sample of a CounterFunc or GaugeFunc.
struct Sample {
  Labels labels;
  double value = 0;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The metric `name` with `labels`, created on first use. A family keeps
  // the help text and type it was first registered with; registering a name
  // again with another type, or the same name and labels twice as a
  // function, aborts (a programming error).
  Counter& AddCounter(const std::string& name, const std::string& help, Labels labels = {});
  Gauge& AddGauge(const std::string& name, const std::string& help, Labels labels = {});
  Histogram& AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds, Labels labels = {});

  // Families whose samples `read` returns at every render. A counter's
  // values must never decrease (a restart of the process may reset them).
  void AddCounterFunc(const std::string& name, const std::string& help,
                      std::function<std::vector<Sample>()> read);
  void AddGaugeFunc(const std::string& name, const std::string& help,
                    std::function<std::vector<Sample>()> read);

  // Every family, in the text exposition format (version 0.0.4).
  std::string Render() const;

 private:
  struct Family;
  Family& GetFamily(const std::string& name, const std::string& help, int type);

  std::map<std::string, std::unique_ptr<Family>> families_;
};

// "text/plain; version=0.0.4; charset=utf-8"
extern const char* const kContentType;

// Text helpers of the format (exposed for tests).
std::string FormatValue(double v);        // 42, 0.25, +Inf, -Inf, NaN
std::string EscapeLabelValue(const std::string& v);  // \ " and newline
std::string EscapeHelp(const std::string& v);        // \ and newline

}  // namespace txc::metrics
