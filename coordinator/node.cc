#include "coordinator/node.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "common/crash_point.h"
#include "common/log.h"
#include "common/server_memory.h"
#include "common/status_proto.h"
#include "protocol/validate.h"

namespace txc::coord {

namespace {

// Agents come back after a restart within a second or so: reconnect fast, so
// PREPARE and COMMIT reach them soon after.
rpc::ChannelOptions PeerChannelOptions(const TlsConfig& tls) {
  rpc::ChannelOptions o;
  o.backoff_max = 200 * kMillis;
  o.tls = tls;
  return o;
}

rpc::ServerOptions Serving(const NodeOptions& node) {
  rpc::ServerOptions o;
  o.tls = node.tls;
  o.idle_timeout = node.rpc_idle_timeout;
  o.max_connections_per_peer = node.rpc_max_connections_per_peer;
  o.authz = &authz::CoordinatorTable();
  return o;
}

}  // namespace

CoordinatorNode::CoordinatorNode(boost::asio::io_context& io, NodeOptions options)
    : io_(io),
      options_(std::move(options)),
      server_(io, Serving(options_)),
      pool_(io, PeerChannelOptions(options_.tls)),
      tick_timer_(io),
      paxos_timer_(io) {}

CoordinatorNode::~CoordinatorNode() { Stop(); }

template <class Req, class Resp>
void CoordinatorNode::Serve(const std::string& method,
                            NodeEffects (NodeCore::*in)(uint64_t, const Req&, Micros)) {
  // Commit latency: from the Commit or Submit request to its decided answer.
  bool timed = method == "Commit" || method == "Submit";
  server_.Handle<Req, Resp>(method, [this, in, timed](Req req, rpc::RpcServer::Reply<Resp> reply) {
    if (Status bad = validate::Check(req); !bad.ok()) return reply(validate::Refusal<Resp>(bad));
    uint64_t token = next_token_++;
    pending_.emplace(token, [this, timed, started = SteadyNowMicros(),
                             reply = std::move(reply)](ClientResponse r) {
      if (timed) ObserveReply(r, started);
      reply(std::get<Resp>(std::move(r)));
    });
    Apply((core_.get()->*in)(token, req, SteadyNowMicros()));
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

  Serve<proto::BeginRequest, proto::BeginResponse>("Begin", &NodeCore::OnBegin);
  Serve<proto::CommitRequest, proto::CommitResponse>("Commit", &NodeCore::OnCommit);
  Serve<proto::SubmitRequest, proto::CommitResponse>("Submit", &NodeCore::OnSubmit);
  Serve<proto::AbortRequest, proto::CommitResponse>("Abort", &NodeCore::OnAbort);
  Serve<proto::OutcomeRequest, proto::OutcomeResponse>("Outcome", &NodeCore::OnOutcome);
  Serve<proto::ResolveRequest, proto::CommitResponse>("Resolve", &NodeCore::OnResolve);
  Serve<proto::ForgetParticipantRequest, proto::CommitResponse>("ForgetParticipant",
                                                                &NodeCore::OnForgetParticipant);
  server_.Handle<proto::StatusRequest, proto::StatusResponse>(
      "Status", [this](proto::StatusRequest, rpc::RpcServer::Reply<proto::StatusResponse> reply) {
        reply(StatusNow());
      });
  server_.Handle<proto::ListTxnsRequest, proto::ListTxnsResponse>(
      "ListTxns",
      [this](proto::ListTxnsRequest req, rpc::RpcServer::Reply<proto::ListTxnsResponse> reply) {
        if (Status bad = validate::Check(req); !bad.ok()) {
          return reply(validate::Refusal<proto::ListTxnsResponse>(bad));
        }
        reply(ListTxns(req));
      });
  server_.Handle<proto::RetryTxnsRequest, proto::RetryTxnsResponse>(
      "RetryTxns",
      [this](proto::RetryTxnsRequest req, rpc::RpcServer::Reply<proto::RetryTxnsResponse> reply) {
        if (Status bad = validate::Check(req); !bad.ok()) {
          return reply(validate::Refusal<proto::RetryTxnsResponse>(bad));
        }
        proto::RetryTxnsResponse r;
        if (!core_->driver().serving()) {
          std::string leader = core_->LeaderAddress();
          r.status = ToProto(leader.empty()
                                 ? Status::Unavailable("this replica is not serving (no leader, or recovering); try again")
                                 : Status::NotLeader("not the leader; ask " + leader));
          if (!leader.empty()) r.status.__set_leader_hint(leader);
          return reply(std::move(r));
        }
        std::optional<TxId> txid;
        if (req.__isset.txid) txid = req.txid;
        size_t retried = 0;
        Apply(core_->OnRetry(txid, &retried, SteadyNowMicros()));
        Logger("coord")->warn("operator retry of {}: {} transaction(s) resent",
                              txid ? ToString(*txid) : std::string("every undelivered transaction"),
                              retried);
        r.status = ToProto(Status::Ok());
        r.retried = static_cast<int32_t>(retried);
        reply(std::move(r));
      });

  server_.Handle<proto::LogBenchAppendRequest, proto::LogBenchAppendResponse>(
      "Append", [this](proto::LogBenchAppendRequest req,
                       rpc::RpcServer::Reply<proto::LogBenchAppendResponse> reply) {
        OnAppend(std::move(req), std::move(reply));
      });

  RegisterMetrics();
  NodeCoreOptions co;
  co.driver = options_.driver;
  co.tick = options_.tick;
  co.snapshot_every = options_.snapshot_every;
  co.describe_applied = Logger("coord")->should_log(spdlog::level::debug);
  if (options_.peers.size() > 1) {
    PaxosLogOptions po;
    po.self_id = options_.replica_id;
    po.peers = options_.peers;
    po.path = options_.data_dir + "/paxos.log";
    po.unsafe_no_sync = options_.unsafe_no_sync;
    po.election_max = options_.election_max;
    // Taken as the peers' idle timeout too; a peer with a shorter one closes
    // our connection now and then, which costs a reconnect, not an election.
    po.call_at_least_every = std::min(po.call_at_least_every, options_.rpc_idle_timeout / 3);
    po.write_latency = log_write_;
    po.tls = options_.tls;
    paxos_ = std::make_unique<PaxosLog>(io_, &server_, po);
    auto recovered = paxos_->Recover();
    if (!recovered.ok()) return recovered.status();
    co.self_id = options_.replica_id;
    for (const auto& [id, addr] : options_.peers) co.members.push_back(id);
    co.addresses = options_.peers;
    co.paxos.heartbeat = options_.heartbeat;
    co.paxos.election_min = options_.election_min;
    co.paxos.election_max = options_.election_max;
    co.paxos.seed =
        static_cast<uint64_t>(SteadyNowMicros()) * 31 + static_cast<uint64_t>(options_.replica_id);
    co.paxos_tick = options_.tick;
    co.recovered = std::move(recovered.value());
    core_ = std::make_unique<NodeCore>(std::move(co));
    if (!core_->startup_status().ok()) {
      return Status(core_->startup_status().code(),
                    "the acceptor's snapshot does not restore: " + core_->startup_status().message());
    }
    PaxosLog::Hooks hooks;
    hooks.persisted = [this](uint64_t token) {
      if (!stopped_) Apply(core_->OnPersisted(token, SteadyNowMicros()));
    };
    hooks.message = [this](const paxos::Message& m) {
      if (!stopped_) Apply(core_->OnPeerMessage(m, SteadyNowMicros()));
    };
    hooks.peer_gone = [this](int id) {
      if (!stopped_) Apply(core_->OnPeerGone(id, SteadyNowMicros()));
    };
    hooks.failed = [this](const Status& why) {
      if (stopped_) return;
      storage_failed_ = true;
      Apply(core_->OnLogFailed({}, why, SteadyNowMicros()));
    };
    TXC_RETURN_IF_ERROR(paxos_->Start(std::move(hooks)));
  } else {
    core_ = std::make_unique<NodeCore>(std::move(co));
    LocalLogOptions lo;
    lo.path = options_.data_dir + "/coord.log";
    lo.unsafe_no_sync = options_.unsafe_no_sync;
    lo.write_latency = log_write_;
    local_ = std::make_unique<LocalLog>(io_, lo);
    LocalLog::Hooks hooks;
    hooks.durable = [this](uint64_t index, const std::vector<proto::Command>& cmds) {
      if (!stopped_) Apply(core_->OnChosen(index, cmds, SteadyNowMicros()));
    };
    hooks.epoch_durable = [this](int64_t epoch) {
      if (!stopped_) Apply(core_->Lead(epoch, SteadyNowMicros()));
    };
    hooks.failed = [this](const std::vector<proto::Command>& cmds, const Status& why) {
      if (stopped_) return;
      if (why.code() == Status::kStorageFailed) storage_failed_ = true;
      Apply(core_->OnLogFailed(cmds, why, SteadyNowMicros()));
    };
    TXC_RETURN_IF_ERROR(local_->Start(core_.get(), std::move(hooks)));
  }
  TXC_RETURN_IF_ERROR(server_.Listen(options_.listen));
  if (!options_.metrics_listen.empty()) {
    metrics_server_ = std::make_unique<metrics::MetricsServer>(io_, &metrics_);
    TXC_RETURN_IF_ERROR(metrics_server_->Listen(options_.metrics_listen));
  }
  log->info("listening on {} replica={} replicas={} data={} allocator={}", options_.listen,
            options_.replica_id, std::max<size_t>(1, options_.peers.size()), options_.data_dir,
            AllocatorName());
  Apply(core_->Start(SteadyNowMicros()));
  return Status::Ok();
}

void CoordinatorNode::Stop() {
  if (stopped_) return;
  stopped_ = true;
  tick_timer_.cancel();
  paxos_timer_.cancel();
  server_.Stop();
  if (metrics_server_) metrics_server_->Stop();
  pool_.CloseAll();
  if (local_) local_->Stop();
  if (paxos_) paxos_->Stop();
}

uint16_t CoordinatorNode::port() const { return server_.port(); }

uint16_t CoordinatorNode::metrics_port() const {
  return metrics_server_ ? metrics_server_->port() : 0;
}

void CoordinatorNode::WakeDriver(Micros at) {
  tick_timer_.expires_after(std::chrono::microseconds(std::max<Micros>(0, at - SteadyNowMicros())));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    Apply(core_->Tick(SteadyNowMicros()));
  });
}

void CoordinatorNode::WakeReplica(Micros at) {
  paxos_timer_.expires_after(std::chrono::microseconds(std::max<Micros>(0, at - SteadyNowMicros())));
  paxos_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    Apply(core_->TickReplica(SteadyNowMicros()));
  });
}

// ------------------------------------------------------------------ effects

void CoordinatorNode::Apply(NodeEffects fx) {
  if (stopped_) return;
  if (fx.wake_driver) WakeDriver(*fx.wake_driver);
  if (fx.wake_replica) WakeReplica(*fx.wake_replica);
  if (fx.flush_proposals) {
    // Proposals of the handlers already queued share one ACCEPT and one write.
    boost::asio::post(io_, [this] {
      if (!stopped_) Apply(core_->FlushProposals(SteadyNowMicros()));
    });
  }
  if (fx.stepped_down) {
    std::string hint = core_->LeaderAddress();
    FailAppends(hint.empty() ? Status::Unavailable("no leader") : Status::NotLeader(hint));
  }
  for (NodeAction& action : fx.actions) {
    std::visit([this](auto& a) { Do(a); }, action);
    if (stopped_) return;
  }
}

void CoordinatorNode::Do(ClientReply& r) {
  auto it = pending_.find(r.token);
  if (it == pending_.end()) return;
  auto reply = std::move(it->second);
  pending_.erase(it);
  reply(std::move(r.response));
}

void CoordinatorNode::Do(ProposeAction& p) {
  if (p.refused) {
    bool appends = std::any_of(p.cmds.begin(), p.cmds.end(), [](const proto::Command& c) {
      return c.type == proto::CommandType::NOOP && !c.who.empty();
    });
    if (appends) FailAppends(Status::NotLeader("this replica does not lead"));
    return;
  }
  if (local_) local_->Append(p.index, std::move(p.bytes), std::move(p.cmds));
  // Group: the core has handed the value to its replica.
}

void CoordinatorNode::Do(ParticipantCall& c) {
  auto channel = pool_.Get(c.to.address);
  TxId txid = c.txid;
  size_t index = c.index;
  if (c.prepare) {
    channel->Call<proto::PrepareRequest, proto::PrepareResponse>(
        "Prepare", *c.prepare, options_.driver.call_timeout,
        [this, txid, index](Status s, proto::PrepareResponse r) {
          if (stopped_) return;
          Apply(core_->OnVote(txid, index, s, r, SteadyNowMicros()));
        });
  } else if (c.decide) {
    proto::DecideRequest req = *c.decide;
    channel->Call<proto::DecideRequest, proto::DecideResponse>(
        "Decide", req, options_.driver.call_timeout,
        [this, c = std::move(c)](Status s, proto::DecideResponse r) {
          if (stopped_) return;
          Apply(core_->OnDecideAnswer(c, s, r, SteadyNowMicros()));
        });
  }
}

void CoordinatorNode::Do(paxos::Persist& p) { paxos_->Persist(std::move(p)); }

void CoordinatorNode::Do(paxos::Outgoing& o) { paxos_->Send(o); }

void CoordinatorNode::Do(AppliedAction&) {}

void CoordinatorNode::Do(InstallAction& a) { paxos_->KeepSnapshot(a.index, a.image); }

void CoordinatorNode::Do(AppendedAction& a) {
  // `who` is "ID:REPLICA": only the replica that took the record answers it.
  size_t colon = a.who.find(':');
  if (colon == std::string::npos || a.who.substr(colon + 1) != std::to_string(options_.replica_id)) {
    return;
  }
  auto it = appends_.find(std::strtoull(a.who.c_str(), nullptr, 10));
  if (it == appends_.end()) return;
  proto::LogBenchAppendResponse r;
  r.slot = static_cast<int64_t>(a.index);
  it->second(std::move(r));
  appends_.erase(it);
}

void CoordinatorNode::Do(NoteAction& n) {
  if (!n.text.empty()) {
    auto log = Logger("coord");
    std::string txid = n.txid ? " txid=" + ToString(*n.txid) : "";
    if (n.level == NoteAction::kError) {
      log->error("{}{}", n.text, txid);
    } else if (n.level == NoteAction::kWarn) {
      log->warn("{}{}", n.text, txid);
    } else if (n.notable) {
      log->info("{}{}", n.text, txid);
    } else {
      log->debug("{}{}", n.text, txid);
    }
  }
  if (n.point != nullptr) CrashPoint(n.point);
}

// ------------------------------------------------------------------- txbench

void CoordinatorNode::OnAppend(proto::LogBenchAppendRequest req,
                               rpc::RpcServer::Reply<proto::LogBenchAppendResponse> reply) {
  if (!options_.serve_log_bench) {
    // A benchmark hook that writes into the decision log: nobody reaches it
    // unless the operator asked for it at start.
    return reply(validate::Refusal<proto::LogBenchAppendResponse>(Status::InvalidArgument(
        "LogBench.Append is a benchmark hook, served only by a replica started with "
        "--serve-log-bench (txbench log and probe need every replica started so)")));
  }
  if (!core_->driver().serving()) {
    proto::LogBenchAppendResponse r;
    std::string leader = core_->LeaderAddress();
    r.status.code = leader.empty() ? proto::Code::UNAVAILABLE : proto::Code::NOT_LEADER;
    r.status.message = "not the leader";
    if (!leader.empty()) r.status.__set_leader_hint(leader);
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
      Apply(core_->ProposeCommands(std::move(batch), SteadyNowMicros()));
    });
  }
  append_batch_.push_back(std::move(c));
}

void CoordinatorNode::FailAppends(const Status& why) {
  for (auto& [id, reply] : appends_) {
    proto::LogBenchAppendResponse r;
    r.status.code = ToProtoCode(why.code());
    r.status.message = why.message();
    if (why.code() == Status::kNotLeader) r.status.__set_leader_hint(why.message());
    reply(std::move(r));
  }
  appends_.clear();
}

// -------------------------------------------------------------------- views

void CoordinatorNode::Do(SnapshotAction& a) {
  if ((local_ && local_->failed()) || (paxos_ && paxos_->failed())) return;
  if (local_) local_->Compact(a.index, a.image);
  if (paxos_) paxos_->Compact(a.index, a.image);
  // The core just dropped the log's values up to the snapshot and freed the
  // image's scratch: give those pages back (common/server_memory.h).
  ReturnFreedMemory();
  Logger("coord")->info("snapshot written applied_index={} entries={}", a.index, a.entries);
}

void CoordinatorNode::Do(HeuristicHazard& h) {
  Logger("coord")->warn("heuristic hazard txid={}: {}", ToString(h.txid), h.ToString());
}

proto::StatusResponse CoordinatorNode::StatusNow() const {
  const CommitDriver& driver = core_->driver();
  const paxos::Replica* replica = core_->replica();
  proto::StatusResponse r;
  r.replica_id = options_.replica_id;
  int leader_id = 0;
  int64_t log_epoch = 0;
  if (replica != nullptr) {
    leader_id = replica->leader_id();
    log_epoch = replica->epoch();
    r.commit_index = replica->commit_index();
  } else {
    leader_id = local_->failed() ? 0 : options_.replica_id;
    log_epoch = local_->epoch();
    r.commit_index = static_cast<int64_t>(local_->commit_index());
  }
  // Only a replica that serves calls itself the leader.
  r.leader_id = leader_id == options_.replica_id && !driver.serving() ? 0 : leader_id;
  if (r.leader_id != 0) {
    auto it = options_.peers.find(r.leader_id);
    r.leader_address = it != options_.peers.end() ? it->second : options_.listen;
  }
  r.epoch = driver.serving() ? driver.epoch() : log_epoch;
  r.applied_index = static_cast<int64_t>(core_->table().applied_index());
  if (replica != nullptr) {
    auto progress = replica->progress();
    Micros now = SteadyNowMicros();
    for (const auto& [id, addr] : options_.peers) {
      proto::ReplicaInfo ri;
      ri.id = id;
      ri.address = addr;
      if (id == options_.replica_id) {
        ri.reachable = true;
        ri.applied_index = replica->applied_index();
      } else {
        auto heard = paxos_->last_heard(id);
        ri.reachable = heard && now - *heard < 2 * options_.election_max;
        auto p = progress.find(id);
        ri.applied_index = p != progress.end() ? p->second : -1;
      }
      r.replicas.push_back(ri);
    }
  } else {
    proto::ReplicaInfo self;
    self.id = options_.replica_id;
    self.address = options_.listen;
    self.reachable = true;
    self.applied_index = static_cast<int64_t>(local_->commit_index());
    r.replicas.push_back(self);
  }
  int64_t active = 0;
  for (const auto& t : driver.ActiveTxns(SteadyNowMicros())) {
    if (t.state == "active" || t.state == "voting" || t.state == "deciding") ++active;
  }
  r.active_txns = active;
  r.decided_txns = static_cast<int64_t>(core_->table().unended_count());
  r.storage_failed = storage_failed_ || (local_ && local_->failed()) || (paxos_ && paxos_->failed());
  return r;
}

proto::ListTxnsResponse CoordinatorNode::ListTxns(const proto::ListTxnsRequest& req) const {
  const TxnTable& table = core_->table();
  proto::ListTxnsResponse out;
  // The leader drives the transactions and knows their votes, retries and
  // errors: a replica that knows who leads sends the asker there. With no
  // leader known, it answers what its own table knows (decided, not ended).
  if (!core_->driver().serving()) {
    std::string leader = core_->LeaderAddress();
    if (!leader.empty()) {
      out.status = ToProto(Status::NotLeader("not the leader; ask " + leader));
      out.status.__set_leader_hint(leader);
      return out;
    }
  }
  std::string want = req.__isset.state ? req.state : "";
  Micros now = SteadyNowMicros();
  auto keep = [&](const proto::TxnInfo& t) {
    if (req.__isset.txid && !(t.txid == req.txid)) return false;
    // Txids reserved for one-shot Submits and not used yet are no
    // transactions yet: listed when asked for by state or by txid.
    if (t.state == "reserved" && want != "reserved" && !req.__isset.txid) return false;
    if (want == "hazard") return static_cast<bool>(t.__isset.hazards);
    if (want == "stuck") return t.__isset.stuck && t.stuck;
    return want.empty() || (want == "in-doubt" ? t.in_doubt : t.state == want);
  };
  std::set<TxId, TxIdLess> seen;
  for (const auto& v : core_->driver().ActiveTxns(now)) {
    proto::TxnInfo t;
    t.txid = v.txid;
    t.state = v.state;
    const TxnTable::Entry* e = table.Find(v.txid);
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
    t.in_doubt = v.state == "voting" || v.state == "deciding" || v.state == "precommitting" ||
                 v.state == "precommitted" ||
                 (v.state == "completing" && !all_acked);
    if (!v.hazards.empty()) t.__set_hazards(v.hazards);
    t.__set_stuck(v.stuck);
    if (v.decided_at > 0) t.__set_decided_age_ms((now - v.decided_at) / kMillis);
    std::vector<proto::ParticipantProgress> progress;
    for (size_t i = 0; i < v.participants.size(); ++i) {
      proto::ParticipantProgress p;
      p.resource = v.participants[i].resource;
      if (i < v.votes.size() && v.votes[i]) p.__set_vote(*v.votes[i]);
      p.acked = i < v.acked.size() && v.acked[i];
      p.refused = i < v.refused.size() && v.refused[i];
      p.attempts = i < v.attempts.size() ? static_cast<int32_t>(v.attempts[i]) : 0;
      if (i < v.last_error.size() && !v.last_error[i].empty()) p.__set_last_error(v.last_error[i]);
      progress.push_back(std::move(p));
    }
    t.__set_progress(std::move(progress));
    std::vector<proto::TxnLogEntry> log;
    for (const auto& l : v.log) {
      proto::TxnLogEntry x;
      x.command = DescribeCommand(l.command);
      x.index = static_cast<int64_t>(l.index);
      if (l.at > 0) x.__set_age_ms((now - l.at) / kMillis);
      x.reason = l.command.reason;
      x.who = l.command.who;
      log.push_back(std::move(x));
    }
    t.__set_log(std::move(log));
    seen.insert(v.txid);
    if (keep(t)) out.txns.push_back(std::move(t));
  }
  // Decided, not ended, and not being driven here (this node is not serving).
  for (const TxnTable::Entry* e : table.Unended()) {
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
  // 3PC: PRECOMMIT chosen and no decision yet, not driven here (a new leader
  // decides them committed).
  for (const TxnTable::Entry* e : table.PreCommittedUndecided()) {
    if (seen.count(e->txid)) continue;
    proto::TxnInfo t;
    t.txid = e->txid;
    t.state = "precommitted";
    t.outcome = proto::Outcome::PENDING;
    t.participants = e->participants;
    t.protocol = e->protocol;
    t.in_doubt = true;
    seen.insert(e->txid);
    if (keep(t)) out.txns.push_back(std::move(t));
  }
  // Heuristic hazards of transactions no longer driven here (an ABORT refused
  // by a branch that committed): the participants disagree.
  for (const auto& [txid, hazards] : core_->driver().hazards()) {
    if (seen.count(txid)) continue;
    proto::TxnInfo t;
    t.txid = txid;
    t.state = "hazard";
    const TxnTable::Entry* e = core_->table().Find(txid);
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
