#include "coordinator/txn_table.h"

#include <algorithm>
#include <cassert>
#include <cstdint>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

namespace txc::coord {

namespace {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TMemoryBuffer;

template <class T>
std::string Encode(const T& value) {
  auto buf = std::make_shared<TMemoryBuffer>();
  TBinaryProtocol proto(buf);
  value.write(&proto);
  return buf->getBufferAsString();
}

template <class T>
bool Decode(const std::string& bytes, T* value) {
  try {
    auto buf = std::make_shared<TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(const_cast<char*>(bytes.data())),
        static_cast<uint32_t>(bytes.size()), TMemoryBuffer::OBSERVE);
    TBinaryProtocol proto(buf);
    // Every list element takes at least one byte: a corrupt count must not
    // make the generated reader allocate for billions of commands first.
    proto.setContainerSizeLimit(static_cast<int32_t>(std::min<size_t>(bytes.size(), INT32_MAX)));
    value->read(&proto);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

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
      if (cmd.type == proto::CommandType::DECIDE && cmd.txid.epoch < marker_epoch_) {
        const Entry* known = Find(cmd.txid);
        // Already presumed aborted by a newer leader: see Apply's comment.
        if (known == nullptr || known->outcome == proto::Outcome::UNKNOWN) return;
      }
      auto [it, inserted] = entries_.try_emplace(cmd.txid);
      Entry& e = it->second;
      if (!inserted && e.outcome != proto::Outcome::UNKNOWN) {
        // The first decision chosen stands; a later one for the same txid is
        // a no-op (a retried proposal, or an operator too late).
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
    case proto::CommandType::PRECOMMIT: {
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
  while (ended_order_.size() > kEndedRetained) {
    entries_.erase(ended_order_.front());
    ended_order_.pop_front();
  }
}

const TxnTable::Entry* TxnTable::Find(const TxId& txid) const {
  auto it = entries_.find(txid);
  return it == entries_.end() ? nullptr : &it->second;
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
// so Restore is replay.
std::string TxnTable::Snapshot() const {
  proto::CommandBatch batch;
  auto add = [&](const Entry& e) {
    if (e.precommitted) {
      proto::Command c;
      c.type = proto::CommandType::PRECOMMIT;
      c.txid = e.txid;
      c.participants = e.participants;
      batch.commands.push_back(c);
    }
    if (e.outcome != proto::Outcome::UNKNOWN) {
      proto::Command c = MakeDecide(e.txid, e.outcome, e.participants, e.protocol, e.reason);
      if (e.heuristic) c.type = proto::CommandType::RESOLVE;
      batch.commands.push_back(std::move(c));
    }
  };
  for (const TxId& t : ended_order_) {
    auto it = entries_.find(t);
    if (it == entries_.end()) continue;
    add(it->second);
    batch.commands.push_back(MakeEnd(t));
  }
  for (const auto& [txid, e] : entries_) {
    if (!e.ended) add(e);
  }
  batch.commands.push_back(MakeEpoch(marker_epoch_));
  proto::Command highest;
  highest.type = proto::CommandType::NOOP;
  highest.epoch = epoch_;
  batch.commands.push_back(highest);
  // The applied index travels as the last command's epoch field of a NOOP.
  proto::Command tail;
  tail.type = proto::CommandType::NOOP;
  tail.epoch = static_cast<int64_t>(applied_index_);
  batch.commands.push_back(tail);
  return Encode(batch);
}

Status TxnTable::Restore(const std::string& image) {
  proto::CommandBatch batch;
  if (!Decode(image, &batch) || batch.commands.empty() ||
      batch.commands.back().type != proto::CommandType::NOOP) {
    return Status::Internal("transaction table snapshot is unreadable");
  }
  TxnTable fresh;
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
  }
  return "?";
}

std::string EncodeBatch(const std::vector<proto::Command>& commands) {
  proto::CommandBatch batch;
  batch.commands = commands;
  return Encode(batch);
}

Result<std::vector<proto::Command>> DecodeBatch(const std::string& bytes) {
  proto::CommandBatch batch;
  if (!Decode(bytes, &batch)) return Status::Internal("unreadable command batch in the log");
  return std::move(batch.commands);
}

}  // namespace txc::coord
