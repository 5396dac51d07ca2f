// The metrics of a participant agent (docs/operations.md, "Metrics"). The
// durable-write latencies are measured here, in the shell, where resource
// completions arrive; everything else is read from the core when /metrics is
// scraped, on the io thread.
#include <algorithm>

#include "participant/agent.h"
#include "protocol/tls_flags.h"

namespace txc::participant {

namespace {

using metrics::Sample;

double Seconds(Micros d) { return static_cast<double>(d) / kSeconds; }

// Every state BranchCore::BranchView names, so each series exists from the start.
const char* const kStates[] = {"active",    "prepared",  "precommitted",
                               "aborting",  "committed", "aborted"};

}  // namespace

void Agent::ObserveOp(ResourceOp::Kind kind, Micros started, bool ok) {
  auto it = op_latency_.find(kind);
  if (ok && it != op_latency_.end()) it->second->Observe(Seconds(SteadyNowMicros() - started));
}

void Agent::RegisterMetrics() {
  metrics::Registry& m = metrics_;
  rpc::AddServerMetrics(m, "txagent", server_);
  const std::string help =
      "Seconds from handing a durable operation to the resource until its completion reached "
      "the agent: queueing behind the resource's worker, the WAL write and its group-commit "
      "sync (execute_prepare also runs the one-shot's statements).";
  for (auto [kind, name] : {std::pair{ResourceOp::kPrepare, "prepare"},
                            std::pair{ResourceOp::kExecuteAndPrepare, "execute_prepare"},
                            std::pair{ResourceOp::kCommit, "commit"}}) {
    op_latency_[kind] = &m.AddHistogram("txagent_wal_write_latency_seconds", help,
                                        metrics::LatencyBuckets(), {{"op", name}});
  }

  // One pass over the branches for the gauges about them.
  struct BranchCensus {
    std::map<std::string, double> by_state;
    double oldest_in_doubt = 0;
    double failing_rollbacks = 0;
  };
  auto census = [this] {
    BranchCensus c;
    for (const char* s : kStates) c.by_state[s] = 0;
    Micros now = SteadyNowMicros();
    for (const BranchCore::BranchView& b : core_.Branches()) {
      c.by_state[b.state] += 1;
      if (b.state == "prepared" || b.state == "precommitted") {
        c.oldest_in_doubt = std::max(c.oldest_in_doubt, Seconds(now - b.since));
      }
      if (b.rollback_failures > 0) c.failing_rollbacks += 1;
    }
    return c;
  };
  m.AddGaugeFunc("txagent_branches",
                 "Branches this agent holds, by state. committed and aborted count finished "
                 "branches still remembered (about 10 s) for duplicate messages.",
                 [census] {
                   std::vector<Sample> out;
                   for (const auto& [state, n] : census().by_state) out.push_back({{{"state", state}}, n});
                   return out;
                 });
  m.AddGaugeFunc("txagent_oldest_in_doubt_age_seconds",
                 "Seconds the oldest PREPARED (in-doubt) branch has waited for its decision; 0 "
                 "when none.",
                 [census] { return std::vector<Sample>{{{}, census().oldest_in_doubt}}; });
  m.AddGaugeFunc("txagent_failing_rollbacks",
                 "Branches whose rollback failed and is being retried (aborting, locks held).",
                 [census] { return std::vector<Sample>{{{}, census().failing_rollbacks}}; });
  m.AddGaugeFunc("txagent_heuristic_decisions",
                 "Heuristic decisions an operator took at this agent and has not forgotten, by "
                 "agreement with the group: agreed, hazard (the group decided the other way), "
                 "unknown (not heard yet).",
                 [this] {
                   double agreed = 0, hazard = 0, unknown = 0;
                   for (const auto& b : core_.Branches()) {
                     if (!b.heuristic) continue;
                     if (!b.group_outcome) {
                       ++unknown;
                     } else if (*b.group_outcome == b.heuristic->outcome) {
                       ++agreed;
                     } else {
                       ++hazard;
                     }
                   }
                   return std::vector<Sample>{{{{"agreement", "agreed"}}, agreed},
                                              {{{"agreement", "hazard"}}, hazard},
                                              {{{"agreement", "unknown"}}, unknown}};
                 });

  using Counters = BranchCore::Counters;
  m.AddCounterFunc("txagent_prepares_total", "PREPAREs answered, by vote (a duplicate counts again).",
                   [this] {
                     const Counters& c = core_.counters();
                     return std::vector<Sample>{
                         {{{"vote", "yes"}}, static_cast<double>(c.votes_yes)},
                         {{{"vote", "no"}}, static_cast<double>(c.votes_no)},
                         {{{"vote", "read_only"}}, static_cast<double>(c.votes_read_only)}};
                   });
  struct CounterDef {
    const char* name;
    const char* help;
    uint64_t Counters::*field;
  };
  static const CounterDef kCounters[] = {
      {"txagent_commits_total", "Branch commits the resources completed (durable).",
       &Counters::commits},
      {"txagent_rollbacks_total", "Branch rollbacks the resources completed.", &Counters::rollbacks},
      {"txagent_rollback_failures_total",
       "Rollback attempts that failed (each retry counts); the branch keeps its locks.",
       &Counters::rollback_failures},
      {"txagent_lock_waits_total", "Requests that waited for a row lock held by another branch.",
       &Counters::lock_waits},
      {"txagent_lock_timeouts_total",
       "Requests that failed with LOCK_TIMEOUT after --lock-timeout-ms.", &Counters::lock_timeouts},
      {"txagent_lock_conflicts_total",
       "Requests refused at once on a lock conflict with an older transaction (wait-die): a "
       "one-shot PREPARE votes NO, an interactive branch is rolled back.",
       &Counters::wait_die_refusals},
      {"txagent_statement_timeouts_total",
       "Executes the resource interrupted past its time limit (TIMEOUT; the branch votes NO).",
       &Counters::statement_timeouts},
      {"txagent_decisions_confirmed_total",
       "Decisions from callers not authenticated as the coordinator group (plaintext) that the "
       "group confirmed before they were applied.",
       &Counters::decisions_confirmed},
      {"txagent_decisions_refused_total",
       "Decisions from callers not authenticated as the group that the group contradicted: "
       "forged or stale, refused, nothing changed.",
       &Counters::decisions_refused},
      {"txagent_decisions_unconfirmed_total",
       "Decisions from callers not authenticated as the group that could not be confirmed yet "
       "(the group unreachable or undecided): answered UNAVAILABLE, nothing changed.",
       &Counters::decisions_unconfirmed},
      {"txagent_decisions_foreign_total",
       "Decisions applied for txids the group says it never allocated (not its transactions).",
       &Counters::decisions_foreign},
      {"txagent_decisions_signed_total",
       "Decisions from callers not authenticated as the group that carried a valid MAC under "
       "this run's registered key: applied without asking the group.",
       &Counters::decisions_signed},
  };
  for (const CounterDef& d : kCounters) {
    m.AddCounterFunc(d.name, d.help, [this, field = d.field] {
      return std::vector<Sample>{{{}, static_cast<double>(core_.counters().*field)}};
    });
  }
  m.AddCounterFunc("txagent_rpc_calls_total", "RPC calls this agent's server answered.", [this] {
    return std::vector<Sample>{{{}, static_cast<double>(server_.calls_served())}};
  });
  m.AddCounterFunc("txagent_rpc_malformed_frames_total",
                   "Frames this agent's server refused as malformed.", [this] {
                     return std::vector<Sample>{{{}, static_cast<double>(server_.malformed_frames())}};
                   });
  m.AddCounterFunc("txagent_resource_events_total",
                   "Events a resource counts itself (database resources: what reconciling the "
                   "database's prepared transactions with the agent's WAL found and did; "
                   "foreign_prepared is the latest count, not a running total).",
                   [this] {
                     std::vector<Sample> out;
                     for (const auto& [name, r] : resources_) {
                       for (const auto& [event, n] : r->Counters()) {
                         out.push_back({{{"resource", name}, {"event", event}}, static_cast<double>(n)});
                       }
                     }
                     return out;
                   });
}

}  // namespace txc::participant
