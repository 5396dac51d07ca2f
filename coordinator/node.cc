#include "coordinator/node.h"

#include <filesystem>
#include <set>

#include "common/crash_point.h"
#include "common/log.h"

namespace txc::coord {

namespace {

Status FromProto(const proto::Status& s) {
  return Status(static_cast<Status::Code>(s.code), s.message);
}

}  // namespace

CoordinatorNode::CoordinatorNode(boost::asio::io_context& io, NodeOptions options)
    : io_(io),
      options_(std::move(options)),
      driver_(&table_, options_.driver),
      server_(io),
      pool_(io),
      tick_timer_(io) {}

CoordinatorNode::~CoordinatorNode() { Stop(); }

template <class Req, class Resp>
void CoordinatorNode::Serve(const std::string& method,
                            std::function<void(CommitDriver&, uint64_t, const Req&, Micros)> in) {
  server_.Handle<Req, Resp>(method, [this, in](Req req, rpc::RpcServer::Reply<Resp> reply) {
    uint64_t token = next_token_++;
    pending_.emplace(token, [reply = std::move(reply)](ClientResponse r) {
      reply(std::get<Resp>(std::move(r)));
    });
    in(driver_, token, req, SteadyNowMicros());
    Flush();
  });
}

Status CoordinatorNode::Start() {
  auto log = Logger("coord");
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return Status::InvalidArgument("cannot create data directory " + options_.data_dir + ": " +
                                   ec.message());
  }
  wal::LogStoreOptions lo;
  lo.unsafe_no_sync = options_.unsafe_no_sync;
  auto opened = wal::LogStore::Open(options_.data_dir + "/coord.log", io_.get_executor(), lo);
  if (!opened.ok()) return opened.status();
  log_ = std::move(opened.value());

  // Recover: snapshot, then every record after it.
  auto snap = log_->GetMeta("snapshot");
  if (!snap.ok()) return snap.status();
  if (snap->has_value()) TXC_RETURN_IF_ERROR(table_.Restore(**snap));
  last_snapshot_index_ = table_.applied_index();
  auto records = log_->ReadFrom(table_.applied_index() + 1);
  if (!records.ok()) return records.status();
  for (const wal::LogRecord& r : *records) {
    auto cmds = DecodeBatch(r.data);
    if (!cmds.ok()) {
      return Status::Internal("decision log record " + std::to_string(r.index) + ": " +
                              cmds.status().message());
    }
    for (const proto::Command& c : *cmds) table_.Apply(r.index, c);
  }
  next_index_ = std::max<uint64_t>(log_->LastIndex(), table_.applied_index()) + 1;
  log->info("recovered decision log records={} applied_index={} epoch={} unended={}",
            records->size(), table_.applied_index(), table_.epoch(), table_.unended_count());

  using CD = CommitDriver;
  Serve<proto::BeginRequest, proto::BeginResponse>(
      "Begin", [](CD& d, uint64_t t, const proto::BeginRequest& r, Micros now) { d.OnBegin(t, r, now); });
  Serve<proto::CommitRequest, proto::CommitResponse>(
      "Commit", [](CD& d, uint64_t t, const proto::CommitRequest& r, Micros now) { d.OnCommit(t, r, now); });
  Serve<proto::SubmitRequest, proto::CommitResponse>(
      "Submit", [](CD& d, uint64_t t, const proto::SubmitRequest& r, Micros now) { d.OnSubmit(t, r, now); });
  Serve<proto::AbortRequest, proto::CommitResponse>(
      "Abort", [](CD& d, uint64_t t, const proto::AbortRequest& r, Micros now) { d.OnAbort(t, r, now); });
  Serve<proto::OutcomeRequest, proto::OutcomeResponse>(
      "Outcome", [](CD& d, uint64_t t, const proto::OutcomeRequest& r, Micros now) { d.OnOutcome(t, r, now); });
  server_.Handle<proto::StatusRequest, proto::StatusResponse>(
      "Status", [this](proto::StatusRequest, rpc::RpcServer::Reply<proto::StatusResponse> reply) {
        reply(StatusNow());
      });
  server_.Handle<proto::ListTxnsRequest, proto::ListTxnsResponse>(
      "ListTxns",
      [this](proto::ListTxnsRequest req, rpc::RpcServer::Reply<proto::ListTxnsResponse> reply) {
        reply(ListTxns(req));
      });
  TXC_RETURN_IF_ERROR(server_.Listen(options_.listen));
  log->info("listening on {} data={}", options_.listen, options_.data_dir);

  // A new epoch, durable before the first txid of it is handed out, so no
  // txid is ever allocated twice across restarts.
  Propose({MakeEpoch(table_.epoch() + 1)});
  ScheduleTick();
  return Status::Ok();
}

void CoordinatorNode::Stop() {
  if (stopped_) return;
  stopped_ = true;
  tick_timer_.cancel();
  server_.Stop();
  pool_.CloseAll();
  log_.reset();
}

uint16_t CoordinatorNode::port() const { return server_.port(); }

void CoordinatorNode::ScheduleTick() {
  tick_timer_.expires_after(std::chrono::microseconds(options_.tick));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    driver_.Tick(SteadyNowMicros());
    Flush();
    ScheduleTick();
  });
}

void CoordinatorNode::Flush() {
  if (stopped_) return;
  DriverEffects fx = driver_.TakeEffects();
  for (ClientReply& r : fx.replies) {
    auto it = pending_.find(r.token);
    if (it == pending_.end()) continue;
    auto reply = std::move(it->second);
    pending_.erase(it);
    reply(std::move(r.response));
  }
  if (!fx.proposals.empty()) Propose(std::move(fx.proposals));
  for (ParticipantCall& c : fx.calls) {
    auto channel = pool_.Get(c.to.address);
    TxId txid = c.txid;
    size_t index = c.index;
    if (c.prepare) {
      channel->Call<proto::PrepareRequest, proto::PrepareResponse>(
          "Prepare", *c.prepare, options_.driver.call_timeout,
          [this, txid, index](Status s, proto::PrepareResponse r) {
            if (stopped_) return;
            driver_.OnVote(txid, index, s, r, SteadyNowMicros());
            Flush();
          });
    } else if (c.decide) {
      bool want_ack = c.want_ack;
      channel->Call<proto::DecideRequest, proto::DecideResponse>(
          "Decide", *c.decide, options_.driver.call_timeout,
          [this, txid, index, want_ack](Status s, proto::DecideResponse r) {
            if (stopped_ || !want_ack) return;
            driver_.OnAck(txid, index, s.ok() ? FromProto(r.status) : s, SteadyNowMicros());
            Flush();
          });
    }
  }
}

void CoordinatorNode::Propose(std::vector<proto::Command> cmds) {
  if (storage_failed_) {
    Status s = Status::StorageFailed("the decision log refused an earlier write");
    for (const auto& c : cmds) driver_.OnProposalFailed(c, s, SteadyNowMicros());
    return;
  }
  uint64_t index = next_index_++;
  std::string bytes = EncodeBatch(cmds);
  log_->Append({wal::LogRecord{index, std::move(bytes)}},
               [this, index, cmds = std::move(cmds)](Status s) { OnDurable(index, cmds, s); });
}

void CoordinatorNode::OnDurable(uint64_t index, const std::vector<proto::Command>& cmds,
                                const Status& s) {
  if (stopped_) return;
  Micros now = SteadyNowMicros();
  if (!s.ok()) {
    if (!storage_failed_) {
      Logger("coord")->error(
          "decision log write failed, refusing to decide anything until restarted: {}",
          s.ToString());
    }
    storage_failed_ = true;
    for (const auto& c : cmds) driver_.OnProposalFailed(c, s, now);
    Flush();
    return;
  }
  for (const proto::Command& c : cmds) {
    table_.Apply(index, c);
    if (c.type == proto::CommandType::EPOCH && !driver_.serving()) {
      driver_.BecomeLeader(c.epoch, now);
      Logger("coord")->info("serving epoch={} recovered_unended={}", c.epoch,
                            table_.unended_count());
      continue;
    }
    driver_.OnApplied(c, now);
    if (c.type == proto::CommandType::DECIDE && c.outcome == proto::Outcome::COMMITTED) {
      CrashPoint("coord.after_decide");
    }
  }
  Flush();
  MaybeSnapshot();
}

void CoordinatorNode::MaybeSnapshot() {
  uint64_t applied = table_.applied_index();
  if (applied < last_snapshot_index_ + options_.snapshot_every) return;
  last_snapshot_index_ = applied;
  log_->PutMeta("snapshot", table_.Snapshot(), [](Status) {});
  log_->TruncatePrefix(applied, [](Status) {});
  Logger("coord")->info("snapshot written applied_index={} entries={}", applied, table_.size());
}

proto::StatusResponse CoordinatorNode::StatusNow() const {
  proto::StatusResponse r;
  r.replica_id = options_.replica_id;
  r.leader_id = driver_.serving() ? options_.replica_id : 0;
  r.leader_address = driver_.serving() ? options_.listen : "";
  r.epoch = driver_.serving() ? driver_.epoch() : table_.epoch();
  r.commit_index = static_cast<int64_t>(table_.applied_index());
  r.applied_index = static_cast<int64_t>(table_.applied_index());
  proto::ReplicaInfo self;
  self.id = options_.replica_id;
  self.address = options_.listen;
  self.reachable = true;
  self.applied_index = r.applied_index;
  r.replicas.push_back(self);
  int64_t active = 0;
  for (const auto& t : driver_.ActiveTxns()) {
    if (t.state == "active" || t.state == "voting" || t.state == "deciding") ++active;
  }
  r.active_txns = active;
  r.decided_txns = static_cast<int64_t>(table_.unended_count());
  r.storage_failed = storage_failed_;
  return r;
}

proto::ListTxnsResponse CoordinatorNode::ListTxns(const proto::ListTxnsRequest& req) const {
  proto::ListTxnsResponse out;
  std::string want = req.__isset.state ? req.state : "";
  Micros now = SteadyNowMicros();
  auto keep = [&](const proto::TxnInfo& t) {
    return want.empty() || (want == "in-doubt" ? t.in_doubt : t.state == want);
  };
  std::set<TxId, TxIdLess> seen;
  for (const auto& v : driver_.ActiveTxns()) {
    proto::TxnInfo t;
    t.txid = v.txid;
    t.state = v.state;
    const TxnTable::Entry* e = table_.Find(v.txid);
    t.outcome = e != nullptr ? e->outcome : proto::Outcome::PENDING;
    t.participants = v.participants;
    bool all_acked = true;
    for (size_t i = 0; i < v.participants.size(); ++i) {
      if (i < v.acked.size() && v.acked[i]) {
        t.acked.push_back(v.participants[i].resource);
      } else {
        all_acked = false;
      }
    }
    t.protocol = v.protocol;
    t.age_ms = (now - v.began) / kMillis;
    t.in_doubt = v.state == "voting" || v.state == "deciding" ||
                 (v.state == "completing" && !all_acked);
    seen.insert(v.txid);
    if (keep(t)) out.txns.push_back(std::move(t));
  }
  // Decided, not ended, and not being driven here (this node is not serving).
  for (const TxnTable::Entry* e : table_.Unended()) {
    if (seen.count(e->txid)) continue;
    proto::TxnInfo t;
    t.txid = e->txid;
    t.state = e->outcome == proto::Outcome::COMMITTED ? "committed" : "aborted";
    t.outcome = e->outcome;
    t.participants = e->participants;
    t.protocol = e->protocol;
    t.in_doubt = true;
    if (keep(t)) out.txns.push_back(std::move(t));
  }
  return out;
}

}  // namespace txc::coord
