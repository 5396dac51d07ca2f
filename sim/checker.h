// Checker: the invariants of DESIGN.md, asserted while a seed runs and at its
// end. Every violation is printed with the word "violation", the invariant,
// the seed, the simulated time and the last events touching the txid.
//
//  1 atomicity   no txid is committed at one participant and rolled back (with
//                changes undone) at another; a txid a client was told ABORTED
//                is committed nowhere; a txid no client asked to commit is
//                committed nowhere; a branch one of whose statements was
//                interrupted past its deadline commits nowhere, and its
//                transaction is never reported COMMITTED. A branch that
//                reached PREPARED (voted YES) is rolled back only after its
//                agent heard the ABORTED decision: a DECIDE(ABORTED), or an
//                outcome answer ABORTED heard once it was PREPARED (an answer
//                heard while ACTIVE, before the vote, decides nothing about a
//                YES vote).
//  2 durability  (final) a commit a client was told about is COMMITTED, on
//                disk, at every participant it wrote to.
//  3 agreement   no two applications of a log slot (by any replica, or by one
//                replica before and after a restart) carry different values;
//                no two state-machine images (snapshots) of one slot differ.
//  4 validity    every applied log value was proposed by some replica.
//  5 termination (final) every branch final, no locks, nothing in doubt, the
//                coordinator idle: checked by the simulation.
//  6 bank        at any time the committed sum of balances is the initial sum;
//                at the end the balances sum to it and none is negative.
//                Members: at any time (and at the end) each resource holds
//                its initial count of committed members (every rename keeps
//                it; an undo that skipped a row it had deleted does not).
//  7 liveness    group mode: once a replica's log failed, a healthy replica
//                leads within a bound while a connected healthy majority is
//                up: checked by the simulation (Cluster::CheckElection).
//
// Not thread-safe; one World thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "common/txid.h"
#include "sim/bank.h"
#include "sim/world.h"
#include "txcoord_types.h"

namespace txc::sim {

class Checker {
 public:
  // `repro` is the command line that replays this seed (printed with a violation).
  Checker(World* world, std::string repro, std::ostream* out);

  // The bank: `each` visits the state of every resource as it would be after
  // a crash-free step now (live when its agent is up, the durable image when
  // it is down); `total` is the initial sum of balances; `members` each
  // resource's initial count of members (a resource not named is not checked).
  using BankVisitor = std::function<void(const std::string&, const BankImage&)>;
  void SetBank(std::function<void(const BankVisitor&)> each, int64_t total,
               std::map<std::string, int64_t> members = {});

  // A resource's live state reached a final state for the branch.
  void OnBranchCommitted(int node, const std::string& resource, const TxId& txid, bool wrote);
  void OnBranchAborted(int node, const std::string& resource, const TxId& txid, bool had_changes);

  // An agent's branch reached PREPARED (durable, its YES vote ready), and
  // what the agent heard of an ABORTED decision: a DECIDE(ABORTED) request,
  // or an outcome answer ABORTED (which counts for a branch only once it is
  // PREPARED). OnBranchAborted checks a PREPARED branch's rollback against them.
  void OnBranchPrepared(int node, const std::string& resource, const TxId& txid);
  void OnAbortDecisionHeard(int node, const TxId& txid);
  // 3PC: a branch reached PRECOMMITTED (durable). The group chose PRECOMMIT
  // before any PRE_COMMIT left, so the transaction must commit: a rollback
  // (with changes) of any of its branches is an atomicity violation.
  void OnBranchPreCommitted(int node, const std::string& resource, const TxId& txid);
  void OnAbortedOutcomeHeard(int node, const TxId& txid);

  // A statement of `txid`'s branch at `resource` was interrupted past the
  // resource's time limit (the client is told it failed): the branch is
  // doomed, so it must never commit, nor its transaction.
  void OnStatementInterrupted(const std::string& resource, const TxId& txid);

  // What clients asked and were told.
  void OnCommitRequested(const TxId& txid);
  void OnToldCommitted(const TxId& txid, const std::vector<std::string>& resources);
  void OnToldAborted(const TxId& txid);
  // A late query (an Outcome, or a retried Commit, long after the txid
  // ended) was answered `outcome`: COMMITTED must be the truth (a commit was
  // asked for, nothing was rolled back: as OnToldCommitted, with the
  // resources its client wrote), ABORTED too (committed nowhere, ever: as
  // OnToldAborted). FORGOTTEN, UNKNOWN and PENDING claim nothing.
  void OnLateAnswer(const TxId& txid, proto::Outcome::type outcome,
                    const std::vector<std::string>& wrote);

  // The coordinator recorded a heuristic hazard (a participant refused the
  // decision: the participants disagree). An atomicity violation.
  void OnHeuristicHazard(const TxId& txid, const std::string& what);
  int heuristic_hazards() const { return heuristic_hazards_; }

  // The replicated log: a proposed value (one slot's batch) and an applied one.
  void OnProposed(const std::string& value);
  void OnApplied(int replica, uint64_t slot, const std::string& value);
  // A replica finished replaying its log after a restart, up to `last_slot`:
  // everything it applied before must be there again (a prefix-consistent
  // continuation; slot values are compared by OnApplied).
  void OnReplayed(int replica, uint64_t last_slot);
  // Group mode's snapshots: `image` is the replica's state machine holding
  // every slot through `slot`. Every image of one slot, whichever replica
  // took, installed or restored it, must be the same. A replica that took,
  // installed or restored an image at `slot` has applied everything up to it.
  void OnSnapshot(int replica, uint64_t slot, const std::string& image);    // it took one
  void OnInstalled(int replica, uint64_t slot, const std::string& image);   // from the leader
  void OnRestored(int replica, uint64_t slot, const std::string& image);    // its own, at boot

  // Invariant 6 (balances and members) at this instant; `txid` (may be null)
  // is what just changed.
  void CheckBankSum(const char* when, const TxId* txid = nullptr);

  // End of a seed: durability (2), over `durable_each` (every resource's
  // durable image), and the final bank state (6). Termination (5) is the
  // simulation's (it knows the cores).
  void FinalChecks(const std::function<void(const BankVisitor&)>& durable_each);

  // txsim --measure: told of every branch that reached PREPARED, PRECOMMITTED,
  // COMMITTED or ABORTED (`state`), at the simulated time it did. Checks nothing.
  using BranchObserver = std::function<void(int node, const std::string& resource,
                                            const TxId& txid, const char* state)>;
  void SetBranchObserver(BranchObserver o) { observer_ = std::move(o); }

  void Violation(const char* invariant, const TxId* txid, const std::string& what);
  int violations() const { return violations_; }
  const std::string& first() const { return first_; }
  bool CommittedAnywhere(const TxId& txid) const { return committed_.count(txid) > 0; }

 private:
  // (node, txid, resource).
  struct PreparedLess {
    bool operator()(const std::tuple<int, TxId, std::string>& a,
                    const std::tuple<int, TxId, std::string>& b) const {
      if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) < std::get<0>(b);
      if (!(std::get<1>(a) == std::get<1>(b))) return TxIdLess()(std::get<1>(a), std::get<1>(b));
      return std::get<2>(a) < std::get<2>(b);
    }
  };
  struct HeardLess {
    bool operator()(const std::pair<int, TxId>& a, const std::pair<int, TxId>& b) const {
      if (a.first != b.first) return a.first < b.first;
      return TxIdLess()(a.second, b.second);
    }
  };
  struct Outcomes {
    std::set<std::string> committed;  // resources where a written branch committed
    std::set<std::string> aborted;    // resources where a written branch was rolled back
  };

  World* world_;
  std::string repro_;
  std::ostream* out_;
  int violations_ = 0;
  int heuristic_hazards_ = 0;
  int printed_ = 0;
  std::string first_;

  BranchObserver observer_;
  std::function<void(const BankVisitor&)> bank_each_;
  int64_t bank_total_ = 0;
  std::map<std::string, int64_t> members_;  // resource -> initial count of members

  std::map<TxId, Outcomes, TxIdLess> outcomes_;
  std::set<TxId, TxIdLess> committed_;  // committed at one resource at least
  std::set<TxId, TxIdLess> commit_requested_;
  std::set<TxId, TxIdLess> told_aborted_;
  // Branches with an interrupted statement: txid -> resources.
  std::map<TxId, std::set<std::string>, TxIdLess> interrupted_;
  std::map<TxId, std::vector<std::string>, TxIdLess> told_committed_;

  // Per agent node: branches (resource, txid) that reached PREPARED, and
  // txids whose ABORTED decision the node heard in a way that may settle them.
  std::set<std::tuple<int, TxId, std::string>, PreparedLess> prepared_;
  std::set<std::pair<int, TxId>, HeardLess> abort_heard_;
  std::set<TxId, TxIdLess> precommitted_;

  std::unordered_set<std::string> proposed_;
  std::map<uint64_t, std::string> slots_;
  std::map<int, uint64_t> applied_through_;  // replica -> highest slot it applied
  std::map<uint64_t, std::string> images_;   // slot -> the state-machine image there
  void CheckImage(int replica, uint64_t slot, const std::string& image, const char* how);
};

}  // namespace txc::sim
