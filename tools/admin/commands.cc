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
#include "common/cli.h"
#include "common/log.h"
#include "common/status_proto.h"
#include "common/txid.h"
#include "protocol/rpc.h"
#include "protocol/tls_flags.h"
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
  co.tls = inv.tls;
  co.commit_timeout = 5 * kSeconds;
  // No check at connect: each command reports what it could not reach in
  // its own words (status prints a row per replica, reachable or not).
  co.connect_timeout = 0;
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
  if (state == "heuristic") state = "hazard";  // the coordinator's name for it
  auto txns = (*client)->ListTxns(state);
  if (!txns.ok()) {
    err << GroupError(inv, txns.status()) << "\n";
    return kExitError;
  }
  if (inv.options.count("older-than")) {
    int64_t min_ms = *cli::ParseDuration(inv.options["older-than"].as<std::string>()) / kMillis;
    std::erase_if(*txns, [min_ms](const proto::TxnInfo& t) { return t.age_ms < min_ms; });
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

bool Confirmed(const Invocation& inv, const std::string& what, std::ostream& out, std::ostream& err);
std::string OsUser();

// An operator's request the group refused (INVALID_ARGUMENT, with the reason)
// or could not serve.
int OperatorFailed(const Invocation& inv, const Status& s, std::ostream& err) {
  if (s.code() == Status::kInvalidArgument) {
    err << "txadmin: refused: " << s.message() << "\n";
  } else {
    err << GroupError(inv, s) << "\n";
  }
  return kExitError;
}
std::string Who(const Invocation& inv) {
  return inv.options.count("who") ? inv.options["who"].as<std::string>() : OsUser();
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
  std::string who = Who(inv);
  if (!Confirmed(inv, "Resolve " + inv.args[0] + " " + (abort ? "ABORTED" : "COMMITTED") + " as " +
                          who + " (" + reason + ")",
                 out, err)) {
    return inv.options["yes"].as<bool>() || isatty(STDIN_FILENO) ? kExitError : kExitUsage;
  }
  auto client = ConnectGroup(inv);
  if (!client.ok()) {
    err << "txadmin: " << client.status().ToString() << "\n";
    return kExitUsage;
  }
  auto r = (*client)->Resolve(txid, abort ? proto::Outcome::ABORTED : proto::Outcome::COMMITTED,
                              reason, who);
  if (!r.ok()) return OperatorFailed(inv, r.status(), err);
  Json j;
  j["txid"] = inv.args[0];
  j["outcome"] = OutcomeName(r->outcome);
  j["reason"] = r->reason;
  j["who"] = who;
  Print(out, inv, j,
        "resolved " + inv.args[0] + ": " + OutcomeName(r->outcome) + " (" + r->reason + ")\n");
  return kExitOk;
}

int TxnForget(const Invocation& inv, std::ostream& out, std::ostream& err) {
  TxId txid = *ParseTxId(inv.args[0]);
  std::string participant = inv.options["participant"].as<std::string>();
  std::string reason = inv.options["reason"].as<std::string>();
  std::string who = Who(inv);
  if (!Confirmed(inv, "Stop delivering the outcome of " + inv.args[0] + " to " + participant +
                          " for good, as " + who + " (" + reason + ")",
                 out, err)) {
    return inv.options["yes"].as<bool>() || isatty(STDIN_FILENO) ? kExitError : kExitUsage;
  }
  auto client = ConnectGroup(inv);
  if (!client.ok()) {
    err << "txadmin: " << client.status().ToString() << "\n";
    return kExitUsage;
  }
  auto r = (*client)->ForgetParticipant(txid, participant, reason, who);
  if (!r.ok()) return OperatorFailed(inv, r.status(), err);
  Json j;
  j["txid"] = inv.args[0];
  j["participant"] = participant;
  j["outcome"] = OutcomeName(r->outcome);
  j["who"] = who;
  j["reason"] = r->reason;
  Print(out, inv, j,
        inv.args[0] + " (" + OutcomeName(r->outcome) + "): " + r->reason +
            "; txadmin txns --state hazard lists the hazards\n");
  return kExitOk;
}

int TxnRetry(const Invocation& inv, std::ostream& out, std::ostream& err) {
  return Retry(inv, ParseTxId(inv.args[0]), out, err);
}

int TxnsRetry(const Invocation& inv, std::ostream& out, std::ostream& err) {
  return Retry(inv, std::nullopt, out, err);
}

// One call to the agent at inv.agent. `transport` gets the call's own failure
// (unreachable, timed out); the response its status otherwise.
template <class Req, class Resp>
Resp CallAgent(const Invocation& inv, const std::string& method, const Req& req, Status* transport) {
  boost::asio::io_context io;
  rpc::ChannelOptions options;
  options.tls = inv.tls;
  auto channel = std::make_shared<rpc::RpcChannel>(io, inv.agent, options);
  *transport = Status::Timeout("no answer within " + std::to_string(kAgentTimeout / kSeconds) + " s");
  Resp resp;
  channel->Call<Req, Resp>(method, req, kAgentTimeout, [&](Status s, Resp r) {
    *transport = std::move(s);
    resp = std::move(r);
    channel->Close();
  });
  io.run_for(std::chrono::microseconds(kAgentTimeout + kSeconds));
  channel->Close();
  return resp;
}

int AgentUnreachable(const Invocation& inv, const Status& s, std::ostream& err) {
  err << "txadmin: the agent at " << inv.agent << " did not answer (" << s.ToString()
      << "): check that txagent runs with --listen " << inv.agent << "\n";
  return kExitError;
}

int AgentBranches(const Invocation& inv, std::ostream& out, std::ostream& err) {
  Status transport;
  auto resp = CallAgent<proto::ListBranchesRequest, proto::ListBranchesResponse>(
      inv, "ListBranches", proto::ListBranchesRequest(), &transport);
  if (transport.ok() && resp.status.code != proto::Code::OK) transport = FromProto(resp.status);
  if (!transport.ok()) return AgentUnreachable(inv, transport, err);
  bool in_doubt_only = inv.options["in-doubt"].as<bool>();
  bool heuristic_only = inv.options["heuristic"].as<bool>();
  std::vector<BranchRow> rows;
  for (const auto& b : resp.branches) {
    BranchRow row = ToRow(b);
    if (in_doubt_only && !InDoubt(row)) continue;
    if (heuristic_only && !Heuristic(row)) continue;
    rows.push_back(std::move(row));
  }
  Print(out, inv, BranchesJson(rows), BranchesTable(rows));
  return kExitOk;
}

// Asks on the terminal unless --yes; false (and a message) when not confirmed.
bool Confirmed(const Invocation& inv, const std::string& what, std::ostream& out, std::ostream& err) {
  if (inv.options["yes"].as<bool>()) return true;
  if (!isatty(STDIN_FILENO)) {
    err << "txadmin: " << what << ": confirm with --yes (stdin is not a terminal to ask on)\n";
    return false;
  }
  out << what << "? Type yes: " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "yes") {
    err << "txadmin: not confirmed; nothing was changed\n";
    return false;
  }
  return true;
}

int AgentResolve(const Invocation& inv, std::ostream& out, std::ostream& err) {
  proto::AgentResolveRequest req;
  req.txid = *ParseTxId(inv.args[0]);
  req.resource = inv.options["resource"].as<std::string>();
  req.outcome = inv.options["abort"].as<bool>() ? proto::Outcome::ABORTED : proto::Outcome::COMMITTED;
  req.reason = inv.options["reason"].as<std::string>();
  req.who = Who(inv);
  if (!Confirmed(inv, std::string("Decide ") + inv.args[0] + " " + OutcomeName(req.outcome) +
                          " heuristically at " + inv.agent + " as " + req.who + " (" +
                          req.reason + "), without the coordinator group",
                 out, err)) {
    return inv.options["yes"].as<bool>() || isatty(STDIN_FILENO) ? kExitError : kExitUsage;
  }
  Status transport;
  auto resp = CallAgent<proto::AgentResolveRequest, proto::AgentResolveResponse>(
      inv, "Resolve", req, &transport);
  if (!transport.ok()) return AgentUnreachable(inv, transport, err);
  std::vector<BranchRow> rows;
  for (const auto& b : resp.branches) rows.push_back(ToRow(b));
  if (resp.status.code != proto::Code::OK) {
    if (rows.empty()) {
      err << "txadmin: refused: " << resp.status.message << "\n";
    } else {
      // Some branches were decided (listed), others failed: never retry the other way.
      Print(out, inv, BranchesJson(rows), BranchesTable(rows));
      err << "txadmin: only the branches listed were decided; the others failed: "
          << resp.status.message << "; retry the same decision (--resource names one) once "
          << "the cause is fixed, never the other way\n";
    }
    return kExitError;
  }
  Print(out, inv, BranchesJson(rows),
        BranchesTable(rows) + "decided heuristically; txadmin agent " + inv.agent +
            " branches --heuristic shows the group's outcome once the group answers\n");
  return kExitOk;
}

int AgentForget(const Invocation& inv, std::ostream& out, std::ostream& err) {
  proto::AgentForgetRequest req;
  req.txid = *ParseTxId(inv.args[0]);
  req.resource = inv.options["resource"].as<std::string>();
  req.reason = inv.options["reason"].as<std::string>();
  req.who = Who(inv);
  if (inv.options["force"].as<bool>()) req.__set_force(true);
  if (!Confirmed(inv, "Forget the heuristic decision of " + inv.args[0] + " at " + inv.agent,
                 out, err)) {
    return inv.options["yes"].as<bool>() || isatty(STDIN_FILENO) ? kExitError : kExitUsage;
  }
  Status transport;
  auto resp = CallAgent<proto::AgentForgetRequest, proto::AgentForgetResponse>(
      inv, "Forget", req, &transport);
  if (!transport.ok()) return AgentUnreachable(inv, transport, err);
  if (resp.status.code != proto::Code::OK) {
    err << "txadmin: " << resp.status.message << "\n";
    return kExitError;
  }
  Json j;
  j["txid"] = inv.args[0];
  j["forgotten"] = resp.forgotten;
  Print(out, inv, j, "forgot " + std::to_string(resp.forgotten) +
                         " heuristic record(s) of " + inv.args[0] + "\n");
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
      {"txn forget", TxnForget},
      {"txns retry", TxnsRetry},
      {"agent branches", AgentBranches},
      {"agent resolve", AgentResolve},
      {"agent forget", AgentForget},
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
  if (p.invocation.command->scope != Scope::kFile) {
    std::vector<std::string> addresses = p.invocation.coordinators;
    addresses.push_back(p.invocation.agent);
    auto tls = rpc::CheckTlsChoice(p.invocation.tls, p.invocation.insecure, "txadmin", addresses);
    if (!tls.ok()) {
      err << "txadmin: " << tls.status().message() << "\n";
      return kExitUsage;
    }
  }
  return Run(p.invocation, out, err);
}

}  // namespace txc::admin
