#include "protocol/coordinator_set.h"

#include <algorithm>

namespace txc::rpc {

CoordinatorSet::CoordinatorSet(boost::asio::io_context& io, ChannelPool* pool,
                               std::vector<std::string> addresses)
    : io_(io), pool_(pool), addresses_(std::move(addresses)) {}

void CoordinatorSet::NoteLeader(const std::string& hint) {
  auto it = std::find(addresses_.begin(), addresses_.end(), hint);
  if (it == addresses_.end()) {
    addresses_.push_back(hint);
    it = addresses_.end() - 1;
  }
  leader_ = static_cast<size_t>(it - addresses_.begin());
}

std::vector<std::string> SplitList(const std::string& csv) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= csv.size()) {
    size_t comma = csv.find(',', start);
    if (comma == std::string::npos) comma = csv.size();
    std::string item = csv.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

}  // namespace txc::rpc
