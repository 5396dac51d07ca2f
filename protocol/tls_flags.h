// The TLS flags every binary takes (--tls-cert, --tls-key, --tls-ca,
// --insecure; also as keys of a --config file), and the rule for running
// without them: plaintext only when every address the process listens on or
// dials is loopback, unless --insecure says otherwise (docs/security.md).
// Also the RPC server flags and refusal counters txcoord and txagent share.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include "common/metrics.h"
#include "common/status.h"
#include "common/time.h"
#include "common/tls_config.h"
#include "protocol/rpc.h"

namespace txc::rpc {

// Adds the four options to `desc`.
void AddTlsOptions(boost::program_options::options_description& desc);

// The RPC server flags of every server binary (txcoord, txagent):
// --rpc-idle-timeout, --rpc-max-connections-per-peer and --rpc-unix-socket.
void AddServerOptions(boost::program_options::options_description& desc);
// Reads them into `idle_timeout`, `max_connections_per_peer` and
// `unix_socket` (--rpc-unix-socket on|off; the caller applies off with
// rpc::DisableUnixSockets()); INVALID_ARGUMENT naming the flag and what it
// wants (callers print it after their program's name and exit 2), the
// outputs then untouched.
Status ReadServerOptions(const boost::program_options::variables_map& vm, Micros* idle_timeout,
                         size_t* max_connections_per_peer, bool* unix_socket);

// Registers the server's refusal counters as `PREFIX_rpc_permission_denied_total`,
// `PREFIX_rpc_tls_handshake_failures_total` and `PREFIX_rpc_connections_refused_total{limit}`
// (docs/operations.md). `server` must outlive `m`'s scrapes.
void AddServerMetrics(metrics::Registry& m, const std::string& prefix, const RpcServer& server);

// True for "127.x.y.z:PORT" and "localhost:PORT" (and the bare hosts).
bool IsLoopbackAddress(const std::string& host_port);

// The TLS configuration of a process from its parsed options. `addresses`
// are every HOST:PORT it listens on or dials (empty entries are skipped).
// - With --tls-*: the three files are loaded and checked; INVALID_ARGUMENT
//   naming the file that is wrong.
// - Without: OK (plaintext) when every address is loopback, logging one
//   warning that says so; INVALID_ARGUMENT naming the first other address
//   unless --insecure was given (then a louder warning).
// `program` prefixes the log lines. Callers print the error and exit 2.
Result<TlsConfig> TlsFromOptions(const boost::program_options::variables_map& vm,
                                 const std::string& program,
                                 const std::vector<std::string>& addresses);
// The same rule for options already read: `insecure` is --insecure.
Result<TlsConfig> CheckTlsChoice(const TlsConfig& config, bool insecure, const std::string& program,
                                 const std::vector<std::string>& addresses);

// On SIGHUP, makes every new TLS connection of the process (accepted or
// dialled) read the certificate files again; open connections, and the
// transactions on them, are left alone. Lives as long as the process's io.
class TlsReloadOnSighup {
 public:
  explicit TlsReloadOnSighup(boost::asio::io_context& io);

 private:
  void Wait();
  boost::asio::signal_set signals_;
};

}  // namespace txc::rpc
