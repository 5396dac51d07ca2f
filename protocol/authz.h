// Roles and the method authorization table of the RPC servers.
//
// With TLS on, every connection's peer has a role, read from its certificate
// (SAN URI "txcoord:ROLE", else CN "txcoord:ROLE"). The RPC server checks
// each call against its table before the handler runs (rpc.cc, Dispatch):
// this file is the one place that says who may call what. Without TLS no role
// is known and no table applies (the loopback-only development mode).
//
// Pure functions and constant tables: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace txc::authz {

enum class Role : uint8_t {
  kNone = 0,  // a certificate without a txcoord role: may call nothing
  kReplica = 1,
  kAgent = 2,
  kClient = 3,
  kAdmin = 4,
};

// "replica", "agent", "client", "admin"; "none" for kNone.
const char* RoleName(Role role);

// The role of "txcoord:ROLE" (ROLE one of the names above, lower case);
// kNone for anything else.
Role ParseRoleName(std::string_view text);

// The role a certificate grants, from its SAN URIs and subject CN: the first
// URI of the form "txcoord:ROLE" wins; with none, a CN "txcoord:ROLE".
Role RoleFromNames(const std::vector<std::string>& san_uris, const std::string& common_name);

using RoleMask = uint32_t;
constexpr RoleMask Bit(Role r) { return RoleMask{1} << static_cast<unsigned>(r); }

// One server's methods (the wire names its RpcServer registers) and the
// roles allowed to call each.
struct Table {
  struct Entry {
    std::string qualified;  // "Agent.Decide": how refusals name the method
    RoleMask allowed = 0;
  };
  std::map<std::string, Entry, std::less<>> methods;

  // Whether `role` may call `method`. A method not in the table is refused
  // for every role.
  bool Allows(Role role, std::string_view method) const;
  // Why a call is refused, e.g. "role client may not call Agent.Decide".
  std::string Refusal(Role role, std::string_view method) const;
  bool Contains(std::string_view method) const { return methods.count(method) > 0; }
};

// The coordinator replica's server: services Coordinator and Replica of
// protocol/txcoord.thrift, and LogBench of protocol/paxos.thrift.
const Table& CoordinatorTable();
// The agent's server: service Agent of protocol/txcoord.thrift.
const Table& AgentTable();

}  // namespace txc::authz
