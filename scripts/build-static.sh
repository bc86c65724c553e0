#!/usr/bin/env bash
# Build a statically linked binfmt-setup (musl libc), the one to copy into a scratch image,
# an initramfs or any host whatever its libc, and check it with our own `inspect`.
#
#   scripts/build-static.sh                      -> target/<arch>-unknown-linux-musl/release/binfmt-setup
#   scripts/build-static.sh --target aarch64     -> target/aarch64-unknown-linux-musl/release/binfmt-setup
#   scripts/build-static.sh --target aarch64 --profile quick
#
# --target ARCH   x86_64 or aarch64 (default: this machine's). A foreign one is linked with
#                 rust-lld, which comes with the Rust toolchain, against the musl C library
#                 the Rust target ships: no cross C toolchain is needed.
# --profile NAME  release (default: LTO, several minutes) or quick (no LTO, no debug info:
#                 what the tests build, and run under QEMU).
#
# CARGO_TARGET_DIR moves target/ as cargo's own option does. Installs what it needs when
# missing: the Rust target (rustup) and, when the native linker needs it, Debian's musl-tools.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

arch=$(uname -m)
profile=release
while (($#)); do
	case $1 in
	--target)
		arch=${2:?--target needs an architecture (x86_64, aarch64)}
		shift 2
		;;
	--profile)
		profile=${2:?--profile needs a name (release, quick)}
		shift 2
		;;
	-h | --help)
		sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build-static.sh: unknown argument '$1' (try --help)" >&2
		exit 2
		;;
	esac
done
case $arch in
x86_64 | aarch64) ;;
*)
	echo "build-static.sh: --target $arch: give x86_64 or aarch64" >&2
	exit 2
	;;
esac
case $profile in
release | quick) ;;
*)
	echo "build-static.sh: --profile $profile: give release or quick" >&2
	exit 2
	;;
esac

triple=$arch-unknown-linux-musl
if command -v rustup >/dev/null; then
	if ! rustup target list --installed | grep -qx "$triple"; then
		echo "build-static.sh: rustup target add $triple" >&2
		rustup target add "$triple"
	fi
fi

build() { cargo build --locked --profile "$profile" --target "$triple"; }

if [[ $arch != "$(uname -m)" ]]; then
	# The triple's linker variable, as cargo spells it (CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER).
	var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_LINKER
	export "$var=rust-lld"
	build
elif ! build; then
	# Rust links musl programs with its own CRT objects and the system C compiler; a
	# compiler that cannot do that alone wants musl-gcc.
	if ! command -v musl-gcc >/dev/null; then
		sudo=()
		if ((EUID != 0)) && command -v sudo >/dev/null; then sudo=(sudo); fi
		echo "build-static.sh: installing musl-tools and trying again" >&2
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends musl-tools >/dev/null
		CC_x86_64_unknown_linux_musl=musl-gcc build
	else
		exit 1
	fi
fi

bin=${CARGO_TARGET_DIR:-target}/$triple/$profile/binfmt-setup
# The binary judges itself; a foreign one does so under QEMU, which proves it runs there.
run=("$bin")
if [[ $arch != "$(uname -m)" ]]; then
	run=("qemu-$arch-static" "$bin")
fi
report=$("${run[@]}" inspect --json "$bin")
if ! grep -q '"static": true' <<<"$report"; then
	echo "build-static.sh: $bin is not statically linked:" >&2
	echo "$report" >&2
	exit 1
fi
echo "build-static.sh: built $bin ($(stat -c %s "$bin") bytes, static, $triple)" >&2
