// txsim --measure: what one committed transaction costs (messages, disk
// syncs, sequential message delays) and how long participants stay in doubt
// when the leader crashes at each crash point. The production cores run in
// the simulated shells exactly as RunSeed runs them; what differs is the
// topology (built here, not drawn from the seed), the network (every message
// exactly MeasureOptions::one_way_micros on the wire, no jitter, no loss),
// the disks (a sync takes no time), no random faults, and the client: this
// file drives one transaction at a time. See docs/protocols-measured.md.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "common/log.h"
#include "sim/cluster.h"
#include "sim/simulation.h"

namespace txc::sim {

// ------------------------------------------------- the Cluster's measure hooks

Cluster::Cluster(const SimOptions& options, const MeasureSetup& setup) : options_(options) {
  options_.faults = FaultLevel::kNone;
  options_.bug.clear();
  if (options_.replicas < 1) options_.replicas = 1;
  timing_.agent.confirm_decisions = options_.confirm_decisions;
  world_ = std::make_unique<World>(options_.seed, options_.trace, options_.hash_trace);
  NetOptions net;
  net.base_min = net.base_max = setup.one_way;
  net.jitter = 0;
  net_ = std::make_unique<Network>(world_.get(), net);
  checker_ = std::make_unique<Checker>(world_.get(), "txsim --measure", options_.report);
  result_.seed = options_.seed;
  disk_options_.sync_min = disk_options_.sync_max = setup.sync;

  const bool group = options_.replicas > 1;
  int coord = net_->AddNode("coord1");
  coordinators_.push_back(std::make_unique<SimCoordinator>(this, coord, "coord1:7000", group ? 1 : 0));
  int64_t total = 0;
  std::map<std::string, int64_t> members;
  for (int a = 0; a < setup.agents; ++a) {
    std::string resource = "bank_" + std::to_string(a + 1);
    std::string name = "agent" + std::to_string(a + 1);
    std::string address = name + ":" + std::to_string(7101 + a);
    BankImage img;
    for (int acct = 1; acct <= 4; ++acct) {
      img.accounts[acct] = 1000000;  // never short of money
      total += img.accounts[acct];
    }
    for (int m = 1; m <= kMembers; ++m) img.members[m] = MemberEmail(m);
    members[resource] = kMembers;
    accounts_[resource] = 4;
    resource_names_.push_back(resource);
    resource_address_[resource] = address;
    std::map<std::string, BankImage> hosted;
    hosted[resource] = std::move(img);
    int node = net_->AddNode(name);
    address_node_[address] = node;
    agents_.push_back(std::make_unique<SimAgent>(this, node, address, std::move(hosted)));
  }
  measure_client_ = net_->AddNode("client1");
  for (int r = 2; r <= options_.replicas; ++r) {
    std::string name = "coord" + std::to_string(r);
    int node = net_->AddNode(name);
    coordinators_.push_back(std::make_unique<SimCoordinator>(this, node, name + ":7000", r));
  }
  servers_.clear();
  for (int node = 0; node <= setup.agents; ++node) servers_.push_back(node);
  for (size_t r = 1; r < coordinators_.size(); ++r) servers_.push_back(coordinators_[r]->node());
  crash_serial_.assign(world_->node_count(), 0);
  net_->Finalize();
  checker_->SetBank([this](const Checker::BankVisitor& v) { VisitState(v); }, total,
                    std::move(members));
  world_->Log(-1, "measure topology: " + std::to_string(setup.agents) + " agents, " +
                      std::to_string(options_.replicas) + " coordinator replica(s), one-way " +
                      std::to_string(setup.one_way) + " us, syncs " + std::to_string(setup.sync) +
                      " us");
}

void Cluster::BootServers() {
  for (auto& c : coordinators_) c->Boot();
  for (auto& a : agents_) a->Boot();
}

namespace {

proto::Value Int(int64_t v) {
  proto::Value x;
  x.__set_i(v);
  return x;
}

// Participant 0 pays 1 to every other participant (account 1 everywhere).
std::vector<proto::Statement> Work(int participant, int participants) {
  proto::Statement s;
  if (participant == 0) {
    int64_t amount = participants - 1;
    s.sql = kDebitSql;
    s.params = {Int(amount), Int(1), Int(amount)};
  } else {
    s.sql = kCreditSql;
    s.params = {Int(1), Int(1)};
  }
  s.__set_expect_rows(1);
  return {s};
}

enum class Role { kCoord, kAgent, kClient };

struct Counts {
  uint64_t client_coord = 0, coord_agents = 0, client_agents = 0, replicas = 0, agents_agents = 0;
  uint64_t other = 0;
  uint64_t heartbeats = 0;
  uint64_t coord_syncs = 0, agent_syncs = 0;
};

// Where a branch of a transaction got to, and when (Checker's observer).
struct BranchTimes {
  Micros prepared = -1, precommitted = -1, final_at = -1;
  std::string final_state;
};

class Meter {
 public:
  Meter(const MeasureOptions& o, MeasureResult* result) : o_(o), result_(result) {
    SimOptions so;
    so.seed = o.seed;
    so.faults = FaultLevel::kNone;
    so.protocol = o.protocol;
    so.replicas = o.replicas;
    so.confirm_decisions = o.confirm_decisions;
    so.sign_decisions = o.sign_decisions;
    so.trace = o.trace;
    so.report = &report_;
    MeasureSetup setup;
    setup.agents = o.participants;
    setup.one_way = o.one_way_micros;
    setup.sync = 0;
    c_ = std::make_unique<Cluster>(so, setup);
    for (int id = 1; id <= c_->replicas(); ++id) role_[c_->CoordinatorById(id)->node()] = Role::kCoord;
    for (size_t i = 0; i < c_->agent_count(); ++i) role_[c_->agent(i)->node()] = Role::kAgent;
    role_[c_->measure_client()] = Role::kClient;
    c_->checker().SetBranchObserver(
        [this](int, const std::string& resource, const TxId& txid, const char* state) {
          BranchTimes& b = branches_[{ToString(txid), resource}];
          std::string s = state;
          Micros now = c_->world().now();
          if (s == "PREPARED") b.prepared = now;
          if (s == "PRECOMMITTED") b.precommitted = now;
          if (s == "COMMITTED" || s == "ABORTED") {
            b.final_at = now;
            b.final_state = s;
          }
        });
    c_->SetPeerObserver([this](const paxos::Message& m) {
      if (m.type == paxos::wire::Type::HEARTBEAT || m.type == paxos::wire::Type::HEARTBEAT_REPLY) {
        ++heartbeats_;
      }
    });
  }

  ~Meter() {
    result_->violations += c_->checker().violations();
    if (result_->first_violation.empty()) result_->first_violation = c_->checker().first();
  }

  Cluster& c() { return *c_; }
  World& w() { return c_->world(); }

  // Boots every server and waits until a coordinator serves, idle.
  bool Start() {
    c_->BootServers();
    return RunUntil(10 * kSeconds, [this] { return Quiet(); });
  }

  Counts Snapshot() const {
    Counts k;
    const Network& net = c_->net();
    size_t n = c_->world().node_count();
    for (size_t a = 0; a < n; ++a) {
      for (size_t b = 0; b < n; ++b) {
        uint64_t sent = net.sent(static_cast<int>(a), static_cast<int>(b));
        if (sent == 0) continue;
        Role ra = role_.at(static_cast<int>(a)), rb = role_.at(static_cast<int>(b));
        auto is = [&](Role x, Role y) { return (ra == x && rb == y) || (ra == y && rb == x); };
        if (is(Role::kClient, Role::kCoord)) {
          k.client_coord += sent;
        } else if (is(Role::kCoord, Role::kAgent)) {
          k.coord_agents += sent;
        } else if (is(Role::kClient, Role::kAgent)) {
          k.client_agents += sent;
        } else if (ra == Role::kCoord && rb == Role::kCoord) {
          k.replicas += sent;
        } else if (ra == Role::kAgent && rb == Role::kAgent) {
          k.agents_agents += sent;
        } else {
          k.other += sent;
        }
      }
    }
    k.heartbeats = heartbeats_;
    for (int id = 1; id <= c_->replicas(); ++id) k.coord_syncs += c_->CoordinatorById(id)->disk_syncs();
    for (size_t i = 0; i < c_->agent_count(); ++i) k.agent_syncs += c_->agent(i)->disk_syncs();
    return k;
  }

  // Some replica serves with nothing to do, and every agent is idle.
  bool Quiet() const {
    std::string why;
    bool serving = false;
    for (int id = 1; id <= c_->replicas(); ++id) serving = serving || c_->CoordinatorById(id)->Idle(&why);
    if (!serving) return false;
    for (size_t i = 0; i < c_->agent_count(); ++i) {
      if (!c_->agent(i)->Idle(&why)) return false;
    }
    return true;
  }

  bool RunUntil(Micros bound, const std::function<bool()>& done) {
    Micros until = w().now() + bound;
    if (done()) return true;
    w().RunUntil(until, done);
    return done();
  }

  // One transaction, start to finish, as a client of client.cc does it.
  struct Txn {
    bool interactive = false;
    TxId txid;
    std::vector<proto::Participant> participants;
    std::vector<std::string> wrote;
    size_t next = 0;
    Micros began = -1, commit_sent = -1, answered = -1;
    bool done = false;
    bool committed = false;  // the client was told COMMITTED
    std::string outcome;     // what the client was told, or what went wrong
  };

  std::shared_ptr<Txn> StartTxn(bool interactive) {
    auto t = std::make_shared<Txn>();
    t->interactive = interactive;
    t->began = w().now();
    int client = c_->measure_client();
    const Timing& tm = c_->timing();
    for (int i = 0; i < o_.participants; ++i) {
      proto::Participant p;
      p.resource = c_->resource_names()[static_cast<size_t>(i)];
      p.address = c_->AddressOf(p.resource);
      t->participants.push_back(p);
      t->wrote.push_back(p.resource);
    }
    c_->CoordinatorCall<proto::BeginRequest, proto::BeginResponse>(
        client, proto::BeginRequest(), tm.begin_deadline, tm.coord_attempt, &SimCoordinator::Begin,
        [this, t](Status s, proto::BeginResponse r) {
          if (!s.ok() || r.status.code != proto::Code::OK) {
            t->done = true;
            t->outcome = "begin failed: " + (s.ok() ? r.status.message : s.ToString());
            return;
          }
          t->txid = r.txid;
          if (t->interactive) return ExecuteNext(t);
          SendSubmit(t);
        });
    return t;
  }

  void ExecuteNext(const std::shared_ptr<Txn>& t) {
    if (t->next == t->participants.size()) return SendCommit(t);
    const proto::Participant& p = t->participants[t->next];
    SimAgent* agent = c_->AgentAt(p.address);
    proto::ExecuteRequest req;
    req.txid = t->txid;
    req.resource = p.resource;
    req.statements = Work(static_cast<int>(t->next), o_.participants);
    c_->net().Call<proto::ExecuteResponse>(
        c_->measure_client(), agent->node(), c_->timing().exec_timeout, false,
        [agent, req](std::function<void(proto::ExecuteResponse)> reply) {
          agent->Execute(req, std::move(reply));
        },
        [this, t](Status s, proto::ExecuteResponse r) {
          if (!s.ok() || r.status.code != proto::Code::OK) {
            t->done = true;
            t->outcome = "execute failed: " + (s.ok() ? r.status.message : s.ToString());
            return;
          }
          ++t->next;
          ExecuteNext(t);
        });
  }

  void SendCommit(const std::shared_ptr<Txn>& t) {
    proto::CommitRequest req;
    req.txid = t->txid;
    req.participants = t->participants;
    req.protocol = c_->protocol();
    c_->checker().OnCommitRequested(t->txid);
    t->commit_sent = w().now();
    c_->CoordinatorCall<proto::CommitRequest, proto::CommitResponse>(
        c_->measure_client(), req, c_->timing().commit_deadline, c_->timing().coord_attempt,
        &SimCoordinator::Commit, [this, t](Status s, proto::CommitResponse r) { Answered(t, s, r); });
  }

  void SendSubmit(const std::shared_ptr<Txn>& t) {
    proto::SubmitRequest req;
    req.txid = t->txid;
    req.protocol = c_->protocol();
    for (size_t i = 0; i < t->participants.size(); ++i) {
      proto::Branch b;
      b.participant = t->participants[i];
      b.statements = Work(static_cast<int>(i), o_.participants);
      req.branches.push_back(std::move(b));
    }
    c_->checker().OnCommitRequested(t->txid);
    t->commit_sent = w().now();
    c_->CoordinatorCall<proto::SubmitRequest, proto::CommitResponse>(
        c_->measure_client(), req, c_->timing().commit_deadline, c_->timing().coord_attempt,
        &SimCoordinator::Submit, [this, t](Status s, proto::CommitResponse r) { Answered(t, s, r); });
  }

  void Answered(const std::shared_ptr<Txn>& t, const Status& s, const proto::CommitResponse& r) {
    t->done = true;
    t->answered = w().now();
    if (!s.ok()) {
      t->outcome = "no answer: " + s.ToString();
    } else if (r.status.code != proto::Code::OK) {
      t->outcome = "failed: " + r.status.message;
    } else {
      t->outcome = OutcomeName(r.outcome);
      t->committed = r.outcome == proto::Outcome::COMMITTED;
      if (t->committed) c_->checker().OnToldCommitted(t->txid, t->wrote);
      if (r.outcome == proto::Outcome::ABORTED) c_->checker().OnToldAborted(t->txid);
    }
  }

  // Every participant of `t` reached a final state.
  bool AllFinal(const Txn& t) const {
    if (t.txid.seq == 0) return false;
    for (const auto& p : t.participants) {
      auto it = branches_.find({ToString(t.txid), p.resource});
      if (it == branches_.end() || it->second.final_at < 0) return false;
    }
    return true;
  }

  const BranchTimes* Branch(const Txn& t, const std::string& resource) const {
    auto it = branches_.find({ToString(t.txid), resource});
    return it == branches_.end() ? nullptr : &it->second;
  }

 private:
  const MeasureOptions& o_;
  MeasureResult* result_;
  std::ostringstream report_;
  std::unique_ptr<Cluster> c_;
  std::map<int, Role> role_;
  std::map<std::pair<std::string, std::string>, BranchTimes> branches_;
  uint64_t heartbeats_ = 0;
};

constexpr Micros kTxnBound = 30 * kSeconds;
constexpr Micros kGap = 100 * kMillis;  // between two measured transactions

MeasureCost MeasureMode(const MeasureOptions& o, MeasureResult* result, bool interactive) {
  MeasureCost cost;
  cost.mode = interactive ? "interactive" : "one-shot";
  Meter m(o, result);
  if (!m.Start()) {
    result->violations += 1;
    if (result->first_violation.empty()) result->first_violation = "measure: no coordinator serves";
    return cost;
  }
  const double d = static_cast<double>(o.one_way_micros);
  Counts sum;
  std::vector<double> client_delays, all_delays;
  double before = 0;
  // One warm-up transaction (not counted), then the measured ones.
  for (int i = 0; i <= o.txns; ++i) {
    Counts before_counts = m.Snapshot();
    auto t = m.StartTxn(interactive);
    bool settled = m.RunUntil(kTxnBound, [&] { return t->done && m.AllFinal(*t) && m.Quiet(); });
    // Messages that leave with the last event (a follower's ACCEPTED of END).
    m.w().RunUntil(m.w().now() + 10 * o.one_way_micros);
    Counts after = m.Snapshot();
    if (i == 0) {
      m.w().RunUntil(m.w().now() + kGap);
      continue;
    }
    ++cost.txns;
    if (settled && t->committed) {
      ++cost.committed;
      sum.client_coord += after.client_coord - before_counts.client_coord;
      sum.coord_agents += after.coord_agents - before_counts.coord_agents;
      sum.client_agents += after.client_agents - before_counts.client_agents;
      sum.agents_agents += after.agents_agents - before_counts.agents_agents;
      // Heartbeats are time-driven: kept out of the replicas' count.
      uint64_t hb = after.heartbeats - before_counts.heartbeats;
      sum.replicas += after.replicas - before_counts.replicas - hb;
      sum.heartbeats += hb;
      sum.coord_syncs += after.coord_syncs - before_counts.coord_syncs;
      sum.agent_syncs += after.agent_syncs - before_counts.agent_syncs;
      Micros last = 0;
      for (const auto& p : t->participants) last = std::max(last, m.Branch(*t, p.resource)->final_at);
      client_delays.push_back(static_cast<double>(t->answered - t->commit_sent) / d);
      all_delays.push_back(static_cast<double>(last - t->commit_sent) / d);
      before += static_cast<double>(t->commit_sent - t->began) / d;
    }
    m.w().RunUntil(m.w().now() + kGap);
  }
  if (cost.committed == 0) return cost;
  const double n = cost.committed;
  cost.client_coord = sum.client_coord / n;
  cost.coord_agents = sum.coord_agents / n;
  cost.client_agents = sum.client_agents / n;
  cost.replicas = sum.replicas / n;
  cost.agents_agents = sum.agents_agents / n;
  cost.total = cost.client_coord + cost.coord_agents + cost.client_agents + cost.replicas +
               cost.agents_agents;
  cost.heartbeats = sum.heartbeats / n;
  cost.coord_syncs = sum.coord_syncs / n;
  cost.agent_syncs = sum.agent_syncs / n;
  auto stats = [](const std::vector<double>& v, double* mean, double* lo, double* hi) {
    double s = 0;
    for (double x : v) s += x;
    *mean = s / static_cast<double>(v.size());
    *lo = *std::min_element(v.begin(), v.end());
    *hi = *std::max_element(v.begin(), v.end());
  };
  stats(client_delays, &cost.client_delays, &cost.client_delays_min, &cost.client_delays_max);
  stats(all_delays, &cost.all_delays, &cost.all_delays_min, &cost.all_delays_max);
  cost.before_commit_delays = before / n;
  return cost;
}

constexpr Micros kRestartAfter = 5 * kSeconds;  // a single coordinator comes back after this
constexpr Micros kBlockingBound = 60 * kSeconds;

MeasureBlocking MeasureCrash(const MeasureOptions& o, MeasureResult* result, const std::string& point) {
  MeasureBlocking b;
  b.point = point;
  Meter m(o, result);
  if (!m.Start()) {
    b.outcome = "no coordinator served";
    b.settled = false;
    return b;
  }
  // A warm-up transaction, so the crash hits a leader in its steady state.
  auto warm = m.StartTxn(false);
  m.RunUntil(kTxnBound, [&] { return warm->done && m.AllFinal(*warm) && m.Quiet(); });
  m.w().RunUntil(m.w().now() + kGap);

  Micros crashed_at = -1;
  m.c().ArmCrashPoint(point, [&](int node) {
    crashed_at = m.w().now();
    if (m.c().replicas() == 1) {
      m.w().After(kRestartAfter, [&m, node] { m.c().RestartNode(node); });
    }
  });
  auto t = m.StartTxn(false);
  bool settled = m.RunUntil(kBlockingBound, [&] { return t->done && m.AllFinal(*t) && m.Quiet(); });
  m.c().ArmCrashPoint("", nullptr);
  b.crashed = crashed_at >= 0;
  b.settled = settled;
  std::map<std::string, int> finals;
  for (const auto& p : t->participants) {
    const BranchTimes* bt = m.Branch(*t, p.resource);
    if (bt == nullptr || bt->final_at < 0) {
      ++finals["not final"];
      continue;
    }
    ++finals[bt->final_state == "COMMITTED" ? "committed" : "aborted"];
    if (bt->prepared >= 0) {
      b.longest_in_doubt_micros = std::max(b.longest_in_doubt_micros, bt->final_at - bt->prepared);
      if (b.crashed) {
        b.longest_after_crash_micros = std::max(
            b.longest_after_crash_micros, bt->final_at - std::max(bt->prepared, crashed_at));
      }
    }
  }
  if (finals.size() == 1) {
    b.outcome = "all " + finals.begin()->first;
  } else {
    b.outcome = "mixed:";
    for (const auto& [k, v] : finals) b.outcome += " " + std::to_string(v) + " " + k;
  }
  char when[64];
  Micros since = b.crashed ? crashed_at : t->commit_sent;
  if (t->answered >= 0) {
    std::snprintf(when, sizeof when, " after %.3f s", static_cast<double>(t->answered - since) / kSeconds);
  } else {
    when[0] = '\0';
  }
  b.client = (t->done ? t->outcome : std::string("no answer yet")) + when;
  return b;
}

std::vector<std::string> CrashPoints(const std::string& protocol) {
  std::vector<std::string> p = {"coord.votes_outstanding", "coord.decide_proposed", "coord.after_decide"};
  if (protocol == "3pc") p.insert(p.begin() + 1, "coord.after_precommit");
  return p;
}

std::string Num(double v) {
  char buf[32];
  if (v == static_cast<double>(static_cast<int64_t>(v))) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  }
  return buf;
}

std::string Range(double mean, double lo, double hi) {
  if (lo == hi) return Num(mean);
  return Num(mean) + " (" + Num(lo) + "–" + Num(hi) + ")";
}

std::string Seconds(int64_t micros) {
  if (micros < 0) return "–";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(micros) / kSeconds);
  return buf;
}

}  // namespace

MeasureResult Measure(const MeasureOptions& options) {
  // As RunSeed: the cores' own log lines stay out of the output, and one
  // cluster at a time per process (SQLite's PRNG is process-wide).
  SetLogLevel("off");
  static std::mutex one_at_a_time;
  std::lock_guard<std::mutex> serial(one_at_a_time);
  MeasureResult r;
  r.costs.push_back(MeasureMode(options, &r, false));
  r.costs.push_back(MeasureMode(options, &r, true));
  if (options.blocking) {
    for (const std::string& p : CrashPoints(options.protocol)) r.blocking.push_back(MeasureCrash(options, &r, p));
  }
  return r;
}

std::string MeasureReport(const MeasureOptions& o, const MeasureResult& r) {
  std::ostringstream out;
  std::string proto = o.protocol == "3pc" ? "3PC" : "2PC";
  out << "### " << proto << ", " << o.participants << " participants, " << o.replicas
      << (o.replicas == 1 ? " replica" : " replicas") << "\n\n";
  out << "`txsim --measure --protocol " << o.protocol << " --participants " << o.participants
      << " --replicas " << o.replicas << " --seed " << o.seed << " --txns-per-seed " << o.txns
      << "` (one-way delay " << Num(static_cast<double>(o.one_way_micros) / 1000.0)
      << " ms, syncs 0 ms, one warm-up transaction then " << o.txns << " per mode)\n\n";
  out << "| mode | committed | client↔coord | coord↔agents | client↔agents | replica↔replica | "
         "messages | heartbeats (not counted) | syncs coord (all replicas) | syncs agents | "
         "delays to COMMITTED at client | delays to all participants committed | delays before Submit/Commit |\n";
  out << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const MeasureCost& c : r.costs) {
    out << "| " << c.mode << " | " << c.committed << "/" << c.txns << " | " << Num(c.client_coord) << " | "
        << Num(c.coord_agents) << " | " << Num(c.client_agents) << " | " << Num(c.replicas);
    if (c.agents_agents > 0) out << " (+" << Num(c.agents_agents) << " agent↔agent)";
    out << " | " << Num(c.total) << " | " << Num(c.heartbeats) << " | " << Num(c.coord_syncs) << " | "
        << Num(c.agent_syncs) << " | " << Range(c.client_delays, c.client_delays_min, c.client_delays_max)
        << " | " << Range(c.all_delays, c.all_delays_min, c.all_delays_max) << " | "
        << Num(c.before_commit_delays) << " |\n";
  }
  if (!r.blocking.empty()) {
    out << "\nLeader crash during a one-shot transaction ("
        << (o.replicas == 1 ? "the single coordinator restarts 5 s after the crash"
                            : "the crashed leader stays down; another replica takes over")
        << "):\n\n";
    out << "| crash point | participants' outcome | client told (after the crash) | "
           "longest in doubt after the crash | longest in doubt (PREPARED to final) |\n";
    out << "|---|---|---|---|---|\n";
    for (const MeasureBlocking& b : r.blocking) {
      out << "| " << b.point << (b.crashed ? "" : " (not reached)") << " | " << b.outcome
          << (b.settled ? "" : " (not settled in 60 s)") << " | " << b.client << " | "
          << Seconds(b.longest_after_crash_micros) << " | " << Seconds(b.longest_in_doubt_micros) << " |\n";
    }
  }
  if (r.violations > 0) out << "\nVIOLATIONS: " << r.violations << " (first: " << r.first_violation << ")\n";
  return out.str();
}

}  // namespace txc::sim
