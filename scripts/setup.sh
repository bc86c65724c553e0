#!/usr/bin/env bash
# Prepare this machine for binfmt-setup: install the Debian packages the tool and its tests
# use (only those missing), then build the release binary.
#
#   scripts/setup.sh            install packages, build target/release/binfmt-setup
#   scripts/setup.sh --no-build install packages only (scripts/test.sh uses this)
#
# Installing packages does not register anything in binfmt_misc: Debian's qemu-user-static
# only ships binfmt.d files, and nothing here runs systemd-binfmt or update-binfmts.
# The arm64 busybox for the rootless `run` tests is fetched by scripts/rootfs.sh into target/
# with a private apt list directory (the machine's apt architectures are not changed).
# Peer tools whose packages would act on the host when installed (binfmt-support's scripts
# enable every known format) are unpacked into target/peers instead, scripts not run; the
# tests and benchmarks run them only inside private binfmt_misc instances.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=1
for arg in "$@"; do
	case $arg in
	--no-build) build=0 ;;
	-h | --help)
		sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "setup.sh: unknown option '$arg' (try --help)" >&2
		exit 2
		;;
	esac
done

packages=(
	qemu-user-static # the emulators binfmt-setup registers and the tests run
	qemu-user        # dynamically linked emulators: diagnose's INTERPRETER_DYNAMIC test
	file             # the peer `inspect` is benchmarked against
	hyperfine        # benchmark timing
	shellcheck       # lint for these scripts
	util-linux       # unshare and nsenter for private binfmt_misc instances
	python3          # scripts/bench.sh reads JSON reports with it
	systemd          # systemd-binfmt, the peer that loads `export --format systemd` files
	libpipeline1     # a library update-binfmts (unpacked below) links against
	umoci            # builds the OCI images the scan tests read
	zstd             # the scan tests' .tar.zst (GNU tar --zstd)
	cmake            # builds zlib-ng, the inflate scan's gzip reading goes through
	pax-utils        # scanelf, the peer `scan` is benchmarked against
	time             # GNU time: peak memory in the scan benchmark
	man-db           # man -l: the tests render the generated manual pages
	# Toolchains that build the test fixtures: clang/lld for most targets, GNU binutils
	# where lld 16 has no backend (s390x, m68k, ppc64 ELFv1, arm64 ILP32).
	clang-16 lld-16 llvm-16
	binutils-s390x-linux-gnu binutils-powerpc64-linux-gnu
	binutils-m68k-linux-gnu binutils-aarch64-linux-gnu
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

sudo=()
if ((EUID != 0)) && command -v sudo >/dev/null; then
	sudo=(sudo)
fi
if ((${#missing[@]})); then
	if ((EUID != 0)) && ((${#sudo[@]} == 0)); then
		echo "setup.sh: need root to install: ${missing[*]} (run as root or install sudo)" >&2
		exit 3
	fi
	echo "setup.sh: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Unpack (never install) peer packages into target/peers/root.
peers=(binfmt-support arch-test)
peer_root=$root/target/peers/root
peer_stamp=$root/target/peers/stamp
if [[ "$(cat "$peer_stamp" 2>/dev/null)" != "${peers[*]}" ]]; then
	debs=$root/target/peers/debs
	rm -rf "$debs" "$peer_root"
	mkdir -p "$debs" "$peer_root"
	chmod 0777 "$debs" # apt-get download fetches as the _apt user where it can
	if ! (cd "$debs" && apt-get download -q "${peers[@]}" >/dev/null 2>&1); then
		"${sudo[@]}" apt-get update -q >/dev/null
		(cd "$debs" && apt-get download -q "${peers[@]}" >/dev/null)
	fi
	for deb in "$debs"/*.deb; do
		dpkg-deb -x "$deb" "$peer_root"
	done
	echo "${peers[*]}" >"$peer_stamp"
	echo "setup.sh: unpacked ${peers[*]} into $peer_root" >&2
fi

# An arm64 busybox root filesystem for the `run --rootfs` tests (fetched once into target/).
"$root/scripts/rootfs.sh"

if ((build)); then
	cd "$root"
	cargo build --release --locked
	echo "setup.sh: built $root/target/release/binfmt-setup" >&2
fi
