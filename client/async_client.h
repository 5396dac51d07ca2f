// The asynchronous application library: the operations of txc::Client
// (client/client.h) as Asio asynchronous operations, so one thread can drive
// thousands of transactions at once. Every operation takes a completion
// token: a plain callback, boost::asio::use_future, or
// boost::asio::use_awaitable inside a C++20 coroutine.
//
//   boost::asio::io_context io;
//   auto client = txc::AsyncClient::Connect(io, {.coordinators = {"127.0.0.1:7000"},
//                                                .agents = {{"bank_a", "127.0.0.1:7101"}}});
//   // a callback
//   (*client)->async_submit(work, {}, [](txc::Result<txc::TxId> r) { ... });
//   // a coroutine (co_spawn'ed on any executor)
//   txc::Result<txc::AsyncTransaction> tx = co_await c.async_begin({}, boost::asio::use_awaitable);
//   auto rows = co_await c.async_execute(*tx, "bank_a", {txc::Sql("...")}, boost::asio::use_awaitable);
//   txc::Status s = co_await c.async_commit(*tx, boost::asio::use_awaitable);
//   // a future, from a thread that does not run `io`
//   txc::Status s = c.async_commit(tx, boost::asio::use_future).get();
//
// Completion signatures carry one value: void(Result<T>) or void(Status).
// Errors are Status values with the same codes and messages as the blocking
// Client's (see client.h: ABORTED is the only answer meaning "did not
// commit"; UNAVAILABLE from a commit means the outcome is unknown); nothing
// throws, and use_future's future never holds an exception.
//
// Threading: the client runs on the io_context given to Connect; every RPC,
// timer and piece of client state lives on the thread (one thread) that runs
// it. Operations may be started from any thread: each first dispatches to
// that io_context (inline on its thread, posted from any other). A
// completion handler runs on its associated executor (Asio's
// rule), which for a plain callback is the client's io_context and for
// use_awaitable the coroutine's executor; it never runs inside the call that
// started the operation. Outstanding work is counted on the handler's
// executor until it has run.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio.hpp>

#include "client/client.h"
#include "common/status.h"
#include "common/txid.h"
#include "txcoord_types.h"

namespace txc {

class AsyncClient;

namespace detail {
// What a transaction's operations share: read and written on the client's io
// thread only.
struct AsyncTxnState {
  std::vector<proto::Participant> participants;  // with the incarnation each agent reported
  bool finished = false;                         // commit or rollback was asked for
};

// Wraps a completion handler (possibly move-only, e.g. a coroutine's) in a
// copyable callback that the client's internals call exactly once, on the io
// thread. The handler then runs, posted, on its associated executor (the
// client's io_context if it has none); until then that executor counts
// outstanding work, so a coroutine's io_context does not run out of work
// while it waits for the client's.
template <class Arg, class Handler>
std::function<void(Arg)> Completion(Handler&& handler,
                                    const boost::asio::io_context::executor_type& io) {
  using H = std::decay_t<Handler>;
  auto work = boost::asio::make_work_guard(handler, io);
  struct Holder {
    H handler;
    decltype(work) guard;
  };
  auto holder = std::make_shared<Holder>(Holder{std::forward<Handler>(handler), std::move(work)});
  return [holder](Arg arg) {
    auto ex = holder->guard.get_executor();
    boost::asio::post(ex, [holder, arg = std::move(arg)]() mutable {
      auto guard = std::move(holder->guard);  // released once the handler returned
      std::move(holder->handler)(std::move(arg));
    });
  };
}
}  // namespace detail

// A transaction begun by AsyncClient::async_begin: a small handle, cheap to
// copy; the copies are one transaction. id() and protocol() may be read from
// any thread; the rest of its state (participants, finished) belongs to the
// client's io thread.
class AsyncTransaction {
 public:
  // An empty handle: every operation on it fails with INVALID_ARGUMENT.
  AsyncTransaction() = default;

  const TxId& id() const { return id_; }
  // The commit protocol async_commit asks for (TxnOptions.protocol at begin).
  proto::Protocol::type protocol() const { return options_.protocol; }
  bool valid() const { return state_ != nullptr; }

 private:
  friend class AsyncClient;
  AsyncTransaction(TxId id, TxnOptions options)
      : id_(id), options_(options), state_(std::make_shared<detail::AsyncTxnState>()) {}
  TxId id_;
  TxnOptions options_;
  std::shared_ptr<detail::AsyncTxnState> state_;
};

// The coordinator group (CoordinatorSet: redirects, NOT_LEADER, retries until
// commit_timeout) and a connection per agent, on one io_context.
// Thread-safe to start operations from any thread; destroy it on the
// io_context's thread, or while no thread runs the io_context. Operations
// still in flight then end with UNAVAILABLE (the connections close), at the
// latest at their deadline; their handlers still run.
class AsyncClient {
 public:
  using Work = std::map<std::string, std::vector<proto::Statement>>;
  using executor_type = boost::asio::io_context::executor_type;

  // Checks `options` the way Client::Connect does (INVALID_ARGUMENT naming a
  // bad address), but does not probe the group (it cannot block: `io` may not
  // run yet), so connect_timeout is not used: connections open on first use,
  // and an unreachable group fails the first operation at its deadline
  // (Begin: call_timeout; Commit, Submit, Rollback, Outcome: commit_timeout)
  // with UNAVAILABLE naming every address tried. `io` must outlive the client.
  static Result<std::unique_ptr<AsyncClient>> Connect(boost::asio::io_context& io,
                                                      ClientOptions options);
  ~AsyncClient();
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  executor_type get_executor() const { return io_.get_executor(); }
  const ClientOptions& options() const { return options_; }
  // The agent address for a resource, or INVALID_ARGUMENT (as Client::AgentFor).
  Result<std::string> AgentFor(const std::string& resource) const;

  // A new transaction; `options` (e.g. the commit protocol) hold for its
  // commit. Signature: void(Result<AsyncTransaction>).
  template <class Token>
  auto async_begin(TxnOptions options, Token&& token) {
    return boost::asio::async_initiate<Token, void(Result<AsyncTransaction>)>(
        [this](auto handler, TxnOptions o) {
          Begin(o, detail::Completion<Result<AsyncTransaction>>(std::move(handler), get_executor()));
        },
        token, options);
  }

  // Runs statements on `resource` within `txn`: one ResultSet per statement.
  // Several executes of one transaction may be in flight at once (e.g. on
  // two resources); two on the same resource run in the order started.
  // Signature: void(Result<std::vector<proto::ResultSet>>).
  template <class Token>
  auto async_execute(AsyncTransaction txn, std::string resource,
                     std::vector<proto::Statement> statements, Token&& token) {
    using R = Result<std::vector<proto::ResultSet>>;
    return boost::asio::async_initiate<Token, void(R)>(
        [this](auto handler, AsyncTransaction t, std::string r, std::vector<proto::Statement> s) {
          Execute(std::move(t), std::move(r), std::move(s),
                  detail::Completion<R>(std::move(handler), get_executor()));
        },
        token, std::move(txn), std::move(resource), std::move(statements));
  }

  // Commits atomically on every resource `txn` touched (as
  // Transaction::Commit). OK = committed everywhere. Signature: void(Status).
  // REQUIRES: no async_execute of `txn` in flight (its resource might be
  // missed by the commit, which then votes it out).
  template <class Token>
  auto async_commit(AsyncTransaction txn, Token&& token) {
    return boost::asio::async_initiate<Token, void(Status)>(
        [this](auto handler, AsyncTransaction t) {
          Commit(std::move(t), detail::Completion<Status>(std::move(handler), get_executor()));
        },
        token, std::move(txn));
  }

  // Rolls back on every resource `txn` touched. Signature: void(Status).
  template <class Token>
  auto async_rollback(AsyncTransaction txn, Token&& token) {
    return boost::asio::async_initiate<Token, void(Status)>(
        [this](auto handler, AsyncTransaction t) {
          Rollback(std::move(t), detail::Completion<Status>(std::move(handler), get_executor()));
        },
        token, std::move(txn));
  }

  // One-shot (as Client::Submit): begin, then every resource's statements
  // travel with PREPARE. OK = committed; the txid. Signature:
  // void(Result<TxId>).
  template <class Token>
  auto async_submit(Work work, TxnOptions options, Token&& token) {
    return boost::asio::async_initiate<Token, void(Result<TxId>)>(
        [this](auto handler, Work w, TxnOptions o) {
          Submit(std::move(w), o, detail::Completion<Result<TxId>>(std::move(handler), get_executor()));
        },
        token, std::move(work), options);
  }

  // What the coordinator group knows of `txid` now (as Client::Outcome).
  // Signature: void(Result<proto::Outcome::type>).
  template <class Token>
  auto async_outcome(TxId txid, Token&& token) {
    using R = Result<proto::Outcome::type>;
    return boost::asio::async_initiate<Token, void(R)>(
        [this](auto handler, TxId id) {
          Outcome(id, detail::Completion<R>(std::move(handler), get_executor()));
        },
        token, txid);
  }

  class Impl;  // the implementation's state (async_client.cc); not for callers

 private:
  AsyncClient(boost::asio::io_context& io, ClientOptions options);

  // The operations behind the templates: each dispatches to the io_context and
  // calls `done` there exactly once.
  void Begin(TxnOptions options, std::function<void(Result<AsyncTransaction>)> done);
  void Execute(AsyncTransaction txn, std::string resource, std::vector<proto::Statement> statements,
               std::function<void(Result<std::vector<proto::ResultSet>>)> done);
  void Commit(AsyncTransaction txn, std::function<void(Status)> done);
  void Rollback(AsyncTransaction txn, std::function<void(Status)> done);
  void Submit(Work work, TxnOptions options, std::function<void(Result<TxId>)> done);
  void Outcome(TxId txid, std::function<void(Result<proto::Outcome::type>)> done);

  boost::asio::io_context& io_;
  ClientOptions options_;
  // Shared with every operation in flight, so the channels outlive the client
  // until those have ended.
  std::shared_ptr<Impl> impl_;
};

}  // namespace txc
