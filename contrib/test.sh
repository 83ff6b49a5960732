#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: prerequisites, a build with warnings
# shown, then every test (real OpenSSL responders, real HAProxy, real inotify and signals,
# all on loopback and in temporary directories), then the Debian package built from the
# release binary and installed, run, removed and purged for real (contrib/debian/
# test-package.sh: root or sudo), then each fuzz target for FUZZ_SECONDS (default 10; 0
# skips them) under AddressSanitizer: the parsers of hostile bytes hand them to C
# libraries, where a memory error would not show as a failing assertion. Last, the
# AddressSanitizer daemon against a responder of randomly built answers for MUTATION_SECONDS
# (default 60; 0 skips it) with a fresh seed (contrib/fuzz/mutate-daemon.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/install-prerequisites.sh
swift build --build-tests
swift test --skip-build "$@"
contrib/debian/test-package.sh
fuzz_seconds=${FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" -gt 0 ]; then
    contrib/fuzz/run.sh "$fuzz_seconds"
fi
mutation_seconds=${MUTATION_SECONDS:-60}
if [ "$mutation_seconds" -gt 0 ]; then
    contrib/fuzz/mutate-daemon.sh "$mutation_seconds"
fi
