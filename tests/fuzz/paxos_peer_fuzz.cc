// Fuzz target: Multi-Paxos peer messages as a coordinator replica receives
// them (coordinator/paxos_log.cc, the Replica.Deliver handler): each a
// Deliver argument (proto::PeerMessage) decoded through the servers' codec
// and range-checked (validate::Check), its payload read by
// DecodePeerPayload, and, from a member, handed to a group-mode NodeCore
// (replica 1 of 1, 2, 3), whose durable writes are acknowledged at once and
// whose timers run between messages, so a sequence of messages can walk the
// replica through elections, accepts, catch-up and snapshot transfer.
//
// Input: records (fuzz_util.h, SplitRecords), one PeerMessage each.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "coordinator/decision_log.h"
#include "coordinator/node_core.h"
#include "protocol/validate.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using txc::coord::NodeCore;
using txc::coord::NodeEffects;

// Acknowledges every durable write the effects ask for, as the shell does
// once its LogStore write completes, and flushes the held proposals when
// asked, as the shell does at the end of its turn; bounded, since each
// answer may ask for more.
void Settle(NodeCore* core, NodeEffects fx, txc::Micros now) {
  for (int round = 0; round < 8; ++round) {
    std::vector<uint64_t> tokens;
    for (const auto& a : fx.actions) {
      if (const auto* p = std::get_if<txc::paxos::Persist>(&a)) tokens.push_back(p->token);
    }
    if (tokens.empty() && !fx.flush_proposals) return;
    NodeEffects next;
    auto take = [&next](NodeEffects more) {
      for (auto& a : more.actions) next.actions.push_back(std::move(a));
      next.flush_proposals = next.flush_proposals || more.flush_proposals;
    };
    for (uint64_t t : tokens) take(core->OnPersisted(t, now));
    if (fx.flush_proposals) take(core->FlushProposals(now));
    fx = std::move(next);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto records =
      txc::fuzz::SplitRecords(std::string_view(reinterpret_cast<const char*>(data), size), 32);
  txc::coord::NodeCoreOptions o;
  o.self_id = 1;
  o.members = {1, 2, 3};
  o.addresses = {{1, "127.0.0.1:1"}, {2, "127.0.0.1:2"}, {3, "127.0.0.1:3"}};
  o.paxos.snapshot_chunk = 64;  // small chunks: a few messages make a whole image
  NodeCore core(std::move(o));
  txc::Micros now = 1'000'000;
  Settle(&core, core.Start(now), now);
  for (std::string_view r : records) {
    now += 100'000;
    txc::proto::PeerMessage m;
    if (!txc::fuzz::DecodeAndCheck(r, &m, "PeerMessage")) continue;
    if (!txc::validate::Check(m).ok()) continue;
    txc::paxos::Message msg;
    std::string why;
    if (!txc::coord::DecodePeerPayload(m.payload, &msg, &why)) {
      FUZZ_CHECK(!why.empty(), "a dropped message says why");
      continue;
    }
    txc::fuzz::CheckRoundTrip(msg, "paxos Message");
    if (msg.sender < 1 || msg.sender > 3) continue;  // PaxosLog drops non-members
    Settle(&core, core.OnPeerMessage(msg, now), now);
    Settle(&core, core.TickReplica(now), now);
    Settle(&core, core.Tick(now), now);
  }
  return 0;
}
