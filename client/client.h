// The application-facing library: wrap work on several databases in one
// atomic transaction.
//
//   auto client = txc::Client::Connect({.coordinators = {"127.0.0.1:7000"},
//                                       .agents = {{"bank_a", "127.0.0.1:7101"},
//                                                  {"bank_b", "127.0.0.1:7102"}}});
//   auto tx = (*client)->Begin();
//   tx->Execute("bank_a", txc::Sql("UPDATE accounts SET balance = balance - ? WHERE id = ?",
//                                  {txc::Int(10), txc::Int(7)}));
//   tx->Execute("bank_b", ...);
//   txc::Status s = tx->Commit();   // OK: committed everywhere
//
// The commit protocol is chosen per transaction, when it begins: two-phase
// commit (TWO_PC) unless TxnOptions says otherwise, e.g.
//
//   auto tx = (*client)->Begin({.protocol = txc::proto::Protocol::THREE_PC});
//   auto id = (*client)->Submit(work, {.protocol = txc::proto::Protocol::THREE_PC});
//
// A coordinator that does not run the protocol asked for refuses the commit
// with INVALID_ARGUMENT naming it: nothing is committed, and the coordinator
// aborts the transaction at its timeout (the Transaction is finished either
// way). ParseProtocol turns a tool's "2pc"/"3pc" into the enum.
//
// Errors a caller can act on: LOCK_TIMEOUT naming the row and the holder's
// txid; ABORTED with the reason (a NO vote, a vote timeout, ...); UNAVAILABLE
// when the outcome is unknown: no coordinator replica answers (for Commit:
// Client::Outcome(txid) asks again later), or a retried commit of a
// transaction that ended so long ago that the group no longer remembers it
// (Outcome then says FORGOTTEN). Only ABORTED means it did not commit.
//
// Threading: a Client is thread-safe; it runs one io thread of its own and
// every call blocks the calling thread until its answer. A Transaction is
// used by one thread at a time.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "common/tls_config.h"
#include "common/txid.h"
#include "txcoord_types.h"

namespace txc {

// Statement and value builders.
proto::Value Int(int64_t v);
proto::Value Real(double v);
proto::Value Text(std::string v);
proto::Value Blob(std::string v);
proto::Value Null();
proto::Statement Sql(std::string sql, std::vector<proto::Value> params = {});
// A statement that must change exactly `rows` rows, or its branch fails
// (inside Submit: the transaction aborts).
proto::Statement SqlExpect(std::string sql, std::vector<proto::Value> params, int64_t rows);

struct ClientOptions {
  std::vector<std::string> coordinators;        // HOST:PORT of every coordinator replica
  std::map<std::string, std::string> agents;    // resource name -> agent HOST:PORT
  // Connect checks that at least one coordinator replica answers within
  // this, and otherwise fails with UNAVAILABLE naming every address tried and
  // its error (a wrong address is reported in seconds). 0: no check (the
  // first call finds out). Default: 5 s.
  Micros connect_timeout = 5 * kSeconds;
  // Deadline of one call to an agent (Execute), and of Begin (which keeps
  // trying the group across leader changes until then). Default: 10 s.
  Micros call_timeout = 10 * kSeconds;
  // How long Commit/Submit/Rollback/Outcome keep trying the coordinator
  // group, across leader changes, before answering UNAVAILABLE (the group
  // may still decide: Outcome tells). Default: 30 s.
  Micros commit_timeout = 30 * kSeconds;
  // Abort a transaction not committed within this (0: the coordinator's default).
  int64_t txn_timeout_ms = 0;
  // Submit takes its txid from a block of this many reserved by one Begin
  // (BeginRequest.count), while the block is fresh (half the time the leader
  // keeps it: 10 s by default), instead of a Begin round trip per
  // transaction. After a leader change a Submit under a txid of the old
  // leader is answered "presumed abort" (it never ran): the client drops the
  // block and submits once more under a new txid. At most 256; 1: a Begin
  // per Submit. Default: 16.
  int32_t reserve_txids = 16;
  // Mutual TLS to the coordinators and the agents: this application's
  // certificate (role txcoord:client), its key and the cluster's CA. Files
  // that do not load make Connect fail with INVALID_ARGUMENT naming the file.
  // Default: plaintext (docs/security.md).
  TlsConfig tls;
};

// OK, or INVALID_ARGUMENT naming ClientOptions.reserve_txids out of range.
Status CheckReserveTxids(int32_t n);

// "2pc" -> TWO_PC, "3pc" -> THREE_PC (any case); INVALID_ARGUMENT naming the
// text and the accepted spellings for anything else (including "").
Result<proto::Protocol::type> ParseProtocol(std::string_view text);

// What a Commit or Submit answer means for the application: OK when
// committed, ABORTED with the reason, and UNAVAILABLE when the outcome is not
// known (FORGOTTEN: it may have committed; not decided yet: `ask_later` names
// the call that asks again, e.g. "Client::Outcome"). Shared by Client and
// AsyncClient.
Status CommitAnswer(const TxId& id, const proto::CommitResponse& r, std::string_view ask_later);
// The spelling ParseProtocol accepts: "2pc", "3pc" ("?" for a value outside the enum).
const char* ProtocolFlag(proto::Protocol::type protocol);

// Per-transaction choices, given to Client::Begin or Client::Submit.
struct TxnOptions {
  // The commit protocol the coordinator is asked to run for this transaction.
  proto::Protocol::type protocol = proto::Protocol::TWO_PC;
};

class Client;

class Transaction {
 public:
  const TxId& id() const { return id_; }
  // The commit protocol Commit asks for (TxnOptions.protocol at Begin).
  proto::Protocol::type protocol() const { return options_.protocol; }

  // Runs statements on `resource` within this transaction: one ResultSet per
  // statement (rows for queries, rows_changed for the rest).
  Result<std::vector<proto::ResultSet>> Execute(const std::string& resource,
                                                std::vector<proto::Statement> statements);
  Result<proto::ResultSet> Execute(const std::string& resource, proto::Statement statement);

  // Commits atomically on every resource touched, with the protocol chosen at
  // Begin. OK = committed everywhere (durably decided; delivery to
  // participants continues in the background).
  Status Commit();
  // Rolls back on every resource touched.
  Status Rollback();

 private:
  friend class Client;
  Transaction(Client* client, TxId id, TxnOptions options)
      : client_(client), id_(id), options_(options) {}
  Client* client_;
  TxId id_;
  TxnOptions options_;
  std::vector<proto::Participant> participants_;  // with the incarnation each agent reported
  bool finished_ = false;
};

class Client {
 public:
  // Checks the options and (ClientOptions.connect_timeout) that the
  // coordinator group answers: INVALID_ARGUMENT naming a malformed address,
  // UNAVAILABLE naming every replica tried when none answers in time.
  static Result<std::unique_ptr<Client>> Connect(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A new transaction; `options` (e.g. the commit protocol) hold for its
  // Commit. Default: 2PC.
  Result<Transaction> Begin(TxnOptions options = {});

  // One-shot: every resource's statements travel with PREPARE; one round
  // trip to each agent, with the protocol in `options` (default 2PC).
  // OK = committed; returns the txid.
  Result<TxId> Submit(const std::map<std::string, std::vector<proto::Statement>>& work,
                      TxnOptions options = {});

  // What the coordinator group knows of `txid` now: PENDING, COMMITTED,
  // ABORTED, or FORGOTTEN (ended long ago and no longer remembered: it may
  // have committed; never a sign that it aborted).
  Result<proto::Outcome::type> Outcome(const TxId& txid);

  // Operator views (txadmin).
  Result<proto::StatusResponse> ClusterStatus(const std::string& replica = "");
  Result<std::vector<proto::TxnInfo>> ListTxns(const std::string& state);
  // One transaction as the leader sees it (NOT_FOUND when it is not being
  // driven or delivered, nor decided and unended).
  Result<proto::TxnInfo> ShowTxn(const TxId& txid);
  // An operator's "retry now" (RetryTxnsRequest): `txid`, or every
  // transaction whose decision is being delivered. How many were resent.
  Result<int> RetryTxns(const std::optional<TxId>& txid);
  // An operator's forced outcome (ResolveRequest): the decision that stands,
  // or the group's refusal (INVALID_ARGUMENT naming a decision already taken).
  // An operator gives up delivering txid's outcome to `resource`
  // (ForgetParticipantRequest): the outcome that stands, once FORGET is chosen.
  Result<proto::CommitResponse> ForgetParticipant(const TxId& txid, const std::string& resource,
                                                  const std::string& reason, const std::string& who);
  Result<proto::CommitResponse> Resolve(const TxId& txid, proto::Outcome::type outcome,
                                        const std::string& reason, const std::string& who);

  const ClientOptions& options() const { return options_; }
  // The agent address for a resource, or INVALID_ARGUMENT.
  Result<std::string> AgentFor(const std::string& resource) const;

 private:
  friend class Transaction;
  explicit Client(ClientOptions options);
  // A txid for Submit; *kept when it was reserved (BeginRequest.count), not
  // begun for this Submit alone.
  Result<TxId> SubmitTxid(bool* kept);
  class Impl;
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace txc
