#include "participant/lock_table.h"

#include <cassert>

namespace txc::participant {

std::optional<TxId> LockTable::Holder(const std::string& key) const {
  auto it = owner_.find(key);
  if (it == owner_.end()) return std::nullopt;
  return it->second;
}

void LockTable::Acquire(const std::string& key, const TxId& txid) {
  auto [it, inserted] = owner_.try_emplace(key, txid);
  if (!inserted) {
    assert(it->second == txid);
    return;
  }
  keys_[txid].insert(key);
  journal_.push_back(Entry{true, key, txid});
}

void LockTable::ReleaseAll(const TxId& txid) {
  auto it = keys_.find(txid);
  if (it == keys_.end()) return;
  for (const std::string& key : it->second) {
    owner_.erase(key);
    journal_.push_back(Entry{false, key, txid});
  }
  keys_.erase(it);
}

std::vector<std::string> LockTable::KeysOf(const TxId& txid) const {
  auto it = keys_.find(txid);
  if (it == keys_.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

void LockTable::RevertTo(size_t mark) {
  while (journal_.size() > mark) {
    Entry e = std::move(journal_.back());
    journal_.pop_back();
    if (e.acquired) {
      owner_.erase(e.key);
      auto it = keys_.find(e.txid);
      if (it != keys_.end()) {
        it->second.erase(e.key);
        if (it->second.empty()) keys_.erase(it);
      }
    } else {
      owner_[e.key] = e.txid;
      keys_[e.txid].insert(e.key);
    }
  }
}

}  // namespace txc::participant
