// Small helpers shared by the unit tests of the deterministic cores
// (TxnTable, CommitDriver, BranchCore): status assertions and builders for
// the Thrift messages the tests write by hand.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/status.h"
#include "common/status_proto.h"
#include "common/txid.h"
#include "txcoord_types.h"

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    const ::txc::Status txc_s_ = (expr);                 \
    ASSERT_TRUE(txc_s_.ok()) << txc_s_.ToString();       \
  } while (0)
#define EXPECT_OK(expr)                                  \
  do {                                                   \
    const ::txc::Status txc_s_ = (expr);                 \
    EXPECT_TRUE(txc_s_.ok()) << txc_s_.ToString();       \
  } while (0)

namespace txc::testing {

inline proto::Participant Participant(std::string resource, std::string address) {
  proto::Participant p;
  p.resource = std::move(resource);
  p.address = std::move(address);
  return p;
}

inline proto::Statement Sql(std::string sql) {
  proto::Statement s;
  s.sql = std::move(sql);
  return s;
}

inline proto::ResultSet Rows(std::vector<std::string> columns, int64_t changed) {
  proto::ResultSet r;
  r.columns = std::move(columns);
  r.rows_changed = changed;
  return r;
}

inline proto::Code::type CodeOf(const Status& s) { return ToProtoCode(s.code()); }

}  // namespace txc::testing
