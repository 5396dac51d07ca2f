// Multi-Paxos messages between coordinator replicas, carried as the opaque
// payload of Replica.Deliver (txcoord.thrift), and the acceptor's durable
// record format. Field ids are never reused; enum values never renumbered.

include "txcoord.thrift"

namespace cpp txc.paxos.wire

// Ordered lexicographically: (round, replica). round is the epoch of the
// leader that owns the ballot.
struct Ballot {
  1: i64 round
  2: i32 replica
}

// One slot's value as an acceptor holds it (also the durable record of an
// accepted value: on-disk format).
struct Entry {
  1: i64 slot
  2: Ballot ballot
  3: binary value      // an encoded txc.proto.CommandBatch
}

// on-disk/wire format: do not renumber
enum Type {
  PREVOTE = 1
  PREVOTE_REPLY = 2
  PREPARE = 3          // phase 1a
  PROMISE = 4          // phase 1b
  ACCEPT = 5           // phase 2a (also carries the commit index)
  ACCEPTED = 6         // phase 2b
  HEARTBEAT = 7
  HEARTBEAT_REPLY = 8
  CATCHUP_REQUEST = 9
  CATCHUP_REPLY = 10
}

struct Message {
  1: Type type
  2: i32 sender
  3: i32 receiver
  4: Ballot ballot
  5: bool ok
  6: list<Entry> entries
  7: i64 commit_index
  8: i64 from_slot
  9: i64 applied_index
  10: optional binary snapshot  // a whole image: no longer sent (read for old senders)
  11: i64 snapshot_index
  // Snapshots travel in chunks (replica.cc, "Snapshot transfer"): a
  // CATCHUP_REPLY carries bytes [snapshot_offset, +size of snapshot_chunk)
  // of the image at snapshot_index, which is snapshot_size bytes long; a
  // CATCHUP_REQUEST names the image it is assembling and the offset it
  // wants next; a PROMISE names its snapshot (index, size) without bytes.
  12: i64 snapshot_offset
  13: i64 snapshot_size
  14: optional binary snapshot_chunk
}
