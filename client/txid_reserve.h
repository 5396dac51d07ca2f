// Txids reserved for one-shot Submits (BeginRequest.count): one Begin hands
// out a block of consecutive txids, and each Submit takes the next one while
// the block is fresh, instead of a Begin round trip per transaction.
// Thread-safe (Client's callers share it; AsyncClient's one thread too).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "common/time.h"
#include "common/txid.h"
#include "txcoord_types.h"

namespace txc {

class TxidReserve {
 public:
  // `batch`: txids asked for per Begin; 1 or less turns reservation off
  // (a Begin per Submit, without BeginRequest.count).
  explicit TxidReserve(int32_t batch) : batch_(batch) {}

  bool enabled() const { return batch_ > 1; }
  int32_t batch() const { return batch_; }

  // The next reserved txid still usable at `now`, or nullopt (ask a Begin).
  std::optional<TxId> Take(Micros now) {
    std::lock_guard<std::mutex> l(mu_);
    while (!blocks_.empty()) {
      Block& b = blocks_.front();
      if (b.next < b.end && now < b.usable_until) return MakeTxId(b.epoch, b.next++);
      blocks_.pop_front();  // used up or stale (the leader drops it soon)
    }
    return std::nullopt;
  }

  // A Begin sent at `sent` answered `r`: its first txid is the caller's, the
  // rest are kept. Each is used only in the first half of its reserved time
  // (counted from the send, which precedes the leader's clock), so that a
  // Submit reaches the leader before the leader drops it.
  void Keep(const proto::BeginResponse& r, Micros sent) {
    int32_t count = r.__isset.count ? r.count : 1;
    if (count <= 1 || !r.__isset.reserved_ms || r.reserved_ms <= 0) return;
    std::lock_guard<std::mutex> l(mu_);
    blocks_.push_back(Block{r.txid.epoch, r.txid.seq + 1, r.txid.seq + count,
                            sent + r.reserved_ms * kMillis / 2});
  }

  // Every kept txid dropped (e.g. their leader is gone).
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    blocks_.clear();
  }

  // True when a Submit's answer says a newer leader presumed the txid
  // aborted because its own leader changed before deciding: the transaction
  // did not and never will commit, and the rest of its block belongs to that
  // gone leader too.
  static bool LeaderGone(const proto::CommitResponse& r) {
    return r.status.code == proto::Code::OK && r.outcome == proto::Outcome::ABORTED &&
           r.reason == kPresumedAbortLeaderChanged;
  }

 private:
  struct Block {
    int64_t epoch = 0;
    int64_t next = 0;  // seq of the next txid to hand out
    int64_t end = 0;   // one past the last
    Micros usable_until = 0;
  };
  const int32_t batch_;
  std::mutex mu_;
  std::deque<Block> blocks_;
};

}  // namespace txc
