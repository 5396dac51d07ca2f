// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
// 2012): a keyed pseudorandom function with a 128-bit key and a 64-bit
// output, built for short messages. Used where a value must be unforgeable
// by anyone who does not hold the key (BranchCore's decision keys). Pure
// function; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace txc {

using SipKey = std::array<uint64_t, 2>;  // k0, k1 (the key's bytes 0-7 and 8-15, little-endian)

uint64_t SipHash24(const SipKey& key, std::string_view message);

}  // namespace txc
