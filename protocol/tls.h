// TLS for the RPC layer: OpenSSL contexts made from a TlsConfig, the peer's
// role, and certificate reloading.
//
// Contexts are cached per (files, side) for the whole process, so a pool of
// channels shares one and a server makes no file I/O per connection. A
// reload (RequestReload, from SIGHUP) makes the next connection read the
// files again; connections already open keep their session, so transactions
// in flight are not disturbed. A reload that fails keeps the old context and
// logs why.
//
// Thread-safe: the cache is behind a mutex (tests run several io threads).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <utility>  // Boost 1.74 Asio under C++20 uses std::exchange without it

#include <boost/asio/ssl.hpp>

#include "common/status.h"
#include "common/tls_config.h"
#include "protocol/authz.h"

namespace txc::rpc::tls {

// Loads the three files and checks that the key belongs to the certificate:
// OK, or INVALID_ARGUMENT naming the file and what is wrong with it. What a
// program calls at start, to exit 2 with a clear message.
Status Check(const TlsConfig& config);

// The context for accepting (the peer must present a certificate signed by
// the CA) or for dialling (the server's certificate must be signed by the CA;
// the name is checked per connection, see VerifyPeerName).
Result<std::shared_ptr<boost::asio::ssl::context>> ServerContext(const TlsConfig& config);
Result<std::shared_ptr<boost::asio::ssl::context>> ClientContext(const TlsConfig& config);

// Makes the next ServerContext/ClientContext call reload the files.
void RequestReload();

// Before a client handshake: the server's certificate must name `host` (an
// IPv4 address as a SAN IP, anything else as a DNS name).
void VerifyPeerName(SSL* ssl, const std::string& host);

// After a handshake: the names in the peer's certificate and its role.
struct PeerIdentity {
  std::vector<std::string> san_uris;
  std::string common_name;
  authz::Role role = authz::Role::kNone;
};
PeerIdentity IdentityOf(X509* cert);
PeerIdentity PeerOf(SSL* ssl);
// The identity in a PEM certificate file (tests, txadmin diagnostics).
Result<PeerIdentity> IdentityOfFile(const std::string& pem_path);

// Why a handshake failed, with the certificate verification error if that
// was the cause ("certificate verify failed: unable to get local issuer
// certificate").
std::string HandshakeError(SSL* ssl, const boost::system::error_code& ec);

}  // namespace txc::rpc::tls
