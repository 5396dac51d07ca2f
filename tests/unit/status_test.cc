#include "common/status.h"

#include <gtest/gtest.h>

#include "common/status_proto.h"
#include "common/txid.h"

namespace txc {
namespace {

TEST(StatusTest, OkAndErrorsPrintTheirCode) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Status::LockTimeout("bank_a.accounts id=7 held by txn 3.118");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "LOCK_TIMEOUT: bank_a.accounts id=7 held by txn 3.118");
}

TEST(StatusTest, EveryWireCodeConvertsBothWaysUnchanged) {
  // proto::Code and Status::Code list the same codes: every wire code maps to
  // the Status code of the same number and back, and none lies past the last.
  ASSERT_FALSE(proto::_Code_VALUES_TO_NAMES.empty());
  for (const auto& [n, name] : proto::_Code_VALUES_TO_NAMES) {
    EXPECT_LE(n, kLastStatusCode) << name << " has no Status code";
    Status s = FromProto(static_cast<proto::Code::type>(n), "m");
    EXPECT_EQ(static_cast<int>(s.code()), n) << name;
    EXPECT_EQ(ToProto(s).code, n) << name;
    EXPECT_EQ(ToProto(s).message, "m");
  }
  EXPECT_EQ(proto::_Code_VALUES_TO_NAMES.size(), static_cast<size_t>(kLastStatusCode + 1));
}

TEST(StatusTest, UnknownWireCodeIsInternalAndKeepsTheNumber) {
  for (int n : {-1, kLastStatusCode + 1, 99}) {
    Status s = FromProto(static_cast<proto::Code::type>(n), "from a newer peer");
    EXPECT_EQ(s.code(), Status::kInternal) << n;
    EXPECT_NE(s.message().find("unknown status code " + std::to_string(n)), std::string::npos);
    EXPECT_NE(s.message().find("from a newer peer"), std::string::npos);
  }
}

TEST(StatusTest, ResultCarriesValueOrStatus) {
  Result<int> good(5);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 5);
  Result<int> bad(Status::NotFound("no branch"));
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::kNotFound);
}

TEST(TxIdTest, PrintsAndParsesEpochDotSeq) {
  TxId t = MakeTxId(7, 1042);
  EXPECT_EQ(ToString(t), "7.1042");
  auto p = ParseTxId("7.1042");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, t);
  EXPECT_FALSE(ParseTxId("7").has_value());
  EXPECT_FALSE(ParseTxId("7.x").has_value());
  EXPECT_FALSE(ParseTxId("-1.2").has_value());
  EXPECT_FALSE(ParseTxId("1.2.3").has_value());
}

TEST(TxIdTest, OlderOrdersByEpochThenSeq) {
  EXPECT_TRUE(Older(MakeTxId(1, 9), MakeTxId(2, 1)));
  EXPECT_TRUE(Older(MakeTxId(2, 1), MakeTxId(2, 2)));
  EXPECT_FALSE(Older(MakeTxId(2, 2), MakeTxId(2, 2)));
}

}  // namespace
}  // namespace txc
