// The one conversion between Status (common/status.h) and the wire's
// proto::Status (protocol/txcoord.thrift). The two code lists are the same
// numbers by construction; the static_asserts keep them so.
#pragma once

#include <string>

#include "common/status.h"
#include "txcoord_types.h"

namespace txc {

static_assert(Status::kOk == static_cast<int>(proto::Code::OK));
static_assert(Status::kInvalidArgument == static_cast<int>(proto::Code::INVALID_ARGUMENT));
static_assert(Status::kNotFound == static_cast<int>(proto::Code::NOT_FOUND));
static_assert(Status::kAborted == static_cast<int>(proto::Code::ABORTED));
static_assert(Status::kLockTimeout == static_cast<int>(proto::Code::LOCK_TIMEOUT));
static_assert(Status::kUnavailable == static_cast<int>(proto::Code::UNAVAILABLE));
static_assert(Status::kTimeout == static_cast<int>(proto::Code::TIMEOUT));
static_assert(Status::kStorageFailed == static_cast<int>(proto::Code::STORAGE_FAILED));
static_assert(Status::kNotLeader == static_cast<int>(proto::Code::NOT_LEADER));
static_assert(Status::kConflict == static_cast<int>(proto::Code::CONFLICT));
static_assert(Status::kInternal == static_cast<int>(proto::Code::INTERNAL));
static_assert(Status::kSqlError == static_cast<int>(proto::Code::SQL_ERROR));
static_assert(Status::kExpectationFailed == static_cast<int>(proto::Code::EXPECTATION_FAILED));
static_assert(Status::kPermissionDenied == static_cast<int>(proto::Code::PERMISSION_DENIED));
// The last code of both lists (status_test checks that proto::Code has no
// other: a code added to one list only fails there).
constexpr int kLastStatusCode = Status::kPermissionDenied;

inline proto::Code::type ToProtoCode(Status::Code c) { return static_cast<proto::Code::type>(c); }

inline proto::Status ToProto(const Status& s) {
  proto::Status p;
  p.code = ToProtoCode(s.code());
  p.message = s.message();
  return p;
}

// A code this build does not know (a newer or a hostile peer) is INTERNAL,
// with the number kept in the message.
inline Status FromProto(proto::Code::type code, const std::string& message) {
  int n = static_cast<int>(code);
  if (n < 0 || n > kLastStatusCode) {
    return Status::Internal("unknown status code " + std::to_string(n) + ": " + message);
  }
  return Status(static_cast<Status::Code>(n), message);
}

inline Status FromProto(const proto::Status& s) { return FromProto(s.code, s.message); }

}  // namespace txc
