// common/siphash.h: SipHash-2-4 against the reference vectors of its paper
// (key 00 01 .. 0f, message 00 01 .. len-1; `openssl mac ... SIPHASH` gives
// the same), and the properties the decision keys rely on.
#include "common/siphash.h"

#include <gtest/gtest.h>

#include "common/decision_mac.h"

#include <string>

namespace txc {
namespace {

const SipKey kKey = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

std::string Counting(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(i));
  return s;
}

TEST(SipHashTest, MatchesTheReferenceVectors) {
  EXPECT_EQ(SipHash24(kKey, Counting(0)), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(SipHash24(kKey, Counting(1)), 0x74f839c593dc67fdULL);
  EXPECT_EQ(SipHash24(kKey, Counting(8)), 0x93f5f5799a932462ULL);   // one whole word
  EXPECT_EQ(SipHash24(kKey, Counting(15)), 0xa129ca6149be45e5ULL);  // the paper's example
  EXPECT_EQ(SipHash24(kKey, Counting(16)), 0x3f2acc7f57c29bdbULL);  // two whole words
}

TEST(SipHashTest, AnotherKeyOrMessageGivesAnotherValue) {
  const std::string m = "bank_a/7.1042";
  const uint64_t h = SipHash24(kKey, m);
  EXPECT_EQ(SipHash24(kKey, m), h);
  EXPECT_NE(SipHash24({kKey[0] ^ 1, kKey[1]}, m), h);
  EXPECT_NE(SipHash24({kKey[0], kKey[1] ^ (1ULL << 63)}, m), h);
  EXPECT_NE(SipHash24(kKey, "bank_a/7.1043"), h);
  EXPECT_NE(SipHash24(kKey, m + std::string(1, '\0')), h);  // the length is hashed too
}

// common/decision_mac.h: the MAC is SipHash of the documented message, for
// a short resource name (built on the stack) and a long one (on the heap).
TEST(DecisionMacTest, IsSipHashOfTheDocumentedMessage) {
  for (const std::string& resource : {std::string("bank_a"), std::string(300, 'r')}) {
    const TxId txid = MakeTxId(0x0102030405060708LL, 7);
    std::string m = resource;
    m.push_back('\0');
    m += std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8);
    m += std::string("\x07\0\0\0\0\0\0\0", 8);
    m.push_back(static_cast<char>(proto::Outcome::COMMITTED));
    m.push_back('\1');
    EXPECT_EQ(DecisionMac(kKey, resource, txid, proto::Outcome::COMMITTED, true), SipHash24(kKey, m));
    EXPECT_NE(DecisionMac(kKey, resource, txid, proto::Outcome::COMMITTED, false),
              DecisionMac(kKey, resource, txid, proto::Outcome::COMMITTED, true));
  }
}

}  // namespace
}  // namespace txc
