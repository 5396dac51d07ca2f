// SimCoordinator: the simulated shell of a coordinator replica. It drives the
// production CommitDriver and TxnTable exactly as coordinator/node.cc does:
// a proposal is appended to the decision log and synced; once durable it is
// applied to the table and handed to the driver (OnApplied); effects are
// flushed after every input.
//
// Group mode (replica_id > 0): the decision log is the production
// paxos::Replica, shelled as coordinator/paxos_log.cc does (acceptor state on
// this node's disk, OnPersisted only after the sync, peer messages over the
// simulated network), and the node logic of coordinator/node.cc around it.
#include <algorithm>

#include "sim/cluster.h"

namespace txc::sim {

namespace {

Status FromProto(const proto::Status& s) {
  return Status(static_cast<Status::Code>(s.code), s.message);
}

bool IsCommitDecide(const proto::Command& c) {
  return c.type == proto::CommandType::DECIDE && c.outcome == proto::Outcome::COMMITTED;
}

}  // namespace

struct SimCoordinator::Live {
  coord::TxnTable table;
  coord::CommitDriver driver;
  struct Waiting {
    std::function<void(coord::ClientResponse)> reply;
    TxId txid;
    bool commit = false;  // a Commit or Submit (the early-commit-reply bug answers these)
  };
  std::map<uint64_t, Waiting> pending;
  uint64_t next_token = 1;
  uint64_t next_index = 1;
  int64_t lead_epoch = 0;  // the epoch this incarnation leads, once its meta is durable
  std::unique_ptr<paxos::Replica> replica;  // group mode
  int known_leader = 0;
  int64_t marker_epoch = 0;  // group mode: the highest EPOCH marker applied
  uint64_t last_snapshot_index = 0;  // group mode: the table's index at the last snapshot
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  explicit Live(const coord::DriverOptions& o) : table(o.table), driver(&table, o) {}
};

SimCoordinator::SimCoordinator(Cluster* cluster, int node, std::string address, int replica_id)
    : c_(cluster),
      node_(node),
      address_(std::move(address)),
      replica_id_(replica_id),
      disk_(&cluster->world(), cluster->disk_options()) {}

bool SimCoordinator::leads() const { return live_ && live_->replica && live_->replica->is_leader(); }

SimCoordinator::~SimCoordinator() = default;

void SimCoordinator::Boot() {
  if (replica_id_ > 0) return BootReplica();
  World& w = c_->world();
  live_ = std::make_unique<Live>(c_->timing().driver);
  Live* l = live_.get();
  // Recover: replay every durable record, in order (node.cc: snapshot + log).
  for (const auto& [index, bytes] : log_) {
    auto cmds = coord::DecodeBatch(bytes);
    if (!cmds.ok()) {
      c_->checker().Violation("validity", nullptr,
                              "the decision log record " + std::to_string(index) +
                                  " is unreadable: " + cmds.status().message());
      continue;
    }
    c_->checker().OnApplied(node_, index, bytes);
    for (const proto::Command& cmd : *cmds) l->table.Apply(index, cmd);
  }
  c_->checker().OnReplayed(node_, log_.empty() ? 0 : log_.back().first);
  l->next_index = std::max<uint64_t>(log_.empty() ? 0 : log_.back().first,
                                     l->table.applied_index()) + 1;
  w.Log(node_, "boot: replayed " + std::to_string(log_.size()) + " log records, epoch " +
                   std::to_string(l->table.epoch()) + ", " +
                   std::to_string(l->table.unended_count()) + " unended");
  // A new epoch (local_log.cc): durable before this replica leads, so no txid
  // is ever allocated twice across restarts. Then the node proposes the
  // epoch's marker and serves once that is applied (node.cc).
  int64_t epoch = epoch_meta_ + 1;
  disk_.Write([this, epoch] { epoch_meta_ = epoch; });
  auto alive = l->alive;
  disk_.Sync([this, l, alive, epoch] {
    if (!*alive) return;
    l->lead_epoch = epoch;
    c_->world().Log(node_, "leading epoch " + std::to_string(epoch) + "; proposing its marker");
    Propose(l, {coord::MakeEpoch(epoch)});
  });
  ScheduleTick(l);
}

void SimCoordinator::Crash() {
  if (!live_) return;
  *live_->alive = false;
  c_->world().Bury(std::shared_ptr<Live>(std::move(live_)));
  disk_.Crash();
}

void SimCoordinator::ScheduleTick(Live* l) {
  auto alive = l->alive;
  c_->world().After(c_->timing().tick, [this, l, alive] {
    if (!*alive) return;
    ScheduleTick(l);
    l->driver.Tick(c_->world().now());
    Flush(l);
  });
}

bool SimCoordinator::Idle(std::string* why) const {
  if (!live_) {
    *why = "the coordinator is down";
    return false;
  }
  if (!live_->driver.serving()) {
    *why = "the coordinator is not serving";
    return false;
  }
  if (live_->driver.active_count() > 0) {
    auto txns = live_->driver.ActiveTxns();
    *why = "the coordinator still drives " + std::to_string(txns.size()) + " transaction(s), e.g. " +
           ToString(txns.front().txid) + " (" + txns.front().state + ")";
    return false;
  }
  if (live_->table.unended_count() > 0) {
    *why = "the coordinator's table has " + std::to_string(live_->table.unended_count()) +
           " decided, un-ended transaction(s)";
    return false;
  }
  return true;
}

// ------------------------------------------------------------- client RPCs

template <class Req, class Resp>
void SimCoordinator::Serve(const Req& req, std::function<void(Resp)> reply, const TxId& txid,
                           bool commit, void (coord::CommitDriver::*in)(uint64_t, const Req&, Micros)) {
  if (!live_) return;  // down: the network refuses before this
  Live* l = live_.get();
  uint64_t token = l->next_token++;
  Live::Waiting w;
  w.reply = [reply = std::move(reply)](coord::ClientResponse r) { reply(std::get<Resp>(std::move(r))); };
  w.txid = txid;
  w.commit = commit;
  l->pending.emplace(token, std::move(w));
  (l->driver.*in)(token, req, c_->world().now());
  Flush(l);
}

void SimCoordinator::Begin(const proto::BeginRequest& req,
                           std::function<void(proto::BeginResponse)> reply) {
  Serve<proto::BeginRequest, proto::BeginResponse>(req, std::move(reply), TxId(), false,
                                                   &coord::CommitDriver::OnBegin);
}

void SimCoordinator::Commit(const proto::CommitRequest& req,
                            std::function<void(proto::CommitResponse)> reply) {
  c_->world().Log(node_, &req.txid, "COMMIT request (" + std::to_string(req.participants.size()) +
                                        " participants)");
  Serve<proto::CommitRequest, proto::CommitResponse>(req, std::move(reply), req.txid, true,
                                                     &coord::CommitDriver::OnCommit);
}

void SimCoordinator::Submit(const proto::SubmitRequest& req,
                            std::function<void(proto::CommitResponse)> reply) {
  c_->world().Log(node_, &req.txid, "SUBMIT request (" + std::to_string(req.branches.size()) +
                                        " branches)");
  Serve<proto::SubmitRequest, proto::CommitResponse>(req, std::move(reply), req.txid, true,
                                                     &coord::CommitDriver::OnSubmit);
}

void SimCoordinator::Abort(const proto::AbortRequest& req,
                           std::function<void(proto::CommitResponse)> reply) {
  c_->world().Log(node_, &req.txid, "ABORT request");
  Serve<proto::AbortRequest, proto::CommitResponse>(req, std::move(reply), req.txid, false,
                                                    &coord::CommitDriver::OnAbort);
}

void SimCoordinator::Outcome(const proto::OutcomeRequest& req,
                             std::function<void(proto::OutcomeResponse)> reply) {
  Serve<proto::OutcomeRequest, proto::OutcomeResponse>(req, std::move(reply), req.txid, false,
                                                       &coord::CommitDriver::OnOutcome);
}

// ------------------------------------------------------------------ the log

bool SimCoordinator::Propose(Live* l, std::vector<proto::Command> cmds) {
  World& w = c_->world();
  uint64_t index = l->next_index++;
  std::string bytes = coord::EncodeBatch(cmds);
  c_->checker().OnProposed(bytes);
  bool decide = false;
  for (const proto::Command& cmd : cmds) {
    if (cmd.type == proto::CommandType::EPOCH || cmd.type == proto::CommandType::NOOP) {
      w.Log(node_, "propose slot " + std::to_string(index) + " " + coord::DescribeCommand(cmd));
    } else {
      w.Log(node_, &cmd.txid, "propose slot " + std::to_string(index) + " " + coord::DescribeCommand(cmd));
    }
    decide = decide || IsCommitDecide(cmd);
  }
  disk_.Write([this, index, bytes] { log_.emplace_back(index, bytes); });
  auto alive = l->alive;
  disk_.Sync([this, l, alive, index, cmds = std::move(cmds), bytes]() {
    if (*alive) OnDurable(l, index, cmds, bytes);
  });
  // The DECIDE is on its way to the disk, not durable yet.
  if (decide && c_->CrashPoint(node_, "coord.decide_proposed")) return false;
  return true;
}

void SimCoordinator::OnDurable(Live* l, uint64_t index, const std::vector<proto::Command>& cmds,
                               const std::string& bytes) {
  World& w = c_->world();
  Micros now = w.now();
  c_->checker().OnApplied(node_, index, bytes);
  for (const proto::Command& cmd : cmds) {
    l->table.Apply(index, cmd);
    if (cmd.type == proto::CommandType::EPOCH) {
      if (cmd.epoch == l->lead_epoch && !l->driver.serving()) {
        l->driver.BecomeLeader(cmd.epoch, now);
        w.Log(node_, "serving epoch " + std::to_string(cmd.epoch) + " (" +
                         std::to_string(l->table.unended_count()) + " recovered unended)");
        if (c_->CrashPoint(node_, "coord.after_epoch")) return;
      }
      continue;
    }
    if (cmd.type != proto::CommandType::NOOP) {
      w.Log(node_, &cmd.txid, "chosen slot " + std::to_string(index) + " " + coord::DescribeCommand(cmd));
    }
    if (!l->driver.serving()) continue;
    l->driver.OnApplied(cmd, now);
    // Durable and applied; COMMIT not sent yet.
    if (IsCommitDecide(cmd) && c_->CrashPoint(node_, "coord.after_decide")) return;
    if (cmd.type == proto::CommandType::END_TXN && c_->CrashPoint(node_, "coord.after_end")) return;
  }
  Flush(l);
}

// ------------------------------------------------------------------ effects

void SimCoordinator::Flush(Live* l) {
  for (;;) {
    if (!*l->alive) return;
    bool any = false;
    if (l->replica) {
      paxos::Effects pfx = l->replica->TakeEffects();
      if (!pfx.empty()) {
        any = true;
        if (!HandleReplica(l, pfx)) return;
        if (!*l->alive) return;
      }
    }
    coord::DriverEffects fx = l->driver.TakeEffects();
    if (!fx.empty()) {
      any = true;
      if (!FlushDriver(l, fx)) return;
    }
    if (!any) return;
  }
}

bool SimCoordinator::FlushDriver(Live* l, coord::DriverEffects& fx) {
  World& w = c_->world();
  Network& net = c_->net();
  for (const coord::HeuristicHazard& h : fx.hazards) {
    w.Log(node_, &h.txid, "HEURISTIC HAZARD: " + h.ToString());
    c_->checker().OnHeuristicHazard(h.txid, h.ToString());
  }
  {
    for (coord::ClientReply& r : fx.replies) {
      auto it = l->pending.find(r.token);
      if (it == l->pending.end()) continue;  // answered early (bug), or the client is gone
      auto reply = std::move(it->second.reply);
      l->pending.erase(it);
      if (auto* cr = std::get_if<proto::CommitResponse>(&r.response)) {
        w.Log(node_, &cr->txid,
              std::string("reply ") + OutcomeName(cr->outcome) +
                  (cr->status.code == proto::Code::OK ? "" : " status=" + cr->status.message));
      } else if (auto* br = std::get_if<proto::BeginResponse>(&r.response)) {
        if (br->status.code == proto::Code::OK) w.Log(node_, &br->txid, "begun");
      }
      reply(std::move(r.response));
    }

    if (!fx.proposals.empty()) {
      if (c_->bugs().early_commit_reply) {
        // BUG: the client hears COMMITTED as soon as the DECIDE is proposed.
        for (const proto::Command& cmd : fx.proposals) {
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
      bool ok = l->replica ? ProposePaxos(l, std::move(fx.proposals)) : Propose(l, std::move(fx.proposals));
      if (!ok) return false;
    }

    bool prepared = false, committed = false;
    auto alive = l->alive;
    for (coord::ParticipantCall& call : fx.calls) {
      SimAgent* agent = c_->AgentAt(call.to.address);
      TxId txid = call.txid;
      size_t index = call.index;
      const Micros timeout = c_->timing().driver.call_timeout;
      if (call.prepare) {
        prepared = true;
        w.Log(node_, &txid, "PREPARE -> " + call.to.resource + "@" + call.to.address +
                                (call.prepare->__isset.work ? " (with work)" : ""));
        if (agent == nullptr) {
          w.After(1, [this, l, alive, txid, index] {
            if (!*alive) return;
            l->driver.OnVote(txid, index, Status::Unavailable("no such agent"), proto::PrepareResponse(),
                             c_->world().now());
            Flush(l);
          });
          continue;
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
              l->driver.OnVote(txid, index, s, r, c_->world().now());
              Flush(l);
            });
      } else if (call.decide) {
        bool want_ack = call.want_ack;
        bool commit = call.decide->outcome == proto::Outcome::COMMITTED;
        coord::ParticipantCall sent = call;  // OnDecideAnswer hears every answer
        committed = committed || commit;
        w.Log(node_, &txid, std::string(commit ? "COMMIT" : "ABORT") + " -> " + call.to.resource +
                                "@" + call.to.address);
        if (agent == nullptr) {
          if (!want_ack) continue;
          w.After(1, [this, l, alive, sent] {
            if (!*alive) return;
            l->driver.OnDecideAnswer(sent, Status::Unavailable("no such agent"), proto::DecideResponse(),
                                     c_->world().now());
            Flush(l);
          });
          continue;
        }
        proto::DecideRequest req = std::move(*call.decide);
        net.Call<proto::DecideResponse>(
            node_, agent->node(), timeout, true,
            [agent, req](std::function<void(proto::DecideResponse)> reply) {
              agent->Decide(req, std::move(reply));
            },
            [this, l, alive, txid, index, want_ack, sent](Status s, proto::DecideResponse r) {
              if (!*alive) return;
              Status ack = s.ok() ? FromProto(r.status) : s;
              if (want_ack) {
                c_->world().Log(node_, &txid,
                                "ack " + std::to_string(index) + ": " + (ack.ok() ? "ok" : ack.ToString()));
              }
              l->driver.OnDecideAnswer(sent, s, r, c_->world().now());
              Flush(l);
            });
      }
    }
    if (prepared && c_->CrashPoint(node_, "coord.votes_outstanding")) return false;
    if (committed && c_->CrashPoint(node_, "coord.commit_sent")) return false;
  }
  return true;
}


// -------------------------------------------------------------- group mode

void SimCoordinator::BootReplica() {
  World& w = c_->world();
  live_ = std::make_unique<Live>(c_->timing().driver);
  Live* l = live_.get();
  const Timing& t = c_->timing();
  paxos::Options po;
  po.heartbeat = t.paxos_heartbeat;
  po.election_min = t.paxos_election_min;
  po.election_max = t.paxos_election_max;
  po.seed = w.rng().Next();  // the core's jitter, from the world's RNG
  std::vector<int> members;
  for (int id = 1; id <= c_->replicas(); ++id) members.push_back(id);
  // The acceptor's durable image, as paxos_log.cc reads it back from its
  // store: the snapshot (if any) is installed into the table first, and only
  // accepted entries above it are read; the core re-applies every chosen slot
  // after it as it learns the commit index.
  paxos::DurableState ds;
  ds.promised = acceptor_.promised;
  ds.snapshot_index = acceptor_.snapshot_index;
  ds.snapshot = acceptor_.snapshot;
  ds.accepted.insert(acceptor_.accepted.upper_bound(acceptor_.snapshot_index), acceptor_.accepted.end());
  int64_t applied = 0;
  if (ds.snapshot_index > 0) {
    Status s = l->table.Restore(ds.snapshot);
    if (!s.ok()) {
      c_->checker().Violation("validity", nullptr, "the durable snapshot is unreadable: " + s.ToString());
    }
    applied = ds.snapshot_index;
    l->marker_epoch = l->table.marker_epoch();
    l->last_snapshot_index = l->table.applied_index();
    c_->checker().OnRestored(node_, static_cast<uint64_t>(applied), ds.snapshot);
  }
  w.Log(node_, "boot replica " + std::to_string(replica_id_) + ": promised " +
                   std::to_string(ds.promised.round) + "." + std::to_string(ds.promised.replica) +
                   ", snapshot at slot " + std::to_string(ds.snapshot_index) + ", " +
                   std::to_string(ds.accepted.size()) + " accepted entries on disk");
  l->replica = std::make_unique<paxos::Replica>(replica_id_, members, po, std::move(ds), applied);
  c_->checker().OnProposed("");  // the core's own gap-filling no-op
  ScheduleTick(l);
  SchedulePaxosTick(l);
}

void SimCoordinator::SchedulePaxosTick(Live* l) {
  auto alive = l->alive;
  c_->world().After(c_->timing().paxos_tick, [this, l, alive] {
    if (!*alive) return;
    SchedulePaxosTick(l);
    l->replica->Tick(c_->world().now());
    Flush(l);
  });
}

void SimCoordinator::DeliverPeer(const paxos::Message& m) {
  if (!live_ || !live_->replica) return;  // down: lost
  Live* l = live_.get();
  l->replica->OnMessage(m, c_->world().now());
  Flush(l);
}

// As coordinator/node.cc: every `snapshot_every` applied slots the table's
// image becomes the replica's snapshot (paxos_log.cc's Compact): the core
// forgets the slots it covers and sends it to replicas behind it; on disk it
// replaces the accepted entries it covers, durable with the next sync.
void SimCoordinator::MaybeSnapshot(Live* l) {
  uint64_t applied = l->table.applied_index();
  if (applied < l->last_snapshot_index + c_->timing().snapshot_every) return;
  l->last_snapshot_index = applied;
  std::string image = l->table.Snapshot();
  c_->checker().OnSnapshot(node_, applied, image);
  c_->world().Log(node_, "snapshot at slot " + std::to_string(applied) + " (" +
                             std::to_string(l->table.size()) + " transactions); log compacted");
  l->replica->Compacted(static_cast<int64_t>(applied), image);
  int64_t index = static_cast<int64_t>(applied);
  disk_.Write([this, index, image = std::move(image)] { KeepSnapshot(index, image); });
}

void SimCoordinator::KeepSnapshot(int64_t index, const std::string& image) {
  if (index <= acceptor_.snapshot_index) return;
  acceptor_.snapshot_index = index;
  acceptor_.snapshot = image;
  acceptor_.accepted.erase(acceptor_.accepted.begin(), acceptor_.accepted.upper_bound(index));
}

std::string SimCoordinator::LeaderAddress(Live* l) const {
  int leader = l->replica->leader_id();
  if (leader <= 0 || leader == replica_id_ || leader > c_->replicas()) return "";
  return c_->CoordinatorById(leader)->address();
}

bool SimCoordinator::ProposePaxos(Live* l, std::vector<proto::Command> cmds) {
  World& w = c_->world();
  Micros now = w.now();
  if (!l->replica->is_leader()) {
    // paxos_log.cc: not the leader, the proposal fails at once.
    for (const proto::Command& cmd : cmds) {
      l->driver.OnProposalFailed(cmd, Status::NotLeader("this replica does not lead"), now);
    }
    return true;
  }
  std::string bytes = coord::EncodeBatch(cmds);
  c_->checker().OnProposed(bytes);
  bool decide = false;
  for (const proto::Command& cmd : cmds) {
    if (cmd.type == proto::CommandType::EPOCH || cmd.type == proto::CommandType::NOOP) {
      w.Log(node_, "propose " + coord::DescribeCommand(cmd));
    } else {
      w.Log(node_, &cmd.txid, "propose " + coord::DescribeCommand(cmd));
    }
    decide = decide || IsCommitDecide(cmd);
  }
  l->replica->Propose(std::move(bytes), now);
  if (decide && c_->CrashPoint(node_, "coord.decide_proposed")) return false;
  return true;
}

bool SimCoordinator::HandleReplica(Live* l, paxos::Effects& fx) {
  World& w = c_->world();
  Micros now = w.now();
  auto alive = l->alive;
  for (paxos::Persist& p : fx.persists) {
    uint64_t token = p.token;
    bool accept_only = !p.promised && !p.entries.empty();
    disk_.Write([this, p = std::move(p)] {
      if (p.promised) acceptor_.promised = *p.promised;
      for (const paxos::Entry& e : p.entries) acceptor_.accepted[e.slot] = e;
    });
    if (accept_only && c_->bugs().ack_before_durable_accept) {
      // BUG: the accepted values count as durable at once (no sync asked for;
      // they become durable with whatever sync comes next).
      l->replica->OnPersisted(token, now);
      continue;
    }
    disk_.Sync([this, l, alive, token] {
      if (!*alive) return;
      l->replica->OnPersisted(token, c_->world().now());
      Flush(l);
    });
  }
  for (paxos::Outgoing& o : fx.sends) {
    if (o.to <= 0 || o.to > c_->replicas() || o.to == replica_id_) continue;
    SimCoordinator* peer = c_->CoordinatorById(o.to);
    c_->net().Send(node_, peer->node(), true, [peer, msg = std::move(o.msg)] { peer->DeliverPeer(msg); });
  }
  if (fx.install) {
    auto [index, image] = std::move(*fx.install);
    w.Log(node_, "installs the leader's snapshot at slot " + std::to_string(index));
    ++c_->injected().snapshot_install;
    // Kept as this replica's own snapshot (paxos_log.cc), durable with the
    // next sync; accepted entries at or below it are dropped with it.
    disk_.Write([this, index, image] { KeepSnapshot(index, image); });
    Status s = l->table.Restore(image);
    if (!s.ok()) c_->checker().Violation("validity", nullptr, "snapshot install failed: " + s.ToString());
    c_->checker().OnInstalled(node_, static_cast<uint64_t>(index), image);
    l->marker_epoch = l->table.marker_epoch();
    l->last_snapshot_index = l->table.applied_index();
  }
  for (auto& [slot, value] : fx.applies) {
    c_->checker().OnApplied(node_, static_cast<uint64_t>(slot), value);
    if (value.empty()) continue;  // a no-op filling a gap
    auto cmds = coord::DecodeBatch(value);
    if (!cmds.ok()) {
      c_->checker().Violation("validity", nullptr,
                              "the chosen value at slot " + std::to_string(slot) +
                                  " is unreadable: " + cmds.status().message());
      continue;
    }
    uint64_t index = static_cast<uint64_t>(slot);
    for (const proto::Command& cmd : *cmds) {
      // A DECIDE that only an old leader accepted can be re-chosen by a later
      // leader's phase 1 at a slot after a newer EPOCH marker, when a newer
      // leader may already have presumed its txid aborted (found here, seed
      // 38 with --replicas 3). TxnTable::Apply ignores it on every replica.
      // The bug resurrected-decide bypasses that guard from the shell (it
      // applies the command as an operator's RESOLVE, which the guard lets
      // through), as a replica without the guard would.
      if (cmd.type == proto::CommandType::DECIDE && cmd.txid.epoch < l->marker_epoch &&
          l->table.Find(cmd.txid) == nullptr) {
        if (!c_->bugs().resurrected_decide) {
          w.Log(node_, &cmd.txid, "ignores slot " + std::to_string(slot) + " " + coord::DescribeCommand(cmd) +
                                      ": its epoch ended before it was chosen");
          l->table.Apply(index, cmd);  // a no-op in the table
          continue;
        }
        proto::Command forced = cmd;
        forced.type = proto::CommandType::RESOLVE;
        l->table.Apply(index, forced);
        continue;
      }
      l->table.Apply(index, cmd);
      if (cmd.type == proto::CommandType::EPOCH) {
        l->marker_epoch = std::max(l->marker_epoch, cmd.epoch);
        if (cmd.epoch == l->lead_epoch && !l->driver.serving()) {
          l->driver.BecomeLeader(cmd.epoch, now);
          w.Log(node_, "serving epoch " + std::to_string(cmd.epoch) + " (" +
                           std::to_string(l->table.unended_count()) + " recovered unended)");
          if (c_->CrashPoint(node_, "coord.after_epoch")) return false;
        }
        continue;
      }
      if (cmd.type == proto::CommandType::NOOP) continue;
      if (l->driver.serving()) {
        w.Log(node_, &cmd.txid, "chosen slot " + std::to_string(slot) + " " + coord::DescribeCommand(cmd));
      }
      if (!l->driver.serving()) continue;
      l->driver.OnApplied(cmd, now);
      if (IsCommitDecide(cmd) && c_->CrashPoint(node_, "coord.after_decide")) return false;
      if (cmd.type == proto::CommandType::END_TXN && c_->CrashPoint(node_, "coord.after_end")) return false;
    }
    MaybeSnapshot(l);
  }
  if (fx.stepped_down) {
    if (l->driver.serving()) w.Log(node_, "steps down; leader " + std::to_string(l->replica->leader_id()));
    l->lead_epoch = 0;
    l->driver.StepDown(LeaderAddress(l));
  }
  if (fx.leader_recovered) {
    l->lead_epoch = *fx.leader_recovered;
    w.Log(node_, "leading epoch " + std::to_string(l->lead_epoch) + "; proposing its marker");
    if (!ProposePaxos(l, {coord::MakeEpoch(l->lead_epoch)})) return false;
  }
  int leader = l->replica->leader_id();
  if (leader != l->known_leader) {
    l->known_leader = leader;
    w.Log(node_, "leader " + std::to_string(leader) + " epoch " + std::to_string(l->replica->epoch()));
    if (leader != replica_id_) {
      l->lead_epoch = 0;
      l->driver.StepDown(LeaderAddress(l));
    }
  }
  return true;
}

}  // namespace txc::sim
