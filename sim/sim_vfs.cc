#include "sim/sim_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <new>

namespace txc::sim {

namespace {

// xCurrentTime reads the virtual clock from this instant (2026-01-01T00:00:00Z),
// in milliseconds since the Julian epoch as SQLite counts them.
constexpr int64_t kUnixEpochJulianMs = 210866760000000LL;
constexpr int64_t kSimEpochUnixMs = 1767225600000LL;
constexpr int kMaxPathname = 512;
constexpr int kSectorSize = 4096;

// Names are picked and registered under this lock: find + register is not atomic.
std::mutex g_registry_mu;

int WriteError(DiskFault f) { return f == DiskFault::kEio ? SQLITE_IOERR_WRITE : SQLITE_FULL; }
int SyncError(DiskFault f) { return f == DiskFault::kEio ? SQLITE_IOERR_FSYNC : SQLITE_FULL; }

std::string FullPath(const char* name) {
  std::string p = name;
  if (p.empty() || p[0] != '/') p.insert(p.begin(), '/');
  return p;
}

}  // namespace

// ---------------------------------------------------------------- state

class SimVfs::Impl : public std::enable_shared_from_this<Impl> {
 public:
  // The wal-index of one database, shared by the node's connections to it.
  struct Shm {
    int region_size = 0;
    std::vector<std::unique_ptr<char[]>> regions;
    int shared[SQLITE_SHM_NLOCK] = {};
    const void* exclusive[SQLITE_SHM_NLOCK] = {};
  };
  // A file as the page cache holds it, with the locks of its open handles.
  struct Inode {
    uint64_t id = 0;  // 0: a temporary file, never on the disk
    std::string data;
    int shared = 0;  // handles at SHARED or above
    const void* reserved = nullptr;
    const void* pending = nullptr;
    const void* exclusive = nullptr;
    std::weak_ptr<Shm> shm;
  };
  // SQLite allocates szOsFile bytes per open file; this lives in them.
  struct File {
    sqlite3_file base;  // first: SQLite sees only this
    Impl* vfs = nullptr;
    std::shared_ptr<Inode> inode;
    uint64_t boot = 0;
    bool temp = false;
    int lock = SQLITE_LOCK_NONE;
    std::shared_ptr<Shm> shm;
    uint32_t shm_shared = 0, shm_exclusive = 0;  // bit i: slot i held
  };

  Impl(World* world, Disk* disk) : world_(world), disk_(disk), crashes_seen_(disk->crashes()) {}

  void Register(const std::string& label);

  // Notices a Disk crash since the last call: the VFS goes down.
  void Notice() {
    if (disk_->crashes() == crashes_seen_) return;
    crashes_seen_ = disk_->crashes();
    ++boot_;
    down_ = true;
    ++stats_.power_losses;
    waiters_.clear();
    issued_ = durable_;  // syncs in flight died with the power
    dir_.clear();
    for (const auto& [path, id] : durable_dir_) {
      auto inode = std::make_shared<Inode>();
      inode->id = id;
      inode->data = durable_data_[id];
      dir_.emplace(path, std::move(inode));
    }
  }
  bool Dead(const File* f) const { return f->boot != boot_; }

  // A change to hand to the Disk. Data records (writes, truncations) of an
  // inode that a failed sync dropped are dropped; directory records never are.
  void Record(uint64_t inode, bool data, std::function<void(Impl&)> apply) {
    uint64_t seq = ++records_;
    std::weak_ptr<Impl> w = weak_from_this();
    disk_->Write([w, inode, data, seq, apply = std::move(apply)] {
      auto self = w.lock();
      if (!self) return;
      if (data) {
        auto it = self->dropped_.find(inode);
        if (it != self->dropped_.end()) {
          for (const auto& [after, upto] : it->second) {
            if (seq > after && seq <= upto) return;
          }
        }
      }
      apply(*self);
    });
  }
  void RecordWrite(uint64_t id, int64_t off, std::string bytes) {
    Record(id, true, [id, off, bytes = std::move(bytes)](Impl& v) {
      auto it = v.durable_data_.find(id);
      if (it == v.durable_data_.end()) return;  // unlinked meanwhile
      std::string& d = it->second;
      size_t end = static_cast<size_t>(off) + bytes.size();
      if (d.size() < end) d.resize(end);
      std::memcpy(d.data() + off, bytes.data(), bytes.size());
    });
  }
  void RecordTruncate(uint64_t id, int64_t size) {
    Record(id, true, [id, size](Impl& v) {
      auto it = v.durable_data_.find(id);
      if (it != v.durable_data_.end()) it->second.resize(static_cast<size_t>(size));
    });
  }
  void RecordCreate(const std::string& path, uint64_t id) {
    Record(id, false, [path, id](Impl& v) {
      auto old = v.durable_dir_.find(path);
      if (old != v.durable_dir_.end()) v.durable_data_.erase(old->second);
      v.durable_dir_[path] = id;
      v.durable_data_[id];
    });
  }
  void RecordUnlink(const std::string& path, uint64_t id) {
    Record(id, false, [path, id](Impl& v) {
      auto it = v.durable_dir_.find(path);
      if (it == v.durable_dir_.end() || it->second != id) return;
      v.durable_dir_.erase(it);
      v.durable_data_.erase(id);
    });
  }

  // Starts a Disk sync covering every change so far.
  void IssueSync() {
    uint64_t ticket = ++issued_;
    covered_ = records_;
    ++stats_.syncs_issued;
    std::weak_ptr<Impl> w = weak_from_this();
    disk_->Sync([w, ticket] {
      if (auto self = w.lock()) self->Synced(ticket);
    });
  }
  void Synced(uint64_t ticket) {
    Notice();
    ++stats_.syncs_durable;
    durable_ = std::max(durable_, ticket);
    std::vector<std::function<void()>> ready;
    while (!waiters_.empty() && waiters_.front().target <= durable_) {
      ready.push_back(std::move(waiters_.front().done));
      waiters_.pop_front();
    }
    uint64_t boot = boot_;
    for (auto& f : ready) {
      f();
      Notice();
      if (boot != boot_) return;  // a callback cut the power
    }
  }

  std::optional<std::string> Bytes(const std::string& path, bool durable) {
    Notice();
    std::string p = FullPath(path.c_str());
    if (durable) {
      auto it = durable_dir_.find(p);
      if (it == durable_dir_.end()) return std::nullopt;
      return durable_data_[it->second];
    }
    auto it = dir_.find(p);
    if (it == dir_.end()) return std::nullopt;
    return it->second->data;
  }

  // io methods
  static File* F(sqlite3_file* p) { return reinterpret_cast<File*>(p); }
  static int Close(sqlite3_file* p);
  static int Read(sqlite3_file* p, void* buf, int amt, sqlite3_int64 off);
  static int Write(sqlite3_file* p, const void* buf, int amt, sqlite3_int64 off);
  static int Truncate(sqlite3_file* p, sqlite3_int64 size);
  static int Sync(sqlite3_file* p, int flags);
  static int FileSize(sqlite3_file* p, sqlite3_int64* size);
  static int Lock(sqlite3_file* p, int level);
  static int Unlock(sqlite3_file* p, int level);
  static int CheckReservedLock(sqlite3_file* p, int* out);
  static int FileControl(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
  static int SectorSize(sqlite3_file*) { return kSectorSize; }
  // A write changes exactly its bytes, even at a power loss (records are atomic).
  static int DeviceCharacteristics(sqlite3_file*) { return SQLITE_IOCAP_POWERSAFE_OVERWRITE; }
  static int ShmMap(sqlite3_file* p, int region, int size, int extend, void volatile** out);
  static int ShmLock(sqlite3_file* p, int offset, int n, int flags);
  static void ShmBarrier(sqlite3_file*) { std::atomic_thread_fence(std::memory_order_seq_cst); }
  static int ShmUnmap(sqlite3_file* p, int delete_flag);
  static void ReleaseShm(File* f);

  // vfs methods
  static Impl* V(sqlite3_vfs* vfs) { return static_cast<Impl*>(vfs->pAppData); }
  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags);
  static int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir);
  static int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out);
  static int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out);
  static void* DlOpen(sqlite3_vfs*, const char*) { return nullptr; }
  static void DlError(sqlite3_vfs*, int n, char* msg) {
    if (n > 0) std::snprintf(msg, static_cast<size_t>(n), "extensions cannot load in the simulator");
  }
  static void (*DlSym(sqlite3_vfs*, void*, const char*))(void) { return nullptr; }
  static void DlClose(sqlite3_vfs*, void*) {}
  static int Randomness(sqlite3_vfs* vfs, int n, char* out);
  static int Sleep(sqlite3_vfs* vfs, int micros);
  static int CurrentTime(sqlite3_vfs* vfs, double* out);
  static int GetLastError(sqlite3_vfs*, int, char*) { return 0; }
  static int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out);

  World* world_;
  Disk* disk_;
  std::string name_;
  sqlite3_vfs vfs_{};
  sqlite3_io_methods methods_{};

  // Volatile view, by full path.
  std::map<std::string, std::shared_ptr<Inode>> dir_;
  // Durable image.
  std::map<std::string, uint64_t> durable_dir_;
  std::map<uint64_t, std::string> durable_data_;
  // inode -> the records failed syncs dropped: (after, upto], each the
  // changes no successful xSync had covered yet when its sync failed.
  std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> dropped_;
  uint64_t covered_ = 0;  // the last record an xSync that returned OK covers
  uint64_t next_inode_ = 1;
  uint64_t records_ = 0;

  uint64_t crashes_seen_;
  uint64_t boot_ = 0;
  bool down_ = false;

  uint64_t issued_ = 0;   // sync tickets issued
  uint64_t durable_ = 0;  // highest completed
  struct Waiter {
    uint64_t target;
    std::function<void()> done;
  };
  std::deque<Waiter> waiters_;

  std::optional<DiskFault> fail_write_, fail_sync_;
  SimVfsStats stats_;
};

void SimVfs::Impl::Register(const std::string& label) {
  methods_.iVersion = 2;  // with shared memory, for WAL mode
  methods_.xClose = &Close;
  methods_.xRead = &Read;
  methods_.xWrite = &Write;
  methods_.xTruncate = &Truncate;
  methods_.xSync = &Sync;
  methods_.xFileSize = &FileSize;
  methods_.xLock = &Lock;
  methods_.xUnlock = &Unlock;
  methods_.xCheckReservedLock = &CheckReservedLock;
  methods_.xFileControl = &FileControl;
  methods_.xSectorSize = &SectorSize;
  methods_.xDeviceCharacteristics = &DeviceCharacteristics;
  methods_.xShmMap = &ShmMap;
  methods_.xShmLock = &ShmLock;
  methods_.xShmBarrier = &ShmBarrier;
  methods_.xShmUnmap = &ShmUnmap;

  std::lock_guard<std::mutex> l(g_registry_mu);
  name_ = "txc-sim-" + label;
  for (int n = 2; sqlite3_vfs_find(name_.c_str()) != nullptr; ++n) {
    name_ = "txc-sim-" + label + "#" + std::to_string(n);
  }
  vfs_.iVersion = 2;
  vfs_.szOsFile = static_cast<int>(sizeof(File));
  vfs_.mxPathname = kMaxPathname;
  vfs_.zName = name_.c_str();
  vfs_.pAppData = this;
  vfs_.xOpen = &Open;
  vfs_.xDelete = &Delete;
  vfs_.xAccess = &Access;
  vfs_.xFullPathname = &FullPathname;
  vfs_.xDlOpen = &DlOpen;
  vfs_.xDlError = &DlError;
  vfs_.xDlSym = &DlSym;
  vfs_.xDlClose = &DlClose;
  vfs_.xRandomness = &Randomness;
  vfs_.xSleep = &Sleep;
  vfs_.xCurrentTime = &CurrentTime;
  vfs_.xGetLastError = &GetLastError;
  vfs_.xCurrentTimeInt64 = &CurrentTimeInt64;
  sqlite3_vfs_register(&vfs_, /*makeDflt=*/0);
}

// ----------------------------------------------------------- io methods

int SimVfs::Impl::Close(sqlite3_file* p) {
  File* f = F(p);
  ReleaseShm(f);
  (void)Unlock(p, SQLITE_LOCK_NONE);
  f->~File();
  return SQLITE_OK;
}

int SimVfs::Impl::Read(sqlite3_file* p, void* buf, int amt, sqlite3_int64 off) {
  File* f = F(p);
  f->vfs->Notice();
  if (f->vfs->Dead(f)) return SQLITE_IOERR_READ;
  const std::string& d = f->inode->data;
  size_t start = static_cast<size_t>(off);
  size_t have = start < d.size() ? std::min(d.size() - start, static_cast<size_t>(amt)) : 0;
  if (have > 0) std::memcpy(buf, d.data() + off, have);
  if (have < static_cast<size_t>(amt)) {
    std::memset(static_cast<char*>(buf) + have, 0, amt - have);
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int SimVfs::Impl::Write(sqlite3_file* p, const void* buf, int amt, sqlite3_int64 off) {
  File* f = F(p);
  Impl* v = f->vfs;
  v->Notice();
  if (v->Dead(f)) return SQLITE_IOERR_WRITE;
  if (!f->temp && v->fail_write_) {
    DiskFault fault = *v->fail_write_;
    v->fail_write_.reset();
    ++v->stats_.failed_writes;
    return WriteError(fault);
  }
  std::string& d = f->inode->data;
  size_t end = static_cast<size_t>(off) + static_cast<size_t>(amt);
  if (d.size() < end) d.resize(end);
  std::memcpy(d.data() + off, buf, amt);
  if (!f->temp) {
    ++v->stats_.writes;
    v->RecordWrite(f->inode->id, off, std::string(static_cast<const char*>(buf), amt));
  }
  return SQLITE_OK;
}

int SimVfs::Impl::Truncate(sqlite3_file* p, sqlite3_int64 size) {
  File* f = F(p);
  Impl* v = f->vfs;
  v->Notice();
  if (v->Dead(f)) return SQLITE_IOERR_TRUNCATE;
  f->inode->data.resize(static_cast<size_t>(size));
  if (!f->temp) v->RecordTruncate(f->inode->id, size);
  return SQLITE_OK;
}

int SimVfs::Impl::Sync(sqlite3_file* p, int flags) {
  File* f = F(p);
  Impl* v = f->vfs;
  v->Notice();
  if (v->Dead(f)) return SQLITE_IOERR_FSYNC;
  if (f->temp) return SQLITE_OK;
  if (v->fail_sync_) {
    DiskFault fault = *v->fail_sync_;
    v->fail_sync_.reset();
    ++v->stats_.failed_syncs;
    // As Linux after a failed fsync: this file's changes not yet durable are
    // dropped from the way to the disk, though the page cache still shows
    // them. Changes an earlier xSync covered are not: that xSync returned OK
    // (an fsync that succeeded), though its simulated sync may still be in
    // flight.
    if (v->records_ > v->covered_) {
      v->dropped_[f->inode->id].emplace_back(v->covered_, v->records_);
    }
    return SyncError(fault);
  }
  v->IssueSync();
  return SQLITE_OK;
}

int SimVfs::Impl::FileSize(sqlite3_file* p, sqlite3_int64* size) {
  File* f = F(p);
  f->vfs->Notice();
  if (f->vfs->Dead(f)) return SQLITE_IOERR_FSTAT;
  *size = static_cast<sqlite3_int64>(f->inode->data.size());
  return SQLITE_OK;
}

// Database file locks between this node's connections, with the levels of
// SQLite's locking protocol: a writer takes RESERVED, then PENDING (no new
// readers), then EXCLUSIVE once the other readers are gone.
int SimVfs::Impl::Lock(sqlite3_file* p, int level) {
  File* f = F(p);
  f->vfs->Notice();
  if (f->vfs->Dead(f)) return SQLITE_IOERR_LOCK;
  if (f->lock >= level) return SQLITE_OK;
  Inode& n = *f->inode;
  auto other = [f](const void* holder) { return holder != nullptr && holder != f; };
  if (other(n.pending) || other(n.exclusive)) return SQLITE_BUSY;
  if (f->lock == SQLITE_LOCK_NONE) {
    ++n.shared;
    f->lock = SQLITE_LOCK_SHARED;
    if (level == SQLITE_LOCK_SHARED) return SQLITE_OK;
  }
  if (level == SQLITE_LOCK_RESERVED) {
    if (other(n.reserved)) return SQLITE_BUSY;
    n.reserved = f;
    f->lock = SQLITE_LOCK_RESERVED;
    return SQLITE_OK;
  }
  n.pending = f;
  if (f->lock < SQLITE_LOCK_PENDING) f->lock = SQLITE_LOCK_PENDING;
  if (level == SQLITE_LOCK_PENDING) return SQLITE_OK;
  if (n.shared > 1) return SQLITE_BUSY;  // readers left; PENDING keeps new ones out
  n.exclusive = f;
  f->lock = SQLITE_LOCK_EXCLUSIVE;
  return SQLITE_OK;
}

int SimVfs::Impl::Unlock(sqlite3_file* p, int level) {
  File* f = F(p);
  if (f->lock <= level) return SQLITE_OK;
  Inode& n = *f->inode;
  if (n.exclusive == f) n.exclusive = nullptr;
  if (n.pending == f) n.pending = nullptr;
  if (n.reserved == f) n.reserved = nullptr;
  if (level == SQLITE_LOCK_NONE) --n.shared;
  f->lock = level;
  return SQLITE_OK;
}

int SimVfs::Impl::CheckReservedLock(sqlite3_file* p, int* out) {
  File* f = F(p);
  f->vfs->Notice();
  if (f->vfs->Dead(f)) return SQLITE_IOERR_CHECKRESERVEDLOCK;
  const Inode& n = *f->inode;
  *out = n.reserved != nullptr || n.pending != nullptr || n.exclusive != nullptr;
  return SQLITE_OK;
}

int SimVfs::Impl::ShmMap(sqlite3_file* p, int region, int size, int extend, void volatile** out) {
  File* f = F(p);
  f->vfs->Notice();
  if (f->vfs->Dead(f)) return SQLITE_IOERR_SHMMAP;
  if (!f->shm) {
    f->shm = f->inode->shm.lock();
    if (!f->shm) {
      f->shm = std::make_shared<Shm>();
      f->inode->shm = f->shm;
    }
  }
  Shm& s = *f->shm;
  if (s.region_size == 0) s.region_size = size;
  if (size != s.region_size) return SQLITE_IOERR_SHMSIZE;
  while (static_cast<int>(s.regions.size()) <= region) {
    if (!extend) {
      *out = nullptr;
      return SQLITE_OK;
    }
    s.regions.emplace_back(new char[static_cast<size_t>(size)]());
  }
  *out = s.regions[static_cast<size_t>(region)].get();
  return SQLITE_OK;
}

int SimVfs::Impl::ShmLock(sqlite3_file* p, int offset, int n, int flags) {
  File* f = F(p);
  if (!f->shm) return SQLITE_IOERR_SHMLOCK;
  Shm& s = *f->shm;
  if (flags & SQLITE_SHM_UNLOCK) {
    for (int i = offset; i < offset + n; ++i) {
      uint32_t bit = 1u << i;
      if (f->shm_shared & bit) --s.shared[i];
      if ((f->shm_exclusive & bit) && s.exclusive[i] == f) s.exclusive[i] = nullptr;
      f->shm_shared &= ~bit;
      f->shm_exclusive &= ~bit;
    }
    return SQLITE_OK;
  }
  f->vfs->Notice();
  if (f->vfs->Dead(f)) return SQLITE_IOERR_SHMLOCK;
  for (int i = offset; i < offset + n; ++i) {
    uint32_t bit = 1u << i;
    if (s.exclusive[i] != nullptr && s.exclusive[i] != f) return SQLITE_BUSY;
    if ((flags & SQLITE_SHM_EXCLUSIVE) && s.shared[i] - ((f->shm_shared & bit) ? 1 : 0) > 0) {
      return SQLITE_BUSY;
    }
  }
  for (int i = offset; i < offset + n; ++i) {
    uint32_t bit = 1u << i;
    if (flags & SQLITE_SHM_EXCLUSIVE) {
      s.exclusive[i] = f;
      f->shm_exclusive |= bit;
    } else if (!(f->shm_shared & bit)) {
      ++s.shared[i];
      f->shm_shared |= bit;
    }
  }
  return SQLITE_OK;
}

void SimVfs::Impl::ReleaseShm(File* f) {
  if (!f->shm) return;
  (void)ShmLock(&f->base, 0, SQLITE_SHM_NLOCK, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
  f->shm.reset();  // the last connection's unmap frees the wal-index
}

int SimVfs::Impl::ShmUnmap(sqlite3_file* p, int delete_flag) {
  ReleaseShm(F(p));
  return SQLITE_OK;
}

// ---------------------------------------------------------- vfs methods

int SimVfs::Impl::Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags,
                       int* out_flags) {
  Impl* v = V(vfs);
  v->Notice();
  file->pMethods = nullptr;  // SQLite calls no xClose unless set
  if (v->down_) return SQLITE_CANTOPEN;
  bool temp = name == nullptr || (flags & SQLITE_OPEN_DELETEONCLOSE) != 0;
  std::shared_ptr<Inode> inode;
  if (temp) {
    inode = std::make_shared<Inode>();
  } else {
    std::string path = FullPath(name);
    auto it = v->dir_.find(path);
    if (it != v->dir_.end()) {
      if ((flags & SQLITE_OPEN_EXCLUSIVE) && (flags & SQLITE_OPEN_CREATE)) return SQLITE_CANTOPEN;
      inode = it->second;
    } else {
      if (!(flags & SQLITE_OPEN_CREATE)) return SQLITE_CANTOPEN;
      inode = std::make_shared<Inode>();
      inode->id = v->next_inode_++;
      v->dir_.emplace(path, inode);
      v->RecordCreate(path, inode->id);
    }
  }
  File* f = new (file) File();
  f->vfs = v;
  f->inode = std::move(inode);
  f->boot = v->boot_;
  f->temp = temp;
  f->base.pMethods = &v->methods_;
  if (out_flags != nullptr) *out_flags = flags;
  return SQLITE_OK;
}

int SimVfs::Impl::Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  Impl* v = V(vfs);
  v->Notice();
  if (v->down_) return SQLITE_IOERR_DELETE;
  std::string path = FullPath(name);
  auto it = v->dir_.find(path);
  if (it == v->dir_.end()) return SQLITE_IOERR_DELETE_NOENT;
  uint64_t id = it->second->id;
  v->dir_.erase(it);  // open handles keep the data, as after unlink(2)
  v->RecordUnlink(path, id);
  if (sync_dir) {
    if (v->fail_sync_) {
      DiskFault fault = *v->fail_sync_;
      v->fail_sync_.reset();
      ++v->stats_.failed_syncs;
      return fault == DiskFault::kEio ? SQLITE_IOERR_DIR_FSYNC : SQLITE_FULL;
    }
    v->IssueSync();
  }
  return SQLITE_OK;
}

int SimVfs::Impl::Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  Impl* v = V(vfs);
  v->Notice();
  if (v->down_) return SQLITE_IOERR_ACCESS;
  *out = v->dir_.count(FullPath(name)) > 0 ? 1 : 0;
  return SQLITE_OK;
}

int SimVfs::Impl::FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  std::string p = FullPath(name);
  if (static_cast<int>(p.size()) + 1 > n) return SQLITE_CANTOPEN;
  std::memcpy(out, p.c_str(), p.size() + 1);
  return SQLITE_OK;
}

int SimVfs::Impl::Randomness(sqlite3_vfs* vfs, int n, char* out) {
  Rng& rng = V(vfs)->world_->rng();
  for (int i = 0; i < n; i += 8) {
    uint64_t r = rng.Next();
    std::memcpy(out + i, &r, static_cast<size_t>(std::min(8, n - i)));
  }
  return n;
}

int SimVfs::Impl::Sleep(sqlite3_vfs* vfs, int micros) {
  ++V(vfs)->stats_.sleeps;  // nothing else runs meanwhile: waiting cannot help
  return micros;
}

int SimVfs::Impl::CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  *out = kUnixEpochJulianMs + kSimEpochUnixMs + V(vfs)->world_->now() / kMillis;
  return SQLITE_OK;
}

int SimVfs::Impl::CurrentTime(sqlite3_vfs* vfs, double* out) {
  sqlite3_int64 ms = 0;
  CurrentTimeInt64(vfs, &ms);
  *out = static_cast<double>(ms) / 86400000.0;
  return SQLITE_OK;
}

// ------------------------------------------------------------- SimVfs

SimVfs::SimVfs(World* world, Disk* disk, const std::string& label)
    : impl_(std::make_shared<Impl>(world, disk)) {
  impl_->Register(label);
  // SQLite's PRNG is seeded from the default VFS; a nonzero seed replaces that.
  int seed = static_cast<int>(world->rng().Next() & 0x7fffffff) | 1;
  sqlite3_test_control(SQLITE_TESTCTRL_PRNG_SEED, seed, static_cast<sqlite3*>(nullptr));
}

SimVfs::~SimVfs() {
  std::lock_guard<std::mutex> l(g_registry_mu);
  sqlite3_vfs_unregister(&impl_->vfs_);
}

const char* SimVfs::name() const { return impl_->name_.c_str(); }
sqlite3_vfs* SimVfs::vfs() { return &impl_->vfs_; }

void SimVfs::WhenDurable(std::function<void()> done) {
  Impl& v = *impl_;
  v.Notice();
  if (v.down_) return;
  if (v.durable_ >= v.issued_) {
    std::weak_ptr<Impl> w = impl_;
    uint64_t boot = v.boot_;
    v.world_->After(0, [w, boot, done = std::move(done)] {
      auto self = w.lock();
      if (!self) return;
      self->Notice();
      if (self->boot_ == boot) done();
    });
    return;
  }
  v.waiters_.push_back(Impl::Waiter{v.issued_, std::move(done)});
}

bool SimVfs::sync_pending() const {
  impl_->Notice();
  return impl_->durable_ < impl_->issued_;
}

void SimVfs::FailNextWrite(DiskFault fault) { impl_->fail_write_ = fault; }
void SimVfs::FailNextSync(DiskFault fault) { impl_->fail_sync_ = fault; }
void SimVfs::CancelFaults() {
  impl_->fail_write_.reset();
  impl_->fail_sync_.reset();
}

void SimVfs::PowerLoss() {
  impl_->disk_->Crash();
  impl_->Notice();
}

void SimVfs::PowerOn() {
  impl_->Notice();
  impl_->down_ = false;
}

bool SimVfs::down() const {
  impl_->Notice();
  return impl_->down_;
}

void SimVfs::Wipe() {
  PowerLoss();
  Impl& v = *impl_;
  v.durable_dir_.clear();
  v.durable_data_.clear();
  v.dir_.clear();
  ++v.stats_.wipes;
}

std::vector<std::string> SimVfs::Files() const {
  impl_->Notice();
  std::vector<std::string> out;
  for (const auto& [path, inode] : impl_->dir_) out.push_back(path);
  return out;
}

std::optional<std::string> SimVfs::VolatileBytes(const std::string& path) const {
  return impl_->Bytes(path, false);
}

std::optional<std::string> SimVfs::DurableBytes(const std::string& path) const {
  return impl_->Bytes(path, true);
}

uint64_t SimVfs::DurableDigest() const {
  impl_->Notice();
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  };
  for (const auto& [path, id] : impl_->durable_dir_) {
    mix(path);
    mix(impl_->durable_data_[id]);
  }
  return h;
}

SimVfsStats SimVfs::stats() const {
  impl_->Notice();
  return impl_->stats_;
}

}  // namespace txc::sim
