#include "common/txid.h"

#include <charconv>

namespace txc {

TxId MakeTxId(int64_t epoch, int64_t seq) {
  TxId t;
  t.epoch = epoch;
  t.seq = seq;
  return t;
}

std::string ToString(const TxId& t) {
  return std::to_string(t.epoch) + "." + std::to_string(t.seq);
}

std::optional<TxId> ParseTxId(std::string_view s) {
  auto dot = s.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  int64_t e = 0, q = 0;
  auto r1 = std::from_chars(s.data(), s.data() + dot, e);
  auto r2 = std::from_chars(s.data() + dot + 1, s.data() + s.size(), q);
  if (r1.ec != std::errc() || r1.ptr != s.data() + dot) return std::nullopt;
  if (r2.ec != std::errc() || r2.ptr != s.data() + s.size()) return std::nullopt;
  if (e < 0 || q < 0) return std::nullopt;
  return MakeTxId(e, q);
}

const char* OutcomeName(proto::Outcome::type o) {
  switch (o) {
    case proto::Outcome::UNKNOWN: return "unknown";
    case proto::Outcome::PENDING: return "pending";
    case proto::Outcome::COMMITTED: return "committed";
    case proto::Outcome::ABORTED: return "aborted";
    case proto::Outcome::FORGOTTEN: return "forgotten";
  }
  return "?";
}

const char* VoteName(proto::Vote::type v) {
  switch (v) {
    case proto::Vote::YES: return "yes";
    case proto::Vote::NO: return "no";
    case proto::Vote::READ_ONLY: return "read-only";
  }
  return "?";
}

}  // namespace txc
