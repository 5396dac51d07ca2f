// order_outbox: the transactional outbox, with txcoord's queue resource.
//
// Starts a coordinator (1 replica by default) and two participant agents as
// child processes on free loopback ports: one hosts the shop's SQLite
// database (shop=sqlite:..., an orders table), the other a durable message
// queue (outbox=queue:...). Then:
//   producers place orders; each order is ONE global transaction that inserts
//     the order row into the shop AND enqueues an "order-created" event into
//     the outbox, so an event exists if and only if its order does. Every
//     fifth order reuses an order id its producer already placed: the INSERT
//     violates the PRIMARY KEY, and the transaction aborts on both resources,
//     taking its event with it. Half the attempts are one-shot Submits (the
//     outbox branch prepares its event, then rolls back at the abort), half
//     interactive (ENQUEUE, then the failing INSERT, then Rollback). An order
//     that fails for a passing reason (its agent restarting) is placed again,
//     as a new attempt;
//   consumers, concurrently, each take one event per transaction: DEQUEUE from
//     the outbox and mark the order shipped in the shop (shipped = shipped + 1),
//     atomically. Every fourth consumer transaction is rolled back on purpose
//     after its DEQUEUE (a consumer that crashed): the event goes back to the
//     queue and is delivered again;
//   mid-run (unless --no-kill) the outbox's agent is killed with SIGKILL and
//     restarted: its prepared branches (events enqueued or claimed, waiting
//     for the decision) are recovered from the queue file and finished.
// At the end, once every decided transaction reached both agents and the
// consumers took every committed order's event (or 60 s passed), it checks that every order in the shop had exactly one
// event consumed (shipped = 1, its id once in the consumed list, the event
// naming the attempt that created the row), that no event of an aborted
// attempt was ever consumed, that every attempt the client saw commit has its
// row, and that the queue is empty.
//
// Ends with: RESULT orders=N aborted=N events_consumed=N redelivered=N
// queue_left=N invariant=held|BROKEN (exit 0 only when held). Every process
// it started is stopped by pid, also on failure and on SIGINT/SIGTERM.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>

#include "client/client.h"
#include "common/log.h"

namespace po = boost::program_options;
using namespace txc;

namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool PortOpen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// A child process: its command line, log file and pid.
struct Child {
  std::string name;
  std::vector<std::string> argv;
  std::string log;
  int port = 0;
  pid_t pid = -1;

  // Starts it and waits (up to 10 s) until it listens on its port.
  bool Start() {
    pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // the children die with the demo
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      if (PortOpen(port)) return true;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return false;  // it exited: see its log
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void Kill(int sig) {
    if (pid > 0) {
      kill(pid, sig);
      waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
};

std::vector<Child*> g_children;
// Stops every child, once: the list is emptied, so the atexit call after
// main's own (or after main's locals, which the list points into, are gone)
// does nothing.
void StopAll() {
  for (Child* c : g_children) c->Kill(SIGTERM);
  g_children.clear();
}

constexpr const char* kQueue = "order-events";

std::string EventPayload(int64_t order, int64_t attempt) {
  return "order-created order=" + std::to_string(order) + " attempt=" + std::to_string(attempt);
}

bool ParseEvent(const std::string& payload, int64_t* order, int64_t* attempt) {
  long long o = 0, a = 0;
  int used = 0;
  if (std::sscanf(payload.c_str(), "order-created order=%lld attempt=%lld%n", &o, &a, &used) != 2 ||
      static_cast<size_t>(used) != payload.size()) {
    return false;
  }
  *order = o;
  *attempt = a;
  return true;
}

// What the client learnt of one order attempt.
enum class Outcome { kCommitted, kAborted, kUnknown };

// The final word on a transaction whose commit answered "unknown"
// (UNAVAILABLE): asks the group until it says COMMITTED or ABORTED.
Outcome Settle(Client& c, const TxId& txid) {
  for (int i = 0; i < 100; ++i) {
    auto o = c.Outcome(txid);
    if (o.ok() && *o == proto::Outcome::COMMITTED) return Outcome::kCommitted;
    if (o.ok() && *o == proto::Outcome::ABORTED) return Outcome::kAborted;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Outcome::kUnknown;
}

Outcome FromCommit(Client& c, const TxId& txid, const Status& s) {
  if (s.ok()) return Outcome::kCommitted;
  if (s.code() == Status::kAborted) return Outcome::kAborted;
  return Settle(c, txid);
}

// Places order `order` as attempt `attempt`: one transaction that inserts
// the row into the shop and enqueues its event into the outbox. Even attempts
// are one-shot Submits (both branches travel with PREPARE); odd ones
// interactive, the event first, so that a failing INSERT leaves an enqueued
// event for the rollback to drop. `why` gets the error of a failed attempt.
Outcome PlaceOrder(Client& c, const TxnOptions& txn, int64_t order, int64_t attempt, Status* why) {
  proto::Statement insert =
      Sql("INSERT INTO orders(id, attempt, item, qty) VALUES(?, ?, ?, ?)",
          {Int(order), Int(attempt), Text("item-" + std::to_string(order % 7)), Int(1 + order % 3)});
  proto::Statement enqueue = Sql("ENQUEUE", {Text(kQueue), Text(EventPayload(order, attempt))});
  if (attempt % 2 == 0) {
    auto r = c.Submit({{"shop", {insert}}, {"outbox", {enqueue}}}, txn);
    if (r.ok()) return Outcome::kCommitted;
    *why = r.status();
    // Submit gives no txid on failure: an outcome it could not learn stays unknown.
    return r.status().code() == Status::kAborted ? Outcome::kAborted : Outcome::kUnknown;
  }
  auto tx = c.Begin(txn);
  if (!tx.ok()) {
    *why = tx.status();
    return Outcome::kAborted;  // nothing was done
  }
  Status s = tx->Execute("outbox", enqueue).status();
  if (s.ok()) s = tx->Execute("shop", insert).status();
  if (!s.ok()) {
    (void)tx->Rollback();
    *why = s;
    return Outcome::kAborted;
  }
  s = tx->Commit();
  *why = s;
  return FromCommit(c, tx->id(), s);
}

// An order row: the attempt that created it, and how often it was shipped.
struct OrderRow {
  int64_t attempt = 0;
  int64_t shipped = 0;
};

// The shop's orders and the outbox's queue length, read through txcoord;
// retried while an agent or the group is busy.
bool ReadFinal(Client& c, const TxnOptions& txn, std::map<int64_t, OrderRow>* orders,
               int64_t* queued) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto tx = c.Begin(txn);
    if (tx.ok()) {
      auto rows = tx->Execute("shop", Sql("SELECT id, attempt, shipped FROM orders ORDER BY id"));
      auto count = rows.ok() ? tx->Execute("outbox", Sql("COUNT", {Text(kQueue)}))
                             : Result<proto::ResultSet>(rows.status());
      if (rows.ok() && count.ok() && count->rows.size() == 1) {
        orders->clear();
        for (const auto& r : rows->rows) {
          (*orders)[r.values[0].i] = OrderRow{r.values[1].i, r.values[2].i};
        }
        *queued = count->rows[0].values[0].i;
        (void)tx->Commit();
        return true;
      }
      (void)tx->Rollback();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("order_outbox options");
  desc.add_options()("help,h", "show this help")
      ("bin", po::value<std::string>()->default_value("build/bin"), "where txcoord and txagent are")
      ("orders", po::value<int>()->default_value(120), "orders to place (every fifth a duplicate id)")
      ("producers", po::value<int>()->default_value(3), "concurrent clients placing orders")
      ("consumers", po::value<int>()->default_value(2), "concurrent clients consuming events")
      ("replicas", po::value<int>()->default_value(1), "coordinator replicas: 1, 3 or 5")
      ("protocol", po::value<std::string>()->default_value("2pc"),
       "commit protocol of every transaction: 2pc or 3pc")
      ("no-kill", po::bool_switch(), "do not kill the outbox's agent mid-run")
      ("dir", po::value<std::string>(), "where data and logs go (created if needed; default: a new "
       "directory /tmp/txcoord-outbox.XXXXXX, kept after the run)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "order_outbox: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  auto protocol = ParseProtocol(vm["protocol"].as<std::string>());
  if (!protocol.ok()) {
    std::cerr << "order_outbox: --protocol: " << protocol.status().message() << "\n";
    return 2;
  }
  const TxnOptions txn{.protocol = *protocol};
  const int n_orders = vm["orders"].as<int>();
  const int n_producers = vm["producers"].as<int>();
  const int n_consumers = vm["consumers"].as<int>();
  const int replicas = vm["replicas"].as<int>();
  if (n_orders < 1 || n_producers < 1 || n_consumers < 1) {
    std::cerr << "order_outbox: --orders, --producers and --consumers must be at least 1\n";
    return 2;
  }
  if (replicas != 1 && replicas != 3 && replicas != 5) {
    std::cerr << "order_outbox: --replicas must be 1, 3 or 5\n";
    return 2;
  }
  SetLogLevel("error");
  setvbuf(stdout, nullptr, _IOLBF, 0);  // in order with the *** lines on stderr
  std::string bin = std::filesystem::absolute(vm["bin"].as<std::string>()).string();

  std::string dir;
  if (vm.count("dir")) {
    dir = std::filesystem::absolute(vm["dir"].as<std::string>()).string();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      std::cerr << "order_outbox: --dir " << dir << ": " << ec.message() << "\n";
      return 2;
    }
  } else {
    char tmpl[] = "/tmp/txcoord-outbox.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::perror("order_outbox: mkdtemp");
      return 1;
    }
    dir = tmpl;
  }
  std::printf("txcoord order + outbox demo (%s): data and logs in %s\n", ProtocolFlag(txn.protocol),
              dir.c_str());

  std::vector<Child> coords(replicas);
  std::string caddr, peers;
  for (int i = 0; i < replicas; ++i) {
    coords[i].name = "txcoord " + std::to_string(i + 1);
    coords[i].port = FreePort();
    coords[i].log = dir + "/txcoord" + std::to_string(i + 1) + ".log";
    std::string a = "127.0.0.1:" + std::to_string(coords[i].port);
    caddr += (i ? "," : "") + a;
    peers += (i ? "," : "") + std::to_string(i + 1) + "=" + a;
  }
  for (int i = 0; i < replicas; ++i) {
    std::string a = "127.0.0.1:" + std::to_string(coords[i].port);
    coords[i].argv = {bin + "/txcoord", "--listen", a, "--data", dir + "/coord" + std::to_string(i + 1)};
    if (replicas > 1) {
      coords[i].argv.insert(coords[i].argv.end(), {"--id", std::to_string(i + 1), "--peers", peers});
    }
  }
  // One agent per resource: the shop's database and the outbox queue.
  std::map<std::string, Child> agents;
  const std::vector<std::pair<std::string, std::string>> specs = {
      {"shop", "sqlite:" + dir + "/shop.db"}, {"outbox", "queue:" + dir + "/outbox.db"}};
  for (const auto& [name, spec] : specs) {
    Child a{"txagent " + name, {}, dir + "/" + name + ".log", FreePort()};
    a.argv = {bin + "/txagent", "--listen", "127.0.0.1:" + std::to_string(a.port), "--data",
              dir + "/" + name, "--coordinator", caddr, "--resource", name + "=" + spec,
              "--active-timeout-ms", "3000"};
    agents.emplace(name, std::move(a));
  }
  for (auto& c : coords) g_children.push_back(&c);
  for (auto& [name, a] : agents) g_children.push_back(&a);
  std::atexit(StopAll);
  // Declared after the children: on any return from main it stops them before they
  // are destroyed.
  struct StopAllOnReturn {
    ~StopAllOnReturn() { StopAll(); }
  } stop_all_on_return;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, [](int) { StopAll(); _exit(130); });
  signal(SIGPIPE, SIG_IGN);  // a closed stdout must not skip the clean-up
  for (Child* c : g_children) {
    if (!c->Start()) {
      std::fprintf(stderr, "could not start %s (see %s)\n", c->name.c_str(), c->log.c_str());
      return 1;
    }
    std::printf("started %-16s pid=%d port=%d\n", c->name.c_str(), c->pid, c->port);
  }

  ClientOptions co;
  for (auto& c : coords) co.coordinators.push_back("127.0.0.1:" + std::to_string(c.port));
  for (auto& [name, a] : agents) co.agents[name] = "127.0.0.1:" + std::to_string(a.port);
  co.call_timeout = 3 * kSeconds;
  co.commit_timeout = 10 * kSeconds;
  auto client = Client::Connect(co);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  Client& c = **client;

  {
    Status s;
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto tx = c.Begin(txn);
      s = tx.status();
      if (tx.ok()) {
        auto e = tx->Execute("shop", Sql("CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, "
                                         "attempt INTEGER NOT NULL, item TEXT NOT NULL, qty INTEGER "
                                         "NOT NULL, shipped INTEGER NOT NULL DEFAULT 0)"));
        s = e.ok() ? tx->Commit() : e.status();
        if (!e.ok()) (void)tx->Rollback();
      }
      if (s.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!s.ok()) {
      std::fprintf(stderr, "creating the orders table failed: %s\n", s.ToString().c_str());
      return 1;
    }
  }

  // ------------------------------------------------------------ producers
  std::mutex mu;  // guards outcomes, consumed, errors
  std::map<int64_t, Outcome> outcomes;        // attempt -> what the client learnt
  std::map<int64_t, int64_t> attempt_order;   // attempt -> order id
  std::vector<std::pair<int64_t, int64_t>> consumed;  // (order, attempt) per consumed event
  std::map<std::string, int> errors;          // why attempts and deliveries failed, by kind
  std::atomic<int64_t> next_order{1}, next_attempt{1}, next_placed{1};
  std::atomic<int64_t> redelivered{0};
  std::atomic<int> producers_left{n_producers};
  std::atomic<bool> stop_consumers{false};
  // Failures by kind: the message with its numbers blanked.
  auto note = [&](const std::string& what, const Status& s) {
    std::string kind;
    for (char ch : s.ToString()) {
      if (kind.size() >= 140) break;
      if (ch >= '0' && ch <= '9') {
        if (kind.empty() || kind.back() != '#') kind += '#';
      } else {
        kind += ch;
      }
    }
    std::lock_guard<std::mutex> l(mu);
    ++errors[what + ": " + kind];
  };

  std::vector<std::thread> threads;
  for (int p = 0; p < n_producers; ++p) {
    threads.emplace_back([&, p] {
      std::vector<int64_t> mine;  // order ids this producer saw commit
      for (;;) {
        const int64_t placed = next_placed++;
        if (placed > n_orders) break;
        const bool duplicate = placed % 5 == 0 && !mine.empty();
        const int64_t order = duplicate ? mine[placed % mine.size()] : next_order++;
        // An order that fails for a passing reason (an agent restarting) is
        // placed again, each time as a new attempt; the order id is the key
        // that makes this safe: if an attempt whose outcome the client never
        // learnt did commit, the next one fails on the duplicate id.
        for (int tries = 0; tries < 100; ++tries) {
          const int64_t attempt = next_attempt++;
          {
            std::lock_guard<std::mutex> l(mu);
            attempt_order[attempt] = order;
          }
          Status s;
          Outcome outcome = PlaceOrder(c, txn, order, attempt, &s);
          {
            std::lock_guard<std::mutex> l(mu);
            outcomes[attempt] = outcome;
          }
          if (outcome == Outcome::kCommitted) {
            if (!duplicate) mine.push_back(order);
            break;
          }
          note(duplicate ? "duplicate order (expected)" : "order", s);
          // The id is taken (an interactive INSERT's SQL_ERROR, a one-shot's NO
          // vote naming the constraint): retrying cannot help.
          if (duplicate || s.code() == Status::kSqlError ||
              s.message().find("UNIQUE constraint failed") != std::string::npos) {
            break;
          }
          // A real client backs off before retrying, more while an agent is unreachable.
          std::this_thread::sleep_for(
              std::chrono::milliseconds(s.code() == Status::kUnavailable ? 100 : 50));
        }
      }
      --producers_left;
    });
  }

  // ------------------------------------------------------------ consumers
  for (int k = 0; k < n_consumers; ++k) {
    threads.emplace_back([&, k] {
      int64_t n = 0;
      while (!stop_consumers) {
        ++n;
        auto tx = c.Begin(txn);
        if (!tx.ok()) {
          note("consumer begin", tx.status());
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          continue;
        }
        auto got = tx->Execute("outbox", Sql("DEQUEUE", {Text(kQueue)}));
        if (!got.ok() || got->rows.empty()) {
          (void)tx->Rollback();
          if (!got.ok()) note("dequeue", got.status());
          std::this_thread::sleep_for(std::chrono::milliseconds(got.ok() ? 20 : 100));
          continue;
        }
        int64_t order = 0, attempt = 0;
        const proto::Value& payload = got->rows[0].values[1];
        if (!ParseEvent(payload.s, &order, &attempt)) {
          std::lock_guard<std::mutex> l(mu);
          ++errors["malformed event \"" + payload.s + "\""];
          consumed.emplace_back(-1, -1);  // fails the check
          (void)tx->Commit();
          continue;
        }
        if ((n + k) % 4 == 0) {
          // A consumer that dies after taking the event: it goes back.
          (void)tx->Rollback();
          ++redelivered;
          continue;
        }
        auto ship = tx->Execute("shop", SqlExpect("UPDATE orders SET shipped = shipped + 1 WHERE id = ?",
                                                  {Int(order)}, 1));
        Status s = ship.status();
        Outcome outcome = Outcome::kAborted;
        if (s.ok()) {
          s = tx->Commit();
          outcome = FromCommit(c, tx->id(), s);
        } else {
          (void)tx->Rollback();
        }
        if (outcome == Outcome::kCommitted) {
          std::lock_guard<std::mutex> l(mu);
          consumed.emplace_back(order, attempt);
        } else {
          ++redelivered;
          note("delivery", s);
          if (outcome == Outcome::kUnknown) {
            std::lock_guard<std::mutex> l(mu);
            ++errors["delivery outcome unknown (order " + std::to_string(order) + ")"];
          }
        }
      }
    });
  }

  // The outbox's agent dies mid-run and comes back (its prepared branches
  // recover from the queue file).
  bool do_kill = !vm["no-kill"].as<bool>();
  bool killed = false;
  const auto t0 = std::chrono::steady_clock::now();
  while (producers_left > 0 || (do_kill && !killed)) {  // the kill happens even on a fast run
    int64_t done = std::min<int64_t>(next_placed.load() - 1, n_orders);
    if (do_kill && !killed && done >= n_orders / 3) {
      Child& outbox = agents["outbox"];
      std::fprintf(stderr, "*** kill -9 txagent outbox (pid %d) mid-run\n", outbox.pid);
      outbox.Kill(SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      bool ok = outbox.Start();
      std::fprintf(stderr, "*** restarted txagent outbox: pid %d %s\n", outbox.pid,
                   ok ? "(recovering prepared queue branches)" : "FAILED");
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // Let every decided transaction reach both agents: the shop's orders are
  // final then. The consumers go on until each has its event consumed, or
  // for at most 60 s. (A consumer transaction that aborted because the group
  // could not reach the restarted outbox agent leaves its claim there, its
  // ABORT lost, until the agent's active timeout, 3 s here, asks the group
  // and rolls the branch back: presumed abort.)
  for (int i = 0; i < 300; ++i) {
    auto doubt = c.ListTxns("in-doubt");
    if (doubt.ok() && doubt->empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  {
    std::map<int64_t, OrderRow> placed_orders;
    int64_t ignored = 0;
    size_t want = ReadFinal(c, txn, &placed_orders, &ignored) ? placed_orders.size() : 0;
    for (int i = 0; i < 600; ++i) {
      {
        std::lock_guard<std::mutex> l(mu);
        if (want > 0 && consumed.size() >= want) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  stop_consumers = true;
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // ---------------------------------------------------------------- check
  std::map<int64_t, OrderRow> orders;
  int64_t queued = -1;
  bool read = ReadFinal(c, txn, &orders, &queued);
  std::vector<std::string> problems;
  if (!read) problems.push_back("could not read the shop's orders and the outbox's queue");
  std::map<int64_t, int> per_order;
  for (const auto& [order, attempt] : consumed) {
    ++per_order[order];
    auto row = orders.find(order);
    if (row == orders.end()) {
      problems.push_back("event of order " + std::to_string(order) + " (attempt " +
                         std::to_string(attempt) + ") consumed, but the order does not exist");
    } else if (row->second.attempt != attempt) {
      problems.push_back("event of attempt " + std::to_string(attempt) + " consumed, but order " +
                         std::to_string(order) + " was created by attempt " +
                         std::to_string(row->second.attempt));
    }
    auto o = outcomes.find(attempt);
    if (o != outcomes.end() && o->second == Outcome::kAborted) {
      problems.push_back("event of aborted attempt " + std::to_string(attempt) + " was consumed");
    }
  }
  for (const auto& [order, n] : per_order) {
    if (n != 1) {
      problems.push_back("order " + std::to_string(order) + ": " + std::to_string(n) +
                         " events consumed, expected exactly 1");
    }
  }
  for (const auto& [order, row] : orders) {
    if (per_order.count(order) == 0) {
      problems.push_back("order " + std::to_string(order) + " committed but its event was never consumed");
    }
    if (row.shipped != 1) {
      problems.push_back("order " + std::to_string(order) + " shipped " + std::to_string(row.shipped) +
                         " times, expected 1");
    }
  }
  int64_t n_committed = 0, n_aborted = 0, n_unknown = 0;
  for (const auto& [attempt, outcome] : outcomes) {
    if (outcome == Outcome::kCommitted) {
      ++n_committed;
      auto row = orders.find(attempt_order[attempt]);
      if (row == orders.end() || row->second.attempt != attempt) {
        problems.push_back("attempt " + std::to_string(attempt) + " committed, but its order row is missing");
      }
    } else if (outcome == Outcome::kAborted) {
      ++n_aborted;
    } else {
      ++n_unknown;
    }
  }
  if (queued != 0) problems.push_back(std::to_string(queued) + " events left in the queue");

  for (const auto& [what, n] : errors) std::printf("  %4d x %s\n", n, what.c_str());
  for (size_t i = 0; i < problems.size() && i < 20; ++i) {
    std::printf("MISMATCH %s\n", problems[i].c_str());
  }
  if (problems.size() > 20) std::printf("MISMATCH ... and %zu more\n", problems.size() - 20);
  std::printf("%d orders placed in %zu attempts in %.1f s: %" PRId64 " committed, %" PRId64
              " aborted, %" PRId64 " unknown to the client; %zu orders in the shop\n",
              n_orders, outcomes.size(), secs, n_committed, n_aborted, n_unknown, orders.size());
  const bool held = problems.empty();
  std::printf("RESULT orders=%zu aborted=%" PRId64 " events_consumed=%zu redelivered=%" PRId64
              " queue_left=%" PRId64 " invariant=%s\n",
              orders.size(), n_aborted, consumed.size(), redelivered.load(), queued,
              held ? "held" : "BROKEN");
  StopAll();
  return held ? 0 : 1;
}
