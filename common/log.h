// Named spdlog loggers, one per component (paxos, wal, coord, agent, rpc, client,
// sim). Thread-safe (spdlog's multi-threaded sinks).
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace txc {

// Returns the logger for a component, creating it on first use. Logs go to
// stderr with a "[component]" tag.
std::shared_ptr<spdlog::logger> Logger(const std::string& component);

// Sets the level of every logger ("trace", "debug", "info", "warn", "error", "off").
void SetLogLevel(const std::string& level);

}  // namespace txc
