#include "protocol/tls.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"

namespace txc::rpc::tls {

namespace asio = boost::asio;
using ContextPtr = std::shared_ptr<asio::ssl::context>;

namespace {

const std::shared_ptr<spdlog::logger>& Log() {
  static const std::shared_ptr<spdlog::logger> log = txc::Logger("rpc");
  return log;
}

// The last OpenSSL error as text (the queue is cleared).
std::string OpenSslError(const boost::system::error_code& ec) {
  unsigned long e = ERR_get_error();
  std::string out;
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out = buf;
  } else {
    out = ec ? ec.message() : "unknown error";
  }
  ERR_clear_error();
  return out;
}

Status CheckReadable(const char* flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(std::string(flag) + " " + path + ": cannot open the file");
  return Status::Ok();
}

Result<ContextPtr> Make(const TlsConfig& c, bool server) {
  if (c.cert.empty() || c.key.empty() || c.ca.empty()) {
    std::string missing = c.cert.empty() ? "--tls-cert" : c.key.empty() ? "--tls-key" : "--tls-ca";
    return Status::InvalidArgument("TLS needs --tls-cert, --tls-key and --tls-ca together; " +
                                   missing + " is missing");
  }
  TXC_RETURN_IF_ERROR(CheckReadable("--tls-cert", c.cert));
  TXC_RETURN_IF_ERROR(CheckReadable("--tls-key", c.key));
  TXC_RETURN_IF_ERROR(CheckReadable("--tls-ca", c.ca));
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ERR_clear_error();
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(c.cert, ec);
  if (ec) {
    return Status::InvalidArgument("--tls-cert " + c.cert +
                                   ": not a readable PEM certificate: " + OpenSslError(ec));
  }
  ctx->use_private_key_file(c.key, asio::ssl::context::pem, ec);
  if (ec) {
    const std::string why = OpenSslError(ec);
    if (why.find("key values mismatch") != std::string::npos) {
      return Status::InvalidArgument("--tls-key " + c.key + " is not the key of --tls-cert " +
                                     c.cert);
    }
    return Status::InvalidArgument("--tls-key " + c.key + ": not a readable PEM private key: " +
                                   why);
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument("--tls-key " + c.key + " is not the key of --tls-cert " +
                                   c.cert);
  }
  ctx->load_verify_file(c.ca, ec);
  if (ec) {
    return Status::InvalidArgument("--tls-ca " + c.ca +
                                   ": not a readable PEM CA certificate: " + OpenSslError(ec));
  }
  // Mutual authentication: a server refuses a peer without a certificate
  // signed by the CA; a client refuses a server without one.
  ctx->set_verify_mode(server ? asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert
                              : asio::ssl::verify_peer);
  return ctx;
}

struct Cached {
  uint64_t generation = 0;
  ContextPtr ctx;
};

std::mutex g_mu;
std::atomic<uint64_t> g_generation{1};
std::map<std::tuple<std::string, std::string, std::string, bool>, Cached>& Cache() {
  static auto* cache = new std::map<std::tuple<std::string, std::string, std::string, bool>, Cached>;
  return *cache;
}

Result<ContextPtr> Get(const TlsConfig& c, bool server) {
  const uint64_t generation = g_generation.load();
  std::lock_guard<std::mutex> lock(g_mu);
  Cached& entry = Cache()[{c.cert, c.key, c.ca, server}];
  if (entry.ctx && entry.generation == generation) return entry.ctx;
  auto made = Make(c, server);
  if (!made.ok()) {
    if (!entry.ctx) return made.status();
    entry.generation = generation;  // log once per reload, not per connection
    Log()->error("TLS reload failed, keeping the certificates loaded before: {}",
                 made.status().message());
    return entry.ctx;
  }
  if (entry.ctx) {
    Log()->info("TLS certificates reloaded for new {} connections: cert={} ca={}",
                server ? "accepted" : "outgoing", c.cert, c.ca);
  }
  entry = Cached{generation, *made};
  return entry.ctx;
}

}  // namespace

Status Check(const TlsConfig& config) {
  auto made = Make(config, /*server=*/true);
  return made.ok() ? Status::Ok() : made.status();
}

Result<ContextPtr> ServerContext(const TlsConfig& config) { return Get(config, true); }
Result<ContextPtr> ClientContext(const TlsConfig& config) { return Get(config, false); }

void RequestReload() { g_generation.fetch_add(1); }

void VerifyPeerName(SSL* ssl, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (!ec) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    SSL_set_tlsext_host_name(ssl, host.c_str());
  }
}

PeerIdentity IdentityOf(X509* cert) {
  PeerIdentity id;
  if (cert == nullptr) return id;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
      if (gn->type != GEN_URI) continue;
      const ASN1_STRING* s = gn->d.uniformResourceIdentifier;
      id.san_uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                               static_cast<size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(names);
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  int at = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (at >= 0) {
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
    id.common_name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                          static_cast<size_t>(ASN1_STRING_length(s)));
  }
  id.role = authz::RoleFromNames(id.san_uris, id.common_name);
  return id;
}

PeerIdentity PeerOf(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  PeerIdentity id = IdentityOf(cert);
  X509_free(cert);
  return id;
}

Result<PeerIdentity> IdentityOfFile(const std::string& pem_path) {
  FILE* f = std::fopen(pem_path.c_str(), "r");
  if (f == nullptr) return Status::InvalidArgument(pem_path + ": cannot open the file");
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (cert == nullptr) {
    ERR_clear_error();
    return Status::InvalidArgument(pem_path + ": not a PEM certificate");
  }
  PeerIdentity id = IdentityOf(cert);
  X509_free(cert);
  return id;
}

std::string HandshakeError(SSL* ssl, const boost::system::error_code& ec) {
  std::string why = ec.message();
  if (ssl != nullptr) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) why += std::string(": ") + X509_verify_cert_error_string(v);
  }
  ERR_clear_error();
  return why;
}

}  // namespace txc::rpc::tls
