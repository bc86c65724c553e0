#!/usr/bin/env bash
# Base images for the builder tests, made offline (no registry is reachable from CI): one per
# architecture from the busybox roots scripts/rootfs.sh builds, each with `uname` and a shell.
#
#   scripts/images.sh [OUT]    default target/images; nothing is done when it is up to date
#
# OUT/oci        an OCI layout with one tag per architecture (arm64, s390x), which buildah and
#                podman read directly (`FROM oci:OUT/oci:arm64`)
# OUT/ARCH.tar   the same image as a `docker save` archive named localhost/busybox:ARCH, for
#                `docker load` (Docker 20.10 cannot load an OCI layout)
#
# Everything is made readable by every user: the tests build as an unprivileged one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in
-h | --help)
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
-*)
	echo "images.sh: unknown option '$1' (try --help)" >&2
	exit 2
	;;
esac
out=${1:-$root/target/images}
arches=(arm64 s390x)
stamp=$out/.made-from

for tool in umoci skopeo; do
	if ! command -v "$tool" >/dev/null; then
		echo "images.sh: $tool is missing (scripts/setup.sh installs it)" >&2
		exit 3
	fi
done

sources=()
for arch in "${arches[@]}"; do
	"$root/scripts/rootfs.sh" --arch "$arch"
	sources+=("$arch:$(cat "$root/target/rootfs/$arch/.built-from")")
done
if [[ "$(cat "$stamp" 2>/dev/null)" == "${sources[*]}" ]]; then
	exit 0
fi

new=$(mktemp -d "${out%/}.new.XXXXXX")
trap 'rm -rf "$new"' EXIT
umoci init --layout "$new/oci"
for arch in "${arches[@]}"; do
	umoci new --image "$new/oci:$arch"
	umoci config --image "$new/oci:$arch" --os linux --architecture "$arch" \
		--config.cmd /bin/sh
	# --rootless: the tree's owner (whoever ran rootfs.sh) is written as root in the layer.
	umoci insert --rootless --image "$new/oci:$arch" "$root/target/rootfs/$arch" /
	skopeo copy -q "oci:$new/oci:$arch" "docker-archive:$new/$arch.tar:localhost/busybox:$arch"
done
echo "${sources[*]}" >"$new/.made-from"
# umoci writes its blobs 0600.
chmod -R a+rX "$new"
rm -rf "$out"
mv "$new" "$out"
trap - EXIT
echo "images.sh: made $out (${arches[*]})" >&2
