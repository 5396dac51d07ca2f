// Fuzz target: the RPC frame reader (protocol/wire.h), as the server and the
// channel run it on the bytes of a connection: split the stream into frames
// (PeekFrame), decode each as a call (what RpcServer reads) and as a reply
// (what RpcChannel reads), and decode the call's request or the reply's
// result as its method's type (message_types.h), as the handler or the
// caller would.
//
// Input: the bytes one connection delivers, any number of frames.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/rpc.h"
#include "protocol/wire.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/message_types.h"

namespace {

// Inside `outer` (a view can only point into the frame it came from).
bool Within(std::string_view inner, std::string_view outer) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace txc::rpc::wire;
  std::string_view stream(reinterpret_cast<const char*>(data), size);
  // The server's limit; small inputs cannot reach it, but the check must
  // refuse a huge length prefix before anything is reserved.
  const uint32_t max = txc::rpc::ServerOptions{}.max_frame_bytes;
  for (int frames = 0; frames < 256; ++frames) {
    const FrameHead head = PeekFrame(stream, max);
    if (head.kind == FrameHead::kBadLength) {
      FUZZ_CHECK(head.length == 0 || head.length > max, "bad length verdict");
      break;
    }
    if (head.kind == FrameHead::kNeedMore) {
      FUZZ_CHECK(stream.size() < 4 || stream.size() - 4 < head.length, "need-more verdict");
      break;
    }
    FUZZ_CHECK(head.length >= 1 && head.length <= stream.size() - 4, "complete verdict");
    const std::string_view frame = stream.substr(4, head.length);

    Call call;
    std::string error;
    if (DecodeCall(frame, &call, &error)) {
      FUZZ_CHECK(Within(call.name, frame) && Within(call.args, frame), "call views");
      (void)Printable(call.name);
      if (call.has_args) {
        txc::fuzz::ForEachTypeOf(call.name, /*request=*/true,
                                 [&](size_t, const txc::fuzz::MessageType& t) { t.decode(call.args); });
      }
    } else {
      FUZZ_CHECK(!error.empty(), "a refused call says why");
    }

    Reply reply;
    error.clear();
    if (DecodeReply(frame, &reply, &error)) {
      FUZZ_CHECK(Within(reply.name, frame) && Within(reply.result, frame) &&
                     Within(reply.error_message, frame),
                 "reply views");
      if (reply.body == Reply::kResult) {
        txc::fuzz::ForEachTypeOf(reply.name, /*request=*/false,
                                 [&](size_t, const txc::fuzz::MessageType& t) { t.decode(reply.result); });
      }
    } else {
      FUZZ_CHECK(!error.empty(), "a refused reply says why");
    }
    stream.remove_prefix(4 + size_t{head.length});
  }
  return 0;
}
