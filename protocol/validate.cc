#include "protocol/validate.h"

#include <cstring>
#include <iterator>
#include <map>
#include <vector>

namespace txc::validate {

namespace {

// Where a field sits in a message ("ListTxnsResponse.txns[3].progress[0]"),
// as a chain of frames on the stack: spelled out only for a refusal, so
// checking a valid message allocates nothing. A root may name a whole path
// ("CommitRequest.participants").
struct Path {
  static constexpr size_t kNoIndex = static_cast<size_t>(-1);
  const Path* parent;
  const char* name;         // a field, or the message type at the root
  size_t index = kNoIndex;  // an element of a list field

  std::string ToString() const {
    std::string s = parent != nullptr ? parent->ToString() + "." : std::string();
    s += name;
    if (index != kNoIndex) s += "[" + std::to_string(index) + "]";
    return s;
  }
};

// "FIELD.NAME": built for a refusal's message only.
std::string Dot(std::string_view field, std::string_view name) {
  return std::string(field) + "." + std::string(name);
}

Status Bad(std::string_view field, int64_t value, const std::string& rule) {
  return Status::InvalidArgument(std::string(field) + " = " + std::to_string(value) + ": " + rule);
}

Status CheckProtocol(const proto::Protocol::type& p, std::string_view field) {
  int32_t v = WireEnumValue(p);
  if (v == proto::Protocol::TWO_PC || v == proto::Protocol::THREE_PC) return Status::Ok();
  return Bad(field, v, "a protocol is TWO_PC (1) or THREE_PC (2)");
}

// "FIELD holds N WHAT; at most MAX PER": the field, its size and the limit.
Status TooMany(std::string_view field, size_t n, std::string_view what, size_t max,
               std::string_view per_and_advice) {
  return Status::InvalidArgument(std::string(field) + " holds " + std::to_string(n) + " " +
                                 std::string(what) + "; at most " + std::to_string(max) + " " +
                                 std::string(per_and_advice));
}

// A resource name or an address: echoed in errors, kept in logs.
Status CheckName(const std::string& value, const Path& at, const char* what) {
  if (value.size() <= kMaxNameBytes) return Status::Ok();
  return Status::InvalidArgument(at.ToString() + " is " + std::to_string(value.size()) + " bytes long; " +
                                 what + " is at most " + std::to_string(kMaxNameBytes) + " bytes");
}

Status ParticipantAt(const proto::Participant& p, const Path& at) {
  TXC_RETURN_IF_ERROR(CheckName(p.resource, Path{&at, "resource"}, "a resource name"));
  TXC_RETURN_IF_ERROR(CheckName(p.address, Path{&at, "address"}, "an agent address"));
  // An agent's incarnations count up from 1; 0 stands for "not known".
  if (p.__isset.incarnation && p.incarnation < 0) {
    return Bad(Path{&at, "incarnation"}.ToString(), p.incarnation, "an agent incarnation is >= 0");
  }
  return Status::Ok();
}

Status StatementAt(const proto::Statement& s, const Path& at) {
  if (s.sql.size() > kMaxSqlBytes) {
    return Status::InvalidArgument(Path{&at, "sql"}.ToString() + " is " + std::to_string(s.sql.size()) +
                                   " bytes long; a statement's SQL is at most " +
                                   std::to_string(kMaxSqlBytes) +
                                   " bytes (1 MiB): pass data as parameters");
  }
  if (s.params.size() > kMaxParamsPerStatement) {
    return TooMany(Path{&at, "params"}.ToString(), s.params.size(), "parameters",
                   kMaxParamsPerStatement, "bind to one statement");
  }
  if (s.__isset.expect_rows && s.expect_rows < 0) {
    return Bad(Path{&at, "expect_rows"}.ToString(), s.expect_rows, "a row count is >= 0");
  }
  return Status::Ok();
}

// `list` names the list field; its elements are named by index.
Status CheckParticipants(const std::vector<proto::Participant>& ps, const Path& list) {
  if (ps.size() > kMaxParticipants) {
    return TooMany(list.ToString(), ps.size(), "participants", kMaxParticipants,
                   "take part in one transaction");
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    TXC_RETURN_IF_ERROR(ParticipantAt(ps[i], Path{list.parent, list.name, i}));
  }
  return Status::Ok();
}

Status CheckStatements(const std::vector<proto::Statement>& ss, const Path& list) {
  if (ss.size() > kMaxStatements) {
    return Status::InvalidArgument(list.ToString() + " holds " + std::to_string(ss.size()) +
                                   " statements; at most " + std::to_string(kMaxStatements) +
                                   " travel in one request: split the work over several Execute "
                                   "calls of the same transaction");
  }
  size_t params = 0;
  for (size_t i = 0; i < ss.size(); ++i) {
    TXC_RETURN_IF_ERROR(StatementAt(ss[i], Path{list.parent, list.name, i}));
    params += ss[i].params.size();
  }
  if (params > kMaxParamsPerRequest) {
    return TooMany(list.ToString(), params, "parameters in all", kMaxParamsPerRequest,
                   "travel in one request: split the work over several Execute calls of the same "
                   "transaction");
  }
  return Status::Ok();
}

}  // namespace

Status CheckTxId(const proto::TxId& txid, std::string_view field) {
  // Epochs (ballot rounds) and seqs both start at 1 (CommitDriver::BecomeLeader).
  if (txid.epoch < 1) return Bad(Dot(field, "epoch"), txid.epoch, "a txid's epoch and seq are >= 1");
  if (txid.seq < 1) return Bad(Dot(field, "seq"), txid.seq, "a txid's epoch and seq are >= 1");
  return Status::Ok();
}

Status CheckTimeoutMs(int64_t ms, std::string_view field) {
  if (ms < 0 || ms > kMaxTimeoutMs) {
    return Bad(field, ms, "a timeout is 0 (the server's default) to " + std::to_string(kMaxTimeoutMs) +
                              " ms (24 hours)");
  }
  return Status::Ok();
}

Status Check(const proto::BeginRequest& req) {
  if (req.__isset.timeout_ms) TXC_RETURN_IF_ERROR(CheckTimeoutMs(req.timeout_ms, "BeginRequest.timeout_ms"));
  if (req.__isset.count && (req.count < 1 || req.count > kMaxBeginCount)) {
    return Bad("BeginRequest.count", req.count,
               "a Begin reserves 1 to " + std::to_string(kMaxBeginCount) + " txids");
  }
  return Status::Ok();
}

Status Check(const proto::CommitRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "CommitRequest.txid"));
  TXC_RETURN_IF_ERROR(CheckParticipants(req.participants, Path{nullptr, "CommitRequest.participants"}));
  return CheckProtocol(req.protocol, "CommitRequest.protocol");
}

Status Check(const proto::SubmitRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "SubmitRequest.txid"));
  // Each branch is at most one participant (the driver joins repeated ones).
  if (req.branches.size() > kMaxParticipants) {
    return TooMany("SubmitRequest.branches", req.branches.size(), "branches", kMaxParticipants,
                   "(participants) take part in one transaction");
  }
  size_t statements = 0, params = 0;
  for (size_t i = 0; i < req.branches.size(); ++i) {
    const proto::Branch& b = req.branches[i];
    const Path branch{nullptr, "SubmitRequest.branches", i};
    TXC_RETURN_IF_ERROR(ParticipantAt(b.participant, Path{&branch, "participant"}));
    TXC_RETURN_IF_ERROR(CheckStatements(b.statements, Path{&branch, "statements"}));
    statements += req.branches[i].statements.size();
    for (const auto& st : req.branches[i].statements) params += st.params.size();
  }
  // The whole request, too: branches of one participant are joined into one
  // PREPARE, which the agent refuses past these limits.
  if (statements > kMaxStatements) {
    return TooMany("SubmitRequest.branches", statements, "statements in all", kMaxStatements,
                   "travel in one request: use an interactive transaction (several Execute "
                   "calls) for more work");
  }
  if (params > kMaxParamsPerRequest) {
    return TooMany("SubmitRequest.branches", params, "parameters in all", kMaxParamsPerRequest,
                   "travel in one request: use an interactive transaction (several Execute "
                   "calls) for more work");
  }
  return CheckProtocol(req.protocol, "SubmitRequest.protocol");
}

Status Check(const proto::AbortRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "AbortRequest.txid"));
  if (req.reason.size() > kMaxReasonBytes) {
    return Status::InvalidArgument("AbortRequest.reason is " + std::to_string(req.reason.size()) +
                                   " bytes long; at most " + std::to_string(kMaxReasonBytes) +
                                   " bytes");
  }
  return CheckParticipants(req.participants, Path{nullptr, "AbortRequest.participants"});
}

Status Check(const proto::OutcomeRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "OutcomeRequest.txid"));
  if (!req.__isset.decision_key) return Status::Ok();
  const std::string& a = req.decision_key.agent_address;
  if (a.empty()) {
    return Status::InvalidArgument(
        "OutcomeRequest.decision_key.agent_address is empty; it names the agent (HOST:PORT) the "
        "group signs decisions for");
  }
  return CheckName(a, Path{nullptr, "OutcomeRequest.decision_key.agent_address"}, "an agent address");
}

// An operator's reason and name, kept in a log: both required, bounded.
static Status CheckOperatorText(const std::string& reason, const std::string& who,
                         const std::string& message) {
  if (reason.empty() || reason.size() > 1024) {
    return Status::InvalidArgument(message + ".reason: say why, in 1 to 1024 bytes (it is kept in the log)");
  }
  if (who.empty() || who.size() > 256) {
    return Status::InvalidArgument(message + ".who: name the operator, in 1 to 256 bytes");
  }
  return Status::Ok();
}

Status Check(const proto::ResolveRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "ResolveRequest.txid"));
  const int32_t outcome = WireEnumValue(req.outcome);
  if (outcome != proto::Outcome::COMMITTED && outcome != proto::Outcome::ABORTED) {
    return Bad("ResolveRequest.outcome", outcome, "an operator resolves to COMMITTED or ABORTED");
  }
  return CheckOperatorText(req.reason, req.who, "ResolveRequest");
}

Status Check(const proto::AgentResolveRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "AgentResolveRequest.txid"));
  const int32_t outcome = WireEnumValue(req.outcome);
  if (outcome != proto::Outcome::COMMITTED && outcome != proto::Outcome::ABORTED) {
    return Bad("AgentResolveRequest.outcome", outcome,
               "an operator resolves to COMMITTED (2) or ABORTED (3)");
  }
  return CheckOperatorText(req.reason, req.who, "AgentResolveRequest");
}

Status Check(const proto::ForgetParticipantRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "ForgetParticipantRequest.txid"));
  if (req.resource.empty()) {
    return Status::InvalidArgument("ForgetParticipantRequest.resource: name the participant's resource");
  }
  return CheckOperatorText(req.reason, req.who, "ForgetParticipantRequest");
}

Status Check(const proto::AgentForgetRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "AgentForgetRequest.txid"));
  return CheckOperatorText(req.reason, req.who, "AgentForgetRequest");
}

Status Check(const proto::StatusRequest&) { return Status::Ok(); }

Status Check(const proto::ListTxnsRequest& req) {
  if (req.__isset.txid) TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "ListTxnsRequest.txid"));
  return Status::Ok();
}

Status Check(const proto::RetryTxnsRequest& req) {
  if (req.__isset.txid) TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "RetryTxnsRequest.txid"));
  return Status::Ok();
}

Status Check(const proto::ExecuteRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "ExecuteRequest.txid"));
  TXC_RETURN_IF_ERROR(CheckName(req.resource, Path{nullptr, "ExecuteRequest.resource"}, "a resource name"));
  TXC_RETURN_IF_ERROR(CheckStatements(req.statements, Path{nullptr, "ExecuteRequest.statements"}));
  if (req.__isset.timeout_ms) {
    TXC_RETURN_IF_ERROR(CheckTimeoutMs(req.timeout_ms, "ExecuteRequest.timeout_ms"));
  }
  return Status::Ok();
}

Status Check(const proto::PrepareRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "PrepareRequest.txid"));
  TXC_RETURN_IF_ERROR(CheckName(req.resource, Path{nullptr, "PrepareRequest.resource"}, "a resource name"));
  TXC_RETURN_IF_ERROR(CheckParticipants(req.participants, Path{nullptr, "PrepareRequest.participants"}));
  TXC_RETURN_IF_ERROR(CheckProtocol(req.protocol, "PrepareRequest.protocol"));
  if (req.__isset.work) TXC_RETURN_IF_ERROR(CheckStatements(req.work, Path{nullptr, "PrepareRequest.work"}));
  return Status::Ok();
}

Status Check(const proto::DecideRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "DecideRequest.txid"));
  TXC_RETURN_IF_ERROR(CheckName(req.resource, Path{nullptr, "DecideRequest.resource"}, "a resource name"));
  int32_t outcome = WireEnumValue(req.outcome);
  if (outcome != proto::Outcome::COMMITTED && outcome != proto::Outcome::ABORTED) {
    return Bad("DecideRequest.outcome", outcome, "a decision is COMMITTED (2) or ABORTED (3)");
  }
  if (req.__isset.precommit && req.precommit && outcome != proto::Outcome::COMMITTED) {
    return Bad("DecideRequest.outcome", outcome, "a PRE_COMMIT (precommit set) carries COMMITTED (2)");
  }
  return Status::Ok();
}

Status Check(const proto::ListBranchesRequest&) { return Status::Ok(); }

Status Check(const proto::BranchStateRequest& req) {
  TXC_RETURN_IF_ERROR(CheckTxId(req.txid, "BranchStateRequest.txid"));
  if (req.resource.empty()) {
    return Status::InvalidArgument("BranchStateRequest.resource: name the resource");
  }
  return Status::Ok();
}

Status Check(const proto::PeerMessage& msg) {
  // Replica ids are the positive ids of --peers.
  if (msg.sender < 1) return Bad("PeerMessage.sender", msg.sender, "a replica id is >= 1");
  if (msg.receiver < 1) return Bad("PeerMessage.receiver", msg.receiver, "a replica id is >= 1");
  return Status::Ok();
}

// ------------------------------------------------------------ enum fields

namespace {

// "1 TWO_PC to 2 THREE_PC", or every value when they have gaps.
std::string ValuesOf(const std::map<int, const char*>& names) {
  if (names.empty()) return "none";
  const auto first = names.begin();
  const auto last = std::prev(names.end());
  auto item = [](const std::pair<const int, const char*>& e) {
    return std::to_string(e.first) + " " + e.second;
  };
  if (static_cast<size_t>(last->first - first->first) + 1 == names.size()) {
    return names.size() == 1 ? item(*first) : item(*first) + " to " + item(*last);
  }
  std::string out;
  for (const auto& e : names) out += (out.empty() ? "" : ", ") + item(e);
  return out;
}

// The generated *_VALUES_TO_NAMES table is the enum's list of values, so a
// value added to the IDL is valid here without an edit.
Status CheckEnum(int32_t v, const std::map<int, const char*>& names, const char* type,
                 const Path& at, const char* field) {
  if (v == 0 || names.count(v) != 0) return Status::Ok();
  return Status::InvalidArgument(Path{&at, field}.ToString() + " = " + std::to_string(v) +
                                 ": " + type + " has no such value (" + ValuesOf(names) +
                                 (names.count(0) != 0 ? "" : ", or 0: unset") + ")");
}

Status Field(const proto::Code::type& e, const Path& at, const char* field) {
  return CheckEnum(WireEnumValue(e), proto::_Code_VALUES_TO_NAMES, "Code", at, field);
}
Status Field(const proto::Protocol::type& e, const Path& at, const char* field) {
  return CheckEnum(WireEnumValue(e), proto::_Protocol_VALUES_TO_NAMES, "Protocol", at, field);
}
Status Field(const proto::Vote::type& e, const Path& at, const char* field) {
  return CheckEnum(WireEnumValue(e), proto::_Vote_VALUES_TO_NAMES, "Vote", at, field);
}
Status Field(const proto::Outcome::type& e, const Path& at, const char* field) {
  return CheckEnum(WireEnumValue(e), proto::_Outcome_VALUES_TO_NAMES, "Outcome", at, field);
}

// The structs inside messages that hold enums. An optional field that is not
// set holds its default (0), which passes: no __isset test needed.
Status Of(const proto::Status& s, const Path& at) { return Field(s.code, at, "code"); }

Status Of(const proto::ParticipantProgress& p, const Path& at) {
  return Field(p.vote, at, "vote");
}

Status Of(const proto::TxnInfo& t, const Path& at);
Status Of(const proto::BranchInfo& b, const Path& at);

template <class T>
Status Each(const std::vector<T>& list, const Path& at, const char* field) {
  for (size_t i = 0; i < list.size(); ++i) {
    TXC_RETURN_IF_ERROR(Of(list[i], Path{&at, field, i}));
  }
  return Status::Ok();
}

Status Of(const proto::TxnInfo& t, const Path& at) {
  TXC_RETURN_IF_ERROR(Field(t.outcome, at, "outcome"));
  TXC_RETURN_IF_ERROR(Field(t.protocol, at, "protocol"));
  return Each(t.progress, at, "progress");
}

Status Of(const proto::BranchInfo& b, const Path& at) {
  TXC_RETURN_IF_ERROR(Field(b.heuristic_outcome, at, "heuristic_outcome"));
  return Field(b.group_outcome, at, "group_outcome");
}

// A response's status, at "TYPE.status".
Status StatusOf(const proto::Status& s, const char* type) {
  const Path root{nullptr, type};
  return Of(s, Path{&root, "status"});
}

}  // namespace

// Requests. (Those without an enum field pass: listed so that every message
// type has its line.)
Status CheckEnums(const proto::BeginRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::CommitRequest& m) {
  return Field(m.protocol, Path{nullptr, "CommitRequest"}, "protocol");
}
Status CheckEnums(const proto::SubmitRequest& m) {
  return Field(m.protocol, Path{nullptr, "SubmitRequest"}, "protocol");
}
Status CheckEnums(const proto::AbortRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::OutcomeRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::StatusRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::ListTxnsRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::RetryTxnsRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::ForgetParticipantRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::ResolveRequest& m) {
  return Field(m.outcome, Path{nullptr, "ResolveRequest"}, "outcome");
}
Status CheckEnums(const proto::ExecuteRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::PrepareRequest& m) {
  return Field(m.protocol, Path{nullptr, "PrepareRequest"}, "protocol");
}
Status CheckEnums(const proto::DecideRequest& m) {
  return Field(m.outcome, Path{nullptr, "DecideRequest"}, "outcome");
}
Status CheckEnums(const proto::ListBranchesRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::AgentResolveRequest& m) {
  return Field(m.outcome, Path{nullptr, "AgentResolveRequest"}, "outcome");
}
Status CheckEnums(const proto::AgentForgetRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::BranchStateRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::PeerMessage&) { return Status::Ok(); }
Status CheckEnums(const proto::LogBenchAppendRequest&) { return Status::Ok(); }
Status CheckEnums(const proto::TxId&) { return Status::Ok(); }

// Responses: every one carries a Status.
Status CheckEnums(const proto::BeginResponse& m) { return StatusOf(m.status, "BeginResponse"); }
Status CheckEnums(const proto::CommitResponse& m) {
  TXC_RETURN_IF_ERROR(StatusOf(m.status, "CommitResponse"));
  return Field(m.outcome, Path{nullptr, "CommitResponse"}, "outcome");
}
Status CheckEnums(const proto::OutcomeResponse& m) {
  TXC_RETURN_IF_ERROR(StatusOf(m.status, "OutcomeResponse"));
  return Field(m.outcome, Path{nullptr, "OutcomeResponse"}, "outcome");
}
Status CheckEnums(const proto::StatusResponse& m) { return StatusOf(m.status, "StatusResponse"); }
Status CheckEnums(const proto::ListTxnsResponse& m) {
  TXC_RETURN_IF_ERROR(StatusOf(m.status, "ListTxnsResponse"));
  return Each(m.txns, Path{nullptr, "ListTxnsResponse"}, "txns");
}
Status CheckEnums(const proto::RetryTxnsResponse& m) {
  return StatusOf(m.status, "RetryTxnsResponse");
}
Status CheckEnums(const proto::ExecuteResponse& m) { return StatusOf(m.status, "ExecuteResponse"); }
Status CheckEnums(const proto::PrepareResponse& m) {
  TXC_RETURN_IF_ERROR(StatusOf(m.status, "PrepareResponse"));
  return Field(m.vote, Path{nullptr, "PrepareResponse"}, "vote");
}
Status CheckEnums(const proto::DecideResponse& m) { return StatusOf(m.status, "DecideResponse"); }
Status CheckEnums(const proto::ListBranchesResponse& m) {
  TXC_RETURN_IF_ERROR(StatusOf(m.status, "ListBranchesResponse"));
  return Each(m.branches, Path{nullptr, "ListBranchesResponse"}, "branches");
}
Status CheckEnums(const proto::AgentResolveResponse& m) {
  TXC_RETURN_IF_ERROR(StatusOf(m.status, "AgentResolveResponse"));
  return Each(m.branches, Path{nullptr, "AgentResolveResponse"}, "branches");
}
Status CheckEnums(const proto::AgentForgetResponse& m) {
  return StatusOf(m.status, "AgentForgetResponse");
}
Status CheckEnums(const proto::BranchStateResponse& m) {
  return StatusOf(m.status, "BranchStateResponse");
}
Status CheckEnums(const proto::PeerAck& m) { return StatusOf(m.status, "PeerAck"); }
Status CheckEnums(const proto::LogBenchAppendResponse& m) {
  return StatusOf(m.status, "LogBenchAppendResponse");
}

}  // namespace txc::validate
