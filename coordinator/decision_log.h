// DecisionLog: where the commit driver's commands become chosen.
//
// Two implementations: LocalLog (a single replica: chosen = durable in its own
// LogStore) and PaxosLog (a group of 3 or 5: chosen = accepted by a majority,
// each acceptor's write durable). The node above does not know which one runs.
//
// Threading: used on the node's io thread; callbacks run there too.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "common/status.h"
#include "common/time.h"
#include "protocol/rpc.h"
#include "txcoord_types.h"

namespace txc::coord {

struct LogCallbacks {
  // A chosen slot, in order, each once. Commands of one slot share `index`.
  std::function<void(uint64_t index, const std::vector<proto::Command>& cmds)> apply;
  // Replace the state machine with a snapshot image taken at `index`.
  std::function<void(uint64_t index, const std::string& image)> install;
  // This replica now leads `epoch` and every earlier slot is applied: the node
  // proposes EPOCH(epoch) and serves once that is applied.
  std::function<void(int64_t epoch)> lead;
  // This replica no longer leads; `leader_hint` is the leader's client address if known.
  std::function<void(const std::string& leader_hint)> step_down;
  // These commands could not be made durable/chosen here (storage failure, not leader).
  std::function<void(const std::vector<proto::Command>& cmds, const Status& why)> failed;
};

struct LogInfo {
  int leader_id = 0;  // 0: unknown
  std::string leader_address;
  int64_t epoch = 0;
  int64_t commit_index = 0;
  std::vector<proto::ReplicaInfo> replicas;
  bool storage_failed = false;
};

class DecisionLog {
 public:
  virtual ~DecisionLog() = default;
  // Recovers durable state (calling install/apply for what is already chosen
  // and known), then starts taking part. REQUIRES: called once.
  virtual Status Start(LogCallbacks callbacks) = 0;
  virtual void Stop() = 0;
  // Proposes one slot's commands. Leader only; otherwise `failed` is called.
  virtual void Propose(std::vector<proto::Command> cmds) = 0;
  // The state machine holds everything through `index` in `image`: the log
  // may forget (and delete) what is at or below it.
  virtual void Compact(uint64_t index, std::string image) = 0;
  virtual LogInfo Info() const = 0;
};

struct LocalLogOptions {
  std::string path;
  bool unsafe_no_sync = false;
  std::string self_address;
  int self_id = 1;
};

// A single replica's log: one LogStore, group commit, chosen when durable.
std::unique_ptr<DecisionLog> MakeLocalLog(boost::asio::io_context& io, LocalLogOptions options);

struct PaxosLogOptions {
  int self_id = 1;
  std::map<int, std::string> peers;  // id -> HOST:PORT (the same address serves clients)
  std::string path;                  // the acceptor's LogStore
  bool unsafe_no_sync = false;
  Micros tick = 5 * kMillis;
  Micros heartbeat = 50 * kMillis;
  Micros election_min = 300 * kMillis;
  Micros election_max = 600 * kMillis;
};

// One member of a Multi-Paxos group. Peer messages arrive through the node's
// RPC server (method "Deliver", registered on `server` by Start; the server
// must not be listening yet).
std::unique_ptr<DecisionLog> MakePaxosLog(boost::asio::io_context& io, rpc::RpcServer* server,
                                          PaxosLogOptions options);

}  // namespace txc::coord
