// Signed decisions (docs/protocol.md, "Who may say commit"): the MAC a
// coordinator puts on a decision for an agent that registered a key
// (DecideRequest.decision_mac, OutcomeRequest.decision_key), and the check
// the agent makes. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/siphash.h"
#include "common/txid.h"
#include "txcoord_types.h"

namespace txc {

// SipHash-2-4 under `key` of: resource, a zero byte, txid.epoch and txid.seq
// (8 bytes each, little-endian), the outcome (one byte), precommit (one byte,
// 0 or 1). Never 0 (0 would read as "no MAC").
uint64_t DecisionMac(const SipKey& key, const std::string& resource, const TxId& txid,
                     proto::Outcome::type outcome, bool precommit);

// The MAC of `d` under `key`.
uint64_t DecisionMac(const SipKey& key, const proto::DecideRequest& d);

// A key is in use when either half is not 0.
inline bool UsableKey(const SipKey& key) { return key[0] != 0 || key[1] != 0; }

}  // namespace txc
