// txcoord wire protocol and persisted command format.
//
// Transport: framed Thrift (4-byte big-endian length, then one TBinaryProtocol
// message), so a stock Thrift client with TFramedTransport + TBinaryProtocol
// can call any txcoord server. Every response carries a Status instead of a
// Thrift exception, so a caller in any language reads one shape of error.
//
// Compatibility: field ids are never reused or renumbered; enum values are
// persisted (Command is written to the coordinator log) and must not be
// renumbered either.

namespace cpp txc.proto
namespace py txcoord

// ---------------------------------------------------------------- common

// A global transaction id: epoch = the ballot round of the coordinator leader
// that allocated it, seq = a counter within that epoch. Printed "E.S".
struct TxId {
  1: i64 epoch
  2: i64 seq
}

// on-disk/wire format: do not renumber
enum Code {
  OK = 0
  INVALID_ARGUMENT = 1   // the request is malformed or names nothing we know
  NOT_FOUND = 2          // no such transaction / branch / resource
  ABORTED = 3            // the transaction is aborted; message says why
  LOCK_TIMEOUT = 4       // a row lock was not granted in time; message names the holder
  UNAVAILABLE = 5        // the server cannot serve now (peer down, recovering); retry
  TIMEOUT = 6            // the call's deadline passed
  STORAGE_FAILED = 7     // a durable write failed; the node refuses writes until restarted
  NOT_LEADER = 8         // ask the leader; Status.leader_hint names it when known
  CONFLICT = 9           // a row is locked by another transaction (wait-die refused to wait)
  INTERNAL = 10
  SQL_ERROR = 11         // a statement failed in the resource; message is the database's
  EXPECTATION_FAILED = 12 // a statement changed another number of rows than expect_rows
  PERMISSION_DENIED = 13 // the caller's role (TLS certificate) may not call this method
}

struct Status {
  1: Code code = Code.OK
  2: string message
  3: optional string leader_hint   // HOST:PORT of the leader, with NOT_LEADER
}

// on-disk/wire format: do not renumber
enum Protocol {
  TWO_PC = 1
  THREE_PC = 2
}

// on-disk/wire format: do not renumber
enum Vote {
  YES = 1
  NO = 2
  READ_ONLY = 3
}

// on-disk/wire format: do not renumber
enum Outcome {
  UNKNOWN = 0    // nothing decided and nothing known (only in replies)
  PENDING = 1    // allocated in the current epoch, not decided yet
  COMMITTED = 2
  ABORTED = 3
  // Decided and ended long ago, and no longer remembered exactly (the
  // coordinator bounds what it keeps): it may have committed. Never a
  // presumed abort; a client reports the outcome as unknown.
  FORGOTTEN = 4
}

// A SQL value. Exactly one field set, or none for NULL.
struct Value {
  1: optional i64 i
  2: optional double d
  3: optional string s
  4: optional binary b
}

struct Statement {
  1: string sql
  2: list<Value> params
  // When set, the statement must change exactly this many rows, or the
  // branch fails (EXPECTATION_FAILED) and, inside a one-shot PREPARE, votes NO.
  3: optional i64 expect_rows
}

struct Row {
  1: list<Value> values
}

struct ResultSet {
  1: list<string> columns
  2: list<Row> rows
  3: i64 rows_changed
}

// One resource taking part in a transaction, and the agent that hosts it.
struct Participant {
  1: string resource
  2: string address      // HOST:PORT of the agent
  // Interactive transactions: the agent incarnation that did this branch's
  // work (from ExecuteResponse). An agent that restarted since votes NO: an
  // un-synced ACTIVE branch may have been lost with the machine's power.
  3: optional i64 incarnation
}

struct Branch {
  1: Participant participant
  2: list<Statement> statements
}

// ------------------------------------------------- client <-> coordinator

struct BeginRequest {
  1: optional i64 timeout_ms     // abort if not committed within; default from the coordinator
  // Reserve this many consecutive txids (1 to 256; default 1), each for one
  // Submit: a client that submits many one-shot transactions asks for a few
  // at a time instead of one Begin per transaction. A reserved txid that no
  // Submit uses within BeginResponse.reserved_ms is dropped (nothing ran).
  2: optional i32 count
}
struct BeginResponse {
  1: Status status
  2: TxId txid
  // With BeginRequest.count: how many txids were reserved, txid itself and the
  // next ones (same epoch, seq + 1, ...); unset means one. A coordinator
  // that predates count leaves it unset.
  3: optional i32 count
  // With count: how long (ms) each reserved txid stays usable by a Submit.
  4: optional i64 reserved_ms
}

struct CommitRequest {
  1: TxId txid
  2: list<Participant> participants
  3: Protocol protocol = Protocol.TWO_PC
}

// One-shot: every branch's work travels with PREPARE. txid must come from Begin.
struct SubmitRequest {
  1: TxId txid
  2: list<Branch> branches
  3: Protocol protocol = Protocol.TWO_PC
}

struct AbortRequest {
  1: TxId txid
  2: list<Participant> participants
  3: string reason
}

struct CommitResponse {
  1: Status status
  2: TxId txid
  3: Outcome outcome
  4: string reason          // why it aborted, when it did
}

// An agent's key for signed decisions (docs/protocol.md, "Who may say
// commit"): decisions the group sends to the agent at `agent_address` carry
// DecideRequest.decision_mac under this key, and the agent applies such a
// decision without asking the group. It travels only on connections the
// agent dials.
struct DecisionKey {
  1: string agent_address   // as participants name the agent (HOST:PORT)
  2: i64 k0                 // SipHash-2-4's 128-bit key
  3: i64 k1
}

struct OutcomeRequest {
  1: TxId txid
  // From an agent that confirms decisions (plaintext): its key. The group
  // signs its later decisions for that address with it; a key registered by
  // someone else only makes the agent's signature checks fail, and the agent
  // then confirms (and registers its own key again).
  2: optional DecisionKey decision_key
}
struct OutcomeResponse {
  1: Status status
  2: Outcome outcome
}

struct StatusRequest {}

struct ReplicaInfo {
  1: i32 id
  2: string address
  3: bool reachable
  4: i64 applied_index
}

struct StatusResponse {
  1: Status status
  2: i32 replica_id
  3: i32 leader_id          // 0 when unknown
  4: string leader_address
  5: i64 epoch
  6: i64 commit_index
  7: i64 applied_index
  8: list<ReplicaInfo> replicas
  9: i64 active_txns        // begun or voting, not decided
  10: i64 decided_txns      // decided, not ended
  11: bool storage_failed
}

struct ParticipantProgress {
  1: string resource
  2: optional Vote vote
  3: bool acked
  4: bool refused            // refused the decision: a heuristic hazard
  5: i32 attempts            // times the decision was sent
  6: optional string last_error
}

// A record of the decision log about one transaction, as the leader saw it.
struct TxnLogEntry {
  1: string command          // e.g. "DECIDE(2.7,committed)", "RESOLVE(...)", "FORGET(2.7,bank_b)"
  2: i64 index               // its log slot (0: before this leadership's snapshot)
  3: optional i64 age_ms     // since this leader applied it; unset: before it led
  4: string reason
  5: string who              // the operator, for RESOLVE and FORGET
}

struct TxnInfo {
  1: TxId txid
  2: string state           // active | voting | committing | committed | aborted
  3: Outcome outcome
  4: list<Participant> participants
  5: list<string> acked      // resources that acknowledged the outcome
  6: Protocol protocol
  7: i64 age_ms
  8: bool in_doubt          // not ended and its outcome has not reached every participant
  // Heuristic hazards: a participant refused the decision because its branch
  // ended the other way ("RESOURCE at ADDRESS refused OUTCOME: message").
  9: optional list<string> hazards
  // Decided and not delivered to every participant for longer than the
  // coordinator's --stuck-after: delivery goes on (capped backoff).
  10: optional bool stuck
  // Per participant, in the order of `participants`: its vote, how often the
  // decision was sent, and the last failure to deliver it (set while the
  // leader drives the transaction).
  11: optional list<ParticipantProgress> progress
  12: optional i64 decided_age_ms   // since the decision was chosen (or taken over)
  // The log records of the transaction (decision, operators' actions), oldest first.
  13: optional list<TxnLogEntry> log
}

struct ListTxnsRequest {
  1: optional string state  // "in-doubt", "stuck", "hazard" or a TxnInfo.state; empty = all
  2: optional TxId txid     // only this transaction
}
struct ListTxnsResponse {
  1: Status status
  2: list<TxnInfo> txns
}

// An operator's "retry now" of decided transactions being delivered: the
// decision is resent at once to every participant that has not acknowledged
// it, and its backoff starts over. Served by the leader (NOT_LEADER elsewhere).
struct RetryTxnsRequest {
  1: optional TxId txid   // this one; unset = every transaction being delivered
}
struct RetryTxnsResponse {
  1: Status status
  2: i32 retried          // transactions whose decision was resent
}

// An operator's decision for a transaction the group has not decided (the
// leader is still driving it: begun, or collecting votes): chosen through the
// log as RESOLVE, with who and why, then delivered like any decision. Only an
// abort can be forced (a commit needs every participant's YES vote, and then
// the group decides it by itself). Refused, naming the decision, when the
// group has decided already. Served by the leader (NOT_LEADER elsewhere).
// txadmin txn forget: stop delivering a decided transaction's outcome to a
// participant that is lost for good; chosen through the log (FORGET) and
// recorded as a heuristic hazard (its branch may never apply the outcome).
struct ForgetParticipantRequest {
  1: TxId txid
  2: string resource       // the participant's resource name
  3: string reason         // required: why (kept in the log)
  4: string who            // required: the operator
}

struct ResolveRequest {
  1: TxId txid
  2: Outcome outcome      // ABORTED (COMMITTED is refused with the reason)
  3: string reason        // required: why (kept in the log)
  4: string who           // required: the operator (the OS user by default in txadmin)
}

service Coordinator {
  BeginResponse Begin(1: BeginRequest req)
  CommitResponse Commit(1: CommitRequest req)
  CommitResponse Submit(1: SubmitRequest req)
  CommitResponse Abort(1: AbortRequest req)
  OutcomeResponse Outcome(1: OutcomeRequest req)
  StatusResponse Status(1: StatusRequest req)
  ListTxnsResponse ListTxns(1: ListTxnsRequest req)
  RetryTxnsResponse RetryTxns(1: RetryTxnsRequest req)
  CommitResponse Resolve(1: ResolveRequest req)
  CommitResponse ForgetParticipant(1: ForgetParticipantRequest req)
}

// ---------------------------------- coordinator / client <-> participant agent

struct ExecuteRequest {
  1: TxId txid
  2: string resource
  3: list<Statement> statements
  4: optional i64 timeout_ms   // branch deadline from now; default from the agent
}
struct ExecuteResponse {
  1: Status status
  2: list<ResultSet> results
  3: i64 incarnation       // changes every time the agent restarts
}

struct PrepareRequest {
  1: TxId txid
  2: string resource
  3: list<Participant> participants
  4: Protocol protocol = Protocol.TWO_PC
  5: optional list<Statement> work      // one-shot: execute, then prepare, in one step
}
struct PrepareResponse {
  1: Status status
  2: Vote vote
  3: string reason
}

struct DecideRequest {
  1: TxId txid
  2: string resource
  3: Outcome outcome       // COMMITTED or ABORTED
  // Three-phase commit's PRE_COMMIT (outcome is COMMITTED): the coordinator
  // group has chosen PRECOMMIT for the transaction, so it will commit. The
  // agent records the branch PRECOMMITTED durably and acknowledges; it does
  // not commit yet (DO_COMMIT, this request without the flag, follows). An
  // agent that ignores the flag and commits at once breaks nothing under
  // termination through the group, but loses what autonomous termination
  // reads. Refused for a branch that is not PREPARED, PRECOMMITTED or
  // COMMITTED.
  4: optional bool precommit
  // SipHash-2-4, under the key the agent registered (OutcomeRequest.
  // decision_key), of: resource, a zero byte, txid.epoch and txid.seq (8
  // bytes each, little-endian), outcome (one byte), precommit (one byte, 0
  // or 1). Set by the group when it holds a key for the agent's address.
  5: optional i64 decision_mac
}
struct DecideResponse {
  1: Status status
  // Set with a non-OK status when the branch already ended the other way
  // (committed when told ABORTED, aborted when told COMMITTED): the
  // participants disagree, a heuristic hazard the coordinator reports.
  2: optional bool refused
}

struct BranchInfo {
  1: TxId txid
  2: string resource
  3: string state
  4: i64 age_ms
  // A heuristic decision an operator took at this agent (Agent.Resolve):
  5: optional Outcome heuristic_outcome
  6: optional string heuristic_reason
  7: optional string heuristic_who
  8: optional i64 heuristic_at_ms         // Unix ms, when it was recorded
  // What the group decided, once the agent heard it (COMMITTED or ABORTED;
  // unset while unknown): equal to heuristic_outcome means agreed, else a
  // heuristic hazard.
  9: optional Outcome group_outcome
}
struct ListBranchesRequest {}
struct ListBranchesResponse {
  1: Status status
  2: list<BranchInfo> branches
}

// An operator's heuristic decision at the agent (txadmin agent HOST:PORT
// resolve): for an in-doubt (PREPARED) branch, taken while the group cannot
// be reached. Recorded in the resource's WAL in the same local transaction
// that commits or rolls the branch back; kept until Forget.
struct AgentResolveRequest {
  1: TxId txid
  2: string resource       // empty: every in-doubt branch of txid at this agent
  3: Outcome outcome       // COMMITTED or ABORTED
  4: string reason         // required
  5: string who            // required
}
struct AgentResolveResponse {
  1: Status status
  2: list<BranchInfo> branches   // the branches decided
}
// Drops the record of a heuristic decision, once the operator has repaired
// the data (txadmin agent HOST:PORT forget).
struct AgentForgetRequest {
  1: TxId txid
  2: string resource       // empty: every heuristic record of txid here
  3: string reason         // required (logged)
  4: string who            // required (logged)
  // Forget even while the group's outcome is not known: a decision that
  // arrives later is then acknowledged without comparison.
  5: optional bool force
}
struct AgentForgetResponse {
  1: Status status
  2: i32 forgotten         // how many records were dropped
}

// Three-phase commit's autonomous termination (txagent
// --autonomous-termination-timeout): an agent whose coordinator group has
// been unreachable asks the other participants of an in-doubt transaction
// for their branch's state. Read-only: answering changes nothing.
struct BranchStateRequest {
  1: TxId txid
  2: string resource
}
struct BranchStateResponse {
  1: Status status
  // As BranchInfo.state: none (no branch here: never reached, or forgotten),
  // active, prepared, precommitted, aborting, committed, aborted, or
  // read-only (voted READ_ONLY: it left the transaction, knows no outcome).
  2: string state
}

service Agent {
  ExecuteResponse Execute(1: ExecuteRequest req)
  PrepareResponse Prepare(1: PrepareRequest req)
  DecideResponse Decide(1: DecideRequest req)
  ListBranchesResponse ListBranches(1: ListBranchesRequest req)
  AgentResolveResponse Resolve(1: AgentResolveRequest req)
  AgentForgetResponse Forget(1: AgentForgetRequest req)
  BranchStateResponse BranchState(1: BranchStateRequest req)
}

// ------------------------------------------------ replica <-> replica
// Reserved for Multi-Paxos: an opaque, versioned envelope so the protocol can
// evolve without touching the service.
struct PeerMessage {
  1: i32 sender
  2: i32 receiver
  3: binary payload
  // The sender takes the receiver's next message to it in this call's reply
  // (PeerAck.payload), so the reply may wait for it (an ACCEPT's reply waits
  // for the ACCEPTED, which waits for the accepted values' sync). Unset (a
  // replica before this field): the reply comes at once, with no payload.
  4: optional bool answer_in_reply
}
struct PeerAck {
  1: Status status
  // A message of the receiver's to the sender (an encoded paxos.Message), when
  // the call asked for it (answer_in_reply) and the receiver had one to send
  // within its hold time; unset otherwise (the message, if any, then comes
  // as a Deliver call of its own).
  2: optional binary payload
}
service Replica {
  PeerAck Deliver(1: PeerMessage msg)
}

// ------------------------------------------- benchmark of the decision log
// `txbench log` and `txbench probe`: proposes one opaque record through the
// decision log and answers once it is chosen (durable on a majority); the
// record is a no-op for the transaction table. A benchmark hook that writes
// into the decision log: served only by a replica started with
// --serve-log-bench (any other answers INVALID_ARGUMENT naming the flag).
// On the wire the method is "Append" (the Thrift method name), on the
// coordinator's client port.
struct LogBenchAppendRequest {
  1: binary payload
}
struct LogBenchAppendResponse {
  1: Status status
  2: i64 slot              // the log slot that holds the record
}
service LogBench {
  LogBenchAppendResponse Append(1: LogBenchAppendRequest req)
}

// --------------------------------------------- persisted: replicated commands

// on-disk format: do not renumber
enum CommandType {
  NOOP = 0
  DECIDE = 1
  PRECOMMIT = 2
  END_TXN = 3   // END in DESIGN.md ("END" is a reserved word in Thrift)
  RESOLVE = 4
  EPOCH = 5      // a single replica starts a new epoch (Paxos: a new ballot round)
  // An operator gave up delivering a decided transaction's outcome to one
  // participant (lost for good): participants holds it, reason and who why.
  FORGET = 6
}

struct Command {
  1: CommandType type
  2: TxId txid
  3: Outcome outcome
  4: list<Participant> participants
  5: Protocol protocol = Protocol.TWO_PC
  6: string reason
  7: string who
  8: i64 epoch
}

// The forgotten txids of one epoch whose outcome a transaction-table
// snapshot still knows: runs of seqs, flattened as first, last, first, last...
// in ascending order. Seqs of the epoch in no run were never decided (or were
// decided before `lost_through`, see CommandBatch). Snapshot version 3 leaves
// the lists empty and carries the same runs as bytes (fields 4 and 5: per
// run, the gap from the previous run's last seq, 0 before the first, then
// its length minus one, unsigned LEB128 varints; coordinator/seq_runs.h).
struct ForgottenRuns {
  1: i64 epoch
  2: list<i64> committed
  3: list<i64> aborted     // operators' aborts (RESOLVE); others are never logged
  4: optional binary committed_runs
  5: optional binary aborted_runs
}

// One log record: many commands batched into one slot. A transaction-table
// snapshot is one too, with the fields 2.. set (version 2 and later).
struct CommandBatch {
  1: list<Command> commands
  2: optional i32 snapshot_version
  3: optional list<ForgottenRuns> forgotten
  // Txids up to this one (epoch, then seq) that are neither in the table nor
  // in `forgotten` may have been decided and forgotten: their outcome is lost.
  4: optional TxId lost_through
}

// ------------------------------- persisted: a participant's WAL records
// The blobs of participant/sqlite_resource.cc's log tables, written and read
// through common/codec.h. on-disk format: do not renumber. (The branch's
// state, protocol and times are plain columns of its row.)

// txc_branches.participants of a prepared branch: every participant of the
// transaction, as the coordinator sent them (incarnation included), so an
// in-doubt branch recovered after a restart knows whom to ask.
struct PreparedRecord {
  1: list<Participant> participants
}

// txc_changes.keys: the lock keys one change set of a branch took (rows and
// unique values, laid out as sqlite_resource.cc describes), taken again when
// the branch is recovered.
struct ChangeKeysRecord {
  1: list<binary> keys
}
