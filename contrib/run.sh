#!/usr/bin/env bash
# The main job. Installs prerequisites and builds the release binary, then:
#   - with arguments: runs `stapler ARGS...` (e.g. contrib/run.sh -p /etc/haproxy/certs -s /run/haproxy/admin.sock)
#   - without: a local demonstration: a throwaway CA and certificates, a real OCSP responder
#     (`openssl ocsp`), HAProxy serving them on 127.0.0.1, Stapler stapling them, and a TLS
#     client showing the staple it receives. Everything lives in a temporary directory and
#     stops when the demo ends (DEMO_KEEP=1 keeps it running until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/install-prerequisites.sh
swift build -c release --static-swift-stdlib --product stapler >&2
stapler="$PWD/.build/release/stapler"

if (($#)); then
    exec "$stapler" "$@"
fi

demo=$(mktemp -d /tmp/stapler-demo.XXXXXX)
pids=()
cleanup() {
    local status=$?
    if ((status != 0)) && [ -f "$demo/stapler.log" ]; then
        echo "--- stapler.log" >&2; tail -20 "$demo/stapler.log" >&2
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$demo"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000)); }
wait_for() { # wait_for SECONDS COMMAND...: poll until the command succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "timed out waiting for: $*" >&2; return 1; }
        sleep 0.1
    done
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

ocsp_port=$(free_port)
tls_port=$(free_port)
cd "$demo"
mkdir -p ca/issued certs

say "A throwaway CA and three certificates (one Must-Staple) in $demo/certs"
touch ca/index.txt
echo "unique_subject = no" > ca/index.txt.attr
echo 1000 > ca/serial
cat > ca/ca.cnf <<CNF
[ca]
default_ca = demo
[demo]
database = $demo/ca/index.txt
new_certs_dir = $demo/ca/issued
serial = $demo/ca/serial
default_md = sha256
policy = any
unique_subject = no
default_days = 30
[any]
commonName = supplied
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
authorityInfoAccess = OCSP;URI:http://127.0.0.1:$ocsp_port/
[muststaple]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
authorityInfoAccess = OCSP;URI:http://127.0.0.1:$ocsp_port/
tlsfeature = status_request
CNF
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca/ca.key -out ca/ca.pem -subj "/CN=Stapler Demo CA" -days 60 \
    -config ca/ca.cnf -extensions root 2>/dev/null
for name in www.demo.test shop.demo.test secure.demo.test; do
    ext=leaf; [ "$name" = secure.demo.test ] && ext=muststaple
    openssl req -new "${ec[@]}" -keyout "ca/$name.key" -out "ca/$name.csr" -subj "/CN=$name" -config ca/ca.cnf 2>/dev/null
    openssl ca -batch -config ca/ca.cnf -cert ca/ca.pem -keyfile ca/ca.key -extensions "$ext" -notext \
        -in "ca/$name.csr" -out "ca/$name.crt" 2>/dev/null
    cat "ca/$name.crt" ca/ca.pem "ca/$name.key" > "certs/$name.pem"
done
ls -1 certs

say "A real OCSP responder: openssl ocsp on 127.0.0.1:$ocsp_port"
openssl ocsp -index ca/index.txt -port "$ocsp_port" -rsigner ca/ca.pem -rkey ca/ca.key -CA ca/ca.pem \
    -ndays 1 > responder.log 2>&1 &
pids+=($!)
wait_for 10 grep -q "waiting for OCSP client connections" responder.log

say "HAProxy serving the certificates on 127.0.0.1:$tls_port (no .ocsp files yet)"
cat > haproxy.cfg <<CFG
global
    stats socket $demo/admin.sock level admin
    stats timeout 30s
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend tls
    bind 127.0.0.1:$tls_port ssl crt $demo/certs/
    http-request return status 200 content-type text/plain string "hello from a stapled server"
CFG
haproxy -db -f haproxy.cfg > haproxy.log 2>&1 &
pids+=($!)
wait_for 10 test -S admin.sock

staple_of() { # what a TLS client receives for server name $1
    openssl s_client -connect "127.0.0.1:$tls_port" -servername "$1" -status </dev/null 2>/dev/null \
        | grep -E "OCSP Response Status|Cert Status|This Update|Next Update|no response sent" | sed 's/^ */    /'
}
echo "A TLS client asking www.demo.test for a staple now gets:"
staple_of www.demo.test

say "Stapler: fetch, verify, write <cert>.ocsp, push into HAProxy (log below)"
"$stapler" -v -v -v --haproxy-config haproxy.cfg > stapler.log 2>&1 &
pids+=($!)
wait_for 20 sh -c 'test "$(ls certs/*.ocsp 2>/dev/null | wc -l)" -eq 3'
wait_for 20 sh -c 'test "$(grep -c "pushed to HAProxy" stapler.log)" -ge 3'
sed 's/^/    /' stapler.log

say "The TLS client again: the staple is served, without any HAProxy reload"
for name in www.demo.test secure.demo.test; do echo "  $name:"; staple_of "$name"; done

say "Revoke shop.demo.test at the CA, then 'touch' its file: Stapler refreshes it at once"
openssl ca -config ca/ca.cnf -cert ca/ca.pem -keyfile ca/ca.key -revoke ca/shop.demo.test.crt 2>/dev/null
# openssl ocsp notices index changes only between requests; wake it once.
openssl ocsp -issuer ca/ca.pem -cert ca/shop.demo.test.crt -url "http://127.0.0.1:$ocsp_port/" -no_nonce >/dev/null 2>&1 || true
touch certs/shop.demo.test.pem
wait_for 20 grep -q "REVOKED" stapler.log
grep "REVOKED" stapler.log | sed 's/^/    /'
wait_for 10 sh -c "openssl s_client -connect 127.0.0.1:$tls_port -servername shop.demo.test -status </dev/null 2>/dev/null | grep -q 'Cert Status: revoked'"
echo "  shop.demo.test:"; staple_of shop.demo.test

say "Your own certificates"
cat <<TXT
  contrib/run.sh -p /etc/haproxy/certs -s /run/haproxy/admin.sock     # directories and HAProxy sockets
  contrib/run.sh --haproxy-config /etc/haproxy/haproxy.cfg              # learn both from HAProxy's config
  contrib/run.sh --one-off /etc/ssl/private/site.pem                    # one pass, then exit
  contrib/run.sh check /etc/haproxy/certs/site.pem                     # what Stapler thinks of one certificate
The stats socket needs 'level admin' so Stapler can install staples for certificates that had no .ocsp
file when HAProxy started. See README.md for systemd, containers and the migration from ocspd/Stapled.
TXT
if [ "${DEMO_KEEP:-0}" = 1 ]; then
    say "Running until Ctrl-C (demo files in $demo)"
    wait
fi
