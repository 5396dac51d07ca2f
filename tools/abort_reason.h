#pragma once
// txbench's abort reasons: why a transfer aborted, in a word, for the
// aborted_by table of docs/benchmarks.md.

#include <cctype>
#include <string>

#include "common/status.h"

namespace txc::bench {

// The status code, or for ABORTED (the coordinator's answer, or an agent
// that rolled an interactive branch back) the reason its message names.
// Checked most specific first: a NO vote names why the agent voted so.
//   wait_die            a younger transaction met an older one's lock
//   lock_timeout        waited for a lock past the agent's lock timeout
//   insufficient_funds  the checked debit changed no row (txbench's only
//                       expectation: balance >= amount)
//   vote_timeout        a participant did not vote in time, or could not
//   voted_no            any other NO vote
//   conflict, deadlock, serialization, no_connection, timeout, other
inline std::string AbortReason(const Status& s) {
  switch (s.code()) {
    case Status::kLockTimeout: return "lock_timeout";
    case Status::kExpectationFailed: return "insufficient_funds";
    default: break;
  }
  std::string m = s.message();
  for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto has = [&m](const char* word) { return m.find(word) != std::string::npos; };
  if (has("WAIT-DIE")) return "wait_die";
  if (has("LOCK_TIMEOUT") || has("LOCK TIMEOUT")) return "lock_timeout";
  if (has("EXPECTATION_FAILED") || has("EXPECTED")) return "insufficient_funds";
  if (has("VOTE TIMEOUT") || has("DID NOT VOTE")) return "vote_timeout";
  if (has("DEADLOCK")) return "deadlock";
  if (has("SERIALIZ")) return "serialization";
  if (has("CONNECTIONS ARE HELD")) return "no_connection";
  if (has("VOTED NO")) return "voted_no";
  if (s.code() == Status::kConflict || has("CONFLICT")) return "conflict";
  if (has("TIMED OUT")) return "timeout";
  return "other";
}

}  // namespace txc::bench
