// Fuzz target: what a coordinator replica reads back from its disk at start.
//   mode 0, the single replica's decision log (LocalLog::Start): each record
//     through DecodeBatch and NodeCore::Replay, in order;
//   mode 1, a snapshot of the transaction table (LocalLog::Start's
//     NodeCore::Install, a follower's snapshot install): TxnTable::Restore;
//   mode 2, the Multi-Paxos acceptor's records (PaxosLog::Recover): the
//     promised ballot, then accepted entries (one per slot), handed to a
//     group-mode NodeCore, which restores the snapshot and builds its
//     paxos::Replica from them, then runs its timers.
// Whatever restores must snapshot to an image that restores to the same
// image; every decoded record must round-trip.
//
// Input: one byte that picks the mode, then records (fuzz_util.h,
// SplitRecords): mode 0 one command batch a record; mode 1 the image in the
// first record; mode 2 the promised ballot, the snapshot image, then entries.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "coordinator/node_core.h"
#include "coordinator/txn_table.h"
#include "paxos_types.h"
#include "tests/fuzz/fuzz_util.h"
#include "txcoord_types.h"

namespace {

using txc::coord::NodeCore;
using txc::coord::NodeCoreOptions;
using txc::coord::TxnTable;

// The table's image restores to a table that knows the same transactions,
// and the image of that is a fixed point. (Not the first image itself: an
// image writes each DECIDE with its txid's epoch, so a log record whose
// epoch field disagreed with its txid, which only a corrupt or forged record
// has, raises the restored table's epoch() to the txid's: the safe way. The
// fuzzer found that; see docs/testing.md, "Fuzzing".)
void CheckSnapshotStable(const TxnTable& table) {
  const std::string image = table.Snapshot();
  TxnTable again(table.options());
  FUZZ_CHECK(again.Restore(image).ok(), "a table's own snapshot restores");
  FUZZ_CHECK(again.size() == table.size(), "restored table holds as many entries");
  for (const auto& [txid, e] : table.entries()) {
    const TxnTable::Entry* r = again.Find(txid);
    FUZZ_CHECK(r != nullptr, "restored table knows every entry");
    FUZZ_CHECK(r->outcome == e.outcome && r->ended == e.ended &&
                   r->precommitted == e.precommitted && r->participants == e.participants,
               "restored entry is the same");
  }
  FUZZ_CHECK(again.epoch() >= table.epoch() && again.marker_epoch() == table.marker_epoch(),
             "restored epochs");
  const std::string image2 = again.Snapshot();
  TxnTable third(table.options());
  FUZZ_CHECK(third.Restore(image2).ok(), "a restored table's snapshot restores");
  FUZZ_CHECK(third.Snapshot() == image2, "snapshot of a restored snapshot is a fixed point");
}

void ReplayLog(const std::vector<std::string_view>& records) {
  NodeCore core{NodeCoreOptions{}};
  uint64_t index = 0;
  for (std::string_view r : records) {
    auto cmds = txc::coord::DecodeBatch(std::string(r));
    if (!cmds.ok()) continue;  // LocalLog::Start refuses to start; the next record is another test
    txc::proto::CommandBatch batch;
    batch.commands = *cmds;
    txc::fuzz::CheckRoundTrip(batch, "CommandBatch");
    core.Replay(++index, *cmds);
  }
  CheckSnapshotStable(core.table());
}

void RestoreSnapshot(const std::vector<std::string_view>& records) {
  if (records.empty()) return;
  NodeCore core{NodeCoreOptions{}};
  if (!core.Install(7, std::string(records[0])).ok()) return;
  CheckSnapshotStable(core.table());
  // A restored table keeps applying the log after it. The store labels an
  // image with the index it covers; the image carries that index too, and
  // the log resumes after it.
  uint64_t index = std::max<uint64_t>(7, core.table().applied_index());
  for (size_t i = 1; i < records.size(); ++i) {
    auto cmds = txc::coord::DecodeBatch(std::string(records[i]));
    if (cmds.ok()) core.Replay(++index, *cmds);
  }
  CheckSnapshotStable(core.table());
}

void RecoverAcceptor(const std::vector<std::string_view>& records) {
  NodeCoreOptions o;
  o.self_id = 1;
  o.members = {1, 2, 3};
  o.addresses = {{1, "127.0.0.1:1"}, {2, "127.0.0.1:2"}, {3, "127.0.0.1:3"}};
  txc::paxos::DurableState& ds = o.recovered;
  if (records.size() > 0 &&
      !txc::fuzz::DecodeAndCheck(records[0], &ds.promised, "paxos Ballot")) {
    return;  // PaxosLog::Recover: "unreadable promised ballot"
  }
  if (records.size() > 1 && !records[1].empty()) {
    ds.snapshot = std::string(records[1]);
    ds.snapshot_index = 5;
  }
  for (size_t i = 2; i < records.size(); ++i) {
    txc::paxos::Entry e;
    if (!txc::fuzz::DecodeAndCheck(records[i], &e, "paxos Entry")) return;
    // The store keys records by slot, and PaxosLog::Recover reads those
    // above the snapshot.
    if (e.slot <= ds.snapshot_index) continue;
    ds.accepted[e.slot] = std::move(e);
  }
  NodeCore core(std::move(o));
  if (!core.startup_status().ok()) return;  // the node refuses to serve
  txc::Micros now = 1'000'000;
  // Its writes are never acknowledged (the disk hangs); proposals are
  // flushed at the end of each turn, as the shell does.
  auto turn = [&core, &now](txc::coord::NodeEffects fx) {
    if (fx.flush_proposals) (void)core.FlushProposals(now);
  };
  turn(core.Start(now));
  for (int i = 0; i < 4; ++i) {
    now += 400'000;
    turn(core.TickReplica(now));
    turn(core.Tick(now));
  }
  CheckSnapshotStable(core.table());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const auto records =
      txc::fuzz::SplitRecords(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  switch (data[0] % 3) {
    case 0:
      ReplayLog(records);
      break;
    case 1:
      RestoreSnapshot(records);
      break;
    case 2:
      RecoverAcceptor(records);
      break;
  }
  return 0;
}
