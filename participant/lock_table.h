// LockTable: the exclusive row locks of one resource, key -> owning branch,
// with a journal so the lock changes of a local transaction can be undone if
// that transaction does not commit (a lock must never outlive the data change
// it protects, nor vanish while that change is still on disk).
//
// A key is opaque to the table (the SQLite resource uses table name + encoded
// primary key). Re-taking a lock already held by the same txid is a no-op.
//
// Not thread-safe; owned by one thread (the resource's worker).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/txid.h"

namespace txc::participant {

class LockTable {
 public:
  // The branch holding `key`, if any.
  std::optional<TxId> Holder(const std::string& key) const;

  // Takes `key` for `txid`. REQUIRES: the key is free or already held by txid.
  void Acquire(const std::string& key, const TxId& txid);

  // Releases every lock of `txid` (none is fine).
  void ReleaseAll(const TxId& txid);

  // Keys held by `txid`.
  std::vector<std::string> KeysOf(const TxId& txid) const;

  size_t size() const { return owner_.size(); }

  // Journal: Mark() names the current position; RevertTo(mark) undoes every
  // Acquire/ReleaseAll since, newest first; Forget() makes everything so far
  // permanent (call it once the local transaction has committed).
  size_t Mark() const { return journal_.size(); }
  void RevertTo(size_t mark);
  void Forget() { journal_.clear(); }

 private:
  struct Entry {
    bool acquired;  // true: Acquire (undo = drop); false: release (undo = re-take)
    std::string key;
    TxId txid;
  };
  std::unordered_map<std::string, TxId> owner_;
  std::unordered_map<TxId, std::unordered_set<std::string>, TxIdHash> keys_;
  std::vector<Entry> journal_;
};

}  // namespace txc::participant
