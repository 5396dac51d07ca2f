// SimVfs: SQLite on a simulated node's disk. Power loss keeps exactly what a
// completed simulated sync covered, storage faults surface as SQLite errors
// and leave a consistent database, a wiped disk is empty, a seed replays to
// the same bytes, and the session extension and SqliteResource work on it.
// SqliteResource also runs as the simulator runs it (group commits as World
// events, callbacks past WhenDurable, virtual clocks): a vote leaves only once
// its PREPARED record is durable, a power loss before that loses both, and a
// seed replays to byte-identical database files.
#include "sim/sim_vfs.h"

#include <sqlite3.h>

#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "participant/sqlite_resource.h"
#include "tests/support/core_harness.h"

namespace txc::sim {
namespace {

// One node: its world, disk and VFS.
struct Node {
  explicit Node(uint64_t seed) : world(seed, nullptr, false), disk(&world, DiskOptions{}),
                                 vfs(&world, &disk, "n1") {}
  // Runs every event for a while: syncs in flight complete.
  void Settle() { world.RunUntil(world.now() + 100 * kMillis); }
  World world;
  Disk disk;
  SimVfs vfs;
};

// A connection on the node's VFS, closed on destruction.
class Conn {
 public:
  Conn(SimVfs& vfs, const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    rc_ = sqlite3_open_v2(path.c_str(), &db_, flags, vfs.name());
    if (rc_ == SQLITE_OK) sqlite3_extended_result_codes(db_, 1);
  }
  ~Conn() { sqlite3_close_v2(db_); }
  int open_rc() const { return rc_; }
  sqlite3* raw() { return db_; }

  // The extended result code of running `sql`.
  int Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    last_error_ = err != nullptr ? err : "";
    sqlite3_free(err);
    return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db_);
  }
  // The first column of every row, as text ("" for NULL).
  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(s, 0);
      out.emplace_back(t != nullptr ? reinterpret_cast<const char*>(t) : "");
    }
    if (rc != SQLITE_DONE) ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    sqlite3_finalize(s);
    return out;
  }
  std::string One(const std::string& sql) {
    auto c = Column(sql);
    return c.empty() ? "<no row>" : c[0];
  }
  const std::string& last_error() const { return last_error_; }

 private:
  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_ERROR;
  std::string last_error_;
};

using Ids = std::vector<std::string>;

// Commits with synchronous=FULL, then waits for the simulated sync.
void CommitDurably(Node& n, Conn& c, const std::string& sql) {
  if (sqlite3_get_autocommit(c.raw())) {
    ASSERT_EQ(c.Exec("PRAGMA synchronous=FULL"), SQLITE_OK);
  }
  ASSERT_EQ(c.Exec(sql), SQLITE_OK) << c.last_error();
  bool durable = false;
  n.vfs.WhenDurable([&durable] { durable = true; });
  n.Settle();
  ASSERT_TRUE(durable);
}

std::string ModeName(const ::testing::TestParamInfo<std::string>& i) { return i.param; }

// ---------------------------------------------------------- durability

// journal_mode=WAL (synchronous=FULL commits) and journal_mode=DELETE
// (synchronous=EXTRA: the journal's deletion is the commit, and is synced).
class SimVfsDurabilityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void Setup(Conn& c) {
    ASSERT_EQ(c.open_rc(), SQLITE_OK);
    EXPECT_EQ(c.One("PRAGMA journal_mode=" + GetParam()), GetParam());
    ASSERT_EQ(c.Exec("PRAGMA cache_size=2"), SQLITE_OK);  // uncommitted pages spill to the files
    ASSERT_EQ(c.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB)"), SQLITE_OK);
  }
  std::string sync_level() const { return GetParam() == "wal" ? "FULL" : "EXTRA"; }
};

TEST_P(SimVfsDurabilityTest, PowerLossKeepsExactlyTheSyncedCommits) {
  Node n(1);
  {
    Conn c(n.vfs, "bank.db");
    Setup(c);
    ASSERT_EQ(c.Exec("PRAGMA synchronous=" + sync_level()), SQLITE_OK);
    for (int i = 1; i <= 3; ++i) {
      ASSERT_EQ(c.Exec("INSERT INTO t VALUES(" + std::to_string(i) + ", zeroblob(3000))"), SQLITE_OK);
    }
    bool durable = false;
    n.vfs.WhenDurable([&durable] { durable = true; });
    n.Settle();
    ASSERT_TRUE(durable);
    ASSERT_FALSE(n.vfs.sync_pending());

    // A commit written but never synced, then a big transaction left open.
    ASSERT_EQ(c.Exec("PRAGMA synchronous=OFF"), SQLITE_OK);
    ASSERT_EQ(c.Exec("INSERT INTO t VALUES(4, zeroblob(3000))"), SQLITE_OK);
    ASSERT_EQ(c.Exec("BEGIN; WITH RECURSIVE k(i) AS (SELECT 100 UNION ALL SELECT i + 1 FROM k "
                     "WHERE i < 300) INSERT INTO t SELECT i, zeroblob(3000) FROM k;"),
              SQLITE_OK);
    EXPECT_EQ(c.One("SELECT count(*) FROM t"), "205");
    EXPECT_GT(n.disk.unsynced(), 0u);
    // The open transaction reached the files, not only SQLite's cache.
    std::string side = GetParam() == "wal" ? "/bank.db-wal" : "/bank.db";
    ASSERT_TRUE(n.vfs.VolatileBytes(side).has_value());
    EXPECT_NE(n.vfs.VolatileBytes(side), n.vfs.DurableBytes(side));

    n.vfs.PowerLoss();
    EXPECT_TRUE(n.vfs.down());
    // The dead connection fails and changes nothing while it closes.
    EXPECT_NE(c.Exec("INSERT INTO t VALUES(5, zeroblob(10))"), SQLITE_OK);
  }
  EXPECT_EQ(Conn(n.vfs, "bank.db").open_rc(), SQLITE_CANTOPEN) << "opened while the power is off";
  n.vfs.PowerOn();
  Conn c(n.vfs, "bank.db");
  ASSERT_EQ(c.open_rc(), SQLITE_OK);
  EXPECT_EQ(c.Column("SELECT id FROM t ORDER BY id"), (Ids{"1", "2", "3"}));
  EXPECT_EQ(c.One("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(n.vfs.stats().power_losses, 1u);
}

// xSync returns at once; the commit is durable only when the simulated sync
// completes. A power loss before that loses it, and WhenDurable never fires:
// whoever replied before WhenDurable would have lied.
TEST_P(SimVfsDurabilityTest, CommitIsDurableOnlyWhenTheSimulatedSyncCompletes) {
  Node n(2);
  {
    Conn c(n.vfs, "bank.db");
    Setup(c);
    CommitDurably(n, c, "INSERT INTO t VALUES(1, NULL)");
    ASSERT_EQ(c.Exec("PRAGMA synchronous=" + sync_level()), SQLITE_OK);
    ASSERT_EQ(c.Exec("INSERT INTO t VALUES(2, NULL)"), SQLITE_OK);
    EXPECT_TRUE(n.vfs.sync_pending());
    bool durable = false;
    n.vfs.WhenDurable([&durable] { durable = true; });
    n.vfs.PowerLoss();
    n.Settle();
    EXPECT_FALSE(durable);
  }
  n.vfs.PowerOn();
  Conn c(n.vfs, "bank.db");
  EXPECT_EQ(c.Column("SELECT id FROM t ORDER BY id"), (Ids{"1"}));
  EXPECT_EQ(c.One("PRAGMA integrity_check"), "ok");
}

// Power losses at every point of a run of commits: each time, the database
// holds exactly the commits WhenDurable reported.
TEST_P(SimVfsDurabilityTest, RepeatedPowerLossesNeverLoseADurableCommit) {
  Node n(3);
  int acked = 0;  // ids 1..acked were reported durable
  int next = 1;
  int lossy_rounds = 0;  // a power loss dropped a commit SQLite had returned OK for
  {
    Conn c(n.vfs, "bank.db");
    Setup(c);
  }
  n.Settle();
  for (int round = 0; round < 12; ++round) {
    {
      Conn c(n.vfs, "bank.db");
      ASSERT_EQ(c.open_rc(), SQLITE_OK);
      // Small checkpoints often: database writes and WAL resets inside the
      // window a power loss can cut.
      ASSERT_EQ(c.Exec("PRAGMA cache_size=2; PRAGMA wal_autocheckpoint=3; PRAGMA synchronous=" +
                       sync_level()),
                SQLITE_OK);
      std::vector<std::string> have = c.Column("SELECT id FROM t ORDER BY id");
      ASSERT_GE(static_cast<int>(have.size()), acked) << "round " << round;
      for (int i = 0; i < acked; ++i) ASSERT_EQ(have[i], std::to_string(i + 1));
      ASSERT_EQ(c.One("PRAGMA integrity_check"), "ok") << "round " << round;
      if (round > 0 && static_cast<int>(have.size()) < next - 1) ++lossy_rounds;
      // Whatever survived beyond the acked ids stays (it is durable now).
      next = static_cast<int>(have.size()) + 1;
      acked = next - 1;
      // A few commits; the power fails after a round-dependent number of events.
      for (int k = 0; k < 4; ++k, ++next) {
        ASSERT_EQ(c.Exec("INSERT INTO t VALUES(" + std::to_string(next) + ", zeroblob(5000))"),
                  SQLITE_OK);
        int id = next;
        n.vfs.WhenDurable([&acked, id] { acked = std::max(acked, id); });
        n.world.RunUntil(n.world.now() + (round % 4) * 150);
      }
      n.vfs.PowerLoss();
    }
    n.vfs.PowerOn();
  }
  EXPECT_GT(acked, 0);
  EXPECT_GT(lossy_rounds, 0);
}

// Rollback journal: an open transaction that spilled into the database
// file, durably (each spill syncs the journal first), is rolled back from the
// hot journal at the next open.
TEST(SimVfsTest, HotJournalRollsBackADurableSpill) {
  Node n(12);
  std::string committed_db;
  {
    Conn c(n.vfs, "bank.db");
    ASSERT_EQ(c.One("PRAGMA journal_mode=DELETE"), "delete");
    ASSERT_EQ(c.Exec("PRAGMA cache_size=2; PRAGMA synchronous=EXTRA"), SQLITE_OK);
    ASSERT_EQ(c.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB);"
                     "INSERT INTO t VALUES(1, zeroblob(3000)), (2, zeroblob(3000));"),
              SQLITE_OK);
    n.Settle();
    committed_db = n.vfs.DurableBytes("bank.db").value_or("");
    ASSERT_EQ(c.Exec("BEGIN; UPDATE t SET pad = zeroblob(3500); WITH RECURSIVE k(i) AS "
                     "(SELECT 100 UNION ALL SELECT i + 1 FROM k WHERE i < 300) "
                     "INSERT INTO t SELECT i, zeroblob(3000) FROM k;"),
              SQLITE_OK);
    n.Settle();
    EXPECT_TRUE(n.vfs.DurableBytes("bank.db-journal").has_value());
    EXPECT_NE(n.vfs.DurableBytes("bank.db"), committed_db) << "nothing spilled durably";
    n.vfs.PowerLoss();
  }
  n.vfs.PowerOn();
  Conn c(n.vfs, "bank.db");
  EXPECT_EQ(c.Column("SELECT id || ':' || length(pad) FROM t ORDER BY id"),
            (Ids{"1:3000", "2:3000"}));
  EXPECT_EQ(c.One("PRAGMA integrity_check"), "ok");
  EXPECT_FALSE(n.vfs.VolatileBytes("bank.db-journal").has_value());
}

INSTANTIATE_TEST_SUITE_P(Modes, SimVfsDurabilityTest, ::testing::Values("wal", "delete"), ModeName);

// ------------------------------------------------------------- faults

struct FaultCase {
  bool on_sync;
  DiskFault fault;
  int primary;  // the SQLite result code the commit fails with
  const char* name;
};

class SimVfsFaultTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(SimVfsFaultTest, StorageErrorFailsTheCommitAndLeavesAConsistentDatabase) {
  const FaultCase& fc = GetParam();
  for (bool power_loss : {false, true}) {
    SCOPED_TRACE(power_loss ? "reopen after a power loss" : "reopen after a process restart");
    Node n(4);
    {
      Conn c(n.vfs, "bank.db");
      ASSERT_EQ(c.Exec("PRAGMA journal_mode=WAL"), SQLITE_OK);
      CommitDurably(n, c, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER);"
                          "INSERT INTO t VALUES(1, 10), (2, 20);");
      if (fc.on_sync) {
        n.vfs.FailNextSync(fc.fault);
      } else {
        n.vfs.FailNextWrite(fc.fault);
      }
      int rc = c.Exec("BEGIN; INSERT INTO t VALUES(3, 30); UPDATE t SET v = v + 1; COMMIT;");
      EXPECT_EQ(rc & 0xff, fc.primary) << c.last_error();
      c.Exec("ROLLBACK");  // if SQLite left the transaction open
      n.Settle();
      SimVfsStats st = n.vfs.stats();
      EXPECT_EQ(fc.on_sync ? st.failed_syncs : st.failed_writes, 1u);
      // The connection goes on working.
      EXPECT_EQ(c.Exec("INSERT INTO t VALUES(9, 90)"), SQLITE_OK);
      EXPECT_EQ(c.One("SELECT count(*) FROM t WHERE id = 9"), "1");
      EXPECT_EQ(c.Exec("DELETE FROM t WHERE id = 9"), SQLITE_OK);
      if (power_loss) n.vfs.PowerLoss();
    }
    n.vfs.PowerOn();
    Conn c(n.vfs, "bank.db");
    ASSERT_EQ(c.open_rc(), SQLITE_OK);
    EXPECT_EQ(c.One("PRAGMA integrity_check"), "ok");
    // Atomic: the failed transaction is either wholly there or wholly absent
    // (after a failed sync the page cache may still hold it, as on Linux);
    // after a power loss it is gone.
    std::vector<std::string> rows = c.Column("SELECT id || ':' || v FROM t ORDER BY id");
    if (power_loss || !fc.on_sync) {
      EXPECT_EQ(rows, (Ids{"1:10", "2:20"}));
    } else {
      EXPECT_TRUE(rows == (Ids{"1:10", "2:20"}) || rows == (Ids{"1:11", "2:21", "3:31"}))
          << ::testing::PrintToString(rows);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Faults, SimVfsFaultTest,
    ::testing::Values(FaultCase{false, DiskFault::kEio, SQLITE_IOERR, "WriteEio"},
                      FaultCase{false, DiskFault::kEnospc, SQLITE_FULL, "WriteEnospc"},
                      FaultCase{true, DiskFault::kEio, SQLITE_IOERR, "SyncEio"},
                      FaultCase{true, DiskFault::kEnospc, SQLITE_FULL, "SyncEnospc"}),
    [](const ::testing::TestParamInfo<FaultCase>& i) { return std::string(i.param.name); });

// A failed sync drops the file's undurable changes for good, even if a later
// sync succeeds (Linux after fsync EIO): the page cache shows them, the disk
// never gets them.
TEST(SimVfsTest, FailedSyncDropsTheUndurableChangesOfThatFile) {
  Node n(5);
  {
    Conn c(n.vfs, "bank.db");
    ASSERT_EQ(c.Exec("PRAGMA journal_mode=WAL"), SQLITE_OK);
    CommitDurably(n, c, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
    ASSERT_EQ(c.Exec("PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_OK);
    n.Settle();
    ASSERT_EQ(c.Exec("PRAGMA synchronous=OFF; INSERT INTO t VALUES(1)"), SQLITE_OK);
    n.vfs.FailNextSync(DiskFault::kEio);
    EXPECT_EQ(c.Exec("PRAGMA synchronous=FULL; INSERT INTO t VALUES(2)") & 0xff, SQLITE_IOERR);
    ASSERT_EQ(c.Exec("INSERT INTO t VALUES(3)"), SQLITE_OK);  // this sync succeeds
    n.Settle();
    EXPECT_FALSE(n.vfs.sync_pending());
    EXPECT_NE(n.vfs.VolatileBytes("/bank.db-wal"), n.vfs.DurableBytes("/bank.db-wal"));
    n.vfs.PowerLoss();
  }
  n.vfs.PowerOn();
  Conn c(n.vfs, "bank.db");
  EXPECT_EQ(c.One("PRAGMA integrity_check"), "ok");
  // The WAL's header went with the dropped changes: SQLite finds no valid
  // WAL, and even the later synced commit is gone. This is why a failed sync
  // must stop the store until the node restarts (STYLE.md: sticky failure).
  EXPECT_EQ(c.Column("SELECT id FROM t"), Ids{});
}

// A failed sync drops only what no earlier successful xSync covered: a commit
// whose xSync returned OK is durable once its sync completes, even if the
// next sync fails while the first is still in flight (that fsync returned;
// SQLite, and whoever it told, rely on it).
TEST(SimVfsTest, FailedSyncKeepsChangesAnEarlierSyncCovered) {
  Node n(7);
  {
    Conn c(n.vfs, "bank.db");
    ASSERT_EQ(c.Exec("PRAGMA journal_mode=WAL"), SQLITE_OK);
    CommitDurably(n, c, "CREATE TABLE t(id INTEGER PRIMARY KEY)");
    ASSERT_EQ(c.Exec("INSERT INTO t VALUES(1)"), SQLITE_OK);  // xSync OK, sync in flight
    ASSERT_TRUE(n.vfs.sync_pending());
    n.vfs.FailNextSync(DiskFault::kEio);
    EXPECT_EQ(c.Exec("INSERT INTO t VALUES(2)") & 0xff, SQLITE_IOERR);
    n.Settle();
    n.vfs.PowerLoss();
  }
  n.vfs.PowerOn();
  Conn c(n.vfs, "bank.db");
  EXPECT_EQ(c.One("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(c.Column("SELECT id FROM t"), Ids{"1"});
}

// ------------------------------------------------------------- wipe

TEST(SimVfsTest, WipeLeavesAnEmptyDisk) {
  Node n(6);
  {
    Conn c(n.vfs, "bank.db");
    ASSERT_EQ(c.Exec("PRAGMA journal_mode=WAL"), SQLITE_OK);
    CommitDurably(n, c, "CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES(1);");
    ASSERT_TRUE(n.vfs.DurableBytes("bank.db").has_value());
    n.vfs.Wipe();
  }
  EXPECT_TRUE(n.vfs.down());
  n.vfs.PowerOn();
  EXPECT_EQ(n.vfs.Files(), std::vector<std::string>{});
  EXPECT_FALSE(n.vfs.DurableBytes("bank.db").has_value());
  EXPECT_EQ(Conn(n.vfs, "bank.db", SQLITE_OPEN_READWRITE).open_rc(), SQLITE_CANTOPEN);
  Conn c(n.vfs, "bank.db");
  ASSERT_EQ(c.open_rc(), SQLITE_OK);
  EXPECT_EQ(c.One("SELECT count(*) FROM sqlite_schema"), "0");
  EXPECT_EQ(n.vfs.stats().wipes, 1u);
}

// ------------------------------------------------------- determinism

struct RunResult {
  uint64_t digest = 0;
  std::string wal;
  std::string random;
  std::string now;
  uint64_t syncs = 0;
};

// Commits, a power loss mid-way, more commits: everything that could vary.
RunResult RunOnce(uint64_t seed) {
  RunResult r;
  Node n(seed);
  {
    Conn c(n.vfs, "bank.db");
    c.Exec("PRAGMA journal_mode=WAL");
    r.random = c.One("SELECT hex(randomblob(16))");
    c.Exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int i = 1; i <= 20; ++i) {
      c.Exec("INSERT INTO t VALUES(" + std::to_string(i) + ", randomblob(100))");
      n.world.RunUntil(n.world.now() + 300);
    }
    n.vfs.PowerLoss();
  }
  n.vfs.PowerOn();
  {
    Conn c(n.vfs, "bank.db");
    for (int i = 21; i <= 30; ++i) c.Exec("INSERT INTO t VALUES(" + std::to_string(i) + ", 1)");
    n.Settle();
    r.now = c.One("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')");
    r.wal = n.vfs.VolatileBytes("bank.db-wal").value_or("");
    r.digest = n.vfs.DurableDigest();
    r.syncs = n.vfs.stats().syncs_durable;
  }
  return r;
}

TEST(SimVfsTest, SameSeedSameBytes) {
  RunResult a = RunOnce(42), b = RunOnce(42), c = RunOnce(43);
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.wal, b.wal);
  EXPECT_EQ(a.random, b.random);
  EXPECT_EQ(a.now, b.now);
  EXPECT_EQ(a.syncs, b.syncs);
  EXPECT_GT(a.syncs, 0u);
  // The seed reaches SQLite's randomness (WAL salts, randomblob).
  EXPECT_NE(a.random, c.random);
  EXPECT_NE(a.digest, c.digest);
}

// The name shows in SQLite's error messages, which reach traces: it depends
// on the label only, with a suffix while another VFS holds it.
TEST(SimVfsTest, NamesComeFromTheLabel) {
  Node a(11);
  EXPECT_STREQ(a.vfs.name(), "txc-sim-n1");
  {
    Node b(11);
    EXPECT_STREQ(b.vfs.name(), "txc-sim-n1#2");
    Conn cb(b.vfs, "x.db");
    ASSERT_EQ(cb.Exec("CREATE TABLE only_on_b(x)"), SQLITE_OK);
    Conn ca(a.vfs, "x.db");
    EXPECT_EQ(ca.One("SELECT count(*) FROM sqlite_schema"), "0");
  }
  Node c(11);
  EXPECT_STREQ(c.vfs.name(), "txc-sim-n1#2");
}

TEST(SimVfsTest, TimeIsTheVirtualClock) {
  Node n(7);
  n.world.RunUntil(90 * kSeconds + 250 * kMillis);
  Conn c(n.vfs, "x.db");
  EXPECT_EQ(c.One("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"), "2026-01-01 00:01:30.250");
}

// ---------------------------------------------------- concurrency

// Two connections of one node: WAL readers see the last commit while a writer
// holds its transaction; a second writer is refused at once (busy waits take
// no simulated or real time).
TEST(SimVfsTest, ConnectionsOfANodeLockEachOther) {
  Node n(8);
  Conn a(n.vfs, "bank.db"), b(n.vfs, "bank.db");
  ASSERT_EQ(a.Exec("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY);"
                   "INSERT INTO t VALUES(1);"),
            SQLITE_OK);
  ASSERT_EQ(b.Exec("PRAGMA busy_timeout=2000"), SQLITE_OK);
  ASSERT_EQ(a.Exec("BEGIN IMMEDIATE; INSERT INTO t VALUES(2);"), SQLITE_OK);
  EXPECT_EQ(b.One("SELECT count(*) FROM t"), "1");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(b.Exec("BEGIN IMMEDIATE") & 0xff, SQLITE_BUSY);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_GT(n.vfs.stats().sleeps, 0u);
  ASSERT_EQ(a.Exec("COMMIT"), SQLITE_OK);
  EXPECT_EQ(b.One("SELECT count(*) FROM t"), "2");
  EXPECT_EQ(b.Exec("BEGIN IMMEDIATE; INSERT INTO t VALUES(3); COMMIT;"), SQLITE_OK);
  EXPECT_EQ(a.One("SELECT count(*) FROM t"), "3");
}

// -------------------------------------------------- session extension

// What SqliteResource does with every Execute: capture a changeset, store it
// and its inverse in the same transaction, and after a restart apply the
// inverse to undo the branch.
TEST(SimVfsTest, SessionChangesetsSurvivePowerLossAndUndo) {
  Node n(9);
  {
    Conn c(n.vfs, "bank.db");
    ASSERT_EQ(c.Exec("PRAGMA journal_mode=WAL"), SQLITE_OK);
    CommitDurably(n, c,
                  "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER);"
                  "CREATE TABLE undo_log(seq INTEGER PRIMARY KEY, redo BLOB, undo BLOB);"
                  "INSERT INTO acct VALUES(1, 100), (2, 100), (3, 100);");
    sqlite3_session* s = nullptr;
    ASSERT_EQ(sqlite3session_create(c.raw(), "main", &s), SQLITE_OK);
    ASSERT_EQ(sqlite3session_attach(s, "acct"), SQLITE_OK);
    ASSERT_EQ(c.Exec("PRAGMA synchronous=FULL"), SQLITE_OK);
    ASSERT_EQ(c.Exec("BEGIN; UPDATE acct SET bal = bal - 30 WHERE id = 1;"
                     "DELETE FROM acct WHERE id = 2; INSERT INTO acct VALUES(4, 7);"),
              SQLITE_OK);
    int n_redo = 0, n_undo = 0;
    void *redo = nullptr, *undo = nullptr;
    ASSERT_EQ(sqlite3session_changeset(s, &n_redo, &redo), SQLITE_OK);
    ASSERT_GT(n_redo, 0);
    ASSERT_EQ(sqlite3changeset_invert(n_redo, redo, &n_undo, &undo), SQLITE_OK);
    sqlite3_stmt* ins = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(c.raw(), "INSERT INTO undo_log VALUES(1, ?1, ?2)", -1, &ins, nullptr),
              SQLITE_OK);
    sqlite3_bind_blob(ins, 1, redo, n_redo, SQLITE_TRANSIENT);
    sqlite3_bind_blob(ins, 2, undo, n_undo, SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_finalize(ins);
    sqlite3_free(redo);
    sqlite3_free(undo);
    sqlite3session_delete(s);
    CommitDurably(n, c, "COMMIT");
    n.vfs.PowerLoss();
  }
  n.vfs.PowerOn();
  Conn c(n.vfs, "bank.db");
  EXPECT_EQ(c.Column("SELECT id || ':' || bal FROM acct ORDER BY id"), (Ids{"1:70", "3:100", "4:7"}));
  sqlite3_stmt* sel = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(c.raw(), "SELECT undo FROM undo_log WHERE seq = 1", -1, &sel, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(sel), SQLITE_ROW);
  std::string undo(static_cast<const char*>(sqlite3_column_blob(sel, 0)),
                   static_cast<size_t>(sqlite3_column_bytes(sel, 0)));
  sqlite3_finalize(sel);
  auto abort_on_conflict = [](void*, int, sqlite3_changeset_iter*) { return SQLITE_CHANGESET_ABORT; };
  ASSERT_EQ(sqlite3changeset_apply(c.raw(), static_cast<int>(undo.size()), undo.data(), nullptr,
                                   abort_on_conflict, nullptr),
            SQLITE_OK);
  EXPECT_EQ(c.Column("SELECT id || ':' || bal FROM acct ORDER BY id"),
            (Ids{"1:100", "2:100", "3:100"}));
}

// ------------------------------------------------------ SqliteResource

template <typename T>
T Wait(std::future<T> f) {
  EXPECT_EQ(f.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "no callback";
  return f.get();
}

// The production resource opens on the VFS by URI, unchanged. Its worker
// thread calls the VFS only between our waits, so one thread at a time.
// A branch prepared and made durable survives a power loss as PREPARED, with
// its row lock, and commits after recovery.
TEST(SimVfsTest, SqliteResourceRecoversAPreparedBranchAfterPowerLoss) {
  Node n(10);
  {
    Conn c(n.vfs, "bank_a.db");
    ASSERT_EQ(c.Exec("PRAGMA journal_mode=WAL"), SQLITE_OK);
    CommitDurably(n, c, "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER);"
                        "INSERT INTO accounts VALUES(1, 100), (2, 100);");
  }
  const std::string uri = std::string("file:/bank_a.db?vfs=") + n.vfs.name();
  const TxId txid = MakeTxId(3, 7);
  proto::Statement debit;
  debit.sql = "UPDATE accounts SET balance = balance - 40 WHERE id = 1";
  {
    auto r = participant::SqliteResource::Open("bank_a", uri);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE((*r)->Recover().ok());
    std::promise<participant::ExecuteResult> executed;
    (*r)->Execute(txid, {debit}, [&](participant::ExecuteResult e) { executed.set_value(std::move(e)); });
    ASSERT_OK(Wait(executed.get_future()).status);
    std::promise<Status> prepared;
    (*r)->Prepare(txid, participant::PrepareInfo{}, [&](Status s) { prepared.set_value(s); });
    ASSERT_OK(Wait(prepared.get_future()));
    // The resource called back at its COMMIT; in the simulator the vote may
    // leave only when the simulated sync is done.
    bool durable = false;
    n.vfs.WhenDurable([&durable] { durable = true; });
    n.Settle();
    ASSERT_TRUE(durable);
    n.vfs.PowerLoss();
  }  // the resource closes on a dead disk
  n.vfs.PowerOn();
  auto r = participant::SqliteResource::Open("bank_a", uri);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto recovered = (*r)->Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].txid, txid);
  EXPECT_EQ((*recovered)[0].state, participant::BranchState::kPrepared);
  EXPECT_EQ((*r)->locks_held(), 1u);
  std::promise<Status> committed;
  (*r)->Commit(txid, [&](Status s) { committed.set_value(s); });
  ASSERT_OK(Wait(committed.get_future()));
  n.Settle();
  EXPECT_EQ((*r)->locks_held(), 0u);
  Conn c(n.vfs, "bank_a.db");
  EXPECT_EQ(c.Column("SELECT balance FROM accounts ORDER BY id"), (Ids{"60", "100"}));
}

// ------------------------------- SqliteResource driven by the simulation

// How a simulated node runs the production resource: group commits as
// simulation events (no thread), callbacks past SimVfs::WhenDurable, and the
// virtual clock for every clock the resource reads.
class SimExecutor : public participant::Executor {
 public:
  explicit SimExecutor(World* world) : world_(world) {}
  void Post(std::function<void()> task) override { world_->After(0, std::move(task)); }

 private:
  World* world_;
};

constexpr Micros kSimWallEpoch = 1767225600 * kSeconds;  // 2026-01-01T00:00:00Z, as xCurrentTime

participant::SqliteResourceOptions SimResourceOptions(Node& n, SimExecutor* ex, bool barrier) {
  participant::SqliteResourceOptions o;
  o.executor = ex;
  if (barrier) {
    SimVfs* vfs = &n.vfs;
    o.durability_barrier = [vfs](std::function<void()> deliver) {
      vfs->WhenDurable(std::move(deliver));
    };
  }
  World* w = &n.world;
  o.clock = [w] { return w->now(); };
  o.wall_clock = [w] { return kSimWallEpoch + w->now(); };
  return o;
}

std::unique_ptr<participant::SqliteResource> OpenSimResource(Node& n, SimExecutor* ex,
                                                             bool barrier = true) {
  auto r = participant::SqliteResource::Open(
      "bank_a", std::string("file:/bank_a.db?vfs=") + n.vfs.name(),
      SimResourceOptions(n, ex, barrier));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

void CreateBank(Node& n) {
  Conn c(n.vfs, "bank_a.db");
  ASSERT_EQ(c.Exec("PRAGMA journal_mode=WAL"), SQLITE_OK);
  CommitDurably(n, c, "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER);"
                      "INSERT INTO accounts VALUES(1, 100), (2, 100), (3, 100);");
}

proto::Statement Debit(int id, int amount) {
  proto::Statement st;
  st.sql = "UPDATE accounts SET balance = balance - " + std::to_string(amount) +
           " WHERE id = " + std::to_string(id);
  return st;
}

struct Vote {
  bool executed = false;
  bool voted = false;
  bool sync_pending_at_vote = false;  // the vote left before its data was durable
};

// Execute, then Prepare; runs the world until the Prepare group's COMMIT has
// issued its xSync (the simulated fsync is under way).
void ExecuteAndStartPrepare(Node& n, participant::SqliteResource& r, const TxId& txid, Vote* v) {
  r.Execute(txid, {Debit(1, 40)}, [v](participant::ExecuteResult e) {
    EXPECT_OK(e.status);
    v->executed = true;
  });
  EXPECT_FALSE(v->executed);  // never inside the call
  n.Settle();
  ASSERT_TRUE(v->executed);
  r.Prepare(txid, participant::PrepareInfo{}, [&n, v](Status s) {
    EXPECT_OK(s);
    v->voted = true;
    v->sync_pending_at_vote = n.vfs.sync_pending();
  });
  EXPECT_FALSE(v->voted);
  n.world.RunUntil(n.world.now() + kSeconds, [&n] { return n.vfs.sync_pending(); });
  ASSERT_TRUE(n.vfs.sync_pending()) << "the Prepare group issued no sync";
}

TEST(SimVfsTest, SqliteResourceOnTheSimulationVotesOnlyOnceThePrepareIsDurable) {
  Node n(20);
  CreateBank(n);
  const TxId txid = MakeTxId(3, 7);
  Vote v;
  {
    SimExecutor ex(&n.world);
    auto r = OpenSimResource(n, &ex);
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Recover().ok());
    ExecuteAndStartPrepare(n, *r, txid, &v);
    EXPECT_FALSE(v.voted);  // committed locally, the simulated sync not done
    n.Settle();
    ASSERT_TRUE(v.voted);
    EXPECT_FALSE(v.sync_pending_at_vote);
    EXPECT_EQ(n.vfs.stats().syncs_durable, n.vfs.stats().syncs_issued);
    n.vfs.PowerLoss();  // right after the vote: the vote must hold
  }
  n.vfs.PowerOn();
  SimExecutor ex(&n.world);
  auto r = OpenSimResource(n, &ex);
  ASSERT_NE(r, nullptr);
  auto recovered = r->Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].txid, txid);
  EXPECT_EQ((*recovered)[0].state, participant::BranchState::kPrepared);
  std::optional<Status> committed;
  r->Commit(txid, [&committed](Status s) { committed = s; });
  n.Settle();
  ASSERT_TRUE(committed.has_value());
  ASSERT_OK(*committed);
  r.reset();
  Conn c(n.vfs, "bank_a.db");
  EXPECT_EQ(c.Column("SELECT balance FROM accounts ORDER BY id"), (Ids{"60", "100", "100"}));
}

// Without the barrier the same run votes while the sync is still under way:
// what the barrier exists to prevent (and what the test above would catch).
TEST(SimVfsTest, SqliteResourceWithoutTheBarrierVotesBeforeTheSync) {
  Node n(20);
  CreateBank(n);
  SimExecutor ex(&n.world);
  auto r = OpenSimResource(n, &ex, /*barrier=*/false);
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->Recover().ok());
  Vote v;
  ExecuteAndStartPrepare(n, *r, MakeTxId(3, 7), &v);
  n.Settle();
  ASSERT_TRUE(v.voted);
  EXPECT_TRUE(v.sync_pending_at_vote);
}

// A power loss while the Prepare's sync is under way loses the PREPARED
// record, and the vote never leaves.
TEST(SimVfsTest, SqliteResourcePowerLossBeforeTheSyncLosesThePrepareAndTheVote) {
  Node n(21);
  CreateBank(n);
  const TxId txid = MakeTxId(3, 7);
  Vote v;
  {
    SimExecutor ex(&n.world);
    auto r = OpenSimResource(n, &ex);
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(r->Recover().ok());
    ExecuteAndStartPrepare(n, *r, txid, &v);
    n.vfs.PowerLoss();
    n.Settle();
    EXPECT_FALSE(v.voted);
  }  // the crashed node's resource closes on the dead disk
  n.Settle();
  EXPECT_FALSE(v.voted);
  n.vfs.PowerOn();
  SimExecutor ex(&n.world);
  auto r = OpenSimResource(n, &ex);
  ASSERT_NE(r, nullptr);
  auto recovered = r->Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  for (const auto& b : *recovered) {
    EXPECT_NE(b.state, participant::BranchState::kPrepared);
    std::optional<Status> rolled;
    r->Rollback(b.txid, [&rolled](Status s) { rolled = s; });
    n.Settle();
    ASSERT_TRUE(rolled.has_value());
    EXPECT_OK(*rolled);
  }
  r.reset();
  Conn c(n.vfs, "bank_a.db");
  EXPECT_EQ(c.Column("SELECT balance FROM accounts ORDER BY id"), (Ids{"100", "100", "100"}));
}

struct ResourceRun {
  uint64_t digest = 0;
  std::string db, wal;
  std::vector<std::string> branches;  // txid:state:updated
};

// Transactions of every kind through the resource on the simulation, with
// time passing (purges included), then a power loss and recovery.
ResourceRun RunResourceOnce(uint64_t seed) {
  ResourceRun out;
  Node n(seed);
  CreateBank(n);
  {
    SimExecutor ex(&n.world);
    auto r = OpenSimResource(n, &ex);
    if (r == nullptr) return out;
    EXPECT_TRUE(r->Recover().ok());
    int done = 0;
    for (int i = 1; i <= 12; ++i) {
      const TxId t = MakeTxId(1, i);
      auto count = [&done](Status s) {
        EXPECT_OK(s);
        ++done;
      };
      if (i % 3 == 0) {
        r->ExecuteAndPrepare(t, {Debit(1 + i % 3, 1)}, {},
                             [&, t, count](participant::ExecuteResult e) {
                               count(e.status);
                               r->Commit(t, count);
                             });
      } else {
        r->Execute(t, {Debit(1 + i % 3, 1)}, [&, t, i, count](participant::ExecuteResult e) {
          count(e.status);
          if (i % 3 == 1) {
            r->Rollback(t, count);
          } else {
            r->Prepare(t, {}, [&, t, count](Status s) {
              count(s);
              r->Commit(t, count);
            });
          }
        });
      }
      n.world.RunUntil(n.world.now() + 7 * kSeconds);  // past purge intervals
    }
    n.world.RunUntil(n.world.now() + 11 * 60 * kSeconds);  // past the retention
    // A durable group: its purge of the old final rows survives the power loss.
    std::optional<Status> last;
    r->ExecuteAndPrepare(MakeTxId(2, 1), {Debit(3, 1)}, {}, [&last](participant::ExecuteResult e) {
      last = e.status;
    });
    n.Settle();
    EXPECT_EQ(done, 4 * 2 + 4 * 2 + 4 * 3);
    EXPECT_TRUE(last.has_value() && last->ok());
    n.vfs.PowerLoss();
  }
  n.vfs.PowerOn();
  {
    SimExecutor ex(&n.world);
    auto r = OpenSimResource(n, &ex);
    if (r == nullptr) return out;
    auto rec = r->Recover();
    EXPECT_TRUE(rec.ok());
  }
  n.Settle();
  Conn c(n.vfs, "bank_a.db");
  out.branches = c.Column("SELECT txid || ':' || state || ':' || updated FROM txc_branches "
                          "ORDER BY txid");
  out.db = n.vfs.VolatileBytes("/bank_a.db").value_or("");
  out.wal = n.vfs.VolatileBytes("/bank_a.db-wal").value_or("");
  out.digest = n.vfs.DurableDigest();
  return out;
}

TEST(SimVfsTest, SqliteResourceOnTheSimulationIsDeterministic) {
  ResourceRun a = RunResourceOnce(42), b = RunResourceOnce(42);
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_TRUE(a.db == b.db) << "database files differ";
  EXPECT_TRUE(a.wal == b.wal) << "WAL files differ";
  EXPECT_EQ(a.branches, b.branches);
  EXPECT_FALSE(a.db.empty());
  // `updated` is the virtual wall clock (ms), and the purge ran on the
  // virtual clocks: the early final rows are gone, the recent ones kept.
  ASSERT_FALSE(a.branches.empty());
  for (const std::string& row : a.branches) {
    int64_t updated = std::stoll(row.substr(row.rfind(':') + 1));
    EXPECT_GE(updated, kSimWallEpoch / kMillis) << row;
    EXPECT_LT(updated, kSimWallEpoch / kMillis + 24 * 3600 * 1000) << row;
  }
  ASSERT_EQ(a.branches.size(), 1u) << ::testing::PrintToString(a.branches);
  EXPECT_EQ(a.branches[0].substr(0, 6), "2.1:2:");  // the PREPARED one
}

}  // namespace
}  // namespace txc::sim
