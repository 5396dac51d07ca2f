#include "client/async_client.h"

#include <algorithm>

#include "client/txid_reserve.h"
#include "common/status_proto.h"
#include "protocol/coordinator_set.h"
#include "protocol/rpc.h"
#include "protocol/validate.h"

namespace txc {

// The channels and the coordinator set, on the io thread. Every operation
// holds a reference, so a CoordinatorSet retry or a channel completion never
// meets a destroyed pool.
class AsyncClient::Impl {
 public:
  Impl(boost::asio::io_context& io, ClientOptions o)
      : io(io),
        options(std::move(o)),
        pool(io, [this] {
          rpc::ChannelOptions c;
          c.tls = options.tls;
          return c;
        }()),
        coordinators(std::make_shared<rpc::CoordinatorSet>(io, &pool, options.coordinators)) {}

  Result<std::string> AgentFor(const std::string& resource) const {
    auto it = options.agents.find(resource);
    if (it == options.agents.end()) {
      return Status::InvalidArgument("no agent is known for resource '" + resource +
                                     "': add it to ClientOptions.agents");
    }
    return it->second;
  }

  // Calls the coordinator group (following redirects); `done` gets the
  // response or the CoordinatorSet's UNAVAILABLE.
  template <class Req, class Resp>
  void Coordinator(const std::string& method, const Req& req, Micros timeout,
                   std::function<void(Result<Resp>)> done) {
    coordinators->Call<Req, Resp>(method, req, timeout, [done = std::move(done)](Status s, Resp r) {
      if (s.ok()) {
        done(std::move(r));
      } else {
        done(std::move(s));
      }
    });
  }

  boost::asio::io_context& io;
  const ClientOptions options;
  rpc::ChannelPool pool;
  std::shared_ptr<rpc::CoordinatorSet> coordinators;
  bool closed = false;  // the AsyncClient is gone: fail what starts now
  // Submit's txids (ClientOptions.reserve_txids): the reserve, the Submits
  // waiting for the Begin that refills it, and whether one is out.
  TxidReserve reserve{options.reserve_txids};
  std::vector<std::function<void(Result<TxId>, bool kept)>> txid_waiters;
  bool refilling = false;
};

namespace {

Status EmptyHandle() {
  return Status::InvalidArgument("empty AsyncTransaction: use one that async_begin returned");
}

Status Closed() { return Status::Unavailable("the AsyncClient was destroyed"); }

using TxidDone = std::function<void(Result<TxId>, bool kept)>;

void RefillTxids(const std::shared_ptr<AsyncClient::Impl>& impl);

// A txid for a Submit, on the io thread: a kept one at once, or one from a
// Begin. While a Begin is out, the Submits that found the reserve empty wait
// for it (one Begin of reserve_txids serves that many of them).
void TakeTxid(const std::shared_ptr<AsyncClient::Impl>& impl, TxidDone done) {
  if (impl->reserve.enabled()) {
    if (auto id = impl->reserve.Take(SteadyNowMicros())) return done(*id, true);
    impl->txid_waiters.push_back(std::move(done));
    if (!impl->refilling) RefillTxids(impl);
    return;
  }
  proto::BeginRequest req;
  if (impl->options.txn_timeout_ms > 0) req.__set_timeout_ms(impl->options.txn_timeout_ms);
  impl->Coordinator<proto::BeginRequest, proto::BeginResponse>(
      "Begin", req, impl->options.call_timeout,
      [done = std::move(done)](Result<proto::BeginResponse> r) {
        if (!r.ok()) return done(r.status(), false);
        if (r->status.code != proto::Code::OK) return done(FromProto(r->status), false);
        done(r->txid, false);
      });
}

void RefillTxids(const std::shared_ptr<AsyncClient::Impl>& impl) {
  impl->refilling = true;
  proto::BeginRequest req;
  if (impl->options.txn_timeout_ms > 0) req.__set_timeout_ms(impl->options.txn_timeout_ms);
  // As many as wait, when more than a batch do (at a high concurrency's
  // start), up to the most one Begin may reserve.
  req.__set_count(static_cast<int32_t>(std::clamp<size_t>(
      impl->txid_waiters.size(), static_cast<size_t>(impl->reserve.batch()),
      static_cast<size_t>(validate::kMaxBeginCount))));
  Micros sent = SteadyNowMicros();
  impl->Coordinator<proto::BeginRequest, proto::BeginResponse>(
      "Begin", req, impl->options.call_timeout,
      [impl, sent](Result<proto::BeginResponse> r) {
        impl->refilling = false;
        std::vector<TxidDone> waiters;
        waiters.swap(impl->txid_waiters);
        Status failed = !r.ok() ? r.status()
                                : r->status.code != proto::Code::OK ? FromProto(r->status)
                                                                    : Status::Ok();
        if (!failed.ok()) {
          for (TxidDone& w : waiters) w(failed, false);
          return;
        }
        impl->reserve.Keep(*r, sent);
        size_t i = 0;
        if (!waiters.empty()) waiters[i++](r->txid, true);
        for (; i < waiters.size(); ++i) {
          auto id = impl->reserve.Take(SteadyNowMicros());
          if (!id) break;
          waiters[i](*id, true);
        }
        // More Submits waited than one Begin reserved: another for the rest.
        for (; i < waiters.size(); ++i) impl->txid_waiters.push_back(std::move(waiters[i]));
        if (!impl->txid_waiters.empty() && !impl->refilling) RefillTxids(impl);
      });
}

// Sends the Submit under a txid; a kept txid that a newer leader presumed
// aborted (its leader is gone; it never ran) is replaced once.
void SendSubmit(const std::shared_ptr<AsyncClient::Impl>& impl,
                std::shared_ptr<proto::SubmitRequest> req, bool kept, bool again,
                std::function<void(Result<TxId>)> done) {
  // (A txid may arrive after the client was destroyed: nothing is sent then.)
  if (impl->closed) return done(Closed());
  impl->Coordinator<proto::SubmitRequest, proto::CommitResponse>(
      "Submit", *req, impl->options.commit_timeout,
      [impl, req, kept, again, done = std::move(done)](Result<proto::CommitResponse> c) mutable {
        const TxId id = req->txid;
        if (!c.ok()) {
          impl->reserve.Clear();
          return done(Status::Unavailable("coordinator unreachable; the outcome of " + ToString(id) +
                                          " is unknown: " + c.status().message()));
        }
        if (kept && TxidReserve::LeaderGone(*c)) {
          impl->reserve.Clear();
          if (!again) {
            return TakeTxid(impl, [impl, req, done = std::move(done)](Result<TxId> t,
                                                                      bool kept2) mutable {
              if (!t.ok()) return done(t.status());
              req->txid = *t;
              SendSubmit(impl, req, kept2, true, std::move(done));
            });
          }
        }
        Status s = CommitAnswer(id, *c, "AsyncClient::async_outcome");
        if (!s.ok()) return done(s);
        done(id);
      });
}

}  // namespace

// Each operation starts with dispatch: inline when called on the io thread
// (from another handler: no extra trip through the queue), posted otherwise.
// Its handler is always posted (detail::Completion), so it never runs inside
// the initiating call even when the answer is immediate.
AsyncClient::AsyncClient(boost::asio::io_context& io, ClientOptions options)
    : io_(io), options_(options), impl_(std::make_shared<Impl>(io, std::move(options))) {}

AsyncClient::~AsyncClient() {
  impl_->closed = true;
  impl_->pool.CloseAll();
}

Result<std::unique_ptr<AsyncClient>> AsyncClient::Connect(boost::asio::io_context& io,
                                                          ClientOptions options) {
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
  return std::unique_ptr<AsyncClient>(new AsyncClient(io, std::move(options)));
}

Result<std::string> AsyncClient::AgentFor(const std::string& resource) const {
  return impl_->AgentFor(resource);
}

void AsyncClient::Begin(TxnOptions options, std::function<void(Result<AsyncTransaction>)> done) {
  boost::asio::dispatch(io_, [impl = impl_, options, done = std::move(done)]() mutable {
    if (impl->closed) return done(Closed());
    proto::BeginRequest req;
    if (impl->options.txn_timeout_ms > 0) req.__set_timeout_ms(impl->options.txn_timeout_ms);
    impl->Coordinator<proto::BeginRequest, proto::BeginResponse>(
        "Begin", req, impl->options.call_timeout,
        [options, done = std::move(done)](Result<proto::BeginResponse> r) {
          if (!r.ok()) return done(r.status());
          if (r->status.code != proto::Code::OK) return done(FromProto(r->status));
          done(AsyncTransaction(r->txid, options));
        });
  });
}

void AsyncClient::Execute(AsyncTransaction txn, std::string resource,
                          std::vector<proto::Statement> statements,
                          std::function<void(Result<std::vector<proto::ResultSet>>)> done) {
  boost::asio::dispatch(io_, [impl = impl_, txn = std::move(txn), resource = std::move(resource),
                          statements = std::move(statements), done = std::move(done)]() mutable {
    if (impl->closed) return done(Closed());
    if (!txn.state_) return done(EmptyHandle());
    detail::AsyncTxnState& state = *txn.state_;
    if (state.finished) return done(Status::InvalidArgument("transaction " + ToString(txn.id()) + " is finished"));
    auto agent = impl->AgentFor(resource);
    if (!agent.ok()) return done(agent.status());
    proto::ExecuteRequest req;
    req.txid = txn.id();
    req.resource = resource;
    req.statements = std::move(statements);
    if (impl->options.txn_timeout_ms > 0) req.__set_timeout_ms(impl->options.txn_timeout_ms);
    auto pit = std::find_if(state.participants.begin(), state.participants.end(),
                            [&](const proto::Participant& p) {
                              return p.resource == resource && p.address == *agent;
                            });
    if (pit == state.participants.end()) {
      // Recorded before the call: even a failed or timed-out execute may have
      // left work that a rollback must reach.
      proto::Participant p;
      p.resource = resource;
      p.address = *agent;
      state.participants.push_back(p);
    }
    std::string address = *agent;
    impl->pool.Get(address)->Call<proto::ExecuteRequest, proto::ExecuteResponse>(
        "Execute", req, impl->options.call_timeout,
        [txn = std::move(txn), resource = std::move(resource), address, done = std::move(done)](
            Status s, proto::ExecuteResponse r) {
          if (!s.ok()) {
            return done(Status(s.code(), "agent " + address + " (" + resource + "): " + s.message()));
          }
          // Looked up again: another execute of this transaction may have
          // grown the vector meanwhile.
          auto& participants = txn.state_->participants;
          auto pit = std::find_if(participants.begin(), participants.end(),
                                  [&](const proto::Participant& p) {
                                    return p.resource == resource && p.address == address;
                                  });
          if (r.incarnation != 0 && pit != participants.end()) {
            if (pit->__isset.incarnation && pit->incarnation != r.incarnation) {
              // The agent restarted between two of our calls: what the earlier
              // ones did may be gone. The PREPARE would vote NO; say so now.
              return done(Status::Aborted("the agent for " + resource + " restarted during transaction " +
                                          ToString(txn.id()) +
                                          "; its earlier work there may be lost: roll back and retry"));
            }
            pit->__set_incarnation(r.incarnation);
          }
          if (r.status.code != proto::Code::OK) return done(FromProto(r.status));
          done(std::move(r.results));
        });
  });
}

void AsyncClient::Commit(AsyncTransaction txn, std::function<void(Status)> done) {
  boost::asio::dispatch(io_, [impl = impl_, txn = std::move(txn), done = std::move(done)]() mutable {
    if (impl->closed) return done(Closed());
    if (!txn.state_) return done(EmptyHandle());
    if (txn.state_->finished) {
      return done(Status::InvalidArgument("transaction " + ToString(txn.id()) + " is finished"));
    }
    txn.state_->finished = true;
    proto::CommitRequest req;
    req.txid = txn.id();
    req.participants = txn.state_->participants;
    req.protocol = txn.protocol();
    impl->Coordinator<proto::CommitRequest, proto::CommitResponse>(
        "Commit", req, impl->options.commit_timeout,
        [id = txn.id(), done = std::move(done)](Result<proto::CommitResponse> r) {
          if (!r.ok()) {
            return done(Status::Unavailable("coordinator unreachable; the outcome of " + ToString(id) +
                                            " is unknown: " + r.status().message()));
          }
          done(CommitAnswer(id, *r, "AsyncClient::async_outcome"));
        });
  });
}

void AsyncClient::Rollback(AsyncTransaction txn, std::function<void(Status)> done) {
  boost::asio::dispatch(io_, [impl = impl_, txn = std::move(txn), done = std::move(done)]() mutable {
    if (impl->closed) return done(Closed());
    if (!txn.state_) return done(EmptyHandle());
    if (txn.state_->finished) {
      return done(Status::InvalidArgument("transaction " + ToString(txn.id()) + " is finished"));
    }
    txn.state_->finished = true;
    proto::AbortRequest req;
    req.txid = txn.id();
    req.participants = txn.state_->participants;
    req.reason = "rolled back by the application";
    impl->Coordinator<proto::AbortRequest, proto::CommitResponse>(
        "Abort", req, impl->options.commit_timeout,
        [id = txn.id(), done = std::move(done)](Result<proto::CommitResponse> r) {
          if (!r.ok()) return done(r.status());
          if (r->status.code != proto::Code::OK) return done(FromProto(r->status));
          switch (r->outcome) {
            case proto::Outcome::ABORTED:
              return done(Status::Ok());
            case proto::Outcome::COMMITTED:
              return done(Status::InvalidArgument("transaction " + ToString(id) + " is already committed"));
            default:
              return done(Status::Unavailable("the outcome of " + ToString(id) + " is unknown (" +
                                              OutcomeName(r->outcome) + "); it was not rolled back"));
          }
        });
  });
}

void AsyncClient::Submit(Work work, TxnOptions options, std::function<void(Result<TxId>)> done) {
  boost::asio::dispatch(io_, [impl = impl_, work = std::move(work), options, done = std::move(done)]() mutable {
    if (impl->closed) return done(Closed());
    auto req = std::make_shared<proto::SubmitRequest>();
    req->protocol = options.protocol;
    for (auto& [resource, statements] : work) {
      auto agent = impl->AgentFor(resource);
      if (!agent.ok()) return done(agent.status());
      proto::Branch b;
      b.participant.resource = resource;
      b.participant.address = *agent;
      b.statements = std::move(statements);
      req->branches.push_back(std::move(b));
    }
    // The txid comes first, so that a retried submit (after a lost reply or a
    // leader change) is recognised as the same transaction.
    TakeTxid(impl, [impl, req, done = std::move(done)](Result<TxId> t, bool kept) mutable {
      if (!t.ok()) return done(t.status());
      req->txid = *t;
      SendSubmit(impl, req, kept, false, std::move(done));
    });
  });
}

void AsyncClient::Outcome(TxId txid, std::function<void(Result<proto::Outcome::type>)> done) {
  boost::asio::dispatch(io_, [impl = impl_, txid, done = std::move(done)]() mutable {
    if (impl->closed) return done(Closed());
    proto::OutcomeRequest req;
    req.txid = txid;
    impl->Coordinator<proto::OutcomeRequest, proto::OutcomeResponse>(
        "Outcome", req, impl->options.commit_timeout,
        [done = std::move(done)](Result<proto::OutcomeResponse> r) {
          if (!r.ok()) return done(r.status());
          if (r->status.code != proto::Code::OK) return done(FromProto(r->status));
          done(r->outcome);
        });
  });
}

}  // namespace txc
