// txsim: the deterministic whole-system simulator. Runs seeds of the
// coordinator, agents, resources and clients in the simulated shell with
// faults, checks the invariants, and prints
//   SIM seeds=N txns=N committed=N aborted=N violations=N
//   FAULTS crash=N power=N partition=N ... (what the seeds injected)
// See docs/testing.md.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/cli.h"
#include "sim/simulation.h"

namespace po = boost::program_options;

namespace {

bool ParseRange(const std::string& s, uint64_t* lo, uint64_t* hi) {
  auto dots = s.find("..");
  try {
    if (dots == std::string::npos) {
      *lo = *hi = std::stoull(s);
    } else {
      *lo = std::stoull(s.substr(0, dots));
      *hi = std::stoull(s.substr(dots + 2));
    }
  } catch (const std::exception&) {
    return false;
  }
  return *lo <= *hi;
}

struct SeedRun {
  txc::sim::SimResult result;
  std::string output;  // trace and violation reports of this seed
  bool ready = false;
};

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("txsim options");
  desc.add_options()
      ("seeds", po::value<std::string>(), "seeds to run, A..B (inclusive) or one number")
      ("seed", po::value<uint64_t>(), "run this one seed")
      ("faults", po::value<std::string>()->default_value("heavy"), "none, light or heavy")
      ("protocol", po::value<std::string>()->default_value("2pc"), "commit protocol the clients ask for: 2pc or 3pc")
      ("txns-per-seed", po::value<int>()->default_value(120), "transactions the clients attempt per seed")
      ("workload", po::value<std::string>()->default_value("transfers"),
       "transfers, or split-execute (a branch gets two Execute calls; see docs/testing.md)")
      ("replicas", po::value<int>()->default_value(1),
       "coordinator replicas: 1 (single coordinator, local log) or 3 / 5 (the Multi-Paxos group)")
      ("trace", po::bool_switch(), "print every event of every seed")
      ("inject-bug", po::value<std::string>(), "switch on a deliberate bug (see --list-bugs)")
      ("scenario", po::value<std::string>(),
       "a scripted run instead of random faults: 3pc-partition, abort-after-prepared (seed 1 "
       "unless --seed/--seeds)")
      ("confirm-decisions", po::bool_switch(),
       "agents confirm each decision for a branch in doubt with the group before applying it, as "
       "a txagent without TLS does; decisions signed under a key the agent registered with its "
       "outcome queries are applied without asking, as a txagent does")
      ("forge-decisions", po::bool_switch(),
       "a forger sends agents COMMIT or ABORT for their branches in doubt, with MACs of its own "
       "(implies --confirm-decisions)")
      ("unsigned-decisions", po::bool_switch(),
       "with --confirm-decisions: agents register no key, so every decision is confirmed "
       "(txagent --sign-decisions off)")
      ("autonomous-termination", po::bool_switch(),
       "agents run 3PC's autonomous termination (Skeen's rule after 2 s without the group)")
      ("measure", po::bool_switch(),
       "print what one committed transaction costs (messages, syncs, message delays) and how long "
       "participants stay in doubt when the leader crashes, for --protocol, --participants and "
       "--replicas (docs/protocols-measured.md)")
      ("participants", po::value<int>()->default_value(2), "--measure: participants (agents) per transaction")
      ("one-way-us", po::value<int64_t>()->default_value(1000), "--measure: the network's one-way delay, microseconds")
      ("no-blocking", po::bool_switch(), "--measure: skip the leader-crash runs")
      ("list-bugs", po::bool_switch(), "print the names of the injectable bugs, one per line")
      ("keep-going", po::bool_switch(), "run every seed even after one found a violation")
      ("jobs", po::value<int>()->default_value(1),
       "worker threads (the output is the same for any value); seeds run one at a time since the agents run SQLite, whose random number generator is process-wide (sim/cluster.cc)")
      ("verbose", po::bool_switch(), "print one line per seed")
      ("stats", po::bool_switch(), "print wall time and simulated transactions per second (not deterministic)");
  po::variables_map vm;
  txc::cli::Parse(argc, argv,
                  "usage: txsim --seeds A..B --faults none|light|heavy [--inject-bug NAME] "
                  "[--trace] | --seed N ... | --list-bugs | --measure --protocol P --participants N "
                  "--replicas R",
                  desc, vm);

  if (vm["list-bugs"].as<bool>()) {
    for (const auto& b : txc::sim::Bugs()) std::cout << b.name << "\n";
    return 0;
  }
  if (vm["measure"].as<bool>()) {
    txc::sim::MeasureOptions m;
    m.protocol = vm["protocol"].as<std::string>();
    m.participants = vm["participants"].as<int>();
    m.replicas = vm["replicas"].as<int>();
    m.one_way_micros = vm["one-way-us"].as<int64_t>();
    m.blocking = !vm["no-blocking"].as<bool>();
    m.confirm_decisions = vm["confirm-decisions"].as<bool>();
    m.sign_decisions = !vm["unsigned-decisions"].as<bool>();
    if (vm.count("seed")) m.seed = vm["seed"].as<uint64_t>();
    if (!vm["txns-per-seed"].defaulted()) m.txns = vm["txns-per-seed"].as<int>();
    if ((m.protocol != "2pc" && m.protocol != "3pc") || m.participants < 1 || m.participants > 26 ||
        (m.replicas != 1 && m.replicas != 3 && m.replicas != 5) || m.one_way_micros < 1 || m.txns < 1) {
      std::cerr << "txsim --measure wants --protocol 2pc|3pc, --participants 1..26, --replicas 1|3|5, "
                   "--one-way-us >= 1 and --txns-per-seed >= 1\n";
      return 2;
    }
    if (vm["trace"].as<bool>()) m.trace = &std::cout;
    txc::sim::MeasureResult r = txc::sim::Measure(m);
    std::cout << txc::sim::MeasureReport(m, r);
    return r.violations > 0 ? 1 : 0;
  }
  std::string scenario = vm.count("scenario") ? vm["scenario"].as<std::string>() : "";
  if (!scenario.empty() && scenario != "3pc-partition" && scenario != "abort-after-prepared") {
    std::cerr << "txsim: unknown --scenario '" << scenario
              << "' (known: 3pc-partition, abort-after-prepared)\n";
    return 2;
  }
  const bool autonomous = vm["autonomous-termination"].as<bool>();
  const bool confirm = vm["confirm-decisions"].as<bool>();
  const bool sign = !vm["unsigned-decisions"].as<bool>();
  const bool forge = vm["forge-decisions"].as<bool>();
  uint64_t lo = 1, hi = 1;
  if (vm.count("seed")) {
    lo = hi = vm["seed"].as<uint64_t>();
  } else if (vm.count("seeds")) {
    if (!ParseRange(vm["seeds"].as<std::string>(), &lo, &hi)) {
      std::cerr << "txsim: --seeds wants A..B with A <= B, e.g. 1..300\n";
      return 2;
    }
  } else if (scenario.empty()) {
    std::cerr << "txsim: give --seeds A..B or --seed N (--help lists the options)\n";
    return 2;
  }
  auto faults = txc::sim::ParseFaultLevel(vm["faults"].as<std::string>());
  if (!faults) {
    std::cerr << "txsim: --faults must be none, light or heavy\n";
    return 2;
  }
  std::string protocol = vm["protocol"].as<std::string>();
  if (protocol != "2pc" && protocol != "3pc") {
    std::cerr << "txsim: --protocol must be 2pc or 3pc\n";
    return 2;
  }
  std::string bug = vm.count("inject-bug") ? vm["inject-bug"].as<std::string>() : "";
  if (!bug.empty() && !txc::sim::KnownBug(bug)) {
    std::cerr << "txsim: unknown bug '" << bug << "'; --list-bugs names them\n";
    return 2;
  }
  std::string workload = vm["workload"].as<std::string>();
  if (workload != "transfers" && workload != "split-execute") {
    std::cerr << "txsim: --workload must be transfers or split-execute\n";
    return 2;
  }
  int txns = vm["txns-per-seed"].as<int>();
  if (txns < 1) {
    std::cerr << "txsim: --txns-per-seed must be at least 1\n";
    return 2;
  }
  int replicas = vm["replicas"].as<int>();
  if (replicas != 1 && replicas != 3 && replicas != 5) {
    std::cerr << "txsim: --replicas must be 1, 3 or 5\n";
    return 2;
  }
  bool trace = vm["trace"].as<bool>();
  bool keep_going = vm["keep-going"].as<bool>();
  bool verbose = vm["verbose"].as<bool>();
  int jobs = vm["jobs"].as<int>();
  if (jobs <= 0) jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const uint64_t n = hi - lo + 1;
  jobs = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(jobs), n));
  std::vector<SeedRun> runs(n);
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  auto worker = [&] {
    for (;;) {
      uint64_t i = next.fetch_add(1);
      if (i >= n || stop.load()) return;
      std::ostringstream out;
      txc::sim::SimOptions o;
      o.seed = lo + i;
      o.faults = *faults;
      o.txns = txns;
      o.bug = bug;
      o.protocol = protocol;
      o.scenario = scenario;
      o.autonomous_termination = autonomous;
      o.confirm_decisions = confirm;
      o.sign_decisions = sign;
      o.forge_decisions = forge;
      o.workload = workload;
      o.replicas = replicas;
      o.trace = trace ? &out : nullptr;
      o.report = &out;
      txc::sim::SimResult r = txc::sim::RunSeed(o);
      std::lock_guard<std::mutex> l(mu);
      runs[i].result = r;
      runs[i].output = out.str();
      runs[i].ready = true;
      cv.notify_all();
    }
  };

  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);

  uint64_t seeds = 0, total_txns = 0, committed = 0, aborted = 0, violations = 0, failing = 0;
  txc::sim::FaultCounts faults_seen;
  for (uint64_t i = 0; i < n; ++i) {
    SeedRun run;
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return runs[i].ready; });
      run = std::move(runs[i]);
    }
    const auto& r = run.result;
    std::cout << run.output;
    ++seeds;
    total_txns += r.txns;
    committed += r.committed;
    aborted += r.aborted;
    violations += r.violations;
    faults_seen += r.faults;
    if (verbose) {
      std::printf("seed %llu: txns=%d committed=%d aborted=%d unknown=%d crashes=%d events=%llu "
                  "sim_time=%.3fs violations=%d\n",
                  static_cast<unsigned long long>(r.seed), r.txns, r.committed, r.aborted, r.unknown,
                  r.crashes, static_cast<unsigned long long>(r.events), r.sim_micros / 1e6,
                  r.violations);
      std::fflush(stdout);
    }
    if (r.violations > 0) {
      ++failing;
      if (!keep_going) {
        std::cout << "txsim: seed " << r.seed
                  << " found a violation; stopping (--keep-going runs every seed)\n";
        stop.store(true);
        break;
      }
    }
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (vm["stats"].as<bool>()) {
    std::printf("txsim: %llu seeds, %llu txns in %.2f s wall (%.0f simulated txns/s, %d jobs)\n",
                static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(total_txns),
                secs, secs > 0 ? total_txns / secs : 0.0, jobs);
    std::printf("txsim: of disk_error=%llu disk_full=%llu, on agents' disks: disk_error=%llu "
                "disk_full=%llu\n",
                static_cast<unsigned long long>(faults_seen.disk_error),
                static_cast<unsigned long long>(faults_seen.disk_full),
                static_cast<unsigned long long>(faults_seen.agent_disk_error),
                static_cast<unsigned long long>(faults_seen.agent_disk_full));
  }
  if (failing > 0 && keep_going) {
    std::printf("txsim: %llu of %llu seeds found a violation\n",
                static_cast<unsigned long long>(failing), static_cast<unsigned long long>(seeds));
  }
  std::printf("SIM seeds=%llu txns=%llu committed=%llu aborted=%llu violations=%llu\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(total_txns),
              static_cast<unsigned long long>(committed), static_cast<unsigned long long>(aborted),
              static_cast<unsigned long long>(violations));
  // Summed over the seeds above, in seed order: the same for any --jobs.
  std::printf("%s\n", faults_seen.Line().c_str());
  if (scenario == "3pc-partition") {
    if (faults_seen.partition == 0) {
      std::printf("txsim: scenario 3pc-partition never partitioned anyone (no PRE_COMMIT went to "
                  "an agent while another agent took part): it showed nothing\n");
      return 1;
    }
    if (violations > 0) {
      std::printf("txsim: scenario 3pc-partition%s broke atomicity: the partitioned participant "
                  "terminated on its own while the group and the other participants committed "
                  "(textbook 3PC's partition hazard; see docs/protocols.md)\n",
                  autonomous ? " with autonomous termination" : "");
    } else {
      std::printf("txsim: scenario 3pc-partition%s kept atomicity: the partitioned participant "
                  "%s\n",
                  autonomous ? " with autonomous termination" : "",
                  autonomous ? "decided the same way as the group"
                             : "waited for the group and learnt its decision after the heal");
    }
  }
  if (scenario == "abort-after-prepared" && faults_seen.disk_stall == 0) {
    std::printf("txsim: scenario abort-after-prepared never fired (no PREPARE went to an agent "
                "holding two branches of its transaction): it showed nothing\n");
    return 1;
  }
  return violations > 0 ? 1 : 0;
}
