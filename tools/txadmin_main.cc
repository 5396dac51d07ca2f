// txadmin: the operator's tool: cluster status and transactions.
#include <cstdio>
#include <fstream>
#include <iostream>

#include <boost/program_options.hpp>

#include "client/client.h"
#include "common/cli.h"
#include "common/log.h"
#include "protocol/coordinator_set.h"

namespace po = boost::program_options;
using namespace txc;

namespace {

std::string Json(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

const char* Usage() {
  return "usage: txadmin --coordinator HOST:PORT[,...] COMMAND [--json]\n"
         "       txadmin --config FILE COMMAND [--json]   (FILE: key = value lines with the\n"
         "                                                 option names, e.g. coordinator = ...;\n"
         "                                                 the command line wins)\n"
         "commands:\n"
         "  status                 replicas, leader, epoch, indexes, lag\n"
         "  txns [--state S]       transactions the leader is driving; S = in-doubt, active,\n"
         "                         voting, deciding, completing, ending";
}

int Status_(Client& c, const std::vector<std::string>& replicas, bool json) {
  // Ask every replica for its own view; the leader's answer names the leader.
  std::vector<proto::StatusResponse> views;
  std::vector<std::string> down;
  for (const auto& r : replicas) {
    auto s = c.ClusterStatus(r);
    if (s.ok()) {
      views.push_back(*s);
    } else {
      down.push_back(r);
    }
  }
  if (views.empty()) {
    std::cerr << "txadmin: no coordinator replica answered\n";
    return 1;
  }
  const proto::StatusResponse* leader = nullptr;
  for (const auto& v : views) {
    if (v.leader_id != 0 && v.leader_id == v.replica_id) leader = &v;
  }
  int64_t leader_applied = leader ? leader->applied_index : 0;
  if (json) {
    std::printf("{\"leader\":%s,\"epoch\":%ld,\"replicas\":[",
                leader ? std::to_string(leader->replica_id).c_str() : "null",
                static_cast<long>(leader ? leader->epoch : 0));
    for (size_t i = 0; i < views.size(); ++i) {
      const auto& v = views[i];
      std::printf("%s{\"id\":%d,\"leader_id\":%d,\"epoch\":%ld,\"commit_index\":%ld,\"applied_index\":%ld,"
                  "\"lag\":%ld,\"active_txns\":%ld,\"decided_txns\":%ld,\"storage_failed\":%s}",
                  i ? "," : "", v.replica_id, v.leader_id, static_cast<long>(v.epoch),
                  static_cast<long>(v.commit_index), static_cast<long>(v.applied_index),
                  static_cast<long>(std::max<int64_t>(0, leader_applied - v.applied_index)),
                  static_cast<long>(v.active_txns), static_cast<long>(v.decided_txns),
                  v.storage_failed ? "true" : "false");
    }
    std::printf("],\"unreachable\":[");
    for (size_t i = 0; i < down.size(); ++i) std::printf("%s%s", i ? "," : "", Json(down[i]).c_str());
    std::printf("]}\n");
    return 0;
  }
  std::printf("leader: %s   epoch: %ld\n",
              leader ? std::to_string(leader->replica_id).c_str() : "(none)",
              static_cast<long>(leader ? leader->epoch : 0));
  std::printf("%-4s %-8s %-12s %-12s %-6s %-8s %-8s\n", "id", "role", "commit", "applied", "lag", "active", "decided");
  for (const auto& v : views) {
    std::printf("%-4d %-8s %-12ld %-12ld %-6ld %-8ld %-8ld%s\n", v.replica_id,
                v.leader_id == v.replica_id ? "leader" : "follower", static_cast<long>(v.commit_index),
                static_cast<long>(v.applied_index),
                static_cast<long>(std::max<int64_t>(0, leader_applied - v.applied_index)),
                static_cast<long>(v.active_txns), static_cast<long>(v.decided_txns),
                v.storage_failed ? "  STORAGE FAILED" : "");
  }
  for (const auto& d : down) std::printf("unreachable: %s\n", d.c_str());
  return 0;
}

int Txns(Client& c, const std::string& state, bool json) {
  auto txns = c.ListTxns(state);
  if (!txns.ok()) {
    std::cerr << "txadmin: " << txns.status().ToString() << "\n";
    return 1;
  }
  if (json) {
    std::printf("[");
    for (size_t i = 0; i < txns->size(); ++i) {
      const auto& t = (*txns)[i];
      std::printf("%s{\"txid\":%s,\"state\":%s,\"outcome\":%s,\"in_doubt\":%s,\"age_ms\":%ld,\"participants\":[",
                  i ? "," : "", Json(ToString(t.txid)).c_str(), Json(t.state).c_str(),
                  Json(OutcomeName(t.outcome)).c_str(), t.in_doubt ? "true" : "false",
                  static_cast<long>(t.age_ms));
      for (size_t j = 0; j < t.participants.size(); ++j) {
        std::printf("%s{\"resource\":%s,\"address\":%s}", j ? "," : "",
                    Json(t.participants[j].resource).c_str(), Json(t.participants[j].address).c_str());
      }
      std::printf("],\"acked\":[");
      for (size_t j = 0; j < t.acked.size(); ++j) std::printf("%s%s", j ? "," : "", Json(t.acked[j]).c_str());
      std::printf("]}");
    }
    std::printf("]\n");
    return 0;
  }
  std::printf("%-14s %-11s %-10s %-8s %-8s %s\n", "txid", "state", "outcome", "in-doubt", "age_ms", "participants");
  for (const auto& t : *txns) {
    std::string ps;
    for (const auto& p : t.participants) ps += (ps.empty() ? "" : ",") + p.resource + "@" + p.address;
    std::printf("%-14s %-11s %-10s %-8s %-8ld %s\n", ToString(t.txid).c_str(), t.state.c_str(),
                OutcomeName(t.outcome), t.in_doubt ? "yes" : "no", static_cast<long>(t.age_ms), ps.c_str());
  }
  std::printf("(%zu transactions)\n", txns->size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("txadmin options");
  desc.add_options()
      ("coordinator", po::value<std::string>()->required(), "HOST:PORT[,HOST:PORT...] of the coordinator group")
      ("command", po::value<std::string>(), "status | txns")
      ("state", po::value<std::string>()->default_value(""), "with txns: in-doubt, active, voting, ...")
      ("json", po::bool_switch(), "machine-readable output");
  po::positional_options_description pos;
  pos.add("command", 1);
  po::variables_map vm;
  desc.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(),
      "read options from this INI-style file (key = value); the command line wins")(
      "log-level", po::value<std::string>()->default_value("warn"), "log level");
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).positional(pos).run(), vm);
    if (vm.count("help")) {
      std::cout << Usage() << "\n\n" << desc << "\n";
      return 0;
    }
    if (vm.count("config")) {
      // Stored after the command line, so a value given there wins.
      std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw po::error("cannot read config file " + path);
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "txadmin: " << e.what() << "\n" << Usage() << "\n";
    return 2;
  }
  SetLogLevel(vm["log-level"].as<std::string>());
  if (!vm.count("command")) {
    std::cerr << Usage() << "\n";
    return 2;
  }
  ClientOptions co;
  co.coordinators = rpc::SplitList(vm["coordinator"].as<std::string>());
  co.commit_timeout = 5 * kSeconds;
  auto client = Client::Connect(co);
  if (!client.ok()) {
    std::cerr << "txadmin: " << client.status().ToString() << "\n";
    return 2;
  }
  std::string cmd = vm["command"].as<std::string>();
  bool json = vm["json"].as<bool>();
  if (cmd == "status") return Status_(**client, co.coordinators, json);
  if (cmd == "txns") return Txns(**client, vm["state"].as<std::string>(), json);
  std::cerr << "txadmin: unknown command '" << cmd << "'\n" << Usage() << "\n";
  return 2;
}
