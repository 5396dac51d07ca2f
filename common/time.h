// Time as the cores see it: microseconds on a monotonic clock the shell chooses
// (steady_clock in the real shell, the virtual clock in the simulator).
#pragma once

#include <chrono>
#include <cstdint>

namespace txc {

using Micros = int64_t;
constexpr Micros kMillis = 1000;
constexpr Micros kSeconds = 1000 * 1000;

// The real shell's clock. Cores never call this: shells pass `now` in.
inline Micros SteadyNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace txc
