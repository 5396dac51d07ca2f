// The simulated cluster of one seed: the shells that run the production cores
// (CommitDriver + TxnTable in SimCoordinator, AgentCore + SqliteResources
// on a simulated VFS in SimAgent) exactly as coordinator/node.cc and participant/agent.cc do, the
// workload clients (as client/client.cc), the fault schedule, and the phases
// of a run (load with faults, heal and quiet, crash everything and quiet,
// final checks).
//
// Internal to sim/. Not thread-safe; one World thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "client/txid_reserve.h"
#include "coordinator/commit_driver.h"
#include "coordinator/node_core.h"
#include "coordinator/paxos/replica.h"
#include "coordinator/txn_table.h"
#include "participant/branch_core.h"
#include "sim/agent_shell.h"
#include "sim/bank.h"
#include "sim/checker.h"
#include "sim/simulation.h"
#include "sim/world.h"

namespace txc::sim {

class Cluster;

// Timeouts the simulated deployment runs with (shorter than production
// defaults, so a seed covers many timeouts in little virtual time).
struct Timing {
  coord::DriverOptions driver;
  participant::AgentOptions agent;
  Micros tick = 20 * kMillis;           // how often the cores' Tick runs
  Micros query_timeout = 1 * kSeconds;  // an agent's outcome query (with retries)
  Micros exec_timeout = 1 * kSeconds;   // a client's Execute call
  Micros coord_attempt = 2 * kSeconds;  // one client attempt at the coordinator
  Micros begin_deadline = 8 * kSeconds;
  Micros commit_deadline = 15 * kSeconds;
  Micros abort_deadline = 3 * kSeconds;
  // SqliteResource's max_execute_time (production default 10 s): a runaway
  // statement (kSlowSql) is interrupted after this much simulated CPU.
  Micros statement_limit = 300 * kMillis;
  // The coordinator group (production defaults: tick 5 ms, heartbeat 50 ms,
  // election 300..600 ms; the sim keeps their ratios at half the scale).
  Micros paxos_tick = 5 * kMillis;
  Micros paxos_heartbeat = 25 * kMillis;
  Micros paxos_election_min = 150 * kMillis;
  Micros paxos_election_max = 300 * kMillis;
  // Group mode: applied slots between snapshots (node.h's snapshot_every,
  // 50000 in production): small, so lagging and restarted replicas catch up
  // by snapshot install.
  uint64_t snapshot_every = 16;
  // Group mode: bytes of a snapshot image per catch-up message (paxos
  // Options::snapshot_chunk, 4 MiB in production): small, so every install
  // is a stream of chunks.
  size_t paxos_snapshot_chunk = 256;
  Timing();
};

struct BugFlags {
  bool vote_before_durable = false;
  bool lying_disk = false;
  bool early_commit_reply = false;
  bool forget_undo = false;
  bool ack_commit_before_sync = false;
  bool skip_undo_on_conflict = false;
  bool heuristic_commit = false;
  bool ack_before_durable_accept = false;
  bool resurrected_decide = false;
  bool forgotten_commit_as_abort = false;
  bool empty_disk_votes = false;
  bool dead_leader_heartbeats = false;
  bool persist_before_install = false;
  bool abort_after_prepared = false;
  bool skip_precommit_choose = false;
};

// txsim --measure (sim/measure.cc): a topology built by hand instead of
// drawn from the seed, no random faults, every message exactly `one_way` on
// the wire and every disk sync exactly `sync` long.
struct MeasureSetup {
  int agents = 2;                // agent1..agentN, one bank resource on each
  Micros one_way = 1 * kMillis;
  Micros sync = 0;
};

// A transaction a client finished: what a late query (SimClient::LateQuery)
// asks about.
struct Finished {
  TxId txid;
  std::vector<proto::Participant> participants;
  std::vector<std::string> wrote;
  bool commit_requested = false;
};

// ----------------------------------------------------------- coordinator

// One coordinator replica: the simulated shell around coord::NodeCore
// (sim/coordinator_shell.cc).
//
// Single-replica mode (replica_id 0, as CoordinatorNode with its LocalLog):
// the decision log on this node's disk; at boot it replays the durable log
// into a fresh TxnTable, appends EPOCH(last+1), and serves once that is
// durable.
//
// Group mode (replica_id 1..N, as CoordinatorNode with its PaxosLog): a
// paxos::Replica whose acceptor state (promised ballot, accepted entries) is
// on this node's disk, made durable with the disk's group commit before
// OnPersisted; peer messages through the simulated network; on
// leader_recovered it proposes EPOCH(epoch) and serves once that is applied;
// on a step-down or a new leader it stops serving with the leader as hint.
class SimCoordinator {
 public:
  SimCoordinator(Cluster* cluster, int node, std::string address, int replica_id = 0);
  ~SimCoordinator();

  void Boot();
  void Crash();  // the volatile state (table, driver, waiting clients) is gone
  // An operator's "txadmin txns retry --all" at this replica (NodeCore::OnRetry).
  void OperatorRetry();
  void SetDiskOptions(const DiskOptions& o) { disk_.SetOptions(o); }
  bool up() const { return live_ != nullptr; }
  int node() const { return node_; }
  const std::string& address() const { return address_; }
  int replica_id() const { return replica_id_; }
  // Syncs (fsyncs) this node's disk started: its decision log or acceptor store.
  uint64_t disk_syncs() const { return disk_.syncs(); }
  // Group mode: this replica won phase 1 and has not stepped down.
  bool leads() const;
  // Group mode: this replica's acceptor is rejoining (it started empty).
  bool joining() const;
  // Up, and its log store failed (it waits for the operator's restart).
  bool log_failed() const;
  // Faults: the disk fails its next sync (disk_full: ENOSPC, none of the
  // writes reached it; else EIO, `partial`: some did). Sim's Disk::Break.
  void BreakDisk(bool full, bool partial);
  // Faults, while down: the data directory comes back empty (group mode).
  // `joining`: the acceptor image says so, as paxos_log.cc sets for an empty
  // directory; false only under the empty-disk-votes bug.
  void Wipe(bool joining);

  // Group mode: a peer's message arrives.
  void DeliverPeer(const paxos::Message& m);
  // Replica `id`'s process went away and its kernel closed our connection to
  // it (NodeCore::OnPeerGone).
  void DeliverPeerGone(int id);

  // Client RPCs (run when a request reaches this node).
  void Begin(const proto::BeginRequest& req, std::function<void(proto::BeginResponse)> reply);
  void Commit(const proto::CommitRequest& req, std::function<void(proto::CommitResponse)> reply);
  void Submit(const proto::SubmitRequest& req, std::function<void(proto::CommitResponse)> reply);
  void Abort(const proto::AbortRequest& req, std::function<void(proto::CommitResponse)> reply);
  void Outcome(const proto::OutcomeRequest& req, std::function<void(proto::OutcomeResponse)> reply);

  // Nothing left to do: serving, no transaction in the driver, none unended.
  bool Idle(std::string* why) const;

 private:
  struct Live;
  // Serving, and `txid` is one the table forgot but for (maybe) its outcome:
  // a query that reached past the retention (counted as `retention`).
  bool Forgotten(const TxId& txid) const;
  template <class Req, class Resp>
  void Serve(const Req& req, std::function<void(Resp)> reply, const TxId& txid, bool commit,
             coord::NodeEffects (coord::NodeCore::*in)(uint64_t, const Req&, Micros));
  // Carries out what the core asked for, in order; stops at a crash.
  void Apply(Live* l, coord::NodeEffects fx);
  // One action; false: the node crashed right there.
  bool Do(Live* l, coord::ClientReply& r, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::ProposeAction& p, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::ParticipantCall& call, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, paxos::Persist& p, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, paxos::Outgoing& o, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::AppliedAction& a, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::InstallAction& a, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::SnapshotAction& a, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::HeuristicHazard& h, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::AppendedAction& a, std::vector<coord::NodeEffects>* later);
  bool Do(Live* l, coord::NoteAction& n, std::vector<coord::NodeEffects>* later);
  // Single replica: a proposed slot is durable on this node's disk.
  void OnDurable(Live* l, uint64_t index, const std::vector<proto::Command>& cmds,
                 const std::string& bytes);
  void LogFailed(Live* l, const std::vector<proto::Command>& cmds, const Status& why);
  void WakeDriver(Live* l, Micros at);
  void WakeReplica(Live* l, Micros at);
  void BootReplica();
  // Applies to the durable image: the snapshot replaces the entries it covers.
  void KeepSnapshot(int64_t index, const std::string& image);

  Cluster* c_;
  int node_;
  std::string address_;
  int replica_id_;
  Disk disk_;
  // Group mode: the acceptor's durable image, its snapshot included.
  paxos::DurableState acceptor_;
  // The durable image of the decision log: (index, encoded batch), and the
  // last epoch this replica led (the log store's "epoch" meta).
  std::vector<std::pair<uint64_t, std::string>> log_;
  int64_t epoch_meta_ = 0;
  bool disk_full_ = false;  // the kind of the last BreakDisk
  std::unique_ptr<Live> live_;
};

// ---------------------------------------------------------------- client

// A workload client: bank transfers, interactive (Begin, Execute..., Commit)
// and one-shot (Begin + Submit), a read-only audit and an application
// rollback; it retries the coordinator with the same txid (as client.cc's
// CoordinatorSet) and, under faults, sometimes vanishes mid-transaction.
class SimClient {
 public:
  SimClient(Cluster* cluster, int node, int index);
  void Start();
  bool done() const { return done_; }

 private:
  enum class Kind { kTransfer, kOneShot, kAudit, kRollback };
  struct Step {
    std::string resource;
    std::vector<proto::Statement> statements;
    bool writes = false;
    bool slow = false;  // kSlowSql: the resource interrupts it (TIMEOUT)
  };
  struct Txn {
    Kind kind = Kind::kTransfer;
    TxId txid;
    std::vector<Step> steps;
    size_t next = 0;
    std::vector<proto::Participant> participants;
    std::vector<std::string> wrote;
    int crash_stage = 0;  // 0: none; 1 after Begin; 2 after the first Execute; 3 after sending Commit
    bool commit_requested = false;  // Commit or Submit sent
    // After its slow statement failed, the application goes on and asks to
    // commit anyway: the doomed branch must vote NO.
    bool ignore_failure = false;
    bool kept = false;         // a one-shot's txid from a reservation (BeginRequest.count)
    bool resubmitted = false;  // once under a new txid (the kept one's leader was gone)
  };

  void Next();
  void Plan();
  void Begin();
  void ExecuteNext();
  void SendCommit();
  void SendSubmit();
  void Rollback(const std::string& why);
  void OnCommitAnswer(const Status& s, const proto::CommitResponse& r);
  void Finish(int outcome, const std::string& why);  // 0 committed, 1 aborted, 2 unknown
  void Remember();  // the late queries' pool gets this transaction
  void Vanish();
  // Asks the Outcome of a txid that ended long ago (and, if its client asked
  // to commit it, retries its Commit), then goes on with Next(). Every
  // answer goes to the checker (Checker::OnLateAnswer).
  void LateQuery();
  bool Alive(uint64_t inc) const;
  // Runs `fn` later if this incarnation is still alive.
  void Later(Micros delay, std::function<void()> fn);

  Cluster* c_;
  int node_;
  int index_;
  bool done_ = false;
  Txn txn_;
  // One-shot txids reserved a few at a time, as client/ does (lost when the
  // client crashes).
  TxidReserve reserve_{kReserveTxids};
  static constexpr int32_t kReserveTxids = 4;
};

// --------------------------------------------------------------- cluster

class Cluster {
 public:
  explicit Cluster(const SimOptions& options);
  ~Cluster();

  SimResult Run();

  // txsim --measure (sim/measure.cc, which defines this constructor): the
  // coordinator replicas (SimOptions::replicas), MeasureSetup::agents agents
  // and one client node, which sim/measure.cc drives itself; nothing runs
  // until BootServers().
  Cluster(const SimOptions& options, const MeasureSetup& setup);
  void BootServers();
  int measure_client() const { return measure_client_; }
  SimAgent* agent(size_t i) { return agents_[i].get(); }
  size_t agent_count() const { return agents_.size(); }
  // The first time a shell reaches crash point `point` (even with faults
  // off), its node crashes there and `crashed` is told; no restart follows.
  void ArmCrashPoint(std::string point, std::function<void(int node)> crashed) {
    armed_point_ = std::move(point);
    armed_crashed_ = std::move(crashed);
  }
  void RestartNode(int node) { Restart(node); }
  // Every message a coordinator replica sends a peer, as it leaves.
  void SetPeerObserver(std::function<void(const paxos::Message&)> o) { peer_observer_ = std::move(o); }
  void OnPeerSend(const paxos::Message& m) {
    if (peer_observer_) peer_observer_(m);
  }

  World& world() { return *world_; }
  Network& net() { return *net_; }
  Checker& checker() { return *checker_; }
  const Timing& timing() const { return timing_; }
  const BugFlags& bugs() const { return bugs_; }
  FaultLevel faults() const { return options_.faults; }
  uint64_t seed() const { return options_.seed; }
  // Agents register keys and accept signed decisions (SimOptions::sign_decisions).
  bool sign_decisions() const { return options_.confirm_decisions && options_.sign_decisions; }
  bool split_execute() const { return options_.workload == "split-execute"; }
  // The commit protocol clients ask for (SimOptions::protocol).
  proto::Protocol::type protocol() const {
    return options_.protocol == "3pc" ? proto::Protocol::THREE_PC : proto::Protocol::TWO_PC;
  }
  const DiskOptions& disk_options() const { return disk_options_; }
  // Scenario 3pc-partition: the leader is about to send PRE_COMMIT of
  // `txid` (whose participants are `ps`) to the agent at `to`; the first
  // time another agent takes part too, `to` is cut off from every node.
  void OnPreCommitSend(const TxId& txid, const std::string& to,
                       const std::vector<proto::Participant>& ps);
  // The scenario still waits for its PRE_COMMIT (callers skip the work of
  // OnPreCommitSend otherwise).
  bool scenario_partition_pending() const {
    return options_.scenario == "3pc-partition" && !scenario_partitioned_;
  }
  // Scenario abort-after-prepared: every transaction is an interactive
  // transfer over three resources (two on one agent) whose client vanishes
  // once its Commit is sent, until the scenario has fired.
  bool scenario_abort_pending() const {
    return options_.scenario == "abort-after-prepared" && !scenario_abort_fired_;
  }
  // Scenario abort-after-prepared: coordinator `node` just sent the PREPARE
  // of `txid` to the agent at `to`. The first time that agent holds two
  // branches of an interactive transaction, its disk stalls (that PREPARE's
  // sync takes 3 s) and the coordinator crashes at once, before the other
  // PREPAREs leave, and restarts 300 ms later knowing nothing of `txid`.
  // The agent's other branch, ACTIVE and idle, then asks for the outcome
  // (presumed abort: ABORTED) while the stalled PREPARE runs: the abort
  // queued for that branch must not run once it votes YES. True: the
  // coordinator crashed (the caller returns at once).
  bool OnPrepareSent(int node, const TxId& txid, const std::string& to,
                     const proto::PrepareRequest& req);

  // A named point in a shell: under a fault schedule that armed it, the node
  // crashes right here (returns true; the caller must return at once).
  bool CrashPoint(int node, const char* point);
  // `power_loss`: the whole cluster's final power loss (counted as power, not crash).
  void CrashNode(int node, const std::string& why, bool power_loss = false);
  // A coordinator's log store, or an agent's resource, failed on its
  // storage (counted here): the operator restarts the node later; in a
  // group, the other replicas must elect a leader meanwhile.
  void OnDiskFailed(int node, bool full);

  SimCoordinator* coordinator() { return coordinators_.front().get(); }
  int replicas() const { return static_cast<int>(coordinators_.size()); }
  SimCoordinator* CoordinatorById(int replica_id) { return coordinators_[replica_id - 1].get(); }
  SimAgent* AgentAt(const std::string& address);
  std::string AddressOf(const std::string& resource) const;
  const std::vector<std::string>& resource_names() const { return resource_names_; }
  int accounts_per_resource(const std::string& resource) const;
  // A members id no transaction of this run has used on `resource` yet.
  int64_t NextMemberId(const std::string& resource);

  // Calls the coordinator group as client.cc's CoordinatorSet does: retries on
  // UNAVAILABLE, NOT_LEADER, a timeout or a refused connection, with backoff,
  // until `deadline` has passed.
  template <class Req, class Resp>
  void CoordinatorCall(int from, const Req& req, Micros deadline, Micros attempt_timeout,
                       void (SimCoordinator::*method)(const Req&, std::function<void(Resp)>),
                       std::function<void(Status, Resp)> done);

  // Workload accounting.
  bool TakeTicket();
  void Count(int outcome);
  double client_crash_p() const { return client_crash_p_; }
  bool faults_active() const { return faults_active_; }
  // The FAULTS line's counters of this seed: the shell that injects a fault
  // (or sees one happen) counts it here.
  FaultCounts& injected() { return result_.faults; }
  // Finished transactions, oldest first (the late queries' pool).
  std::vector<Finished>& finished() { return finished_; }

 private:
  void Build();
  void ConfigureFaults();
  void ScheduleRandomCrash();
  void SchedulePartition();
  void ScheduleLeaderCrash();
  // Every 2.5 s of virtual time while faults last, the operator retries every
  // undelivered decision at the serving leader (no randomness drawn).
  void ScheduleOperatorRetry();
  void ScheduleGroupPartition();
  void ScheduleDiskFault();
  // Storage failures of agents' disks (EIO at write or sync, ENOSPC).
  void ScheduleAgentDiskFault();
  // An agent's disk hangs: its next sync takes 1.5-3.5 s, longer than the
  // vote timeout and the agent's active timeout, so a PREPARE being forced
  // meets the branch's own outcome query and the group's abort.
  void ScheduleAgentDiskStall();
  // An agent that is up with a working disk, at random; nullptr if none.
  SimAgent* PickHealthyAgent();
  // Group mode: a replica's log failed and it waits for the operator's
  // restart. Meanwhile no fault touches the coordinator replicas (crashes,
  // crash points, partitions), so CheckElection's window is clean.
  bool ElectionWindow() const;
  void ScheduleEmptyDisk();
  // SimOptions::forge_decisions: one forged decision to a random agent every
  // 5-50 ms while forging_.
  void ScheduleForgery();
  // Group mode, after `failed` lost its log at `since`: samples until
  // `since + bound`; a violation if no healthy replica led by then although
  // a connected majority of healthy, voting replicas was up throughout.
  void CheckElection(int failed, uint64_t serial, Micros since, std::vector<uint64_t> serials,
                     bool disturbed);
  SimCoordinator* CoordinatorAt(int node) const;
  void Restart(int node);
  void StopFaults();
  bool Quiescent(std::string* why) const;
  void VisitState(const Checker::BankVisitor& v) const;
  void VisitDurable(const Checker::BankVisitor& v) const;
  bool IsServer(int node) const {
    return (node >= 0 && node <= static_cast<int>(agents_.size())) || CoordinatorAt(node) != nullptr;
  }

  SimOptions options_;
  bool scenario_partitioned_ = false;
  bool scenario_abort_fired_ = false;
  Timing timing_;
  BugFlags bugs_;
  std::unique_ptr<World> world_;
  std::unique_ptr<Network> net_;
  std::unique_ptr<Checker> checker_;
  std::vector<std::unique_ptr<SimCoordinator>> coordinators_;  // replica 1 at node 0
  std::vector<int> servers_;  // coordinator and agent nodes: 0, agents 1..n, replicas 2..
  std::map<int, int> coord_guess_;  // caller node -> the coordinator index it tries next
  std::vector<std::unique_ptr<SimAgent>> agents_;  // node ids 1..n
  std::vector<std::unique_ptr<SimClient>> clients_;
  std::vector<std::string> resource_names_;
  std::map<std::string, std::string> resource_address_;
  std::map<std::string, int> accounts_;
  std::map<std::string, int64_t> next_member_id_;
  std::map<std::string, int> address_node_;

  // Faults.
  DiskOptions disk_options_;
  bool faults_active_ = false;
  bool forging_ = false;  // the load runs with SimOptions::forge_decisions
  std::map<std::string, double> crash_points_;  // armed point -> crash probability per hit
  int crash_budget_ = 0;         // targeted crashes left
  int random_crash_budget_ = 0;  // random crashes left
  int leader_crash_budget_ = 0;  // group mode: crashes of the current leader left
  Micros leader_crash_min_ = 0, leader_crash_max_ = 0;
  Micros crash_every_min_ = 0, crash_every_max_ = 0;
  Micros down_min_ = 0, down_max_ = 0;
  Micros partition_every_min_ = 0, partition_every_max_ = 0;
  double partition_p_ = 0;
  Micros partition_min_ = 0, partition_max_ = 0;
  double client_crash_p_ = 0;
  std::vector<uint64_t> crash_serial_;  // per node, to ignore stale restarts
  int disk_fault_budget_ = 0;   // disk_error / disk_full left
  int agent_disk_fault_budget_ = 0;  // the same, on agents' disks
  int agent_stall_budget_ = 0;       // ScheduleAgentDiskStall
  int empty_disk_budget_ = 0;   // group mode: empty-disk restarts left
  std::set<int> wipe_on_restart_;  // nodes whose disk comes back empty

  // txsim --measure.
  int measure_client_ = -1;
  std::string armed_point_;
  std::function<void(int)> armed_crashed_;
  std::function<void(const paxos::Message&)> peer_observer_;

  // Workload.
  int tickets_ = 0;
  std::vector<Finished> finished_;
  SimResult result_;
};

// ------------------------------------------------------------ templates

template <class Req, class Resp>
void Cluster::CoordinatorCall(int from, const Req& req, Micros deadline, Micros attempt_timeout,
                              void (SimCoordinator::*method)(const Req&, std::function<void(Resp)>),
                              std::function<void(Status, Resp)> done) {
  struct Attempt {
    Cluster* c;
    int from;
    uint64_t inc;
    Req req;
    Micros deadline;
    Micros attempt_timeout;
    Micros backoff = 5 * kMillis;
    void (SimCoordinator::*method)(const Req&, std::function<void(Resp)>);
    std::function<void(Status, Resp)> done;
    std::string last_error = "no attempt";
  };
  auto a = std::make_shared<Attempt>();
  a->c = this;
  a->from = from;
  a->inc = net_->incarnation(from);
  a->req = req;
  a->deadline = world_->now() + deadline;
  a->attempt_timeout = attempt_timeout;
  a->method = method;
  a->done = std::move(done);
  auto try_once = std::make_shared<std::function<void()>>();
  *try_once = [a, weak = std::weak_ptr<std::function<void()>>(try_once)]() {
    Cluster* c = a->c;
    Micros now = c->world_->now();
    if (now >= a->deadline) {
      return a->done(Status::Unavailable("coordinator group unreachable (" + a->last_error + ")"),
                     Resp());
    }
    auto self = weak.lock();
    // As rpc::CoordinatorSet: the member this caller believes leads.
    int& guess = c->coord_guess_[a->from];
    int n = static_cast<int>(c->coordinators_.size());
    if (guess < 0 || guess >= n) guess = 0;
    int tried = guess;
    SimCoordinator* coord = c->coordinators_[tried].get();
    Micros timeout = std::min(a->attempt_timeout, a->deadline - now);
    c->net_->template Call<Resp>(
        a->from, coord->node(), timeout, true,
        [coord, a](std::function<void(Resp)> reply) { (coord->*(a->method))(a->req, std::move(reply)); },
        [a, self, tried](Status s, Resp r) {
          Cluster* c = a->c;
          int n = static_cast<int>(c->coordinators_.size());
          int& guess = c->coord_guess_[a->from];
          bool redirected = false;
          if (s.ok()) {
            if (r.status.code != proto::Code::NOT_LEADER &&
                r.status.code != proto::Code::UNAVAILABLE) {
              return a->done(Status::Ok(), std::move(r));
            }
            a->last_error = r.status.message;
            if (r.status.code == proto::Code::NOT_LEADER && r.status.__isset.leader_hint) {
              for (int i = 0; i < n; ++i) {
                if (c->coordinators_[i]->address() == r.status.leader_hint && i != tried) {
                  guess = i;
                  redirected = true;
                }
              }
            }
          } else {
            a->last_error = s.ToString();
          }
          // UNAVAILABLE, a timeout, a refusal or a useless hint: the next member.
          if (!redirected && guess == tried) guess = (tried + 1) % n;
          Micros backoff = redirected ? 1 * kMillis : a->backoff;
          if (!redirected) a->backoff = std::min<Micros>(a->backoff * 2, 200 * kMillis);
          c->world_->After(backoff, [a, self] {
            if (!a->c->net_->up(a->from) || a->c->net_->incarnation(a->from) != a->inc) return;
            (*self)();
          });
        });
  };
  (*try_once)();
}

}  // namespace txc::sim
