#!/usr/bin/env bash
# Builds stapler_<version>_<architecture>.deb from the release binary with Debian's own
# tools: dpkg-shlibdeps works out Depends from the libraries the binary links, dpkg-deb
# packs the tree. The other files of this directory are the package's control files.
#
# Usage: contrib/debian/build-package.sh [--binary FILE] [--output DIR]
#   --binary FILE  package this binary instead of building it; it must have no RUNPATH
#   --output DIR   where the .deb goes (default: .build/debian)
# Without --binary the release binary is built first, as the README builds it, plus
# --disable-local-rpath: SwiftPM's $ORIGIN RUNPATH has nothing to find beside a binary with
# a static standard library, and lintian rejects a RUNPATH. The version is the binary's own
# (stapler --version); contrib/debian/changelog must have an entry for it.
# The last line of output is the path of the package.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/contrib/debian"
binary=""
output="$root/.build/debian"
while (($#)); do
    case "$1" in
    --binary) binary=${2:?--binary needs a file}; shift 2 ;;
    --output) output=${2:?--output needs a directory}; shift 2 ;;
    *) echo "usage: $0 [--binary FILE] [--output DIR]" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    (cd "$root" && swift build -c release --static-swift-stdlib --disable-local-rpath --product stapler >&2)
    binary="$root/.build/release/stapler"
fi
[ -x "$binary" ] || { echo "$binary: no executable there" >&2; exit 1; }
if readelf -d "$binary" | grep -Eq '\((RPATH|RUNPATH)\)'; then
    echo "$binary: has a RUNPATH; build it with swift build --disable-local-rpath (lintian rejects it)" >&2
    exit 1
fi
version_line=$("$binary" --version)
version=${version_line#stapler }
if [ "$version_line" = "$version" ] || ! [[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
    echo "$binary: --version printed \"$version_line\", not \"stapler <version>\"" >&2
    exit 1
fi
changelog_version=$(dpkg-parsechangelog -l "$here/changelog" -S Version)
if [ "$changelog_version" != "$version" ]; then
    echo "$here/changelog: newest entry is $changelog_version, the binary is $version: add an entry for $version" >&2
    exit 1
fi
architecture=$(dpkg --print-architecture)
# Every file dated like the newest changelog entry, so the same binary gives the same .deb.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$here/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

work=$(mktemp -d /tmp/stapler-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
package="$work/debian/stapler"
umask 022

# /usr/bin/stapler, stripped as dh_strip does.
install -D -m 0755 "$binary" "$package/usr/bin/stapler"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$package/usr/bin/stapler"

install -d "$package/usr/share/man/man8" "$package/usr/share/doc/stapler"
gzip -9n < "$root/contrib/man/stapler.8" > "$package/usr/share/man/man8/stapler.8.gz"
gzip -9n < "$here/changelog" > "$package/usr/share/doc/stapler/changelog.gz"
install -m 0644 "$here/copyright" "$package/usr/share/doc/stapler/copyright"
install -D -m 0644 "$root/contrib/stapler.conf" "$package/etc/stapler/stapler.conf"
install -D -m 0644 "$root/contrib/logrotate/stapler" "$package/etc/logrotate.d/stapler"

# The unit as contrib/systemd has it, starting /usr/bin/stapler, and with the hand-install
# steps of its header replaced by what applies to the package.
unit="$package/lib/systemd/system/stapler.service"
install -d "$(dirname "$unit")"
sed -e '1s|^# /etc/systemd/system/stapler.service:|# /lib/systemd/system/stapler.service, from the stapler package:|' \
    -e '/^# Install:$/,/systemctl enable --now stapler$/c\
# Disabled until /etc/stapler/stapler.conf names the certificates and HAProxy sockets:\
#     systemctl enable --now stapler\
# Change it with a drop-in (systemctl edit stapler): an upgrade replaces this file.' \
    -e 's|^ExecStart=/usr/local/bin/stapler |ExecStart=/usr/bin/stapler |' \
    "$root/contrib/systemd/stapler.service" > "$unit"
chmod 0644 "$unit"
if ! grep -q '^ExecStart=/usr/bin/stapler ' "$unit" || grep -q '/usr/local' "$unit"; then
    echo "contrib/systemd/stapler.service: its header or ExecStart= changed shape; adapt $0" >&2
    exit 1
fi

# Control files. Depends: the libraries /usr/bin/stapler links, with the versions whose
# symbols it uses (dpkg-shlibdeps reads debian/control for the package's name).
install -d "$package/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$package/DEBIAN/"
install -m 0644 "$here/conffiles" "$package/DEBIAN/conffiles"
printf 'Source: stapler\n\nPackage: stapler\nArchitecture: any\n' > "$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O -edebian/stapler/usr/bin/stapler | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "dpkg-shlibdeps found no dependencies for $binary" >&2; exit 1; }
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$package" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCHITECTURE@|$architecture|" -e "s|@DEPENDS@|$depends|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" "$here/control" > "$package/DEBIAN/control"
(cd "$package" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z \
    | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$package/DEBIAN/md5sums"
find "$package" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$output"
deb="$output/stapler_${version}_${architecture}.deb"
dpkg-deb --root-owner-group -Zxz --build "$package" "$deb" >&2
echo "$deb"
