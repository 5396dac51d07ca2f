// SimCoordinator: the simulated shell of a coordinator replica around the
// production node core (coord::NodeCore: TxnTable + CommitDriver, and in
// group mode the paxos::Replica), as coordinator/node.cc with its decision
// log is the real one. It carries out the core's effects in order: client
// replies, PREPARE/COMMIT/ABORT calls over the simulated network, proposals
// made durable on this node's disk (single replica) or the acceptor's writes
// and peer messages (group mode), and the timers. What it adds is the
// simulation's own: the trace, the checker's hooks, crash points and the
// shell-side injected bugs.
#include <algorithm>

#include "sim/cluster.h"

namespace txc::sim {

namespace {

bool IsCommitDecide(const proto::Command& c) {
  return c.type == proto::CommandType::DECIDE && c.outcome == proto::Outcome::COMMITTED;
}

}  // namespace

struct SimCoordinator::Live {
  coord::NodeCore core;
  struct Waiting {
    std::function<void(coord::ClientResponse)> reply;
    TxId txid;
    bool commit = false;  // a Commit or Submit (the early-commit-reply bug answers these)
  };
  std::map<uint64_t, Waiting> pending;
  uint64_t next_token = 1;
  // The log store failed (a write or sync): sticky, as wal/log_store.cc, until
  // the node restarts; nothing more is written.
  bool log_failed = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  explicit Live(coord::NodeCoreOptions o) : core(std::move(o)) {}
};

SimCoordinator::SimCoordinator(Cluster* cluster, int node, std::string address, int replica_id)
    : c_(cluster),
      node_(node),
      address_(std::move(address)),
      replica_id_(replica_id),
      disk_(&cluster->world(), cluster->disk_options()) {}

bool SimCoordinator::leads() const {
  return live_ && live_->core.replica() != nullptr && live_->core.replica()->is_leader();
}

SimCoordinator::~SimCoordinator() = default;

void SimCoordinator::Boot() {
  if (replica_id_ > 0) return BootReplica();
  World& w = c_->world();
  coord::NodeCoreOptions o;
  o.driver = c_->timing().driver;
  o.driver.testing_precommit_before_chosen = c_->bugs().skip_precommit_choose;  // BUG
  o.tick = c_->timing().tick;
  live_ = std::make_unique<Live>(std::move(o));
  Live* l = live_.get();
  // Recover: replay every durable record, in order (local_log.cc).
  for (const auto& [index, bytes] : log_) {
    auto cmds = coord::DecodeBatch(bytes);
    if (!cmds.ok()) {
      c_->checker().Violation("validity", nullptr,
                              "the decision log record " + std::to_string(index) +
                                  " is unreadable: " + cmds.status().message());
      continue;
    }
    c_->checker().OnApplied(node_, index, bytes);
    l->core.Replay(index, *cmds);
  }
  c_->checker().OnReplayed(node_, log_.empty() ? 0 : log_.back().first);
  w.Log(node_, "boot: replayed " + std::to_string(log_.size()) + " log records, epoch " +
                   std::to_string(l->core.table().epoch()) + ", " +
                   std::to_string(l->core.table().unended_count()) + " unended");
  // A new epoch (local_log.cc): durable before this replica leads, so no txid
  // is ever allocated twice across restarts. Then the core proposes the
  // epoch's marker and serves once that is applied.
  int64_t epoch = epoch_meta_ + 1;
  disk_.Write([this, epoch] { epoch_meta_ = epoch; });
  auto alive = l->alive;
  disk_.Sync(
      [this, l, alive, epoch] {
        if (!*alive) return;
        Apply(l, l->core.Lead(epoch, c_->world().now()));
      },
      [this, l, alive](const Status& why) {
        if (*alive) LogFailed(l, {}, why);
      });
  Apply(l, l->core.Start(w.now()));
}

void SimCoordinator::Crash() {
  if (!live_) return;
  *live_->alive = false;
  c_->world().Bury(std::shared_ptr<Live>(std::move(live_)));
  disk_.Crash();
}

void SimCoordinator::WakeDriver(Live* l, Micros at) {
  auto alive = l->alive;
  c_->world().After(at - c_->world().now(), [this, l, alive] {
    if (!*alive) return;
    Apply(l, l->core.Tick(c_->world().now()));
  });
}

void SimCoordinator::WakeReplica(Live* l, Micros at) {
  auto alive = l->alive;
  c_->world().After(at - c_->world().now(), [this, l, alive] {
    if (!*alive) return;
    Apply(l, l->core.TickReplica(c_->world().now()));
  });
}

bool SimCoordinator::Idle(std::string* why) const {
  if (!live_) {
    *why = "the coordinator is down";
    return false;
  }
  const coord::CommitDriver& driver = live_->core.driver();
  if (!driver.serving()) {
    *why = "the coordinator is not serving";
    return false;
  }
  if (driver.active_count() > 0) {
    auto txns = driver.ActiveTxns(c_->world().now());
    *why = "the coordinator still drives " + std::to_string(txns.size()) + " transaction(s), e.g. " +
           ToString(txns.front().txid) + " (" + txns.front().state + ")";
    return false;
  }
  if (live_->core.table().unended_count() > 0) {
    *why = "the coordinator's table has " + std::to_string(live_->core.table().unended_count()) +
           " decided, un-ended transaction(s)";
    return false;
  }
  return true;
}

// ------------------------------------------------------------- client RPCs

template <class Req, class Resp>
void SimCoordinator::Serve(const Req& req, std::function<void(Resp)> reply, const TxId& txid,
                           bool commit,
                           coord::NodeEffects (coord::NodeCore::*in)(uint64_t, const Req&, Micros)) {
  if (!live_) return;  // down: the network refuses before this
  Live* l = live_.get();
  uint64_t token = l->next_token++;
  Live::Waiting w;
  w.reply = [reply = std::move(reply)](coord::ClientResponse r) { reply(std::get<Resp>(std::move(r))); };
  w.txid = txid;
  w.commit = commit;
  l->pending.emplace(token, std::move(w));
  Apply(l, (l->core.*in)(token, req, c_->world().now()));
}

void SimCoordinator::Begin(const proto::BeginRequest& req,
                           std::function<void(proto::BeginResponse)> reply) {
  Serve<proto::BeginRequest, proto::BeginResponse>(req, std::move(reply), TxId(), false,
                                                   &coord::NodeCore::OnBegin);
}

bool SimCoordinator::Forgotten(const TxId& txid) const {
  if (!live_ || !live_->core.driver().serving()) return false;
  const coord::TxnTable& t = live_->core.table();
  return t.Find(txid) == nullptr && t.ForgottenOutcome(txid) != proto::Outcome::UNKNOWN;
}

void SimCoordinator::Commit(const proto::CommitRequest& req,
                            std::function<void(proto::CommitResponse)> reply) {
  if (Forgotten(req.txid)) ++c_->injected().retention;
  c_->world().Log(node_, &req.txid, "COMMIT request (" + std::to_string(req.participants.size()) +
                                        " participants)");
  Serve<proto::CommitRequest, proto::CommitResponse>(req, std::move(reply), req.txid, true,
                                                     &coord::NodeCore::OnCommit);
}

void SimCoordinator::Submit(const proto::SubmitRequest& req,
                            std::function<void(proto::CommitResponse)> reply) {
  c_->world().Log(node_, &req.txid, "SUBMIT request (" + std::to_string(req.branches.size()) +
                                        " branches)");
  Serve<proto::SubmitRequest, proto::CommitResponse>(req, std::move(reply), req.txid, true,
                                                     &coord::NodeCore::OnSubmit);
}

void SimCoordinator::Abort(const proto::AbortRequest& req,
                           std::function<void(proto::CommitResponse)> reply) {
  c_->world().Log(node_, &req.txid, "ABORT request");
  Serve<proto::AbortRequest, proto::CommitResponse>(req, std::move(reply), req.txid, false,
                                                    &coord::NodeCore::OnAbort);
}

void SimCoordinator::Outcome(const proto::OutcomeRequest& req,
                             std::function<void(proto::OutcomeResponse)> reply) {
  if (Forgotten(req.txid)) ++c_->injected().retention;
  Serve<proto::OutcomeRequest, proto::OutcomeResponse>(req, std::move(reply), req.txid, false,
                                                       &coord::NodeCore::OnOutcome);
}

// ------------------------------------------------------------------ effects

void SimCoordinator::OnDurable(Live* l, uint64_t index, const std::vector<proto::Command>& cmds,
                               const std::string& bytes) {
  c_->checker().OnApplied(node_, index, bytes);
  Apply(l, l->core.OnChosen(index, cmds, c_->world().now()));
}

void SimCoordinator::Apply(Live* l, coord::NodeEffects fx) {
  if (!*l->alive) return;
  if (fx.wake_driver) WakeDriver(l, *fx.wake_driver);
  if (fx.wake_replica) WakeReplica(l, *fx.wake_replica);
  if (fx.flush_proposals) {
    // As the real node posts it: behind every event already due now, so the
    // proposals of the messages delivered at this instant share one slot.
    auto alive = l->alive;
    c_->world().After(0, [this, l, alive] {
      if (!*alive) return;
      Apply(l, l->core.FlushProposals(c_->world().now()));
    });
  }
  std::vector<coord::NodeEffects> later;
  for (coord::NodeAction& action : fx.actions) {
    bool go_on = std::visit([&](auto& a) { return Do(l, a, &later); }, action);
    if (!go_on || !*l->alive) return;  // crashed right here
  }
  for (coord::NodeEffects& more : later) Apply(l, std::move(more));
}

bool SimCoordinator::Do(Live* l, coord::ClientReply& r, std::vector<coord::NodeEffects>*) {
  World& w = c_->world();
  auto it = l->pending.find(r.token);
  if (it == l->pending.end()) return true;  // answered early (bug), or the client is gone
  auto reply = std::move(it->second.reply);
  TxId asked = it->second.txid;
  l->pending.erase(it);
  if (c_->bugs().forgotten_commit_as_abort && asked.seq != 0) {
    // BUG: the old table: a txid it holds no entry for is presumed aborted,
    // even one that committed, ended and was forgotten.
    const coord::TxnTable& t = l->core.table();
    proto::Outcome::type was = t.ForgottenOutcome(asked);
    if (t.Find(asked) == nullptr &&
        (was == proto::Outcome::COMMITTED || was == proto::Outcome::FORGOTTEN)) {
      if (auto* cr = std::get_if<proto::CommitResponse>(&r.response)) {
        cr->outcome = proto::Outcome::ABORTED;
        cr->status = proto::Status();
      } else if (auto* orr = std::get_if<proto::OutcomeResponse>(&r.response)) {
        orr->outcome = proto::Outcome::ABORTED;
        orr->status = proto::Status();
      }
    }
  }
  if (auto* cr = std::get_if<proto::CommitResponse>(&r.response)) {
    w.Log(node_, &cr->txid,
          std::string("reply ") + OutcomeName(cr->outcome) +
              (cr->status.code == proto::Code::OK ? "" : " status=" + cr->status.message));
  } else if (auto* br = std::get_if<proto::BeginResponse>(&r.response)) {
    if (br->status.code == proto::Code::OK) w.Log(node_, &br->txid, "begun");
  }
  reply(std::move(r.response));
  return true;
}

bool SimCoordinator::Do(Live* l, coord::ProposeAction& p, std::vector<coord::NodeEffects>*) {
  World& w = c_->world();
  if (c_->bugs().early_commit_reply) {
    // BUG: the client hears COMMITTED as soon as the DECIDE is proposed.
    for (const proto::Command& cmd : p.cmds) {
      if (!IsCommitDecide(cmd)) continue;
      for (auto it = l->pending.begin(); it != l->pending.end();) {
        if (it->second.commit && it->second.txid == cmd.txid) {
          proto::CommitResponse early;
          early.txid = cmd.txid;
          early.outcome = proto::Outcome::COMMITTED;
          w.Log(node_, &cmd.txid, "reply committed (early: DECIDE not durable yet)");
          auto reply = std::move(it->second.reply);
          it = l->pending.erase(it);
          reply(early);
        } else {
          ++it;
        }
      }
    }
  }
  if (p.refused) return true;
  c_->checker().OnProposed(p.bytes);
  bool group = l->core.group();
  std::string what = group ? "propose " : "propose slot " + std::to_string(p.index) + " ";
  for (const proto::Command& cmd : p.cmds) {
    if (cmd.type == proto::CommandType::EPOCH || cmd.type == proto::CommandType::NOOP) {
      w.Log(node_, what + coord::DescribeCommand(cmd));
    } else {
      w.Log(node_, &cmd.txid, what + coord::DescribeCommand(cmd));
    }
  }
  if (group) return true;  // the core handed it to the replica
  uint64_t index = p.index;
  std::string bytes = p.bytes;
  auto alive = l->alive;
  if (l->log_failed) {
    // As LocalLog::Append after a failure: refused at once.
    std::vector<proto::Command> cmds = std::move(p.cmds);
    w.After(0, [this, l, alive, cmds] {
      if (*alive) {
        Apply(l, l->core.OnLogFailed(cmds, Status::StorageFailed("the decision log refused an earlier write"),
                                     c_->world().now()));
      }
    });
    return true;
  }
  disk_.Write([this, index, bytes] { log_.emplace_back(index, bytes); });
  std::vector<proto::Command> cmds = p.cmds;
  disk_.Sync(
      [this, l, alive, index, cmds = std::move(p.cmds), bytes]() {
        if (*alive) OnDurable(l, index, cmds, bytes);
      },
      [this, l, alive, cmds](const Status& why) {
        if (*alive) LogFailed(l, cmds, why);
      });
  return true;
}

bool SimCoordinator::Do(Live* l, coord::ParticipantCall& call, std::vector<coord::NodeEffects>*) {
  World& w = c_->world();
  Network& net = c_->net();
  auto alive = l->alive;
  SimAgent* agent = c_->AgentAt(call.to.address);
  TxId txid = call.txid;
  size_t index = call.index;
  const Micros timeout = c_->timing().driver.call_timeout;
  if (call.prepare) {
    w.Log(node_, &txid, "PREPARE -> " + call.to.resource + "@" + call.to.address +
                            (call.prepare->__isset.work ? " (with work)" : ""));
    if (agent == nullptr) {
      w.After(1, [this, l, alive, txid, index] {
        if (!*alive) return;
        Apply(l, l->core.OnVote(txid, index, Status::Unavailable("no such agent"),
                                proto::PrepareResponse(), c_->world().now()));
      });
      return true;
    }
    proto::PrepareRequest req = std::move(*call.prepare);
    net.Call<proto::PrepareResponse>(
        node_, agent->node(), timeout, true,
        [agent, req](std::function<void(proto::PrepareResponse)> reply) {
          agent->Prepare(req, std::move(reply));
        },
        [this, l, alive, txid, index](Status s, proto::PrepareResponse r) {
          if (!*alive) return;
          c_->world().Log(node_, &txid,
                          "vote " + std::to_string(index) + ": " +
                              (s.ok() ? std::string(VoteName(r.vote)) +
                                            (r.reason.empty() ? "" : " (" + r.reason + ")")
                                      : s.ToString()));
          Apply(l, l->core.OnVote(txid, index, s, r, c_->world().now()));
        });
    if (c_->OnPrepareSent(node_, txid, call.to.address, req)) return false;
  } else if (call.decide) {
    bool want_ack = call.want_ack;
    bool commit = call.decide->outcome == proto::Outcome::COMMITTED;
    bool precommit = call.decide->__isset.precommit && call.decide->precommit;
    if (precommit && c_->scenario_partition_pending()) {
      for (const auto& v : l->core.driver().ActiveTxns(w.now())) {
        if (v.txid == txid) c_->OnPreCommitSend(txid, call.to.address, v.participants);
      }
    }
    w.Log(node_, &txid, std::string(precommit ? "PRE_COMMIT" : commit ? "COMMIT" : "ABORT") +
                            " -> " + call.to.resource + "@" + call.to.address);
    coord::ParticipantCall sent = call;  // OnDecideAnswer hears every answer
    if (agent == nullptr) {
      if (!want_ack) return true;
      w.After(1, [this, l, alive, sent] {
        if (!*alive) return;
        Apply(l, l->core.OnDecideAnswer(sent, Status::Unavailable("no such agent"),
                                        proto::DecideResponse(), c_->world().now()));
      });
      return true;
    }
    proto::DecideRequest req = *call.decide;
    net.Call<proto::DecideResponse>(
        node_, agent->node(), timeout, true,
        [agent, req](std::function<void(proto::DecideResponse)> reply) {
          agent->Decide(req, std::move(reply));
        },
        [this, l, alive, txid, index, want_ack, sent](Status s, proto::DecideResponse r) {
          if (!*alive) return;
          if (want_ack) {
            Status ack = coord::NodeCore::AckStatus(s, r);
            c_->world().Log(node_, &txid,
                            "ack " + std::to_string(index) + ": " + (ack.ok() ? "ok" : ack.ToString()));
          }
          Apply(l, l->core.OnDecideAnswer(sent, s, r, c_->world().now()));
        });
  }
  return true;
}

bool SimCoordinator::Do(Live* l, paxos::Persist& p, std::vector<coord::NodeEffects>* later) {
  if (l->log_failed) return true;  // PaxosLog::Persist after a failure: nothing is written
  uint64_t token = p.token;
  bool joined = p.joined;
  bool accept_only = !p.promised && !p.entries.empty();
  disk_.Write([this, p = std::move(p)] {
    if (p.promised) acceptor_.promised = *p.promised;
    if (p.joined) acceptor_.joining = false;
    for (const paxos::Entry& e : p.entries) acceptor_.accepted[e.slot] = e;
  });
  if (accept_only && c_->bugs().ack_before_durable_accept) {
    // BUG: the accepted values count as durable at once (no sync asked for;
    // they become durable with whatever sync comes next).
    later->push_back(l->core.OnPersisted(token, c_->world().now()));
    return true;
  }
  auto alive = l->alive;
  disk_.Sync(
      [this, l, alive, token, joined] {
        if (!*alive || l->log_failed) return;
        if (joined) c_->world().Log(node_, "rejoined the group (durable): its acceptor votes again");
        Apply(l, l->core.OnPersisted(token, c_->world().now()));
      },
      [this, l, alive](const Status& why) {
        if (*alive) LogFailed(l, {}, why);
      });
  return true;
}

bool SimCoordinator::Do(Live*, paxos::Outgoing& o, std::vector<coord::NodeEffects>*) {
  if (o.to <= 0 || o.to > c_->replicas() || o.to == replica_id_) return true;
  SimCoordinator* peer = c_->CoordinatorById(o.to);
  c_->OnPeerSend(o.msg);
  c_->net().Send(node_, peer->node(), true, [peer, msg = std::move(o.msg)] { peer->DeliverPeer(msg); });
  return true;
}

bool SimCoordinator::Do(Live*, coord::AppliedAction& a, std::vector<coord::NodeEffects>*) {
  c_->checker().OnApplied(node_, a.index, a.value);
  return true;
}

bool SimCoordinator::Do(Live* l, coord::InstallAction& a, std::vector<coord::NodeEffects>*) {
  // The core restored its table from the leader's snapshot: kept as this
  // replica's own snapshot (paxos_log.cc), durable with the next sync;
  // accepted entries at or below it are dropped with it.
  ++c_->injected().snapshot_install;
  int64_t index = static_cast<int64_t>(a.index);
  if (!l->log_failed) disk_.Write([this, index, image = a.image] { KeepSnapshot(index, image); });
  c_->checker().OnInstalled(node_, a.index, a.image);
  return true;
}

// As paxos_log.cc's Compact: the snapshot the core took every
// Timing::snapshot_every applied slots replaces, on disk, the accepted
// entries it covers, durable with the next sync.
bool SimCoordinator::Do(Live* l, coord::SnapshotAction& a, std::vector<coord::NodeEffects>*) {
  c_->checker().OnSnapshot(node_, a.index, *a.image);
  c_->world().Log(node_, "snapshot at slot " + std::to_string(a.index) + " (" +
                             std::to_string(a.entries) + " transactions); log compacted");
  int64_t index = static_cast<int64_t>(a.index);
  if (l->log_failed) return true;
  disk_.Write([this, index, image = std::move(a.image)] { KeepSnapshot(index, *image); });
  return true;
}

// A sync of this node's log failed (an injected disk_error or disk_full). As
// the real shells: LocalLog reports every failed append with its commands
// (and the epoch write with none); PaxosLog reports its first failure, after
// which the store is dead. The core stops serving (and, in a group, silences
// its replica: the others elect); the cluster has the operator restart the
// node later.
void SimCoordinator::LogFailed(Live* l, const std::vector<proto::Command>& cmds, const Status& why) {
  bool first = !l->log_failed;
  l->log_failed = true;
  Status failure = Status::StorageFailed(why.message());
  if (first) {
    c_->world().LogFault(node_, "DISK FAILED: " + why.message() +
                                    "; the log store refuses every write until the node restarts");
    c_->OnDiskFailed(node_, disk_full_);
  }
  if (l->core.group() && !first) return;
  Apply(l, l->core.OnLogFailed(cmds, failure, c_->world().now()));
}

void SimCoordinator::BreakDisk(bool full, bool partial) {
  disk_full_ = full;
  disk_.Break(full ? Status::StorageFailed("ENOSPC: no space left on device")
                   : Status::StorageFailed(std::string("EIO: input/output error at ") +
                                           (partial ? "fsync" : "write")),
              partial);
}

void SimCoordinator::Wipe(bool joining) {
  acceptor_ = paxos::DurableState();
  acceptor_.joining = joining;
  log_.clear();
  epoch_meta_ = 0;
}

bool SimCoordinator::log_failed() const { return live_ && live_->log_failed; }

bool SimCoordinator::joining() const {
  return live_ && live_->core.replica() != nullptr && live_->core.replica()->joining();
}

void SimCoordinator::KeepSnapshot(int64_t index, const std::string& image) {
  if (index <= acceptor_.snapshot_index) return;
  acceptor_.snapshot_index = index;
  acceptor_.snapshot = image;
  acceptor_.accepted.erase(acceptor_.accepted.begin(), acceptor_.accepted.upper_bound(index));
}

bool SimCoordinator::Do(Live*, coord::HeuristicHazard& h, std::vector<coord::NodeEffects>*) {
  c_->world().Log(node_, &h.txid, "HEURISTIC HAZARD: " + h.ToString());
  c_->checker().OnHeuristicHazard(h.txid, h.ToString());
  return true;
}

bool SimCoordinator::Do(Live*, coord::AppendedAction&, std::vector<coord::NodeEffects>*) {
  return true;  // txbench's records; the simulated clients send none
}

bool SimCoordinator::Do(Live*, coord::NoteAction& n, std::vector<coord::NodeEffects>*) {
  if (!n.text.empty()) {
    if (n.level == coord::NoteAction::kError) {
      c_->checker().Violation("validity", nullptr, n.text);
    } else if (n.txid) {
      c_->world().Log(node_, &*n.txid, n.text);
    } else {
      c_->world().Log(node_, n.text);
    }
  }
  return n.point == nullptr || !c_->CrashPoint(node_, n.point);
}

void SimCoordinator::OperatorRetry() {
  if (live_ == nullptr) return;
  size_t retried = 0;
  Apply(live_.get(), live_->core.OnRetry(std::nullopt, &retried, c_->world().now()));
  if (retried > 0) {
    c_->world().Log(node_, "operator: retry now resent " + std::to_string(retried) +
                               " undelivered decision(s)");
  }
  // And force-aborts (txadmin txn resolve --abort) every transaction this
  // leader has driven for longer than kResolveAfter without a decision: the
  // RESOLVE races the transaction's own votes, decision and phase 2. The
  // answer ABORTED is a claim the checker holds the group to.
  constexpr Micros kResolveAfter = 500 * kMillis;
  if (live_ == nullptr || !live_->core.driver().serving()) return;
  Micros now = c_->world().now();
  for (const auto& v : live_->core.driver().ActiveTxns(now)) {
    if ((v.state != "active" && v.state != "voting") || now - v.began < kResolveAfter) continue;
    proto::ResolveRequest req;
    req.txid = v.txid;
    req.outcome = proto::Outcome::ABORTED;
    req.reason = "txsim: undecided after " + std::to_string((now - v.began) / kMillis) + " ms";
    req.who = "txsim";
    c_->world().Log(node_, &v.txid, "operator: resolve --abort (" + v.state + ")");
    ++c_->injected().resolve;
    TxId txid = v.txid;
    Serve<proto::ResolveRequest, proto::CommitResponse>(
        req,
        [this, txid](proto::CommitResponse r) {
          c_->world().Log(node_, &txid,
                          "operator: resolve answered " + std::string(OutcomeName(r.outcome)) +
                              (r.status.code == proto::Code::OK ? "" : " (" + r.status.message + ")"));
          if (r.status.code == proto::Code::OK && r.outcome == proto::Outcome::ABORTED) {
            c_->checker().OnToldAborted(txid);
          }
        },
        txid, false, &coord::NodeCore::OnResolve);
  }
}

// -------------------------------------------------------------- group mode

void SimCoordinator::BootReplica() {
  World& w = c_->world();
  const Timing& t = c_->timing();
  coord::NodeCoreOptions o;
  o.driver = t.driver;
  o.tick = t.tick;
  o.self_id = replica_id_;
  for (int id = 1; id <= c_->replicas(); ++id) {
    o.members.push_back(id);
    o.addresses[id] = c_->CoordinatorById(id)->address();
  }
  o.paxos.heartbeat = t.paxos_heartbeat;
  o.paxos.election_min = t.paxos_election_min;
  o.paxos.election_max = t.paxos_election_max;
  o.paxos.seed = w.rng().Next();  // the core's jitter, from the world's RNG
  o.paxos_tick = t.paxos_tick;
  o.paxos.snapshot_chunk = t.paxos_snapshot_chunk;  // images travel in several chunks
  o.snapshot_every = t.snapshot_every;
  // BUG dead-leader-heartbeats: the node stops serving on a failed log, but
  // its replica core keeps leading (the test-only seam of NodeCoreOptions).
  o.testing_keep_replica_on_log_failure = c_->bugs().dead_leader_heartbeats;
  // BUG persist-before-install: a turn's persists go to the log before the
  // snapshot installed in it.
  o.testing_persist_before_install = c_->bugs().persist_before_install;
  // BUG 3pc-skip-precommit-choose: PRE_COMMIT before PRECOMMIT is chosen.
  o.driver.testing_precommit_before_chosen = c_->bugs().skip_precommit_choose;
  // The acceptor's durable image, as paxos_log.cc reads it back from its
  // store: the snapshot (if any) restores the table in the core, and only
  // accepted entries above it are read; the core re-applies every chosen slot
  // after it as it learns the commit index.
  paxos::DurableState ds;
  ds.promised = acceptor_.promised;
  ds.snapshot_index = acceptor_.snapshot_index;
  ds.snapshot = acceptor_.snapshot;
  ds.joining = acceptor_.joining;
  ds.accepted.insert(acceptor_.accepted.upper_bound(acceptor_.snapshot_index),
                     acceptor_.accepted.end());
  const size_t accepted_on_disk = ds.accepted.size();
  o.recovered = std::move(ds);
  if (c_->bugs().resurrected_decide) {
    // BUG: a replica without the table's guard: a DECIDE of an epoch that
    // ended before it was chosen is applied (as an operator's RESOLVE, which
    // the guard lets through).
    o.before_apply = [](const coord::TxnTable& table, proto::Command* cmd) {
      if (cmd->type == proto::CommandType::DECIDE && cmd->txid.epoch < table.marker_epoch() &&
          table.Find(cmd->txid) == nullptr) {
        cmd->type = proto::CommandType::RESOLVE;
      }
    };
  }
  live_ = std::make_unique<Live>(std::move(o));
  Live* l = live_.get();
  if (!l->core.startup_status().ok()) {
    c_->checker().Violation("validity", nullptr,
                            "the durable snapshot is unreadable: " + l->core.startup_status().ToString());
  }
  if (acceptor_.snapshot_index > 0) {
    c_->checker().OnRestored(node_, static_cast<uint64_t>(acceptor_.snapshot_index), acceptor_.snapshot);
  }
  c_->checker().OnProposed("");  // the core's own gap-filling no-op
  w.Log(node_, "boot replica " + std::to_string(replica_id_) + ": promised " +
                   std::to_string(acceptor_.promised.round) + "." +
                   std::to_string(acceptor_.promised.replica) + ", snapshot at slot " +
                   std::to_string(acceptor_.snapshot_index) + ", " +
                   std::to_string(accepted_on_disk) + " accepted entries on disk" +
                   (acceptor_.joining ? "; joining (started on an empty data directory)" : ""));
  Apply(l, l->core.Start(w.now()));
}

void SimCoordinator::DeliverPeerGone(int id) {
  if (!live_ || !live_->core.group()) return;  // down: lost
  Live* l = live_.get();
  Apply(l, l->core.OnPeerGone(id, c_->world().now()));
}

void SimCoordinator::DeliverPeer(const paxos::Message& m) {
  if (!live_ || !live_->core.group()) return;  // down: lost
  Live* l = live_.get();
  Apply(l, l->core.OnPeerMessage(m, c_->world().now()));
}

}  // namespace txc::sim
