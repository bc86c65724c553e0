#!/usr/bin/env bash
# What the arm64-host simulation (tests/integration/arm64_host.rs) needs besides the arm64
# build of binfmt-setup: QEMU's x86_64 emulator built for arm64, the file an arm64 Debian
# host has at /usr/bin/qemu-x86_64-static, from Debian's qemu-user-static:arm64.
#
#   scripts/arm64-host.sh [OUT]   default target/arm64-host; nothing is done when it is there
#
# Fetched as scripts/rootfs.sh fetches busybox: apt-get download with a private list and
# cache directory (target/rootfs/apt) and arm64 added for that call only, so the machine's
# apt configuration is not changed and nothing is installed. Only that one file is kept
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
for tool in apt-get dpkg-deb tar; do
	if ! command -v "$tool" >/dev/null; then
		echo "arm64-host.sh: $tool is missing (scripts/setup.sh installs it)" >&2
		exit 3
	fi
done

apt_dir=$root/target/rootfs/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
chmod -R 0777 "$apt_dir"
apt_opts=(
	-q
	-o "APT::Architectures::=arm64"
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache=$apt_dir/cache"
	-o "Dir::State::status=/dev/null"
)
debs=$apt_dir/debs
if ! compgen -G "$debs/qemu-user-static_*_arm64.deb" >/dev/null; then
	echo "arm64-host.sh: fetching $package" >&2
	apt-get "${apt_opts[@]}" update >/dev/null
	(cd "$debs" && apt-get "${apt_opts[@]}" download "$package" >/dev/null)
fi
debs_found=("$debs"/qemu-user-static_*_arm64.deb)
deb=${debs_found[-1]}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" ./usr/bin/qemu-x86_64-static
mkdir -p "$out/usr/bin"
chmod 0755 "$out" "$out/usr" "$out/usr/bin"
install -m 0755 "$work/usr/bin/qemu-x86_64-static" "$want"
echo "arm64-host.sh: extracted $want from $(basename "$deb")" >&2
