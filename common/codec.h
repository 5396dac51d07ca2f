// The one Thrift codec for every persisted record and every RPC payload:
// strict TBinaryProtocol, no framing. Its reader checks every type byte and
// bounds every string and container by the input's length, so a corrupt
// record or a forged message cannot make the reader allocate without bound
// or reach undefined behaviour.
//
// Pure (no Asio, no I/O): the deterministic cores use it for their commands
// and snapshots, the shells for their WAL records and the RPC layer.
#pragma once

#include <thrift/protocol/TProtocol.h>
#include <thrift/protocol/TProtocolDecorator.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

namespace txc::codec {

// Reads through another protocol, checking every type byte before it
// becomes a TType and bounding every container size. Thrift's own reader
// casts any byte to the enum (undefined behaviour, which UBSan reports) and
// the generated readers resize a vector to whatever count the wire claims, so
// a list whose wire element type differs from the schema, or a forged count,
// would otherwise reach both. Fields the schema does not know are skipped
// through this reader too (skip_virt), so their type bytes and counts get
// the same checks.
class CheckedReadProtocol : public apache::thrift::protocol::TProtocolDecorator {
 public:
  using TType = apache::thrift::protocol::TType;

  explicit CheckedReadProtocol(std::shared_ptr<apache::thrift::protocol::TProtocol> inner);

  // Containers may claim at most this many elements (each takes >= 1 byte).
  void set_max_elements(int32_t n) { max_elements_ = n; }

  uint32_t readFieldBegin_virt(std::string& name, TType& type, int16_t& id) override;
  uint32_t readMapBegin_virt(TType& key, TType& value, uint32_t& size) override;
  uint32_t readListBegin_virt(TType& elem, uint32_t& size) override;
  uint32_t readSetBegin_virt(TType& elem, uint32_t& size) override;
  // Thrift's skip, over this reader: a skipped field's headers get the
  // checks above. TProtocol's default does the same in Thrift 0.17; said
  // here so that a Thrift whose decorator forwards skips to the inner
  // protocol cannot bypass them.
  uint32_t skip_virt(TType type) override;

 private:
  uint32_t ReadSize(uint32_t* size);

  apache::thrift::protocol::TProtocol* inner_;
  int32_t max_elements_ = 0;
};

namespace detail {

// One thread's reusable buffer and protocols (codec.cc): turning a struct
// into bytes or back costs no allocation besides the result.
// BeginWrite returns the protocol to write one struct to; EndWrite returns
// what was written (empty if `ok` is false) and recycles the buffer.
apache::thrift::protocol::TProtocol* BeginWrite();
std::string EndWrite(bool ok);
// BeginRead loads `bytes` (non-empty, at most INT32_MAX long; else null) and
// returns the checked protocol to read one struct from; EndRead recycles.
apache::thrift::protocol::TProtocol* BeginRead(std::string_view bytes);
void EndRead();

}  // namespace detail

// Writes one large struct piece by piece straight into a string: for images
// too big to materialise first as a generated struct and then copy out of a
// buffer (the transaction table's snapshot: its command list would be built
// whole, then encoded into a buffer that doubles, then copied). The caller
// writes the fields, in the generated writer's order if the bytes must match
// Encode's; whole sub-structs go through their own write(protocol()).
// Take() returns the bytes (empty if `ok` is false).
class StringWriter {
 public:
  explicit StringWriter(size_t reserve_bytes);
  ~StringWriter();
  StringWriter(const StringWriter&) = delete;
  StringWriter& operator=(const StringWriter&) = delete;

  apache::thrift::protocol::TProtocol* protocol();
  std::string Take(bool ok);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Serialises `value`. Returns empty bytes if Thrift refused to write it (a
// valid struct is never empty: it ends with a stop byte).
template <class T>
std::string Encode(const T& value) {
  apache::thrift::protocol::TProtocol* p = detail::BeginWrite();
  bool ok = true;
  try {
    value.write(p);
  } catch (const std::exception&) {
    ok = false;
  }
  return detail::EndWrite(ok);
}

// Parses `bytes` into `value`; false on malformed input (then `value` is
// unspecified). Lenient like a stock Thrift reader: unknown fields and fields
// of another type are skipped, missing ones keep their defaults. Strict about
// types and sizes: an unknown type byte is refused, and no string, and no
// container's element count, may exceed bytes.size().
template <class T>
bool Decode(std::string_view bytes, T* value) {
  apache::thrift::protocol::TProtocol* p = detail::BeginRead(bytes);
  if (p == nullptr) return false;
  bool ok = true;
  try {
    value->read(p);
  } catch (const std::exception&) {
    ok = false;
  }
  detail::EndRead();
  return ok;
}

}  // namespace txc::codec
