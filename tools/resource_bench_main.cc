// txbench-resource: the SQLite resource alone, in one process (no RPC, no
// coordinator): one-shot branches (ExecuteAndPrepare of one UPDATE, then
// Commit) at a given concurrency against an accounts table, as an agent runs
// them under `txbench transfer --mode oneshot`. Prints committed/s and the
// process's CPU per committed branch (user+sys from getrusage, the driver
// included). A steadier measure of the agent's storage work than a whole
// cluster on a shared machine; not a test. See docs/benchmarks.md.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <utility>

#include <boost/program_options.hpp>
#include <string>

#include "common/cli.h"
#include "common/log.h"
#include "participant/sqlite_resource.h"
#include "wal/sqlite.h"

namespace txc {
namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

proto::Statement Add(int64_t id, int64_t delta) {
  proto::Statement s;
  s.sql = "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2";
  s.params.resize(2);
  s.params[0].__set_i(delta);
  s.params[1].__set_i(id);
  s.__set_expect_rows(1);
  return s;
}

struct Run {
  participant::SqliteResource* rm = nullptr;
  participant::PrepareInfo info;
  int64_t accounts = 0;
  int64_t total = 0;  // branches to start
  std::mutex mu;
  std::condition_variable done_cv;
  std::mt19937_64 rng{42};
  int64_t started = 0, finished = 0, committed = 0, aborted = 0, failed = 0;

  // Starts the next branch, if any is left (any thread).
  void Next() {
    int64_t seq, id;
    {
      std::lock_guard<std::mutex> l(mu);
      if (started == total) return;
      seq = ++started;
      id = static_cast<int64_t>(rng() % static_cast<uint64_t>(accounts)) + 1;
    }
    TxId txid = MakeTxId(1, seq);
    rm->ExecuteAndPrepare(txid, {Add(id, seq % 2 == 0 ? 1 : -1)}, info,
                          [this, txid](participant::ExecuteResult r) {
                            if (!r.status.ok()) {
                              rm->Rollback(txid, [this](Status) { End(false); });
                              return;
                            }
                            rm->Commit(txid, [this](Status s) { End(s.ok()); });
                          });
  }

  void End(bool ok) {
    {
      std::lock_guard<std::mutex> l(mu);
      ++finished;
      (ok ? committed : aborted)++;
      if (finished == total) done_cv.notify_all();
    }
    Next();
  }
};

int Main(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description desc("txbench-resource options");
  desc.add_options()
      ("dir", po::value<std::string>(), "where to make the database (DIR/bench.db, replaced)")
      ("accounts", po::value<int64_t>()->default_value(10000), "accounts in the table")
      ("concurrency", po::value<int64_t>()->default_value(64), "branches in flight")
      ("txns", po::value<int64_t>()->default_value(200000), "branches to run")
      ("unsafe-no-sync", po::bool_switch(), "no fsync (to tell the sync's cost apart)");
  po::variables_map vm;
  const std::string usage =
      "usage: txbench-resource --dir DIR [--accounts 10000] [--concurrency 64] [--txns 200000] "
      "[--unsafe-no-sync]";
  cli::Parse(argc, argv, usage, desc, vm);
  auto bad = [&](const std::string& why) {
    std::fprintf(stderr, "txbench-resource: %s\n%s\n", why.c_str(), usage.c_str());
    return 2;
  };
  if (!vm.count("dir")) return bad("--dir DIR is required (a new database is made there)");
  const std::string dir = vm["dir"].as<std::string>();
  const int64_t accounts = vm["accounts"].as<int64_t>();
  const int64_t concurrency = vm["concurrency"].as<int64_t>();
  const int64_t txns = vm["txns"].as<int64_t>();
  const bool no_sync = vm["unsafe-no-sync"].as<bool>();
  for (auto [name, v] : {std::pair{"--accounts", accounts}, std::pair{"--concurrency", concurrency},
                         std::pair{"--txns", txns}}) {
    if (v <= 0) return bad(std::string(name) + " wants a positive integer, not " + std::to_string(v));
  }
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/bench.db";
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  {
    auto db = wal::Db::Open(path);
    if (!db.ok()) {
      std::fprintf(stderr, "txbench-resource: %s\n", db.status().ToString().c_str());
      return 1;
    }
    Status s = (*db)->Exec(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
        std::to_string(accounts) + ") INSERT INTO accounts SELECT i, 1000000 FROM n;");
    if (!s.ok()) {
      std::fprintf(stderr, "txbench-resource: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  participant::SqliteResourceOptions options;
  options.unsafe_no_sync = no_sync;
  auto rm = participant::SqliteResource::Open("bank", path, options);
  if (!rm.ok()) {
    std::fprintf(stderr, "txbench-resource: %s\n", rm.status().ToString().c_str());
    return 1;
  }
  if (auto rec = (*rm)->Recover(); !rec.ok()) {
    std::fprintf(stderr, "txbench-resource: %s\n", rec.status().ToString().c_str());
    return 1;
  }
  Run run;
  run.rm = rm->get();
  run.accounts = accounts;
  run.total = txns;
  for (const char* name : {"bank", "bank_b"}) {
    proto::Participant p;
    p.resource = name;
    p.address = "127.0.0.1:1";
    run.info.participants.push_back(p);
  }
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < std::min(concurrency, txns); ++i) run.Next();
  {
    std::unique_lock<std::mutex> l(run.mu);
    run.done_cv.wait(l, [&] { return run.finished == run.total; });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  const int64_t n = std::max<int64_t>(run.committed, 1);
  std::printf("txbench-resource: %lld committed, %lld aborted in %.2f s: %.0f/s, %.1f us CPU per "
              "committed branch, %llu groups, %llu syncs%s\n",
              static_cast<long long>(run.committed), static_cast<long long>(run.aborted), secs,
              run.committed / secs, cpu * 1e6 / n,
              static_cast<unsigned long long>((*rm)->groups_committed()),
              static_cast<unsigned long long>((*rm)->syncs()), no_sync ? " (no fsync)" : "");
  rm->reset();
  return 0;
}

}  // namespace
}  // namespace txc

int main(int argc, char** argv) { return txc::Main(argc, argv); }
