#!/usr/bin/env bash
# Builds ynni's Debian package from a built binary and prints the package's path.
#   packaging/deb/build.sh                          # target/release/ynni, revision 1
#   packaging/deb/build.sh target/debug/ynni 2      # another binary, revision 2
# The package: /usr/bin/ynni (web UI inside), the systemd unit, /etc/ynni/ynni.toml (a
# conffile), and maintainer scripts that create the `ynni` system user and /var/lib/ynni.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/ynni}
rev=${2:-1}
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
out=target/deb
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
here=packaging/deb
install -D -m 0755 "$bin" "$stage/usr/bin/ynni"
install -D -m 0644 "$here/ynni.service" "$stage/lib/systemd/system/ynni.service"
install -D -m 0640 "$here/ynni.toml" "$stage/etc/ynni/ynni.toml"
install -D -m 0644 README.md "$stage/usr/share/doc/ynni/README.md"
install -D -m 0644 "$here/copyright" "$stage/usr/share/doc/ynni/copyright"
install -d "$stage/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
echo /etc/ynni/ynni.toml >"$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: ynni
Version: $version-$rev
Architecture: $arch
Maintainer: ynni developers <ynni@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libgcc-s1, passwd
Section: net
Priority: optional
Description: MQTT-first, emoncms-compatible energy monitoring server
 One process with an embedded MQTT broker, emoncms's HTTP API and feed file
 formats, and a web UI: emonhub, ESP sketches and scripts that post to emoncms
 post to ynni unchanged. Runs as the ynni system user with its data in
 /var/lib/ynni and its settings in /etc/ynni/ynni.toml.
CONTROL
deb="$out/ynni_${version}-${rev}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
