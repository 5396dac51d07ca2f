// TLS and roles in the RPC layer, in one process: the authorization table,
// role extraction from real certificates (scripts/make-certs.sh), mutual
// authentication, refused calls, the loopback rule, reloading.
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "Replica.h"
#include "common/log.h"
#include "protocol/authz.h"
#include "protocol/rpc.h"
#include "protocol/tls.h"
#include "protocol/tls_flags.h"
#include "tests/support/process.h"
#include "txcoord_types.h"

namespace txc::rpc {
namespace {

namespace asio = boost::asio;
using authz::Role;

// ------------------------------------------------------------ the table

TEST(AuthzTest, RoleComesFromTheSanUriThenTheCommonName) {
  EXPECT_EQ(authz::RoleFromNames({"txcoord:replica"}, ""), Role::kReplica);
  EXPECT_EQ(authz::RoleFromNames({"https://example.org", "txcoord:admin"}, "txcoord:client"),
            Role::kAdmin);
  EXPECT_EQ(authz::RoleFromNames({}, "txcoord:agent"), Role::kAgent);
  EXPECT_EQ(authz::RoleFromNames({"https://example.org"}, "txcoord:client"), Role::kClient);
  // A txcoord URI naming no known role grants nothing, even with a CN that would.
  EXPECT_EQ(authz::RoleFromNames({"txcoord:root"}, "txcoord:admin"), Role::kNone);
  EXPECT_EQ(authz::RoleFromNames({}, "txcoord:Admin"), Role::kNone);
  EXPECT_EQ(authz::RoleFromNames({}, "admin"), Role::kNone);
  EXPECT_EQ(authz::RoleFromNames({}, ""), Role::kNone);
}

TEST(AuthzTest, TableSaysWhoMayCallWhat) {
  const authz::Table& agent = authz::AgentTable();
  const authz::Table& coord = authz::CoordinatorTable();
  EXPECT_TRUE(agent.Allows(Role::kReplica, "Decide"));
  EXPECT_TRUE(agent.Allows(Role::kReplica, "Prepare"));
  for (Role r : {Role::kClient, Role::kAdmin, Role::kAgent, Role::kNone}) {
    EXPECT_FALSE(agent.Allows(r, "Decide")) << authz::RoleName(r);
    EXPECT_FALSE(agent.Allows(r, "Prepare")) << authz::RoleName(r);
  }
  EXPECT_TRUE(agent.Allows(Role::kClient, "Execute"));
  EXPECT_FALSE(agent.Allows(Role::kClient, "Resolve"));
  EXPECT_TRUE(agent.Allows(Role::kAdmin, "Resolve"));
  EXPECT_TRUE(coord.Allows(Role::kReplica, "Deliver"));
  for (Role r : {Role::kClient, Role::kAdmin, Role::kAgent, Role::kNone}) {
    EXPECT_FALSE(coord.Allows(r, "Deliver")) << authz::RoleName(r);
  }
  EXPECT_TRUE(coord.Allows(Role::kClient, "Submit"));
  EXPECT_TRUE(coord.Allows(Role::kAgent, "Outcome"));
  EXPECT_FALSE(coord.Allows(Role::kAgent, "Commit"));
  EXPECT_FALSE(coord.Allows(Role::kClient, "Resolve"));
  EXPECT_FALSE(coord.Allows(Role::kClient, "Append"));
  EXPECT_TRUE(coord.Allows(Role::kAdmin, "Append"));
  EXPECT_FALSE(coord.Allows(Role::kAdmin, "NoSuchMethod"));
  EXPECT_EQ(agent.Refusal(Role::kClient, "Decide"), "role client may not call Agent.Decide");
  EXPECT_EQ(coord.Refusal(Role::kAgent, "Deliver"), "role agent may not call Replica.Deliver");
}

// Every method of every service in the IDL has a row, in the table of the
// server that serves it (a method left out would be refused to everyone).
TEST(AuthzTest, EveryIdlMethodIsInItsServersTable) {
  std::set<std::string> seen;
  for (const char* file : {"/protocol/txcoord.thrift", "/protocol/paxos.thrift"}) {
    std::ifstream in(std::string(TXC_SOURCE_DIR) + file);
    ASSERT_TRUE(in) << file;
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    std::regex service(R"(service\s+(\w+)\s*\{([^}]*)\})");
    std::regex method(R"(\w+\s+(\w+)\s*\()");
    for (std::sregex_iterator it(s.begin(), s.end(), service), end; it != end; ++it) {
      const std::string name = (*it)[1];
      const std::string body = (*it)[2];
      const authz::Table& table =
          name == "Agent" ? authz::AgentTable() : authz::CoordinatorTable();
      for (std::sregex_iterator m(body.begin(), body.end(), method); m != end; ++m) {
        const std::string op = (*m)[1];
        ASSERT_TRUE(table.Contains(op)) << name << "." << op;
        EXPECT_EQ(table.methods.find(op)->second.qualified, name + "." + op);
        seen.insert(name + "." + op);
      }
    }
  }
  EXPECT_TRUE(seen.count("Agent.Decide"));
  EXPECT_TRUE(seen.count("Replica.Deliver"));
  EXPECT_TRUE(seen.count("LogBench.Append"));
  EXPECT_EQ(seen.size(),
            authz::AgentTable().methods.size() + authz::CoordinatorTable().methods.size());
}

TEST(TlsFlagsTest, PlaintextOnlyOnLoopbackUnlessInsecure) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:7000"));
  EXPECT_TRUE(IsLoopbackAddress("127.8.9.10:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:7000"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:7000"));
  EXPECT_FALSE(IsLoopbackAddress("10.1.2.3:7000"));
  EXPECT_FALSE(IsLoopbackAddress("db.example.org:7000"));
  EXPECT_TRUE(CheckTlsChoice({}, false, "t", {"127.0.0.1:1", "", "localhost:2"}).ok());
  auto refused = CheckTlsChoice({}, false, "t", {"127.0.0.1:1", "10.1.2.3:7000"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("10.1.2.3:7000"), std::string::npos);
  EXPECT_NE(refused.status().message().find("--insecure"), std::string::npos);
  auto insecure = CheckTlsChoice({}, true, "t", {"10.1.2.3:7000"});
  ASSERT_TRUE(insecure.ok());
  EXPECT_FALSE(insecure->enabled());
}

// ------------------------------------------------------------ real certificates

std::string RunOrDie(const std::string& command) {
  int rc = std::system((command + " >/dev/null 2>&1").c_str());
  EXPECT_EQ(rc, 0) << command;
  return command;
}

class TlsRpcTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    RunOrDie(std::string(TXC_SOURCE_DIR) + "/scripts/make-certs.sh " + dir_->path + "/ok");
    RunOrDie(std::string(TXC_SOURCE_DIR) + "/scripts/make-certs.sh " + dir_->path + "/other");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static TlsConfig Certs(const std::string& role, const std::string& set = "ok") {
    const std::string d = dir_->path + "/" + set + "/";
    return TlsConfig{d + role + ".crt", d + role + ".key", d + "ca.crt"};
  }

  // A server on 127.0.0.1 whose "Begin" answers OK and counts its calls, and
  // whose "Deliver" answers a struct without a status field (every txcoord
  // response has one; this is the fallback to a Thrift exception).
  std::unique_ptr<RpcServer> Serve(const TlsConfig& tls, const std::string& host = "127.0.0.1",
                                   Micros handshake_timeout = 10 * kSeconds) {
    ServerOptions o;
    o.tls = tls;
    o.authz = &table_;
    o.handshake_timeout = handshake_timeout;
    auto server = std::make_unique<RpcServer>(io_, o);
    server->Handle<proto::BeginRequest, proto::BeginResponse>(
        "Begin", [this](proto::BeginRequest, RpcServer::Reply<proto::BeginResponse> reply) {
          ++begins_;
          proto::BeginResponse r;
          r.status.code = proto::Code::OK;
          reply(r);
        });
    server->Handle<proto::PeerMessage, proto::TxId>(
        "Deliver", [this](proto::PeerMessage, RpcServer::Reply<proto::TxId> reply) {
          ++delivers_;
          reply(proto::TxId());
        });
    Status s = server->Listen(host + ":0");
    EXPECT_TRUE(s.ok()) << s.ToString();
    return server;
  }

  std::shared_ptr<RpcChannel> Dial(int port, const TlsConfig& tls,
                                   const std::string& host = "127.0.0.1") {
    ChannelOptions o;
    o.tls = tls;
    o.connect_timeout = 3 * kSeconds;
    return std::make_shared<RpcChannel>(io_, host + ":" + std::to_string(port), o);
  }

  template <class Req, class Resp>
  Result<Resp> CallSync(const std::shared_ptr<RpcChannel>& channel, const std::string& method,
                        const Req& req = Req()) {
    bool done = false;
    Status status;
    Resp resp;
    channel->Call<Req, Resp>(method, req, 5 * kSeconds, [&](Status s, Resp r) {
      status = std::move(s);
      resp = std::move(r);
      done = true;
    });
    RunUntil([&] { return done; });
    if (!done) return Status::Timeout("no completion");
    if (!status.ok()) return status;
    return resp;
  }

  Result<proto::BeginResponse> Begin(const std::shared_ptr<RpcChannel>& channel) {
    return CallSync<proto::BeginRequest, proto::BeginResponse>(channel, "Begin");
  }

  // Runs the io_context until `pred` holds, up to 10 s.
  template <class Pred>
  bool RunUntil(Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred() && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(std::chrono::milliseconds(10));
    }
    return pred();
  }

  static testing::TempDir* dir_;
  asio::io_context io_;
  // Begin: clients and admins; Deliver: replicas only.
  authz::Table table_{{{"Begin", {"Test.Begin", authz::Bit(Role::kClient) | authz::Bit(Role::kAdmin)}},
                       {"Deliver", {"Test.Deliver", authz::Bit(Role::kReplica)}}}};
  int begins_ = 0;
  int delivers_ = 0;
};

testing::TempDir* TlsRpcTest::dir_ = nullptr;

TEST_F(TlsRpcTest, MakeCertsGivesEachRoleItsRole) {
  for (auto [name, role] : std::vector<std::pair<std::string, Role>>{{"replica", Role::kReplica},
                                                                     {"agent", Role::kAgent},
                                                                     {"client", Role::kClient},
                                                                     {"admin", Role::kAdmin}}) {
    auto id = tls::IdentityOfFile(Certs(name).cert);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(id->role, role) << name;
    EXPECT_EQ(id->san_uris, std::vector<std::string>{"txcoord:" + name});
    EXPECT_TRUE(tls::Check(Certs(name)).ok()) << name;
  }
  auto ca = tls::IdentityOfFile(dir_->path + "/ok/ca.crt");
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(ca->role, Role::kNone);
}

TEST_F(TlsRpcTest, RoleFromCommonNameWhenNoUri) {
  const std::string d = dir_->path + "/cn";
  std::filesystem::create_directories(d);
  RunOrDie("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
           "-subj /CN=txcoord:admin -keyout " + d + "/k.pem -out " + d + "/c.pem");
  auto id = tls::IdentityOfFile(d + "/c.pem");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_TRUE(id->san_uris.empty());
  EXPECT_EQ(id->common_name, "txcoord:admin");
  EXPECT_EQ(id->role, Role::kAdmin);
}

TEST_F(TlsRpcTest, BadFilesAreNamed) {
  TlsConfig missing = Certs("replica");
  missing.key = dir_->path + "/no-such.key";
  Status s = tls::Check(missing);
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find(missing.key), std::string::npos) << s.ToString();

  TlsConfig wrong_key = Certs("replica");
  wrong_key.key = Certs("client").key;
  s = tls::Check(wrong_key);
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find("is not the key of"), std::string::npos) << s.ToString();

  TlsConfig not_pem = Certs("replica");
  not_pem.ca = Certs("replica").key;  // a key where the CA certificate should be
  s = tls::Check(not_pem);
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find("--tls-ca " + not_pem.ca), std::string::npos) << s.ToString();

  TlsConfig partial;
  partial.cert = Certs("replica").cert;
  s = tls::Check(partial);
  EXPECT_NE(s.message().find("--tls-key"), std::string::npos) << s.ToString();

  RpcServer server(io_, ServerOptions{.tls = missing});
  s = server.Listen("127.0.0.1:0");
  EXPECT_EQ(s.code(), Status::kInvalidArgument);
  EXPECT_NE(s.message().find(missing.key), std::string::npos) << s.ToString();

  auto channel = Dial(1, missing);
  auto r = Begin(channel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kInvalidArgument) << r.status().ToString();
}

TEST_F(TlsRpcTest, AllowedRoleIsServedOverOneConnection) {
  auto server = Serve(Certs("replica"));
  auto channel = Dial(server->port(), Certs("client"));
  for (int i = 0; i < 5; ++i) {
    auto r = Begin(channel);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status.code, proto::Code::OK);
  }
  EXPECT_EQ(begins_, 5);
  EXPECT_EQ(server->calls_served(), 5u);
  EXPECT_EQ(server->permission_denied(), 0u);
  EXPECT_EQ(server->tls_handshake_failures(), 0u);
}

TEST_F(TlsRpcTest, ServerNameIsCheckedByDnsNameToo) {
  auto server = Serve(Certs("replica"));
  auto channel = Dial(server->port(), Certs("admin"), "localhost");
  auto r = Begin(channel);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(begins_, 1);
}

TEST_F(TlsRpcTest, RefusedRoleGetsPermissionDeniedAndTheHandlerDoesNotRun) {
  auto server = Serve(Certs("replica"));
  auto channel = Dial(server->port(), Certs("agent"));
  auto r = Begin(channel);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, proto::Code::PERMISSION_DENIED);
  EXPECT_EQ(r->status.message, "role agent may not call Test.Begin");
  EXPECT_EQ(begins_, 0);
  EXPECT_EQ(server->permission_denied(), 1u);
  // The connection stays usable: a refused call is an answer, not an error.
  auto again = Begin(channel);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(server->permission_denied(), 2u);
}

TEST_F(TlsRpcTest, RefusalWithoutAStatusFieldIsAThriftException) {
  auto server = Serve(Certs("replica"));
  auto channel = Dial(server->port(), Certs("client"));
  auto r = CallSync<proto::PeerMessage, proto::TxId>(channel, "Deliver");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("PERMISSION_DENIED: role client may not call Test.Deliver"),
            std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(delivers_, 0);
  EXPECT_EQ(server->permission_denied(), 1u);

  auto replica = Dial(server->port(), Certs("replica"));
  auto ok = CallSync<proto::PeerMessage, proto::TxId>(replica, "Deliver");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(delivers_, 1);
}

TEST_F(TlsRpcTest, PlaintextClientIsRefused) {
  auto server = Serve(Certs("replica"));
  auto channel = Dial(server->port(), TlsConfig{});
  auto r = Begin(channel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kUnavailable) << r.status().ToString();
  EXPECT_EQ(begins_, 0);
  EXPECT_TRUE(RunUntil([&] { return server->tls_handshake_failures() >= 1; }));
}

TEST_F(TlsRpcTest, ClientOfAnotherCaIsRefused) {
  auto server = Serve(Certs("replica"));
  auto channel = Dial(server->port(), Certs("client", "other"));
  auto r = Begin(channel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kUnavailable) << r.status().ToString();
  EXPECT_EQ(begins_, 0);
  EXPECT_TRUE(RunUntil([&] { return server->tls_handshake_failures() >= 1; }));
}

TEST_F(TlsRpcTest, ClientRefusesAServerOfAnotherCa) {
  auto server = Serve(Certs("replica", "other"));
  auto channel = Dial(server->port(), Certs("client"));
  auto r = Begin(channel);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::kUnavailable);
  EXPECT_NE(r.status().message().find("certificate verify failed"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(begins_, 0);
}

// The certificates name 127.0.0.1 and localhost only: a server reached at
// another address (127.0.0.2, loopback too) does not prove it is that host.
TEST_F(TlsRpcTest, ClientRefusesAServerWhoseCertificateDoesNotNameTheAddress) {
  auto server = Serve(Certs("replica"), "127.0.0.2");
  auto channel = Dial(server->port(), Certs("client"), "127.0.0.2");
  auto r = Begin(channel);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("certificate verify failed"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(begins_, 0);
}

TEST_F(TlsRpcTest, StalledHandshakeIsClosedAtItsDeadline) {
  auto server = Serve(Certs("replica"), "127.0.0.1", 200 * kMillis);
  asio::ip::tcp::socket raw(io_);
  boost::system::error_code ec;
  raw.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->port()), ec);
  ASSERT_FALSE(ec) << ec.message();
  bool closed = false;
  char byte;
  raw.async_read_some(asio::buffer(&byte, 1),
                      [&](const boost::system::error_code& e, size_t) { closed = e.failed(); });
  EXPECT_TRUE(RunUntil([&] { return closed; }));
  EXPECT_EQ(server->tls_handshake_failures(), 1u);
}

TEST_F(TlsRpcTest, WithoutTlsEveryMethodIsAllowed) {
  auto server = Serve(TlsConfig{});
  auto channel = Dial(server->port(), TlsConfig{});
  auto r = CallSync<proto::PeerMessage, proto::TxId>(channel, "Deliver");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(delivers_, 1);
  EXPECT_EQ(server->permission_denied(), 0u);
}

TEST_F(TlsRpcTest, ServedMethodMissingFromTheTableFailsListen) {
  authz::Table small{{{"Begin", {"Test.Begin", authz::Bit(Role::kClient)}}}};
  ServerOptions o;
  o.tls = Certs("replica");
  o.authz = &small;
  RpcServer server(io_, o);
  server.Handle<proto::PeerMessage, proto::PeerAck>(
      "Deliver", [](proto::PeerMessage, RpcServer::Reply<proto::PeerAck> reply) { reply({}); });
  Status s = server.Listen("127.0.0.1:0");
  EXPECT_EQ(s.code(), Status::kInternal);
  EXPECT_NE(s.message().find("Deliver"), std::string::npos) << s.ToString();
}

// After a reload, new connections use the files as they are now; a
// connection already open keeps its session.
TEST_F(TlsRpcTest, ReloadAppliesToNewConnectionsOnly) {
  const std::string d = dir_->path + "/rotating";
  std::filesystem::create_directories(d);
  auto copy = [&](const TlsConfig& from) {
    for (auto [src, dst] : {std::pair{from.cert, d + "/s.crt"}, std::pair{from.key, d + "/s.key"}}) {
      std::filesystem::copy_file(src, dst, std::filesystem::copy_options::overwrite_existing);
    }
  };
  copy(Certs("replica"));
  TlsConfig rotating{d + "/s.crt", d + "/s.key", Certs("replica").ca};
  auto server = Serve(rotating);
  auto open = Dial(server->port(), Certs("client"));
  ASSERT_TRUE(Begin(open).ok());

  // The server's certificate is replaced by one of another CA, which
  // clients of the first CA do not trust.
  copy(Certs("replica", "other"));
  tls::RequestReload();
  auto r = Begin(open);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, proto::Code::OK);
  auto fresh = Begin(Dial(server->port(), Certs("client")));
  ASSERT_FALSE(fresh.ok());
  EXPECT_NE(fresh.status().message().find("certificate verify failed"), std::string::npos)
      << fresh.status().ToString();
  EXPECT_EQ(begins_, 2);
}

}  // namespace
}  // namespace txc::rpc
