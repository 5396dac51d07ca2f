// LocalLog: the decision log of a single coordinator replica. A command is
// chosen once its record is durable in the LogStore (group commit).
#include "common/log.h"
#include "coordinator/decision_log.h"
#include "coordinator/txn_table.h"

namespace txc::coord {

LocalLog::LocalLog(boost::asio::io_context& io, LocalLogOptions options)
    : io_(io), options_(std::move(options)) {}

LocalLog::~LocalLog() { Stop(); }

Status LocalLog::Start(NodeCore* core, Hooks hooks) {
  hooks_ = std::move(hooks);
  wal::LogStoreOptions lo;
  lo.unsafe_no_sync = options_.unsafe_no_sync;
  lo.layout_key = "coord_log_layout";
  lo.layout = kCoordLogLayout;
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
    Status s = core->Install(applied, **snap);
    if (!s.ok()) return Status::Internal("decision log snapshot: " + s.message());
  }
  auto records = store_->ReadFrom(applied + 1);
  if (!records.ok()) return records.status();
  for (const wal::LogRecord& r : *records) {
    auto cmds = DecodeBatch(r.data);
    if (!cmds.ok()) {
      return Status::Internal("decision log record " + std::to_string(r.index) + ": " +
                              cmds.status().message());
    }
    core->Replay(r.index, *cmds);
    applied = r.index;
  }
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
    hooks_.epoch_durable(epoch_);
  });
  return Status::Ok();
}

void LocalLog::Stop() {
  stopped_ = true;
  store_.reset();
}

void LocalLog::Append(uint64_t index, std::string bytes, std::vector<proto::Command> cmds) {
  if (stopped_) return;
  if (failed_) return Fail(cmds, Status::StorageFailed("the decision log refused an earlier write"));
  Micros started = SteadyNowMicros();
  store_->Append({wal::LogRecord{index, std::move(bytes)}},
                 [this, index, started, cmds = std::move(cmds)](Status s) {
                   if (stopped_) return;
                   if (!s.ok()) return Fail(cmds, s);
                   if (options_.write_latency != nullptr) {
                     options_.write_latency->Observe(
                         static_cast<double>(SteadyNowMicros() - started) / kSeconds);
                   }
                   commit_index_ = index;
                   hooks_.durable(index, cmds);
                 });
}

void LocalLog::Compact(uint64_t index, std::shared_ptr<const std::string> image) {
  if (failed_ || stopped_) return;
  // The image, its index and the truncation in one transaction.
  wal::LogStore::Batch batch;
  batch.shared_metas = {{"snapshot", std::move(image)}};
  batch.metas = {{"snapshot_index", std::to_string(index)}};
  batch.truncate_upto = index;
  store_->Write(std::move(batch), [](Status) {});
}

void LocalLog::Fail(const std::vector<proto::Command>& cmds, const Status& s) {
  if (!failed_) {
    Logger("coord")->error("decision log write failed; refusing to decide anything until restarted: {}",
                           s.ToString());
  }
  failed_ = true;
  hooks_.failed(cmds, s);
}

}  // namespace txc::coord
