// common/codec.h: the one Thrift codec of persisted records and RPC payloads.
#include "common/codec.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>

#include "txcoord_types.h"

// GCC cannot see that the replaced new and delete below pair up.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Every allocation of this binary goes through here, so a test can measure
// the largest single allocation a decode made.
namespace {
bool g_counting = false;
size_t g_largest = 0;
}  // namespace

void* operator new(size_t n) {
  if (g_counting && n > g_largest) g_largest = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace txc::codec {
namespace {

// The largest single allocation made by decoding `bytes` as a T, and whether
// it decoded.
template <class T>
std::pair<bool, size_t> DecodeCounting(const std::string& bytes) {
  T value;
  g_largest = 0;
  g_counting = true;
  bool ok = Decode(bytes, &value);
  g_counting = false;
  return {ok, g_largest};
}

proto::Participant P(std::string resource, std::string address) {
  proto::Participant p;
  p.resource = std::move(resource);
  p.address = std::move(address);
  return p;
}

proto::CommandBatch SampleBatch() {
  proto::CommandBatch batch;
  proto::Command c;
  c.type = proto::CommandType::DECIDE;
  c.txid.epoch = 3;
  c.txid.seq = 17;
  c.outcome = proto::Outcome::COMMITTED;
  proto::Participant b = P("bank_b", "10.0.0.2:7100");
  b.__set_incarnation(1234567890123);
  c.participants = {P("bank_a", "10.0.0.1:7100"), b};
  c.protocol = proto::Protocol::THREE_PC;
  c.reason = std::string("with \0 a nul", 12);
  c.who = "carol";
  c.epoch = -5;
  batch.commands = {c, c};
  batch.__set_snapshot_version(2);
  proto::ForgottenRuns f;
  f.epoch = 2;
  f.committed = {1, 4, 9, 9};
  batch.__set_forgotten({f});
  return batch;
}

// Thrift's recursion tracker leaks one level of depth whenever an input nests
// past the limit; the codec's per-thread protocols used to keep that, so 64
// such inputs made every later decode on the thread fail (found by the
// participant_wal fuzz target; input in tests/fuzz/crashes/participant_wal).
TEST(CodecTest, InputsNestedPastTheLimitDoNotBreakLaterDecodes) {
  // An unknown struct field (id 9) nested 100 deep: skipped, past the limit.
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += std::string("\x0c\x00\x09", 3);
  deep += std::string(101, '\0');
  proto::ChangeKeysRecord valid;
  valid.keys = {"k"};
  const std::string bytes = codec::Encode(valid);
  for (int i = 0; i < 200; ++i) {
    proto::ChangeKeysRecord r;
    EXPECT_FALSE(codec::Decode(deep, &r));
    ASSERT_TRUE(codec::Decode(bytes, &r)) << "after " << i + 1 << " deep inputs";
    EXPECT_EQ(r.keys, valid.keys);
  }
}

TEST(CodecTest, RoundTripsEveryFieldIncludingOptionalOnes) {
  const proto::CommandBatch in = SampleBatch();
  const std::string bytes = Encode(in);
  ASSERT_FALSE(bytes.empty());
  proto::CommandBatch out;
  ASSERT_TRUE(Decode(bytes, &out));
  EXPECT_EQ(out, in);
  ASSERT_TRUE(out.commands[0].participants[1].__isset.incarnation);
  EXPECT_EQ(out.commands[0].participants[1].incarnation, 1234567890123);
  EXPECT_FALSE(out.commands[0].participants[0].__isset.incarnation);
  EXPECT_FALSE(out.__isset.lost_through);
  // Deterministic: the same value always gives the same bytes.
  EXPECT_EQ(Encode(out), bytes);
}

TEST(CodecTest, StrictBinaryProtocolLayout) {
  proto::TxId t;
  t.epoch = 1;
  t.seq = 2;
  // i64 field 1, i64 field 2, stop: big-endian, type byte then field id.
  EXPECT_EQ(Encode(t), std::string("\x0a\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"
                                   "\x0a\x00\x02\x00\x00\x00\x00\x00\x00\x00\x02"
                                   "\x00", 23));
}

TEST(CodecTest, EmptyAndEveryTruncationAreRefused) {
  const std::string bytes = Encode(SampleBatch());
  proto::CommandBatch out;
  EXPECT_FALSE(Decode(std::string(), &out));
  for (size_t n = 1; n < bytes.size(); ++n) {
    EXPECT_FALSE(Decode(std::string_view(bytes).substr(0, n), &out)) << n;
  }
  // A failed decode leaves nothing behind for the next one.
  proto::CommandBatch again;
  ASSERT_TRUE(Decode(bytes, &again));
  EXPECT_EQ(again, SampleBatch());
}

TEST(CodecTest, UnknownTypeByteIsRefused) {
  std::string bytes = Encode(SampleBatch());
  ASSERT_EQ(bytes[0], 0x0f);  // field 1 is a list
  for (char t : {'\x01', '\x05', '\x07', '\x09', '\x10', '\x7f', '\xff'}) {
    std::string bad = bytes;
    bad[0] = t;  // no Thrift type has this id
    proto::CommandBatch out;
    EXPECT_FALSE(Decode(bad, &out)) << static_cast<int>(t);
  }
  std::string bad_elem = bytes;
  bad_elem[3] = 0x33;  // the list's element type
  proto::CommandBatch out;
  EXPECT_FALSE(Decode(bad_elem, &out));
}

// A field whose wire type is not the schema's is skipped, as a stock Thrift
// reader skips it: the field keeps its default.
TEST(CodecTest, FieldOfAnotherTypeIsSkipped) {
  // TxId with field 1 sent as a string "ab", field 2 as i64 7.
  const std::string bytes("\x0b\x00\x01\x00\x00\x00\x02" "ab"
                          "\x0a\x00\x02\x00\x00\x00\x00\x00\x00\x00\x07"
                          "\x00", 21);
  proto::TxId t;
  ASSERT_TRUE(Decode(bytes, &t));
  EXPECT_EQ(t.epoch, 0);
  EXPECT_EQ(t.seq, 7);
}

// A field the schema does not know is skipped through the checked reader
// too: its type bytes and counts are refused as a known field's would be.
// (Thrift's TBinaryProtocol alone takes an empty list or map of T_STOP
// elements, and casts an unknown element type byte to its TType enum before
// refusing it.)
TEST(CodecTest, SkippedFieldsAreCheckedLikeReadOnes) {
  const std::string txid("\x0a\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03"
                         "\x0a\x00\x02\x00\x00\x00\x00\x00\x00\x00\x04", 22);
  auto with_field_9 = [&](const std::string& field) { return txid + field + std::string(1, '\0'); };
  proto::TxId t;
  // Well-formed unknown fields are skipped: a list<i32> of 2, a map<string,
  // i64> of 1, a struct holding a list<struct>.
  for (const std::string& field :
       {std::string("\x0f\x00\x09\x08\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02", 16),
        std::string("\x0d\x00\x09\x0b\x0a\x00\x00\x00\x01\x00\x00\x00\x01k"
                    "\x00\x00\x00\x00\x00\x00\x00\x07", 22),
        std::string("\x0c\x00\x09\x0f\x00\x01\x0c\x00\x00\x00\x01\x00\x00", 13)}) {
    t = proto::TxId();
    EXPECT_TRUE(Decode(with_field_9(field), &t)) << field.size();
    EXPECT_EQ(t.epoch, 3);
    EXPECT_EQ(t.seq, 4);
  }
  // Refused: an empty list and an empty map of T_STOP elements, an unknown
  // element type, and a count past the input's bytes.
  for (const std::string& field :
       {std::string("\x0f\x00\x09\x00\x00\x00\x00\x00", 8),
        std::string("\x0d\x00\x09\x08\x00\x00\x00\x00\x00", 9),
        std::string("\x0e\x00\x09\x63\x00\x00\x00\x00", 8),
        std::string("\x0f\x00\x09\x0c\x7f\xff\xff\xff", 8)}) {
    EXPECT_FALSE(Decode(with_field_9(field), &t)) << field.size();
  }
  // And a skip leaves the thread's reader sound for the next decode.
  t = proto::TxId();
  ASSERT_TRUE(Decode(with_field_9(std::string()), &t));
  EXPECT_EQ(t.seq, 4);
}

TEST(CodecTest, ForgedStringLengthIsRefusedWithoutAllocating) {
  // Participant.resource claims 2^31-1 bytes; the input has 12.
  const std::string bytes("\x0b\x00\x01\x7f\xff\xff\xff" "bank_", 12);
  auto [ok, largest] = DecodeCounting<proto::Participant>(bytes);
  EXPECT_FALSE(ok);
  EXPECT_LT(largest, size_t{1} << 20);
}

TEST(CodecTest, ForgedContainerCountIsRefusedWithoutAllocating) {
  std::string bytes = Encode(SampleBatch());
  ASSERT_EQ(bytes.substr(0, 4), std::string("\x0f\x00\x01\x0c", 4));
  for (const char* count : {"\x7f\xff\xff\xff", "\x00\x10\x00\x00", "\xff\xff\xff\xfe"}) {
    std::string forged = bytes;
    forged.replace(4, 4, std::string(count, 4));
    auto [ok, largest] = DecodeCounting<proto::CommandBatch>(forged);
    EXPECT_FALSE(ok);
    // A vector of 2^20 commands alone would take far more than this.
    EXPECT_LT(largest, size_t{1} << 20);
  }
}

TEST(CodecTest, LargeValuesRoundTripAndTheScratchRecovers) {
  proto::Command c;
  c.reason = std::string(3 << 20, 'x');  // past the scratch buffer's keep size
  const std::string big = Encode(c);
  ASSERT_GT(big.size(), size_t{3} << 20);
  proto::Command out;
  ASSERT_TRUE(Decode(big, &out));
  EXPECT_EQ(out, c);
  proto::TxId t;
  t.seq = 9;
  proto::TxId t2;
  ASSERT_TRUE(Decode(Encode(t), &t2));
  EXPECT_EQ(t2, t);
}

}  // namespace
}  // namespace txc::codec
