#!/usr/bin/env bash
# The Debian package, tested the way an operator uses it, in this machine's real dpkg
# database (CI runs as root; elsewhere sudo is used): build it, lintian reports no error,
# dpkg -i installs it, /usr/bin/stapler runs a pass with the installed config, the unit is
# valid and installed but neither enabled nor started, an upgrade and dpkg -r keep an
# edited conffile, dpkg -P removes everything, the link `systemctl enable` made included.
# Whatever happens, the package is purged on exit.
#
# Usage: contrib/debian/test-package.sh [--binary FILE]   (default: build the release binary)
# It refuses to run where a stapler package or any file it ships is already installed:
# purging would take the operator's copy with it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

step() { echo "--- package: $*"; }
fail() { echo "!!! package: $*" >&2; exit 1; }
package_status() { dpkg-query -W -f='${db:Status-Abbrev}' stapler 2>/dev/null || true; }

step "building"
deb=$("$here/build-package.sh" "$@" | tail -1)
version=$(dpkg-deb -f "$deb" Version)

step "lintian $(basename "$deb")"
lintian --fail-on error "$deb" || fail "lintian reports errors in $deb"

case "$(package_status)" in "" | "un "*) ;; *) fail "a stapler package is already installed here (dpkg -s stapler); not touching it" ;; esac
while read -r path; do
    [ -e "$path" ] && fail "$path already exists on this machine; the test would install over it and purge it"
done < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./\(.*[^/]\)$|/\1|p')

scratch=$(mktemp -d /tmp/stapler-package-test.XXXXXX)
cleanup() {
    "${sudo_cmd[@]}" dpkg --purge stapler >/dev/null 2>&1 || echo "!!! package: dpkg --purge stapler failed" >&2
    rm -rf "$scratch"
}
trap cleanup EXIT

step "dpkg -i"
"${sudo_cmd[@]}" dpkg -i "$deb"
[ "$(package_status)" = "ii " ] || fail "dpkg -s stapler: $(package_status), not installed"
"${sudo_cmd[@]}" dpkg --verify stapler || fail "dpkg --verify: installed files differ from the package"
[ "$(dpkg-query -S /usr/bin/stapler)" = "stapler: /usr/bin/stapler" ] || fail "/usr/bin/stapler is not the package's"
[ "$(/usr/bin/stapler --version)" = "stapler $version" ] || fail "/usr/bin/stapler --version: $(/usr/bin/stapler --version)"
conffiles=$(dpkg-query -W -f='${Conffiles}' stapler)
for conffile in /etc/stapler/stapler.conf /etc/logrotate.d/stapler; do
    grep -q "^ $conffile " <<<"$conffiles" || fail "$conffile is not a conffile: $conffiles"
done

step "a pass with the installed binary and config"
output=$(/usr/bin/stapler -c /etc/stapler/stapler.conf --one-off -v --no-haproxy-sockets "$scratch" 2>&1) \
    || fail "stapler --one-off exited $?: $output"
grep -q "one pass done: 0 stapled, 0 failed" <<<"$output" || fail "no pass: $output"

step "the unit: valid, installed, disabled, not started"
unit=/lib/systemd/system/stapler.service
wants=/etc/systemd/system/multi-user.target.wants/stapler.service
grep -q '^ExecStart=/usr/bin/stapler ' "$unit" || fail "$unit does not start /usr/bin/stapler"
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
enabled=$(systemctl is-enabled stapler.service 2>&1 || true)
[ "$enabled" = disabled ] && [ ! -L "$wants" ] || fail "systemctl is-enabled stapler: $enabled"
if [ -d /run/systemd/system ]; then
    ! systemctl --quiet is-active stapler.service || fail "the install started stapler.service"
fi
# What the operator does once the config is edited (no --now: nothing to serve here).
"${sudo_cmd[@]}" systemctl enable --quiet stapler.service
[ -L "$wants" ] || fail "systemctl enable stapler made no $wants"

step "an upgrade (the same package again) and dpkg -r keep the edited conffile"
edit="# edited by test-package.sh $$"
echo "$edit" | "${sudo_cmd[@]}" tee -a /etc/stapler/stapler.conf >/dev/null
"${sudo_cmd[@]}" dpkg -i "$deb"
[ "$(package_status)" = "ii " ] || fail "after the upgrade: $(package_status)"
tail -1 /etc/stapler/stapler.conf | grep -qx "$edit" || fail "the upgrade lost the edit to /etc/stapler/stapler.conf"
"${sudo_cmd[@]}" dpkg -r stapler
[ "$(package_status)" = "rc " ] || fail "after dpkg -r: $(package_status), expected config-files"
[ ! -e /usr/bin/stapler ] && [ ! -e "$unit" ] || fail "dpkg -r left /usr/bin/stapler or $unit"
tail -1 /etc/stapler/stapler.conf | grep -qx "$edit" || fail "dpkg -r lost the edit to /etc/stapler/stapler.conf"

step "dpkg -P removes the rest"
"${sudo_cmd[@]}" dpkg -P stapler
case "$(package_status)" in "" | "un "*) ;; *) fail "after dpkg -P: $(package_status)" ;; esac
for path in /etc/stapler /etc/logrotate.d/stapler /usr/share/doc/stapler "$wants"; do
    [ ! -e "$path" ] && [ ! -L "$path" ] || fail "dpkg -P left $path"
done
step "ok: $(basename "$deb") builds, passes lintian, installs, runs, removes and purges"
