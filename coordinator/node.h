// CoordinatorNode: the real shell around the coordinator's node core
// (NodeCore: TxnTable + CommitDriver, and in a group the paxos::Replica). It
// serves the Coordinator RPC service, carries out the core's effects (client
// replies, calls to participant agents, writes to the decision log or the
// acceptor's log, peer messages) and arms the core's timers. The decisions
// are all the core's: this file moves bytes.
//
// The durable side is a LocalLog (a single replica, DIR/coord.log) or, with
// peers, a PaxosLog (one member of a Multi-Paxos group, DIR/paxos.log); see
// decision_log.h.
//
// Threading: everything runs on the io_context's thread; the LogStore's WAL
// thread posts completions back to it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "common/metrics.h"
#include "common/metrics_http.h"
#include "coordinator/commit_driver.h"
#include "coordinator/decision_log.h"
#include "coordinator/node_core.h"
#include "paxos_types.h"
#include "coordinator/txn_table.h"
#include "protocol/rpc.h"

namespace txc::coord {

struct NodeOptions {
  std::string listen = "127.0.0.1:7000";
  std::string data_dir = "./txcoord-data";
  int replica_id = 1;
  // Every replica of the group, id -> HOST:PORT; empty or one entry: a single
  // replica with a LocalLog.
  std::map<int, std::string> peers;
  // Multi-Paxos timing (see coordinator/paxos/replica.h).
  Micros heartbeat = 50 * kMillis;
  Micros election_min = 300 * kMillis;
  Micros election_max = 600 * kMillis;
  // The node proposes END lazily (DriverOptions::lazy_end).
  DriverOptions driver = [] {
    DriverOptions d;
    d.lazy_end = true;
    return d;
  }();
  // How often the driver's timers are checked. Default: 5 ms.
  Micros tick = 5 * kMillis;
  // A snapshot of the table is written, and the log truncated, after this
  // many applied commands (a log record holds one or more). Default: 100,000
  // (about 50,000 transactions: a DECIDE and an END each).
  uint64_t snapshot_every = 100000;
  // Benchmark only: skip fsync in the decision log. Default: false.
  bool unsafe_no_sync = false;
  // HOST:PORT to serve GET /metrics on (Prometheus text format; see
  // docs/operations.md). Empty: no metrics server. Default: empty.
  std::string metrics_listen;
  // Serves LogBench.Append (txbench log and probe): a benchmark hook that
  // proposes client-supplied records through the decision log. Off, a call
  // is refused with INVALID_ARGUMENT naming --serve-log-bench, and nothing
  // reaches the log. Default: false.
  bool serve_log_bench = false;
  // Mutual TLS on the server and on every outgoing channel (to the other
  // replicas and to the agents); calls are checked against
  // authz::CoordinatorTable(). Default: plaintext (docs/security.md).
  TlsConfig tls;
  // The server closes a connection idle this long (rpc::ServerOptions).
  // Default: 5 min.
  Micros rpc_idle_timeout = 5 * 60 * kSeconds;
  // Connections one peer address may hold open on the server; more from it
  // are refused at accept (rpc::ServerOptions::max_connections_per_peer).
  // Default: 1024.
  size_t rpc_max_connections_per_peer = rpc::ServerOptions{}.max_connections_per_peer;
};

class CoordinatorNode {
 public:
  CoordinatorNode(boost::asio::io_context& io, NodeOptions options);
  ~CoordinatorNode();

  // Opens the log, recovers the table, starts listening, and starts a new
  // epoch. Serving begins once the EPOCH record is durable.
  Status Start();
  void Stop();

  uint16_t port() const;
  // The metrics server's port (0 when --metrics-listen is not set).
  uint16_t metrics_port() const;
  // REQUIRES: Start() returned OK.
  const TxnTable& table() const { return core_->table(); }
  const CommitDriver& driver() const { return core_->driver(); }

 private:
  template <class Req, class Resp>
  void Serve(const std::string& method,
             NodeEffects (NodeCore::*in)(uint64_t, const Req&, Micros));
  // Carries out what the core asked for, in order.
  void Apply(NodeEffects fx);
  void Do(ClientReply& r);
  void Do(ProposeAction& p);
  void Do(ParticipantCall& c);
  void Do(paxos::Persist& p);
  void Do(paxos::Outgoing& o);
  void Do(AppliedAction& a);
  void Do(InstallAction& a);
  void Do(SnapshotAction& a);
  void Do(HeuristicHazard& h);
  void Do(AppendedAction& a);
  void Do(NoteAction& n);
  void WakeDriver(Micros at);
  void WakeReplica(Micros at);
  proto::StatusResponse StatusNow() const;
  // `txbench log`: records proposed through the log, answered when chosen.
  void OnAppend(proto::LogBenchAppendRequest req, rpc::RpcServer::Reply<proto::LogBenchAppendResponse> reply);
  void FailAppends(const Status& why);
  proto::ListTxnsResponse ListTxns(const proto::ListTxnsRequest& req) const;
  // node_metrics.cc: the metrics this node exports. RegisterMetrics runs
  // before the logs open (they take the write-latency histogram); the
  // function families read the core at scrape time, on the io thread.
  void RegisterMetrics();
  void ObserveReply(const ClientResponse& r, Micros started);

  boost::asio::io_context& io_;
  NodeOptions options_;
  std::unique_ptr<NodeCore> core_;
  std::unique_ptr<LocalLog> local_;  // single replica
  std::unique_ptr<PaxosLog> paxos_;  // group
  rpc::RpcServer server_;
  rpc::ChannelPool pool_;
  boost::asio::steady_timer tick_timer_;
  boost::asio::steady_timer paxos_timer_;
  std::map<uint64_t, std::function<void(ClientResponse)>> pending_;
  uint64_t next_token_ = 1;
  std::map<uint64_t, rpc::RpcServer::Reply<proto::LogBenchAppendResponse>> appends_;
  std::vector<proto::Command> append_batch_;
  uint64_t next_append_ = 1;
  bool storage_failed_ = false;
  bool stopped_ = false;
  metrics::Registry metrics_;
  metrics::Histogram* commit_committed_ = nullptr;  // in metrics_
  metrics::Histogram* commit_aborted_ = nullptr;
  metrics::Histogram* log_write_ = nullptr;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
};

}  // namespace txc::coord
