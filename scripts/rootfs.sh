#!/usr/bin/env bash
# Build a tiny root filesystem from Debian's statically linked busybox for one architecture,
# with one symlink per applet: the `run --rootfs` tests use the arm64 one, scripts/images.sh
# makes the builder tests' base images from arm64 and s390x ones.
#
#   scripts/rootfs.sh [--arch ARCH] [OUT]   ARCH a Debian architecture (default arm64);
#                                           OUT default target/rootfs/ARCH; nothing is done
#                                           when it is already built
#
# The package is fetched by scripts/fetch-deb.sh: the machine's apt configuration is not
# changed (no dpkg --add-architecture) and nothing is installed. Everything stays under
# target/. The result is readable by every user: the tests run `binfmt-setup run` in it as
# an unprivileged one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
arch=arm64
out=
while (($#)); do
	case $1 in
	--arch)
		[[ $# -ge 2 ]] || {
			echo "rootfs.sh: --arch needs a value (arm64, s390x, ...)" >&2
			exit 2
		}
		arch=$2
		shift 2
		;;
	-h | --help)
		sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "rootfs.sh: unknown option '$1' (try --help)" >&2
		exit 2
		;;
	*)
		out=$1
		shift
		;;
	esac
done
# The QEMU that lists the applets: busybox --list runs under it directly, no binfmt_misc.
case $arch in
amd64) qemu="qemu-x86_64-static" ;;
arm64) qemu="qemu-aarch64-static" ;;
armhf) qemu="qemu-arm-static" ;;
ppc64el) qemu="qemu-ppc64le-static" ;;
riscv64) qemu="qemu-riscv64-static" ;;
s390x) qemu="qemu-s390x-static" ;;
*)
	echo "rootfs.sh: unknown architecture '$arch' (Debian names: amd64, arm64, armhf, ppc64el, riscv64, s390x)" >&2
	exit 2
	;;
esac
out=${out:-$root/target/rootfs/$arch}
package=busybox-static:$arch
stamp=$out/.built-from

if [[ -x $out/bin/busybox && -f $stamp ]]; then
	exit 0
fi

for tool in dpkg-deb "$qemu"; do
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
"$qemu" "$new/bin/busybox" --list >"$work/applets"
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
