// The metrics of a coordinator replica (docs/operations.md, "Metrics"). The
// commit and log-write latencies are measured here, in the shell; everything
// else is read from the core (its counters, the table, the replica) when
// /metrics is scraped, on the io thread.
#include <algorithm>

#include "coordinator/node.h"
#include "protocol/tls_flags.h"

namespace txc::coord {

namespace {

using metrics::Sample;

double Seconds(Micros d) { return static_cast<double>(d) / kSeconds; }

// What the driver is doing with a transaction, as txadmin's in-doubt filter
// reads it (node.cc, ListTxns): being voted on or decided, or decided and not
// yet acknowledged by every participant.
bool InDoubt(const CommitDriver::TxnView& v) {
  if (v.state == "voting" || v.state == "deciding") return true;
  if (v.state != "completing") return false;
  for (size_t i = 0; i < v.participants.size(); ++i) {
    if (i >= v.acked.size() || !v.acked[i]) return true;
  }
  return false;
}

}  // namespace

void CoordinatorNode::ObserveReply(const ClientResponse& r, Micros started) {
  const auto* c = std::get_if<proto::CommitResponse>(&r);
  if (c == nullptr || c->status.code != proto::Code::OK) return;
  metrics::Histogram* h = c->outcome == proto::Outcome::COMMITTED ? commit_committed_
                          : c->outcome == proto::Outcome::ABORTED ? commit_aborted_
                                                                  : nullptr;
  if (h != nullptr) h->Observe(Seconds(SteadyNowMicros() - started));
}

void CoordinatorNode::RegisterMetrics() {
  metrics::Registry& m = metrics_;
  rpc::AddServerMetrics(m, "txcoord", server_);
  const std::string latency_help =
      "Seconds from a Commit or Submit request to its decided answer (COMMITTED or ABORTED), "
      "as the leader measured it.";
  commit_committed_ = &m.AddHistogram("txcoord_commit_latency_seconds", latency_help,
                                      metrics::LatencyBuckets(), {{"outcome", "committed"}});
  commit_aborted_ = &m.AddHistogram("txcoord_commit_latency_seconds", latency_help,
                                    metrics::LatencyBuckets(), {{"outcome", "aborted"}});
  log_write_ = &m.AddHistogram(
      "txcoord_log_write_latency_seconds",
      "Seconds from handing a record to the decision log (single replica) or the acceptor's log "
      "(group) until it is durable: queueing, the group commit and its fsync.",
      metrics::LatencyBuckets());

  // Everything below reads the core; none of it runs before Start made it.
  auto up = [this] { return core_ != nullptr && (local_ != nullptr || paxos_ != nullptr); };

  m.AddCounterFunc("txcoord_transactions_total",
                   "Transactions this replica settled while it led, by outcome and protocol.",
                   [this, up] {
                     std::vector<Sample> out;
                     CommitDriver::Counters c;
                     if (up()) c = core_->driver().counters();
                     out.push_back({{{"outcome", "committed"}, {"protocol", "2pc"}},
                                    static_cast<double>(c.committed - c.committed_3pc)});
                     out.push_back({{{"outcome", "aborted"}, {"protocol", "2pc"}},
                                    static_cast<double>(c.aborted - c.aborted_3pc)});
                     out.push_back({{{"outcome", "committed"}, {"protocol", "3pc"}},
                                    static_cast<double>(c.committed_3pc)});
                     out.push_back({{{"outcome", "aborted"}, {"protocol", "3pc"}},
                                    static_cast<double>(c.aborted_3pc)});
                     return out;
                   });
  m.AddCounterFunc("txcoord_transactions_begun_total", "Txids this replica handed out while it led.",
                   [this, up] {
                     return std::vector<Sample>{
                         {{}, up() ? static_cast<double>(core_->driver().counters().begun) : 0}};
                   });
  m.AddCounterFunc("txcoord_txid_reservations_expired_total",
                   "Txids reserved by a Begin with a count (for one-shot Submits) that nothing "
                   "used in time, dropped by this replica while it led.",
                   [this, up] {
                     return std::vector<Sample>{
                         {{}, up() ? static_cast<double>(
                                         core_->driver().counters().reservations_expired)
                                   : 0}};
                   });
  m.AddCounterFunc(
      "txcoord_heuristic_hazards_total",
      "Refusals of a decision by a participant whose branch ended the other way, as this replica "
      "heard them while it led (txns --state hazard lists them).",
      [this, up] {
        return std::vector<Sample>{
            {{}, up() ? static_cast<double>(core_->driver().hazard_count()) : 0}};
      });

  m.AddGaugeFunc("txcoord_heuristic_hazard_transactions",
                 "Transactions with a heuristic hazard this replica remembers (the last 10,000 "
                 "it heard of while leading; gone when it restarts).",
                 [this, up] {
                   return std::vector<Sample>{
                       {{}, up() ? static_cast<double>(core_->driver().hazards().size()) : 0}};
                 });
  m.AddCounterFunc("txcoord_log_groups_written_total",
                   "Group commits (one transaction and fsync each, metadata-only ones included) the log has "
                   "written.",
                   [this, up] {
                     double n = !up() ? 0
                                : local_ ? static_cast<double>(local_->groups_written())
                                         : static_cast<double>(paxos_->groups_written());
                     return std::vector<Sample>{{{}, n}};
                   });
  m.AddCounterFunc("txcoord_log_records_written_total",
                   "Records the log has written (in txcoord_log_groups_written_total groups).",
                   [this, up] {
                     double n = !up() ? 0
                                : local_ ? static_cast<double>(local_->records_written())
                                         : static_cast<double>(paxos_->records_written());
                     return std::vector<Sample>{{{}, n}};
                   });

  // One pass over the driver's transactions for the three gauges about them.
  struct TxnCensus {
    double active = 0, in_doubt = 0, oldest_in_doubt = 0, stuck = 0, oldest_stuck = 0;
  };
  auto census = [this, up] {
    TxnCensus c;
    if (!up()) return c;
    Micros now = SteadyNowMicros();
    std::vector<CommitDriver::TxnView> views = core_->driver().ActiveTxns(now);
    for (const CommitDriver::TxnView& v : views) {
      if (v.state == "active" || v.state == "voting" || v.state == "deciding") ++c.active;
      if (InDoubt(v)) {
        ++c.in_doubt;
        c.oldest_in_doubt = std::max(c.oldest_in_doubt, Seconds(now - v.began));
      }
      if (v.stuck) {
        ++c.stuck;
        c.oldest_stuck = std::max(c.oldest_stuck, Seconds(now - v.decided_at));
      }
    }
    // A replica that does not serve drives nothing, but its table knows
    // what is decided and not ended (ages unknown).
    if (!core_->driver().serving()) {
      c.in_doubt += static_cast<double>(core_->table().unended_count());
    }
    return c;
  };
  m.AddGaugeFunc("txcoord_active_transactions",
                 "Transactions begun and not yet decided (active, voting or deciding) at this "
                 "replica.",
                 [census] { return std::vector<Sample>{{{}, census().active}}; });
  m.AddGaugeFunc("txcoord_in_doubt_transactions",
                 "Transactions whose outcome has not reached every participant: being voted on "
                 "or decided, or decided and not acknowledged by all (txns --state in-doubt).",
                 [census] { return std::vector<Sample>{{{}, census().in_doubt}}; });
  m.AddGaugeFunc("txcoord_oldest_in_doubt_age_seconds",
                 "Age of the oldest in-doubt transaction this replica drives (since it began, "
                 "or since this replica took over as leader); 0 when none.",
                 [census] { return std::vector<Sample>{{{}, census().oldest_in_doubt}}; });
  m.AddGaugeFunc("txcoord_stuck_transactions",
                 "Decided transactions whose outcome has not reached every participant for longer "
                 "than --stuck-after (txns --state stuck); delivery goes on.",
                 [census] { return std::vector<Sample>{{{}, census().stuck}}; });
  m.AddGaugeFunc("txcoord_oldest_stuck_age_seconds",
                 "Seconds since the oldest stuck transaction was decided (or taken over by this "
                 "leader); 0 when none.",
                 [census] { return std::vector<Sample>{{{}, census().oldest_stuck}}; });
  m.AddGaugeFunc("txcoord_decided_unended_transactions",
                 "Transactions decided in the replicated table and not yet ENDed.",
                 [this, up] {
                   return std::vector<Sample>{
                       {{}, up() ? static_cast<double>(core_->table().unended_count()) : 0}};
                 });

  // The group, as txadmin status shows it.
  m.AddGaugeFunc("txcoord_paxos_role",
                 "1 for this replica's role: leader (serving), follower, joining (rejoining "
                 "after its log was lost, not voting yet) or failed (its log storage failed).",
                 [this, up] {
                   std::string role = "follower";
                   if (up()) {
                     const proto::StatusResponse s = StatusNow();
                     const paxos::Replica* r = core_->replica();
                     if (s.storage_failed) {
                       role = "failed";
                     } else if (r != nullptr && r->joining()) {
                       role = "joining";
                     } else if (core_->driver().serving()) {
                       role = "leader";
                     }
                   }
                   std::vector<Sample> out;
                   for (const char* name : {"leader", "follower", "joining", "failed"}) {
                     out.push_back({{{"role", name}}, role == name ? 1.0 : 0.0});
                   }
                   return out;
                 });
  // The plain numbers of StatusNow, one family each.
  struct StatusGauge {
    const char* name;
    const char* help;
    double (*read)(const proto::StatusResponse&);
  };
  static const StatusGauge kStatusGauges[] = {
      {"txcoord_leader_id", "The replica id of the leader this replica knows; 0 when none.",
       [](const proto::StatusResponse& s) { return static_cast<double>(s.leader_id); }},
      {"txcoord_epoch", "The epoch (Paxos round) of the leader this replica serves or follows.",
       [](const proto::StatusResponse& s) { return static_cast<double>(s.epoch); }},
      {"txcoord_commit_index", "The highest log slot this replica knows to be chosen.",
       [](const proto::StatusResponse& s) { return static_cast<double>(s.commit_index); }},
      {"txcoord_applied_index", "The highest log slot applied to this replica's table.",
       [](const proto::StatusResponse& s) { return static_cast<double>(s.applied_index); }},
      {"txcoord_storage_failed",
       "1 once this replica's log refused a write (sticky until restart): it no longer votes, "
       "accepts or decides.",
       [](const proto::StatusResponse& s) { return s.storage_failed ? 1.0 : 0.0; }},
  };
  for (const StatusGauge& g : kStatusGauges) {
    m.AddGaugeFunc(g.name, g.help, [this, up, read = g.read] {
      return std::vector<Sample>{{{}, up() ? read(StatusNow()) : 0}};
    });
  }
  if (options_.peers.size() > 1) {
    m.AddGaugeFunc(
        "txcoord_follower_lag_slots",
        "Leader only: slots by which each other replica's applied index trails the leader's "
        "commit index, as the leader last heard.",
        [this, up] {
          std::vector<Sample> out;
          const paxos::Replica* r = up() ? core_->replica() : nullptr;
          if (r == nullptr || !r->is_leader()) return out;
          for (const auto& [id, applied] : r->progress()) {
            if (id == options_.replica_id) continue;
            out.push_back({{{"replica", std::to_string(id)}},
                           static_cast<double>(std::max<int64_t>(0, r->commit_index() - applied))});
          }
          return out;
        });
    m.AddGaugeFunc("txcoord_peer_reachable",
                   "1 when a message from that replica arrived within two election timeouts.",
                   [this, up] {
                     std::vector<Sample> out;
                     if (!up()) return out;
                     for (const proto::ReplicaInfo& ri : StatusNow().replicas) {
                       if (ri.id == options_.replica_id) continue;
                       out.push_back({{{"replica", std::to_string(ri.id)}}, ri.reachable ? 1.0 : 0.0});
                     }
                     return out;
                   });
  }
  if (options_.peers.size() > 1) {
    m.AddCounterFunc("txcoord_peer_messages_sent_total",
                     "Paxos messages sent to the other replicas: in the reply to the peer's "
                     "call they answer (as=\"reply\"), or as a call of their own (as=\"call\").",
                     [this] {
                       const PaxosLog* p = paxos_.get();
                       return std::vector<Sample>{
                           {{{"as", "reply"}}, p != nullptr ? static_cast<double>(p->sent_in_reply()) : 0},
                           {{{"as", "call"}}, p != nullptr ? static_cast<double>(p->sent_as_call()) : 0}};
                     });
    m.AddCounterFunc("txcoord_peer_held_replies_closed_total",
                     "Replies held for a peer's call (to carry this replica's next message to "
                     "it) let go unused because the call's connection had closed.",
                     [this] {
                       const PaxosLog* p = paxos_.get();
                       return std::vector<Sample>{
                           {{}, p != nullptr ? static_cast<double>(p->held_on_closed()) : 0}};
                     });
  }
  m.AddCounterFunc("txcoord_rpc_calls_total", "RPC calls this replica's server answered.", [this] {
    return std::vector<Sample>{{{}, static_cast<double>(server_.calls_served())}};
  });
  m.AddCounterFunc("txcoord_rpc_malformed_frames_total",
                   "Frames this replica's server refused as malformed.", [this] {
                     return std::vector<Sample>{{{}, static_cast<double>(server_.malformed_frames())}};
                   });
}

}  // namespace txc::coord
