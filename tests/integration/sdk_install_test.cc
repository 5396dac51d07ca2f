// The SDK as a user gets it: `cmake --install` of this build into a prefix,
// then, outside this tree,
//  - examples/sdk_consumer configured with find_package(txcoord) against the
//    prefix and built; its consumer_agent (a custom resource manager and a
//    SQLite resource in an EmbeddedAgent) and consumer_client run against the
//    installed txcoord; the agent is restarted in between two client runs, so
//    the custom resource's log must bring its counter back;
//  - a one-file client compiled with `pkg-config --cflags --libs txcoord`
//    alone, run against the installed txcoord and txagent.
// The installed CMake and pkg-config files must not name this source or
// build tree.
//
// Each test works in BUILD/sdk_install_test/<test>/ (the paths stay the same
// from run to run, so ccache serves a rebuild of the consumer) and removes it
// when it passes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace txc {
namespace {

namespace fs = std::filesystem;
using testing::FreePort;
using testing::Process;

constexpr int kStepMs = 300 * 1000;  // one configure, build or install step

std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }

// Plaintext, whatever TXC_TEST_TLS says: the consumer programs built against
// the installed SDK (examples/sdk_consumer, the pkg-config client) take no
// TLS flags, and the installed txcoord and txagent here serve them.
const testing::ScopedPlaintext kConsumersSpeakPlaintext;

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The program `name` on PATH; "" if there is none.
std::string Which(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

class SdkInstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(TXC_BUILD_DIR) / "sdk_install_test" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    prefix_ = dir_ / "prefix";
    ccache_ = Which("ccache");
  }
  void TearDown() override {
    processes_.clear();  // stopped (SIGKILL) before their files go
    if (!HasFailure() && std::getenv("TXC_KEEP_TEST_DIRS") == nullptr) fs::remove_all(dir_);
  }

  // Runs argv to its end (at most kStepMs), its output into DIR/<log>; true
  // if it exited 0, else a failure with the output's tail.
  bool Run(const std::string& log, std::vector<std::string> argv,
           std::map<std::string, std::string> env = {}) {
    Process p(log, std::move(argv), (dir_ / log).string(), std::move(env));
    int status = 0;
    bool ok = p.Start() && p.WaitExit(kStepMs, &status) && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0;
    EXPECT_TRUE(ok) << log << " failed (status " << status << "):\n" << p.LogTail();
    return ok;
  }

  // cmake --install of this build into prefix_; checks what it wrote.
  void Install() {
    ASSERT_TRUE(Run("install.log", {Which("cmake"), "--install", TXC_BUILD_DIR, "--prefix",
                                    prefix_.string()}));
    fs::path lib = prefix_ / TXC_INSTALL_LIBDIR;
    for (const char* f : {"cmake/txcoord/txcoordConfig.cmake", "cmake/txcoord/txcoordConfigVersion.cmake",
                          "cmake/txcoord/txcoordTargets.cmake", "pkgconfig/txcoord.pc",
                          "libtxc_client.a", "libtxc_participant.a"}) {
      EXPECT_TRUE(fs::exists(lib / f)) << lib / f;
    }
    for (const char* f : {"client/client.h", "participant/embedded_agent.h", "txcoord_types.h"}) {
      EXPECT_TRUE(fs::exists(prefix_ / "include/txcoord" / f)) << f;
    }
    EXPECT_TRUE(fs::exists(prefix_ / "bin/txcoord"));
    EXPECT_FALSE(fs::exists(prefix_ / "bin/txsim"));
    // Relocatable: nothing installed points back into this tree.
    for (const fs::path& d : {lib / "cmake/txcoord", lib / "pkgconfig"}) {
      for (const auto& e : fs::directory_iterator(d)) {
        std::string text = Slurp(e.path());
        EXPECT_EQ(text.find(TXC_SOURCE_DIR), std::string::npos) << e.path() << " names the source tree";
        EXPECT_EQ(text.find(TXC_BUILD_DIR), std::string::npos) << e.path() << " names the build tree";
      }
    }
  }

  // Starts the installed txcoord; its address.
  std::string StartCoordinator() {
    int port = FreePort();
    auto& p = processes_.emplace_back(std::make_unique<Process>(
        "txcoord",
        std::vector<std::string>{(prefix_ / "bin/txcoord").string(), "--listen", Addr(port),
                                 "--data", (dir_ / "coord").string()},
        (dir_ / "coord.log").string()));
    EXPECT_TRUE(p->Start(port)) << p->LogTail();
    return Addr(port);
  }

  fs::path dir_, prefix_;
  std::string ccache_;
  std::vector<std::unique_ptr<Process>> processes_;
};

TEST_F(SdkInstallTest, ConsumerExampleBuildsWithFindPackageAndRuns) {
  ASSERT_NO_FATAL_FAILURE(Install());
  ASSERT_FALSE(HasFailure());

  // Configured and built as a user's project, from a copy outside the tree.
  fs::path src = dir_ / "sdk_consumer", build = dir_ / "sdk_consumer/build";
  fs::copy(fs::path(TXC_SOURCE_DIR) / "examples/sdk_consumer", src, fs::copy_options::recursive);
  std::vector<std::string> configure = {Which("cmake"), "-S", src.string(), "-B", build.string(),
                                        "-G", "Ninja", "-DCMAKE_PREFIX_PATH=" + prefix_.string()};
  if (!ccache_.empty()) configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=" + ccache_);
  ASSERT_TRUE(Run("configure.log", configure));
  // The package came from the prefix, not from anywhere else on the machine.
  std::smatch m;
  std::string cache = Slurp(build / "CMakeCache.txt");
  ASSERT_TRUE(std::regex_search(cache, m, std::regex("txcoord_DIR:PATH=(.*)")));
  EXPECT_EQ(m[1].str(), (prefix_ / TXC_INSTALL_LIBDIR / "cmake/txcoord").string());
  ASSERT_TRUE(Run("build.log", {Which("cmake"), "--build", build.string(), "-j", "2"}));

  std::string coordinator = StartCoordinator();
  ASSERT_FALSE(HasFailure());
  int agent_port = FreePort();
  std::string agent = Addr(agent_port);
  auto start_agent = [&] {
    auto& p = processes_.emplace_back(std::make_unique<Process>(
        "consumer_agent",
        std::vector<std::string>{(build / "consumer_agent").string(), "--listen", agent,
                                 "--coordinator", coordinator, "--data", (dir_ / "agent").string()},
        (dir_ / "agent.log").string()));
    EXPECT_TRUE(p->Start(agent_port)) << p->LogTail();
    return p.get();
  };
  Process* first = start_agent();
  ASSERT_FALSE(HasFailure());

  std::vector<std::string> client = {(build / "consumer_client").string(), "--coordinator",
                                     coordinator, "--agent", agent};
  ASSERT_TRUE(Run("client1.log", client));
  EXPECT_NE(Slurp(dir_ / "client1.log").find("RESULT apples_sold=3 orders=1"), std::string::npos)
      << Slurp(dir_ / "client1.log");

  // A clean stop, then a new process on the same data: the counter comes
  // back from counters.log, the order from shop.db. The log ends in a torn
  // record (as a crash in the middle of an append leaves it), which the
  // restarted resource must cut off, not refuse.
  kill(first->pid(), SIGTERM);
  int status = -1;
  ASSERT_TRUE(first->WaitExit(20000, &status)) << first->LogTail();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << first->LogTail();
  std::ofstream(dir_ / "agent/counters.log", std::ios::app) << "P 777.777 1 1 coun";
  start_agent();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Run("client2.log", client));
  std::string out = Slurp(dir_ / "client2.log");
  EXPECT_NE(out.find("before: apples_sold=3 orders=1"), std::string::npos) << out;
  EXPECT_NE(out.find("RESULT apples_sold=6 orders=2"), std::string::npos) << out;

  // The two committed orders, each prepared (with its new value) then
  // committed; the rolled-back work was never prepared, so never logged.
  std::istringstream log(Slurp(dir_ / "agent/counters.log"));
  std::vector<std::string> prepared;
  int commits = 0;
  for (std::string line; std::getline(log, line);) {
    EXPECT_EQ(line.find("777.777"), std::string::npos) << "the torn record is still there";
    if (line.rfind("P ", 0) == 0) prepared.push_back(line.substr(line.rfind(" apples_sold ") + 1));
    commits += line.rfind("C ", 0) == 0;
  }
  EXPECT_EQ(prepared, (std::vector<std::string>{"apples_sold 3", "apples_sold 6"}));
  EXPECT_EQ(commits, 2);
}

// A client program that needs nothing but pkg-config.
constexpr char kPkgConfigClient[] = R"cc(#include <iostream>
#include "client/client.h"
int main(int argc, char** argv) {
  auto client = txc::Client::Connect({.coordinators = {argv[1]}, .agents = {{"notes", argv[2]}}});
  if (!client.ok()) return 1;
  auto tx = (*client)->Begin();
  if (!tx.ok()) return 1;
  if (!tx->Execute("notes", {txc::Sql("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, text TEXT)"),
                             txc::Sql("INSERT INTO notes(text) VALUES (?)", {txc::Text("hello")})}).ok()) return 1;
  txc::Status s = tx->Commit();
  std::cout << "commit: " << s.ToString() << std::endl;
  return s.ok() ? 0 : 1;
}
)cc";

TEST_F(SdkInstallTest, PkgConfigCompilesAOneFileClient) {
  ASSERT_NO_FATAL_FAILURE(Install());
  ASSERT_FALSE(HasFailure());

  std::map<std::string, std::string> env = {
      {"PKG_CONFIG_PATH", (prefix_ / TXC_INSTALL_LIBDIR / "pkgconfig").string()}};
  ASSERT_TRUE(Run("pkg-config.log", {Which("pkg-config"), "--cflags", "--libs", "txcoord"}, env));
  std::vector<std::string> compile;
  if (!ccache_.empty()) compile.push_back(ccache_);
  compile.insert(compile.end(), {Which("c++"), (dir_ / "client.cc").string(), "-o",
                                 (dir_ / "client").string()});
  std::istringstream flags(Slurp(dir_ / "pkg-config.log"));
  bool includes = false;
  for (std::string flag; flags >> flag;) {
    compile.push_back(flag);
    if (flag.rfind("-I", 0) == 0 && fs::exists(flag.substr(2) + "/client/client.h")) includes = true;
  }
  EXPECT_TRUE(includes) << "no -I of the installed headers in: " << Slurp(dir_ / "pkg-config.log");
  std::ofstream(dir_ / "client.cc") << kPkgConfigClient;
  ASSERT_TRUE(Run("compile.log", compile));

  std::string coordinator = StartCoordinator();
  int agent_port = FreePort();
  auto& agent = processes_.emplace_back(std::make_unique<Process>(
      "txagent",
      std::vector<std::string>{(prefix_ / "bin/txagent").string(), "--listen", Addr(agent_port),
                               "--data", (dir_ / "agent").string(), "--coordinator", coordinator,
                               "--resource", "notes=sqlite:" + (dir_ / "notes.db").string()},
      (dir_ / "agent.log").string()));
  ASSERT_TRUE(agent->Start(agent_port)) << agent->LogTail();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(Run("client.log", {(dir_ / "client").string(), coordinator, Addr(agent_port)}));
  EXPECT_NE(Slurp(dir_ / "client.log").find("commit: OK"), std::string::npos)
      << Slurp(dir_ / "client.log");
}

}  // namespace
}  // namespace txc
