// CommitDriver: the coordinator leader's two-phase commit, presumed abort, as
// a deterministic core (DESIGN.md, "Transactions and the commit protocols").
//
// 3PC (DESIGN.md, "3PC"): after every YES vote the leader proposes
// PRECOMMIT; only once it is chosen does PRE_COMMIT go out (a DecideRequest
// with precommit set); after every ack (or precommit_ack_timeout) it proposes
// DECIDE(COMMITTED) and delivers it as in 2PC. A new leader decides COMMITTED
// every transaction whose PRECOMMIT is chosen; one without it is presumed
// aborted, as in 2PC.
//
// Inputs: client requests (each with a token the shell uses to route the
// reply), votes and acks from participants, commands the log has chosen and
// applied to the TxnTable, and Tick(now). Outputs (TakeEffects): messages to
// participants, commands to propose to the log, replies to clients. The
// driver never touches a socket, a file or a clock: `now` comes in.
//
// Durability: a client hears COMMITTED, and a participant hears COMMIT, only
// after the DECIDE command was chosen (OnApplied), i.e. it is durable in the
// log (a majority of replicas, with Paxos). Aborts are not logged.
//
// Signed decisions: an agent that confirms decisions (plaintext) registers a
// key with its outcome queries; every decision for its address then carries
// a MAC under that key (DecideRequest.decision_mac), and the agent applies a
// decision whose MAC checks without asking (docs/protocol.md).
//
// Not thread-safe; owned by the node's io thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/decision_mac.h"
#include "common/status.h"
#include "common/time.h"
#include "common/txid.h"
#include "coordinator/txn_table.h"
#include "txcoord_types.h"

namespace txc::coord {

struct DriverOptions {
  // A participant that has not voted by then makes the transaction abort.
  // Default: 5 s.
  Micros vote_timeout = 5 * kSeconds;
  // A transaction begun but not committed within this is aborted (a client
  // may ask for another in Begin). Default: 60 s.
  Micros txn_timeout = 60 * kSeconds;
  // Txids reserved by a Begin with a count (BeginRequest.count) that no
  // Submit or Commit used within this are dropped, as a timed-out
  // transaction is (nothing ran under them), and counted as
  // reservations_expired, not as aborts. At most txn_timeout. Default: 10 s.
  Micros reserve_ttl = 10 * kSeconds;
  // Resending COMMIT to a participant that has not acked: backoff doubling
  // from initial to max. Default: 50 ms .. 2 s.
  Micros resend_initial = 50 * kMillis;
  Micros resend_max = 2 * kSeconds;
  // Deadline the shell should give each participant call. Default: 5 s.
  Micros call_timeout = 5 * kSeconds;
  // A decided transaction whose outcome has not reached every participant
  // this long after the decision is flagged stuck (ListTxns state "stuck",
  // with each participant's attempts and last error) and reported once per
  // this interval (DriverEffects::stuck) until it ends. Delivery never stops
  // (capped backoff). Default: 60 s.
  Micros stuck_after = 60 * kSeconds;
  // How many transactions' heuristic hazards are kept for ActiveTxns/Hazards
  // (oldest dropped first; hazard_count() counts them all). Default: 10,000.
  size_t hazards_retained = 10000;
  // 3PC: once PRECOMMIT is chosen, PRE_COMMIT is sent (and resent with the
  // resend backoff) until every participant acked or this long passed; then
  // DECIDE(COMMITTED) is proposed anyway (PRECOMMIT chosen means commit; a
  // participant that missed PRE_COMMIT learns the outcome like any other).
  // Default: 5 s.
  Micros precommit_ack_timeout = 5 * kSeconds;
  // Testing seam, never set outside tests (txsim's 3pc-skip-precommit-choose
  // bug): PRE_COMMIT is sent as soon as PRECOMMIT is proposed, before it is
  // chosen. Default: false.
  bool testing_precommit_before_chosen = false;
  // The most participants a transaction may have (distinct resource and
  // agent pairs, counted after duplicates are merged): a Commit or Submit
  // naming more is refused with INVALID_ARGUMENT, nothing changed (the
  // transaction stays open, to be rolled back). Each is a PREPARE and a
  // DECIDE per transaction, and the list is written into the decision log.
  // At most validate::kMaxParticipants (the wire refuses longer lists).
  // Default: 1,000 (validate::kMaxParticipants).
  size_t max_participants = 1000;
  // Lazy END: an END_TXN (all participants acknowledged) is not proposed
  // alone at once. It waits for the next proposal of this leader (a DECIDE,
  // usually, which it joins in one slot) or for the next Tick, or until
  // `lazy_end_batch` of them wait; so a transaction costs one log write
  // instead of two, and the END never holds up the next transaction's
  // DECIDE behind its fsync. The txn stays "ending" that much longer (its
  // outcome is in the table either way). false: each END is proposed at
  // once. The real node and txsim turn it on. Default: false.
  bool lazy_end = false;
  size_t lazy_end_batch = 256;
  // Options of the TxnTable the node builds next to this driver (the driver
  // only reads the table): ended-transaction retention and the like.
  TxnTableOptions table;
};

// One message to a participant agent.
struct ParticipantCall {
  TxId txid;
  size_t index = 0;  // which participant of the txn (echo it back in OnVote/OnAck)
  proto::Participant to;
  std::optional<proto::PrepareRequest> prepare;  // PREPARE (with work: one-shot)
  std::optional<proto::DecideRequest> decide;    // COMMIT or ABORT
  bool want_ack = false;  // false: fire and forget (ABORT under presumed abort)
};

using ClientResponse =
    std::variant<proto::BeginResponse, proto::CommitResponse, proto::OutcomeResponse>;

struct ClientReply {
  uint64_t token = 0;
  ClientResponse response;
};

// A participant refused the decision because its branch ended the other way:
// the participants disagree (a heuristic mix). Reported, never fixed here.
struct HeuristicHazard {
  TxId txid;
  proto::Participant participant;
  proto::Outcome::type decided = proto::Outcome::UNKNOWN;  // what it was told
  std::string message;                                      // its refusal
  Micros at = 0;
  std::string ToString() const;  // "bank_a at HOST:PORT refused COMMITTED: ..."
};

// A decided transaction still undelivered after DriverOptions::stuck_after:
// the shell logs it at warn (once per stuck_after while it lasts).
struct StuckNotice {
  TxId txid;
  proto::Outcome::type outcome = proto::Outcome::UNKNOWN;
  Micros decided_for = 0;  // since the decision was chosen (or this leader took it over)
  std::string waiting;     // "bank_b at HOST:PORT (7 attempts, last error: ...)", ...
  std::string ToString() const;
};

// The NOOP a leader proposes as an epoch barrier (CommitDriver::
// AwaitEpochBarrier): its epoch field names the leadership.
proto::Command MakeEpochBarrier(int64_t epoch);
bool IsEpochBarrier(const proto::Command& cmd);

struct DriverEffects {
  std::vector<ParticipantCall> calls;
  std::vector<proto::Command> proposals;
  std::vector<ClientReply> replies;
  // Newly recorded hazards: the shell logs each (a warning an operator must see).
  std::vector<HeuristicHazard> hazards;
  std::vector<StuckNotice> stuck;
  bool empty() const {
    return calls.empty() && proposals.empty() && replies.empty() && hazards.empty() &&
           stuck.empty();
  }
};

class CommitDriver {
 public:
  // `table` is the applied state machine; the driver reads it, never writes.
  CommitDriver(const TxnTable* table, DriverOptions options);

  // Starts serving as leader of `epoch`. REQUIRES: every chosen command up to
  // the leader's own first command is applied to the table (DESIGN.md: a new
  // leader answers only after phase 1 and recovery). Drives every decided,
  // un-ended transaction in the table to its end.
  void BecomeLeader(int64_t epoch, Micros now);
  // Stops serving: pending client calls get NOT_LEADER with the hint.
  void StepDown(const std::string& leader_hint);
  bool serving() const { return serving_; }
  int64_t epoch() const { return epoch_; }

  // Client requests. Each produces exactly one ClientReply with `token`,
  // possibly much later (after the decision is chosen).
  void OnBegin(uint64_t token, const proto::BeginRequest& req, Micros now);
  void OnCommit(uint64_t token, const proto::CommitRequest& req, Micros now);
  void OnSubmit(uint64_t token, const proto::SubmitRequest& req, Micros now);
  void OnAbort(uint64_t token, const proto::AbortRequest& req, Micros now);
  void OnOutcome(uint64_t token, const proto::OutcomeRequest& req, Micros now);
  // An operator's forced abort (ResolveRequest): RESOLVE(ABORTED) is
  // proposed for a transaction this leader drives that is not decided; the
  // reply (a CommitResponse) comes once it is chosen, with the decision that
  // stands. Anything else is refused with the reason: a decided (or being
  // decided) transaction names its decision.
  void OnResolve(uint64_t token, const proto::ResolveRequest& req, Micros now);
  // An operator gives up delivering a decided transaction's outcome to one
  // participant (ForgetParticipantRequest): FORGET is proposed; once chosen
  // the participant counts as acknowledged, a heuristic hazard is recorded
  // (it may never apply the outcome), and the transaction can END. The reply
  // (a CommitResponse with the outcome) comes once it is chosen. Refused with
  // the reason for a transaction not decided (resolve it first), not driven
  // here, or a participant it does not have or that acknowledged already.
  void OnForgetParticipant(uint64_t token, const proto::ForgetParticipantRequest& req, Micros now);

  // A participant answered PREPARE; a non-OK status (unreachable, timed out)
  // counts as a NO vote.
  void OnVote(const TxId& txid, size_t index, const Status& status,
              const proto::PrepareResponse& resp, Micros now);
  // A participant answered COMMIT/ABORT (want_ack calls only).
  void OnAck(const TxId& txid, size_t index, const Status& status, Micros now);
  // The answer to any decision call, want_ack or fire-and-forget (shells call
  // this for every one): `transport` is the call's failure, `reply` the
  // agent's answer when it came. Acknowledges as OnAck does, and records a
  // refusal (reply.refused, or an INTERNAL "refusing to ..." from an agent
  // that does not set it) as a heuristic hazard.
  void OnDecideAnswer(const ParticipantCall& call, const Status& transport,
                      const proto::DecideResponse& reply, Micros now);

  // The log chose `cmd` and the table has applied it.
  void OnApplied(const proto::Command& cmd, Micros now);
  // The log could not make `cmd` durable (storage failure, lost leadership).
  // The outcome is unknown to this node: waiting clients get UNAVAILABLE.
  void OnProposalFailed(const proto::Command& cmd, const Status& why, Micros now);
  // A NOOP the log chose and applied: settles the outcome queries waiting
  // for an epoch barrier (IsEpochBarrier) if it is this leadership's.
  void OnNoopApplied(const proto::Command& cmd, Micros now);

  void Tick(Micros now);

  // An operator's "retry now": every participant of `txid` (every stuck or
  // completing transaction when `txid` is empty) that has not acknowledged
  // the decision gets it again at once, and its backoff starts over. Returns
  // how many transactions were retried (0: none is being delivered here).
  size_t RetryNow(const std::optional<TxId>& txid, Micros now);

  DriverEffects TakeEffects();

  // One log record about a transaction: `at` is when this leader applied it
  // (0: chosen before this leadership, known from the table).
  struct LogEntry {
    proto::Command command;
    uint64_t index = 0;
    Micros at = 0;
  };
  // What the driver is working on, for status and txadmin.
  struct TxnView {
    TxId txid;
    std::string state;
    std::vector<proto::Participant> participants;
    std::vector<bool> acked;
    proto::Protocol::type protocol;
    Micros began = 0;
    std::vector<std::string> hazards;  // HeuristicHazard::ToString of each
    // Per participant: its vote (when voting is over or under way), how many
    // times the decision was sent, and the last failure to deliver it.
    std::vector<std::optional<proto::Vote::type>> votes;
    std::vector<uint32_t> attempts;
    std::vector<std::string> last_error;
    std::vector<bool> refused;
    Micros decided_at = 0;  // 0: not decided (or not being delivered)
    bool stuck = false;
    std::vector<LogEntry> log;  // its log records, oldest first
  };
  // `now` decides which are stuck.
  std::vector<TxnView> ActiveTxns(Micros now) const;
  size_t active_count() const { return txns_.size(); }
  int64_t next_seq() const { return next_seq_; }

  // Heuristic hazards recorded by this node (kept across leaderships; the
  // most recent hazards_retained transactions), and how many in all.
  const std::map<TxId, std::vector<HeuristicHazard>, TxIdLess>& hazards() const { return hazards_; }
  uint64_t hazard_count() const { return hazard_count_; }

  // What this driver did while it led, since it was built (the shell's
  // metrics read them). Each transaction is counted once, when its outcome
  // is settled here: a commit when its DECIDE (or an operator's RESOLVE) is
  // chosen and applied, an abort when the driver aborts it (a NO vote, a
  // missing vote, a timeout, the client's rollback) or a RESOLVE aborts it.
  // Transactions a new leader finishes for an earlier one are not counted.
  struct Counters {
    uint64_t begun = 0;  // txids handed out, reserved ones included
    // Txids reserved by a Begin with a count that nothing used in time.
    uint64_t reservations_expired = 0;
    uint64_t committed = 0;
    uint64_t aborted = 0;
    // Of those, the transactions that asked for three-phase commit.
    uint64_t committed_3pc = 0;
    uint64_t aborted_3pc = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  enum class State {
    kActive,      // begun; work goes straight to agents
    kVoting,      // PREPARE sent, collecting votes
    kPreCommitting,  // 3PC: PRECOMMIT proposed, not chosen yet
    kPreCommitted,   // 3PC: PRECOMMIT chosen; PRE_COMMIT sent, collecting acks
    kDeciding,    // DECIDE(COMMIT) proposed, not chosen yet
    kCompleting,  // decision chosen; delivering it until every participant acks
    kEnding,      // END proposed
  };
  static const char* StateName(State s);

  struct Txn {
    TxId txid;
    State state = State::kActive;
    proto::Protocol::type protocol = proto::Protocol::TWO_PC;
    proto::Outcome::type outcome = proto::Outcome::PENDING;
    Micros began = 0;
    Micros deadline = 0;  // txn timeout (kActive) or vote timeout (kVoting)
    std::vector<proto::Participant> participants;
    std::vector<std::optional<proto::Vote::type>> votes;
    std::vector<bool> acked;
    std::vector<bool> refused;  // the participant refused the decision: not resent
    std::vector<Micros> next_send;
    std::vector<Micros> backoff;
    std::vector<uint32_t> attempts;       // decision sends, per participant
    std::vector<std::string> last_error;  // last failure to deliver it, per participant
    Micros decided_at = 0;                // StartCompleting
    Micros stuck_reported = 0;            // last StuckNotice (0: none yet)
    std::vector<uint64_t> waiters;  // client tokens awaiting the outcome
    // Operators' FORGETs, each answered once its own participant's is chosen.
    std::vector<std::pair<uint64_t, proto::Participant>> forget_waiters;
    // FORGET records (rare); the decision's record is read from the table.
    std::vector<LogEntry> log;
    bool taken_over = false;  // decided before this leadership (BecomeLeader)
    bool precommit_sent = false;  // 3PC: PRE_COMMIT went out (acked etc. track it until decided)
    bool reserved = false;  // from a Begin with a count; kActive: not used yet
  };

  // Signed decisions (docs/protocol.md, "Who may say commit"): an agent's
  // key, registered with any of its outcome queries (last one wins), and the
  // MAC under it on every decision for that address.
  void RegisterDecisionKey(const proto::DecisionKey& k);
  void Sign(proto::DecideRequest* d, const std::string& address) const;

  // Reply helpers.
  void ReplyCommit(uint64_t token, const TxId& txid, proto::Outcome::type outcome,
                   const Status& status, const std::string& reason);
  void ReplyOutcome(uint64_t token, proto::Outcome::type outcome, const Status& status);
  void ReplyNotServing(uint64_t token, const TxId& txid, bool outcome_query);

  // What this leader can say about a txid it is not driving.
  proto::Outcome::type SettledOutcome(const TxId& txid, std::string* reason) const;
  // A txid of a newer epoch than this leadership's: a newer leader allocated
  // it, so this one was deposed without knowing. Replies NOT_LEADER (true).
  bool RefuseNewerEpoch(uint64_t token, const TxId& txid, bool outcome_query);
  // An outcome query about a txid of a newer epoch: either a newer leader
  // allocated it (this one was deposed) or nobody did (a txid the group never
  // allocated, e.g. a conformance kit playing the coordinator). An epoch
  // barrier tells them apart: a NOOP this leader proposes after the query
  // came, chosen and applied while the last applied EPOCH marker is still
  // this leader's. Any leader of a newer epoch has its marker chosen, and
  // every lower slot chosen, before it allocates a txid (it serves only
  // then), so a txid of a newer epoch allocated before the query would put
  // its marker before the barrier in the log. Then the answer is "never
  // allocated" (UNKNOWN, INVALID_ARGUMENT), a definite answer an agent
  // may act on (AgentOptions::confirm_decisions); otherwise NOT_LEADER. One
  // barrier in flight at a time covers every query that came before it.
  void AwaitEpochBarrier(uint64_t token, const TxId& txid);
  void FailBarrierWaiters(const Status& why);
  // The participants of `ps` that `t` does not drive already.
  static std::vector<proto::Participant> Unnamed(const Txn& t, const std::vector<proto::Participant>& ps);
  // Tells `participants` ABORTED, fire and forget (presumed abort).
  void TellAborted(const TxId& txid, const std::vector<proto::Participant>& participants);
  void RecordHazard(const TxId& txid, const proto::Participant& p, proto::Outcome::type decided,
                    const std::string& message, Micros now);
  Status ValidateParticipants(std::vector<proto::Participant>* ps) const;
  // INVALID_ARGUMENT naming `field`, n and the limit when n is above
  // options_.max_participants.
  Status CheckParticipantCount(size_t n, const std::string& field) const;

  void StartVoting(Txn* t, const std::vector<std::vector<proto::Statement>>* work, Micros now);
  void MaybeDecide(Txn* t, Micros now);
  // 3PC: PRECOMMIT is chosen (or, with the testing seam, proposed): send
  // PRE_COMMIT to every participant.
  void StartPreCommit(Txn* t, Micros now);
  void OnPreCommitAnswer(Txn* t, size_t i, const Status& status, Micros now);
  // Participant i did not get the decision (or PRE_COMMIT): resend after its
  // backoff, which doubles up to resend_max.
  void RetryLater(Txn* t, size_t i, const Status& failure, Micros now);
  // Proposes DECIDE(COMMITTED) for the participants still in the transaction.
  void ProposeCommit(Txn* t);
  static bool AllAnswered(const Txn& t);  // every participant acked or refused
  void Abort(Txn* t, const std::string& reason);
  // `forgotten`: participants an operator forgot before this leadership
  // (a taken-over transaction's table entry); they are not sent to.
  void StartCompleting(Txn* t, Micros now, const std::vector<proto::Command>* forgotten = nullptr);
  // `precommit`: 3PC's PRE_COMMIT instead of the decision.
  void SendDecision(Txn* t, size_t i, Micros now, bool precommit = false);
  // Fresh per-participant delivery state (acks, backoff, attempts).
  void ResetDelivery(Txn* t, Micros now);
  void MaybeEnd(Txn* t);
  // An operator's FORGET of participant i: acknowledged, recorded as a hazard.
  void MarkForgotten(Txn* t, size_t i, const proto::Command& forget, Micros now);
  bool Stuck(const Txn& t, Micros now) const;
  StuckNotice MakeStuckNotice(const Txn& t, Micros now) const;

  const TxnTable* table_;
  DriverOptions options_;
  bool serving_ = false;
  int64_t epoch_ = 0;
  int64_t next_seq_ = 1;
  std::string leader_hint_;
  // AwaitEpochBarrier: queries covered by the barrier in flight, and those
  // that came after it was proposed (covered by the next one).
  struct BarrierWaiter {
    uint64_t token;
    TxId txid;
  };
  std::vector<BarrierWaiter> barrier_covered_;
  std::vector<BarrierWaiter> barrier_next_;
  bool barrier_in_flight_ = false;
  std::map<TxId, Txn, TxIdLess> txns_;
  std::map<TxId, std::vector<HeuristicHazard>, TxIdLess> hazards_;
  std::deque<TxId> hazard_order_;
  uint64_t hazard_count_ = 0;
  Counters counters_;
  DriverEffects effects_;
  // lazy_end: ENDs not proposed yet (TakeEffects adds them to a proposal).
  std::vector<proto::Command> pending_ends_;
  bool flush_ends_ = false;  // propose pending_ends_ at the next TakeEffects
  // Agents' keys for signed decisions, by the address participants name
  // (RegisterDecisionKey). Kept across leaderships: not replicated, not
  // durable; an agent without one here confirms as before and registers.
  std::unordered_map<std::string, SipKey> decision_keys_;
};

}  // namespace txc::coord
