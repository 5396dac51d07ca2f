#include "tools/conform/conform.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio.hpp>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include "Agent.h"
#include "common/status_proto.h"
#include "common/txid.h"
#include "protocol/rpc.h"

namespace txc::conform {

namespace {

using proto::Statement;
using proto::Value;
using Stmts = std::vector<Statement>;

// The epoch of the kit's txids when --epoch is not given: 10^15 plus the
// Unix time in ms. A coordinator's epoch is its leader's ballot round, a
// small number. Asked about a txid of a newer epoch than its own, the group
// answers "never allocated" (UNKNOWN) once an epoch barrier shows no newer
// leader exists (CommitDriver::AwaitEpochBarrier). A txagent keeps an
// in-doubt branch as it is on that answer, and applies the kit's decisions
// for it (a plaintext txagent confirms every decision with the group, and a
// txid the group never allocated is no transaction of the group's). A txid
// of an older epoch, or of the current one below its next seq, would be
// answered ABORTED (presumed abort): a restarted txagent asking about its
// in-doubt branch would roll it back before the kit decides it, and would
// refuse the kit's COMMIT. The clock part keeps the txids of two runs
// against the same agent apart (the agent keeps tombstones for minutes).
constexpr int64_t kEpochBase = 1'000'000'000'000'000;

// A resource name no agent hosts (and a valid one, so the agent's answer is
// about the name, not about its spelling).
constexpr const char* kNoSuchResource = "txconform-no-such-resource";

// The oversized requests: one statement of 20 MiB (above the 16 MiB frame
// limit of txcoord's servers) and one request of 100k statements.
constexpr size_t kOversizedBytes = 20u << 20;
constexpr size_t kManyStatements = 100000;

Value Text(std::string s) {
  Value v;
  v.__set_s(std::move(s));
  return v;
}

Statement Sql(std::string sql, std::vector<Value> params = {}) {
  Statement s;
  s.sql = std::move(sql);
  s.params = std::move(params);
  return s;
}

// ----------------------------------------------------------------- workloads

// What the cases run: writes that can be counted afterwards.
class Workload {
 public:
  virtual ~Workload() = default;
  // Run once, in a branch of its own that is committed. May be empty.
  virtual Stmts Setup() const = 0;
  // One write on `key`.
  virtual Stmts Write(const std::string& key) const = 0;
  // Reads how many writes on `key` are committed; Count reads its results.
  virtual Stmts Read(const std::string& key) const = 0;
  virtual Result<int64_t> Count(const std::vector<proto::ResultSet>& results) const = 0;
};

// Table txconform_kv: the first write of a key inserts it with v = 0, every
// later one adds 1, so a key written n times reads v = n - 1 (absent: 0).
class SqlWorkload : public Workload {
 public:
  Stmts Setup() const override {
    return {Sql("CREATE TABLE IF NOT EXISTS txconform_kv(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")};
  }
  Stmts Write(const std::string& key) const override {
    return {Sql("INSERT INTO txconform_kv VALUES(?, 0) ON CONFLICT(k) DO UPDATE SET v = v + 1",
                {Text(key)})};
  }
  Stmts Read(const std::string& key) const override {
    return {Sql("SELECT v FROM txconform_kv WHERE k = ?", {Text(key)})};
  }
  Result<int64_t> Count(const std::vector<proto::ResultSet>& results) const override {
    if (results.empty()) return Status::Internal("the SELECT returned no result set");
    const auto& rows = results.back().rows;
    if (rows.empty()) return int64_t{0};
    if (rows[0].values.empty() || !rows[0].values[0].__isset.i) {
      return Status::Internal("the SELECT returned a row without an integer v");
    }
    return rows[0].values[0].i + 1;
  }
};

// A queue resource: `key` names a queue, a write enqueues one message.
class QueueWorkload : public Workload {
 public:
  Stmts Setup() const override { return {}; }
  Stmts Write(const std::string& key) const override {
    return {Sql("ENQUEUE", {Text(key), Text("txconform message for " + key)})};
  }
  Stmts Read(const std::string& key) const override { return {Sql("COUNT", {Text(key)})}; }
  Result<int64_t> Count(const std::vector<proto::ResultSet>& results) const override {
    if (results.empty() || results.back().rows.empty() || results.back().rows[0].values.empty() ||
        !results.back().rows[0].values[0].__isset.i) {
      return Status::Internal("COUNT did not return one row [n]");
    }
    return results.back().rows[0].values[0].i;
  }
  static Stmts Dequeue(const std::string& queue) { return {Sql("DEQUEUE", {Text(queue)})}; }
};

// ------------------------------------------------------------ the connection

// Blocking calls to the agent over the project's RPC layer, on an io thread
// of its own. Thread-safe: a call posts to the io thread and waits.
class AgentConn {
 public:
  AgentConn(std::string address, Micros timeout)
      : address_(std::move(address)),
        timeout_(timeout),
        work_(boost::asio::make_work_guard(io_)),
        pool_(io_) {
    thread_ = std::thread([this] { io_.run(); });
  }
  ~AgentConn() {
    boost::asio::post(io_, [this] { pool_.CloseAll(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  template <class Req, class Resp>
  Result<Resp> Call(const std::string& method, const Req& req) {
    auto promise = std::make_shared<std::promise<Result<Resp>>>();
    auto future = promise->get_future();
    boost::asio::post(io_, [this, method, req, promise] {
      pool_.Get(address_)->Call<Req, Resp>(method, req, timeout_, [promise](Status s, Resp r) {
        if (s.ok()) {
          promise->set_value(std::move(r));
        } else {
          promise->set_value(s);
        }
      });
    });
    return future.get();
  }

  const std::string& address() const { return address_; }
  Micros timeout() const { return timeout_; }

 private:
  std::string address_;
  Micros timeout_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  rpc::ChannelPool pool_;
  std::thread thread_;
};

using ExecR = Result<proto::ExecuteResponse>;
using VoteR = Result<proto::PrepareResponse>;
using DecideR = Result<proto::DecideResponse>;
using StateR = Result<proto::BranchStateResponse>;

template <class R>
bool Ok(const R& r) {
  return r.ok() && r->status.code == proto::Code::OK;
}
bool Yes(const VoteR& r) { return Ok(r) && r->vote == proto::Vote::YES; }
// A PREPARE the agent answered with anything but a YES or READ_ONLY vote.
bool RefusedVote(const VoteR& r) {
  return r.ok() && (r->status.code != proto::Code::OK || r->vote == proto::Vote::NO);
}
// A DECIDE the agent answered with a refusal.
bool RefusedDecide(const DecideR& r) {
  return r.ok() && (r->status.code != proto::Code::OK || (r->__isset.refused && r->refused));
}
template <class R>
bool CodeIs(const R& r, std::initializer_list<proto::Code::type> codes) {
  if (!r.ok()) return false;
  for (auto c : codes) {
    if (r->status.code == c) return true;
  }
  return false;
}

std::string NoAnswer(const Status& s) { return "no answer (" + s.ToString() + ")"; }

template <class R>
std::string SayStatus(const R& r) {
  if (!r.ok()) return NoAnswer(r.status());
  if (r->status.code == proto::Code::OK) return "OK";
  return FromProto(r->status).ToString();
}
std::string SayVote(const VoteR& r) {
  if (!r.ok()) return NoAnswer(r.status());
  if (r->status.code != proto::Code::OK) return FromProto(r->status).ToString();
  std::string s = VoteName(r->vote);
  if (!r->reason.empty()) s += " (" + r->reason + ")";
  return s;
}
std::string SayDecide(const DecideR& r) {
  std::string s = SayStatus(r);
  if (r.ok() && r->__isset.refused && r->refused) s += " [refused]";
  return s;
}

// --------------------------------------------------------------------- the kit

class Kit {
 public:
  Kit(const Options& o, AgentConn* conn, const Workload* w, int64_t epoch)
      : o_(o), conn_(conn), w_(w), epoch_(epoch) {}

  const Options& options() const { return o_; }
  const Workload& workload() const { return *w_; }
  AgentConn& conn() { return *conn_; }
  int64_t epoch() const { return epoch_; }

  TxId Fresh() { return MakeTxId(epoch_, ++seq_); }
  // A key (a row, a queue) no earlier run wrote.
  std::string Key(const std::string& what) const {
    return "txconform-" + std::to_string(epoch_) + "-" + what;
  }

  ExecR Execute(const TxId& t, const Stmts& stmts, const std::string* resource = nullptr) {
    proto::ExecuteRequest req;
    req.txid = t;
    req.resource = resource ? *resource : o_.resource;
    req.statements = stmts;
    return conn_->Call<proto::ExecuteRequest, proto::ExecuteResponse>("Execute", req);
  }
  VoteR Prepare(const TxId& t, const Stmts* work = nullptr, const std::string* resource = nullptr) {
    proto::PrepareRequest req;
    req.txid = t;
    req.resource = resource ? *resource : o_.resource;
    proto::Participant p;
    p.resource = req.resource;
    p.address = conn_->address();
    req.participants = {p};
    req.protocol = proto::Protocol::TWO_PC;
    if (work) req.__set_work(*work);
    return conn_->Call<proto::PrepareRequest, proto::PrepareResponse>("Prepare", req);
  }
  DecideR Decide(const TxId& t, proto::Outcome::type outcome,
                 const std::string* resource = nullptr) {
    proto::DecideRequest req;
    req.txid = t;
    req.resource = resource ? *resource : o_.resource;
    req.outcome = outcome;
    return conn_->Call<proto::DecideRequest, proto::DecideResponse>("Decide", req);
  }
  StateR State(const TxId& t) {
    proto::BranchStateRequest req;
    req.txid = t;
    req.resource = o_.resource;
    return conn_->Call<proto::BranchStateRequest, proto::BranchStateResponse>("BranchState", req);
  }
  // Best effort: ends a branch the case left behind, so its locks go.
  void Abort(const TxId& t) { (void)Decide(t, proto::Outcome::ABORTED); }

  // Executes `stmts` in a fresh branch, prepares it and commits it (a
  // READ_ONLY vote needs no decision).
  Status CommitBranch(const Stmts& stmts) {
    TxId t = Fresh();
    ExecR e = Execute(t, stmts);
    if (!Ok(e)) {
      Abort(t);
      return Status::Aborted("execute: " + SayStatus(e));
    }
    VoteR v = Prepare(t);
    if (Ok(v) && v->vote == proto::Vote::READ_ONLY) return Status::Ok();
    if (!Yes(v)) {
      Abort(t);
      return Status::Aborted("prepare: " + SayVote(v));
    }
    DecideR d = Decide(t, proto::Outcome::COMMITTED);
    if (!Ok(d)) return Status::Aborted("commit: " + SayDecide(d));
    return Status::Ok();
  }

  // How many writes on `key` are committed: read in a fresh branch, which is
  // then rolled back. *incarnation: the agent's, from that Execute.
  Result<int64_t> Observe(const std::string& key, int64_t* incarnation = nullptr) {
    TxId t = Fresh();
    ExecR e = Execute(t, w_->Read(key));
    Abort(t);
    if (!Ok(e)) return Status::Unavailable("reading " + key + ": " + SayStatus(e));
    if (incarnation) *incarnation = e->incarnation;
    return w_->Count(e->results);
  }
  std::string SayObserved(const Result<int64_t>& n) {
    return n.ok() ? std::to_string(n.value()) + " applied" : n.status().ToString();
  }

 private:
  const Options& o_;
  AgentConn* conn_;
  const Workload* w_;
  int64_t epoch_;
  int64_t seq_ = 0;
};

// One case's verdict in the making: the first failed check is kept.
class Check {
 public:
  explicit Check(std::string expected) : expected_(std::move(expected)) {}
  // Records `got`; the case fails if !ok (the first such check says why).
  void That(bool ok, const std::string& what, const std::string& got) {
    if (!got_.empty()) got_ += "; ";
    got_ += what + ": " + got;
    if (!ok && failed_.empty()) failed_ = what + ": " + got;
  }
  void Skip(const std::string& why) { skip_ = why; }
  bool failed() const { return !failed_.empty(); }

  CaseResult Done(int number, const std::string& name) const {
    CaseResult r;
    r.number = number;
    r.name = name;
    r.expected = expected_;
    if (!failed_.empty()) {
      r.verdict = Verdict::kFail;
      r.got = failed_;
      r.detail = got_;
    } else if (!skip_.empty()) {
      r.verdict = Verdict::kSkip;
      r.got = skip_;
      r.detail = got_;
    } else {
      r.verdict = Verdict::kPass;
      r.got = got_;
      r.detail = got_;
    }
    return r;
  }

 private:
  std::string expected_;
  std::string got_;
  std::string failed_;
  std::string skip_;
};

// ------------------------------------------------------------------- cases

// 1. A duplicate PREPARE gets the same vote, a duplicate COMMIT is
// acknowledged again, and the work is applied once.
CaseResult DuplicatePrepare(Kit& k) {
  Check c("YES twice, OK twice, applied once");
  const std::string key = k.Key("dup-prepare");
  TxId t = k.Fresh();
  ExecR e = k.Execute(t, k.workload().Write(key));
  c.That(Ok(e), "execute", SayStatus(e));
  if (c.failed()) {
    k.Abort(t);
    return c.Done(1, "duplicate-prepare");
  }
  VoteR v1 = k.Prepare(t);
  VoteR v2 = k.Prepare(t);
  c.That(Yes(v1), "prepare", SayVote(v1));
  c.That(Yes(v2), "prepare again", SayVote(v2));
  if (c.failed()) {
    k.Abort(t);
    return c.Done(1, "duplicate-prepare");
  }
  DecideR d1 = k.Decide(t, proto::Outcome::COMMITTED);
  DecideR d2 = k.Decide(t, proto::Outcome::COMMITTED);
  c.That(Ok(d1), "commit", SayDecide(d1));
  c.That(Ok(d2), "commit again", SayDecide(d2));
  auto n = k.Observe(key);
  c.That(n.ok() && n.value() == 1, "later branch reads", k.SayObserved(n));
  return c.Done(1, "duplicate-prepare");
}

// 2. A duplicate ABORT is acknowledged again and the work is undone, for an
// ACTIVE branch and for a PREPARED one.
CaseResult DuplicateAbort(Kit& k) {
  Check c("OK twice, nothing applied (active and prepared)");
  for (bool prepared : {false, true}) {
    const std::string what = prepared ? "prepared" : "active";
    const std::string key = k.Key("dup-abort-" + what);
    TxId t = k.Fresh();
    ExecR e = k.Execute(t, k.workload().Write(key));
    c.That(Ok(e), what + " execute", SayStatus(e));
    if (prepared && Ok(e)) {
      VoteR v = k.Prepare(t);
      c.That(Yes(v), what + " prepare", SayVote(v));
    }
    DecideR d1 = k.Decide(t, proto::Outcome::ABORTED);
    DecideR d2 = k.Decide(t, proto::Outcome::ABORTED);
    c.That(Ok(d1), what + " abort", SayDecide(d1));
    c.That(Ok(d2), what + " abort again", SayDecide(d2));
    auto n = k.Observe(key);
    c.That(n.ok() && n.value() == 0, what + " later branch reads", k.SayObserved(n));
  }
  return c.Done(2, "duplicate-abort");
}

// 3. An ABORT for a branch never seen (it overtook its PREPARE, or the work
// never arrived) is acknowledged and leaves a tombstone.
CaseResult EmptyRollback(Kit& k) {
  Check c("OK; BranchState aborted (if served)");
  TxId t = k.Fresh();
  DecideR d = k.Decide(t, proto::Outcome::ABORTED);
  c.That(Ok(d), "abort of an unseen branch", SayDecide(d));
  StateR s = k.State(t);
  if (Ok(s)) {
    c.That(s->state == "aborted", "BranchState", s->state);
  } else {
    c.That(true, "BranchState", "not checked, " + SayStatus(s));
  }
  return c.Done(3, "empty-rollback");
}

// 4. After an empty rollback, the late PREPARE (one-shot with its work, or
// plain) and the late EXECUTE are refused: otherwise the branch would hang,
// prepared and locked, for a transaction the coordinator aborted.
CaseResult Hanging(Kit& k) {
  Check c("after an empty rollback: NO, NO, refused; nothing applied");
  const std::string key = k.Key("hanging");
  const Stmts work = k.workload().Write(key);
  std::vector<TxId> cleanup;

  TxId t1 = k.Fresh();
  DecideR d1 = k.Decide(t1, proto::Outcome::ABORTED);
  c.That(Ok(d1), "abort", SayDecide(d1));
  VoteR v1 = k.Prepare(t1, &work);
  c.That(RefusedVote(v1), "one-shot prepare", SayVote(v1));
  if (!RefusedVote(v1)) cleanup.push_back(t1);

  TxId t2 = k.Fresh();
  DecideR d2 = k.Decide(t2, proto::Outcome::ABORTED);
  c.That(Ok(d2), "abort", SayDecide(d2));
  VoteR v2 = k.Prepare(t2);
  c.That(RefusedVote(v2), "plain prepare", SayVote(v2));
  if (!RefusedVote(v2)) cleanup.push_back(t2);

  TxId t3 = k.Fresh();
  DecideR d3 = k.Decide(t3, proto::Outcome::ABORTED);
  c.That(Ok(d3), "abort", SayDecide(d3));
  ExecR e3 = k.Execute(t3, work);
  c.That(e3.ok() && e3->status.code != proto::Code::OK, "execute", SayStatus(e3));
  if (!e3.ok() || e3->status.code == proto::Code::OK) {
    // Refused afterwards too? Its PREPARE must not turn the work into a YES.
    VoteR v3 = k.Prepare(t3);
    c.That(!Yes(v3), "prepare after that execute", SayVote(v3));
    cleanup.push_back(t3);
  }
  auto n = k.Observe(key);
  c.That(n.ok() && n.value() == 0, "later branch reads", k.SayObserved(n));
  for (const TxId& t : cleanup) k.Abort(t);
  return c.Done(4, "hanging");
}

// 5. A COMMIT for a branch that never prepared changes nothing. One seen
// ACTIVE (its work executed, never voted on) is refused. One never seen may
// be refused or acknowledged: an agent that forgets committed branches cannot
// tell "never seen" from "committed and forgotten", and the coordinator
// resends a COMMIT until it is acknowledged, so there OK means "nothing left
// to do". Either way it must not become a branch: BranchState (if served) is
// not prepared or active, and a PREPARE of that txid does not vote YES.
CaseResult CommitUnprepared(Kit& k) {
  Check c("unseen: refused or OK, no branch; active: refused; nothing applied");
  TxId t1 = k.Fresh();
  DecideR d1 = k.Decide(t1, proto::Outcome::COMMITTED);
  c.That(RefusedDecide(d1) || Ok(d1), "commit of an unseen branch", SayDecide(d1));
  StateR s1 = k.State(t1);
  if (Ok(s1)) {
    c.That(s1->state != "prepared" && s1->state != "active" && s1->state != "precommitted",
           "BranchState after it", s1->state);
  }
  VoteR v1 = k.Prepare(t1);
  c.That(!Yes(v1), "prepare after it", SayVote(v1));
  if (Yes(v1)) k.Abort(t1);

  const std::string key = k.Key("commit-unprepared");
  TxId t2 = k.Fresh();
  ExecR e = k.Execute(t2, k.workload().Write(key));
  c.That(Ok(e), "execute", SayStatus(e));
  DecideR d2 = k.Decide(t2, proto::Outcome::COMMITTED);
  c.That(RefusedDecide(d2), "commit of an active branch", SayDecide(d2));
  // Rolled back before reading: a branch that committed anyway stays applied.
  k.Abort(t2);
  auto n = k.Observe(key);
  c.That(n.ok() && n.value() == 0, "later branch reads", k.SayObserved(n));
  return c.Done(5, "commit-unprepared");
}

// 6. BranchState tells a prepared branch and a committed one apart (autonomous
// termination and operators read it).
CaseResult BranchStates(Kit& k) {
  Check c("prepared, then committed");
  const std::string key = k.Key("branch-state");
  TxId t = k.Fresh();
  ExecR e = k.Execute(t, k.workload().Write(key));
  c.That(Ok(e), "execute", SayStatus(e));
  VoteR v = k.Prepare(t);
  c.That(Yes(v), "prepare", SayVote(v));
  if (c.failed()) {
    k.Abort(t);
    return c.Done(6, "branch-state");
  }
  StateR s1 = k.State(t);
  if (!Ok(s1)) {
    c.Skip("BranchState not served: " + SayStatus(s1));
    k.Abort(t);
    return c.Done(6, "branch-state");
  }
  c.That(s1->state == "prepared", "prepared branch", s1->state);
  DecideR d = k.Decide(t, proto::Outcome::COMMITTED);
  c.That(Ok(d), "commit", SayDecide(d));
  StateR s2 = k.State(t);
  c.That(Ok(s2) && s2->state == "committed", "committed branch",
         Ok(s2) ? s2->state : SayStatus(s2));
  return c.Done(6, "branch-state");
}

// Runs `cmd` with /bin/sh -c, its output to a file; OK when it exits 0 within
// `timeout`. *output: the end of what it printed.
Status RunCommand(const std::string& cmd, Micros timeout, std::string* output) {
  char path[] = "/tmp/txconform-restart-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return Status::Internal("cannot create a temporary file for the command's output");
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    unlink(path);
    return Status::Internal("fork failed");
  }
  if (pid == 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fd);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout);
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  unlink(path);
  *output = ss.str();
  if (output->size() > 400) *output = "..." + output->substr(output->size() - 400);
  if (!exited) return Status::Timeout("the restart command did not finish within the timeout");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::Internal("the restart command failed (" +
                            (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                               : std::string("killed by a signal")) +
                            ")");
  }
  return Status::Ok();
}

// True once something accepts TCP connections at `address`, polling until
// `deadline`.
bool WaitListening(const std::string& address, std::chrono::steady_clock::time_point deadline) {
  auto ep = rpc::ParseEndpoint(address);
  if (!ep.ok()) return false;
  while (std::chrono::steady_clock::now() < deadline) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(ep->port());
    a.sin_addr.s_addr = htonl(ep->address().to_v4().to_uint());
    bool up = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(s);
    if (up) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// 7. A YES vote survives a crash: the restarted agent still holds the branch
// in doubt and commits it when told to.
CaseResult CrashAfterYes(Kit& k) {
  Check c("YES, restart, commit OK, applied once");
  if (k.options().restart_cmd.empty()) {
    c.Skip("no --restart-cmd given");
    return c.Done(7, "crash-after-yes");
  }
  const std::string key = k.Key("crash-after-yes");
  TxId t = k.Fresh();
  ExecR e = k.Execute(t, k.workload().Write(key));
  c.That(Ok(e), "execute", SayStatus(e));
  VoteR v = k.Prepare(t);
  c.That(Yes(v), "prepare", SayVote(v));
  if (c.failed()) {
    k.Abort(t);
    return c.Done(7, "crash-after-yes");
  }
  const int64_t before = e->incarnation;
  const Micros timeout = k.conn().timeout();
  std::string output;
  Status ran = RunCommand(k.options().restart_cmd, timeout, &output);
  c.That(ran.ok(), "restart command",
         ran.ok() ? "ran" : ran.ToString() + (output.empty() ? "" : ", output: " + output));
  if (c.failed()) {
    k.Abort(t);
    return c.Done(7, "crash-after-yes");
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout);
  bool up = WaitListening(k.conn().address(), deadline);
  c.That(up, "agent listening again", up ? "yes" : "not within the timeout");
  if (!up) return c.Done(7, "crash-after-yes");
  // The channel reconnects with a backoff, and an agent may answer
  // UNAVAILABLE while it recovers: retry until the deadline.
  auto retry = [](const DecideR& r) {
    return !r.ok() || r->status.code == proto::Code::UNAVAILABLE;
  };
  DecideR d = k.Decide(t, proto::Outcome::COMMITTED);
  while (retry(d) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    d = k.Decide(t, proto::Outcome::COMMITTED);
  }
  c.That(Ok(d), "commit after the restart", SayDecide(d));
  int64_t after = 0;
  auto n = k.Observe(key, &after);
  c.That(n.ok() && n.value() == 1, "later branch reads", k.SayObserved(n));
  // An agent that reports incarnations shows whether it restarted at all.
  if (n.ok() && before != 0) {
    c.That(after != before, "incarnation",
           std::to_string(before) + " -> " + std::to_string(after) +
               (after == before ? " (the command did not restart the agent)" : ""));
  }
  return c.Done(7, "crash-after-yes");
}

// Waits for an async call's answer up to `timeout` (the agent's lock wait is
// bounded, so it answers by then; a call without answer is a failure).
template <class R>
std::optional<R> Await(std::future<R>& f, Micros timeout) {
  if (f.wait_for(std::chrono::microseconds(timeout + 2 * kSeconds)) != std::future_status::ready) {
    return std::nullopt;
  }
  return f.get();
}

// Gives B's call a moment to meet A's lock before A is decided (a bounded
// wait for its answer, not a sleep: an agent that refuses at once answers
// within it), and says what B did meanwhile.
template <class R>
std::string Meets(std::future<R>& fb) {
  if (fb.wait_for(std::chrono::milliseconds(300)) != std::future_status::ready) return "waiting";
  return "answered";
}

// 8, sql: two branches increment one counter row; whatever waits, times out
// or votes NO, every committed increment is counted once.
CaseResult ConcurrentSql(Kit& k) {
  Check c("final = initial + committed increments");
  const std::string key = k.Key("concurrent");
  Status init = k.CommitBranch(k.workload().Write(key));
  c.That(init.ok(), "create the row", init.ok() ? "OK" : init.ToString());
  auto before = k.Observe(key);
  c.That(before.ok(), "initial", k.SayObserved(before));
  if (c.failed()) return c.Done(8, "concurrent-writers");
  int64_t committed = 0;
  const Stmts work = k.workload().Write(key);

  // Round 1, interactive: B's EXECUTE meets A's lock.
  {
    TxId a = k.Fresh(), b = k.Fresh();
    ExecR ea = k.Execute(a, work);
    c.That(Ok(ea), "A execute", SayStatus(ea));
    auto fb = std::async(std::launch::async, [&k, b, &work] { return k.Execute(b, work); });
    VoteR va = k.Prepare(a);
    c.That(Yes(va), "A prepare", SayVote(va));
    c.That(true, "B before A's decision", Meets(fb));
    if (Yes(va)) {
      DecideR da = k.Decide(a, proto::Outcome::COMMITTED);
      c.That(Ok(da), "A commit", SayDecide(da));
      if (Ok(da)) ++committed;
    } else {
      k.Abort(a);
    }
    auto eb = Await(fb, k.conn().timeout());
    c.That(eb.has_value(), "B execute answered", eb ? SayStatus(*eb) : "no answer in time");
    if (eb && Ok(*eb)) {
      VoteR vb = k.Prepare(b);
      if (Yes(vb)) {
        DecideR db = k.Decide(b, proto::Outcome::COMMITTED);
        c.That(Ok(db), "B commit", SayDecide(db));
        if (Ok(db)) ++committed;
      } else {
        c.That(true, "B prepare", SayVote(vb));
        k.Abort(b);
      }
    } else {
      k.Abort(b);
    }
  }
  // Round 2, one-shot: B's PREPARE with work meets A's prepared row.
  {
    TxId a = k.Fresh(), b = k.Fresh();
    VoteR va = k.Prepare(a, &work);
    c.That(Yes(va), "A one-shot prepare", SayVote(va));
    auto fb = std::async(std::launch::async, [&k, b, &work] { return k.Prepare(b, &work); });
    c.That(true, "B before A's decision", Meets(fb));
    if (Yes(va)) {
      DecideR da = k.Decide(a, proto::Outcome::COMMITTED);
      c.That(Ok(da), "A commit", SayDecide(da));
      if (Ok(da)) ++committed;
    } else {
      k.Abort(a);
    }
    auto vb = Await(fb, k.conn().timeout());
    c.That(vb.has_value(), "B one-shot prepare answered", vb ? SayVote(*vb) : "no answer in time");
    if (vb && Yes(*vb)) {
      DecideR db = k.Decide(b, proto::Outcome::COMMITTED);
      c.That(Ok(db), "B commit", SayDecide(db));
      if (Ok(db)) ++committed;
    } else {
      k.Abort(b);
    }
  }
  auto after = k.Observe(key);
  bool exact = before.ok() && after.ok() && after.value() == before.value() + committed;
  c.That(exact, "final",
         after.ok() && before.ok()
             ? std::to_string(after.value() - before.value()) + " increments applied, " +
                   std::to_string(committed) + " committed"
             : k.SayObserved(after));
  return c.Done(8, "concurrent-writers");
}

// The message a DEQUEUE claimed ("" when the queue looked empty).
std::string Claimed(const ExecR& r) {
  if (!Ok(r) || r->results.empty() || r->results.back().rows.empty()) return "";
  const auto& v = r->results.back().rows[0].values;
  if (v.empty()) return "";
  if (v[0].__isset.i) return std::to_string(v[0].i);
  if (v[0].__isset.s) return v[0].s;
  return "?";
}

// 8, queue: two branches dequeue the only message; it is delivered at most
// once.
CaseResult ConcurrentQueue(Kit& k) {
  Check c("the message delivered at most once");
  const std::string queue = k.Key("concurrent");
  Status init = k.CommitBranch(k.workload().Write(queue));
  c.That(init.ok(), "enqueue", init.ok() ? "OK" : init.ToString());
  if (c.failed()) return c.Done(8, "concurrent-writers");
  const Stmts work = QueueWorkload::Dequeue(queue);
  int deliveries = 0;
  TxId a = k.Fresh(), b = k.Fresh();
  ExecR ea = k.Execute(a, work);
  c.That(Ok(ea) && !Claimed(ea).empty(), "A dequeue",
         Ok(ea) ? (Claimed(ea).empty() ? "nothing" : "message " + Claimed(ea)) : SayStatus(ea));
  auto fb = std::async(std::launch::async, [&k, b, &work] { return k.Execute(b, work); });
  VoteR va = k.Prepare(a);
  c.That(Yes(va), "A prepare", SayVote(va));
  c.That(true, "B before A's decision", Meets(fb));
  if (Yes(va)) {
    DecideR da = k.Decide(a, proto::Outcome::COMMITTED);
    c.That(Ok(da), "A commit", SayDecide(da));
    if (Ok(da) && !Claimed(ea).empty()) ++deliveries;
  } else {
    k.Abort(a);
  }
  auto eb = Await(fb, k.conn().timeout());
  c.That(eb.has_value(), "B dequeue answered", eb ? SayStatus(*eb) : "no answer in time");
  if (eb && Ok(*eb)) {
    std::string got = Claimed(*eb);
    VoteR vb = k.Prepare(b);
    if (Yes(vb)) {
      DecideR db = k.Decide(b, proto::Outcome::COMMITTED);
      if (Ok(db) && !got.empty()) ++deliveries;
    } else if (!(Ok(vb) && vb->vote == proto::Vote::READ_ONLY)) {
      k.Abort(b);
    }
  } else {
    k.Abort(b);
  }
  c.That(deliveries <= 1, "deliveries", std::to_string(deliveries));
  auto left = k.Observe(queue);
  c.That(left.ok() && left.value() == 1 - deliveries, "COUNT afterwards",
         left.ok() ? std::to_string(left.value()) : left.status().ToString());
  return c.Done(8, "concurrent-writers");
}

// Sends one Execute call as a raw frame on a connection of its own (the
// RPC layer refuses to send a frame above the limit). OK with the agent's
// answer; UNAVAILABLE when the connection closed (or reset) before one.
Result<proto::ExecuteResponse> RawExecute(const std::string& address,
                                          const proto::ExecuteRequest& req, Micros timeout) {
  using apache::thrift::protocol::TBinaryProtocol;
  using apache::thrift::transport::TMemoryBuffer;
  std::string frame;
  try {
    auto out = std::make_shared<TMemoryBuffer>();
    proto::AgentClient writer(std::make_shared<TBinaryProtocol>(out));
    writer.send_Execute(req);
    std::string body = out->getBufferAsString();
    uint32_t len = htonl(static_cast<uint32_t>(body.size()));
    frame.assign(reinterpret_cast<const char*>(&len), 4);
    frame += body;
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot encode the request: ") + e.what());
  }
  auto ep = rpc::ParseEndpoint(address);
  if (!ep.ok()) return ep.status();
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return Status::Internal("socket() failed");
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout / kSeconds);
  tv.tv_usec = static_cast<suseconds_t>(timeout % kSeconds);
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(ep->port());
  a.sin_addr.s_addr = htonl(ep->address().to_v4().to_uint());
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(s);
    return Status::Unavailable("cannot connect to " + address);
  }
  size_t sent = 0;
  while (sent < frame.size()) {
    ssize_t n = send(s, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // closed by the agent: read what it said, if anything
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() >= 4) {
      uint32_t len;
      memcpy(&len, reply.data(), 4);
      if (reply.size() >= 4 + static_cast<size_t>(ntohl(len))) break;
    }
  }
  close(s);
  if (reply.size() < 4) {
    return Status::Unavailable("the agent closed the connection (" + std::to_string(sent) + " of " +
                               std::to_string(frame.size()) + " bytes sent)");
  }
  try {
    auto in = std::make_shared<TMemoryBuffer>();
    in->write(reinterpret_cast<const uint8_t*>(reply.data()) + 4,
              static_cast<uint32_t>(reply.size() - 4));
    proto::AgentClient reader(std::make_shared<TBinaryProtocol>(in));
    proto::ExecuteResponse resp;
    reader.recv_Execute(resp);
    return resp;
  } catch (const std::exception& e) {
    // An exception reply (or an unreadable one) is no acceptance either.
    return Status::Internal(std::string("the agent answered with an error: ") + e.what());
  }
}

// 9. Malformed ids and oversized requests are refused, and the agent still
// serves afterwards.
CaseResult Malformed(Kit& k) {
  Check c("refused each; the agent answers afterwards, nothing applied");
  const std::string key = k.Key("malformed");
  const Stmts work = k.workload().Write(key);
  const std::string bad = kNoSuchResource;
  auto not_found = [](const auto& r) {
    return CodeIs(r, {proto::Code::NOT_FOUND, proto::Code::INVALID_ARGUMENT});
  };
  {
    ExecR e = k.Execute(k.Fresh(), work, &bad);
    c.That(not_found(e), "execute on an unknown resource", SayStatus(e));
    // A PREPARE is refused by its vote: NO names the reason as well as a status.
    VoteR v = k.Prepare(k.Fresh(), &work, &bad);
    c.That(not_found(v) || (Ok(v) && v->vote == proto::Vote::NO),
           "prepare on an unknown resource", SayVote(v));
    DecideR d = k.Decide(k.Fresh(), proto::Outcome::COMMITTED, &bad);
    c.That(not_found(d), "commit on an unknown resource", SayDecide(d));
  }
  for (const TxId& t : {MakeTxId(0, 1), MakeTxId(1, 0), MakeTxId(-1, 1), MakeTxId(k.epoch(), -5)}) {
    const std::string id = "txid " + ToString(t);
    ExecR e = k.Execute(t, work);
    c.That(e.ok() && e->status.code != proto::Code::OK, id + " execute", SayStatus(e));
    VoteR v = k.Prepare(t, &work);
    c.That(RefusedVote(v), id + " one-shot prepare", SayVote(v));
    DecideR d = k.Decide(t, proto::Outcome::ABORTED);
    c.That(d.ok() && d->status.code != proto::Code::OK, id + " abort", SayDecide(d));
    if (Ok(e) || Yes(v)) k.Abort(t);
  }
  {
    // 20 MiB in one statement: above the 16 MiB frame limit.
    TxId t = k.Fresh();
    proto::ExecuteRequest req;
    req.txid = t;
    req.resource = k.options().resource;
    req.statements = work;
    req.statements[0].sql += " -- " + std::string(kOversizedBytes, 'x');
    auto r = RawExecute(k.conn().address(), req, k.conn().timeout());
    bool refused = !r.ok() || r->status.code != proto::Code::OK;
    c.That(refused, "a 20 MiB statement",
           r.ok() ? SayStatus(r) : r.status().ToString());
    if (!refused) k.Abort(t);
  }
  {
    TxId t = k.Fresh();
    Stmts many;
    many.reserve(kManyStatements);
    for (size_t i = 0; i < kManyStatements; ++i) many.push_back(work[0]);
    ExecR e = k.Execute(t, many);
    c.That(!Ok(e), std::to_string(kManyStatements) + " statements in one request", SayStatus(e));
    k.Abort(t);
  }
  auto n = k.Observe(key);
  c.That(n.ok() && n.value() == 0, "later branch reads", k.SayObserved(n));
  return c.Done(9, "malformed-requests");
}

// 10. A branch that only read votes READ_ONLY (or YES, and then commits).
CaseResult ReadOnly(Kit& k) {
  Check c("READ_ONLY or YES");
  TxId t = k.Fresh();
  ExecR e = k.Execute(t, k.workload().Read(k.Key("read-only")));
  c.That(Ok(e), "read", SayStatus(e));
  if (c.failed()) {
    k.Abort(t);
    return c.Done(10, "read-only");
  }
  VoteR v = k.Prepare(t);
  bool ro = Ok(v) && v->vote == proto::Vote::READ_ONLY;
  c.That(ro || Yes(v), "prepare", SayVote(v));
  if (Yes(v)) {
    DecideR d = k.Decide(t, proto::Outcome::COMMITTED);
    c.That(Ok(d), "commit", SayDecide(d));
  } else if (!ro) {
    k.Abort(t);
  }
  return c.Done(10, "read-only");
}

// ------------------------------------------------------------------ output

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass: return "PASS";
    case Verdict::kFail: return "FAIL";
    case Verdict::kSkip: return "SKIP";
  }
  return "?";
}

std::string Cut(std::string s, size_t n) {
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  }
  if (s.size() > n) s = s.substr(0, n - 3) + "...";
  return s;
}

void PrintRow(std::ostream& out, const CaseResult& r, bool verbose) {
  char line[512];
  std::snprintf(line, sizeof line, "%-3d %-20s %-46s %-62s ", r.number, r.name.c_str(),
                Cut(Scrub(r.expected), 46).c_str(), Cut(Scrub(r.got), 62).c_str());
  out << line << VerdictName(r.verdict) << "\n";
  if ((verbose || r.verdict != Verdict::kPass) && !r.detail.empty()) {
    out << "      details: " << Cut(Scrub(r.detail), 4000) << "\n";
  }
  out.flush();
}

}  // namespace

std::string Scrub(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i + 4 <= text.size() && std::tolower(static_cast<unsigned char>(text[i])) == 'p' &&
        std::tolower(static_cast<unsigned char>(text[i + 1])) == 'a' &&
        std::tolower(static_cast<unsigned char>(text[i + 2])) == 's' &&
        std::tolower(static_cast<unsigned char>(text[i + 3])) == 's') {
      out += text.substr(i, 2) + "-" + text.substr(i + 2, 2);
      i += 3;
      continue;
    }
    out += text[i];
  }
  return out;
}

int ExitCode(const std::vector<CaseResult>& results) {
  for (const auto& r : results) {
    if (r.verdict == Verdict::kFail) return 1;
  }
  return 0;
}

std::vector<CaseResult> Run(const Options& o, std::ostream& out) {
  std::unique_ptr<Workload> w;
  if (o.kind == Kind::kSql) {
    w = std::make_unique<SqlWorkload>();
  } else {
    w = std::make_unique<QueueWorkload>();
  }
  int64_t epoch = o.epoch;
  if (epoch == 0) {
    epoch = kEpochBase + std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  }
  AgentConn conn(o.agent, o.timeout);
  Kit kit(o, &conn, w.get(), epoch);
  out << "txconform: agent " << o.agent << ", resource " << o.resource << " ("
      << (o.kind == Kind::kSql ? "sql" : "queue") << "), txids " << epoch << ".N\n";

  std::vector<CaseResult> results;
  // The workload's schema, committed in a branch of its own; it also shows
  // the agent can be reached at all.
  Stmts setup = w->Setup();
  if (!setup.empty()) {
    Status s = kit.CommitBranch(setup);
    if (!s.ok()) {
      CaseResult r;
      r.name = "setup";
      r.expected = "the workload's table committed";
      r.got = s.ToString();
      r.verdict = Verdict::kFail;
      out << "txconform: cannot set up the workload on " << o.resource << " at " << o.agent
          << ": " << Scrub(s.message()) << "\n";
      results.push_back(r);
      return results;
    }
  } else {
    // Nothing to create: read once, so an unreachable agent is one clear line.
    auto n = kit.Observe(kit.Key("setup"));
    if (!n.ok()) {
      CaseResult r;
      r.name = "setup";
      r.expected = "the agent answers";
      r.got = n.status().ToString();
      r.verdict = Verdict::kFail;
      out << "txconform: cannot read " << o.resource << " at " << o.agent << ": "
          << Scrub(n.status().message()) << "\n";
      results.push_back(r);
      return results;
    }
  }

  char header[256];
  std::snprintf(header, sizeof header, "%-3s %-20s %-46s %-62s %s\n", "#", "CASE", "EXPECTED",
                "GOT", "VERDICT");
  out << header;
  const std::vector<std::function<CaseResult(Kit&)>> cases = {
      DuplicatePrepare, DuplicateAbort, EmptyRollback, Hanging, CommitUnprepared, BranchStates,
      CrashAfterYes,
      o.kind == Kind::kSql ? std::function<CaseResult(Kit&)>(ConcurrentSql)
                           : std::function<CaseResult(Kit&)>(ConcurrentQueue),
      Malformed, ReadOnly};
  for (const auto& run : cases) {
    results.push_back(run(kit));
    PrintRow(out, results.back(), o.verbose);
  }
  int ok = 0, failed = 0, skipped = 0;
  for (const auto& r : results) {
    ++(r.verdict == Verdict::kPass ? ok : r.verdict == Verdict::kFail ? failed : skipped);
  }
  out << results.size() << " cases: " << ok << " ok, " << failed << " failed, " << skipped
      << " skipped\n";
  return results;
}

}  // namespace txc::conform
