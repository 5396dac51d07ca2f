#include "participant/agent.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/crash_point.h"
#include "common/log.h"
#include "common/server_memory.h"
#include "protocol/validate.h"

namespace txc::participant {

namespace {

std::vector<std::string> Names(const std::vector<std::unique_ptr<ResourceManager>>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r->name());
  return out;
}

}  // namespace

Result<int64_t> NextIncarnation(const std::string& path) {
  int64_t n = 0;
  {
    std::ifstream in(path);
    if (in) in >> n;
  }
  ++n;
  std::string tmp = path + ".tmp";
  std::string text = std::to_string(n) + "\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Status::StorageFailed("cannot write " + tmp + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::StorageFailed("cannot make " + path + " durable: " + std::strerror(errno));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return n;
}

namespace {
AgentNodeOptions ResolveConfirm(AgentNodeOptions o) {
  using C = AgentNodeOptions::Confirm;
  o.core.confirm_decisions = o.confirm_decisions == C::kOn ||
                             (o.confirm_decisions == C::kAuto && !o.tls.enabled());
  const std::string& address = o.advertise.empty() ? o.listen : o.advertise;
  if (o.core.confirm_decisions && o.sign_decisions && address.size() > validate::kMaxNameBytes) {
    // The group refuses an outcome query whose key names a longer address
    // (validate.h): registering it would cost the agent every answer.
    Logger("agent")->warn("the address {}... is longer than {} bytes: no key is registered, every "
                          "decision is confirmed with the group",
                          address.substr(0, 40), validate::kMaxNameBytes);
  } else if (o.core.confirm_decisions && o.sign_decisions && !UsableKey(o.core.decision_key)) {
    // This run's key for signed decisions: from the kernel's random source;
    // without one, every decision is confirmed.
    unsigned char bytes[16];
    if (::getrandom(bytes, sizeof bytes, 0) == static_cast<ssize_t>(sizeof bytes)) {
      for (int half = 0; half < 2; ++half) {
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v = (v << 8) | bytes[half * 8 + i];
        o.core.decision_key[half] = v;
      }
      o.core.decision_key_address = address;
    } else {
      Logger("agent")->warn("no random key for signed decisions ({}): every decision is confirmed "
                            "with the group",
                            std::strerror(errno));
    }
  }
  return o;
}
}  // namespace

Agent::Agent(boost::asio::io_context& io, AgentNodeOptions options,
             std::vector<std::unique_ptr<ResourceManager>> resources)
    : io_(io),
      options_(ResolveConfirm(std::move(options))),
      core_(Names(resources), options_.core, options_.tick),
      server_(io, [this] {
        rpc::ServerOptions o;
        o.tls = options_.tls;
        o.authz = &authz::AgentTable();
        o.idle_timeout = options_.rpc_idle_timeout;
        o.max_connections_per_peer = options_.rpc_max_connections_per_peer;
        return o;
      }()),
      pool_(io, [this] {
        rpc::ChannelOptions o;
        o.backoff_max = 200 * kMillis;  // find a restarted coordinator soon
        o.tls = options_.tls;
        return o;
      }()),
      coordinators_(std::make_shared<rpc::CoordinatorSet>(io, &pool_, options_.coordinators)),
      tick_timer_(io) {
  for (auto& r : resources) {
    std::string name = r->name();
    resources_.emplace(name, std::move(r));
  }
}

Agent::~Agent() { Stop(); }

template <class Req, class Resp>
void Agent::Serve(const std::string& method,
                  AgentCoreEffects (AgentCore::*in)(uint64_t, const Req&, Micros)) {
  server_.Handle<Req, Resp>(method, [this, in](Req req, rpc::RpcServer::Reply<Resp> reply) {
    if (Status bad = validate::Check(req); !bad.ok()) return reply(validate::Refusal<Resp>(bad));
    uint64_t token = next_token_++;
    pending_.emplace(token, [reply = std::move(reply)](AgentResponse r) {
      reply(std::get<Resp>(std::move(r)));
    });
    Apply((core_.*in)(token, req, SteadyNowMicros()));
  });
}

Status Agent::Start() {
  auto log = Logger("agent");
  RegisterMetrics();
  Micros now = SteadyNowMicros();
  for (auto& [name, r] : resources_) {
    auto recovered = r->Recover();
    if (!recovered.ok()) {
      return Status(recovered.status().code(),
                    "recovering resource " + name + ": " + recovered.status().message());
    }
    size_t active = 0, in_doubt = 0;
    for (const auto& b : *recovered) {
      (b.state == BranchState::kActive ? active : in_doubt)++;
      if (b.state != BranchState::kActive) {
        log->info("in-doubt branch recovered txid={} resource={} state={} protocol={}",
                  ToString(b.txid), name, BranchStateName(b.state),
                  b.info.protocol == proto::Protocol::THREE_PC ? "3pc" : "2pc");
      }
    }
    log->info("recovered resource={} active_rolled_back={} in_doubt={} incarnation={}", name, active,
              in_doubt, options_.core.incarnation);
    core_.OnRecovered(name, *recovered, now);
    if (!r->SupportsPreCommit()) {
      core_.SetPreCommitUnsupported(name);
      log->info("resource={} does not record PRECOMMITTED: under 3PC its branches acknowledge "
                "PRE_COMMIT and stay PREPARED", name);
    }
    auto heuristics = r->Heuristics();
    if (!heuristics.ok()) {
      return Status(heuristics.status().code(), "reading the heuristic decisions of resource " +
                                                    name + ": " + heuristics.status().message());
    }
    if (!heuristics->empty()) {
      log->warn("resource={} keeps {} heuristic decision(s): txadmin agent {} branches --heuristic "
                "lists them", name, heuristics->size(), options_.listen);
    }
    core_.OnRecoveredHeuristics(name, *heuristics, now);
  }
  Serve<proto::ExecuteRequest, proto::ExecuteResponse>("Execute", &AgentCore::OnExecute);
  Serve<proto::PrepareRequest, proto::PrepareResponse>("Prepare", &AgentCore::OnPrepare);
  Serve<proto::DecideRequest, proto::DecideResponse>("Decide", &AgentCore::OnDecide);
  Serve<proto::AgentResolveRequest, proto::AgentResolveResponse>("Resolve", &AgentCore::OnResolve);
  Serve<proto::AgentForgetRequest, proto::AgentForgetResponse>("Forget", &AgentCore::OnForget);
  Serve<proto::BranchStateRequest, proto::BranchStateResponse>("BranchState",
                                                               &AgentCore::OnBranchState);
  server_.Handle<proto::ListBranchesRequest, proto::ListBranchesResponse>(
      "ListBranches",
      [this](proto::ListBranchesRequest, rpc::RpcServer::Reply<proto::ListBranchesResponse> reply) {
        proto::ListBranchesResponse out;
        Micros now = SteadyNowMicros();
        for (const auto& b : core_.Branches()) {
          proto::BranchInfo i;
          i.txid = b.txid;
          i.resource = b.resource;
          i.state = b.state;
          if (b.rollback_failures > 0) {
            i.state += " (rollback failing: " + std::to_string(b.rollback_failures) +
                       " failed attempts, last error: " + b.rollback_error + ")";
          }
          i.age_ms = (now - b.since) / kMillis;
          if (b.heuristic) {
            i.__set_heuristic_outcome(b.heuristic->outcome);
            i.__set_heuristic_reason(b.heuristic->reason);
            i.__set_heuristic_who(b.heuristic->who);
            if (b.heuristic->at_ms > 0) i.__set_heuristic_at_ms(b.heuristic->at_ms);
          }
          if (b.group_outcome) i.__set_group_outcome(*b.group_outcome);
          out.branches.push_back(std::move(i));
        }
        reply(std::move(out));
      });
  TXC_RETURN_IF_ERROR(server_.Listen(options_.listen));
  if (!options_.metrics_listen.empty()) {
    metrics_server_ = std::make_unique<metrics::MetricsServer>(io_, &metrics_);
    TXC_RETURN_IF_ERROR(metrics_server_->Listen(options_.metrics_listen));
  }
  std::string names;
  for (const auto& [name, r] : resources_) names += (names.empty() ? "" : ",") + name;
  log->info("listening on {} resources={} allocator={}", options_.listen, names, AllocatorName());
  Apply(core_.Start(SteadyNowMicros()));  // recovery work (rollbacks) and the first tick
  return Status::Ok();
}

void Agent::Stop() {
  if (!*alive_) return;
  *alive_ = false;
  tick_timer_.cancel();
  server_.Stop();
  if (metrics_server_) metrics_server_->Stop();
  pool_.CloseAll();
  resources_.clear();  // drains each resource's queue
}

uint16_t Agent::port() const { return server_.port(); }

uint16_t Agent::metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

void Agent::Wake(Micros at) {
  tick_timer_.expires_after(std::chrono::microseconds(std::max<Micros>(0, at - SteadyNowMicros())));
  tick_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    Apply(core_.Tick(SteadyNowMicros()));
  });
}

void Agent::Apply(AgentCoreEffects fx) {
  if (!*alive_) return;
  if (fx.wake_at) Wake(*fx.wake_at);
  for (const AgentLogLine& l : fx.logs) {
    auto log = Logger("agent");
    switch (l.level) {
      case AgentLogLine::kInfo: log->info("{}", l.message); break;
      case AgentLogLine::kWarn: log->warn("{}", l.message); break;
      case AgentLogLine::kError: log->error("{}", l.message); break;
    }
  }
  for (AgentReply& r : fx.replies) {
    auto it = pending_.find(r.token);
    if (it == pending_.end()) continue;
    auto reply = std::move(it->second);
    pending_.erase(it);
    bool yes = false;
    if (auto* v = std::get_if<proto::PrepareResponse>(&r.response)) {
      yes = v->vote == proto::Vote::YES;
      if (yes) CrashPoint("agent.before_vote");
    }
    reply(std::move(r.response));
    if (yes && std::getenv("TXC_CRASH_AT") != nullptr) {
      // Lets the vote reach the coordinator, then dies as kill -9 would.
      auto t = std::make_shared<boost::asio::steady_timer>(io_, std::chrono::milliseconds(50));
      t->async_wait([t](const boost::system::error_code&) { CrashPoint("agent.after_vote"); });
    }
  }
  for (ResourceOp& op : fx.ops) Run(std::move(op));
  for (const PeerQuery& q : fx.peer_queries) {
    proto::BranchStateRequest req;
    req.txid = q.txid;
    req.resource = q.to.resource;
    pool_.Get(q.to.address)
        ->Call<proto::BranchStateRequest, proto::BranchStateResponse>(
            "BranchState", req, options_.query_timeout,
            [this, q, alive = alive_](Status s, proto::BranchStateResponse r) {
              if (!*alive) return;
              Logger("agent")->info("autonomous termination txid={} asked {} at {}: {}",
                                    ToString(q.txid), q.to.resource, q.to.address,
                                    s.ok() ? r.state : s.ToString());
              Apply(core_.OnPeerStateReply(q, s, r, SteadyNowMicros()));
            });
  }
  for (const TxId& txid : fx.queries) {
    proto::OutcomeRequest req = core_.OutcomeQuery(txid);
    coordinators_->Call<proto::OutcomeRequest, proto::OutcomeResponse>(
        "Outcome", req, options_.query_timeout,
        [this, txid, alive = alive_](Status s, proto::OutcomeResponse r) {
          if (!*alive) return;
          OutcomeAnswer a = ReadOutcomeAnswer(s, r);
          if (!a.status.ok()) {
            Logger("agent")->warn("outcome query failed txid={} error={}", ToString(txid),
                                  a.status.ToString());
          } else {
            // Debug: in plaintext every decision is confirmed by such a
            // query; what a branch does with the answer is logged by the core.
            Logger("agent")->debug("outcome query answered txid={} outcome={}", ToString(txid),
                                   OutcomeName(a.outcome));
          }
          Apply(core_.OnOutcomeReply(txid, s, r, SteadyNowMicros()));
        });
  }
}

void Agent::Run(ResourceOp op) {
  uint64_t id = op.id;
  // Timed from here to the completion's arrival on this thread.
  ResourceOp::Kind kind = op.kind;
  Micros started = SteadyNowMicros();
  auto post_exec = [this, id, kind, started, alive = alive_](ExecuteResult r) {
    boost::asio::post(io_, [this, id, kind, started, alive, r = std::move(r)]() {
      if (!*alive) return;
      ObserveOp(kind, started, r.status.ok());
      Apply(core_.OnExecuteDone(id, r, SteadyNowMicros()));
    });
  };
  // The core names only resources it was built with, all of which recovered.
  ResourceManager& rm = *resources_.at(op.resource);
  auto post_status = [this, id, kind, started, alive = alive_, rm = &rm, txid = op.txid](Status s) {
    boost::asio::post(io_, [this, id, kind, started, alive, s = std::move(s), rm, txid]() {
      if (!*alive) return;
      // 3PC: PRECOMMITTED is durable, the ack not sent.
      if (kind == ResourceOp::kPreCommit && s.ok()) CrashPoint("agent.after_precommitted");
      ObserveOp(kind, started, s.ok());
      Apply(core_.OnOpDone(id, s, SteadyNowMicros()));
      if (!s.ok() && (kind == ResourceOp::kCommit || kind == ResourceOp::kRollback)) {
        if (auto h = rm->HeuristicOf(txid)) {
          Apply(core_.OnResourceHeuristic(rm->name(), *h, SteadyNowMicros()));
        }
      }
    });
  };
  RunResourceOp(rm, std::move(op), post_exec, post_status);
}

}  // namespace txc::participant
