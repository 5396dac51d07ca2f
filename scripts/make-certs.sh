#!/usr/bin/env bash
# scripts/make-certs.sh DIR: a throwaway CA and a certificate per txcoord role,
# for tests, demos and a first look at TLS (docs/security.md). Not for
# production: the CA key lies next to the certificates, unencrypted.
#
# Makes in DIR: ca.crt ca.key, and for each ROLE in replica agent client admin
# ROLE.crt ROLE.key, signed by the CA, with
#   SAN URI txcoord:ROLE   (the role the RPC servers grant: protocol/authz.cc)
#   SAN IP 127.0.0.1, DNS localhost (so they verify on loopback)
# More names for a server certificate: TXC_CERT_SANS="IP:10.0.0.5,DNS:db1" adds
# them to every certificate. Validity: TXC_CERT_DAYS (default 30).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR   (makes ca.crt, ca.key and ROLE.crt/ROLE.key for replica, agent, client, admin)" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "make-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
dir=$1
days=${TXC_CERT_DAYS:-30}
extra=${TXC_CERT_SANS:+,$TXC_CERT_SANS}
mkdir -p "$dir"
umask 077  # the keys are readable by their owner only
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The CA: EC P-256 keys are small and fast to handshake.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$days" -subj "/O=txcoord/CN=txcoord test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$tmp/err" \
  || { cat "$tmp/err" >&2; exit 1; }

for role in replica agent client admin; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$role.key" -out "$tmp/$role.csr" -subj "/O=txcoord/CN=txcoord:$role" 2>"$tmp/err" \
    || { cat "$tmp/err" >&2; exit 1; }
  # Replicas and agents both serve and dial; one profile for every role keeps it simple.
  cat >"$tmp/$role.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:txcoord:$role,IP:127.0.0.1,DNS:localhost$extra
EXT
  openssl x509 -req -in "$tmp/$role.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -out "$dir/$role.crt" -days "$days" -extfile "$tmp/$role.ext" 2>"$tmp/err" \
    || { cat "$tmp/err" >&2; exit 1; }
done
chmod 644 "$dir"/*.crt
echo "make-certs.sh: CA and certificates for replica, agent, client, admin in $dir (valid $days days)"
