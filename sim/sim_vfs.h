// SimVfs: an SQLite VFS (sqlite3_vfs) whose files live on one simulated
// node's Disk (sim/world.h), so production code that opens an SQLite database
// (SqliteResource, the log stores) can run inside txsim with the node's power
// losses, storage errors and disk replacement.
//
// Each SimVfs is registered under its own name (never as the default VFS);
// open a database on it with sqlite3_open_v2(path, ..., vfs.name()) or the URI
// "file:/bank.db?vfs=<name>" (Debian's SQLite accepts URIs everywhere).
// File names are absolute ("bank.db" means "/bank.db") and private to this
// node.
//
// The model. Every file has two images:
//   - the volatile view (the page cache): what xRead, xFileSize and xAccess
//     see. xWrite, xTruncate, creating a file and xDelete change it at once.
//   - the durable image: what survives a power loss.
// Every change to a named file is also handed to the Disk as a write record,
// in the order made; the Disk applies records to the durable image only once
// a sync started after them completes. So the durable image is always a
// prefix of the changes (never a reordering of them), and a power loss keeps
// exactly the changes covered by a completed sync. Temporary files (opened
// without a name, or delete-on-close) live only in the volatile view.
//
// xSync. SQLite's xSync must return at once, so it cannot wait for the
// simulated fsync. xSync returns SQLITE_OK immediately and starts a Disk sync
// covering every change made so far (on every file of the node; the Disk
// syncs whole nodes). Those changes become durable when that sync completes,
// a simulation event sync_min..sync_max later (DiskOptions). Until then a
// power loss drops them: SQLite believes the data durable, but nothing has
// been told outside yet, exactly as when a machine dies inside fsync. The
// caller that must act only on durable data (reply, vote, ack) asks
// WhenDurable(): its callback runs as an event once every xSync issued so far
// has completed. A shell that replies without waiting for WhenDurable() is a
// durability bug, and a power loss in the simulator can expose it.
// xDelete with the "sync directory" flag counts as an xSync.
//
// Power loss. A Disk::Crash() (by PowerLoss() here, or by the node's shell
// directly) takes the VFS down: every file open at that moment is dead (every
// call on it but xUnlock, xShmUnmap and xClose fails with SQLITE_IOERR_*),
// every VFS call fails (xOpen with SQLITE_CANTOPEN), WhenDurable callbacks
// not yet run are dropped, and the volatile view becomes the durable image.
// So closing the dead node's connections changes nothing on the disk. The
// node's shell calls PowerOn() before opening databases again. The shared
// memory of WAL mode (the wal-index) is volatile and per node: SQLite
// rebuilds it from the WAL when the first connection opens after a restart.
//
// Journal modes: WAL (what wal::Db::Open sets) and the rollback journal both
// work and recover after a power loss. With journal_mode=WAL and
// synchronous=FULL a COMMIT is durable once WhenDurable() fires; with DELETE
// a COMMIT is durable only with synchronous=EXTRA (the journal's deletion
// must be synced too), as on a real disk.
//
// Storage faults. FailNextWrite() / FailNextSync() make the next xWrite /
// xSync on a named file fail with SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC
// (EIO) or SQLITE_FULL (ENOSPC). A failed write changes nothing. A failed
// sync behaves as Linux after a failed fsync: the file's changes that no
// earlier successful xSync covered will never become durable (the kernel
// dropped them), but the volatile view keeps them until the next power loss;
// a later xSync succeeds. Changes an earlier xSync covered still become
// durable when its sync completes (that fsync had returned OK).
// Wipe() empties the node's disk (a replaced machine).
//
// Determinism. Nothing here reads a real clock or real randomness: xRandomness
// draws from the World's Rng, xCurrentTime is 2026-01-01T00:00:00Z plus the
// virtual clock, xSleep returns at once. SQLite's own PRNG (WAL salts,
// journal nonces) is process-wide and seeded from the default VFS, so the
// constructor reseeds it from the World's Rng (SQLITE_TESTCTRL_PRNG_SEED):
// one seed run alone in a process yields the same file bytes every time.
// Seeds run in parallel threads share that PRNG: their file bytes may differ
// run to run, though nothing SQLite does branches on those bytes.
//
// Not thread-safe: one SimVfs, its connections and its World are used by one
// thread at a time (the simulation's).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sim/world.h"

struct sqlite3_vfs;

namespace txc::sim {

// The error a storage fault injects.
enum class DiskFault {
  kEio,     // SQLITE_IOERR_WRITE / SQLITE_IOERR_FSYNC
  kEnospc,  // SQLITE_FULL
};

struct SimVfsStats {
  uint64_t writes = 0;          // xWrite calls that changed a named file
  uint64_t syncs_issued = 0;    // xSync calls that returned OK (and synced xDelete)
  uint64_t syncs_durable = 0;   // of those, how many have completed
  uint64_t failed_writes = 0;   // injected
  uint64_t failed_syncs = 0;    // injected
  uint64_t power_losses = 0;    // Disk crashes noticed
  uint64_t wipes = 0;
  uint64_t sleeps = 0;          // xSleep calls (busy waits), which take no time
};

class SimVfs {
 public:
  // Registers a new VFS named "txc-sim-<label>" whose files live on `disk`.
  // Both must outlive this object; `disk` belongs to one node. The name shows
  // in SQLite error messages, so give a label unique among live SimVfs that
  // a seed always gives the same (e.g. seed and node); a taken name gets a
  // suffix "#2", "#3"... Reseeds SQLite's process-wide PRNG from world->rng().
  SimVfs(World* world, Disk* disk, const std::string& label);
  // Unregisters. REQUIRES: no connection opened on this VFS is still open.
  ~SimVfs();
  SimVfs(const SimVfs&) = delete;
  SimVfs& operator=(const SimVfs&) = delete;

  // The name to pass to sqlite3_open_v2 (or as "?vfs=" in a URI).
  const char* name() const;
  sqlite3_vfs* vfs();

  // Runs `done` as a simulation event once every xSync issued so far has
  // completed (its changes are durable); at the next event when there is
  // none pending. Dropped if the power fails first. It syncs nothing itself:
  // changes no xSync covered stay volatile, so a commit made without a sync
  // (synchronous=NORMAL or OFF) is still lost at a power loss, as in the code
  // under test on a real disk.
  void WhenDurable(std::function<void()> done);
  // True while some xSync issued has not completed.
  bool sync_pending() const;

  // Faults. Each arms one failure: the next xWrite (resp. xSync or synced
  // xDelete) on a named file fails with `fault`. Calling again replaces it.
  void FailNextWrite(DiskFault fault);
  void FailNextSync(DiskFault fault);
  // Disarms both (a fault that never fired).
  void CancelFaults();
  // The node loses power: Disk::Crash() (every user of the disk loses its
  // unsynced writes) and the VFS goes down as described above.
  void PowerLoss();
  // The node boots: files can be opened again. No-op when up.
  void PowerOn();
  bool down() const;
  // The node's disk is replaced by an empty one: a power loss, then every
  // file is gone, durable images included. The VFS stays down until PowerOn().
  void Wipe();

  // Inspection, for tests and checkers. Names are full paths ("/bank.db").
  std::vector<std::string> Files() const;  // volatile view, sorted
  std::optional<std::string> VolatileBytes(const std::string& path) const;
  std::optional<std::string> DurableBytes(const std::string& path) const;
  // FNV-1a over every durable file's name and bytes, in name order.
  uint64_t DurableDigest() const;
  SimVfsStats stats() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;  // shared with the Disk's pending records (weakly)
};

}  // namespace txc::sim
