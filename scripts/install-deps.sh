#!/usr/bin/env bash
# Installs what txcoord needs to build and test on Debian 12. Idempotent; quiet when all is there.
set -euo pipefail
PKGS=(g++ make cmake ninja-build ccache pkg-config python3
      libboost-dev libboost-program-options-dev
      thrift-compiler libthrift-dev libspdlog-dev libfmt-dev
      libsqlite3-dev sqlite3 libgtest-dev libgmock-dev
      nlohmann-json3-dev  # txadmin's --json
      prometheus  # promtool: the metrics test checks /metrics with it
      libpq-dev postgresql-15  # postgres: resources; the tests run a throwaway server
      mariadb-server-core mariadb-client-core libmariadb-dev  # mariadb: resources and their tests
      python3-thrift  # examples/python: the Python client and participant
      gnuplot-nox  # make bench: SVG plots
      libgoogle-perftools-dev  # tcmalloc_minimal: the servers' allocator (CMake TXC_ALLOCATOR)
      libssl-dev openssl)  # TLS in the RPC layer (OpenSSL 3); openssl: scripts/make-certs.sh
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
