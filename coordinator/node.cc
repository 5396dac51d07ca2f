#include "coordinator/node.h"

#include <filesystem>
#include <set>

#include "common/crash_point.h"
#include "common/log.h"
#include "protocol/validate.h"

namespace txc::coord {

namespace {

// Agents come back after a restart within a second or so: reconnect fast, so
// PREPARE and COMMIT reach them soon after.
rpc::ChannelOptions PeerChannelOptions() {
  rpc::ChannelOptions o;
  o.backoff_max = 200 * kMillis;
  return o;
}

}  // namespace

CoordinatorNode::CoordinatorNode(boost::asio::io_context& io, NodeOptions options)
    : io_(io),
      options_(std::move(options)),
      table_(options_.driver.table),
      driver_(&table_, options_.driver),
      server_(io),
      pool_(io, PeerChannelOptions()),
      tick_timer_(io) {}

CoordinatorNode::~CoordinatorNode() { Stop(); }

template <class Req, class Resp>
void CoordinatorNode::Serve(const std::string& method,
                            std::function<void(CommitDriver&, uint64_t, const Req&, Micros)> in) {
  server_.Handle<Req, Resp>(method, [this, in](Req req, rpc::RpcServer::Reply<Resp> reply) {
    if (Status bad = validate::Check(req); !bad.ok()) return reply(validate::Refusal<Resp>(bad));
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

  server_.Handle<paxos::wire::AppendRequest, paxos::wire::AppendResponse>(
      "Append", [this](paxos::wire::AppendRequest req,
                       rpc::RpcServer::Reply<paxos::wire::AppendResponse> reply) {
        OnAppend(std::move(req), std::move(reply));
      });

  if (options_.peers.size() > 1) {
    PaxosLogOptions po;
    po.self_id = options_.replica_id;
    po.peers = options_.peers;
    po.path = options_.data_dir + "/paxos.log";
    po.unsafe_no_sync = options_.unsafe_no_sync;
    po.heartbeat = options_.heartbeat;
    po.election_min = options_.election_min;
    po.election_max = options_.election_max;
    log_ = MakePaxosLog(io_, &server_, po);
  } else {
    LocalLogOptions lo;
    lo.path = options_.data_dir + "/coord.log";
    lo.unsafe_no_sync = options_.unsafe_no_sync;
    lo.self_address = options_.listen;
    lo.self_id = options_.replica_id;
    log_ = MakeLocalLog(io_, lo);
  }

  LogCallbacks cb;
  cb.apply = [this](uint64_t index, const std::vector<proto::Command>& cmds) { OnChosen(index, cmds); };
  cb.install = [this](uint64_t index, const std::string& image) {
    Status s = table_.Restore(image);
    if (!s.ok()) Logger("coord")->error("snapshot install at index={} failed: {}", index, s.ToString());
    last_snapshot_index_ = table_.applied_index();
  };
  cb.lead = [this](int64_t epoch) {
    lead_epoch_ = epoch;
    Logger("coord")->info("leading epoch={}; proposing its marker", epoch);
    log_->Propose({MakeEpoch(epoch)});
  };
  cb.step_down = [this](const std::string& hint) {
    if (driver_.serving()) Logger("coord")->info("stepping down; leader={}", hint.empty() ? "?" : hint);
    lead_epoch_ = 0;
    driver_.StepDown(hint);
    FailAppends(hint.empty() ? Status::Unavailable("no leader") : Status::NotLeader(hint));
    Flush();
  };
  cb.failed = [this](const std::vector<proto::Command>& cmds, const Status& why) {
    if (why.code() == Status::kStorageFailed) storage_failed_ = true;
    for (const auto& c : cmds) driver_.OnProposalFailed(c, why, SteadyNowMicros());
    if (cmds.empty()) driver_.StepDown("");
    FailAppends(why);
    Flush();
  };
  TXC_RETURN_IF_ERROR(log_->Start(std::move(cb)));
  last_snapshot_index_ = table_.applied_index();
  TXC_RETURN_IF_ERROR(server_.Listen(options_.listen));
  log->info("listening on {} replica={} replicas={} data={}", options_.listen, options_.replica_id,
            std::max<size_t>(1, options_.peers.size()), options_.data_dir);
  ScheduleTick();
  return Status::Ok();
}

void CoordinatorNode::Stop() {
  if (stopped_) return;
  stopped_ = true;
  tick_timer_.cancel();
  server_.Stop();
  pool_.CloseAll();
  if (log_) log_->Stop();
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
  for (const HeuristicHazard& h : fx.hazards) {
    Logger("coord")->warn("heuristic hazard txid={}: {}", ToString(h.txid), h.ToString());
  }
  for (ClientReply& r : fx.replies) {
    auto it = pending_.find(r.token);
    if (it == pending_.end()) continue;
    auto reply = std::move(it->second);
    pending_.erase(it);
    reply(std::move(r.response));
  }
  if (!fx.proposals.empty()) log_->Propose(std::move(fx.proposals));
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
      proto::DecideRequest req = *c.decide;
      channel->Call<proto::DecideRequest, proto::DecideResponse>(
          "Decide", req, options_.driver.call_timeout,
          [this, c = std::move(c)](Status s, proto::DecideResponse r) {
            if (stopped_) return;
            driver_.OnDecideAnswer(c, s, r, SteadyNowMicros());
            Flush();
          });
    }
  }
}

void CoordinatorNode::OnChosen(uint64_t index, const std::vector<proto::Command>& cmds) {
  if (stopped_) return;
  Micros now = SteadyNowMicros();
  for (const proto::Command& c : cmds) {
    table_.Apply(index, c);
    if (c.type == proto::CommandType::EPOCH) {
      if (c.epoch == lead_epoch_ && !driver_.serving()) {
        driver_.BecomeLeader(c.epoch, now);
        Logger("coord")->info("serving epoch={} recovered_unended={}", c.epoch, table_.unended_count());
      }
      continue;
    }
    if (c.type == proto::CommandType::NOOP && !c.who.empty()) {
      auto it = appends_.find(std::strtoull(c.who.c_str(), nullptr, 10));
      if (it != appends_.end() && c.who.find(':') != std::string::npos &&
          c.who.substr(c.who.find(':') + 1) == std::to_string(options_.replica_id)) {
        paxos::wire::AppendResponse r;
        r.slot = static_cast<int64_t>(index);
        it->second(std::move(r));
        appends_.erase(it);
      }
      continue;
    }
    if (!driver_.serving()) continue;
    driver_.OnApplied(c, now);
    if (c.type == proto::CommandType::DECIDE && c.outcome == proto::Outcome::COMMITTED) {
      CrashPoint("coord.after_decide");
    }
  }
  Flush();
  MaybeSnapshot();
}

void CoordinatorNode::OnAppend(paxos::wire::AppendRequest req,
                               rpc::RpcServer::Reply<paxos::wire::AppendResponse> reply) {
  if (!driver_.serving()) {
    paxos::wire::AppendResponse r;
    LogInfo info = log_->Info();
    r.status.code = info.leader_address.empty() ? proto::Code::UNAVAILABLE : proto::Code::NOT_LEADER;
    r.status.message = "not the leader";
    if (!info.leader_address.empty()) r.status.__set_leader_hint(info.leader_address);
    return reply(std::move(r));
  }
  // One slot carries every record that arrived in this turn of the io loop.
  uint64_t id = next_append_++;
  appends_.emplace(id, std::move(reply));
  proto::Command c;
  c.type = proto::CommandType::NOOP;
  c.who = std::to_string(id) + ":" + std::to_string(options_.replica_id);
  c.reason = std::move(req.payload);
  if (append_batch_.empty()) {
    boost::asio::post(io_, [this] {
      if (stopped_ || append_batch_.empty()) return;
      std::vector<proto::Command> batch;
      batch.swap(append_batch_);
      log_->Propose(std::move(batch));
    });
  }
  append_batch_.push_back(std::move(c));
}

void CoordinatorNode::FailAppends(const Status& why) {
  for (auto& [id, reply] : appends_) {
    paxos::wire::AppendResponse r;
    r.status.code = static_cast<proto::Code::type>(why.code());
    r.status.message = why.message();
    if (why.code() == Status::kNotLeader) r.status.__set_leader_hint(why.message());
    reply(std::move(r));
  }
  appends_.clear();
}

void CoordinatorNode::MaybeSnapshot() {
  uint64_t applied = table_.applied_index();
  if (applied < last_snapshot_index_ + options_.snapshot_every) return;
  last_snapshot_index_ = applied;
  log_->Compact(applied, table_.Snapshot());
  Logger("coord")->info("snapshot written applied_index={} entries={}", applied, table_.size());
}

proto::StatusResponse CoordinatorNode::StatusNow() const {
  LogInfo info = log_->Info();
  proto::StatusResponse r;
  r.replica_id = options_.replica_id;
  // Only a replica that serves calls itself the leader.
  r.leader_id = info.leader_id == options_.replica_id && !driver_.serving() ? 0 : info.leader_id;
  r.leader_address = r.leader_id != 0 ? info.leader_address : "";
  r.epoch = driver_.serving() ? driver_.epoch() : info.epoch;
  r.commit_index = info.commit_index;
  r.applied_index = static_cast<int64_t>(table_.applied_index());
  r.replicas = info.replicas;
  int64_t active = 0;
  for (const auto& t : driver_.ActiveTxns()) {
    if (t.state == "active" || t.state == "voting" || t.state == "deciding") ++active;
  }
  r.active_txns = active;
  r.decided_txns = static_cast<int64_t>(table_.unended_count());
  r.storage_failed = storage_failed_ || info.storage_failed;
  return r;
}

proto::ListTxnsResponse CoordinatorNode::ListTxns(const proto::ListTxnsRequest& req) const {
  proto::ListTxnsResponse out;
  std::string want = req.__isset.state ? req.state : "";
  Micros now = SteadyNowMicros();
  auto keep = [&](const proto::TxnInfo& t) {
    if (want == "hazard") return static_cast<bool>(t.__isset.hazards);
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
    if (!v.hazards.empty()) t.__set_hazards(v.hazards);
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
    seen.insert(e->txid);
    if (keep(t)) out.txns.push_back(std::move(t));
  }
  // Heuristic hazards of transactions no longer driven here (an ABORT refused
  // by a branch that committed): the participants disagree.
  for (const auto& [txid, hazards] : driver_.hazards()) {
    if (seen.count(txid)) continue;
    proto::TxnInfo t;
    t.txid = txid;
    t.state = "hazard";
    const TxnTable::Entry* e = table_.Find(txid);
    t.outcome = e != nullptr ? e->outcome : hazards.front().decided;
    std::vector<std::string> text;
    for (const HeuristicHazard& h : hazards) {
      text.push_back(h.ToString());
      t.participants.push_back(h.participant);
    }
    t.__set_hazards(std::move(text));
    t.age_ms = (now - hazards.front().at) / kMillis;
    if (keep(t)) out.txns.push_back(std::move(t));
  }
  return out;
}

}  // namespace txc::coord
