// Fuzz target: every request and response type of the Coordinator, Agent,
// Replica (and LogBench) services, decoded through the codec the servers and
// channels use (rpc::detail::Deserialize), range-checked as a server does
// (validate::Check), and, when it parses, re-encoded and decoded again with
// the bytes checked equal.
//
// Input: one byte that picks the type (modulo the number of types, in the
// order of message_types.h), then the struct's bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/message_types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const txc::fuzz::MessageType& t = txc::fuzz::kMessageTypes[data[0] % txc::fuzz::kMessageTypeCount];
  t.decode(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  return 0;
}
