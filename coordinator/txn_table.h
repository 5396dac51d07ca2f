// TxnTable: the coordinator group's replicated state machine — what has been
// decided. Every replica applies the same chosen commands in the same order
// and so holds the same table. A pure value class: no I/O, no clock.
//
// Not thread-safe; owned by the node's io thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/txid.h"
#include "txcoord_types.h"

namespace txc::coord {

class TxnTable {
 public:
  struct Entry {
    TxId txid;
    proto::Outcome::type outcome = proto::Outcome::UNKNOWN;  // COMMITTED or ABORTED once decided
    std::vector<proto::Participant> participants;
    proto::Protocol::type protocol = proto::Protocol::TWO_PC;
    std::string reason;       // why it aborted, or who resolved it
    bool precommitted = false;  // 3PC: PRECOMMIT chosen
    bool ended = false;         // END chosen: every participant acknowledged the outcome
    bool heuristic = false;     // decided by an operator (RESOLVE)
    uint64_t decided_at = 0;    // log index of the deciding command
  };

  // How many ended transactions are remembered, so that a client retrying a
  // commit after END still gets the true outcome. Oldest forgotten first.
  static constexpr size_t kEndedRetained = 200000;

  // Applies one chosen command of the log record (slot) at `index`; the
  // commands of one slot share its index.
  //
  // A DECIDE for a txid of an epoch older than the last applied EPOCH marker,
  // for a txid the table does not know, is ignored: once a newer leader
  // serves, it answers "aborted" for such txids (presumed abort), and a later
  // leader's phase 1 may still adopt the old leader's accepted but unchosen
  // DECIDE. Every replica applies the same log, so every one ignores it.
  // REQUIRES: index >= applied_index() (commands arrive in order, once).
  void Apply(uint64_t index, const proto::Command& cmd);

  // nullptr when the txid was never decided (or was forgotten after END).
  const Entry* Find(const TxId& txid) const;

  // The highest epoch any applied command announced.
  int64_t epoch() const { return epoch_; }
  // The highest epoch whose leader's EPOCH marker is applied.
  int64_t marker_epoch() const { return marker_epoch_; }
  uint64_t applied_index() const { return applied_index_; }

  // Decided and not ended, oldest first: what a new leader must finish.
  std::vector<const Entry*> Unended() const;
  size_t unended_count() const { return unended_; }
  size_t size() const { return entries_.size(); }
  const std::map<TxId, Entry, TxIdLess>& entries() const { return entries_; }

  // A compact, self-contained image of the table (for log compaction and
  // snapshot install). Restore replaces this table with the image.
  std::string Snapshot() const;
  Status Restore(const std::string& image);

 private:
  void MarkEnded(Entry* e);

  std::map<TxId, Entry, TxIdLess> entries_;
  std::deque<TxId> ended_order_;
  size_t unended_ = 0;
  int64_t epoch_ = 0;
  int64_t marker_epoch_ = 0;
  uint64_t applied_index_ = 0;
};

// Command helpers.
proto::Command MakeDecide(const TxId& txid, proto::Outcome::type outcome,
                          std::vector<proto::Participant> participants,
                          proto::Protocol::type protocol, std::string reason);
proto::Command MakeEnd(const TxId& txid);
proto::Command MakeEpoch(int64_t epoch);
std::string DescribeCommand(const proto::Command& cmd);

// Serialisation of a batch of commands as one log record (Thrift binary).
std::string EncodeBatch(const std::vector<proto::Command>& commands);
Result<std::vector<proto::Command>> DecodeBatch(const std::string& bytes);

}  // namespace txc::coord
