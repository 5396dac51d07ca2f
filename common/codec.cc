#include "common/codec.h"

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TProtocolException.h>
#include <thrift/transport/TBufferTransports.h>

#include <limits>

namespace txc::codec {

namespace tp = apache::thrift::protocol;
using tp::TProtocolException;

namespace {

tp::TType ValueType(int8_t t) {
  switch (static_cast<int>(t)) {
    case tp::T_BOOL: case tp::T_BYTE: case tp::T_DOUBLE: case tp::T_I16: case tp::T_I32:
    case tp::T_I64: case tp::T_STRING: case tp::T_STRUCT: case tp::T_MAP: case tp::T_SET:
    case tp::T_LIST:
      return static_cast<tp::TType>(t);
    default:
      throw TProtocolException(TProtocolException::INVALID_DATA, "invalid Thrift type id");
  }
}

// Reusable TMemoryBuffer + TBinaryProtocol objects, one set per thread and
// direction (see WriteScratch / ReadScratch). Not thread-safe; reached only
// through the thread_local accessors.
struct Scratch {
  using Buffer = apache::thrift::transport::TMemoryBuffer;
  using Protocol = tp::TBinaryProtocolT<Buffer>;

  // Buffers that grew past this are replaced after use, so one huge message
  // does not pin memory in every thread for ever.
  static constexpr uint32_t kKeepBytes = 1u << 20;
  static constexpr uint32_t kInitialBytes = 4096;

  Scratch()
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

Scratch& WriteScratch() {
  thread_local Scratch scratch;
  return scratch;
}

Scratch& ReadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

CheckedReadProtocol::CheckedReadProtocol(std::shared_ptr<tp::TProtocol> inner)
    : TProtocolDecorator(inner), inner_(inner.get()) {}

uint32_t CheckedReadProtocol::readFieldBegin_virt(std::string&, TType& type, int16_t& id) {
  int8_t t = 0;
  uint32_t n = inner_->readByte(t);
  if (t == tp::T_STOP) {
    type = tp::T_STOP;
    id = 0;
    return n;
  }
  type = ValueType(t);
  return n + inner_->readI16(id);
}

uint32_t CheckedReadProtocol::readMapBegin_virt(TType& key, TType& value, uint32_t& size) {
  int8_t k = 0, v = 0;
  uint32_t n = inner_->readByte(k) + inner_->readByte(v);
  key = ValueType(k);
  value = ValueType(v);
  return n + ReadSize(&size);
}

uint32_t CheckedReadProtocol::readListBegin_virt(TType& elem, uint32_t& size) {
  int8_t e = 0;
  uint32_t n = inner_->readByte(e);
  elem = ValueType(e);
  return n + ReadSize(&size);
}

uint32_t CheckedReadProtocol::readSetBegin_virt(TType& elem, uint32_t& size) {
  return readListBegin_virt(elem, size);
}

uint32_t CheckedReadProtocol::ReadSize(uint32_t* size) {
  int32_t s = 0;
  uint32_t n = inner_->readI32(s);
  if (s < 0) throw TProtocolException(TProtocolException::NEGATIVE_SIZE);
  if (s > max_elements_) throw TProtocolException(TProtocolException::SIZE_LIMIT);
  *size = static_cast<uint32_t>(s);
  return n;
}

namespace detail {

tp::TProtocol* BeginWrite() {
  Scratch& s = WriteScratch();
  s.buffer->resetBuffer();
  return s.protocol.get();
}

std::string EndWrite(bool ok) {
  Scratch& s = WriteScratch();
  std::string out;
  if (ok) {
    uint8_t* data = nullptr;
    uint32_t size = 0;
    s.buffer->getBuffer(&data, &size);
    out.assign(reinterpret_cast<const char*>(data), size);
  }
  s.Recycle();
  return out;
}

tp::TProtocol* BeginRead(std::string_view bytes) {
  if (bytes.empty() || bytes.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return nullptr;
  }
  Scratch& s = ReadScratch();
  try {
    s.buffer->resetBuffer();
    s.buffer->readEnd();  // forget any message size left from the last use
    s.buffer->write(reinterpret_cast<const uint8_t*>(bytes.data()),
                    static_cast<uint32_t>(bytes.size()));
    s.buffer->updateKnownMessageSize(static_cast<long>(bytes.size()));
  } catch (const std::exception&) {
    s.buffer->readEnd();
    s.Recycle();
    return nullptr;
  }
  s.protocol->setStringSizeLimit(static_cast<int32_t>(bytes.size()));
  s.checked.set_max_elements(static_cast<int32_t>(bytes.size()));
  return &s.checked;
}

void EndRead() {
  Scratch& s = ReadScratch();
  s.buffer->readEnd();
  s.Recycle();
}

}  // namespace detail

}  // namespace txc::codec
