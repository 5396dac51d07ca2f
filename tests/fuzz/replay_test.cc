// Replays every fuzz target's committed inputs through its entry point, in the
// normal (GCC) build: tests/fuzz/corpus/TARGET (seeds captured from real
// traffic, and what `make fuzz` added) and tests/fuzz/crashes/TARGET (every
// input that once crashed a target, kept after its fix). A target aborts on a
// broken property, so a regression fails this test (under `make sanitize`,
// undefined behaviour does too).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

// The targets' LLVMFuzzerTestOneInput, renamed (tests/fuzz/CMakeLists.txt).
extern "C" int TxcFuzz_rpc_frame(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_messages(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_coord_log(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_participant_wal(const uint8_t* data, size_t size);
extern "C" int TxcFuzz_paxos_peer(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

struct Target {
  const char* name;
  int (*entry)(const uint8_t*, size_t);
};

const Target kTargets[] = {
    {"rpc_frame", &TxcFuzz_rpc_frame},
    {"messages", &TxcFuzz_messages},
    {"coord_log", &TxcFuzz_coord_log},
    {"participant_wal", &TxcFuzz_participant_wal},
    {"paxos_peer", &TxcFuzz_paxos_peer},
};

std::vector<fs::path> FilesUnder(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t RunAll(const Target& t, const std::vector<fs::path>& files) {
  size_t ran = 0;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(f.string());
    // An empty input is valid too; hand a non-null pointer all the same.
    const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data());
    EXPECT_EQ(t.entry(p, bytes.size()), 0);
    ++ran;
  }
  return ran;
}

class ReplayTest : public ::testing::TestWithParam<Target> {};

TEST_P(ReplayTest, CorpusAndCrashesRunClean) {
  const Target& t = GetParam();
  const fs::path root = fs::path(TXC_SOURCE_DIR) / "tests" / "fuzz";
  const auto corpus = FilesUnder(root / "corpus" / t.name);
  // The seed corpus is committed: an empty one means the capture was lost.
  ASSERT_FALSE(corpus.empty()) << "no seeds in " << (root / "corpus" / t.name)
                               << "; run the capture (docs/testing.md, \"Fuzzing\")";
  EXPECT_EQ(RunAll(t, corpus), corpus.size());
  const auto crashes = FilesUnder(root / "crashes" / t.name);
  EXPECT_EQ(RunAll(t, crashes), crashes.size());
  // The empty input and a lone byte of each kind get through as well.
  EXPECT_EQ(t.entry(reinterpret_cast<const uint8_t*>(""), 0), 0);
  for (int b = 0; b < 256; ++b) {
    const uint8_t one = static_cast<uint8_t>(b);
    EXPECT_EQ(t.entry(&one, 1), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, ReplayTest, ::testing::ValuesIn(kTargets),
                         [](const ::testing::TestParamInfo<Target>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
