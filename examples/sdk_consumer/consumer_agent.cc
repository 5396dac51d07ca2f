// consumer_agent: an agent built against an installed txcoord. It hosts two
// resources in its own process, through txc::participant::EmbeddedAgent:
//   counters  a resource manager written here (CounterResource, below)
//   shop      the built-in SQLite resource, from a spec as txagent takes it
//
//   consumer_agent --listen 127.0.0.1:7300 --coordinator 127.0.0.1:7000 --data /tmp/agent
//
// Runs until SIGINT or SIGTERM. Clients reach both resources at --listen.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "participant/embedded_agent.h"
#include "participant/resource_manager.h"

namespace {

using txc::Status;
using txc::TxId;
using txc::participant::BranchState;
using txc::participant::ExecuteResult;
using txc::participant::PrepareInfo;
using txc::participant::RecoveredBranch;

// CounterResource: named 64-bit counters that change only inside txcoord
// transactions. Its statements (Statement.sql, then the params):
//   GET key          one row, the value (0 for a key never set)
//   SET key value    rows_changed 1
//   ADD key delta    rows_changed 1
// Keys follow the rule of resource names (1-64 of A-Z a-z 0-9 _ -).
//
// How it keeps the contract of participant/resource_manager.h:
// - A branch's writes stay in memory until Commit, so undoing them is
//   dropping them. Every key a branch reads or writes is locked until it ends;
//   a key locked by another branch answers CONFLICT naming the holder, and
//   the agent waits for it or fails the call (nothing of the call applied).
//   Reads lock too, so a GET never sees a value a prepared branch may change.
// - Prepare appends the branch's writes to the log and fsyncs before it
//   answers OK; Commit appends COMMIT and fsyncs, then applies the writes.
//   Recover replays the log: committed writes applied, PREPARED branches
//   returned with the keys they write locked again.
// - Rollback drops the writes, releases the locks and keeps a tombstone, so a
//   late Execute or Prepare of that txid is refused. Its log line is not
//   synced: a PREPARED branch whose ABORT was lost is in doubt again after a
//   restart, and the coordinator group answers ABORTED again.
// - Commit of a committed branch and Rollback of an aborted one answer OK.
// - A failed write or fsync makes it refuse every later write
//   (STORAGE_FAILED) until it is restarted.
//
// The log, one line a record:
//   P txid protocol n {resource address}*n m {key value}*m   (PREPARED)
//   C txid                                                    (COMMITTED)
//   A txid                                                    (ABORTED)
// An example keeps it simple: the log and the tombstones are never purged,
// and the fsyncs run on the agent's io thread (a busy resource would queue
// its work to a thread of its own and sync many branches at once).
//
// Not thread-safe: the agent calls it from its io thread only.
class CounterResource : public txc::participant::ResourceManager {
 public:
  CounterResource(std::string name, std::string path) : name_(std::move(name)), path_(std::move(path)) {}
  ~CounterResource() override {
    if (fd_ >= 0) ::close(fd_);
  }

  const std::string& name() const override { return name_; }

  txc::Result<std::vector<RecoveredBranch>> Recover() override {
    std::string text;
    if (std::ifstream in(path_, std::ios::binary); in) {
      std::ostringstream all;
      all << in.rdbuf();
      text = all.str();
    }
    // A crash in the middle of an append leaves a torn last line, never
    // acknowledged (nothing is answered before its fsync): cut it off.
    size_t end = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (end != text.size()) {
      std::filesystem::resize_file(path_, end);
      text.resize(end);
    }
    std::istringstream lines(text);
    std::string line;
    for (int n = 1; std::getline(lines, line); ++n) {
      if (!Replay(line)) {
        return Status::StorageFailed(name_ + ": " + path_ + " line " + std::to_string(n) +
                                     " is not a log record: '" + line + "'");
      }
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::StorageFailed(name_ + ": cannot open " + path_ + ": " + strerror(errno));
    // The file's directory entry must be durable too before anything in it counts.
    std::string dir = std::filesystem::path(path_).parent_path().string();
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || ::fsync(dfd) != 0) {
      if (dfd >= 0) ::close(dfd);
      return Status::StorageFailed(name_ + ": cannot sync the directory of " + path_);
    }
    ::close(dfd);

    std::vector<RecoveredBranch> in_doubt;
    for (const auto& [txid, b] : branches_) {
      for (const auto& [key, value] : b.writes) locks_[key] = txid;
      in_doubt.push_back({txid, BranchState::kPrepared, b.info});
    }
    return in_doubt;
  }

  void Execute(const TxId& txid, std::vector<txc::proto::Statement> statements,
               Callback<ExecuteResult> done) override {
    ExecuteResult r;
    auto it = branches_.find(txid);
    r.wrote = it != branches_.end() && !it->second.writes.empty();
    if (aborted_.count(txid)) {
      r.status = Status::Aborted(Name(txid) + " is already aborted");
    } else if (committed_.count(txid)) {
      r.status = Status::InvalidArgument(Name(txid) + " is already committed");
    } else if (it != branches_.end() && it->second.prepared) {
      r.status = Status::InvalidArgument(Name(txid) + " is PREPARED; it takes no more statements");
    } else {
      // Work on copies: a call that fails applies nothing.
      Branch b = it != branches_.end() ? it->second : Branch();
      for (const auto& st : statements) {
        r.status = Run(txid, st, &b, &r);
        if (!r.status.ok()) break;
      }
      if (r.status.ok()) {
        for (const std::string& key : b.keys) locks_[key] = txid;
        r.wrote = !b.writes.empty();
        branches_[txid] = std::move(b);
      } else {
        r.results.clear();
      }
    }
    done(std::move(r));
  }

  void Prepare(const TxId& txid, const PrepareInfo& info, Callback<Status> done) override {
    auto it = branches_.find(txid);
    if (it == branches_.end()) return done(Missing(txid, "prepare"));
    Branch& b = it->second;
    if (b.prepared) return done(Status::Ok());  // durable already
    std::ostringstream rec;
    rec << "P " << txc::ToString(txid) << ' ' << static_cast<int>(info.protocol) << ' '
        << info.participants.size();
    for (const auto& p : info.participants) rec << ' ' << p.resource << ' ' << p.address;
    rec << ' ' << b.writes.size();
    for (const auto& [key, value] : b.writes) rec << ' ' << key << ' ' << value;
    if (Status s = Append(rec.str(), /*sync=*/true); !s.ok()) return done(s);
    b.prepared = true;
    b.info = info;
    done(Status::Ok());
  }

  void Commit(const TxId& txid, Callback<Status> done) override {
    if (committed_.count(txid)) return done(Status::Ok());
    auto it = branches_.find(txid);
    if (it == branches_.end()) return done(Missing(txid, "commit"));
    Branch& b = it->second;
    if (!b.writes.empty()) {
      // The agent commits a branch that wrote only once it is PREPARED; one
      // that only read is committed (released) without a prepare.
      if (!b.prepared) return done(Status::InvalidArgument(Name(txid) + " is ACTIVE: prepare it first"));
      if (Status s = Append("C " + txc::ToString(txid), /*sync=*/true); !s.ok()) return done(s);
      for (const auto& [key, value] : b.writes) values_[key] = value;
    }
    committed_[txid] = !b.writes.empty();
    Release(txid);
    done(Status::Ok());
  }

  void Rollback(const TxId& txid, Callback<Status> done) override {
    if (auto c = committed_.find(txid); c != committed_.end()) {
      if (!c->second) return done(Status::Ok());  // it only read: nothing to undo
      return done(Status::InvalidArgument(Name(txid) + " is committed here; it cannot be rolled back"));
    }
    auto it = branches_.find(txid);
    if (it != branches_.end() && it->second.prepared) {
      // Without this line a restart would bring the branch back PREPARED.
      if (Status s = Append("A " + txc::ToString(txid), /*sync=*/false); !s.ok()) return done(s);
    }
    aborted_.insert(txid);  // the tombstone, also for a txid never seen
    Release(txid);
    done(Status::Ok());
  }

 private:
  struct Branch {
    std::map<std::string, int64_t> writes;  // key -> the value it will have
    std::set<std::string> keys;             // every key read or written (locked)
    bool prepared = false;
    PrepareInfo info;
  };

  std::string Name(const TxId& txid) const { return "branch " + txc::ToString(txid) + " of " + name_; }

  Status Missing(const TxId& txid, const char* what) const {
    if (aborted_.count(txid)) return Status::Aborted(Name(txid) + " is already aborted; cannot " + what + " it");
    return Status::NotFound("no " + Name(txid) + " to " + what);
  }

  // Runs one statement on `b` (a copy of the branch), adding its result to `r`.
  Status Run(const TxId& txid, const txc::proto::Statement& st, Branch* b, ExecuteResult* r) {
    bool get = st.sql == "GET", set = st.sql == "SET", add = st.sql == "ADD";
    if (!get && !set && !add) {
      return Status::SqlError(name_ + ": unknown statement '" + st.sql + "': use GET, SET or ADD");
    }
    size_t want = get ? 1 : 2;
    if (st.params.size() != want || !st.params[0].__isset.s ||
        !txc::participant::ValidResourceName(st.params[0].s) || (!get && !st.params[1].__isset.i)) {
      return Status::SqlError(name_ + ": " + st.sql + " takes a key (1-64 of A-Z a-z 0-9 _ -)" +
                              (get ? "" : " and an integer"));
    }
    const std::string& key = st.params[0].s;
    if (auto l = locks_.find(key); l != locks_.end() && !(l->second == txid)) {
      r->holder = l->second;
      r->conflict = name_ + " key=" + key;
      return Status::Conflict(r->conflict + " is held by txn " + txc::ToString(l->second));
    }
    b->keys.insert(key);
    int64_t current = b->writes.count(key) ? b->writes[key] : values_[key];
    txc::proto::ResultSet rs;
    if (get) {
      rs.columns = {"value"};
      txc::proto::Row row;
      row.values.emplace_back().__set_i(current);
      rs.rows.push_back(std::move(row));
    } else {
      b->writes[key] = set ? st.params[1].i : current + st.params[1].i;
      rs.rows_changed = 1;
    }
    if (st.__isset.expect_rows && st.expect_rows != rs.rows_changed) {
      return Status::ExpectationFailed(name_ + ": " + st.sql + " " + key + " changed " +
                                       std::to_string(rs.rows_changed) + " rows, not " +
                                       std::to_string(st.expect_rows));
    }
    r->results.push_back(std::move(rs));
    return Status::Ok();
  }

  void Release(const TxId& txid) {
    auto it = branches_.find(txid);
    if (it == branches_.end()) return;
    for (const std::string& key : it->second.keys) locks_.erase(key);
    branches_.erase(it);
  }

  // Appends one record; with `sync`, OK means it is on disk.
  Status Append(const std::string& record, bool sync) {
    if (!failed_.ok()) return failed_;
    std::string line = record + "\n";
    bool ok = ::write(fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    if (ok && sync) ok = ::fdatasync(fd_) == 0;
    if (!ok) {
      // After a failed write or fsync nothing says what reached the disk.
      failed_ = Status::StorageFailed(name_ + ": writing " + path_ + " failed (" + strerror(errno) +
                                      "); restart the agent once the disk is fixed");
      std::cerr << failed_.ToString() << std::endl;
    }
    return failed_;
  }

  // Applies one log line to the in-memory state; false if it is not a record.
  bool Replay(const std::string& line) {
    std::istringstream in(line);
    std::string kind, id;
    in >> kind >> id;
    std::optional<TxId> txid = txc::ParseTxId(id);
    if (!txid) return false;
    if (kind == "P") {
      Branch b;
      b.prepared = true;
      int protocol = 0;
      size_t n = 0;
      in >> protocol >> n;
      b.info.protocol = static_cast<txc::proto::Protocol::type>(protocol);
      for (size_t i = 0; i < n && in; ++i) {
        auto& p = b.info.participants.emplace_back();
        in >> p.resource >> p.address;
      }
      in >> n;
      for (size_t i = 0; i < n && in; ++i) {
        std::string key;
        int64_t value = 0;
        in >> key >> value;
        b.writes[key] = value;
        b.keys.insert(key);
      }
      if (!in) return false;
      branches_[*txid] = std::move(b);
      return true;
    }
    if (kind == "C") {
      if (auto it = branches_.find(*txid); it != branches_.end()) {
        for (const auto& [key, value] : it->second.writes) values_[key] = value;
        branches_.erase(it);
      }
      committed_[*txid] = true;
      return true;
    }
    if (kind == "A") {
      branches_.erase(*txid);
      aborted_.insert(*txid);
      return true;
    }
    return false;
  }

  std::string name_;
  std::string path_;
  int fd_ = -1;
  Status failed_;                                       // sticky, once a write failed
  std::map<std::string, int64_t> values_;               // committed values
  std::map<TxId, Branch, txc::TxIdLess> branches_;      // ACTIVE and PREPARED
  std::map<std::string, TxId> locks_;                   // key -> the branch holding it
  std::map<TxId, bool, txc::TxIdLess> committed_;       // txid -> it wrote
  std::set<TxId, txc::TxIdLess> aborted_;               // tombstones
};

int Usage() {
  std::cerr << "usage: consumer_agent --listen HOST:PORT --coordinator HOST:PORT[,HOST:PORT...] "
               "--data DIR\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  txc::participant::EmbeddedAgentOptions options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--listen") {
      options.listen = value;
    } else if (flag == "--data") {
      options.data_dir = value;
    } else if (flag == "--coordinator") {
      std::istringstream list(value);
      for (std::string c; std::getline(list, c, ',');) options.coordinators.push_back(c);
    } else {
      return Usage();
    }
  }
  if (argc % 2 == 0 || options.data_dir.empty() || options.coordinators.empty()) return Usage();
  std::filesystem::create_directories(options.data_dir);

  // SIGINT and SIGTERM are blocked in every thread (the agent's thread
  // inherits this mask), so that sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  txc::participant::EmbeddedAgent agent(options);
  Status s = agent.AddResource(
      std::make_unique<CounterResource>("counters", options.data_dir + "/counters.log"));
  if (s.ok()) s = agent.AddResource("shop=sqlite:" + options.data_dir + "/shop.db");
  if (s.ok()) s = agent.StartThread();
  if (!s.ok()) {
    std::cerr << "consumer_agent: " << s.ToString() << std::endl;
    return 1;
  }
  std::cout << "consumer_agent: serving counters and shop on " << agent.address() << std::endl;

  int sig = 0;
  sigwait(&stop_signals, &sig);
  agent.Stop();
  std::cout << "consumer_agent: stopped" << std::endl;
  return 0;
}
