// The durable side of a coordinator node, under its NodeCore (node_core.h):
// the disk and, in a group, the network. No protocol decisions are taken
// here; the core says what to write or send, and these report back when it
// is durable or has arrived.
//
// LocalLog: a single replica's decision log (DIR/coord.log): a slot is chosen
// once its record is durable (group commit).
// PaxosLog: one member of a Multi-Paxos group: the acceptor's durable state
// (DIR/paxos.log: promised ballot, accepted entries, snapshot) and the peer
// transport (Replica.Deliver calls).
//
// A failed write is sticky (STYLE.md): the log refuses every later write
// until the process restarts.
//
// Threading: used on the node's io thread; hooks run there too.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio.hpp>

#include "common/metrics.h"
#include "common/status.h"
#include "common/time.h"
#include "coordinator/node_core.h"
#include "coordinator/paxos/replica.h"
#include "protocol/rpc.h"
#include "txcoord_types.h"
#include "wal/log_store.h"

namespace txc::coord {

// The layouts of the two logs (coord.log, paxos.log), stamped in each at
// open (wal::LogStoreOptions::layout_key: coord_log_layout, paxos_log_layout).
// Raise one when a change to what is written there would be misread by the
// versions before it; they then refuse the file instead (docs/operations.md,
// "Files"). Layout 1: everything written up to 2026-12-06.
constexpr int64_t kCoordLogLayout = 1;
constexpr int64_t kPaxosLogLayout = 1;

struct LocalLogOptions {
  std::string path;
  bool unsafe_no_sync = false;
  // Observes each slot's write, in seconds from Append to durable (queueing
  // and the group commit with its fsync). Borrowed; may be null.
  metrics::Histogram* write_latency = nullptr;
};

class LocalLog {
 public:
  struct Hooks {
    // The record of slot `index` is durable: call NodeCore::OnChosen.
    std::function<void(uint64_t index, const std::vector<proto::Command>& cmds)> durable;
    // This run's epoch is durable: call NodeCore::Lead.
    std::function<void(int64_t epoch)> epoch_durable;
    // A write failed (cmds empty: not one of a slot's); sticky.
    std::function<void(const std::vector<proto::Command>& cmds, const Status& why)> failed;
  };

  LocalLog(boost::asio::io_context& io, LocalLogOptions options);
  ~LocalLog();

  // Opens the log, hands the snapshot and every record to `core` (Install,
  // Replay), then makes a new epoch durable (epoch_durable follows), so no
  // txid is ever allocated twice across restarts. REQUIRES: called once.
  Status Start(NodeCore* core, Hooks hooks);
  void Stop();
  // Makes slot `index` durable; `durable` (or `failed`) follows.
  void Append(uint64_t index, std::string bytes, std::vector<proto::Command> cmds);
  // The table holds everything through `index` in `image`: keep the image,
  // drop the records at or below it. The image is read, never changed.
  void Compact(uint64_t index, std::shared_ptr<const std::string> image);

  int64_t epoch() const { return epoch_; }
  uint64_t commit_index() const { return commit_index_; }
  bool failed() const { return failed_; }
  // Group commits written and records in them (LogStore's counters; 0
  // before Start).
  uint64_t groups_written() const { return store_ ? store_->groups_written() : 0; }
  uint64_t records_written() const { return store_ ? store_->records_written() : 0; }

 private:
  void Fail(const std::vector<proto::Command>& cmds, const Status& s);

  boost::asio::io_context& io_;
  LocalLogOptions options_;
  Hooks hooks_;
  std::unique_ptr<wal::LogStore> store_;
  uint64_t commit_index_ = 0;
  int64_t epoch_ = 0;
  bool failed_ = false;
  bool stopped_ = false;
};

struct PaxosLogOptions {
  int self_id = 1;
  std::map<int, std::string> peers;  // id -> HOST:PORT (the same address serves clients)
  std::string path;                  // the acceptor's LogStore
  bool unsafe_no_sync = false;
  Micros election_max = 600 * kMillis;  // peer calls time out after twice this
  // A replica that answers a peer in the replies to that peer's calls sends
  // nothing on its own connection to it, which the peer's server would close
  // as idle (its --rpc-idle-timeout, 5 min by default). Such a close is not
  // taken for the peer's death (the channel reconnects first and reports
  // only a failed reconnect, ChannelOptions::on_closed_by_peer), but a
  // message to a peer still goes as a call of its own when none went on our
  // connection for this long, so that the connection is not torn down and
  // made again every idle timeout. Best below the peers' idle timeout.
  Micros call_at_least_every = 60 * kSeconds;
  TlsConfig tls;  // of the channels to the other replicas (see NodeOptions::tls)
  // Observes each Persist, in seconds from Persist to durable (queueing and
  // the group commit with its fsync). Borrowed; may be null.
  metrics::Histogram* write_latency = nullptr;
};

// Reads the payload of a Replica.Deliver call as a Paxos message. False, with
// *why set, when it does not parse or its type is not one the replica knows:
// the wire may hold any int32 there, reading it as the enum is undefined, and
// its ballot must not make a leader step down. Pure (the peer-message fuzz
// target runs it too).
bool DecodePeerPayload(std::string_view payload, paxos::Message* msg, std::string* why);

class PaxosLog {
 public:
  struct Hooks {
    // A Persist is durable: call NodeCore::OnPersisted.
    std::function<void(uint64_t token)> persisted;
    // A peer's message arrived: call NodeCore::OnPeerMessage.
    std::function<void(const paxos::Message& m)> message;
    // The connection to replica `id` was closed by its side (its process
    // died, or it closed the connection): call NodeCore::OnPeerGone. May be
    // empty.
    std::function<void(int id)> peer_gone;
    // A write failed; sticky: no later Persist completes.
    std::function<void(const Status& why)> failed;
  };

  PaxosLog(boost::asio::io_context& io, rpc::RpcServer* server, PaxosLogOptions options);
  ~PaxosLog();

  // Opens the store and reads the acceptor's durable state back (what the
  // core's Replica starts from). REQUIRES: called once, before Start.
  Result<paxos::DurableState> Recover();
  // Takes peer messages (method "Deliver" on the server, which must not be
  // listening yet).
  Status Start(Hooks hooks);
  void Stop();

  void Persist(paxos::Persist p);
  void Send(const paxos::Outgoing& o);
  // The leader's snapshot, installed: kept as this replica's own, so a
  // restart starts from it. A failed write is the log's sticky failure, as
  // a failed Persist is (Hooks::failed).
  void KeepSnapshot(uint64_t index, const std::string& image);
  // The table holds everything through `index` in `image` (the core's
  // replica has been told): keep it, drop the entries at or below it. A
  // failed write fails the log as KeepSnapshot's does. The image is the
  // replica's own copy (shared, read, never changed).
  void Compact(uint64_t index, std::shared_ptr<const std::string> image);
  // The store's next write fails (wal::LogStore::InjectFailureForTest).
  void InjectStoreFailureForTest();

  bool failed() const { return failed_; }
  // As LocalLog's (0 before Recover).
  uint64_t groups_written() const { return store_ ? store_->groups_written() : 0; }
  uint64_t records_written() const { return store_ ? store_->records_written() : 0; }
  // When a message from replica `id` last arrived.
  std::optional<Micros> last_heard(int id) const;
  // Messages sent to peers: in the reply to a peer's call (it asked for its
  // answer there), or as Deliver calls of their own.
  uint64_t sent_in_reply() const { return sent_in_reply_.load(std::memory_order_relaxed); }
  uint64_t sent_as_call() const { return sent_as_call_.load(std::memory_order_relaxed); }
  // Held replies let go unused because their connection had closed (their
  // message went in a live reply or a call instead).
  uint64_t held_on_closed() const { return held_on_closed_.load(std::memory_order_relaxed); }

 private:
  void ClosedByPeer(const std::string& address);
  // A write failed: log it (once), fail for good, tell the node.
  void WriteFailed(const Status& s, const char* what);

  boost::asio::io_context& io_;
  rpc::RpcServer* server_;
  PaxosLogOptions options_;
  // Expires with this object: the pool's closed-by-peer callbacks are posted
  // and may run after it is gone.
  std::shared_ptr<PaxosLog*> self_ = std::make_shared<PaxosLog*>(this);
  rpc::ChannelPool pool_;
  Hooks hooks_;
  std::unique_ptr<wal::LogStore> store_;
  std::map<int, Micros> last_heard_;
  // When our last call to each peer went (or, before the first, when we
  // first had a message for it): PaxosLogOptions::call_at_least_every.
  std::map<int, Micros> last_call_;
  // A peer's Deliver calls that asked for the answer in the reply
  // (PeerMessage.answer_in_reply), not answered yet: per peer, oldest first.
  // This replica's next message to that peer goes in the oldest one's reply;
  // one that waits longer than kHoldAtMost (checked at the peer's next call)
  // is answered empty, and the message, if one comes, goes as a call.
  struct HeldReply {
    rpc::RpcServer::Reply<proto::PeerAck> reply;
    rpc::CallConnection connection;  // the reply is dropped once it has closed
    Micros since = 0;
  };
  std::map<int, std::deque<HeldReply>> held_;
  void ReleaseHeld(int id, Micros arrived_before);
  // A message of a peer's that came in the reply to our call to it.
  void AnswerArrived(int to, const proto::PeerAck& ack);
  std::atomic<uint64_t> sent_in_reply_{0};
  std::atomic<uint64_t> sent_as_call_{0};
  std::atomic<uint64_t> held_on_closed_{0};
  bool failed_ = false;
  bool stopped_ = false;
};

}  // namespace txc::coord
