#include "protocol/tls_flags.h"

#include <csignal>

#include <boost/asio/ip/address_v4.hpp>

#include "common/cli.h"
#include "common/log.h"
#include "protocol/tls.h"

namespace po = boost::program_options;

namespace txc::rpc {

void AddTlsOptions(po::options_description& desc) {
  desc.add_options()
      ("tls-cert", po::value<std::string>()->default_value(""),
       "this process's certificate (PEM); with --tls-key and --tls-ca every connection is mutual "
       "TLS and the certificate's txcoord:ROLE decides what it may call (docs/security.md)")
      ("tls-key", po::value<std::string>()->default_value(""), "the private key of --tls-cert (PEM)")
      ("tls-ca", po::value<std::string>()->default_value(""),
       "the CA certificate (PEM) every peer's certificate must be signed by")
      ("insecure", po::bool_switch(),
       "allow plaintext on addresses other than loopback (no --tls-*): anyone who reaches a "
       "port can then call anything");
}

bool IsLoopbackAddress(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  const std::string host = colon == std::string::npos ? host_port : host_port.substr(0, colon);
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address_v4(host, ec);
  return !ec && a.is_loopback();
}

Result<TlsConfig> TlsFromOptions(const po::variables_map& vm, const std::string& program,
                                 const std::vector<std::string>& addresses) {
  TlsConfig c;
  c.cert = vm["tls-cert"].as<std::string>();
  c.key = vm["tls-key"].as<std::string>();
  c.ca = vm["tls-ca"].as<std::string>();
  const bool insecure = vm.count("insecure") && vm["insecure"].as<bool>();
  return CheckTlsChoice(c, insecure, program, addresses);
}

Result<TlsConfig> CheckTlsChoice(const TlsConfig& c, bool insecure, const std::string& program,
                                 const std::vector<std::string>& addresses) {
  if (c.enabled()) {
    TXC_RETURN_IF_ERROR(tls::Check(c));
    Logger("rpc")->info("{}: mutual TLS on every connection: cert={} ca={}", program, c.cert,
                        c.ca);
    return c;
  }
  for (const std::string& a : addresses) {
    if (a.empty() || IsLoopbackAddress(a)) continue;
    if (!insecure) {
      return Status::InvalidArgument(
          "no --tls-cert/--tls-key/--tls-ca, and " + a +
          " is not a loopback address: plaintext is allowed on loopback only. Give the TLS "
          "flags (scripts/make-certs.sh DIR makes a set; docs/security.md), or --insecure to "
          "run plaintext anyway");
    }
    Logger("rpc")->warn("{}: --insecure: plaintext without authentication on {} (not loopback): "
                        "anyone who reaches it can call any method",
                        program, a);
    return c;
  }
  Logger("rpc")->warn("{}: no --tls-* flags: plaintext without authentication, allowed because "
                      "every address is loopback",
                      program);
  return c;
}

TlsReloadOnSighup::TlsReloadOnSighup(boost::asio::io_context& io) : signals_(io, SIGHUP) {
  Wait();
}

void TlsReloadOnSighup::Wait() {
  signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    Logger("rpc")->info("SIGHUP: new connections will load the TLS certificate files again");
    tls::RequestReload();
    Wait();
  });
}

void AddServerOptions(po::options_description& desc) {
  desc.add_options()("rpc-idle-timeout", po::value<std::string>()->default_value("5m"),
                     "close a client or peer connection that sent nothing and waits for nothing "
                     "this long (it reconnects on its next call)");
  desc.add_options()("rpc-max-connections-per-peer",
                     po::value<size_t>()->default_value(ServerOptions{}.max_connections_per_peer),
                     "connections one client address (IP) may hold open; more from it are "
                     "refused at accept. Per IP: clients on one host or behind one NAT or proxy "
                     "share it");
  desc.add_options()("rpc-unix-socket", po::value<std::string>()->default_value("on"),
                     "on: also accept on a Unix-domain socket beside a loopback port, and dial a "
                     "loopback server's socket when its process runs under this user id "
                     "(docs/operations.md); off: TCP only, both ways (as TXC_RPC_UNIX=0)");
}

Status ReadServerOptions(const po::variables_map& vm, Micros* idle_timeout,
                         size_t* max_connections_per_peer, bool* unix_socket) {
  const std::string idle = vm["rpc-idle-timeout"].as<std::string>();
  auto d = cli::ParseDuration(idle);
  if (!d || *d <= 0) {
    return Status::InvalidArgument(
        "--rpc-idle-timeout wants a positive duration such as 5m or 30s, got '" + idle + "'");
  }
  size_t per_peer = vm["rpc-max-connections-per-peer"].as<size_t>();
  if (per_peer < 1) return Status::InvalidArgument("--rpc-max-connections-per-peer must be at least 1");
  const std::string unix_flag = vm["rpc-unix-socket"].as<std::string>();
  if (unix_flag != "on" && unix_flag != "off") {
    return Status::InvalidArgument("--rpc-unix-socket wants on or off, not '" + unix_flag + "'");
  }
  *idle_timeout = *d;
  *max_connections_per_peer = per_peer;
  *unix_socket = unix_flag == "on";
  return Status::Ok();
}

void AddServerMetrics(metrics::Registry& m, const std::string& prefix, const RpcServer& server) {
  using metrics::Sample;
  const RpcServer* s = &server;
  // With TLS (docs/security.md): refused calls and failed handshakes.
  m.AddCounterFunc(prefix + "_rpc_permission_denied_total",
                   "Calls refused because the caller's role may not call the method.", [s] {
                     return std::vector<Sample>{{{}, static_cast<double>(s->permission_denied())}};
                   });
  m.AddCounterFunc(prefix + "_rpc_tls_handshake_failures_total",
                   "TLS handshakes that failed (no certificate, another CA, a timeout).", [s] {
                     return std::vector<Sample>{
                         {{}, static_cast<double>(s->tls_handshake_failures())}};
                   });
  // Connections accepted, by the socket they came in on (docs/operations.md,
  // "Processes of one host: the Unix-domain socket").
  m.AddCounterFunc(prefix + "_rpc_connections_accepted_total",
                   "Connections accepted, by transport: tcp (the port) or unix (the "
                   "Unix-domain socket beside a loopback port, for processes of this host).",
                   [s] {
                     return std::vector<Sample>{
                         {{{"transport", "tcp"}}, static_cast<double>(s->tcp_connections())},
                         {{{"transport", "unix"}}, static_cast<double>(s->unix_connections())}};
                   });
  // Connections refused at accept (docs/operations.md, "Limits"), by the cap
  // that refused them.
  m.AddCounterFunc(prefix + "_rpc_connections_refused_total",
                   "Connections closed at accept: the server's max_connections or the "
                   "per-address --rpc-max-connections-per-peer was reached.",
                   [s] {
                     return std::vector<Sample>{
                         {{{"limit", "max_connections"}}, static_cast<double>(s->connections_refused())},
                         {{{"limit", "per_peer"}},
                          static_cast<double>(s->peer_connections_refused())}};
                   });
}

}  // namespace txc::rpc
