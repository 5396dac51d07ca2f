#include "participant/embedded_agent.h"

#include <filesystem>
#include <future>

#include <boost/asio.hpp>

#include "participant/agent.h"
#include "protocol/rpc.h"

namespace txc::participant {

EmbeddedAgent::EmbeddedAgent(EmbeddedAgentOptions options) : options_(std::move(options)) {}

EmbeddedAgent::~EmbeddedAgent() { Stop(); }

Status EmbeddedAgent::AddResource(std::unique_ptr<ResourceManager> resource) {
  if (agent_) return Status::InvalidArgument("EmbeddedAgent: resources are added before Start");
  if (!resource) return Status::InvalidArgument("EmbeddedAgent: AddResource(nullptr)");
  const std::string& name = resource->name();
  if (!ValidResourceName(name)) {
    return Status::InvalidArgument("EmbeddedAgent: resource name '" + name +
                                   "' is not valid: use 1-64 of A-Z a-z 0-9 _ -");
  }
  for (const auto& r : resources_) {
    if (r->name() == name) {
      return Status::InvalidArgument("EmbeddedAgent: a resource named '" + name + "' is added already");
    }
  }
  resources_.push_back(std::move(resource));
  return Status::Ok();
}

Status EmbeddedAgent::AddResource(const std::string& spec) {
  if (agent_) return Status::InvalidArgument("EmbeddedAgent: resources are added before Start");
  ResourceContext context;
  context.data_dir = options_.data_dir.empty() ? "." : options_.data_dir;
  auto r = MakeResource(spec, context);
  if (!r.ok()) return r.status();
  return AddResource(std::move(r.value()));
}

// Checks the options and builds the Agent (not started).
Status EmbeddedAgent::Prepare() {
  if (agent_) return Status::InvalidArgument("EmbeddedAgent: started already");
  if (resources_.empty()) return Status::InvalidArgument("EmbeddedAgent: no resource added");
  if (options_.coordinators.empty()) {
    return Status::InvalidArgument("EmbeddedAgent: options.coordinators names no replica");
  }
  for (const auto& c : options_.coordinators) {
    auto ep = rpc::ParseEndpoint(c);
    if (!ep.ok()) return Status::InvalidArgument("EmbeddedAgent: coordinator " + ep.status().message());
  }
  if (auto ep = rpc::ParseEndpoint(options_.listen); !ep.ok()) {
    return Status::InvalidArgument("EmbeddedAgent: listen " + ep.status().message());
  }
  if (options_.data_dir.empty()) {
    return Status::InvalidArgument("EmbeddedAgent: options.data_dir is required (the agent's "
                                   "incarnation counter lives there)");
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return Status::StorageFailed("EmbeddedAgent: cannot create " + options_.data_dir + ": " +
                                 ec.message());
  }
  auto incarnation = NextIncarnation(options_.data_dir + "/incarnation");
  if (!incarnation.ok()) return incarnation.status();
  incarnation_ = *incarnation;
  return Status::Ok();
}

namespace {

AgentNodeOptions NodeOptions(const EmbeddedAgentOptions& o, int64_t incarnation) {
  AgentNodeOptions n;
  n.listen = o.listen;
  n.coordinators = o.coordinators;
  n.core.lock_timeout = o.lock_timeout;
  n.core.active_timeout = o.active_timeout;
  n.core.incarnation = incarnation;
  n.metrics_listen = o.metrics_listen;
  n.tls = o.tls;
  return n;
}

}  // namespace

Status EmbeddedAgent::Start(boost::asio::io_context& io) {
  TXC_RETURN_IF_ERROR(Prepare());
  auto agent = std::make_unique<Agent>(io, NodeOptions(options_, incarnation_), std::move(resources_));
  resources_.clear();
  Status s = agent->Start();
  if (!s.ok()) {
    agent->Stop();
    return s;
  }
  port_ = agent->port();
  io_ = &io;
  agent_ = std::move(agent);
  return Status::Ok();
}

Status EmbeddedAgent::StartThread() {
  if (agent_) return Status::InvalidArgument("EmbeddedAgent: started already");
  auto io = std::make_unique<boost::asio::io_context>();
  // Nothing runs on io until the thread starts, so the agent is built and
  // started here, on the caller's thread, and handed over whole.
  TXC_RETURN_IF_ERROR(Start(*io));
  own_io_ = std::move(io);
  thread_ = std::thread([io = own_io_.get()] {
    auto guard = boost::asio::make_work_guard(*io);
    io->run();
  });
  return Status::Ok();
}

void EmbeddedAgent::Stop() {
  if (!agent_) return;
  if (own_io_) {
    std::promise<void> stopped;
    boost::asio::post(*own_io_, [&] {
      agent_->Stop();
      own_io_->stop();
      stopped.set_value();
    });
    stopped.get_future().wait();
    thread_.join();
    agent_.reset();
    own_io_.reset();
  } else {
    agent_->Stop();
    agent_.reset();
  }
  io_ = nullptr;
}

uint16_t EmbeddedAgent::port() const { return port_; }

std::string EmbeddedAgent::address() const {
  std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
  return host + ":" + std::to_string(port_);
}

}  // namespace txc::participant
