// Status and Result<T>: how every fallible call in txcoord reports failure.
// Value types; thread-compatible.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace txc {

class [[nodiscard]] Status {
 public:
  // Codes mirror proto::Code (protocol/txcoord.thrift) one to one, so a Status
  // crosses the wire without translation tables.
  enum Code {
    kOk = 0,
    kInvalidArgument = 1,
    kNotFound = 2,
    kAborted = 3,
    kLockTimeout = 4,
    kUnavailable = 5,
    kTimeout = 6,
    kStorageFailed = 7,
    kNotLeader = 8,
    kConflict = 9,
    kInternal = 10,
    kSqlError = 11,
    kExpectationFailed = 12,
    kPermissionDenied = 13,
  };

  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {kNotFound, std::move(m)}; }
  static Status Aborted(std::string m) { return {kAborted, std::move(m)}; }
  static Status LockTimeout(std::string m) { return {kLockTimeout, std::move(m)}; }
  static Status Unavailable(std::string m) { return {kUnavailable, std::move(m)}; }
  static Status Timeout(std::string m) { return {kTimeout, std::move(m)}; }
  static Status StorageFailed(std::string m) { return {kStorageFailed, std::move(m)}; }
  static Status NotLeader(std::string m) { return {kNotLeader, std::move(m)}; }
  static Status Conflict(std::string m) { return {kConflict, std::move(m)}; }
  static Status Internal(std::string m) { return {kInternal, std::move(m)}; }
  static Status SqlError(std::string m) { return {kSqlError, std::move(m)}; }
  static Status ExpectationFailed(std::string m) { return {kExpectationFailed, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {kPermissionDenied, std::move(m)}; }

  bool ok() const { return code_ == kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;
  static const char* CodeName(Code code);

 private:
  Code code_ = kOk;
  std::string message_;
};

// A value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace txc

#define TXC_RETURN_IF_ERROR(expr)          \
  do {                                     \
    ::txc::Status txc_status_ = (expr);    \
    if (!txc_status_.ok()) return txc_status_; \
  } while (0)
