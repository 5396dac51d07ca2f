#include "participant/layout_stamp.h"

namespace txc::participant::internal {

Result<int64_t> CheckLayoutStamp(wal::Db& db, const LayoutStamp& stamp) {
  auto read = wal::ReadLayoutStamp(db, stamp.table, stamp.key);
  if (!read.ok()) return read.status();
  const int64_t found = read->value_or(0);
  if (found == stamp.layout) return found;
  if (found > stamp.layout) {
    // A newer version wrote this file. Its live branches may keep what this
    // code would not read (their undo, their lock keys, their intents):
    // recovering them here could commit without locks or roll back without
    // undo.
    const std::string newer = std::string(stamp.file) + " was laid out by a newer version (" +
                              std::string(stamp.key) + " " + std::to_string(found) +
                              "; this one writes " + std::to_string(stamp.layout) + ")";
    int64_t live = 0;
    auto q = db.Prepare(stamp.live_sql);
    auto row = q.ok() ? (*q)->Step() : Result<bool>(q.status());
    if (!row.ok()) {
      return Status::InvalidArgument(newer + " and cannot be read here: " + row.status().message());
    }
    if (*row) live = (*q)->ColumnInt(0);
    if (live > 0) {
      return Status::InvalidArgument(
          newer + " and has " + std::to_string(live) +
          " branch(es) that have not ended, which this version could misread: run the newer "
          "txagent until `txadmin agent HOST:PORT branches --in-doubt` shows none, then this one");
    }
  }
  TXC_RETURN_IF_ERROR(wal::WriteLayoutStamp(db, stamp.table, stamp.key, stamp.layout));
  return found;
}

}  // namespace txc::participant::internal
