// LocalLog: the decision log of a single coordinator replica. A command is
// chosen once its record is durable in the LogStore (group commit).
#include "common/log.h"
#include "coordinator/decision_log.h"
#include "coordinator/txn_table.h"
#include "wal/log_store.h"

namespace txc::coord {

namespace {

class LocalLog : public DecisionLog {
 public:
  LocalLog(boost::asio::io_context& io, LocalLogOptions options) : io_(io), options_(std::move(options)) {}

  Status Start(LogCallbacks cb) override {
    cb_ = std::move(cb);
    wal::LogStoreOptions lo;
    lo.unsafe_no_sync = options_.unsafe_no_sync;
    auto opened = wal::LogStore::Open(options_.path, io_.get_executor(), lo);
    if (!opened.ok()) return opened.status();
    store_ = std::move(opened.value());

    uint64_t applied = 0;
    auto snap_index = store_->GetMeta("snapshot_index");
    auto snap = store_->GetMeta("snapshot");
    if (!snap_index.ok()) return snap_index.status();
    if (!snap.ok()) return snap.status();
    if (snap_index->has_value() && snap->has_value()) {
      applied = std::stoull(**snap_index);
      cb_.install(applied, **snap);
    }
    auto records = store_->ReadFrom(applied + 1);
    if (!records.ok()) return records.status();
    for (const wal::LogRecord& r : *records) {
      auto cmds = DecodeBatch(r.data);
      if (!cmds.ok()) {
        return Status::Internal("decision log record " + std::to_string(r.index) + ": " +
                                cmds.status().message());
      }
      cb_.apply(r.index, *cmds);
      applied = r.index;
    }
    next_index_ = std::max(store_->LastIndex(), applied) + 1;
    commit_index_ = applied;
    Logger("coord")->info("recovered decision log records={} applied_index={}", records->size(), applied);

    // A new epoch, durable before any txid of it is handed out, so no txid is
    // ever allocated twice across restarts.
    auto epoch = store_->GetMeta("epoch");
    if (!epoch.ok()) return epoch.status();
    epoch_ = (epoch->has_value() ? std::stoll(**epoch) : 0) + 1;
    store_->PutMeta("epoch", std::to_string(epoch_), [this](Status s) {
      if (stopped_) return;
      if (!s.ok()) return Fail({}, s);
      cb_.lead(epoch_);
    });
    return Status::Ok();
  }

  void Stop() override {
    stopped_ = true;
    store_.reset();
  }

  void Propose(std::vector<proto::Command> cmds) override {
    if (failed_) return cb_.failed(cmds, Status::StorageFailed("the decision log refused an earlier write"));
    uint64_t index = next_index_++;
    std::string bytes = EncodeBatch(cmds);
    store_->Append({wal::LogRecord{index, std::move(bytes)}},
                   [this, index, cmds = std::move(cmds)](Status s) {
                     if (stopped_) return;
                     if (!s.ok()) return Fail(cmds, s);
                     commit_index_ = index;
                     cb_.apply(index, cmds);
                   });
  }

  void Compact(uint64_t index, std::string image) override {
    if (failed_) return;
    store_->PutMeta("snapshot", std::move(image), [](Status) {});
    store_->PutMeta("snapshot_index", std::to_string(index), [](Status) {});
    store_->TruncatePrefix(index, [](Status) {});
  }

  LogInfo Info() const override {
    LogInfo i;
    i.leader_id = failed_ ? 0 : options_.self_id;
    i.leader_address = options_.self_address;
    i.epoch = epoch_;
    i.commit_index = static_cast<int64_t>(commit_index_);
    proto::ReplicaInfo self;
    self.id = options_.self_id;
    self.address = options_.self_address;
    self.reachable = true;
    self.applied_index = static_cast<int64_t>(commit_index_);
    i.replicas.push_back(self);
    i.storage_failed = failed_;
    return i;
  }

 private:
  void Fail(const std::vector<proto::Command>& cmds, const Status& s) {
    if (!failed_) {
      Logger("coord")->error("decision log write failed; refusing to decide anything until restarted: {}",
                             s.ToString());
    }
    failed_ = true;
    cb_.failed(cmds, s);
  }

  boost::asio::io_context& io_;
  LocalLogOptions options_;
  LogCallbacks cb_;
  std::unique_ptr<wal::LogStore> store_;
  uint64_t next_index_ = 1;
  uint64_t commit_index_ = 0;
  int64_t epoch_ = 0;
  bool failed_ = false;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<DecisionLog> MakeLocalLog(boost::asio::io_context& io, LocalLogOptions options) {
  return std::make_unique<LocalLog>(io, std::move(options));
}

}  // namespace txc::coord
