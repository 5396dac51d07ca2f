// txadmin wal dump: an offline read of a write-ahead log, of these kinds:
//   - an agent's branch log: the resource's SQLite database file with its
//     txc_branches and txc_changes tables (participant/sqlite_branch_log.h);
//   - an agent's WAL of a database resource (PostgreSQL, MariaDB): the file
//     DATA/NAME.xa.db with its xa_branches, xa_statements and xa_heuristics
//     tables (participant/xa_resource.h), per branch its gid, state, the
//     statements it ran (their SQL text and parameter count);
//   - a coordinator replica's log (wal/log_store.h): DIR/paxos.log, whose
//     records are Paxos entries (protocol/paxos.thrift Entry) holding command
//     batches, or DIR/coord.log of a single replica, whose records are the
//     command batches themselves (proto::CommandBatch).
// Records are decoded with the decoders the processes use (common/codec.h,
// the branch log's own).
//
// Safe on the file of a running process: it is opened read-only
// (SQLITE_OPEN_READONLY) with a short busy timeout, and read in one read
// transaction, so no lock is held longer than that read; in WAL mode the
// writer is never blocked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/txid.h"
#include "paxos_types.h"
#include "tools/admin/report.h"
#include "txcoord_types.h"

namespace txc::admin {

struct WalDump {
  enum Kind { kBranchLog, kDatabaseBranchLog, kPaxosLog, kLocalLog };
  Kind kind = kBranchLog;
  std::string path;  // the file read

  // kBranchLog: one row of txc_branches, with its change sets: the first kept
  // in its own row (change 1), the later ones in txc_changes.
  // kDatabaseBranchLog: one row of xa_branches, with its rows of xa_statements.
  struct Change {
    int64_t seq = 0;
    size_t redo_bytes = 0;
    size_t undo_bytes = 0;
    int64_t keys = -1;  // lock keys taken; -1: unreadable
  };
  // kDatabaseBranchLog: one statement of one xa_statements row (one Execute).
  struct Statement {
    int64_t seq = 0;     // the row's seq: the branch's Execute calls, in order
    std::string sql;     // empty with `error`
    size_t params = 0;
    std::optional<int64_t> expect_rows;
    std::string error;   // non-empty: the row could not be decoded (one entry for it)
  };
  struct Branch {
    std::string txid;
    int state = 0;  // participant::BranchState; kDatabaseBranchLog: xa_resource.cc's XaState
    std::string gid;                  // kDatabaseBranchLog: the database's transaction name
    std::optional<int> protocol;      // once prepared
    std::vector<proto::Participant> participants;  // once prepared
    bool participants_unreadable = false;
    int64_t updated_ms = 0;  // Unix ms of the last state change
    std::vector<Change> changes;        // kBranchLog
    std::vector<Statement> statements;  // kDatabaseBranchLog, in seq order
  };
  std::vector<Branch> branches;  // oldest txid first
  // kBranchLog: heuristic decisions (txc_heuristics; absent in older logs).
  // kDatabaseBranchLog: xa_heuristics, including branches the database ended
  // behind txcoord's back (outcome "unknown", who "database").
  struct Heuristic {
    std::string txid;
    std::string outcome;  // "committed" / "aborted" / "unknown"
    std::string reason, who;
    int64_t at_ms = 0;
  };
  std::vector<Heuristic> heuristics;

  // kPaxosLog, kLocalLog: one record per slot.
  struct Record {
    uint64_t index = 0;
    std::optional<paxos::wire::Ballot> ballot;  // kPaxosLog: the accepted ballot
    std::vector<proto::Command> commands;
    std::string error;  // non-empty: the record could not be decoded
  };
  std::vector<Record> records;
  // The log's metadata, printable: epoch (single replica), promised ballot,
  // joining mark, snapshot index (Paxos); kBranchLog: its layout.
  std::vector<std::pair<std::string, std::string>> meta;
  struct Snapshot {
    int64_t index = 0;
    int32_t version = 0;
    size_t command_count = 0;
    std::vector<proto::Command> commands;  // with --txid: those of that txid
    size_t forgotten_epochs = 0;
    std::optional<std::string> lost_through;
    std::string forgotten_outcome;  // with --txid: its outcome in the forgotten runs, if any
    std::string error;
  };
  std::optional<Snapshot> snapshot;
};

// Reads the log at `path` (a file, or a coordinator's data directory holding
// paxos.log or coord.log). With `txid`, only that transaction's branch or
// commands. Errors say what to give instead.
Result<WalDump> ReadWal(const std::string& path, const std::optional<TxId>& txid);

Json WalJson(const WalDump& d);
std::string WalText(const WalDump& d);
// One command as JSON and as a line of text.
Json CommandJson(const proto::Command& c);
std::string CommandText(const proto::Command& c);

}  // namespace txc::admin
