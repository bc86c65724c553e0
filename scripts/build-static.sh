#!/usr/bin/env bash
# Build a statically linked binfmt-setup (musl libc), the one to copy into a scratch image,
# an initramfs or any host whatever its libc, and check it with our own `inspect`.
#
#   scripts/build-static.sh                        -> target/<arch>-unknown-linux-musl/release/binfmt-setup
#   scripts/build-static.sh --profile quick        -> target/<arch>-unknown-linux-musl/quick/binfmt-setup
#   scripts/build-static.sh --target aarch64 ...   -> target/aarch64-unknown-linux-musl/...
#
# --target ARCH   x86_64 or aarch64 (default: this machine's). A foreign one is linked with
#                 rust-lld (it comes with the Rust toolchain) against the musl the Rust
#                 target ships; the C in the TLS library (aws-lc) is compiled by clang-16
#                 against Debian's musl headers for ARCH, fetched into target/ by
#                 scripts/fetch-deb.sh. The result is checked under qemu-ARCH-static.
# --profile NAME  a profile of Cargo.toml: release (default: LTO, one codegen unit, what
#                 ships) or quick (release without optimisation, about a third of its CPU
#                 time: what CI builds for the image it tests and the arm64-host simulation).
#
# CARGO_TARGET_DIR moves target/ as cargo's own option does. Installs what it needs when
# missing: the Rust target (rustup) and, for a native build, Debian's musl-tools.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
arch=$(uname -m)
profile=release
while (($#)); do
	case $1 in
	--target | --profile)
		if (($# < 2)) || [[ -z $2 || $2 == -* ]]; then
			echo "build-static.sh: $1 needs a value (try --help)" >&2
			exit 2
		fi
		if [[ $1 == --target ]]; then arch=$2; else profile=$2; fi
		shift 2
		;;
	-h | --help)
		usage
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
# Only the profiles Cargo.toml defines (and Cargo's own dev), so a typo is named here.
profiles=$(sed -n 's/^\[profile\.\(.*\)\]$/\1/p' Cargo.toml)
if [[ $profile != dev ]] && ! grep -qx -- "$profile" <<<"$profiles"; then
	echo "build-static.sh: --profile $profile: Cargo.toml has no such profile (it has: dev ${profiles//$'\n'/ })" >&2
	exit 2
fi

triple=$arch-unknown-linux-musl
if command -v rustup >/dev/null; then
	if ! rustup target list --installed | grep -qx "$triple"; then
		echo "build-static.sh: rustup target add $triple" >&2
		rustup target add "$triple"
	fi
fi

build() { cargo build --locked --profile "$profile" --target "$triple"; }
# A variable of cargo's or the cc crate's for this triple (CC_aarch64_unknown_linux_musl).
for_triple() { echo "$1_${triple//-/_}"; }

if [[ $arch != "$(uname -m)" ]]; then
	# Debian's musl headers for ARCH; only the headers are used (Rust brings musl itself).
	case $arch in aarch64) deb_arch=arm64 ;; x86_64) deb_arch=amd64 ;; esac
	sysroot=$root/target/cross-sysroot/$deb_arch
	if [[ ! -d $sysroot/usr/include ]]; then
		deb=$("$root/scripts/fetch-deb.sh" "musl-dev:$deb_arch" "$root/target/cross-sysroot/debs")
		rm -rf "$sysroot"
		mkdir -p "$sysroot"
		dpkg-deb -x "$deb" "$sysroot"
	fi
	headers=$(echo "$sysroot"/usr/include/*-linux-musl)
	clang_headers=$(clang-16 -print-resource-dir)/include
	export "$(for_triple CC)=clang-16"
	export "$(for_triple AR)=llvm-ar-16"
	export "$(for_triple CFLAGS)=--target=$arch-linux-musl -nostdinc -isystem $clang_headers -isystem $headers"
	var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$triple")_LINKER
	export "$var=rust-lld"
	# zlib-ng is built by CMake, whose compiler check links a program: there is no C linker
	# for this target here, so it checks by building a static library instead.
	toolchain=$sysroot/toolchain.cmake
	printf '%s\n' 'set(CMAKE_SYSTEM_NAME Linux)' "set(CMAKE_SYSTEM_PROCESSOR $arch)" \
		'set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)' 'set(CMAKE_C_COMPILER clang-16)' \
		'set(CMAKE_AR llvm-ar-16)' >"$toolchain"
	export "$(for_triple CMAKE_TOOLCHAIN_FILE)=$toolchain"
	build
elif ! build; then
	# Rust links musl programs with its own CRT objects and the system C compiler, and C
	# dependencies want musl's headers: musl-gcc gives both.
	if ! command -v musl-gcc >/dev/null; then
		sudo=()
		if ((EUID != 0)) && command -v sudo >/dev/null; then sudo=(sudo); fi
		echo "build-static.sh: installing musl-tools and trying again" >&2
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends musl-tools >/dev/null
	fi
	export "$(for_triple CC)=musl-gcc"
	build
fi

dir=$profile
[[ $profile == dev ]] && dir=debug
bin=${CARGO_TARGET_DIR:-target}/$triple/$dir/binfmt-setup
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
