// Range checks of every numeric field a server reads from the wire, run before
// a request reaches a core, a log or a database. A txid, a timeout or a count
// that no honest client sends is refused with INVALID_ARGUMENT and a message
// naming the field and its value (e.g. "ExecuteRequest.txid.seq = -3: a txid's
// epoch and seq are >= 1"); the server neither logs nor stores it. Without
// this, an Execute with a negative txid is written to the agent's branch log
// and the next restart refuses to recover it, and `timeout_ms * kMillis`
// overflows.
//
// Sizes are bounded too (docs/operations.md, "Limits"): statements and
// parameters per request, parameters and SQL bytes per statement,
// participants per transaction, the length of names and reasons. Each
// refusal names the field, its size and the limit. The contents of strings
// (which resource, which SQL) are the cores' and the resources' to judge.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/status.h"
#include "common/status_proto.h"
#include "txcoord_types.h"

namespace txc::validate {

// The longest timeout a request may ask for (BeginRequest.timeout_ms,
// ExecuteRequest.timeout_ms): 24 hours. 0 (or unset) means the server's
// default. Any value in range times kMillis, added to a steady clock reading,
// stays far inside int64.
constexpr int64_t kMaxTimeoutMs = 24LL * 3600 * 1000;
// The most txids one Begin may reserve (BeginRequest.count).
constexpr int32_t kMaxBeginCount = 256;

// OK, or INVALID_ARGUMENT naming the first field out of range and its value.
Status Check(const proto::BeginRequest& req);
Status Check(const proto::CommitRequest& req);
Status Check(const proto::SubmitRequest& req);
Status Check(const proto::AbortRequest& req);
Status Check(const proto::OutcomeRequest& req);
Status Check(const proto::StatusRequest& req);
Status Check(const proto::ResolveRequest& req);
Status Check(const proto::ListTxnsRequest& req);
Status Check(const proto::RetryTxnsRequest& req);
Status Check(const proto::ExecuteRequest& req);
Status Check(const proto::PrepareRequest& req);
Status Check(const proto::DecideRequest& req);
Status Check(const proto::ListBranchesRequest& req);
Status Check(const proto::AgentResolveRequest& req);
Status Check(const proto::AgentForgetRequest& req);
Status Check(const proto::BranchStateRequest& req);
Status Check(const proto::ForgetParticipantRequest& req);
Status Check(const proto::PeerMessage& msg);

// The most statements one request carries (ExecuteRequest.statements,
// PrepareRequest.work, a SubmitRequest branch's statements). The frame limit
// alone lets ~100k small statements through, which hold the resource's one
// writer for as long as they run while every other branch waits; a client
// with more work splits it over several Execute calls of one transaction.
constexpr size_t kMaxStatements = 10000;

// The most parameters one statement binds. SQLite binds at most 32,766
// (PostgreSQL and MariaDB 65,535), so nothing a built-in database would run
// is refused; a longer list only costs the agent decoding and memory.
constexpr size_t kMaxParamsPerStatement = 32766;
// The most parameters one request carries over all its statements: ten per
// statement at the statement limit. Bounds the bind work one request holds
// the resource's single writer for, as kMaxStatements bounds the statements.
constexpr size_t kMaxParamsPerRequest = 100000;
// The longest SQL text of one statement: 1 MiB. Parsing is linear, but a
// statement's text is kept in the resource's statement cache and quoted in
// errors; real statements are far shorter, and data travels as parameters.
constexpr size_t kMaxSqlBytes = 1 << 20;
// The most participants one transaction has (CommitRequest.participants,
// SubmitRequest.branches, AbortRequest.participants,
// PrepareRequest.participants). The list is written into the decision log
// with DECIDE and into every participant's PREPARED record, and each one is
// a PREPARE and a DECIDE call per transaction. The coordinator enforces the
// same bound after merging a Submit's branches (DriverOptions).
constexpr size_t kMaxParticipants = 1000;
// The longest resource name and agent address of a Participant (both are
// written into the decision log and the PREPARED records).
constexpr size_t kMaxNameBytes = 256;
// The longest reason a client gives for an abort (it is sent back with the
// outcome), as an operator's reason in Resolve.
constexpr size_t kMaxReasonBytes = 1024;

// The integer a Thrift enum field holds. The generated reader stores any i32
// from the wire in the field, but an enum whose type has no fixed underlying
// type only has the values of its enumerators' bit range: reading 77 or -1 as
// the enum is undefined behaviour (the sanitized build stops on it). So a
// field not yet checked is read as its bytes, and compared as an int32.
template <class E>
int32_t WireEnumValue(const E& e) {
  static_assert(std::is_enum_v<E> && sizeof(E) == sizeof(int32_t));
  int32_t v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// ------------------------------------------------------------ enum fields
//
// Every enum field of every request and response of the Coordinator, Agent,
// Replica and LogBench services (protocol/txcoord.thrift), checked once, where
// the RPC layer decodes a message (rpc_inl.h) and before a handler or a
// caller sees it. The generated readers store any int32 of the wire in an
// enum field, and a switch or a comparison on it (the generated write() too)
// then takes a branch nobody wrote, or is undefined behaviour. A request that
// holds a value its enum does not have is answered INVALID_ARGUMENT naming
// the field and the value ("CommitRequest.protocol = 7: Protocol has no such
// value (1 TWO_PC to 2 THREE_PC, or 0: unset)"); such a response fails the
// call as unreadable.
//
// Valid: a value of the enum, or 0. A struct built without setting an enum
// field that has no default in the IDL holds 0 there and is sent so (a
// refused Prepare's PrepareResponse carries vote 0), and 0 is inside every
// enum's range. What a value means for a request (a decision is COMMITTED or
// ABORTED) is Check()'s business, above.
//
// One overload per message type: the RPC layer calls CheckEnums on every
// request and response it decodes, so a new message type without one does
// not compile. Structs without enum fields other than a response's Status
// have one too, so the list is the whole protocol.
Status CheckEnums(const proto::BeginRequest& m);
Status CheckEnums(const proto::BeginResponse& m);
Status CheckEnums(const proto::CommitRequest& m);
Status CheckEnums(const proto::SubmitRequest& m);
Status CheckEnums(const proto::AbortRequest& m);
Status CheckEnums(const proto::CommitResponse& m);
Status CheckEnums(const proto::OutcomeRequest& m);
Status CheckEnums(const proto::OutcomeResponse& m);
Status CheckEnums(const proto::StatusRequest& m);
Status CheckEnums(const proto::StatusResponse& m);
Status CheckEnums(const proto::ListTxnsRequest& m);
Status CheckEnums(const proto::ListTxnsResponse& m);
Status CheckEnums(const proto::RetryTxnsRequest& m);
Status CheckEnums(const proto::RetryTxnsResponse& m);
Status CheckEnums(const proto::ForgetParticipantRequest& m);
Status CheckEnums(const proto::ResolveRequest& m);
Status CheckEnums(const proto::ExecuteRequest& m);
Status CheckEnums(const proto::ExecuteResponse& m);
Status CheckEnums(const proto::PrepareRequest& m);
Status CheckEnums(const proto::PrepareResponse& m);
Status CheckEnums(const proto::DecideRequest& m);
Status CheckEnums(const proto::DecideResponse& m);
Status CheckEnums(const proto::ListBranchesRequest& m);
Status CheckEnums(const proto::ListBranchesResponse& m);
Status CheckEnums(const proto::AgentResolveRequest& m);
Status CheckEnums(const proto::AgentResolveResponse& m);
Status CheckEnums(const proto::AgentForgetRequest& m);
Status CheckEnums(const proto::AgentForgetResponse& m);
Status CheckEnums(const proto::BranchStateRequest& m);
Status CheckEnums(const proto::BranchStateResponse& m);
Status CheckEnums(const proto::PeerMessage& m);
Status CheckEnums(const proto::PeerAck& m);
Status CheckEnums(const proto::LogBenchAppendRequest& m);
Status CheckEnums(const proto::LogBenchAppendResponse& m);
// Not a message of the services, but the RPC tests serve it as a response.
Status CheckEnums(const proto::TxId& m);

// The pieces, for requests that embed them. `field` names the value in the
// message ("CommitRequest.txid").
// Checking a valid value allocates nothing.
Status CheckTxId(const proto::TxId& txid, std::string_view field);
Status CheckTimeoutMs(int64_t ms, std::string_view field);

// A response of type Resp that carries only `why` as its status: what a
// server answers instead of serving a refused request.
template <class Resp>
Resp Refusal(const Status& why) {
  Resp r;
  r.status.code = ToProtoCode(why.code());
  r.status.message = why.message();
  return r;
}

}  // namespace txc::validate
