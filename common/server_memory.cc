#include "common/server_memory.h"

#include <malloc.h>

#include <climits>

namespace txc {

bool KeepLargeBuffersOutOfTheHeap(size_t threshold) {
  if (threshold > static_cast<size_t>(INT_MAX)) return false;
  // A fixed threshold also turns the dynamic adjustment off; the trim
  // threshold then stays at twice it, so freed heap tops go back as well.
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(threshold)) == 1 &&
         mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * threshold)) == 1;
}

void ReturnFreedMemory() { malloc_trim(0); }

}  // namespace txc
