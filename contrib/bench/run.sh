#!/usr/bin/env bash
# Stapler benchmark: builds the release binary, generates N certificates under a throwaway
# CA (1,000 and 10,000 by default; kept in /tmp/stapler-bench for the next run), serves them
# from a local responder with pre-signed answers (contrib/bench/responder.py) and measures
# Stapler cold (--one-off and as a daemon), idle, rescanning, and through a burst of N
# inotify events (every certificate touched), with a metrics scrape every 2 s meanwhile; and
# the full look at every file that SIGHUP (and, among the periodic rescans, the hourly one)
# makes. Before each of Stapler's cold runs, the floor (contrib/bench/floor.c, built here
# with gcc against libcrypto): the least CPU one staple costs on this machine, in C on one
# thread, to set Stapler's CPU per staple against.
#
#   contrib/bench/run.sh [N ...]        e.g. contrib/bench/run.sh 1000 10000 100000
#   RUNS=3 IDLE_SECONDS=60 contrib/bench/run.sh 10000
#   RUNS=1 IDLE_SECONDS=15 contrib/bench/run.sh 1000 10000 100000   # about 12 min here, plus
#                                      # 2 min the first time to generate the 100,000 certificates
#   WATCH=only ...   rescans and the burst only; WATCH=no   without them
#   BENCH_WORK=/tmp/other   where certificates are kept (one per concurrent benchmark)
#   FLOOR=no         without the floor
set -euo pipefail
cd "$(dirname "$0")/../.."
contrib/install-prerequisites.sh
need=()
command -v python3 >/dev/null || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
command -v gcc >/dev/null || need+=(gcc)  # the floor; its OpenSSL headers come with libssl-dev
python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
if ((${#need[@]})); then
    sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
swift build -c release --static-swift-stdlib --product stapler
exec python3 contrib/bench/bench.py --binary .build/release/stapler "$@"
