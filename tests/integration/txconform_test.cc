// txconform (tools/conform) against real processes: a txcoord and a txagent
// with an SQLite resource hold every case, the crash after a YES vote
// included (a restart script the test writes kills and restarts the agent,
// through a pid file); so does examples/python/participant.py, while
// examples/python/broken_participant.py and an agent that forgets its
// empty-rollback tombstones (a proxy in front of a real txagent, below) fail;
// bad flags exit 2 with a message naming the flag.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>

#include <fstream>
#include <future>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/status_proto.h"
#include "common/txid.h"
#include "protocol/rpc.h"
#include "tests/support/process.h"

namespace txc {
namespace {

using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

// Plaintext, whatever TXC_TEST_TLS says: txconform takes no TLS flags, and
// the Python participants and the proxy it checks speak plaintext.
const testing::ScopedPlaintext kTxconformSpeaksPlaintext;

struct ConformRun {
  int exit_code = -1;
  std::string output;
};

// Runs txconform with `args` to its end (120 s at most), stdout and stderr
// together.
ConformRun Txconform(const std::string& dir, const std::string& name, std::vector<std::string> args) {
  std::string log = dir + "/" + name + ".out";
  args.insert(args.begin(), TXC_BIN_DIR "/txconform");
  Process p("txconform", args, log);
  ConformRun r;
  int status = 0;
  if (!p.Start() || !p.WaitExit(120000, &status)) {
    p.Kill(SIGKILL);
    r.output = "txconform did not finish: " + p.LogTail();
    return r;
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

// Lines matching /pass/i, as the acceptance script counts them.
int PassLines(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  int n = 0;
  std::regex pass("pass", std::regex::icase);
  while (std::getline(in, line)) n += std::regex_search(line, pass) ? 1 : 0;
  return n;
}

// The verdict of the table line of case `name` ("" when there is none).
std::string VerdictOf(const std::string& out, const std::string& name) {
  std::istringstream in(out);
  std::string line;
  std::regex row("^[0-9]+ +" + name + " .* (PASS|FAIL|SKIP)$");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, row)) return m[1];
  }
  return "";
}

pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

// Alive and not a zombie.
bool Running(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("State:", 0) == 0) return line.find('Z') == std::string::npos;
  }
  return false;
}

// A txcoord, and a txagent (resource "conform", SQLite) that a shell script
// starts, and kills and starts again: the script is txconform's
// --restart-cmd. The agent's pid is in a file, so the script and TearDown
// find it.
class TxconformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cport_ = FreePort();
    aport_ = FreePort();
    coord_ = std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{TXC_BIN_DIR "/txcoord", "--listen", Addr(cport_), "--data",
                                 dir_.path + "/coord"},
        dir_.path + "/coord.log");
    ASSERT_TRUE(coord_->Start(cport_)) << coord_->LogTail();
    script_ = dir_.path + "/restart-agent.sh";
    pidfile_ = dir_.path + "/agent.pid";
    lockfile_ = dir_.path + "/restart.lock";
    agent_cmd_ = std::string(TXC_BIN_DIR "/txagent --listen ") + Addr(aport_) + " --data " +
                 dir_.path + "/agent --coordinator " + Addr(cport_) +
                 " --resource conform=sqlite:" + dir_.path + "/conform.db";
    WriteScript(agent_cmd_, /*wait_for_outcome_query=*/true);
    ASSERT_TRUE(RunScript()) << AgentLog();
  }

  // Kills the agent of the pid file, once no restart script runs: a
  // txconform that died in the middle of its --restart-cmd (a sanitizer
  // report, the test's timeout) leaves the script running, which would
  // start an agent after this read the pid file and leave it behind. The
  // script holds the lock file from its start to its end (bounded wait
  // here: 30 s, past the script's own bounds).
  void TearDown() override { StopAgent(); }
  void StopAgent() {
    int fd = open(lockfile_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    for (int i = 0; fd >= 0 && i < 600 && flock(fd, LOCK_EX | LOCK_NB) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_t pid = ReadPid(pidfile_); pid > 0) kill(pid, SIGKILL);
    if (fd >= 0) close(fd);
  }

  // The restart script: kills the agent of the pid file (waiting, bounded,
  // until it is gone, or a zombie without threads left: a killed process's
  // main thread turns zombie while its other threads still exit, and they
  // hold its files, the listening socket included, so a "Z" alone let the
  // next agent's port check connect to the dying one's socket and the kit's
  // first call then meet neither: connection refused, seen under ASan, whose
  // exits are slow), then runs `agent_cmd` in the background and records
  // its pid.
  void WriteScript(const std::string& agent_cmd, bool wait_for_outcome_query) {
    std::ofstream s(script_);
    s << "#!/bin/sh\n"
      << "exec 9>" << lockfile_ << "\n"
      << "flock 9\n"
      << "pidfile=" << pidfile_ << "\n"
      << "if [ -f \"$pidfile\" ]; then\n"
      << "  pid=$(cat \"$pidfile\")\n"
      << "  kill -9 \"$pid\" 2>/dev/null\n"
      << "  i=0\n"
      << "  while [ -d /proc/$pid ] && { ! grep -q '^State:[[:space:]]*Z' /proc/$pid/status "
         "2>/dev/null || [ \"$(ls /proc/$pid/task 2>/dev/null | wc -l)\" -gt 1 ]; } && "
         "[ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n"
      << "fi\n"
      << "log=" << dir_.path << "/agent.log\n"
      << "asked=$(grep -c 'outcome query' \"$log\" 2>/dev/null)\n"
      << agent_cmd << " >>\"$log\" 2>&1 </dev/null 9>&- &\n"
      << "echo $! > \"$pidfile\"\n";
    // txagent: after a restart, return once the agent has asked the
    // coordinator about the branch it recovered in doubt (bounded): the kit's
    // COMMIT then comes after the group's answer, which must not have rolled
    // it back.
    if (wait_for_outcome_query) {
      s << "if [ -n \"$pid\" ]; then\n"
        << "  i=0\n"
        << "  while [ \"$(grep -c 'outcome query' \"$log\")\" -le \"${asked:-0}\" ] && [ $i -lt 300 ]; "
           "do sleep 0.05; i=$((i+1)); done\n"
        << "fi\n";
    }
  }

  // Replaces the txagent by examples/python/`script` (/usr/bin/python3, on
  // the build's gen-py) on the same port, with resource `conform`.
  bool UsePythonAgent(const std::string& script) {
    WriteScript("/usr/bin/python3 " TXC_SOURCE_DIR "/examples/python/" + script + " --gen-py " +
                    TXC_GEN_PY_DIR " --listen " + Addr(aport_) + " --data " + dir_.path + "/py-" +
                    script + " --coordinator " + Addr(cport_) + " --resource conform",
                /*wait_for_outcome_query=*/false);
    return RunScript();
  }

  // Runs the script once and waits for the agent to listen.
  bool RunScript() {
    Process sh("restart-agent", {"/bin/sh", script_}, dir_.path + "/script.log");
    int status = 0;
    if (!sh.Start() || !sh.WaitExit(20000, &status)) return false;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return false;
    return testing::WaitPort(aport_, 20000);
  }

  // The agent's log (every incarnation's), its last `bytes`.
  std::string AgentLog(size_t bytes = 4000) const {
    std::ifstream in(dir_.path + "/agent.log");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > bytes ? s.substr(s.size() - bytes) : s;
  }

  TempDir dir_;
  int cport_ = 0, aport_ = 0;
  std::unique_ptr<Process> coord_;
  std::string agent_cmd_, script_, pidfile_, lockfile_;
};

// The end of a test while a restart script still runs (a txconform that
// died inside its --restart-cmd leaves it running): stopping the agent
// waits for the script, so the agent the script starts is the one
// stopped, not one left behind.
TEST_F(TxconformTest, AnAgentStartedByAScriptStillRunningAtTheEndIsStoppedToo) {
  WriteScript(agent_cmd_, /*wait_for_outcome_query=*/false);
  const pid_t first = ReadPid(pidfile_);
  ASSERT_GT(first, 0);
  Process sh("restart-agent", {"/bin/sh", script_}, dir_.path + "/script2.log");
  ASSERT_TRUE(sh.Start());
  // Until the script holds its lock (it kills the first agent and starts
  // the next under it); the test's own probe lets go at once.
  int fd = open(lockfile_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  bool held = false;
  for (int i = 0; i < 1000 && !held; ++i) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      flock(fd, LOCK_UN);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    } else {
      held = true;
    }
  }
  close(fd);
  ASSERT_TRUE(held) << "the restart script never took its lock";
  StopAgent();
  int status = 0;
  ASSERT_TRUE(sh.WaitExit(20000, &status));
  const pid_t second = ReadPid(pidfile_);
  EXPECT_NE(second, first);  // the script did start another agent
  for (int i = 0; i < 200 && Running(second); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(Running(second)) << "agent " << second << " left running";
  EXPECT_FALSE(Running(first));
}

// txagent holds every case. Of case 5's first check it takes the
// "acknowledged" branch: it answers OK to a COMMIT of a branch it has no
// record of (it cannot tell one it never saw from one it committed and
// forgot), and the kit checks that no branch came of it.
TEST_F(TxconformTest, TxagentHoldsEveryCase) {
  const pid_t first = ReadPid(pidfile_);
  ConformRun r = Txconform(dir_.path, "conform",
                    {"--agent", Addr(aport_), "--resource", "conform", "--restart-cmd",
                     "/bin/sh " + script_, "--timeout", "20s"});
  EXPECT_EQ(r.exit_code, 0) << r.output << "\nagent log:\n" << AgentLog();
  EXPECT_EQ(PassLines(r.output), 10) << r.output;
  for (const char* name : {"duplicate-prepare", "duplicate-abort", "empty-rollback", "hanging",
                           "commit-unprepared", "branch-state", "crash-after-yes",
                           "concurrent-writers", "malformed-requests", "read-only"}) {
    EXPECT_EQ(VerdictOf(r.output, name), "PASS") << name << "\n" << r.output;
  }
  EXPECT_NE(r.output.find("10 cases: 10 ok, 0 failed, 0 skipped"), std::string::npos) << r.output;
  // The restarted agent asked the group about the kit's prepared branch, and
  // the group answered "never allocated" (UNKNOWN, after an epoch barrier:
  // the kit's epoch is newer than any leader's), not ABORTED: the branch
  // stayed in doubt until the kit committed it, and the agent (plaintext:
  // it confirms every decision with the group) applied the kit's decisions
  // because the group disclaims the txids.
  const std::string log = AgentLog(1 << 24);
  EXPECT_NE(log.find("the group never allocated this txid"), std::string::npos) << AgentLog();
  // The crash case really restarted the agent.
  EXPECT_NE(ReadPid(pidfile_), first);
}

TEST_F(TxconformTest, WithoutARestartCommandTheCrashCaseIsSkipped) {
  ConformRun r = Txconform(dir_.path, "conform", {"--agent", Addr(aport_), "--resource", "conform"});
  EXPECT_EQ(VerdictOf(r.output, "crash-after-yes"), "SKIP") << r.output;
  EXPECT_EQ(PassLines(r.output), 9) << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Twice against the same agent: a second run's txids and keys are its own.
  ConformRun again = Txconform(dir_.path, "again", {"--agent", Addr(aport_), "--resource", "conform"});
  EXPECT_EQ(PassLines(again.output), 9) << again.output;
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("10 cases: 9 ok, 0 failed, 1 skipped"), std::string::npos)
      << again.output;
}

// Serves the Agent service and forwards every call to a real agent, but for
// an ABORT of a branch it has seen no EXECUTE or PREPARE of: that one it
// acknowledges itself, so the agent behind it never records the tombstone.
// An agent that forgets empty rollbacks: a late PREPARE votes YES.
// Not thread-safe: everything runs on its own io thread.
class ForgetfulAgent {
 public:
  explicit ForgetfulAgent(std::string target)
      : target_(std::move(target)), server_(io_), pool_(io_) {}
  ~ForgetfulAgent() {
    if (thread_.joinable()) {
      // Stopped on the io thread (neither is thread-safe), before it ends.
      std::promise<void> stopped;
      boost::asio::post(io_, [this, &stopped] {
        server_.Stop();
        pool_.CloseAll();
        stopped.set_value();
      });
      stopped.get_future().wait_for(std::chrono::seconds(10));
      io_.stop();
      thread_.join();
    }
  }

  Status Start(int port) {
    Forward<proto::ExecuteRequest, proto::ExecuteResponse>("Execute");
    Forward<proto::PrepareRequest, proto::PrepareResponse>("Prepare");
    Forward<proto::BranchStateRequest, proto::BranchStateResponse>("BranchState");
    Forward<proto::ListBranchesRequest, proto::ListBranchesResponse>("ListBranches");
    server_.Handle<proto::DecideRequest, proto::DecideResponse>(
        "Decide", [this](proto::DecideRequest req, rpc::RpcServer::Reply<proto::DecideResponse> reply) {
          if (req.outcome == proto::Outcome::ABORTED && !seen_.count(req.txid)) {
            return reply(proto::DecideResponse());  // OK, and nothing remembered
          }
          Send<proto::DecideRequest, proto::DecideResponse>("Decide", req, std::move(reply));
        });
    TXC_RETURN_IF_ERROR(server_.Listen(Addr(port)));
    thread_ = std::thread([this] { io_.run(); });
    return Status::Ok();
  }

 private:
  template <class Req, class Resp>
  void Forward(const std::string& method) {
    server_.Handle<Req, Resp>(method, [this, method](Req req, rpc::RpcServer::Reply<Resp> reply) {
      if constexpr (std::is_same_v<Req, proto::ExecuteRequest> ||
                    std::is_same_v<Req, proto::PrepareRequest>) {
        seen_.insert(req.txid);
      }
      Send<Req, Resp>(method, req, std::move(reply));
    });
  }
  template <class Req, class Resp>
  void Send(const std::string& method, const Req& req, rpc::RpcServer::Reply<Resp> reply) {
    pool_.Get(target_)->Call<Req, Resp>(method, req, 30 * kSeconds,
                                        [reply](Status s, Resp r) {
                                          if (!s.ok()) r.status = ToProto(s);
                                          reply(std::move(r));
                                        });
  }

  std::string target_;
  boost::asio::io_context io_;
  rpc::RpcServer server_;
  rpc::ChannelPool pool_;
  std::set<TxId, TxIdLess> seen_;
  std::thread thread_;
};

TEST_F(TxconformTest, AnAgentThatForgetsTombstonesFailsTheHangingCase) {
  int port = FreePort();
  ForgetfulAgent broken(Addr(aport_));
  ASSERT_TRUE(broken.Start(port).ok());
  ConformRun r = Txconform(dir_.path, "broken", {"--agent", Addr(port), "--resource", "conform"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(VerdictOf(r.output, "hanging"), "FAIL") << r.output;
  // The failure names the late one-shot PREPARE that voted YES.
  EXPECT_NE(r.output.find("one-shot prepare: yes"), std::string::npos) << r.output;
  // The cases the proxy does not break still hold.
  EXPECT_EQ(VerdictOf(r.output, "duplicate-prepare"), "PASS") << r.output;
  EXPECT_EQ(VerdictOf(r.output, "concurrent-writers"), "PASS") << r.output;
}

// The queue resource (participant/queue_resource.h) behind a txagent holds
// every case too, with the kit's queue workload (ENQUEUE, DEQUEUE, COUNT),
// the crash after a YES vote included.
TEST_F(TxconformTest, QueueResourceHoldsEveryCase) {
  WriteScript(std::string(TXC_BIN_DIR "/txagent --listen ") + Addr(aport_) + " --data " + dir_.path +
                  "/queue-agent --coordinator " + Addr(cport_) + " --resource conform=queue:" +
                  dir_.path + "/conform-queue.db",
              /*wait_for_outcome_query=*/true);
  ASSERT_TRUE(RunScript()) << AgentLog();
  ConformRun r = Txconform(dir_.path, "queue",
                           {"--agent", Addr(aport_), "--resource", "conform", "--kind", "queue",
                            "--restart-cmd", "/bin/sh " + script_, "--timeout", "20s"});
  EXPECT_EQ(r.exit_code, 0) << r.output << "\nagent log:\n" << AgentLog();
  EXPECT_NE(r.output.find("resource conform (queue)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("10 cases: 10 ok, 0 failed, 0 skipped"), std::string::npos) << r.output;
}

// The Python participant (examples/python/participant.py) holds every case,
// the crash after a YES vote included: it fsyncs before it votes.
TEST_F(TxconformTest, PythonParticipantHoldsEveryCase) {
  ASSERT_TRUE(UsePythonAgent("participant.py")) << AgentLog();
  ConformRun r = Txconform(dir_.path, "py",
                           {"--agent", Addr(aport_), "--resource", "conform", "--restart-cmd",
                            "/bin/sh " + script_, "--timeout", "20s"});
  EXPECT_EQ(r.exit_code, 0) << r.output << "\nagent log:\n" << AgentLog();
  EXPECT_NE(r.output.find("10 cases: 10 ok, 0 failed, 0 skipped"), std::string::npos) << r.output;
  // It takes case 5's other branch: a COMMIT of a branch it never saw is refused.
  EXPECT_NE(r.output.find("commit of an unseen branch: NOT_FOUND"), std::string::npos) << r.output;
}

// examples/python/broken_participant.py keeps no tombstone for an early
// ABORT and votes YES before its write is durable: the kit fails it on both
// counts, and on the first even without a restart command (the way the
// acceptance runs it).
TEST_F(TxconformTest, BrokenPythonParticipantFails) {
  ASSERT_TRUE(UsePythonAgent("broken_participant.py")) << AgentLog();
  ConformRun plain = Txconform(dir_.path, "broken-plain", {"--agent", Addr(aport_), "--resource", "conform"});
  EXPECT_EQ(plain.exit_code, 1) << plain.output;
  EXPECT_EQ(VerdictOf(plain.output, "hanging"), "FAIL") << plain.output;
  EXPECT_EQ(VerdictOf(plain.output, "crash-after-yes"), "SKIP") << plain.output;
  ConformRun r = Txconform(dir_.path, "broken",
                           {"--agent", Addr(aport_), "--resource", "conform", "--restart-cmd",
                            "/bin/sh " + script_, "--timeout", "20s"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(VerdictOf(r.output, "hanging"), "FAIL") << r.output;
  EXPECT_EQ(VerdictOf(r.output, "crash-after-yes"), "FAIL") << r.output << "\nagent log:\n" << AgentLog();
  // What it does right still passes.
  EXPECT_EQ(VerdictOf(r.output, "duplicate-prepare"), "PASS") << r.output;
}

TEST(TxconformUsageTest, BadFlagsExit2WithAMessage) {
  TempDir dir;
  struct Bad {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Bad> bad = {
      {{}, "--agent HOST:PORT is required"},
      {{"--agent", "127.0.0.1:1"}, "--resource NAME is required"},
      {{"--agent", "nohost", "--resource", "r"}, "--agent 'nohost'"},
      {{"--agent", "127.0.0.1:1", "--resource", "r", "--kind", "kv"}, "--kind 'kv': use sql or queue"},
      {{"--agent", "127.0.0.1:1", "--resource", "r", "--timeout", "soon"}, "--timeout 'soon'"},
      {{"--agent", "127.0.0.1:1", "--resource", "r", "--no-such-flag"}, "no-such-flag"},
  };
  int i = 0;
  for (const Bad& b : bad) {
    ConformRun r = Txconform(dir.path, "usage" + std::to_string(i++), b.args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(b.says), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("usage: txconform"), std::string::npos) << r.output;
  }
}

// Not a usage error: the agent cannot be reached. One line says so, exit 1.
TEST(TxconformUsageTest, AnUnreachableAgentExits1NamingIt) {
  TempDir dir;
  int port = FreePort();  // reserved, and nothing listens on it
  ConformRun r = Txconform(dir.path, "unreachable", {"--agent", Addr(port), "--resource", "r"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cannot set up the workload on r at " + Addr(port)), std::string::npos)
      << r.output;
  EXPECT_EQ(PassLines(r.output), 0) << r.output;
}

}  // namespace
}  // namespace txc
