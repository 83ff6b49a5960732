#!/bin/bash
# The daemon, built with AddressSanitizer, against a responder that answers every request
# with a randomly built HTTP response (contrib/fuzz/mutation_responder.py), for a fixed time
# and a seed printed at start. Certificates are touched in a loop, so each is fetched again
# and again; good staples are on disk from the start. Over the run:
#   - the process never dies and its metrics listener always answers;
#   - every staple file is byte-identical to the last good one, or verifies with
#     `openssl ocsp -respin` (a mutation can still be a valid response; then it may replace
#     the staple, and is the new good one);
#   - memory stays bounded: peak RSS is reported, and over MUTATION_RSS_LIMIT_MB fails;
#   - no AddressSanitizer or LeakSanitizer report, and SIGTERM ends it with status 0.
#
# Usage: contrib/fuzz/mutate-daemon.sh [seconds (default 60)] [seed (default: from the clock)]
# Work files in $FUZZ_WORK/mutation (default /tmp/stapler-fuzz/mutation); on a violation the
# staple, the daemon log and the last responses sent go to $FUZZ_WORK/artifacts. Exit status 1
# on any violation, 2 when the run could not be set up.
set -euo pipefail

seconds=${1:-${MUTATION_SECONDS:-60}}
seed=${2:-$(( $(date +%s%N) / 1000 % 4294967296 ))}
certificates=${MUTATION_CERTIFICATES:-20}
touch_interval=${MUTATION_TOUCH_INTERVAL:-0.2}
rss_limit_mb=${MUTATION_RSS_LIMIT_MB:-512}
root=$(cd "$(dirname "$0")/../.." && pwd)
fuzz_work=${FUZZ_WORK:-/tmp/stapler-fuzz}
work="$fuzz_work/mutation"
artifacts="$fuzz_work/artifacts"
build_path="$fuzz_work/asan-daemon"

echo "mutation run: seed $seed, $seconds s, $certificates certificates (replay: $0 $seconds $seed)"
rm -rf "$work" && mkdir -p "$work/pki" "$work/certs" "$work/responses" "$artifacts"

started_build=$(date +%s)
echo "building the daemon with AddressSanitizer in $build_path"
if ! swift build -c debug -Xswiftc -sanitize=address -Xcc -fsanitize=address --build-path "$build_path" \
        --package-path "$root" --product stapler > "$work/build.log" 2>&1; then
    grep -E "error" "$work/build.log" | head -20
    exit 2
fi
daemon_binary="$build_path/debug/stapler"
echo "built in $(( $(date +%s) - started_build )) s"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
responder_port=$(free_port)
metrics_port=$(free_port)

echo "making $certificates certificates and their good staples in $work"
(
    cd "$work/pki"
    source "$root/contrib/fuzz/test-ca.sh"
    make_test_ca MutationCA mutation.test 30
    : > index.txt
    echo "unique_subject = no" > index.txt.attr
    for i in $(seq -w 1 "$certificates"); do
        name="c$i"
        printf 'basicConstraints=critical,CA:FALSE\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:%s/%s/\n' \
            "$responder_port" "$name" > "$name.ext"
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial "$((4096 + 10#$i))" -days 20 \
            -extfile "$name.ext" -out "$name.pem" 2>/dev/null
        serial=$(openssl x509 -in "$name.pem" -noout -serial | cut -d= -f2)
        printf 'V\t351231000000Z\t\t%s\tunknown\t/CN=mutation.test\n' "$serial" >> index.txt
        cat "$name.pem" ca.pem leaf.key > "$work/certs/$name.pem"
    done
    for i in $(seq -w 1 "$certificates"); do
        name="c$i"
        # The staple on disk is the responder's unmutated answer: identical bytes are not
        # rewritten. The alternative is another good answer, signed with other times.
        openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -issuer ca.pem -cert "$name.pem" \
            -respout "$work/responses/$name.der" -no_nonce -ndays 2 >/dev/null 2>&1
        openssl ocsp -index index.txt -rsigner ca.pem -rkey ca.key -CA ca.pem -issuer ca.pem -cert "$name.pem" \
            -respout "$work/responses/$name.alt.der" -no_nonce -ndays 3 >/dev/null 2>&1
        cp "$work/responses/$name.der" "$work/certs/$name.pem.ocsp"
    done
) || { echo "cannot make the certificates" >&2; exit 2; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

python3 "$root/contrib/fuzz/mutation_responder.py" --port "$responder_port" --seed "$seed" \
    --responses "$work/responses" --record "$work/recent" > "$work/responder.log" 2>&1 &
responder_pid=$!
pids+=("$responder_pid")
for _ in $(seq 1 100); do grep -q listening "$work/responder.log" && break; sleep 0.05; done
grep -q listening "$work/responder.log" || { cat "$work/responder.log"; exit 2; }

: > "$work/empty.conf"
# --no-sandbox: LeakSanitizer stops the process with ptrace from a cloned helper at exit and
# symbolizes by executing llvm-symbolizer, which the sandbox refuses by design; the test
# suite's hostile-responder tests run the daemon confined.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:quarantine_size_mb=16:malloc_context_size=20} \
LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/contrib/fuzz/lsan.supp:print_suppressions=0} \
    "$daemon_binary" -c "$work/empty.conf" --no-daemon --no-sandbox -v --metrics "127.0.0.1:$metrics_port" "$work/certs" \
    > "$work/daemon.log" 2>&1 &
daemon_pid=$!
pids+=("$daemon_pid")

# Every touch asks for a fresh staple at once (and cancels a fetch still running).
( while :; do touch "$work"/certs/c*.pem; sleep "$touch_interval"; done ) &
touch_pid=$!
pids+=("$touch_pid")

violations=0
violation() {
    echo "VIOLATION (seed $seed): $*"
    violations=$((violations + 1))
}

declare -A good
for file in "$work"/certs/*.ocsp; do good[$file]=$(sha256sum < "$file"); done
replaced=0

# Whether a staple file verifies for its certificate, as an operator would check it.
verifies() {
    local staple=$1 name
    name=$(basename "$staple" .pem.ocsp)
    local output
    output=$(openssl ocsp -respin "$staple" -issuer "$work/pki/ca.pem" -cert "$work/pki/$name.pem" \
        -CAfile "$work/pki/ca.pem" -no_nonce 2>&1) || return 1
    grep -q "Response verify OK" <<< "$output" && grep -q "$name.pem: good" <<< "$output" \
        && ! grep -q "Status times invalid" <<< "$output"
}

check_staples() {
    local file digest
    for file in "$work"/certs/*.ocsp; do
        digest=$(sha256sum < "$file")
        [ "$digest" = "${good[$file]}" ] && continue
        if verifies "$file"; then
            good[$file]=$digest
            replaced=$((replaced + 1))
        else
            local keep="$artifacts/mutation-$seed-$(basename "$file")"
            cp "$file" "$keep"
            violation "$file does not verify (kept as $keep)"
            good[$file]=$digest
        fi
    done
}

peak_rss=0
rss_at_10=0
scrape_failures=0
deadline=$(( $(date +%s) + seconds ))
started=$(date +%s)
while [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 1
    elapsed=$(( $(date +%s) - started ))
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        violation "the daemon died after $elapsed s"
        break
    fi
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak_rss" ] && peak_rss=$rss
    [ "$elapsed" -le 10 ] && rss_at_10=$rss
    if ! curl -s -m 5 -o "$work/metrics.txt" "http://127.0.0.1:$metrics_port/metrics"; then
        scrape_failures=$((scrape_failures + 1))
        violation "metrics listener did not answer within 5 s after $elapsed s"
    fi
    check_staples
    if [ $((elapsed % 10)) -eq 0 ]; then
        fetches=$(grep -E '^stapler_fetches_total' "$work/metrics.txt" | sed 's/stapler_fetches_total//' | tr '\n' ' ')
        echo "  $elapsed s: RSS $((rss / 1024)) MiB, fetches $fetches"
    fi
done

echo "final metrics:"
grep -E '^stapler_fetches_total' "$work/metrics.txt" | sed 's/^/  /' || true
kill "$touch_pid" 2>/dev/null || true
if kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    status=0
    for _ in $(seq 1 200); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$daemon_pid" 2>/dev/null; then
        violation "the daemon did not stop within 20 s of SIGTERM"
        kill -KILL "$daemon_pid"
    fi
    wait "$daemon_pid" || status=$?
    [ "$status" -eq 0 ] || violation "the daemon exited with status $status after SIGTERM"
fi
check_staples
kill -TERM "$responder_pid" 2>/dev/null || true
wait "$responder_pid" 2>/dev/null || true
tail -1 "$work/responder.log"

if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error|Fatal error' "$work/daemon.log"; then
    violation "sanitizer or runtime report in $work/daemon.log:"
    grep -m5 -E 'ERROR|SUMMARY|Fatal error|runtime error' "$work/daemon.log" || true
fi
peak_mb=$((peak_rss / 1024))
echo "peak RSS ${peak_mb} MiB (${rss_at_10} KiB after 10 s), staples replaced by valid mutations: $replaced," \
    "written: $(grep -c 'staple written' "$work/daemon.log" || true)"
[ "$peak_mb" -le "$rss_limit_mb" ] || violation "peak RSS $peak_mb MiB over the $rss_limit_mb MiB limit"

if [ "$violations" -gt 0 ]; then
    cp "$work/daemon.log" "$artifacts/mutation-$seed-daemon.log"
    rm -rf "$artifacts/mutation-$seed-responses" && cp -r "$work/recent" "$artifacts/mutation-$seed-responses"
    echo "mutation run FAILED: $violations violation(s), seed $seed; replay: $0 $seconds $seed"
    echo "daemon log and the last responses sent: $artifacts/mutation-$seed-*"
    exit 1
fi
echo "mutation run passed: seed $seed, $seconds s"
