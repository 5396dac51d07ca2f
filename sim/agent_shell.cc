// SimAgent: the simulated shell of a participant agent around the production
// AgentCore, as participant/agent.cc is the real one (see agent_shell.h).
#include "sim/agent_shell.h"

#include <sqlite3.h>

#include <algorithm>

#include "participant/sqlite_resource.h"
#include "sim/cluster.h"
#include "sim/sqlite_bank.h"

namespace txc::sim {

namespace {

const char* OpName(participant::ResourceOp::Kind k) {
  switch (k) {
    case participant::ResourceOp::kExecute: return "execute";
    case participant::ResourceOp::kPrepare: return "prepare";
    case participant::ResourceOp::kExecuteAndPrepare: return "execute+prepare";
    case participant::ResourceOp::kCommit: return "commit";
    case participant::ResourceOp::kPreCommit: return "precommit";
    case participant::ResourceOp::kRollback: return "rollback";
    case participant::ResourceOp::kHeuristic: return "heuristic decision";
    case participant::ResourceOp::kForgetHeuristic: return "forget heuristic";
  }
  return "?";
}

std::vector<std::string> Keys(const std::map<std::string, BankImage>& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

// Simulated CPU time a runaway statement burns per progress-handler tick
// (SQLite calls the resource's handler every 4000 virtual-machine
// instructions, and the handler reads the resource's clock).
constexpr Micros kCpuPerTick = 10 * kMillis;

// One SqliteResource's worker in the simulation: its executor (its group
// commits run as World events) and its clock. Virtual time stands still
// while SQLite runs a statement, so a statement that runs for seconds would
// never reach the resource's statement time limit. While a runaway statement
// (kSlowSql) is queued or running on the resource, every read of its clock
// (each progress-handler tick, in effect) burns kCpuPerTick of simulated CPU:
// the clock runs ahead of the World's until the resource's own limit
// interrupts the statement (the production path: sqlite3_progress_handler,
// SQLITE_INTERRUPT, TIMEOUT). The worker is busy until that CPU time has
// passed: tasks posted meanwhile, and the callbacks of the group that ran
// the statement (SimAgent::Run), wait for it, as the resource's only worker
// would hold every other branch's prepare and commit.
class SimWorker : public participant::Executor {
 public:
  explicit SimWorker(World* world) : world_(world) {}
  void Post(std::function<void()> task) override { world_->After(BusyFor(), std::move(task)); }
  // The resource's clock (SqliteResourceOptions::clock).
  Micros Now() {
    if (slow > 0) busy_until = std::max(busy_until, world_->now()) + kCpuPerTick;
    return std::max(world_->now(), busy_until);
  }
  // How long the worker is still busy burning CPU.
  Micros BusyFor() const { return std::max<Micros>(0, busy_until - world_->now()); }

  Micros busy_until = 0;
  int slow = 0;  // runaway statements queued or running on this resource

 private:
  World* world_;
};

bool HasSlowStatement(const std::vector<proto::Statement>& statements) {
  return std::any_of(statements.begin(), statements.end(),
                     [](const proto::Statement& st) { return st.sql == kSlowSql; });
}

// 2026-01-01T00:00:00Z, where SimVfs's xCurrentTime starts too.
constexpr Micros kSimWallEpoch = 1767225600 * kSeconds;

}  // namespace

struct SimAgent::Live {
  participant::AgentCore core;
  // Each resource's worker: outlives the resources.
  std::map<std::string, std::unique_ptr<SimWorker>> workers;
  std::map<std::string, std::unique_ptr<participant::SqliteResource>> resources;
  // A read connection per resource, for the checker and Idle.
  std::map<std::string, sqlite3*> readers;
  struct Waiting {
    std::function<void(participant::AgentResponse)> reply;
    TxId txid;
  };
  std::map<uint64_t, Waiting> pending;
  uint64_t next_token = 1;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  // A resource failed on its storage (reported once; the operator restarts the node).
  bool disk_failed = false;

  Live(std::vector<std::string> names, const participant::AgentOptions& o, Micros tick)
      : core(std::move(names), o, tick) {}
  ~Live() {
    for (auto& [name, db] : readers) sqlite3_close_v2(db);
    resources.clear();
  }
};

SimAgent::SimAgent(Cluster* cluster, int node, std::string address,
                   std::map<std::string, BankImage> initial)
    : c_(cluster),
      node_(node),
      address_(std::move(address)),
      disk_(&cluster->world(), cluster->disk_options()),
      images_(std::move(initial)),
      vfs_(&cluster->world(), &disk_,
           "s" + std::to_string(cluster->world().seed()) + "-" + cluster->world().NodeName(node)) {
  // The node's databases, made durable before the run starts.
  World& w = c_->world();
  for (const auto& [name, image] : images_) {
    Status s = CreateBankDb(vfs_, name, image);
    if (!s.ok()) c_->checker().Violation("termination", nullptr, "set-up of " + name + ": " + s.ToString());
  }
  bool durable = false;
  vfs_.WhenDurable([&durable] { durable = true; });
  w.RunUntil(w.now() + 10 * kSeconds, [&durable] { return durable; });
}

SimAgent::~SimAgent() = default;

std::vector<std::string> SimAgent::resources() const { return Keys(images_); }

void SimAgent::Boot() {
  World& w = c_->world();
  Micros now = w.now();
  // This run's incarnation: in a real agent a durable counter bumped at
  // start; here the network's count of this node's boots, which no crash loses.
  participant::AgentOptions options = c_->timing().agent;
  options.incarnation = static_cast<int64_t>(c_->net().incarnation(node_));
  options.testing_ignore_active_only = c_->bugs().abort_after_prepared;  // BUG abort-after-prepared
  if (c_->sign_decisions()) {
    // This boot's key: a function of the seed, the agent and the boot (a
    // real agent draws it from the kernel), so a restart changes it and
    // nothing is drawn from the seed's random stream.
    const SipKey k{c_->seed(), static_cast<uint64_t>(node_)};
    const std::string boot = std::to_string(c_->net().incarnation(node_));
    options.decision_key = {SipHash24(k, "k0/" + boot), SipHash24(k, "k1/" + boot)};
    options.decision_key_address = address_;
  }
  live_ = std::make_unique<Live>(Keys(images_), options, c_->timing().tick);
  Live* l = live_.get();
  vfs_.PowerOn();
  down_images_.clear();
  for (const auto& [name, initial] : images_) {
    participant::SqliteResourceOptions o;
    SimWorker* worker = (l->workers[name] = std::make_unique<SimWorker>(&w)).get();
    o.executor = worker;
    o.max_execute_time = c_->timing().statement_limit;
    if (!c_->bugs().vote_before_durable) {  // BUG vote-before-durable: no barrier
      SimVfs* vfs = &vfs_;
      o.durability_barrier = [vfs](std::function<void()> deliver) {
        vfs->WhenDurable(std::move(deliver));
      };
    }
    o.clock = [worker] { return worker->Now(); };
    o.wall_clock = [&w] { return kSimWallEpoch + w.now(); };
    o.test_only_forget_undo = c_->bugs().forget_undo;  // BUG forget-undo
    o.test_only_ack_commit_before_sync = c_->bugs().ack_commit_before_sync;  // BUG ack-commit-before-sync
    o.test_only_skip_undo_on_conflict = c_->bugs().skip_undo_on_conflict;  // BUG skip-undo-on-conflict
    auto r = participant::SqliteResource::Open(name, BankDbUri(vfs_, name), o);
    if (!r.ok()) {
      c_->checker().Violation("termination", nullptr,
                              "resource " + name + " cannot open: " + r.status().ToString());
      l->core.OnRecoveryFailed(name, r.status());
      continue;
    }
    auto recovered = (*r)->Recover();
    if (!recovered.ok()) {
      c_->checker().Violation("termination", nullptr,
                              "resource " + name + " cannot recover: " + recovered.status().ToString());
      l->core.OnRecoveryFailed(name, recovered.status());
      continue;
    }
    size_t active = 0, in_doubt = 0;
    for (const auto& b : *recovered) {
      (b.state == participant::BranchState::kActive ? active : in_doubt)++;
      w.Log(node_, &b.txid, "recovered " + std::string(participant::BranchStateName(b.state)) +
                                " branch on " + name);
    }
    w.Log(node_, "boot: " + name + " recovered, " + std::to_string(active) + " active (roll back), " +
                     std::to_string(in_doubt) + " in doubt");
    l->core.OnRecovered(name, *recovered, now);
    auto heuristics = (*r)->Heuristics();
    if (!heuristics.ok()) {
      c_->checker().Violation("termination", nullptr, "resource " + name +
                                                          " cannot list heuristic decisions: " +
                                                          heuristics.status().ToString());
    } else {
      l->core.OnRecoveredHeuristics(name, *heuristics, now);
    }
    l->resources.emplace(name, std::move(*r));
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(BankDbPath(name).c_str(), &db, SQLITE_OPEN_READWRITE, vfs_.name());
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "PRAGMA query_only=1", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      c_->checker().Violation("termination", nullptr,
                              "cannot open a read connection on " + name + ": " + sqlite3_errstr(rc));
    }
    l->readers[name] = db;
  }
  Apply(l, l->core.Start(now));
}

void SimAgent::Crash() {
  if (!live_) return;
  *live_->alive = false;
  // The process dies (its resources are destroyed when this event ends) and,
  // as every crash of a node, its power fails: unsynced writes are lost. The
  // checker sees the durable images until the node is back.
  c_->world().Bury(std::shared_ptr<Live>(std::move(live_)));
  vfs_.CancelFaults();  // an armed storage fault that never fired goes with the run
  vfs_.PowerLoss();
  down_images_.clear();
  for (const auto& [name, initial] : images_) {
    Status s = ReadDurableBankImage(vfs_, name, &down_images_[name]);
    if (!s.ok()) c_->checker().Violation("durability", nullptr, "after a crash: " + s.ToString());
  }
}

void SimAgent::BreakDisk(bool full, bool at_sync) {
  fault_full_ = full;
  DiskFault f = full ? DiskFault::kEnospc : DiskFault::kEio;
  if (at_sync) {
    vfs_.FailNextSync(f);
  } else {
    vfs_.FailNextWrite(f);
  }
}

void SimAgent::CancelDiskFault() { vfs_.CancelFaults(); }

bool SimAgent::disk_failed() const { return live_ && live_->disk_failed; }

void SimAgent::StorageFailed(Live* l, const std::string& resource, const TxId& txid,
                             const Status& s) {
  if (l->disk_failed) return;
  l->disk_failed = true;
  SimVfsStats st = vfs_.stats();
  if (st.failed_writes + st.failed_syncs == injected_seen_) {
    // Nothing was injected since the last one surfaced: the resource failed
    // on its own.
    c_->checker().Violation("termination", &txid,
                            "resource " + resource + " failed on its storage with no storage "
                            "fault injected: " + s.ToString());
    return;
  }
  injected_seen_ = st.failed_writes + st.failed_syncs;
  c_->world().LogFault(node_, std::string("DISK FAILED: ") + (fault_full_ ? "ENOSPC" : "EIO") +
                                  " on " + resource + " (" + s.ToString() +
                                  "); the resource fails every later operation");
  c_->OnDiskFailed(node_, fault_full_);
}

bool SimAgent::HasChanges(const Live* l, const std::string& name, const TxId& txid) const {
  auto it = l->readers.find(name);
  if (it == l->readers.end() || it->second == nullptr) return false;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(it->second, "SELECT EXISTS(SELECT 1 FROM txc_changes WHERE txid = ?1) OR "
                         "EXISTS(SELECT 1 FROM txc_branches WHERE txid = ?1 AND redo IS NOT NULL)", -1,
                         &st, nullptr) != SQLITE_OK) {
    return false;
  }
  std::string id = ToString(txid);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  bool yes = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
  sqlite3_finalize(st);
  return yes;
}

Status SimAgent::ReadLive(const Live* l, const std::string& name, BankImage* out) const {
  auto it = l->readers.find(name);
  if (it == l->readers.end() || it->second == nullptr) return Status::NotFound(name + " is not open");
  return ReadBankImage(it->second, out);
}

void SimAgent::Wake(Live* l, Micros at) {
  auto alive = l->alive;
  c_->world().After(at - c_->world().now(), [this, l, alive] {
    if (!*alive) return;
    Apply(l, l->core.Tick(c_->world().now()));
  });
}

void SimAgent::VisitState(const Checker::BankVisitor& visit) const {
  if (!live_) {
    for (const auto& [name, image] : down_images_) visit(name, image);
    return;
  }
  for (const auto& [name, db] : live_->readers) {
    BankImage img;
    Status s = ReadLive(live_.get(), name, &img);
    if (!s.ok()) {
      c_->checker().Violation("bank", nullptr, "cannot read " + name + ": " + s.ToString());
      continue;
    }
    visit(name, img);
  }
}

void SimAgent::VisitDurable(const Checker::BankVisitor& visit) const {
  if (!live_) {
    for (const auto& [name, image] : down_images_) visit(name, image);
    return;
  }
  for (const auto& [name, initial] : images_) {
    BankImage img;
    Status s = ReadDurableBankImage(vfs_, name, &img);
    if (!s.ok()) {
      c_->checker().Violation("durability", nullptr, "cannot read " + name + ": " + s.ToString());
      continue;
    }
    visit(name, img);
  }
}

bool SimAgent::Idle(std::string* why) const {
  const std::string& me = c_->world().NodeName(node_);
  if (!live_) {
    *why = me + " is down";
    return false;
  }
  for (const auto& b : live_->core.Branches()) {
    if (b.state == "active" || b.state == "prepared") {
      *why = me + ": branch " + ToString(b.txid) + " on " + b.resource + " is still " + b.state;
      return false;
    }
  }
  for (const auto& [name, r] : live_->resources) {
    BankImage live;
    Status s = ReadLive(live_.get(), name, &live);
    if (!s.ok()) {
      *why = me + ": cannot read " + name + ": " + s.ToString();
      return false;
    }
    if (!live.open.empty()) {
      const TxId& t = *live.open.begin();
      *why = me + ": resource " + name + " still has a non-final branch " + ToString(t) + " (" +
             participant::BranchStateName(live.branches.at(t).state) + ")";
      return false;
    }
    if (r->locks_held() > 0) {
      *why = me + ": resource " + name + " still holds " + std::to_string(r->locks_held()) + " lock(s)";
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------- requests

template <class Req, class Resp>
void SimAgent::Serve(const Req& req, std::function<void(Resp)> reply,
                     participant::AgentCoreEffects (participant::AgentCore::*in)(uint64_t,
                                                                                 const Req&,
                                                                                 Micros)) {
  if (!live_) return;
  Live* l = live_.get();
  uint64_t token = l->next_token++;
  Live::Waiting wt;
  wt.reply = [reply = std::move(reply)](participant::AgentResponse r) {
    reply(std::get<Resp>(std::move(r)));
  };
  wt.txid = req.txid;
  l->pending.emplace(token, std::move(wt));
  Apply(l, (l->core.*in)(token, req, c_->world().now()));
}

void SimAgent::Execute(const proto::ExecuteRequest& req,
                       std::function<void(proto::ExecuteResponse)> reply) {
  c_->world().Log(node_, &req.txid, "EXECUTE on " + req.resource);
  Serve<proto::ExecuteRequest, proto::ExecuteResponse>(req, std::move(reply),
                                                       &participant::AgentCore::OnExecute);
}

void SimAgent::Prepare(const proto::PrepareRequest& req,
                       std::function<void(proto::PrepareResponse)> reply) {
  c_->world().Log(node_, &req.txid, "PREPARE on " + req.resource +
                                        (req.__isset.work ? " (with work)" : ""));
  Serve<proto::PrepareRequest, proto::PrepareResponse>(req, std::move(reply),
                                                       &participant::AgentCore::OnPrepare);
}

void SimAgent::Decide(const proto::DecideRequest& req,
                      std::function<void(proto::DecideResponse)> reply) {
  c_->world().Log(node_, &req.txid,
                  (req.__isset.precommit && req.precommit ? std::string("PRE_COMMIT")
                                                          : std::string(OutcomeName(req.outcome)) +
                                                                " decision") +
                      " on " + req.resource);
  if (live_ && req.outcome == proto::Outcome::ABORTED) c_->checker().OnAbortDecisionHeard(node_, req.txid);
  Serve<proto::DecideRequest, proto::DecideResponse>(req, std::move(reply),
                                                     &participant::AgentCore::OnDecide);
}

bool SimAgent::ForgeDecision(Rng& rng) {
  if (!live_) return false;
  std::vector<participant::BranchCore::BranchView> in_doubt;
  for (auto& b : live_->core.Branches()) {
    if (b.state == "prepared" || b.state == "precommitted") in_doubt.push_back(std::move(b));
  }
  if (in_doubt.empty()) return false;
  const auto& b = in_doubt[rng.Index(in_doubt.size())];
  proto::DecideRequest req;
  req.txid = b.txid;
  req.resource = b.resource;
  req.outcome = rng.Bernoulli(0.5) ? proto::Outcome::COMMITTED : proto::Outcome::ABORTED;
  if (!rng.Bernoulli(0.2)) req.__set_decision_mac(static_cast<int64_t>(rng.Next() | 1));
  c_->world().Log(node_, &req.txid,
                  std::string("FORGED ") + OutcomeName(req.outcome) + " decision on " + req.resource +
                      (req.__isset.decision_mac ? " with a MAC of its own" : " without a MAC"));
  Serve<proto::DecideRequest, proto::DecideResponse>(
      req,
      [this, txid = req.txid](proto::DecideResponse r) {
        c_->world().Log(node_, &txid, "forged decision answered: " + (r.status.code == proto::Code::OK
                                                                          ? std::string("applied")
                                                                          : r.status.message));
      },
      &participant::AgentCore::OnDecide);
  return true;
}

void SimAgent::BranchState(const proto::BranchStateRequest& req,
                           std::function<void(proto::BranchStateResponse)> reply) {
  c_->world().Log(node_, &req.txid, "BRANCH_STATE asked for " + req.resource);
  Serve<proto::BranchStateRequest, proto::BranchStateResponse>(
      req, std::move(reply), &participant::AgentCore::OnBranchState);
}

// ----------------------------------------------------------------- effects

void SimAgent::Apply(Live* l, participant::AgentCoreEffects fx) {
  World& w = c_->world();
  if (!*l->alive) return;
  if (fx.wake_at) Wake(l, *fx.wake_at);
  for (const participant::AgentLogLine& line : fx.logs) w.Log(node_, nullptr, line.message);

  for (participant::AgentReply& r : fx.replies) {
    auto it = l->pending.find(r.token);
    if (it == l->pending.end()) continue;
    auto reply = std::move(it->second.reply);
    TxId txid = it->second.txid;
    l->pending.erase(it);
    const char* point = nullptr;
    if (auto* v = std::get_if<proto::PrepareResponse>(&r.response)) {
      w.Log(node_, &txid, std::string("vote ") + VoteName(v->vote) +
                              (v->reason.empty() ? "" : " (" + v->reason + ")"));
      if (v->vote == proto::Vote::YES) point = "agent.after_vote";
    } else if (auto* d = std::get_if<proto::DecideResponse>(&r.response)) {
      w.Log(node_, &txid, d->status.code == proto::Code::OK ? "ack ok" : "ack: " + d->status.message);
      if (d->status.code == proto::Code::OK) point = "agent.after_ack";
    } else if (auto* e = std::get_if<proto::ExecuteResponse>(&r.response)) {
      if (e->status.code != proto::Code::OK) {
        w.Log(node_, &txid, "execute failed: " + e->status.message);
      } else {
        point = "agent.after_execute_reply";
      }
    }
    reply(std::move(r.response));
    // The reply has left; the node dies right after.
    if (point != nullptr && c_->CrashPoint(node_, point)) return;
  }

  for (participant::ResourceOp& op : fx.ops) {
    Run(l, std::move(op));
    if (!*l->alive) return;
  }

  std::vector<participant::AgentCoreEffects> later;
  for (const participant::PeerQuery& q : fx.peer_queries) {
    w.Log(node_, &q.txid, "autonomous termination: asks " + q.to.resource + "@" + q.to.address);
    SimAgent* peer = c_->AgentAt(q.to.address);
    auto alive = l->alive;
    auto done = [this, l, alive, q](Status s, proto::BranchStateResponse r) {
      if (!*alive) return;
      c_->world().Log(node_, &q.txid, "autonomous termination: " + q.to.resource + " is " +
                                          (s.ok() ? r.state : s.ToString()));
      Apply(l, l->core.OnPeerStateReply(q, s, r, c_->world().now()));
    };
    if (peer == nullptr) {
      w.After(1, [done] { done(Status::Unavailable("no such agent"), proto::BranchStateResponse()); });
      continue;
    }
    proto::BranchStateRequest req;
    req.txid = q.txid;
    req.resource = q.to.resource;
    c_->net().Call<proto::BranchStateResponse>(
        node_, peer->node(), c_->timing().query_timeout, true,
        [peer, req](std::function<void(proto::BranchStateResponse)> reply) {
          peer->BranchState(req, std::move(reply));
        },
        done);
  }
  for (const TxId& txid : fx.queries) {
    if (c_->bugs().heuristic_commit) {
      // BUG: an in-doubt branch commits on its own instead of asking.
      bool prepared = false;
      for (const auto& b : l->core.Branches()) {
        prepared = prepared || (b.txid == txid && b.state == "prepared");
      }
      if (prepared) {
        w.Log(node_, &txid, "in doubt: commits heuristically without asking");
        proto::OutcomeResponse committed;
        committed.outcome = proto::Outcome::COMMITTED;
        later.push_back(l->core.OnOutcomeReply(txid, Status::Ok(), committed, w.now()));
        continue;
      }
    }
    w.Log(node_, &txid, "asks the coordinator for the outcome");
    proto::OutcomeRequest req = l->core.OutcomeQuery(txid);
    auto alive = l->alive;
    c_->CoordinatorCall<proto::OutcomeRequest, proto::OutcomeResponse>(
        node_, req, c_->timing().query_timeout, c_->timing().query_timeout,
        &SimCoordinator::Outcome, [this, l, alive, txid](Status s, proto::OutcomeResponse r) {
          if (!*alive) return;
          participant::OutcomeAnswer a = participant::ReadOutcomeAnswer(s, r);
          c_->world().Log(node_, &txid,
                          "outcome answer: " + (a.status.ok() ? std::string(OutcomeName(a.outcome))
                                                              : a.status.ToString()));
          if (a.status.ok() && a.outcome == proto::Outcome::ABORTED) {
            c_->checker().OnAbortedOutcomeHeard(node_, txid);
          }
          Apply(l, l->core.OnOutcomeReply(txid, s, r, c_->world().now()));
        });
  }
  for (participant::AgentCoreEffects& more : later) Apply(l, std::move(more));
}

void SimAgent::Run(Live* l, participant::ResourceOp op) {
  World& w = c_->world();
  w.Log(node_, &op.txid, std::string(OpName(op.kind)) + " op on " + op.resource);
  uint64_t id = op.id;
  auto kind = op.kind;
  auto alive = l->alive;
  TxId txid = op.txid;
  std::string resource = op.resource;
  // The shell tells the checker of final branches; whether the branch wrote
  // is read before the op runs (its changes are gone after).
  // (A heuristic decision, here the autonomous termination's, ends it too.)
  const bool heuristic_commit = op.heuristic.outcome == proto::Outcome::COMMITTED;
  bool report = kind == participant::ResourceOp::kCommit ||
                kind == participant::ResourceOp::kRollback ||
                kind == participant::ResourceOp::kHeuristic;
  bool wrote = report && HasChanges(l, op.resource, op.txid);
  SimWorker* worker = l->workers.at(op.resource).get();
  // A runaway statement: the worker burns CPU while it is queued or runs.
  const bool slow = (kind == participant::ResourceOp::kExecute ||
                     kind == participant::ResourceOp::kExecuteAndPrepare) &&
                    HasSlowStatement(op.statements);
  if (slow) ++worker->slow;
  // What the resource reports reaches the core once its worker is free:
  // after the CPU a runaway statement in the same group burnt.
  auto when_free = [this, worker, alive](std::function<void()> fn) {
    Micros busy = worker->BusyFor();
    if (busy == 0) return fn();
    c_->world().After(busy, [alive, fn = std::move(fn)] {
      if (*alive) fn();
    });
  };
  auto exec_done = [this, l, alive, id, kind, txid, resource, slow, worker,
                    when_free](participant::ExecuteResult r) {
    if (!*alive) return;
    c_->world().Log(node_, &txid, std::string(OpName(kind)) + " done: " +
                                      (r.status.ok() ? "ok" : r.status.ToString()));
    if (slow) {
      --worker->slow;
      if (r.status.code() == Status::kTimeout) {
        ++c_->injected().slow_statement;
        c_->world().LogFault(node_, "SLOW STATEMENT interrupted on " + resource + " after " +
                                        FormatTime(worker->BusyFor()) + " of CPU");
        c_->checker().OnStatementInterrupted(resource, txid);
      } else if (r.status.ok()) {
        c_->checker().Violation("liveness", &txid,
                                "a runaway statement on " + resource +
                                    " ran to its end: the resource's statement time limit never "
                                    "interrupted it");
      }
    }
    if (r.status.code() == Status::kStorageFailed) StorageFailed(l, resource, txid, r.status);
    if (kind == participant::ResourceOp::kExecuteAndPrepare && r.status.ok() && r.wrote) {
      c_->checker().OnBranchPrepared(node_, resource, txid);  // durable now
    }
    when_free([this, l, id, kind, r = std::move(r)] {
      if (kind == participant::ResourceOp::kExecuteAndPrepare && r.status.ok() && r.wrote) {
        if (c_->CrashPoint(node_, "agent.after_prepared")) return;  // PREPARED durable, no vote yet
      } else if (c_->CrashPoint(node_, "agent.after_execute")) {
        return;
      }
      Apply(l, l->core.OnExecuteDone(id, r, c_->world().now()));
    });
  };
  auto status_done = [this, l, alive, id, kind, txid, resource, report, wrote, heuristic_commit,
                      when_free](Status s) {
    if (!*alive) return;
    c_->world().Log(node_, &txid, std::string(OpName(kind)) + " done: " + (s.ok() ? "ok" : s.ToString()));
    if (kind == participant::ResourceOp::kPrepare && s.ok()) {
      c_->checker().OnBranchPrepared(node_, resource, txid);
    }
    if (kind == participant::ResourceOp::kPreCommit && s.ok()) {
      c_->checker().OnBranchPreCommitted(node_, resource, txid);
    }
    if (report && s.ok()) {
      if (kind == participant::ResourceOp::kHeuristic) {
        // A decision taken here (the agent heard none): the checker compares
        // it with the other participants' outcomes.
        if (heuristic_commit) {
          c_->checker().OnBranchCommitted(node_, resource, txid, wrote);
        } else {
          c_->checker().OnAbortDecisionHeard(node_, txid);
          c_->checker().OnBranchAborted(node_, resource, txid, wrote);
        }
      } else if (kind == participant::ResourceOp::kCommit) {
        c_->checker().OnBranchCommitted(node_, resource, txid, wrote);
      } else {
        c_->checker().OnBranchAborted(node_, resource, txid, wrote);
      }
    }
    if (s.code() == Status::kStorageFailed) StorageFailed(l, resource, txid, s);
    when_free([this, l, id, kind, s] {
      const char* point = nullptr;
      if (s.ok()) {
        switch (kind) {
          case participant::ResourceOp::kPrepare: point = "agent.after_prepared"; break;
          case participant::ResourceOp::kCommit: point = "agent.after_committed"; break;
          case participant::ResourceOp::kPreCommit: point = "agent.after_precommitted"; break;
          case participant::ResourceOp::kRollback: point = "agent.after_rollback"; break;
          default: break;
        }
      }
      if (point != nullptr && c_->CrashPoint(node_, point)) return;
      Apply(l, l->core.OnOpDone(id, s, c_->world().now()));
    });
  };
  // The core names only resources that recovered.
  participant::ResourceManager& rm = *l->resources.at(op.resource);
  participant::RunResourceOp(rm, std::move(op), exec_done, status_done);
}

}  // namespace txc::sim
