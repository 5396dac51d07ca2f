// How the long-running servers (txcoord, txagent) use their allocator.
//
// They are linked with tcmalloc (gperftools' tcmalloc_minimal, CMake's
// TXC_ALLOCATOR, the default when it is installed and no sanitizer is on):
// glibc's malloc and free were 17-24% of each server's CPU under load, much
// of it objects allocated on one thread and freed on another
// (docs/benchmarks.md, "The allocator"). Everything else links glibc's, and
// the functions below serve either:
//
// glibc serves a large allocation (128 KiB and up, at first) by mmap and
// returns it to the system when freed, but each such free raises the
// threshold to that size (up to 32 MiB), so later buffers of that size come
// from the heap and, once freed, stay resident. A server that now and then
// builds a big transient buffer (a transaction-table snapshot: several MB;
// a burst of replies to thousands of clients) keeps that memory for good: a
// replica under 10,000 transactions in flight sat at 100-125 MB resident,
// 70-85 MB with the threshold fixed (docs/benchmarks.md, "10,000 transactions
// in flight"). KeepLargeBuffersOutOfTheHeap fixes it at `threshold` bytes.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

#include <boost/asio/io_context.hpp>

namespace txc {

// Call once at the start of main, before any thread starts. False if glibc
// refused the setting (the server runs on with its defaults). With tcmalloc
// it does nothing and returns true: tcmalloc serves big buffers from spans of
// its page heap and gives free spans back by itself (ReturnFreedMemory gives
// back all of them at once).
bool KeepLargeBuffersOutOfTheHeap(size_t threshold = 1 << 20);

// Hands the heap's free pages back to the system (malloc_trim): for a server
// right after it freed many small allocations at once (a replica after a
// table snapshot compacted its log: tens of thousands of slot values), which
// glibc would otherwise keep resident between live ones. A few milliseconds
// on a 100 MB heap. With tcmalloc: its free page-heap spans.
void ReturnFreedMemory();

// Calls `release` (ReturnFreedMemory unless a test passes its own) every
// `interval` on `io`'s thread, for as long as `io` runs. The servers call it
// with 1 s: tcmalloc keeps the spans a burst freed (a snapshot's image, the
// buffers of a turn with thousands of replies) resident in its page heap until
// something returns them, and a later burst that needs a larger contiguous
// span takes new pages from the system instead, so the resident peak grew
// with each snapshot. Under 10,000 transactions in flight a leader held 10-14
// MB of free page-heap spans; returning them each second took its resident
// peak in 30 s runs from 95-112 MB to 90-95, with no measurable CPU
// (docs/benchmarks.md, "Free spans returned every second").
void ReturnFreedMemoryEvery(boost::asio::io_context& io, std::chrono::milliseconds interval,
                            std::function<void()> release = ReturnFreedMemory);

// "tcmalloc" when this process's malloc is tcmalloc's, else "glibc" (or a
// sanitizer's, which replaces glibc's). The servers log it at start.
const char* AllocatorName();

}  // namespace txc
