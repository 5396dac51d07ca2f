#include "participant/sqlite_branch_log.h"

#include <limits>
#include <set>
#include <utility>

#include "common/codec.h"
#include "common/log.h"
#include "participant/layout_stamp.h"

namespace txc::participant::internal {

namespace {

// Final branch rows (COMMITTED, ABORTED tombstones) are kept this long so a
// late or duplicated request still finds them, then purged by the worker.
constexpr int64_t kFinalRetentionMs = 10 * 60 * 1000;
constexpr Micros kPurgeInterval = 30 * kSeconds;
constexpr int kPurgeBatch = 10000;  // rows scanned per purge, to bound one group's time

// ------------------------------------------------------- on-disk encodings
// txc_branches.participants and txc_changes.keys hold proto::PreparedRecord
// and proto::ChangeKeysRecord (protocol/txcoord.thrift) through the codec of
// every persisted record (common/codec.h).
//
// Files written before that hold a legacy layout, still read (never
// rewritten): a u32 little-endian count, then per item a u32 little-endian
// length and the bytes; participants flattened as resource, address pairs,
// without their incarnation. A record starts with its field 1 header
// (T_LIST, id 1: 0f 00 01) and the list's element type (0c struct, 0b
// binary). Read as a legacy count those four bytes claim 0x0c01000f or
// 0x0b01000f items: an odd number of participant strings (never written) or
// over 184M lock keys of at least 7 bytes each, more than one SQLite blob can
// hold. So the first four bytes tell the layouts apart.

bool IsRecord(std::string_view in, char elem_type) {
  return in.size() >= 4 && in[0] == '\x0f' && in[1] == '\x00' && in[2] == '\x01' &&
         in[3] == elem_type;
}
constexpr char kStructType = '\x0c';  // T_STRUCT
constexpr char kBinaryType = '\x0b';  // T_STRING

bool DecodeLegacyList(std::string_view in, std::vector<std::string>* items) {
  return GetByteList(&in, items) && in.empty();
}

// Empty if the record could not be encoded (a record is never empty).
std::string EncodeKeys(const std::vector<std::string>& keys) {
  proto::ChangeKeysRecord r;
  r.keys = keys;
  return codec::Encode(r);
}

}  // namespace

bool DecodeKeys(std::string_view in, std::vector<std::string>* keys) {
  if (!IsRecord(in, kBinaryType)) return DecodeLegacyList(in, keys);
  proto::ChangeKeysRecord r;
  if (!codec::Decode(in, &r)) return false;
  *keys = std::move(r.keys);
  return true;
}

namespace {

std::string EncodeParticipants(const std::vector<proto::Participant>& ps) {
  proto::PreparedRecord r;
  r.participants = ps;
  return codec::Encode(r);
}

}  // namespace

bool DecodeParticipants(std::string_view in, std::vector<proto::Participant>* ps) {
  if (IsRecord(in, kStructType)) {
    proto::PreparedRecord r;
    if (!codec::Decode(in, &r)) return false;
    *ps = std::move(r.participants);
    return true;
  }
  std::vector<std::string> flat;
  if (!DecodeLegacyList(in, &flat) || flat.size() % 2 != 0) return false;
  for (size_t i = 0; i < flat.size(); i += 2) {
    proto::Participant p;
    p.resource = flat[i];
    p.address = flat[i + 1];
    ps->push_back(std::move(p));
  }
  return true;
}

BranchLog::BranchLog(std::string name, wal::Db* db, std::function<Micros()> wall_clock)
    : Named(std::move(name)),
      db_(db),
      wall_clock_(std::move(wall_clock)),
      next_purge_(std::numeric_limits<Micros>::min()) {}

Status BranchLog::CheckLayout() {
  auto found = CheckLayoutStamp(*db_, {.table = "txc_meta",
                                       .key = "branch_log_layout",
                                       .layout = kBranchLogLayout,
                                       .file = "the branch log",
                                       .live_sql = "SELECT COUNT(*) FROM txc_branches WHERE state < 4"});
  if (!found.ok()) {
    const Status& s = found.status();
    return s.code() == Status::kInvalidArgument ? Err(s.code(), s.message()) : Internal(s);
  }
  if (*found > kBranchLogLayout) {
    Logger("wal")->warn("branch log laid out by a newer version (layout {}), with no live branch: "
                        "used as layout {} resource={}",
                        *found, kBranchLogLayout, name());
  }
  return Status::Ok();
}

Status BranchLog::Init() {
  TXC_RETURN_IF_ERROR(CheckLayout());
  TXC_RETURN_IF_ERROR(db_->Exec(
      "CREATE TABLE IF NOT EXISTS txc_branches("
      "  txid TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,"
      "  state INTEGER NOT NULL, participants BLOB, protocol INTEGER,"
      "  updated INTEGER NOT NULL, changed INTEGER NOT NULL DEFAULT 1,"
      "  redo BLOB, undo BLOB, keys BLOB);"
      // Only the live rows are indexed by state (for recovery): a final row
      // leaves the index at its last state change, and the purge walks the
      // table in rowid order instead (see MaybePurge). Logs of older
      // versions indexed every row by (state, updated): four index writes
      // per branch instead of two, in an index as large as the table. The
      // live states (ACTIVE 1, PREPARED 2, PRECOMMITTED 3) are written
      // `state < 4` here and in the queries: SQLite evaluates a partial
      // index's `state IN (1, 2, 3)` at every row change at a cost higher
      // than the old index's.
      "DROP INDEX IF EXISTS txc_branches_by_state;"
      "CREATE INDEX IF NOT EXISTS txc_branches_live ON txc_branches(state) "
      "  WHERE state < 4;"
      "CREATE TABLE IF NOT EXISTS txc_changes("
      "  txid TEXT NOT NULL, seq INTEGER NOT NULL, redo BLOB NOT NULL, undo BLOB NOT NULL,"
      "  keys BLOB NOT NULL, PRIMARY KEY(txid, seq));"
      "CREATE TABLE IF NOT EXISTS txc_heuristics("
      "  txid TEXT PRIMARY KEY, outcome INTEGER NOT NULL, reason TEXT NOT NULL,"
      "  who TEXT NOT NULL, at INTEGER NOT NULL);"));
  {
    // Logs written before a column existed get it: `changed` (their
    // committed branches count as having changed data: a rollback of them is
    // refused), and a one-shot's change set in its row (redo, undo, keys).
    auto cols = db_->Prepare("SELECT name FROM pragma_table_info('txc_branches')");
    if (!cols.ok()) return Internal(cols.status());
    std::set<std::string> have;
    for (;;) {
      auto row = (*cols)->Step();
      if (!row.ok()) return Internal(row.status());
      if (!*row) break;
      have.insert((*cols)->ColumnText(0));
    }
    cols->reset();
    for (const char* add : {"changed INTEGER NOT NULL DEFAULT 1", "redo BLOB", "undo BLOB",
                            "keys BLOB"}) {
      std::string_view def(add);
      if (have.count(std::string(def.substr(0, def.find(' ')))) != 0) continue;
      TXC_RETURN_IF_ERROR(
          Internal(db_->Exec("ALTER TABLE txc_branches ADD COLUMN " + std::string(def))));
    }
  }
  auto prep = [this](std::unique_ptr<wal::Stmt>* out, std::string_view sql) {
    return PrepareInto(*db_, out, sql);
  };
  TXC_RETURN_IF_ERROR(prep(&get_state_, "SELECT state, redo IS NOT NULL FROM txc_branches "
                                         "WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&clear_inline_, "UPDATE txc_branches SET redo = NULL, undo = NULL, "
                                           "keys = NULL WHERE txid = ?1 AND redo IS NOT NULL"));
  TXC_RETURN_IF_ERROR(prep(&changed_, "SELECT changed FROM txc_branches WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&insert_heuristic_,
                           "INSERT OR REPLACE INTO txc_heuristics(txid, outcome, reason, who, at) "
                           "VALUES(?1, ?2, ?3, ?4, ?5)"));
  TXC_RETURN_IF_ERROR(prep(&delete_heuristic_, "DELETE FROM txc_heuristics WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&list_heuristics_,
                           "SELECT txid, outcome, reason, who, at FROM txc_heuristics "
                           "ORDER BY at, txid"));
  TXC_RETURN_IF_ERROR(prep(&set_committed_,
                           "UPDATE txc_branches SET state = 4, changed = ?2, updated = ?3, "
                           "redo = NULL, undo = NULL, keys = NULL WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&commit_inline_,
                           "UPDATE txc_branches SET state = 4, changed = 1, updated = ?2, "
                           "redo = NULL, undo = NULL, keys = NULL "
                           "WHERE txid = ?1 AND state < 4 AND redo IS NOT NULL AND "
                           "NOT EXISTS (SELECT 1 FROM txc_changes WHERE txid = ?1)"));
  TXC_RETURN_IF_ERROR(prep(&insert_branch_,
                           "INSERT INTO txc_branches(txid, epoch, seq, state, updated, redo, undo, "
                           "keys) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  TXC_RETURN_IF_ERROR(prep(&insert_prepared_,
                           "INSERT INTO txc_branches(txid, epoch, seq, state, participants, "
                           "protocol, updated, redo, undo, keys) "
                           "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  TXC_RETURN_IF_ERROR(
      prep(&set_state_, "UPDATE txc_branches SET state = ?2, updated = ?3 WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&set_prepared_,
                           "UPDATE txc_branches SET state = ?2, participants = ?3, protocol = ?4, "
                           "updated = ?5 WHERE txid = ?1 AND state = 1"));
  // The change set in the branch's row, if any, is its first (seq 1).
  TXC_RETURN_IF_ERROR(
      prep(&next_seq_, "SELECT MAX((SELECT COALESCE(MAX(seq), 0) FROM txc_changes WHERE txid = ?1), "
                       "(SELECT COUNT(*) FROM txc_branches WHERE txid = ?1 AND redo IS NOT NULL)) "
                       "+ 1"));
  TXC_RETURN_IF_ERROR(prep(&insert_change_,
                           "INSERT INTO txc_changes(txid, seq, redo, undo, keys) "
                           "VALUES(?1, ?2, ?3, ?4, ?5)"));
  TXC_RETURN_IF_ERROR(
      prep(&has_changes_, "SELECT EXISTS(SELECT 1 FROM txc_changes WHERE txid = ?1) OR "
                          "EXISTS(SELECT 1 FROM txc_branches WHERE txid = ?1 AND redo IS NOT NULL)"));
  TXC_RETURN_IF_ERROR(
      prep(&list_undo_, "SELECT undo FROM (SELECT undo, seq FROM txc_changes WHERE txid = ?1 "
                        "UNION ALL SELECT undo, 1 FROM txc_branches WHERE txid = ?1 AND undo IS "
                        "NOT NULL) ORDER BY seq DESC"));
  TXC_RETURN_IF_ERROR(prep(&delete_changes_, "DELETE FROM txc_changes WHERE txid = ?1"));
  TXC_RETURN_IF_ERROR(prep(&recover_branches_,
                           "SELECT txid, state, participants, protocol FROM txc_branches "
                           "WHERE state < 4 ORDER BY epoch, seq"));
  TXC_RETURN_IF_ERROR(
      prep(&change_keys_, "SELECT keys FROM (SELECT keys, seq FROM txc_changes WHERE txid = ?1 "
                          "UNION ALL SELECT keys, 1 FROM txc_branches WHERE txid = ?1 AND keys IS "
                          "NOT NULL) ORDER BY seq"));
  TXC_RETURN_IF_ERROR(prep(&purge_scan_,
                           "SELECT rowid, state >= 4 AND updated >= ?2 FROM txc_branches "
                           "WHERE rowid > ?1 ORDER BY rowid LIMIT ?3"));
  TXC_RETURN_IF_ERROR(prep(&purge_,
                           "DELETE FROM txc_branches WHERE rowid > ?1 AND rowid <= ?2 AND "
                           "state >= 4 AND updated < ?3"));
  return Status::Ok();
}

// ------------------------------------------------------ branch log rows

Result<std::optional<BranchLog::Loaded>> BranchLog::Load(const std::string& txid) {
  wal::Stmt& s = *get_state_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  auto row = s.Step();
  if (!row.ok()) return Internal(row.status());
  if (!*row) return std::optional<Loaded>();
  return std::optional<Loaded>(
      Loaded{static_cast<BranchState>(s.ColumnInt(0)), s.ColumnInt(1) != 0});
}

Result<std::optional<BranchState>> BranchLog::LoadState(const std::string& txid) {
  auto loaded = Load(txid);
  if (!loaded.ok()) return loaded.status();
  if (!loaded->has_value()) return std::optional<BranchState>();
  return std::optional<BranchState>((*loaded)->state);
}

Result<bool> BranchLog::Changed(const std::string& txid) {
  wal::Stmt& s = *changed_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  auto row = s.Step();
  if (!row.ok()) return Internal(row.status());
  return !*row || s.ColumnInt(0) != 0;
}

Result<bool> BranchLog::CommitInline(const std::string& txid) {
  wal::Stmt& s = *commit_inline_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid, WallMs())));
  ResetOnExit reset{s};
  TXC_RETURN_IF_ERROR(Internal(s.Run()));
  return db_->changes() > 0;
}

Status BranchLog::SetCommitted(const std::string& txid, bool changed) {
  wal::Stmt& s = *set_committed_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid, changed ? 1 : 0, WallMs())));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Result<bool> BranchLog::HasChanges(const std::string& txid) {
  wal::Stmt& s = *has_changes_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  auto row = s.Step();
  if (!row.ok()) return Internal(row.status());
  return *row && s.ColumnInt(0) != 0;
}

Status BranchLog::SetState(const std::string& txid, BranchState st) {
  wal::Stmt& s = *set_state_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid, static_cast<int>(st), WallMs())));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

namespace {

// A branch row's change set columns (redo, undo, keys), each NULL without a
// change set. Not copyable: `keys` points into `key_blob`.
struct ChangeColumns {
  explicit ChangeColumns(const std::optional<BranchLog::Change>& change) {
    if (!change) return;
    key_blob = EncodeKeys(*change->keys);
    encoded = !key_blob.empty();
    redo = Blob{change->redo};
    undo = Blob{change->undo};
    keys = Blob{key_blob};
  }
  ChangeColumns(const ChangeColumns&) = delete;
  ChangeColumns& operator=(const ChangeColumns&) = delete;

  std::string key_blob;
  bool encoded = true;  // false: the lock keys could not be encoded
  std::optional<Blob> redo, undo, keys;
};

}  // namespace

Status BranchLog::InsertBranch(const TxId& txid, BranchState st,
                               const std::optional<Change>& change) {
  const ChangeColumns c(change);
  if (!c.encoded) return Err(Status::kInternal, "cannot encode the lock keys of " + ToString(txid));
  wal::Stmt& s = *insert_branch_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, ToString(txid), txid.epoch, txid.seq,
                                       static_cast<int>(st), WallMs(), c.redo, c.undo, c.keys)));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Status BranchLog::InsertPrepared(const TxId& txid, const PrepareInfo& info,
                                 const std::optional<Change>& change) {
  const std::string id = ToString(txid);
  std::string participants = EncodeParticipants(info.participants);
  if (participants.empty()) return Err(Status::kInternal, "cannot encode the participants of " + id);
  const ChangeColumns c(change);
  if (!c.encoded) return Err(Status::kInternal, "cannot encode the lock keys of " + id);
  wal::Stmt& s = *insert_prepared_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, id, txid.epoch, txid.seq,
                                       static_cast<int>(BranchState::kPrepared), Blob{participants},
                                       static_cast<int>(info.protocol), WallMs(), c.redo, c.undo,
                                       c.keys)));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Result<bool> BranchLog::PrepareIfActive(const std::string& txid, const PrepareInfo& info) {
  wal::Stmt& s = *set_prepared_;
  std::string participants = EncodeParticipants(info.participants);
  if (participants.empty()) {
    return Err(Status::kInternal, "cannot encode the participants of " + txid);
  }
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid, static_cast<int>(BranchState::kPrepared),
                                       Blob{participants}, static_cast<int>(info.protocol),
                                       WallMs())));
  ResetOnExit reset{s};
  TXC_RETURN_IF_ERROR(Internal(s.Run()));
  return db_->changes() > 0;
}

Status BranchLog::SetPrepared(const std::string& txid, const PrepareInfo& info) {
  auto done = PrepareIfActive(txid, info);
  if (!done.ok()) return done.status();
  if (!*done) return Err(Status::kInternal, "branch " + txid + " was not ACTIVE when prepared");
  return Status::Ok();
}

Status BranchLog::AppendChange(const std::string& txid, std::string_view redo,
                               std::string_view undo, const std::vector<std::string>& keys) {
  int64_t seq = 1;
  {  // next_seq_ is reset before insert_change_ runs
    wal::Stmt& q = *next_seq_;
    TXC_RETURN_IF_ERROR(Internal(BindAll(q, txid)));
    ResetOnExit reset{q};
    auto row = q.Step();
    if (!row.ok()) return Internal(row.status());
    if (*row) seq = q.ColumnInt(0);
  }
  wal::Stmt& s = *insert_change_;
  std::string key_blob = EncodeKeys(keys);
  if (key_blob.empty()) return Err(Status::kInternal, "cannot encode the lock keys of " + txid);
  TXC_RETURN_IF_ERROR(
      Internal(BindAll(s, txid, seq, Blob{redo}, Blob{undo}, Blob{key_blob})));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Result<std::vector<std::string>> BranchLog::Undos(const std::string& txid) {
  std::vector<std::string> undos;
  TXC_RETURN_IF_ERROR(EachRow(*list_undo_, txid, [&](wal::Stmt& s) {
    undos.push_back(s.ColumnBlob(0));
    return Status::Ok();
  }));
  return undos;
}

Status BranchLog::DeleteChanges(const std::string& txid) {
  TXC_RETURN_IF_ERROR(DeleteChangeRowsIfAny(txid).status());
  wal::Stmt& s = *clear_inline_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Result<bool> BranchLog::DeleteChangeRowsIfAny(const std::string& txid) {
  wal::Stmt& s = *delete_changes_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  TXC_RETURN_IF_ERROR(Internal(s.Run()));
  return sqlite3_changes(db_->raw()) > 0;
}

// ------------------------------------------------------------- recovery

Result<std::vector<RecoveredBranch>> BranchLog::LiveBranches() {
  std::vector<RecoveredBranch> out;
  wal::Stmt& s = *recover_branches_;
  s.Reset();
  ResetOnExit reset{s};
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Internal(row.status());
    if (!*row) break;
    std::string txid_text = s.ColumnText(0);
    auto txid = ParseTxId(txid_text);
    if (!txid) {
      return Err(Status::kInternal, "txc_branches holds a malformed txid \"" + txid_text + "\"");
    }
    RecoveredBranch b;
    b.txid = *txid;
    b.state = static_cast<BranchState>(s.ColumnInt(1));
    if (!s.ColumnIsNull(2) && !DecodeParticipants(s.ColumnBlob(2), &b.info.participants)) {
      return Err(Status::kInternal, "branch " + txid_text + " has malformed participants");
    }
    if (!s.ColumnIsNull(3)) b.info.protocol = static_cast<proto::Protocol::type>(s.ColumnInt(3));
    out.push_back(std::move(b));
  }
  return out;
}

// ------------------------------------------------------------ heuristics

Status BranchLog::InsertHeuristic(const HeuristicRecord& r) {
  wal::Stmt& s = *insert_heuristic_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, ToString(r.txid), static_cast<int>(r.outcome), r.reason,
                                       r.who, r.at_ms)));
  ResetOnExit reset{s};
  return Internal(s.Run());
}

Result<bool> BranchLog::DeleteHeuristic(const std::string& txid) {
  wal::Stmt& s = *delete_heuristic_;
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  TXC_RETURN_IF_ERROR(Internal(s.Run()));
  return db_->changes() > 0;
}

Result<std::vector<HeuristicRecord>> BranchLog::Heuristics() {
  std::vector<HeuristicRecord> out;
  wal::Stmt& s = *list_heuristics_;
  s.Reset();
  ResetOnExit reset{s};
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Internal(row.status());
    if (!*row) break;
    std::string txid_text = s.ColumnText(0);
    auto txid = ParseTxId(txid_text);
    int64_t outcome = s.ColumnInt(1);
    if (!txid || (outcome != proto::Outcome::COMMITTED && outcome != proto::Outcome::ABORTED)) {
      return Err(Status::kInternal, "txc_heuristics holds a malformed row for \"" + txid_text + "\"");
    }
    HeuristicRecord r;
    r.txid = *txid;
    r.outcome = static_cast<proto::Outcome::type>(outcome);
    r.reason = s.ColumnText(2);
    r.who = s.ColumnText(3);
    r.at_ms = s.ColumnInt(4);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<std::string>> BranchLog::LockKeys(const std::string& txid) {
  std::vector<std::string> out;
  TXC_RETURN_IF_ERROR(EachRow(*change_keys_, txid, [&](wal::Stmt& s) {
    std::vector<std::string> keys;
    if (!DecodeKeys(s.ColumnBlob(0), &keys)) {
      return Err(Status::kInternal, "branch " + txid + " has malformed lock keys");
    }
    for (std::string& k : keys) out.push_back(std::move(k));
    return Status::Ok();
  }));
  return out;
}

Status BranchLog::EachRow(wal::Stmt& s, const std::string& txid,
                          const std::function<Status(wal::Stmt&)>& each) {
  TXC_RETURN_IF_ERROR(Internal(BindAll(s, txid)));
  ResetOnExit reset{s};
  for (;;) {
    auto row = s.Step();
    if (!row.ok()) return Internal(row.status());
    if (!*row) return Status::Ok();
    TXC_RETURN_IF_ERROR(each(s));
  }
}

// ---------------------------------------------------------------- purge

// Rows are inserted in rowid order (SQLite gives a new row the largest rowid
// plus one), which is about the order in which they become final. A purge
// walks the table from the start (or from where the last window stopped) and
// deletes the old final rows up to the first final row still within the
// retention: the rows behind it wait for a later purge, as do live rows
// skipped on the way (the walk restarts from the start once it has caught
// up). No index on `updated` is needed.
void BranchLog::MaybePurge(Micros now) {
  if (now < next_purge_) return;
  next_purge_ = now + kPurgeInterval;
  const int64_t cutoff = WallMs() - kFinalRetentionMs;
  int64_t last = 0, scanned = 0;
  bool caught_up = false;  // met a recent final row, or the end of the table
  Status st = BindAll(*purge_scan_, purge_from_, cutoff, kPurgeBatch);
  if (st.ok()) {
    ResetOnExit reset{*purge_scan_};
    for (;;) {
      auto row = purge_scan_->Step();
      if (!row.ok()) {
        st = row.status();
        break;
      }
      if (!*row) {
        caught_up = scanned < kPurgeBatch;  // the end of the table, not of the window
        break;
      }
      if (purge_scan_->ColumnInt(1) != 0) {
        caught_up = true;
        break;
      }
      last = purge_scan_->ColumnInt(0);
      ++scanned;
    }
  }
  int64_t n = 0;
  if (st.ok() && scanned > 0) {
    st = BindAll(*purge_, purge_from_, last, cutoff);
    if (st.ok()) st = purge_->Run();
    purge_->Reset();
    n = db_->changes();
  }
  if (!st.ok()) {
    purge_from_ = 0;
    Logger("wal")->warn("purge of final branch rows failed resource={} error=\"{}\"", name(),
                        st.ToString());
    return;
  }
  if (caught_up) {
    purge_from_ = 0;  // the next purge starts over, past the live rows at the start
  } else {
    purge_from_ = last;  // a full window: the next group goes on from here
    next_purge_ = now;
  }
  if (n > 0) {
    Logger("wal")->debug("purged final branch rows resource={} rows={}", name(), n);
  }
}

Status BranchLog::Prepare(const TxId& txid, const PrepareInfo& info) {
  const std::string id = ToString(txid);
  auto state = LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return Err(Status::kNotFound, "no branch " + id + " to prepare");
  switch (**state) {
    case BranchState::kActive:
      break;
    case BranchState::kPrepared:
    case BranchState::kPreCommitted:
      return Status::Ok();  // already durable
    case BranchState::kAborted:
      return Err(Status::kAborted, "branch " + id + " is already aborted");
    case BranchState::kCommitted:
      return Err(Status::kInvalidArgument, "branch " + id + " is already committed");
  }
  return SetPrepared(id, info);
}

Status BranchLog::PreCommit(const TxId& txid) {
  const std::string id = ToString(txid);
  auto state = LoadState(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return Err(Status::kNotFound, "no branch " + id + " to precommit");
  switch (**state) {
    case BranchState::kPrepared:
      return SetState(id, BranchState::kPreCommitted);
    case BranchState::kPreCommitted:
    case BranchState::kCommitted:
      return Status::Ok();  // already there, or past it
    case BranchState::kAborted:
      return Err(Status::kAborted, "branch " + id + " is already aborted; cannot precommit it");
    case BranchState::kActive:
      break;
  }
  return Err(Status::kInvalidArgument, "branch " + id + " is ACTIVE: only a PREPARED branch is precommitted");
}

}  // namespace txc::participant::internal
