// PaxosLog: the real shell around paxos::Replica. Acceptor state lives in a
// LogStore (records: slot -> encoded Entry; meta: promised ballot, snapshot);
// peer messages travel as Replica.Deliver calls; applies go to the node.
#include <algorithm>

#include "common/log.h"
#include "coordinator/decision_log.h"
#include "coordinator/paxos/replica.h"
#include "coordinator/txn_table.h"
#include "protocol/validate.h"
#include "wal/log_store.h"

namespace txc::coord {

namespace {

// The RPC layer's codec: its reader checks types and caps lengths, so a
// corrupt record cannot make the replica allocate without bound.
template <class T>
std::string Encode(const T& v) {
  return rpc::detail::Serialize(v);
}

template <class T>
bool Decode(const std::string& bytes, T* v) {
  return rpc::detail::Deserialize(bytes, v);
}

class PaxosLog : public DecisionLog {
 public:
  PaxosLog(boost::asio::io_context& io, rpc::RpcServer* server, PaxosLogOptions options)
      : io_(io), server_(server), options_(std::move(options)), pool_(io), timer_(io) {}

  Status Start(LogCallbacks cb) override {
    cb_ = std::move(cb);
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
    auto opened = wal::LogStore::Open(options_.path, io_.get_executor(), lo);
    if (!opened.ok()) return opened.status();
    store_ = std::move(opened.value());

    // The acceptor's durable state.
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
      cb_.install(static_cast<uint64_t>(ds.snapshot_index), ds.snapshot);
    }
    auto records = store_->ReadFrom(static_cast<uint64_t>(ds.snapshot_index) + 1);
    if (!records.ok()) return records.status();
    for (const wal::LogRecord& r : *records) {
      paxos::Entry e;
      if (!Decode(r.data, &e)) return Status::Internal("paxos log: unreadable entry at slot " + std::to_string(r.index));
      ds.accepted[e.slot] = std::move(e);
    }
    // An empty directory is a new replica, or one whose log was lost (a
    // replaced machine under its old id): either way it may not vote before
    // it rejoined (replica.h, "Rejoining"). The mark is queued before any
    // other write, so no later write can be durable without it.
    auto joining = store_->GetMeta("joining");
    if (!joining.ok()) return joining.status();
    if (!joining->has_value() && !promised->has_value() && !snap_index->has_value() && records->empty()) {
      store_->PutMeta("joining", "1", [](Status) {});
      joining->emplace("1");
    }
    ds.joining = **joining == "1";
    applied_ = ds.snapshot_index;
    log->info("recovered acceptor promised={}.{} accepted={} snapshot_index={}", ds.promised.round,
              ds.promised.replica, ds.accepted.size(), ds.snapshot_index);

    std::vector<int> members;
    for (const auto& [id, addr] : options_.peers) members.push_back(id);
    paxos::Options po;
    po.heartbeat = options_.heartbeat;
    po.election_min = options_.election_min;
    po.election_max = options_.election_max;
    po.seed = static_cast<uint64_t>(SteadyNowMicros()) * 31 + static_cast<uint64_t>(options_.self_id);
    replica_ = std::make_unique<paxos::Replica>(options_.self_id, members, po, std::move(ds), applied_);

    server_->Handle<proto::PeerMessage, proto::PeerAck>(
        "Deliver", [this](proto::PeerMessage m, rpc::RpcServer::Reply<proto::PeerAck> reply) {
          Status bad = validate::Check(m);
          if (!bad.ok()) return reply(validate::Refusal<proto::PeerAck>(bad));
          reply(proto::PeerAck());
          if (stopped_) return;
          paxos::Message msg;
          if (!Decode(m.payload, &msg) || options_.peers.count(msg.sender) == 0) {
            Logger("paxos")->warn("dropping an unreadable peer message from replica {}", m.sender);
            return;
          }
          last_heard_[msg.sender] = SteadyNowMicros();
          replica_->OnMessage(msg, SteadyNowMicros());
          Flush();
        });
    ScheduleTick();
    return Status::Ok();
  }

  void Stop() override {
    stopped_ = true;
    timer_.cancel();
    pool_.CloseAll();
    store_.reset();
  }

  void Propose(std::vector<proto::Command> cmds) override {
    if (failed_) return cb_.failed(cmds, Status::StorageFailed("the acceptor log refused an earlier write"));
    if (!replica_->is_leader()) return cb_.failed(cmds, Status::NotLeader("this replica does not lead"));
    std::string value = EncodeBatch(cmds);
    replica_->Propose(std::move(value), SteadyNowMicros());
    // The replica sends everything proposed before TakeEffects() as one ACCEPT
    // and one Persist: take them once the handlers already queued on the io
    // thread have run, so their proposals share that message and that sync.
    if (flush_posted_) return;
    flush_posted_ = true;
    boost::asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired()) return;
      flush_posted_ = false;
      Flush();
    });
  }

  void Compact(uint64_t index, std::string image) override {
    if (failed_ || stopped_) return;
    replica_->Compacted(static_cast<int64_t>(index), image);
    store_->PutMeta("snapshot", std::move(image), [](Status) {});
    store_->PutMeta("snapshot_index", std::to_string(index), [](Status) {});
    store_->TruncatePrefix(index, [](Status) {});
  }

  LogInfo Info() const override {
    LogInfo i;
    i.leader_id = replica_->leader_id();
    auto it = options_.peers.find(i.leader_id);
    i.leader_address = it != options_.peers.end() ? it->second : "";
    i.epoch = replica_->epoch();
    i.commit_index = replica_->commit_index();
    i.storage_failed = failed_;
    auto progress = replica_->progress();
    Micros now = SteadyNowMicros();
    for (const auto& [id, addr] : options_.peers) {
      proto::ReplicaInfo r;
      r.id = id;
      r.address = addr;
      if (id == options_.self_id) {
        r.reachable = true;
        r.applied_index = replica_->applied_index();
      } else {
        auto h = last_heard_.find(id);
        r.reachable = h != last_heard_.end() && now - h->second < 2 * options_.election_max;
        auto p = progress.find(id);
        r.applied_index = p != progress.end() ? p->second : -1;
      }
      i.replicas.push_back(r);
    }
    return i;
  }

 private:
  void ScheduleTick() {
    timer_.expires_after(std::chrono::microseconds(options_.tick));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopped_) return;
      replica_->Tick(SteadyNowMicros());
      Flush();
      ScheduleTick();
    });
  }

  void Flush() {
    while (!stopped_) {
      paxos::Effects fx = replica_->TakeEffects();
      if (fx.empty()) break;
      for (paxos::Persist& p : fx.persists) Persist(std::move(p));
      for (paxos::Outgoing& o : fx.sends) Send(o);
      if (fx.install) {
        Logger("paxos")->info("installing the leader's snapshot index={} (this replica was behind its log)",
                              fx.install->first);
        // Kept as this replica's own snapshot, so a restart starts from it.
        store_->PutMeta("snapshot", fx.install->second, [](Status) {});
        store_->PutMeta("snapshot_index", std::to_string(fx.install->first), [](Status) {});
        applied_ = fx.install->first;
        cb_.install(static_cast<uint64_t>(fx.install->first), fx.install->second);
      }
      for (auto& [slot, value] : fx.applies) {
        applied_ = slot;
        if (value.empty()) {
          cb_.apply(static_cast<uint64_t>(slot), {});
          continue;
        }
        auto cmds = DecodeBatch(value);
        if (!cmds.ok()) {
          Logger("paxos")->error("chosen value at slot {} is unreadable; applying nothing", slot);
          cb_.apply(static_cast<uint64_t>(slot), {});
          continue;
        }
        cb_.apply(static_cast<uint64_t>(slot), *cmds);
      }
      if (fx.stepped_down) cb_.step_down(LeaderAddress());
      if (fx.leader_recovered) cb_.lead(*fx.leader_recovered);
      // A follower that learns who leads tells the node, for client redirects.
      int leader = replica_->leader_id();
      if (leader != known_leader_) {
        known_leader_ = leader;
        Logger("paxos")->info("leader={} epoch={}", leader, replica_->epoch());
        if (leader != options_.self_id) cb_.step_down(LeaderAddress());
      }
    }
  }

  std::string LeaderAddress() const {
    auto it = options_.peers.find(replica_->leader_id());
    return it != options_.peers.end() && it->first != options_.self_id ? it->second : "";
  }

  void Persist(paxos::Persist p) {
    uint64_t token = p.token;
    auto done = [this, token](Status s) {
      if (stopped_) return;
      if (!s.ok()) {
        if (!failed_) {
          Logger("paxos")->error("acceptor log write failed; this replica stops accepting until restarted: {}",
                                 s.ToString());
        }
        failed_ = true;
        replica_->OnStorageFailed(SteadyNowMicros());  // silent from now on: the others elect
        cb_.failed({}, s);
        Flush();
        return;
      }
      if (failed_) return;  // a sticky failure: never release a dependent message
      replica_->OnPersisted(token, SteadyNowMicros());
      Flush();
    };
    if (p.promised) store_->PutMeta("promised", Encode(*p.promised), [](Status) {});
    if (p.joined) store_->PutMeta("joining", "0", [](Status) {});
    std::vector<wal::LogRecord> records;
    records.reserve(p.entries.size());
    for (const paxos::Entry& e : p.entries) {
      records.push_back(wal::LogRecord{static_cast<uint64_t>(e.slot), Encode(e)});
    }
    // Completions come in submission order, so `done` follows the meta write.
    store_->Append(std::move(records), done);
  }

  void Send(const paxos::Outgoing& o) {
    auto it = options_.peers.find(o.to);
    if (it == options_.peers.end() || o.to == options_.self_id) return;
    proto::PeerMessage m;
    m.sender = options_.self_id;
    m.receiver = o.to;
    m.payload = Encode(o.msg);
    pool_.Get(it->second)->Call<proto::PeerMessage, proto::PeerAck>(
        "Deliver", m, 2 * options_.election_max,
        [to = o.to, type = static_cast<int>(o.msg.type), bytes = m.payload.size()](Status s,
                                                                                   proto::PeerAck) {
          if (s.ok()) return;  // a refused one (too large) is a bug; a peer down is routine
          Logger("paxos")->log(s.code() == Status::kInvalidArgument ? spdlog::level::warn
                                                                    : spdlog::level::debug,
                               "message type {} ({} bytes) to replica {} not delivered: {}", type,
                               bytes, to, s.ToString());
        });
  }

  boost::asio::io_context& io_;
  rpc::RpcServer* server_;
  PaxosLogOptions options_;
  rpc::ChannelPool pool_;
  boost::asio::steady_timer timer_;
  LogCallbacks cb_;
  std::unique_ptr<wal::LogStore> store_;
  std::unique_ptr<paxos::Replica> replica_;
  std::map<int, Micros> last_heard_;
  int64_t applied_ = 0;
  int known_leader_ = 0;
  bool failed_ = false;
  bool stopped_ = false;
  bool flush_posted_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // expires with this object
};

}  // namespace

std::unique_ptr<DecisionLog> MakePaxosLog(boost::asio::io_context& io, rpc::RpcServer* server,
                                          PaxosLogOptions options) {
  return std::make_unique<PaxosLog>(io, server, std::move(options));
}

}  // namespace txc::coord
