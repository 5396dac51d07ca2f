// TxnTable: the replicated state machine of decisions (DESIGN.md, "Multi-Paxos
// for the coordinator group" and "Transactions and the commit protocols").
#include "coordinator/txn_table.h"

#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include "common/codec.h"
#include "tests/support/core_harness.h"

namespace txc::coord {
namespace {

using txc::testing::Participant;

const proto::Participant kA = Participant("bank_a", "10.0.0.1:7100");
const proto::Participant kB = Participant("bank_b", "10.0.0.2:7100");

proto::Command Resolve(const TxId& txid, proto::Outcome::type outcome, std::string reason) {
  proto::Command c = MakeDecide(txid, outcome, {kA}, proto::Protocol::TWO_PC, std::move(reason));
  c.type = proto::CommandType::RESOLVE;
  c.who = "operator";
  return c;
}

proto::Command Precommit(const TxId& txid, std::vector<proto::Participant> ps) {
  proto::Command c;
  c.type = proto::CommandType::PRECOMMIT;
  c.txid = txid;
  c.participants = std::move(ps);
  c.epoch = txid.epoch;
  return c;
}

class TxnTableTest : public ::testing::Test {
 protected:
  // Applies `cmd` as the only command of the next slot.
  void Apply(const proto::Command& cmd) { table_.Apply(++index_, cmd); }

  TxnTable table_;
  uint64_t index_ = 0;
};

TEST_F(TxnTableTest, EmptyTableKnowsNothing) {
  EXPECT_EQ(table_.Find(MakeTxId(1, 1)), nullptr);
  EXPECT_EQ(table_.epoch(), 0);
  EXPECT_EQ(table_.applied_index(), 0u);
  EXPECT_EQ(table_.size(), 0u);
  EXPECT_TRUE(table_.Unended().empty());
}

TEST_F(TxnTableTest, DecideRecordsOutcomeParticipantsAndLogIndex) {
  Apply(MakeEpoch(3));
  Apply(MakeDecide(MakeTxId(3, 1), proto::Outcome::COMMITTED, {kA, kB}, proto::Protocol::TWO_PC, ""));
  const TxnTable::Entry* e = table_.Find(MakeTxId(3, 1));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->txid, MakeTxId(3, 1));
  EXPECT_EQ(e->outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(e->participants, (std::vector<proto::Participant>{kA, kB}));
  EXPECT_EQ(e->protocol, proto::Protocol::TWO_PC);
  EXPECT_EQ(e->decided_at, 2u);
  EXPECT_FALSE(e->ended);
  EXPECT_FALSE(e->heuristic);
  EXPECT_FALSE(e->precommitted);
  EXPECT_EQ(table_.unended_count(), 1u);
  EXPECT_EQ(table_.applied_index(), 2u);
  EXPECT_EQ(table_.Find(MakeTxId(3, 2)), nullptr);
}

TEST_F(TxnTableTest, FirstDecisionChosenWins) {
  TxId t = MakeTxId(3, 1);
  Apply(MakeDecide(t, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Apply(MakeDecide(t, proto::Outcome::ABORTED, {kB}, proto::Protocol::TWO_PC, "late retry"));
  Apply(Resolve(t, proto::Outcome::ABORTED, "operator too late"));
  const TxnTable::Entry* e = table_.Find(t);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(e->participants, std::vector<proto::Participant>{kA});
  EXPECT_EQ(e->reason, "");
  EXPECT_FALSE(e->heuristic);
  EXPECT_EQ(e->decided_at, 1u);
  EXPECT_EQ(table_.unended_count(), 1u);
  EXPECT_EQ(table_.applied_index(), 3u);
}

TEST_F(TxnTableTest, ResolveDecidesHeuristicallyWithReason) {
  TxId t = MakeTxId(2, 9);
  Apply(Resolve(t, proto::Outcome::ABORTED, "resolved by alice: agent lost"));
  const TxnTable::Entry* e = table_.Find(t);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(e->heuristic);
  EXPECT_EQ(e->reason, "resolved by alice: agent lost");
  // A DECIDE chosen after the operator's RESOLVE does not override it.
  Apply(MakeDecide(t, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  EXPECT_EQ(table_.Find(t)->outcome, proto::Outcome::ABORTED);
  EXPECT_TRUE(table_.Find(t)->heuristic);
}

TEST_F(TxnTableTest, EndMarksEndedAndLeavesUnended) {
  TxId t1 = MakeTxId(3, 1), t2 = MakeTxId(3, 2);
  Apply(MakeDecide(t1, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Apply(MakeDecide(t2, proto::Outcome::COMMITTED, {kB}, proto::Protocol::TWO_PC, ""));
  EXPECT_EQ(table_.unended_count(), 2u);
  Apply(MakeEnd(t1));
  ASSERT_NE(table_.Find(t1), nullptr);  // still remembered: a retried commit learns the truth
  EXPECT_TRUE(table_.Find(t1)->ended);
  EXPECT_EQ(table_.Find(t1)->outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(table_.unended_count(), 1u);
  ASSERT_EQ(table_.Unended().size(), 1u);
  EXPECT_EQ(table_.Unended()[0]->txid, t2);
}

TEST_F(TxnTableTest, DuplicateEndAndEndOfUnknownTxidAreIgnored) {
  TxId t = MakeTxId(3, 1);
  Apply(MakeDecide(t, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Apply(MakeEnd(t));
  Apply(MakeEnd(t));
  Apply(MakeEnd(MakeTxId(3, 77)));
  EXPECT_EQ(table_.unended_count(), 0u);
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_EQ(table_.Find(MakeTxId(3, 77)), nullptr);
  // A decision retried after END changes nothing, and is not "unended" again.
  Apply(MakeDecide(t, proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, ""));
  EXPECT_EQ(table_.Find(t)->outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(table_.unended_count(), 0u);
  EXPECT_TRUE(table_.Unended().empty());
}

TEST_F(TxnTableTest, EpochOnlyRises) {
  Apply(MakeEpoch(4));
  EXPECT_EQ(table_.epoch(), 4);
  Apply(MakeEpoch(2));
  EXPECT_EQ(table_.epoch(), 4);
  // Any command announces its epoch: a DECIDE carries its txid's.
  Apply(MakeDecide(MakeTxId(6, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  EXPECT_EQ(table_.epoch(), 6);
  proto::Command noop;
  noop.type = proto::CommandType::NOOP;
  Apply(noop);
  EXPECT_EQ(table_.epoch(), 6);
  EXPECT_EQ(table_.size(), 1u);
}

TEST_F(TxnTableTest, CommandsOfOneSlotShareItsIndex) {
  table_.Apply(5, MakeDecide(MakeTxId(1, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  table_.Apply(5, MakeDecide(MakeTxId(1, 2), proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, "no"));
  EXPECT_EQ(table_.applied_index(), 5u);
  EXPECT_EQ(table_.Find(MakeTxId(1, 1))->decided_at, 5u);
  EXPECT_EQ(table_.Find(MakeTxId(1, 2))->decided_at, 5u);
  EXPECT_EQ(table_.Find(MakeTxId(1, 2))->reason, "no");
}

TEST_F(TxnTableTest, DecideOfAnEpochOlderThanTheLastMarkerIsIgnoredUnlessKnown) {
  Apply(MakeEpoch(4));
  Apply(MakeDecide(MakeTxId(4, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Apply(MakeEpoch(5));
  EXPECT_EQ(table_.marker_epoch(), 5);
  // An epoch-4 decision chosen after epoch 5's marker: epoch 5's leader may
  // already have answered "aborted" for it. Ignored.
  Apply(MakeDecide(MakeTxId(4, 2), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  EXPECT_EQ(table_.Find(MakeTxId(4, 2)), nullptr);
  // One decided before the marker stays, and a repeat of it changes nothing.
  Apply(MakeDecide(MakeTxId(4, 1), proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, ""));
  ASSERT_NE(table_.Find(MakeTxId(4, 1)), nullptr);
  EXPECT_EQ(table_.Find(MakeTxId(4, 1))->outcome, proto::Outcome::COMMITTED);
  // The current epoch's decisions apply.
  Apply(MakeDecide(MakeTxId(5, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  EXPECT_NE(table_.Find(MakeTxId(5, 1)), nullptr);
  // The marker survives a snapshot.
  TxnTable restored;
  ASSERT_TRUE(restored.Restore(table_.Snapshot()).ok());
  EXPECT_EQ(restored.marker_epoch(), 5);
  EXPECT_EQ(restored.epoch(), table_.epoch());
  EXPECT_NE(restored.Find(MakeTxId(4, 1)), nullptr);
  EXPECT_EQ(restored.Find(MakeTxId(4, 2)), nullptr);
}

TEST_F(TxnTableTest, UnendedListsDecidedTxnsOldestFirst) {
  Apply(MakeDecide(MakeTxId(3, 5), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Apply(MakeDecide(MakeTxId(2, 9), proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, ""));
  Apply(MakeDecide(MakeTxId(3, 1), proto::Outcome::COMMITTED, {kB}, proto::Protocol::TWO_PC, ""));
  Apply(MakeEnd(MakeTxId(3, 1)));
  auto unended = table_.Unended();
  ASSERT_EQ(unended.size(), 2u);
  EXPECT_EQ(unended[0]->txid, MakeTxId(2, 9));
  EXPECT_EQ(unended[1]->txid, MakeTxId(3, 5));
  EXPECT_EQ(table_.unended_count(), 2u);
}

TEST_F(TxnTableTest, PrecommitIsRecordedButNotUnendedUntilDecided) {
  TxId t = MakeTxId(4, 2);
  Apply(Precommit(t, {kA, kB}));
  const TxnTable::Entry* e = table_.Find(t);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->precommitted);
  EXPECT_EQ(e->protocol, proto::Protocol::THREE_PC);
  EXPECT_EQ(e->outcome, proto::Outcome::UNKNOWN);
  EXPECT_EQ(e->participants, (std::vector<proto::Participant>{kA, kB}));
  EXPECT_EQ(table_.unended_count(), 0u);
  EXPECT_TRUE(table_.Unended().empty());

  Apply(MakeDecide(t, proto::Outcome::COMMITTED, {kA, kB}, proto::Protocol::THREE_PC, ""));
  EXPECT_EQ(table_.Find(t)->outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(table_.Find(t)->precommitted);
  EXPECT_EQ(table_.unended_count(), 1u);
  Apply(MakeEnd(t));
  EXPECT_EQ(table_.unended_count(), 0u);
}

TEST_F(TxnTableTest, PrecommitDecidesACommitThatNoAbortChosenLaterUndoes) {
  TxId t = MakeTxId(4, 3);
  Apply(MakeEpoch(4));
  Apply(Precommit(t, {kA, kB}));
  EXPECT_EQ(table_.PreCommittedUndecided().size(), 1u);
  // An operator's abort (or any abort) chosen after PRECOMMIT: a no-op.
  Apply(Resolve(t, proto::Outcome::ABORTED, "too late"));
  Apply(MakeDecide(t, proto::Outcome::ABORTED, {kA, kB}, proto::Protocol::THREE_PC, ""));
  EXPECT_EQ(table_.Find(t)->outcome, proto::Outcome::UNKNOWN);
  EXPECT_FALSE(table_.Find(t)->heuristic);
  // A newer leader's commit of the older epoch's precommitted txid applies
  // (an unknown older txid's DECIDE would be ignored after the new marker).
  Apply(MakeEpoch(5));
  Apply(MakeDecide(t, proto::Outcome::COMMITTED, {kA, kB}, proto::Protocol::THREE_PC, ""));
  EXPECT_EQ(table_.Find(t)->outcome, proto::Outcome::COMMITTED);
  EXPECT_TRUE(table_.PreCommittedUndecided().empty());
}

TEST_F(TxnTableTest, PrecommitAfterAnAbortOrAfterANewerMarkerIsIgnored) {
  Apply(MakeEpoch(4));
  // An operator's abort chosen first stands; a PRECOMMIT after it changes nothing.
  TxId aborted = MakeTxId(4, 1);
  Apply(Resolve(aborted, proto::Outcome::ABORTED, "stuck"));
  Apply(Precommit(aborted, {kA}));
  EXPECT_EQ(table_.Find(aborted)->outcome, proto::Outcome::ABORTED);
  EXPECT_FALSE(table_.Find(aborted)->precommitted);
  // An epoch-4 PRECOMMIT adopted after epoch 5's marker: epoch 5's leader may
  // have answered "aborted" for it already.
  Apply(MakeEpoch(5));
  TxId late = MakeTxId(4, 2);
  Apply(Precommit(late, {kA}));
  EXPECT_EQ(table_.Find(late), nullptr);
  EXPECT_TRUE(table_.PreCommittedUndecided().empty());
  // The current epoch's PRECOMMIT applies, and survives a snapshot.
  TxId now = MakeTxId(5, 1);
  Apply(Precommit(now, {kA, kB}));
  TxnTable copy;
  ASSERT_OK(copy.Restore(table_.Snapshot()));
  ASSERT_EQ(copy.PreCommittedUndecided().size(), 1u);
  EXPECT_EQ(copy.PreCommittedUndecided()[0]->txid, now);
  EXPECT_EQ(copy.PreCommittedUndecided()[0]->participants, (std::vector<proto::Participant>{kA, kB}));
}

TEST_F(TxnTableTest, SnapshotRestoreReproducesTheTable) {
  Apply(MakeEpoch(5));
  Apply(MakeDecide(MakeTxId(5, 1), proto::Outcome::COMMITTED, {kA, kB}, proto::Protocol::TWO_PC, ""));
  Apply(MakeDecide(MakeTxId(5, 2), proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, "bank_b voted no"));
  Apply(MakeEnd(MakeTxId(5, 1)));
  Apply(Resolve(MakeTxId(4, 7), proto::Outcome::COMMITTED, "resolved by bob"));
  Apply(Precommit(MakeTxId(5, 3), {kB}));
  table_.Apply(40, MakeDecide(MakeTxId(5, 4), proto::Outcome::COMMITTED, {kB}, proto::Protocol::TWO_PC, ""));

  TxnTable copy;
  ASSERT_OK(copy.Restore(table_.Snapshot()));
  EXPECT_EQ(copy.epoch(), 5);
  EXPECT_EQ(copy.applied_index(), 40u);
  EXPECT_EQ(copy.size(), table_.size());
  EXPECT_EQ(copy.unended_count(), table_.unended_count());
  for (const auto& [txid, e] : table_.entries()) {
    const TxnTable::Entry* c = copy.Find(txid);
    ASSERT_NE(c, nullptr) << ToString(txid);
    EXPECT_EQ(c->outcome, e.outcome) << ToString(txid);
    EXPECT_EQ(c->participants, e.participants) << ToString(txid);
    EXPECT_EQ(c->protocol, e.protocol) << ToString(txid);
    EXPECT_EQ(c->reason, e.reason) << ToString(txid);
    EXPECT_EQ(c->ended, e.ended) << ToString(txid);
    EXPECT_EQ(c->heuristic, e.heuristic) << ToString(txid);
    EXPECT_EQ(c->precommitted, e.precommitted) << ToString(txid);
  }
  ASSERT_EQ(copy.Unended().size(), 3u);
  EXPECT_EQ(copy.Unended()[0]->txid, MakeTxId(4, 7));

  // The restored table keeps applying: first decision still wins, END still ends.
  copy.Apply(41, MakeDecide(MakeTxId(5, 2), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  EXPECT_EQ(copy.Find(MakeTxId(5, 2))->outcome, proto::Outcome::ABORTED);
  copy.Apply(42, MakeEnd(MakeTxId(5, 4)));
  EXPECT_EQ(copy.unended_count(), 2u);
  EXPECT_EQ(copy.applied_index(), 42u);
}

TEST_F(TxnTableTest, RestoreReplacesWhatWasThere) {
  TxnTable other;
  other.Apply(1, MakeDecide(MakeTxId(1, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  Apply(MakeEpoch(9));
  Apply(MakeDecide(MakeTxId(9, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  ASSERT_OK(table_.Restore(other.Snapshot()));
  EXPECT_EQ(table_.Find(MakeTxId(9, 1)), nullptr);
  EXPECT_NE(table_.Find(MakeTxId(1, 1)), nullptr);
  EXPECT_EQ(table_.epoch(), 1);
  EXPECT_EQ(table_.applied_index(), 1u);
}

TEST_F(TxnTableTest, SnapshotOfEmptyTableRestoresEmpty) {
  TxnTable copy;
  copy.Apply(3, MakeEpoch(2));
  ASSERT_OK(copy.Restore(TxnTable().Snapshot()));
  EXPECT_EQ(copy.size(), 0u);
  EXPECT_EQ(copy.epoch(), 0);
  EXPECT_EQ(copy.applied_index(), 0u);
}

TEST_F(TxnTableTest, RestoreRejectsUnreadableImageAndKeepsTable) {
  Apply(MakeDecide(MakeTxId(2, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  std::string good = table_.Snapshot();
  // A list of 2^31-1 commands in 8 bytes: refused before anything is allocated.
  const std::string huge("\x0f\x00\x01\x0c\x7f\xff\xff\xff", 8);
  for (const std::string& bad :
       {std::string(), huge, good.substr(0, good.size() / 2),
        EncodeBatch({}),                   // no tail
        EncodeBatch({MakeEpoch(3)})}) {    // tail is not the NOOP carrying the index
    Status s = table_.Restore(bad);
    EXPECT_EQ(s.code(), Status::kInternal) << bad.size();
  }
  ASSERT_NE(table_.Find(MakeTxId(2, 1)), nullptr);
  EXPECT_EQ(table_.applied_index(), 1u);
}

// ------------------------------------------------- forgetting ended txns

proto::Command Committed(const TxId& t) {
  return MakeDecide(t, proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, "");
}

// Decides (as `outcome`, RESOLVE for ABORTED) and ends `t` at the next slots.
void DecideAndEnd(TxnTable* table, uint64_t* index, const TxId& t,
                  proto::Outcome::type outcome = proto::Outcome::COMMITTED) {
  table->Apply(++*index, outcome == proto::Outcome::COMMITTED ? Committed(t) : Resolve(t, outcome, "op"));
  table->Apply(++*index, MakeEnd(t));
}

// Epoch 2, then 2.1, 2.3, 2.5, 2.7, 2.8 committed, 2.9 aborted and 2.10
// committed, each ended: scattered runs for a table to forget.
void DecideAndEndScattered(TxnTable* table, uint64_t* index) {
  table->Apply(++*index, MakeEpoch(2));
  for (int64_t seq : {1, 3, 5, 7, 8}) DecideAndEnd(table, index, MakeTxId(2, seq));
  DecideAndEnd(table, index, MakeTxId(2, 9), proto::Outcome::ABORTED);
  DecideAndEnd(table, index, MakeTxId(2, 10));
}

TEST_F(TxnTableTest, AForgottenTxidKeepsItsExactOutcome) {
  TxnTableOptions o;
  o.ended_retained = 2;
  TxnTable table(o);
  uint64_t index = 0;
  table.Apply(++index, MakeEpoch(5));
  // 5.2 was never decided (aborted, presumed); 5.4 an operator aborted.
  for (int64_t seq : {1, 3, 5, 6, 7, 8}) DecideAndEnd(&table, &index, MakeTxId(5, seq));
  DecideAndEnd(&table, &index, MakeTxId(5, 4), proto::Outcome::ABORTED);
  DecideAndEnd(&table, &index, MakeTxId(5, 9));
  EXPECT_EQ(table.size(), 2u);  // 5.4 and 5.9 kept whole
  EXPECT_EQ(table.forgotten_count(), 6u);
  EXPECT_EQ(table.Find(MakeTxId(5, 1)), nullptr);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 1)), proto::Outcome::COMMITTED);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 2)), proto::Outcome::UNKNOWN);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 3)), proto::Outcome::COMMITTED);
  for (int64_t seq : {5, 6, 7, 8}) {
    EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, seq)), proto::Outcome::COMMITTED) << seq;
  }
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(4, 1)), proto::Outcome::UNKNOWN);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 10)), proto::Outcome::UNKNOWN);
  EXPECT_EQ(table.forgotten_runs(), 3u);  // 1, 3, 5..8

  // Forgetting 5.4 (aborted) keeps that too.
  DecideAndEnd(&table, &index, MakeTxId(5, 10));
  DecideAndEnd(&table, &index, MakeTxId(5, 11));
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 4)), proto::Outcome::ABORTED);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 9)), proto::Outcome::COMMITTED);

  // The first decision chosen stands, also once forgotten.
  table.Apply(++index, Resolve(MakeTxId(5, 1), proto::Outcome::ABORTED, "too late"));
  table.Apply(++index, Committed(MakeTxId(5, 4)));
  EXPECT_EQ(table.Find(MakeTxId(5, 1)), nullptr);
  EXPECT_EQ(table.Find(MakeTxId(5, 4)), nullptr);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 1)), proto::Outcome::COMMITTED);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(5, 4)), proto::Outcome::ABORTED);
  EXPECT_EQ(table.unended_count(), 0u);
}

TEST_F(TxnTableTest, ConsecutiveCommittedTxidsAreOneRunWhateverTheEndOrder) {
  TxnTableOptions o;
  o.ended_retained = 0;  // forgotten at END
  TxnTable table(o);
  uint64_t index = 0;
  // Decided in order, ended in another order (the odd ones' acks came late).
  for (int64_t seq = 1; seq <= 1000; ++seq) table.Apply(++index, Committed(MakeTxId(3, seq)));
  for (int64_t seq = 2; seq <= 1000; seq += 2) table.Apply(++index, MakeEnd(MakeTxId(3, seq)));
  EXPECT_EQ(table.forgotten_runs(), 500u);
  for (int64_t seq = 1; seq <= 1000; seq += 2) table.Apply(++index, MakeEnd(MakeTxId(3, seq)));
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.forgotten_runs(), 1u);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(3, 1)), proto::Outcome::COMMITTED);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(3, 1000)), proto::Outcome::COMMITTED);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(3, 1001)), proto::Outcome::UNKNOWN);
}

TEST_F(TxnTableTest, PastTheRunBoundTheOldestTxidsAreForgottenNotPresumedAborted) {
  TxnTableOptions o;
  o.ended_retained = 0;
  o.forgotten_runs_max = 2;
  TxnTable table(o);
  uint64_t index = 0;
  for (int64_t seq : {1, 3}) DecideAndEnd(&table, &index, MakeTxId(4, seq));
  for (int64_t seq : {2, 5}) DecideAndEnd(&table, &index, MakeTxId(6, seq));
  EXPECT_EQ(table.forgotten_runs(), 2u);
  // 4.1 and 4.3 went: everything up to 4.3 is unknown now, 4.2 included.
  for (int64_t seq : {1, 2, 3}) {
    EXPECT_EQ(table.ForgottenOutcome(MakeTxId(4, seq)), proto::Outcome::FORGOTTEN) << seq;
  }
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(3, 99)), proto::Outcome::FORGOTTEN);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(4, 4)), proto::Outcome::UNKNOWN);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(6, 2)), proto::Outcome::COMMITTED);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(6, 3)), proto::Outcome::UNKNOWN);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(6, 5)), proto::Outcome::COMMITTED);
  // A txid still held is answered from its entry, never "forgotten".
  table.Apply(++index, Committed(MakeTxId(4, 2)));
  ASSERT_NE(table.Find(MakeTxId(4, 2)), nullptr);
  EXPECT_EQ(table.ForgottenOutcome(MakeTxId(4, 2)), proto::Outcome::UNKNOWN);
}

TEST_F(TxnTableTest, SnapshotCarriesTheForgottenOutcomes) {
  TxnTableOptions o;
  o.ended_retained = 1;
  o.forgotten_runs_max = 3;
  TxnTable table(o);
  uint64_t index = 0;
  DecideAndEndScattered(&table, &index);
  table.Apply(++index, Committed(MakeTxId(2, 11)));  // unended
  ASSERT_EQ(table.forgotten_runs(), 3u);             // 5, 7..8; aborted 9 (1 and 3 dropped)

  TxnTable copy(o);
  ASSERT_OK(copy.Restore(table.Snapshot()));
  EXPECT_EQ(copy.forgotten_runs(), 3u);
  for (int64_t seq = 0; seq <= 12; ++seq) {
    TxId t = MakeTxId(2, seq);
    EXPECT_EQ(copy.ForgottenOutcome(t), table.ForgottenOutcome(t)) << seq;
    EXPECT_EQ(copy.Find(t) != nullptr, table.Find(t) != nullptr) << seq;
  }
  EXPECT_EQ(copy.ForgottenOutcome(MakeTxId(2, 3)), proto::Outcome::FORGOTTEN);
  EXPECT_EQ(copy.ForgottenOutcome(MakeTxId(2, 7)), proto::Outcome::COMMITTED);
  EXPECT_EQ(copy.ForgottenOutcome(MakeTxId(2, 9)), proto::Outcome::ABORTED);
  EXPECT_EQ(copy.unended_count(), 1u);

  // A table restoring with a smaller retention forgets into runs, exactly.
  TxnTableOptions small;
  small.ended_retained = 0;
  TxnTable tight(small);
  ASSERT_OK(tight.Restore(table.Snapshot()));
  EXPECT_EQ(tight.Find(MakeTxId(2, 10)), nullptr);
  EXPECT_EQ(tight.ForgottenOutcome(MakeTxId(2, 10)), proto::Outcome::COMMITTED);
  EXPECT_NE(tight.Find(MakeTxId(2, 11)), nullptr);
}

// Snapshot writes its image command by command, without building the batch:
// the bytes must be exactly the codec's encoding of the batch they decode to
// (what Encode(batch) wrote before), with every kind of content present.
TEST_F(TxnTableTest, SnapshotIsTheCodecEncodingOfItsBatch) {
  TxnTableOptions o;
  o.ended_retained = 1;
  o.forgotten_runs_max = 2;
  TxnTable table(o);
  uint64_t index = 0;
  DecideAndEndScattered(&table, &index);
  table.Apply(++index, Committed(MakeTxId(2, 11)));  // unended, with a FORGET
  proto::Command forget;
  forget.type = proto::CommandType::FORGET;
  forget.txid = MakeTxId(2, 11);
  forget.participants = {kA};
  forget.who = "operator";
  table.Apply(++index, forget);
  table.Apply(++index, Precommit(MakeTxId(2, 12), {kA, kB}));  // precommitted, undecided
  table.Apply(++index, Resolve(MakeTxId(1, 4), proto::Outcome::ABORTED, "by hand"));
  ASSERT_EQ(table.Find(MakeTxId(2, 11))->forgotten.size(), 1u);

  const std::string image = table.Snapshot();
  proto::CommandBatch batch;
  ASSERT_TRUE(codec::Decode(image, &batch));
  EXPECT_EQ(codec::Encode(batch), image);
  EXPECT_TRUE(batch.__isset.snapshot_version);
  EXPECT_TRUE(batch.__isset.lost_through);  // runs were dropped: outcomes lost below it
  EXPECT_FALSE(batch.forgotten.empty());
  // ENDed 2.10 (DECIDE, END), 2.11 (DECIDE, FORGET), 2.12 (PRECOMMIT), 1.4
  // (RESOLVE), then the epoch marker, the highest epoch and the applied index.
  ASSERT_EQ(batch.commands.size(), 9u);
  EXPECT_EQ(batch.commands[0].type, proto::CommandType::DECIDE);
  EXPECT_EQ(batch.commands[1].type, proto::CommandType::END_TXN);
  EXPECT_EQ(batch.commands.back().epoch, static_cast<int64_t>(index));

  TxnTable copy(o);
  ASSERT_OK(copy.Restore(image));
  EXPECT_EQ(copy.Snapshot(), image);
  // An empty table too.
  const std::string empty = TxnTable().Snapshot();
  proto::CommandBatch none;
  ASSERT_TRUE(codec::Decode(empty, &none));
  EXPECT_EQ(codec::Encode(none), empty);
  EXPECT_FALSE(none.__isset.lost_through);
}

TEST_F(TxnTableTest, RestoreRejectsMalformedForgottenRuns) {
  proto::CommandBatch batch;
  batch.commands.push_back(MakeEpoch(1));
  proto::Command tail;
  tail.type = proto::CommandType::NOOP;
  batch.commands.push_back(tail);
  batch.__set_snapshot_version(2);
  proto::ForgottenRuns f;
  f.epoch = 1;
  f.committed = {5, 3};  // last before first
  batch.__set_forgotten({f});
  auto buf = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  apache::thrift::protocol::TBinaryProtocol proto(buf);
  batch.write(&proto);
  EXPECT_EQ(table_.Restore(buf->getBufferAsString()).code(), Status::kInternal);
}

// An image written before snapshots carried forgotten runs: restored as it
// was; a full one (it may have forgotten committed txids without a trace)
// stops presuming aborts for txids of its epochs that it does not hold.
TEST_F(TxnTableTest, VersionOneImagesRestoreAndAFullOneStopsPresumingAborts) {
  auto v1 = [](int64_t ended) {
    std::vector<proto::Command> cmds;
    for (int64_t seq = 1; seq <= ended; ++seq) {
      cmds.push_back(Committed(MakeTxId(3, seq)));
      cmds.push_back(MakeEnd(MakeTxId(3, seq)));
    }
    cmds.push_back(MakeEpoch(3));
    proto::Command highest;
    highest.type = proto::CommandType::NOOP;
    highest.epoch = 3;
    cmds.push_back(highest);
    proto::Command tail;
    tail.type = proto::CommandType::NOOP;
    tail.epoch = 1000;  // the applied index
    cmds.push_back(tail);
    return EncodeBatch(cmds);
  };
  TxnTable small;
  ASSERT_OK(small.Restore(v1(3)));
  EXPECT_EQ(small.applied_index(), 1000u);
  EXPECT_EQ(small.size(), 3u);
  EXPECT_EQ(small.ForgottenOutcome(MakeTxId(2, 1)), proto::Outcome::UNKNOWN);

  const std::string image = v1(static_cast<int64_t>(TxnTable::kEndedRetained));
  TxnTableOptions as_before;
  as_before.ended_retained = TxnTable::kEndedRetained;
  TxnTable full(as_before);
  ASSERT_OK(full.Restore(image));
  EXPECT_EQ(full.size(), TxnTable::kEndedRetained);
  ASSERT_NE(full.Find(MakeTxId(3, 1)), nullptr);
  EXPECT_EQ(full.ForgottenOutcome(MakeTxId(2, 1)), proto::Outcome::FORGOTTEN);
  EXPECT_EQ(full.ForgottenOutcome(MakeTxId(3, 999999)), proto::Outcome::FORGOTTEN);
  EXPECT_EQ(full.ForgottenOutcome(MakeTxId(4, 1)), proto::Outcome::UNKNOWN);

  // With today's smaller default retention the same image keeps the newest
  // entries whole and the older ones' outcomes as runs: still COMMITTED.
  TxnTable now;
  ASSERT_OK(now.Restore(image));
  EXPECT_EQ(now.size(), TxnTableOptions{}.ended_retained);
  EXPECT_EQ(now.Find(MakeTxId(3, 1)), nullptr);
  EXPECT_EQ(now.ForgottenOutcome(MakeTxId(3, 1)), proto::Outcome::COMMITTED);
  EXPECT_EQ(now.ForgottenOutcome(MakeTxId(3, 999999)), proto::Outcome::FORGOTTEN);
}

TEST_F(TxnTableTest, EncodeDecodeBatchRoundTrips) {
  std::vector<proto::Command> cmds = {
      MakeEpoch(7),
      MakeDecide(MakeTxId(7, 1), proto::Outcome::COMMITTED, {kA, kB}, proto::Protocol::THREE_PC, ""),
      MakeDecide(MakeTxId(7, 2), proto::Outcome::ABORTED, {kA}, proto::Protocol::TWO_PC, "why"),
      MakeEnd(MakeTxId(7, 1)),
      Resolve(MakeTxId(6, 3), proto::Outcome::COMMITTED, "by carol"),
  };
  auto decoded = DecodeBatch(EncodeBatch(cmds));
  ASSERT_OK(decoded.status());
  EXPECT_EQ(*decoded, cmds);
  EXPECT_EQ(decoded->at(4).who, "operator");

  std::string bytes = EncodeBatch(cmds);
  auto truncated = DecodeBatch(bytes.substr(0, bytes.size() - 3));
  EXPECT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), Status::kInternal);

  // The proposer's way: the same bytes, the commands lent and given back.
  std::vector<proto::Command> lent = cmds;
  EXPECT_EQ(EncodeBatchInPlace(&lent), bytes);
  EXPECT_EQ(lent, cmds);
}

TEST_F(TxnTableTest, DescribeCommandNamesKindTxidAndOutcome) {
  EXPECT_EQ(DescribeCommand(MakeEpoch(4)), "EPOCH(4)");
  EXPECT_EQ(DescribeCommand(MakeDecide(MakeTxId(4, 2), proto::Outcome::COMMITTED, {},
                                       proto::Protocol::TWO_PC, "")),
            "DECIDE(4.2,committed)");
  EXPECT_EQ(DescribeCommand(Resolve(MakeTxId(4, 3), proto::Outcome::ABORTED, "")),
            "RESOLVE(4.3,aborted)");
  EXPECT_EQ(DescribeCommand(MakeEnd(MakeTxId(4, 2))), "END(4.2)");
  EXPECT_EQ(DescribeCommand(Precommit(MakeTxId(4, 5), {})), "PRECOMMIT(4.5)");
}

// Hostile snapshot images (found by review): an epoch with no runs (the
// oldest-run drop would then erase from an empty map), runs reaching INT64_MAX
// (the adjacency check overflowed), and one epoch listed twice.
std::string ImageWithForgotten(std::vector<proto::ForgottenRuns> forgotten, int32_t version = 2) {
  proto::CommandBatch batch;
  batch.commands.push_back(MakeEpoch(1));
  proto::Command tail;
  tail.type = proto::CommandType::NOOP;
  batch.commands.push_back(tail);
  batch.__set_snapshot_version(version);
  batch.__set_forgotten(std::move(forgotten));
  auto buf = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  apache::thrift::protocol::TBinaryProtocol proto(buf);
  batch.write(&proto);
  return buf->getBufferAsString();
}

TEST(TxnTableImageTest, RestoreRejectsAnEpochWithNoRuns) {
  proto::ForgottenRuns empty;
  empty.epoch = 1;
  TxnTable t;
  EXPECT_FALSE(t.Restore(ImageWithForgotten({empty})).ok());
}

TEST(TxnTableImageTest, RestoreRejectsRunsPastInt64MaxWithoutOverflow) {
  proto::ForgottenRuns f;
  f.epoch = 1;
  f.committed = {1, INT64_MAX, 5, 6};
  TxnTable t;
  EXPECT_FALSE(t.Restore(ImageWithForgotten({f})).ok());
}

// Version 3: the runs as bytes. Hostile bytes are refused, as are lists and
// bytes together, an epoch with empty bytes, and an image of a later version.
std::string ImageWithForgotten3(std::vector<proto::ForgottenRuns> forgotten) {
  return ImageWithForgotten(std::move(forgotten), 3);
}

TEST(TxnTableImageTest, Version3RunsAreReadAndHostileOnesRefused) {
  auto runs = [](std::string committed, std::string aborted = "") {
    proto::ForgottenRuns f;
    f.epoch = 1;
    f.__set_committed_runs(std::move(committed));
    f.__set_aborted_runs(std::move(aborted));
    return f;
  };
  {
    TxnTable t;  // 3..5 and 9 committed, 7 aborted
    ASSERT_OK(t.Restore(ImageWithForgotten3({runs(std::string("\x03\x02\x04\x00", 4), std::string("\x07\x00", 2))})));
    EXPECT_EQ(t.forgotten_runs(), 3u);
    EXPECT_EQ(t.ForgottenOutcome(MakeTxId(1, 4)), proto::Outcome::COMMITTED);
    EXPECT_EQ(t.ForgottenOutcome(MakeTxId(1, 9)), proto::Outcome::COMMITTED);
    EXPECT_EQ(t.ForgottenOutcome(MakeTxId(1, 7)), proto::Outcome::ABORTED);
    EXPECT_EQ(t.ForgottenOutcome(MakeTxId(1, 6)), proto::Outcome::UNKNOWN);  // in no run
  }
  const std::vector<std::string> bad = {
      std::string("\x03", 1),                      // a run without its length
      std::string("\x00\x01", 2),                  // the first run at seq 0
      std::string("\x03\x02\x01\x00", 4),          // gap 1: touches the run before
      std::string("\x03\x80", 2),                  // truncated varint
      std::string("\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10),  // past INT64_MAX
      std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00", 11),  // a varint over 64 bits
  };
  for (const std::string& b : bad) {
    TxnTable t;
    EXPECT_FALSE(t.Restore(ImageWithForgotten3({runs(b)})).ok()) << ::testing::PrintToString(b);
  }
  {
    TxnTable t;
    EXPECT_FALSE(t.Restore(ImageWithForgotten3({runs("")})).ok());  // an epoch with no runs
    proto::ForgottenRuns both = runs("\x01");
    both.committed = {1, 1};
    EXPECT_FALSE(t.Restore(ImageWithForgotten3({both})).ok());
    Status later = t.Restore(ImageWithForgotten({runs(std::string("\x01\x00", 2))}, 4));
    EXPECT_FALSE(later.ok());
    EXPECT_NE(later.message().find("newer"), std::string::npos) << later.ToString();
  }
}

TEST(TxnTableImageTest, RestoreRejectsAnEpochListedTwice) {
  proto::ForgottenRuns a, b;
  a.epoch = b.epoch = 1;
  a.committed = {1, 10};
  b.committed = {5, 20};
  TxnTable t;
  EXPECT_FALSE(t.Restore(ImageWithForgotten({a, b})).ok());
  EXPECT_EQ(t.forgotten_runs(), 0u);
}

// ------------------------------------------- bytes written by the old codec

// Hex of bytes as they were written before commands, batches and snapshots
// moved to common/codec.h (txn_table.cc had its own TBinaryProtocol encoder).
// Logs and snapshots already on disk hold exactly these.
std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// The table of SnapshotCarriesTheForgottenOutcomes, with 2.11 decided under
// 3PC by participants of which one carries an incarnation.
TxnTable OldCodecTable(const TxnTableOptions& o) {
  TxnTable table(o);
  uint64_t index = 0;
  DecideAndEndScattered(&table, &index);
  proto::Participant b = kB;
  b.__set_incarnation(42);
  table.Apply(++index, MakeDecide(MakeTxId(2, 11), proto::Outcome::COMMITTED, {kA, b},
                                  proto::Protocol::THREE_PC, "r"));
  return table;
}

const char kOldSnapshotHex[] =
    "0f00010c00000006080001000000010c00020a000100000000000000020a0002000000000000000a00080003"
    "000000020f00040c000000010b00010000000662616e6b5f610b00020000000d31302e302e302e313a373130"
    "3000080005000000010b0006000000000b0007000000000a0008000000000000000200080001000000030c00"
    "020a000100000000000000020a0002000000000000000a00080003000000000f00040c000000000800050000"
    "00010b0006000000000b0007000000000a0008000000000000000200080001000000010c00020a0001000000"
    "00000000020a0002000000000000000b00080003000000020f00040c000000020b00010000000662616e6b5f"
    "610b00020000000d31302e302e302e313a37313030000b00010000000662616e6b5f620b00020000000d3130"
    "2e302e302e323a373130300a0003000000000000002a00080005000000020b000600000001720b0007000000"
    "000a0008000000000000000200080001000000050c00020a000100000000000000000a000200000000000000"
    "0000080003000000000f00040c00000000080005000000010b0006000000000b0007000000000a0008000000"
    "000000000200080001000000000c00020a000100000000000000000a00020000000000000000000800030000"
    "00000f00040c00000000080005000000010b0006000000000b0007000000000a000800000000000000020008"
    "0001000000000c00020a000100000000000000000a0002000000000000000000080003000000000f00040c00"
    "000000080005000000010b0006000000000b0007000000000a0008000000000000001000080002000000020f"
    "00030c000000010a000100000000000000020f00020a00000004000000000000000500000000000000050000"
    "00000000000700000000000000080f00030a0000000200000000000000090000000000000009000c00040a00"
    "0100000000000000020a000200000000000000030000";

TEST_F(TxnTableTest, SnapshotsOfTheOldCodecRestoreAndRewriteAsVersion3) {
  TxnTableOptions o;
  o.ended_retained = 1;
  o.forgotten_runs_max = 3;
  const std::string old = FromHex(kOldSnapshotHex);  // version 2
  // Today's snapshots are version 3 (the forgotten runs as varint bytes):
  // the same table, restored from either, writes the same version-3 image.
  const std::string v3 = OldCodecTable(o).Snapshot();
  EXPECT_NE(v3, old);
  EXPECT_LT(v3.size(), old.size());

  TxnTable copy(o);
  ASSERT_OK(copy.Restore(old));
  EXPECT_EQ(copy.Snapshot(), v3);
  TxnTable copy3(o);
  ASSERT_OK(copy3.Restore(v3));
  EXPECT_EQ(copy3.Snapshot(), v3);
  EXPECT_EQ(copy3.forgotten_runs(), 3u);
  EXPECT_EQ(copy3.ForgottenOutcome(MakeTxId(2, 7)), proto::Outcome::COMMITTED);
  EXPECT_EQ(copy3.ForgottenOutcome(MakeTxId(2, 9)), proto::Outcome::ABORTED);
  EXPECT_EQ(copy.applied_index(), 16u);
  EXPECT_EQ(copy.forgotten_runs(), 3u);
  EXPECT_EQ(copy.ForgottenOutcome(MakeTxId(2, 7)), proto::Outcome::COMMITTED);
  EXPECT_EQ(copy.ForgottenOutcome(MakeTxId(2, 9)), proto::Outcome::ABORTED);
  EXPECT_EQ(copy.ForgottenOutcome(MakeTxId(2, 3)), proto::Outcome::FORGOTTEN);
  const TxnTable::Entry* e = copy.Find(MakeTxId(2, 11));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->outcome, proto::Outcome::COMMITTED);
  EXPECT_EQ(e->protocol, proto::Protocol::THREE_PC);
  EXPECT_EQ(e->reason, "r");
  ASSERT_EQ(e->participants.size(), 2u);
  EXPECT_EQ(e->participants[0], kA);
  EXPECT_FALSE(e->participants[0].__isset.incarnation);
  ASSERT_TRUE(e->participants[1].__isset.incarnation);
  EXPECT_EQ(e->participants[1].incarnation, 42);
}

const char kOldBatchHex[] =
    "0f00010c00000004080001000000050c00020a000100000000000000000a0002000000000000000000080003"
    "000000000f00040c00000000080005000000010b0006000000000b0007000000000a00080000000000000007"
    "00080001000000010c00020a000100000000000000070a0002000000000000000100080003000000020f0004"
    "0c000000020b00010000000662616e6b5f610b00020000000d31302e302e302e313a37313030000b00010000"
    "000662616e6b5f620b00020000000d31302e302e302e323a373130300a0003000000000000002a0008000500"
    "0000020b0006000000000b0007000000000a0008000000000000000700080001000000030c00020a00010000"
    "0000000000070a0002000000000000000100080003000000000f00040c00000000080005000000010b000600"
    "0000000b0007000000000a0008000000000000000700080001000000040c00020a000100000000000000060a"
    "0002000000000000000300080003000000030f00040c000000010b00010000000662616e6b5f610b00020000"
    "000d31302e302e302e313a3731303000080005000000010b0006000000086279206361726f6c0b0007000000"
    "086f70657261746f720a000800000000000000060000";

TEST_F(TxnTableTest, BatchesOfTheOldCodecDecodeAndNewOnesAreByteIdentical) {
  proto::Participant b = kB;
  b.__set_incarnation(42);
  const std::vector<proto::Command> cmds = {
      MakeEpoch(7),
      MakeDecide(MakeTxId(7, 1), proto::Outcome::COMMITTED, {kA, b}, proto::Protocol::THREE_PC, ""),
      MakeEnd(MakeTxId(7, 1)),
      Resolve(MakeTxId(6, 3), proto::Outcome::ABORTED, "by carol"),
  };
  const std::string old = FromHex(kOldBatchHex);
  EXPECT_EQ(EncodeBatch(cmds), old);
  auto decoded = DecodeBatch(old);
  ASSERT_OK(decoded.status());
  EXPECT_EQ(*decoded, cmds);
  EXPECT_EQ(decoded->at(1).participants.at(1).incarnation, 42);
}

// A corrupt count or length is refused by the checked reader, not allocated.
TEST_F(TxnTableTest, ForgedCountsAndTypesAreRefused) {
  std::string bytes = EncodeBatch({MakeEpoch(7)});
  ASSERT_EQ(bytes.substr(0, 4), std::string("\x0f\x00\x01\x0c", 4));  // field 1: list<struct>
  std::string forged = bytes;
  forged.replace(4, 4, std::string("\x7f\xff\xff\xff", 4));  // 2^31-1 commands
  EXPECT_EQ(DecodeBatch(forged).status().code(), Status::kInternal);
  EXPECT_EQ(table_.Restore(forged).code(), Status::kInternal);
  std::string bad_type = bytes;
  bad_type[3] = 0x7e;  // no Thrift type
  EXPECT_EQ(DecodeBatch(bad_type).status().code(), Status::kInternal);
}

// A command's enum fields hold whatever int32 the bytes carried. A batch (a
// log record, a chosen value) or a snapshot with a value outside an enum is
// refused before anything reads it as the enum (undefined behaviour; found by
// the coord_log and paxos_peer fuzz targets, inputs in tests/fuzz/crashes/).
// The bytes are patched, since no enum variable may hold such a value.
std::string WithTypeValue(std::string bytes, uint8_t original, uint32_t value) {
  // A command's first field: T_I32 (8), id 1, then the value.
  const std::string field = std::string("\x08\x00\x01\x00\x00\x00", 6) + static_cast<char>(original);
  const size_t at = bytes.find(field);
  EXPECT_NE(at, std::string::npos);
  if (at == std::string::npos) return bytes;
  for (int b = 0; b < 4; ++b) bytes[at + 3 + b] = static_cast<char>(value >> (24 - 8 * b));
  return bytes;
}

TEST_F(TxnTableTest, BatchWithUnknownCommandTypeIsRefused) {
  const std::string ok = EncodeBatch({MakeEnd(MakeTxId(3, 1))});  // END_TXN = 3
  ASSERT_TRUE(DecodeBatch(ok).ok());
  auto bad = DecodeBatch(WithTypeValue(ok, 3, 7941));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown type 7941"), std::string::npos)
      << bad.status().ToString();
  // Just past the last type, and negative.
  EXPECT_FALSE(DecodeBatch(WithTypeValue(ok, 3, 7)).ok());
  EXPECT_FALSE(DecodeBatch(WithTypeValue(ok, 3, 0xffffffffu)).ok());
  EXPECT_TRUE(DecodeBatch(WithTypeValue(ok, 3, 6)).ok());  // FORGET
}

TEST_F(TxnTableTest, DecisionThatDecidesNothingIsRefused) {
  const std::string ok = EncodeBatch(
      {MakeDecide(MakeTxId(4, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, "")});
  ASSERT_TRUE(DecodeBatch(ok).ok());
  // The outcome field: T_I32 (8), id 3, COMMITTED (2) -> UNKNOWN (0), PENDING (1).
  const std::string field("\x08\x00\x03\x00\x00\x00\x02", 7);
  const size_t at = ok.find(field);
  ASSERT_NE(at, std::string::npos);
  for (char v : {'\x00', '\x01', '\x04'}) {
    std::string bad = ok;
    bad[at + 6] = v;
    auto r = DecodeBatch(bad);
    ASSERT_FALSE(r.ok()) << static_cast<int>(v);
    EXPECT_NE(r.status().message().find("neither committed nor aborted"), std::string::npos);
  }
}

// Epochs and seqs start at 1: a table that applied a txid of epoch 0 wrote a
// snapshot it could not restore (its forgotten runs named epoch 0).
TEST_F(TxnTableTest, CommandForTxidOutsideTheAllocatedRangeIsRefused) {
  for (const TxId& t : {MakeTxId(0, 5), MakeTxId(3, 0), MakeTxId(-1, 2)}) {
    auto r = DecodeBatch(EncodeBatch({MakeEnd(t)}));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("start at 1"), std::string::npos) << r.status().ToString();
  }
  EXPECT_TRUE(DecodeBatch(EncodeBatch({MakeEnd(MakeTxId(1, 1)), MakeEpoch(0)})).ok());
}

TEST_F(TxnTableTest, SnapshotWithUnknownCommandTypeDoesNotRestore) {
  Apply(MakeDecide(MakeTxId(3, 1), proto::Outcome::COMMITTED, {kA}, proto::Protocol::TWO_PC, ""));
  const std::string image = table_.Snapshot();  // DECIDE = 1 first
  TxnTable restored;
  ASSERT_TRUE(restored.Restore(image).ok());
  TxnTable refused;
  EXPECT_FALSE(refused.Restore(WithTypeValue(image, 1, 5963781)).ok());
  EXPECT_EQ(refused.size(), 0u);
}

}  // namespace
}  // namespace txc::coord
