#!/bin/bash
# Fuzzes the parsers that read hostile bytes with libFuzzer (and AddressSanitizer). The
# targets are listed once, in contrib/fuzz/FuzzTargets.swift; this script asks the built
# binary for them (STAPLER_FUZZ_TARGET=list) and contrib/fuzz/README.md describes them.
#
# Usage: contrib/fuzz/run.sh [seconds per target] [target ...]
# FUZZ_JOBS targets run at once (default: one per core).
# Findings (crash-*, leak-*, timeout-*) are kept in $FUZZ_WORK/artifacts; the corpus grows in
# $FUZZ_WORK/corpus/<target> between runs. Exit status 1 when any target found something.
set -euo pipefail

seconds=${1:-60}
shift || true
targets=("$@")

root=$(cd "$(dirname "$0")/../.." && pwd)
work=${FUZZ_WORK:-/tmp/stapler-fuzz}
build="$work/build"
mkdir -p "$build" "$work/artifacts" "$work/seeds"

sanitizers=${FUZZ_SANITIZERS:-fuzzer,address}
echo "building the fuzz binary (-sanitize=$sanitizers) in $build"
cflags=(-g -O1 -fno-omit-frame-pointer)
case "$sanitizers" in *address*) cflags+=(-fsanitize=address,fuzzer-no-link) ;; *) cflags+=(-fsanitize=fuzzer-no-link) ;; esac
module_flags=()
build_log="$build/build.log"
: > "$build_log"
for shim in CEpoll CCurl CCares COpenSSL CLandlock CSeccomp; do
    clang "${cflags[@]}" -I "$root/Sources/$shim/include" -c "$root/Sources/$shim/shim.c" -o "$build/$shim.o" \
        >> "$build_log" 2>&1 || { cat "$build_log"; exit 2; }
    mkdir -p "$build/modules/$shim"
    printf 'module %s {\n    header "%s"\n    export *\n}\n' "$shim" "$root/Sources/$shim/include/$shim.h" \
        > "$build/modules/$shim/module.modulemap"
    module_flags+=(-Xcc "-fmodule-map-file=$build/modules/$shim/module.modulemap" -Xcc -I -Xcc "$root/Sources/$shim/include")
done
# One module for Reactor and the daemon (minus main.swift), so the targets reach internal
# types; the daemon's "import Reactor" lines become self-imports, which swiftc ignores.
mapfile -t sources < <(find "$root/Sources/Reactor" "$root/Sources/Stapler" -name '*.swift' ! -path '*/Stapler/main.swift' | sort)
swiftc -parse-as-library -module-name Reactor -sanitize="$sanitizers" -O -g \
    -suppress-warnings "${module_flags[@]}" \
    "${sources[@]}" "$root/contrib/fuzz/FuzzTargets.swift" "$root/contrib/fuzz/FuzzBodies.swift" \
    "$build/CEpoll.o" "$build/CCurl.o" "$build/CCares.o" "$build/COpenSSL.o" "$build/CLandlock.o" "$build/CSeccomp.o" \
    -lcurl -lcares -lssl -lcrypto -lseccomp \
    -o "$build/stapler-fuzz" >> "$build_log" 2>&1 || { grep -v 'Cannot export local symbol' "$build_log"; exit 2; }

mapfile -t all_targets < <(STAPLER_FUZZ_TARGET=list "$build/stapler-fuzz" 2>/dev/null | cut -f1)
[ ${#all_targets[@]} -gt 0 ] || { echo "the fuzz binary lists no targets" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

echo "making seeds in $work/seeds"
pki="$work/seeds/pki"
rm -rf "$pki" && mkdir -p "$pki"
(
    cd "$pki"
    source "$root/contrib/fuzz/test-ca.sh"
    make_test_ca FuzzCA fuzz.test 3650 '[leaf]\nbasicConstraints=critical,CA:FALSE\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:1/,caIssuers;URI:http://127.0.0.1:1/ca.der\n'
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile openssl.cnf -extensions leaf -out leaf.pem 2>/dev/null
    cat leaf.pem ca.pem leaf.key > bundle.pem
    printf 'V\t351231000000Z\t\t%s\tunknown\t/CN=fuzz.test\n' "$(openssl x509 -in leaf.pem -noout -serial | cut -d= -f2)" > index.txt
    openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -issuer ca.pem -cert leaf.pem \
        -respout good.der -no_nonce -ndays 3650 >/dev/null 2>&1
    openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -issuer ca.pem -cert leaf.pem \
        -respout nonext.der -no_nonce >/dev/null 2>&1
    # The fast path's shape: no certificate embedded, the responder named or by key hash.
    openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -issuer ca.pem -cert leaf.pem \
        -respout bare.der -no_nonce -ndays 3650 -resp_no_certs >/dev/null 2>&1
    openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -issuer ca.pem -cert leaf.pem \
        -respout bare-keyid.der -no_nonce -ndays 3650 -resp_no_certs -resp_key_id -rmd sha384 >/dev/null 2>&1
    # A delegated responder (id-kp-OCSPSigning) embedded in its answer: once it passed the
    # full check, mutations of the answer reach the split of OCSPResponseLayout.
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout delegate.key \
        -out delegate.csr -subj "/CN=Fuzz OCSP Responder" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n' > delegate.ext
    openssl x509 -req -in delegate.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile delegate.ext -out delegate.pem 2>/dev/null
    openssl ocsp -index index.txt -rsigner delegate.pem -rkey delegate.key -CA ca.pem -issuer ca.pem -cert leaf.pem \
        -respout delegated.der -no_nonce -ndays 3650 >/dev/null 2>&1
)
for target in "${all_targets[@]}"; do mkdir -p "$work/seeds/$target" "$work/corpus/$target"; done
cp "$pki/bundle.pem" "$pki/ca.pem" "$pki/leaf.key" "$work/seeds/pem/"
# Leaves (DER) of the fuzz CA in several shapes: the bundle's; must-staple with several and
# repeated OCSP URLs, more names, CRL distribution points, a non-ASCII subject, a serial with
# its high bit set, valid past 2050 (GeneralizedTime); an RSA-signed look-alike of another CA.
openssl x509 -in "$pki/leaf.pem" -outform DER -out "$work/seeds/leaf/leaf.der"
(
    cd "$pki"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:a.test,IP:127.0.0.1,email:a@b.test,URI:http://a.test/\ncrlDistributionPoints=URI:http://127.0.0.1:1/ca.crl\nauthorityInfoAccess=OCSP;URI:http://b.test/,OCSP;URI:http://a.test/,OCSP;URI:http://b.test/,caIssuers;URI:http://127.0.0.1:1/ca.der,OCSP;URI:https://c.test/\ntlsfeature=status_request\n' > shapes.ext
    openssl req -new -utf8 -key leaf.key -subj $'/C=FR/O=Caf\xc3\xa9 \xc3\x9cn\xc3\xafcode, Inc/CN=shapes.test' -out shapes.csr 2>/dev/null
    openssl x509 -req -in shapes.csr -CA ca.pem -CAkey ca.key -set_serial 0x80aabbccddeeff -days 15000 \
        -extfile shapes.ext -outform DER -out "$work/seeds/leaf/shapes.der" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.pem -subj /CN=FuzzCA -days 30 2>/dev/null
    openssl x509 -req -in leaf.csr -CA rsa.pem -CAkey rsa.key -set_serial 5 -days 30 -extfile openssl.cnf \
        -extensions leaf -outform DER -out "$work/seeds/leaf/rsa-signed.der" 2>/dev/null
)
cp "$root/contrib/stapler.conf" "$work/seeds/config/" 2>/dev/null || true
printf '2049:1234567' > "$work/seeds/config/journal-stream"
printf '[stapled]\ncert-paths = [/a, "/b c"]\nrecursive\nverbosity: 3\nminimum-validity 3600 ; note\nocsp-proxy = http://u:p@cache.example:3128\nocsp-proxy-only\n' > "$work/seeds/config/small.conf"
printf -- '-w\n3600\n-c60\n--timeout=5\n-vv\n--config\nx.conf\n--metrics-per-certificate=false\n--min\n7\n--\n/a\n' > "$work/seeds/config/arguments"
cp "$root/contrib/haproxy/haproxy.cfg" "$work/seeds/haproxycfg/" 2>/dev/null || true
printf 'global\n  crt-base "/etc/ssl"\n  stats socket ${RUN}/a.sock level admin\nfrontend f\n  bind :443 ssl crt a.pem crt-list "/x y"/l.txt\n' \
    > "$work/seeds/haproxycfg/small.cfg"
printf '\x10+ + OCSP Response updated!\n\n> ' > "$work/seeds/framer/update"
printf '\x04# filename\n/etc/a.pem\n/etc/b c.pem\n\n> ' > "$work/seeds/framer/list"
cp "$pki/good.der" "$pki/nonext.der" "$pki/delegated.der" "$pki/bare.der" "$pki/bare-keyid.der" "$work/seeds/ocsp/"
cp "$pki/good.der" "$pki/delegated.der" "$pki/bare.der" "$pki/bare-keyid.der" "$work/seeds/ocspfast/"
printf '\x30\x03\x0a\x01\x03' > "$work/seeds/ocsp/trylater.der"
printf 'public, max-age=86400\0application/ocsp-response; charset=x' > "$work/seeds/headers/typical"
printf 'max-age="60", no-transform, =\0Application/OCSP-Response\x7f\xff\xff\xff\xff\xff\xff\xff' > "$work/seeds/headers/extremes"
printf '\x07GET /metrics HTTP/1.1\r\nHost: localhost:9177\r\nAccept: */*\r\n\r\n' > "$work/seeds/metrics/scrape"
printf '\x01HEAD /metrics?x=1 HTTP/1.0\nX-Odd:\t v \r\n\n' > "$work/seeds/metrics/bare-lf"
printf '[::1]:9177' > "$work/seeds/addresses/ipv6"
printf 'localhost:9177' > "$work/seeds/addresses/localhost"
printf '/run/stapler/metrics.sock,./admin.sock' > "$work/seeds/addresses/paths"
printf '%s' "sh -c 'nginx -t && nginx -s reload' \"a\\\"b\" c\\ d ''" > "$work/seeds/command/quoting"
printf 'nginx -s reload -c /etc/nginx/nginx.conf' > "$work/seeds/command/plain"
printf '\x40\x10HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n\0moved\nHTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nCache-Control: max-age=60\r\ncache-control: public\r\n\r\n\0\x30\x03\x0a\x01\x03\n' \
    > "$work/seeds/http/redirect"
printf '# transaction\n*/etc/a.pem\n# filename\n/etc/a.pem\n/etc/ssl/b c.pem\n' > "$work/seeds/listing/transaction"
# inotify_event records, little endian: wd, mask, cookie, len, then the NUL-padded name.
printf '\x01\0\0\0\x08\0\0\0\0\0\0\0\x10\0\0\0site.pem\0\0\0\0\0\0\0\0\xff\xff\xff\xff\0\x40\0\0\0\0\0\0\0\0\0\0\x02\0\0\0\x80\0\0\0\x07\0\0\0\x08\0\0\0..data\0\0\x03\0\0\0\0\x01\0\x40\0\0\0\0\x04\0\0\0sub\0' \
    > "$work/seeds/inotify/records"
printf -- '-vv\0--cert-paths\0/etc/ssl/a.pem\0b\0--min=3600\0-Rt4\0--haproxy-sockets\0/run/h.sock\0--metrics-per-certificate=no\0--staple-dir\0/var/lib/s\0--ocsp-proxy\0http://cache.example:3128\0--ocsp-proxy-only\0--\0-x' \
    > "$work/seeds/commandline/run"
printf -- '--fetch\0--nonce\0--warning=7200\0-c=600\0-t10\0-v\0--config\0/x.conf\0/etc/ssl/a.pem\0--help' > "$work/seeds/commandline/check"
{ printf 'NOTIFY_SOCKET=@/org/freedesktop/notify\nHOME=/home/a b\nNO_EQUALS\n=x=y\0'; cat /proc/self/stat; printf '\0'
  cat /proc/stat; printf '\0'; printf '4242\n'; } \
    > "$work/seeds/process/linux"
cp "$pki/ca.pem" "$work/seeds/issuer/"
openssl x509 -in "$pki/ca.pem" -outform DER -out "$work/seeds/issuer/ca.der"
openssl crl2pkcs7 -nocrl -certfile "$pki/ca.pem" -outform DER -out "$work/seeds/issuer/ca.p7c"
openssl crl2pkcs7 -nocrl -certfile "$pki/leaf.pem" -certfile "$pki/ca.pem" -out "$work/seeds/issuer/bag.p7b"
printf '127.0.0.1:5353, [::1]:53,192.0.2.1' > "$work/seeds/dns/servers"
printf 'http://user@OCSP.Example.test.:8080/x?y#z' > "$work/seeds/dns/url"
printf 'https://[2001:db8::1]/ocsp' > "$work/seeds/dns/url-ipv6"
printf 'http://user:secret@cache.dc1.example:3128/\0localhost, .internal.example,10.0.0.0/8 [::1]\0http://ocsp.internal.example/abc' > "$work/seeds/proxy/typical"
printf '[2001:db8::1]\0*\0https://[2001:db8::2]:8443/' > "$work/seeds/proxy/ipv6-all"
printf 'HTTP://Cache.Example:0\0,,,.\0http://127.0.0.1.:80' > "$work/seeds/proxy/odd"
printf '\x00\x10\x00\x00\x00\x3c\x02\x00\x00\x50\x7f\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1c\x00\x00\x01\x2c\x0a\x00\x00\x50\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00' > "$work/seeds/dns/addrinfo"
# Frames as the other side writes them (see Hook/LauncherMessages.swift); the first byte is
# the chunk size minus one. Two run requests; started then finished (SIGTERM after a
# timeout, with output); a failed spawn then a refusal.
printf '\x07\x00\x00\x00S\x01\x00\x00\x00\x0d\xf8GX\x00\x00\x00\x00\x01*\x05\xf2\x00/etc/nginx/certs/a.pem.ocsp\x0a/var/lib/stapler/etc/ssl/b c.pem.ocsp\x0a\x00\x00\x00S\x01\x00\x00\x00\x0d\xf8GX\x00\x00\x00\x00\x01*\x05\xf2\x00/etc/nginx/certs/a.pem.ocsp\x0a/var/lib/stapler/etc/ssl/b c.pem.ocsp\x0a' \
    > "$work/seeds/launcherrequest/two-runs"
printf '\x05\x00\x00\x00\x05\x81\x00\x00\x10\x92\x00\x00\x00)\x83\x01\x00\x00\x00\x0f\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01G\xd3W\x00reloading\x0a' \
    > "$work/seeds/launcherreport/timed-out"
printf '\x0b\x00\x00\x00\x10\x82\x00\x00\x00\x02posix_spawn\x00\x00\x00+\x84a run request while the command still runs' \
    > "$work/seeds/launcherreport/refused"

status=0
export STAPLER_FUZZ_BUNDLE="$pki/bundle.pem"
export STAPLER_FUZZ_SIGNER_KEY="$pki/ca.key"
export STAPLER_FUZZ_NOW=$(date +%s)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/contrib/fuzz/lsan.supp:print_suppressions=0}
# One libFuzzer process per core at a time (FUZZ_JOBS): each is single-threaded, and CI
# waits for the sum of the targets' times otherwise. Every target keeps its own log, corpus
# and artifacts; only the `ocsp` target writes beside the seed bundle.
jobs=${FUZZ_JOBS:-$(nproc)}
fuzz_one() {
    local target=$1 result=0
    STAPLER_FUZZ_TARGET=$target "$build/stapler-fuzz" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/$target-" \
        "$work/corpus/$target" "$work/seeds/$target" > "$work/$target.log" 2>&1 || result=$?
    echo "$result" > "$work/$target.status"
}
echo "fuzzing ${#targets[@]} targets, $seconds s each, $jobs at a time"
running=0
for target in "${targets[@]}"; do
    rm -f "$work/$target.status"
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    fuzz_one "$target" &
    running=$((running + 1))
done
wait
for target in "${targets[@]}"; do
    echo "=== $target: $seconds s"
    log="$work/$target.log"
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$log" | tail -2 || true
    result=$(cat "$work/$target.status" 2>/dev/null || echo "no status")
    if [ "$result" != 0 ]; then
        echo "!!! $target: libFuzzer exited $result; see $log and $work/artifacts/$target-*"
        grep -m5 -E 'ERROR|Fatal error|panic|SUMMARY' "$log" || true
        status=1
    fi
done
exit $status
