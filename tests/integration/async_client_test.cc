// AsyncClient (client/async_client.h) against a real txcoord and two txagent
// processes on loopback: the three completion styles (callbacks, use_future
// from another thread, co_await), the abort path, one thread driving a
// thousand submits at once, and the errors a caller acts on. Balances are
// read straight from the agents' database files, as an auditor would.
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "client/async_client.h"
#include "client/client.h"
#include "tests/support/process.h"
#include "wal/sqlite.h"

namespace txc {
namespace {

namespace asio = boost::asio;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

constexpr int kAccounts = 1000;
constexpr int64_t kBalance = 1000;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

AsyncClient::Work Transfer(int64_t amount, int from, int to) {
  return {{"bank_a", {SqlExpect("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?",
                                {Int(amount), Int(from), Int(amount)}, 1)}},
          {"bank_b", {SqlExpect("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                                {Int(amount), Int(to)}, 1)}}};
}

class AsyncClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cport_ = FreePort();
    aport_ = FreePort();
    bport_ = FreePort();
    coord_ = std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord"},
        dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    agent_a_ = MakeAgent("bank_a", aport_);
    agent_b_ = MakeAgent("bank_b", bport_);
    ASSERT_TRUE(agent_a_->Start(aport_)) << agent_a_->LogTail();
    ASSERT_TRUE(agent_b_->Start(bport_)) << agent_b_->LogTail();
    options_.coordinators = {Addr(cport_)};
    options_.agents = {{"bank_a", Addr(aport_)}, {"bank_b", Addr(bport_)}};
    options_.call_timeout = 10 * kSeconds;
    options_.commit_timeout = 30 * kSeconds;
    options_.tls = testing::TestTls(authz::Role::kClient);

    // The accounts, through the blocking client.
    auto setup = Client::Connect(options_);
    ASSERT_TRUE(setup.ok()) << setup.status().ToString();
    for (const char* bank : {"bank_a", "bank_b"}) {
      auto tx = (*setup)->Begin();
      ASSERT_TRUE(tx.ok()) << tx.status().ToString();
      auto r = tx->Execute(bank, {Sql("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"),
                                  Sql("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
                                      "INSERT INTO accounts(id, balance) SELECT x, ? FROM n",
                                      {Int(kAccounts), Int(kBalance)})});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_TRUE(tx->Commit().ok());
      // The COMMIT reaches the agent asynchronously: wait until the branch
      // ended there, so its locks are gone before the tests' transfers.
      ASSERT_TRUE(WaitBranchCommitted(bank == std::string("bank_a") ? aport_ : bport_, tx->id()));
    }
    auto c = AsyncClient::Connect(io_, options_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
  }

  void TearDown() override {
    // A client is destroyed while no thread runs its io_context.
    if (io_thread_.joinable()) {
      io_.stop();
      io_thread_.join();
    }
    client_.reset();
  }

  std::unique_ptr<Process> MakeAgent(const std::string& bank, int port) {
    return std::make_unique<Process>(
        "txagent " + bank,
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(port), "--data",
                                 dir_.path + "/" + bank, "--coordinator", Addr(cport_), "--resource",
                                 bank + "=sqlite:" + DbPath(bank)},
        dir_.path + "/" + bank + ".log");
  }

  std::string DbPath(const std::string& bank) const { return dir_.path + "/" + bank + ".db"; }

  static bool WaitBranchCommitted(int port, const TxId& txid) { return WaitBranch(port, txid, "committed"); }

  // Polls the agent's ListBranches until txid's branch is in `state`, up to 20 s.
  static bool WaitBranch(int port, const TxId& txid, const std::string& state) {
    for (int waited = 0; waited <= 20000; waited += 20) {
      auto r = testing::CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
          port, "ListBranches", proto::ListBranchesRequest());
      if (r.ok()) {
        for (const auto& b : r->branches) {
          if (b.txid == txid && b.state == state) return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // One number from the database file (-1: no row, -2: unreadable).
  int64_t Query(const std::string& bank, const std::string& sql, std::optional<int> id = std::nullopt) {
    auto db = wal::Db::Open(DbPath(bank));
    if (!db.ok()) return -2;
    auto st = (*db)->Prepare(sql);
    if (!st.ok()) return -2;
    if (id && !(*st)->BindInt(1, *id).ok()) return -2;
    auto row = (*st)->Step();
    if (!row.ok()) return -2;
    if (!*row) return -1;
    return (*st)->ColumnInt(0);
  }
  int64_t Balance(const std::string& bank, int id) {
    return Query(bank, "SELECT balance FROM accounts WHERE id = ?", id);
  }
  int64_t Total(const std::string& bank) { return Query(bank, "SELECT SUM(balance) FROM accounts"); }

  // Polls until `read()` gives `want`, up to 20 s; the last value read.
  static int64_t Eventually(const std::function<int64_t()>& read, int64_t want) {
    int64_t got = read();
    for (int waited = 0; got != want && waited < 20000; waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      got = read();
    }
    return got;
  }

  // Runs io_ on this thread until `done()` or `limit` passed.
  bool RunUntil(const std::function<bool()>& done, Micros limit = 60 * kSeconds) {
    Micros end = SteadyNowMicros() + limit;
    while (!done() && SteadyNowMicros() < end) {
      // An io_context that ran out of work (no connection open yet) stops
      // and runs nothing more until restarted.
      if (io_.stopped()) io_.restart();
      io_.run_one_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  // Runs io_ on a thread of its own (for use_future and for a coroutine
  // on another io_context).
  void RunIoInBackground() {
    io_thread_ = std::thread([this] {
      auto work = asio::make_work_guard(io_);
      io_.run();
    });
  }

  TempDir dir_;
  int cport_ = 0, aport_ = 0, bport_ = 0;
  std::unique_ptr<Process> coord_, agent_a_, agent_b_;
  ClientOptions options_;
  asio::io_context io_;
  std::thread io_thread_;
  std::unique_ptr<AsyncClient> client_;
};

TEST_F(AsyncClientTest, CallbacksRunBeginExecuteCommitAndSubmit) {
  const auto io_thread = std::this_thread::get_id();
  AsyncClient& c = *client_;
  std::optional<Status> committed;
  bool wrong_thread = false;
  AsyncTransaction tx;
  c.async_begin({}, [&](Result<AsyncTransaction> t) {
    wrong_thread |= std::this_thread::get_id() != io_thread;
    if (!t.ok()) return committed.emplace(t.status()), void();
    tx = *t;
    c.async_execute(tx, "bank_a", {Sql("UPDATE accounts SET balance = balance - 10 WHERE id = 1")},
                    [&](Result<std::vector<proto::ResultSet>> a) {
                      if (!a.ok()) return committed.emplace(a.status()), void();
                      EXPECT_EQ(a->at(0).rows_changed, 1);
                      c.async_execute(tx, "bank_b", {Sql("UPDATE accounts SET balance = balance + 10 WHERE id = 1")},
                                      [&](Result<std::vector<proto::ResultSet>> b) {
                                        if (!b.ok()) return committed.emplace(b.status()), void();
                                        c.async_commit(tx, [&](Status s) {
                                          wrong_thread |= std::this_thread::get_id() != io_thread;
                                          committed = s;
                                        });
                                      });
                    });
  });
  // A handler never runs inside the call that started its operation.
  EXPECT_FALSE(committed.has_value());
  ASSERT_TRUE(RunUntil([&] { return committed.has_value(); }));
  ASSERT_TRUE(committed->ok()) << committed->ToString();
  EXPECT_FALSE(wrong_thread);

  // The transaction is finished: a second commit is refused, as Client's.
  std::optional<Status> again;
  c.async_commit(tx, [&](Status s) { again = s; });
  ASSERT_TRUE(RunUntil([&] { return again.has_value(); }));
  EXPECT_EQ(again->code(), Status::kInvalidArgument) << again->ToString();

  std::optional<Result<TxId>> submitted;
  c.async_submit(Transfer(5, 2, 2), {}, [&](Result<TxId> r) { submitted.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil([&] { return submitted.has_value(); }));
  ASSERT_TRUE(submitted->ok()) << submitted->status().ToString();

  std::optional<Result<proto::Outcome::type>> outcome;
  c.async_outcome(**submitted, [&](Result<proto::Outcome::type> r) { outcome.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil([&] { return outcome.has_value(); }));
  ASSERT_TRUE(outcome->ok()) << outcome->status().ToString();
  EXPECT_EQ(**outcome, proto::Outcome::COMMITTED);

  EXPECT_EQ(Eventually([&] { return Balance("bank_a", 1); }, 990), 990);
  EXPECT_EQ(Eventually([&] { return Balance("bank_b", 1); }, 1010), 1010);
  EXPECT_EQ(Eventually([&] { return Balance("bank_a", 2); }, 995), 995);
  EXPECT_EQ(Eventually([&] { return Balance("bank_b", 2); }, 1005), 1005);
}

TEST_F(AsyncClientTest, FuturesFromAnotherThread) {
  RunIoInBackground();
  AsyncClient& c = *client_;
  auto wait = [](auto& f) { return f.wait_for(std::chrono::seconds(60)) == std::future_status::ready; };

  auto begun = c.async_begin({}, asio::use_future);
  ASSERT_TRUE(wait(begun));
  Result<AsyncTransaction> tx = begun.get();
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  // Both executes in flight at once, on two resources.
  auto a = c.async_execute(*tx, "bank_a", {Sql("UPDATE accounts SET balance = balance - 7 WHERE id = 3")},
                           asio::use_future);
  auto b = c.async_execute(*tx, "bank_b", {Sql("UPDATE accounts SET balance = balance + 7 WHERE id = 3")},
                           asio::use_future);
  ASSERT_TRUE(wait(a) && wait(b));
  auto ra = a.get(), rb = b.get();
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  auto commit = c.async_commit(*tx, asio::use_future);
  ASSERT_TRUE(wait(commit));
  Status s = commit.get();
  ASSERT_TRUE(s.ok()) << s.ToString();

  auto submit = c.async_submit(Transfer(9, 4, 4), {}, asio::use_future);
  ASSERT_TRUE(wait(submit));
  Result<TxId> id = submit.get();
  ASSERT_TRUE(id.ok()) << id.status().ToString();

  EXPECT_EQ(Eventually([&] { return Balance("bank_a", 3); }, 993), 993);
  EXPECT_EQ(Eventually([&] { return Balance("bank_b", 3); }, 1007), 1007);
  EXPECT_EQ(Eventually([&] { return Balance("bank_a", 4); }, 991), 991);
  EXPECT_EQ(Eventually([&] { return Balance("bank_b", 4); }, 1009), 1009);
}

// The coroutine runs on an io_context of its own (this thread), the client on
// another: every co_await resumes on the coroutine's thread, and the
// coroutine's io_context keeps running while it waits for the client.
TEST_F(AsyncClientTest, CoroutineOnItsOwnExecutor) {
  RunIoInBackground();
  AsyncClient& c = *client_;
  asio::io_context user_io;
  const auto user_thread = std::this_thread::get_id();
  bool wrong_thread = false;
  std::optional<Status> result;
  asio::co_spawn(
      user_io,
      [&]() -> asio::awaitable<Status> {
        auto tx = co_await c.async_begin({}, asio::use_awaitable);
        wrong_thread |= std::this_thread::get_id() != user_thread;
        if (!tx.ok()) co_return tx.status();
        // (GCC 12 rejects a braced statement list inside a co_await
        // expression, "array used as initializer": the vectors are built first.)
        std::vector<proto::Statement> debit{Sql("UPDATE accounts SET balance = balance - 20 WHERE id = 5")};
        std::vector<proto::Statement> credit{Sql("UPDATE accounts SET balance = balance + 20 WHERE id = 5")};
        auto a = co_await c.async_execute(*tx, "bank_a", std::move(debit), asio::use_awaitable);
        if (!a.ok()) co_return a.status();
        auto b = co_await c.async_execute(*tx, "bank_b", std::move(credit), asio::use_awaitable);
        if (!b.ok()) co_return b.status();
        Status s = co_await c.async_commit(*tx, asio::use_awaitable);
        wrong_thread |= std::this_thread::get_id() != user_thread;
        if (!s.ok()) co_return s;
        auto id = co_await c.async_submit(Transfer(3, 6, 6), {}, asio::use_awaitable);
        wrong_thread |= std::this_thread::get_id() != user_thread;
        co_return id.ok() ? Status::Ok() : id.status();
      },
      [&](std::exception_ptr e, Status s) {
        result = e ? Status::Internal("the coroutine threw") : s;
      });
  user_io.run_for(std::chrono::seconds(60));
  ASSERT_TRUE(result.has_value()) << "user_io ran out of work before the coroutine finished";
  ASSERT_TRUE(result->ok()) << result->ToString();
  EXPECT_FALSE(wrong_thread);
  EXPECT_EQ(Eventually([&] { return Balance("bank_a", 5); }, 980), 980);
  EXPECT_EQ(Eventually([&] { return Balance("bank_b", 5); }, 1020), 1020);
  EXPECT_EQ(Eventually([&] { return Balance("bank_a", 6); }, 997), 997);
  EXPECT_EQ(Eventually([&] { return Balance("bank_b", 6); }, 1003), 1003);
}

TEST_F(AsyncClientTest, FailedExpectationAborts) {
  AsyncClient& c = *client_;
  // One-shot: bank_b has no account 5000, so its branch votes NO.
  std::optional<Result<TxId>> submitted;
  c.async_submit(Transfer(50, 7, kAccounts + 4000), {}, [&](Result<TxId> r) { submitted.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil([&] { return submitted.has_value(); }));
  ASSERT_FALSE(submitted->ok());
  EXPECT_EQ(submitted->status().code(), Status::kAborted) << submitted->status().ToString();

  // Interactive: the failed expectation fails the execute; the commit then
  // aborts (that branch cannot vote YES).
  std::optional<Status> executed, committed;
  TxId interactive;
  c.async_begin({}, [&](Result<AsyncTransaction> t) {
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    AsyncTransaction tx = *t;
    interactive = tx.id();
    c.async_execute(tx, "bank_a", {Sql("UPDATE accounts SET balance = balance - 50 WHERE id = 8")},
                    [&, tx](Result<std::vector<proto::ResultSet>> a) {
                      ASSERT_TRUE(a.ok()) << a.status().ToString();
                      c.async_execute(tx, "bank_b",
                                      {SqlExpect("UPDATE accounts SET balance = balance + 50 WHERE id = ?",
                                                 {Int(kAccounts + 4000)}, 1)},
                                      [&, tx](Result<std::vector<proto::ResultSet>> b) {
                                        executed = b.ok() ? Status::Ok() : b.status();
                                        c.async_commit(tx, [&](Status s) { committed = s; });
                                      });
                    });
  });
  ASSERT_TRUE(RunUntil([&] { return committed.has_value(); }));
  EXPECT_FALSE(executed->ok());
  EXPECT_EQ(committed->code(), Status::kAborted) << committed->ToString();

  // Nothing moved: bank_a's debit was rolled back there (the ABORT reaches
  // the agent asynchronously), after which a transfer on the row commits.
  ASSERT_TRUE(WaitBranch(aport_, interactive, "aborted")) << agent_a_->LogTail();
  EXPECT_EQ(Balance("bank_a", 8), kBalance);
  std::optional<Result<TxId>> probe;
  c.async_submit(Transfer(1, 8, 8), {}, [&](Result<TxId> r) { probe.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil([&] { return probe.has_value(); }));
  ASSERT_TRUE(probe->ok()) << probe->status().ToString();
  EXPECT_EQ(Eventually([&] { return Balance("bank_a", 8); }, 999), 999);
  EXPECT_EQ(Balance("bank_a", 7), kBalance);
}

// One thread, a thousand submits in flight at once: every one answers, and
// the money moved is exactly what the committed ones moved.
TEST_F(AsyncClientTest, OneThreadDrivesAThousandSubmits) {
  constexpr int kTxns = 1000;
  AsyncClient& c = *client_;
  int answered = 0;
  std::map<Status::Code, int> by_code;
  std::set<std::string> txids;
  std::string first_failure;
  for (int i = 1; i <= kTxns; ++i) {
    c.async_submit(Transfer(1, i, i), {}, [&](Result<TxId> r) {
      ++answered;
      ++by_code[r.status().code()];
      if (r.ok()) {
        txids.insert(ToString(*r));
      } else if (first_failure.empty()) {
        first_failure = r.status().ToString();
      }
    });
  }
  ASSERT_TRUE(RunUntil([&] { return answered == kTxns; }, 120 * kSeconds)) << answered << " answered";
  int committed = by_code[Status::kOk];
  // Every outcome is known: committed, or aborted (nothing unknown).
  EXPECT_EQ(committed + by_code[Status::kAborted], kTxns) << first_failure;
  EXPECT_GT(committed, 0) << first_failure;
  EXPECT_EQ(static_cast<int>(txids.size()), committed);  // one txid each
  const int64_t start = int64_t{kAccounts} * kBalance;
  EXPECT_EQ(Eventually([&] { return Total("bank_a"); }, start - committed), start - committed);
  EXPECT_EQ(Eventually([&] { return Total("bank_b"); }, start + committed), start + committed);
  std::cout << "committed " << committed << " of " << kTxns << (first_failure.empty() ? "" : "; first failure: ")
            << first_failure << "\n";
}

TEST_F(AsyncClientTest, UnknownResourceIsInvalidArgument) {
  AsyncClient& c = *client_;
  std::optional<Result<TxId>> submitted;
  AsyncClient::Work work = Transfer(1, 1, 1);
  work["bank_z"] = {Sql("SELECT 1")};
  c.async_submit(work, {}, [&](Result<TxId> r) { submitted.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil([&] { return submitted.has_value(); }));
  EXPECT_EQ(submitted->status().code(), Status::kInvalidArgument) << submitted->status().ToString();
  EXPECT_NE(submitted->status().message().find("bank_z"), std::string::npos);

  std::optional<Status> executed;
  c.async_begin({}, [&](Result<AsyncTransaction> t) {
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    c.async_execute(*t, "bank_z", {Sql("SELECT 1")}, [&](Result<std::vector<proto::ResultSet>> r) {
      executed = r.ok() ? Status::Ok() : r.status();
    });
  });
  ASSERT_TRUE(RunUntil([&] { return executed.has_value(); }));
  EXPECT_EQ(executed->code(), Status::kInvalidArgument) << executed->ToString();
  EXPECT_NE(executed->message().find("bank_z"), std::string::npos) << executed->ToString();

  // An empty handle is refused, not a crash.
  std::optional<Status> empty;
  c.async_commit(AsyncTransaction(), [&](Status s) { empty = s; });
  ASSERT_TRUE(RunUntil([&] { return empty.has_value(); }));
  EXPECT_EQ(empty->code(), Status::kInvalidArgument) << empty->ToString();
}

// A client destroyed with operations started but not yet run still answers
// each of them, and nothing commits.
TEST_F(AsyncClientTest, DestroyedClientStillAnswersEveryHandler) {
  std::optional<Result<TxId>> submitted;
  std::optional<Result<AsyncTransaction>> begun;
  client_->async_submit(Transfer(1, 9, 9), {}, [&](Result<TxId> r) { submitted.emplace(std::move(r)); });
  client_->async_begin({}, [&](Result<AsyncTransaction> r) { begun.emplace(std::move(r)); });
  client_.reset();  // no thread runs io_ now
  ASSERT_TRUE(RunUntil([&] { return submitted.has_value() && begun.has_value(); }));
  EXPECT_EQ(submitted->status().code(), Status::kUnavailable) << submitted->status().ToString();
  EXPECT_EQ(begun->status().code(), Status::kUnavailable) << begun->status().ToString();
  EXPECT_EQ(Balance("bank_a", 9), kBalance);
}

TEST_F(AsyncClientTest, UnreachableCoordinatorIsUnavailableWithinTheTimeout) {
  ClientOptions o = options_;
  o.coordinators = {Addr(FreePort())};  // reserved, and nothing listens there
  o.commit_timeout = 1 * kSeconds;  // Submit's, Commit's
  o.call_timeout = 1 * kSeconds;    // Begin's
  auto lost = AsyncClient::Connect(io_, o);
  ASSERT_TRUE(lost.ok()) << lost.status().ToString();
  std::optional<Result<AsyncTransaction>> begun;
  std::optional<Result<TxId>> submitted;
  Micros t0 = SteadyNowMicros();
  (*lost)->async_begin({}, [&](Result<AsyncTransaction> r) { begun.emplace(std::move(r)); });
  (*lost)->async_submit(Transfer(1, 1, 1), {}, [&](Result<TxId> r) { submitted.emplace(std::move(r)); });
  // Bounded well past the 1 s timeouts: the deadline is the client's.
  ASSERT_TRUE(RunUntil([&] { return begun.has_value() && submitted.has_value(); }, 10 * kSeconds));
  Micros took = SteadyNowMicros() - t0;
  EXPECT_EQ(begun->status().code(), Status::kUnavailable) << begun->status().ToString();
  EXPECT_EQ(submitted->status().code(), Status::kUnavailable) << submitted->status().ToString();
  // The message names the address tried.
  EXPECT_NE(begun->status().message().find("tried " + o.coordinators[0]), std::string::npos)
      << begun->status().ToString();
  EXPECT_LT(took, 1 * kSeconds + 3 * kSeconds);

  Result<std::unique_ptr<AsyncClient>> bad = AsyncClient::Connect(io_, ClientOptions{});
  EXPECT_EQ(bad.status().code(), Status::kInvalidArgument);
}

}  // namespace
}  // namespace txc
