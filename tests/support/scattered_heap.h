// Test support: free memory scattered between live blocks, what a replica
// holds right after a table snapshot freed tens of thousands of slot values.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <unistd.h>

#include "common/proc_stats.h"
#include "common/server_memory.h"

namespace txc::testing {

// Allocates 64 MiB in 1 KiB blocks, frees all but one block in 256 (and the
// last), calls ReturnFreedMemory, and returns how many MiB of resident memory
// the call gave back (0..100), or -1 on an error. The kept blocks are freed
// after the measurement.
inline int ScatteredFreeGivenBackMiB() {
  auto rss_kb = [] {
    auto s = ReadProcSample(getpid());
    return s.ok() ? static_cast<int64_t>(s->rss_kb) : int64_t{-1};
  };
  constexpr int kBlocks = 64 * 1024;
  std::vector<volatile char*> blocks(kBlocks);
  for (auto& b : blocks) {
    b = static_cast<volatile char*>(malloc(1024));
    if (b == nullptr) return -1;
    b[0] = 1;
    b[512] = 1;
  }
  for (int i = 0; i + 1 < kBlocks; ++i) {
    if (i % 256 != 0) free(const_cast<char*>(blocks[i]));
  }
  int64_t before = rss_kb();
  ReturnFreedMemory();
  int64_t after = rss_kb();
  for (int i = 0; i + 1 < kBlocks; i += 256) free(const_cast<char*>(blocks[i]));
  free(const_cast<char*>(blocks[kBlocks - 1]));
  if (before < 0 || after < 0) return -1;
  return static_cast<int>(std::clamp<int64_t>((before - after) / 1024, 0, 100));
}

}  // namespace txc::testing
