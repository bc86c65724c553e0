#!/usr/bin/env bash
# Build a tiny arm64 root filesystem for the `run --rootfs` tests: Debian's statically linked
# busybox for arm64 and one symlink per applet.
#
#   scripts/rootfs.sh [OUT]     default target/rootfs/arm64; nothing is done when it exists
#
# The package is fetched by scripts/fetch-deb.sh: apt-get with a private list and cache
# directory under target/apt and arm64 added for that call only, so the machine's apt
# configuration is not changed (no dpkg --add-architecture) and nothing is installed.
# Everything stays under target/. The result is readable by every user: the tests run
# `binfmt-setup run` in it as an unprivileged one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/rootfs/arm64}
package=busybox-static:arm64
stamp=$out/.built-from

if [[ -x $out/bin/busybox && -f $stamp ]]; then
	exit 0
fi

for tool in dpkg-deb qemu-aarch64-static; do
	if ! command -v "$tool" >/dev/null; then
		echo "rootfs.sh: $tool is missing (scripts/setup.sh installs it)" >&2
		exit 3
	fi
done

deb=$("$root/scripts/fetch-deb.sh" "$package" "$root/target/rootfs/debs")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/pkg"
new=$work/rootfs
mkdir -p "$new"/{bin,dev,proc,tmp,etc,root}
cp "$work/pkg/bin/busybox" "$new/bin/busybox"
# The applet list comes from busybox itself, run directly under QEMU (no binfmt_misc).
qemu-aarch64-static "$new/bin/busybox" --list >"$work/applets"
while read -r applet; do
	[[ $applet == busybox ]] || ln -s busybox "$new/bin/$applet"
done <"$work/applets"
echo "root:x:0:0:root:/root:/bin/sh" >"$new/etc/passwd"
echo "root:x:0:" >"$new/etc/group"
basename "$deb" >"$new/.built-from"
chmod -R a+rX "$new"
chmod 1777 "$new/tmp"

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$new" "$out"
echo "rootfs.sh: built $out from $(basename "$deb")" >&2
