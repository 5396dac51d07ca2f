// txcoord: one coordinator replica.
#include <algorithm>
#include <csignal>
#include <iostream>

#include <boost/asio.hpp>

#include "common/cli.h"
#include "common/log.h"
#include "common/server_memory.h"
#include "coordinator/node.h"
#include "protocol/coordinator_set.h"
#include "protocol/validate.h"
#include "protocol/tls_flags.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  txc::KeepLargeBuffersOutOfTheHeap();  // before any thread: see common/server_memory.h
  po::options_description desc("txcoord options");
  desc.add_options()
      ("id", po::value<int>()->default_value(1), "this replica's id (1..N)")
      ("listen", po::value<std::string>()->default_value("127.0.0.1:7000"), "HOST:PORT to serve on")
      ("peers", po::value<std::string>()->default_value(""),
       "every replica of the group: 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT (empty: a single replica)")
      ("data", po::value<std::string>()->default_value("./txcoord-data"), "directory of the decision log")
      ("vote-timeout-ms", po::value<int64_t>()->default_value(5000),
       "abort when a vote is missing this long; 3PC: commit without a missing PRE_COMMIT ack "
       "after this long")
      ("txn-timeout-ms", po::value<int64_t>()->default_value(60000), "abort a begun transaction not committed within")
      ("stuck-after", po::value<std::string>()->default_value("60s"),
       "flag a decided transaction stuck (txadmin txns --state stuck; a warning each interval) when its "
       "outcome has not reached every participant this long after the decision (e.g. 10s, 500ms, 2m)")
      ("snapshot-every", po::value<uint64_t>()->default_value(100000),
       "write a snapshot of the transaction table and truncate the log after this many applied "
       "commands (a log record holds the commands the leader proposed at once; counts as one at least)")
      ("retain-ended", po::value<uint64_t>()->default_value(txc::coord::TxnTableOptions{}.ended_retained),
       "ended transactions kept whole; older ones keep only their outcome")
      ("election-timeout-ms", po::value<int64_t>()->default_value(300),
       "in a group: a follower that hears no leader for a random time between this and twice "
       "this starts an election (longer: fewer needless elections on a slow network, a longer "
       "wait for a new leader)")
      ("unsafe-no-sync", po::bool_switch(), "benchmarks only: do not fsync the decision log")
      ("max-participants", po::value<size_t>()->default_value(txc::validate::kMaxParticipants),
       "most participants (resource at agent) one transaction may have; a Commit or Submit "
       "naming more is refused (1 to 1000)")
      ("serve-log-bench", po::bool_switch(),
       "benchmarks only: serve LogBench.Append (txbench log and probe), which writes records "
       "into the decision log; off, such a call is refused")
      ("metrics-listen", po::value<std::string>()->default_value(""),
       "HOST:PORT to serve Prometheus metrics on (GET /metrics); empty: off");
  txc::rpc::AddServerOptions(desc);
  txc::rpc::AddTlsOptions(desc);
  po::variables_map vm;
  txc::cli::Parse(argc, argv, "usage: txcoord --listen HOST:PORT --data DIR [--id N --peers LIST]", desc, vm);
  txc::SetLogLevel(vm["log-level"].as<std::string>());

  txc::coord::NodeOptions o;
  o.replica_id = vm["id"].as<int>();
  o.listen = vm["listen"].as<std::string>();
  o.data_dir = vm["data"].as<std::string>();
  o.driver.vote_timeout = vm["vote-timeout-ms"].as<int64_t>() * txc::kMillis;
  o.driver.precommit_ack_timeout = o.driver.vote_timeout;
  o.driver.txn_timeout = vm["txn-timeout-ms"].as<int64_t>() * txc::kMillis;
  if (auto d = txc::cli::ParseDuration(vm["stuck-after"].as<std::string>()); d && *d > 0) {
    o.driver.stuck_after = *d;
  } else {
    std::cerr << "txcoord: --stuck-after wants a positive duration such as 10s, 500ms or 2m, got '"
              << vm["stuck-after"].as<std::string>() << "'\n";
    return 2;
  }
  o.unsafe_no_sync = vm["unsafe-no-sync"].as<bool>();
  o.serve_log_bench = vm["serve-log-bench"].as<bool>();
  o.driver.max_participants = vm["max-participants"].as<size_t>();
  if (o.driver.max_participants < 1 || o.driver.max_participants > txc::validate::kMaxParticipants) {
    std::cerr << "txcoord: --max-participants must be between 1 and "
              << txc::validate::kMaxParticipants << ", got " << o.driver.max_participants << "\n";
    return 2;
  }
  bool unix_socket = true;
  if (txc::Status bad = txc::rpc::ReadServerOptions(vm, &o.rpc_idle_timeout,
                                                    &o.rpc_max_connections_per_peer, &unix_socket);
      !bad.ok()) {
    std::cerr << "txcoord: " << bad.message() << "\n";
    return 2;
  }
  if (!unix_socket) txc::rpc::DisableUnixSockets();  // before any server or channel
  int64_t election_ms = vm["election-timeout-ms"].as<int64_t>();
  if (election_ms < 100 || election_ms > 60000) {
    std::cerr << "txcoord: --election-timeout-ms must be between 100 and 60000 (more than the "
                 "50 ms heartbeat), got " << election_ms << "\n";
    return 2;
  }
  o.election_min = election_ms * txc::kMillis;
  o.election_max = 2 * o.election_min;
  o.metrics_listen = vm["metrics-listen"].as<std::string>();
  o.driver.table.ended_retained = vm["retain-ended"].as<uint64_t>();
  o.snapshot_every = std::max<uint64_t>(1, vm["snapshot-every"].as<uint64_t>());
  for (const std::string& p : txc::rpc::SplitList(vm["peers"].as<std::string>())) {
    auto eq = p.find('=');
    int id = 0;
    try {
      id = eq == std::string::npos ? 0 : std::stoi(p.substr(0, eq));
    } catch (const std::exception&) {
      id = 0;
    }
    if (id <= 0 || eq + 1 >= p.size()) {
      std::cerr << "txcoord: --peers wants ID=HOST:PORT items, got '" << p << "'\n";
      return 2;
    }
    o.peers[id] = p.substr(eq + 1);
  }
  if (!o.peers.empty() && o.peers.count(o.replica_id) == 0) {
    std::cerr << "txcoord: --id " << o.replica_id << " is not one of --peers\n";
    return 2;
  }
  if (!o.peers.empty() && o.peers[o.replica_id] != o.listen) {
    std::cerr << "txcoord: --listen " << o.listen << " differs from this replica's --peers address "
              << o.peers[o.replica_id] << "\n";
    return 2;
  }

  {
    std::vector<std::string> addresses{o.listen, o.metrics_listen};
    for (const auto& [id, address] : o.peers) addresses.push_back(address);
    auto tls = txc::rpc::TlsFromOptions(vm, "txcoord", addresses);
    if (!tls.ok()) {
      std::cerr << "txcoord: " << tls.status().message() << "\n";
      return 2;
    }
    o.tls = *tls;
  }

  boost::asio::io_context io;
  txc::rpc::TlsReloadOnSighup reload(io);
  txc::coord::CoordinatorNode node(io, o);
  txc::Status s = node.Start();
  if (!s.ok()) {
    txc::Logger("coord")->error("cannot start: {}", s.ToString());
    return 1;
  }
  txc::ReturnFreedMemoryEvery(io, std::chrono::seconds(1));  // see common/server_memory.h
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    txc::Logger("coord")->info("signal {}: stopping", sig);
    node.Stop();
    io.stop();
  });
  io.run();
  return 0;
}
