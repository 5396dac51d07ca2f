// Every request and response type of the Coordinator, Agent and Replica
// services (protocol/txcoord.thrift) and of LogBench (protocol/paxos.thrift),
// with the method that carries it: one table for the message fuzz target (it
// picks a type by the input's first byte), the frame target (it decodes a
// frame's body as its method's type) and the seed capture.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

#include "paxos_types.h"
#include "protocol/rpc.h"
#include "protocol/validate.h"
#include "tests/fuzz/fuzz_util.h"
#include "txcoord_types.h"

namespace txc::fuzz {

struct MessageType {
  const char* service;  // "Coordinator", "Agent", "Replica", "LogBench"
  const char* method;
  bool request;         // the method's argument (else its result)
  const char* type;
  // Decodes as the server (a request) or the channel (a response) does,
  // through rpc::detail::Deserialize and validate::CheckEnums; when both
  // pass, runs the server's range checks on a request and checks the round
  // trip. True if it parsed with every enum field in range.
  bool (*decode)(std::string_view bytes);
};

template <class T>
bool DecodeMessage(std::string_view bytes) {
  T v;
  if (!rpc::detail::Deserialize(std::string(bytes), &v)) return false;
  // The RPC layer refuses a message with an enum value out of range before
  // anything reads the field (rpc_inl.h); the round trip's write() would
  // load it as the enum.
  if (!validate::CheckEnums(v).ok()) return false;
  CheckRoundTrip(v, typeid(T).name());
  if constexpr (requires { validate::Check(v); }) {
    // What every handler runs first; its verdict does not matter here, only
    // that it gets through any value without undefined behaviour.
    (void)validate::Check(v);
  }
  return true;
}

#define TXC_MSG(service, method, request, T) \
  MessageType { service, method, request, #T, &DecodeMessage<T> }

inline const MessageType kMessageTypes[] = {
    // Coordinator
    TXC_MSG("Coordinator", "Begin", true, proto::BeginRequest),
    TXC_MSG("Coordinator", "Begin", false, proto::BeginResponse),
    TXC_MSG("Coordinator", "Commit", true, proto::CommitRequest),
    TXC_MSG("Coordinator", "Commit", false, proto::CommitResponse),
    TXC_MSG("Coordinator", "Submit", true, proto::SubmitRequest),
    TXC_MSG("Coordinator", "Submit", false, proto::CommitResponse),
    TXC_MSG("Coordinator", "Abort", true, proto::AbortRequest),
    TXC_MSG("Coordinator", "Abort", false, proto::CommitResponse),
    TXC_MSG("Coordinator", "Outcome", true, proto::OutcomeRequest),
    TXC_MSG("Coordinator", "Outcome", false, proto::OutcomeResponse),
    TXC_MSG("Coordinator", "Status", true, proto::StatusRequest),
    TXC_MSG("Coordinator", "Status", false, proto::StatusResponse),
    TXC_MSG("Coordinator", "ListTxns", true, proto::ListTxnsRequest),
    TXC_MSG("Coordinator", "ListTxns", false, proto::ListTxnsResponse),
    TXC_MSG("Coordinator", "RetryTxns", true, proto::RetryTxnsRequest),
    TXC_MSG("Coordinator", "RetryTxns", false, proto::RetryTxnsResponse),
    TXC_MSG("Coordinator", "Resolve", true, proto::ResolveRequest),
    TXC_MSG("Coordinator", "Resolve", false, proto::CommitResponse),
    TXC_MSG("Coordinator", "ForgetParticipant", true, proto::ForgetParticipantRequest),
    TXC_MSG("Coordinator", "ForgetParticipant", false, proto::CommitResponse),
    // Agent
    TXC_MSG("Agent", "Execute", true, proto::ExecuteRequest),
    TXC_MSG("Agent", "Execute", false, proto::ExecuteResponse),
    TXC_MSG("Agent", "Prepare", true, proto::PrepareRequest),
    TXC_MSG("Agent", "Prepare", false, proto::PrepareResponse),
    TXC_MSG("Agent", "Decide", true, proto::DecideRequest),
    TXC_MSG("Agent", "Decide", false, proto::DecideResponse),
    TXC_MSG("Agent", "ListBranches", true, proto::ListBranchesRequest),
    TXC_MSG("Agent", "ListBranches", false, proto::ListBranchesResponse),
    TXC_MSG("Agent", "Resolve", true, proto::AgentResolveRequest),
    TXC_MSG("Agent", "Resolve", false, proto::AgentResolveResponse),
    TXC_MSG("Agent", "Forget", true, proto::AgentForgetRequest),
    TXC_MSG("Agent", "Forget", false, proto::AgentForgetResponse),
    TXC_MSG("Agent", "BranchState", true, proto::BranchStateRequest),
    TXC_MSG("Agent", "BranchState", false, proto::BranchStateResponse),
    // Replica (peer messages: their payload is the Paxos target's business)
    TXC_MSG("Replica", "Deliver", true, proto::PeerMessage),
    TXC_MSG("Replica", "Deliver", false, proto::PeerAck),
    // LogBench (served by a coordinator replica)
    TXC_MSG("LogBench", "Append", true, proto::LogBenchAppendRequest),
    TXC_MSG("LogBench", "Append", false, proto::LogBenchAppendResponse),
};

#undef TXC_MSG

constexpr size_t kMessageTypeCount = std::size(kMessageTypes);

// The entries of `method` (both services' "Resolve" match: the frame target
// tries each), or of `service` too when it is not empty.
template <class Fn>
void ForEachTypeOf(std::string_view method, bool request, Fn fn, std::string_view service = {}) {
  for (size_t i = 0; i < kMessageTypeCount; ++i) {
    const MessageType& t = kMessageTypes[i];
    if (t.request == request && method == t.method && (service.empty() || service == t.service)) {
      fn(i, t);
    }
  }
}

}  // namespace txc::fuzz
