// The read side of the RPC wire format (rpc.h): splitting a byte stream into
// frames and decoding a message envelope, as pure functions over bytes. The
// server and the channel (rpc.cc) read every frame through these, and so does
// the frame reader's fuzz target (tests/fuzz/rpc_frame_fuzz.cc).
//
// Wire format: a 4-byte big-endian length, then one strict TBinaryProtocol
// message: version word | type, method name, seqid, then the args struct (a
// call: the request at field 1) or the result struct (a reply: the response
// at field 0) or a TApplicationException (an exception).
//
// Nothing here allocates beyond an error message, throws, or reads outside
// the bytes it is given. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace txc::rpc::wire {

// Thrift type ids (TBinaryProtocol), from thrift/protocol/TEnum.h.
constexpr uint8_t kTStop = 0;
constexpr uint8_t kTBool = 2;
constexpr uint8_t kTByte = 3;
constexpr uint8_t kTDouble = 4;
constexpr uint8_t kTI16 = 6;
constexpr uint8_t kTI32 = 8;
constexpr uint8_t kTI64 = 10;
constexpr uint8_t kTString = 11;
constexpr uint8_t kTStruct = 12;
constexpr uint8_t kTMap = 13;
constexpr uint8_t kTSet = 14;
constexpr uint8_t kTList = 15;

// Message types and the strict version word.
constexpr uint32_t kVersionMask = 0xffff0000u;
constexpr uint32_t kVersion1 = 0x80010000u;
constexpr uint8_t kCall = 1;
constexpr uint8_t kReply = 2;
constexpr uint8_t kException = 3;

// What the start of a byte stream holds.
struct FrameHead {
  enum Kind {
    kNeedMore,   // not a whole frame yet; `length` is 0 while the prefix itself is incomplete
    kComplete,   // a whole frame: `length` bytes after the 4-byte prefix
    kBadLength,  // the prefix claims 0 or more than the limit: the stream is unusable
  };
  Kind kind = kNeedMore;
  uint32_t length = 0;  // the frame's length prefix, once 4 bytes are there
};

// Looks at the first frame of `stream` (bytes received, not yet consumed).
FrameHead PeekFrame(std::string_view stream, uint32_t max_frame_bytes);

// A call as the server reads it; views into the frame.
struct Call {
  std::string_view name;
  int32_t seqid = 0;
  std::string_view args;  // the request struct (field 1 of the args), if has_args
  bool has_args = false;
};

// Decodes one call frame (the bytes after the length prefix). False, with
// *error saying why, when it is not a strict call message or its args struct
// does not parse; the server then closes the connection.
bool DecodeCall(std::string_view frame, Call* call, std::string* error);

// A reply as the channel reads it; views into the frame.
struct Reply {
  enum Body {
    kResult,               // a reply carrying its result struct (`result`)
    kNoResult,             // a reply whose result struct has no field 0
    kUnreadableResult,     // a reply whose result struct does not parse
    kApplicationError,     // an exception: `error_type`, `error_message`
    kUnreadableException,  // an exception that does not parse
    kOtherType,            // neither a reply nor an exception (`type`)
  };
  uint8_t type = 0;
  std::string_view name;
  int32_t seqid = 0;
  Body body = kOtherType;
  std::string_view result;
  int32_t error_type = 0;
  std::string_view error_message;
};

// Decodes one reply frame. False, with *error saying why, only when the
// message header is unreadable (the stream cannot be trusted); a bad body is
// reported in reply->body, since it can still be tied to its call.
bool DecodeReply(std::string_view frame, Reply* reply, std::string* error);

// Peer-supplied text (a method name) made safe for a log line.
std::string Printable(std::string_view s);

}  // namespace txc::rpc::wire
