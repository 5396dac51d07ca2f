// bank_transfer: the txcoord demo. Starts a coordinator group (3 replicas by
// default, agreeing through Multi-Paxos) and two participant agents (each
// holding one bank's SQLite database) as child processes on free loopback
// ports, moves money between the banks from concurrent clients, kills one
// agent with SIGKILL in the middle and restarts it, then kills the leading
// coordinator replica and restarts it, and checks that not a single unit of
// money was created or lost.
//
// --protocol 2pc|3pc (default 2pc) is the commit protocol of every transaction
// it runs, the set-up and the balance checks included.
//
// Every connection is mutual TLS: the demo makes a throwaway CA and a
// certificate per role with scripts/make-certs.sh in its directory, and each
// process presents its role's (replica, agent; the transfers run as client,
// the in-doubt check as admin). --plaintext runs without TLS, on loopback.
//
// Ends with: RESULT committed=N aborted=N total_before=N total_after=N invariant=held|BROKEN
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>

#include "client/client.h"
#include "common/proc_stats.h"
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


// A child process: its command line, log file and pid.
struct Child {
  std::string name;
  std::vector<std::string> argv;
  std::string log;
  int port = 0;
  pid_t pid = -1;

  bool Start() {
    pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      // The children die with the demo, however it ends.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
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
      if (txc::TcpPortListening(port)) return true;
      if (i == 20) {
        std::fprintf(stderr, "waiting for %s to listen on 127.0.0.1:%d (up to 10 s; its log: %s)\n",
                     name.c_str(), port, log.c_str());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::fprintf(stderr, "%s did not listen on 127.0.0.1:%d within 10 s\n", name.c_str(), port);
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

// scripts/make-certs.sh: `given` if named, else from the source tree the
// demo runs in, else next to the build's bin directory (build/bin/../..).
std::string FindMakeCerts(const std::string& given, const std::string& bin) {
  if (!given.empty()) return given;
  for (const std::string& p : {std::string("scripts/make-certs.sh"), bin + "/../../scripts/make-certs.sh"}) {
    if (std::filesystem::exists(p)) return std::filesystem::absolute(p).lexically_normal().string();
  }
  return "";
}

TlsConfig RoleTls(const std::string& certs, const std::string& role) {
  if (certs.empty()) return {};
  return TlsConfig{certs + "/" + role + ".crt", certs + "/" + role + ".key", certs + "/ca.crt"};
}

std::vector<std::string> TlsFlags(const TlsConfig& t) {
  if (!t.enabled()) return {};
  return {"--tls-cert", t.cert, "--tls-key", t.key, "--tls-ca", t.ca};
}

int64_t SumBalances(Client& c, const TxnOptions& txn, const std::string& resource) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto tx = c.Begin(txn);
    if (tx.ok()) {
      auto r = tx->Execute(resource, Sql("SELECT COALESCE(SUM(balance), 0) FROM accounts"));
      if (r.ok() && !r->rows.empty() && r->rows[0].values[0].__isset.i) {
        (void)tx->Commit();
        return r->rows[0].values[0].i;
      }
      (void)tx->Rollback();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("bank_transfer options");
  desc.add_options()("help,h", "show this help")
      ("bin", po::value<std::string>()->default_value("build/bin"), "where txcoord and txagent are")
      ("seconds", po::value<int>()->default_value(12), "how long to run transfers")
      ("concurrency", po::value<int>()->default_value(8), "concurrent clients")
      ("accounts", po::value<int>()->default_value(50), "accounts per bank")
      ("replicas", po::value<int>()->default_value(3), "coordinator replicas: 1, 3 or 5")
      ("protocol", po::value<std::string>()->default_value("2pc"),
       "commit protocol of every transaction: 2pc or 3pc")
      ("no-kill", po::bool_switch(), "do not kill anything mid-run")
      ("plaintext", po::bool_switch(), "no TLS: plaintext connections on loopback")
      ("make-certs", po::value<std::string>()->default_value(""),
       "the certificate script (default: scripts/make-certs.sh of the source tree)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "bank_transfer: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  auto protocol = ParseProtocol(vm["protocol"].as<std::string>());
  if (!protocol.ok()) {
    std::cerr << "bank_transfer: --protocol: " << protocol.status().message() << "\n";
    return 2;
  }
  const TxnOptions txn{.protocol = *protocol};
  SetLogLevel("error");
  std::string bin = std::filesystem::absolute(vm["bin"].as<std::string>()).string();
  int seconds = vm["seconds"].as<int>();
  int concurrency = vm["concurrency"].as<int>();
  int accounts = vm["accounts"].as<int>();
  bool tty = isatty(2);

  char tmpl[] = "/tmp/txcoord-demo.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::printf("txcoord bank-transfer demo (%s): data and logs in %s\n", ProtocolFlag(txn.protocol),
              dir.c_str());

  // The certificates: a throwaway CA and one certificate per role, made now
  // into the demo's directory, next to its logs.
  std::string certs;
  if (!vm["plaintext"].as<bool>()) {
    std::string script = FindMakeCerts(vm["make-certs"].as<std::string>(), bin);
    if (script.empty()) {
      std::cerr << "bank_transfer: scripts/make-certs.sh not found: run from the source tree, give "
                   "--make-certs PATH, or --plaintext to run without TLS\n";
      return 2;
    }
    certs = dir + "/certs";
    std::string cmd = "bash '" + script + "' '" + certs + "' >'" + dir + "/make-certs.log' 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "bank_transfer: %s failed (see %s/make-certs.log; is openssl installed?); "
                   "--plaintext runs without TLS\n", script.c_str(), dir.c_str());
      return 1;
    }
    std::printf("TLS: on, mutual, every connection; certificates (CA, replica, agent, client, admin) in %s\n",
                certs.c_str());
  } else {
    std::printf("TLS: off (--plaintext): plaintext on loopback, no roles\n");
  }

  int replicas = vm["replicas"].as<int>();
  if (replicas != 1 && replicas != 3 && replicas != 5) {
    std::cerr << "bank_transfer: --replicas must be 1, 3 or 5\n";
    return 2;
  }
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
    for (const std::string& f : TlsFlags(RoleTls(certs, "replica"))) coords[i].argv.push_back(f);
  }
  std::map<std::string, Child> agents;
  for (std::string bank : {"bank_a", "bank_b"}) {
    Child a{"txagent " + bank, {}, dir + "/" + bank + ".log", FreePort()};
    a.argv = {bin + "/txagent", "--listen", "127.0.0.1:" + std::to_string(a.port), "--data",
              dir + "/" + bank, "--coordinator", caddr, "--resource",
              bank + "=sqlite:" + dir + "/" + bank + ".db"};
    for (const std::string& f : TlsFlags(RoleTls(certs, "agent"))) a.argv.push_back(f);
    agents.emplace(bank, std::move(a));
  }
  for (auto& c : coords) g_children.push_back(&c);
  g_children.push_back(&agents["bank_a"]);
  g_children.push_back(&agents["bank_b"]);
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
  for (auto& [bank, a] : agents) co.agents[bank] = "127.0.0.1:" + std::to_string(a.port);
  co.call_timeout = 3 * kSeconds;
  co.commit_timeout = 10 * kSeconds;
  co.tls = RoleTls(certs, "client");
  std::printf("waiting for the coordinator group to answer (up to 5 s)\n");
  auto client = Client::Connect(co);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  Client& c = **client;
  // The operator's view (the leader, the transactions in doubt) as admin:
  // a client certificate may not list transactions.
  ClientOptions ao = co;
  ao.tls = RoleTls(certs, "admin");
  auto admin = Client::Connect(ao);
  if (!admin.ok()) {
    std::fprintf(stderr, "%s\n", admin.status().ToString().c_str());
    return 1;
  }
  Client& ops = **admin;

  // Each bank: an accounts table, every account opened with 1000.
  for (const auto& [bank, a] : agents) {
    auto tx = c.Begin(txn);
    Status s = tx.status();
    if (tx.ok()) {
      auto e = tx->Execute(bank, {Sql("CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, "
                                      "balance INTEGER NOT NULL)"),
                                  Sql("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                                      "WHERE x < ?) INSERT INTO accounts SELECT x, 1000 FROM n",
                                      {Int(accounts)})});
      s = e.ok() ? tx->Commit() : e.status();
    }
    if (!s.ok()) {
      std::fprintf(stderr, "setting up %s failed: %s\n", bank.c_str(), s.ToString().c_str());
      return 1;
    }
  }
  int64_t before = SumBalances(c, txn, "bank_a") + SumBalances(c, txn, "bank_b");
  std::printf("opened %d accounts in each bank; total money: %ld\n", accounts, static_cast<long>(before));

  std::atomic<int64_t> committed{0}, aborted{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(w * 7919 + 1);
      while (!stop) {
        bool a_to_b = rng() % 2 == 0;
        std::string from = a_to_b ? "bank_a" : "bank_b", to = a_to_b ? "bank_b" : "bank_a";
        int64_t amount = 1 + rng() % 50;
        int64_t x = 1 + rng() % accounts, y = 1 + rng() % accounts;
        std::map<std::string, std::vector<proto::Statement>> work;
        work[from] = {SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                                {Int(amount), Int(x), Int(amount)}, 1)};
        work[to] = {SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?", {Int(amount), Int(y)}, 1)};
        auto r = c.Submit(work, txn);
        if (r.ok()) {
          ++committed;
        } else {
          // A real client backs off before retrying: more while a bank is unreachable.
          ++aborted;
          int ms = r.status().code() == Status::kUnavailable ? 50 : 2 + static_cast<int>(rng() % 8);
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        }
      }
    });
  }

  // The schedule: kill -9 an agent at 25% and restart it 1.5 s later; kill -9
  // the leading coordinator replica at 55% and restart it 2 s later.
  bool do_kill = !vm["no-kill"].as<bool>();
  enum Step { kKillAgent, kRestartAgent, kKillLeader, kRestartLeader, kDone };
  int step = do_kill ? kKillAgent : kDone;
  double at[] = {seconds * 0.25, seconds * 0.25 + 1.5, seconds * 0.55, seconds * 0.55 + 2.0};
  Child* dead_leader = nullptr;
  auto t0 = std::chrono::steady_clock::now();
  while (true) {
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t >= seconds) break;
    const char* nl = tty ? "\n" : "";
    if (step != kDone && t >= at[step]) {
      if (step == kKillAgent) {
        std::fprintf(stderr, "%s*** kill -9 txagent bank_b (pid %d) mid-run\n", nl, agents["bank_b"].pid);
        agents["bank_b"].Kill(SIGKILL);
      } else if (step == kRestartAgent) {
        bool ok = agents["bank_b"].Start();
        std::fprintf(stderr, "%s*** restarted txagent bank_b: pid %d %s\n", nl, agents["bank_b"].pid,
                     ok ? "(recovering in-doubt branches)" : "FAILED");
      } else if (step == kKillLeader) {
        for (auto& replica : coords) {
          if (replica.pid <= 0) continue;
          auto st = ops.ClusterStatus("127.0.0.1:" + std::to_string(replica.port));
          if (st.ok() && st->leader_id == st->replica_id && st->leader_id >= 1 && st->leader_id <= replicas) {
            dead_leader = &coords[st->leader_id - 1];
            break;
          }
        }
        if (dead_leader) {
          std::fprintf(stderr, "%s*** kill -9 the leading %s (pid %d)\n", nl, dead_leader->name.c_str(),
                       dead_leader->pid);
          dead_leader->Kill(SIGKILL);
        }
      } else if (step == kRestartLeader && dead_leader) {
        bool ok = dead_leader->Start();
        std::fprintf(stderr, "%s*** restarted %s: pid %d %s\n", nl, dead_leader->name.c_str(), dead_leader->pid,
                     ok ? "(catching up)" : "FAILED");
      }
      ++step;
    }
    int width = 30, filled = static_cast<int>(width * t / seconds);
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, tty ? "\r[%s] %3.0f%% committed=%ld aborted=%ld   " : "[%s] %3.0f%% committed=%ld aborted=%ld\n",
                 bar.c_str(), 100 * t / seconds, static_cast<long>(committed.load()),
                 static_cast<long>(aborted.load()));
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 1000));
  }
  stop = true;
  for (auto& w : workers) w.join();
  if (tty) std::fprintf(stderr, "\n");

  // Let every decided transaction reach both banks, then count the money.
  for (int i = 0; i < 300; ++i) {
    auto doubt = ops.ListTxns("in-doubt");
    if (doubt.ok() && doubt->empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  int64_t sa = SumBalances(c, txn, "bank_a"), sb = SumBalances(c, txn, "bank_b");
  int64_t after = (sa < 0 || sb < 0) ? -1 : sa + sb;
  bool held = after == before && before == 2LL * accounts * 1000;
  std::printf("bank_a=%ld bank_b=%ld\n", static_cast<long>(sa), static_cast<long>(sb));
  std::printf("RESULT committed=%ld aborted=%ld total_before=%ld total_after=%ld invariant=%s\n",
              static_cast<long>(committed.load()), static_cast<long>(aborted.load()), static_cast<long>(before),
              static_cast<long>(after), held ? "held" : "BROKEN");
  StopAll();
  return held ? 0 : 1;
}
