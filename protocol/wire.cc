// The read side of the RPC wire format: see wire.h.
#include "protocol/wire.h"

#include <fmt/format.h>

namespace txc::rpc::wire {

namespace {

// Nesting limit while skipping a struct (Thrift's default recursion limit).
constexpr int kMaxDepth = 64;

inline uint32_t LoadBE32(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

// Bounds-checked reader of TBinaryProtocol data inside one frame. Every
// method returns false on truncated or impossible input; none allocates.
class WireReader {
 public:
  WireReader(const char* data, size_t size) : p_(data), end_(data + size) {}

  const char* pos() const { return p_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

  bool ReadU8(uint8_t* v) {
    if (remaining() < 1) return false;
    *v = static_cast<uint8_t>(*p_++);
    return true;
  }
  bool ReadI16(int16_t* v) {
    if (remaining() < 2) return false;
    const auto* u = reinterpret_cast<const uint8_t*>(p_);
    *v = static_cast<int16_t>((u[0] << 8) | u[1]);
    p_ += 2;
    return true;
  }
  bool ReadU32(uint32_t* v) {
    if (remaining() < 4) return false;
    *v = LoadBE32(p_);
    p_ += 4;
    return true;
  }
  bool ReadString(std::string_view* s) {
    uint32_t len;
    if (!ReadU32(&len) || len > remaining()) return false;  // also rejects negative sizes
    *s = std::string_view(p_, len);
    p_ += len;
    return true;
  }
  bool Advance(size_t n) {
    if (n > remaining()) return false;
    p_ += n;
    return true;
  }

  // Skips one value of `type`.
  bool Skip(uint8_t type, int depth) {
    if (int w = FixedWidth(type); w > 0) return Advance(static_cast<size_t>(w));
    switch (type) {
      case kTString: {
        std::string_view s;
        return ReadString(&s);
      }
      case kTStruct:
        return SkipStruct(depth);
      case kTMap: {
        uint8_t kt, vt;
        uint32_t n;
        if (depth >= kMaxDepth || !ReadU8(&kt) || !ReadU8(&vt) || !ReadU32(&n)) return false;
        return SkipElements(n, kt, vt, depth + 1);
      }
      case kTSet:
      case kTList: {
        uint8_t et;
        uint32_t n;
        if (depth >= kMaxDepth || !ReadU8(&et) || !ReadU32(&n)) return false;
        return SkipElements(n, et, kTStop, depth + 1);
      }
      default:
        return false;
    }
  }

  bool SkipStruct(int depth) {
    if (depth >= kMaxDepth) return false;
    for (;;) {
      uint8_t type;
      int16_t id;
      if (!ReadU8(&type)) return false;
      if (type == kTStop) return true;
      if (!ReadI16(&id) || !Skip(type, depth + 1)) return false;
    }
  }

  // Walks a struct; if it has a struct-typed field `id`, returns its bytes in
  // *field (otherwise leaves *field empty with found false).
  bool FindStructField(int16_t want, std::string_view* field, bool* found) {
    *found = false;
    for (;;) {
      uint8_t type;
      int16_t id;
      if (!ReadU8(&type)) return false;
      if (type == kTStop) return true;
      if (!ReadI16(&id)) return false;
      const char* begin = p_;
      if (!Skip(type, 1)) return false;
      if (id == want && type == kTStruct && !*found) {
        *field = std::string_view(begin, static_cast<size_t>(p_ - begin));
        *found = true;
      }
    }
  }

 private:
  static int FixedWidth(uint8_t type) {
    switch (type) {
      case kTBool:
      case kTByte:
        return 1;
      case kTI16:
        return 2;
      case kTI32:
        return 4;
      case kTI64:
      case kTDouble:
        return 8;
      default:
        return 0;
    }
  }

  // `vt` is kTStop for lists and sets.
  bool SkipElements(uint32_t n, uint8_t kt, uint8_t vt, int depth) {
    if (n > 0x7fffffffu) return false;  // a negative size on the wire
    if (n == 0) return true;
    const int kw = FixedWidth(kt);
    const int vw = vt == kTStop ? 0 : FixedWidth(vt);
    if (kw > 0 && (vt == kTStop || vw > 0)) {
      const uint64_t bytes = uint64_t{n} * static_cast<uint64_t>(kw + vw);
      return bytes <= remaining() && Advance(static_cast<size_t>(bytes));
    }
    // Every element takes at least one byte: refuse impossible counts early.
    if (n > remaining()) return false;
    for (uint32_t i = 0; i < n; ++i) {
      if (!Skip(kt, depth)) return false;
      if (vt != kTStop && !Skip(vt, depth)) return false;
    }
    return true;
  }

  const char* p_;
  const char* end_;
};

// The parsed envelope of one message.
struct Envelope {
  uint8_t type = 0;
  std::string_view name;
  int32_t seqid = 0;
};

// Reads the strict message header. On failure *error says why.
bool ReadEnvelope(WireReader* r, Envelope* env, std::string* error) {
  uint32_t version;
  if (!r->ReadU32(&version)) {
    *error = "truncated message header";
    return false;
  }
  if ((version & kVersionMask) != kVersion1) {
    *error = fmt::format("bad protocol version 0x{:08x} (want strict TBinaryProtocol)", version);
    return false;
  }
  env->type = static_cast<uint8_t>(version & 0xff);
  uint32_t seqid;
  if (!r->ReadString(&env->name) || !r->ReadU32(&seqid)) {
    *error = "truncated message header";
    return false;
  }
  env->seqid = static_cast<int32_t>(seqid);
  return true;
}

}  // namespace

FrameHead PeekFrame(std::string_view stream, uint32_t max_frame_bytes) {
  FrameHead head;
  if (stream.size() < 4) return head;
  head.length = LoadBE32(stream.data());
  if (head.length == 0 || head.length > max_frame_bytes) {
    head.kind = FrameHead::kBadLength;
  } else if (stream.size() - 4 >= head.length) {
    head.kind = FrameHead::kComplete;
  }
  return head;
}

bool DecodeCall(std::string_view frame, Call* call, std::string* error) {
  WireReader r(frame.data(), frame.size());
  Envelope env;
  if (!ReadEnvelope(&r, &env, error)) return false;
  if (env.type != kCall) {
    *error = fmt::format("message type {} where a call was expected", env.type);
    return false;
  }
  call->name = env.name;
  call->seqid = env.seqid;
  call->args = {};
  if (!r.FindStructField(1, &call->args, &call->has_args)) {
    *error = fmt::format("unreadable arguments of '{}'", Printable(env.name));
    return false;
  }
  return true;
}

bool DecodeReply(std::string_view frame, Reply* reply, std::string* error) {
  WireReader r(frame.data(), frame.size());
  Envelope env;
  if (!ReadEnvelope(&r, &env, error)) return false;
  reply->type = env.type;
  reply->name = env.name;
  reply->seqid = env.seqid;
  reply->result = {};
  reply->error_type = 0;
  reply->error_message = {};
  if (env.type == kReply) {
    bool found = false;
    if (!r.FindStructField(0, &reply->result, &found)) {
      reply->body = Reply::kUnreadableResult;
    } else {
      reply->body = found ? Reply::kResult : Reply::kNoResult;
    }
    return true;
  }
  if (env.type != kException) {
    reply->body = Reply::kOtherType;
    return true;
  }
  // A TApplicationException: 1: string message, 2: i32 type.
  reply->body = Reply::kUnreadableException;
  for (;;) {
    uint8_t ftype;
    int16_t id;
    if (!r.ReadU8(&ftype) || (ftype != kTStop && !r.ReadI16(&id))) break;
    if (ftype == kTStop) {
      reply->body = Reply::kApplicationError;
      break;
    }
    if (id == 1 && ftype == kTString) {
      if (!r.ReadString(&reply->error_message)) break;
    } else if (id == 2 && ftype == kTI32) {
      uint32_t v;
      if (!r.ReadU32(&v)) break;
      reply->error_type = static_cast<int32_t>(v);
    } else if (!r.Skip(ftype, 1)) {
      break;
    }
  }
  return true;
}

std::string Printable(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

}  // namespace txc::rpc::wire
