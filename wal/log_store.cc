#include "wal/log_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <utility>

#include <boost/asio/post.hpp>

#include "common/log.h"
#include "wal/group_committer.h"
#include "wal/sqlite.h"

namespace txc::wal {

namespace {

struct Op : GroupOp {
  enum Kind { kAppend, kMeta, kTruncate, kBatch };
  Kind kind = kAppend;
  std::vector<LogRecord> records;  // kAppend, kBatch
  std::string key;                 // kMeta
  std::string value;               // kMeta
  uint64_t upto = 0;               // kTruncate
  LogStore::Batch batch;           // kBatch (its records are in `records`)
  LogStore::Done done;
  Status result;  // once its group ran

  // An op is never split across groups (transactions).
  size_t weight() const override {
    if (kind == kAppend) return std::max<size_t>(records.size(), 1);
    if (kind == kBatch) {
      return std::max<size_t>(records.size() + batch.metas.size() + batch.shared_metas.size(), 1);
    }
    return 1;
  }
};

}  // namespace

class LogStore::Impl {
 public:
  Impl(std::unique_ptr<Db> db, boost::asio::any_io_executor completions, LogStoreOptions options)
      : db_(std::move(db)), completions_(std::move(completions)), options_(options) {
    GroupCommitter::Options co;
    co.max_weight = options_.max_group_records;
    committer_ = std::make_unique<GroupCommitter>(
        co,
        [this](GroupCommitter::Group& group) {
          std::lock_guard<std::mutex> l(db_mu_);
          WriteGroup(group);
          return false;  // COMMIT synced: nothing to wait for
        },
        [this](GroupOp& g) {
          Op& op = static_cast<Op&>(g);
          if (!op.done) return;
          boost::asio::post(completions_, [done = std::move(op.done),
                                           st = std::move(op.result)]() { done(st); });
        });
  }

  // Drains queued writes (their completions still run), then stops the WAL thread.
  ~Impl() { committer_->Stop(); }

  Status Init() {
    TXC_RETURN_IF_ERROR(db_->Exec(
        "CREATE TABLE IF NOT EXISTS records(idx INTEGER PRIMARY KEY, data BLOB NOT NULL);"
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"));
    if (options_.unsafe_no_sync) {
      Logger("wal")->warn("log store opened with unsafe_no_sync: records are NOT durable path={}",
                          db_->path());
      TXC_RETURN_IF_ERROR(db_->Exec("PRAGMA synchronous=OFF"));
    } else {
      TXC_RETURN_IF_ERROR(db_->SetSynchronousFull(true));
    }
    // Debian's SQLite is built with SECURE_DELETE on: every page a delete
    // frees is overwritten with zeros, so a snapshot's truncation (tens of
    // thousands of records, their overflow pages) wrote megabytes of zeroed
    // pages into the WAL and synced them, holding up the accepts queued
    // behind it for 200-300 ms at each snapshot (docs/benchmarks.md, "A
    // snapshot no longer stalls the log"). FAST zeroes only what costs no
    // extra I/O.
    TXC_RETURN_IF_ERROR(db_->Exec("PRAGMA secure_delete=FAST"));
    auto prep = [this](std::unique_ptr<Stmt>* out, std::string_view sql) -> Status {
      auto s = db_->Prepare(sql);
      if (!s.ok()) return s.status();
      *out = std::move(*s);
      return Status::Ok();
    };
    TXC_RETURN_IF_ERROR(
        prep(&put_record_, "INSERT OR REPLACE INTO records(idx, data) VALUES(?1, ?2)"));
    TXC_RETURN_IF_ERROR(prep(&put_meta_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)"));
    TXC_RETURN_IF_ERROR(prep(&put_meta_zeros_,
                             "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, zeroblob(?2))"));
    TXC_RETURN_IF_ERROR(prep(&truncate_,
                             "DELETE FROM records WHERE idx IN "
                             "(SELECT idx FROM records WHERE idx <= ?1 ORDER BY idx LIMIT ?2)"));
    TXC_RETURN_IF_ERROR(
        prep(&read_from_, "SELECT idx, data FROM records WHERE idx >= ?1 ORDER BY idx"));
    TXC_RETURN_IF_ERROR(prep(&get_meta_, "SELECT value FROM meta WHERE key = ?1"));
    TXC_RETURN_IF_ERROR(prep(&last_index_, "SELECT COALESCE(MAX(idx), 0) FROM records"));
    TXC_RETURN_IF_ERROR(prep(&begin_, "BEGIN IMMEDIATE"));
    TXC_RETURN_IF_ERROR(prep(&commit_, "COMMIT"));
    TXC_RETURN_IF_ERROR(CheckLayout());
    committer_->Start();
    return Status::Ok();
  }

  // LogStoreOptions::layout_key. Before the WAL thread starts: the stamp is
  // written (synced, synchronous=FULL) before any record of this version.
  Status CheckLayout() {
    if (options_.layout_key.empty()) return Status::Ok();
    auto stamp = GetMeta(options_.layout_key);
    if (!stamp.ok()) return stamp.status();
    if (stamp->has_value()) {
      const std::string& text = **stamp;
      const bool number = !text.empty() && text.size() <= 18 &&
                          text.find_first_not_of("0123456789") == std::string::npos;
      if (!number) {
        return Status::InvalidArgument(
            db_->path() + ": its " + options_.layout_key +
            " is not a layout number (the file was damaged, or written by something other than "
            "txcoord): restore it from a backup");
      }
      const int64_t stamped = std::stoll(text);
      if (stamped == options_.layout) return Status::Ok();
      if (stamped > options_.layout) {
        return Status::InvalidArgument(
            db_->path() + " was written by a newer version of txcoord (" + options_.layout_key +
            " " + text + "; this one reads " + std::to_string(options_.layout) +
            "), whose records this one could misread: run the newer txcoord");
      }
    }
    Stmt& s = *put_meta_;
    s.Reset();
    TXC_RETURN_IF_ERROR(s.BindText(1, options_.layout_key));
    TXC_RETURN_IF_ERROR(s.BindBlob(2, std::to_string(options_.layout)));
    auto done = s.Step();
    s.Reset();
    return done.status();
  }

  void Enqueue(std::unique_ptr<Op> op) { committer_->Enqueue(std::move(op)); }
  bool failed() const { return committer_->failed(); }

  Result<std::vector<LogRecord>> ReadFrom(uint64_t first) {
    std::lock_guard<std::mutex> l(db_mu_);
    std::vector<LogRecord> out;
    Stmt& s = *read_from_;
    s.Reset();
    TXC_RETURN_IF_ERROR(s.BindInt(1, static_cast<int64_t>(first)));
    for (;;) {
      auto row = s.Step();
      if (!row.ok()) {
        s.Reset();
        return row.status();
      }
      if (!*row) break;
      out.push_back(LogRecord{static_cast<uint64_t>(s.ColumnInt(0)), s.ColumnBlob(1)});
    }
    s.Reset();
    return out;
  }

  Result<std::optional<std::string>> GetMeta(const std::string& key) {
    std::lock_guard<std::mutex> l(db_mu_);
    Stmt& s = *get_meta_;
    s.Reset();
    TXC_RETURN_IF_ERROR(s.BindText(1, key));
    auto row = s.Step();
    std::optional<std::string> v;
    if (row.ok() && *row) v = s.ColumnBlob(0);
    s.Reset();
    if (!row.ok()) return row.status();
    return v;
  }

  uint64_t LastIndex() {
    std::lock_guard<std::mutex> l(db_mu_);
    Stmt& s = *last_index_;
    s.Reset();
    auto row = s.Step();
    uint64_t v = 0;
    if (row.ok() && *row) {
      v = static_cast<uint64_t>(s.ColumnInt(0));
    } else if (!row.ok()) {
      Logger("wal")->error("log store LastIndex failed path={} error=\"{}\"", db_->path(),
                           row.status().ToString());
    }
    s.Reset();
    return v;
  }

  std::atomic<bool> inject_failure{false};
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> records{0};

 private:
  Status StickyError() const {
    return Status::StorageFailed("log store " + db_->path() + " failed earlier (" +
                                 committer_->fail_reason() +
                                 "); it refuses writes until restarted");
  }

  // Fails the store for good; logs the reason once.
  void Fail(const Status& why) {
    if (!committer_->Fail(why)) return;
    Logger("wal")->error("log store write failed, refusing every later write path={} error=\"{}\"",
                         db_->path(), why.ToString());
  }

  Status PutRecords(const std::vector<LogRecord>& records) {
    for (const LogRecord& r : records) {
      Stmt& s = *put_record_;
      s.Reset();
      TXC_RETURN_IF_ERROR(s.BindInt(1, static_cast<int64_t>(r.index)));
      TXC_RETURN_IF_ERROR(s.BindBlobNoCopy(2, r.data));  // r outlives the Reset below
      Status st = s.Run();
      s.Reset();
      TXC_RETURN_IF_ERROR(st);
    }
    return Status::Ok();
  }

  // Values from this size (a snapshot image) are written into a zero-filled
  // row a chunk at a time, so SQLite does not build the whole row in memory.
  static constexpr size_t kChunkedMeta = size_t{256} << 10;

  Status PutMeta(const std::string& key, const std::string& value) {
    if (value.size() >= kChunkedMeta) {
      Stmt& z = *put_meta_zeros_;
      z.Reset();
      TXC_RETURN_IF_ERROR(z.BindText(1, key));
      TXC_RETURN_IF_ERROR(z.BindInt(2, static_cast<int64_t>(value.size())));
      Status st = z.Run();
      z.Reset();
      TXC_RETURN_IF_ERROR(st);
      return db_->WriteBlob("meta", "value", db_->last_insert_rowid(), value);
    }
    Stmt& s = *put_meta_;
    s.Reset();
    TXC_RETURN_IF_ERROR(s.BindText(1, key));
    TXC_RETURN_IF_ERROR(s.BindBlobNoCopy(2, value));  // value outlives the Reset below
    Status st = s.Run();
    s.Reset();
    return st;
  }

  Status ApplyOp(Op& op) {
    switch (op.kind) {
      case Op::kBatch: {
        // (No copy of the values: every Paxos accept is such a batch, and a
        // snapshot image can be tens of MB.)
        for (const auto& [key, value] : op.batch.shared_metas) {
          if (value == nullptr) return Status::Internal("log store: no value for meta " + key);
          TXC_RETURN_IF_ERROR(PutMeta(key, *value));
        }
        for (const auto& [key, value] : op.batch.metas) TXC_RETURN_IF_ERROR(PutMeta(key, value));
        TXC_RETURN_IF_ERROR(PutRecords(op.records));
        if (!op.batch.truncate_upto) return Status::Ok();
        Op truncate;
        truncate.kind = Op::kTruncate;
        truncate.upto = *op.batch.truncate_upto;
        return ApplyOp(truncate);
      }
      case Op::kAppend:
        return PutRecords(op.records);
      case Op::kMeta:
        return PutMeta(op.key, op.value);
      case Op::kTruncate:
        // Deleted by TruncateSome, a chunk per group.
        truncate_target_ = std::max(truncate_target_, std::min<uint64_t>(op.upto, INT64_MAX));
        truncate_pending_ = true;
        return Status::Ok();
    }
    return Status::Internal("unknown log op");
  }

  // Deletes the lowest records at or below the truncation target, at most
  // truncate_chunk of them, in the group's transaction.
  Status TruncateSome() {
    if (!truncate_pending_) return Status::Ok();
    const size_t chunk = std::max<size_t>(options_.truncate_chunk, 1);
    Stmt& s = *truncate_;
    s.Reset();
    TXC_RETURN_IF_ERROR(s.BindInt(1, static_cast<int64_t>(truncate_target_)));
    TXC_RETURN_IF_ERROR(s.BindInt(2, static_cast<int64_t>(std::min<size_t>(chunk, INT64_MAX))));
    Status st = s.Run();
    s.Reset();
    TXC_RETURN_IF_ERROR(st);
    if (static_cast<size_t>(sqlite3_changes(db_->raw())) < chunk) truncate_pending_ = false;
    return Status::Ok();
  }

  static Status Validate(const Op& op) {
    if (op.kind != Op::kAppend && op.kind != Op::kBatch) return Status::Ok();
    for (const LogRecord& r : op.records) {
      if (r.index == 0 || r.index > static_cast<uint64_t>(INT64_MAX)) {
        return Status::InvalidArgument("log record index " + std::to_string(r.index) +
                                       " out of range (1..2^63-1)");
      }
    }
    return Status::Ok();
  }

  void Rollback() {
    if (!sqlite3_get_autocommit(db_->raw())) (void)db_->Exec("ROLLBACK");
  }

  // Writes the group in one transaction and one sync. Sets every op's result.
  void WriteGroup(GroupCommitter::Group& ops) {
    std::vector<Op*> group;
    for (auto& op : ops) group.push_back(static_cast<Op*>(op.get()));
    if (failed()) {
      for (Op* op : group) op->result = StickyError();
      return;
    }
    size_t n_records = 0;
    std::vector<bool> valid(group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      group[i]->result = Validate(*group[i]);
      valid[i] = group[i]->result.ok();
      if (valid[i] && (group[i]->kind == Op::kAppend || group[i]->kind == Op::kBatch)) {
        n_records += group[i]->records.size();
      }
    }
    Status st = [&]() -> Status {
      begin_->Reset();
      TXC_RETURN_IF_ERROR(begin_->Run());
      for (size_t i = 0; i < group.size(); ++i) {
        if (valid[i]) TXC_RETURN_IF_ERROR(ApplyOp(*group[i]));
      }
      TXC_RETURN_IF_ERROR(TruncateSome());
      if (inject_failure.exchange(false)) {
        return Status::StorageFailed("injected failure (test): disk full at sync");
      }
      commit_->Reset();
      Status c = commit_->Run();
      commit_->Reset();
      return c;
    }();
    if (!st.ok()) {
      Rollback();
      Fail(st);
      for (size_t i = 0; i < group.size(); ++i) {
        if (valid[i]) group[i]->result = Status::StorageFailed(st.message());
      }
      return;
    }
    groups.fetch_add(1);
    records.fetch_add(n_records);
  }

  std::unique_ptr<Db> db_;
  boost::asio::any_io_executor completions_;
  LogStoreOptions options_;

  std::unique_ptr<Stmt> put_record_, put_meta_, put_meta_zeros_, truncate_, read_from_, get_meta_,
      last_index_, begin_, commit_;

  // The truncation still to do (WAL thread): records <= target go, a chunk
  // per group, while pending.
  uint64_t truncate_target_ = 0;
  bool truncate_pending_ = false;

  std::mutex db_mu_;  // the WAL thread's group vs. start-up reads
  // Stopped first (in ~Impl), draining with every member alive.
  std::unique_ptr<GroupCommitter> committer_;
};

Result<std::unique_ptr<LogStore>> LogStore::Open(const std::string& path,
                                                 boost::asio::any_io_executor completions,
                                                 LogStoreOptions options) {
  if (options.max_group_records == 0) options.max_group_records = 1;
  // Every use of the connection is under db_mu_, or in Init before the WAL
  // thread starts.
  auto db = Db::Open(path, /*caller_serializes=*/true);
  if (!db.ok()) return db.status();
  auto impl = std::make_unique<Impl>(std::move(*db), std::move(completions), options);
  TXC_RETURN_IF_ERROR(impl->Init());
  Logger("wal")->info("log store opened path={} last_index={}", path, impl->LastIndex());
  return std::unique_ptr<LogStore>(new LogStore(std::move(impl)));
}

LogStore::LogStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LogStore::~LogStore() = default;

void LogStore::Append(std::vector<LogRecord> records, Done done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kAppend;
  op->records = std::move(records);
  op->done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void LogStore::PutMeta(const std::string& key, std::string value, Done done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kMeta;
  op->key = key;
  op->value = std::move(value);
  op->done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void LogStore::Write(Batch batch, Done done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kBatch;
  op->records = std::move(batch.records);
  op->batch = std::move(batch);
  op->done = std::move(done);
  impl_->Enqueue(std::move(op));
}

void LogStore::TruncatePrefix(uint64_t upto, Done done) {
  auto op = std::make_unique<Op>();
  op->kind = Op::kTruncate;
  op->upto = upto;
  op->done = std::move(done);
  impl_->Enqueue(std::move(op));
}

Result<std::vector<LogRecord>> LogStore::ReadFrom(uint64_t first_index) {
  return impl_->ReadFrom(first_index);
}
Result<std::optional<std::string>> LogStore::GetMeta(const std::string& key) {
  return impl_->GetMeta(key);
}
uint64_t LogStore::LastIndex() { return impl_->LastIndex(); }
bool LogStore::failed() const { return impl_->failed(); }
uint64_t LogStore::groups_written() const { return impl_->groups.load(); }
uint64_t LogStore::records_written() const { return impl_->records.load(); }
void LogStore::InjectFailureForTest() { impl_->inject_failure.store(true); }

}  // namespace txc::wal
