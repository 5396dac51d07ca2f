// xa::MakeGid / xa::ParseGid (participant/xa_driver.h).
#include <string_view>

#include "participant/xa_driver.h"
#include "participant/resource_manager.h"

namespace txc::participant::xa {

namespace {

constexpr std::string_view kPrefix = "txc:";

}  // namespace

std::string MakeGid(const TxId& txid, const std::string& resource) {
  return std::string(kPrefix) + ToString(txid) + ":" + resource;
}

std::optional<ParsedGid> ParseGid(const std::string& gid) {
  std::string_view s = gid;
  if (s.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  s.remove_prefix(kPrefix.size());
  auto colon = s.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto txid = ParseTxId(s.substr(0, colon));
  std::string_view resource = s.substr(colon + 1);
  if (!txid || !ValidResourceName(resource)) return std::nullopt;
  ParsedGid parsed{*txid, std::string(resource)};
  // Only the one spelling MakeGid writes ("007.1" or "+7.1" are not ours).
  if (MakeGid(parsed.txid, parsed.resource) != gid) return std::nullopt;
  return parsed;
}

}  // namespace txc::participant::xa
