#include "protocol/authz.h"

#include <initializer_list>
#include <utility>

namespace txc::authz {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kReplica:
      return "replica";
    case Role::kAgent:
      return "agent";
    case Role::kClient:
      return "client";
    case Role::kAdmin:
      return "admin";
    case Role::kNone:
      break;
  }
  return "none";
}

Role ParseRoleName(std::string_view text) {
  constexpr std::string_view kPrefix = "txcoord:";
  if (text.substr(0, kPrefix.size()) != kPrefix) return Role::kNone;
  text.remove_prefix(kPrefix.size());
  for (Role r : {Role::kReplica, Role::kAgent, Role::kClient, Role::kAdmin}) {
    if (text == RoleName(r)) return r;
  }
  return Role::kNone;
}

Role RoleFromNames(const std::vector<std::string>& san_uris, const std::string& common_name) {
  // A URI that looks like ours but names no known role grants nothing: it
  // does not fall through to the CN, so a certificate means one thing.
  for (const std::string& uri : san_uris) {
    if (uri.rfind("txcoord:", 0) == 0) return ParseRoleName(uri);
  }
  return ParseRoleName(common_name);
}

bool Table::Allows(Role role, std::string_view method) const {
  auto it = methods.find(method);
  return it != methods.end() && (it->second.allowed & Bit(role)) != 0;
}

std::string Table::Refusal(Role role, std::string_view method) const {
  auto it = methods.find(method);
  std::string name = it != methods.end() ? it->second.qualified : std::string(method);
  std::string why = it != methods.end() ? "" : " (not in the authorization table)";
  return "role " + std::string(RoleName(role)) + " may not call " + name + why;
}

namespace {

constexpr RoleMask kReplica = Bit(Role::kReplica);
constexpr RoleMask kAgent = Bit(Role::kAgent);
constexpr RoleMask kClient = Bit(Role::kClient);
constexpr RoleMask kAdmin = Bit(Role::kAdmin);
constexpr RoleMask kAnyRole = kReplica | kAgent | kClient | kAdmin;

Table Make(std::initializer_list<std::pair<const char*, RoleMask>> qualified_methods) {
  Table t;
  for (const auto& [qualified, allowed] : qualified_methods) {
    std::string q = qualified;
    t.methods[q.substr(q.find('.') + 1)] = Table::Entry{q, allowed};
  }
  return t;
}

}  // namespace

// Who calls what, and why (DESIGN.md, "Who uses it"):
// - applications (client) begin, commit and ask outcomes; so may operators;
// - agents ask the group for the outcome of a branch they hold (termination);
// - the operator commands change what the group or an agent decided: admin only;
// - Status is read-only and used by every role to find a live replica;
// - Replica.Deliver carries Paxos messages: only another replica may send one,
//   or a forged ACCEPT could make a follower apply a value never chosen;
// - LogBench.Append writes records into the decision log: admin only.
const Table& CoordinatorTable() {
  static const Table table = Make({
      {"Coordinator.Begin", kClient | kAdmin},
      {"Coordinator.Commit", kClient | kAdmin},
      {"Coordinator.Submit", kClient | kAdmin},
      {"Coordinator.Abort", kClient | kAdmin},
      {"Coordinator.Outcome", kClient | kAdmin | kAgent | kReplica},
      {"Coordinator.Status", kAnyRole},
      {"Coordinator.ListTxns", kAdmin},
      {"Coordinator.RetryTxns", kAdmin},
      {"Coordinator.Resolve", kAdmin},
      {"Coordinator.ForgetParticipant", kAdmin},
      {"Replica.Deliver", kReplica},
      {"LogBench.Append", kAdmin},
  });
  return table;
}

// - Prepare and Decide come only from the coordinator group (replica): a
//   Decide from anyone else could commit a branch the group aborted;
// - applications (client) run their statements through Execute;
// - BranchState is read-only: the group, the other agents of a 3PC
//   transaction (cooperative termination) and operators ask it;
// - the operator commands (heuristic resolve, forget) are admin only.
const Table& AgentTable() {
  static const Table table = Make({
      {"Agent.Execute", kClient | kAdmin},
      {"Agent.Prepare", kReplica},
      {"Agent.Decide", kReplica},
      {"Agent.BranchState", kReplica | kAgent | kAdmin},
      {"Agent.ListBranches", kAdmin},
      {"Agent.Resolve", kAdmin},
      {"Agent.Forget", kAdmin},
  });
  return table;
}

}  // namespace txc::authz
