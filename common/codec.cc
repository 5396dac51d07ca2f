#include "common/codec.h"

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TProtocolException.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TVirtualTransport.h>

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

// Held by pointer: EndRead replaces a read scratch whose protocol a failed
// decode left unusable (below).
std::unique_ptr<Scratch>& ReadScratchSlot() {
  thread_local std::unique_ptr<Scratch> scratch = std::make_unique<Scratch>();
  return scratch;
}

Scratch& ReadScratch() { return *ReadScratchSlot(); }

// Thrift's TInputRecursionTracker raises a protocol's nesting depth before it
// checks the limit, and its destructor never runs when that check throws: an
// input nested past the limit (64) leaves the depth one higher for good. Our
// protocols live as long as the thread, so after 64 such inputs every decode
// on the thread failed with DEPTH_LIMIT: a client could make a server refuse
// every later request of that thread (found by the participant_wal fuzz
// target). True when `p`'s depth is not back to 0 (a decode has returned).
// Cheap: no exception unless it leaked.
bool DepthLeaked(tp::TProtocol* p) {
  const uint32_t limit = p->getRecursionLimit();
  p->setRecurisionLimit(1);  // sic: Thrift's spelling
  bool leaked = false;
  try {
    p->incrementInputRecursionDepth();  // throws iff the depth was >= 1
  } catch (const std::exception&) {
    leaked = true;
  }
  p->decrementInputRecursionDepth();  // the increment happened either way
  p->setRecurisionLimit(limit);
  return leaked;
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

uint32_t CheckedReadProtocol::skip_virt(TType type) {
  // The nested headers it reads come through the checked readers, and its
  // depth is counted here, as the generated readers' is.
  return tp::skip(*this, type);
}

uint32_t CheckedReadProtocol::ReadSize(uint32_t* size) {
  int32_t s = 0;
  uint32_t n = inner_->readI32(s);
  if (s < 0) throw TProtocolException(TProtocolException::NEGATIVE_SIZE);
  if (s > max_elements_) throw TProtocolException(TProtocolException::SIZE_LIMIT);
  *size = static_cast<uint32_t>(s);
  return n;
}

namespace {

// Appends what the protocol writes to a string: no buffer of its own.
class StringSink : public apache::thrift::transport::TVirtualTransport<StringSink> {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  bool isOpen() const override { return true; }
  void write(const uint8_t* buf, uint32_t len) {
    out_->append(reinterpret_cast<const char*>(buf), len);
  }

 private:
  std::string* out_;
};

}  // namespace

struct StringWriter::Impl {
  explicit Impl(size_t reserve_bytes)
      : sink(std::make_shared<StringSink>(&out)),
        protocol(std::make_shared<tp::TBinaryProtocolT<StringSink>>(sink)) {
    out.reserve(reserve_bytes);
  }
  std::string out;
  std::shared_ptr<StringSink> sink;
  std::shared_ptr<tp::TBinaryProtocolT<StringSink>> protocol;
};

StringWriter::StringWriter(size_t reserve_bytes) : impl_(std::make_unique<Impl>(reserve_bytes)) {}
StringWriter::~StringWriter() = default;

tp::TProtocol* StringWriter::protocol() { return impl_->protocol.get(); }

std::string StringWriter::Take(bool ok) {
  std::string out;
  if (ok) out.swap(impl_->out);
  impl_->out.clear();
  return out;
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
  // Generated readers and skips count their depth on the checked protocol;
  // the inner one is probed as well, in case anything reaches it directly.
  if (DepthLeaked(&s.checked) || DepthLeaked(s.protocol.get())) {
    ReadScratchSlot() = std::make_unique<Scratch>();
  }
}

}  // namespace detail

}  // namespace txc::codec
