#!/usr/bin/env bash
# Measures the system calls the stapler daemon makes, for SystemCallAllowList.swift: runs
# end-to-end test classes under `strace -f -ff` (one trace file per process and thread),
# keeps the processes that exec'd the stapler binary and the threads they started, and prints
# every system call they made with its count, then those that failed and the paths opened
# outside /tmp. Run it after a change that may call something new: the daemon under test is
# confined (the default), so a call the filter refuses shows under "failed" as EPERM (and a
# path Landlock refuses as EACCES); every name under "system calls" must be in one of the
# lists, or be one the filter refuses on purpose.
#
#   contrib/sandbox/measure-syscalls.sh [TestClass ...]     (default: the classes below)
#
# Needs strace (Debian package strace) and a debug build with tests
# (swift build --build-tests). Traces go to $MEASURE_WORK (default /tmp/stapler-measure).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${MEASURE_WORK:-/tmp/stapler-measure}
classes=("$@")
[ ${#classes[@]} -gt 0 ] || classes=(PipelineEndToEndTests HAProxyEndToEndTests MetricsEndToEndTests
    IssuerFetchEndToEndTests NamedRespondersEndToEndTests StapleDirectoryTests ProcessControlPidFileTests
    EventsEndToEndTests JournalLoggingTests HTTPSResponderTests TimeEndToEndTests HardeningFaultTests
    HardeningResponderTests HostileHeaderTests HAProxyLiveTests)
command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)" >&2; exit 2; }
bin="$root/.build/debug"
[ -x "$bin/StaplerPackageTests.xctest" ] || { echo "no test build in $bin: swift build --build-tests" >&2; exit 2; }

mkdir -p "$work"
for class in "${classes[@]}"; do
    traces="$work/traces-$class"
    rm -rf "$traces" && mkdir -p "$traces"
    echo "tracing $class" >&2
    strace -f -ff -qq -o "$traces/t" "$bin/StaplerPackageTests.xctest" "StaplerTests.$class" \
        > "$work/$class.log" 2>&1 || echo "  $class had failures (see $work/$class.log); its calls still count" >&2
done

python3 - "$work"/traces-* <<'PY'
import collections, glob, re, sys
files = {}
for directory in sys.argv[1:]:
    for path in glob.glob(directory + '/t.*'):
        files[(directory, int(path.rsplit('.', 1)[1]))] = path
call = re.compile(r'^([a-z0-9_]+)\(')
child = re.compile(r'^(clone3?|fork|vfork)\(.*\)\s*=\s*(\d+)')
counts, failed, paths = collections.Counter(), collections.Counter(), collections.Counter()

def scan(key, active):
    if key not in files: return
    for line in open(files[key], errors='replace'):
        match = call.match(line)
        if not match: continue
        name = match.group(1)
        if name == 'execve':
            program = line.split(',')[0]
            active = program.endswith('/stapler"')
            continue
        if not active: continue
        counts[name] += 1
        started = child.match(line)
        if started: scan((key[0], int(started.group(2))), True)
        if '= -1 E' in line: failed[(name, line.split('= -1 ')[1].split(' ')[0])] += 1
        quoted = re.search(r'"(/[^"]*)"', line)
        if quoted and not quoted.group(1).startswith('/tmp/'): paths[(name, quoted.group(1))] += 1

for key in files: scan(key, False)
print('system calls made by stapler processes and their threads:')
for name, count in sorted(counts.items()): print(f'  {name} {count}')
print('failed:')
for (name, error), count in sorted(failed.items()): print(f'  {name} {error} {count}')
print('paths outside /tmp:')
for (name, path), count in sorted(paths.items()): print(f'  {name} {path} {count}')
PY
