// SimAgent: the simulated shell of a participant agent around the production
// node core (participant::AgentCore), as participant/agent.cc is the real
// one. Requests come from the simulated network, the core's resource
// operations run on the node's resources, its outcome queries go to the
// coordinator group through
// Cluster::CoordinatorCall, and its tick timer is a World event. What the
// agent decides is the core's; this file adds only what belongs to the
// simulation: the trace, crash points and the shell-side injected bugs.
//
// Resources: the production participant::SqliteResource, one database per
// resource on this node's SimVfs (sim/sim_vfs.h) over its Disk. Its group
// commits run as World events (an Executor whose Post is World::After), its
// callbacks wait for SimVfs::WhenDurable (the durability barrier), and it
// reads the virtual clock, which a runaway statement (kSlowSql) pushes ahead
// by the simulated CPU it burns, so the resource's statement limit
// interrupts it (SimWorker in agent_shell.cc). The VFS lives with the node, as its disk; the
// resources die with the process, and every crash is a power loss of the
// node (unsynced writes are lost). The checker reads the live state through a
// separate read connection and the durable image from the VFS's durable bytes
// (sim/sqlite_bank.h); the shell reports final branches to it.
//
// Internal to sim/. Not thread-safe; one World thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "participant/agent_core.h"
#include "sim/bank.h"
#include "sim/checker.h"
#include "sim/sim_vfs.h"
#include "sim/world.h"

namespace txc::sim {

class Cluster;

// A participant agent: an AgentCore and its resources, whose durable images
// live on this node's disk.
class SimAgent {
 public:
  SimAgent(Cluster* cluster, int node, std::string address,
           std::map<std::string, BankImage> initial);
  ~SimAgent();

  void Boot();
  void Crash();
  void SetDiskOptions(const DiskOptions& o) { disk_.SetOptions(o); }
  // Faults: the node's disk fails its next write (`at_sync` false) or sync
  // (true) on a database file, with ENOSPC (`full`) or EIO (SimVfs's
  // FailNextWrite / FailNextSync). When a resource's operation fails for it
  // (STORAGE_FAILED: the resource is then failed for good) the shell reports
  // it once per run to Cluster::OnDiskFailed, which counts it and has the
  // operator restart the node. A crash disarms a fault that has not fired.
  void BreakDisk(bool full, bool at_sync);
  // The next sync of this agent's disk takes `latency` (txsim's disk_stall).
  void StallDisk(Micros latency) { disk_.Stall(latency); }
  void CancelDiskFault();
  // Up, and one of its resources failed on its storage (it waits for the
  // operator's restart).
  bool disk_failed() const;
  bool up() const { return live_ != nullptr; }
  int node() const { return node_; }
  // Syncs (fsyncs) this node's disk started, for every resource it hosts.
  uint64_t disk_syncs() const { return disk_.syncs(); }
  const std::string& address() const { return address_; }
  std::vector<std::string> resources() const;

  void Execute(const proto::ExecuteRequest& req, std::function<void(proto::ExecuteResponse)> reply);
  void Prepare(const proto::PrepareRequest& req, std::function<void(proto::PrepareResponse)> reply);
  void Decide(const proto::DecideRequest& req, std::function<void(proto::DecideResponse)> reply);
  // A forger who reaches the agent's port but never sees its traffic
  // (SimOptions::forge_decisions): a COMMITTED or ABORTED for one of its
  // branches in doubt, with a MAC of the forger's own or none. The checker
  // is not told of it (it is no decision). False when there was no branch
  // in doubt to forge for.
  bool ForgeDecision(Rng& rng);
  // Another participant's autonomous termination asks (3PC).
  void BranchState(const proto::BranchStateRequest& req,
                   std::function<void(proto::BranchStateResponse)> reply);

  // The state each resource would have after a crash-free step now: live when
  // up, the durable image when down.
  void VisitState(const Checker::BankVisitor& visit) const;
  void VisitDurable(const Checker::BankVisitor& visit) const;
  bool Idle(std::string* why) const;

 private:
  struct Live;
  template <class Req, class Resp>
  void Serve(const Req& req, std::function<void(Resp)> reply,
             participant::AgentCoreEffects (participant::AgentCore::*in)(uint64_t, const Req&,
                                                                         Micros));
  // Carries out what the core asked for.
  void Apply(Live* l, participant::AgentCoreEffects fx);
  void Run(Live* l, participant::ResourceOp op);
  void Wake(Live* l, Micros at);
  // A resource operation failed with STORAGE_FAILED: the first one of this
  // run is the injected fault surfacing.
  void StorageFailed(Live* l, const std::string& resource, const TxId& txid, const Status& s);
  // The live state of resource `name` through its read connection, and
  // whether branch `txid` has changes there.
  Status ReadLive(const Live* l, const std::string& name, BankImage* out) const;
  bool HasChanges(const Live* l, const std::string& name, const TxId& txid) const;

  Cluster* c_;
  int node_;
  std::string address_;
  Disk disk_;
  // The resources' initial images (only their names are used after set-up).
  std::map<std::string, BankImage> images_;
  // The node's VFS over disk_ (survives crashes, as the disk), and while the
  // node is down the durable images read at the crash.
  SimVfs vfs_;
  std::map<std::string, BankImage> down_images_;
  bool fault_full_ = false;  // the kind of the last BreakDisk
  // The VFS's injected failures (failed writes and syncs) when a storage
  // failure last surfaced.
  uint64_t injected_seen_ = 0;
  std::unique_ptr<Live> live_;  // after vfs_: closed before it
};

}  // namespace txc::sim
