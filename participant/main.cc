// txagent: a participant agent hosting one or more resources.
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <filesystem>
#include <iostream>

#include <boost/asio.hpp>

#include "common/cli.h"
#include "common/log.h"
#include "common/server_memory.h"
#include "participant/agent.h"
#include "protocol/tls_flags.h"
#include "protocol/validate.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  txc::KeepLargeBuffersOutOfTheHeap();  // before any thread: see common/server_memory.h
  po::options_description desc("txagent options");
  desc.add_options()
      ("listen", po::value<std::string>()->default_value("127.0.0.1:7100"), "HOST:PORT to serve on")
      ("data", po::value<std::string>()->default_value("./txagent-data"), "the agent's own directory")
      ("coordinator", po::value<std::string>()->required(),
       "the coordinator group: HOST:PORT[,HOST:PORT...]")
      ("resource", po::value<std::vector<std::string>>()->required(),
       "a resource to host (repeatable): NAME=sqlite:PATH (PATH?ddl=deny: refuse schema "
       "changes from transactions), NAME=postgres:'host=... dbname=...' "
       "(a libpq connection string), NAME=mariadb:'host=... port=... database=... user=...' or "
       "NAME=queue:PATH (a transactional message queue in an SQLite file)")
      ("db-pool-size", po::value<int64_t>()->default_value(32),
       "most connections each postgres:/mariadb: resource opens; a new branch waits up to 5 s "
       "for one when all are taken (MariaDB holds one per prepared branch until its decision)")
      ("secret-file", po::value<std::vector<std::string>>(),
       "NAME=PATH: the password of database resource NAME is PATH's first line (repeatable); "
       "or set TXC_PASSWORD_<NAME> in the environment (PostgreSQL also reads PGPASSWORD and "
       "~/.pgpass)")
      ("lock-timeout-ms", po::value<int64_t>()->default_value(2000),
       "how long a statement waits for a row lock held by a younger transaction (one that "
       "meets an older transaction's lock is aborted at once: wait-die)")
      ("active-timeout-ms", po::value<int64_t>()->default_value(60000),
       "an idle ACTIVE branch asks the coordinator after this long")
      ("max-branch-statements", po::value<int64_t>()->default_value(100000),
       "most statements one branch runs over its whole life (all its Execute calls); an "
       "Execute past it is refused, nothing of it applied")
      ("autonomous-termination-timeout", po::value<std::string>()->default_value("0"),
       "3PC: when the coordinator group has been unreachable this long (e.g. 10s), an in-doubt "
       "branch asks the other participants and decides by Skeen's rule; 0 = off (the default). "
       "Unsafe under partitions: see docs/protocols.md")
      ("metrics-listen", po::value<std::string>()->default_value(""),
       "HOST:PORT to serve Prometheus metrics on (GET /metrics); empty: off")
      ("confirm-decisions", po::value<std::string>()->default_value("auto")->implicit_value("on"),
       "confirm a COMMIT or ABORT for a prepared branch with the coordinator group before "
       "applying it: auto (the default) = on in plaintext, where anyone who reaches the port "
       "could send one, off with TLS, where only the replica role may call Decide; on; off "
       "(trust every caller: loopback experiments only). See docs/protocol.md")
      ("sign-decisions", po::value<std::string>()->default_value("on"),
       "with --confirm-decisions in effect: on (the default) = register a key of this run with "
       "the coordinator group over the connections this agent dials, and apply without asking "
       "a decision signed under it; off = confirm every decision. See docs/protocol.md")
      ("advertise", po::value<std::string>()->default_value(""),
       "HOST:PORT that participants name this agent by, the address the group signs decisions "
       "for (default: --listen)");
  txc::rpc::AddServerOptions(desc);
  txc::rpc::AddTlsOptions(desc);
  po::variables_map vm;
  txc::cli::Parse(argc, argv,
                  "usage: txagent --listen HOST:PORT --data DIR --coordinator HOST:PORT[,...] "
                  "--resource NAME=KIND:WHERE [--resource ...] [--secret-file NAME=PATH]",
                  desc, vm);
  txc::SetLogLevel(vm["log-level"].as<std::string>());
  auto log = txc::Logger("agent");
  // Before any resource is opened: a wrong certificate file changes nothing.
  txc::TlsConfig tls;
  {
    std::vector<std::string> addresses{vm["listen"].as<std::string>(),
                                       vm["metrics-listen"].as<std::string>()};
    for (const std::string& c : txc::rpc::SplitList(vm["coordinator"].as<std::string>())) {
      addresses.push_back(c);
    }
    auto parsed = txc::rpc::TlsFromOptions(vm, "txagent", addresses);
    if (!parsed.ok()) {
      std::cerr << "txagent: " << parsed.status().message() << "\n";
      return 2;
    }
    tls = *parsed;
  }

  // Flags checked before any resource is opened: a typo touches nothing.
  using Confirm = txc::participant::AgentNodeOptions::Confirm;
  Confirm confirm = Confirm::kAuto;
  if (const std::string c = vm["confirm-decisions"].as<std::string>(); c == "auto" || c == "on" ||
                                                                        c == "off") {
    confirm = c == "auto" ? Confirm::kAuto : c == "on" ? Confirm::kOn : Confirm::kOff;
  } else {
    std::cerr << "txagent: --confirm-decisions wants auto, on or off, not '" << c << "'\n";
    return 2;
  }
  bool sign = true;
  if (const std::string c = vm["sign-decisions"].as<std::string>(); c == "on" || c == "off") {
    sign = c == "on";
  } else {
    std::cerr << "txagent: --sign-decisions wants on or off, not '" << c << "'\n";
    return 2;
  }
  if (const std::string a = vm["advertise"].as<std::string>();
      !a.empty() && (a.size() > txc::validate::kMaxNameBytes || a.find(':') == std::string::npos ||
                     a.back() == ':')) {
    std::cerr << "txagent: --advertise wants HOST:PORT of at most " << txc::validate::kMaxNameBytes
              << " bytes, not '" << a.substr(0, 60) << (a.size() > 60 ? "...'" : "'") << "\n";
    return 2;
  }

  // Every flag is checked before anything is created or opened: a refused
  // start leaves the data directory, the databases and the incarnation as
  // they were.
  txc::participant::AgentNodeOptions o;
  o.listen = vm["listen"].as<std::string>();
  o.coordinators = txc::rpc::SplitList(vm["coordinator"].as<std::string>());
  o.core.lock_timeout = vm["lock-timeout-ms"].as<int64_t>() * txc::kMillis;
  o.core.active_timeout = vm["active-timeout-ms"].as<int64_t>() * txc::kMillis;
  if (int64_t m = vm["max-branch-statements"].as<int64_t>(); m < 1) {
    std::cerr << "txagent: --max-branch-statements wants a positive count, got " << m << "\n";
    return 2;
  } else {
    o.core.max_branch_statements = static_cast<size_t>(m);
  }
  o.confirm_decisions = confirm;
  o.sign_decisions = sign;
  o.advertise = vm["advertise"].as<std::string>();
  o.metrics_listen = vm["metrics-listen"].as<std::string>();
  {
    std::string d = vm["autonomous-termination-timeout"].as<std::string>();
    auto parsed = d == "0" ? std::optional<txc::Micros>(0) : txc::cli::ParseDuration(d);
    if (!parsed || *parsed < 0) {
      std::cerr << "txagent: --autonomous-termination-timeout wants a duration such as 500ms, "
                   "10s or 2m (0 = off), not '"
                << d << "'\n";
      return 2;
    }
    o.core.autonomous_termination_timeout = *parsed;
    if (*parsed > 0) {
      log->warn("autonomous termination is on ({} ms): an in-doubt 3PC branch whose coordinator "
                "group is unreachable decides with the other participants (unsafe under "
                "partitions; reported as a heuristic hazard if the group decided otherwise)",
                *parsed / txc::kMillis);
    }
  }
  if (o.coordinators.empty()) {
    std::cerr << "txagent: --coordinator names no address\n";
    return 2;
  }
  o.tls = tls;
  bool unix_socket = true;
  if (txc::Status bad = txc::rpc::ReadServerOptions(vm, &o.rpc_idle_timeout,
                                                    &o.rpc_max_connections_per_peer, &unix_socket);
      !bad.ok()) {
    std::cerr << "txagent: " << bad.message() << "\n";
    return 2;
  }
  if (!unix_socket) txc::rpc::DisableUnixSockets();  // before any server or channel

  std::error_code ec;
  std::string data = vm["data"].as<std::string>();
  txc::participant::ResourceContext context;
  context.data_dir = data;
  if (vm["db-pool-size"].as<int64_t>() < 1 || vm["db-pool-size"].as<int64_t>() > 4096) {
    std::cerr << "txagent: --db-pool-size wants 1..4096\n";
    return 2;
  }
  context.db_pool_size = static_cast<size_t>(vm["db-pool-size"].as<int64_t>());
  for (const std::string& spec : vm["resource"].as<std::vector<std::string>>()) {
    std::string name = spec.substr(0, spec.find('='));
    std::string env = "TXC_PASSWORD_";
    for (char c : name) env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (const char* p = std::getenv(env.c_str())) context.passwords[name] = p;
  }
  std::vector<std::string> secret_files;
  if (vm.count("secret-file")) secret_files = vm["secret-file"].as<std::vector<std::string>>();
  for (const std::string& f : secret_files) {
    auto eq = f.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == f.size()) {
      std::cerr << "txagent: --secret-file wants NAME=PATH, not '" << f << "'\n";
      return 2;
    }
    std::ifstream in(f.substr(eq + 1));
    std::string line;
    if (!in || !std::getline(in, line)) {
      std::cerr << "txagent: --secret-file " << f << ": cannot read a password from "
                << f.substr(eq + 1) << "\n";
      return 2;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    context.passwords[f.substr(0, eq)] = line;
  }
  std::filesystem::create_directories(data, ec);
  std::vector<std::unique_ptr<txc::participant::ResourceManager>> resources;
  for (const std::string& spec : vm["resource"].as<std::vector<std::string>>()) {
    auto r = txc::participant::MakeResource(spec, context);
    if (!r.ok()) {
      std::cerr << "txagent: --resource " << spec.substr(0, spec.find('=')) << ": "
                << r.status().ToString() << "\n";
      return 2;
    }
    resources.push_back(std::move(r.value()));
  }
  auto incarnation = txc::participant::NextIncarnation(data + "/incarnation");
  if (!incarnation.ok()) {
    log->error("cannot start: {}", incarnation.status().ToString());
    return 1;
  }
  o.core.incarnation = *incarnation;

  boost::asio::io_context io;
  txc::rpc::TlsReloadOnSighup reload(io);
  txc::participant::Agent agent(io, o, std::move(resources));
  txc::Status s = agent.Start();
  if (!s.ok()) {
    log->error("cannot start: {}", s.ToString());
    return 1;
  }
  txc::ReturnFreedMemoryEvery(io, std::chrono::seconds(1));  // see common/server_memory.h
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    log->info("signal {}: stopping", sig);
    agent.Stop();
    io.stop();
  });
  io.run();
  return 0;
}
