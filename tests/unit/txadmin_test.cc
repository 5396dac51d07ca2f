// txadmin's library (tools/admin/): the command-line parser (exit codes,
// help of every command, --config), the reports and their JSON, and the
// offline WAL reader on every kind of log (an agent's branch log, a database
// resource's WAL, a coordinator's), including a file a writer holds.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/codec.h"
#include "coordinator/txn_table.h"
#include "participant/sqlite_branch_log.h"
#include "tools/admin/cli.h"
#include "tools/admin/commands.h"
#include "tools/admin/report.h"
#include "tools/admin/wal_dump.h"
#include "wal/log_store.h"
#include "wal/sqlite.h"

namespace txc::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Ran {
  int code;
  std::string out;
  std::string err;
};

Ran RunMain(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = Main(args, out, err);
  return {code, out.str(), err.str()};
}

// ------------------------------------------------------------------ parser

class TxadminParserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/txadmin_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  std::string dir_;
};

TEST_F(TxadminParserTest, UsageErrorsExitTwoAndSayWhatToDo) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  std::vector<Case> cases = {
      {{}, "no command given"},
      {{"no-such-command"}, "unknown command 'no-such-command'"},
      {{"--coordinator", "127.0.0.1:1", "status", "--bogus"}, "--bogus"},
      {{"--bogus", "status"}, "unknown option '--bogus'"},
      {{"--coordinator"}, "needs a value"},
      {{"status"}, "give --coordinator"},
      {{"--coordinator", "not-an-address", "status"}, "not-an-address"},
      {{"--coordinator", "127.0.0.1:1", "txn"}, "txn show TXID"},
      {{"--coordinator", "127.0.0.1:1", "txn", "show"}, "needs TXID"},
      {{"--coordinator", "127.0.0.1:1", "txn", "show", "seven"}, "not a txid"},
      {{"--coordinator", "127.0.0.1:1", "txn", "show", "1.2", "1.3"}, "unexpected argument '1.3'"},
      {{"--coordinator", "127.0.0.1:1", "txns", "--state", "sleepy"}, "unknown state 'sleepy'"},
      {{"--coordinator", "127.0.0.1:1", "txns", "--state"}, "state"},
      {{"agent"}, "agent HOST:PORT branches"},
      {{"agent", "branches"}, "needs the agent's address first"},
      {{"agent", "nowhere", "branches"}, "agent address 'nowhere'"},
      {{"agent", "127.0.0.1:1"}, "agent needs a command"},
      {{"agent", "127.0.0.1:1", "dance"}, "unknown command 'agent dance'"},
      {{"wal"}, "wal dump PATH"},
      {{"wal", "dump"}, "needs PATH"},
      {{"wal", "dump", "/x", "--txid", "x"}, "not a txid"},
      // Commands of later work do not exist until they are implemented.
      {{"--coordinator", "127.0.0.1:1", "txn", "retry"}, "needs TXID"},
      {{"--coordinator", "127.0.0.1:1", "txns", "retry"}, "--all"},
      {{"--coordinator", "127.0.0.1:1", "txns", "retry", "1.2", "--all"}, "unexpected argument"},
      {{"--coordinator", "127.0.0.1:1", "txns", "bogus"}, "unexpected argument 'bogus'"},
      {{"--coordinator", "127.0.0.1:1", "txn", "resolve", "1.2", "--reason", "x"}, "exactly one of --abort or --commit"},
      {{"--coordinator", "127.0.0.1:1", "txn", "resolve", "1.2", "--abort", "--commit", "--reason", "x"}, "exactly one"},
      {{"--coordinator", "127.0.0.1:1", "txn", "resolve", "1.2", "--abort"}, "needs --reason"},
      {{"agent", "127.0.0.1:1", "resolve", "1.2"}, "exactly one of --abort or --commit"},
      {{"agent", "127.0.0.1:1", "resolve", "1.2", "--abort"}, "needs --reason"},
      {{"agent", "127.0.0.1:1", "forget", "1.2"}, "needs --reason"},
      {{"agent", "127.0.0.1:1", "forget", "x.2", "--reason", "r"}, "is not a txid"},
      {{"agent", "127.0.0.1:1", "branches", "--in-doubt", "--heuristic"}, "one of --in-doubt or --heuristic"},
      {{"--coordinator", "127.0.0.1:1", "txns", "--older-than", "soon"}, "not a duration"},
      {{"agent", "127.0.0.1:1", "teleport", "1.2"}, "unknown command 'agent teleport'"},
      {{"--coordinator", "127.0.0.1:1", "txn", "forget", "1.2", "--reason", "x"}, "needs --participant"},
      {{"--coordinator", "127.0.0.1:1", "txn", "forget", "1.2", "--participant", "bank_b"}, "needs --reason"},
  };
  for (const auto& c : cases) {
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    Ran r = RunMain(c.args);
    EXPECT_EQ(r.code, kExitUsage) << line << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.says)) << line;
    EXPECT_EQ(r.out, "") << line;
  }
}

TEST_F(TxadminParserTest, EveryCommandHasItsOwnHelp) {
  Ran main_help = RunMain({"--help"});
  EXPECT_EQ(main_help.code, kExitOk);
  for (const CommandSpec& c : Commands()) {
    EXPECT_THAT(main_help.out, HasSubstr(c.summary)) << c.name;
    // The words of the command, with a placeholder for the agent's address
    // and arguments that --help does not need.
    std::vector<std::string> args;
    std::istringstream words(c.name);
    for (std::string w; words >> w;) {
      args.push_back(w);
      if (w == "agent") args.push_back("127.0.0.1:1");
    }
    args.push_back("--help");
    Ran r = RunMain(args);
    EXPECT_EQ(r.code, kExitOk) << c.name << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("usage: ")) << c.name;
    EXPECT_THAT(r.out, HasSubstr(c.summary)) << c.name;
    EXPECT_THAT(r.out, HasSubstr("--json")) << c.name;
    // Also without the agent's address.
    if (c.scope == Scope::kAgent) {
      Ran bare = RunMain({"agent", c.name.substr(6), "-h"});
      EXPECT_EQ(bare.code, kExitOk) << bare.err;
      EXPECT_EQ(bare.out, r.out);
    }
  }
  EXPECT_THAT(RunMain({"--coordinator", "127.0.0.1:1", "txns", "--help"}).out, HasSubstr("--state"));
  EXPECT_THAT(RunMain({"agent", "127.0.0.1:1", "branches", "--help"}).out, HasSubstr("--in-doubt"));
  EXPECT_THAT(RunMain({"wal", "dump", "--help"}).out, HasSubstr("--txid"));
  // A group's help lists its commands.
  Ran txn = RunMain({"txn", "--help"});
  EXPECT_EQ(txn.code, kExitOk);
  EXPECT_THAT(txn.out, HasSubstr("txn show TXID"));
  EXPECT_THAT(RunMain({"agent", "--help"}).out, HasSubstr("agent HOST:PORT branches"));
}

TEST_F(TxadminParserTest, EveryCommandParsedIsACommandThatRuns) {
  // No stub: the table of commands and their implementations match.
  ASSERT_EQ(Runners().size(), Commands().size());
  for (const CommandSpec& c : Commands()) EXPECT_EQ(Runners().count(c.name), 1u) << c.name;
}

TEST_F(TxadminParserTest, ParsesEachCommandsArgumentsAndOptions) {
  ParseResult p = Parse({"--coordinator", "127.0.0.1:7001,127.0.0.1:7002", "txn", "show", "3.14", "--json"});
  ASSERT_EQ(p.kind, ParseResult::kRun) << p.text;
  EXPECT_EQ(p.invocation.command->name, "txn show");
  EXPECT_EQ(p.invocation.coordinators, (std::vector<std::string>{"127.0.0.1:7001", "127.0.0.1:7002"}));
  EXPECT_EQ(p.invocation.args, std::vector<std::string>{"3.14"});
  EXPECT_TRUE(p.invocation.json);

  p = Parse({"agent", "127.0.0.1:7101", "branches", "--in-doubt"});
  ASSERT_EQ(p.kind, ParseResult::kRun) << p.text;
  EXPECT_EQ(p.invocation.command->name, "agent branches");
  EXPECT_EQ(p.invocation.agent, "127.0.0.1:7101");
  EXPECT_TRUE(p.invocation.options["in-doubt"].as<bool>());
  EXPECT_FALSE(p.invocation.json);

  p = Parse({"wal", "dump", "--txid", "2.5", "/var/lib/bank.db"});
  ASSERT_EQ(p.kind, ParseResult::kRun) << p.text;
  EXPECT_EQ(p.invocation.args, std::vector<std::string>{"/var/lib/bank.db"});
  EXPECT_EQ(p.invocation.options["txid"].as<std::string>(), "2.5");
  EXPECT_TRUE(p.invocation.coordinators.empty());  // offline: needs no group

  p = Parse({"--coordinator=127.0.0.1:7001", "--log-level", "debug", "txns", "--state", "in-doubt"});
  ASSERT_EQ(p.kind, ParseResult::kRun) << p.text;
  EXPECT_EQ(p.invocation.options["state"].as<std::string>(), "in-doubt");
  EXPECT_EQ(p.invocation.log_level, "debug");
}

TEST_F(TxadminParserTest, ConfigFileGivesTheGroupAndTheCommandLineWins) {
  std::string conf = Write("a.conf", "# the group\ncoordinator = 127.0.0.1:7001\n");
  ParseResult p = Parse({"--config", conf, "status"});
  ASSERT_EQ(p.kind, ParseResult::kRun) << p.text;
  EXPECT_EQ(p.invocation.coordinators, std::vector<std::string>{"127.0.0.1:7001"});
  p = Parse({"--config", conf, "--coordinator", "127.0.0.1:7009", "status"});
  ASSERT_EQ(p.kind, ParseResult::kRun) << p.text;
  EXPECT_EQ(p.invocation.coordinators, std::vector<std::string>{"127.0.0.1:7009"});

  Ran typo = RunMain({"--config", Write("typo.conf", "coordinater = 127.0.0.1:7001\n"), "status"});
  EXPECT_EQ(typo.code, kExitUsage);
  EXPECT_THAT(typo.err, HasSubstr("coordinater"));
  Ran missing = RunMain({"--config", dir_ + "/no-such.conf", "status"});
  EXPECT_EQ(missing.code, kExitUsage);
  EXPECT_THAT(missing.err, HasSubstr("no-such.conf"));
}

TEST_F(TxadminParserTest, AnUnreachableGroupIsAnErrorNotAUsageError) {
  // Port 1 on loopback: nothing listens (connection refused at once).
  Ran r = RunMain({"--coordinator", "127.0.0.1:1", "status"});
  EXPECT_EQ(r.code, kExitError);
  EXPECT_THAT(r.err, HasSubstr("no coordinator replica answered"));
  EXPECT_THAT(r.err, HasSubstr("check that txcoord runs there"));
  Ran agent = RunMain({"agent", "127.0.0.1:1", "branches", "--json"});
  EXPECT_EQ(agent.code, kExitError);
  EXPECT_THAT(agent.err, HasSubstr("check that txagent runs with --listen 127.0.0.1:1"));
  Ran wal = RunMain({"wal", "dump", dir_ + "/nothing.db"});
  EXPECT_EQ(wal.code, kExitError);
  EXPECT_THAT(wal.err, HasSubstr("does not exist"));
}

// ------------------------------------------------------------------ status

proto::StatusResponse View(int id, int leader, int64_t epoch, int64_t applied) {
  proto::StatusResponse s;
  s.replica_id = id;
  s.leader_id = leader;
  s.leader_address = leader != 0 ? "127.0.0.1:700" + std::to_string(leader) : "";
  s.epoch = epoch;
  s.commit_index = applied;
  s.applied_index = applied;
  for (int i = 1; i <= 3; ++i) {
    proto::ReplicaInfo ri;
    ri.id = i;
    ri.address = "127.0.0.1:700" + std::to_string(i);
    s.replicas.push_back(ri);
  }
  return s;
}

ReplicaAnswer Up(const proto::StatusResponse& s) {
  return {"127.0.0.1:700" + std::to_string(s.replica_id), s, ""};
}
ReplicaAnswer Down(int id) { return {"127.0.0.1:700" + std::to_string(id), std::nullopt, "refused"}; }

TEST(TxadminStatusTest, AllUpNamesTheLeaderAndEachFollowersLag) {
  StatusReport r = BuildStatus({Up(View(1, 2, 4, 90)), Up(View(2, 2, 4, 100)), Up(View(3, 2, 4, 100))});
  Json j = StatusJson(r);
  EXPECT_EQ(j["leader"], 2);
  EXPECT_EQ(j["leader_address"], "127.0.0.1:7002");
  EXPECT_EQ(j["leader_reachable"], true);
  EXPECT_EQ(j["epoch"], 4);
  ASSERT_EQ(j["replicas"].size(), 3u);
  EXPECT_EQ(j["replicas"][0]["id"], 1);
  EXPECT_EQ(j["replicas"][0]["role"], "follower");
  EXPECT_EQ(j["replicas"][0]["lag"], 10);
  EXPECT_EQ(j["replicas"][1]["role"], "leader");
  EXPECT_EQ(j["unreachable"].size(), 0u);
  // The first keys, in order, as scripts read them.
  EXPECT_THAT(j.dump(), HasSubstr("{\"leader\":2,"));
  EXPECT_THAT(j.dump(), HasSubstr("\"replicas\":[{\"id\":1,"));
  std::string table = StatusTable(r);
  EXPECT_THAT(table, HasSubstr("leader: 2 (127.0.0.1:7002)   epoch: 4"));
  EXPECT_THAT(table, Not(HasSubstr("UNREACHABLE")));
}

TEST(TxadminStatusTest, ADeadLeaderIsStillNamedByTheFollowersAndMarkedUnreachable) {
  // Before: {"leader":null,"epoch":0} although both followers name leader 2 in epoch 1.
  StatusReport r = BuildStatus({Up(View(1, 2, 1, 50)), Down(2), Up(View(3, 2, 1, 48))});
  Json j = StatusJson(r);
  EXPECT_EQ(j["leader"], 2);
  EXPECT_EQ(j["epoch"], 1);
  EXPECT_EQ(j["leader_reachable"], false);
  ASSERT_EQ(j["unreachable"].size(), 1u);
  EXPECT_EQ(j["unreachable"][0]["address"], "127.0.0.1:7002");
  EXPECT_EQ(j["unreachable"][0]["id"], 2);
  EXPECT_EQ(j["unreachable"][0]["leader"], true);
  EXPECT_EQ(j["replicas"].size(), 2u);
  EXPECT_EQ(j["replicas"][1]["lag"], 2);  // behind the most advanced answering replica
  std::string table = StatusTable(r);
  EXPECT_THAT(table, HasSubstr("leader: 2 (127.0.0.1:7002, UNREACHABLE)   epoch: 1"));
  EXPECT_THAT(table, HasSubstr("1 of 3 replicas unreachable"));
}

TEST(TxadminStatusTest, WhenTheAnsweringReplicasDisagreeTheNewestEpochWins) {
  StatusReport r = BuildStatus({Up(View(1, 2, 1, 10)), Down(2), Up(View(3, 3, 2, 12))});
  EXPECT_EQ(r.leader_id, 3);
  EXPECT_EQ(r.epoch, 2);
  EXPECT_TRUE(r.leader_reachable);
  // A replica that still leads an older epoch is not called the leader.
  r = BuildStatus({Up(View(1, 1, 1, 10)), Up(View(2, 3, 2, 12)), Down(3)});
  EXPECT_EQ(r.leader_id, 3);
  EXPECT_FALSE(r.leader_reachable);
  EXPECT_EQ(r.replicas[0].role, "stale-leader");
}

TEST(TxadminStatusTest, NobodyAnswersOrNobodyLeads) {
  Json none = StatusJson(BuildStatus({Down(1), Down(2), Down(3)}));
  EXPECT_TRUE(none["leader"].is_null());
  EXPECT_EQ(none["epoch"], 0);
  EXPECT_EQ(none["unreachable"].size(), 3u);
  StatusReport leaderless = BuildStatus({Up(View(1, 0, 3, 5)), Down(2), Down(3)});
  EXPECT_EQ(leaderless.leader_id, 0);
  EXPECT_EQ(leaderless.epoch, 3);
  EXPECT_THAT(StatusTable(leaderless), HasSubstr("no replica names a leader"));
}

TEST(TxadminStatusTest, StorageFailuresAreListed) {
  proto::StatusResponse failed = View(3, 2, 4, 100);
  failed.storage_failed = true;
  StatusReport r = BuildStatus({Up(View(1, 2, 4, 100)), Up(View(2, 2, 4, 100)), Up(failed)});
  EXPECT_EQ(StatusJson(r)["storage_failed"], Json::array({3}));
  EXPECT_EQ(StatusJson(r)["replicas"][2]["storage_failed"], true);
  EXPECT_THAT(StatusTable(r), HasSubstr("replica 3: STORAGE FAILED"));
}

// ------------------------------------------------- transactions, branches

TEST(TxadminReportTest, TransactionsCarryParticipantsAcksAndHazards) {
  proto::TxnInfo t;
  t.txid = MakeTxId(3, 7);
  t.state = "completing";
  t.outcome = proto::Outcome::COMMITTED;
  proto::Participant a, b;
  a.resource = "bank_a";
  a.address = "127.0.0.1:7101";
  b.resource = "bank_b";
  b.address = "127.0.0.1:7102";
  t.participants = {a, b};
  t.acked = {"bank_a"};
  t.age_ms = 1200;
  t.in_doubt = true;
  t.__set_hazards({"bank_b at 127.0.0.1:7102 refused committed: it aborted"});
  Json j = TxnsJson({t});
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["txid"], "3.7");
  EXPECT_EQ(j[0]["state"], "completing");
  EXPECT_EQ(j[0]["outcome"], "committed");
  EXPECT_EQ(j[0]["in_doubt"], true);
  EXPECT_EQ(j[0]["participants"][1]["resource"], "bank_b");
  EXPECT_EQ(j[0]["acked"], Json::array({"bank_a"}));
  EXPECT_EQ(j[0]["hazards"].size(), 1u);
  EXPECT_THAT(TxnsTable({t}), HasSubstr("(1 transactions)"));
  std::string show = TxnShowText("3.7", t, proto::Outcome::COMMITTED);
  EXPECT_THAT(show, HasSubstr("bank_b at 127.0.0.1:7102  not acknowledged"));
  EXPECT_THAT(show, HasSubstr("HAZARD: bank_b"));
  Json ended = TxnShowJson("3.8", std::nullopt, proto::Outcome::ABORTED);
  EXPECT_EQ(ended["state"], "ended");
  EXPECT_EQ(ended["group_outcome"], "aborted");
}

TEST(TxadminReportTest, AStuckTransactionShowsEachParticipantsAttemptsAndLastError) {
  proto::TxnInfo t;
  t.txid = MakeTxId(3, 9);
  t.state = "completing";
  t.outcome = proto::Outcome::COMMITTED;
  proto::Participant a, b;
  a.resource = "bank_a";
  a.address = "127.0.0.1:7101";
  b.resource = "bank_b";
  b.address = "127.0.0.1:7102";
  t.participants = {a, b};
  t.acked = {"bank_a"};
  t.in_doubt = true;
  t.__set_stuck(true);
  t.__set_decided_age_ms(12000);
  proto::ParticipantProgress pa, pb;
  pa.resource = "bank_a";
  pa.__set_vote(proto::Vote::YES);
  pa.acked = true;
  pa.attempts = 1;
  pb.resource = "bank_b";
  pb.__set_vote(proto::Vote::YES);
  pb.attempts = 6;
  pb.__set_last_error("TIMEOUT: no answer from 127.0.0.1:7102 within 5000 ms");
  t.__set_progress({pa, pb});
  Json j = TxnJson(t);
  EXPECT_EQ(j["stuck"], true);
  EXPECT_EQ(j["decided_age_ms"], 12000);
  ASSERT_EQ(j["progress"].size(), 2u);
  EXPECT_EQ(j["progress"][0]["last_error"], nullptr);
  EXPECT_EQ(j["progress"][1]["attempts"], 6);
  EXPECT_EQ(j["progress"][1]["vote"], "yes");
  EXPECT_THAT(j["progress"][1]["last_error"].get<std::string>(), HasSubstr("TIMEOUT"));
  EXPECT_THAT(TxnsTable({t}), HasSubstr("STUCK"));
  std::string show = TxnShowText("3.9", t, proto::Outcome::COMMITTED);
  EXPECT_THAT(show, HasSubstr("STUCK"));
  EXPECT_THAT(show, HasSubstr("txadmin txn retry 3.9"));
  EXPECT_THAT(show, HasSubstr("sent 6x"));
  EXPECT_THAT(show, HasSubstr("last error: TIMEOUT"));
}

TEST(TxadminReportTest, BranchesAreObjectsWithTxidResourceStateAndAge) {
  proto::BranchInfo prepared, failing;
  prepared.txid = MakeTxId(2, 9);
  prepared.resource = "bank_a";
  prepared.state = "prepared";
  prepared.age_ms = 1500;
  failing.txid = MakeTxId(2, 10);
  failing.resource = "bank_a";
  failing.state = "aborting (rollback failing: 3 failed attempts, last error: disk I/O error)";
  failing.age_ms = 20;
  std::vector<BranchRow> rows = {ToRow(prepared), ToRow(failing)};
  EXPECT_TRUE(InDoubt(rows[0]));
  EXPECT_FALSE(InDoubt(rows[1]));
  Json j = BranchesJson(rows);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[0]["txid"], "2.9");
  EXPECT_EQ(j[0]["resource"], "bank_a");
  EXPECT_EQ(j[0]["state"], "prepared");
  EXPECT_EQ(j[0]["age_ms"], 1500);
  EXPECT_EQ(j[0]["in_doubt"], true);
  EXPECT_FALSE(j[0].contains("detail"));
  EXPECT_EQ(j[1]["state"], "aborting");
  EXPECT_EQ(j[1]["detail"], "rollback failing: 3 failed attempts, last error: disk I/O error");
  EXPECT_THAT(BranchesTable(rows), HasSubstr("(2 branches)"));
  EXPECT_EQ(IsoTime(1796195099515), "2026-12-02T07:04:59.515Z");
}

// --------------------------------------------------------------- wal dump

class TxadminWalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/txadmin_wal_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    io_thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    io_thread_.join();
    std::filesystem::remove_all(dir_);
  }

  // Writes a coordinator log as LogStore does: `records` and `metas`.
  void WriteLog(const std::string& path, std::vector<wal::LogRecord> records,
                std::vector<std::pair<std::string, std::string>> metas) {
    auto store = wal::LogStore::Open(path, io_.get_executor());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    wal::LogStore::Batch batch;
    batch.records = std::move(records);
    batch.metas = std::move(metas);
    std::promise<Status> done;
    (*store)->Write(std::move(batch), [&](Status s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  static proto::Participant P(const std::string& r) {
    proto::Participant p;
    p.resource = r;
    p.address = "127.0.0.1:7101";
    return p;
  }

  std::string dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread io_thread_;
};

TEST_F(TxadminWalTest, ReadsAPaxosLogAndFindsItInItsDataDirectory) {
  auto entry = [](int64_t slot, std::vector<proto::Command> cmds) {
    paxos::wire::Entry e;
    e.slot = slot;
    e.ballot.round = 4;
    e.ballot.replica = 2;
    e.value = coord::EncodeBatch(cmds);
    return wal::LogRecord{static_cast<uint64_t>(slot), codec::Encode(e)};
  };
  paxos::wire::Ballot promised;
  promised.round = 5;
  promised.replica = 3;
  std::filesystem::create_directories(dir_ + "/c1");
  WriteLog(dir_ + "/c1/paxos.log",
           {entry(1, {coord::MakeEpoch(4)}),
            entry(2, {coord::MakeDecide(MakeTxId(4, 1), proto::Outcome::COMMITTED,
                                        {P("bank_a"), P("bank_b")}, proto::Protocol::TWO_PC, "")}),
            entry(3, {coord::MakeEnd(MakeTxId(4, 1)),
                      coord::MakeDecide(MakeTxId(4, 2), proto::Outcome::ABORTED, {P("bank_a")},
                                        proto::Protocol::TWO_PC, "a NO vote")})},
           {{"promised", codec::Encode(promised)}, {"joining", "0"}});

  auto d = ReadWal(dir_ + "/c1", std::nullopt);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kind, WalDump::kPaxosLog);
  EXPECT_EQ(d->path, dir_ + "/c1/paxos.log");
  Json j = WalJson(*d);
  EXPECT_EQ(j["kind"], "coordinator-paxos-log");
  EXPECT_EQ(j["meta"]["promised"], "5.3");
  ASSERT_EQ(j["records"].size(), 3u);
  EXPECT_EQ(j["records"][0]["commands"][0]["type"], "EPOCH");
  EXPECT_EQ(j["records"][1]["index"], 2);
  EXPECT_EQ(j["records"][1]["ballot"], "4.2");
  EXPECT_EQ(j["records"][1]["commands"][0]["type"], "DECIDE");
  EXPECT_EQ(j["records"][1]["commands"][0]["txid"], "4.1");
  EXPECT_EQ(j["records"][1]["commands"][0]["outcome"], "committed");
  EXPECT_EQ(j["records"][1]["commands"][0]["participants"].size(), 2u);
  EXPECT_EQ(j["records"][2]["commands"][1]["reason"], "a NO vote");

  // --txid: only the records of that transaction, only its commands.
  d = ReadWal(dir_ + "/c1/paxos.log", MakeTxId(4, 1));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->records.size(), 2u);
  EXPECT_EQ(d->records[1].commands.size(), 1u);
  EXPECT_EQ(d->records[1].commands[0].type, proto::CommandType::END_TXN);
  EXPECT_THAT(WalText(*d), HasSubstr("END 4.1"));
}

TEST_F(TxadminWalTest, ReadsASingleReplicasLogWithItsSnapshot) {
  coord::TxnTable table;
  std::string image = table.Snapshot();
  WriteLog(dir_ + "/coord.log",
           {wal::LogRecord{7, coord::EncodeBatch({coord::MakeDecide(
                                  MakeTxId(2, 3), proto::Outcome::COMMITTED, {P("bank_a")},
                                  proto::Protocol::TWO_PC, "")})}},
           {{"epoch", "2"}, {"snapshot", image}, {"snapshot_index", "6"}});
  auto d = ReadWal(dir_ + "/coord.log", std::nullopt);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kind, WalDump::kLocalLog);
  Json j = WalJson(*d);
  EXPECT_EQ(j["meta"]["epoch"], "2");
  EXPECT_EQ(j["snapshot"]["index"], 6);
  ASSERT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["index"], 7);
  EXPECT_FALSE(j["records"][0].contains("ballot"));
  EXPECT_EQ(j["records"][0]["commands"][0]["txid"], "2.3");
}

TEST_F(TxadminWalTest, ReadsAnAgentsBranchLogWhileAWriterHoldsItOpen) {
  std::string path = dir_ + "/bank.db";
  auto db = wal::Db::Open(path);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  participant::internal::BranchLog log("bank", db->get(), [] { return 1796195099515 * kMillis; });
  ASSERT_TRUE(log.Init().ok());
  ASSERT_TRUE((*db)->Exec("BEGIN IMMEDIATE").ok());
  ASSERT_TRUE(log.InsertBranch(MakeTxId(2, 1), participant::BranchState::kActive).ok());
  ASSERT_TRUE(log.AppendChange("2.1", "redo-bytes", "undo", {"k1", "k2"}).ok());
  participant::PrepareInfo info;
  info.participants = {P("bank"), P("bank_b")};
  ASSERT_TRUE(log.SetPrepared("2.1", info).ok());
  ASSERT_TRUE(log.InsertBranch(MakeTxId(2, 2), participant::BranchState::kActive).ok());
  ASSERT_TRUE(log.SetState("2.2", participant::BranchState::kAborted).ok());
  const std::vector<std::string> one_shot_keys = {"a", "b", "c"};
  ASSERT_TRUE(log.InsertPrepared(MakeTxId(2, 4), info,
                                 participant::internal::BranchLog::Change{"one-shot", "u",
                                                                          &one_shot_keys})
                  .ok());
  ASSERT_TRUE((*db)->Exec("COMMIT").ok());

  // A writer in the middle of a transaction: the dump neither waits for it
  // nor sees its uncommitted row, and holds no lock the writer trips on.
  ASSERT_TRUE((*db)->Exec("BEGIN IMMEDIATE").ok());
  ASSERT_TRUE(log.InsertBranch(MakeTxId(2, 3), participant::BranchState::kActive).ok());
  auto d = ReadWal(path, std::nullopt);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_TRUE((*db)->Exec("COMMIT").ok());

  EXPECT_EQ(d->kind, WalDump::kBranchLog);
  Json j = WalJson(*d);
  EXPECT_EQ(j["kind"], "agent-branch-log");
  EXPECT_EQ(j["meta"]["branch_log_layout"],
            std::to_string(participant::internal::BranchLog::kBranchLogLayout));
  EXPECT_THAT(WalText(*d), HasSubstr("meta branch_log_layout = " +
                                     std::to_string(participant::internal::BranchLog::kBranchLogLayout) +
                                     "\n"));
  ASSERT_EQ(j["branches"].size(), 3u);
  EXPECT_EQ(j["branches"][0]["txid"], "2.1");
  EXPECT_EQ(j["branches"][0]["state"], "PREPARED");
  EXPECT_EQ(j["branches"][0]["protocol"], "2pc");
  EXPECT_EQ(j["branches"][0]["participants"][1]["resource"], "bank_b");
  EXPECT_EQ(j["branches"][0]["updated"], "2026-12-02T07:04:59.515Z");
  ASSERT_EQ(j["branches"][0]["changes"].size(), 1u);
  EXPECT_EQ(j["branches"][0]["changes"][0]["redo_bytes"], 10);
  EXPECT_EQ(j["branches"][0]["changes"][0]["lock_keys"], 2);
  EXPECT_EQ(j["branches"][1]["state"], "ABORTED");
  EXPECT_EQ(j["branches"][1]["changes"].size(), 0u);
  // A one-shot's change set is in its own row: shown as its change 1.
  EXPECT_EQ(j["branches"][2]["txid"], "2.4");
  ASSERT_EQ(j["branches"][2]["changes"].size(), 1u);
  EXPECT_EQ(j["branches"][2]["changes"][0]["seq"], 1);
  EXPECT_EQ(j["branches"][2]["changes"][0]["redo_bytes"], 8);
  EXPECT_EQ(j["branches"][2]["changes"][0]["lock_keys"], 3);
  d = ReadWal(path, MakeTxId(2, 4));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->branches.size(), 1u);
  ASSERT_EQ(d->branches[0].changes.size(), 1u);

  d = ReadWal(path, MakeTxId(2, 3));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->branches.size(), 1u);
  EXPECT_EQ(d->branches[0].state, static_cast<int>(participant::BranchState::kActive));
}

// A branch log written before a one-shot's change set moved into its
// branch row (no redo column in txc_branches) is still read.
TEST_F(TxadminWalTest, ReadsABranchLogOfTheLayoutBeforeOneShotRows) {
  std::string path = dir_ + "/old.db";
  auto db = wal::Db::Open(path);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec(
      "CREATE TABLE txc_branches(txid TEXT PRIMARY KEY, epoch INTEGER NOT NULL, seq INTEGER NOT "
      "NULL, state INTEGER NOT NULL, participants BLOB, protocol INTEGER, updated INTEGER NOT "
      "NULL, changed INTEGER NOT NULL DEFAULT 1);"
      "CREATE TABLE txc_changes(txid TEXT NOT NULL, seq INTEGER NOT NULL, redo BLOB NOT NULL, "
      "undo BLOB NOT NULL, keys BLOB NOT NULL, PRIMARY KEY(txid, seq));"
      "INSERT INTO txc_branches VALUES('3.1', 3, 1, 1, NULL, NULL, 0, 1);"
      "INSERT INTO txc_changes VALUES('3.1', 1, X'0102', X'03', X'');"
      "INSERT INTO txc_changes VALUES('3.1', 2, X'010203', X'03', X'');").ok());
  auto d = ReadWal(path, std::nullopt);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->branches.size(), 1u);
  ASSERT_EQ(d->branches[0].changes.size(), 2u);
  EXPECT_EQ(d->branches[0].changes[1].seq, 2);
  EXPECT_EQ(d->branches[0].changes[1].redo_bytes, 3u);
  EXPECT_EQ(WalJson(*d)["meta"]["branch_log_layout"], "none (a log written before 2026-12-06)");
}

// The WAL of a database resource, written by hand with xa_resource.cc's
// schema and encodings (an XaResource needs a database server).
TEST_F(TxadminWalTest, ReadsADatabaseResourcesWal) {
  std::filesystem::create_directories(dir_ + "/agent-data");
  std::string path = dir_ + "/agent-data/orders.xa.db";
  auto db = wal::Db::Open(path);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE((*db)->Exec(
      "CREATE TABLE IF NOT EXISTS xa_branches(txid TEXT PRIMARY KEY, gid TEXT NOT NULL, "
      "state INTEGER NOT NULL, info BLOB, protocol INTEGER NOT NULL DEFAULT 0, "
      "updated INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS xa_statements(txid TEXT NOT NULL, seq INTEGER NOT NULL, "
      "statements BLOB NOT NULL, PRIMARY KEY(txid, seq));"
      "CREATE TABLE IF NOT EXISTS xa_heuristics(txid TEXT PRIMARY KEY, outcome INTEGER NOT "
      "NULL, reason TEXT NOT NULL, who TEXT NOT NULL, at_ms INTEGER NOT NULL);").ok());
  const int64_t updated_us = 1796195099515123;  // 2026-12-02T07:04:59.515Z
  auto branch = [&](const std::string& txid, int state, std::vector<proto::Participant> ps,
                    int protocol) {
    auto st = (*db)->Prepare(
        "INSERT INTO xa_branches(txid, gid, state, info, protocol, updated) VALUES(?1,?2,?3,?4,?5,?6)");
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE((*st)->BindText(1, txid).ok());
    ASSERT_TRUE((*st)->BindText(2, "txc:" + txid + ":orders").ok());
    ASSERT_TRUE((*st)->BindInt(3, state).ok());
    if (ps.empty()) {
      ASSERT_TRUE((*st)->BindNull(4).ok());
    } else {
      proto::PreparedRecord rec;
      rec.participants = std::move(ps);
      ASSERT_TRUE((*st)->BindBlob(4, codec::Encode(rec)).ok());
    }
    ASSERT_TRUE((*st)->BindInt(5, protocol).ok());
    ASSERT_TRUE((*st)->BindInt(6, updated_us).ok());
    ASSERT_TRUE((*st)->Run().ok());
  };
  auto statements_row = [&](const std::string& txid, int64_t seq, const std::string& blob) {
    auto st = (*db)->Prepare("INSERT INTO xa_statements(txid, seq, statements) VALUES(?1,?2,?3)");
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE((*st)->BindText(1, txid).ok());
    ASSERT_TRUE((*st)->BindInt(2, seq).ok());
    ASSERT_TRUE((*st)->BindBlob(3, blob).ok());
    ASSERT_TRUE((*st)->Run().ok());
  };
  auto statement = [](const std::string& sql, int params) {
    proto::Statement st;
    st.sql = sql;
    for (int i = 0; i < params; ++i) {
      proto::Value v;
      v.__set_i(i);
      st.params.push_back(v);
    }
    return st;
  };
  auto execute = [](std::vector<proto::Statement> sts) {
    proto::ExecuteRequest req;  // as XaResource writes it: only .statements
    req.statements = std::move(sts);
    return codec::Encode(req);
  };
  auto heuristic = [&](const std::string& txid, int outcome, const std::string& who, int64_t at_ms) {
    auto st = (*db)->Prepare(
        "INSERT INTO xa_heuristics(txid, outcome, reason, who, at_ms) VALUES(?1,?2,?3,?4,?5)");
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE((*st)->BindText(1, txid).ok());
    ASSERT_TRUE((*st)->BindInt(2, outcome).ok());
    ASSERT_TRUE((*st)->BindText(3, "gone from the database").ok());
    ASSERT_TRUE((*st)->BindText(4, who).ok());
    ASSERT_TRUE((*st)->BindInt(5, at_ms).ok());
    ASSERT_TRUE((*st)->Run().ok());
  };
  branch("3.10", 2, {P("orders"), P("bank_a")}, proto::Protocol::TWO_PC);
  branch("3.9", 6, {P("orders")}, proto::Protocol::THREE_PC);
  branch("3.11", 7, {P("orders")}, proto::Protocol::TWO_PC);
  branch("3.12", 8, {P("orders")}, proto::Protocol::TWO_PC);
  branch("3.2", 1, {}, 0);
  branch("3.3", 4, {P("orders")}, proto::Protocol::TWO_PC);
  branch("3.4", 5, {}, 0);
  proto::Statement checked = statement("UPDATE stock SET n = n - 1", 0);
  checked.__set_expect_rows(1);
  statements_row("3.10", 2, execute({statement("DELETE FROM cart\nWHERE id = ?", 1)}));
  statements_row("3.10", 1,
                 execute({statement("INSERT INTO orders(id, item) VALUES(?, ?)", 2), checked}));
  statements_row("3.2", 1, "not a thrift struct");
  statements_row("3.99", 1, execute({statement("SELECT 1", 0)}));  // no branch row
  heuristic("3.12", proto::Outcome::UNKNOWN, "database", 1796195099600);
  heuristic("3.3", proto::Outcome::COMMITTED, "ops", 1796195099500);

  auto d = ReadWal(path, std::nullopt);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kind, WalDump::kDatabaseBranchLog);
  Json j = WalJson(*d);
  EXPECT_EQ(j["kind"], "database-branch-log");
  EXPECT_EQ(j["meta"]["xa_wal_layout"], "none (a WAL written before 2026-12-06)");
  ASSERT_EQ(j["branches"].size(), 8u);
  // Oldest txid first (3.9 before 3.10), the one without a branch row last.
  std::vector<std::string> order, states;
  for (const auto& b : j["branches"]) {
    order.push_back(b["txid"]);
    states.push_back(b["state"].is_null() ? "null" : b["state"].get<std::string>());
  }
  EXPECT_EQ(order, (std::vector<std::string>{"3.2", "3.3", "3.4", "3.9", "3.10", "3.11", "3.12", "3.99"}));
  EXPECT_EQ(states, (std::vector<std::string>{"ACTIVE", "COMMITTED", "ABORTED", "COMMITTING",
                                              "PREPARED", "ROLLING_BACK", "GONE", "null"}));
  const Json& prepared = j["branches"][4];
  EXPECT_EQ(prepared["gid"], "txc:3.10:orders");
  EXPECT_EQ(prepared["protocol"], "2pc");
  ASSERT_EQ(prepared["participants"].size(), 2u);
  EXPECT_EQ(prepared["participants"][1]["resource"], "bank_a");
  EXPECT_EQ(prepared["updated"], "2026-12-02T07:04:59.515Z");
  EXPECT_EQ(prepared["updated_ms"], 1796195099515);
  EXPECT_FALSE(prepared.contains("changes"));
  ASSERT_EQ(prepared["statements"].size(), 3u);  // seq 1 (two statements), then seq 2
  EXPECT_EQ(prepared["statements"][0]["seq"], 1);
  EXPECT_EQ(prepared["statements"][0]["sql"], "INSERT INTO orders(id, item) VALUES(?, ?)");
  EXPECT_EQ(prepared["statements"][0]["params"], 2);
  EXPECT_EQ(prepared["statements"][1]["params"], 0);
  EXPECT_EQ(prepared["statements"][1]["expect_rows"], 1);
  EXPECT_EQ(prepared["statements"][2]["seq"], 2);
  EXPECT_EQ(prepared["statements"][2]["sql"], "DELETE FROM cart\nWHERE id = ?");
  EXPECT_EQ(j["branches"][3]["protocol"], "3pc");
  EXPECT_TRUE(j["branches"][0]["protocol"].is_null());  // ACTIVE: not prepared yet
  EXPECT_TRUE(j["branches"][0]["participants"].empty());
  ASSERT_EQ(j["branches"][0]["statements"].size(), 1u);
  EXPECT_EQ(j["branches"][0]["statements"][0]["error"], "unreadable statements record");
  EXPECT_TRUE(j["branches"][7]["gid"].is_null());
  EXPECT_EQ(j["branches"][7]["statements"][0]["sql"], "SELECT 1");
  ASSERT_EQ(j["heuristics"].size(), 2u);
  EXPECT_EQ(j["heuristics"][0]["txid"], "3.3");  // in time order
  EXPECT_EQ(j["heuristics"][0]["outcome"], "committed");
  EXPECT_EQ(j["heuristics"][1]["txid"], "3.12");
  EXPECT_EQ(j["heuristics"][1]["outcome"], "unknown");
  EXPECT_EQ(j["heuristics"][1]["who"], "database");
  EXPECT_EQ(j["heuristics"][1]["at"], "2026-12-02T07:04:59.600Z");

  std::string text = WalText(*d);
  EXPECT_THAT(text, HasSubstr(": database-branch-log\n"));
  EXPECT_THAT(text, HasSubstr("3.10  PREPARED  gid txc:3.10:orders  2pc  updated "
                              "2026-12-02T07:04:59.515Z  participants="));
  EXPECT_THAT(text, HasSubstr("    statement 1: INSERT INTO orders(id, item) VALUES(?, ?)  (2 params)\n"));
  EXPECT_THAT(text, HasSubstr("    statement 1: UPDATE stock SET n = n - 1  (0 params, expect rows 1)\n"));
  EXPECT_THAT(text, HasSubstr("    statement 2: DELETE FROM cart WHERE id = ?  (1 param)\n"));
  EXPECT_THAT(text, HasSubstr("3.2  ACTIVE  gid txc:3.2:orders  updated"));
  EXPECT_THAT(text, HasSubstr("    statement 1: UNREADABLE"));
  EXPECT_THAT(text, HasSubstr("3.9  COMMITTING  gid txc:3.9:orders  3pc"));
  EXPECT_THAT(text, HasSubstr("3.11  ROLLING_BACK"));
  EXPECT_THAT(text, HasSubstr("3.12  GONE"));
  EXPECT_THAT(text, HasSubstr("3.99  (no branch row)\n    statement 1: SELECT 1  (0 params)\n"));
  EXPECT_THAT(text, HasSubstr("(8 branches)\n"));
  EXPECT_THAT(text, HasSubstr("heuristic 3.12  unknown by database (gone from the database)"));
  EXPECT_THAT(text, HasSubstr("(2 heuristic decisions)\n"));

  // --txid: that branch, its statements, its heuristic record only.
  d = ReadWal(path, MakeTxId(3, 12));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->branches.size(), 1u);
  EXPECT_EQ(d->branches[0].state, 8);
  ASSERT_EQ(d->heuristics.size(), 1u);
  EXPECT_EQ(d->heuristics[0].outcome, "unknown");
  Ran one = RunMain({"wal", "dump", path, "--txid", "3.10", "--json"});
  ASSERT_EQ(one.code, 0) << one.err;
  Json k = Json::parse(one.out);
  EXPECT_EQ(k["kind"], "database-branch-log");
  ASSERT_EQ(k["branches"].size(), 1u);
  EXPECT_EQ(k["branches"][0]["txid"], "3.10");
  EXPECT_EQ(k["branches"][0]["statements"].size(), 3u);
  EXPECT_TRUE(k["heuristics"].empty());
  Ran none = RunMain({"wal", "dump", path, "--txid", "3.5"});
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_THAT(none.out, HasSubstr("(0 branches)"));

  // The agent's --data directory: the error names its database WALs.
  d = ReadWal(dir_ + "/agent-data", std::nullopt);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("here: " + path));
}

TEST_F(TxadminWalTest, OtherFilesAreRefusedWithWhatToGiveInstead) {
  std::ofstream(dir_ + "/notes.txt") << "not a database, but long enough to look like one......"
                                        "...........................................\n";
  auto d = ReadWal(dir_ + "/notes.txt", std::nullopt);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("not an SQLite database"));
  auto other = wal::Db::Open(dir_ + "/other.db");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("CREATE TABLE t(x)").ok());
  d = ReadWal(dir_ + "/other.db", std::nullopt);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("neither an agent's branch log"));
  std::filesystem::create_directories(dir_ + "/agent-data");
  d = ReadWal(dir_ + "/agent-data", std::nullopt);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("--resource NAME=sqlite:PATH"));
}

}  // namespace
}  // namespace txc::admin
