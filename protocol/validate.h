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

// The pieces, for requests that embed them. `field` names the value in the
// message ("CommitRequest.txid").
Status CheckTxId(const proto::TxId& txid, const std::string& field);
Status CheckTimeoutMs(int64_t ms, const std::string& field);
Status CheckParticipant(const proto::Participant& p, const std::string& field);
Status CheckStatement(const proto::Statement& s, const std::string& field);

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
