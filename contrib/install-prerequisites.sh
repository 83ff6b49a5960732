#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12: the C libraries Stapler
# links (libcurl with OpenSSL, OpenSSL 3, c-ares), the openssl CLI (test PKIs and a real OCSP
# responder) and HAProxy (the tests and the demo push staples into a real one); the curl
# CLI scrapes the metrics endpoint in the tests and python3-prometheus-client (the Prometheus
# project's own text parser, run by Debian's /usr/bin/python3) reads what it scraped;
# util-linux (setpriv, prlimit) and mount run the fault tests; python3 runs the mutation
# responder (contrib/fuzz/mutation_responder.py). The Debian package is built with dpkg-dev
# and binutils (dpkg-shlibdeps, strip), checked with lintian, and its unit with systemd's
# systemctl and systemd-analyze. faketime (libfaketime) dates test staples by a clock weeks
# behind. nginx (its service is not needed: the tests start their own on a loopback port)
# is reloaded by --on-update. dnsmasq-base is the DNS server the tests point the resolver at
# for responder names; libc-ares-dev resolves them on the loop. libseccomp-dev builds the
# daemon's system-call filter; strace measures what goes on it (contrib/sandbox).
# Swift itself is expected on PATH (swift.org toolchain, 6.0 or later).
set -euo pipefail

packages=(libcurl4-openssl-dev libssl-dev libc-ares-dev openssl haproxy ca-certificates pkg-config curl
          python3-prometheus-client util-linux mount python3 dpkg-dev binutils lintian systemd faketime nginx
          dnsmasq-base libseccomp-dev strace)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "swift not found on PATH: install a Swift 6 toolchain from swift.org first" >&2
    exit 1
fi
