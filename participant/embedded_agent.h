// EmbeddedAgent: host resource managers inside your own process, without
// txagent. It is the same agent (participant/agent.h: the node core that runs
// the protocol, its RPC service and its recovery) behind a small interface:
//
//   txc::participant::EmbeddedAgent agent({.listen = "127.0.0.1:7300",
//                                          .coordinators = {"127.0.0.1:7000"},
//                                          .data_dir = "/var/lib/myapp/agent"});
//   agent.AddResource(std::make_unique<MyResource>("inventory"));   // your ResourceManager
//   agent.AddResource("outbox=queue:/var/lib/myapp/outbox.db");      // or a built-in one
//   txc::Status s = agent.StartThread();   // or agent.Start(io) on your io_context
//   ...
//   agent.Stop();
//
// Clients reach the resources at agent.address() exactly as they reach
// txagent's. The data directory holds the agent's incarnation counter (bumped
// durably at every start: clients learn from it that an agent restarted and
// lost ACTIVE work); each resource keeps its own log where its spec says.
//
// Threading: with StartThread the agent runs on a thread of its own and every
// method may be called from any thread. With Start(io) it runs on `io`, which
// the caller runs on ONE thread; Stop() must then be called on that thread
// (or after io stopped). Either way, the resource managers' callbacks are
// moved to the agent's thread (resource_manager.h).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/status.h"
#include "common/time.h"
#include "common/tls_config.h"
#include "participant/resource_manager.h"

namespace txc::participant {

class Agent;

struct EmbeddedAgentOptions {
  // HOST:PORT to serve the Agent service on; port 0 picks a free one (see port()).
  std::string listen = "127.0.0.1:0";
  // HOST:PORT of every coordinator replica (asked about in-doubt branches).
  std::vector<std::string> coordinators;
  // The agent's own directory (created if missing): its incarnation counter,
  // and the default place of a database resource's WAL. Required.
  std::string data_dir;
  // How long a statement waits for a row lock held by another branch.
  Micros lock_timeout = 2 * kSeconds;
  // An idle ACTIVE branch asks the coordinator group about itself after this long.
  Micros active_timeout = 60 * kSeconds;
  // HOST:PORT for GET /metrics (Prometheus text); empty: none.
  std::string metrics_listen;
  // Mutual TLS on the agent's server and on its calls to the coordinator
  // group, as txagent's --tls-* flags (an agent certificate). Default:
  // plaintext (docs/security.md).
  TlsConfig tls;
};

class EmbeddedAgent {
 public:
  explicit EmbeddedAgent(EmbeddedAgentOptions options);
  ~EmbeddedAgent();  // Stop()
  EmbeddedAgent(const EmbeddedAgent&) = delete;
  EmbeddedAgent& operator=(const EmbeddedAgent&) = delete;

  // Adds a resource before Start. INVALID_ARGUMENT for a name that is not
  // valid (ValidResourceName), taken already, or after Start.
  Status AddResource(std::unique_ptr<ResourceManager> resource);
  // A built-in resource from a spec, as txagent's --resource takes it
  // (NAME=sqlite:PATH, NAME=queue:PATH, NAME=postgres:..., NAME=mariadb:...).
  Status AddResource(const std::string& spec);

  // Recovers every resource (ACTIVE branches rolled back, PREPARED ones kept
  // and asked about), then listens, on `io`; the caller runs io. Fails with
  // the reason (no resources, no coordinators, data_dir not writable, a
  // resource's recovery, the port taken) and then serves nothing.
  Status Start(boost::asio::io_context& io);
  // The same on a thread of its own; returns once the agent listens (or failed).
  Status StartThread();
  // Stops serving, drains the resources' queues, and (StartThread) joins the thread.
  void Stop();

  bool running() const { return agent_ != nullptr; }
  uint16_t port() const;
  // HOST:PORT clients use: the listen host with the bound port.
  std::string address() const;
  int64_t incarnation() const { return incarnation_; }

 private:
  Status Prepare();

  EmbeddedAgentOptions options_;
  std::vector<std::unique_ptr<ResourceManager>> resources_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<boost::asio::io_context> own_io_;  // StartThread
  std::thread thread_;
  boost::asio::io_context* io_ = nullptr;
  uint16_t port_ = 0;
  int64_t incarnation_ = 0;
};

}  // namespace txc::participant
