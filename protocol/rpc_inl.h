// Template definitions for protocol/rpc.h: Thrift (de)serialisation of one
// struct (common/codec.h), and the typed wrappers of RpcServer::HandleRaw /
// RpcChannel::CallRaw, which check the enum fields of every request and
// response they decode (validate::CheckEnums).
// Included at the end of rpc.h; do not include directly.
#pragma once

#include <string>

#include "common/codec.h"
#include "protocol/validate.h"

namespace txc::rpc {
namespace detail {

// Both directions are the one codec of every persisted record (common/codec.h).
template <class T>
Bytes Serialize(const T& value) {
  return codec::Encode(value);
}

template <class T>
bool Deserialize(const Bytes& bytes, T* value) {
  return codec::Decode(bytes, value);
}

}  // namespace detail

// A raw reply with empty bytes tells the server that the request did not
// parse: it counts a malformed frame and closes the connection.
template <class Req, class Resp>
void RpcServer::Handle(const std::string& method, std::function<void(Req, Reply<Resp>)> handler) {
  HandleTyped<Req, Resp>(
      method,
      [handler = std::move(handler)](Req req, Reply<Resp> reply, const CallConnection&) {
        handler(std::move(req), std::move(reply));
      },
      false);
}

template <class Req, class Resp>
void RpcServer::HandleHeld(const std::string& method,
                           std::function<void(Req, Reply<Resp>, CallConnection)> handler) {
  HandleTyped<Req, Resp>(
      method,
      [handler = std::move(handler)](Req req, Reply<Resp> reply, const CallConnection& conn) {
        handler(std::move(req), std::move(reply), conn);
      },
      true);
}

template <class Req, class Resp, class Fn>
void RpcServer::HandleTyped(const std::string& method, Fn handler, bool wants_connection) {
  auto refusal = [](int code, const std::string& message) -> detail::Bytes {
    // Every txcoord response carries a Status (field `status`); the code is
    // set by number.
    if constexpr (requires(Resp r) {
                    r.status.code;
                    r.status.message;
                  }) {
      Resp resp;
      resp.status.code = static_cast<decltype(resp.status.code)>(code);
      resp.status.message = message;
      if constexpr (requires(Resp r) { r.__isset.status; }) resp.__isset.status = true;
      return detail::Serialize(resp);
    } else {
      return detail::Bytes();
    }
  };
  HandleRaw(method, [handler = std::move(handler), refusal](const detail::Bytes& args,
                                                            std::function<void(detail::Bytes)> reply,
                                                            const CallConnection& connection) {
    Req req;
    if (!detail::Deserialize(args, &req)) {
      reply(detail::Bytes());
      return;
    }
    // The one check of enum values for every server, before any handler
    // reads one: the request parsed, so the connection stays usable.
    if (Status bad = validate::CheckEnums(req); !bad.ok()) {
      reply(refusal(bad.code(), bad.message()));
      return;
    }
    handler(std::move(req),
            Reply<Resp>([reply = std::move(reply)](Resp resp) { reply(detail::Serialize(resp)); }),
            connection);
  }, refusal, wants_connection);
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
            } else if (status.ok()) {
              // As a decode error: no caller sees an enum value its type
              // does not have (a newer or a broken peer sent it).
              if (Status bad = validate::CheckEnums(resp); !bad.ok()) {
                status = Status::Internal("unreadable response to " + method + ": " +
                                          bad.message());
                resp = Resp();
              }
            }
            done(std::move(status), std::move(resp));
          });
}

}  // namespace txc::rpc
