#!/usr/bin/env bash
# Prepare this machine for binfmt-setup: install the Debian packages the tool and its tests
# use (only those missing), then build the release binary.
#
#   scripts/setup.sh            install packages, build target/release/binfmt-setup
#   scripts/setup.sh --no-build install packages only (scripts/test.sh uses this)
#
# Installing packages does not register anything in binfmt_misc: Debian's qemu-user-static
# only ships binfmt.d files, and nothing here runs systemd-binfmt or update-binfmts.
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
	file             # the peer `inspect` is benchmarked against
	hyperfine        # benchmark timing
	shellcheck       # lint for these scripts
	util-linux       # unshare and nsenter for private binfmt_misc instances
	python3          # the tests' exec helper (a plain execv, no shell fallback)
	umoci            # builds the OCI images the scan tests read
	zstd             # the scan tests' .tar.zst (GNU tar --zstd)
	pax-utils        # scanelf, the peer `scan` is benchmarked against
	time             # GNU time: peak memory in the scan benchmark
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

if ((${#missing[@]})); then
	sudo=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null; then
			echo "setup.sh: need root to install: ${missing[*]} (run as root or install sudo)" >&2
			exit 3
		fi
		sudo=(sudo)
	fi
	echo "setup.sh: installing ${missing[*]}" >&2
	"${sudo[@]}" apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ((build)); then
	cd "$root"
	cargo build --release --locked
	echo "setup.sh: built $root/target/release/binfmt-setup" >&2
fi
