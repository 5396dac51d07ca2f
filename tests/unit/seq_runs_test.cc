// SeqRuns against a plain std::set of seqs: every operation, random and at
// the edges (chunk borders, seqs near INT64_MAX, runs of many chunks).
#include "coordinator/seq_runs.h"

#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace txc::coord {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// The maximal runs of `s`, flattened.
std::vector<int64_t> RunsOf(const std::set<int64_t>& s) {
  std::vector<int64_t> out;
  for (auto it = s.begin(); it != s.end();) {
    int64_t first = *it, last = *it;
    for (++it; it != s.end() && *it == last + 1; ++it) last = *it;
    out.push_back(first);
    out.push_back(last);
  }
  return out;
}

void ExpectSame(const SeqRuns& r, const std::set<int64_t>& s, int64_t lo, int64_t hi) {
  std::vector<int64_t> want = RunsOf(s);
  ASSERT_EQ(r.Flatten(), want);
  ASSERT_EQ(r.runs(), want.size() / 2);
  ASSERT_EQ(r.empty(), s.empty());
  ASSERT_EQ(r.First(), s.empty() ? -1 : *s.begin());
  for (int64_t q = lo; q <= hi; ++q) ASSERT_EQ(r.Contains(q), s.count(q) > 0) << q;
}

TEST(SeqRunsTest, AddReportsTheChangeInRunsAndMatchesASet) {
  SeqRuns r;
  EXPECT_EQ(r.Add(5), 1);
  EXPECT_EQ(r.Add(7), 1);
  EXPECT_EQ(r.Add(6), -1);  // joins 5 and 7
  EXPECT_EQ(r.Add(6), 0);   // already there
  EXPECT_EQ(r.Add(8), 0);   // extends
  EXPECT_EQ(r.Flatten(), (std::vector<int64_t>{5, 8}));
  EXPECT_FALSE(r.Contains(0));
  EXPECT_FALSE(r.Contains(-3));
}

TEST(SeqRunsTest, RandomAddsAndPopsAgreeWithASet) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937_64 rng(seed);
    SeqRuns r;
    std::set<int64_t> s;
    const int64_t hi = 64 * (1 + static_cast<int64_t>(seed % 7));  // a few chunks
    const int density = 1 + static_cast<int>(seed % 4);
    for (int step = 0; step < 3000; ++step) {
      if (rng() % 20 == 0 && !s.empty()) {
        auto [first, last] = r.PopFirstRun();
        std::vector<int64_t> runs = RunsOf(s);
        ASSERT_EQ(first, runs[0]);
        ASSERT_EQ(last, runs[1]);
        for (int64_t q = first; q <= last; ++q) s.erase(q);
      } else if (rng() % 10 == 0) {
        // A run read back from an image: taken only when it touches nothing.
        int64_t first = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi));
        int64_t last = first + static_cast<int64_t>(rng() % 150);
        bool free = s.count(first - 1) == 0 && s.count(last + 1) == 0 &&
                    s.lower_bound(first) == s.upper_bound(last);
        size_t runs = r.runs();
        ASSERT_EQ(r.AddRun(first, last), free) << first << ".." << last;
        if (free) {
          for (int64_t q = first; q <= last; ++q) s.insert(q);
          ASSERT_EQ(r.runs(), runs + 1);
        }
      } else {
        int64_t q = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi));
        if (static_cast<int>(rng() % 4) >= density) continue;
        std::vector<int64_t> before = RunsOf(s);
        int delta = r.Add(q);
        s.insert(q);
        ASSERT_EQ(static_cast<int64_t>(RunsOf(s).size() / 2) - static_cast<int64_t>(before.size() / 2),
                  delta);
      }
      if (step % 100 == 0) ExpectSame(r, s, 0, hi + 200);
    }
    ExpectSame(r, s, 0, hi + 200);
    while (!s.empty()) {  // pop everything
      auto [first, last] = r.PopFirstRun();
      for (int64_t q = first; q <= last; ++q) ASSERT_EQ(s.erase(q), 1u);
      ASSERT_TRUE(s.empty() || *s.begin() > last + 1);
    }
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(r.runs(), 0u);
  }
}

TEST(SeqRunsTest, AddRunTakesLongRunsWithoutAChunkPerSeqAndRefusesOverlaps) {
  SeqRuns r;
  std::set<int64_t> s;
  auto add = [&](int64_t first, int64_t last) {
    ASSERT_TRUE(r.AddRun(first, last)) << first << ".." << last;
    for (int64_t q = first; q <= last; ++q) s.insert(q);
  };
  add(3, 3);
  add(5, 70);      // across a chunk border
  add(128, 191);   // exactly one chunk
  add(193, 1000);  // many chunks, both ends partial
  add(1002, 1002);
  ExpectSame(r, s, 0, 1100);
  EXPECT_FALSE(r.AddRun(4, 4));      // touches 3 and 5
  EXPECT_FALSE(r.AddRun(60, 65));    // overlaps
  EXPECT_FALSE(r.AddRun(192, 192));  // joins two runs
  EXPECT_FALSE(r.AddRun(0, 1));
  EXPECT_FALSE(r.AddRun(9, 8));
  EXPECT_FALSE(r.AddRun(1001, 1001));
  ExpectSame(r, s, 0, 1100);
  // A run of 2^60 seqs is cheap, and is counted and popped as one.
  SeqRuns big;
  ASSERT_TRUE(big.AddRun(10, int64_t{1} << 60));
  EXPECT_TRUE(big.Contains(int64_t{1} << 59));
  EXPECT_FALSE(big.Contains((int64_t{1} << 60) + 1));
  EXPECT_EQ(big.Add((int64_t{1} << 60) + 1), 0);
  EXPECT_EQ(big.Flatten(), (std::vector<int64_t>{10, (int64_t{1} << 60) + 1}));
  EXPECT_EQ(big.PopFirstRun(), std::make_pair(int64_t{10}, (int64_t{1} << 60) + 1));
  EXPECT_TRUE(big.empty());
}

TEST(SeqRunsTest, EncodedRunsDecodeToTheSameSetAndTakeAboutTwoBytesPerScatteredRun) {
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    std::mt19937_64 rng(seed);
    SeqRuns r;
    std::set<int64_t> s;
    for (int i = 0; i < 2000; ++i) {
      const int64_t q = 1 + static_cast<int64_t>(rng() % (64 * (1 + seed % 9)));
      r.Add(q);
      s.insert(q);
    }
    if (seed % 3 == 0) ASSERT_TRUE(r.AddRun(100000, 100000 + 64 * 50));  // whole chunks
    if (seed % 3 == 0) {
      for (int64_t q = 100000; q <= 100000 + 64 * 50; ++q) s.insert(q);
    }
    std::string bytes;
    r.EncodeRuns(&bytes);
    SeqRuns back;
    ASSERT_TRUE(back.DecodeRuns(bytes)) << seed;
    ExpectSame(back, s, 0, 64 * 10 + 2);
    EXPECT_EQ(back.Flatten(), r.Flatten());
    EXPECT_LE(bytes.size(), r.runs() * 2 + 16);  // small gaps and lengths: a byte each
  }
  SeqRuns top;
  ASSERT_TRUE(top.AddRun(kMax - 5, kMax));
  ASSERT_TRUE(top.AddRun(1, 1));
  std::string bytes;
  top.EncodeRuns(&bytes);
  SeqRuns back;
  ASSERT_TRUE(back.DecodeRuns(bytes));
  EXPECT_EQ(back.Flatten(), (std::vector<int64_t>{1, 1, kMax - 5, kMax}));
  EXPECT_FALSE(back.DecodeRuns(bytes));  // only into an empty set
  SeqRuns none;
  EXPECT_TRUE(none.DecodeRuns(""));
  EXPECT_TRUE(none.empty());
}

TEST(SeqRunsTest, SeqsNearTheTopOfInt64) {
  SeqRuns r;
  EXPECT_EQ(r.Add(kMax), 1);
  EXPECT_EQ(r.Add(kMax - 1), 0);
  EXPECT_TRUE(r.Contains(kMax));
  EXPECT_EQ(r.Flatten(), (std::vector<int64_t>{kMax - 1, kMax}));
  ASSERT_TRUE(r.AddRun(kMax - 200, kMax - 3));
  EXPECT_EQ(r.Add(kMax - 2), -1);
  EXPECT_EQ(r.Flatten(), (std::vector<int64_t>{kMax - 200, kMax}));
  EXPECT_EQ(r.runs(), 1u);
  EXPECT_EQ(r.PopFirstRun(), std::make_pair(kMax - 200, kMax));
  EXPECT_TRUE(r.empty());
}

}  // namespace
}  // namespace txc::coord
