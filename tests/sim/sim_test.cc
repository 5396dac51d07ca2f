// The deterministic simulator: its building blocks (disk, network, the bank
// in SQLite as the checker reads it), replay determinism, clean runs over many heavy-fault seeds, and
// proof that every injected bug is caught.
#include <sqlite3.h>

#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "participant/sqlite_resource.h"
#include "sim/bank.h"
#include "sim/checker.h"
#include "sim/simulation.h"
#include "sim/sqlite_bank.h"
#include "sim/world.h"

namespace txc::sim {
namespace {

// Under sanitizers a seed runs many times slower: tests/CMakeLists.txt defines
// TXC_SIM_SANITIZED when TXC_SANITIZE is set, and the clean-run tests then run
// a tenth of their seeds (at least one), so each stays well inside ctest's
// timeout. Tests pinned to a seed, and the injected-bug tests (they stop at
// the first seed that catches the bug), keep their seeds.
#ifdef TXC_SIM_SANITIZED
constexpr uint64_t kSeedDivisor = 10;
#else
constexpr uint64_t kSeedDivisor = 1;
#endif

// A heavy group seed that catches resurrected-decide, for the sanitized
// SimBugTest's shortened scan (it moves when the fault schedule changes).
constexpr uint64_t kResurrectedDecideSeed = 97;
// Likewise for empty-disk-votes.
constexpr uint64_t kEmptyDiskVotesSeed = 30;
// Likewise for persist-before-install: a replica rejoins from an empty disk
// by installing the leader's snapshot and crashes before the image is synced
// (found when the leader stopped re-sending young ACCEPTs moved the schedule).
constexpr uint64_t kPersistBeforeInstallSeed = 247;
// The first heavy seed (one replica) that catches skip-undo-on-conflict: a
// renamed member's row lost by an undo (SimUndoTest).
constexpr uint64_t kSkipUndoOnConflictSeed = 10;

// The last seed of a run of seeds from `lo` that would end at `hi` unsanitized.
uint64_t LastSeed(uint64_t lo, uint64_t hi) {
  return lo + std::max<uint64_t>(1, (hi - lo + 1) / kSeedDivisor) - 1;
}

// How many times `what` occurs in `text` (trace lines).
size_t CountOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = 0; (p = text.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

// ------------------------------------------------------------ building blocks

TEST(DiskTest, CrashLosesEveryUnsyncedWrite) {
  World w(1, nullptr, false);
  Disk disk(&w, DiskOptions());
  std::vector<int> durable;
  disk.Write([&] { durable.push_back(1); });
  bool synced = false;
  disk.Sync([&] { synced = true; });
  disk.Write([&] { durable.push_back(2); });  // after the sync started: not covered
  EXPECT_FALSE(synced) << "a sync completes as an event, never inside Sync()";
  w.RunUntil(10 * kMillis);
  EXPECT_TRUE(synced);
  EXPECT_EQ(durable, std::vector<int>({1}));
  disk.Crash();
  disk.Sync([] {});
  w.RunUntil(20 * kMillis);
  EXPECT_EQ(durable, std::vector<int>({1})) << "write 2 was never synced and died with the node";
}

TEST(DiskTest, GroupCommitSharesOneSyncAmongWaiters) {
  World w(2, nullptr, false);
  Disk disk(&w, DiskOptions());
  int done = 0;
  for (int i = 0; i < 5; ++i) {
    disk.Write([] {});
    disk.Sync([&] { ++done; });
  }
  w.RunUntil(10 * kMillis);
  EXPECT_EQ(done, 5);
  EXPECT_EQ(disk.syncs(), 2u) << "one sync in flight, every later request shares the next one";
}

TEST(DiskTest, LyingDiskAcknowledgesButLosesDataOnCrash) {
  World w(3, nullptr, false);
  DiskOptions o;
  o.lying = true;
  Disk disk(&w, o);
  bool durable = false, acked = false;
  disk.Write([&] { durable = true; });
  disk.Sync([&] { acked = true; });
  w.RunUntil(1 * kMillis);
  EXPECT_TRUE(acked);
  EXPECT_FALSE(durable);
  disk.Crash();
  w.RunUntil(1 * kSeconds);
  EXPECT_FALSE(durable);
}

TEST(NetworkTest, PartitionTimesOutAndDownNodeRefuses) {
  World w(4, nullptr, false);
  Network net(&w, NetOptions());
  int a = net.AddNode("a");
  int b = net.AddNode("b");
  net.Finalize();
  auto serve = [](std::function<void(int)> reply) { reply(7); };
  std::vector<std::string> got;
  auto done = [&](Status s, int v) { got.push_back(s.ok() ? std::to_string(v) : Status::CodeName(s.code())); };
  net.Call<int>(a, b, 100 * kMillis, false, serve, done);
  w.RunUntil(w.now() + 200 * kMillis);
  int cut = net.Partition(a, b, true);
  net.Call<int>(a, b, 100 * kMillis, false, serve, done);
  w.RunUntil(w.now() + 200 * kMillis);
  net.Heal(cut);
  net.Down(b);
  net.Call<int>(a, b, 100 * kMillis, false, serve, done);
  w.RunUntil(w.now() + 200 * kMillis);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "7");
  EXPECT_EQ(got[1], Status::CodeName(Status::kTimeout));
  EXPECT_EQ(got[2], Status::CodeName(Status::kUnavailable));
}

// The agents' bank in SQLite on a node's SimVfs, as the simulated agents keep
// it, and how the checker reads it back (sim/sqlite_bank.h).
class SqliteBankTest : public ::testing::Test {
 protected:
  class Executor : public participant::Executor {
   public:
    explicit Executor(World* w) : w_(w) {}
    void Post(std::function<void()> task) override { w_->After(0, std::move(task)); }

   private:
    World* w_;
  };

  SqliteBankTest() : world_(5, nullptr, false), disk_(&world_, DiskOptions()),
                     vfs_(&world_, &disk_, "sqlite-bank-test"), executor_(&world_) {
    BankImage initial;
    initial.accounts = {{1, 100}, {2, 50}};
    initial.members = {{1, "m1"}, {2, "m2"}};  // the pool: m1, m2, m3
    EXPECT_TRUE(CreateBankDb(vfs_, "bank_a", initial).ok());
    Settle();
  }
  ~SqliteBankTest() override {
    resource_.reset();
    if (reader_ != nullptr) sqlite3_close_v2(reader_);
  }

  void Settle() { world_.RunUntil(world_.now() + 100 * kMillis); }

  void OpenResource() {
    participant::SqliteResourceOptions o;
    o.executor = &executor_;
    SimVfs* vfs = &vfs_;
    o.durability_barrier = [vfs](std::function<void()> deliver) { vfs->WhenDurable(std::move(deliver)); };
    o.clock = [this] { return world_.now(); };
    o.wall_clock = [this] { return world_.now(); };
    auto r = participant::SqliteResource::Open("bank_a", BankDbUri(vfs_, "bank_a"), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    resource_ = std::move(*r);
    ASSERT_TRUE(resource_->Recover().ok());
    ASSERT_EQ(sqlite3_open_v2(BankDbPath("bank_a").c_str(), &reader_, SQLITE_OPEN_READWRITE,
                              vfs_.name()),
              SQLITE_OK);
  }

  BankImage Live() {
    BankImage img;
    Status s = ReadBankImage(reader_, &img);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return img;
  }
  BankImage Durable() {
    BankImage img;
    Status s = ReadDurableBankImage(vfs_, "bank_a", &img);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return img;
  }

  static proto::Statement Stmt(const char* sql, std::vector<int64_t> params) {
    proto::Statement s;
    s.sql = sql;
    for (int64_t p : params) {
      proto::Value v;
      v.__set_i(p);
      s.params.push_back(v);
    }
    s.__set_expect_rows(1);
    return s;
  }

  static proto::Statement Debit(int64_t amount, int64_t id) {
    proto::Statement s;
    s.sql = kDebitSql;
    proto::Value a, i;
    a.__set_i(amount);
    i.__set_i(id);
    s.params = {a, i, a};
    s.__set_expect_rows(1);
    return s;
  }

  World world_;
  Disk disk_;
  SimVfs vfs_;
  Executor executor_;
  std::unique_ptr<participant::SqliteResource> resource_;
  sqlite3* reader_ = nullptr;
};

// The workload's debit is valid SQL on the bank's schema, and an open
// branch's work is read back from its redo changeset: the checker subtracts
// exactly that from the balances.
TEST_F(SqliteBankTest, LiveImageHoldsAnOpenBranchWithItsDelta) {
  OpenResource();
  TxId t = MakeTxId(1, 1);
  Status got = Status::Internal("no callback");
  resource_->Execute(t, {Debit(30, 1)}, [&](participant::ExecuteResult r) { got = r.status; });
  Settle();
  ASSERT_TRUE(got.ok()) << got.ToString();
  BankImage img = Live();
  EXPECT_EQ(img.accounts.at(1), 70);
  EXPECT_EQ(img.Sum(), 120);
  ASSERT_EQ(img.open.count(t), 1u);
  EXPECT_EQ(img.branches.at(t).state, participant::BranchState::kActive);
  EXPECT_EQ(img.branches.at(t).Delta(), -30);

  got = Status::Internal("no callback");
  resource_->Rollback(t, [&](Status s) { got = s; });
  Settle();
  ASSERT_TRUE(got.ok()) << got.ToString();
  img = Live();
  EXPECT_EQ(img.accounts.at(1), 100);
  EXPECT_EQ(img.open.count(t), 0u);
  EXPECT_EQ(img.branches.at(t).state, participant::BranchState::kAborted);
}

// The workload's rename is valid SQL on the bank's schema: it claims the one
// free email (m3) for a new row and deletes another row, so an open rename
// leaves the count of members as it was, and its rollback restores the row.
TEST_F(SqliteBankTest, RenameKeepsTheCountOfMembersAndItsRollbackRestoresTheRow) {
  OpenResource();
  TxId t = MakeTxId(1, 1);
  Status got = Status::Internal("no callback");
  resource_->Execute(t, {Stmt(kClaimEmailSql, {10}), Stmt(kReleaseEmailSql, {10, 0})},
                     [&](participant::ExecuteResult r) { got = r.status; });
  Settle();
  ASSERT_TRUE(got.ok()) << got.ToString();
  BankImage img = Live();
  EXPECT_EQ(img.members, (std::map<int64_t, std::string>{{2, "m2"}, {10, "m3"}}));
  ASSERT_EQ(img.open.count(t), 1u);
  EXPECT_EQ(img.branches.at(t).member_delta, 0);
  EXPECT_EQ(img.branches.at(t).Delta(), 0);

  got = Status::Internal("no callback");
  resource_->Rollback(t, [&](Status s) { got = s; });
  Settle();
  ASSERT_TRUE(got.ok()) << got.ToString();
  EXPECT_EQ(Live().members, (std::map<int64_t, std::string>{{1, "m1"}, {2, "m2"}}));
}

// The durable image is exactly what the node finds after a power loss: a
// PREPARED branch (synced before its vote) is in it, a commit no sync covered
// is not, though a live connection sees it.
TEST_F(SqliteBankTest, DurableImageIsWhatAPowerLossLeaves) {
  OpenResource();
  TxId t = MakeTxId(1, 1);
  Status got = Status::Internal("no callback");
  resource_->ExecuteAndPrepare(t, {Debit(30, 1)}, participant::PrepareInfo(),
                               [&](participant::ExecuteResult r) { got = r.status; });
  Settle();
  ASSERT_TRUE(got.ok()) << got.ToString();
  ASSERT_EQ(sqlite3_exec(reader_, "PRAGMA synchronous=OFF; UPDATE accounts SET balance = 0 WHERE id = 2",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  Settle();
  EXPECT_EQ(Live().accounts.at(2), 0);
  BankImage durable = Durable();
  EXPECT_EQ(durable.accounts.at(1), 70);
  EXPECT_EQ(durable.accounts.at(2), 50) << "a commit no sync covered is not durable";
  ASSERT_EQ(durable.open.count(t), 1u);
  EXPECT_EQ(durable.branches.at(t).state, participant::BranchState::kPrepared);
  EXPECT_EQ(durable.branches.at(t).Delta(), -30);

  resource_.reset();
  vfs_.PowerLoss();
  sqlite3_close_v2(reader_);
  reader_ = nullptr;
  vfs_.PowerOn();
  OpenResource();
  BankImage after = Live();
  EXPECT_EQ(after.accounts, durable.accounts);
  EXPECT_EQ(after.open, durable.open);
}

// A resource's state may show a branch COMMITTED before its agent reported the
// commit (the SQLite resource commits, then waits for the sync): the work of
// that transaction's branches still open elsewhere is then committed state.
TEST(CheckerTest, BankSumCountsATransactionCommittedInSomeResourceState) {
  World w(6, nullptr, false);
  Checker c(&w, "txsim --seed 6", nullptr);
  TxId t = MakeTxId(1, 1);
  BankImage a, b;  // a transfer of 10 from a to b
  a.accounts = {{1, 90}};
  BankBranch debit;
  debit.state = participant::BranchState::kPrepared;
  debit.changes = {{RowChange{1, 100, 90}}};
  a.PutBranch(t, debit);
  b.accounts = {{1, 110}};
  BankBranch credit;
  credit.state = participant::BranchState::kPrepared;
  credit.changes = {{RowChange{1, 100, 110}}};
  b.PutBranch(t, credit);
  c.SetBank([&](const Checker::BankVisitor& v) { v("bank_a", a); v("bank_b", b); }, 200);
  c.CheckBankSum("both prepared");
  EXPECT_EQ(c.violations(), 0) << c.first();
  credit.state = participant::BranchState::kCommitted;
  b.PutBranch(t, credit);  // committed in b's state, not reported yet
  c.CheckBankSum("b committed");
  EXPECT_EQ(c.violations(), 0) << c.first();
  a.accounts = {{1, 85}};  // 5 more taken from a by nobody
  c.CheckBankSum("money lost");
  EXPECT_EQ(c.violations(), 1);
}

// Members: each resource's committed count of members is its initial one; an
// open branch's rows (inserted or deleted) are not committed state yet.
TEST(CheckerTest, CommittedCountOfMembersIsConserved) {
  World w(6, nullptr, false);
  Checker c(&w, "txsim --seed 6", nullptr);
  TxId t = MakeTxId(1, 1);
  BankImage a;
  a.members = {{1, "m1"}, {2, "m2"}, {5, "m3"}};  // t inserted 5 and has not deleted yet
  BankBranch open;
  open.member_delta = 1;
  a.PutBranch(t, open);
  c.SetBank([&](const Checker::BankVisitor& v) { v("bank_a", a); }, 0, {{"bank_a", 2}});
  c.CheckBankSum("an open insert");
  EXPECT_EQ(c.violations(), 0) << c.first();
  open.state = participant::BranchState::kAborted;
  a.PutBranch(t, open);
  a.members = {{2, "m2"}};  // rolled back, but row 1 (which another branch deleted) never came back
  c.CheckBankSum("a lost row");
  EXPECT_EQ(c.violations(), 1);
  EXPECT_NE(c.first().find("bank_a holds 1 committed members, not 2"), std::string::npos) << c.first();
}

// A state machine restored from a snapshot at slot S holds every slot up to
// S; two images of one slot that differ mean the replicas diverged.
TEST(CheckerTest, SnapshotImagesOfOneSlotAgreeAndCountAsApplied) {
  World w(6, nullptr, false);
  for (const char* n : {"coord1", "coord2", "coord3"}) w.AddNode(n);
  Checker c(&w, "txsim --seed 6", nullptr);
  c.OnSnapshot(0, 16, "image-16");
  c.OnInstalled(1, 16, "image-16");
  c.OnRestored(0, 16, "image-16");
  c.OnReplayed(1, 16);
  EXPECT_EQ(c.violations(), 0);
  c.OnInstalled(2, 16, "image-16-diverged");
  EXPECT_EQ(c.violations(), 1);
  EXPECT_NE(c.first().find("violation: agreement"), std::string::npos) << c.first();
  c.OnInstalled(2, 40, "image-40");
  c.OnReplayed(2, 32);  // its state held slot 40: a log ending at 32 lost slots
  EXPECT_EQ(c.violations(), 2);
}

// A branch that reached PREPARED rolls back only once its agent heard the
// ABORTED decision: a DECIDE(ABORTED) whenever it came, or an outcome answer
// ABORTED heard once the branch was PREPARED. An answer heard while ACTIVE
// (the agent's own abort, queued before the vote) justifies nothing.
TEST(CheckerTest, PreparedBranchRollsBackOnlyOnAnAbortedDecisionHeardAfterItsVote) {
  World w(6, nullptr, false);
  for (const char* n : {"coord1", "agent1", "agent2"}) w.AddNode(n);
  Checker c(&w, "txsim --seed 6", nullptr);
  const TxId t1 = MakeTxId(1, 1), t2 = MakeTxId(1, 2), t3 = MakeTxId(1, 3), t4 = MakeTxId(1, 4);
  // An ACTIVE branch may always roll back.
  c.OnBranchAborted(1, "bank_a", t1, true);
  // A DECIDE(ABORTED), even one that arrived before the vote (queued behind
  // the PREPARE), settles it.
  c.OnAbortDecisionHeard(1, t2);
  c.OnBranchPrepared(1, "bank_a", t2);
  c.OnBranchAborted(1, "bank_a", t2, true);
  // An outcome answer ABORTED heard once PREPARED settles it.
  c.OnBranchPrepared(1, "bank_a", t3);
  c.OnAbortedOutcomeHeard(1, t3);
  c.OnBranchAborted(1, "bank_a", t3, true);
  EXPECT_EQ(c.violations(), 0) << c.first();
  // Heard while ACTIVE (before the vote), or at another agent: no decision
  // reached this PREPARED branch.
  c.OnAbortedOutcomeHeard(1, t4);
  c.OnBranchPrepared(1, "bank_a", t4);
  c.OnAbortDecisionHeard(2, t4);
  c.OnBranchAborted(1, "bank_a", t4, true);
  EXPECT_EQ(c.violations(), 1);
  EXPECT_NE(c.first().find("violation: atomicity"), std::string::npos) << c.first();
  EXPECT_NE(c.first().find("after it voted YES"), std::string::npos) << c.first();
}

TEST(FaultCountsTest, LineNamesEveryClassInOrderAndSums) {
  FaultCounts a, sum;
  a.crash = 2;
  a.loss = 5;
  a.snapshot_install = 1;
  sum += a;
  sum += a;
  EXPECT_EQ(sum.Line(),
            "FAULTS crash=4 power=0 partition=0 loss=10 disk_error=0 disk_full=0 empty_disk=0 "
            "snapshot_install=2 retention=0 slow_statement=0 disk_stall=0 resolve=0 forged=0");
}

// --------------------------------------------------------------- whole runs

SimOptions Heavy(uint64_t seed) {
  SimOptions o;
  o.seed = seed;
  o.faults = FaultLevel::kHeavy;
  return o;
}

TEST(SimDeterminismTest, SameSeedGivesTheSameTrace) {
  SimOptions o = Heavy(42);
  o.hash_trace = true;
  SimResult a = RunSeed(o);
  SimResult b = RunSeed(o);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.committed, b.committed);
  o.seed = 43;
  EXPECT_NE(RunSeed(o).trace_hash, a.trace_hash);
}

TEST(SimDeterminismTest, TraceTextIsIdenticalAcrossRuns) {
  std::ostringstream one, two;
  SimOptions o = Heavy(7);
  o.trace = &one;
  (void)RunSeed(o);
  o.trace = &two;
  (void)RunSeed(o);
  EXPECT_FALSE(one.str().empty());
  EXPECT_EQ(one.str(), two.str());
}

// Runs seeds [lo, hi] and expects no violation; returns the transactions run.
// Under sanitizers, a tenth of them (LastSeed).
// How agents treat decisions from callers not attributable to the group.
enum class Decisions { kTrusted, kConfirmedOrSigned, kConfirmed, kForged };

void ExpectClean(uint64_t lo, uint64_t hi, FaultLevel faults, int replicas = 1,
                 const std::string& protocol = "2pc", Decisions decisions = Decisions::kTrusted) {
  hi = LastSeed(lo, hi);
  int txns = 0, committed = 0;
  uint64_t forged = 0;
  for (uint64_t s = lo; s <= hi; ++s) {
    std::ostringstream report;
    SimOptions o;
    o.seed = s;
    o.faults = faults;
    o.replicas = replicas;
    o.protocol = protocol;
    o.confirm_decisions = decisions != Decisions::kTrusted;
    o.sign_decisions = decisions != Decisions::kConfirmed;
    o.forge_decisions = decisions == Decisions::kForged;
    o.report = &report;
    SimResult r = RunSeed(o);
    ASSERT_EQ(r.violations, 0) << report.str();
    if (decisions == Decisions::kForged) forged += r.faults.forged;
    ASSERT_GE(r.txns, 100) << "seed " << s;
    txns += r.txns;
    committed += r.committed;
  }
  EXPECT_GT(committed, 0);
  if (decisions == Decisions::kForged) EXPECT_GT(forged, 0u) << "the forger never found a branch in doubt";
  std::printf("seeds %llu..%llu (%s, %d replicas, %s): %d txns, %d committed\n",
              static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi),
              FaultLevelName(faults), replicas, protocol.c_str(), txns, committed);
}

// ------------------------------------------------- group mode (Multi-Paxos)

TEST(SimPaxosTest, HeavySeeds1To150With3Replicas) { ExpectClean(1, 150, FaultLevel::kHeavy, 3); }
TEST(SimPaxosTest, HeavySeeds151To300With3Replicas) { ExpectClean(151, 300, FaultLevel::kHeavy, 3); }
TEST(SimPaxosTest, HeavySeeds301To450With3Replicas) { ExpectClean(301, 450, FaultLevel::kHeavy, 3); }
TEST(SimPaxosTest, HeavySeeds1To60With5Replicas) { ExpectClean(1, 60, FaultLevel::kHeavy, 5); }
TEST(SimPaxosTest, LightSeeds1To60With3Replicas) { ExpectClean(1, 60, FaultLevel::kLight, 3); }
TEST(SimPaxosTest, NoFaultSeeds1To30With3Replicas) { ExpectClean(1, 30, FaultLevel::kNone, 3); }

TEST(SimPaxosTest, SameSeedGivesTheSameTrace) {
  SimOptions o = Heavy(42);
  o.replicas = 3;
  o.hash_trace = true;
  SimResult a = RunSeed(o);
  SimResult b = RunSeed(o);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.events, b.events);
  o.replicas = 1;
  EXPECT_NE(RunSeed(o).trace_hash, a.trace_hash);
}

// The heavy schedule of the group kills the leader and cuts replicas apart,
// one way too; the cores elect, step down and serve new epochs.
TEST(SimPaxosTest, HeavyScheduleKillsLeadersAndPartitionsOneWay) {
  int leader_crashes = 0, one_way = 0, epochs = 0;
  for (uint64_t s = 1; s <= 10; ++s) {
    std::ostringstream trace;
    SimOptions o = Heavy(s);
    o.replicas = 3;
    o.trace = &trace;
    ASSERT_EQ(RunSeed(o).violations, 0);
    std::string t = trace.str();
    for (size_t p = 0; (p = t.find("CRASH (the leader)", p)) != std::string::npos; ++p) ++leader_crashes;
    for (size_t p = 0; (p = t.find("-/-> ", p)) != std::string::npos; ++p) ++one_way;
    for (size_t p = 0; (p = t.find("serving epoch", p)) != std::string::npos; ++p) ++epochs;
  }
  EXPECT_GE(leader_crashes, 20);
  EXPECT_GE(one_way, 10);
  EXPECT_GE(epochs, 50);
}

// A DECIDE accepted only by an old leader can be chosen later, after a newer
// leader presumed its txid aborted: without the guard in TxnTable
// (resurrected-decide) a branch commits whose transaction was presumed
// aborted elsewhere. The seed that shows it moves whenever the fault schedule
// or the message pattern changes (38, 117, 30, 2, 32, 155, 76, 77, 68, 97 so far), so the test finds it.
TEST(SimPaxosTest, OldEpochDecideResurfacingIsIgnored) {
  // The first heavy seed that shows the bug must be clean with the guard:
  // scanning keeps this test meaningful when the schedule moves.
  uint64_t caught = 0;
  // Sanitized, a seed costs tens of times more: start at the known seed.
  const uint64_t from = kSeedDivisor > 1 ? kResurrectedDecideSeed : 1;
  for (uint64_t s = from; s <= 300 && caught == 0; ++s) {
    SimOptions o = Heavy(s);
    o.replicas = 3;
    o.bug = "resurrected-decide";
    if (RunSeed(o).violations > 0) caught = s;
  }
  ASSERT_GT(caught, 0u) << "resurrected-decide went unnoticed over heavy seeds 1..300";
  std::ostringstream report;
  SimOptions o = Heavy(caught);
  o.replicas = 3;
  o.report = &report;
  EXPECT_EQ(RunSeed(o).violations, 0) << "seed " << caught << ": " << report.str();
}

// Group mode compacts every Timing::snapshot_every slots: replicas that were
// down or cut off catch up by installing the leader's snapshot, replicas
// restart from their own, and the log's rules still hold.
TEST(SimPaxosTest, LaggingReplicasCatchUpBySnapshotInstall) {
  uint64_t installs = 0;
  size_t taken = 0, restored = 0;
  for (uint64_t s = 1; s <= 10; ++s) {
    std::ostringstream trace, report;
    SimOptions o = Heavy(s);
    o.replicas = 3;
    o.trace = &trace;
    o.report = &report;
    SimResult r = RunSeed(o);
    ASSERT_EQ(r.violations, 0) << report.str();
    installs += r.faults.snapshot_install;
    const std::string t = trace.str();
    taken += CountOf(t, "; log compacted");
    size_t boots = CountOf(t, "boot replica ");
    restored += boots - CountOf(t, ", snapshot at slot 0, ");
  }
  EXPECT_GT(installs, 5u);
  EXPECT_GT(taken, 50u);
  EXPECT_GT(restored, 5u) << "replicas restart from their own durable snapshot";
}

TEST(SimPaxosTest, GroupBugRunsWithThreeReplicasAndIsCaught) {
  std::ostringstream report;
  int failing = 0;
  for (uint64_t s = 1; s <= 20; ++s) {
    SimOptions o = Heavy(s);
    o.bug = "ack-before-durable-accept";
    o.report = &report;
    if (RunSeed(o).violations > 0) ++failing;
  }
  EXPECT_GT(failing, 0);
  EXPECT_NE(report.str().find("--replicas 3"), std::string::npos) << "the replay names the group mode";
  EXPECT_NE(report.str().find("violation: agreement"), std::string::npos);
}

// The FAULTS counters are what the trace shows happened, seed by seed.
TEST(SimFaultsTest, CountersMatchTheTrace) {
  FaultCounts sum;
  for (uint64_t s = 1; s <= 3; ++s) {
    for (int replicas : {1, 3}) {
      std::ostringstream trace;
      SimOptions o = Heavy(s);
      o.replicas = replicas;
      o.trace = &trace;
      SimResult r = RunSeed(o);
      ASSERT_EQ(r.violations, 0);
      const std::string t = trace.str();
      size_t power = CountOf(t, "CRASH (final power loss of every node)");
      EXPECT_EQ(r.faults.power, power) << "seed " << s;
      EXPECT_EQ(r.faults.crash,
                CountOf(t, "CRASH ") - power + CountOf(t, "client: crashes mid-transaction"))
          << "seed " << s;
      EXPECT_EQ(r.faults.partition, CountOf(t, "PARTITION ")) << "seed " << s;
      EXPECT_EQ(r.faults.snapshot_install, CountOf(t, "installs the leader's snapshot")) << "seed " << s;
      if (replicas == 1) {
        EXPECT_EQ(r.faults.snapshot_install, 0u);
      }
      EXPECT_EQ(r.faults.disk_error + r.faults.disk_full, CountOf(t, "DISK FAILED: ")) << "seed " << s;
      EXPECT_EQ(r.faults.disk_full, CountOf(t, "DISK FAILED: ENOSPC")) << "seed " << s;
      // An agent's resource names itself: "DISK FAILED: EIO on bank_a (...".
      EXPECT_EQ(r.faults.agent_disk_error, CountOf(t, "DISK FAILED: EIO on ")) << "seed " << s;
      EXPECT_EQ(r.faults.agent_disk_full, CountOf(t, "DISK FAILED: ENOSPC on ")) << "seed " << s;
      EXPECT_EQ(r.faults.slow_statement, CountOf(t, "SLOW STATEMENT interrupted")) << "seed " << s;
      EXPECT_EQ(r.faults.empty_disk, CountOf(t, "EMPTY DISK: ")) << "seed " << s;
      // One wiped replica is a group's fault; a lone coordinator never loses its log.
      if (replicas == 1) {
        EXPECT_EQ(r.faults.empty_disk, 0u);
      }
      EXPECT_EQ(static_cast<int>(r.faults.crash + r.faults.power),
                r.crashes + static_cast<int>(CountOf(t, "client: crashes mid-transaction")));
      sum += r.faults;
    }
  }
  EXPECT_GT(sum.crash, 0u);
  EXPECT_GT(sum.power, 0u);
  EXPECT_GT(sum.partition, 0u);
  EXPECT_GT(sum.loss, 0u);
  EXPECT_GT(sum.snapshot_install, 0u);
  // Late queries (and agents' queries) that reached txids the table forgot
  // after they ended (Timing keeps 8 ended transactions).
  EXPECT_GT(sum.retention, 0u);
  EXPECT_GT(sum.disk_error, 0u);
  EXPECT_GT(sum.disk_full, 0u);
  EXPECT_GT(sum.empty_disk, 0u);
  EXPECT_GT(sum.agent_disk_error + sum.agent_disk_full, 0u);
  EXPECT_GT(sum.slow_statement, 0u);
}

// Runaway statements: the workload's recursive CTE burns simulated CPU until
// the resource's own statement limit interrupts it (TIMEOUT); the branch is
// doomed, so a client that ignores the failure and commits is told ABORTED
// (the checker's atomicity rule for interrupted branches guards every seed).
TEST(SimSlowStatementTest, InterruptedBranchesVoteNoAndTheirTransactionsAbort) {
  size_t interrupted = 0, ignored = 0, voted_no = 0;
  // (Seeds 13, 18, 25 and 27 show a doomed branch's NO vote since the
  // clients reserve txids; none of 1..10 does.)
  for (uint64_t s = 1; s <= 20; ++s) {
    std::ostringstream trace, report;
    SimOptions o = Heavy(s);
    o.trace = &trace;
    o.report = &report;
    SimResult r = RunSeed(o);
    ASSERT_EQ(r.violations, 0) << report.str();
    const std::string t = trace.str();
    interrupted += r.faults.slow_statement;
    ignored += CountOf(t, "client: ignores the interrupted statement and goes on to commit");
    // Every transaction whose client carried on: never COMMITTED.
    std::istringstream lines(t);
    std::string line;
    std::set<std::string> carried_on;
    while (std::getline(lines, line)) {
      size_t at = line.find("txid=");
      if (at == std::string::npos) continue;
      std::string txid = line.substr(at, line.find(' ', at) - at);
      if (line.find("] agent") != std::string::npos && line.find(" vote no (") != std::string::npos &&
          line.find("was interrupted: the call ran past the resource's limit") != std::string::npos) {
        ++voted_no;
      }
      if (line.find("client: ignores the interrupted statement") != std::string::npos) {
        carried_on.insert(txid);
      } else if (carried_on.count(txid) && line.find("client: COMMITTED") != std::string::npos) {
        ADD_FAILURE() << "seed " << s << ": " << line;
      }
    }
  }
  EXPECT_GT(interrupted, 0u);
  EXPECT_GT(ignored, 0u);
  EXPECT_GT(voted_no, 0u) << "a doomed branch votes NO, naming the interrupted statement";
}

// Agents' storage faults: EIO at write or sync and ENOSPC surface as
// STORAGE_FAILED from the resource, which then refuses everything; the
// operator restarts the agent (unless a crash restarted it first), and the
// run stays clean (nothing voted or acknowledged before it was durable).
TEST(SimDiskFaultTest, FailedAgentResourcesAreRestartedByTheOperator) {
  size_t failed = 0, restarts = 0;
  for (uint64_t s = 1; s <= 8; ++s) {
    for (int replicas : {1, 3}) {
      std::ostringstream trace, report;
      SimOptions o = Heavy(s);
      o.replicas = replicas;
      o.trace = &trace;
      o.report = &report;
      SimResult r = RunSeed(o);
      ASSERT_EQ(r.violations, 0) << report.str();
      failed += r.faults.agent_disk_error + r.faults.agent_disk_full;
      // Agents' operator restarts (coordinators' say so too; count agents').
      std::istringstream lines(trace.str());
      std::string line;
      while (std::getline(lines, line)) {
        if (line.find("] agent") != std::string::npos &&
            line.find("CRASH (the operator restarts it after its disk failed)") != std::string::npos) {
          ++restarts;
        }
      }
    }
  }
  EXPECT_GT(failed, 0u);
  EXPECT_GT(restarts, 0u);
  EXPECT_LE(restarts, failed);
}

// Group mode's storage faults: a replica whose log fails stops (the others
// elect: Cluster::CheckElection would report a violation otherwise) and the
// operator restarts it; a replica restarted on an empty disk boots joining
// and votes again only once its rejoin is durable.
TEST(SimDiskFaultTest, FailedAndWipedReplicasAreReplacedAndRejoin) {
  size_t failed = 0, wiped = 0, joining_boots = 0, rejoined = 0, operator_restarts = 0;
  for (uint64_t s = 1; s <= 12; ++s) {
    std::ostringstream trace, report;
    SimOptions o = Heavy(s);
    o.replicas = 3;
    o.trace = &trace;
    o.report = &report;
    SimResult r = RunSeed(o);
    ASSERT_EQ(r.violations, 0) << report.str();
    const std::string t = trace.str();
    // Replicas' log stores (agents' failures name their resource: "... on bank_a").
    failed += CountOf(t, "DISK FAILED: ") - CountOf(t, "DISK FAILED: EIO on ") -
              CountOf(t, "DISK FAILED: ENOSPC on ");
    wiped += CountOf(t, "EMPTY DISK: ");
    joining_boots += CountOf(t, "; joining (started on an empty data directory)");
    rejoined += CountOf(t, "rejoined the group (durable)");
    operator_restarts += CountOf(t, "] coord1   CRASH (the operator restarts it after its disk failed)") +
                         CountOf(t, "] coord2   CRASH (the operator restarts it after its disk failed)") +
                         CountOf(t, "] coord3   CRASH (the operator restarts it after its disk failed)");
  }
  EXPECT_GT(failed, 0u);
  EXPECT_EQ(operator_restarts, failed) << "every failed log store is restarted by the operator";
  EXPECT_GT(wiped, 0u);
  EXPECT_GE(joining_boots, wiped) << "a wiped replica boots joining (a crash may interrupt a rejoin)";
  EXPECT_GT(rejoined, 0u);
}

// Runs cross the ended-transaction retention (8 kept in the simulator): late
// queries reach txids the table forgot but for their outcome, and the
// answers (checked by Checker::OnLateAnswer) include committed ones.
TEST(SimRetentionTest, LateQueriesReachForgottenCommittedTxids) {
  uint64_t reached = 0;
  size_t committed = 0, aborted = 0;
  for (uint64_t s = 1; s <= 6; ++s) {
    std::ostringstream trace, report;
    SimOptions o = Heavy(s);
    o.trace = &trace;
    o.report = &report;
    SimResult r = RunSeed(o);
    ASSERT_EQ(r.violations, 0) << report.str();
    reached += r.faults.retention;
    committed += CountOf(trace.str(), "client: late outcome committed") +
                 CountOf(trace.str(), "client: late commit answered committed");
    aborted += CountOf(trace.str(), "client: late outcome aborted");
  }
  EXPECT_GT(reached, 0u);
  EXPECT_GT(committed, 0u);
  EXPECT_GT(aborted, 0u);
}

// ------------------------------------------------------------- 3PC (issue 9)

TEST(SimThreePhaseTest, HeavySeeds1To60) { ExpectClean(1, 60, FaultLevel::kHeavy, 1, "3pc"); }
TEST(SimThreePhaseTest, HeavySeeds1To40With3Replicas) {
  ExpectClean(1, 40, FaultLevel::kHeavy, 3, "3pc");
}

// The clients' transactions really run three phases: PRECOMMIT is chosen
// before any PRE_COMMIT leaves, branches reach PRECOMMITTED, then commit.
TEST(SimThreePhaseTest, TransactionsPassThroughPrecommit) {
  std::ostringstream trace;
  SimOptions o;
  o.seed = 7;
  o.faults = FaultLevel::kNone;
  o.protocol = "3pc";
  o.txns = 20;
  o.trace = &trace;
  SimResult r = RunSeed(o);
  ASSERT_EQ(r.violations, 0) << trace.str();
  ASSERT_GT(r.committed, 0);
  const std::string t = trace.str();
  EXPECT_GE(CountOf(t, "chosen slot"), 1u);
  EXPECT_GE(CountOf(t, " PRECOMMIT("), static_cast<size_t>(r.committed));
  EXPECT_GE(CountOf(t, "branch PRECOMMITTED"), static_cast<size_t>(r.committed));
  // For the first PRE_COMMIT sent: its transaction's PRECOMMIT was chosen before.
  size_t sent = t.find("PRE_COMMIT ->");
  ASSERT_NE(sent, std::string::npos);
  size_t id = t.rfind("txid=", sent);
  std::string txid = t.substr(id + 5, t.find(' ', id) - id - 5);
  size_t chosen = t.find("PRECOMMIT(" + txid + ")");
  while (chosen != std::string::npos && t.rfind("chosen slot", chosen) < t.rfind('\n', chosen)) {
    chosen = t.find("PRECOMMIT(" + txid + ")", chosen + 1);  // a proposal line, not the choice
  }
  ASSERT_NE(chosen, std::string::npos) << txid;
  EXPECT_LT(chosen, sent) << txid;
}

// Scenario 3pc-partition: textbook 3PC's partition hazard. With autonomous
// termination the cut-off participant aborts while the group and the other
// participant commit, and the checker names the atomicity violation; with
// termination through the group alone the same schedule is clean.
TEST(SimThreePhaseTest, PartitionScenarioBreaksAtomicityOnlyWithAutonomousTermination) {
  for (int replicas : {1, 3}) {
    std::ostringstream safe;
    SimOptions o;
    o.scenario = "3pc-partition";
    o.replicas = replicas;
    o.report = &safe;
    SimResult r = RunSeed(o);
    EXPECT_EQ(r.violations, 0) << safe.str();
    EXPECT_EQ(r.faults.partition, 1u);
    std::ostringstream broken;
    o.autonomous_termination = true;
    o.report = &broken;
    r = RunSeed(o);
    EXPECT_GT(r.violations, 0) << replicas << " replicas";
    EXPECT_NE(broken.str().find("atomicity"), std::string::npos) << broken.str();
  }
}

TEST(SimCleanTest, NoFaultsSeeds1To50) { ExpectClean(1, 50, FaultLevel::kNone); }
TEST(SimCleanTest, LightFaultsSeeds1To100) { ExpectClean(1, 100, FaultLevel::kLight); }
TEST(SimHeavyTest, Seeds1To80) { ExpectClean(1, 80, FaultLevel::kHeavy); }
TEST(SimHeavyTest, Seeds81To160) { ExpectClean(81, 160, FaultLevel::kHeavy); }
TEST(SimHeavyTest, Seeds161To240) { ExpectClean(161, 240, FaultLevel::kHeavy); }
TEST(SimHeavyTest, Seeds241To320) { ExpectClean(241, 320, FaultLevel::kHeavy); }

// Agents that confirm every decision for a branch in doubt with the group
// (AgentOptions::confirm_decisions, as txagent without TLS). Light seed 39
// found that a coordinator delivers an ABORT while it still answers PENDING:
// refusing it was reported as a heuristic hazard (now: UNAVAILABLE, resent).
// Agents confirm what is not signed under their key (a real txagent in
// plaintext): the group's decisions after an agent's first query are signed.
TEST(SimConfirmDecisionsTest, LightSeeds1To100) {
  ExpectClean(1, 100, FaultLevel::kLight, 1, "2pc", Decisions::kConfirmedOrSigned);
}
TEST(SimConfirmDecisionsTest, HeavySeeds1To80) {
  ExpectClean(1, 80, FaultLevel::kHeavy, 1, "2pc", Decisions::kConfirmedOrSigned);
}
TEST(SimConfirmDecisionsTest, HeavySeeds1To60With3Replicas) {
  ExpectClean(1, 60, FaultLevel::kHeavy, 3, "2pc", Decisions::kConfirmedOrSigned);
}
TEST(SimConfirmDecisionsTest, HeavySeeds1To40With3ReplicasAnd3pc) {
  ExpectClean(1, 40, FaultLevel::kHeavy, 3, "3pc", Decisions::kConfirmedOrSigned);
}
// Every decision confirmed (txagent --sign-decisions off).
TEST(SimConfirmDecisionsTest, UnsignedHeavySeeds1To40With3Replicas) {
  ExpectClean(1, 40, FaultLevel::kHeavy, 3, "2pc", Decisions::kConfirmed);
}
// A forger sends agents COMMIT and ABORT for their branches in doubt, with
// MACs of its own: none may be applied against the group's decision.
TEST(SimConfirmDecisionsTest, ForgedDecisionsHeavySeeds1To60) {
  ExpectClean(1, 60, FaultLevel::kHeavy, 1, "2pc", Decisions::kForged);
}
TEST(SimConfirmDecisionsTest, ForgedDecisionsHeavySeeds1To40With3ReplicasAnd3pc) {
  ExpectClean(1, 40, FaultLevel::kHeavy, 3, "3pc", Decisions::kForged);
}

// ------------------------------------------------------------ injected bugs

class SimBugTest : public ::testing::TestWithParam<std::string> {};

// Stops at the first seed that catches the bug: seed 1 to 6 for most, 57 for
// empty-disk-votes, 77 for resurrected-decide (seconds to minutes here, far
// longer under sanitizers). Sanitized,
// the scan stops after a tenth of the seeds; a bug not caught by then must be
// caught by its pinned seed, so every bug is still proved caught there.
TEST_P(SimBugTest, CaughtWithin300HeavySeeds) {
  int failing = 0;
  std::string first;
  auto run = [&](uint64_t s) {
    std::ostringstream report;
    SimOptions o = Heavy(s);
    o.bug = GetParam();
    o.report = &report;
    SimResult r = RunSeed(o);
    if (r.violations > 0) {
      ++failing;
      first = report.str();
    }
  };
  if (GetParam() == "abort-after-prepared") {
    // Its conjunction of faults is too rare for random heavy seeds (none of
    // 1..1200 since interactive statements use wait-die): its scripted
    // scenario catches it (SimAbortAfterPreparedTest).
    SimOptions o;
    o.seed = 1;
    o.scenario = "abort-after-prepared";
    o.bug = GetParam();
    std::ostringstream report;
    o.report = &report;
    if (RunSeed(o).violations > 0) {
      ++failing;
      first = report.str();
    }
  }
  for (uint64_t s = 1; s <= LastSeed(1, 300) && failing == 0; ++s) run(s);
  if (failing == 0 && kSeedDivisor > 1) {
    // Sanitized, the scan is short: the rarer group bugs are also run on
    // the first seed known to catch them (they move when the schedule does).
    if (GetParam() == "resurrected-decide") run(kResurrectedDecideSeed);
    if (GetParam() == "empty-disk-votes") run(kEmptyDiskVotesSeed);
    if (GetParam() == "persist-before-install") run(kPersistBeforeInstallSeed);
  }
  ASSERT_GT(failing, 0) << "bug " << GetParam() << " went unnoticed over heavy seeds 1.."
                        << LastSeed(1, 300);
  EXPECT_NE(first.find("violation"), std::string::npos);
  EXPECT_NE(first.find("replay: txsim --seed"), std::string::npos);
}

// The pinned seeds are what the sanitized scan falls back on: a schedule
// change that moves them must fail here, in every build, not only in a
// sanitizer run (stop 30's batching moved them unnoticed until one).
TEST(SimBugSeedTest, PinnedSeedsStillCatchTheirBugs) {
  for (const auto& [bug, seed] : {std::pair<std::string, uint64_t>{"resurrected-decide",
                                                                     kResurrectedDecideSeed},
                                  {"empty-disk-votes", kEmptyDiskVotesSeed},
                                  {"persist-before-install", kPersistBeforeInstallSeed}}) {
    SimOptions o = Heavy(seed);
    o.bug = bug;
    EXPECT_GT(RunSeed(o).violations, 0u)
        << bug << " is no longer caught at its pinned seed " << seed
        << ": find the first heavy seed that catches it (txsim --seeds 1..300 --faults heavy "
           "--keep-going --inject-bug " << bug << ") and pin that";
  }
}

// Issue 8, 4b as the simulator sees it: concurrent renames free and claim
// the same email, and a branch that then rolls back must restore the row it
// deleted. The named seed catches the old undo (no unique-key locks, a
// conflicting row skipped) and is clean with the real one.
TEST(SimUndoTest, RowLostByASkippedUndoIsCaughtAtItsSeed) {
  std::ostringstream report;
  SimOptions o = Heavy(kSkipUndoOnConflictSeed);
  o.bug = "skip-undo-on-conflict";
  o.report = &report;
  ASSERT_GT(RunSeed(o).violations, 0) << "seed " << kSkipUndoOnConflictSeed
                                      << " no longer catches skip-undo-on-conflict";
  EXPECT_NE(report.str().find("committed members, not"), std::string::npos) << report.str();
  std::ostringstream clean;
  o.bug.clear();
  o.report = &clean;
  EXPECT_EQ(RunSeed(o).violations, 0) << clean.str();
}

// Issue 8, 4d as the simulator sees it: an agent's own abort of a branch,
// queued on an ABORTED answer while the branch was ACTIVE with its PREPARE
// being forced, must not run once the branch voted YES. Random heavy seeds
// reach that conjunction too rarely, so a scripted scenario builds it
// (Cluster::OnPrepareSent: the agent holding two branches stalls its disk
// under the first PREPARE and the coordinator crashes before the second,
// forgetting the transaction): it catches the agent that runs the abort
// anyway, on every seed and with 1 or 3 replicas, and is clean with the
// real one.
TEST(SimAbortAfterPreparedTest, RollbackOfAPreparedBranchOnANonDecisionIsCaughtByItsScenario) {
  for (int replicas : {1, 3}) {
    for (uint64_t seed : {1, 2, 3}) {
      std::ostringstream report;
      SimOptions o;
      o.seed = seed;
      o.replicas = replicas;
      o.scenario = "abort-after-prepared";
      o.bug = "abort-after-prepared";
      o.report = &report;
      SimResult r = RunSeed(o);
      EXPECT_EQ(r.faults.disk_stall, 1u) << "the scenario did not fire";
      ASSERT_GT(r.violations, 0) << "seed " << seed << " replicas " << replicas
                                 << ": the scenario no longer catches abort-after-prepared";
      EXPECT_NE(report.str().find("after it voted YES"), std::string::npos) << report.str();
      std::ostringstream clean;
      o.bug.clear();
      o.report = &clean;
      r = RunSeed(o);
      EXPECT_EQ(r.faults.disk_stall, 1u) << "the scenario did not fire";
      EXPECT_EQ(r.violations, 0u) << clean.str();
    }
  }
}

std::vector<std::string> BugNames() {
  std::vector<std::string> out;
  for (const BugInfo& b : Bugs()) out.push_back(b.name);
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllBugs, SimBugTest, ::testing::ValuesIn(BugNames()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(SimBugListTest, AtLeastThreeBugs) { EXPECT_GE(Bugs().size(), 3u); }

}  // namespace
}  // namespace txc::sim

namespace txc::sim {
namespace {

// Two Executes on the same branch with a power loss between them: before
// agent incarnations, seeds 143 and 179 committed a branch that had lost its
// first call's work (money created). The agent now votes NO when it restarted
// since the work was done, and the client rolls back when it sees the change.
TEST(SimSplitExecuteTest, WorkLostToPowerLossNeverCommits) {
  for (uint64_t s : {143ull, 179ull}) {
    std::ostringstream report;
    SimOptions o;
    o.seed = s;
    o.faults = FaultLevel::kHeavy;
    o.workload = "split-execute";
    o.report = &report;
    SimResult r = RunSeed(o);
    EXPECT_EQ(r.violations, 0) << "seed " << s << "\n" << report.str();
  }
  for (uint64_t s = 1; s <= LastSeed(1, 120); ++s) {
    std::ostringstream report;
    SimOptions o;
    o.seed = s;
    o.faults = FaultLevel::kHeavy;
    o.workload = "split-execute";
    o.report = &report;
    ASSERT_EQ(RunSeed(o).violations, 0) << "seed " << s << "\n" << report.str();
  }
}

}  // namespace
}  // namespace txc::sim
