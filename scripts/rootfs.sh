#!/usr/bin/env bash
# Build a tiny arm64 root filesystem for the `run --rootfs` tests: Debian's statically linked
# busybox for arm64 and one symlink per applet.
#
#   scripts/rootfs.sh [OUT]     default target/rootfs/arm64; nothing is done when it exists
#
# The package is fetched with apt-get using a private list and cache directory under
# target/rootfs/apt and arm64 added for that call only: the machine's apt configuration is
# not changed (no dpkg --add-architecture) and nothing is installed. Everything stays under
# target/. The result is readable by every user: the tests run `binfmt-setup run` in it as
# an unprivileged one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/rootfs/arm64}
package=busybox-static:arm64
stamp=$out/.built-from

if [[ -x $out/bin/busybox && -f $stamp ]]; then
	exit 0
fi

for tool in apt-get dpkg-deb qemu-aarch64-static; do
	if ! command -v "$tool" >/dev/null; then
		echo "rootfs.sh: $tool is missing (scripts/setup.sh installs it)" >&2
		exit 3
	fi
done

apt_dir=$root/target/rootfs/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
# apt fetches as its _apt user where the directory lets it.
chmod -R 0777 "$apt_dir"
apt_opts=(
	-q
	-o "APT::Architectures::=arm64"
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache=$apt_dir/cache"
	-o "Dir::State::status=/dev/null"
)
debs=$apt_dir/debs
if ! compgen -G "$debs/busybox-static_*_arm64.deb" >/dev/null; then
	echo "rootfs.sh: fetching $package" >&2
	apt-get "${apt_opts[@]}" update >/dev/null
	(cd "$debs" && apt-get "${apt_opts[@]}" download "$package" >/dev/null)
fi
debs_found=("$debs"/busybox-static_*_arm64.deb)
deb=${debs_found[-1]}

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
