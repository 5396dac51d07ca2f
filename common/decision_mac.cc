#include "common/decision_mac.h"

namespace txc {

uint64_t DecisionMac(const SipKey& key, const std::string& resource, const TxId& txid,
                     proto::Outcome::type outcome, bool precommit) {
  // The message on the stack for the usual short resource names (one is
  // signed or checked for every decision).
  constexpr size_t kTail = 1 + 16 + 2;
  char small[128];
  std::string large;
  char* m = small;
  if (resource.size() + kTail > sizeof small) {
    large.resize(resource.size() + kTail);
    m = large.data();
  }
  size_t n = resource.copy(m, resource.size());
  m[n++] = '\0';
  for (int64_t v : {txid.epoch, txid.seq}) {
    auto u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) m[n++] = static_cast<char>((u >> (8 * i)) & 0xff);
  }
  m[n++] = static_cast<char>(static_cast<int>(outcome) & 0xff);
  m[n++] = precommit ? 1 : 0;
  uint64_t mac = SipHash24(key, std::string_view(m, n));
  return mac != 0 ? mac : 1;
}

uint64_t DecisionMac(const SipKey& key, const proto::DecideRequest& d) {
  return DecisionMac(key, d.resource, d.txid, d.outcome, d.__isset.precommit && d.precommit);
}

}  // namespace txc
