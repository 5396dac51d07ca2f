#include "coordinator/node_core.h"

#include "common/status_proto.h"

#include <algorithm>
#include <utility>

namespace txc::coord {

namespace {

bool IsCommitDecide(const proto::Command& c) {
  return c.type == proto::CommandType::DECIDE && c.outcome == proto::Outcome::COMMITTED;
}

}  // namespace

NodeCore::NodeCore(NodeCoreOptions options)
    : options_(std::move(options)), table_(options_.driver.table), driver_(&table_, options_.driver) {
  if (options_.self_id > 0) {
    // The table starts from the acceptor's snapshot, if any; the replica
    // re-applies every chosen slot above it as it learns them.
    int64_t applied = 0;
    paxos::DurableState& ds = options_.recovered;
    if (ds.snapshot_index > 0 && !ds.snapshot.empty()) {
      startup_ = table_.Restore(ds.snapshot);
      if (startup_.ok()) applied = ds.snapshot_index;
    }
    replica_ = std::make_unique<paxos::Replica>(options_.self_id, options_.members, options_.paxos,
                                                std::move(ds), applied);
    options_.recovered = paxos::DurableState();
  }
}

NodeCore::~NodeCore() = default;

std::string NodeCore::LeaderAddress() const {
  if (!replica_) return "";
  int leader = replica_->leader_id();
  if (leader <= 0 || leader == options_.self_id) return "";
  auto it = options_.addresses.find(leader);
  return it != options_.addresses.end() ? it->second : "";
}

void NodeCore::Merge(NodeEffects* out, NodeEffects more) {
  for (auto& a : more.actions) out->actions.push_back(std::move(a));
  out->stepped_down = out->stepped_down || more.stepped_down;
  out->flush_proposals = out->flush_proposals || more.flush_proposals;
  if (more.wake_driver) out->wake_driver = more.wake_driver;
  if (more.wake_replica) out->wake_replica = more.wake_replica;
}

void NodeCore::Note(NodeEffects* out, std::string text, const TxId* txid, const char* point,
                    NoteAction::Level level, bool notable) {
  NoteAction n;
  n.level = level;
  n.notable = notable;
  if (txid != nullptr) n.txid = *txid;
  n.text = std::move(text);
  n.point = point;
  out->actions.push_back(std::move(n));
}

// ------------------------------------------------------------------ start-up

Status NodeCore::Install(uint64_t index, const std::string& image) {
  TXC_RETURN_IF_ERROR(table_.Restore(image));
  next_index_ = std::max(next_index_, index + 1);
  return Status::Ok();
}

void NodeCore::Replay(uint64_t index, const std::vector<proto::Command>& cmds) {
  for (const proto::Command& c : cmds) table_.Apply(index, c);
  next_index_ = std::max(next_index_, index + 1);
}

NodeEffects NodeCore::Start(Micros now) {
  NodeEffects out;
  applied_since_snapshot_ = 0;  // the replay or the snapshot restored the rest
  out.wake_driver = now + options_.tick;
  if (replica_) out.wake_replica = now + options_.paxos_tick;
  return out;
}

NodeEffects NodeCore::Lead(int64_t epoch, Micros now) {
  NodeEffects out;
  lead_epoch_ = epoch;
  Note(&out, "leading epoch " + std::to_string(epoch) + "; proposing its marker", nullptr, nullptr,
       NoteAction::kInfo, true);
  Propose({MakeEpoch(epoch)}, now, &out);
  Merge(&out, Collect(now));
  return out;
}

// ------------------------------------------------------------------- the log

NodeEffects NodeCore::OnChosen(uint64_t index, const std::vector<proto::Command>& cmds, Micros now) {
  NodeEffects out;
  for (const proto::Command& c : cmds) Apply(index, c, now, &out);
  CountApplied(cmds.size());
  Merge(&out, Collect(now));
  return out;
}

NodeEffects NodeCore::OnLogFailed(const std::vector<proto::Command>& cmds, const Status& why,
                                  Micros now) {
  if (why.code() == Status::kStorageFailed) failed_ = true;
  for (const proto::Command& c : cmds) driver_.OnProposalFailed(c, why, now);
  if (cmds.empty()) {
    lead_epoch_ = 0;
    driver_.StepDown("");
    // A replica whose disk failed must stop leading and voting in the core
    // too, or its heartbeats keep the healthy majority from electing anyone.
    if (replica_ != nullptr && !options_.testing_keep_replica_on_log_failure) {
      failed_ = true;
      replica_->OnStorageFailed(now);
    }
  }
  NodeEffects out = Collect(now);
  out.stepped_down = out.stepped_down || cmds.empty();
  return out;
}

NodeEffects NodeCore::OnPersisted(uint64_t token, Micros now) {
  if (failed_) return NodeEffects();  // a sticky failure: never release a dependent message
  replica_->OnPersisted(token, now);
  return Collect(now);
}

NodeEffects NodeCore::OnPeerMessage(const paxos::Message& m, Micros now) {
  replica_->OnMessage(m, now);
  return Collect(now);
}

NodeEffects NodeCore::OnPeerGone(int peer, Micros now) {
  replica_->OnPeerGone(peer, now);
  return Collect(now);
}

NodeEffects NodeCore::TickReplica(Micros now) {
  replica_->Tick(now);
  NodeEffects out = Collect(now);
  out.wake_replica = now + options_.paxos_tick;
  return out;
}

NodeEffects NodeCore::FlushProposals(Micros now) {
  NodeEffects out;
  ProposeHeld(now, &out);
  holding_ = false;
  Merge(&out, Collect(now));
  return out;
}

NodeEffects NodeCore::ProposeCommands(std::vector<proto::Command> cmds, Micros now) {
  NodeEffects out;
  Propose(std::move(cmds), now, &out);
  Merge(&out, Collect(now));
  return out;
}

// ------------------------------------------------------- clients and agents

NodeEffects NodeCore::OnBegin(uint64_t token, const proto::BeginRequest& req, Micros now) {
  driver_.OnBegin(token, req, now);
  return Collect(now);
}

NodeEffects NodeCore::OnCommit(uint64_t token, const proto::CommitRequest& req, Micros now) {
  driver_.OnCommit(token, req, now);
  return Collect(now);
}

NodeEffects NodeCore::OnSubmit(uint64_t token, const proto::SubmitRequest& req, Micros now) {
  driver_.OnSubmit(token, req, now);
  return Collect(now);
}

NodeEffects NodeCore::OnAbort(uint64_t token, const proto::AbortRequest& req, Micros now) {
  driver_.OnAbort(token, req, now);
  return Collect(now);
}

NodeEffects NodeCore::OnRetry(const std::optional<TxId>& txid, size_t* retried, Micros now) {
  *retried = driver_.RetryNow(txid, now);
  NodeEffects out = Collect(now);
  if (driver_.serving()) {
    Note(&out,
         "operator retry now (" + (txid ? ToString(*txid) : std::string("every undelivered")) +
             "): resent the decision of " + std::to_string(*retried) + " transaction(s)",
         txid ? &*txid : nullptr, nullptr, NoteAction::kInfo);
  }
  return out;
}

NodeEffects NodeCore::OnForgetParticipant(uint64_t token, const proto::ForgetParticipantRequest& req,
                                          Micros now) {
  driver_.OnForgetParticipant(token, req, now);
  NodeEffects out = Collect(now);
  Note(&out,
       "operator " + req.who + " asks to forget participant " + req.resource + " of " +
           ToString(req.txid) + ": " + req.reason,
       &req.txid, nullptr, NoteAction::kWarn);
  return out;
}

NodeEffects NodeCore::OnResolve(uint64_t token, const proto::ResolveRequest& req, Micros now) {
  driver_.OnResolve(token, req, now);
  NodeEffects out = Collect(now);
  Note(&out,
       "operator " + req.who + " asks to resolve " + ToString(req.txid) + " " +
           OutcomeName(req.outcome) + ": " + req.reason,
       &req.txid, nullptr, NoteAction::kWarn);
  return out;
}

NodeEffects NodeCore::OnOutcome(uint64_t token, const proto::OutcomeRequest& req, Micros now) {
  driver_.OnOutcome(token, req, now);
  return Collect(now);
}

NodeEffects NodeCore::OnVote(const TxId& txid, size_t index, const Status& call,
                             const proto::PrepareResponse& resp, Micros now) {
  driver_.OnVote(txid, index, call, resp, now);
  return Collect(now);
}

Status NodeCore::AckStatus(const Status& call, const proto::DecideResponse& resp) {
  if (!call.ok()) return call;
  return FromProto(resp.status);
}

NodeEffects NodeCore::OnDecideAnswer(const ParticipantCall& call, const Status& transport,
                                     const proto::DecideResponse& resp, Micros now) {
  driver_.OnDecideAnswer(call, transport, resp, now);
  return Collect(now);
}

NodeEffects NodeCore::Tick(Micros now) {
  driver_.Tick(now);
  NodeEffects out = Collect(now);
  out.wake_driver = now + options_.tick;
  return out;
}

// ------------------------------------------------------------ the node logic

// As long as the replica or the driver has something, in this order: what
// the replica did (its writes and messages first, then the slots it learnt
// were chosen, then leadership changes), then what the driver wants sent.
NodeEffects NodeCore::Collect(Micros now) {
  NodeEffects out;
  for (;;) {
    bool any = false;
    if (replica_ && !holding_) {
      paxos::Effects pfx = replica_->TakeEffects();
      if (!pfx.empty()) {
        any = true;
        HandleReplica(pfx, now, &out);
      }
    }
    DriverEffects dfx = driver_.TakeEffects();
    if (!dfx.empty()) {
      any = true;
      HandleDriver(dfx, now, &out);
    }
    if (!any) break;
  }
  MaybeSnapshot(&out);
  return out;
}

void NodeCore::MaybeSnapshot(NodeEffects* out) {
  if (options_.snapshot_every == 0 || failed_) return;
  if (applied_since_snapshot_ < options_.snapshot_every) return;
  applied_since_snapshot_ = 0;
  uint64_t applied = table_.applied_index();
  SnapshotAction a;
  a.index = applied;
  std::string image = table_.Snapshot();
  if (image.empty()) {
    // Not encodable (never seen): keep the log rather than compact it into
    // an image that would not restore; the next interval tries again.
    Note(out, "transaction table snapshot could not be encoded at applied_index " +
                  std::to_string(applied) + "; the log is kept",
         nullptr, nullptr, NoteAction::kWarn, true);
    return;
  }
  a.entries = table_.size();
  a.image = std::make_shared<const std::string>(std::move(image));
  if (replica_) replica_->Compacted(static_cast<int64_t>(applied), a.image);
  out->actions.push_back(std::move(a));
}

void NodeCore::HandleReplica(paxos::Effects& fx, Micros now, NodeEffects* out) {
  for (paxos::LogLine& line : fx.logs) {
    // The replica's own lines: debug stays debug, info is notable, and a
    // warning or error of the replica (its disk failed) is the operator's
    // business, not a broken invariant.
    bool debug = line.level == paxos::LogLine::kDebug;
    bool warn = line.level == paxos::LogLine::kWarn || line.level == paxos::LogLine::kError;
    Note(out, "paxos: " + std::move(line.text), nullptr, nullptr,
         warn ? NoteAction::kWarn : NoteAction::kInfo, !debug);
  }
  // The image first: the log store makes writes durable in order, and a
  // persist of this batch (a rejoined replica's joined record) must not be
  // durable without the image it relies on (paxos::Effects::install).
  auto install = [&] {
    if (!fx.install) return;
    uint64_t index = static_cast<uint64_t>(fx.install->first);
    Note(out, "installs the leader's snapshot at slot " + std::to_string(index), nullptr, nullptr,
         NoteAction::kInfo, true);
    out->actions.push_back(InstallAction{index, fx.install->second});
    Status s = table_.Restore(fx.install->second);
    if (!s.ok()) {
      Note(out, "snapshot install failed: " + s.ToString(), nullptr, nullptr, NoteAction::kError);
    }
    applied_since_snapshot_ = 0;
  };
  if (!options_.testing_persist_before_install) install();
  for (paxos::Persist& p : fx.persists) out->actions.push_back(std::move(p));
  if (options_.testing_persist_before_install) install();  // BUG persist-before-install
  for (paxos::Outgoing& o : fx.sends) {
    if (o.to == options_.self_id ||
        std::find(options_.members.begin(), options_.members.end(), o.to) == options_.members.end()) {
      continue;
    }
    out->actions.push_back(std::move(o));
  }
  for (auto& [slot, value] : fx.applies) {
    uint64_t index = static_cast<uint64_t>(slot);
    out->actions.push_back(AppliedAction{index, value});
    if (value.empty()) {  // the replica's no-op, filling a gap
      CountApplied(0);
      continue;
    }
    auto cmds = DecodeBatch(value);
    CountApplied(cmds.ok() ? cmds->size() : 0);
    if (!cmds.ok()) {
      Note(out,
           "the chosen value at slot " + std::to_string(index) +
               " is unreadable: " + cmds.status().message(),
           nullptr, nullptr, NoteAction::kError);
      continue;
    }
    for (const proto::Command& c : *cmds) Apply(index, c, now, out);
  }
  if (fx.stepped_down) StepDownDriver(out);
  if (fx.leader_recovered) {
    lead_epoch_ = *fx.leader_recovered;
    Note(out, "leading epoch " + std::to_string(lead_epoch_) + "; proposing its marker", nullptr,
         nullptr, NoteAction::kInfo, true);
    Propose({MakeEpoch(lead_epoch_)}, now, out);
  }
  // A follower that learns who leads stops serving, with that leader as hint.
  int leader = replica_->leader_id();
  if (leader != known_leader_) {
    known_leader_ = leader;
    Note(out, "leader " + std::to_string(leader) + " epoch " + std::to_string(replica_->epoch()),
         nullptr, nullptr, NoteAction::kInfo, true);
    if (leader != options_.self_id) StepDownDriver(out);
  }
}

void NodeCore::HandleDriver(DriverEffects& fx, Micros now, NodeEffects* out) {
  for (HeuristicHazard& h : fx.hazards) out->actions.push_back(std::move(h));
  for (const StuckNotice& s : fx.stuck) Note(out, s.ToString(), &s.txid, nullptr, NoteAction::kWarn);
  for (ClientReply& r : fx.replies) out->actions.push_back(std::move(r));
  if (!fx.proposals.empty()) Propose(std::move(fx.proposals), now, out);
  bool prepared = false, committed = false;
  for (ParticipantCall& c : fx.calls) {
    prepared = prepared || c.prepare.has_value();
    committed = committed || (c.decide && c.decide->outcome == proto::Outcome::COMMITTED);
    out->actions.push_back(std::move(c));
  }
  if (prepared) Note(out, "", nullptr, "coord.votes_outstanding");  // no vote back yet
  if (committed) Note(out, "", nullptr, "coord.commit_sent");       // acks outstanding
}

std::optional<Status> NodeCore::CannotPropose() const {
  if (failed_) return Status::StorageFailed("the decision log refused an earlier write");
  if (replica_ && !replica_->is_leader()) return Status::NotLeader("this replica does not lead");
  return std::nullopt;
}

void NodeCore::Propose(std::vector<proto::Command> cmds, Micros now, NodeEffects* out) {
  if (auto why = CannotPropose()) return Refuse(std::move(cmds), *why, now, out);
  bool decide = std::any_of(cmds.begin(), cmds.end(), IsCommitDecide);
  if (replica_) {
    // Held until the flush: the commands of this turn share one slot.
    held_.insert(held_.end(), std::make_move_iterator(cmds.begin()),
                 std::make_move_iterator(cmds.end()));
    if (!holding_) {
      holding_ = true;
      out->flush_proposals = true;
    }
    if (held_.size() >= kMaxCommandsPerSlot) ProposeHeld(now, out);
  } else {
    ProposeAction a;
    a.bytes = EncodeBatchInPlace(&cmds);
    a.cmds = std::move(cmds);
    a.index = next_index_++;
    out->actions.push_back(std::move(a));
  }
  // The DECIDE is on its way to the disk (or to the acceptors), not durable.
  if (decide) Note(out, "", nullptr, "coord.decide_proposed");
}

void NodeCore::ProposeHeld(Micros now, NodeEffects* out) {
  if (held_.empty()) return;
  std::vector<proto::Command> cmds = std::exchange(held_, {});
  // Held effects may have taken the lead away (a higher ballot) or failed
  // the log since these were proposed: then they are refused as a proposal
  // made now would be.
  if (auto why = CannotPropose()) return Refuse(std::move(cmds), *why, now, out);
  ProposeSlot(std::move(cmds), now, out);
}

void NodeCore::ProposeSlot(std::vector<proto::Command> cmds, Micros now, NodeEffects* out) {
  ProposeAction a;
  a.bytes = EncodeBatchInPlace(&cmds);
  if (a.bytes.size() > kMaxSlotBytes && cmds.size() > 1) {
    auto mid = cmds.begin() + static_cast<std::ptrdiff_t>(cmds.size() / 2);
    std::vector<proto::Command> second(std::make_move_iterator(mid),
                                       std::make_move_iterator(cmds.end()));
    cmds.erase(mid, cmds.end());
    ProposeSlot(std::move(cmds), now, out);
    ProposeSlot(std::move(second), now, out);
    return;
  }
  a.cmds = std::move(cmds);
  std::string value = a.bytes;
  out->actions.push_back(std::move(a));
  replica_->Propose(std::move(value), now);
}

void NodeCore::Refuse(std::vector<proto::Command> cmds, const Status& why, Micros now,
                      NodeEffects* out) {
  ProposeAction a;
  a.cmds = cmds;
  a.refused = true;
  out->actions.push_back(std::move(a));
  if (why.code() == Status::kNotLeader) {
    // The replica lost the lead since these were proposed (its effects,
    // held until the flush, say so next): nothing failed, so the driver
    // steps down as that step-down would make it, and its waiters hear
    // NOT_LEADER, not that the log failed. None of these was proposed.
    StepDownDriver(out);
    return;
  }
  for (const proto::Command& c : cmds) driver_.OnProposalFailed(c, why, now);
}

void NodeCore::StepDownDriver(NodeEffects* out) {
  if (driver_.serving()) {
    Note(out, "steps down; leader " + std::to_string(replica_ ? replica_->leader_id() : 0),
         nullptr, nullptr, NoteAction::kInfo, true);
  }
  lead_epoch_ = 0;
  driver_.StepDown(LeaderAddress());
  out->stepped_down = true;
}

void NodeCore::Apply(uint64_t index, proto::Command cmd, Micros now, NodeEffects* out) {
  if (options_.before_apply) options_.before_apply(table_, &cmd);
  // A DECIDE that only an old leader accepted can be re-chosen by a later
  // leader's phase 1 at a slot after a newer EPOCH marker, when a newer
  // leader may already have presumed its txid aborted (txsim, seed 38 with
  // --replicas 3). TxnTable::Apply ignores it on every replica.
  if (cmd.type == proto::CommandType::DECIDE && cmd.txid.epoch < table_.marker_epoch() &&
      table_.Find(cmd.txid) == nullptr) {
    Note(out,
         "ignores slot " + std::to_string(index) + " " + DescribeCommand(cmd) +
             ": its epoch ended before it was chosen",
         &cmd.txid, nullptr, NoteAction::kInfo, true);
    table_.Apply(index, cmd);  // a no-op in the table
    return;
  }
  table_.Apply(index, cmd);
  if (cmd.type == proto::CommandType::EPOCH) {
    if (cmd.epoch == lead_epoch_ && !driver_.serving()) {
      driver_.BecomeLeader(cmd.epoch, now);
      Note(out,
           "serving epoch " + std::to_string(cmd.epoch) + " (" +
               std::to_string(table_.unended_count()) + " recovered unended)",
           nullptr, "coord.after_epoch", NoteAction::kInfo, true);
    }
    return;
  }
  if (cmd.type == proto::CommandType::NOOP) {
    if (!cmd.who.empty()) out->actions.push_back(AppendedAction{cmd.who, index});
    driver_.OnNoopApplied(cmd, now);
    return;
  }
  if (!driver_.serving()) return;
  if (options_.describe_applied) {
    Note(out, "chosen slot " + std::to_string(index) + " " + DescribeCommand(cmd), &cmd.txid);
  }
  driver_.OnApplied(cmd, now);
  // Durable and applied; COMMIT not sent yet.
  if (IsCommitDecide(cmd)) Note(out, "", nullptr, "coord.after_decide");
  // 3PC: PRECOMMIT durable and applied; no PRE_COMMIT sent yet.
  if (cmd.type == proto::CommandType::PRECOMMIT) Note(out, "", nullptr, "coord.after_precommit");
  if (cmd.type == proto::CommandType::END_TXN) Note(out, "", nullptr, "coord.after_end");
}

}  // namespace txc::coord
