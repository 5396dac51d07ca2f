#include "coordinator/txn_table.h"

#include <algorithm>
#include <cassert>
#include <cstdint>

#include "common/codec.h"
#include "protocol/validate.h"

namespace txc::coord {

namespace {

// Commands, batches and snapshots: strict TBinaryProtocol through the one
// codec (common/codec.h), whose reader bounds every count by the input's
// length, so a corrupt count cannot make the table allocate for billions of
// commands first. Do not renumber the IDL's fields: logs and snapshots on disk
// are read back with them.
using codec::Decode;
using codec::Encode;

// The enum fields of every command read back (a log record, a chosen value,
// a snapshot), checked as the int32s the wire holds before anything reads
// them as enums: the decoder stores any int32 there, and loading one outside
// the enum's values is undefined behaviour (found by the coord_log and
// paxos_peer fuzz targets: a corrupt record, or a value a forged ACCEPT got
// chosen, reached Apply's switch). A type this build does not know, e.g.
// from a newer txcoord, is refused, never half-applied.
Status CheckCommands(const proto::CommandBatch& batch) {
  for (const proto::Command& c : batch.commands) {
    const int32_t type = validate::WireEnumValue(c.type);
    const int32_t outcome = validate::WireEnumValue(c.outcome);
    const int32_t protocol = validate::WireEnumValue(c.protocol);
    if (type < proto::CommandType::NOOP || type > proto::CommandType::FORGET) {
      return Status::Internal("command of unknown type " + std::to_string(type) +
                              " (written by a newer txcoord, or corrupt)");
    }
    if (outcome < proto::Outcome::UNKNOWN || outcome > proto::Outcome::FORGOTTEN) {
      return Status::Internal("command with unknown outcome " + std::to_string(outcome));
    }
    if (protocol < proto::Protocol::TWO_PC || protocol > proto::Protocol::THREE_PC) {
      return Status::Internal("command with unknown protocol " + std::to_string(protocol));
    }
    // Txids are allocated from 1 in epochs from 1 (validate::CheckTxId); a
    // table that applied epoch 0 would write a snapshot it cannot restore
    // (its forgotten runs would name epoch 0: found by coord_log).
    if (type != proto::CommandType::NOOP && type != proto::CommandType::EPOCH &&
        (c.txid.epoch < 1 || c.txid.seq < 1)) {
      return Status::Internal("command for txid " + std::to_string(c.txid.epoch) + "." +
                              std::to_string(c.txid.seq) + " (epochs and seqs start at 1)");
    }
    // A DECIDE or RESOLVE that decides neither way would leave an undecided
    // entry that a snapshot does not carry, so a replica restored from one
    // would differ from one that replayed the log (found by coord_log).
    if ((type == proto::CommandType::DECIDE || type == proto::CommandType::RESOLVE) &&
        outcome != proto::Outcome::COMMITTED && outcome != proto::Outcome::ABORTED) {
      return Status::Internal("decision with outcome " + std::to_string(outcome) +
                              " (neither committed nor aborted)");
    }
  }
  return Status::Ok();
}

// The inverse of SeqRuns::Flatten, for an image read back; false when
// malformed (runs must be sorted, disjoint and not adjacent).
bool Unflatten(const std::vector<int64_t>& flat, SeqRuns* runs) {
  if (flat.size() % 2 != 0) return false;
  int64_t prev_last = 0;
  for (size_t i = 0; i < flat.size(); i += 2) {
    int64_t first = flat[i], last = flat[i + 1];
    // (first - 1 cannot overflow: first >= 1 here.)
    if (first < 1 || last < first || (i > 0 && first - 1 <= prev_last)) return false;
    if (!runs->AddRun(first, last)) return false;
    prev_last = last;
  }
  return true;
}

constexpr int32_t kSnapshotVersion = 3;

}  // namespace

TxnTable::TxnTable(TxnTableOptions options) : options_(options) {}

void TxnTable::Apply(uint64_t index, const proto::Command& cmd) {
  assert(index >= applied_index_);
  applied_index_ = index;
  if (cmd.epoch > epoch_) epoch_ = cmd.epoch;
  switch (cmd.type) {
    case proto::CommandType::NOOP:
      return;
    case proto::CommandType::EPOCH:
      if (cmd.epoch > marker_epoch_) marker_epoch_ = cmd.epoch;
      return;
    case proto::CommandType::DECIDE:
    case proto::CommandType::RESOLVE: {
      if (entries_.count(cmd.txid) == 0) {
        proto::Outcome::type was = ForgottenOutcome(cmd.txid);
        // Decided and ended before: the first decision chosen stands.
        if (was == proto::Outcome::COMMITTED || was == proto::Outcome::ABORTED) return;
      }
      if (cmd.type == proto::CommandType::DECIDE && cmd.txid.epoch < marker_epoch_) {
        const Entry* known = Find(cmd.txid);
        // Already presumed aborted by a newer leader: see Apply's comment.
        // (A precommitted one is not: a newer leader commits it.)
        if (known == nullptr || (known->outcome == proto::Outcome::UNKNOWN && !known->precommitted)) {
          return;
        }
      }
      auto [it, inserted] = entries_.try_emplace(cmd.txid);
      Entry& e = it->second;
      if (!inserted && e.outcome != proto::Outcome::UNKNOWN) {
        // The first decision chosen stands; a later one for the same txid is
        // a no-op (a retried proposal, or an operator too late).
        return;
      }
      if (!inserted && e.precommitted && cmd.outcome != proto::Outcome::COMMITTED) {
        // 3PC: once PRECOMMIT is chosen the transaction commits; an abort
        // chosen later (an operator too late) is a no-op.
        return;
      }
      e.txid = cmd.txid;
      e.outcome = cmd.outcome;
      e.participants = cmd.participants;
      e.protocol = cmd.protocol;
      e.reason = cmd.reason;
      e.heuristic = cmd.type == proto::CommandType::RESOLVE;
      e.decided_at = index;
      if (!e.ended) ++unended_;
      return;
    }
    case proto::CommandType::FORGET: {
      // Only for a decided transaction not yet ended; once per participant.
      auto it = entries_.find(cmd.txid);
      if (it == entries_.end() || it->second.ended || it->second.outcome == proto::Outcome::UNKNOWN ||
          cmd.participants.size() != 1) {
        return;
      }
      Entry& e = it->second;
      for (const proto::Command& f : e.forgotten) {
        if (f.participants[0].resource == cmd.participants[0].resource &&
            f.participants[0].address == cmd.participants[0].address) {
          return;
        }
      }
      e.forgotten.push_back(cmd);
      return;
    }
    case proto::CommandType::PRECOMMIT: {
      auto known = entries_.find(cmd.txid);
      if (known == entries_.end()) {
        proto::Outcome::type was = ForgottenOutcome(cmd.txid);
        if (was == proto::Outcome::COMMITTED || was == proto::Outcome::ABORTED) return;
        // An older epoch's PRECOMMIT adopted after a newer leader served:
        // that leader may have answered "aborted" for the txid (presumed
        // abort), as for DECIDE above.
        if (cmd.txid.epoch < marker_epoch_) return;
      } else if (known->second.outcome != proto::Outcome::UNKNOWN) {
        return;  // decided already (an operator's abort chosen first): it stands
      }
      Entry& e = entries_[cmd.txid];
      e.txid = cmd.txid;
      e.precommitted = true;
      if (e.participants.empty()) e.participants = cmd.participants;
      e.protocol = proto::Protocol::THREE_PC;
      return;
    }
    case proto::CommandType::END_TXN: {
      auto it = entries_.find(cmd.txid);
      if (it == entries_.end() || it->second.ended) return;
      MarkEnded(&it->second);
      return;
    }
  }
}

void TxnTable::MarkEnded(Entry* e) {
  e->ended = true;
  if (e->outcome != proto::Outcome::UNKNOWN) --unended_;
  ended_order_.push_back(e->txid);
  while (ended_order_.size() > options_.ended_retained) {
    auto it = entries_.find(ended_order_.front());
    ended_order_.pop_front();
    if (it == entries_.end()) continue;
    Forget(it->second);
    entries_.erase(it);
  }
}

// Keeps the outcome of an ended entry that goes: presumed abort must never
// answer for a txid that committed.
void TxnTable::Forget(const Entry& e) {
  if (e.outcome != proto::Outcome::COMMITTED && e.outcome != proto::Outcome::ABORTED) return;
  ++forgotten_count_;
  EpochRuns& runs = forgotten_[e.txid.epoch];
  Runs* set = e.outcome == proto::Outcome::COMMITTED ? &runs.committed : &runs.aborted;
  forgotten_runs_ = static_cast<size_t>(static_cast<int64_t>(forgotten_runs_) + set->Add(e.txid.seq));
  while (forgotten_runs_ > options_.forgotten_runs_max) DropOldestRun();
}

void TxnTable::DropOldestRun() {
  auto eit = forgotten_.begin();
  if (eit == forgotten_.end()) {
    forgotten_runs_ = 0;
    return;
  }
  EpochRuns& runs = eit->second;
  Runs* from = &runs.committed;
  if (from->empty() || (!runs.aborted.empty() && runs.aborted.First() < from->First())) {
    from = &runs.aborted;
  }
  TxId last = MakeTxId(eit->first, from->PopFirstRun().second);
  --forgotten_runs_;
  if (!lost_ || TxIdLess()(lost_through_, last)) lost_through_ = last;
  lost_ = true;
  if (runs.committed.empty() && runs.aborted.empty()) forgotten_.erase(eit);
}

proto::Outcome::type TxnTable::ForgottenOutcome(const TxId& txid) const {
  if (auto it = forgotten_.find(txid.epoch); it != forgotten_.end()) {
    if (it->second.committed.Contains(txid.seq)) return proto::Outcome::COMMITTED;
    if (it->second.aborted.Contains(txid.seq)) return proto::Outcome::ABORTED;
  }
  if (lost_ && !TxIdLess()(lost_through_, txid) && entries_.count(txid) == 0) {
    return proto::Outcome::FORGOTTEN;
  }
  return proto::Outcome::UNKNOWN;
}

const TxnTable::Entry* TxnTable::Find(const TxId& txid) const {
  auto it = entries_.find(txid);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<const TxnTable::Entry*> TxnTable::PreCommittedUndecided() const {
  std::vector<const Entry*> out;
  for (const auto& [txid, e] : entries_) {
    if (e.precommitted && e.outcome == proto::Outcome::UNKNOWN) out.push_back(&e);
  }
  return out;
}

std::vector<const TxnTable::Entry*> TxnTable::Unended() const {
  std::vector<const Entry*> out;
  for (const auto& [txid, e] : entries_) {
    if (!e.ended && e.outcome != proto::Outcome::UNKNOWN) out.push_back(&e);
  }
  return out;
}

// The snapshot is itself a CommandBatch: for every entry its DECIDE (or
// PRECOMMIT) and END in the order ended, then the EPOCH marker and the epoch,
// so Restore is replay. Version 2 adds the forgotten runs and the lost bound;
// version 3 writes those runs as varint bytes (ForgottenRuns fields 4, 5).
//
// Written command by command straight into the image, in the generated
// writer's field order, so the bytes are exactly Encode(batch) of that batch
// (txn_table_test checks it) without the batch: building it whole, then
// encoding it into a doubling buffer and copying that out, tripled the image
// in memory at every snapshot (about 25 MB at 10,000 transactions in flight).
std::string TxnTable::Snapshot() const {
  namespace tp = apache::thrift::protocol;
  // Reserved from the last image's bytes per entry (retained or in flight),
  // so the image does not grow by doubling (up to twice its size, kept as
  // long as the image is); the first from 300 (a DECIDE with two
  // participants and its END are about 190): over rather than under, as an
  // excess is given back below.
  const size_t units = entries_.size() + 1;
  const size_t per_unit = snapshot_units_ == 0 ? 300 : snapshot_bytes_ / snapshot_units_ + 1;
  const size_t reserve = units * per_unit;
  codec::StringWriter w(reserve + reserve / 16 + 1024);
  tp::TProtocol* p = w.protocol();
  bool ok = true;
  uint32_t count = 0;  // commands written
  try {
    p->writeStructBegin("CommandBatch");
    p->writeFieldBegin("commands", tp::T_LIST, 1);
    // The count is not known before the commands are written: 0 here, the
    // real one patched in below (kCommandCountAt).
    p->writeListBegin(tp::T_STRUCT, 0);
    auto put = [&](const proto::Command& c) {
      c.write(p);
      ++count;
    };
    // One command reused for every entry's: its participants and reason keep
    // their storage from one to the next. Fields not set are a new command's.
    const proto::Command blank;
    proto::Command c;
    auto fill = [&](proto::CommandType::type type, const Entry& e) -> proto::Command& {
      c.type = type;
      c.txid = e.txid;
      c.outcome = blank.outcome;
      c.participants = e.participants;
      c.protocol = blank.protocol;
      c.reason.clear();
      c.who.clear();
      c.epoch = blank.epoch;
      return c;
    };
    auto add = [&](const Entry& e) {
      if (e.precommitted) put(fill(proto::CommandType::PRECOMMIT, e));
      if (e.outcome != proto::Outcome::UNKNOWN) {
        // As MakeDecide; RESOLVE for an operator's (heuristic) decision.
        proto::Command& d = fill(
            e.heuristic ? proto::CommandType::RESOLVE : proto::CommandType::DECIDE, e);
        d.outcome = e.outcome;
        d.protocol = e.protocol;
        d.reason = e.reason;
        d.epoch = e.txid.epoch;
        put(d);
        if (!e.ended) {
          for (const proto::Command& f : e.forgotten) put(f);
        }
      }
    };
    proto::Command end = MakeEnd(TxId{});
    for (const TxId& t : ended_order_) {
      auto it = entries_.find(t);
      if (it == entries_.end()) continue;
      add(it->second);
      end.txid = t;
      end.epoch = t.epoch;
      put(end);
    }
    for (const auto& [txid, e] : entries_) {
      if (!e.ended) add(e);
    }
    put(MakeEpoch(marker_epoch_));
    proto::Command highest;
    highest.type = proto::CommandType::NOOP;
    highest.epoch = epoch_;
    put(highest);
    // The applied index travels as the last command's epoch field of a NOOP.
    proto::Command tail;
    tail.type = proto::CommandType::NOOP;
    tail.epoch = static_cast<int64_t>(applied_index_);
    put(tail);
    p->writeListEnd();
    p->writeFieldEnd();

    p->writeFieldBegin("snapshot_version", tp::T_I32, 2);
    p->writeI32(kSnapshotVersion);
    p->writeFieldEnd();

    p->writeFieldBegin("forgotten", tp::T_LIST, 3);
    p->writeListBegin(tp::T_STRUCT, static_cast<uint32_t>(forgotten_.size()));
    for (const auto& [epoch, runs] : forgotten_) {
      proto::ForgottenRuns f;
      f.epoch = epoch;
      // Version 3: the runs as varint bytes (about two bytes per scattered
      // commit), written from the chunks without a flattened copy.
      std::string committed, aborted;
      runs.committed.EncodeRuns(&committed);
      runs.aborted.EncodeRuns(&aborted);
      f.__set_committed_runs(std::move(committed));
      f.__set_aborted_runs(std::move(aborted));
      f.write(p);
    }
    p->writeListEnd();
    p->writeFieldEnd();

    if (lost_) {
      p->writeFieldBegin("lost_through", tp::T_STRUCT, 4);
      lost_through_.write(p);
      p->writeFieldEnd();
    }
    p->writeFieldStop();
    p->writeStructEnd();
  } catch (const std::exception&) {
    ok = false;  // as Encode: empty bytes if Thrift refused to write it
  }
  std::string image = w.Take(ok);
  if (!image.empty()) {
    // TBinaryProtocol: the struct's first field header (type, id: 3 bytes),
    // the list's element type (1 byte), then its size, a big-endian i32.
    constexpr size_t kCommandCountAt = 4;
    for (int i = 0; i < 4; ++i) {
      image[kCommandCountAt + i] = static_cast<char>((count >> (8 * (3 - i))) & 0xff);
    }
  }
  // A first image, or a table whose commands grew longer, may have outgrown
  // its reservation by doubling: give the excess back (one copy).
  if (image.capacity() > image.size() + image.size() / 8) image.shrink_to_fit();
  snapshot_bytes_ = image.size();
  snapshot_units_ = units;
  return image;
}

Status TxnTable::Restore(const std::string& image) {
  proto::CommandBatch batch;
  if (!Decode(image, &batch) || batch.commands.empty() || !CheckCommands(batch).ok() ||
      batch.commands.back().type != proto::CommandType::NOOP) {
    return Status::Internal("transaction table snapshot is unreadable");
  }
  TxnTable fresh(options_);
  if (batch.__isset.snapshot_version && batch.snapshot_version > kSnapshotVersion) {
    return Status::Internal("transaction table snapshot of version " +
                            std::to_string(batch.snapshot_version) +
                            " was written by a newer txcoord (this one reads up to " +
                            std::to_string(kSnapshotVersion) + ")");
  }
  if (batch.__isset.snapshot_version) {
    for (const proto::ForgottenRuns& f : batch.forgotten) {
      // Each epoch once, with at least one run (the forgetting code keeps no
      // empty epoch, and relies on that when it drops the oldest run).
      // Version 3 carries the runs as bytes (and empty lists); version 2 as lists.
      const bool bytes = batch.snapshot_version >= 3;
      const bool none = bytes ? (f.committed_runs.empty() && f.aborted_runs.empty())
                              : (f.committed.empty() && f.aborted.empty());
      if (f.epoch < 1 || fresh.forgotten_.count(f.epoch) != 0 || none ||
          (bytes && (!f.committed.empty() || !f.aborted.empty()))) {
        return Status::Internal("transaction table snapshot holds malformed forgotten runs");
      }
      EpochRuns& runs = fresh.forgotten_[f.epoch];
      const bool ok = bytes ? runs.committed.DecodeRuns(f.committed_runs) &&
                                  runs.aborted.DecodeRuns(f.aborted_runs)
                            : Unflatten(f.committed, &runs.committed) &&
                                  Unflatten(f.aborted, &runs.aborted);
      if (!ok) {
        return Status::Internal("transaction table snapshot holds malformed forgotten runs");
      }
      fresh.forgotten_runs_ += runs.committed.runs() + runs.aborted.runs();
    }
    if (batch.__isset.lost_through) {
      fresh.lost_ = true;
      fresh.lost_through_ = batch.lost_through;
    }
  } else {
    // Version 1 kept at most kEndedRetained ended entries and forgot the rest
    // without a trace. If it was full, some ended txid of an epoch up to the
    // image's may have committed and gone: none of them is presumed aborted.
    size_t ended = 0;
    int64_t highest = 0;
    // (The last command's epoch field carries the applied index.)
    for (size_t i = 0; i + 1 < batch.commands.size(); ++i) {
      const proto::Command& c = batch.commands[i];
      if (c.type == proto::CommandType::END_TXN) ++ended;
      highest = std::max(highest, c.epoch);
    }
    if (ended >= kEndedRetained) {
      fresh.lost_ = true;
      fresh.lost_through_ = MakeTxId(highest, INT64_MAX);
    }
  }
  uint64_t index = 0;
  for (size_t i = 0; i + 1 < batch.commands.size(); ++i) fresh.Apply(++index, batch.commands[i]);
  fresh.applied_index_ = static_cast<uint64_t>(batch.commands.back().epoch);
  *this = std::move(fresh);
  return Status::Ok();
}

proto::Command MakeDecide(const TxId& txid, proto::Outcome::type outcome,
                          std::vector<proto::Participant> participants,
                          proto::Protocol::type protocol, std::string reason) {
  proto::Command c;
  c.type = proto::CommandType::DECIDE;
  c.txid = txid;
  c.outcome = outcome;
  c.participants = std::move(participants);
  c.protocol = protocol;
  c.reason = std::move(reason);
  c.epoch = txid.epoch;
  return c;
}

proto::Command MakeEnd(const TxId& txid) {
  proto::Command c;
  c.type = proto::CommandType::END_TXN;
  c.txid = txid;
  c.epoch = txid.epoch;
  return c;
}

proto::Command MakeEpoch(int64_t epoch) {
  proto::Command c;
  c.type = proto::CommandType::EPOCH;
  c.epoch = epoch;
  return c;
}

std::string DescribeCommand(const proto::Command& cmd) {
  switch (cmd.type) {
    case proto::CommandType::NOOP: return "NOOP";
    case proto::CommandType::EPOCH: return "EPOCH(" + std::to_string(cmd.epoch) + ")";
    case proto::CommandType::DECIDE:
      return "DECIDE(" + ToString(cmd.txid) + "," + OutcomeName(cmd.outcome) + ")";
    case proto::CommandType::RESOLVE:
      return "RESOLVE(" + ToString(cmd.txid) + "," + OutcomeName(cmd.outcome) + ")";
    case proto::CommandType::PRECOMMIT: return "PRECOMMIT(" + ToString(cmd.txid) + ")";
    case proto::CommandType::END_TXN: return "END(" + ToString(cmd.txid) + ")";
    case proto::CommandType::FORGET:
      return "FORGET(" + ToString(cmd.txid) + "," +
             (cmd.participants.empty() ? std::string("?") : cmd.participants[0].resource) + ")";
  }
  return "?";
}

std::string EncodeBatch(const std::vector<proto::Command>& commands) {
  proto::CommandBatch batch;
  batch.commands = commands;
  return Encode(batch);
}

std::string EncodeBatchInPlace(std::vector<proto::Command>* commands) {
  proto::CommandBatch batch;
  batch.commands.swap(*commands);
  struct GiveBack {
    proto::CommandBatch& batch;
    std::vector<proto::Command>* commands;
    ~GiveBack() { batch.commands.swap(*commands); }
  } give_back{batch, commands};
  return Encode(batch);
}

Result<std::vector<proto::Command>> DecodeBatch(const std::string& bytes) {
  proto::CommandBatch batch;
  if (!Decode(bytes, &batch)) return Status::Internal("unreadable command batch in the log");
  if (Status bad = CheckCommands(batch); !bad.ok()) {
    return Status::Internal("command batch in the log holds a " + bad.message());
  }
  return std::move(batch.commands);
}

}  // namespace txc::coord
