// Agent: the real shell of a participant agent (txagent) around its node core
// (AgentCore). It serves the Agent RPC service, hands the core's resource
// operations to the ResourceManagers and their completions back, sends the
// core's outcome queries to the coordinator group, and arms the core's tick
// timer. The decisions are all the core's: this file moves bytes.
//
// Threading: the core, the RPC server and the coordinator calls run on the
// io_context's thread; each resource does its work on its own thread and its
// callbacks are posted back here.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "common/metrics.h"
#include "common/metrics_http.h"
#include "participant/agent_core.h"
#include "participant/resource_manager.h"
#include "protocol/coordinator_set.h"
#include "protocol/rpc.h"

namespace txc::participant {

struct AgentNodeOptions {
  std::string listen = "127.0.0.1:7100";
  std::vector<std::string> coordinators;  // HOST:PORT of every coordinator replica
  AgentOptions core;
  // How often the core's timers are checked. Default: 5 ms.
  Micros tick = 5 * kMillis;
  // Deadline of an outcome query to the coordinator group. Default: 3 s.
  Micros query_timeout = 3 * kSeconds;
  // HOST:PORT to serve GET /metrics on (Prometheus text format; see
  // docs/operations.md). Empty: no metrics server. Default: empty.
  std::string metrics_listen;
  // Mutual TLS on the server and on the channels to the coordinator group
  // and the other agents; calls are checked against authz::AgentTable().
  // Default: plaintext (docs/security.md).
  TlsConfig tls;
  // The server closes a connection idle this long (rpc::ServerOptions).
  // Default: 5 min.
  Micros rpc_idle_timeout = 5 * 60 * kSeconds;
  // Whether a COMMIT or ABORT for a prepared branch is confirmed with the
  // group before it is applied (AgentOptions::confirm_decisions; core.
  // confirm_decisions is set from this). kAuto: on in plaintext, where any
  // caller could send it; off with TLS, where the authorization table lets
  // only the replica role call Agent.Decide.
  enum class Confirm { kAuto, kOn, kOff };
  Confirm confirm_decisions = Confirm::kAuto;
  // With confirmation in effect: a key of this run is drawn at start from
  // the system's random source and registered with the group over the
  // connections the agent dials (AgentOptions::decision_key); decisions
  // signed under it are applied without asking. Default: true.
  bool sign_decisions = true;
  // HOST:PORT that participants name this agent by: the address the group
  // signs decisions for. Empty: `listen`. Default: empty.
  std::string advertise;
  // Connections one peer address may hold open on the server; more from it
  // are refused at accept (rpc::ServerOptions::max_connections_per_peer).
  // Default: 1024.
  size_t rpc_max_connections_per_peer = rpc::ServerOptions{}.max_connections_per_peer;
};

// Reads the counter in `path`, adds one, and makes it durable (write, fsync,
// rename, fsync of the folder) before returning it: this run's incarnation.
Result<int64_t> NextIncarnation(const std::string& path);

class Agent {
 public:
  // Takes ownership of the resources.
  Agent(boost::asio::io_context& io, AgentNodeOptions options,
        std::vector<std::unique_ptr<ResourceManager>> resources);
  ~Agent();

  // Recovers every resource (ACTIVE branches rolled back, PREPARED ones kept
  // in doubt and asked about), then listens.
  Status Start();
  void Stop();
  uint16_t port() const;
  // The metrics server's port (0 when --metrics-listen is not set).
  uint16_t metrics_port() const;

 private:
  template <class Req, class Resp>
  void Serve(const std::string& method,
             AgentCoreEffects (AgentCore::*in)(uint64_t, const Req&, Micros));
  // Carries out what the core asked for.
  void Apply(AgentCoreEffects fx);
  void Run(ResourceOp op);
  void Wake(Micros at);
  // agent_metrics.cc: the metrics this agent exports; the function families
  // read the core at scrape time, on the io thread.
  void RegisterMetrics();
  // A resource operation of `kind` started at `started` completed with `ok`.
  void ObserveOp(ResourceOp::Kind kind, Micros started, bool ok);

  boost::asio::io_context& io_;
  AgentNodeOptions options_;
  std::map<std::string, std::unique_ptr<ResourceManager>> resources_;
  AgentCore core_;
  rpc::RpcServer server_;
  rpc::ChannelPool pool_;
  std::shared_ptr<rpc::CoordinatorSet> coordinators_;
  boost::asio::steady_timer tick_timer_;
  std::map<uint64_t, std::function<void(AgentResponse)>> pending_;
  uint64_t next_token_ = 1;
  // Guards callbacks that resources post after Stop().
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  metrics::Registry metrics_;
  std::map<ResourceOp::Kind, metrics::Histogram*> op_latency_;  // in metrics_
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
};

}  // namespace txc::participant
