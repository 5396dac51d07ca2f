// The command-line helpers shared by the binaries.
#include "common/cli.h"

#include <gtest/gtest.h>

#include "protocol/tls_flags.h"

namespace txc::cli {
namespace {

TEST(ParseDurationTest, AcceptsSecondsMillisecondsMinutesAndFractions) {
  EXPECT_EQ(ParseDuration("10s"), 10 * kSeconds);
  EXPECT_EQ(ParseDuration("500ms"), 500 * kMillis);
  EXPECT_EQ(ParseDuration("2m"), 120 * kSeconds);
  EXPECT_EQ(ParseDuration("1h"), 3600 * kSeconds);
  EXPECT_EQ(ParseDuration("1.5s"), 1500 * kMillis);
  EXPECT_EQ(ParseDuration("30"), 30 * kSeconds);  // plain seconds
  EXPECT_EQ(ParseDuration("0s"), 0);
}

TEST(ParseDurationTest, RefusesAnythingElse) {
  for (const char* bad : {"", "s", "ms", ".", "-1s", "10 s", "10d", "1.2.3s", "abc", "1e3s",
                          "99999999999999999999s"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << "'" << bad << "'";
  }
}

// The RPC server flags txcoord and txagent share (protocol/tls_flags.h).
boost::program_options::variables_map ParseServerFlags(std::vector<std::string> args) {
  boost::program_options::options_description desc;
  rpc::AddServerOptions(desc);
  boost::program_options::variables_map vm;
  boost::program_options::store(
      boost::program_options::command_line_parser(args).options(desc).run(), vm);
  boost::program_options::notify(vm);
  return vm;
}

TEST(ServerOptionsTest, ReadsDefaultsAndGivenValues) {
  Micros idle = 0;
  size_t per_peer = 0;
  bool unix_socket = false;
  ASSERT_TRUE(rpc::ReadServerOptions(ParseServerFlags({}), &idle, &per_peer, &unix_socket).ok());
  EXPECT_EQ(idle, 5 * 60 * kSeconds);
  EXPECT_EQ(per_peer, rpc::ServerOptions{}.max_connections_per_peer);
  EXPECT_TRUE(unix_socket);
  ASSERT_TRUE(rpc::ReadServerOptions(ParseServerFlags({"--rpc-idle-timeout", "30s",
                                                       "--rpc-max-connections-per-peer", "8",
                                                       "--rpc-unix-socket", "off"}),
                                     &idle, &per_peer, &unix_socket)
                  .ok());
  EXPECT_EQ(idle, 30 * kSeconds);
  EXPECT_EQ(per_peer, 8u);
  EXPECT_FALSE(unix_socket);
}

TEST(ServerOptionsTest, RefusesBadValuesNamingTheFlagAndKeepsTheOutputs) {
  Micros idle = 7;
  size_t per_peer = 9;
  bool unix_socket = false;
  Status s = rpc::ReadServerOptions(ParseServerFlags({"--rpc-idle-timeout", "0s"}), &idle, &per_peer,
                                    &unix_socket);
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find("--rpc-idle-timeout wants a positive duration"), std::string::npos)
      << s.message();
  s = rpc::ReadServerOptions(ParseServerFlags({"--rpc-max-connections-per-peer", "0"}), &idle,
                             &per_peer, &unix_socket);
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find("--rpc-max-connections-per-peer must be at least 1"), std::string::npos)
      << s.message();
  s = rpc::ReadServerOptions(ParseServerFlags({"--rpc-unix-socket", "no"}), &idle, &per_peer,
                             &unix_socket);
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find("--rpc-unix-socket wants on or off, not 'no'"), std::string::npos)
      << s.message();
  EXPECT_EQ(idle, 7);
  EXPECT_EQ(per_peer, 9u);
  EXPECT_FALSE(unix_socket);
}

}  // namespace
}  // namespace txc::cli
