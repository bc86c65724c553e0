#!/usr/bin/env bash
# Build binfmt-setup's OCI image offline, with umoci: no registry, no daemon, no base image.
#
#   scripts/image.sh                            -> target/image/oci:<version> (Cargo.toml's)
#   scripts/image.sh --tag ci --profile quick    what the tests build and run
#   scripts/image.sh --assemble DIR --binary FILE        only lay out the root file system
#                                                        (configs/docker/Dockerfile does this)
#
# Options:
#   --tag TAG            the image's name in the layout (default: the crate's version)
#   --layout DIR         the OCI image layout to write (default target/image/oci)
#   --profile NAME       Cargo profile of the static build (default release, as shipped;
#                        quick builds in a third of the time, unoptimised)
#   --binary FILE        a static binfmt-setup to use instead of building one
#   --busybox-deb FILE   Debian's busybox-static .deb to take cat from (default: the
#                        installed package, else fetched with scripts/fetch-deb.sh)
#   --assemble DIR       lay out the root file system in DIR (new or empty) and stop
#
# The image (the same from the Dockerfile, which runs --assemble):
#   /usr/local/bin/binfmt-setup     static (musl), the entrypoint: binfmt-setup init
#   /usr/bin/qemu-*-static          every interpreter of the installed qemu-user-static
#   /usr/bin/busybox, /usr/bin/cat  Debian's busybox-static; cat for a readiness probe
#   /usr/share/doc/binfmt-setup/binfmt-setup.toml.example
#   /usr/share/doc/{qemu-user-static,busybox-static}/copyright
#   /tmp                            1777: `test` writes its probes there
# Config: ENTRYPOINT ["/usr/local/bin/binfmt-setup", "init"], PATH=/usr/local/bin:/usr/bin,
# os and architecture those of the binary. Every program is checked static and of that
# platform with binfmt-setup inspect. Nothing is rebuilt when the tag already holds the same
# files. Prints LAYOUT:TAG on stdout.
#
# Exit codes: 0 built (or up to date); 1 a step failed; 2 bad arguments; 3 a tool or package
# is missing (scripts/setup.sh installs them).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
me=image.sh

# The image's configuration, kept here once; tests/integration/image.rs checks the
# Dockerfile says the same.
entrypoint=(/usr/local/bin/binfmt-setup init)
env_path=PATH=/usr/local/bin:/usr/bin

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
bad() {
	echo "$me: $*" >&2
	exit 2
}
missing() {
	echo "$me: $*" >&2
	exit 3
}

tag=
layout=
profile=release
binary=
busybox_deb=
assemble_dir=
while (($#)); do
	case $1 in
	-h | --help)
		usage
		exit 0
		;;
	--tag | --layout | --profile | --binary | --busybox-deb | --assemble)
		if (($# < 2)) || [[ -z $2 || $2 == -* ]]; then
			bad "$1 needs a value (try --help)"
		fi
		case $1 in
		--tag) tag=$2 ;;
		--layout) layout=$2 ;;
		--profile) profile=$2 ;;
		--binary) binary=$2 ;;
		--busybox-deb) busybox_deb=$2 ;;
		--assemble) assemble_dir=$2 ;;
		esac
		shift 2
		;;
	*) bad "unknown argument '$1' (try --help)" ;;
	esac
done

if [[ -n $tag && ! $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
	bad "--tag '$tag': a tag is letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-'), e.g. --tag ci"
fi
if [[ -n $binary ]]; then
	if [[ ! -f $binary || ! -x $binary ]]; then
		bad "--binary $binary: no such executable file (build one with scripts/build-static.sh)"
	fi
	if ! "$binary" inspect --json "$binary" 2>/dev/null | grep -q '"static": true'; then
		bad "--binary $binary: not a statically linked binfmt-setup for this machine (scripts/build-static.sh builds one)"
	fi
fi
if [[ -n $busybox_deb && ! -f $busybox_deb ]]; then
	bad "--busybox-deb $busybox_deb: no such file (fetch one: scripts/fetch-deb.sh busybox-static:$(dpkg --print-architecture 2>/dev/null || echo ARCH) DIR)"
fi
if [[ -n $assemble_dir ]]; then
	if [[ -z $binary ]]; then
		bad "--assemble needs --binary FILE (the static binfmt-setup to put in the image)"
	fi
	if [[ -n $tag || -n $layout || $profile != release ]]; then
		bad "--assemble only lays out files: --tag, --layout and --profile do not apply"
	fi
	if [[ -e $assemble_dir ]] && [[ ! -d $assemble_dir || -n $(ls -A "$assemble_dir") ]]; then
		bad "--assemble $assemble_dir: exists and is not an empty directory (name a new one)"
	fi
fi
if ! dpkg-query -W -f='${Status}' qemu-user-static 2>/dev/null | grep -q 'install ok installed'; then
	missing "Debian's qemu-user-static is not installed (scripts/setup.sh installs it; in a Dockerfile: apt-get install qemu-user-static)"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Set bb_root to a directory holding busybox-static's files: / when the package is
# installed, else where its .deb is unpacked.
find_busybox() {
	if [[ -z $busybox_deb ]] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
		bb_root=/
		return
	fi
	local deb=$busybox_deb
	if [[ -z $deb ]]; then
		deb=$("$root/scripts/fetch-deb.sh" "busybox-static:$(dpkg --print-architecture)" "$root/target/image/debs") || exit 3
	fi
	dpkg-deb -x "$deb" "$work/busybox"
	bb_root=$work/busybox
}

# Lay out the image's root file system in $1, from binary $2 and busybox-static's files
# under $3. The only place the layout is decided.
assemble() {
	local dir=$1 bin=$2 bb=$3
	local qemu=()
	mapfile -t qemu < <(dpkg-query -L qemu-user-static | grep -E '^/usr/bin/qemu-[^/]+-static$' | sort)
	if ((${#qemu[@]} == 0)); then
		missing "qemu-user-static lists no /usr/bin/qemu-*-static (reinstall it: apt-get install --reinstall qemu-user-static)"
	fi
	local busybox=
	for candidate in "$bb/bin/busybox" "$bb/usr/bin/busybox"; do
		[[ -f $candidate ]] && busybox=$candidate && break
	done
	[[ -n $busybox ]] || missing "no bin/busybox in busybox-static's files under $bb"

	mkdir -p "$dir"
	chmod 0755 "$dir"
	install -d -m 0755 "$dir/usr" "$dir/usr/local" "$dir/usr/local/bin" "$dir/usr/bin" \
		"$dir/usr/share" "$dir/usr/share/doc" "$dir/usr/share/doc/binfmt-setup" \
		"$dir/usr/share/doc/qemu-user-static" "$dir/usr/share/doc/busybox-static"
	install -d -m 1777 "$dir/tmp"
	install -m 0755 "$bin" "$dir/usr/local/bin/binfmt-setup"
	install -m 0755 "${qemu[@]}" "$dir/usr/bin/"
	install -m 0755 "$busybox" "$dir/usr/bin/busybox"
	ln -s busybox "$dir/usr/bin/cat"
	install -m 0644 "$root/configs/binfmt-setup.toml" "$dir/usr/share/doc/binfmt-setup/binfmt-setup.toml.example"
	install -m 0644 /usr/share/doc/qemu-user-static/copyright "$dir/usr/share/doc/qemu-user-static/copyright"
	install -m 0644 "$bb/usr/share/doc/busybox-static/copyright" "$dir/usr/share/doc/busybox-static/copyright"

	# F opens each interpreter once and uses it in every container: it must be static, and
	# of the image's platform like everything else here. Asked of binfmt-setup itself.
	local programs=("$dir/usr/local/bin/binfmt-setup" "$dir"/usr/bin/qemu-*-static "$dir/usr/bin/busybox")
	local report platform
	report=$("$dir/usr/local/bin/binfmt-setup" inspect --json "${programs[@]}") ||
		{ echo "$me: binfmt-setup inspect failed on the image's programs" >&2 && exit 1; }
	platform=$(sed -n 's/^ *"platform": "\(.*\)",$/\1/p' <<<"$report" | sort -u)
	if [[ $(grep -c '"static": true' <<<"$report") != "${#programs[@]}" || $(wc -l <<<"$platform") != 1 ]]; then
		echo "$me: every program in the image must be static and of one platform; binfmt-setup inspect says:" >&2
		echo "$report" >&2
		exit 1
	fi
	echo "$platform" >"$work/platform"
}

if [[ -n $assemble_dir ]]; then
	find_busybox
	assemble "$assemble_dir" "$binary" "$bb_root"
	echo "$me: laid out $(find "$assemble_dir" -mindepth 1 | wc -l) paths in $assemble_dir ($(cat "$work/platform"))" >&2
	exit 0
fi

command -v umoci >/dev/null || missing "umoci is missing (scripts/setup.sh installs it)"
layout=${layout:-$root/target/image/oci}
if [[ -z $tag ]]; then
	tag=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
fi

if [[ -z $binary ]]; then
	"$root/scripts/build-static.sh" --profile "$profile" >&2
	dir=$profile
	[[ $profile == dev ]] && dir=debug
	binary=$root/target/$(uname -m)-unknown-linux-musl/$dir/binfmt-setup
fi

find_busybox
assemble "$work/rootfs" "$binary" "$bb_root"
platform=$(cat "$work/platform")
IFS=/ read -r os arch variant <<<"$platform"
if [[ -n $variant ]]; then
	missing "the binary is $platform, and umoci 0.4 cannot record a platform variant: build this image on an amd64 or arm64 machine"
fi

# Up to date when the tag exists and was built from exactly these files and this config.
inputs=$(
	cd "$work/rootfs"
	find . -printf '%p %y %m %U:%G %l\n' | LC_ALL=C sort
	find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	echo "${entrypoint[*]} $env_path $platform"
)
stamp=$layout.$tag.inputs
has_tag() { [[ -f $layout/index.json ]] && grep -q "\"org.opencontainers.image.ref.name\":\"$tag\"" "$layout/index.json"; }
if has_tag && [[ -f $stamp ]] && [[ $(cat "$stamp") == "$inputs" ]]; then
	echo "$me: $layout:$tag is up to date" >&2
	echo "$layout:$tag"
	exit 0
fi

rootless=()
if ((EUID != 0)); then
	# Files in the image must be root's (install refuses interpreters owned by others):
	# umoci's rootless mode records the caller's files as root's.
	rootless=(--rootless)
fi
mkdir -p "$(dirname "$layout")"
rm -f "$stamp"
[[ -f $layout/oci-layout ]] || umoci init --layout "$layout"
if has_tag; then
	umoci rm --image "$layout:$tag"
fi
umoci new --image "$layout:$tag"
umoci insert "${rootless[@]}" --image "$layout:$tag" --history.created_by "scripts/image.sh: binfmt-setup, qemu-user-static, busybox-static" "$work/rootfs" /
config=(--os "$os" --architecture "$arch" --config.env "$env_path")
for word in "${entrypoint[@]}"; do
	config+=(--config.entrypoint "$word")
done
umoci config --image "$layout:$tag" "${config[@]}" --history.created_by "scripts/image.sh: ENTRYPOINT ${entrypoint[*]}"
umoci gc --layout "$layout"
echo "$inputs" >"$stamp"
echo "$me: built $layout:$tag ($platform, $(du -sh "$layout" | cut -f1) in the layout)" >&2
echo "$layout:$tag"
