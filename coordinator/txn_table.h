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
#include "coordinator/seq_runs.h"
#include "txcoord_types.h"

namespace txc::coord {

struct TxnTableOptions {
  // How many ended transactions are kept whole (participants, reason), oldest
  // forgotten first. A forgotten one's outcome is still known exactly, as a
  // run of seqs of its epoch (txids are allocated in order, so committed ones
  // form long runs). Default: 20,000: the whole entries cost memory (about
  // 0.7 KB each with two participants) and every snapshot encodes them on the
  // io thread; 200,000 (the default before) held replicas at about 200 MB
  // and stalled each one for hundreds of ms every 50,000 slots
  // (docs/benchmarks.md, "Ended transactions retained").
  size_t ended_retained = 20000;
  // Bound on those runs (all epochs together). Beyond it the oldest runs go,
  // and a txid up to the last one dropped that the table no longer knows is
  // answered FORGOTTEN (outcome unknown), never presumed aborted.
  // Runs are stored by 64-seq chunks (coordinator/seq_runs.h): at worst a
  // chunk (about 64 bytes) per run, when every run is 64 seqs from the next;
  // about a byte per seq where commits interleave with aborts.
  // Default: 1,048,576 runs.
  size_t forgotten_runs_max = size_t{1} << 20;
};

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
    // Participants an operator gave up delivering the outcome to (FORGET),
    // with the command that did it.
    std::vector<proto::Command> forgotten;
    uint64_t decided_at = 0;    // log index of the deciding command
  };

  // The only retention before snapshots carried the forgotten runs (version
  // 1 images), and the default of TxnTableOptions::ended_retained until then.
  static constexpr size_t kEndedRetained = 200000;

  explicit TxnTable(TxnTableOptions options = {});
  const TxnTableOptions& options() const { return options_; }

  // Applies one chosen command of the log record (slot) at `index`; the
  // commands of one slot share its index.
  //
  // A DECIDE for a txid of an epoch older than the last applied EPOCH marker,
  // for a txid the table does not know, is ignored: once a newer leader
  // serves, it answers "aborted" for such txids (presumed abort), and a later
  // leader's phase 1 may still adopt the old leader's accepted but unchosen
  // DECIDE. Every replica applies the same log, so every one ignores it. The
  // same holds for an older epoch's PRECOMMIT.
  //
  // 3PC: PRECOMMIT marks an undecided entry precommitted (the transaction
  // will commit): a DECIDE(COMMITTED) of any epoch decides it, an abort
  // (DECIDE or RESOLVE) chosen after it is a no-op, and a PRECOMMIT after a
  // decision is a no-op.
  // REQUIRES: index >= applied_index() (commands arrive in order, once).
  void Apply(uint64_t index, const proto::Command& cmd);

  // nullptr when the txid was never decided (or was forgotten after END).
  const Entry* Find(const TxId& txid) const;

  // What the table knows of a txid it holds no entry for: COMMITTED or
  // ABORTED when it was decided, ended and forgotten; FORGOTTEN when that
  // knowledge was dropped (past forgotten_runs_max) and it may have been
  // decided; UNKNOWN when it was never decided (presumed abort may apply).
  proto::Outcome::type ForgottenOutcome(const TxId& txid) const;
  size_t forgotten_runs() const { return forgotten_runs_; }
  // How many decided transactions were forgotten since the table was created
  // (or restored: a snapshot does not carry the count).
  uint64_t forgotten_count() const { return forgotten_count_; }

  // The highest epoch any applied command announced.
  int64_t epoch() const { return epoch_; }
  // The highest epoch whose leader's EPOCH marker is applied.
  int64_t marker_epoch() const { return marker_epoch_; }
  uint64_t applied_index() const { return applied_index_; }

  // Decided and not ended, oldest first: what a new leader must finish.
  std::vector<const Entry*> Unended() const;
  // 3PC: PRECOMMIT chosen, no decision yet: a new leader decides them COMMITTED.
  std::vector<const Entry*> PreCommittedUndecided() const;
  size_t unended_count() const { return unended_; }
  size_t size() const { return entries_.size(); }
  const std::map<TxId, Entry, TxIdLess>& entries() const { return entries_; }

  // A compact, self-contained image of the table (for log compaction and
  // snapshot install). Restore replaces this table with the image. Empty if
  // it could not be encoded (the caller then keeps its log).
  std::string Snapshot() const;
  Status Restore(const std::string& image);

 private:
  // Seqs held as runs, stored by 64-seq chunks (coordinator/seq_runs.h).
  using Runs = SeqRuns;
  struct EpochRuns {
    Runs committed;
    Runs aborted;
  };

  void MarkEnded(Entry* e);
  void Forget(const Entry& e);
  void DropOldestRun();

  TxnTableOptions options_;
  std::map<TxId, Entry, TxIdLess> entries_;
  std::map<int64_t, EpochRuns> forgotten_;  // by epoch
  size_t forgotten_runs_ = 0;
  uint64_t forgotten_count_ = 0;
  bool lost_ = false;
  TxId lost_through_;  // meaningful when lost_
  std::deque<TxId> ended_order_;
  size_t unended_ = 0;
  int64_t epoch_ = 0;
  int64_t marker_epoch_ = 0;
  uint64_t applied_index_ = 0;
  // The last snapshot's size and the entries it had (plus one): the next
  // one reserves its bytes per entry times its own (a little more).
  mutable size_t snapshot_bytes_ = 0;
  mutable size_t snapshot_units_ = 0;
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
// The same bytes without a copy of the commands: they are lent to the batch
// being encoded and handed back.
std::string EncodeBatchInPlace(std::vector<proto::Command>* commands);
Result<std::vector<proto::Command>> DecodeBatch(const std::string& bytes);

}  // namespace txc::coord
