// Internal to the resources that keep an agent's records in SQLite
// (sqlite_branch_log.cc, xa_resource.cc): the one rule for a file's layout
// stamp. Not an interface.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "wal/sqlite.h"

namespace txc::participant::internal {

// Where a file keeps its layout and what this code writes.
struct LayoutStamp {
  std::string_view table;     // key/value table (wal::ReadLayoutStamp)
  std::string_view key;       // e.g. "branch_log_layout"
  int64_t layout;             // what this code writes
  std::string_view file;      // names the file in a refusal ("the branch log")
  std::string_view live_sql;  // counts the branches that have not ended
};

// At open, before anything else is written: a file of this layout, an older
// one or none (from before the stamps) is stamped with `layout`; one of a
// newer layout is refused (INVALID_ARGUMENT, naming `file`, the key, both
// layouts and the count) while `live_sql` counts any branch, whose records
// this code could misread, and is restamped once none is left (later layouts
// must keep what `live_sql` reads). A stamp that is not a number is refused.
// Returns the stamp found (0: none), so that a caller can say it lowered one.
Result<int64_t> CheckLayoutStamp(wal::Db& db, const LayoutStamp& stamp);

}  // namespace txc::participant::internal
