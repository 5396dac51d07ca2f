#include "client/client.h"

#include <algorithm>
#include <cctype>
#include <future>
#include <thread>

#include <boost/asio.hpp>

#include "client/txid_reserve.h"
#include "protocol/coordinator_set.h"
#include "common/status_proto.h"
#include "protocol/rpc.h"
#include "protocol/tls.h"
#include "protocol/validate.h"

namespace txc {


proto::Value Int(int64_t v) { proto::Value x; x.__set_i(v); return x; }
proto::Value Real(double v) { proto::Value x; x.__set_d(v); return x; }
proto::Value Text(std::string v) { proto::Value x; x.__set_s(std::move(v)); return x; }
proto::Value Blob(std::string v) { proto::Value x; x.__set_b(std::move(v)); return x; }
proto::Value Null() { return proto::Value(); }

proto::Statement Sql(std::string sql, std::vector<proto::Value> params) {
  proto::Statement s;
  s.sql = std::move(sql);
  s.params = std::move(params);
  return s;
}

proto::Statement SqlExpect(std::string sql, std::vector<proto::Value> params, int64_t rows) {
  proto::Statement s = Sql(std::move(sql), std::move(params));
  s.__set_expect_rows(rows);
  return s;
}

Result<proto::Protocol::type> ParseProtocol(std::string_view text) {
  std::string lower;
  for (char ch : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower == "2pc") return proto::Protocol::TWO_PC;
  if (lower == "3pc") return proto::Protocol::THREE_PC;
  return Status::InvalidArgument("unknown commit protocol '" + std::string(text) +
                                 "': use 2pc or 3pc");
}

const char* ProtocolFlag(proto::Protocol::type protocol) {
  switch (protocol) {
    case proto::Protocol::TWO_PC: return "2pc";
    case proto::Protocol::THREE_PC: return "3pc";
  }
  return "?";
}

// The io thread, the channels and the coordinator set.
class Client::Impl {
 public:
  TxidReserve reserve;  // Submit's txids (ClientOptions.reserve_txids)

  explicit Impl(const ClientOptions& o)
      : reserve(o.reserve_txids),
        work_(boost::asio::make_work_guard(io_)),
        pool_(io_, [&o] {
          rpc::ChannelOptions c;
          c.tls = o.tls;
          return c;
        }()),
        coordinators_(std::make_shared<rpc::CoordinatorSet>(io_, &pool_, o.coordinators)) {
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Impl() {
    boost::asio::post(io_, [this] { pool_.CloseAll(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // Blocks until the coordinator group answers (following redirects).
  template <class Req, class Resp>
  Result<Resp> Coordinator(const std::string& method, const Req& req, Micros timeout) {
    auto promise = std::make_shared<std::promise<Result<Resp>>>();
    auto future = promise->get_future();
    boost::asio::post(io_, [this, method, req, timeout, promise] {
      coordinators_->Call<Req, Resp>(method, req, timeout, [promise](Status s, Resp r) {
        if (s.ok()) {
          promise->set_value(std::move(r));
        } else {
          promise->set_value(s);
        }
      });
    });
    return future.get();
  }

  // OK once any of `addresses` answers a Status call, whatever the answer (a
  // follower, a replica between leaders, or a server too old to know Status
  // is reachable too: only UNAVAILABLE and TIMEOUT mean "not reached"); each
  // is tried again every 100 ms (a replica may be starting). UNAVAILABLE
  // naming each address and its last error once `timeout` passed.
  Status Probe(const std::vector<std::string>& addresses, Micros timeout) {
    struct State {
      std::promise<Status> promise;
      Micros deadline = 0;
      Micros timeout = 0;
      bool done = false;
      std::map<std::string, std::string> errors;  // address -> last error
      size_t given_up = 0;
    };
    auto st = std::make_shared<State>();
    st->timeout = timeout;
    st->deadline = SteadyNowMicros() + timeout;
    auto future = st->promise.get_future();
    boost::asio::post(io_, [this, addresses, st] {
      for (const auto& a : addresses) TryProbe(a, addresses, st);
    });
    return future.get();
  }

  template <class State>
  void TryProbe(const std::string& a, const std::vector<std::string>& addresses,
                std::shared_ptr<State> st) {
    Micros left = st->deadline - SteadyNowMicros();
    pool_.Get(a)->Call<proto::StatusRequest, proto::StatusResponse>(
        "Status", proto::StatusRequest(), std::max<Micros>(left, 1),
        [this, st, a, addresses](Status s, proto::StatusResponse) {
          if (st->done) return;
          if (s.code() != Status::kUnavailable && s.code() != Status::kTimeout) {
            st->done = true;
            return st->promise.set_value(Status::Ok());
          }
          // The last attempt, made at the deadline, times out at once: it
          // must not hide why the earlier ones failed.
          if (s.code() != Status::kTimeout || st->errors.count(a) == 0) {
            st->errors[a] = s.ToString();
          }
          Micros now = SteadyNowMicros();
          if (now < st->deadline) {  // again in 100 ms, or at the deadline
            auto timer = std::make_shared<boost::asio::steady_timer>(
                io_, std::chrono::microseconds(std::min<Micros>(100 * kMillis, st->deadline - now)));
            timer->async_wait([this, timer, st, a, addresses](const boost::system::error_code&) {
              if (!st->done) TryProbe(a, addresses, st);
            });
            return;
          }
          if (++st->given_up < addresses.size()) return;
          st->done = true;
          std::string m = "no coordinator replica answered within " +
                          rpc::FormatMicros(st->timeout) + ": tried ";
          for (size_t i = 0; i < addresses.size(); ++i) {
            auto e = st->errors.find(addresses[i]);
            m += (i ? ", " : "") + addresses[i] + " (" +
                 (e == st->errors.end() ? std::string("no answer") : e->second) + ")";
          }
          st->promise.set_value(Status::Unavailable(m));
        });
  }

  // Blocks until one replica (or agent) at `address` answers.
  template <class Req, class Resp>
  Result<Resp> Direct(const std::string& address, const std::string& method, const Req& req,
                      Micros timeout) {
    auto promise = std::make_shared<std::promise<Result<Resp>>>();
    auto future = promise->get_future();
    boost::asio::post(io_, [this, address, method, req, timeout, promise] {
      pool_.Get(address)->Call<Req, Resp>(method, req, timeout, [promise](Status s, Resp r) {
        if (s.ok()) {
          promise->set_value(std::move(r));
        } else {
          promise->set_value(s);
        }
      });
    });
    return future.get();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  rpc::ChannelPool pool_;
  std::shared_ptr<rpc::CoordinatorSet> coordinators_;
  std::thread thread_;
};

Client::Client(ClientOptions options) : options_(std::move(options)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (options.coordinators.empty()) {
    return Status::InvalidArgument("ClientOptions.coordinators is empty: name at least one replica");
  }
  for (const auto& a : options.coordinators) {
    auto ep = rpc::ParseEndpoint(a);
    if (!ep.ok()) return Status::InvalidArgument("coordinator address: " + ep.status().message());
  }
  for (const auto& [name, a] : options.agents) {
    auto ep = rpc::ParseEndpoint(a);
    if (!ep.ok()) return Status::InvalidArgument("agent for " + name + ": " + ep.status().message());
  }
  TXC_RETURN_IF_ERROR(CheckReserveTxids(options.reserve_txids));
  if (options.tls.enabled()) TXC_RETURN_IF_ERROR(rpc::tls::Check(options.tls));
  std::unique_ptr<Client> c(new Client(std::move(options)));
  c->impl_ = std::make_unique<Impl>(c->options_);
  if (c->options_.connect_timeout > 0) {
    TXC_RETURN_IF_ERROR(c->impl_->Probe(c->options_.coordinators, c->options_.connect_timeout));
  }
  return c;
}

Result<std::string> Client::AgentFor(const std::string& resource) const {
  auto it = options_.agents.find(resource);
  if (it == options_.agents.end()) {
    return Status::InvalidArgument("no agent is known for resource '" + resource +
                                   "': add it to ClientOptions.agents");
  }
  return it->second;
}

Result<Transaction> Client::Begin(TxnOptions options) {
  proto::BeginRequest req;
  if (options_.txn_timeout_ms > 0) req.__set_timeout_ms(options_.txn_timeout_ms);
  auto r = impl_->Coordinator<proto::BeginRequest, proto::BeginResponse>("Begin", req,
                                                                         options_.call_timeout);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  return Transaction(this, r->txid, options);
}

Status CheckReserveTxids(int32_t n) {
  if (n >= 1 && n <= validate::kMaxBeginCount) return Status::Ok();
  return Status::InvalidArgument("ClientOptions.reserve_txids is " + std::to_string(n) +
                                 ": between 1 and " + std::to_string(validate::kMaxBeginCount) +
                                 " (1: a Begin per Submit)");
}

Status CommitAnswer(const TxId& id, const proto::CommitResponse& r, std::string_view ask_later) {
  if (r.status.code != proto::Code::OK) return FromProto(r.status);
  switch (r.outcome) {
    case proto::Outcome::COMMITTED:
      return Status::Ok();
    case proto::Outcome::ABORTED:
      return Status::Aborted("transaction " + ToString(id) + " aborted: " + r.reason);
    case proto::Outcome::FORGOTTEN:
      // Never "aborted": it may have committed, and redoing it would do the
      // work twice.
      return Status::Unavailable("the outcome of " + ToString(id) +
                                 " is unknown: it ended long ago and the coordinator group no "
                                 "longer remembers it (it may have committed); check before redoing it");
    default:
      return Status::Unavailable("the outcome of " + ToString(id) + " is not known yet; ask " +
                                 std::string(ask_later) + " later");
  }
}

Result<TxId> Client::Submit(const std::map<std::string, std::vector<proto::Statement>>& work,
                            TxnOptions options) {
  proto::SubmitRequest req;
  req.protocol = options.protocol;
  for (const auto& [resource, statements] : work) {
    auto agent = AgentFor(resource);
    if (!agent.ok()) return agent.status();
    proto::Branch b;
    b.participant.resource = resource;
    b.participant.address = *agent;
    b.statements = statements;
    req.branches.push_back(std::move(b));
  }
  // The txid comes first, so that a retried submit (after a lost reply or a
  // leader change) is recognised as the same transaction.
  for (int attempt = 0;; ++attempt) {
    bool kept = false;
    auto txid = SubmitTxid(&kept);
    if (!txid.ok()) return txid.status();
    req.txid = *txid;
    auto r = impl_->Coordinator<proto::SubmitRequest, proto::CommitResponse>(
        "Submit", req, options_.commit_timeout);
    if (!r.ok()) {
      impl_->reserve.Clear();
      return Status::Unavailable("coordinator unreachable; the outcome of " + ToString(req.txid) +
                                 " is unknown: " + r.status().message());
    }
    // A kept txid of a leader that is gone: it never ran and never will, and
    // neither will the rest of its block. Once more with a new txid.
    if (kept && TxidReserve::LeaderGone(*r)) {
      impl_->reserve.Clear();
      if (attempt == 0) continue;
    }
    Status s = CommitAnswer(req.txid, *r, "Client::Outcome");
    if (!s.ok()) return s;
    return req.txid;
  }
}

Result<TxId> Client::SubmitTxid(bool* kept) {
  *kept = false;
  if (!impl_->reserve.enabled()) {
    auto tx = Begin();
    if (!tx.ok()) return tx.status();
    return tx->id();
  }
  if (auto id = impl_->reserve.Take(SteadyNowMicros())) {
    *kept = true;
    return *id;
  }
  proto::BeginRequest req;
  if (options_.txn_timeout_ms > 0) req.__set_timeout_ms(options_.txn_timeout_ms);
  req.__set_count(impl_->reserve.batch());
  Micros sent = SteadyNowMicros();
  auto r = impl_->Coordinator<proto::BeginRequest, proto::BeginResponse>("Begin", req,
                                                                         options_.call_timeout);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  impl_->reserve.Keep(*r, sent);
  *kept = true;  // reserved too (the first of its block)
  return r->txid;
}

Result<proto::Outcome::type> Client::Outcome(const TxId& txid) {
  proto::OutcomeRequest req;
  req.txid = txid;
  auto r = impl_->Coordinator<proto::OutcomeRequest, proto::OutcomeResponse>(
      "Outcome", req, options_.commit_timeout);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  return r->outcome;
}

Result<proto::StatusResponse> Client::ClusterStatus(const std::string& replica) {
  proto::StatusRequest req;
  Result<proto::StatusResponse> r =
      replica.empty()
          ? impl_->Coordinator<proto::StatusRequest, proto::StatusResponse>("Status", req, 3 * kSeconds)
          : impl_->Direct<proto::StatusRequest, proto::StatusResponse>(replica, "Status", req,
                                                                       2 * kSeconds);
  if (!r.ok()) return r.status();
  return r;
}

Result<std::vector<proto::TxnInfo>> Client::ListTxns(const std::string& state) {
  proto::ListTxnsRequest req;
  if (!state.empty()) req.__set_state(state);
  auto r = impl_->Coordinator<proto::ListTxnsRequest, proto::ListTxnsResponse>(
      "ListTxns", req, 5 * kSeconds);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  return std::move(r->txns);
}

Result<proto::TxnInfo> Client::ShowTxn(const TxId& txid) {
  proto::ListTxnsRequest req;
  req.__set_txid(txid);
  auto r = impl_->Coordinator<proto::ListTxnsRequest, proto::ListTxnsResponse>(
      "ListTxns", req, 5 * kSeconds);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  if (r->txns.empty()) {
    return Status::NotFound("transaction " + ToString(txid) +
                            " is not being driven or delivered by the leader (it may have ended; "
                            "ask for its outcome)");
  }
  return std::move(r->txns.front());
}

Result<int> Client::RetryTxns(const std::optional<TxId>& txid) {
  proto::RetryTxnsRequest req;
  if (txid) req.__set_txid(*txid);
  auto r = impl_->Coordinator<proto::RetryTxnsRequest, proto::RetryTxnsResponse>(
      "RetryTxns", req, 5 * kSeconds);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  return static_cast<int>(r->retried);
}

Result<proto::CommitResponse> Client::ForgetParticipant(const TxId& txid, const std::string& resource,
                                                        const std::string& reason,
                                                        const std::string& who) {
  proto::ForgetParticipantRequest req;
  req.txid = txid;
  req.resource = resource;
  req.reason = reason;
  req.who = who;
  auto r = impl_->Coordinator<proto::ForgetParticipantRequest, proto::CommitResponse>(
      "ForgetParticipant", req, 10 * kSeconds);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  return std::move(*r);
}

Result<proto::CommitResponse> Client::Resolve(const TxId& txid, proto::Outcome::type outcome,
                                              const std::string& reason, const std::string& who) {
  proto::ResolveRequest req;
  req.txid = txid;
  req.outcome = outcome;
  req.reason = reason;
  req.who = who;
  auto r = impl_->Coordinator<proto::ResolveRequest, proto::CommitResponse>("Resolve", req,
                                                                           10 * kSeconds);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  return std::move(*r);
}

// ---------------------------------------------------------------- Transaction

Result<std::vector<proto::ResultSet>> Transaction::Execute(const std::string& resource,
                                                           std::vector<proto::Statement> statements) {
  if (finished_) return Status::InvalidArgument("transaction " + ToString(id_) + " is finished");
  auto agent = client_->AgentFor(resource);
  if (!agent.ok()) return agent.status();
  proto::ExecuteRequest req;
  req.txid = id_;
  req.resource = resource;
  req.statements = std::move(statements);
  if (client_->options_.txn_timeout_ms > 0) req.__set_timeout_ms(client_->options_.txn_timeout_ms);
  auto pit = std::find_if(participants_.begin(), participants_.end(), [&](const proto::Participant& p) {
    return p.resource == resource && p.address == *agent;
  });
  if (pit == participants_.end()) {
    // Recorded before the call: even a failed or timed-out execute may have
    // left work that a rollback must reach.
    proto::Participant p;
    p.resource = resource;
    p.address = *agent;
    participants_.push_back(p);
    pit = participants_.end() - 1;
  }
  auto r = client_->impl_->Direct<proto::ExecuteRequest, proto::ExecuteResponse>(
      *agent, "Execute", req, client_->options_.call_timeout);
  if (!r.ok()) {
    return Status(r.status().code(), "agent " + *agent + " (" + resource + "): " + r.status().message());
  }
  if (r->incarnation != 0) {
    if (pit->__isset.incarnation && pit->incarnation != r->incarnation) {
      // The agent restarted between two of our calls: what the earlier ones
      // did may be gone. The PREPARE would vote NO; say so now.
      return Status::Aborted("the agent for " + resource + " restarted during transaction " +
                             ToString(id_) + "; its earlier work there may be lost: roll back and retry");
    }
    pit->__set_incarnation(r->incarnation);
  }
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  return std::move(r->results);
}

Result<proto::ResultSet> Transaction::Execute(const std::string& resource, proto::Statement statement) {
  auto r = Execute(resource, std::vector<proto::Statement>{std::move(statement)});
  if (!r.ok()) return r.status();
  if (r->empty()) return proto::ResultSet();
  return std::move(r->front());
}

Status Transaction::Commit() {
  if (finished_) return Status::InvalidArgument("transaction " + ToString(id_) + " is finished");
  finished_ = true;
  proto::CommitRequest req;
  req.txid = id_;
  req.participants = participants_;
  req.protocol = options_.protocol;
  auto r = client_->impl_->Coordinator<proto::CommitRequest, proto::CommitResponse>(
      "Commit", req, client_->options_.commit_timeout);
  if (!r.ok()) {
    return Status::Unavailable("coordinator unreachable; the outcome of " + ToString(id_) +
                               " is unknown: " + r.status().message());
  }
  return CommitAnswer(id_, *r, "Client::Outcome");
}

Status Transaction::Rollback() {
  if (finished_) return Status::InvalidArgument("transaction " + ToString(id_) + " is finished");
  finished_ = true;
  proto::AbortRequest req;
  req.txid = id_;
  req.participants = participants_;
  req.reason = "rolled back by the application";
  auto r = client_->impl_->Coordinator<proto::AbortRequest, proto::CommitResponse>(
      "Abort", req, client_->options_.commit_timeout);
  if (!r.ok()) return r.status();
  if (r->status.code != proto::Code::OK) return FromProto(r->status);
  switch (r->outcome) {
    case proto::Outcome::ABORTED:
      return Status::Ok();
    case proto::Outcome::COMMITTED:
      return Status::InvalidArgument("transaction " + ToString(id_) + " is already committed");
    default:
      return Status::Unavailable("the outcome of " + ToString(id_) + " is unknown (" +
                                 OutcomeName(r->outcome) + "); it was not rolled back");
  }
}

}  // namespace txc
