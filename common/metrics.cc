#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <variant>

namespace txc::metrics {

const char* const kContentType = "text/plain; version=0.0.4; charset=utf-8";

namespace {

enum Type { kCounter, kGauge, kHistogram };

const char* TypeName(int t) {
  switch (t) {
    case kCounter: return "counter";
    case kGauge: return "gauge";
    default: return "histogram";
  }
}

[[noreturn]] void Misuse(const std::string& what) {
  std::cerr << "metrics registry misuse: " << what << "\n";
  std::abort();
}

bool ValidName(const std::string& n, bool allow_colon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void CheckLabels(const std::string& family, const Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (!ValidName(k, false) || k.rfind("__", 0) == 0 || k == "le") {
      Misuse(family + ": bad label name '" + k + "'");
    }
  }
}

void AppendLabels(std::string* out, const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return;
  out->push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out->push_back(',');
    first = false;
    *out += k + "=\"" + EscapeLabelValue(v) + "\"";
  }
  if (le != nullptr) {
    if (!first) out->push_back(',');
    *out += "le=\"" + *le + "\"";
  }
  out->push_back('}');
}

void AppendSample(std::string* out, const std::string& name, const Labels& labels, double v,
                  const std::string* le = nullptr) {
  *out += name;
  AppendLabels(out, labels, le);
  out->push_back(' ');
  *out += FormatValue(v);
  out->push_back('\n');
}

bool LabelsLess(const Labels& a, const Labels& b) {
  // Families keep one label set per child; order by the values in label order.
  return a < b;
}

}  // namespace

// ------------------------------------------------------------------ Histogram

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      Misuse("histogram bounds must be finite and strictly increasing");
    }
  }
}

void Histogram::Observe(double v) {
  // Bucket i counts bounds_[i-1] < v <= bounds_[i] (Prometheus' "le").
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum() const { return sum_.load(std::memory_order_relaxed); }

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

// ------------------------------------------------------------------- Registry

struct Registry::Family {
  std::string name;
  std::string help;
  int type = kCounter;
  // Owned children, by labels.
  std::map<Labels, std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>,
                                std::unique_ptr<Histogram>>>
      children;
  std::function<std::vector<Sample>()> read;  // a function family
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::GetFamily(const std::string& name, const std::string& help, int type) {
  if (!ValidName(name, true)) Misuse("bad metric name '" + name + "'");
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->type != type) {
      Misuse(name + " registered as " + TypeName(it->second->type) + " and as " + TypeName(type));
    }
    return *it->second;
  }
  auto f = std::make_unique<Family>();
  f->name = name;
  f->help = help;
  f->type = type;
  return *families_.emplace(name, std::move(f)).first->second;
}

Counter& Registry::AddCounter(const std::string& name, const std::string& help, Labels labels) {
  CheckLabels(name, labels);
  Family& f = GetFamily(name, help, kCounter);
  if (f.read) Misuse(name + " is a function family");
  auto& child = f.children[labels];
  if (child.index() == 0 && std::get<0>(child) == nullptr) child = std::make_unique<Counter>();
  return *std::get<std::unique_ptr<Counter>>(child);
}

Gauge& Registry::AddGauge(const std::string& name, const std::string& help, Labels labels) {
  CheckLabels(name, labels);
  Family& f = GetFamily(name, help, kGauge);
  if (f.read) Misuse(name + " is a function family");
  auto& child = f.children[labels];
  if (child.index() == 0) child = std::make_unique<Gauge>();
  return *std::get<std::unique_ptr<Gauge>>(child);
}

Histogram& Registry::AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, Labels labels) {
  CheckLabels(name, labels);
  Family& f = GetFamily(name, help, kHistogram);
  if (f.read) Misuse(name + " is a function family");
  auto& child = f.children[labels];
  if (child.index() == 0) child = std::make_unique<Histogram>(std::move(bounds));
  return *std::get<std::unique_ptr<Histogram>>(child);
}

void Registry::AddCounterFunc(const std::string& name, const std::string& help,
                              std::function<std::vector<Sample>()> read) {
  Family& f = GetFamily(name, help, kCounter);
  if (f.read || !f.children.empty()) Misuse(name + " registered twice");
  f.read = std::move(read);
}

void Registry::AddGaugeFunc(const std::string& name, const std::string& help,
                            std::function<std::vector<Sample>()> read) {
  Family& f = GetFamily(name, help, kGauge);
  if (f.read || !f.children.empty()) Misuse(name + " registered twice");
  f.read = std::move(read);
}

std::string Registry::Render() const {
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + EscapeHelp(f->help) + "\n";
    out += "# TYPE " + name + " " + TypeName(f->type) + "\n";
    if (f->read) {
      std::vector<Sample> samples = f->read();
      for (const Sample& s : samples) CheckLabels(name, s.labels);
      std::stable_sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) {
        return LabelsLess(a.labels, b.labels);
      });
      for (const Sample& s : samples) AppendSample(&out, name, s.labels, s.value);
      continue;
    }
    for (const auto& [labels, child] : f->children) {
      if (auto* c = std::get_if<std::unique_ptr<Counter>>(&child)) {
        AppendSample(&out, name, labels, static_cast<double>((*c)->value()));
      } else if (auto* g = std::get_if<std::unique_ptr<Gauge>>(&child)) {
        AppendSample(&out, name, labels, (*g)->value());
      } else {
        const Histogram& h = *std::get<std::unique_ptr<Histogram>>(child);
        std::vector<uint64_t> counts = h.BucketCounts();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          std::string le = i < h.bounds().size() ? FormatValue(h.bounds()[i]) : "+Inf";
          AppendSample(&out, name + "_bucket", labels, static_cast<double>(cumulative), &le);
        }
        AppendSample(&out, name + "_sum", labels, h.sum());
        AppendSample(&out, name + "_count", labels, static_cast<double>(cumulative));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- formatting

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integral values (counts, indexes) print without an exponent while a
  // double holds them exactly.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // The shortest form that reads back exactly; plain decimals (0.0001, not
  // 1e-04) in the range bucket bounds and latencies live in.
  char buf[400];
  double a = std::fabs(v);
  auto r = a >= 1e-6 && a < 1e15 ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                                 : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace txc::metrics
