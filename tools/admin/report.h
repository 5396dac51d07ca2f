// What txadmin prints, built from the answers of the group and the agents:
// each report as JSON (nlohmann) and as a human table. Pure functions: no
// I/O, so unit tests feed them answers and check the output.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "txcoord_types.h"

namespace txc::admin {

// Objects keep their keys in insertion order, so JSON reads like the table.
using Json = nlohmann::ordered_json;

// ------------------------------------------------------------------ status

// One replica named by --coordinator, and its answer to Status.
struct ReplicaAnswer {
  std::string address;
  std::optional<proto::StatusResponse> status;  // empty: it did not answer
  std::string error;                            // why not
};

struct StatusReport {
  struct Replica {
    std::string address;
    int id = 0;  // 0: unknown (unreachable and no answering replica knows its address)
    bool reachable = false;
    std::string error;                   // unreachable: why
    std::optional<proto::StatusResponse> status;  // reachable: its view
    std::string role;                    // leader, follower, stale-leader ("" unreachable)
    int64_t lag = 0;
  };
  // The leader of the newest epoch any answering replica knows; 0 = none.
  int leader_id = 0;
  std::string leader_address;
  bool leader_reachable = false;
  int64_t epoch = 0;  // that epoch (with no leader known: the newest seen)
  // What lag is measured against: the leader's applied index, or with the
  // leader unreachable the highest an answering replica has applied.
  int64_t reference_applied = 0;
  std::vector<Replica> replicas;  // in --coordinator order
  size_t reachable = 0;
  std::vector<int> storage_failed;  // ids of replicas whose log refused a write
};

// Merges the replicas' views. When the leader does not answer, its id and
// epoch are those the answering replicas report; if they disagree, the view
// with the highest epoch wins.
StatusReport BuildStatus(const std::vector<ReplicaAnswer>& answers);
Json StatusJson(const StatusReport& r);
std::string StatusTable(const StatusReport& r);

// ------------------------------------------------------------ transactions

Json TxnJson(const proto::TxnInfo& t);
Json TxnsJson(const std::vector<proto::TxnInfo>& txns);
std::string TxnsTable(const std::vector<proto::TxnInfo>& txns);

// One transaction: what the leader drives of it (if it still does) and the
// outcome the group answers for it.
Json TxnShowJson(const std::string& txid, const std::optional<proto::TxnInfo>& info,
                 proto::Outcome::type outcome);
std::string TxnShowText(const std::string& txid, const std::optional<proto::TxnInfo>& info,
                        proto::Outcome::type outcome);

// ----------------------------------------------------------------- branches

// An agent's branch as ListBranches reports it; a state with a parenthesised
// remark ("aborting (rollback failing: ...)") is split into state and detail.
struct BranchRow {
  std::string txid;
  std::string resource;
  std::string state;
  std::string detail;
  int64_t age_ms = 0;
  // A heuristic decision taken at the agent, and the group's outcome.
  std::string heuristic;      // "committed" / "aborted"; empty: none
  std::string reason, who;
  int64_t at_ms = 0;          // 0: not known
  std::string group_outcome;  // "committed" / "aborted"; empty: not heard yet
  std::string agreement;      // "agreed", "hazard" or "unknown"
};
BranchRow ToRow(const proto::BranchInfo& b);
bool Heuristic(const BranchRow& b);
// Prepared: voted YES, waiting for the group's decision.
bool InDoubt(const BranchRow& b);
Json BranchesJson(const std::vector<BranchRow>& rows);
std::string BranchesTable(const std::vector<BranchRow>& rows);

// Helpers shared with the WAL dump.
Json ParticipantsJson(const std::vector<proto::Participant>& ps);
std::string ParticipantsText(const std::vector<proto::Participant>& ps);
// "2026-12-02T07:01:02.123Z" for a Unix time in milliseconds.
std::string IsoTime(int64_t unix_ms);

}  // namespace txc::admin
