// txconform: runs the participant conformance cases (tools/conform/conform.h)
// against one agent and prints a table, one PASS, FAIL or SKIP line per case.
// Exit codes: 0 every case held (or was skipped), 1 a case failed or the agent
// could not be set up, 2 bad usage.
#include <signal.h>

#include <iostream>
#include <string>

#include <boost/program_options.hpp>

#include "common/cli.h"
#include "common/log.h"
#include "protocol/rpc.h"
#include "tools/conform/conform.h"

namespace po = boost::program_options;
using namespace txc;

namespace {

int Usage(const std::string& why) {
  std::cerr << "txconform: " << why
            << "\nusage: txconform --agent HOST:PORT --resource NAME [--kind sql|queue] "
               "[--restart-cmd CMD] [--timeout DURATION]\n(--help lists the options)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("txconform options");
  desc.add_options()
      ("agent", po::value<std::string>(), "HOST:PORT of the participant agent under test")
      ("resource", po::value<std::string>(), "the resource of that agent the cases write")
      ("kind", po::value<std::string>()->default_value("sql"),
       "the resource's kind: sql (table txconform_kv, created if missing) or queue "
       "(ENQUEUE/DEQUEUE/COUNT statements)")
      ("restart-cmd", po::value<std::string>()->default_value(""),
       "a shell command (/bin/sh -c) that kills the agent and starts it again, on the same "
       "address; without it the crash-after-yes case is skipped")
      ("timeout", po::value<std::string>()->default_value("10s"),
       "deadline of each call, and bound of each wait (the restart command, the agent "
       "listening again, a lock wait): 10s, 500ms, 2m")
      ("epoch", po::value<int64_t>()->default_value(0),
       "the epoch of every txid the cases use; 0 picks one from the clock, far above any "
       "coordinator's (docs/sdk.md, section txconform, says why)")
      ("verbose,v", po::bool_switch(), "print every check of every case, not only of the cases that fail");
  po::variables_map vm;
  cli::Parse(argc, argv,
             "usage: txconform --agent HOST:PORT --resource NAME [--kind sql|queue] "
             "[--restart-cmd CMD] [--timeout DURATION]",
             desc, vm);
  if (!vm.count("agent")) return Usage("--agent HOST:PORT is required");
  if (!vm.count("resource") || vm["resource"].as<std::string>().empty()) {
    return Usage("--resource NAME is required");
  }
  conform::Options o;
  o.agent = vm["agent"].as<std::string>();
  if (auto ep = rpc::ParseEndpoint(o.agent); !ep.ok()) {
    return Usage("--agent '" + o.agent + "': " + ep.status().message());
  }
  o.resource = vm["resource"].as<std::string>();
  const std::string kind = vm["kind"].as<std::string>();
  if (kind == "sql") {
    o.kind = conform::Kind::kSql;
  } else if (kind == "queue") {
    o.kind = conform::Kind::kQueue;
  } else {
    return Usage("--kind '" + kind + "': use sql or queue");
  }
  o.restart_cmd = vm["restart-cmd"].as<std::string>();
  std::optional<Micros> timeout = cli::ParseDuration(vm["timeout"].as<std::string>());
  if (!timeout || *timeout < 10 * kMillis) {
    return Usage("--timeout '" + vm["timeout"].as<std::string>() +
                 "': a duration of at least 10ms, e.g. 10s, 500ms, 2m");
  }
  o.timeout = *timeout;
  o.epoch = vm["epoch"].as<int64_t>();
  o.verbose = vm["verbose"].as<bool>();
  if (o.epoch < 0) return Usage("--epoch must be 0 (pick one) or a positive epoch");
  SetLogLevel(vm["log-level"].as<std::string>());
  // A connection the agent closes under a large write must not kill us.
  signal(SIGPIPE, SIG_IGN);
  auto results = conform::Run(o, std::cout);
  return conform::ExitCode(results);
}
