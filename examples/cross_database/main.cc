// crossdb_demo: one transaction across three different databases. Starts a
// throwaway PostgreSQL server (orders) and a throwaway MariaDB server (stock),
// each in a temporary directory, running as nobody and listening on loopback
// only, an SQLite file (the ledger), a coordinator group (3 replicas by
// default, agreeing through Multi-Paxos) and one txagent per database, as
// child processes. Concurrent clients then place orders; each order is one
// atomic transaction that
//   inserts the order into PostgreSQL   (orders: id, item, qty),
//   takes the units out of MariaDB      (stock: item, qty; a checked update
//                                        that refuses to go below zero),
//   writes the ledger entry into SQLite (ledger: order_id, item, qty).
// Half the clients run interactive transactions (Begin, Execute on each
// resource, Commit), half one-shot Submits. Mid-run the MariaDB agent is
// killed with SIGKILL and restarted, later the PostgreSQL agent too. At the
// end the demo waits until no prepared transaction is left in either database
// (pg_prepared_xacts, XA RECOVER) and checks that the three databases agree:
// the same orders (id, item, qty) in PostgreSQL and in the ledger, and, per
// item, exactly the units the orders took gone from stock.
//
// --protocol 2pc|3pc (default 2pc) is the commit protocol of every transaction.
//
// Ends with: RESULT orders=N ledger=N stock_moved=N prepared_left=N invariant=held|BROKEN
// (exit 0 only when held). Every process and server it started is stopped by
// pid, also on failure and on SIGINT/SIGTERM.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/program_options.hpp>

#include "client/client.h"
#include "common/cli.h"
#include "common/log.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace po = boost::program_options;
using namespace txc;
using testing::MariaDbServer;
using testing::PgServer;
using testing::Process;

namespace {

// What the signal handler kills: every child process and both servers.
std::vector<Process*> g_procs;
PgServer* g_pg = nullptr;
MariaDbServer* g_maria = nullptr;

volatile sig_atomic_t g_interrupted = 0;

// SIGINT/SIGTERM/SIGHUP (only async-signal-safe calls here). The first one
// SIGKILLs the coordinators and agents, so that every client call fails
// fast, and marks the run interrupted: main then stops at its next check and
// shuts both servers down cleanly (which removes their directories and
// shared memory). A second one SIGKILLs the servers too and leaves at once
// (PostgreSQL's backends follow their postmaster).
void OnSignal(int) {
  for (Process* p : g_procs) {
    if (p->pid() > 0) kill(p->pid(), SIGKILL);
  }
  if (g_interrupted) {
    if (g_pg != nullptr && g_pg->pid() > 0) kill(g_pg->pid(), SIGKILL);
    if (g_maria != nullptr && g_maria->pid() > 0) kill(g_maria->pid(), SIGKILL);
    _exit(130);
  }
  g_interrupted = 1;
}

// One order row: item and qty by order id.
using Orders = std::map<int64_t, std::pair<int64_t, int64_t>>;

// The rows of a client's text output: one a line, columns split at `sep`.
std::vector<std::vector<std::string>> Rows(const std::string& out, char sep) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> cols;
    std::string col;
    std::istringstream l(line);
    while (std::getline(l, col, sep)) cols.push_back(col);
    rows.push_back(std::move(cols));
  }
  return rows;
}

std::optional<int64_t> ToInt(const std::string& s) {
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

// Every row of a three-integer-column query's output as id -> (a, b).
std::optional<Orders> ParseOrders(const std::string& out, char sep) {
  Orders o;
  for (const auto& r : Rows(out, sep)) {
    if (r.size() != 3) return std::nullopt;
    auto id = ToInt(r[0]), a = ToInt(r[1]), b = ToInt(r[2]);
    if (!id || !a || !b) return std::nullopt;
    o[*id] = {*a, *b};
  }
  return o;
}

// The ledger, read through txcoord (a read-only transaction on the SQLite
// resource); retried while the agent or the group is busy.
std::optional<Orders> ReadLedger(Client& c, const TxnOptions& txn) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto tx = c.Begin(txn);
    if (tx.ok()) {
      auto r = tx->Execute("ledger", Sql("SELECT order_id, item, qty FROM ledger ORDER BY order_id"));
      if (r.ok()) {
        Orders o;
        bool ok = true;
        for (const auto& row : r->rows) {
          if (row.values.size() != 3 || !row.values[0].__isset.i || !row.values[1].__isset.i ||
              !row.values[2].__isset.i) {
            ok = false;
            break;
          }
          o[row.values[0].i] = {row.values[1].i, row.values[2].i};
        }
        (void)tx->Commit();
        if (ok) return o;
        return std::nullopt;
      }
      (void)tx->Rollback();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

// Prepared transactions left in PostgreSQL (every database of the server)
// and in MariaDB (XA RECOVER as root: every user's); -1 when a count failed.
int64_t PgPrepared(PgServer& pg) {
  auto out = pg.Sql("SELECT count(*) FROM pg_prepared_xacts;");
  if (!out.ok()) return -1;
  auto rows = Rows(*out, '|');
  if (rows.size() != 1 || rows[0].size() != 1) return -1;
  return ToInt(rows[0][0]).value_or(-1);
}
int64_t MariaPrepared(MariaDbServer& maria) {
  auto out = maria.Sql("XA RECOVER;");
  if (!out.ok()) return -1;
  return static_cast<int64_t>(Rows(*out, '\t').size());
}

// Per-item stock in MariaDB.
std::optional<std::map<int64_t, int64_t>> ReadStock(MariaDbServer& maria) {
  auto out = maria.Sql("SELECT item, qty FROM txc_test.stock ORDER BY item;");
  if (!out.ok()) return std::nullopt;
  std::map<int64_t, int64_t> stock;
  for (const auto& r : Rows(*out, '\t')) {
    if (r.size() != 2) return std::nullopt;
    auto item = ToInt(r[0]), qty = ToInt(r[1]);
    if (!item || !qty) return std::nullopt;
    stock[*item] = *qty;
  }
  return stock;
}

// An error message with its numbers blanked, so that aborts group by kind.
std::string Kind(const Status& s) {
  std::string m = s.ToString();
  std::string out;
  for (size_t i = 0; i < m.size() && out.size() < 160; ++i) {
    if (m[i] >= '0' && m[i] <= '9') {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += m[i];
    }
  }
  return out;
}

// How many in-doubt branches an agent found at its last start: read from the
// "recovered resource=... in_doubt=N" line of its log (-1 if none).
int64_t InDoubtAtLastStart(const std::string& log) {
  std::ifstream in(log);
  std::string line;
  int64_t n = -1;
  while (std::getline(in, line)) {
    if (line.find("recovered resource=") == std::string::npos) continue;
    auto at = line.find(" in_doubt=");
    if (at == std::string::npos) continue;
    auto v = ToInt(line.substr(at + 10, line.find(' ', at + 10) - (at + 10)));
    if (v) n = *v;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("crossdb_demo options");
  desc.add_options()("bin", po::value<std::string>()->default_value("build/bin"), "where txcoord and txagent are")
      ("seconds", po::value<int>()->default_value(15), "how long to place orders")
      ("concurrency", po::value<int>()->default_value(8), "concurrent clients")
      ("items", po::value<int>()->default_value(20), "stock items")
      ("units", po::value<int>()->default_value(1000000), "initial units of each item")
      ("replicas", po::value<int>()->default_value(3), "coordinator replicas: 1, 3 or 5")
      ("protocol", po::value<std::string>()->default_value("2pc"),
       "commit protocol of every transaction: 2pc or 3pc")
      ("no-kill", po::bool_switch(), "do not kill the agents mid-run")
      ("crash-servers", po::bool_switch(),
       "also SIGKILL the MariaDB server, then the PostgreSQL server, mid-run (a power cut) and restart them");
  po::variables_map vm;
  cli::Parse(argc, argv, "usage: crossdb_demo [--bin DIR] [--seconds N] [--crash-servers] ...", desc, vm);
  auto protocol = ParseProtocol(vm["protocol"].as<std::string>());
  if (!protocol.ok()) {
    std::cerr << "crossdb_demo: --protocol: " << protocol.status().message() << "\n";
    return 2;
  }
  const TxnOptions txn{.protocol = *protocol};
  const int replicas = vm["replicas"].as<int>();
  if (replicas != 1 && replicas != 3 && replicas != 5) {
    std::cerr << "crossdb_demo: --replicas must be 1, 3 or 5\n";
    return 2;
  }
  const int seconds = vm["seconds"].as<int>();
  const int concurrency = vm["concurrency"].as<int>();
  const int items = vm["items"].as<int>();
  const int64_t units = vm["units"].as<int>();
  if (seconds < 1 || concurrency < 1 || items < 1 || units < 1) {
    std::cerr << "crossdb_demo: --seconds, --concurrency, --items and --units must be positive\n";
    return 2;
  }
  SetLogLevel("error");
  const std::string bin = std::filesystem::absolute(vm["bin"].as<std::string>()).string();
  const bool tty = isatty(2);
  for (const char* exe : {"txcoord", "txagent"}) {
    if (access((bin + "/" + exe).c_str(), X_OK) != 0) {
      std::cerr << "crossdb_demo: no " << bin << "/" << exe << " (see --bin)\n";
      return 2;
    }
  }

  char tmpl[] = "/tmp/txcoord-crossdb.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  std::printf("txcoord cross-database demo (%s): agent data and logs in %s\n", ProtocolFlag(txn.protocol),
              dir.c_str());
  std::fflush(stdout);

  // Declared first, so that they are destroyed (stopped) last, after every
  // agent that talks to them.
  PgServer pg;
  MariaDbServer maria;
  g_pg = &pg;
  g_maria = &maria;
  std::vector<std::unique_ptr<Process>> coords;
  std::map<std::string, std::unique_ptr<Process>> agents;
  std::map<std::string, int> agent_port;
  g_procs.reserve(replicas + 3);  // filled below, read by the signal handler: never reallocated
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, OnSignal);
  signal(SIGPIPE, SIG_IGN);  // a closed stdout must not skip the clean-up

  // Stops everything by pid, agents first; the servers cleanly.
  auto stop_all = [&] {
    for (auto& [name, a] : agents) a->Kill(SIGTERM);
    for (auto& c : coords) c->Kill(SIGTERM);
    Status ps = pg.Stop(), ms = maria.Stop();
    if (!ps.ok()) std::fprintf(stderr, "stopping PostgreSQL: %s\n", ps.ToString().c_str());
    if (!ms.ok()) std::fprintf(stderr, "stopping MariaDB: %s\n", ms.ToString().c_str());
  };
  auto fail = [&](const std::string& what) {
    std::fprintf(stderr, "%s\n", what.c_str());
    std::printf("RESULT orders=-1 ledger=-1 stock_moved=-1 prepared_left=-1 invariant=BROKEN (%s)\n",
                what.substr(0, what.find('\n')).c_str());
    std::fflush(stdout);
    stop_all();
    return 1;
  };

  // The two database servers (from this thread: they die with it).
  auto t_setup = std::chrono::steady_clock::now();
  std::printf("starting PostgreSQL (waiting up to 60 s for it to accept connections)\n");
  std::fflush(stdout);
  if (Status s = pg.Start(); !s.ok()) return fail("PostgreSQL did not start: " + s.ToString());
  std::printf("started PostgreSQL       pid=%d port=%d dir=%s\n", pg.pid(), pg.port(), pg.dir().c_str());
  std::printf("starting MariaDB (waiting up to 60 s for it to accept connections)\n");
  std::fflush(stdout);
  if (Status s = maria.Start(); !s.ok()) return fail("MariaDB did not start: " + s.ToString());
  std::printf("started MariaDB          pid=%d port=%d dir=%s\n", maria.pid(), maria.port(), maria.dir().c_str());
  std::fflush(stdout);
  if (g_interrupted) return fail("interrupted by a signal");

  // Their tables, created directly: MariaDB refuses DDL inside XA branches.
  // The orders table belongs to the agent's login role.
  if (auto r = pg.Sql("CREATE TABLE orders(id BIGINT PRIMARY KEY, item INTEGER NOT NULL, qty INTEGER NOT NULL);\n"
                      "ALTER TABLE orders OWNER TO txc;\n");
      !r.ok()) {
    return fail("creating orders in PostgreSQL: " + r.status().ToString());
  }
  std::string fill = "INSERT INTO txc_test.stock(item, qty) VALUES ";
  for (int i = 1; i <= items; ++i) {
    fill += (i > 1 ? ", (" : "(") + std::to_string(i) + ", " + std::to_string(units) + ")";
  }
  if (auto r = maria.Sql("CREATE TABLE txc_test.stock(item INTEGER PRIMARY KEY, qty INTEGER NOT NULL) "
                         "ENGINE=InnoDB;\n" + fill + ";\n");
      !r.ok()) {
    return fail("creating stock in MariaDB: " + r.status().ToString());
  }
  auto stock_before = ReadStock(maria);
  if (!stock_before || static_cast<int>(stock_before->size()) != items) {
    return fail("reading the initial stock from MariaDB failed");
  }
  int64_t total_before = 0;
  for (const auto& [item, qty] : *stock_before) total_before += qty;

  // The coordinator group and the three agents, on reserved loopback ports.
  std::string caddr, peers;
  std::vector<int> cport(replicas);
  for (int i = 0; i < replicas; ++i) {
    cport[i] = testing::FreePort();
    std::string a = "127.0.0.1:" + std::to_string(cport[i]);
    caddr += (i ? "," : "") + a;
    peers += (i ? "," : "") + std::to_string(i + 1) + "=" + a;
  }
  for (int i = 0; i < replicas; ++i) {
    std::string a = "127.0.0.1:" + std::to_string(cport[i]);
    std::vector<std::string> args = {bin + "/txcoord", "--listen", a, "--data",
                                     dir + "/coord" + std::to_string(i + 1)};
    if (replicas > 1) args.insert(args.end(), {"--id", std::to_string(i + 1), "--peers", peers});
    coords.push_back(std::make_unique<Process>("txcoord " + std::to_string(i + 1), args,
                                               dir + "/txcoord" + std::to_string(i + 1) + ".log"));
  }
  const std::map<std::string, std::string> specs = {
      {"orders", "orders=postgres:" + pg.conninfo()},
      {"stock", "stock=mariadb:" + maria.conninfo()},
      {"ledger", "ledger=sqlite:" + dir + "/ledger.db"},
  };
  for (const auto& [name, spec] : specs) {
    agent_port[name] = testing::FreePort();
    agents[name] = std::make_unique<Process>(
        "txagent " + name,
        std::vector<std::string>{bin + "/txagent", "--listen", "127.0.0.1:" + std::to_string(agent_port[name]),
                                 "--data", dir + "/agent_" + name, "--coordinator", caddr, "--resource", spec},
        dir + "/txagent_" + name + ".log");
  }
  for (auto& c : coords) g_procs.push_back(c.get());
  for (auto& [name, a] : agents) g_procs.push_back(a.get());
  for (int i = 0; i < replicas; ++i) {
    if (!coords[i]->Start(cport[i])) {
      return fail("could not start txcoord " + std::to_string(i + 1) + ":\n" + coords[i]->LogTail(2000));
    }
    std::printf("started txcoord %d        pid=%d port=%d\n", i + 1, coords[i]->pid(), cport[i]);
  }
  for (const char* name : {"orders", "stock", "ledger"}) {
    if (!agents[name]->Start(agent_port[name])) {
      return fail(std::string("could not start txagent ") + name + ":\n" + agents[name]->LogTail(2000));
    }
    std::printf("started txagent %-8s pid=%d port=%d (%s)\n", name, agents[name]->pid(), agent_port[name],
                std::string(name) == "orders"  ? "PostgreSQL"
                : std::string(name) == "stock" ? "MariaDB"
                                               : "SQLite");
  }
  std::fflush(stdout);

  if (g_interrupted) return fail("interrupted by a signal");
  ClientOptions co;
  for (int p : cport) co.coordinators.push_back("127.0.0.1:" + std::to_string(p));
  for (const auto& [name, port] : agent_port) co.agents[name] = "127.0.0.1:" + std::to_string(port);
  co.call_timeout = 3 * kSeconds;
  co.commit_timeout = 10 * kSeconds;
  std::printf("waiting for the coordinator group to answer (up to 5 s)\n");
  std::fflush(stdout);
  auto client = Client::Connect(co);
  if (!client.ok()) return fail("client: " + client.status().ToString());
  Client& c = **client;

  // The ledger's table, created through txcoord (SQLite takes DDL in a branch).
  {
    Status s = Status::Unavailable("not tried");
    for (int attempt = 0; attempt < 50 && !s.ok() && !g_interrupted; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      auto tx = c.Begin(txn);
      s = tx.status();
      if (!tx.ok()) continue;
      auto e = tx->Execute("ledger", Sql("CREATE TABLE IF NOT EXISTS ledger(order_id INTEGER PRIMARY KEY, "
                                         "item INTEGER NOT NULL, qty INTEGER NOT NULL)"));
      s = e.ok() ? tx->Commit() : e.status();
      if (!e.ok()) (void)tx->Rollback();
    }
    if (!s.ok()) return fail("creating the ledger through txcoord: " + s.ToString());
  }
  double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_setup).count();
  std::printf("orders table in PostgreSQL, %d items x %ld units in MariaDB (total %ld), ledger in SQLite "
              "(set up in %.1f s)\n",
              items, static_cast<long>(units), static_cast<long>(total_before), setup_s);
  std::fflush(stdout);

  // The clients: even ones Submit, odd ones run interactive transactions.
  std::atomic<int64_t> next_id{1}, committed{0}, aborted{0}, unknown{0};
  std::atomic<bool> stop{false};
  std::mutex why_mu;
  std::map<std::string, int64_t> why;  // failures by kind
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(w * 7919 + 1);
      const bool one_shot = w % 2 == 0;
      while (!stop) {
        int64_t id = next_id++;
        int64_t item = 1 + rng() % items, qty = 1 + rng() % 5;
        std::vector<std::pair<std::string, proto::Statement>> work = {
            {"orders", SqlExpect("INSERT INTO orders(id, item, qty) VALUES (?, ?, ?)", {Int(id), Int(item), Int(qty)}, 1)},
            {"stock", SqlExpect("UPDATE stock SET qty = qty - ? WHERE item = ? AND qty >= ?",
                                {Int(qty), Int(item), Int(qty)}, 1)},
            {"ledger", SqlExpect("INSERT INTO ledger(order_id, item, qty) VALUES (?, ?, ?)",
                                 {Int(id), Int(item), Int(qty)}, 1)},
        };
        Status s;
        bool at_commit = false;  // the failure (if any) came from Commit/Submit
        if (one_shot) {
          std::map<std::string, std::vector<proto::Statement>> m;
          for (auto& [res, st] : work) m[res].push_back(st);
          s = c.Submit(m, txn).status();
          at_commit = true;
        } else {
          auto tx = c.Begin(txn);
          s = tx.status();
          if (tx.ok()) {
            for (auto& [res, st] : work) {
              auto e = tx->Execute(res, st);
              if (!e.ok()) {
                s = e.status();
                break;
              }
            }
            if (s.ok()) {
              s = tx->Commit();
              at_commit = true;
            } else {
              (void)tx->Rollback();
            }
          }
        }
        if (s.ok()) {
          ++committed;
          continue;
        }
        // Only ABORTED from a commit means it did not commit; any other
        // failure there leaves the outcome unknown to this client (the check
        // at the end reads what the databases hold).
        if (at_commit && s.code() != Status::kAborted) {
          ++unknown;
        } else {
          ++aborted;
        }
        {
          std::lock_guard<std::mutex> g(why_mu);
          ++why[Kind(s)];
        }
        int ms = s.code() == Status::kUnavailable ? 50 : 2 + static_cast<int>(rng() % 8);
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      }
    });
  }

  // The schedule: kill -9 the MariaDB agent at 25% and restart it 1.5 s
  // later; kill -9 the PostgreSQL agent at 60% and restart it 1.5 s later.
  // With --crash-servers also a power cut of the MariaDB server at 40% and of
  // the PostgreSQL server at 80% (SIGKILL of every server process), each
  // restarted at once, through its crash recovery, under the running agent.
  const bool do_kill = !vm["no-kill"].as<bool>();
  const bool crash_servers = vm["crash-servers"].as<bool>();
  enum Action { kKillAgent, kRestartAgent, kCrashServer };
  struct Step {
    double at;
    Action action;
    std::string agent;  // "stock" (MariaDB) or "orders" (PostgreSQL)
  };
  std::vector<Step> steps;
  if (do_kill) {
    steps = {{seconds * 0.25, kKillAgent, "stock"}, {seconds * 0.25 + 1.5, kRestartAgent, "stock"},
             {seconds * 0.60, kKillAgent, "orders"}, {seconds * 0.60 + 1.5, kRestartAgent, "orders"}};
  }
  if (crash_servers) {
    steps.push_back({seconds * 0.40, kCrashServer, "stock"});
    steps.push_back({seconds * 0.80, kCrashServer, "orders"});
  }
  std::sort(steps.begin(), steps.end(), [](const Step& a, const Step& b) { return a.at < b.at; });
  size_t step = 0;
  bool restart_failed = false;
  auto t0 = std::chrono::steady_clock::now();
  while (true) {
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t >= seconds || g_interrupted) break;
    const char* nl = tty ? "\n" : "";
    while (step < steps.size() && t >= steps[step].at) {
      const Step& st = steps[step];
      Process& a = *agents[st.agent];
      const char* db = st.agent == "stock" ? "MariaDB" : "PostgreSQL";
      if (st.action == kKillAgent) {
        std::fprintf(stderr, "%s*** kill -9 txagent %s (%s, pid %d) mid-run\n", nl, st.agent.c_str(), db, a.pid());
        a.Kill(SIGKILL);
      } else if (st.action == kRestartAgent) {
        bool ok = a.Start(agent_port[st.agent]);
        restart_failed |= !ok;
        std::fprintf(stderr, "%s*** restarted txagent %s: pid %d %s\n", nl, st.agent.c_str(), a.pid(),
                     ok ? "(recovering its prepared transactions)" : "FAILED");
      } else {
        pid_t was = st.agent == "stock" ? maria.pid() : pg.pid();
        std::fprintf(stderr, "%s*** power cut: SIGKILL of the %s server (pid %d)\n", nl, db, was);
        Status s;
        if (st.agent == "stock") {
          maria.Crash();
          s = maria.Restart();
        } else {
          s = pg.Crash();
          if (s.ok()) s = pg.Restart();
        }
        restart_failed |= !s.ok();
        std::fprintf(stderr, "%s*** restarted the %s server: pid %d %s\n", nl, db,
                     st.agent == "stock" ? maria.pid() : pg.pid(),
                     s.ok() ? "(crash recovery done)" : ("FAILED: " + s.ToString()).c_str());
      }
      ++step;
    }
    int width = 30, filled = static_cast<int>(width * t / seconds);
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr,
                 tty ? "\r[%s] %3.0f%% committed=%ld aborted=%ld unknown=%ld   "
                     : "[%s] %3.0f%% committed=%ld aborted=%ld unknown=%ld\n",
                 bar.c_str(), 100 * t / seconds, static_cast<long>(committed.load()),
                 static_cast<long>(aborted.load()), static_cast<long>(unknown.load()));
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 1000));
  }
  stop = true;
  for (auto& w : workers) w.join();
  if (tty) std::fprintf(stderr, "\n");
  if (g_interrupted) return fail("interrupted by a signal");
  if (restart_failed) {
    for (auto& [name, a] : agents) {
      if (a->pid() <= 0) std::fprintf(stderr, "txagent %s log:\n%s\n", name.c_str(), a->LogTail(2000).c_str());
    }
    return fail("an agent or a server did not restart");
  }
  std::printf("placed orders: committed=%ld aborted=%ld unknown=%ld\n", static_cast<long>(committed.load()),
              static_cast<long>(aborted.load()), static_cast<long>(unknown.load()));
  {
    std::vector<std::pair<int64_t, std::string>> top;
    for (const auto& [k, n] : why) top.emplace_back(n, k);
    std::sort(top.rbegin(), top.rend());
    for (size_t i = 0; i < top.size() && i < 5; ++i) {
      std::printf("  %6ld x %s\n", static_cast<long>(top[i].first), top[i].second.c_str());
    }
  }
  if (do_kill || crash_servers) {
    std::printf("in-doubt branches the restarted agents found in their databases: stock=%ld orders=%ld\n",
                static_cast<long>(InDoubtAtLastStart(dir + "/txagent_stock.log")),
                static_cast<long>(InDoubtAtLastStart(dir + "/txagent_orders.log")));
  }
  std::fflush(stdout);

  // Let every decided transaction reach every database: nothing in doubt at
  // the coordinators, no prepared transaction left in either server.
  auto t_settle = std::chrono::steady_clock::now();
  int64_t pg_left = -1, maria_left = -1;
  size_t doubt_left = 0;
  for (int i = 0; i < 600; ++i) {  // up to 60 s
    auto doubt = c.ListTxns("in-doubt");
    doubt_left = doubt.ok() ? doubt->size() : 1;
    pg_left = PgPrepared(pg);
    maria_left = MariaPrepared(maria);
    if ((doubt_left == 0 && pg_left == 0 && maria_left == 0) || g_interrupted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("settled in %.1f s: in-doubt=%zu pg_prepared_xacts=%ld xa_recover=%ld\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_settle).count(), doubt_left,
              static_cast<long>(pg_left), static_cast<long>(maria_left));

  if (g_interrupted) return fail("interrupted by a signal");

  // Read the three databases: PostgreSQL and MariaDB directly, the ledger
  // through txcoord.
  std::vector<std::string> broken;
  std::optional<Orders> orders;
  if (auto out = pg.Sql("SELECT id, item, qty FROM orders ORDER BY id;"); out.ok()) {
    orders = ParseOrders(*out, '|');
  }
  auto ledger = ReadLedger(c, txn);
  auto stock_after = ReadStock(maria);
  if (!orders) broken.push_back("could not read orders from PostgreSQL");
  if (!ledger) broken.push_back("could not read the ledger through txcoord");
  if (!stock_after) broken.push_back("could not read stock from MariaDB");
  int64_t prepared_left = (pg_left < 0 || maria_left < 0) ? -1 : pg_left + maria_left;
  if (prepared_left != 0) {
    broken.push_back("prepared transactions left: postgres=" + std::to_string(pg_left) +
                     " mariadb=" + std::to_string(maria_left));
  }
  int64_t n_orders = orders ? static_cast<int64_t>(orders->size()) : -1;
  int64_t n_ledger = ledger ? static_cast<int64_t>(ledger->size()) : -1;
  int64_t sum_orders = 0, sum_ledger = 0, moved = -1;
  if (orders) {
    for (const auto& [id, r] : *orders) sum_orders += r.second;
  }
  if (ledger) {
    for (const auto& [id, r] : *ledger) sum_ledger += r.second;
  }
  if (stock_after) {
    int64_t total_after = 0;
    for (const auto& [item, qty] : *stock_after) total_after += qty;
    moved = total_before - total_after;
  }
  if (orders && ledger) {
    if (n_orders != n_ledger) {
      broken.push_back("orders=" + std::to_string(n_orders) + " but ledger=" + std::to_string(n_ledger));
    }
    if (sum_orders != sum_ledger) {
      broken.push_back("sum(orders.qty)=" + std::to_string(sum_orders) +
                       " but sum(ledger.qty)=" + std::to_string(sum_ledger));
    }
    std::vector<std::string> diff;
    for (const auto& [id, r] : *orders) {
      auto it = ledger->find(id);
      if (it == ledger->end()) {
        diff.push_back("order " + std::to_string(id) + " not in the ledger");
      } else if (it->second != r) {
        diff.push_back("order " + std::to_string(id) + " differs from its ledger entry");
      }
    }
    for (const auto& [id, r] : *ledger) {
      if (!orders->count(id)) diff.push_back("ledger entry " + std::to_string(id) + " has no order");
    }
    if (!diff.empty()) {
      std::string d = std::to_string(diff.size()) + " order ids differ:";
      for (size_t i = 0; i < diff.size() && i < 5; ++i) d += " " + diff[i] + ";";
      broken.push_back(d);
    }
  }
  if (orders && stock_after) {
    if (moved != sum_orders) {
      broken.push_back("stock moved " + std::to_string(moved) + " units but the orders hold " +
                       std::to_string(sum_orders));
    }
    std::map<int64_t, int64_t> per_item;
    for (const auto& [id, r] : *orders) per_item[r.first] += r.second;
    for (const auto& [item, qty] : *stock_before) {
      int64_t now = stock_after->count(item) ? stock_after->at(item) : -1;
      if (qty - now != per_item[item]) {
        broken.push_back("item " + std::to_string(item) + ": stock moved " + std::to_string(qty - now) +
                         " but its orders hold " + std::to_string(per_item[item]));
        break;
      }
    }
  }
  // A run that committed nothing shows nothing.
  if (committed.load() == 0) broken.push_back("no order committed");
  // Every order the clients saw committed must be there (unknown ones may or may not).
  if (orders && n_orders < committed.load()) {
    broken.push_back(std::to_string(committed.load()) + " orders committed but only " +
                     std::to_string(n_orders) + " in PostgreSQL");
  }
  if (orders && n_orders > committed.load() + unknown.load()) {
    broken.push_back(std::to_string(n_orders) + " orders in PostgreSQL but only " +
                     std::to_string(committed.load() + unknown.load()) + " committed or unknown");
  }

  std::printf("sum(orders.qty)=%ld sum(ledger.qty)=%ld stock %ld -> %ld\n", static_cast<long>(sum_orders),
              static_cast<long>(sum_ledger), static_cast<long>(total_before),
              static_cast<long>(moved < 0 ? -1 : total_before - moved));
  std::string verdict = "held";
  if (!broken.empty()) {
    verdict = "BROKEN";
    for (const auto& b : broken) verdict += " (" + b + ")";
  }
  std::printf("RESULT orders=%ld ledger=%ld stock_moved=%ld prepared_left=%ld invariant=%s\n",
              static_cast<long>(n_orders), static_cast<long>(n_ledger), static_cast<long>(moved),
              static_cast<long>(prepared_left), verdict.c_str());
  std::fflush(stdout);
  if (!broken.empty()) {
    std::fprintf(stderr, "logs kept in %s\n", dir.c_str());
  }
  stop_all();
  return broken.empty() ? 0 : 1;
}
