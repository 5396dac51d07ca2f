// SimCoordinator: the simulated shell of a coordinator replica. It drives the
// production CommitDriver and TxnTable exactly as coordinator/node.cc does:
// a proposal is appended to the decision log and synced; once durable it is
// applied to the table and handed to the driver (OnApplied); effects are
// flushed after every input.
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
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  explicit Live(const coord::DriverOptions& o) : driver(&table, o) {}
};

SimCoordinator::SimCoordinator(Cluster* cluster, int node, std::string address)
    : c_(cluster), node_(node), address_(std::move(address)), disk_(&cluster->world(), cluster->disk_options()) {}

SimCoordinator::~SimCoordinator() = default;

void SimCoordinator::Boot() {
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
  World& w = c_->world();
  Network& net = c_->net();
  for (;;) {
    if (!*l->alive) return;
    coord::DriverEffects fx = l->driver.TakeEffects();
    if (fx.empty()) return;

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
      if (!Propose(l, std::move(fx.proposals))) return;
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
        committed = committed || commit;
        w.Log(node_, &txid, std::string(commit ? "COMMIT" : "ABORT") + " -> " + call.to.resource +
                                "@" + call.to.address);
        if (agent == nullptr) {
          if (!want_ack) continue;
          w.After(1, [this, l, alive, txid, index] {
            if (!*alive) return;
            l->driver.OnAck(txid, index, Status::Unavailable("no such agent"), c_->world().now());
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
            [this, l, alive, txid, index, want_ack](Status s, proto::DecideResponse r) {
              if (!*alive || !want_ack) return;
              Status ack = s.ok() ? FromProto(r.status) : s;
              c_->world().Log(node_, &txid,
                              "ack " + std::to_string(index) + ": " + (ack.ok() ? "ok" : ack.ToString()));
              l->driver.OnAck(txid, index, ack, c_->world().now());
              Flush(l);
            });
      }
    }
    if (prepared && c_->CrashPoint(node_, "coord.votes_outstanding")) return;
    if (committed && c_->CrashPoint(node_, "coord.commit_sent")) return;
  }
}

}  // namespace txc::sim
