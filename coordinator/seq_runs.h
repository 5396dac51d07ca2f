// SeqRuns: a set of positive seqs (the forgotten committed, or aborted,
// txids of one epoch: TxnTable), counted and dropped as maximal runs of
// consecutive seqs, but stored by 64-seq chunks.
//
// Why chunks: committed seqs interleave with aborted ones that were never
// logged (presumed abort), so under contention nearly every commit is a run
// of its own. A map node per run cost about 64 bytes per commit (1,048,576
// runs, the bound, held replicas at 110+ MB; docs/benchmarks.md, "10,000
// transactions in flight"). Here scattered seqs share one 64-bit word per
// 64 seqs, and whole chunks of consecutive seqs collapse into one run entry,
// so memory stays bounded by the number of runs for any input (a run of
// 2^60 seqs is one entry) and is about a bit per seq where runs are short.
//
// Deterministic and allocation-only: part of the coordinator core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace txc::coord {

class SeqRuns {
 public:
  // True when `seq` is in the set.
  bool Contains(int64_t seq) const;
  // Adds `seq` (>= 1); returns the change in the number of maximal runs:
  // -1 (it joined two), 0 (it extended one, or was there), +1 (a new run).
  int Add(int64_t seq);
  // Adds every seq of [first, last] (1 <= first <= last), which must not
  // touch or overlap a seq already in the set (a run read back from an
  // image); false, changing nothing, when it would.
  bool AddRun(int64_t first, int64_t last);
  // Removes the lowest maximal run and returns it. REQUIRES: !empty().
  std::pair<int64_t, int64_t> PopFirstRun();

  bool empty() const { return chunks_.empty() && whole_.empty(); }
  // The lowest seq, or -1 when empty.
  int64_t First() const { return NextFrom(1); }
  // Maximal runs, in order, flattened as first, last, first, last...
  std::vector<int64_t> Flatten() const;
  // Calls fn(first, last) for each maximal run, in order (what Flatten lists,
  // without the vector).
  template <class Fn>
  void ForEachRun(Fn fn) const;
  // The runs as bytes (a table snapshot's, version 3): per run, in order, the
  // gap from the previous run's last seq (0 before the first) to its first,
  // then its length minus one, each an unsigned LEB128 varint: a scattered
  // commit costs about two bytes, not two 64-bit integers.
  void EncodeRuns(std::string* out) const;
  // Adds the runs EncodeRuns wrote (to an empty set); false when the bytes are
  // malformed (truncated, a gap that joins or overlaps runs, beyond
  // INT64_MAX), leaving the set with the runs read so far.
  bool DecodeRuns(std::string_view in);
  // How many maximal runs the set holds.
  size_t runs() const { return runs_; }

 private:
  static constexpr int64_t kBits = 64;
  static int64_t ChunkOf(int64_t seq) { return seq / kBits; }
  // Bits [from, to] of a word (0 <= from <= to <= 63).
  static uint64_t Mask(int from, int to) {
    const uint64_t high = to == 63 ? ~uint64_t{0} : (uint64_t{1} << (to + 1)) - 1;
    return high & (~uint64_t{0} << from);
  }
  // The set's seqs from `seq` on (inclusive): the first one, or -1.
  int64_t NextFrom(int64_t seq) const;
  // The last seq of the run that holds `seq` (REQUIRES: Contains(seq)).
  int64_t RunEnd(int64_t seq) const;
  void SetBit(int64_t seq);
  void ClearRange(int64_t first, int64_t last);
  // A chunk whose 64 bits are set becomes (part of) a whole run.
  void Promote(int64_t chunk);

  // Chunk index -> its bits (bit i: seq chunk * 64 + i); never 0, never all ones.
  std::map<int64_t, uint64_t> chunks_;
  // Runs of whole chunks: first chunk -> last chunk (inclusive), disjoint
  // and not adjacent, none overlapping a chunk of chunks_.
  std::map<int64_t, int64_t> whole_;
  size_t runs_ = 0;
};

template <class Fn>
void SeqRuns::ForEachRun(Fn fn) const {
  // One ordered walk over both maps (a table snapshot walks up to a million
  // runs on the io thread): chunks and whole runs by chunk index.
  int64_t first = -1, last = -1;
  auto take = [&](int64_t a, int64_t b) {  // seqs a..b, ascending, all in the set
    if (first >= 1 && last != INT64_MAX && a == last + 1) {
      last = b;
      return;
    }
    if (first >= 1) fn(first, last);
    first = a;
    last = b;
  };
  auto c = chunks_.begin();
  auto w = whole_.begin();
  while (c != chunks_.end() || w != whole_.end()) {
    if (w == whole_.end() || (c != chunks_.end() && c->first < w->first)) {
      const int64_t base = c->first * kBits;
      for (uint64_t bits = c->second; bits != 0;) {
        const int from = __builtin_ctzll(bits);
        const uint64_t rest = ~(bits >> from);  // zeros where the run goes on
        const int len = rest == 0 ? static_cast<int>(kBits) - from : __builtin_ctzll(rest);
        take(base + from, base + (from + len - 1));  // (base + 64 may overflow)
        bits &= ~Mask(from, from + len - 1);
      }
      ++c;
    } else {
      take(w->first * kBits, w->second * kBits + (kBits - 1));
      ++w;
    }
  }
  if (first >= 1) fn(first, last);
}

}  // namespace txc::coord
