#include "coordinator/seq_runs.h"

#include <cassert>
#include <iterator>
#include <limits>

namespace txc::coord {

namespace {

constexpr int64_t kMaxSeq = std::numeric_limits<int64_t>::max();
constexpr uint64_t kAll = ~uint64_t{0};


}  // namespace

bool SeqRuns::Contains(int64_t seq) const {
  if (seq < 1) return false;
  int64_t c = ChunkOf(seq);
  if (auto it = chunks_.find(c); it != chunks_.end()) {
    return (it->second >> (seq % kBits)) & 1;
  }
  auto it = whole_.upper_bound(c);
  if (it == whole_.begin()) return false;
  --it;
  return it->second >= c;
}

int64_t SeqRuns::NextFrom(int64_t seq) const {
  if (seq < 1) seq = 1;
  const int64_t c = ChunkOf(seq);
  int64_t best = -1;
  auto consider = [&best](int64_t s) {
    if (best < 0 || s < best) best = s;
  };
  auto it = chunks_.lower_bound(c);
  if (it != chunks_.end() && it->first == c) {
    uint64_t w = it->second & (kAll << (seq % kBits));
    if (w != 0) return c * kBits + __builtin_ctzll(w);
    ++it;
  }
  if (it != chunks_.end()) consider(it->first * kBits + __builtin_ctzll(it->second));
  auto w = whole_.upper_bound(c);
  if (w != whole_.begin()) {
    auto prev = std::prev(w);
    if (prev->second >= c) return seq;  // a whole chunk holds it
  }
  if (w != whole_.end()) consider(w->first * kBits);
  return best;
}

int64_t SeqRuns::RunEnd(int64_t seq) const {
  int64_t s = seq;
  for (;;) {
    const int64_t c = ChunkOf(s);
    int64_t last;
    if (auto it = chunks_.find(c); it != chunks_.end()) {
      uint64_t gaps = ~it->second & (kAll << (s % kBits));
      if (gaps != 0) return c * kBits + __builtin_ctzll(gaps) - 1;
      last = c * kBits + (kBits - 1);
    } else {
      auto w = std::prev(whole_.upper_bound(c));  // Contains(s): a whole run holds c
      last = w->second * kBits + (kBits - 1);
    }
    if (last == kMaxSeq || !Contains(last + 1)) return last;
    s = last + 1;
  }
}

void SeqRuns::Promote(int64_t chunk) {
  chunks_.erase(chunk);
  int64_t first = chunk, last = chunk;
  auto next = whole_.find(chunk + 1);
  if (next != whole_.end()) {
    last = next->second;
    whole_.erase(next);
  }
  auto prev = whole_.upper_bound(chunk);
  if (prev != whole_.begin()) {
    --prev;
    if (prev->second == chunk - 1) {
      prev->second = last;
      return;
    }
  }
  whole_.emplace(first, last);
}

void SeqRuns::SetBit(int64_t seq) {
  int64_t c = ChunkOf(seq);
  uint64_t& w = chunks_[c];
  w |= uint64_t{1} << (seq % kBits);
  if (w == kAll) Promote(c);
}

int SeqRuns::Add(int64_t seq) {
  assert(seq >= 1);
  if (Contains(seq)) return 0;
  bool joins_prev = Contains(seq - 1);
  bool joins_next = seq < kMaxSeq && Contains(seq + 1);
  SetBit(seq);
  int delta = joins_prev && joins_next ? -1 : (joins_prev || joins_next ? 0 : 1);
  runs_ = static_cast<size_t>(static_cast<int64_t>(runs_) + delta);
  return delta;
}

bool SeqRuns::AddRun(int64_t first, int64_t last) {
  if (first < 1 || last < first) return false;
  if (Contains(first - 1) || (last < kMaxSeq && Contains(last + 1))) return false;
  if (int64_t n = NextFrom(first); n >= 0 && n <= last) return false;
  const int64_t cf = ChunkOf(first), cl = ChunkOf(last);
  auto set_bits = [this](int64_t c, int from, int to) {
    uint64_t& w = chunks_[c];
    w |= Mask(from, to);
    if (w == kAll) Promote(c);
  };
  if (cf == cl) {
    set_bits(cf, static_cast<int>(first % kBits), static_cast<int>(last % kBits));
  } else {
    if (cl - cf > 1) {
      // Whole chunks cf+1 .. cl-1, none of them holding a seq yet.
      whole_.emplace(cf + 1, cl - 1);
      // Merge with neighbours through the chunks at both ends, promoted below.
    }
    set_bits(cf, static_cast<int>(first % kBits), static_cast<int>(kBits - 1));
    set_bits(cl, 0, static_cast<int>(last % kBits));
    // A promoted end chunk merged with the middle run; a middle run whose
    // neighbours stayed partial needs no merge (whole_ runs never touch).
  }
  ++runs_;
  return true;
}

void SeqRuns::ClearRange(int64_t first, int64_t last) {
  const int64_t cl = ChunkOf(last);
  int64_t c = ChunkOf(first);
  while (c <= cl) {
    if (auto it = chunks_.find(c); it != chunks_.end()) {
      int from = c == ChunkOf(first) ? static_cast<int>(first % kBits) : 0;
      int to = c == cl ? static_cast<int>(last % kBits) : static_cast<int>(kBits - 1);
      it->second &= ~Mask(from, to);
      if (it->second == 0) chunks_.erase(it);
      ++c;
      continue;
    }
    // A maximal run holds every whole run it touches entirely.
    auto w = whole_.find(c);
    assert(w != whole_.end());
    if (w == whole_.end()) return;
    int64_t end = w->second;
    whole_.erase(w);
    c = end + 1;
  }
}

std::pair<int64_t, int64_t> SeqRuns::PopFirstRun() {
  int64_t first = NextFrom(1);
  assert(first >= 1);
  int64_t last = RunEnd(first);
  ClearRange(first, last);
  --runs_;
  return {first, last};
}

std::vector<int64_t> SeqRuns::Flatten() const {
  std::vector<int64_t> out;
  out.reserve(runs_ * 2);
  ForEachRun([&](int64_t first, int64_t last) {
    out.push_back(first);
    out.push_back(last);
  });
  return out;
}

namespace {

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->empty()) return false;
    const auto b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    if (shift == 63 && b > 1) return false;  // beyond 64 bits
    r |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = r;
      return true;
    }
  }
  return false;
}

}  // namespace

void SeqRuns::EncodeRuns(std::string* out) const {
  uint64_t prev = 0;
  ForEachRun([&](int64_t first, int64_t last) {
    PutVarint(out, static_cast<uint64_t>(first) - prev);
    PutVarint(out, static_cast<uint64_t>(last - first));
    prev = static_cast<uint64_t>(last);
  });
}

bool SeqRuns::DecodeRuns(std::string_view in) {
  if (!empty()) return false;
  uint64_t prev = 0;
  while (!in.empty()) {
    uint64_t gap = 0, len = 0;
    if (!GetVarint(&in, &gap) || !GetVarint(&in, &len)) return false;
    // Maximal runs: the first starts at 1 or later, the others leave a gap.
    if (gap < (prev == 0 ? 1u : 2u)) return false;
    const uint64_t max = static_cast<uint64_t>(kMaxSeq);
    if (gap > max - prev) return false;
    const uint64_t first = prev + gap;
    if (len > max - first) return false;
    const uint64_t last = first + len;
    if (!AddRun(static_cast<int64_t>(first), static_cast<int64_t>(last))) return false;
    prev = last;
  }
  return true;
}

}  // namespace txc::coord
