#!/usr/bin/env bash
# Fetch one Debian package file (.deb) without installing it, for any architecture, and
# print its path.
#
#   scripts/fetch-deb.sh PACKAGE:ARCH DIR    e.g. busybox-static:arm64 target/rootfs/debs
#
# Nothing is fetched when DIR already holds PACKAGE_*_ARCH.deb. Otherwise apt-get downloads
# it using a private package list and cache directory (target/apt) with ARCH added for that
# call only: the machine's apt configuration is not changed (no dpkg --add-architecture),
# its own lists are not refreshed, and nothing is installed.
#
# Exit codes: 0 the path was printed; 2 bad arguments; 3 apt-get could not fetch it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
me=fetch-deb.sh

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
case ${1-} in
-h | --help)
	usage
	exit 0
	;;
esac
if (($# != 2)); then
	echo "$me: expected PACKAGE:ARCH DIR, got $# argument(s) (try --help)" >&2
	exit 2
fi
spec=$1
out=$2
if [[ ! $spec =~ ^([a-z0-9][a-z0-9.+-]+):([a-z0-9]+)$ ]]; then
	echo "$me: '$spec' is not PACKAGE:ARCH (a Debian package and architecture, e.g. busybox-static:arm64)" >&2
	exit 2
fi
package=${BASH_REMATCH[1]}
arch=${BASH_REMATCH[2]}

newest() { compgen -G "$out/${package}_*_$arch.deb" | sort | tail -n 1; }
if deb=$(newest) && [[ -n $deb ]]; then
	echo "$deb"
	exit 0
fi

for tool in apt-get dpkg-deb; do
	if ! command -v "$tool" >/dev/null; then
		echo "$me: $tool is missing: this needs Debian's apt (a Debian or Ubuntu machine)" >&2
		exit 3
	fi
done

apt_dir=$root/target/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$out"
# apt fetches as its _apt user where the directory lets it.
chmod -R 0777 "$apt_dir"
chmod 0777 "$out"
apt_opts=(
	-q
	-o "APT::Architectures::=$arch"
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache=$apt_dir/cache"
	-o "Dir::State::status=/dev/null"
)
echo "$me: fetching $package:$arch" >&2
fetch() { (cd "$out" && apt-get "${apt_opts[@]}" download "$package:$arch" >/dev/null); }
# The private lists may be missing or stale (a new point release moved the file): refresh
# them once and try again.
if ! fetch 2>/dev/null; then
	if ! apt-get "${apt_opts[@]}" update >/dev/null || ! fetch; then
		echo "$me: apt-get could not fetch $package:$arch (is a Debian mirror reachable? see /etc/apt/sources.list*)" >&2
		exit 3
	fi
fi
deb=$(newest)
if [[ -z $deb ]]; then
	echo "$me: apt-get reported success but no ${package}_*_$arch.deb is in $out" >&2
	exit 3
fi
echo "$deb"
