// txbench: load generator. `txbench transfer` moves money between accounts
// held in different resources, through real agents and coordinators.
// `txbench log` measures the replicated decision log alone (LogBench.Append:
// every txcoord replica must be started with --serve-log-bench),
// or etcd's v3 JSON gateway (/v3/kv/put) for comparison, with C requests in
// flight on one io thread. `txbench probe` issues Appends back to back and
// reports every gap between two successes (failover measurement).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/program_options.hpp>

#include "client/async_client.h"
#include "client/client.h"
#include "common/cli.h"
#include "common/log.h"
#include "common/proc_stats.h"
#include "paxos_types.h"
#include "protocol/coordinator_set.h"
#include "protocol/rpc.h"
#include "protocol/tls_flags.h"
#include "tools/abort_reason.h"
#include "tools/txbench_xa.h"

namespace po = boost::program_options;
using namespace txc;

namespace {

Micros ParseDuration(const std::string& s) {
  std::optional<Micros> d = cli::ParseDuration(s);
  if (!d) throw po::error("bad duration '" + s + "' (use e.g. 10s, 500ms, 2m)");
  return *d;
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
  std::map<std::string, int64_t> aborted_by;
  std::map<std::string, std::string> first_abort;  // by reason
  std::string first_error;
  void Error(const Status& s) {
    ++errors;
    std::lock_guard<std::mutex> l(mu);
    if (first_error.empty()) first_error = s.ToString();
  }
  void Aborted(const Status& s) {
    ++aborted;
    std::lock_guard<std::mutex> l(mu);
    std::string why = bench::AbortReason(s);
    if (++aborted_by[why] == 1) first_abort[why] = s.ToString();
  }
};

// One transfer's choice, the same for every driver: two resources (distinct
// when there are several), two accounts, an amount.
struct Pick {
  size_t ri = 0, rj = 0;
  int64_t a = 0, b = 0, amount = 0;
};

Pick PickTransfer(std::mt19937_64& rng, size_t resources, int64_t accounts) {
  Pick p;
  p.ri = rng() % resources;
  p.rj = resources > 1 ? (p.ri + 1 + rng() % (resources - 1)) % resources : p.ri;
  p.a = 1 + static_cast<int64_t>(rng() % accounts);
  p.b = 1 + static_cast<int64_t>(rng() % accounts);
  if (p.ri == p.rj && p.a == p.b) p.b = p.a % accounts + 1;
  p.amount = 1 + static_cast<int64_t>(rng() % 100);
  return p;
}

proto::Statement Debit(const Pick& p) {
  return SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                   {Int(p.amount), Int(p.a), Int(p.amount)}, 1);
}

proto::Statement Credit(const Pick& p) {
  return SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?", {Int(p.amount), Int(p.b)}, 1);
}

// A transfer's answer, counted: committed (with its latency), aborted, or an
// error. True for an error (the caller pauses before the next transfer).
bool Count(Stats& stats, const Status& s, Micros latency, std::vector<Micros>* latencies) {
  if (s.ok()) {
    ++stats.committed;
    latencies->push_back(latency);
    return false;
  }
  if (s.code() == Status::kAborted || s.code() == Status::kLockTimeout || s.code() == Status::kConflict ||
      s.code() == Status::kExpectationFailed) {
    stats.Aborted(s);
    return false;
  }
  stats.Error(s);
  return true;
}

// --client async: every transfer of the load in flight on the calling
// thread, through one AsyncClient. `concurrency` slots, each starting its
// next transfer when the previous one answered, until the deadline.
struct AsyncLoad {
  AsyncClient* client = nullptr;
  std::vector<std::string> resources;
  int64_t accounts = 0;
  bool interactive = false;
  TxnOptions txn;
  Micros end = 0;
  Stats* stats = nullptr;
  int active = 0;  // slots still issuing
};

struct AsyncSlot : std::enable_shared_from_this<AsyncSlot> {
  AsyncSlot(boost::asio::io_context& io, AsyncLoad* load, uint64_t seed) : load(load), rng(seed), pause(io) {}
  AsyncLoad* load;
  std::mt19937_64 rng;
  boost::asio::steady_timer pause;
  Micros t0 = 0;

  void Next() {
    if (SteadyNowMicros() >= load->end) {
      --load->active;
      return;
    }
    Pick p = PickTransfer(rng, load->resources.size(), load->accounts);
    t0 = SteadyNowMicros();
    auto self = shared_from_this();
    AsyncClient& c = *load->client;
    const std::string& from = load->resources[p.ri];
    const std::string& to = load->resources[p.rj];
    if (!load->interactive) {
      AsyncClient::Work work;
      work[from].push_back(Debit(p));
      work[to].push_back(Credit(p));
      c.async_submit(std::move(work), load->txn,
                     [self](Result<TxId> r) { self->Done(r.ok() ? Status::Ok() : r.status()); });
      return;
    }
    c.async_begin(load->txn, [self, p, &c, from, to](Result<AsyncTransaction> tx) {
      if (!tx.ok()) return self->Done(tx.status());
      c.async_execute(*tx, from, {Debit(p)}, [self, p, &c, to, tx = *tx](Result<std::vector<proto::ResultSet>> e1) {
        if (!e1.ok()) return self->Abandon(tx, e1.status());
        c.async_execute(tx, to, {Credit(p)}, [self, &c, tx](Result<std::vector<proto::ResultSet>> e2) {
          if (!e2.ok()) return self->Abandon(tx, e2.status());
          c.async_commit(tx, [self](Status s) { self->Done(s); });
        });
      });
    });
  }

  // As the blocking driver: roll back, then count the execute's failure.
  void Abandon(const AsyncTransaction& tx, Status why) {
    auto self = shared_from_this();
    load->client->async_rollback(tx, [self, why](Status) { self->Done(why); });
  }

  void Done(const Status& s) {
    if (!Count(*load->stats, s, SteadyNowMicros() - t0, &load->stats->latencies)) return Next();
    auto self = shared_from_this();
    pause.expires_after(std::chrono::milliseconds(20));
    pause.async_wait([self](const boost::system::error_code&) { self->Next(); });
  }
};

// The TLS configuration from --tls-* (the loopback rule without them:
// protocol/tls_flags.h); nullopt after printing why, for an exit 2.
std::optional<TlsConfig> TlsOrComplain(const po::variables_map& vm,
                                       const std::vector<std::string>& addresses) {
  auto tls = rpc::TlsFromOptions(vm, "txbench", addresses);
  if (!tls.ok()) {
    std::cerr << "txbench: " << tls.status().message() << "\n";
    return std::nullopt;
  }
  return *tls;
}

int Transfer(int argc, char** argv) {
  po::options_description desc("txbench transfer options");
  desc.add_options()
      ("coordinator", po::value<std::string>(), "HOST:PORT[,HOST:PORT...] of the coordinator group")
      ("agent", po::value<std::vector<std::string>>(), "NAME=HOST:PORT of a resource's agent (repeatable)")
      ("direct", po::bool_switch(),
       "no coordinator: drive the databases' prepared transactions directly (each worker a 2PC "
       "client with its own session per --db); excludes --coordinator and --agent")
      ("db", po::value<std::vector<std::string>>(),
       "--direct: NAME=postgres:CONNINFO or NAME=mariadb:CONNINFO (repeatable, at least two); "
       "the password is TXC_PASSWORD_<NAME> in the environment")
      ("no-setup", po::bool_switch(),
       "do not create or fill the accounts table through the coordinator: every resource already "
       "holds accounts(id, balance) with ids 1..--accounts (txbench setup-db)")
      ("accounts", po::value<int64_t>()->default_value(100), "accounts per resource")
      ("concurrency", po::value<int>()->default_value(8), "transactions in flight")
      ("duration", po::value<std::string>()->default_value("10s"), "how long to run (10s, 500ms, 2m)")
      ("mode", po::value<std::string>()->default_value("oneshot"), "oneshot or interactive")
      ("client", po::value<std::string>()->default_value("async"),
       "async: every transfer in flight on one thread (AsyncClient; --concurrency up to 10000 and "
       "more); blocking: a thread per transfer in flight (Client). docs/sdk.md has both measured")
      ("protocol", po::value<std::string>()->default_value("2pc"),
       "commit protocol of every transfer (and of the set-up): 2pc or 3pc")
      ("json", po::bool_switch(), "print the summary as one JSON line")
      ("server-pids", po::value<std::string>(),
       "PID[,PID...] of the server processes (replicas, agents): print their CPU per committed "
       "transaction (user+sys from /proc, over the load only) and their RSS")
      ("connect-timeout", po::value<std::string>()->default_value("10s"),
       "how long the set-up waits for the coordinator group and the agents before giving up "
       "(UNAVAILABLE naming every address tried)")
      ("quiet", po::bool_switch(), "no progress lines");
  rpc::AddTlsOptions(desc);
  po::variables_map vm;
  cli::Parse(argc, argv,
             "usage: txbench transfer --coordinator LIST --agent NAME=HOST:PORT [--agent ...] "
             "--accounts N --concurrency C --duration 10s [--mode oneshot|interactive] "
             "[--protocol 2pc|3pc] [--client async|blocking] [--no-setup]\n"
             "       txbench transfer --direct --db NAME=KIND:CONNINFO --db ... --accounts N "
             "--concurrency C --duration 10s",
             desc, vm);
  SetLogLevel(vm["log-level"].as<std::string>());
  std::string mode = vm["mode"].as<std::string>();
  if (mode != "oneshot" && mode != "interactive") {
    std::cerr << "txbench: --mode must be oneshot or interactive\n";
    return 2;
  }
  auto parsed_protocol = ParseProtocol(vm["protocol"].as<std::string>());
  if (!parsed_protocol.ok()) {
    std::cerr << "txbench: --protocol: " << parsed_protocol.status().message() << "\n";
    return 2;
  }
  const TxnOptions txn{.protocol = *parsed_protocol};
  const char* protocol = ProtocolFlag(txn.protocol);
  const bool direct = vm["direct"].as<bool>();
  const std::string client_kind = vm["client"].as<std::string>();
  if (client_kind != "async" && client_kind != "blocking") {
    std::cerr << "txbench: --client must be async or blocking\n";
    return 2;
  }
  if (direct && !vm["client"].defaulted()) {
    std::cerr << "txbench: --client goes with --coordinator (--direct drives the databases itself)\n";
    return 2;
  }
  const bool async = !direct && client_kind == "async";
  if (direct) {
    if (vm.count("coordinator") || vm.count("agent")) {
      std::cerr << "txbench: --direct excludes --coordinator and --agent\n";
      return 2;
    }
    if (vm.count("db") == 0 || vm["db"].as<std::vector<std::string>>().size() < 2) {
      std::cerr << "txbench: --direct needs at least two --db NAME=KIND:CONNINFO\n";
      return 2;
    }
    if (mode != "oneshot" || txn.protocol != proto::Protocol::TWO_PC) {
      std::cerr << "txbench: --direct runs two-phase commit transfers only (no --mode interactive, "
                   "no --protocol 3pc)\n";
      return 2;
    }
    mode = "direct";
  } else {
    if (vm.count("db")) {
      std::cerr << "txbench: --db goes with --direct (through txcoord, name the agents with --agent)\n";
      return 2;
    }
    if (!vm.count("coordinator") || !vm.count("agent")) {
      std::cerr << "txbench: give --coordinator and --agent (or --direct with --db)\n";
      return 2;
    }
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
  std::optional<ProcStatsWindow> servers;
  if (vm.count("server-pids")) {
    auto pids = ParsePidList(vm["server-pids"].as<std::string>());
    if (!pids.ok()) {
      std::cerr << "txbench: --server-pids: " << pids.status().message() << "\n";
      return 2;
    }
    servers.emplace(*pids);
  }

  // What one transfer does, per worker w: through txcoord, or directly.
  using TransferFn = std::function<Status(int w, size_t ri, int64_t a, size_t rj, int64_t b, int64_t amount)>;
  TransferFn transfer;
  std::vector<std::string> resources;
  std::unique_ptr<Client> client;
  // --direct: the drivers, each worker's sessions, one session per database
  // for the money check.
  std::vector<std::unique_ptr<bench::xa::Driver>> drivers;
  std::vector<std::unique_ptr<bench::xa::Session>> checkers;
  std::vector<std::unique_ptr<bench::DirectWorker>> workers;
  bench::TxIdSource ids;
  int64_t money_before = 0;
  auto money_total = [&]() -> Result<int64_t> {
    int64_t total = 0;
    for (size_t i = 0; i < checkers.size(); ++i) {
      auto m = bench::ReadMoney(*checkers[i], bench::xa::MakeGid(ids.Next(), resources[i]));
      if (!m.ok()) return Status(m.status().code(), resources[i] + ": " + m.status().message());
      if (m->rows != accounts) {
        return Status::InvalidArgument(resources[i] + " holds " + std::to_string(m->rows) + " accounts, not --accounts " +
                                       std::to_string(accounts) + " (txbench setup-db)");
      }
      total += m->total;
    }
    return total;
  };

  if (direct) {
    std::vector<bench::xa::Driver*> raw;
    for (const std::string& spec : vm["db"].as<std::vector<std::string>>()) {
      auto db = bench::ParseDbSpec(spec);
      if (!db.ok()) {
        std::cerr << "txbench: " << db.status().message() << "\n";
        return 2;
      }
      if (std::find(resources.begin(), resources.end(), db->name) != resources.end()) {
        std::cerr << "txbench: --db " << db->name << " given twice\n";
        return 2;
      }
      auto d = bench::MakeDriver(*db);
      if (!d.ok()) {
        std::cerr << "txbench: --db " << db->name << ": " << d.status().ToString() << "\n";
        return 2;
      }
      auto session = (*d)->Connect();
      Status checked = session.ok() ? (*d)->CheckServer(**session) : session.status();
      if (!checked.ok()) {
        std::cerr << "txbench: --db " << db->name << ": " << checked.ToString() << "\n";
        return 1;
      }
      resources.push_back(db->name);
      raw.push_back(d->get());
      drivers.push_back(std::move(*d));
      checkers.push_back(std::move(*session));
    }
    auto before = money_total();
    if (!before.ok()) {
      std::cerr << "txbench: reading the money before the load: " << before.status().ToString() << "\n";
      return 1;
    }
    money_before = *before;
    for (int w = 0; w < concurrency; ++w) {
      workers.push_back(std::make_unique<bench::DirectWorker>(raw, resources, &ids));
      if (Status s = workers.back()->Connect(); !s.ok()) {
        std::cerr << "txbench: worker " << w << " cannot connect: " << s.ToString() << "\n";
        return 1;
      }
    }
    transfer = [&](int w, size_t ri, int64_t a, size_t rj, int64_t b, int64_t amount) {
      return workers[static_cast<size_t>(w)]->Transfer(ri, a, rj, b, amount);
    };
  } else {
    ClientOptions co;
    co.coordinators = rpc::SplitList(vm["coordinator"].as<std::string>());
    for (const std::string& a : vm["agent"].as<std::vector<std::string>>()) {
      auto eq = a.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "txbench: --agent wants NAME=HOST:PORT, got '" << a << "'\n";
        return 2;
      }
      resources.push_back(a.substr(0, eq));
      co.agents[a.substr(0, eq)] = a.substr(eq + 1);
    }
    {
      std::vector<std::string> addresses = co.coordinators;
      for (const auto& [name, address] : co.agents) addresses.push_back(address);
      auto tls = TlsOrComplain(vm, addresses);
      if (!tls) return 2;
      co.tls = *tls;
    }
    Micros connect_timeout = 0;
    try {
      connect_timeout = ParseDuration(vm["connect-timeout"].as<std::string>());
    } catch (const po::error& e) {
      std::cerr << "txbench: --connect-timeout: " << e.what() << "\n";
      return 2;
    }
    co.connect_timeout = connect_timeout;
    if (!vm["quiet"].as<bool>() && !vm["json"].as<bool>()) {
      std::cerr << "txbench: waiting for the coordinator group " << vm["coordinator"].as<std::string>()
                << " to answer (up to --connect-timeout " << vm["connect-timeout"].as<std::string>()
                << ")\n";
    }
    auto connected = Client::Connect(co);
    // The set-up's own client: each of its calls gives up within
    // --connect-timeout, so an unreachable group or agent is reported in
    // seconds, not after the load's longer commit timeout.
    ClientOptions setup_options = co;
    setup_options.commit_timeout = std::min(co.commit_timeout, connect_timeout);
    setup_options.call_timeout = std::min(co.call_timeout, connect_timeout);
    setup_options.connect_timeout = 0;  // checked just above
    Result<std::unique_ptr<Client>> setup_client =
        connected.ok() ? Client::Connect(setup_options) : Result<std::unique_ptr<Client>>(connected.status());
    if (!connected.ok() || !setup_client.ok()) {
      Status s = (connected.ok() ? setup_client : connected).status();
      std::cerr << "txbench: " << s.ToString() << "\n";
      return s.code() == Status::kInvalidArgument ? 2 : 1;
    }
    client = std::move(*connected);
    Client& c = **setup_client;

    // Set-up: the accounts table in every resource, filled when empty.
    const auto setup_deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(connect_timeout);
    for (const std::string& r : resources) {
      if (vm["no-setup"].as<bool>()) break;
      if (!vm["quiet"].as<bool>() && !vm["json"].as<bool>()) {
        std::cerr << "txbench: setting up accounts in " << r << " (coordinator group "
                  << vm["coordinator"].as<std::string>() << ", agent " << co.agents[r] << ")\n";
      }
      Status s;
      for (int attempt = 1;; ++attempt) {
        auto tx = c.Begin(txn);
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
        // A refusal (e.g. a protocol this coordinator does not run) will not pass on a retry.
        if (s.ok() || s.code() == Status::kInvalidArgument) break;
        if (std::chrono::steady_clock::now() >= setup_deadline) break;
        std::cerr << "txbench: still waiting to set up " << r << " (attempt " << attempt
                  << "): " << s.ToString() << "\n";
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      if (!s.ok()) {
        std::cerr << "txbench: setting up accounts in " << r << " failed (--connect-timeout "
                  << vm["connect-timeout"].as<std::string>() << "): " << s.ToString() << "\n";
        return 1;
      }
    }
    transfer = [&, txn](int, size_t ri, int64_t a, size_t rj, int64_t b, int64_t amount) -> Status {
      Pick p{.ri = ri, .rj = rj, .a = a, .b = b, .amount = amount};
      auto debit = Debit(p);
      auto credit = Credit(p);
      if (mode == "oneshot") {
        std::map<std::string, std::vector<proto::Statement>> work;
        work[resources[ri]].push_back(debit);
        work[resources[rj]].push_back(credit);
        auto r = client->Submit(work, txn);
        return r.ok() ? Status::Ok() : r.status();
      }
      auto tx = client->Begin(txn);
      if (!tx.ok()) return tx.status();
      auto e1 = tx->Execute(resources[ri], debit);
      auto e2 = e1.ok() ? tx->Execute(resources[rj], credit) : Result<proto::ResultSet>(e1.status());
      if (e1.ok() && e2.ok()) return tx->Commit();
      (void)tx->Rollback();
      return e1.ok() ? e2.status() : e1.status();
    };
  }

  if (servers) {
    if (Status s = servers->Start(); !s.ok()) {
      std::cerr << "txbench: --server-pids: " << s.message() << "\n";
      return 2;
    }
  }
  Stats stats;
  Micros start = SteadyNowMicros();
  Micros end = start + duration;
  bool quiet = vm["quiet"].as<bool>() || vm["json"].as<bool>();
  int64_t last = 0;
  auto progress = [&] {
    if (quiet) return;
    int64_t now_c = stats.committed.load();
    double t = static_cast<double>(SteadyNowMicros() - start) / kSeconds;
    std::fprintf(stderr, "progress t=%.0fs committed=%ld (+%ld/s) aborted=%ld errors=%ld\n", t,
                 static_cast<long>(now_c), static_cast<long>(now_c - last),
                 static_cast<long>(stats.aborted.load()), static_cast<long>(stats.errors.load()));
    last = now_c;
  };
  if (async) {
    // Every transfer on this thread. The blocking client above did the set-up.
    boost::asio::io_context io;
    auto async_client = AsyncClient::Connect(io, client->options());
    if (!async_client.ok()) {
      std::cerr << "txbench: " << async_client.status().ToString() << "\n";
      return 2;
    }
    AsyncLoad load{.client = async_client->get(), .resources = resources, .accounts = accounts,
                   .interactive = mode == "interactive", .txn = txn, .end = end, .stats = &stats,
                   .active = concurrency};
    std::vector<std::shared_ptr<AsyncSlot>> slots;
    for (int w = 0; w < concurrency; ++w) {
      slots.push_back(std::make_shared<AsyncSlot>(io, &load, 0x7a11 + static_cast<uint64_t>(w)));
      slots.back()->Next();
    }
    boost::asio::steady_timer tick(io);
    std::function<void()> schedule = [&] {
      tick.expires_after(std::chrono::seconds(1));
      tick.async_wait([&](const boost::system::error_code& ec) {
        if (ec || SteadyNowMicros() >= end) return;
        progress();
        schedule();
      });
    };
    schedule();
    // Bounded: a transfer in flight at the deadline ends within the client's
    // commit timeout.
    const Micros give_up = end + client->options().commit_timeout + 5 * kSeconds;
    while (load.active > 0 && SteadyNowMicros() < give_up) io.run_one_for(std::chrono::milliseconds(100));
    tick.cancel();
    if (load.active > 0) {
      stats.Error(Status::Timeout(std::to_string(load.active) + " transfers still unanswered " +
                                  "after the commit timeout"));
    }
    slots.clear();
    async_client->reset();  // io is not running: the client may go
  } else {
    std::vector<std::thread> threads;
    for (int w = 0; w < concurrency; ++w) {
      threads.emplace_back([&, w] {
        std::mt19937_64 rng(0x7a11 + w);
        std::vector<Micros> lat;
        while (SteadyNowMicros() < end) {
          Pick p = PickTransfer(rng, resources.size(), accounts);
          Micros t0 = SteadyNowMicros();
          Status s = transfer(w, p.ri, p.a, p.rj, p.b, p.amount);
          if (Count(stats, s, SteadyNowMicros() - t0, &lat)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }
        std::lock_guard<std::mutex> l(stats.mu);
        stats.latencies.insert(stats.latencies.end(), lat.begin(), lat.end());
      });
    }
    while (SteadyNowMicros() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<Micros>(1000, (end - SteadyNowMicros()) / 1000 + 1)));
      progress();
    }
    for (auto& t : threads) t.join();
  }
  double secs = static_cast<double>(SteadyNowMicros() - start) / kSeconds;
  std::sort(stats.latencies.begin(), stats.latencies.end());
  double p50 = Percentile(stats.latencies, 0.50), p99 = Percentile(stats.latencies, 0.99),
         p999 = Percentile(stats.latencies, 0.999);
  int64_t committed = stats.committed.load(), aborted = stats.aborted.load(), errors = stats.errors.load();
  // The servers' CPU over the load (the set-up excluded), per committed transaction.
  std::string server_json, server_text;
  if (servers) {
    servers->Finish();
    double cpu_s = static_cast<double>(servers->cpu_micros()) / 1e6;
    double per_txn = committed > 0 ? static_cast<double>(servers->cpu_micros()) / committed : 0;
    std::string rss, rss_json;
    for (const ProcSample& p : servers->last()) {
      rss += (rss.empty() ? "" : ",") + std::to_string(p.pid) + ":" +
             std::to_string(p.rss_kb / 1024) + "/" + std::to_string(p.rss_peak_kb / 1024);
      rss_json += std::string(rss_json.empty() ? "" : ",") + "{\"pid\":" + std::to_string(p.pid) +
                  ",\"rss_mb\":" + std::to_string(p.rss_kb / 1024) +
                  ",\"rss_peak_mb\":" + std::to_string(p.rss_peak_kb / 1024) + "}";
    }
    std::string gone;
    for (pid_t g : servers->gone()) gone += (gone.empty() ? "" : ",") + std::to_string(g);
    char buf[160];
    std::snprintf(buf, sizeof buf, "servers cpu=%.2fs cpu_per_txn=%.0fus", cpu_s, per_txn);
    server_text = std::string(buf) + " rss_mb(pid:now/peak)=" + rss +
                  (gone.empty() ? "" : " gone=" + gone + " (their CPU is not counted)");
    std::snprintf(buf, sizeof buf, ",\"server_cpu_s\":%.3f,\"cpu_us_per_txn\":%.1f", cpu_s, per_txn);
    server_json = std::string(buf) + ",\"servers\":[" + rss_json + "]" +
                  ",\"servers_gone\":[" + gone + "]";
  }
  std::string aborted_json, aborted_text;
  for (const auto& [why, n] : stats.aborted_by) {
    aborted_json += std::string(aborted_json.empty() ? "" : ",") + "\"" + why + "\":" + std::to_string(n);
    aborted_text += " " + why + "=" + std::to_string(n);
  }
  // --direct: the money across the databases must not have changed, and no
  // branch of this run may be left prepared.
  std::string money_json, money_text;
  bool money_ok = true;
  if (direct) {
    workers.clear();  // their sessions closed
    auto after = money_total();
    int64_t leftover = 0;
    std::string leftover_error;
    for (auto& session : checkers) {
      auto l = bench::LeftoverPrepared(*session, ids.epoch());
      if (l.ok()) {
        leftover += static_cast<int64_t>(l->size());
      } else {
        leftover_error = l.status().ToString();
      }
    }
    money_ok = after.ok() && *after == money_before && leftover == 0 && leftover_error.empty();
    char buf[200];
    if (after.ok()) {
      std::snprintf(buf, sizeof buf, "money before=%ld after=%ld leftover_prepared=%ld", static_cast<long>(money_before),
                    static_cast<long>(*after), static_cast<long>(leftover));
      money_text = buf;
      std::snprintf(buf, sizeof buf, ",\"money_before\":%ld,\"money_after\":%ld,\"leftover_prepared\":%ld,\"money_ok\":%s",
                    static_cast<long>(money_before), static_cast<long>(*after), static_cast<long>(leftover),
                    money_ok ? "true" : "false");
      money_json = buf;
    } else {
      money_text = "money after: " + after.status().ToString();
      money_json = ",\"money_ok\":false";
    }
    if (!leftover_error.empty()) money_text += " (listing prepared transactions: " + leftover_error + ")";
    money_text += money_ok ? " (ok)" : " (MISMATCH)";
  }
  if (vm["json"].as<bool>()) {
    std::printf("{\"mode\":\"%s\",\"protocol\":\"%s\",\"concurrency\":%d,\"seconds\":%.2f,\"committed\":%ld,\"aborted\":%ld,"
                "\"errors\":%ld,\"committed_per_s\":%.1f,\"aborted_per_s\":%.1f,\"p50_ms\":%.3f,"
                "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"aborted_by\":{%s}%s%s}\n",
                mode.c_str(), protocol, concurrency, secs, static_cast<long>(committed), static_cast<long>(aborted),
                static_cast<long>(errors), committed / secs, aborted / secs, p50, p99, p999, aborted_json.c_str(),
                server_json.c_str(), money_json.c_str());
  } else {
    std::printf("transfer mode=%s protocol=%s concurrency=%d duration=%.1fs\n", mode.c_str(), protocol,
                concurrency, secs);
    std::printf("committed=%ld (%.1f/s) aborted=%ld (%.1f/s) errors=%ld\n", static_cast<long>(committed),
                committed / secs, static_cast<long>(aborted), aborted / secs, static_cast<long>(errors));
    if (!aborted_text.empty()) std::printf("aborted by reason:%s\n", aborted_text.c_str());
    std::printf("latency p50=%.2fms p99=%.2fms p999=%.2fms\n", p50, p99, p999);
    if (!server_text.empty()) std::printf("%s\n", server_text.c_str());
    if (!money_text.empty()) std::printf("%s\n", money_text.c_str());
  }
  if (errors > 0) std::fprintf(stderr, "first error: %s\n", stats.first_error.c_str());
  for (const auto& [why, first] : stats.first_abort) {
    std::fprintf(stderr, "first abort (%s): %s\n", why.c_str(), first.c_str());
  }
  if (committed == 0) {
    std::fprintf(stderr, "txbench: nothing committed\n");
    return 1;
  }
  if (!money_ok) {
    std::fprintf(stderr, "txbench: %s\n", money_text.c_str());
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------- txbench setup-db
int SetupDb(int argc, char** argv) {
  po::options_description desc("txbench setup-db options");
  desc.add_options()
      ("db", po::value<std::vector<std::string>>()->required(),
       "NAME=postgres:CONNINFO or NAME=mariadb:CONNINFO (repeatable); the password is "
       "TXC_PASSWORD_<NAME> in the environment")
      ("accounts", po::value<int64_t>()->default_value(100), "accounts: ids 1..N")
      ("balance", po::value<int64_t>()->default_value(1000), "the balance of each account");
  po::variables_map vm;
  cli::Parse(argc, argv, "usage: txbench setup-db --db NAME=KIND:CONNINFO [--db ...] --accounts N --balance B",
             desc, vm);
  SetLogLevel(vm["log-level"].as<std::string>());
  int64_t accounts = vm["accounts"].as<int64_t>(), balance = vm["balance"].as<int64_t>();
  if (accounts < 1 || balance < 0 || balance > (int64_t{1} << 31) - 1) {
    std::cerr << "txbench: need --accounts >= 1 and 0 <= --balance < 2^31\n";
    return 2;
  }
  for (const std::string& spec : vm["db"].as<std::vector<std::string>>()) {
    auto db = bench::ParseDbSpec(spec);
    if (!db.ok()) {
      std::cerr << "txbench: " << db.status().message() << "\n";
      return 2;
    }
    if (Status s = bench::SetupDb(*db, accounts, balance); !s.ok()) {
      std::cerr << "txbench: setup-db " << db->name << ": " << s.ToString() << "\n";
      return 1;
    }
  }
  return 0;
}

// ------------------------------------------------------------- txbench log
// Everything below runs on one io thread: C request slots, each issuing its
// next request when the previous one completes, until the deadline.

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct LogLoad {
  Micros start = 0, end = 0;
  int64_t committed = 0, errors = 0;
  int active = 0;  // slots still issuing
  std::vector<Micros> latencies;
  std::string first_error;
  void Ok(Micros t0) {
    ++committed;
    latencies.push_back(SteadyNowMicros() - t0);
  }
  void Fail(const std::string& why) {
    ++errors;
    if (first_error.empty()) first_error = why;
  }
};

std::string Base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// Prints a progress line every second until the load's deadline.
void ScheduleProgress(asio::steady_timer* timer, LogLoad* load, int64_t* last, bool quiet) {
  timer->expires_after(std::chrono::seconds(1));
  timer->async_wait([timer, load, last, quiet](const boost::system::error_code& ec) {
    if (ec) return;
    if (!quiet) {
      double t = static_cast<double>(SteadyNowMicros() - load->start) / kSeconds;
      std::fprintf(stderr, "progress t=%.0fs committed=%ld (+%ld/s) errors=%ld\n", t,
                   static_cast<long>(load->committed), static_cast<long>(load->committed - *last),
                   static_cast<long>(load->errors));
    }
    *last = load->committed;
    if (SteadyNowMicros() + 500 * kMillis < load->end) ScheduleProgress(timer, load, last, quiet);
  });
}

// One txcoord slot: Append through the CoordinatorSet (follows redirects).
struct AppendSlot : std::enable_shared_from_this<AppendSlot> {
  LogLoad* load;
  std::shared_ptr<rpc::CoordinatorSet> set;
  proto::LogBenchAppendRequest req;
  asio::steady_timer pause;
  AppendSlot(asio::io_context& io) : pause(io) {}

  void Next() {
    if (SteadyNowMicros() >= load->end) {
      --load->active;
      return;
    }
    Micros t0 = SteadyNowMicros();
    auto self = shared_from_this();
    set->Call<proto::LogBenchAppendRequest, proto::LogBenchAppendResponse>(
        "Append", req, 5 * kSeconds, [self, t0](Status s, proto::LogBenchAppendResponse r) {
          if (s.ok() && r.status.code == proto::Code::OK) {
            self->load->Ok(t0);
            return self->Next();
          }
          self->load->Fail(s.ok() ? "Append: " + r.status.message : s.ToString());
          if (s.ok() && r.status.code == proto::Code::INVALID_ARGUMENT) {
            // Refused, not failed over (a replica without --serve-log-bench):
            // this slot stops, so the run ends with the refusal as its error.
            --self->load->active;
            return;
          }
          self->pause.expires_after(std::chrono::milliseconds(20));
          self->pause.async_wait([self](const boost::system::error_code&) { self->Next(); });
        });
  }
};

// One etcd slot: its own keep-alive HTTP/1.1 connection, one put in flight.
struct EtcdSlot : std::enable_shared_from_this<EtcdSlot> {
  LogLoad* load;
  tcp::endpoint endpoint;
  tcp::socket socket;
  asio::steady_timer pause;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::response<http::string_body> res;
  std::string host;
  std::string value_b64;
  uint64_t* seq;
  Micros t0 = 0;
  EtcdSlot(asio::io_context& io) : socket(io), pause(io) {}

  void Connect() {
    if (SteadyNowMicros() >= load->end) {
      --load->active;
      return;
    }
    auto self = shared_from_this();
    boost::system::error_code ignored;
    socket.close(ignored);
    socket.async_connect(endpoint, [self](const boost::system::error_code& ec) {
      if (ec) return self->Failed("connect to etcd: " + ec.message());
      boost::system::error_code ignored2;
      self->socket.set_option(tcp::no_delay(true), ignored2);
      self->buffer.clear();
      self->Next();
    });
  }

  void Failed(const std::string& why) {
    load->Fail(why);
    auto self = shared_from_this();
    pause.expires_after(std::chrono::milliseconds(20));
    pause.async_wait([self](const boost::system::error_code&) { self->Connect(); });
  }

  void Next() {
    if (SteadyNowMicros() >= load->end) {
      boost::system::error_code ignored;
      socket.close(ignored);
      --load->active;
      return;
    }
    // A 16-byte key, unique per put, and the record as the value.
    char key[17];
    std::snprintf(key, sizeof key, "%016llx", static_cast<unsigned long long>((*seq)++));
    req = {};
    req.method(http::verb::post);
    req.target("/v3/kv/put");
    req.version(11);
    req.set(http::field::host, host);
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = "{\"key\":\"" + Base64(std::string(key, 16)) + "\",\"value\":\"" + value_b64 + "\"}";
    req.prepare_payload();
    t0 = SteadyNowMicros();
    auto self = shared_from_this();
    http::async_write(socket, req, [self](const boost::system::error_code& ec, size_t) {
      if (ec) return self->Failed("write to etcd: " + ec.message());
      self->res = {};
      http::async_read(self->socket, self->buffer, self->res,
                       [self](const boost::system::error_code& ec2, size_t) {
                         if (ec2) return self->Failed("read from etcd: " + ec2.message());
                         if (self->res.result() != http::status::ok ||
                             self->res.body().find("\"error\"") != std::string::npos) {
                           self->load->Fail("etcd put: " + std::to_string(self->res.result_int()) +
                                            " " + self->res.body().substr(0, 200));
                         } else {
                           self->load->Ok(self->t0);
                         }
                         if (!self->res.keep_alive()) return self->Connect();
                         self->Next();
                       });
    });
  }
};

// "http://127.0.0.1:2379" -> endpoint.
Result<tcp::endpoint> EtcdEndpoint(const std::string& url) {
  std::string hp = url;
  if (hp.rfind("http://", 0) == 0) hp = hp.substr(7);
  while (!hp.empty() && hp.back() == '/') hp.pop_back();
  return rpc::ParseEndpoint(hp);
}

// A JSON string field's value ("member_id":"123" -> 123); "" if absent.
std::string JsonField(const std::string& body, const std::string& name) {
  auto at = body.find("\"" + name + "\":\"");
  if (at == std::string::npos) return "";
  at += name.size() + 4;
  auto end = body.find('"', at);
  return end == std::string::npos ? "" : body.substr(at, end - at);
}

// POST /v3/maintenance/status to each member (blocking, before the load);
// returns the index of the member that says it leads, or -1.
int FindEtcdLeader(const std::vector<tcp::endpoint>& members, std::string* error) {
  for (size_t i = 0; i < members.size(); ++i) {
    try {
      asio::io_context io;
      tcp::socket s(io);
      s.connect(members[i]);
      http::request<http::string_body> req{http::verb::post, "/v3/maintenance/status", 11};
      req.set(http::field::host, members[i].address().to_string());
      req.set(http::field::content_type, "application/json");
      req.body() = "{}";
      req.prepare_payload();
      http::write(s, req);
      beast::flat_buffer b;
      http::response<http::string_body> res;
      http::read(s, b, res);
      std::string leader = JsonField(res.body(), "leader");
      std::string me = JsonField(res.body(), "member_id");
      if (!leader.empty() && leader == me) return static_cast<int>(i);
    } catch (const std::exception& e) {
      *error = e.what();
    }
  }
  return -1;
}

int Log(int argc, char** argv) {
  po::options_description desc("txbench log options");
  desc.add_options()
      ("coordinator", po::value<std::string>(), "HOST:PORT[,HOST:PORT...] of the coordinator group")
      ("etcd", po::value<std::string>(), "http://HOST:PORT[,...] of an etcd cluster (instead of --coordinator)")
      ("etcd-target", po::value<std::string>()->default_value("leader"),
       "leader: every put goes to the etcd leader; any: slots spread over all members")
      ("concurrency", po::value<int>()->default_value(1), "requests in flight")
      ("duration", po::value<std::string>()->default_value("10s"), "how long to run (10s, 500ms, 2m)")
      ("record-bytes", po::value<int>()->default_value(256), "payload of each record (etcd: the value; the key is 16 bytes more)")
      ("json", po::bool_switch(), "print the summary as one JSON line")
      ("quiet", po::bool_switch(), "no progress lines");
  rpc::AddTlsOptions(desc);
  po::variables_map vm;
  const char* usage =
      "usage: txbench log (--coordinator LIST | --etcd URLS [--etcd-target leader|any]) "
      "--concurrency C --duration 10s --record-bytes 256 [--json]\n"
      "(the txcoord replicas must run with --serve-log-bench)";
  cli::Parse(argc, argv, usage, desc, vm);
  SetLogLevel(vm["log-level"].as<std::string>());
  bool etcd = vm.count("etcd") > 0;
  if (etcd == (vm.count("coordinator") > 0)) {
    std::cerr << "txbench: give exactly one of --coordinator and --etcd\n" << usage << "\n";
    return 2;
  }
  int concurrency = vm["concurrency"].as<int>();
  int record_bytes = vm["record-bytes"].as<int>();
  Micros duration = 0;
  try {
    duration = ParseDuration(vm["duration"].as<std::string>());
  } catch (const po::error& e) {
    std::cerr << "txbench: " << e.what() << "\n";
    return 2;
  }
  std::string etcd_target = vm["etcd-target"].as<std::string>();
  if (concurrency < 1 || record_bytes < 0 || duration <= 0 ||
      (etcd_target != "leader" && etcd_target != "any")) {
    std::cerr << "txbench: need --concurrency >= 1, --record-bytes >= 0, a positive --duration, "
                 "--etcd-target leader or any\n";
    return 2;
  }
  bool quiet = vm["quiet"].as<bool>() || vm["json"].as<bool>();
  rpc::ChannelOptions channel_options;
  if (!etcd) {
    auto tls = TlsOrComplain(vm, rpc::SplitList(vm["coordinator"].as<std::string>()));
    if (!tls) return 2;
    channel_options.tls = *tls;  // LogBench.Append: an admin certificate
  }

  asio::io_context io;
  LogLoad load;
  rpc::ChannelPool pool(io, channel_options);
  std::shared_ptr<rpc::CoordinatorSet> set;
  std::vector<tcp::endpoint> members;
  std::vector<std::shared_ptr<AppendSlot>> appends;
  std::vector<std::shared_ptr<EtcdSlot>> puts;
  uint64_t seq = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  std::string target_desc;
  if (etcd) {
    for (const std::string& url : rpc::SplitList(vm["etcd"].as<std::string>())) {
      auto ep = EtcdEndpoint(url);
      if (!ep.ok()) {
        std::cerr << "txbench: bad --etcd URL '" << url << "': " << ep.status().ToString() << "\n";
        return 2;
      }
      members.push_back(*ep);
    }
    if (etcd_target == "leader") {
      std::string error;
      int leader = -1;
      for (int attempt = 0; attempt < 50 && leader < 0; ++attempt) {
        leader = FindEtcdLeader(members, &error);
        if (leader < 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      if (leader < 0) {
        std::cerr << "txbench: no etcd member says it leads" << (error.empty() ? "" : " (" + error + ")") << "\n";
        return 1;
      }
      members = {members[static_cast<size_t>(leader)]};
    }
    target_desc = "etcd";
  } else {
    set = std::make_shared<rpc::CoordinatorSet>(io, &pool, rpc::SplitList(vm["coordinator"].as<std::string>()));
    target_desc = "txcoord";
  }

  load.start = SteadyNowMicros();
  load.end = load.start + duration;
  load.active = concurrency;
  for (int i = 0; i < concurrency; ++i) {
    std::string record = RandomBytes(static_cast<size_t>(record_bytes), 0x10c + static_cast<uint64_t>(i));
    if (etcd) {
      auto s = std::make_shared<EtcdSlot>(io);
      s->load = &load;
      s->endpoint = members[static_cast<size_t>(i) % members.size()];
      s->host = s->endpoint.address().to_string() + ":" + std::to_string(s->endpoint.port());
      s->value_b64 = Base64(record);
      s->seq = &seq;
      puts.push_back(s);
      s->Connect();
    } else {
      auto s = std::make_shared<AppendSlot>(io);
      s->load = &load;
      s->set = set;
      s->req.payload = std::move(record);
      appends.push_back(s);
      s->Next();
    }
  }
  asio::steady_timer progress(io);
  int64_t last = 0;
  ScheduleProgress(&progress, &load, &last, quiet);
  // Bounded: every slot stops at the deadline; a call in flight then ends
  // within its own timeout (5 s), so stop the loop after that at the latest.
  asio::steady_timer guard(io);
  guard.expires_after(std::chrono::microseconds(duration + 10 * kSeconds));
  guard.async_wait([&io](const boost::system::error_code& ec) {
    if (!ec) io.stop();
  });
  while (!io.stopped() && load.active > 0) io.run_one();
  double secs = static_cast<double>(SteadyNowMicros() - load.start) / kSeconds;
  progress.cancel();
  guard.cancel();
  pool.CloseAll();

  std::sort(load.latencies.begin(), load.latencies.end());
  double p50 = Percentile(load.latencies, 0.50), p99 = Percentile(load.latencies, 0.99),
         p999 = Percentile(load.latencies, 0.999);
  if (vm["json"].as<bool>()) {
    std::printf("{\"target\":\"%s\",\"concurrency\":%d,\"record_bytes\":%d,\"seconds\":%.2f,\"committed\":%ld,"
                "\"errors\":%ld,\"committed_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f}\n",
                target_desc.c_str(), concurrency, record_bytes, secs, static_cast<long>(load.committed),
                static_cast<long>(load.errors), load.committed / secs, p50, p99, p999);
  } else {
    std::printf("log target=%s concurrency=%d record_bytes=%d duration=%.1fs\n", target_desc.c_str(),
                concurrency, record_bytes, secs);
    std::printf("committed=%ld (%.1f/s) errors=%ld\n", static_cast<long>(load.committed),
                load.committed / secs, static_cast<long>(load.errors));
    std::printf("latency p50=%.2fms p99=%.2fms p999=%.2fms\n", p50, p99, p999);
  }
  if (load.errors > 0) std::fprintf(stderr, "first error: %s\n", load.first_error.c_str());
  if (load.committed == 0) {
    std::fprintf(stderr, "txbench: nothing committed\n");
    return 1;
  }
  return 0;
}

// ----------------------------------------------------------- txbench probe
// One Append at a time, straight to the replica believed to lead (following
// NOT_LEADER hints, else the next replica, 2 ms apart). Every time two
// successive successes are more than --gap-ms apart it prints
//   gap last_ok_us=T1 first_ok_us=T2 gap_ms=D
// with wall-clock (CLOCK_REALTIME) microseconds, so a script can match a gap
// against the time it killed the leader.
int Probe(int argc, char** argv) {
  po::options_description desc("txbench probe options");
  desc.add_options()
      ("coordinator", po::value<std::string>()->required(), "HOST:PORT,HOST:PORT,... of the coordinator group")
      ("duration", po::value<std::string>()->default_value("60s"), "how long to run")
      ("gap-ms", po::value<int>()->default_value(100), "report gaps between successes longer than this")
      ("call-timeout-ms", po::value<int>()->default_value(200), "deadline of one Append")
      ("record-bytes", po::value<int>()->default_value(64), "payload of each record");
  rpc::AddTlsOptions(desc);
  po::variables_map vm;
  const char* usage =
      "usage: txbench probe --coordinator LIST --duration 60s [--gap-ms 100]\n"
      "(the txcoord replicas must run with --serve-log-bench)";
  cli::Parse(argc, argv, usage, desc, vm);
  SetLogLevel(vm["log-level"].as<std::string>());
  Micros duration = 0;
  try {
    duration = ParseDuration(vm["duration"].as<std::string>());
  } catch (const po::error& e) {
    std::cerr << "txbench: " << e.what() << "\n";
    return 2;
  }
  std::vector<std::string> addrs = rpc::SplitList(vm["coordinator"].as<std::string>());
  if (addrs.empty() || duration <= 0) {
    std::cerr << "txbench: need --coordinator and a positive --duration\n";
    return 2;
  }
  Micros gap = vm["gap-ms"].as<int>() * kMillis;
  Micros call_timeout = vm["call-timeout-ms"].as<int>() * kMillis;

  auto tls = TlsOrComplain(vm, addrs);
  if (!tls) return 2;

  asio::io_context io;
  rpc::ChannelOptions co;
  co.tls = *tls;
  co.backoff_initial = 2 * kMillis;
  co.backoff_max = 20 * kMillis;
  co.connect_timeout = 100 * kMillis;
  rpc::ChannelPool pool(io, co);
  proto::LogBenchAppendRequest req;
  req.payload = RandomBytes(static_cast<size_t>(vm["record-bytes"].as<int>()), 0x9be);
  Micros end = SteadyNowMicros() + duration;
  size_t index = 0;
  Micros last_ok_steady = 0, last_ok_wall = 0;
  int64_t ok = 0, gaps = 0;
  bool refused = false;
  asio::steady_timer pause(io);
  std::function<void()> issue = [&] {
    if (SteadyNowMicros() >= end) return;
    pool.Get(addrs[index])->Call<proto::LogBenchAppendRequest, proto::LogBenchAppendResponse>(
        "Append", req, call_timeout, [&](Status s, proto::LogBenchAppendResponse r) {
          if (s.ok() && r.status.code == proto::Code::OK) {
            Micros now = SteadyNowMicros();
            Micros wall = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
            if (last_ok_steady != 0 && now - last_ok_steady > gap) {
              ++gaps;
              std::printf("gap last_ok_us=%ld first_ok_us=%ld gap_ms=%.1f\n", static_cast<long>(last_ok_wall),
                          static_cast<long>(wall), static_cast<double>(now - last_ok_steady) / kMillis);
              std::fflush(stdout);
            }
            last_ok_steady = now;
            last_ok_wall = wall;
            ++ok;
            return issue();
          }
          if (s.ok() && r.status.code == proto::Code::INVALID_ARGUMENT) {
            // Not a leader change: the replica does not serve the call (it
            // was started without --serve-log-bench). Retrying cannot help.
            std::fprintf(stderr, "txbench probe: %s\n", r.status.message.c_str());
            refused = true;
            io.stop();
            return;
          }
          size_t next = (index + 1) % addrs.size();
          if (s.ok() && r.status.__isset.leader_hint) {
            auto it = std::find(addrs.begin(), addrs.end(), r.status.leader_hint);
            if (it != addrs.end() && *it != addrs[index]) next = static_cast<size_t>(it - addrs.begin());
          }
          index = next;
          pause.expires_after(std::chrono::milliseconds(2));
          pause.async_wait([&](const boost::system::error_code&) { issue(); });
        });
  };
  issue();
  asio::steady_timer guard(io);
  guard.expires_after(std::chrono::microseconds(duration + call_timeout + kSeconds));
  guard.async_wait([&io](const boost::system::error_code& ec) {
    if (!ec) io.stop();
  });
  asio::steady_timer finish(io);
  finish.expires_after(std::chrono::microseconds(duration));
  finish.async_wait([&](const boost::system::error_code&) {
    pause.cancel();
    // Let the call in flight end (bounded by its deadline), then stop.
    guard.expires_after(std::chrono::microseconds(call_timeout + 100 * kMillis));
    guard.async_wait([&io](const boost::system::error_code& ec) {
      if (!ec) io.stop();
    });
  });
  io.run();
  pool.CloseAll();
  std::printf("probe ok=%ld gaps=%ld\n", static_cast<long>(ok), static_cast<long>(gaps));
  return ok > 0 && !refused ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string usage =
      "usage: txbench transfer --coordinator LIST --agent NAME=HOST:PORT [--agent ...] "
      "--accounts N --concurrency C --duration 10s [--mode oneshot|interactive] "
      "[--protocol 2pc|3pc] [--client async|blocking] [--no-setup]\n"
      "       txbench transfer --direct --db NAME=KIND:CONNINFO --db ... --accounts N --concurrency C "
      "--duration 10s\n"
      "       txbench setup-db --db NAME=KIND:CONNINFO [--db ...] --accounts N --balance B\n"
      "       txbench log (--coordinator LIST | --etcd URLS [--etcd-target leader|any]) "
      "--concurrency C --duration 10s --record-bytes 256 [--json]\n"
      "       txbench probe --coordinator LIST --duration 60s [--gap-ms 100]\n"
      "(log and probe: every txcoord replica must run with --serve-log-bench)";
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << usage << "\n";
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  if (cmd == "transfer") return Transfer(argc - 1, argv + 1);
  if (cmd == "log") return Log(argc - 1, argv + 1);
  if (cmd == "setup-db") return SetupDb(argc - 1, argv + 1);
  if (cmd == "probe") return Probe(argc - 1, argv + 1);
  std::cerr << "txbench: unknown command '" << cmd << "'\n" << usage << "\n";
  return 2;
}
