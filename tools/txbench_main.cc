// txbench: load generator. `txbench transfer` moves money between accounts
// held in different resources, through real agents and coordinators.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include <boost/program_options.hpp>

#include "client/client.h"
#include "common/cli.h"
#include "common/log.h"
#include "protocol/coordinator_set.h"

namespace po = boost::program_options;
using namespace txc;

namespace {

Micros ParseDuration(const std::string& s) {
  // "10s", "500ms", "2m", or plain seconds.
  size_t i = 0;
  while (i < s.size() && (isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) throw po::error("bad duration '" + s + "' (use e.g. 10s, 500ms, 2m)");
  double v = std::stod(s.substr(0, i));
  std::string unit = s.substr(i);
  if (unit.empty() || unit == "s") return static_cast<Micros>(v * kSeconds);
  if (unit == "ms") return static_cast<Micros>(v * kMillis);
  if (unit == "m") return static_cast<Micros>(v * 60 * kSeconds);
  throw po::error("bad duration unit in '" + s + "' (use s, ms or m)");
}

double Percentile(std::vector<Micros>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[i]) / 1000.0;
}

struct Stats {
  std::atomic<int64_t> committed{0}, aborted{0}, errors{0};
  std::mutex mu;
  std::vector<Micros> latencies;
  std::string first_error;
  void Error(const Status& s) {
    ++errors;
    std::lock_guard<std::mutex> l(mu);
    if (first_error.empty()) first_error = s.ToString();
  }
};

int Transfer(int argc, char** argv) {
  po::options_description desc("txbench transfer options");
  desc.add_options()
      ("coordinator", po::value<std::string>()->required(), "HOST:PORT[,HOST:PORT...] of the coordinator group")
      ("agent", po::value<std::vector<std::string>>()->required(), "NAME=HOST:PORT of a resource's agent (repeatable)")
      ("accounts", po::value<int64_t>()->default_value(100), "accounts per resource")
      ("concurrency", po::value<int>()->default_value(8), "transactions in flight")
      ("duration", po::value<std::string>()->default_value("10s"), "how long to run (10s, 500ms, 2m)")
      ("mode", po::value<std::string>()->default_value("oneshot"), "oneshot or interactive")
      ("json", po::bool_switch(), "print the summary as one JSON line")
      ("quiet", po::bool_switch(), "no progress lines");
  po::variables_map vm;
  cli::Parse(argc, argv,
             "usage: txbench transfer --coordinator LIST --agent NAME=HOST:PORT [--agent ...] "
             "--accounts N --concurrency C --duration 10s [--mode oneshot|interactive]",
             desc, vm);
  SetLogLevel(vm["log-level"].as<std::string>());
  std::string mode = vm["mode"].as<std::string>();
  if (mode != "oneshot" && mode != "interactive") {
    std::cerr << "txbench: --mode must be oneshot or interactive\n";
    return 2;
  }
  int64_t accounts = vm["accounts"].as<int64_t>();
  int concurrency = vm["concurrency"].as<int>();
  Micros duration = 0;
  try {
    duration = ParseDuration(vm["duration"].as<std::string>());
  } catch (const po::error& e) {
    std::cerr << "txbench: " << e.what() << "\n";
    return 2;
  }
  if (accounts < 2 || concurrency < 1 || duration <= 0) {
    std::cerr << "txbench: need --accounts >= 2, --concurrency >= 1, a positive --duration\n";
    return 2;
  }

  ClientOptions co;
  co.coordinators = rpc::SplitList(vm["coordinator"].as<std::string>());
  std::vector<std::string> resources;
  for (const std::string& a : vm["agent"].as<std::vector<std::string>>()) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "txbench: --agent wants NAME=HOST:PORT, got '" << a << "'\n";
      return 2;
    }
    resources.push_back(a.substr(0, eq));
    co.agents[a.substr(0, eq)] = a.substr(eq + 1);
  }
  auto client = Client::Connect(co);
  if (!client.ok()) {
    std::cerr << "txbench: " << client.status().ToString() << "\n";
    return 2;
  }
  Client& c = **client;

  // Set-up: the accounts table in every resource, filled when empty.
  for (const std::string& r : resources) {
    Status s;
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto tx = c.Begin();
      if (!tx.ok()) {
        s = tx.status();
      } else {
        auto e = tx->Execute(r, {Sql("CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, "
                                     "balance INTEGER NOT NULL)"),
                                 Sql("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                                     "WHERE x < ?) INSERT INTO accounts(id, balance) SELECT x, 1000 "
                                     "FROM n WHERE NOT EXISTS (SELECT 1 FROM accounts)",
                                     {Int(accounts)})});
        s = e.ok() ? tx->Commit() : e.status();
        if (!e.ok()) (void)tx->Rollback();
      }
      if (s.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!s.ok()) {
      std::cerr << "txbench: setting up accounts in " << r << " failed: " << s.ToString() << "\n";
      return 1;
    }
  }

  Stats stats;
  Micros start = SteadyNowMicros();
  Micros end = start + duration;
  std::vector<std::thread> threads;
  for (int w = 0; w < concurrency; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(0x7a11 + w);
      std::vector<Micros> lat;
      while (SteadyNowMicros() < end) {
        size_t ri = rng() % resources.size();
        size_t rj = resources.size() > 1 ? (ri + 1 + rng() % (resources.size() - 1)) % resources.size() : ri;
        int64_t a = 1 + static_cast<int64_t>(rng() % accounts);
        int64_t b = 1 + static_cast<int64_t>(rng() % accounts);
        if (ri == rj && a == b) b = a % accounts + 1;
        int64_t amount = 1 + static_cast<int64_t>(rng() % 100);
        auto debit = SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                               {Int(amount), Int(a), Int(amount)}, 1);
        auto credit = SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                                {Int(amount), Int(b)}, 1);
        Micros t0 = SteadyNowMicros();
        Status s;
        if (mode == "oneshot") {
          std::map<std::string, std::vector<proto::Statement>> work;
          work[resources[ri]].push_back(debit);
          work[resources[rj]].push_back(credit);
          auto r = c.Submit(work);
          s = r.ok() ? Status::Ok() : r.status();
        } else {
          auto tx = c.Begin();
          if (!tx.ok()) {
            s = tx.status();
          } else {
            auto e1 = tx->Execute(resources[ri], debit);
            auto e2 = e1.ok() ? tx->Execute(resources[rj], credit) : Result<proto::ResultSet>(e1.status());
            if (e1.ok() && e2.ok()) {
              s = tx->Commit();
            } else {
              s = e1.ok() ? e2.status() : e1.status();
              (void)tx->Rollback();
            }
          }
        }
        Micros t1 = SteadyNowMicros();
        if (s.ok()) {
          ++stats.committed;
          lat.push_back(t1 - t0);
        } else if (s.code() == Status::kAborted || s.code() == Status::kLockTimeout ||
                   s.code() == Status::kConflict || s.code() == Status::kExpectationFailed) {
          ++stats.aborted;
        } else {
          stats.Error(s);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
      std::lock_guard<std::mutex> l(stats.mu);
      stats.latencies.insert(stats.latencies.end(), lat.begin(), lat.end());
    });
  }
  bool quiet = vm["quiet"].as<bool>() || vm["json"].as<bool>();
  int64_t last = 0;
  while (SteadyNowMicros() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<Micros>(1000, (end - SteadyNowMicros()) / 1000 + 1)));
    if (quiet) continue;
    int64_t now_c = stats.committed.load();
    double t = static_cast<double>(SteadyNowMicros() - start) / kSeconds;
    std::fprintf(stderr, "progress t=%.0fs committed=%ld (+%ld/s) aborted=%ld errors=%ld\n", t,
                 static_cast<long>(now_c), static_cast<long>(now_c - last),
                 static_cast<long>(stats.aborted.load()), static_cast<long>(stats.errors.load()));
    last = now_c;
  }
  for (auto& t : threads) t.join();
  double secs = static_cast<double>(SteadyNowMicros() - start) / kSeconds;
  std::sort(stats.latencies.begin(), stats.latencies.end());
  double p50 = Percentile(stats.latencies, 0.50), p99 = Percentile(stats.latencies, 0.99),
         p999 = Percentile(stats.latencies, 0.999);
  int64_t committed = stats.committed.load(), aborted = stats.aborted.load(), errors = stats.errors.load();
  if (vm["json"].as<bool>()) {
    std::printf("{\"mode\":\"%s\",\"concurrency\":%d,\"seconds\":%.2f,\"committed\":%ld,\"aborted\":%ld,"
                "\"errors\":%ld,\"committed_per_s\":%.1f,\"aborted_per_s\":%.1f,\"p50_ms\":%.3f,"
                "\"p99_ms\":%.3f,\"p999_ms\":%.3f}\n",
                mode.c_str(), concurrency, secs, static_cast<long>(committed), static_cast<long>(aborted),
                static_cast<long>(errors), committed / secs, aborted / secs, p50, p99, p999);
  } else {
    std::printf("transfer mode=%s concurrency=%d duration=%.1fs\n", mode.c_str(), concurrency, secs);
    std::printf("committed=%ld (%.1f/s) aborted=%ld (%.1f/s) errors=%ld\n", static_cast<long>(committed),
                committed / secs, static_cast<long>(aborted), aborted / secs, static_cast<long>(errors));
    std::printf("latency p50=%.2fms p99=%.2fms p999=%.2fms\n", p50, p99, p999);
  }
  if (errors > 0) std::fprintf(stderr, "first error: %s\n", stats.first_error.c_str());
  if (committed == 0) {
    std::fprintf(stderr, "txbench: nothing committed\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string usage =
      "usage: txbench transfer --coordinator LIST --agent NAME=HOST:PORT [--agent ...] "
      "--accounts N --concurrency C --duration 10s [--mode oneshot|interactive]";
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << usage << "\n";
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  if (cmd == "transfer") return Transfer(argc - 1, argv + 1);
  std::cerr << "txbench: unknown command '" << cmd << "'\n" << usage << "\n";
  return 2;
}
