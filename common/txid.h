// Helpers for transaction ids (proto::TxId): printing "E.S", parsing, ordering,
// hashing. Value functions; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "txcoord_types.h"

namespace txc {

using TxId = proto::TxId;

TxId MakeTxId(int64_t epoch, int64_t seq);
std::string ToString(const TxId& t);  // "7.1042"
std::optional<TxId> ParseTxId(std::string_view s);

// Lexicographic (epoch, seq): a smaller txid is older.
inline bool Older(const TxId& a, const TxId& b) {
  return a.epoch < b.epoch || (a.epoch == b.epoch && a.seq < b.seq);
}
struct TxIdLess {
  bool operator()(const TxId& a, const TxId& b) const { return Older(a, b); }
};
struct TxIdHash {
  size_t operator()(const TxId& t) const {
    return std::hash<uint64_t>()(static_cast<uint64_t>(t.epoch) * 0x9E3779B97F4A7C15ULL ^
                                 static_cast<uint64_t>(t.seq));
  }
};

// The reason a leader gives (CommitResponse.reason) for a txid of an older
// epoch that no leader decided: presumed aborted, it never commits.
inline constexpr std::string_view kPresumedAbortLeaderChanged =
    "its coordinator leader changed before a decision (presumed abort)";

// Protocol/outcome names for logs and tools.
const char* OutcomeName(proto::Outcome::type o);
const char* VoteName(proto::Vote::type v);

}  // namespace txc
