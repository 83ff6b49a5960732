#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: prerequisites, a build with warnings
# shown, then every test (real OpenSSL responders, real HAProxy, real inotify and signals,
# all on loopback and in temporary directories).
set -euo pipefail
cd "$(dirname "$0")/.."
contrib/install-prerequisites.sh
swift build --build-tests
swift test --skip-build "$@"
