// LogStore: an append-only, durable log of opaque records in one SQLite file,
// with group commit, plus a small durable key/value table for metadata (the
// epoch, a Paxos acceptor's promised ballot, a snapshot).
//
// This is the interface the coordinator's decision log uses (a single
// replica appends its commands here; each Multi-Paxos acceptor writes its
// accepted values here).
//
// Group commit (wal/group_committer.h): Append/PutMeta only queue the write.
// A WAL thread takes everything queued, writes it in one BEGIN IMMEDIATE ... COMMIT with
// synchronous=FULL (one fsync for the whole group), then posts every
// completion to the executor given at Open, in submission order.
//
// Sticky failure: if a write or the sync fails, the store logs the reason once
// (error level) and fails that group and every later write with
// STORAGE_FAILED, until the process restarts.
//
// Threading: Append, PutMeta, TruncatePrefix and Close may be called from any
// thread; completions run on the given executor. The Read* calls are for
// start-up, before the first Append.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "common/status.h"

namespace txc::wal {

struct LogRecord {
  uint64_t index = 0;  // > 0, strictly increasing, chosen by the caller
  std::string data;
};

struct LogStoreOptions {
  // Most records one group commit writes. Default: 4096.
  size_t max_group_records = 4096;
  // Test and benchmark only: skip fsync (synchronous=OFF). Never in production.
  // Default: false.
  bool unsafe_no_sync = false;
  // Most records one group commit deletes for a truncation (TruncatePrefix,
  // Batch::truncate_upto): a longer prefix goes over the following groups, so
  // one snapshot's truncation (tens of thousands of records: a long
  // transaction and a WAL of tens of MB) never holds up the writes queued
  // behind it, such as a candidate's promise. Readers must skip records at or
  // below their snapshot index anyway (both logs read from it). Default: 1024.
  size_t truncate_chunk = 1024;
  // The layout of what the store's user writes in it, stamped in the meta
  // table under `layout_key` (decimal text) at Open: a new store, or one
  // without a stamp or with an older one, gets `layout`; a store stamped with
  // a newer layout (a later version wrote it, and this one could misread
  // its records) or with something that is not a number is refused at Open
  // with INVALID_ARGUMENT, nothing written. Empty key: no stamp (tests and
  // benchmarks of the store alone). Default: none.
  std::string layout_key;
  int64_t layout = 0;
};

class LogStore {
 public:
  using Done = std::function<void(Status)>;

  // Opens or creates the store at `path` (a file; its folder must exist).
  static Result<std::unique_ptr<LogStore>> Open(const std::string& path,
                                                boost::asio::any_io_executor completions,
                                                LogStoreOptions options = {});
  // Drains queued writes (their completions still run), then stops the WAL thread.
  ~LogStore();

  // Queues records for appending. `done` gets OK once every record is durable.
  // A record whose index already exists replaces it (Paxos may overwrite an
  // accepted value with a higher ballot's).
  void Append(std::vector<LogRecord> records, Done done);
  // Queues a durable metadata write, ordered with appends.
  void PutMeta(const std::string& key, std::string value, Done done);
  // Queues deletion of every record with index <= `upto` (after a snapshot).
  // `done` runs once the group that starts it is durable; the deletion goes
  // on, truncate_chunk records per group, in the groups that follow (records
  // at or below `upto` may be read back until then, and after a restart).
  void TruncatePrefix(uint64_t upto, Done done);
  // Writes that must be durable together or not at all: one transaction
  // (metadata first, then the records, then the start of the truncation, which
  // goes on as TruncatePrefix's does). E.g. a snapshot
  // and its index; a rejoined replica's promise, adopted values and mark.
  struct Batch {
    std::vector<std::pair<std::string, std::string>> metas;
    // Written as `metas` (first), from a value the caller shares and does not
    // change: a snapshot image that the Paxos replica also keeps.
    std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> shared_metas;
    std::vector<LogRecord> records;
    std::optional<uint64_t> truncate_upto;
  };
  void Write(Batch batch, Done done);

  // Start-up reads.
  Result<std::vector<LogRecord>> ReadFrom(uint64_t first_index);
  Result<std::optional<std::string>> GetMeta(const std::string& key);
  uint64_t LastIndex();  // 0 when empty

  // True once a write failed; the store refuses every write from then on.
  bool failed() const;

  // Counters for benchmarks: groups written and records written.
  uint64_t groups_written() const;
  uint64_t records_written() const;

  // Test-only: the next sync fails as a full disk would, making the store sticky-failed.
  void InjectFailureForTest();

 private:
  class Impl;
  explicit LogStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace txc::wal
