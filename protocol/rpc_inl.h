// Template definitions for protocol/rpc.h: Thrift (de)serialisation of one
// struct, and the typed wrappers of RpcServer::HandleRaw / RpcChannel::CallRaw.
// Included at the end of rpc.h; do not include directly.
#pragma once

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TProtocolDecorator.h>
#include <thrift/protocol/TProtocolException.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <utility>

namespace txc::rpc {
namespace detail {

// Reads through a TBinaryProtocol, checking every type byte before it
// becomes a TType and bounding every container size. Thrift's own reader
// casts any byte to the enum (undefined behaviour, which UBSan reports) and
// the generated readers resize a vector to whatever count the wire claims, so
// a list whose wire element type differs from the schema, or a forged count,
// would otherwise reach both.
class CheckedReadProtocol : public apache::thrift::protocol::TProtocolDecorator {
 public:
  using TType = apache::thrift::protocol::TType;
  using TProtocolException = apache::thrift::protocol::TProtocolException;

  explicit CheckedReadProtocol(std::shared_ptr<apache::thrift::protocol::TProtocol> inner)
      : TProtocolDecorator(inner), inner_(inner.get()) {}

  // Containers may claim at most this many elements (each takes >= 1 byte).
  void set_max_elements(int32_t n) { max_elements_ = n; }

  uint32_t readFieldBegin_virt(std::string&, TType& type, int16_t& id) override {
    int8_t t = 0;
    uint32_t n = inner_->readByte(t);
    if (t == apache::thrift::protocol::T_STOP) {
      type = apache::thrift::protocol::T_STOP;
      id = 0;
      return n;
    }
    type = ValueType(t);
    return n + inner_->readI16(id);
  }
  uint32_t readMapBegin_virt(TType& key, TType& value, uint32_t& size) override {
    int8_t k = 0, v = 0;
    uint32_t n = inner_->readByte(k) + inner_->readByte(v);
    key = ValueType(k);
    value = ValueType(v);
    return n + ReadSize(&size);
  }
  uint32_t readListBegin_virt(TType& elem, uint32_t& size) override {
    int8_t e = 0;
    uint32_t n = inner_->readByte(e);
    elem = ValueType(e);
    return n + ReadSize(&size);
  }
  uint32_t readSetBegin_virt(TType& elem, uint32_t& size) override {
    return readListBegin_virt(elem, size);
  }

 private:
  static TType ValueType(int8_t t) {
    namespace tp = apache::thrift::protocol;
    switch (static_cast<int>(t)) {
      case tp::T_BOOL: case tp::T_BYTE: case tp::T_DOUBLE: case tp::T_I16: case tp::T_I32:
      case tp::T_I64: case tp::T_STRING: case tp::T_STRUCT: case tp::T_MAP: case tp::T_SET:
      case tp::T_LIST:
        return static_cast<TType>(t);
      default:
        throw TProtocolException(TProtocolException::INVALID_DATA, "invalid Thrift type id");
    }
  }
  uint32_t ReadSize(uint32_t* size) {
    int32_t s = 0;
    uint32_t n = inner_->readI32(s);
    if (s < 0) throw TProtocolException(TProtocolException::NEGATIVE_SIZE);
    if (s > max_elements_) throw TProtocolException(TProtocolException::SIZE_LIMIT);
    *size = static_cast<uint32_t>(s);
    return n;
  }

  apache::thrift::protocol::TProtocol* inner_;
  int32_t max_elements_ = 0;
};

// Reusable TMemoryBuffer + TBinaryProtocol objects, one set per thread (see
// WriteScratch / ReadScratch), so turning a struct into bytes or back costs
// no allocation besides the result. Not thread-safe; reached only through
// the thread_local accessors.
struct ThriftScratch {
  using Buffer = apache::thrift::transport::TMemoryBuffer;
  using Protocol = apache::thrift::protocol::TBinaryProtocolT<Buffer>;

  // Buffers that grew past this are replaced after use, so one huge message
  // does not pin memory in every thread for ever.
  static constexpr uint32_t kKeepBytes = 1u << 20;
  static constexpr uint32_t kInitialBytes = 4096;

  ThriftScratch()
      : buffer(std::make_shared<Buffer>(kInitialBytes)),
        protocol(std::make_shared<Protocol>(buffer)),
        checked(protocol) {}

  void Recycle() {
    if (buffer->getBufferSize() > kKeepBytes) {
      buffer->resetBuffer(kInitialBytes);
    } else {
      buffer->resetBuffer();
    }
  }

  std::shared_ptr<Buffer> buffer;
  std::shared_ptr<Protocol> protocol;
  CheckedReadProtocol checked;  // reads go through this
};

inline ThriftScratch& WriteScratch() {
  thread_local ThriftScratch scratch;
  return scratch;
}

inline ThriftScratch& ReadScratch() {
  thread_local ThriftScratch scratch;
  return scratch;
}

// Returns empty bytes if Thrift refused to write the struct (a valid struct
// is never empty: it ends with a stop byte).
template <class T>
Bytes Serialize(const T& value) {
  ThriftScratch& s = WriteScratch();
  Bytes out;
  try {
    s.buffer->resetBuffer();
    value.write(s.protocol.get());
    uint8_t* data = nullptr;
    uint32_t size = 0;
    s.buffer->getBuffer(&data, &size);
    out.assign(reinterpret_cast<const char*>(data), size);
  } catch (const std::exception&) {
    out.clear();
  }
  s.Recycle();
  return out;
}

// Lenient like a stock Thrift reader: unknown fields and fields of another
// type are skipped, missing ones keep their defaults. Strict about sizes:
// no string, and no container's element count, may exceed bytes.size().
template <class T>
bool Deserialize(const Bytes& bytes, T* value) {
  if (bytes.empty() || bytes.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return false;
  }
  ThriftScratch& s = ReadScratch();
  bool ok = true;
  try {
    s.buffer->resetBuffer();
    s.buffer->readEnd();  // forget any message size left from the last use
    s.buffer->write(reinterpret_cast<const uint8_t*>(bytes.data()),
                    static_cast<uint32_t>(bytes.size()));
    s.buffer->updateKnownMessageSize(static_cast<long>(bytes.size()));
    s.protocol->setStringSizeLimit(static_cast<int32_t>(bytes.size()));
    s.checked.set_max_elements(static_cast<int32_t>(bytes.size()));
    value->read(&s.checked);
  } catch (const std::exception&) {
    ok = false;
  }
  s.buffer->readEnd();
  s.Recycle();
  return ok;
}

}  // namespace detail

// A raw reply with empty bytes tells the server that the request did not
// parse: it counts a malformed frame and closes the connection.
template <class Req, class Resp>
void RpcServer::Handle(const std::string& method, std::function<void(Req, Reply<Resp>)> handler) {
  HandleRaw(method, [handler = std::move(handler)](const detail::Bytes& args,
                                                   std::function<void(detail::Bytes)> reply) {
    Req req;
    if (!detail::Deserialize(args, &req)) {
      reply(detail::Bytes());
      return;
    }
    handler(std::move(req),
            Reply<Resp>([reply = std::move(reply)](Resp resp) { reply(detail::Serialize(resp)); }));
  });
}

// The completion holds a reference to the channel (when it is owned by a
// shared_ptr), so a channel dropped by its user lives until every call made
// on it has completed.
template <class Req, class Resp>
void RpcChannel::Call(const std::string& method, const Req& req, Micros timeout, Done<Resp> done) {
  CallRaw(method, detail::Serialize(req), timeout,
          [keep = weak_from_this().lock(), method, done = std::move(done)](
              Status status, const detail::Bytes& result) {
            Resp resp;
            if (status.ok() && !detail::Deserialize(result, &resp)) {
              status = Status::Internal("unreadable response to " + method);
              resp = Resp();
            }
            done(std::move(status), std::move(resp));
          });
}

}  // namespace txc::rpc
