#!/usr/bin/env bash
# What the arm64-host simulation (tests/integration/arm64_host.rs) needs besides the arm64
# build of binfmt-setup: QEMU's x86_64 emulator built for arm64, the file an arm64 Debian
# host has at /usr/bin/qemu-x86_64-static, from Debian's qemu-user-static:arm64.
#
#   scripts/arm64-host.sh [OUT]   default target/arm64-host; nothing is done when it is there
#
# Fetched by scripts/fetch-deb.sh, so the machine's apt configuration is not changed and
# nothing is installed. Only that one file is kept
# (OUT/usr/bin/qemu-x86_64-static), with directories no one else may write, as install's
# interpreter check requires.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/arm64-host}
want=$out/usr/bin/qemu-x86_64-static
package=qemu-user-static:arm64

if [[ -x $want ]]; then
	exit 0
fi
for tool in dpkg-deb tar; do
	if ! command -v "$tool" >/dev/null; then
		echo "arm64-host.sh: $tool is missing (scripts/setup.sh installs it)" >&2
		exit 3
	fi
done

deb=$("$root/scripts/fetch-deb.sh" "$package" "$root/target/rootfs/debs")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" ./usr/bin/qemu-x86_64-static
mkdir -p "$out/usr/bin"
chmod 0755 "$out" "$out/usr" "$out/usr/bin"
install -m 0755 "$work/usr/bin/qemu-x86_64-static" "$want"
echo "arm64-host.sh: extracted $want from $(basename "$deb")" >&2
