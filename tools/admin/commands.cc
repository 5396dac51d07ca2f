#include "tools/admin/commands.h"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <future>
#include <map>
#include <memory>

#include "client/client.h"
#include "common/log.h"
#include "common/status_proto.h"
#include "common/txid.h"
#include "protocol/rpc.h"
#include "tools/admin/report.h"
#include "tools/admin/wal_dump.h"

namespace txc::admin {

namespace {

constexpr Micros kReplicaTimeout = 2 * kSeconds;
constexpr Micros kAgentTimeout = 5 * kSeconds;

std::string List(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ",") + i;
  return s;
}

Result<std::unique_ptr<Client>> ConnectGroup(const Invocation& inv) {
  ClientOptions co;
  co.coordinators = inv.coordinators;
  co.commit_timeout = 5 * kSeconds;
  return Client::Connect(co);
}

void Print(std::ostream& out, const Invocation& inv, const Json& j, const std::string& text) {
  if (inv.json) {
    out << j.dump() << "\n";
  } else {
    out << text;
  }
}

// The group's answers come from its leader; an error names what to check.
std::string GroupError(const Invocation& inv, const Status& s) {
  return "txadmin: the coordinator group did not answer (" + s.ToString() + "): run txadmin "
         "--coordinator " + List(inv.coordinators) + " status to see which replicas run and "
         "whether one leads";
}

int Status_(const Invocation& inv, std::ostream& out, std::ostream& err) {
  auto client = ConnectGroup(inv);
  if (!client.ok()) {
    err << "txadmin: " << client.status().ToString() << "\n";
    return kExitUsage;
  }
  // Every replica at once, so one that hangs costs one timeout, not one each.
  std::vector<std::future<Result<proto::StatusResponse>>> pending;
  for (const auto& a : inv.coordinators) {
    pending.push_back(std::async(std::launch::async, [&c = **client, a] { return c.ClusterStatus(a); }));
  }
  std::vector<ReplicaAnswer> answers;
  for (size_t i = 0; i < pending.size(); ++i) {
    ReplicaAnswer a;
    a.address = inv.coordinators[i];
    auto r = pending[i].get();
    if (r.ok()) {
      a.status = std::move(*r);
    } else {
      a.error = r.status().ToString();
    }
    answers.push_back(std::move(a));
  }
  StatusReport report = BuildStatus(answers);
  Print(out, inv, StatusJson(report), StatusTable(report));
  if (report.reachable == 0) {
    err << "txadmin: no coordinator replica answered at " << List(inv.coordinators)
        << ": check that txcoord runs there and that --coordinator lists its --listen addresses\n";
    return kExitError;
  }
  return kExitOk;
}

int Txns(const Invocation& inv, std::ostream& out, std::ostream& err) {
  auto client = ConnectGroup(inv);
  if (!client.ok()) {
    err << "txadmin: " << client.status().ToString() << "\n";
    return kExitUsage;
  }
  std::string state = inv.options["state"].as<std::string>();
  auto txns = (*client)->ListTxns(state);
  if (!txns.ok()) {
    err << GroupError(inv, txns.status()) << "\n";
    return kExitError;
  }
  Print(out, inv, TxnsJson(*txns), TxnsTable(*txns));
  return kExitOk;
}

int TxnShow(const Invocation& inv, std::ostream& out, std::ostream& err) {
  auto client = ConnectGroup(inv);
  if (!client.ok()) {
    err << "txadmin: " << client.status().ToString() << "\n";
    return kExitUsage;
  }
  TxId txid = *ParseTxId(inv.args[0]);
  auto outcome = (*client)->Outcome(txid);
  if (!outcome.ok()) {
    // The group answers INVALID_ARGUMENT for a txid it never allocated, and
    // sends a txid of a newer epoch to a newer leader, which may not exist.
    err << "txadmin: no outcome for " << inv.args[0] << ": " << outcome.status().ToString()
        << ": check the txid (txadmin txns lists the transactions the leader drives), and that "
           "the group has a leader (txadmin --coordinator " << List(inv.coordinators) << " status)\n";
    return kExitError;
  }
  std::optional<proto::TxnInfo> info;
  auto shown = (*client)->ShowTxn(txid);
  if (shown.ok()) {
    info = std::move(*shown);
  } else if (shown.status().code() != Status::kNotFound) {
    err << GroupError(inv, shown.status()) << "\n";
    return kExitError;
  }
  std::string id = ToString(txid);
  Print(out, inv, TxnShowJson(id, info, *outcome), TxnShowText(id, info, *outcome));
  return kExitOk;
}

int Retry(const Invocation& inv, const std::optional<TxId>& txid, std::ostream& out,
          std::ostream& err) {
  auto client = ConnectGroup(inv);
  if (!client.ok()) {
    err << "txadmin: " << client.status().ToString() << "\n";
    return kExitUsage;
  }
  auto retried = (*client)->RetryTxns(txid);
  if (!retried.ok()) {
    err << GroupError(inv, retried.status()) << "\n";
    return kExitError;
  }
  Json j;
  j["retried"] = *retried;
  if (txid) j["txid"] = ToString(*txid);
  std::string text = "resent the decision of " + std::to_string(*retried) + " transaction(s)\n";
  Print(out, inv, j, text);
  if (txid && *retried == 0) {
    err << "txadmin: the leader is not delivering a decision for " << ToString(*txid)
        << " (not decided yet, or ended): txadmin txn show " << ToString(*txid) << " says which\n";
    return kExitError;
  }
  return kExitOk;
}

std::string OsUser() {
  if (const char* u = std::getenv("USER"); u != nullptr && *u != '\0') return u;
  if (const passwd* pw = getpwuid(getuid()); pw != nullptr && pw->pw_name != nullptr) return pw->pw_name;
  return "uid " + std::to_string(getuid());
}

int TxnResolve(const Invocation& inv, std::ostream& out, std::ostream& err) {
  TxId txid = *ParseTxId(inv.args[0]);
  bool abort = inv.options["abort"].as<bool>();
  std::string reason = inv.options["reason"].as<std::string>();
  std::string who = inv.options.count("who") ? inv.options["who"].as<std::string>() : OsUser();
  if (!inv.options["yes"].as<bool>()) {
    if (!isatty(STDIN_FILENO)) {
      err << "txadmin: txn resolve changes the outcome of " << inv.args[0]
          << " for good: confirm with --yes (stdin is not a terminal to ask on)\n";
      return kExitUsage;
    }
    out << "Resolve " << inv.args[0] << " " << (abort ? "ABORTED" : "COMMITTED") << " as " << who
        << " (" << reason << ")? Type yes: " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "yes") {
      err << "txadmin: not confirmed; nothing was changed\n";
      return kExitError;
    }
  }
  auto client = ConnectGroup(inv);
  if (!client.ok()) {
    err << "txadmin: " << client.status().ToString() << "\n";
    return kExitUsage;
  }
  auto r = (*client)->Resolve(txid, abort ? proto::Outcome::ABORTED : proto::Outcome::COMMITTED,
                              reason, who);
  if (!r.ok()) {
    if (r.status().code() == Status::kInvalidArgument) {
      err << "txadmin: refused: " << r.status().message() << "\n";
    } else {
      err << GroupError(inv, r.status()) << "\n";
    }
    return kExitError;
  }
  Json j;
  j["txid"] = inv.args[0];
  j["outcome"] = OutcomeName(r->outcome);
  j["reason"] = r->reason;
  j["who"] = who;
  Print(out, inv, j,
        "resolved " + inv.args[0] + ": " + OutcomeName(r->outcome) + " (" + r->reason + ")\n");
  return kExitOk;
}

int TxnRetry(const Invocation& inv, std::ostream& out, std::ostream& err) {
  return Retry(inv, ParseTxId(inv.args[0]), out, err);
}

int TxnsRetry(const Invocation& inv, std::ostream& out, std::ostream& err) {
  return Retry(inv, std::nullopt, out, err);
}

int AgentBranches(const Invocation& inv, std::ostream& out, std::ostream& err) {
  boost::asio::io_context io;
  auto channel = std::make_shared<rpc::RpcChannel>(io, inv.agent);
  Status status = Status::Timeout("no answer within " + std::to_string(kAgentTimeout / kSeconds) + " s");
  proto::ListBranchesResponse resp;
  channel->Call<proto::ListBranchesRequest, proto::ListBranchesResponse>(
      "ListBranches", proto::ListBranchesRequest(), kAgentTimeout,
      [&](Status s, proto::ListBranchesResponse r) {
        status = std::move(s);
        resp = std::move(r);
        channel->Close();
      });
  io.run_for(std::chrono::microseconds(kAgentTimeout + kSeconds));
  channel->Close();
  if (status.ok() && resp.status.code != proto::Code::OK) status = FromProto(resp.status);
  if (!status.ok()) {
    err << "txadmin: the agent at " << inv.agent << " did not answer (" << status.ToString()
        << "): check that txagent runs with --listen " << inv.agent << "\n";
    return kExitError;
  }
  bool in_doubt_only = inv.options["in-doubt"].as<bool>();
  std::vector<BranchRow> rows;
  for (const auto& b : resp.branches) {
    BranchRow row = ToRow(b);
    if (!in_doubt_only || InDoubt(row)) rows.push_back(std::move(row));
  }
  Print(out, inv, BranchesJson(rows), BranchesTable(rows));
  return kExitOk;
}

int WalDumpCmd(const Invocation& inv, std::ostream& out, std::ostream& err) {
  std::optional<TxId> txid;
  if (inv.options.count("txid")) txid = ParseTxId(inv.options["txid"].as<std::string>());
  auto dump = ReadWal(inv.args[0], txid);
  if (!dump.ok()) {
    err << "txadmin: " << dump.status().message() << "\n";
    return kExitError;
  }
  Print(out, inv, WalJson(*dump), WalText(*dump));
  return kExitOk;
}

}  // namespace

const std::map<std::string, RunFn>& Runners() {
  static const std::map<std::string, RunFn> runners = {
      {"status", Status_},
      {"txns", Txns},
      {"txn show", TxnShow},
      {"txn retry", TxnRetry},
      {"txn resolve", TxnResolve},
      {"txns retry", TxnsRetry},
      {"agent branches", AgentBranches},
      {"wal dump", WalDumpCmd},
  };
  return runners;
}

int Run(const Invocation& inv, std::ostream& out, std::ostream& err) {
  auto it = Runners().find(inv.command->name);
  if (it == Runners().end()) {
    err << "txadmin: internal error: command '" << inv.command->name << "' has no implementation\n";
    return kExitError;
  }
  return it->second(inv, out, err);
}

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  ParseResult p = Parse(args);
  switch (p.kind) {
    case ParseResult::kHelp:
      out << p.text;
      if (!p.text.empty() && p.text.back() != '\n') out << "\n";
      return kExitOk;
    case ParseResult::kUsageError:
      err << p.text << "\n";
      return kExitUsage;
    case ParseResult::kRun:
      break;
  }
  SetLogLevel(p.invocation.log_level);
  return Run(p.invocation, out, err);
}

}  // namespace txc::admin
