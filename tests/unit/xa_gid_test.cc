// xa::MakeGid / xa::ParseGid: the names of XA branches in the database.
#include <string>

#include <gtest/gtest.h>

#include "participant/xa_driver.h"

namespace txc::participant::xa {
namespace {

TEST(XaGid, RoundTrip) {
  TxId t = MakeTxId(7, 1042);
  std::string gid = MakeGid(t, "orders");
  EXPECT_EQ(gid, "txc:7.1042:orders");
  auto p = ParseGid(gid);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->txid.epoch, 7);
  EXPECT_EQ(p->txid.seq, 1042);
  EXPECT_EQ(p->resource, "orders");
}

TEST(XaGid, LongestResourceNameAndTxIdStayUnder200Bytes) {
  std::string name(64, 'r');
  name[0] = 'A';
  name[63] = '-';
  TxId t = MakeTxId(INT64_MAX, INT64_MAX);
  std::string gid = MakeGid(t, name);
  EXPECT_LT(gid.size(), 200u);
  auto p = ParseGid(gid);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->txid.epoch, INT64_MAX);
  EXPECT_EQ(p->txid.seq, INT64_MAX);
  EXPECT_EQ(p->resource, name);
}

TEST(XaGid, RejectsForeignStrings) {
  for (const char* s : {"", "txc", "txc:", "txc:7.1", "txc:7.1:", "txc:7:orders", "txc:.1:orders",
                        "txc:7.:orders", "txc:-7.1:orders", "txc:7.-1:orders", "txc:+7.1:orders",
                        "txc:007.1:orders", "txc:7.1:ord:ers", "txc:7.1:ord ers", "txc:7.1:orders\n",
                        "TXC:7.1:orders", "xtxc:7.1:orders", "txc:7.1.2:orders", "txc:7.1:a'b",
                        "foreign-1", "format=1 gtrid=74 bqual=", "txc:99999999999999999999.1:r"}) {
    EXPECT_FALSE(ParseGid(s).has_value()) << "accepted \"" << s << "\"";
  }
  EXPECT_FALSE(ParseGid("txc:1.1:" + std::string(65, 'r')).has_value()) << "a 65-byte resource name";
  EXPECT_TRUE(ParseGid("txc:1.1:" + std::string(64, 'r')).has_value());
  EXPECT_TRUE(ParseGid("txc:0.0:a").has_value());
}

}  // namespace
}  // namespace txc::participant::xa
