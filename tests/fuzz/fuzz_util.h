// Helpers shared by the fuzz targets (tests/fuzz/*_fuzz.cc), the replay test
// and the seed capture: how a target's input is cut into records, and the
// round-trip check every decoded value must pass.
//
// A target stops the process (FUZZ_CHECK) on a property violation, so
// libFuzzer keeps the input as a crash; a decode that merely fails is fine.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec.h"

namespace txc::fuzz {

#define FUZZ_CHECK(cond, what)                                                       \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "fuzz check failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   #cond, what);                                                     \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

// Records inside one input: each a 2-byte little-endian length, then the
// bytes; a last record that claims more than is left takes what is left.
// Inputs of several records let a target run a sequence (log replay, a
// conversation of peer messages).
inline std::vector<std::string_view> SplitRecords(std::string_view in, size_t max_records = 64) {
  std::vector<std::string_view> out;
  while (in.size() >= 2 && out.size() < max_records) {
    const size_t n = static_cast<uint8_t>(in[0]) | (size_t{static_cast<uint8_t>(in[1])} << 8);
    in.remove_prefix(2);
    const size_t take = n < in.size() ? n : in.size();
    out.push_back(in.substr(0, take));
    in.remove_prefix(take);
  }
  return out;
}

// The inverse of SplitRecords, for writing seeds.
inline void AppendRecord(std::string* out, std::string_view record) {
  const size_t n = record.size() < 0xffff ? record.size() : 0xffff;
  out->push_back(static_cast<char>(n & 0xff));
  out->push_back(static_cast<char>(n >> 8));
  out->append(record.substr(0, n));
}

// `v` was decoded from some bytes: its encoding must decode again, to a value
// whose encoding is the same bytes (unknown fields were dropped by the first
// decode, so the first re-encoding is the fixed point).
template <class T>
void CheckRoundTrip(const T& v, const char* type) {
  const std::string once = codec::Encode(v);
  FUZZ_CHECK(!once.empty(), type);
  T again;
  FUZZ_CHECK(codec::Decode(once, &again), type);
  FUZZ_CHECK(codec::Encode(again) == once, type);
}

// Decodes `bytes` as T through the codec of every RPC payload and persisted
// record (rpc detail::Deserialize is codec::Decode); checks the round trip
// when it parses. True when it parsed.
template <class T>
bool DecodeAndCheck(std::string_view bytes, T* v, const char* type) {
  if (!codec::Decode(bytes, v)) return false;
  CheckRoundTrip(*v, type);
  return true;
}

}  // namespace txc::fuzz
