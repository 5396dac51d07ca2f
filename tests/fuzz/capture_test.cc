// Seeds the fuzz corpus (tests/fuzz/corpus/TARGET) from real traffic: a group
// of three txcoord replicas and two txagents (an SQLite bank and a queue
// outbox) run a few transactions through the client library, with a recording
// TCP proxy in front of every process (each replica reaches its peers through
// their proxies too), so every frame any of them sends or receives passes a
// recorder. Afterwards the replicas' Paxos logs and the agents' branch logs
// are read from disk. What was recorded is cut into each fuzz target's input
// format (tests/fuzz/*_fuzz.cc), checked (every captured request and response
// decodes as its type; every seed runs clean through its target), and
// written out.
//
// In `make test` it writes to a temporary directory; with
// TXC_FUZZ_CAPTURE_DIR=tests/fuzz/corpus (`make fuzz-seed`) it refreshes the
// committed seeds.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "client/client.h"
#include "coordinator/decision_log.h"
#include "coordinator/txn_table.h"
#include "paxos_types.h"
#include "protocol/wire.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/message_types.h"
#include "tests/support/process.h"
#include "wal/log_store.h"
#include "wal/sqlite.h"

extern "C" int TxcFuzz_rpc_frame(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_messages(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_coord_log(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_participant_wal(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_paxos_peer(const uint8_t* data, size_t size);

namespace txc {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::ip::tcp;
using testing::FreePort;
using testing::Process;
using testing::TempDir;

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

// Plaintext, whatever TXC_TEST_TLS says: the recording proxies read the
// frames off the wire, and the fuzz targets take plaintext frames.
const testing::ScopedPlaintext kProxiesRecordPlaintext;

// A TCP proxy on 127.0.0.1:listen_port to 127.0.0.1:target_port that keeps a
// copy of both directions of every connection. Runs its own io thread.
class RecordingProxy {
 public:
  struct Conn {
    std::string up;    // client -> server: calls
    std::string down;  // server -> client: replies
  };

  RecordingProxy(int listen_port, int target_port, std::string service)
      : service_(std::move(service)),
        target_(asio::ip::make_address_v4("127.0.0.1"), static_cast<uint16_t>(target_port)),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"),
                                     static_cast<uint16_t>(listen_port))) {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~RecordingProxy() { Stop(); }

  void Stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      for (auto& s : sockets_) s->close(ignored);
    });
    io_.stop();
    thread_.join();
  }

  // REQUIRES: stopped.
  const std::vector<std::shared_ptr<Conn>>& conns() const { return conns_; }
  const std::string& service() const { return service_; }

 private:
  void Accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket client) {
      if (ec) return;
      auto conn = std::make_shared<Conn>();
      conns_.push_back(conn);
      auto down = std::make_shared<tcp::socket>(std::move(client));
      auto up = std::make_shared<tcp::socket>(io_);
      sockets_.push_back(down);
      sockets_.push_back(up);
      up->async_connect(target_, [this, conn, up, down](const boost::system::error_code& cec) {
        if (cec) {
          boost::system::error_code ignored;
          down->close(ignored);
          return;
        }
        Pump(down, up, &conn->up, conn);
        Pump(up, down, &conn->down, conn);
      });
      Accept();
    });
  }

  // Copies from -> to, recording into *record (owned by `keep`).
  void Pump(std::shared_ptr<tcp::socket> from, std::shared_ptr<tcp::socket> to, std::string* record,
            std::shared_ptr<Conn> keep) {
    auto buf = std::make_shared<std::array<char, 16384>>();
    from->async_read_some(asio::buffer(*buf), [this, from, to, record, keep, buf](
                                                  const boost::system::error_code& ec, size_t n) {
      if (ec) {
        boost::system::error_code ignored;
        to->shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      record->append(buf->data(), n);
      asio::async_write(*to, asio::buffer(buf->data(), n),
                        [this, from, to, record, keep, buf](const boost::system::error_code& wec,
                                                            size_t) {
                          if (wec) {
                            boost::system::error_code ignored;
                            from->close(ignored);
                            return;
                          }
                          Pump(from, to, record, keep);
                        });
    });
  }

  std::string service_;
  asio::io_context io_;
  tcp::endpoint target_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::vector<std::shared_ptr<Conn>> conns_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
};

// Frames of a recorded stream (a connection cut mid-frame loses its tail).
std::vector<std::string_view> Frames(std::string_view stream) {
  std::vector<std::string_view> out;
  for (;;) {
    auto head = rpc::wire::PeekFrame(stream, rpc::ServerOptions{}.max_frame_bytes);
    if (head.kind != rpc::wire::FrameHead::kComplete) break;
    out.push_back(stream.substr(4, head.length));
    stream.remove_prefix(4 + size_t{head.length});
  }
  return out;
}

// The seeds of every target, deduplicated, at most `cap` per bucket (a
// message type, a peer message type...), so the committed corpus stays small.
class Seeds {
 public:
  bool Add(const std::string& target, const std::string& bucket, std::string bytes, size_t cap) {
    if (seen_[target].count(bytes) != 0) return false;
    if (per_bucket_[target + "/" + bucket]++ >= cap) return false;
    seen_[target].insert(bytes);
    seeds_[target].push_back(std::move(bytes));
    return true;
  }
  const std::map<std::string, std::vector<std::string>>& all() const { return seeds_; }

 private:
  std::map<std::string, std::set<std::string>> seen_;
  std::map<std::string, size_t> per_bucket_;
  std::map<std::string, std::vector<std::string>> seeds_;
};

// File name of a seed: its FNV-1a hash (stable, so a refresh rewrites the same names).
std::string SeedName(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "seed-%016llx", static_cast<unsigned long long>(h));
  return buf;
}

class CaptureTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& p : proxies_) p->Stop();
  }

  void StartAll() {
    for (int i = 0; i < 3; ++i) {
      real_[i] = FreePort();
      proxy_[i] = FreePort();
    }
    bank_port_ = FreePort();
    bank_proxy_ = FreePort();
    outbox_port_ = FreePort();
    outbox_proxy_ = FreePort();
    for (int i = 0; i < 3; ++i) {
      proxies_.push_back(std::make_unique<RecordingProxy>(proxy_[i], real_[i], "Coordinator"));
    }
    proxies_.push_back(std::make_unique<RecordingProxy>(bank_proxy_, bank_port_, "Agent"));
    proxies_.push_back(std::make_unique<RecordingProxy>(outbox_proxy_, outbox_port_, "Agent"));
    std::string group;  // how agents and clients reach the group: through the proxies
    for (int i = 0; i < 3; ++i) group += (i ? "," : "") + Addr(proxy_[i]);
    for (int i = 0; i < 3; ++i) {
      // Each replica listens on its own port and reaches its peers through their proxies.
      std::string peers;
      for (int j = 0; j < 3; ++j) {
        peers += (j ? "," : "") + std::to_string(j + 1) + "=" + Addr(j == i ? real_[j] : proxy_[j]);
      }
      const std::string d = dir_.path + "/c" + std::to_string(i + 1);
      std::vector<std::string> argv{TXC_BIN_DIR "/txcoord", "--id",  std::to_string(i + 1),
                                    "--listen", Addr(real_[i]), "--peers", peers, "--data", d};
      // Replicas 1 and 2 compact often (snapshots in their logs and, to a
      // replica behind, on the wire); replica 3 keeps its whole log.
      if (i < 2) argv.insert(argv.end(), {"--snapshot-every", "4"});
      replicas_[i] = std::make_unique<Process>("txcoord " + std::to_string(i + 1), argv, d + ".log");
      ASSERT_TRUE(replicas_[i]->Start(real_[i])) << replicas_[i]->LogTail();
    }
    bank_ = std::make_unique<Process>(
        "txagent bank",
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(bank_port_), "--data",
                                 dir_.path + "/bank", "--coordinator", group, "--resource",
                                 "bank=sqlite:" + dir_.path + "/bank.db"},
        dir_.path + "/bank.log");
    outbox_ = std::make_unique<Process>(
        "txagent outbox",
        std::vector<std::string>{TXC_BIN_DIR "/txagent", "--listen", Addr(outbox_port_), "--data",
                                 dir_.path + "/outbox", "--coordinator", group, "--resource",
                                 "outbox=queue:" + dir_.path + "/outbox.db"},
        dir_.path + "/outbox.log");
    ASSERT_TRUE(bank_->Start(bank_port_)) << bank_->LogTail();
    ASSERT_TRUE(outbox_->Start(outbox_port_)) << outbox_->LogTail();
    ClientOptions o;
    for (int i = 0; i < 3; ++i) o.coordinators.push_back(Addr(proxy_[i]));
    o.agents = {{"bank", Addr(bank_proxy_)}, {"outbox", Addr(outbox_proxy_)}};
    o.call_timeout = 5 * kSeconds;
    o.commit_timeout = 20 * kSeconds;
    auto c = Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    client_ = std::move(*c);
  }

  // A short, varied run: set-up, transfers with an enqueue each (2PC and
  // 3PC), a rollback, a failing statement, one-shot submits, a dequeue,
  // the operator's reads, and a transaction left open when the agents die.
  void RunTraffic() {
    Status s = Status::Unavailable("no leader yet");
    for (int tries = 0; tries < 100 && !s.ok(); ++tries) {  // until a leader serves
      auto tx = client_->Begin();
      if (tx.ok()) {
        auto r = tx->Execute("bank", {Sql("CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, "
                                          "balance INTEGER NOT NULL)"),
                                      Sql("INSERT OR IGNORE INTO accounts VALUES (1, 1000), (2, 1000)")});
        s = r.ok() ? tx->Commit() : r.status();
      } else {
        s = tx.status();
      }
      if (!s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(s.ok()) << s.ToString();
    for (int i = 0; i < 6; ++i) {
      TxnOptions to;
      to.protocol = i % 2 == 0 ? proto::Protocol::TWO_PC : proto::Protocol::THREE_PC;
      auto tx = client_->Begin(to);
      ASSERT_TRUE(tx.ok()) << tx.status().ToString();
      ASSERT_TRUE(tx->Execute("bank", Sql("UPDATE accounts SET balance = balance - ? WHERE id = ?",
                                          {Int(10 + i), Int(1 + i % 2)}))
                      .ok());
      ASSERT_TRUE(tx->Execute("outbox", Sql("ENQUEUE", {Text("orders"), Text("order " + std::to_string(i))}))
                      .ok());
      ASSERT_TRUE(tx->Commit().ok());
      EXPECT_TRUE(client_->Outcome(tx->id()).ok());
    }
    {
      auto tx = client_->Begin();
      ASSERT_TRUE(tx.ok());
      ASSERT_TRUE(tx->Execute("bank", Sql("UPDATE accounts SET balance = 0 WHERE id = 2")).ok());
      EXPECT_FALSE(tx->Execute("bank", Sql("SELECT * FROM no_such_table")).ok());
      EXPECT_TRUE(tx->Rollback().ok());
    }
    for (int i = 0; i < 2; ++i) {
      auto id = client_->Submit(
          {{"bank", {Sql("UPDATE accounts SET balance = balance + 1 WHERE id = 1")}},
           {"outbox", {Sql("ENQUEUE", {Text("orders"), Blob(std::string("\x00\x01\xff", 3))})}}});
      EXPECT_TRUE(id.ok()) << id.status().ToString();
    }
    {
      auto tx = client_->Begin();
      ASSERT_TRUE(tx.ok());
      EXPECT_TRUE(tx->Execute("outbox", Sql("DEQUEUE", {Text("orders")})).ok());
      EXPECT_TRUE(tx->Execute("outbox", Sql("COUNT", {Text("orders")})).ok());
      EXPECT_TRUE(tx->Commit().ok());
    }
    EXPECT_TRUE(client_->ClusterStatus().ok());
    EXPECT_TRUE(client_->ListTxns("").ok());
    EXPECT_TRUE(client_->RetryTxns(std::nullopt).ok());
    for (int port : {bank_proxy_, outbox_proxy_}) {
      EXPECT_TRUE((testing::CallOnce<proto::ListBranchesRequest, proto::ListBranchesResponse>(
                       port, "ListBranches", proto::ListBranchesRequest()))
                      .ok());
    }
    // Left open: its change rows and lock keys stay in the bank's log.
    open_tx_ = std::make_unique<Result<Transaction>>(client_->Begin());
    ASSERT_TRUE(open_tx_->ok());
    ASSERT_TRUE((*open_tx_)->Execute("bank", Sql("UPDATE accounts SET balance = balance + 5 WHERE id IN (1, 2)")).ok());
  }

  void StopAll() {
    client_.reset();
    bank_->Kill(SIGKILL);  // the open branch's rows stay on disk
    outbox_->Kill(SIGKILL);
    for (auto& r : replicas_) r->Kill(SIGTERM);
    for (auto& p : proxies_) p->Stop();
  }

  void HarvestFrames(Seeds* seeds) {
    for (const auto& proxy : proxies_) {
      const bool agent = proxy->service() == "Agent";
      for (const auto& conn : proxy->conns()) {
        for (int dir = 0; dir < 2; ++dir) {
          const std::string& stream = dir == 0 ? conn->up : conn->down;
          const auto frames = Frames(stream);
          if (frames.empty()) continue;
          // The connection's first frames, as the frame reader sees a stream.
          size_t end = 0, n = 0;
          while (n < frames.size() && n < 6 && end + frames[n].size() + 4 <= 4096) {
            end += frames[n].size() + 4;
            ++n;
          }
          if (end > 0) seeds->Add("rpc_frame", proxy->service() + std::to_string(dir), stream.substr(0, end), 8);
          for (std::string_view f : frames) {
            std::string error;
            std::string method;
            std::string_view body;
            if (dir == 0) {
              rpc::wire::Call call;
              ASSERT_TRUE(rpc::wire::DecodeCall(f, &call, &error)) << error;
              ASSERT_TRUE(call.has_args);
              method = call.name;
              body = call.args;
            } else {
              rpc::wire::Reply reply;
              ASSERT_TRUE(rpc::wire::DecodeReply(f, &reply, &error)) << error;
              ASSERT_EQ(reply.body, rpc::wire::Reply::kResult) << reply.name;
              method = reply.name;
              body = reply.result;
            }
            // One frame of each method alone.
            std::string framed(4, '\0');
            const uint32_t len = static_cast<uint32_t>(f.size());
            for (int b = 0; b < 4; ++b) framed[b] = static_cast<char>(len >> (24 - 8 * b));
            framed.append(f);
            seeds->Add("rpc_frame", method + std::to_string(dir), framed, 1);
            bool known = false;
            fuzz::ForEachTypeOf(method, dir == 0, [&](size_t index, const fuzz::MessageType& t) {
              if (agent != (std::string_view(t.service) == "Agent")) return;
              known = true;
              EXPECT_TRUE(t.decode(body)) << t.type << " from real traffic does not decode";
              seeds->Add("messages", t.type + std::to_string(t.request),
                         std::string(1, static_cast<char>(index)) + std::string(body), 2);
              if (method == "Deliver" && dir == 0) HarvestPeerMessage(seeds, body);
              if (method == "Deliver" && dir == 1) HarvestPeerAnswer(seeds, body);
            });
            EXPECT_TRUE(known) << "captured method " << method << " has no type in message_types.h";
            types_seen_.insert(method + (dir == 0 ? " request" : " response"));
          }
        }
      }
    }
    // Conversations: what replica 1 received, in order, in runs of 12.
    for (size_t i = 0; i + 1 < to_replica1_.size() && i < 12 * 6; i += 12) {
      std::string seq;
      for (size_t j = i; j < to_replica1_.size() && j < i + 12; ++j) fuzz::AppendRecord(&seq, to_replica1_[j]);
      seeds->Add("paxos_peer", "sequence", seq, 6);
    }
  }

  void HarvestPeerMessage(Seeds* seeds, std::string_view args) {
    proto::PeerMessage m;
    ASSERT_TRUE(codec::Decode(args, &m));
    paxos::Message msg;
    std::string why;
    ASSERT_TRUE(coord::DecodePeerPayload(m.payload, &msg, &why)) << why;
    std::string one;
    fuzz::AppendRecord(&one, args);
    seeds->Add("paxos_peer", std::to_string(static_cast<int>(msg.type)), one, 3);
    if (m.receiver == 1) to_replica1_.emplace_back(args);
    paxos_types_seen_.insert(static_cast<int>(msg.type));
  }

  // An answer that came in a Deliver's reply (PeerAck.payload) reaches the
  // caller's core as a Deliver of it would: seeded as that Deliver.
  void HarvestPeerAnswer(Seeds* seeds, std::string_view result) {
    proto::PeerAck ack;
    ASSERT_TRUE(codec::Decode(result, &ack));
    if (!ack.__isset.payload) return;
    paxos::Message msg;
    std::string why;
    ASSERT_TRUE(coord::DecodePeerPayload(ack.payload, &msg, &why)) << why;
    proto::PeerMessage m;
    m.sender = msg.sender;
    m.receiver = msg.receiver;
    m.payload = ack.payload;
    HarvestPeerMessage(seeds, codec::Encode(m));
  }

  void HarvestCoordinatorLogs(Seeds* seeds) {
    asio::io_context io;
    for (int i = 1; i <= 3; ++i) {
      auto store = wal::LogStore::Open(dir_.path + "/c" + std::to_string(i) + "/paxos.log",
                                       io.get_executor(), {});
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      auto records = (*store)->ReadFrom(0);
      ASSERT_TRUE(records.ok());
      auto promised = (*store)->GetMeta("promised");
      auto snapshot = (*store)->GetMeta("snapshot");
      ASSERT_TRUE(promised.ok() && snapshot.ok());
      std::vector<std::string> batches;  // the chosen values: command batches
      std::string acceptor = std::string(1, '\2');
      fuzz::AppendRecord(&acceptor, promised->value_or(""));
      fuzz::AppendRecord(&acceptor, snapshot->value_or(""));
      for (const wal::LogRecord& r : *records) {
        paxos::Entry e;
        ASSERT_TRUE(codec::Decode(r.data, &e));
        if (!e.value.empty()) batches.push_back(e.value);
        if (acceptor.size() < 3000) fuzz::AppendRecord(&acceptor, r.data);
      }
      seeds->Add("coord_log", "acceptor", acceptor, 3);
      // Replays of the log, whole and in parts.
      for (size_t from = 0; from < batches.size(); from += 4) {
        std::string replay(1, '\0');
        for (size_t j = from; j < batches.size() && j < from + 8; ++j) fuzz::AppendRecord(&replay, batches[j]);
        seeds->Add("coord_log", "replay", replay, 12);
      }
      // Snapshots: the replica's own, and the table's image after the log.
      coord::TxnTable table;
      uint64_t index = 0;
      for (const std::string& b : batches) {
        auto cmds = coord::DecodeBatch(b);
        ASSERT_TRUE(cmds.ok());
        for (const auto& c : *cmds) table.Apply(++index, c);
      }
      for (const std::string& image : {snapshot->value_or(""), table.Snapshot()}) {
        if (image.empty()) continue;
        std::string snap(1, '\1');
        fuzz::AppendRecord(&snap, image);
        if (!batches.empty()) fuzz::AppendRecord(&snap, batches.back());
        seeds->Add("coord_log", "snapshot", snap, 6);
      }
    }
  }

  void HarvestBranchLogs(Seeds* seeds) {
    for (const char* db_name : {"bank.db", "outbox.db"}) {
      auto db = wal::Db::Open(dir_.path + "/" + db_name);
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      auto q = (*db)->Prepare("SELECT participants FROM txc_branches WHERE participants IS NOT NULL");
      ASSERT_TRUE(q.ok()) << q.status().ToString();
      for (;;) {
        auto row = (*q)->Step();
        ASSERT_TRUE(row.ok());
        if (!*row) break;
        const std::string blob = (*q)->ColumnBlob(0);
        seeds->Add("participant_wal", "participants", std::string(1, '\0') + blob, 6);
        seeds->Add("participant_wal", "prepared", std::string(1, '\2') + blob, 3);
      }
      if (std::string(db_name) != "bank.db") continue;
      // Lock keys of interactive branches' calls, and of one-shots (kept in
      // their branch row).
      auto k = (*db)->Prepare(
          "SELECT keys FROM txc_changes UNION ALL "
          "SELECT keys FROM txc_branches WHERE keys IS NOT NULL");
      ASSERT_TRUE(k.ok()) << k.status().ToString();
      for (;;) {
        auto row = (*k)->Step();
        ASSERT_TRUE(row.ok());
        if (!*row) break;
        seeds->Add("participant_wal", "keys", std::string(1, '\1') + (*k)->ColumnBlob(0), 6);
      }
    }
  }

  TempDir dir_;
  int real_[3] = {}, proxy_[3] = {};
  int bank_port_ = 0, bank_proxy_ = 0, outbox_port_ = 0, outbox_proxy_ = 0;
  std::vector<std::unique_ptr<RecordingProxy>> proxies_;
  std::unique_ptr<Process> replicas_[3];
  std::unique_ptr<Process> bank_, outbox_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Result<Transaction>> open_tx_;
  std::vector<std::string> to_replica1_;
  std::set<std::string> types_seen_;
  std::set<int> paxos_types_seen_;
};

TEST_F(CaptureTest, RealRunSeedsEveryTarget) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  ASSERT_NO_FATAL_FAILURE(RunTraffic());
  StopAll();
  Seeds seeds;
  ASSERT_NO_FATAL_FAILURE(HarvestFrames(&seeds));
  ASSERT_NO_FATAL_FAILURE(HarvestCoordinatorLogs(&seeds));
  ASSERT_NO_FATAL_FAILURE(HarvestBranchLogs(&seeds));

  // The run reached every kind of input the targets read.
  for (const char* want : {"Begin request", "Commit response", "Submit request", "Abort request",
                           "Outcome response", "Status request", "ListTxns response",
                           "RetryTxns request", "Execute request", "Prepare response",
                           "Decide request", "ListBranches response", "Deliver request",
                           "Deliver response"}) {
    EXPECT_TRUE(types_seen_.count(want)) << "no " << want << " captured";
  }
  for (int t : {1, 2, 3, 4, 5, 6, 7, 8}) {  // PREVOTE .. HEARTBEAT_REPLY
    EXPECT_TRUE(paxos_types_seen_.count(t)) << "no Paxos message of type " << t << " captured";
  }
  const std::map<std::string, int (*)(const uint8_t*, size_t)> entry = {
      {"rpc_frame", &TxcFuzz_rpc_frame},     {"messages", &TxcFuzz_messages},
      {"coord_log", &TxcFuzz_coord_log},     {"participant_wal", &TxcFuzz_participant_wal},
      {"paxos_peer", &TxcFuzz_paxos_peer}};
  const char* out_env = std::getenv("TXC_FUZZ_CAPTURE_DIR");
  const fs::path out = out_env != nullptr ? fs::path(out_env) : fs::path(dir_.path) / "corpus";
  for (const auto& [target, fn] : entry) {
    auto it = seeds.all().find(target);
    ASSERT_TRUE(it != seeds.all().end()) << "no seeds for " << target;
    EXPECT_GE(it->second.size(), 3u) << target;
    fs::create_directories(out / target);
    for (const std::string& s : it->second) {
      EXPECT_EQ(fn(reinterpret_cast<const uint8_t*>(s.data()), s.size()), 0);
      std::ofstream(out / target / SeedName(s), std::ios::binary) << s;
    }
    std::printf("capture: %zu seeds for %s in %s\n", it->second.size(), target.c_str(),
                (out / target).c_str());
  }
}

}  // namespace
}  // namespace txc
