// Cluster: one seed's whole system, its fault schedule and its phases.
#include "sim/cluster.h"

#include <mutex>

#include <algorithm>
#include <sstream>

#include "common/log.h"

namespace txc::sim {

namespace {

// Every crash point the shells name, with where it is.
const char* const kCrashPoints[] = {
    "coord.votes_outstanding",  // PREPAREs sent, no votes back yet
    "coord.decide_proposed",    // DECIDE(COMMIT) proposed, not durable yet
    "coord.after_decide",       // DECIDE durable and applied, COMMIT not sent
    "coord.commit_sent",        // COMMIT sent, acks outstanding
    "coord.after_end",          // END durable
    "coord.after_epoch",        // a new epoch durable, just serving
    "agent.after_execute",      // a statement ran (ACTIVE, not durable), no reply yet
    "agent.after_execute_reply",  // ... and its reply has left
    "agent.after_prepared",     // PREPARED durable, the vote has not left
    "agent.after_vote",         // a YES vote has left
    "agent.after_committed",    // COMMITTED durable, the ack has not left
    "agent.after_ack",          // an ack has left
    "agent.after_rollback",     // rolled back (not durable), no reply yet
};
// 3PC's, armed only when clients ask for 3PC (so 2PC seeds keep their schedules).
const char* const kThreePhaseCrashPoints[] = {
    "coord.after_precommit",     // PRECOMMIT durable and applied, PRE_COMMIT not sent
    "agent.after_precommitted",  // PRECOMMITTED durable, the ack has not left
};

constexpr Micros kLoadCap = 60 * kSeconds;   // faults stop by then at the latest
constexpr Micros kQuietBound = 60 * kSeconds;  // termination must happen within this
constexpr Micros kPoll = 50 * kMillis;
// Group mode: once a replica's log failed, the healthy majority elects a
// leader within this (ten times the longest election timeout).
constexpr Micros kElectionBound = 3 * kSeconds;

}  // namespace

// ------------------------------------------------------------------- public

std::optional<FaultLevel> ParseFaultLevel(const std::string& s) {
  if (s == "none") return FaultLevel::kNone;
  if (s == "light") return FaultLevel::kLight;
  if (s == "heavy") return FaultLevel::kHeavy;
  return std::nullopt;
}

const char* FaultLevelName(FaultLevel f) {
  switch (f) {
    case FaultLevel::kNone: return "none";
    case FaultLevel::kLight: return "light";
    case FaultLevel::kHeavy: return "heavy";
  }
  return "?";
}

const std::vector<BugInfo>& Bugs() {
  static const std::vector<BugInfo> kBugs = {
      {"vote-before-durable",
       "the agent's resource answers PREPARE before the PREPARED record is synced"},
      {"lying-disk", "a disk acknowledges a sync but keeps the data in a volatile cache"},
      {"early-commit-reply",
       "the coordinator tells the client COMMITTED when DECIDE is proposed, not when durable"},
      {"forget-undo", "a rollback marks the branch ABORTED without applying its undo"},
      {"ack-commit-before-sync",
       "the agent's resource acknowledges a COMMIT written without a sync (deferred) before any "
       "sync covers it"},
      {"skip-undo-on-conflict",
       "a branch locks no unique-key values, and its undo skips (reporting success) a row it "
       "cannot restore because another branch took the unique value it had freed"},
      {"heuristic-commit", "an in-doubt agent commits on its own instead of asking"},
      {"ack-before-durable-accept",
       "a coordinator replica's ACCEPTED leaves before its accepted value is synced (group mode)",
       true},
      {"resurrected-decide",
       "a replica applies a DECIDE of an epoch that ended before it was chosen (group mode; "
       "coordinator/node.cc as of this commit)",
       true},
      {"empty-disk-votes",
       "a replica restarted with an empty data directory votes at once instead of rejoining "
       "first (group mode)",
       true},
      {"dead-leader-heartbeats",
       "a replica whose log storage failed stops serving but its replica core keeps leading "
       "and heartbeating, so the healthy majority elects nobody (group mode)",
       true},
      {"persist-before-install",
       "a replica hands its log the records of a turn before the leader's snapshot it installed "
       "in that turn, so a crash can keep its joined record without the image (group mode)",
       true},
      {"abort-after-prepared",
       "the agent's own abort of a branch that seemed abandoned (queued while it was ACTIVE, on "
       "an ABORTED or UNKNOWN answer) still runs after the branch voted YES"},
      {"3pc-skip-precommit-choose",
       "3PC: the leader sends PRE_COMMIT as soon as it proposes PRECOMMIT, before the group "
       "chose it (runs with --protocol 3pc)",
       false, true},
      {"forgotten-commit-as-abort",
       "a txid the table forgot after it ended is presumed aborted, even one that committed "
       "(the coordinator's shell rewrites such answers to ABORTED)"},
      {"trust-any-mac",
       "an agent applies any decision that carries a MAC without checking it against its key "
       "(runs with --forge-decisions, which implies --confirm-decisions)"},
  };
  return kBugs;
}

bool KnownBug(const std::string& name) {
  for (const BugInfo& b : Bugs()) {
    if (name == b.name) return true;
  }
  return false;
}

std::string ReplayCommand(const SimOptions& o) {
  std::string s = "txsim --seed " + std::to_string(o.seed) + " --faults " + FaultLevelName(o.faults);
  if (!o.bug.empty()) s += " --inject-bug " + o.bug;
  if (o.txns != 120) s += " --txns-per-seed " + std::to_string(o.txns);
  if (o.workload != "transfers") s += " --workload " + o.workload;
  if (o.replicas != 1) s += " --replicas " + std::to_string(o.replicas);
  if (!o.scenario.empty()) {
    s += " --scenario " + o.scenario;
  } else if (o.protocol != "2pc") {
    s += " --protocol " + o.protocol;
  }
  if (o.autonomous_termination) s += " --autonomous-termination";
  if (o.confirm_decisions) s += " --confirm-decisions";
  if (o.confirm_decisions && !o.sign_decisions) s += " --unsigned-decisions";
  if (o.forge_decisions) s += " --forge-decisions";
  return s + " --trace";
}

FaultCounts& FaultCounts::operator+=(const FaultCounts& o) {
#define TXC_SIM_FAULT_ADD(name) name += o.name;
  TXC_SIM_FAULT_CLASSES(TXC_SIM_FAULT_ADD)
#undef TXC_SIM_FAULT_ADD
  agent_disk_error += o.agent_disk_error;
  agent_disk_full += o.agent_disk_full;
  return *this;
}

std::string FaultCounts::Line() const {
  std::string s = "FAULTS";
#define TXC_SIM_FAULT_PRINT(name) s += " " #name "=" + std::to_string(name);
  TXC_SIM_FAULT_CLASSES(TXC_SIM_FAULT_PRINT)
#undef TXC_SIM_FAULT_PRINT
  return s;
}

SimResult RunSeed(const SimOptions& options) {
  // The cores' own log lines (the Paxos core logs its elections) would drown
  // the output; the simulator's trace tells the story.
  static const bool kQuiet = [] {
    SetLogLevel("off");
    return true;
  }();
  (void)kQuiet;
  // One seed at a time per process: SQLite's random number generator (WAL
  // salts, temporary names) is process-wide, and each SimVfs reseeds it from
  // its World; two seeds on two threads would draw from each other's stream
  // and the same seed would not replay the same way (seen: a bug caught by a
  // seed under --jobs 2 and not alone).
  static std::mutex one_seed_at_a_time;
  std::lock_guard<std::mutex> serial(one_seed_at_a_time);
  Cluster cluster(options);
  return cluster.Run();
}

Timing::Timing() {
  driver.vote_timeout = 1 * kSeconds;
  driver.txn_timeout = 4 * kSeconds;
  driver.resend_initial = 50 * kMillis;
  driver.resend_max = 1 * kSeconds;
  driver.call_timeout = 1 * kSeconds;
  driver.stuck_after = 3 * kSeconds;  // short, so stuck transactions happen in a seed
  driver.lazy_end = true;             // as the real node
  agent.lock_timeout = 300 * kMillis;
  agent.active_timeout = 500 * kMillis;
  agent.in_doubt_after = 300 * kMillis;
  agent.query_max = 2 * kSeconds;
  agent.final_retention = 30 * kSeconds;
  agent.lock_retry = 20 * kMillis;
  // A tiny ended-transaction retention, so every run crosses it: most late
  // outcome queries (SimClient's late queries, agents' in-doubt queries) reach
  // txids the table forgot but for their outcome. The bound on the outcome
  // runs stays the default: once a run is dropped, every txid below it that
  // was never decided is FORGOTTEN too, and a branch left in doubt by a
  // presumed abort (no DECIDE; its ABORT lost) could never settle.
  driver.table.ended_retained = 8;
  driver.precommit_ack_timeout = 1 * kSeconds;  // as the vote timeout
}

// ------------------------------------------------------------------ cluster

Cluster::Cluster(const SimOptions& options) : options_(options) {
  for (const BugInfo& b : Bugs()) {
    if (b.group && options_.bug == b.name && options_.replicas < 3) options_.replicas = 3;
    if (b.three_pc && options_.bug == b.name) options_.protocol = "3pc";
  }
  if (options_.replicas < 1) options_.replicas = 1;
  if (options_.scenario == "3pc-partition") {
    options_.protocol = "3pc";
    options_.faults = FaultLevel::kNone;
  }
  if (options_.scenario == "abort-after-prepared") {
    options_.protocol = "2pc";
    options_.faults = FaultLevel::kNone;
  }
  if (options_.autonomous_termination) timing_.agent.autonomous_termination_timeout = 2 * kSeconds;
  if (options_.forge_decisions || options_.bug == "trust-any-mac") {
    options_.confirm_decisions = options_.forge_decisions = true;
  }
  timing_.agent.confirm_decisions = options_.confirm_decisions;
  timing_.agent.testing_trust_any_mac = options.bug == "trust-any-mac";
  bugs_.vote_before_durable = options.bug == "vote-before-durable";
  bugs_.lying_disk = options.bug == "lying-disk";
  bugs_.early_commit_reply = options.bug == "early-commit-reply";
  bugs_.forget_undo = options.bug == "forget-undo";
  bugs_.ack_commit_before_sync = options.bug == "ack-commit-before-sync";
  bugs_.skip_undo_on_conflict = options.bug == "skip-undo-on-conflict";
  bugs_.heuristic_commit = options.bug == "heuristic-commit";
  bugs_.ack_before_durable_accept = options.bug == "ack-before-durable-accept";
  bugs_.resurrected_decide = options.bug == "resurrected-decide";
  bugs_.forgotten_commit_as_abort = options.bug == "forgotten-commit-as-abort";
  bugs_.empty_disk_votes = options.bug == "empty-disk-votes";
  bugs_.dead_leader_heartbeats = options.bug == "dead-leader-heartbeats";
  bugs_.persist_before_install = options.bug == "persist-before-install";
  bugs_.abort_after_prepared = options.bug == "abort-after-prepared";
  bugs_.skip_precommit_choose = options.bug == "3pc-skip-precommit-choose";
  world_ = std::make_unique<World>(options.seed, options.trace, options.hash_trace);
  net_ = std::make_unique<Network>(world_.get(), NetOptions());
  checker_ = std::make_unique<Checker>(world_.get(), ReplayCommand(options_), options.report);
  result_.seed = options.seed;
  Build();
}

Cluster::~Cluster() = default;

SimCoordinator* Cluster::CoordinatorAt(int node) const {
  for (const auto& c : coordinators_) {
    if (c->node() == node) return c.get();
  }
  return nullptr;
}

void Cluster::OnPreCommitSend(const TxId& txid, const std::string& to,
                              const std::vector<proto::Participant>& ps) {
  if (!scenario_partition_pending()) return;
  bool other = std::any_of(ps.begin(), ps.end(), [&](const auto& p) { return p.address != to; });
  SimAgent* victim = AgentAt(to);
  if (!other || victim == nullptr) return;
  scenario_partitioned_ = true;
  int id = net_->Isolate(victim->node());
  std::string what = "isolates " + world_->NodeName(victim->node()) +
                     " (scenario 3pc-partition: PRECOMMIT of " + ToString(txid) +
                     " is chosen, its PRE_COMMIT to " + to + " is lost)";
  world_->LogFault(-1, "PARTITION " + what);
  ++result_.faults.partition;
  world_->After(15 * kSeconds, [this, id, what] {
    net_->Heal(id);
    world_->LogFault(-1, "HEAL " + what);
  });
}

bool Cluster::OnPrepareSent(int node, const TxId& txid, const std::string& to,
                            const proto::PrepareRequest& req) {
  if (!scenario_abort_pending() || req.__isset.work) return false;
  long here = std::count_if(req.participants.begin(), req.participants.end(),
                            [&](const proto::Participant& p) { return p.address == to; });
  SimAgent* agent = AgentAt(to);
  if (here < 2 || agent == nullptr) return false;
  scenario_abort_fired_ = true;
  agent->StallDisk(3 * kSeconds);
  ++result_.faults.disk_stall;
  world_->LogFault(agent->node(), "DISK STALL 3 s (scenario abort-after-prepared: the PREPARE of " +
                                      req.resource + " for " + ToString(txid) + " is being forced)");
  CrashNode(node, "scenario abort-after-prepared: after the first PREPARE of " + ToString(txid) +
                      " to " + to + ", before the others");
  world_->After(300 * kMillis, [this, node] { Restart(node); });
  return true;
}

SimAgent* Cluster::AgentAt(const std::string& address) {
  auto it = address_node_.find(address);
  if (it == address_node_.end()) return nullptr;
  return agents_[it->second - 1].get();
}

std::string Cluster::AddressOf(const std::string& resource) const {
  auto it = resource_address_.find(resource);
  return it == resource_address_.end() ? "" : it->second;
}

int Cluster::accounts_per_resource(const std::string& resource) const {
  auto it = accounts_.find(resource);
  return it == accounts_.end() ? 1 : it->second;
}

int64_t Cluster::NextMemberId(const std::string& resource) {
  int64_t& next = next_member_id_[resource];
  if (next == 0) next = kMembers + 1;
  return next++;
}

bool Cluster::TakeTicket() {
  if (tickets_ >= options_.txns) return false;
  ++tickets_;
  ++result_.txns;
  return true;
}

void Cluster::Count(int outcome) {
  if (outcome == 0) ++result_.committed;
  if (outcome == 1) ++result_.aborted;
  if (outcome == 2) ++result_.unknown;
}

// Topology: a coordinator, 2-3 agents hosting 2-3 bank resources of 3-8
// accounts and kMembers members each, 3-8 clients.
void Cluster::Build() {
  Rng& rng = world_->rng();
  int n_resources = static_cast<int>(rng.Uniform(2, 3));
  int n_agents = static_cast<int>(rng.Uniform(2, n_resources));
  if (options_.scenario == "abort-after-prepared") {
    n_resources = 3;  // bank_a and bank_c on agent1, bank_b on agent2
    n_agents = 2;
  }
  int n_clients = static_cast<int>(rng.Uniform(3, 8));
  ConfigureFaults();

  const bool group = options_.replicas > 1;
  int coord = net_->AddNode("coord1");
  coordinators_.push_back(std::make_unique<SimCoordinator>(this, coord, "coord1:7000", group ? 1 : 0));

  std::vector<std::map<std::string, BankImage>> hosted(n_agents);
  int64_t total = 0;
  std::map<std::string, int64_t> members;
  for (int i = 0; i < n_resources; ++i) {
    std::string name = std::string("bank_") + static_cast<char>('a' + i);
    int agent = i % n_agents;
    BankImage img;
    int n_accounts = static_cast<int>(rng.Uniform(3, 8));
    for (int a = 1; a <= n_accounts; ++a) {
      int64_t bal = rng.Uniform(20, 200);
      img.accounts[a] = bal;
      total += bal;
    }
    for (int m = 1; m <= kMembers; ++m) img.members[m] = MemberEmail(m);
    members[name] = kMembers;
    accounts_[name] = n_accounts;
    resource_names_.push_back(name);
    resource_address_[name] = "agent" + std::to_string(agent + 1) + ":710" + std::to_string(agent + 1);
    hosted[agent][name] = std::move(img);
  }
  for (int a = 0; a < n_agents; ++a) {
    std::string name = "agent" + std::to_string(a + 1);
    std::string address = name + ":710" + std::to_string(a + 1);
    int node = net_->AddNode(name);
    address_node_[address] = node;
    agents_.push_back(std::make_unique<SimAgent>(this, node, address, std::move(hosted[a])));
  }
  for (int i = 0; i < n_clients; ++i) {
    int node = net_->AddNode("client" + std::to_string(i + 1));
    clients_.push_back(std::make_unique<SimClient>(this, node, i));
  }
  // Group mode: replicas 2..N, after the clients (so the single-replica mode's
  // node ids, and its seeds, are unchanged).
  for (int r = 2; r <= options_.replicas; ++r) {
    std::string name = "coord" + std::to_string(r);
    int node = net_->AddNode(name);
    coordinators_.push_back(std::make_unique<SimCoordinator>(this, node, name + ":7000", r));
  }
  servers_.clear();
  for (int node = 0; node <= n_agents; ++node) servers_.push_back(node);
  for (size_t r = 1; r < coordinators_.size(); ++r) servers_.push_back(coordinators_[r]->node());
  crash_serial_.assign(world_->node_count(), 0);
  net_->Finalize();

  checker_->SetBank([this](const Checker::BankVisitor& v) { VisitState(v); }, total,
                    std::move(members));
  std::string shape = "topology: " + std::to_string(n_agents) + " agents, " +
                      std::to_string(n_resources) + " resources (";
  for (const auto& n : resource_names_) {
    shape += n + "@" + resource_address_[n] + " " + std::to_string(accounts_[n]) + " accounts, ";
  }
  shape += "sum " + std::to_string(total) + "), " + std::to_string(n_clients) + " clients, " +
           (group ? std::to_string(options_.replicas) + " coordinator replicas, " : "") + "faults " +
           FaultLevelName(options_.faults) + (options_.bug.empty() ? "" : ", bug " + options_.bug);
  world_->Log(-1, shape);
}

void Cluster::ConfigureFaults() {
  Rng& rng = world_->rng();
  NetOptions net;
  DiskOptions disk;
  switch (options_.faults) {
    case FaultLevel::kNone:
      break;
    case FaultLevel::kLight:
      net.drop_p = 0.003;
      net.dup_p = 0.003;
      net.spike_p = 0.005;
      net.spike_max = 20 * kMillis;
      disk.slow_p = 0.01;
      disk.slow_max = 10 * kMillis;
      crash_budget_ = 0;
      random_crash_budget_ = 2;
      crash_every_min_ = 500 * kMillis;
      crash_every_max_ = 3 * kSeconds;
      down_min_ = 10 * kMillis;
      down_max_ = 200 * kMillis;
      partition_every_min_ = 500 * kMillis;
      partition_every_max_ = 3 * kSeconds;
      partition_p_ = 0.3;
      partition_min_ = 10 * kMillis;
      partition_max_ = 200 * kMillis;
      client_crash_p_ = 0.01;
      break;
    case FaultLevel::kHeavy:
      net.drop_p = 0.01 + 0.02 * rng.Unit();
      net.dup_p = 0.01 + 0.02 * rng.Unit();
      net.spike_p = 0.02;
      net.spike_max = 50 * kMillis;
      net.stale_p = 0.002;
      net.stale_max = 3 * kSeconds;
      disk.slow_p = 0.05;
      disk.slow_max = 20 * kMillis;
      crash_budget_ = 10;
      random_crash_budget_ = 6;
      crash_every_min_ = 100 * kMillis;
      crash_every_max_ = 700 * kMillis;
      down_min_ = 5 * kMillis;
      down_max_ = 300 * kMillis;
      partition_every_min_ = 100 * kMillis;
      partition_every_max_ = 700 * kMillis;
      partition_p_ = 0.5;
      partition_min_ = 10 * kMillis;
      partition_max_ = 800 * kMillis;
      client_crash_p_ = 0.05;
      // Targeted schedules: each crash point is armed in most seeds.
      for (const char* p : kCrashPoints) {
        if (rng.Bernoulli(0.7)) crash_points_[p] = 0.01 + 0.04 * rng.Unit();
      }
      if (options_.protocol == "3pc") {
        for (const char* p : kThreePhaseCrashPoints) {
          if (rng.Bernoulli(0.7)) crash_points_[p] = 0.01 + 0.04 * rng.Unit();
        }
      }
      break;
  }
  if (options_.faults == FaultLevel::kHeavy) {
    // Storage failures of the coordinator's log (a replica's, or the single
    // coordinator's); a group also gets replicas restarted on an empty disk.
    disk_fault_budget_ = static_cast<int>(rng.Uniform(options_.replicas > 1 ? 1 : 0, 2));
    if (options_.replicas > 1) empty_disk_budget_ = static_cast<int>(rng.Uniform(1, 2));
    // Storage failures of agents' disks.
    agent_disk_fault_budget_ = static_cast<int>(rng.Uniform(0, 2));
    agent_stall_budget_ = static_cast<int>(rng.Uniform(2, 5));
  }
  if (options_.replicas > 1 && options_.faults == FaultLevel::kHeavy) {
    // Group mode: the current leader is killed often; more random crashes
    // (the replicas are servers too), and partitions among the replicas.
    leader_crash_budget_ = static_cast<int>(rng.Uniform(4, 10));
    leader_crash_min_ = 300 * kMillis;
    leader_crash_max_ = 2 * kSeconds;
    random_crash_budget_ += 4;
  } else if (options_.replicas > 1 && options_.faults == FaultLevel::kLight) {
    leader_crash_budget_ = 1;
    leader_crash_min_ = 1 * kSeconds;
    leader_crash_max_ = 4 * kSeconds;
  }
  disk.lying = bugs_.lying_disk;
  net_->SetOptions(net);
  disk_options_ = disk;
}

// ------------------------------------------------------------------- faults

bool Cluster::ElectionWindow() const {
  if (coordinators_.size() < 2) return false;
  for (const auto& c : coordinators_) {
    if (c->log_failed()) return true;
  }
  return false;
}

bool Cluster::CrashPoint(int node, const char* point) {
  if (!armed_point_.empty() && armed_point_ == point) {  // txsim --measure
    armed_point_.clear();
    CrashNode(node, std::string("at crash point ") + point + " (armed by --measure)");
    if (armed_crashed_) armed_crashed_(node);
    return true;
  }
  if (!faults_active_ || crash_budget_ <= 0 || crash_points_.empty()) return false;
  if (CoordinatorAt(node) != nullptr && ElectionWindow()) return false;
  auto it = crash_points_.find(point);
  if (it == crash_points_.end() || !world_->rng().Bernoulli(it->second)) return false;
  --crash_budget_;
  CrashNode(node, std::string("at crash point ") + point);
  return true;
}

void Cluster::CrashNode(int node, const std::string& why, bool power_loss) {
  if (!IsServer(node) || !net_->up(node)) return;
  net_->Down(node);
  if (SimCoordinator* coord = CoordinatorAt(node)) {
    coord->Crash();
    if (!power_loss) {
      // The process died, its machine did not: the kernel closes its
      // connections, and each other replica hears of it (unless partitioned
      // from it, or the closing segment is lost).
      for (int id = 1; id <= replicas(); ++id) {
        SimCoordinator* other = CoordinatorById(id);
        if (other == coord) continue;
        const int gone = coord->replica_id();
        net_->Send(node, other->node(), false, [other, gone] { other->DeliverPeerGone(gone); });
      }
    }
  } else {
    agents_[node - 1]->Crash();
  }
  ++result_.crashes;
  if (power_loss) {
    ++result_.faults.power;
  } else {
    ++result_.faults.crash;
  }
  ++crash_serial_[node];
  world_->LogFault(node, "CRASH " + why + " (unsynced writes lost)");
  checker_->CheckBankSum("after a crash");
  if (faults_active_) {
    uint64_t serial = crash_serial_[node];
    world_->After(world_->rng().Uniform(down_min_, down_max_), [this, node, serial] {
      if (crash_serial_[node] == serial) Restart(node);
    });
  }
}

void Cluster::Restart(int node) {
  if (net_->up(node)) return;
  net_->Up(node);
  world_->LogFault(node, "RESTART");
  if (SimCoordinator* coord = CoordinatorAt(node)) {
    if (wipe_on_restart_.erase(node) > 0) {
      world_->LogFault(node, std::string("EMPTY DISK: restarts with an empty data directory under "
                                         "its old id") +
                                 (bugs_.empty_disk_votes ? " (not joining: bug)" : ", joining"));
      ++result_.faults.empty_disk;
      coord->Wipe(!bugs_.empty_disk_votes);
    }
    coord->Boot();
  } else {
    agents_[node - 1]->Boot();
    checker_->CheckBankSum("after a restart");
  }
}

void Cluster::ScheduleRandomCrash() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(crash_every_min_, crash_every_max_), [this] {
    if (!faults_active_) return;
    if (random_crash_budget_ > 0) {
      int node = servers_[world_->rng().Index(servers_.size())];
      if (net_->up(node) && !(CoordinatorAt(node) != nullptr && ElectionWindow())) {
        --random_crash_budget_;
        CrashNode(node, "(random)");
      }
    }
    ScheduleRandomCrash();
  });
}

void Cluster::SchedulePartition() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(partition_every_min_, partition_every_max_), [this] {
    if (!faults_active_) return;
    Rng& rng = world_->rng();
    if (rng.Bernoulli(partition_p_) && !ElectionWindow()) {
      int n = static_cast<int>(world_->node_count());
      int kind = static_cast<int>(rng.Uniform(0, 2));
      int id = 0;
      std::string what;
      if (kind == 2) {
        int a = servers_[rng.Index(servers_.size())];
        id = net_->Isolate(a);
        what = "isolates " + world_->NodeName(a);
      } else {
        int a = static_cast<int>(rng.Index(n));
        int b = static_cast<int>(rng.Index(n - 1));
        if (b >= a) ++b;
        id = net_->Partition(a, b, kind == 0);
        what = world_->NodeName(a) + (kind == 0 ? " <-/-> " : " -/-> ") + world_->NodeName(b);
        // A partition between two replicas also plays a connection reset
        // with both processes alive: a false "peer gone" hint, which must
        // cost no safety (paxos::Replica::OnPeerGone).
        SimCoordinator* ca = CoordinatorAt(a);
        SimCoordinator* cb = CoordinatorAt(b);
        if (ca != nullptr && cb != nullptr) {
          cb->DeliverPeerGone(ca->replica_id());
          if (kind == 0) ca->DeliverPeerGone(cb->replica_id());
        }
      }
      world_->LogFault(-1, "PARTITION " + what);
      ++result_.faults.partition;
      world_->After(rng.Uniform(partition_min_, partition_max_), [this, id, what] {
        net_->Heal(id);
        world_->LogFault(-1, "HEAL " + what);
      });
    }
    SchedulePartition();
  });
}

// Group mode: kill whichever replica leads now.
void Cluster::ScheduleLeaderCrash() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(leader_crash_min_, leader_crash_max_), [this] {
    if (!faults_active_ || leader_crash_budget_ <= 0) return;
    for (const auto& c : coordinators_) {
      if (ElectionWindow()) break;
      if (c->leads() && net_->up(c->node())) {
        --leader_crash_budget_;
        CrashNode(c->node(), "(the leader)");
        break;
      }
    }
    ScheduleLeaderCrash();
  });
}

void Cluster::ScheduleOperatorRetry() {
  world_->After(2500 * kMillis, [this] {
    if (!faults_active_) return;
    for (const auto& c : coordinators_) {
      if (net_->up(c->node())) c->OperatorRetry();  // a replica not serving retries nothing
    }
    ScheduleOperatorRetry();
  });
}

// Group mode: cuts among the replicas, one-way ones included (a replica that
// hears nobody but whose messages still arrive: what pre-vote exists for),
// and the leader isolated from its followers.
void Cluster::ScheduleGroupPartition() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(200 * kMillis, 1500 * kMillis), [this] {
    if (!faults_active_) return;
    Rng& rng = world_->rng();
    if (rng.Bernoulli(0.6) && !ElectionWindow()) {
      int n = static_cast<int>(coordinators_.size());
      int kind = static_cast<int>(rng.Uniform(0, 3));
      std::vector<int> ids;
      std::string what;
      int leader = -1;
      for (int i = 0; i < n; ++i) {
        if (coordinators_[i]->leads()) leader = i;
      }
      if (kind == 3 && leader >= 0) {
        // The leader hears its followers, but they do not hear it (one-way).
        for (int i = 0; i < n; ++i) {
          if (i == leader) continue;
          ids.push_back(net_->Partition(coordinators_[leader]->node(), coordinators_[i]->node(), false));
        }
        what = world_->NodeName(coordinators_[leader]->node()) + " -/-> every follower";
      } else {
        int a = static_cast<int>(rng.Index(n));
        int b = static_cast<int>(rng.Index(n - 1));
        if (b >= a) ++b;
        if (kind == 0) {
          ids.push_back(net_->Partition(coordinators_[a]->node(), coordinators_[b]->node(), true));
          what = world_->NodeName(coordinators_[a]->node()) + " <-/-> " + world_->NodeName(coordinators_[b]->node());
        } else if (kind == 1 || kind == 3) {
          // b does not hear a, a hears b: b's elections must not unseat a live leader.
          ids.push_back(net_->Partition(coordinators_[a]->node(), coordinators_[b]->node(), false));
          what = world_->NodeName(coordinators_[a]->node()) + " -/-> " + world_->NodeName(coordinators_[b]->node());
        } else {
          int victim = leader >= 0 ? leader : a;
          for (int i = 0; i < n; ++i) {
            if (i == victim) continue;
            ids.push_back(net_->Partition(coordinators_[victim]->node(), coordinators_[i]->node(), true));
          }
          what = world_->NodeName(coordinators_[victim]->node()) + " cut off from the other replicas";
        }
      }
      world_->LogFault(-1, "PARTITION " + what);
      ++result_.faults.partition;
      // Each replica that stops hearing another is also told, falsely, that
      // the other's process went away (a connection reset with both alive):
      // the hint must cost no safety (paxos::Replica::OnPeerGone).
      for (int id : ids) {
        for (const auto& [from, to] : net_->PartitionLinks(id)) {
          SimCoordinator* deaf = CoordinatorAt(to);
          SimCoordinator* unheard = CoordinatorAt(from);
          if (deaf != nullptr && unheard != nullptr) deaf->DeliverPeerGone(unheard->replica_id());
        }
      }
      world_->After(rng.Uniform(50 * kMillis, 2 * kSeconds), [this, ids, what] {
        for (int id : ids) net_->Heal(id);
        world_->LogFault(-1, "HEAL " + what);
      });
    }
    ScheduleGroupPartition();
  });
}

void Cluster::OnDiskFailed(int node, bool full) {
  const bool agent = CoordinatorAt(node) == nullptr;
  if (full) {
    ++result_.faults.disk_full;
    if (agent) ++result_.faults.agent_disk_full;
  } else {
    ++result_.faults.disk_error;
    if (agent) ++result_.faults.agent_disk_error;
  }
  Rng& rng = world_->rng();
  const bool group = coordinators_.size() > 1 && !agent;
  // The operator notices and restarts the node: in a group, only after the
  // election bound (the others must have elected meanwhile).
  Micros delay = group ? kElectionBound + rng.Uniform(200 * kMillis, 1500 * kMillis)
                       : rng.Uniform(300 * kMillis, 2 * kSeconds);
  uint64_t serial = crash_serial_[node];
  world_->After(delay, [this, node, serial] {
    if (crash_serial_[node] != serial) return;
    CrashNode(node, "(the operator restarts it after its disk failed)");
    // Faults over: CrashNode restarts nothing by itself.
    if (!faults_active_ && !net_->up(node)) Restart(node);
  });
  if (group && faults_active_) {
    std::vector<uint64_t> serials = crash_serial_;
    CheckElection(node, serial, world_->now(), std::move(serials), false);
  }
}

void Cluster::CheckElection(int failed, uint64_t serial, Micros since, std::vector<uint64_t> serials,
                            bool disturbed) {
  if (!faults_active_ || crash_serial_[failed] != serial) return;  // restarted: moot
  SimCoordinator* dead = CoordinatorAt(failed);
  if (dead == nullptr || !dead->log_failed()) return;
  std::vector<SimCoordinator*> healthy;
  for (const auto& c : coordinators_) {
    if (c->node() == failed) continue;
    // Crashed (even if back up), down, failed or rejoining since: the window
    // does not count.
    if (crash_serial_[c->node()] != serials[c->node()] || !c->up() || c->log_failed() ||
        c->joining()) {
      disturbed = true;
      continue;
    }
    if (c->leads()) return;  // elected
    healthy.push_back(c.get());
  }
  for (SimCoordinator* a : healthy) {
    for (SimCoordinator* b : healthy) {
      if (a != b && net_->Blocked(a->node(), b->node())) disturbed = true;
    }
  }
  if (static_cast<int>(healthy.size()) < static_cast<int>(coordinators_.size()) / 2 + 1) disturbed = true;
  if (disturbed) return;
  if (world_->now() >= since + kElectionBound) {
    checker_->Violation("liveness", nullptr,
                        "no replica leads " + FormatTime(kElectionBound) + " after " +
                            world_->NodeName(failed) +
                            "'s log failed, although a connected majority of healthy replicas was "
                            "up throughout");
    return;
  }
  world_->After(kPoll, [this, failed, serial, since, serials, disturbed] {
    CheckElection(failed, serial, since, serials, disturbed);
  });
}

// Storage failures of coordinator logs: in a group, mostly the leader's.
void Cluster::ScheduleDiskFault() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(300 * kMillis, 5 * kSeconds), [this] {
    if (!faults_active_ || disk_fault_budget_ <= 0) return;
    Rng& rng = world_->rng();
    std::vector<SimCoordinator*> pick;
    for (const auto& c : coordinators_) {
      if (c->up() && !c->log_failed()) pick.push_back(c.get());
    }
    SimCoordinator* victim = pick.empty() ? nullptr : pick[rng.Index(pick.size())];
    if (coordinators_.size() > 1 && rng.Bernoulli(0.7)) {
      for (SimCoordinator* c : pick) {
        if (c->leads()) victim = c;
      }
    }
    if (victim != nullptr) {
      --disk_fault_budget_;
      bool full = rng.Bernoulli(0.4);
      bool partial = !full && rng.Bernoulli(0.5);
      world_->LogFault(victim->node(), std::string("DISK FAULT armed: the next sync fails with ") +
                                           (full ? "ENOSPC" : partial ? "EIO (fsync)" : "EIO (write)"));
      victim->BreakDisk(full, partial);
    }
    ScheduleDiskFault();
  });
}

// Storage failures of agents' disks: the next write or sync of a database
// file on the node fails. It surfaces (and is counted) when a resource's
// operation fails for it; a write SQLite ignores (a checkpoint's) or a crash
// first leaves nothing to count.
SimAgent* Cluster::PickHealthyAgent() {
  std::vector<SimAgent*> pick;
  for (const auto& a : agents_) {
    if (a->up() && !a->disk_failed()) pick.push_back(a.get());
  }
  return pick.empty() ? nullptr : pick[world_->rng().Index(pick.size())];
}

void Cluster::ScheduleAgentDiskFault() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(300 * kMillis, 6 * kSeconds), [this] {
    if (!faults_active_ || agent_disk_fault_budget_ <= 0) return;
    Rng& rng = world_->rng();
    if (SimAgent* victim = PickHealthyAgent()) {
      --agent_disk_fault_budget_;
      bool full = rng.Bernoulli(0.4);
      bool at_sync = rng.Bernoulli(0.5);
      world_->LogFault(victim->node(), std::string("DISK FAULT armed: the next ") +
                                           (at_sync ? "sync" : "write") + " fails with " +
                                           (full ? "ENOSPC" : "EIO"));
      victim->BreakDisk(full, at_sync);
    }
    ScheduleAgentDiskFault();
  });
}

void Cluster::ScheduleAgentDiskStall() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(200 * kMillis, 5 * kSeconds), [this] {
    if (!faults_active_ || agent_stall_budget_ <= 0) return;
    if (SimAgent* victim = PickHealthyAgent()) {
      --agent_stall_budget_;
      Micros latency = world_->rng().Uniform(1500 * kMillis, 3500 * kMillis);
      world_->LogFault(victim->node(), "DISK STALL: the next sync takes " +
                                           std::to_string(latency / kMillis) + " ms");
      victim->StallDisk(latency);
      ++injected().disk_stall;
    }
    ScheduleAgentDiskStall();
  });
}

// Group mode: a replica loses its disk (the machine replaced) and comes back
// empty under its old id, one at a time: never while another is rejoining,
// down or failed (losing more than one replica's log at once is outside the
// model).
void Cluster::ScheduleEmptyDisk() {
  Rng& rng = world_->rng();
  world_->After(rng.Uniform(500 * kMillis, 6 * kSeconds), [this] {
    if (!faults_active_ || empty_disk_budget_ <= 0) return;
    bool calm = wipe_on_restart_.empty();
    for (const auto& c : coordinators_) {
      if (!c->up() || c->joining() || c->log_failed()) calm = false;
    }
    if (calm) {
      SimCoordinator* victim = coordinators_[world_->rng().Index(coordinators_.size())].get();
      --empty_disk_budget_;
      wipe_on_restart_.insert(victim->node());
      CrashNode(victim->node(), "(its disk is lost; it comes back empty)");
    }
    ScheduleEmptyDisk();
  });
}

void Cluster::ScheduleForgery() {
  world_->After(world_->rng().Uniform(5 * kMillis, 50 * kMillis), [this] {
    if (!forging_) return;
    SimAgent* a = agents_[world_->rng().Index(agents_.size())].get();
    if (a->ForgeDecision(world_->rng())) ++injected().forged;
    ScheduleForgery();
  });
}

void Cluster::StopFaults() {
  faults_active_ = false;
  forging_ = false;
  net_->HealAll();
  NetOptions calm = net_->options();
  calm.drop_p = 0;
  calm.dup_p = 0;
  calm.spike_p = 0;
  calm.stale_p = 0;
  net_->SetOptions(calm);
  DiskOptions disk = disk_options_;
  disk.slow_p = 0;
  for (auto& c : coordinators_) c->SetDiskOptions(disk);
  for (auto& a : agents_) a->SetDiskOptions(disk);
  world_->Log(-1, "faults stop: network healed, every node restarted");
  for (auto& c : coordinators_) {
    // The operator restarts a node whose log store failed.
    if (c->log_failed()) CrashNode(c->node(), "(the operator restarts it after its disk failed)");
  }
  for (auto& a : agents_) {
    a->CancelDiskFault();  // armed, never fired: the disk is healthy from now on
    if (a->disk_failed()) CrashNode(a->node(), "(the operator restarts it after its disk failed)");
  }
  for (int node : servers_) {
    if (!net_->up(node)) {
      ++crash_serial_[node];
      Restart(node);
    }
  }
}

// ---------------------------------------------------------------- the run

void Cluster::VisitState(const Checker::BankVisitor& v) const {
  for (const auto& a : agents_) a->VisitState(v);
}

void Cluster::VisitDurable(const Checker::BankVisitor& v) const {
  for (const auto& a : agents_) a->VisitDurable(v);
}

bool Cluster::Quiescent(std::string* why) const {
  for (const auto& c : clients_) {
    if (!c->done()) {
      *why = "a client is still running";
      return false;
    }
  }
  // The leader (some replica that serves) has nothing left to do.
  bool idle = false;
  std::string first;
  for (const auto& c : coordinators_) {
    std::string w;
    if (c->Idle(&w)) {
      idle = true;
      break;
    }
    if (first.empty() || first.find("not serving") != std::string::npos) first = w;
  }
  if (!idle) {
    *why = coordinators_.size() == 1 ? first : "no coordinator replica serves idle (" + first + ")";
    return false;
  }
  for (const auto& a : agents_) {
    if (!a->Idle(why)) return false;
  }
  return true;
}

SimResult Cluster::Run() {
  World& w = *world_;
  faults_active_ = options_.faults != FaultLevel::kNone;
  for (auto& c : coordinators_) c->Boot();
  for (auto& a : agents_) a->Boot();
  for (auto& c : clients_) c->Start();
  if (faults_active_) {
    ScheduleRandomCrash();
    SchedulePartition();
    if (coordinators_.size() > 1) {
      if (leader_crash_budget_ > 0) ScheduleLeaderCrash();
      ScheduleGroupPartition();
    }
    if (disk_fault_budget_ > 0) ScheduleDiskFault();
    if (empty_disk_budget_ > 0) ScheduleEmptyDisk();
    if (agent_disk_fault_budget_ > 0) ScheduleAgentDiskFault();
    if (agent_stall_budget_ > 0) ScheduleAgentDiskStall();
    ScheduleOperatorRetry();
  }
  if (options_.forge_decisions && !agents_.empty()) {
    forging_ = true;
    ScheduleForgery();
  }
  auto failed = [this] { return checker_->violations() > 0; };
  auto clients_done = [this] {
    for (const auto& c : clients_) {
      if (!c->done()) return false;
    }
    return true;
  };

  // 1. Load, with faults, until every client has attempted its share.
  w.RunUntil(kLoadCap, [&] { return failed() || clients_done(); });

  // 2. Faults stop; every transaction must reach its end.
  auto quiet = [&](const char* phase) {
    Micros bound = w.now() + kQuietBound;
    std::string why;
    while (!failed()) {
      if (Quiescent(&why)) {
        w.Log(-1, std::string("quiescent (") + phase + ")");
        return;
      }
      if (w.now() >= bound) {
        checker_->Violation("termination", nullptr,
                            std::string("not quiescent ") + FormatTime(kQuietBound) +
                                " after faults stopped (" + phase + "): " + why);
        return;
      }
      w.RunUntil(w.now() + kPoll, failed);
    }
  };
  if (!failed()) {
    StopFaults();
    quiet("after the load");
  }

  // 3. Every node loses power at once, then recovers: what was durable must
  //    be enough.
  if (!failed() && options_.faults != FaultLevel::kNone) {
    faults_active_ = false;
    for (int node : servers_) {
      CrashNode(node, "(final power loss of every node)", true);
    }
    for (int node : servers_) {
      uint64_t serial = crash_serial_[node];
      w.After(w.rng().Uniform(10 * kMillis, 100 * kMillis), [this, node, serial] {
        if (crash_serial_[node] == serial) Restart(node);
      });
    }
    w.RunUntil(w.now() + 100 * kMillis, failed);
    quiet("after the final power loss");
  }

  // Messages still in flight (stale ones) arrive; the system must stay at rest.
  if (!failed() && options_.faults != FaultLevel::kNone) {
    w.RunUntil(w.now() + net_->max_delay(), failed);
    quiet("after the last stale messages arrived");
  }

  // 4. Durability and the bank at rest.
  if (!failed()) checker_->FinalChecks([this](const Checker::BankVisitor& v) { VisitDurable(v); });

  result_.violations = checker_->violations();
  result_.first_violation = checker_->first();
  result_.trace_hash = w.trace_hash();
  result_.events = w.events_run();
  result_.messages = net_->messages_sent();
  result_.faults.loss = net_->messages_lost();
  result_.sim_micros = w.now();
  w.Log(-1, "end: txns=" + std::to_string(result_.txns) + " committed=" +
                std::to_string(result_.committed) + " aborted=" + std::to_string(result_.aborted) +
                " unknown=" + std::to_string(result_.unknown) + " crashes=" +
                std::to_string(result_.crashes) + " violations=" + std::to_string(result_.violations));
  return result_;
}


}  // namespace txc::sim
