// BranchCore: a participant agent's protocol, as a deterministic core — the
// state machine of every branch (one txid on one resource): execute, vote,
// commit/abort, tombstones, lock waits, and asking the coordinator group about
// branches left ACTIVE past their deadline or PREPARED (in doubt).
//
// Inputs: requests (each with a token the shell uses to route the reply),
// completions of resource operations, the coordinator's answers to outcome
// queries, Tick(now). Outputs (TakeEffects): resource operations to run,
// replies, outcome queries, log lines. No sockets, files, clocks or threads
// inside.
//
// Durability: a YES vote and a COMMIT ack are emitted only from the
// completion of the resource operation that made the record durable.
//
// Aborts: a branch is ABORTED only once its rollback succeeded. Until then it
// is ABORTING: it keeps its locks, refuses statements, votes NO, and a failed
// rollback (a busy database, an undo that cannot apply) is retried with capped
// exponential backoff from Tick, shown in Branches() and logged. A rollback
// the agent starts on its own (an ACTIVE branch whose transaction seems gone)
// runs only if the branch is still ACTIVE when its turn comes: once PREPARED,
// only the group's decision settles it.
//
// Per branch, operations are serialised: a request that arrives while an
// operation is in flight (or while a statement waits for a lock) is queued
// and handled when it completes. An ABORT cancels a lock wait at once.
//
// Not thread-safe; owned by the agent's io thread.
#pragma once

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "common/decision_mac.h"
#include "common/status.h"
#include "common/time.h"
#include "common/txid.h"
#include "participant/resource_manager.h"
#include "txcoord_types.h"

namespace txc::participant {

struct AgentOptions {
  // Wait-die by txid age, for interactive statements and one-shot PREPAREs
  // alike: a request that meets a younger (or already decided) holder's row
  // lock waits this long, then fails with LOCK_TIMEOUT naming the holder; one
  // that meets an older, undecided holder's lock does not wait (a one-shot
  // votes NO, an interactive branch is rolled back and its client told to
  // retry), so distributed deadlocks cannot stall anyone. Default: 2 s.
  Micros lock_timeout = 2 * kSeconds;
  // An ACTIVE branch with no request for this long asks the coordinator
  // whether its transaction is still alive (a client may have died).
  // Default: 60 s (a Begin or Execute may ask for another).
  Micros active_timeout = 60 * kSeconds;
  // A PREPARED branch that has heard no decision for this long asks the
  // coordinator, then again with backoff up to query_max. Default: 1 s .. 5 s.
  Micros in_doubt_after = 1 * kSeconds;
  Micros query_max = 5 * kSeconds;
  // Finished branches are remembered in memory this long (answers to
  // duplicate messages), and at most max_finals_remembered of them; the
  // resource's log keeps tombstones longer, so a late PREPARE or EXECUTE is
  // still refused after they are gone. Default: 10 s and 200,000 (a branch
  // costs about 700 bytes here: at 4,000 one-shot transactions a second, 30 s
  // held some 80 MB per agent).
  Micros final_retention = 10 * kSeconds;
  size_t max_finals_remembered = 200000;
  // How often a parked statement retries its lock when no release woke it.
  // Default: 20 ms.
  Micros lock_retry = 20 * kMillis;
  // A failed rollback is retried after this long, doubling up to
  // rollback_retry_max. Default: 100 ms .. 10 s.
  Micros rollback_retry = 100 * kMillis;
  Micros rollback_retry_max = 10 * kSeconds;
  // The deadlines above (a quiet client, an in-doubt branch's next outcome
  // query, a rollback retry) are found by a look at every live branch, made
  // by Tick at most this often, so one may be served up to this late; lock
  // waits are looked at on every tick. With 10,000 transactions in flight a
  // look at every branch on every 5 ms tick took most of an agent's CPU.
  // 0: on every tick. Default: 50 ms.
  Micros deadline_scan = 50 * kMillis;
  // This run of the agent (a durable counter bumped at every start); 0 =
  // unknown. Execute replies carry it; an interactive PREPARE whose
  // participant entry names another incarnation votes NO, because ACTIVE work
  // is acknowledged before it is synced and a power loss may have taken it.
  int64_t incarnation = 0;
  // The most statements one branch runs over its whole life, summed over its
  // Execute calls (and a one-shot PREPARE's work). An Execute that would go
  // past it is refused with INVALID_ARGUMENT naming the count and the limit,
  // none of its statements run, and the branch keeps its earlier work (it
  // can still prepare); a one-shot PREPARE past it votes NO. Bounds the
  // undo log, the row locks and the time one transaction holds on the
  // resource: a client that loops on Execute cannot grow them forever.
  // Default: 100,000 (ten full requests of protocol/validate.h's
  // kMaxStatements).
  size_t max_branch_statements = 100000;
  // Testing seam, never set outside tests (txsim's abort-after-prepared bug):
  // the agent's own abort of a branch that seemed abandoned runs even if the
  // branch voted YES meanwhile, as before the fix (a PREPARED branch is
  // rolled back on a word that was no decision). Default: false.
  bool testing_ignore_active_only = false;
  // Three-phase commit's autonomous termination (DESIGN.md, "3PC"), off
  // when 0 (the default): an in-doubt branch of a THREE_PC transaction, in
  // doubt this long while every outcome query for this long failed (the
  // coordinator group unreachable), asks the other participants for their
  // branch's state (the participant list came with CAN_COMMIT) and applies
  // Skeen's rule (SkeenTermination) as a heuristic decision by
  // "autonomous-termination": recorded in the resource's log, and reported as
  // a heuristic hazard if the group later decided the other way. "Silent":
  // at least two outcome queries about the branch failed in a row, the first
  // this long ago, and no request for it came from the coordinator since. A
  // peer with no record of its branch ("none") blocks the decision (it may
  // have committed and forgotten); READ_ONLY voters and unreachable peers are
  // left out. Textbook 3PC: unsafe under partitions (docs/protocols.md).
  Micros autonomous_termination_timeout = 0;
  // A COMMITTED or ABORTED decision for a PREPARED (or PRECOMMITTED) branch
  // that the shell cannot attribute to the coordinator group (OnDecide's
  // `from_group` false: a plaintext caller, whom anyone on the network could
  // impersonate) is confirmed with the group before it is applied: the
  // branch asks for its outcome (an outcome query), applies the decision
  // only if the group answers the same, and otherwise refuses it (refused,
  // nothing changed) and follows the group. The real agent sets it unless
  // its callers are authenticated; txsim's agents set it too. Default: false
  // (unit tests of the protocol without the confirmation round).
  bool confirm_decisions = false;
  // Signed decisions, with confirm_decisions: this run's key and the address
  // (HOST:PORT, as participants name this agent) it is registered for. Every
  // outcome query carries both (AgentCore::OutcomeQuery), the group signs
  // its decisions for that address under the key (DecideRequest.
  // decision_mac), and a decision whose MAC checks is applied without
  // asking: only a party the agent reached on a connection it dialed learned
  // the key (docs/protocol.md, "Who may say commit"). The shell draws the
  // key at start from the system's random source (txsim: from the seed and
  // the boot). A zero key or an empty address: none (every decision from a
  // caller not attributable to the group is confirmed). Default: none.
  SipKey decision_key{};
  std::string decision_key_address;
  // Testing seam, never set outside tests (txsim's trust-any-mac bug): a
  // decision that carries any MAC is applied without asking, checked or not.
  bool testing_trust_any_mac = false;
};

// Skeen's cooperative termination rule over the states of the participants
// that answered (BranchInfo.state names; "none" and failures are left out by
// the caller): any committed -> COMMITTED; any aborted, aborting or active ->
// ABORTED; any precommitted -> COMMITTED; only prepared -> ABORTED. `rule`
// says which applied.
struct TerminationDecision {
  proto::Outcome::type outcome = proto::Outcome::ABORTED;
  std::string rule;
};
TerminationDecision SkeenTermination(const std::vector<std::string>& states);

// Autonomous termination: ask the agent at `to` for the state of its branch
// of `txid` (Agent.BranchState); hand the answer to OnPeerState.
struct PeerQuery {
  TxId txid;
  std::string resource;  // the asking branch's resource here
  proto::Participant to;
};

struct ResourceOp {
  // kHeuristic: ResourceManager::HeuristicDecide(heuristic); kForgetHeuristic:
  // ResourceManager::ForgetHeuristic(txid).
  // kPreCommit: ResourceManager::PreCommit (3PC's PRE_COMMIT).
  enum Kind {
    kExecute,
    kPrepare,
    kExecuteAndPrepare,
    kCommit,
    kRollback,
    kHeuristic,
    kForgetHeuristic,
    kPreCommit
  };
  uint64_t id = 0;  // echo it back in OnExecuteDone / OnOpDone
  Kind kind = kExecute;
  std::string resource;
  TxId txid;
  std::vector<proto::Statement> statements;
  PrepareInfo info;  // kPrepare, kExecuteAndPrepare (and kHeuristic); empty otherwise
  HeuristicRecord heuristic;  // kHeuristic
};

using AgentResponse =
    std::variant<proto::ExecuteResponse, proto::PrepareResponse, proto::DecideResponse,
                 proto::AgentResolveResponse, proto::AgentForgetResponse,
                 proto::BranchStateResponse>;

struct AgentReply {
  uint64_t token = 0;
  AgentResponse response;
};

// Something an operator should see in the agent's log.
struct AgentLogLine {
  enum Level { kInfo, kWarn, kError };
  Level level = kInfo;
  std::string message;  // e.g. "rollback failed txid=7.1 resource=bank_a attempt=2 ..."
};

struct AgentEffects {
  std::vector<ResourceOp> ops;
  std::vector<AgentReply> replies;
  std::vector<TxId> queries;  // ask the coordinator group for these outcomes
  std::vector<PeerQuery> peer_queries;  // autonomous termination
  std::vector<AgentLogLine> logs;
  bool empty() const {
    return ops.empty() && replies.empty() && queries.empty() && peer_queries.empty() &&
           logs.empty();
  }
};

class BranchCore {
 public:
  BranchCore(std::vector<std::string> resources, AgentOptions options);

  // Start-up: the branches a resource's Recover() returned. ACTIVE ones are
  // rolled back; PREPARED ones stay in doubt, holding their locks, and ask.
  void OnRecovered(const std::string& resource, const std::vector<RecoveredBranch>& branches,
                   Micros now);
  // Start-up, after OnRecovered: the heuristic decisions the resource keeps.
  // Each is reconciled with the group (asked until it answers COMMITTED or
  // ABORTED) and listed until forgotten.
  void OnRecoveredHeuristics(const std::string& resource,
                             const std::vector<HeuristicRecord>& records, Micros now);
  // While running: the resource recorded by itself that a branch was ended
  // outside txcoord (ResourceManager::HeuristicOf; a database's prepared
  // transaction gone). The branch becomes a heuristic record as after a
  // restart: listed, reconciled with the group, the group's decisions
  // compared and never applied. Ignored while an operation on it runs.
  void OnResourceHeuristic(const std::string& resource, const HeuristicRecord& record, Micros now);

  // An operator's heuristic decision (Agent.Resolve): every in-doubt branch
  // of req.txid (at req.resource, or at every resource here) is committed or
  // rolled back with its record, then reconciled with the group. Refused,
  // changing nothing, when no branch of the txid is in doubt here (the
  // message names each state) or one is busy applying a decision.
  void OnResolve(uint64_t token, const proto::AgentResolveRequest& req, Micros now);
  // Drops the heuristic records of req.txid (Agent.Forget); NOT_FOUND when
  // there are none.
  void OnForget(uint64_t token, const proto::AgentForgetRequest& req, Micros now);
  // Agent.BranchState: the state of this agent's branch of req.txid at
  // req.resource, for another participant's autonomous termination.
  void OnBranchState(uint64_t token, const proto::BranchStateRequest& req);
  // `resource` cannot record PRECOMMITTED (ResourceManager::SupportsPreCommit
  // is false): its branches acknowledge PRE_COMMIT at once and stay PREPARED
  // (autonomous termination then counts them as PREPARED).
  void SetPreCommitUnsupported(const std::string& resource) { no_precommit_.insert(resource); }
  // The answer to a PeerQuery (`call` not OK: unreachable, left out).
  void OnPeerState(const PeerQuery& q, const Status& call, const proto::BranchStateResponse& resp,
                   Micros now);

  // A statement that fails with EXPECTATION_FAILED (expect_rows) or TIMEOUT
  // (interrupted past its deadline) dooms an interactive branch: later
  // statements are refused and PREPARE votes NO with the resource's message.
  void OnExecute(uint64_t token, const proto::ExecuteRequest& req, Micros now);
  void OnPrepare(uint64_t token, const proto::PrepareRequest& req, Micros now);
  // An ABORTED decision is acknowledged OK only once the rollback succeeded;
  // a failed one is answered with its error (the coordinator resends).
  // `from_group`: the shell authenticated the caller as a coordinator
  // replica (see AgentOptions::confirm_decisions).
  void OnDecide(uint64_t token, const proto::DecideRequest& req, Micros now,
                bool from_group = false);
  // Whether decisions are signed for this agent (AgentOptions::decision_key),
  // and the outcome query for `txid`, with the key to register when they are.
  bool signs_decisions() const {
    return options_.confirm_decisions && UsableKey(options_.decision_key) &&
           !options_.decision_key_address.empty();
  }
  proto::OutcomeRequest OutcomeQuery(const TxId& txid) const;

  // Completions of ResourceOps: Execute and ExecuteAndPrepare report an
  // ExecuteResult, the others a Status.
  void OnExecuteDone(uint64_t op, const ExecuteResult& result, Micros now);
  void OnOpDone(uint64_t op, const Status& status, Micros now);

  // The coordinator group's answer to a query (a non-OK status: ask again
  // later). An ACTIVE branch whose transaction is not PENDING is rolled back,
  // if it is still ACTIVE when the rollback's turn comes; a PREPARED one moves
  // only on COMMITTED or ABORTED. Give UNKNOWN for a txid the group says it
  // never allocated.
  void OnOutcome(const TxId& txid, const Status& status, proto::Outcome::type outcome, Micros now);

  void Tick(Micros now);

  AgentEffects TakeEffects();

  struct BranchView {
    TxId txid;
    std::string resource;
    std::string state;  // active, prepared, precommitted, aborting, committed, aborted
    Micros since = 0;
    // ABORTING only: failed rollback attempts so far and the last error.
    int rollback_failures = 0;
    std::string rollback_error;
    // A heuristic decision taken here, and the group's outcome once heard.
    std::optional<HeuristicRecord> heuristic;
    std::optional<proto::Outcome::type> group_outcome;
  };
  std::vector<BranchView> Branches() const;
  size_t in_doubt_count() const;
  // Heuristic decisions kept, and those the group decided the other way.
  size_t heuristic_count() const { return heuristics_.size(); }
  size_t heuristic_hazard_count() const;

  // What this core did since it was built (the shell's metrics read them).
  struct Counters {
    uint64_t votes_yes = 0;        // PREPAREs answered YES (a duplicate PREPARE too)
    uint64_t votes_no = 0;         // ... answered NO
    uint64_t votes_read_only = 0;  // ... answered READ_ONLY
    uint64_t commits = 0;          // commits the resource completed (durable)
    uint64_t rollbacks = 0;        // rollbacks the resource completed
    uint64_t rollback_failures = 0;  // rollback attempts that failed (each retry counts)
    uint64_t lock_waits = 0;       // requests that waited for a row lock (once per request)
    uint64_t lock_timeouts = 0;    // ... that gave up after lock_timeout
    uint64_t wait_die_refusals = 0;  // requests refused at once by wait-die (one-shot or interactive)
    uint64_t statement_timeouts = 0;  // executes the resource interrupted (TIMEOUT)
    // Decisions from callers not attributable to the group
    // (confirm_decisions): confirmed by the group and applied; refused
    // because the group answered otherwise (a forged or stale decision); not
    // confirmed because the group could not be asked (answered UNAVAILABLE).
    uint64_t decisions_confirmed = 0;
    uint64_t decisions_refused = 0;
    uint64_t decisions_unconfirmed = 0;
    // Applied without the group: it never allocated the txid (UNKNOWN).
    uint64_t decisions_foreign = 0;
    // Decisions for branches in doubt from such callers applied without
    // asking: their MAC checked (signed decisions).
    uint64_t decisions_signed = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  using Key = std::pair<std::string, TxId>;
  struct KeyLess {
    bool operator()(const Key& a, const Key& b) const {
      if (a.first != b.first) return a.first < b.first;
      return Older(a.second, b.second);
    }
  };

  // A request waiting for its turn on a branch.
  struct Pending {
    uint64_t token = 0;
    bool has_token = false;  // internal work (recovery, outcome answers) has none
    std::variant<proto::ExecuteRequest, proto::PrepareRequest, proto::DecideRequest> req;
    // An abort the agent decided on its own (an ACTIVE branch whose
    // transaction seems gone): dropped unless the branch is still ACTIVE.
    bool active_only = false;
    // A decision whose sender is not attributable to the group and that the
    // group has not confirmed yet (AgentOptions::confirm_decisions).
    bool unconfirmed = false;
    // ... whose MAC checked under this run's key (AgentOptions::
    // decision_key): applied without asking.
    bool signature_checked = false;
  };

  // kAborting: decided to abort, rollback not yet done (or failing).
  // kPreCommitted: 3PC, PRE_COMMIT recorded (the group chose PRECOMMIT).
  enum class St { kNone, kActive, kPrepared, kPreCommitted, kAborting, kCommitted, kAborted };

  struct Branch {
    St state = St::kNone;
    bool wrote = false;
    // Statements this branch has run (successful Execute calls and a
    // one-shot's work), against max_branch_statements.
    size_t statements = 0;
    bool in_flight = false;  // a ResourceOp is running
    std::optional<Pending> current;  // the request the in-flight op (or lock wait) serves
    // A list, not a deque: an empty std::deque still holds a heap block of
    // about one Pending, and every branch keeps its queue (empty) for
    // final_retention after it ends (tens of thousands under load).
    std::list<Pending> queue;
    Micros since = 0;       // last state change or request
    Micros deadline = 0;    // ACTIVE: ask after; PREPARED: next query
    Micros query_backoff = 0;
    PrepareInfo info;
    // ACTIVE: a statement failed in a way that dooms the branch (a row-count
    // expectation, a statement past its deadline); PREPARE votes NO with this.
    std::optional<std::string> doomed;
    // Autonomous termination round in progress: the answers so far (state
    // names, by resource) and how many peers have yet to answer.
    bool terminating = false;
    size_t termination_pending = 0;
    std::map<std::string, std::string> termination_answers;
    Micros termination_next = 0;  // no new round before this
    // The group's silence about this branch: when its outcome queries began
    // to fail, and how many failed in a row (reset by any answer, and by any
    // request from the coordinator for this branch).
    std::optional<Micros> silent_since;
    int failed_queries = 0;
    // ABORTING: failed rollback attempts; the next one is due at `deadline`.
    int rollback_failures = 0;
    std::string rollback_error;
    Micros rollback_backoff = 0;
    // Lock wait of `current`:
    bool parked = false;
    // `current` is an unconfirmed decision waiting for the group's answer to
    // the outcome query it sent (AgentOptions::confirm_decisions).
    bool confirming = false;
    bool waited = false;  // `current` has parked at least once (counted in lock_waits)
    Micros wait_until = 0;
    Micros next_retry = 0;
    std::optional<TxId> holder;
    std::string conflict;
  };

  static const char* StName(St s);
  // Branches Tick must look at (besides lock waits).
  static bool Live(St s) {
    return s == St::kActive || s == St::kPrepared || s == St::kPreCommitted || s == St::kAborting;
  }
  static bool InDoubt(St s) { return s == St::kPrepared || s == St::kPreCommitted; }
  // The branch of `holder` on `resource` has its decision here (being
  // applied, confirmed or queued): its transaction waits for no lock.
  bool HolderDecided(const std::string& resource, const TxId& holder) const;
  bool KnownResource(const std::string& r) const { return resources_.count(r) > 0; }
  Branch& Get(const std::string& resource, const TxId& txid, Micros now);
  void SetState(const Key& key, Branch& b, St st, Micros now);

  void Enqueue(const Key& key, Pending p, Micros now);
  void Pump(const Key& key, Micros now);  // start the next queued request if idle
  void Start(const Key& key, Branch& b, Pending p, Micros now);
  void IssueOp(const Key& key, Branch& b, ResourceOp::Kind kind, std::vector<proto::Statement> stmts,
               Micros now);
  // Moves the branch to ABORTING and runs a rollback; `p`, if any, is the
  // request answered when it completes.
  void StartRollback(const Key& key, Branch& b, std::optional<Pending> p, Micros now);
  void OnRollbackDone(const Key& key, Branch& b, std::optional<Pending> p, const Status& s,
                      Micros now);
  void Log(AgentLogLine::Level level, std::string message);
  // Ends the current request with `s` (one-shot: a NO vote and a tombstone).
  void FailCurrent(const Key& key, Branch& b, const Status& s, Micros now);
  // INVALID_ARGUMENT when `more` statements would take the branch past
  // max_branch_statements; OK otherwise.
  Status CheckStatementBudget(const Key& key, const Branch& b, size_t more) const;
  Status LockTimeoutStatus(const std::string& conflict, const std::optional<TxId>& holder) const;
  void Park(const Key& key, Branch& b, const ExecuteResult& r, Micros now);
  // Ends a lock wait; with retry, re-issues the waiting request's operation.
  void Unpark(const Key& key, Branch& b, bool retry, Micros now);
  void WakeWaitersOf(const Key& holder, Micros now);
  void CancelLockWait(const Key& key, Micros now);

  void ReplyExecute(const Pending& p, const Status& s, std::vector<proto::ResultSet> results = {});
  void ReplyVote(const Pending& p, proto::Vote::type vote, const std::string& reason,
                 const Status& s = Status::Ok());
  // `refused`: the branch ended the other way (DecideResponse.refused).
  void ReplyDecide(const Pending& p, const Status& s, bool refused = false);
  // AgentOptions::confirm_decisions: parks an unconfirmed decision for a
  // branch in doubt and asks the group (true), or lets it run (false).
  bool ConfirmFirst(const Key& key, Branch& b, Pending& p);
  void SettleConfirmation(const Key& key, Branch& b, const Status& status,
                          proto::Outcome::type outcome, Micros now);

  std::set<std::string> resources_;
  std::set<std::string> no_precommit_;
  AgentOptions options_;
  std::map<Key, Branch, KeyLess> branches_;
  std::set<Key, KeyLess> live_;  // branches Tick must look at: ACTIVE, PREPARED, waiting
  std::set<Key, KeyLess> parked_;  // the waiting ones (parked on a lock): every tick
  Micros next_scan_ = 0;           // Tick's next look at all of live_ (deadline_scan)
  std::deque<std::pair<Micros, Key>> finals_;  // finished branches, oldest first
  std::map<Key, std::set<Key, KeyLess>, KeyLess> waiters_;  // lock holder -> waiting branches
  std::map<uint64_t, std::pair<Key, ResourceOp::Kind>> ops_;  // in-flight op id -> branch

  // Heuristic decisions (OnResolve, OnRecoveredHeuristics) until forgotten.
  struct Heuristic {
    HeuristicRecord record;
    std::optional<proto::Outcome::type> group;  // the group's outcome, once heard
    Micros decided = 0;  // when this core learnt it (decided, or recovered)
    // A hazard: this run refused the coordinator's decision, so the
    // coordinator has recorded the disagreement (forgetting is safe then).
    bool refused_decision = false;
    Micros next_query = 0;
    Micros query_backoff = 0;
  };
  std::map<Key, Heuristic, KeyLess> heuristics_;
  // An operator's request waiting for its resource ops (kHeuristic or
  // kForgetHeuristic): the reply goes once all are done.
  struct OperatorJob {
    uint64_t token = 0;
    bool reply = true;  // false: the agent's own (autonomous termination)
    bool forget = false;
    size_t pending = 0;
    std::vector<proto::BranchInfo> decided;
    int forgotten = 0;
    Status first_error;
    std::map<Key, HeuristicRecord, KeyLess> records;  // resolve: what each op records
  };
  std::map<uint64_t, OperatorJob> jobs_;     // job id -> job
  // When the group's outcome queries started failing (unset: it answered last).
  void MaybeTerminate(const Key& key, Branch& b, Micros now);
  // A request from the coordinator, or an answer from the group, about this
  // branch: the group is not silent.
  void HeardFromGroup(const Key& key);
  void FinishTermination(const Key& key, Branch& b, Micros now);
  // Issues the heuristic ops of a job (OnResolve, autonomous termination).
  void StartHeuristicJob(uint64_t token, bool reply, const std::vector<Key>& targets,
                         proto::Outcome::type outcome, const std::string& reason,
                         const std::string& who);
  std::string StateName(const Key& key) const;  // as BranchInfo.state; "none" when unknown
  std::map<uint64_t, uint64_t> job_of_op_;   // op id -> job id
  uint64_t next_job_ = 1;
  void OnOperatorOpDone(uint64_t job_id, const Key& key, ResourceOp::Kind kind, const Status& s,
                        Micros now);
  void FinishJob(uint64_t job_id);
  void NoteGroupOutcome(const Key& key, Heuristic& h, proto::Outcome::type outcome,
                        const char* how);
  proto::BranchInfo HeuristicInfo(const Key& key, const Heuristic& h) const;
  uint64_t next_op_ = 1;
  Counters counters_;
  AgentEffects effects_;
};

}  // namespace txc::participant
