// PaxosLog: the real disk and network of one Multi-Paxos group member, under
// its NodeCore (which runs the paxos::Replica). Acceptor state lives in a
// LogStore (records: slot -> encoded Entry; meta: promised ballot, snapshot);
// peer messages travel as Replica.Deliver calls, and a peer's answer in the
// reply to the call it answers when it has one soon enough.
#include <algorithm>

#include "common/codec.h"
#include "common/log.h"
#include "coordinator/decision_log.h"
#include "protocol/validate.h"

namespace txc::coord {

namespace {

// The codec of every persisted record: its reader checks types and caps
// lengths, so a corrupt record cannot make the replica allocate without bound.
using codec::Decode;
using codec::Encode;

}  // namespace

bool DecodePeerPayload(std::string_view payload, paxos::Message* msg, std::string* why) {
  if (!Decode(payload, msg)) {
    *why = "an unreadable peer message";
    return false;
  }
  const int32_t type = validate::WireEnumValue(msg->type);
  if (type < static_cast<int32_t>(paxos::wire::Type::PREVOTE) ||
      type > static_cast<int32_t>(paxos::wire::Type::CATCHUP_REPLY)) {
    *why = "a peer message of unknown type " + std::to_string(type);
    return false;
  }
  return true;
}

PaxosLog::PaxosLog(boost::asio::io_context& io, rpc::RpcServer* server, PaxosLogOptions options)
    : io_(io), server_(server), options_(std::move(options)), pool_(io, [this] {
        rpc::ChannelOptions o;
        o.tls = options_.tls;
        o.on_closed_by_peer = [self = std::weak_ptr<PaxosLog*>(self_)](const std::string& address) {
          auto live = self.lock();
          if (live) (*live)->ClosedByPeer(address);
        };
        return o;
      }()) {}

void PaxosLog::ClosedByPeer(const std::string& address) {
  if (stopped_ || !hooks_.peer_gone) return;
  for (const auto& [id, addr] : options_.peers) {
    if (addr == address && id != options_.self_id) {
      Logger("paxos")->debug("replica {} ({}) closed our connection", id, address);
      hooks_.peer_gone(id);
    }
  }
}

PaxosLog::~PaxosLog() { Stop(); }

Result<paxos::DurableState> PaxosLog::Recover() {
  auto log = Logger("paxos");
  if (options_.peers.count(options_.self_id) == 0) {
    return Status::InvalidArgument("--id " + std::to_string(options_.self_id) +
                                   " is not one of --peers");
  }
  if (options_.peers.size() != 3 && options_.peers.size() != 5) {
    log->warn("a group of {} replicas: 3 or 5 are recommended", options_.peers.size());
  }
  wal::LogStoreOptions lo;
  lo.unsafe_no_sync = options_.unsafe_no_sync;
  lo.layout_key = "paxos_log_layout";
  lo.layout = kPaxosLogLayout;
  auto opened = wal::LogStore::Open(options_.path, io_.get_executor(), lo);
  if (!opened.ok()) return opened.status();
  store_ = std::move(opened.value());

  paxos::DurableState ds;
  auto promised = store_->GetMeta("promised");
  if (!promised.ok()) return promised.status();
  if (promised->has_value() && !Decode(**promised, &ds.promised)) {
    return Status::Internal("paxos log: unreadable promised ballot");
  }
  auto snap_index = store_->GetMeta("snapshot_index");
  auto snap = store_->GetMeta("snapshot");
  if (!snap_index.ok()) return snap_index.status();
  if (!snap.ok()) return snap.status();
  if (snap_index->has_value() && snap->has_value()) {
    ds.snapshot_index = std::stoll(**snap_index);
    ds.snapshot = **snap;
  }
  auto records = store_->ReadFrom(static_cast<uint64_t>(ds.snapshot_index) + 1);
  if (!records.ok()) return records.status();
  for (const wal::LogRecord& r : *records) {
    paxos::Entry e;
    if (!Decode(r.data, &e)) {
      return Status::Internal("paxos log: unreadable entry at slot " + std::to_string(r.index));
    }
    ds.accepted[e.slot] = std::move(e);
  }
  // An empty directory is a new replica, or one whose log was lost (a
  // replaced machine under its old id): either way it may not vote before
  // it rejoined (replica.h, "Rejoining"). The mark is queued before any
  // other write, so no later write can be durable without it.
  auto joining = store_->GetMeta("joining");
  if (!joining.ok()) return joining.status();
  if (!joining->has_value() && !promised->has_value() && !snap_index->has_value() &&
      records->empty()) {
    store_->PutMeta("joining", "1", [](Status) {});
    joining->emplace("1");
  }
  ds.joining = **joining == "1";
  log->info("recovered acceptor promised={}.{} accepted={} snapshot_index={}", ds.promised.round,
            ds.promised.replica, ds.accepted.size(), ds.snapshot_index);
  return ds;
}

namespace {
// How long a held reply waits for this replica's answer before it goes empty.
// An ACCEPT's answer waits for a sync (about a millisecond here, more under
// load); past this the answer travels as a call of its own, as before.
constexpr Micros kHoldAtMost = 100 * kMillis;
// Held replies per peer at most (the oldest goes empty first).
constexpr size_t kMaxHeld = 1024;
}  // namespace

Status PaxosLog::Start(Hooks hooks) {
  hooks_ = std::move(hooks);
  server_->HandleHeld<proto::PeerMessage, proto::PeerAck>(
      "Deliver", [this](proto::PeerMessage m, rpc::RpcServer::Reply<proto::PeerAck> reply,
                        rpc::CallConnection connection) {
        if (Status bad = validate::Check(m); !bad.ok()) {
          return reply(validate::Refusal<proto::PeerAck>(bad));
        }
        const bool hold = m.__isset.answer_in_reply && m.answer_in_reply && !stopped_;
        if (!hold) reply(proto::PeerAck());
        if (stopped_) return;
        paxos::Message msg;
        std::string why;
        if (!DecodePeerPayload(m.payload, &msg, &why)) {
          Logger("paxos")->warn("dropping {} from replica {}", why, m.sender);
          if (hold) reply(proto::PeerAck());
          return;
        }
        if (options_.peers.count(msg.sender) == 0) {
          Logger("paxos")->warn("dropping a peer message from replica {}: sender {} is not a member",
                                m.sender, msg.sender);
          if (hold) reply(proto::PeerAck());
          return;
        }
        const Micros now = SteadyNowMicros();
        last_heard_[msg.sender] = now;
        // Our own connection to whoever calls us stays open, so that its
        // end (the caller's process died) reaches on_closed_by_peer: a
        // follower that answers in the replies to the leader's calls sends
        // nothing on it, and it would otherwise be closed or never opened
        // (the early election then waited out a whole election timeout).
        if (msg.sender != options_.self_id) {
          auto peer = options_.peers.find(msg.sender);
          if (peer != options_.peers.end()) pool_.Get(peer->second)->Connect();
        }
        if (hold) {
          ReleaseHeld(msg.sender, now - kHoldAtMost);
          auto& q = held_[msg.sender];
          if (q.size() >= kMaxHeld) {
            q.front().reply(proto::PeerAck());
            q.pop_front();
          }
          q.push_back(HeldReply{std::move(reply), std::move(connection), now});
        }
        hooks_.message(msg);
      });
  return Status::Ok();
}

void PaxosLog::ReleaseHeld(int id, Micros arrived_before) {
  auto it = held_.find(id);
  if (it == held_.end()) return;
  auto& q = it->second;
  while (!q.empty() && q.front().since < arrived_before) {
    q.front().reply(proto::PeerAck());
    q.pop_front();
  }
}

void PaxosLog::AnswerArrived(int to, const proto::PeerAck& ack) {
  if (stopped_ || !ack.__isset.payload) return;
  paxos::Message msg;
  std::string why;
  if (!DecodePeerPayload(ack.payload, &msg, &why)) {
    Logger("paxos")->warn("dropping {} in a reply from replica {}", why, to);
    return;
  }
  if (msg.sender != to) {
    Logger("paxos")->warn("dropping a peer message in a reply from replica {}: it names sender {}",
                          to, msg.sender);
    return;
  }
  last_heard_[to] = SteadyNowMicros();
  hooks_.message(msg);
}

void PaxosLog::Stop() {
  stopped_ = true;
  for (auto& [id, q] : held_) {
    for (HeldReply& h : q) h.reply(proto::PeerAck());
  }
  held_.clear();
  pool_.CloseAll();
  store_.reset();
}

void PaxosLog::Persist(paxos::Persist p) {
  if (stopped_ || failed_) return;  // a sticky failure: never release a dependent message
  uint64_t token = p.token;
  Micros started = SteadyNowMicros();
  auto done = [this, token, started](Status s) {
    if (stopped_) return;
    if (!s.ok()) return WriteFailed(s, "acceptor log write");
    if (failed_) return;
    if (options_.write_latency != nullptr) {
      options_.write_latency->Observe(static_cast<double>(SteadyNowMicros() - started) / kSeconds);
    }
    hooks_.persisted(token);
  };
  // One transaction: a promise, the accepted values and (for a rejoined
  // replica) the cleared joining mark are durable together or not at all;
  // the mark alone must never be, or a restart would vote without the values
  // it adopted.
  wal::LogStore::Batch batch;
  if (p.promised) batch.metas.emplace_back("promised", Encode(*p.promised));
  if (p.joined) batch.metas.emplace_back("joining", "0");
  batch.records.reserve(p.entries.size());
  for (const paxos::Entry& e : p.entries) {
    batch.records.push_back(wal::LogRecord{static_cast<uint64_t>(e.slot), Encode(e)});
  }
  store_->Write(std::move(batch), done);
}

void PaxosLog::WriteFailed(const Status& s, const char* what) {
  if (stopped_) return;
  if (!failed_) {
    Logger("paxos")->error("{} failed; this replica stops accepting until restarted: {}", what,
                           s.ToString());
  }
  failed_ = true;
  hooks_.failed(s);
}

void PaxosLog::Send(const paxos::Outgoing& o) {
  if (stopped_) return;
  auto it = options_.peers.find(o.to);
  if (it == options_.peers.end() || o.to == options_.self_id) return;
  const Micros now = SteadyNowMicros();
  const Micros last_call = last_call_.try_emplace(o.to, now).first->second;
  const bool call_due = now - last_call >= options_.call_at_least_every;
  auto held = held_.find(o.to);
  if (held != held_.end()) {
    // A reply on a connection that has closed since (the peer gave up on it,
    // or restarted) would be dropped, and the message lost with it: such
    // replies are let go, and the message takes a live one or a call.
    auto& q = held->second;
    while (!q.empty() && !q.front().connection.open()) {
      q.pop_front();
      held_on_closed_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (held != held_.end() && !held->second.empty() && !call_due) {
    // The peer's oldest unanswered call carries it back.
    proto::PeerAck ack;
    ack.__set_payload(Encode(o.msg));
    auto reply = std::move(held->second.front().reply);
    held->second.pop_front();
    reply(std::move(ack));
    sent_in_reply_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  proto::PeerMessage m;
  m.sender = options_.self_id;
  m.receiver = o.to;
  m.payload = Encode(o.msg);
  m.__set_answer_in_reply(true);
  last_call_[o.to] = now;
  sent_as_call_.fetch_add(1, std::memory_order_relaxed);
  pool_.Get(it->second)->Call<proto::PeerMessage, proto::PeerAck>(
      "Deliver", m, 2 * options_.election_max,
      [self = std::weak_ptr<PaxosLog*>(self_), to = o.to, type = static_cast<int>(o.msg.type),
       bytes = m.payload.size()](Status s, proto::PeerAck ack) {
        if (s.ok()) {
          if (auto live = self.lock()) (*live)->AnswerArrived(to, ack);
          return;
        }
        // A refused one (too large) is a bug; a peer down is routine.
        Logger("paxos")->log(s.code() == Status::kInvalidArgument ? spdlog::level::warn
                                                                  : spdlog::level::debug,
                             "message type {} ({} bytes) to replica {} not delivered: {}", type,
                             bytes, to, s.ToString());
      });
}

void PaxosLog::KeepSnapshot(uint64_t index, const std::string& image) {
  if (stopped_ || failed_) return;
  Logger("paxos")->info("installing the leader's snapshot index={} (this replica was behind its log)",
                        index);
  // The image and its index in one transaction (a crash between two writes
  // would label the new image with the old index).
  wal::LogStore::Batch batch;
  batch.metas = {{"snapshot", image}, {"snapshot_index", std::to_string(index)}};
  store_->Write(std::move(batch), [this](Status s) {
    if (!s.ok()) WriteFailed(s, "writing the installed snapshot");
  });
}

void PaxosLog::Compact(uint64_t index, std::shared_ptr<const std::string> image) {
  if (stopped_ || failed_) return;
  // The replica's own copy, written without another (it can be tens of MB).
  wal::LogStore::Batch batch;
  batch.shared_metas = {{"snapshot", std::move(image)}};
  batch.metas = {{"snapshot_index", std::to_string(index)}};
  batch.truncate_upto = index;
  store_->Write(std::move(batch), [this](Status s) {
    if (!s.ok()) WriteFailed(s, "writing a snapshot and compacting the log");
  });
}

void PaxosLog::InjectStoreFailureForTest() {
  if (store_) store_->InjectFailureForTest();
}

std::optional<Micros> PaxosLog::last_heard(int id) const {
  auto it = last_heard_.find(id);
  if (it == last_heard_.end()) return std::nullopt;
  return it->second;
}

}  // namespace txc::coord
