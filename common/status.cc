#include "common/status.h"

namespace txc {

const char* Status::CodeName(Code code) {
  switch (code) {
    case kOk: return "OK";
    case kInvalidArgument: return "INVALID_ARGUMENT";
    case kNotFound: return "NOT_FOUND";
    case kAborted: return "ABORTED";
    case kLockTimeout: return "LOCK_TIMEOUT";
    case kUnavailable: return "UNAVAILABLE";
    case kTimeout: return "TIMEOUT";
    case kStorageFailed: return "STORAGE_FAILED";
    case kNotLeader: return "NOT_LEADER";
    case kConflict: return "CONFLICT";
    case kInternal: return "INTERNAL";
    case kSqlError: return "SQL_ERROR";
    case kExpectationFailed: return "EXPECTATION_FAILED";
    case kPermissionDenied: return "PERMISSION_DENIED";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace txc
