#!/usr/bin/env bash
# Build a statically linked binfmt-setup (musl libc), the one to copy into a scratch image,
# an initramfs or any host whatever its libc, and check it with our own `inspect`.
#
#   scripts/build-static.sh                  -> target/<arch>-unknown-linux-musl/release/binfmt-setup
#   scripts/build-static.sh --profile NAME   -> target/<arch>-unknown-linux-musl/NAME/binfmt-setup
#
# The release profile (LTO, one codegen unit) is what ships; `--profile quick-release`
# (Cargo.toml: the same without optimisation) takes about a third of its CPU time, for the
# image CI builds and runs (scripts/image.sh). Installs what it needs when missing: the Rust
# musl target (rustup) and, when the linker needs it, Debian's musl-tools.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
profile=release
while (($#)); do
	case $1 in
	--profile)
		if (($# < 2)) || [[ -z $2 || $2 == -* ]]; then
			echo "build-static.sh: --profile needs a Cargo profile name (release, quick-release)" >&2
			exit 2
		fi
		profile=$2
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
# Only the profiles Cargo.toml defines (and Cargo's own dev), so a typo is named here.
profiles=$(sed -n 's/^\[profile\.\(.*\)\]$/\1/p' Cargo.toml)
if [[ $profile != dev ]] && ! grep -qx -- "$profile" <<<"$profiles"; then
	echo "build-static.sh: --profile $profile: Cargo.toml has no such profile (it has: dev ${profiles//$'\n'/ })" >&2
	exit 2
fi

triple=$(uname -m)-unknown-linux-musl

if command -v rustup >/dev/null; then
	if ! rustup target list --installed | grep -qx "$triple"; then
		echo "build-static.sh: rustup target add $triple" >&2
		rustup target add "$triple"
	fi
fi

build() { cargo build --profile "$profile" --locked --target "$triple"; }

if ! build; then
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

dir=$profile
[[ $profile == dev ]] && dir=debug
bin=target/$triple/$dir/binfmt-setup
report=$("$bin" inspect --json "$bin")
if ! grep -q '"static": true' <<<"$report"; then
	echo "build-static.sh: $bin is not statically linked:" >&2
	echo "$report" >&2
	exit 1
fi
echo "build-static.sh: built $bin ($(stat -c %s "$bin") bytes, static)" >&2
