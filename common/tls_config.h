// Where a process finds its TLS identity: PEM files of its certificate, its
// private key and the CA that signs every certificate of the cluster.
// A plain value type (no OpenSSL here), so public headers such as
// client/client.h can carry it.
#pragma once

#include <string>

namespace txc {

struct TlsConfig {
  // This process's certificate chain (PEM). Its SAN URI "txcoord:ROLE" (or
  // CN "txcoord:ROLE") is the role the peers grant it. Default: none.
  std::string cert;
  // The private key of `cert` (PEM, unencrypted). Default: none.
  std::string key;
  // The CA certificate(s) (PEM) that every peer certificate must chain to.
  // Default: none.
  std::string ca;

  // Any file named turns TLS on; a partial set is refused where it is loaded.
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

}  // namespace txc
