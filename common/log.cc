#include "common/log.h"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace txc {

namespace {
std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::info;
}  // namespace

std::shared_ptr<spdlog::logger> Logger(const std::string& component) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (auto l = spdlog::get(component)) return l;
  auto l = spdlog::stderr_color_mt(component);
  l->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ [%n] %v");
  l->set_level(g_level);
  return l;
}

void SetLogLevel(const std::string& level) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_level = spdlog::level::from_str(level);
  spdlog::set_level(g_level);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

}  // namespace txc
