#include "common/crash_point.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace txc {

void CrashPoint(const char* name) {
  static const char* target = std::getenv("TXC_CRASH_AT");
  if (target == nullptr || std::strcmp(target, name) != 0) return;
  Logger("crash")->warn("crash point reached: {} (TXC_CRASH_AT); exiting 137", name);
  Logger("crash")->flush();
  _exit(137);
}

}  // namespace txc
