#include "participant/queue_resource.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/core_harness.h"
#include "wal/sqlite.h"

namespace txc::participant {
namespace {

using ::testing::HasSubstr;

proto::Value I(int64_t v) {
  proto::Value x;
  x.__set_i(v);
  return x;
}
proto::Value S(std::string v) {
  proto::Value x;
  x.__set_s(std::move(v));
  return x;
}
proto::Value B(std::string v) {
  proto::Value x;
  x.__set_b(std::move(v));
  return x;
}

proto::Statement Cmd(std::string word, std::vector<proto::Value> params,
                     std::optional<int64_t> expect_rows = std::nullopt) {
  proto::Statement s;
  s.sql = std::move(word);
  s.params = std::move(params);
  if (expect_rows) s.__set_expect_rows(*expect_rows);
  return s;
}
proto::Statement Enqueue(const std::string& q, const std::string& payload) {
  return Cmd("ENQUEUE", {S(q), S(payload)});
}
proto::Statement Dequeue(const std::string& q) { return Cmd("DEQUEUE", {S(q)}); }
proto::Statement Count(const std::string& q) { return Cmd("COUNT", {S(q)}); }

template <typename T>
T Wait(std::future<T> f) {
  EXPECT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "no callback";
  return f.get();
}

class QueueResourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/queue_resource_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/outbox.db";
    Open();
  }

  void TearDown() override {
    rm_.reset();
    std::filesystem::remove_all(dir_);
  }

  // (Re)opens the resource, as an agent restart would, and runs Recover.
  std::vector<RecoveredBranch> Open(QueueResourceOptions options = {}) {
    rm_.reset();
    auto r = QueueResource::Open("outbox", path_, options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    rm_ = std::move(*r);
    auto rec = rm_->Recover();
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    return rec.ok() ? *rec : std::vector<RecoveredBranch>{};
  }

  ExecuteResult Execute(const TxId& t, std::vector<proto::Statement> stmts) {
    std::promise<ExecuteResult> p;
    auto f = p.get_future();
    rm_->Execute(t, std::move(stmts), [&p](ExecuteResult r) { p.set_value(std::move(r)); });
    return Wait(std::move(f));
  }
  ExecuteResult ExecuteAndPrepare(const TxId& t, std::vector<proto::Statement> stmts,
                                  const PrepareInfo& info = {}) {
    std::promise<ExecuteResult> p;
    auto f = p.get_future();
    rm_->ExecuteAndPrepare(t, std::move(stmts), info,
                           [&p](ExecuteResult r) { p.set_value(std::move(r)); });
    return Wait(std::move(f));
  }
  Status StatusOp(void (ResourceManager::*op)(const TxId&, ResourceManager::Callback<Status>),
                  const TxId& t) {
    std::promise<Status> p;
    auto f = p.get_future();
    (rm_.get()->*op)(t, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  }
  Status Prepare(const TxId& t, const PrepareInfo& info = {}) {
    std::promise<Status> p;
    auto f = p.get_future();
    rm_->Prepare(t, info, [&p](Status s) { p.set_value(std::move(s)); });
    return Wait(std::move(f));
  }
  Status Commit(const TxId& t) { return StatusOp(&ResourceManager::Commit, t); }
  Status Rollback(const TxId& t) { return StatusOp(&ResourceManager::Rollback, t); }

  // Enqueues `payloads` on `q` in one committed branch.
  void Committed(const std::string& q, const std::vector<std::string>& payloads) {
    TxId t = MakeTxId(9, next_seq_++);
    std::vector<proto::Statement> stmts;
    for (const std::string& p : payloads) stmts.push_back(Enqueue(q, p));
    ExecuteResult r = ExecuteAndPrepare(t, std::move(stmts));
    ASSERT_OK(r.status);
    ASSERT_OK(Commit(t));
  }
  // COUNT in a branch of its own, released as read-only.
  int64_t CountOf(const std::string& q) {
    TxId t = MakeTxId(8, next_seq_++);
    ExecuteResult r = Execute(t, {Count(q)});
    EXPECT_OK(r.status);
    EXPECT_FALSE(r.wrote);
    EXPECT_OK(Rollback(t));
    if (!r.status.ok() || r.results.size() != 1 || r.results[0].rows.size() != 1) return -1;
    return r.results[0].rows[0].values[0].i;
  }
  // DEQUEUE in `t`: the payload, or nullopt when the queue had none for it.
  std::optional<std::string> Take(const TxId& t, const std::string& q) {
    ExecuteResult r = Execute(t, {Dequeue(q)});
    EXPECT_OK(r.status);
    if (!r.status.ok() || r.results.size() != 1) return std::nullopt;
    const proto::ResultSet& rs = r.results[0];
    EXPECT_EQ(rs.columns, (std::vector<std::string>{"id", "payload"}));
    if (rs.rows.empty()) {
      EXPECT_EQ(rs.rows_changed, 0);
      return std::nullopt;
    }
    EXPECT_EQ(rs.rows_changed, 1);
    EXPECT_TRUE(r.wrote);
    return rs.rows[0].values[1].s;
  }
  // Dequeues everything, one message per committed branch, in order.
  std::vector<std::string> Drain(const std::string& q) {
    std::vector<std::string> out;
    for (int i = 0; i < 1000; ++i) {
      TxId t = MakeTxId(7, next_seq_++);
      auto m = Take(t, q);
      EXPECT_OK(m ? Commit(t) : Rollback(t));
      if (!m) break;
      out.push_back(*m);
    }
    return out;
  }
  int64_t Sql(const std::string& sql) {
    auto db = wal::Db::Open(path_);
    EXPECT_TRUE(db.ok());
    auto q = (*db)->Prepare(sql);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    auto row = (*q)->Step();
    EXPECT_TRUE(row.ok() && *row);
    return (*q)->ColumnInt(0);
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<QueueResource> rm_;
  int64_t next_seq_ = 1;
  const TxId a_ = MakeTxId(1, 1);
  const TxId b_ = MakeTxId(1, 2);
};

TEST_F(QueueResourceTest, EnqueueIsInvisibleUntilCommit) {
  ExecuteResult r = Execute(a_, {Enqueue("events", "order-created 1")});
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.wrote);
  ASSERT_EQ(r.results.size(), 1u);
  EXPECT_EQ(r.results[0].columns, std::vector<std::string>{"id"});
  ASSERT_EQ(r.results[0].rows.size(), 1u);
  EXPECT_TRUE(r.results[0].rows[0].values[0].__isset.i);
  EXPECT_EQ(r.results[0].rows_changed, 1);

  EXPECT_EQ(CountOf("events"), 0);
  EXPECT_EQ(Take(b_, "events"), std::nullopt);
  // Not even its own branch sees it.
  ExecuteResult own = Execute(a_, {Count("events")});
  ASSERT_OK(own.status);
  EXPECT_EQ(own.results[0].rows[0].values[0].i, 0);
  EXPECT_TRUE(own.wrote);  // its earlier enqueue

  ASSERT_OK(Prepare(a_));
  EXPECT_EQ(CountOf("events"), 0);  // prepared is not committed
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(CountOf("events"), 1);
  EXPECT_EQ(CountOf("other"), 0);
  ASSERT_OK(Rollback(b_));
  EXPECT_EQ(Drain("events"), std::vector<std::string>{"order-created 1"});
}

TEST_F(QueueResourceTest, RollbackDropsEnqueuesAndReturnsClaimsInTheirPlace) {
  Committed("q", {"m1", "m2", "m3"});
  EXPECT_EQ(Take(a_, "q"), "m1");
  EXPECT_EQ(Take(a_, "q"), "m2");
  ASSERT_OK(Execute(a_, {Enqueue("q", "m4")}).status);
  EXPECT_EQ(CountOf("q"), 1);  // m3: m1 and m2 are claimed
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(CountOf("q"), 3);
  EXPECT_EQ(Drain("q"), (std::vector<std::string>{"m1", "m2", "m3"}));
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM txc_messages"), 0);
}

TEST_F(QueueResourceTest, CommittedDequeueDeletesTheMessage) {
  Committed("q", {"m1", "m2"});
  EXPECT_EQ(Take(a_, "q"), "m1");
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(CountOf("q"), 1);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM txc_messages"), 1);
  EXPECT_EQ(Drain("q"), std::vector<std::string>{"m2"});
}

TEST_F(QueueResourceTest, TwoBranchesNeverDequeueTheSameMessage) {
  Committed("q", {"m1", "m2"});
  EXPECT_EQ(Take(a_, "q"), "m1");
  EXPECT_EQ(Take(b_, "q"), "m2");  // a's claim holds m1
  EXPECT_EQ(Take(MakeTxId(1, 3), "q"), std::nullopt);
  ASSERT_OK(Rollback(MakeTxId(1, 3)));
  ASSERT_OK(Rollback(a_));
  EXPECT_EQ(Take(MakeTxId(1, 4), "q"), "m1");
}

TEST_F(QueueResourceTest, ConcurrentConsumersTakeEachMessageExactlyOnce) {
  constexpr int kMessages = 200;
  std::vector<std::string> payloads;
  for (int i = 0; i < kMessages; ++i) payloads.push_back("m" + std::to_string(i));
  Committed("q", payloads);

  // Four consumers, each dequeuing two messages per branch; every third
  // branch rolls back, putting its messages back for someone else.
  std::mutex mu;
  std::multiset<std::string> taken;
  std::vector<std::thread> consumers;
  for (int c = 0; c < 4; ++c) {
    consumers.emplace_back([&, c] {
      for (int64_t n = 1; n < 10 * kMessages; ++n) {
        TxId t = MakeTxId(100 + c, n);
        std::promise<ExecuteResult> p;
        auto f = p.get_future();
        rm_->Execute(t, {Dequeue("q"), Dequeue("q")},
                     [&p](ExecuteResult r) { p.set_value(std::move(r)); });
        ExecuteResult r = Wait(std::move(f));
        if (!r.status.ok()) {
          ADD_FAILURE() << r.status.ToString();
          return;
        }
        std::vector<std::string> got;
        for (const auto& rs : r.results) {
          if (!rs.rows.empty()) got.push_back(rs.rows[0].values[1].s);
        }
        bool keep = !got.empty() && n % 3 != 0;
        std::promise<Status> d;
        auto df = d.get_future();
        auto cb = [&d](Status s) { d.set_value(std::move(s)); };
        if (keep) {
          rm_->Commit(t, cb);
        } else {
          rm_->Rollback(t, cb);
        }
        Status s = Wait(std::move(df));
        if (!s.ok()) {
          ADD_FAILURE() << s.ToString();
          return;
        }
        if (got.empty()) return;  // the queue is drained
        if (keep) {
          std::lock_guard<std::mutex> l(mu);
          taken.insert(got.begin(), got.end());
        }
      }
    });
  }
  for (auto& t : consumers) t.join();
  EXPECT_EQ(taken.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(std::set<std::string>(taken.begin(), taken.end()),
            std::set<std::string>(payloads.begin(), payloads.end()));
  EXPECT_EQ(CountOf("q"), 0);
}

TEST_F(QueueResourceTest, FifoInCommitOrder) {
  ASSERT_OK(Execute(a_, {Enqueue("q", "a1"), Enqueue("q", "a2")}).status);
  ASSERT_OK(Execute(b_, {Enqueue("q", "b1")}).status);
  ASSERT_OK(Execute(a_, {Enqueue("q", "a3")}).status);
  ASSERT_OK(Prepare(b_));
  ASSERT_OK(Commit(b_));  // b commits first: its message goes first
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(Commit(a_));
  Committed("q", {"c1", "c2"});
  Committed("other", {"x"});
  EXPECT_EQ(Drain("q"), (std::vector<std::string>{"b1", "a1", "a2", "a3", "c1", "c2"}));
  EXPECT_EQ(Drain("other"), std::vector<std::string>{"x"});
}

TEST_F(QueueResourceTest, PreparedBranchSurvivesReopenAndCommits) {
  Committed("q", {"m1", "m2"});
  PrepareInfo info;
  info.participants = {testing::Participant("shop", "127.0.0.1:7001"),
                       testing::Participant("outbox", "127.0.0.1:7002")};
  info.protocol = proto::Protocol::THREE_PC;
  EXPECT_EQ(Take(a_, "q"), "m1");
  ASSERT_OK(Execute(a_, {Enqueue("q", "m3")}).status);
  ASSERT_OK(Prepare(a_, info));
  EXPECT_OK(Prepare(a_, info));  // idempotent

  auto recovered = Open();  // restart
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].txid, a_);
  EXPECT_EQ(recovered[0].state, BranchState::kPrepared);
  EXPECT_EQ(recovered[0].info.participants, info.participants);
  EXPECT_EQ(recovered[0].info.protocol, proto::Protocol::THREE_PC);

  // Its claim is held again, its enqueue still pending.
  EXPECT_EQ(CountOf("q"), 1);
  EXPECT_EQ(Take(b_, "q"), "m2");
  ASSERT_OK(Rollback(b_));
  // A prepared branch takes no more statements.
  EXPECT_EQ(Execute(a_, {Count("q")}).status.code(), Status::kInvalidArgument);

  ASSERT_OK(Commit(a_));
  EXPECT_TRUE(Open().empty());
  EXPECT_EQ(Drain("q"), (std::vector<std::string>{"m2", "m3"}));
}

TEST_F(QueueResourceTest, ActiveBranchIsRecoveredAsActiveAndItsRollbackReleasesItsClaims) {
  Committed("q", {"m1"});
  EXPECT_EQ(Take(a_, "q"), "m1");
  ASSERT_OK(Execute(a_, {Enqueue("q", "m2")}).status);

  auto recovered = Open();  // restart
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].txid, a_);
  EXPECT_EQ(recovered[0].state, BranchState::kActive);
  // Until the agent rolls it back, its claim holds.
  EXPECT_EQ(CountOf("q"), 0);
  // What the agent does with a recovered ACTIVE branch (BranchCore::OnRecovered).
  ASSERT_OK(Rollback(a_));
  EXPECT_TRUE(Open().empty());
  EXPECT_EQ(Drain("q"), std::vector<std::string>{"m1"});
}

TEST_F(QueueResourceTest, CommitAndRollbackAreIdempotent) {
  Committed("q", {"m1"});
  EXPECT_EQ(Take(a_, "q"), "m1");
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(Commit(a_));
  EXPECT_OK(Commit(a_));
  // A branch that committed a dequeue cannot be rolled back: a final refusal.
  EXPECT_EQ(Rollback(a_).code(), Status::kInvalidArgument);

  ASSERT_OK(Execute(b_, {Enqueue("q", "m2")}).status);
  ASSERT_OK(Rollback(b_));
  EXPECT_OK(Rollback(b_));
  EXPECT_EQ(Commit(b_).code(), Status::kAborted);
  EXPECT_EQ(CountOf("q"), 0);

  // A read-only branch released at PREPARE: rolling it back later is a no-op.
  TxId c = MakeTxId(1, 3);
  ExecuteResult r = ExecuteAndPrepare(c, {Count("q"), Dequeue("q")});
  ASSERT_OK(r.status);
  EXPECT_FALSE(r.wrote);
  ASSERT_OK(Commit(c));
  EXPECT_OK(Rollback(c));
}

TEST_F(QueueResourceTest, RollbackOfUnknownTxidLeavesATombstone) {
  TxId ghost = MakeTxId(5, 55);
  ASSERT_OK(Rollback(ghost));
  EXPECT_EQ(Sql("SELECT state FROM txc_branches WHERE txid = '5.55'"),
            static_cast<int>(BranchState::kAborted));
  // A late statement or prepare of the aborted transaction is refused.
  ExecuteResult r = Execute(ghost, {Enqueue("q", "late")});
  EXPECT_EQ(r.status.code(), Status::kAborted);
  EXPECT_THAT(r.status.message(), HasSubstr("5.55"));
  EXPECT_EQ(Prepare(ghost).code(), Status::kAborted);
  EXPECT_EQ(CountOf("q"), 0);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM txc_messages"), 0);
  // Prepare and commit of a branch never seen say so.
  EXPECT_EQ(Prepare(MakeTxId(5, 56)).code(), Status::kNotFound);
  EXPECT_EQ(Commit(MakeTxId(5, 56)).code(), Status::kNotFound);
}

// max_result_bytes bounds what one Execute returns: DEQUEUEs whose payloads
// together pass it fail with INVALID_ARGUMENT naming the limit, and nothing
// of that call is applied (no message stays claimed).
TEST_F(QueueResourceTest, DequeuesPastTheResultLimitAreRefusedAndClaimNothing) {
  Open({.max_result_bytes = 250});
  Committed("q", {std::string(100, 'a'), std::string(100, 'b'), std::string(100, 'c')});
  const TxId t = MakeTxId(5, 1);
  ExecuteResult r = Execute(t, {Dequeue("q"), Dequeue("q"), Dequeue("q")});
  EXPECT_EQ(r.status.code(), Status::kInvalidArgument) << r.status.ToString();
  EXPECT_THAT(r.status.message(), HasSubstr("passed 250 bytes (the resource's limit per call) at "
                                            "statement 3"));
  EXPECT_EQ(CountOf("q"), 3);
  // Fewer per call go through, in order; the branch that was refused still works.
  EXPECT_EQ(Take(t, "q"), std::string(100, 'a'));
  ASSERT_OK(Commit(t));
  EXPECT_EQ(Drain("q"), (std::vector<std::string>{std::string(100, 'b'), std::string(100, 'c')}));
}

TEST_F(QueueResourceTest, BadCommandsAndParamsGetClearErrors) {
  Open({.max_payload_bytes = 16});
  struct Case {
    proto::Statement st;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {Cmd("SELECT 1", {}), "unknown command \"SELECT 1\""},
           {Cmd("", {}), "ENQUEUE [queue, payload], DEQUEUE [queue] or COUNT [queue]"},
           {Cmd("PUSH", {S("q"), S("x")}), "unknown command \"PUSH\""},
           {Cmd("ENQUEUE", {S("q")}), "ENQUEUE takes 2 parameters [queue, payload], got 1"},
           {Cmd("DEQUEUE", {S("q"), S("x")}), "DEQUEUE takes 1 parameter [queue], got 2"},
           {Cmd("COUNT", {}), "COUNT takes 1 parameter [queue], got 0"},
           {Cmd("ENQUEUE", {I(7), S("x")}), "parameter 1 (queue) must be text, got an integer"},
           {Cmd("DEQUEUE", {B("q")}), "parameter 1 (queue) must be text, got a blob"},
           {Cmd("COUNT", {proto::Value()}), "parameter 1 (queue) must be text, got NULL"},
           {Cmd("COUNT", {S("")}), "queue name must be 1-128 bytes, got 0"},
           {Cmd("COUNT", {S(std::string(129, 'q'))}), "queue name must be 1-128 bytes, got 129"},
           {Cmd("ENQUEUE", {S("q"), I(1)}), "parameter 2 (payload) must be text or a blob, got an integer"},
           {Cmd("ENQUEUE", {S("q"), proto::Value()}), "must be text or a blob, got NULL"},
           {Cmd("ENQUEUE", {S("q"), S(std::string(17, 'x'))}),
            "payload is 17 bytes; this queue resource takes at most 16"},
       }) {
    // The bad statement comes second: nothing of the call is applied.
    ExecuteResult r = Execute(a_, {Enqueue("q", "ok"), c.st});
    EXPECT_EQ(r.status.code(), Status::kSqlError) << c.says << ": " << r.status.ToString();
    EXPECT_THAT(r.status.message(), HasSubstr("outbox: ")) << c.says;
    EXPECT_THAT(r.status.message(), HasSubstr(c.says));
    EXPECT_THAT(r.status.message(), HasSubstr("(statement 2")) << c.says;
    EXPECT_TRUE(r.results.empty());
  }
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM txc_messages"), 0);
  // A failed call keeps the branch's earlier work.
  ASSERT_OK(Execute(a_, {Enqueue("q", "first")}).status);
  EXPECT_EQ(Execute(a_, {Cmd("POP", {S("q")})}).status.code(), Status::kSqlError);
  ASSERT_OK(Prepare(a_));
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Drain("q"), std::vector<std::string>{"first"});
  // 128 bytes is a valid name; the payload limit is inclusive.
  Committed(std::string(128, 'q'), {std::string(16, 'x')});
  EXPECT_EQ(CountOf(std::string(128, 'q')), 1);
}

TEST_F(QueueResourceTest, CommandsAreCaseInsensitiveAndPayloadsKeepTheirType) {
  std::string binary("a\0b\xff", 4);
  ASSERT_OK(Execute(a_, {Cmd("enqueue", {S("q"), S("text")}), Cmd(" Enqueue ", {S("q"), B(binary)})})
                .status);
  ASSERT_OK(Commit(a_));
  ExecuteResult r = Execute(b_, {Cmd("count", {S("q")}), Cmd("dequeue", {S("q")}),
                                 Cmd("DeQueue;", {S("q")})});
  ASSERT_OK(r.status);
  ASSERT_EQ(r.results.size(), 3u);
  EXPECT_EQ(r.results[0].columns, std::vector<std::string>{"n"});
  EXPECT_EQ(r.results[0].rows[0].values[0].i, 2);
  EXPECT_EQ(r.results[0].rows_changed, 0);
  ASSERT_EQ(r.results[1].rows.size(), 1u);
  EXPECT_TRUE(r.results[1].rows[0].values[1].__isset.s);
  EXPECT_EQ(r.results[1].rows[0].values[1].s, "text");
  ASSERT_EQ(r.results[2].rows.size(), 1u);
  EXPECT_TRUE(r.results[2].rows[0].values[1].__isset.b);
  EXPECT_EQ(r.results[2].rows[0].values[1].b, binary);
  EXPECT_LT(r.results[1].rows[0].values[0].i, r.results[2].rows[0].values[0].i);
}

TEST_F(QueueResourceTest, ExpectRowsChecksDequeue) {
  ExecuteResult r = Execute(a_, {Cmd("DEQUEUE", {S("q")}, 1)});
  EXPECT_EQ(r.status.code(), Status::kExpectationFailed);
  EXPECT_THAT(r.status.message(), HasSubstr("changed 0 rows, expected 1"));
  Committed("q", {"m1"});
  r = Execute(a_, {Cmd("DEQUEUE", {S("q")}, 1), Cmd("ENQUEUE", {S("q"), S("m2")}, 1)});
  ASSERT_OK(r.status);
  EXPECT_EQ(r.results[0].rows[0].values[1].s, "m1");
  EXPECT_EQ(Execute(b_, {Cmd("COUNT", {S("q")}, 1)}).status.code(), Status::kExpectationFailed);
}

TEST_F(QueueResourceTest, CountOnlyBranchDidNotWrite) {
  Committed("q", {"m1"});
  ExecuteResult r = Execute(a_, {Count("q")});
  ASSERT_OK(r.status);
  EXPECT_FALSE(r.wrote);
  r = Execute(a_, {Dequeue("q")});
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.wrote);
  ASSERT_OK(Rollback(a_));
}

TEST_F(QueueResourceTest, ExecuteAndPrepareIsOneDurableStep) {
  Committed("q", {"m1"});
  uint64_t syncs = rm_->syncs();
  ExecuteResult r = ExecuteAndPrepare(a_, {Dequeue("q"), Enqueue("q", "m2")});
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.wrote);
  EXPECT_EQ(rm_->syncs(), syncs + 1);
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].state, BranchState::kPrepared);
  // A failing one-shot applies nothing and prepares nothing.
  ExecuteResult bad = ExecuteAndPrepare(b_, {Enqueue("q", "x"), Cmd("DEQUEUE", {S("q")}, 1)});
  EXPECT_EQ(bad.status.code(), Status::kExpectationFailed);
  EXPECT_EQ(Open().size(), 1u);
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Drain("q"), std::vector<std::string>{"m2"});
}

TEST_F(QueueResourceTest, PreparesQueuedTogetherShareSyncsAndAllAreDurable) {
  constexpr int kBranches = 50;
  for (int i = 0; i < kBranches; ++i) {
    ASSERT_OK(Execute(MakeTxId(2, i + 1), {Enqueue("q", "m" + std::to_string(i))}).status);
  }
  uint64_t syncs = rm_->syncs();
  std::vector<std::promise<Status>> done(kBranches);
  for (int i = 0; i < kBranches; ++i) {
    rm_->Prepare(MakeTxId(2, i + 1), {}, [&done, i](Status s) { done[i].set_value(std::move(s)); });
  }
  for (auto& d : done) EXPECT_OK(Wait(d.get_future()));
  // Queued faster than one fsync takes: the worker groups them.
  EXPECT_LT(rm_->syncs() - syncs, static_cast<uint64_t>(kBranches));
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), static_cast<size_t>(kBranches));
  for (const RecoveredBranch& b : recovered) EXPECT_EQ(b.state, BranchState::kPrepared);
}

TEST_F(QueueResourceTest, PreparedBranchSurvivesAKilledProcess) {
  Committed("q", {"m1"});
  rm_.reset();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child prepares, then dies at once: no destructor, no clean close.
    auto r = QueueResource::Open("outbox", path_);
    if (!r.ok()) _exit(2);
    std::promise<ExecuteResult> e;
    (*r)->Execute(a_, {Dequeue("q"), Enqueue("q", "m2")}, [&e](ExecuteResult x) { e.set_value(x); });
    if (!e.get_future().get().status.ok()) _exit(3);
    std::promise<Status> p;
    (*r)->Prepare(a_, {}, [&p](Status s) { p.set_value(s); });
    if (!p.get_future().get().ok()) _exit(4);
    kill(getpid(), SIGKILL);
    _exit(5);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].txid, a_);
  EXPECT_EQ(recovered[0].state, BranchState::kPrepared);
  EXPECT_EQ(CountOf("q"), 0);  // m1 claimed, m2 pending
  ASSERT_OK(Commit(a_));
  EXPECT_EQ(Drain("q"), std::vector<std::string>{"m2"});
}

TEST_F(QueueResourceTest, StorageFailureIsSticky) {
  ASSERT_OK(Execute(a_, {Enqueue("q", "m1")}).status);
  rm_->InjectFailureForTest();
  Status s = Prepare(a_);
  EXPECT_EQ(s.code(), Status::kStorageFailed);
  EXPECT_THAT(s.message(), HasSubstr("disk full"));
  ExecuteResult r = Execute(b_, {Count("q")});
  EXPECT_EQ(r.status.code(), Status::kStorageFailed);
  EXPECT_THAT(r.status.message(), HasSubstr("until restarted"));
  // After a restart the branch is still ACTIVE (its prepare never committed).
  auto recovered = Open();
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].state, BranchState::kActive);
}

TEST_F(QueueResourceTest, MakeResourceBuildsAQueue) {
  rm_.reset();
  auto r = MakeResource("outbox=queue:" + path_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->name(), "outbox");
  auto empty = MakeResource("outbox=queue:");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), Status::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("empty queue file path"));
  auto bad = MakeResource("outbox=queue:" + dir_ + "/no/such/dir/q.db");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("no/such/dir/q.db"));
}

}  // namespace
}  // namespace txc::participant
