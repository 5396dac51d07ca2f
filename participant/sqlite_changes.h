// Internal to SqliteResource: statement execution and change capture.
//
// Runs the user statements of one Execute call, capturing every row they
// change (every table but the resource's own) as an SQLite change set,
// under the call's time limit
// (max_execute_time, through the progress handler), and collects the lock
// keys of every row the call changed: the row key (table + primary key),
// the UNIQUE index values it writes or frees and the parent keys its
// FOREIGN KEYs refer to (see sqlite_resource.h, "Key locks"). Applies an
// undo change set exactly or not at all (OnUndoConflict), naming the row and
// the constraint that stood in the way.
//
// Inside the caller's group transaction and savepoint; worker thread (or
// Recover) only. Holds the prepared user statements: destroy it before the Db.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <sqlite3.h>

#include "common/time.h"
#include "participant/resource_manager.h"
#include "participant/sqlite_util.h"
#include "wal/sqlite.h"

namespace txc::participant::internal {

// How a key column's text compares: byte for byte, or folded as its
// collation folds it (so 'X' and 'x' are one key under NOCASE).
enum class Fold : char { kNone, kNoCase, kRtrim };

// The lock keys of one table beyond its row keys: a group per UNIQUE index
// and per FOREIGN KEY. A group's key is `prefix` followed by the values of
// `cols` (change set column positions, in key order).
struct KeyGroup {
  std::string prefix;
  std::vector<int> cols;
  std::vector<Fold> folds;  // per column of cols
  // For a UNIQUE index of the table itself: finds the rows holding a value
  // (primary-key columns), to name the row an undo collides with.
  std::string holders_sql;
};
struct TableKeys {
  std::vector<KeyGroup> groups;
  std::string row_sql;  // reads the current row by primary key
  std::unique_ptr<wal::Stmt> row_stmt;
};


struct ValueDeleter {
  void operator()(sqlite3_value* v) const { sqlite3_value_free(v); }
};
using OwnedValue = std::unique_ptr<sqlite3_value, ValueDeleter>;

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using UserStmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// What one Execute call did.
struct CapturedChanges {
  std::vector<proto::ResultSet> results;  // one per statement
  SqliteBuffer redo;                      // its change set; n == 0: no row changed
  std::vector<std::string> keys;          // the lock keys of its changes, each once
};

class SqliteChanges : private Named {
 public:
  // `db` and `clock` (monotonic: the Execute time limit) outlive this.
  // max_execute_time 0: no limit.
  // `test_only_skip_undo_on_conflict`: SqliteResourceOptions' option of that name.
  // `allow_ddl` false: user statements that change the schema are refused
  // (SqliteResourceOptions::allow_ddl). `max_result_bytes`: what the rows
  // one Execute call returns may hold (SqliteResourceOptions); 0: no limit.
  // `capture_with_session`: SqliteResourceOptions' option of that name.
  SqliteChanges(std::string name, wal::Db* db, Micros max_execute_time,
                std::function<Micros()> clock, bool test_only_skip_undo_on_conflict = false,
                bool allow_ddl = true, size_t max_result_bytes = 0,
                bool capture_with_session = false);
  SqliteChanges(const SqliteChanges&) = delete;
  SqliteChanges& operator=(const SqliteChanges&) = delete;

  // Prepares the statements, installs the progress handler and turns
  // extension loading off on the connection.
  Status Init();

  // Runs one Execute call's statements, capturing what they change. Fails
  // with the first statement's error (TIMEOUT past max_execute_time).
  Status Execute(const std::vector<proto::Statement>& statements, CapturedChanges* out);
  // The undo of a change set.
  Status Invert(const SqliteBuffer& redo, SqliteBuffer* undo);
  // Applies one undo change set of `txid` exactly, or nothing (CONFLICT
  // naming the row and the constraint, or the table that changed shape).
  Status ApplyUndo(const TxId& txid, const std::string& undo);
  // A lock key, printable: "<resource>.<table> <column>=<value>,...".
  std::string Describe(const std::string& key);

 private:
  Status RunStatement(size_t index, const proto::Statement& st, proto::ResultSet* rs);
  Status CollectKeys(const SqliteBuffer& redo, std::vector<std::string>* keys);
  Result<sqlite3_stmt*> PrepareUser(const std::string& sql);
  Status CheckHasPrimaryKey(const std::string& table, size_t index, const std::string& sql);
  Result<std::vector<std::string>> PrimaryKeyColumns(const std::string& table);
  Status RefreshTableKeys();
  Result<TableKeys*> KeysOfTable(const std::string& table);
  Result<TableKeys> LoadTableKeys(const std::string& table);
  Status AddKeyLocks(sqlite3_changeset_iter* it, const std::string& table, int n_cols, int op,
                     std::vector<std::string>* keys);
  Status ReadRow(TableKeys& t, sqlite3_changeset_iter* it, int n_cols,
                 std::vector<OwnedValue>* row);
  std::string UniqueCollision(const std::string& table, sqlite3_changeset_iter* it, int n_cols,
                              int op, const std::string& own_key);
  std::string ForeignKeyViolation();

  static int Authorize(void* ctx, int action, const char* a1, const char* a2, const char* db,
                       const char* trigger);
  Status CheckUndoShapes(const TxId& txid, const std::string& undo);
  static int OnUndoConflict(void* ctx, int type, sqlite3_changeset_iter* it);
  static int OnProgress(void* ctx);

  // Change capture through the pre-update hook, installed on the connection
  // by Init and recording only inside Execute. It keeps what the session
  // extension keeps and writes the same change set: per row (by primary
  // key), its first change in the call with the values it had before; at the
  // end each row is read back by primary key and written as an INSERT,
  // UPDATE (changed columns only) or DELETE, or left out when it ends as it
  // began. Unlike a session, nothing is prepared per call: the tables'
  // shapes and row statements are kept per schema version.
  struct CaptureShape {
    int n_cols = 0;
    std::vector<unsigned char> pk;  // per column: its position in the primary key, 0: none
    bool has_pk = false;
    std::unique_ptr<wal::Stmt> row;  // every column of a row, by primary key
  };
  struct RowChange {
    int op = 0;             // of the row's first change in the call
    bool indirect = false;  // made by a trigger
    std::string record;     // change set values: all old ones, or an INSERT's key
  };
  struct TableCapture {
    std::string name;
    int n_cols = 0;
    std::vector<unsigned char> pk;
    bool has_pk = false;
    std::vector<RowChange> rows;                     // in first-change order
    std::unordered_map<std::string, size_t> by_key;  // primary key values -> rows
  };
  static void OnPreupdate(void* ctx, sqlite3* db, int op, const char* db_name, const char* table,
                          sqlite3_int64 key1, sqlite3_int64 key2);
  void RecordChange(int op, const char* table);
  void RecordRow(TableCapture& t, int op);
  Result<CaptureShape*> ShapeOf(const std::string& table);
  Status WriteChangeSet(SqliteBuffer* redo);
  bool capturing_ = false;         // inside Execute, hook mode
  int capture_rc_ = SQLITE_OK;     // the first error the hook met
  std::vector<TableCapture> captured_;
  std::vector<std::string> capture_new_tables_;  // first written since last asked
  std::string capture_null_key_;  // a table a row with a NULL primary key was written to
  std::unordered_map<std::string, CaptureShape> capture_shapes_;  // at table_keys_version_

  wal::Db* const db_;
  const Micros max_execute_time_;
  const std::function<Micros()> clock_;
  const bool test_only_skip_undo_on_conflict_;
  const bool allow_ddl_;
  const size_t max_result_bytes_;
  const bool capture_with_session_;
  size_t result_bytes_ = 0;  // of the current Execute call's rows

  std::unique_ptr<wal::Stmt> pk_info_, schema_version_;
  std::unordered_map<std::string, UserStmt> user_stmts_;  // by SQL text
  std::string auth_denied_;  // why the authorizer refused, for the error message

  const TxId* undo_txid_ = nullptr;  // for conflict logs during ApplyUndo
  std::string undo_conflict_;        // why ApplyUndo abandoned the undo

  // Key locks: per table, recomputed when the schema changes.
  std::unordered_map<std::string, TableKeys> table_keys_;
  int64_t table_keys_version_ = -1;

  // Execute deadline (clock_ time, 0 = none), checked by OnProgress.
  Micros execute_deadline_ = 0;
  bool execute_timed_out_ = false;
};

}  // namespace txc::participant::internal
