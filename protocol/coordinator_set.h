// CoordinatorSet: calls "the coordinator group" given as a list of replica
// addresses. It remembers which replica led last, follows NOT_LEADER hints,
// and on UNAVAILABLE, TIMEOUT or a closed connection tries the next replica
// with a short backoff, until the call's overall deadline.
//
// Only idempotent methods belong here (all of txcoord's are: a retried Commit
// with the same txid gets the same answer).
//
// Not thread-safe; used on one io thread.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "protocol/rpc.h"
#include "txcoord_types.h"


namespace txc::rpc {

class CoordinatorSet : public std::enable_shared_from_this<CoordinatorSet> {
 public:
  // `addresses`: HOST:PORT of every replica (one for a single coordinator).
  CoordinatorSet(boost::asio::io_context& io, ChannelPool* pool, std::vector<std::string> addresses);

  // Calls `method` until a replica that serves answers, or `timeout` passes.
  // `done` gets OK and the response (whose own status may still say e.g.
  // INVALID_ARGUMENT), or UNAVAILABLE naming every replica tried.
  // Resp must have a `status` field of type proto::Status.
  template <class Req, class Resp>
  void Call(const std::string& method, const Req& req, Micros timeout,
            std::function<void(Status, Resp)> done);

  const std::vector<std::string>& addresses() const { return addresses_; }
  // The replica believed to lead ("" when none answered yet).
  std::string leader() const { return addresses_.empty() ? "" : addresses_[leader_]; }

 private:
  template <class Req, class Resp>
  struct Attempt;
  void NoteLeader(const std::string& hint);
  void Advance(size_t from) {
    if (!addresses_.empty() && leader_ == from) leader_ = (leader_ + 1) % addresses_.size();
  }

  boost::asio::io_context& io_;
  ChannelPool* pool_;
  std::vector<std::string> addresses_;
  size_t leader_ = 0;
};

// "5 s", "1.5 s", "300 ms": a deadline as an error message names it.
inline std::string FormatMicros(Micros t) {
  if (t % kSeconds == 0) return std::to_string(t / kSeconds) + " s";
  if (t >= kSeconds) {
    std::string s = std::to_string(t / (kSeconds / 10));
    return s.substr(0, s.size() - 1) + "." + s.back() + " s";
  }
  return std::to_string(t / kMillis) + " ms";
}

// Splits "a:1,b:2" into addresses; empty items are dropped.
std::vector<std::string> SplitList(const std::string& csv);

template <class Req, class Resp>
struct CoordinatorSet::Attempt : std::enable_shared_from_this<Attempt<Req, Resp>> {
  std::shared_ptr<CoordinatorSet> set;
  std::string method;
  Req req;
  Micros deadline = 0;
  Micros backoff = 5 * kMillis;
  std::function<void(Status, Resp)> done;
  Micros timeout = 0;
  std::string last_error;
  std::vector<std::string> tried;  // addresses tried, in first-try order
  boost::asio::steady_timer timer;

  void NoteError(const std::string& address, std::string error) {
    if (std::find(tried.begin(), tried.end(), address) == tried.end()) tried.push_back(address);
    last_error = address + ": " + std::move(error);
  }
  // "unreachable within 5 s: tried 127.0.0.1:7000, 127.0.0.1:7001; last error: ..."
  std::string Unreachable() const {
    std::string out = "coordinator group unreachable within " + FormatMicros(timeout) + ": tried ";
    if (tried.empty()) out += "none (the deadline passed before a try)";
    for (size_t i = 0; i < tried.size(); ++i) out += (i ? ", " : "") + tried[i];
    if (tried.size() < set->addresses_.size()) {
      out += " (not reached: ";
      bool first = true;
      for (const auto& a : set->addresses_) {
        if (std::find(tried.begin(), tried.end(), a) != tried.end()) continue;
        out += (first ? "" : ", ") + a;
        first = false;
      }
      out += ")";
    }
    if (!last_error.empty()) out += "; last error: " + last_error;
    return out;
  }

  Attempt(boost::asio::io_context& io) : timer(io) {}

  void Try() {
    Micros now = SteadyNowMicros();
    if (set->addresses_.empty()) {
      return done(Status::InvalidArgument("no coordinator address given"), Resp());
    }
    if (now >= deadline) {
      return done(Status::Unavailable(Unreachable()), Resp());
    }
    size_t index = set->leader_;
    std::string address = set->addresses_[index];
    auto self = this->shared_from_this();
    set->pool_->Get(address)->template Call<Req, Resp>(
        method, req, deadline - now, [self, index, address](Status s, Resp resp) {
          if (s.ok()) {
            auto code = resp.status.code;
            if (code != proto::Code::NOT_LEADER && code != proto::Code::UNAVAILABLE) {
              return self->done(Status::Ok(), std::move(resp));
            }
            self->NoteError(address, resp.status.message);
            if (resp.status.__isset.leader_hint && !resp.status.leader_hint.empty() &&
                resp.status.leader_hint != address) {
              self->set->NoteLeader(resp.status.leader_hint);
              return self->Try();
            }
          } else {
            self->NoteError(address, s.ToString());
          }
          self->set->Advance(index);
          self->Retry();
        });
  }

  void Retry() {
    auto self = this->shared_from_this();
    timer.expires_after(std::chrono::microseconds(backoff));
    backoff = std::min<Micros>(backoff * 2, 200 * kMillis);
    timer.async_wait([self](const boost::system::error_code& ec) { self->Try(); });
  }
};

template <class Req, class Resp>
void CoordinatorSet::Call(const std::string& method, const Req& req, Micros timeout,
                          std::function<void(Status, Resp)> done) {
  auto a = std::make_shared<Attempt<Req, Resp>>(io_);
  a->set = shared_from_this();
  a->method = method;
  a->req = req;
  a->deadline = SteadyNowMicros() + timeout;
  a->timeout = timeout;
  a->done = std::move(done);
  a->Try();
}

}  // namespace txc::rpc
