#include "wal/log_store.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/core_harness.h"

namespace txc::wal {
namespace {

using ::testing::HasSubstr;

class LogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/log_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/log.db";
    io_thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    store_.reset();
    work_.reset();
    io_thread_.join();
    std::filesystem::remove_all(dir_);
  }

  void Open(LogStoreOptions options = {}) {
    store_.reset();
    auto s = LogStore::Open(path_, io_.get_executor(), options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  // Waits for a completion (it runs on the io thread).
  static Status Wait(std::future<Status>& f) {
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      return Status::Timeout("completion never came");
    }
    return f.get();
  }
  Status AppendSync(std::vector<LogRecord> records) {
    auto p = std::make_shared<std::promise<Status>>();
    auto f = p->get_future();
    store_->Append(std::move(records), [p](Status s) { p->set_value(std::move(s)); });
    return Wait(f);
  }
  Status PutMetaSync(const std::string& k, std::string v) {
    auto p = std::make_shared<std::promise<Status>>();
    auto f = p->get_future();
    store_->PutMeta(k, std::move(v), [p](Status s) { p->set_value(std::move(s)); });
    return Wait(f);
  }
  Status TruncateSync(uint64_t upto) {
    auto p = std::make_shared<std::promise<Status>>();
    auto f = p->get_future();
    store_->TruncatePrefix(upto, [p](Status s) { p->set_value(std::move(s)); });
    return Wait(f);
  }
  std::vector<LogRecord> ReadAll() {
    auto r = store_->ReadFrom(0);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<LogRecord>{};
  }

  std::string dir_;
  std::string path_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread io_thread_;
  std::unique_ptr<LogStore> store_;
};

TEST_F(LogStoreTest, AppendedRecordsReadBackAfterReopen) {
  Open();
  EXPECT_EQ(store_->LastIndex(), 0u);
  ASSERT_OK(AppendSync({{1, "one"}, {2, std::string("t\0o", 3)}}));
  ASSERT_OK(AppendSync({{3, "three"}}));
  Open();  // closes and reopens the file
  EXPECT_EQ(store_->LastIndex(), 3u);
  auto all = ReadAll();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].index, 1u);
  EXPECT_EQ(all[0].data, "one");
  EXPECT_EQ(all[1].data, std::string("t\0o", 3));
  EXPECT_EQ(all[2].data, "three");
  auto tail = store_->ReadFrom(2);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ((*tail)[0].index, 2u);
}

TEST_F(LogStoreTest, AppendWithExistingIndexReplacesTheRecord) {
  Open();
  ASSERT_OK(AppendSync({{5, "ballot 1"}}));
  ASSERT_OK(AppendSync({{5, "ballot 2"}}));
  auto all = ReadAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].data, "ballot 2");
}

TEST_F(LogStoreTest, MetaIsDurableAndOverwritable) {
  Open();
  auto missing = store_->GetMeta("promised");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_OK(PutMetaSync("promised", "7.1"));
  ASSERT_OK(PutMetaSync("promised", "8.2"));
  ASSERT_OK(PutMetaSync("epoch", std::string("\0\1", 2)));
  Open();
  auto v = store_->GetMeta("promised");
  ASSERT_TRUE(v.ok());
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ(**v, "8.2");
  auto e = store_->GetMeta("epoch");
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_EQ(**e, std::string("\0\1", 2));
}

// A value of 256 KiB or more (a snapshot image) goes into a zero-filled row
// a chunk at a time: the same bytes come back, after a reopen, whether it
// replaces a small value, a large one, or is replaced by a small one.
TEST_F(LogStoreTest, LargeMetaIsWrittenInChunksAndReadsBackWhole) {
  Open();
  auto image = [](size_t n, char seed) {
    std::string v(n, '\0');
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>(seed + i * 131 + (i >> 20));
    return v;
  };
  const std::string big = image((3u << 20) + 12345, 7);  // past three 1 MiB chunks
  const std::string edge = image(256u << 10, 3);         // exactly the threshold
  ASSERT_OK(PutMetaSync("snapshot", "small first"));
  ASSERT_OK(PutMetaSync("snapshot", big));
  ASSERT_OK(PutMetaSync("edge", edge));
  Open();
  auto v = store_->GetMeta("snapshot");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_TRUE(**v == big) << "size " << (*v)->size();
  auto e = store_->GetMeta("edge");
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_TRUE(**e == edge);
  ASSERT_OK(PutMetaSync("snapshot", image(1u << 20, 9)));
  ASSERT_OK(PutMetaSync("edge", "small again"));
  Open();
  v = store_->GetMeta("snapshot");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_TRUE(**v == image(1u << 20, 9));
  e = store_->GetMeta("edge");
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_EQ(**e, "small again");
}

TEST_F(LogStoreTest, TruncatePrefixDropsOldRecordsOnly) {
  Open();
  ASSERT_OK(AppendSync({{1, "a"}, {2, "b"}, {3, "c"}, {4, "d"}}));
  ASSERT_OK(TruncateSync(2));
  auto all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].index, 3u);
  EXPECT_EQ(store_->LastIndex(), 4u);
  ASSERT_OK(TruncateSync(UINT64_MAX));
  EXPECT_TRUE(ReadAll().empty());
}

// A long truncation is deleted truncate_chunk records per group, lowest
// first, in the groups that follow; records above the target stay, and so do
// the ones written meanwhile.
TEST_F(LogStoreTest, LongTruncationIsDeletedAChunkPerGroup) {
  LogStoreOptions o;
  o.truncate_chunk = 3;
  Open(o);
  std::vector<LogRecord> recs;
  for (uint64_t i = 1; i <= 10; ++i) recs.push_back({i, "r" + std::to_string(i)});
  ASSERT_OK(AppendSync(recs));
  ASSERT_OK(TruncateSync(8));
  auto all = ReadAll();
  ASSERT_EQ(all.size(), 7u);  // 1..3 went with the truncation's own group
  EXPECT_EQ(all.front().index, 4u);
  ASSERT_OK(AppendSync({{11, "r11"}}));  // 4..6
  ASSERT_EQ(ReadAll().front().index, 7u);
  ASSERT_OK(AppendSync({{12, "r12"}}));  // 7..8: done
  all = ReadAll();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().index, 9u);
  EXPECT_EQ(all.back().index, 12u);
  ASSERT_OK(AppendSync({{13, "r13"}}));  // nothing left to delete
  EXPECT_EQ(ReadAll().size(), 5u);
  // A snapshot's truncation in a batch starts with its group too.
  LogStore::Batch b;
  b.metas = {{"snapshot_index", "12"}};
  b.truncate_upto = 12;
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  store_->Write(std::move(b), [p](Status s) { p->set_value(std::move(s)); });
  ASSERT_OK(Wait(f));
  EXPECT_EQ(ReadAll().front().index, 12u);
  ASSERT_OK(AppendSync({{14, "r14"}}));
  all = ReadAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.front().index, 13u);
}

// A truncation frees the records' pages without writing them again: with
// SQLite's SECURE_DELETE (on in Debian's build) each freed page was zeroed
// through the WAL, so deleting 7 MB of records wrote 7 MB more and synced it
// while the accepts queued behind it waited.
TEST_F(LogStoreTest, TruncationDoesNotRewriteTheFreedPages) {
  Open();
  const std::string wal = path_ + "-wal";
  // 600 records of 12 KiB (each with overflow pages), 10 per group: the WAL
  // is checkpointed and restarted as it goes (SQLite's 1,000-page default),
  // so its file stays near 4 MB.
  for (uint64_t i = 0; i < 60; ++i) {
    std::vector<LogRecord> recs;
    for (uint64_t j = 1; j <= 10; ++j) {
      recs.push_back({i * 10 + j, std::string(12 << 10, static_cast<char>('a' + j))});
    }
    ASSERT_OK(AppendSync(std::move(recs)));
  }
  const auto before = std::filesystem::file_size(wal);
  ASSERT_OK(TruncateSync(600));  // one group: 600 < truncate_chunk
  EXPECT_TRUE(ReadAll().empty());
  const auto after = std::filesystem::file_size(wal);
  // Zeroing the ~1,800 freed pages in one transaction would grow the WAL
  // past 7 MB; freeing them touches a few B-tree and freelist pages.
  EXPECT_LT(after, before + (size_t{1} << 20)) << "WAL " << before << " -> " << after << " bytes";
  ASSERT_OK(AppendSync({{601, "next"}}));
  ASSERT_EQ(ReadAll().size(), 1u);
}

TEST_F(LogStoreTest, IndexZeroIsRejectedWithoutFailingTheStore) {
  Open();
  Status s = AppendSync({{0, "bad"}});
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_FALSE(store_->failed());
  ASSERT_OK(AppendSync({{1, "good"}}));
}

TEST_F(LogStoreTest, ConcurrentAppendsAreGroupedAndCompleteInOrder) {
  Open();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::atomic<uint64_t> next_index{1};
  std::mutex mu;  // submission order == index order, so completions must be sorted
  std::vector<uint64_t> completed;
  std::atomic<int> failures{0};
  auto all_done = std::make_shared<std::promise<void>>();
  std::atomic<int> remaining{kThreads * kPerThread};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        std::lock_guard<std::mutex> l(mu);
        uint64_t idx = next_index++;
        store_->Append({{idx, "record " + std::to_string(idx)}}, [&, idx, all_done](Status s) {
          if (!s.ok()) failures++;
          completed.push_back(idx);  // completions run on the one io thread
          if (--remaining == 0) all_done->set_value();
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(all_done->get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(failures.load(), 0);
  ASSERT_EQ(completed.size(), static_cast<size_t>(kThreads * kPerThread));
  for (size_t i = 0; i < completed.size(); ++i) ASSERT_EQ(completed[i], i + 1) << "out of order";
  EXPECT_EQ(store_->records_written(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_LT(store_->groups_written(), store_->records_written());
  std::printf("[ info     ] %d appends in %llu groups\n", kThreads * kPerThread,
              static_cast<unsigned long long>(store_->groups_written()));
  EXPECT_EQ(ReadAll().size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_F(LogStoreTest, MaxGroupRecordsBoundsAGroup) {
  LogStoreOptions o;
  o.max_group_records = 2;
  Open(o);
  std::vector<std::future<Status>> fs;
  for (uint64_t i = 1; i <= 10; ++i) {
    auto p = std::make_shared<std::promise<Status>>();
    fs.push_back(p->get_future());
    store_->Append({{i, "x"}}, [p](Status s) { p->set_value(std::move(s)); });
  }
  for (auto& f : fs) ASSERT_OK(Wait(f));
  EXPECT_GE(store_->groups_written(), 5u);
}

TEST_F(LogStoreTest, FailureIsStickyAfterInjectedSyncError) {
  Open();
  ASSERT_OK(AppendSync({{1, "before"}}));
  store_->InjectFailureForTest();
  Status s = AppendSync({{2, "lost"}});
  EXPECT_EQ(s.code(), Status::kStorageFailed);
  EXPECT_TRUE(store_->failed());
  Status later = AppendSync({{3, "refused"}});
  EXPECT_EQ(later.code(), Status::kStorageFailed);
  EXPECT_THAT(later.message(), HasSubstr("refuses writes"));
  EXPECT_EQ(PutMetaSync("k", "v").code(), Status::kStorageFailed);
  EXPECT_EQ(TruncateSync(1).code(), Status::kStorageFailed);
  Open();  // a restart clears the failure; only the record before it is there
  auto all = ReadAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].data, "before");
  EXPECT_FALSE(store_->failed());
}

// A rejoined replica's mark, promise and adopted values (PaxosLog::Persist)
// and a snapshot with its index (Compact) must be durable together: a batch
// is one transaction, even past the group bound, and a failure leaves none of
// it. (Found by review: three separate writes landed in three transactions,
// so a crash could leave "joined" without the adopted values.)
TEST_F(LogStoreTest, BatchIsOneTransactionEvenPastTheGroupBound) {
  LogStoreOptions o;
  o.max_group_records = 16;
  Open(o);
  const uint64_t before = store_->groups_written();
  LogStore::Batch b;
  b.metas = {{"promised", "J"}, {"joining", "0"}};
  for (uint64_t i = 1; i <= 100; ++i) b.records.push_back({i, "adopted " + std::to_string(i)});
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  store_->Write(std::move(b), [p](Status s) { p->set_value(std::move(s)); });
  ASSERT_OK(Wait(f));
  EXPECT_EQ(store_->groups_written() - before, 1u);
  Open(o);
  EXPECT_EQ(ReadAll().size(), 100u);
  auto joining = store_->GetMeta("joining");
  ASSERT_TRUE(joining.ok() && joining->has_value());
  EXPECT_EQ(**joining, "0");
}

TEST_F(LogStoreTest, FailedBatchLeavesNoneOfItsWrites) {
  Open();
  ASSERT_OK(PutMetaSync("joining", "1"));
  ASSERT_OK(AppendSync({{1, "old"}}));
  store_->InjectFailureForTest();
  LogStore::Batch b;
  b.metas = {{"joining", "0"}, {"snapshot_index", "7"}};
  b.records = {{2, "adopted"}, {3, "adopted"}};
  b.truncate_upto = 1;
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  store_->Write(std::move(b), [p](Status s) { p->set_value(std::move(s)); });
  EXPECT_EQ(Wait(f).code(), Status::kStorageFailed);
  Open();  // the operator restarts it
  auto joining = store_->GetMeta("joining");
  ASSERT_TRUE(joining.ok() && joining->has_value());
  EXPECT_EQ(**joining, "1");
  auto snap = store_->GetMeta("snapshot_index");
  ASSERT_TRUE(snap.ok());
  EXPECT_FALSE(snap->has_value());
  auto all = ReadAll();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].data, "old");
}

TEST_F(LogStoreTest, DestructorDrainsQueuedWrites) {
  Open();
  auto count = std::make_shared<std::atomic<int>>(0);
  for (uint64_t i = 1; i <= 100; ++i) {
    store_->Append({{i, "x"}}, [count](Status s) {
      if (s.ok()) (*count)++;
    });
  }
  store_.reset();
  Open();
  EXPECT_EQ(store_->LastIndex(), 100u);
  // Completions of the drained writes still run on the executor.
  for (int i = 0; i < 100 && count->load() < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(count->load(), 100);
}

// The layout stamp (LogStoreOptions::layout_key): written when the store is
// made or met without one (or with an older one); a newer layout, or a stamp
// that is not a number, is refused at Open with nothing written.
TEST_F(LogStoreTest, ALayoutStampIsWrittenAtOpenAndANewerOneIsRefused) {
  LogStoreOptions v2;
  v2.layout_key = "test_layout";
  v2.layout = 2;
  Open(v2);
  ASSERT_OK(AppendSync({LogRecord{1, "a"}}));
  auto stamp = store_->GetMeta("test_layout");
  ASSERT_OK(stamp.status());
  EXPECT_EQ(stamp->value_or("none"), "2");

  // An older version (layout 1) refuses it, naming both layouts.
  store_.reset();
  LogStoreOptions v1 = v2;
  v1.layout = 1;
  auto older = LogStore::Open(path_, io_.get_executor(), v1);
  ASSERT_FALSE(older.ok());
  EXPECT_EQ(older.status().code(), Status::kInvalidArgument);
  EXPECT_THAT(older.status().message(),
              HasSubstr("was written by a newer version of txcoord (test_layout 2; this one reads 1)"));

  // The newer one (3) reads it, its record intact, and stamps its own.
  LogStoreOptions v3 = v2;
  v3.layout = 3;
  Open(v3);
  auto records = store_->ReadFrom(1);
  ASSERT_OK(records.status());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].data, "a");
  EXPECT_EQ(store_->GetMeta("test_layout")->value_or("none"), "3");
  // Its own layout again: nothing to write.
  Open(v3);
  EXPECT_EQ(store_->GetMeta("test_layout")->value_or("none"), "3");
}

TEST_F(LogStoreTest, AStoreFromBeforeTheStampIsStampedAndADamagedStampRefused) {
  Open();  // no layout_key: no stamp
  ASSERT_OK(AppendSync({LogRecord{1, "a"}}));
  EXPECT_FALSE(store_->GetMeta("test_layout")->has_value());
  LogStoreOptions v1;
  v1.layout_key = "test_layout";
  v1.layout = 1;
  Open(v1);
  EXPECT_EQ(store_->GetMeta("test_layout")->value_or("none"), "1");

  ASSERT_OK(PutMetaSync("test_layout", "1x"));
  store_.reset();
  auto damaged = LogStore::Open(path_, io_.get_executor(), v1);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), Status::kInvalidArgument);
  EXPECT_THAT(damaged.status().message(), HasSubstr("test_layout is not a layout number"));
}

}  // namespace
}  // namespace txc::wal
