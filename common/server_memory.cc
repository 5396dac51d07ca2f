#include "common/server_memory.h"

#include <malloc.h>

#include <climits>
#include <memory>

#include <boost/asio/steady_timer.hpp>

// gperftools' C interface, referenced weakly: non-null only in a process
// linked with tcmalloc (the servers), so this file builds and runs the same
// in every binary.
extern "C" {
__attribute__((weak)) void MallocExtension_ReleaseFreeMemory(void);
__attribute__((weak)) int MallocExtension_GetNumericProperty(const char* property, size_t* value);
}

namespace txc {
namespace {

bool UsingTcmalloc() {
  size_t ignored = 0;
  return MallocExtension_GetNumericProperty != nullptr &&
         MallocExtension_GetNumericProperty("generic.current_allocated_bytes", &ignored) != 0;
}

}  // namespace

bool KeepLargeBuffersOutOfTheHeap(size_t threshold) {
  if (threshold > static_cast<size_t>(INT_MAX)) return false;
  if (UsingTcmalloc()) return true;
  // A fixed threshold also turns the dynamic adjustment off; the trim
  // threshold then stays at twice it, so freed heap tops go back as well.
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(threshold)) == 1 &&
         mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * threshold)) == 1;
}

void ReturnFreedMemory() {
  if (UsingTcmalloc()) {
    MallocExtension_ReleaseFreeMemory();
  } else {
    malloc_trim(0);
  }
}

namespace {

void ArmRelease(const std::shared_ptr<boost::asio::steady_timer>& timer,
                std::chrono::milliseconds interval, std::shared_ptr<std::function<void()>> release) {
  timer->expires_after(interval);
  timer->async_wait([timer, interval, release](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the io_context is going away
    (*release)();
    ArmRelease(timer, interval, release);
  });
}

}  // namespace

void ReturnFreedMemoryEvery(boost::asio::io_context& io, std::chrono::milliseconds interval,
                            std::function<void()> release) {
  ArmRelease(std::make_shared<boost::asio::steady_timer>(io), interval,
             std::make_shared<std::function<void()>>(std::move(release)));
}

const char* AllocatorName() { return UsingTcmalloc() ? "tcmalloc" : "glibc"; }

}  // namespace txc
